//! Retention, as restic's `forget` decides it, pure and with time as input:
//! keep the `last` N snapshots; the newest snapshot of each of the last N
//! hours / days / ISO weeks / months / years that have snapshots; and every
//! snapshot `within` a duration of the newest one. Besides the policy, the
//! newest snapshot known to be intact is always kept, and so is every
//! snapshot a restore or drill holds. An empty policy keeps everything.

use std::time::Duration;

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

/// The `keep = {…}` of a factory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<Duration>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self == &Policy::default()
    }
}

#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub time: OffsetDateTime,
    /// Its copies were found intact (the newest such is always kept).
    pub intact: bool,
    /// Held by a running restore or drill (never deleted), and by whom.
    pub held_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why it is kept (every rule that keeps it), or why it goes.
    pub reasons: Vec<String>,
}

/// Decides every candidate (any order in, newest first out). `offset` gives
/// the UTC offset, at a given instant, of the time zone whose hours, days,
/// weeks, months and years count.
pub fn decide(
    candidates: &[Candidate],
    policy: &Policy,
    offset: &dyn Fn(OffsetDateTime) -> UtcOffset,
) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];
    if policy.is_empty() {
        for r in &mut reasons {
            r.push("no retention policy (keep = {...}): everything is kept".into());
        }
    }
    if let Some(n) = policy.last {
        for (i, r) in reasons.iter_mut().enumerate().take(n as usize) {
            r.push(format!("last {n} (#{})", i + 1));
        }
    }
    type Bucket = fn(OffsetDateTime) -> (i32, u32, u32, u32);
    let buckets: [(&str, Option<u32>, Bucket); 5] = [
        ("hourly", policy.hourly, |t| {
            (t.year(), t.ordinal() as u32, t.hour() as u32, 0)
        }),
        ("daily", policy.daily, |t| {
            (t.year(), t.ordinal() as u32, 0, 0)
        }),
        ("weekly", policy.weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w as u32, 0, 0)
        }),
        ("monthly", policy.monthly, |t| {
            (t.year(), t.month() as u32, 0, 0)
        }),
        ("yearly", policy.yearly, |t| (t.year(), 0, 0, 0)),
    ];
    for (name, n, bucket) in buckets {
        let Some(n) = n else { continue };
        let mut seen: Option<(i32, u32, u32, u32)> = None;
        let mut kept = 0;
        for (i, c) in sorted.iter().enumerate() {
            if kept >= n {
                break;
            }
            let b = bucket(c.time.to_offset(offset(c.time)));
            if seen != Some(b) {
                seen = Some(b);
                kept += 1;
                reasons[i].push(format!("{name} {n} (#{kept})"));
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, sorted.first()) {
        let since = newest.time - within;
        for (i, c) in sorted.iter().enumerate() {
            if c.time >= since {
                reasons[i].push(format!("within {} of the newest", humantime(within)));
            }
        }
    }
    if let Some(i) = sorted.iter().position(|c| c.intact) {
        reasons[i].push("newest intact snapshot (always kept)".into());
    }
    for (i, c) in sorted.iter().enumerate() {
        if let Some(by) = &c.held_by {
            reasons[i].push(format!("held by {by}"));
        }
    }
    let mut out = Vec::with_capacity(sorted.len());
    for (c, r) in sorted.iter().zip(reasons) {
        let keep = !r.is_empty();
        out.push(Decision {
            id: c.id.clone(),
            keep,
            reasons: if keep {
                r
            } else {
                vec!["no rule keeps it".into()]
            },
        });
    }
    out
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The offset function of an IANA time zone (daylight saving included).
pub fn zone(tz: chrono_tz::Tz) -> impl Fn(OffsetDateTime) -> UtcOffset {
    use chrono::{Offset, TimeZone};
    move |t: OffsetDateTime| {
        let seconds = tz
            .offset_from_utc_datetime(
                &chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
                    .unwrap_or_default()
                    .naive_utc(),
            )
            .fix()
            .local_minus_utc();
        UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    fn at(times: &[OffsetDateTime]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: format!("s{i:02}"),
                time: *t,
                intact: true,
                held_by: None,
            })
            .collect()
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
    }

    /// Every 6 hours for 20 days, from 2026-01-01 00:00 UTC: s00 oldest.
    fn every_six_hours() -> Vec<Candidate> {
        at(&(0..80)
            .map(|i| datetime!(2026-01-01 00:00 UTC) + Duration::from_secs(6 * 3600 * i))
            .collect::<Vec<_>>())
    }

    #[test]
    fn last_and_daily_keep_what_restic_keeps() {
        let c = every_six_hours();
        let p = Policy {
            last: Some(3),
            daily: Some(4),
            ..Default::default()
        };
        let d = decide(&c, &p, &|_| UtcOffset::UTC);
        // Newest: s79 (day 20, 18:00), s78, s77 by last; daily: s79 (day 20),
        // s75 (day 19, 18:00), s71, s67.
        assert_eq!(kept(&d), ["s79", "s78", "s77", "s75", "s71", "s67"]);
        assert_eq!(
            d[0].reasons,
            [
                "last 3 (#1)",
                "daily 4 (#1)",
                "newest intact snapshot (always kept)"
            ]
        );
        let gone = d.iter().find(|d| d.id == "s76").expect("s76");
        assert!(!gone.keep);
        assert_eq!(gone.reasons, ["no rule keeps it"]);
    }

    #[test]
    fn weekly_monthly_yearly_count_periods_that_have_snapshots() {
        let c = at(&[
            datetime!(2024-06-01 12:00 UTC),
            datetime!(2025-03-01 12:00 UTC),
            datetime!(2025-03-20 12:00 UTC),
            datetime!(2025-12-29 12:00 UTC), // ISO week 1 of 2026
            datetime!(2026-01-02 12:00 UTC), // same ISO week
            datetime!(2026-01-20 12:00 UTC),
        ]);
        let weekly = decide(
            &c,
            &Policy {
                weekly: Some(2),
                ..Default::default()
            },
            &|_| UtcOffset::UTC,
        );
        assert_eq!(kept(&weekly), ["s05", "s04"]);
        let monthly = decide(
            &c,
            &Policy {
                monthly: Some(3),
                ..Default::default()
            },
            &|_| UtcOffset::UTC,
        );
        assert_eq!(
            kept(&monthly),
            ["s05", "s03", "s02"],
            "January 2026, December 2025, March 2025"
        );
        let yearly = decide(
            &c,
            &Policy {
                yearly: Some(10),
                ..Default::default()
            },
            &|_| UtcOffset::UTC,
        );
        assert_eq!(kept(&yearly), ["s05", "s03", "s00"]);
    }

    #[test]
    fn within_counts_from_the_newest_snapshot_not_from_now() {
        let c = every_six_hours();
        let p = Policy {
            within: Some(Duration::from_secs(86_400)),
            ..Default::default()
        };
        assert_eq!(
            kept(&decide(&c, &p, &|_| UtcOffset::UTC)),
            ["s79", "s78", "s77", "s76", "s75"]
        );
    }

    #[test]
    fn days_are_counted_in_the_configured_time_zone() {
        // 23:30 UTC on the 1st is the 2nd in UTC+1.
        let c = at(&[
            datetime!(2026-01-01 22:00 UTC),
            datetime!(2026-01-01 23:30 UTC),
        ]);
        let p = Policy {
            daily: Some(5),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&c, &p, &|_| UtcOffset::UTC)), ["s01"]);
        assert_eq!(kept(&decide(&c, &p, &|_| offset!(+1))), ["s01", "s00"]);
        assert_eq!(
            kept(&decide(&c, &p, &zone(chrono_tz::Europe::Amsterdam))),
            ["s01", "s00"]
        );
        assert_eq!(kept(&decide(&c, &p, &zone(chrono_tz::UTC))), ["s01"]);
    }

    #[test]
    fn the_newest_intact_and_held_snapshots_are_always_kept() {
        let mut c = every_six_hours();
        for x in c.iter_mut().skip(78) {
            x.intact = false; // the two newest are damaged
        }
        c[10].held_by = Some("restore by alice@host".into());
        let p = Policy {
            last: Some(1),
            ..Default::default()
        };
        let d = decide(&c, &p, &|_| UtcOffset::UTC);
        assert_eq!(kept(&d), ["s79", "s77", "s10"]);
        let s77 = d.iter().find(|d| d.id == "s77").expect("s77");
        assert_eq!(s77.reasons, ["newest intact snapshot (always kept)"]);
        let s10 = d.iter().find(|d| d.id == "s10").expect("s10");
        assert_eq!(s10.reasons, ["held by restore by alice@host"]);
    }

    #[test]
    fn no_policy_keeps_everything() {
        let c = every_six_hours();
        let d = decide(&c, &Policy::default(), &|_| UtcOffset::UTC);
        assert!(d.iter().all(|d| d.keep));
        assert!(d[5].reasons[0].contains("no retention policy"));
    }
}
