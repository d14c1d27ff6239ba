//! Job schedules, pure: crontab lines as cron means them (POSIX/Vixie, by
//! croner): `minute hour day month weekday`, or 6 fields with seconds
//! first, or `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`; Sunday is 0
//! or 7; a restricted day-of-month and a restricted day-of-week match either
//! (`0 3 1 * MON` runs on the 1st and on every Monday). Evaluated in an IANA
//! time zone (UTC by default); deterministic per-job jitter; and the
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
    cron: croner::Cron,
}

/// A cron line, checked once when the config is read (`backup = "…"`): a
/// config holds this, never the text alone; a `Schedule` is it in a zone.
#[derive(Clone, Debug)]
pub struct Cron {
    /// As written in the config.
    pub expr: String,
    cron: croner::Cron,
}

impl Cron {
    /// 5 fields, 6 with seconds first, or an `@` nickname (not `@reboot`).
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let text = expr.trim();
        let n = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&n) {
            return Err(format!(
                "'{expr}' has {n} fields: expected 5 (minute hour day-of-month month day-of-week), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly"
            ));
        }
        if text.eq_ignore_ascii_case("@reboot") {
            return Err(format!(
                "'{expr}': @reboot has no time; the agent catches up a missed run at start-up by itself"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("'{expr}' is not a cron expression: {e}"))?;
        Ok(Cron {
            expr: expr.into(),
            cron,
        })
    }

    /// This line evaluated in `zone`.
    pub fn in_zone(&self, zone: Zone) -> Schedule {
        Schedule {
            expr: self.expr.clone(),
            tz: zone.0,
            cron: self.cron.clone(),
        }
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expr)
    }
}

impl<'de> serde::Deserialize<'de> for Cron {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Cron::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone, checked once when the config is read; UTC unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Default for Zone {
    fn default() -> Self {
        Zone(Tz::UTC)
    }
}

impl Zone {
    pub fn parse(name: &str) -> Result<Zone, String> {
        Tz::from_str(name).map(Zone).map_err(|_| {
            format!("unknown time zone '{name}': use an IANA name such as Europe/Amsterdam or UTC")
        })
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Zone::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// `expr`: 5 fields, 6 with seconds first, or an `@` nickname; `tz`: an
    /// IANA name. (A config holds `Cron` and `Zone`, parsed when read.)
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let zone = tz.map(Zone::parse).transpose()?.unwrap_or_default();
        Ok(Cron::parse(expr)?.in_zone(zone))
    }

    /// The next `n` scheduled times after `t` (for people to check a line).
    pub fn next_runs(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner keeps the sub-second part of `t` (a run at 03:00:00.221):
        // schedules are on whole seconds.
        use chrono::Timelike;
        let t = t.with_nanosecond(0).unwrap_or(t);
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
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

    /// Issue 26, item 10: next runs fall on whole seconds, whatever the
    /// clock's sub-second part when asked (croner keeps it).
    #[test]
    fn next_runs_are_on_whole_seconds() {
        use chrono::Timelike;
        let s = Schedule::parse("*/15 * * * *", Some("Europe/Berlin")).expect("parse");
        let now = DateTime::parse_from_rfc3339("2026-12-07T23:41:21.221123776Z")
            .expect("time")
            .with_timezone(&Utc);
        let next = s.next_runs(now, 3);
        assert_eq!(next[0].to_rfc3339(), "2026-12-07T23:45:00+00:00");
        assert!(next.iter().all(|t| t.nanosecond() == 0), "{next:?}");
    }
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

    /// Answers as Vixie cron (cronie, and crontab(5): "if both fields are
    /// restricted, the command runs when either field matches") gives them.
    #[test]
    fn crontab_lines_run_when_cron_would_run_them() {
        // (line, after, the next three runs), 2026-12-01 is a Tuesday.
        type Row = (&'static str, DateTime<Utc>, [DateTime<Utc>; 3]);
        let table: [Row; 8] = [
            // Day-of-month OR day-of-week: the 1st, and every Monday.
            (
                "0 3 1 * MON",
                utc(2026, 12, 1, 12, 0),
                [
                    utc(2026, 12, 7, 3, 0),
                    utc(2026, 12, 14, 3, 0),
                    utc(2026, 12, 21, 3, 0),
                ],
            ),
            (
                "0 3 1,15 * 5",
                utc(2026, 12, 1, 12, 0),
                [
                    utc(2026, 12, 4, 3, 0),
                    utc(2026, 12, 11, 3, 0),
                    utc(2026, 12, 15, 3, 0),
                ],
            ),
            // An unrestricted day-of-month leaves the weekday alone to decide.
            (
                "30 2 * * 1-5",
                utc(2026, 12, 4, 12, 0),
                [
                    utc(2026, 12, 7, 2, 30),
                    utc(2026, 12, 8, 2, 30),
                    utc(2026, 12, 9, 2, 30),
                ],
            ),
            // And an unrestricted weekday the day of month.
            (
                "0 0 31 * *",
                utc(2026, 12, 1, 0, 0),
                [
                    utc(2026, 12, 31, 0, 0),
                    utc(2027, 1, 31, 0, 0),
                    utc(2027, 3, 31, 0, 0),
                ],
            ),
            // Sunday is 0 and 7.
            (
                "0 4 * * 7",
                utc(2026, 12, 1, 0, 0),
                [
                    utc(2026, 12, 6, 4, 0),
                    utc(2026, 12, 13, 4, 0),
                    utc(2026, 12, 20, 4, 0),
                ],
            ),
            (
                "@daily",
                utc(2026, 12, 1, 10, 0),
                [
                    utc(2026, 12, 2, 0, 0),
                    utc(2026, 12, 3, 0, 0),
                    utc(2026, 12, 4, 0, 0),
                ],
            ),
            (
                "@hourly",
                utc(2026, 12, 1, 10, 30),
                [
                    utc(2026, 12, 1, 11, 0),
                    utc(2026, 12, 1, 12, 0),
                    utc(2026, 12, 1, 13, 0),
                ],
            ),
            (
                "@weekly",
                utc(2026, 12, 1, 10, 30),
                [
                    utc(2026, 12, 6, 0, 0),
                    utc(2026, 12, 13, 0, 0),
                    utc(2026, 12, 20, 0, 0),
                ],
            ),
        ];
        for (line, after, want) in table {
            let s = Schedule::parse(line, None).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(s.next_runs(after, 3), want, "{line}");
        }
        // @monthly and @yearly, and month names.
        let monthly = Schedule::parse("@monthly", None).expect("parse");
        assert_eq!(
            monthly.next_after(utc(2026, 12, 1, 0, 0)),
            Some(utc(2027, 1, 1, 0, 0))
        );
        let yearly = Schedule::parse("@yearly", None).expect("parse");
        assert_eq!(
            yearly.next_after(utc(2026, 12, 1, 0, 0)),
            Some(utc(2027, 1, 1, 0, 0))
        );
        let named = Schedule::parse("0 6 1 jan-mar *", None).expect("parse");
        assert_eq!(
            named.next_after(utc(2026, 12, 1, 0, 0)),
            Some(utc(2027, 1, 1, 6, 0))
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
        assert!(e.contains("'0 3 * * 8' is not a cron expression"), "{e}");
        let e = Schedule::parse("@reboot", None).expect_err("reboot");
        assert!(e.contains("@reboot has no time"), "{e}");
        let e = Schedule::parse("0 0 1 1 * 2027", None).expect_err("year");
        assert!(e.contains("not a cron expression"), "{e}");
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
