//! Retention, as restic's `forget` decides it, pure and with time as input:
//! keep the `last` N snapshots; the newest snapshot of each of the last N
//! hours / days / ISO weeks / months / years that have snapshots; and every
//! snapshot `within` a duration of the newest one. Besides the policy, the
//! newest snapshot known to be intact is always kept, and so is every
//! snapshot a restore or drill holds. An empty policy keeps everything.

use std::time::Duration;

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

/// The `keep = {…}` of a factory or policy, as the config reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub within: Option<Duration>,
}

impl Policy {
    /// How many days the longest of these rules holds a snapshot (`last`
    /// depends on how often backups run, so it does not count).
    pub fn span_days(&self) -> Option<u64> {
        let n = |v: Option<u32>, days: u64| v.map(|v| u64::from(v) * days);
        [
            self.hourly.map(|h| u64::from(h).div_ceil(24)),
            n(self.daily, 1),
            n(self.weekly, 7),
            n(self.monthly, 31),
            n(self.yearly, 366),
            self.within.map(|d| d.as_secs().div_ceil(86_400)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

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
    /// The source it is of (`binding::SourceId::key`): retention decides per
    /// source, never across (empty: one source for all).
    pub source: String,
    /// The policy it was taken under, when it recorded one.
    pub taken_under: Option<String>,
}

/// What a factory's snapshots are kept by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// The factory's keep now.
    pub policy: Policy,
    /// Set when a tag on the factory chose `policy` (the factory owner's
    /// word, not the operator's): what it may not shorten.
    pub floor: Option<Floor>,
}

/// Keep rules a policy tag cannot shorten: the `[[discover]]` block's own
/// policy for every snapshot, and for each snapshot the policy it was
/// taken under (by name, as configured now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Floor {
    pub block: (String, Policy),
    pub policies: std::collections::BTreeMap<String, Policy>,
}

impl Rules {
    pub fn plain(policy: Policy) -> Rules {
        Rules {
            policy,
            floor: None,
        }
    }
}

/// Decides every candidate under `rules`: each source on its own (a
/// snapshot of one factory is never pushed out by another's), and with a
/// floor, a snapshot goes only when the floor's rules let it go too.
pub fn decide_all(
    candidates: &[Candidate],
    rules: &Rules,
    offset: &dyn Fn(OffsetDateTime) -> UtcOffset,
) -> Vec<Decision> {
    let mut groups: std::collections::BTreeMap<&str, Vec<Candidate>> = Default::default();
    for c in candidates {
        groups.entry(c.source.as_str()).or_default().push(c.clone());
    }
    let several = groups.len() > 1;
    let mut out = Vec::new();
    for (source, group) in groups {
        let mut decided = decide(&group, &rules.policy, offset);
        if let Some(floor) = &rules.floor {
            let (name, block) = &floor.block;
            let why = format!(
                "policy {name} (the [[discover]] block's: a policy tag does not shorten it)"
            );
            merge(&mut decided, decide(&group, block, offset), &why, |_| true);
            for (name, p) in &floor.policies {
                let under: std::collections::BTreeSet<&str> = group
                    .iter()
                    .filter(|c| c.taken_under.as_deref() == Some(name))
                    .map(|c| c.id.as_str())
                    .collect();
                if under.is_empty() {
                    continue;
                }
                let why = format!(
                    "policy {name}, in force when it was taken (a later tag does not shorten it)"
                );
                merge(&mut decided, decide(&group, p, offset), &why, |id| {
                    under.contains(id)
                });
            }
        }
        if several && !source.is_empty() {
            let who = source.split('|').next().unwrap_or(source);
            for d in &mut decided {
                d.reasons
                    .push(format!("decided among the snapshots of {who} only"));
            }
        }
        out.extend(decided);
    }
    out
}

/// Keeps in `into` what `more` keeps (for ids `applies` accepts), with
/// `why` before each of its reasons.
fn merge(into: &mut [Decision], more: Vec<Decision>, why: &str, applies: impl Fn(&str) -> bool) {
    for m in more.into_iter().filter(|m| m.keep && applies(&m.id)) {
        let Some(d) = into.iter_mut().find(|d| d.id == m.id) else {
            continue;
        };
        let extra: Vec<String> = m
            .reasons
            .iter()
            .filter(|r| !d.reasons.contains(r))
            .map(|r| format!("{why}: {r}"))
            .collect();
        if !d.keep {
            d.keep = true;
            d.reasons.clear();
        }
        d.reasons.extend(extra);
    }
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
                source: String::new(),
                taken_under: None,
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

    /// Issue 25, items 1 and 2: snapshots of another source are decided on
    /// their own, and a policy tag on the factory shortens nothing the
    /// block's policy, or the policy a snapshot was taken under, keeps.
    #[test]
    fn sources_are_decided_apart_and_a_policy_tag_cannot_shorten() {
        let mut c = every_six_hours();
        // The first 76 are the victim's, the newest 4 an impostor's.
        for (i, x) in c.iter_mut().enumerate() {
            x.source = if i < 76 {
                "victim|t0".into()
            } else {
                "impostor|t1".into()
            };
        }
        let short = Policy {
            last: Some(1),
            ..Default::default()
        };
        let d = decide_all(&c, &Rules::plain(short.clone()), &|_| UtcOffset::UTC);
        assert_eq!(kept(&d), ["s79", "s75"], "each source keeps its own newest");
        let s75 = d.iter().find(|d| d.id == "s75").expect("s75");
        assert!(
            s75.reasons.iter().any(|r| r.contains("of victim only")),
            "{s75:?}"
        );
        // One source; the tag chose `short` over the block's `standard`.
        for x in &mut c {
            x.source = String::new();
            x.taken_under = Some("standard".into());
        }
        let standard = Policy {
            last: Some(5),
            ..Default::default()
        };
        let rules = Rules {
            policy: short.clone(),
            floor: Some(Floor {
                block: ("standard".into(), standard.clone()),
                policies: Default::default(),
            }),
        };
        let d = decide_all(&c, &rules, &|_| UtcOffset::UTC);
        assert_eq!(kept(&d), ["s79", "s78", "s77", "s76", "s75"]);
        let s78 = d.iter().find(|d| d.id == "s78").expect("s78");
        assert_eq!(
            s78.reasons,
            [
                "policy standard (the [[discover]] block's: a policy tag does not shorten it): last 5 (#2)"
            ]
        );
        // Taken under a longer `gold` (tag) and now `short` (tag): gold's
        // rules still hold for what was taken under it, and only for that.
        let gold = Policy {
            last: Some(10),
            ..Default::default()
        };
        for (i, x) in c.iter_mut().enumerate() {
            x.taken_under = Some(if i < 78 { "gold" } else { "short" }.into());
        }
        let rules = Rules {
            policy: short,
            floor: Some(Floor {
                block: (
                    "standard".into(),
                    Policy {
                        last: Some(1),
                        ..Default::default()
                    },
                ),
                policies: [("gold".to_string(), gold)].into(),
            }),
        };
        let d = decide_all(&c, &rules, &|_| UtcOffset::UTC);
        // gold's last 10 over all are s79..s70; it applies to s77..s70 only.
        assert_eq!(
            kept(&d),
            [
                "s79", "s77", "s76", "s75", "s74", "s73", "s72", "s71", "s70"
            ]
        );
    }
}
