//! Job schedules, pure: standard 5-field cron (`minute hour day month
//! weekday`, Sunday = 0 or 7) or 6 fields with seconds first, evaluated in an
//! IANA time zone (UTC by default); deterministic per-job jitter; and the
//! catch-up rule: a run missed while the host was down runs once at start-up.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Clone, Debug)]
pub struct Schedule {
    /// As written in the config.
    pub expr: String,
    pub tz: Tz,
    cron: cron::Schedule,
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One weekday item (`5`, `7`, `FRI`) as 0..=6, Sunday = 0.
fn weekday(text: &str) -> Result<u32, String> {
    if let Some(i) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(text)) {
        return Ok(i as u32);
    }
    match text.parse::<u32>() {
        Ok(n @ 0..=7) => Ok(n % 7),
        _ => Err(format!("weekday '{text}' is not 0-7 or SUN-SAT")),
    }
}

/// Standard weekday field → the cron crate's (1 = Sunday … 7 = Saturday),
/// as an explicit list: ranges like 5-7 (Friday to Sunday) wrap correctly.
fn weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.into());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("weekday step '{s}' is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => {
                    let a = weekday(a)?;
                    // 7 ends a range as Sunday after Saturday.
                    let b = if b == "7" { 7 } else { weekday(b)? };
                    if b < a {
                        return Err(format!("weekday range '{r}' runs backwards"));
                    }
                    (a, b)
                }
                None => {
                    let d = weekday(r)?;
                    (d, if step > 1 { 6 } else { d })
                }
            },
        };
        let mut d = from;
        while d <= to {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    Ok(days
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| (i + 1).to_string())
        .collect::<Vec<_>>()
        .join(","))
}

impl Schedule {
    /// `expr`: 5 fields, or 6 with seconds first; `tz`: an IANA name.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let tz = match tz {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                format!(
                    "unknown time zone '{name}': use an IANA name such as Europe/Amsterdam or UTC"
                )
            })?,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let mut full: Vec<String> = match fields.len() {
            5 => std::iter::once("0")
                .chain(fields.iter().copied())
                .map(str::to_string)
                .collect(),
            6 => fields.iter().map(|f| f.to_string()).collect(),
            n => {
                return Err(format!(
                    "'{expr}' has {n} fields: expected 5 (minute hour day-of-month month day-of-week) or 6 with seconds first"
                ));
            }
        };
        full[5] = weekdays(&full[5]).map_err(|e| format!("'{expr}': {e}"))?;
        let cron = cron::Schedule::from_str(&full.join(" "))
            .map_err(|e| format!("'{expr}' is not a cron expression: {e}"))?;
        Ok(Schedule {
            expr: expr.into(),
            tz,
            cron,
        })
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .after(&t.with_timezone(&self.tz))
            .next()
            .map(|d| d.with_timezone(&Utc))
    }

    /// A run was due while nothing ran: the first scheduled time after the
    /// last run is already past (or there never was a run).
    pub fn missed(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match last_run {
            None => true,
            Some(last) => self.next_after(last).is_some_and(|due| due <= now),
        }
    }

    /// The time between two consecutive runs after `t` (for jitter bounds).
    pub fn period_after(&self, t: DateTime<Utc>) -> Option<std::time::Duration> {
        let a = self.next_after(t)?;
        let b = self.next_after(a)?;
        (b - a).to_std().ok()
    }
}

/// A stable delay in [0, max) for `key` (factory + job): runs of many
/// factories on the same schedule spread out, the same job keeps its slot.
pub fn jitter(key: &str, max: Duration) -> Duration {
    use sha2::{Digest, Sha256};
    if max.is_zero() {
        return Duration::ZERO;
    }
    let h = Sha256::digest(key.as_bytes());
    let n = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    Duration::from_millis(n % max.as_millis().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn five_fields_are_standard_cron_with_sunday_zero_or_seven() {
        let s = Schedule::parse("*/15 * * * *", None).expect("parse");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 7)),
            Some(utc(2026, 1, 1, 10, 15))
        );
        // 2026-01-04 is a Sunday.
        let sunday = Schedule::parse("0 3 * * 0", None).expect("parse");
        assert_eq!(
            sunday.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2026, 1, 4, 3, 0))
        );
        let seven = Schedule::parse("0 3 * * 7", None).expect("parse");
        assert_eq!(
            seven.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2026, 1, 4, 3, 0))
        );
        let weekend = Schedule::parse("0 3 * * 5-7", None).expect("parse");
        assert_eq!(
            weekend.next_after(utc(2026, 1, 4, 4, 0)),
            Some(utc(2026, 1, 9, 3, 0)),
            "Friday next"
        );
        let weekdays = Schedule::parse("30 6 * * MON-FRI", None).expect("parse");
        assert_eq!(
            weekdays.next_after(utc(2026, 1, 2, 7, 0)),
            Some(utc(2026, 1, 5, 6, 30)),
            "Friday -> Monday"
        );
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let s = Schedule::parse("30 */5 * * * *", None).expect("parse");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 0)),
            Some(
                Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 30)
                    .single()
                    .expect("t")
            )
        );
    }

    #[test]
    fn time_zones_follow_daylight_saving() {
        // 02:00 in Amsterdam is 01:00 UTC in winter, 00:00 UTC in summer.
        let s = Schedule::parse("0 2 * * *", Some("Europe/Amsterdam")).expect("parse");
        assert_eq!(
            s.next_after(utc(2026, 1, 10, 12, 0)),
            Some(utc(2026, 1, 11, 1, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 7, 10, 12, 0)),
            Some(utc(2026, 7, 11, 0, 0))
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_expected() {
        let e = Schedule::parse("*/15 * * *", None).expect_err("fields");
        assert!(
            e.contains("has 4 fields") && e.contains("expected 5"),
            "{e}"
        );
        let e = Schedule::parse("61 * * * *", None).expect_err("minute");
        assert!(e.contains("not a cron expression"), "{e}");
        let e = Schedule::parse("0 3 * * 8", None).expect_err("weekday");
        assert!(e.contains("weekday '8'"), "{e}");
        let e = Schedule::parse("0 3 * * *", Some("Mars/Olympus")).expect_err("tz");
        assert!(e.contains("unknown time zone 'Mars/Olympus'"), "{e}");
    }

    #[test]
    fn a_run_missed_while_down_is_caught_up_once() {
        let s = Schedule::parse("0 * * * *", None).expect("parse");
        let now = utc(2026, 1, 1, 10, 30);
        assert!(s.missed(None, now), "never ran");
        assert!(
            s.missed(Some(utc(2026, 1, 1, 8, 59)), now),
            "09:00 and 10:00 were missed"
        );
        assert!(!s.missed(Some(utc(2026, 1, 1, 10, 0)), now), "10:00 ran");
        let yearly = Schedule::parse("0 0 1 1 *", None).expect("parse");
        assert!(!yearly.missed(Some(utc(2026, 1, 1, 0, 0)), utc(2026, 12, 31, 0, 0)));
        assert!(yearly.missed(Some(utc(2026, 1, 1, 0, 0)), utc(2027, 1, 1, 0, 1)));
    }

    #[test]
    fn jitter_is_stable_per_job_and_spreads_jobs() {
        let max = Duration::from_secs(60);
        assert_eq!(jitter("sales/backup", max), jitter("sales/backup", max));
        assert!(jitter("sales/backup", max) < max);
        let spread: std::collections::BTreeSet<_> = (0..20)
            .map(|i| jitter(&format!("f{i}/backup"), max))
            .collect();
        assert!(spread.len() > 15, "{spread:?}");
        assert_eq!(jitter("x", Duration::ZERO), Duration::ZERO);
    }
}
