//! Retention applied to the store: decide (`plan::retention`), then delete
//! whole snapshots, manifest first (the commit point: from then on nobody
//! lists it) and payload second, with the checkpoints that confirmed them;
//! in every writable location. Holds (a running restore or drill) protect
//! a snapshot; the newest intact snapshot is always kept.

use std::collections::{BTreeMap, BTreeSet};

use time::{OffsetDateTime, UtcOffset};

use super::OpError;
use super::read;
use crate::catalog::Catalog;
use crate::config::{Config, FactoryConfig, Origin};
use crate::keys::KeyRing;
use crate::plan::retention::{Candidate, Decision, Floor, Rules, decide_all};

use crate::snapshot::{object, snapshot_time};
use crate::store::layout::{self, Parsed};
use crate::store::{MAX_OBJECT, Replicas};

use super::hold::{HOLD_TTL, HoldBody, MAX_HOLD};

pub use adfdr_contract::prune::{Report, Snapshot};

/// Objects of one factory per location: (location, key) → size; and the
/// hold keys with the snapshot each holds.
struct Listing {
    objects: BTreeMap<(String, String), u64>,
    holds: BTreeMap<String, String>,
}

async fn listing(replicas: &Replicas, factory: &str, report: &mut Report) -> Listing {
    let mut objects = BTreeMap::new();
    let mut holds = BTreeMap::new();
    for (location, result) in replicas.list_all(&layout::factory_prefix(factory)).await {
        match result {
            Ok(list) => {
                for o in list {
                    if let Some(Parsed::Hold { snapshot, .. }) = layout::parse(&o.key) {
                        holds.insert(o.key.clone(), snapshot);
                    }
                    objects.insert((location.clone(), o.key), o.size);
                }
            }
            Err(e) => report.untouched.push(format!("{location}: {e}")),
        }
    }
    Listing { objects, holds }
}

/// The keep rules of `fc`: its keep, and when a tag on the factory chose
/// its policy (and the block does not let a tag shorten), the floor a tag
/// cannot go below: the block's policy, and each policy snapshots were
/// taken under (issue 25).
pub fn rules(config: &Config, fc: &FactoryConfig) -> Rules {
    let policy = fc.keep.clone();
    let Origin::Discovered {
        block_policy,
        by_tag: true,
        tag_may_shorten: false,
        ..
    } = &fc.origin
    else {
        return Rules::plain(policy);
    };
    let keep = |name: &str| config.policies.get(name).map(|p| p.keep.clone());
    Rules {
        policy,
        floor: Some(Floor {
            block: (block_policy.clone(), keep(block_policy).unwrap_or_default()),
            policies: config
                .policies
                .keys()
                .filter_map(|n| Some((n.clone(), keep(n)?)))
                .collect(),
        }),
    }
}

/// Decides retention for `factory` and, unless `dry_run`, deletes.
#[allow(clippy::too_many_arguments)]
pub async fn prune(
    replicas: &Replicas,
    keys: &KeyRing,
    catalog: Option<&Catalog>,
    factory: &str,
    rules: &Rules,
    offset: &(dyn Fn(OffsetDateTime) -> UtcOffset + Sync),
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<Report, OpError> {
    let mut report = Report {
        factory: factory.into(),
        dry_run,
        ..Default::default()
    };
    let listed = listing(replicas, factory, &mut report).await;
    for l in replicas.locations.iter().filter(|l| l.read_only) {
        report.untouched.push(format!(
            "{}: read-only (pruned through its primary)",
            l.name
        ));
    }
    let snapshots = snapshots(replicas, keys, factory, now, &listed, &mut report).await;
    let held = live_holds(replicas, &listed, now).await;
    let candidates = candidates(replicas, keys, factory, &snapshots, &held, &mut report).await;
    let decisions: Vec<Decision> = decide_all(&candidates, rules, offset);
    for d in &decisions {
        let c = candidates.iter().find(|c| c.id == d.id).expect("decided");
        report.snapshots.push(Snapshot {
            id: d.id.clone(),
            time: crate::snapshot::rfc3339(c.time),
            bytes: snapshots.get(&d.id).map_or(0, |(b, _)| *b),
            keep: d.keep,
            reasons: d.reasons.clone(),
        });
    }
    let doomed: BTreeSet<String> = decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.clone())
        .collect();
    leftovers(replicas, &listed, now, dry_run, &mut report).await;
    if doomed.is_empty() {
        return Ok(report);
    }
    let checkpoints = doomed_checkpoints(replicas, &listed, &doomed).await;
    if dry_run {
        report.freed_bytes = report
            .snapshots
            .iter()
            .filter(|s| !s.keep)
            .map(|s| s.bytes)
            .sum::<u64>()
            + checkpoints.iter().map(|c| c.2).sum::<u64>();
        report.checkpoints_deleted = checkpoints.len();
        return Ok(report);
    }
    delete_snapshots(replicas, catalog, factory, &listed, &doomed, &mut report).await;
    delete_checkpoints(replicas, checkpoints, &mut report).await;
    Ok(report)
}

/// The snapshots that count (a manifest copy opens with a configured key)
/// and each one's size in the location that holds most of it. Whatever else
/// a location lists under a snapshot's name never fills a keep rule and is
/// never deleted here: it is reported as foreign.
async fn snapshots(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    now: OffsetDateTime,
    listed: &Listing,
    report: &mut Report,
) -> BTreeMap<String, (u64, Option<read::Meta>)> {
    let inventory = read::inventory(replicas, Some(factory), Some(keys), now).await;
    for l in &inventory.locked {
        let line = format!(
            "{} opens only with keys this config does not hold ({}): never counted, never deleted here",
            l.id,
            l.opens_with.join(", ")
        );
        report.foreign.push(line);
    }
    for f in &inventory.foreign {
        let id = match layout::parse(&f.key) {
            Some(Parsed::Manifest { snapshot, .. }) => snapshot,
            _ => f.key.clone(),
        };
        let line = format!(
            "{id} in {}: {} (left alone; see `adfdr verify`)",
            f.location, f.why
        );
        if !report.foreign.contains(&line) {
            report.foreign.push(line);
        }
    }
    let metas: BTreeMap<String, Option<read::Meta>> = inventory
        .snapshots
        .iter()
        .map(|l| (l.id.clone(), l.meta.clone()))
        .collect();
    let committed: BTreeSet<String> = metas.keys().cloned().collect();
    let mut per_location: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((location, key), size) in &listed.objects {
        let snapshot = match layout::parse(key) {
            Some(Parsed::Manifest { snapshot, .. } | Parsed::Payload { snapshot, .. }) => snapshot,
            _ => continue,
        };
        if committed.contains(&snapshot) {
            *per_location
                .entry(snapshot)
                .or_default()
                .entry(location.clone())
                .or_default() += size;
        }
    }
    committed
        .into_iter()
        .map(|id| {
            let bytes = per_location
                .get(&id)
                .and_then(|m| m.values().max().copied())
                .unwrap_or(0);
            let meta = metas.get(&id).cloned().flatten();
            (id, (bytes, meta))
        })
        .collect()
}

/// How old a payload without a manifest must be before it is a leftover:
/// no backup takes this long between its payload and its manifest.
pub const LEFTOVER_AGE: time::Duration = time::Duration::hours(1);

/// Payloads no location holds a manifest for, older than `LEFTOVER_AGE`:
/// deleted from every writable location (listed only by a dry run). Only
/// when every location was listed: a manifest in one that did not answer
/// would make a payload look left over.
async fn leftovers(
    replicas: &Replicas,
    listed: &Listing,
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut Report,
) {
    if report
        .untouched
        .iter()
        .any(|u| !u.ends_with("(pruned through its primary)"))
    {
        return;
    }
    let manifests: BTreeSet<&str> = listed
        .objects
        .keys()
        .filter_map(|(_, k)| k.strip_suffix(".manifest"))
        .collect();
    let mut found: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (location, key) in listed.objects.keys() {
        let Some(Parsed::Payload { snapshot, .. }) = layout::parse(key) else {
            continue;
        };
        let old = snapshot_time(&snapshot).is_some_and(|t| now - t > LEFTOVER_AGE);
        let base = key.strip_suffix(".payload").unwrap_or(key);
        if old && !manifests.contains(base) {
            found
                .entry(snapshot)
                .or_default()
                .push((location.clone(), key.clone()));
        }
    }
    for (snapshot, copies) in found {
        if !dry_run {
            for (location, key) in copies {
                let Some(l) = replicas.get(&location).filter(|l| !l.read_only) else {
                    continue;
                };
                if let Err(e) = l.store.delete(&key).await {
                    report.failures.push(format!("{location}: {e}"));
                }
            }
        }
        report.leftovers.push(snapshot);
    }
}

/// Snapshot id -> who holds it, for holds younger than `HOLD_TTL` (and not
/// from the future).
async fn live_holds(
    replicas: &Replicas,
    listed: &Listing,
    now: OffsetDateTime,
) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    for (key, snapshot) in &listed.holds {
        let body = match replicas.read(key, MAX_HOLD, None, |_| Ok(())).await {
            Ok(r) => serde_json::from_slice::<HoldBody>(&r.bytes).ok(),
            Err(_) => None,
        };
        let live = body.as_ref().is_some_and(|b| {
            crate::snapshot::parse_time(&b.since)
                .is_some_and(|t| now - t < HOLD_TTL && t <= now + read::CLOCK_SKEW)
        });
        if let (true, Some(b)) = (live, body) {
            held.insert(snapshot.clone(), format!("{} since {}", b.by, b.since));
        }
    }
    held
}

/// The retention candidates, newest first, the newest intact one marked
/// (checked newest first until one passes).
async fn candidates(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    snapshots: &BTreeMap<String, (u64, Option<read::Meta>)>,
    held: &BTreeMap<String, String>,
    report: &mut Report,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for (id, (_, meta)) in snapshots {
        let Some(time) = snapshot_time(id) else {
            report
                .failures
                .push(format!("{id}: not a snapshot id adfdr writes; left alone"));
            continue;
        };
        candidates.push(Candidate {
            id: id.clone(),
            time,
            intact: false,
            held_by: held.get(id).cloned(),
            source: meta.as_ref().map(|m| m.source.key()).unwrap_or_default(),
            taken_under: meta.as_ref().and_then(|m| m.policy.clone()),
        });
    }
    // Newest first, as retention orders them (ids break ties within a second).
    candidates.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    // The newest intact snapshot of each source is always kept.
    let mut found: BTreeSet<String> = BTreeSet::new();
    for c in &mut candidates {
        if !found.contains(&c.source) && intact(replicas, keys, factory, &c.id).await {
            c.intact = true;
            found.insert(c.source.clone());
        }
    }
    candidates
}

/// Checkpoints of doomed snapshots, as (location, key, size): each copy's
/// own header names the snapshot it confirms, so a copy in one location
/// never decides a delete in another.
async fn doomed_checkpoints(
    replicas: &Replicas,
    listed: &Listing,
    doomed: &BTreeSet<String>,
) -> Vec<(String, String, u64)> {
    let mut checkpoints = Vec::new();
    for ((location, key), size) in &listed.objects {
        if !matches!(layout::parse(key), Some(Parsed::Checkpoint { .. })) {
            continue;
        }
        let Some(l) = replicas.get(location) else {
            continue;
        };
        let Ok(Some(bytes)) = replicas.fetch(l, key, MAX_OBJECT).await else {
            continue;
        };
        if object::parse(&bytes).is_ok_and(|p| doomed.contains(&p.header.snapshot)) {
            checkpoints.push((location.clone(), key.clone(), *size));
        }
    }
    checkpoints
}

/// Deletes each doomed snapshot in every writable location, manifest first:
/// once it is gone the snapshot no longer lists, and a payload left behind
/// by a failure is only garbage.
async fn delete_snapshots(
    replicas: &Replicas,
    catalog: Option<&Catalog>,
    factory: &str,
    listed: &Listing,
    doomed: &BTreeSet<String>,
    report: &mut Report,
) {
    for id in doomed {
        let mut ok = true;
        for key in [layout::manifest(factory, id), layout::payload(factory, id)] {
            for l in replicas.writable() {
                let Some(size) = listed.objects.get(&(l.name.clone(), key.clone())) else {
                    continue;
                };
                match l.store.delete(&key).await {
                    Ok(_) => report.freed_bytes += size,
                    Err(e) => {
                        ok = false;
                        report.failures.push(format!("{}: {e}", l.name));
                    }
                }
            }
        }
        if ok {
            report.deleted.push(id.clone());
            if let Some(c) = catalog
                && let Err(e) = c.remove_snapshot(factory, id)
            {
                report.failures.push(format!("catalog: {e}"));
            }
        }
    }
}

async fn delete_checkpoints(
    replicas: &Replicas,
    checkpoints: Vec<(String, String, u64)>,
    report: &mut Report,
) {
    for (location, key, size) in checkpoints {
        if let Some(l) = replicas.get(&location).filter(|l| !l.read_only) {
            match l.store.delete(&key).await {
                Ok(_) => {
                    report.freed_bytes += size;
                    report.checkpoints_deleted += 1;
                }
                Err(e) => report.failures.push(format!("{location}: {e}")),
            }
        }
    }
}

/// A copy of the manifest that opens, and a copy of the payload whose
/// SHA-256 and size are those the manifest records.
async fn intact(replicas: &Replicas, keys: &KeyRing, factory: &str, id: &str) -> bool {
    use sha2::{Digest, Sha256};
    let Ok(opened) = read::open(replicas, keys, factory, id).await else {
        return false;
    };
    let want = &opened.public.payload;
    replicas
        .read(
            &layout::payload(factory, id),
            want.size,
            Some(&opened.location),
            |bytes| {
                if bytes.len() as u64 == want.size
                    && crate::snapshot::manifest::hex(&Sha256::digest(bytes)) == want.sha256
                {
                    Ok(())
                } else {
                    Err("SHA-256 differs from the manifest's".into())
                }
            },
        )
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing;

    /// Issue 25, item 5: payloads a backup left without a manifest (a
    /// location refused the rest) are cleaned by prune once old enough;
    /// a young one (a backup may be writing it now) is left alone.
    #[tokio::test]
    async fn leftover_payloads_are_cleaned_once_old() {
        let t = testing::engine(&["p1"], "keep = { last = 5 }");
        let fc = t.engine.config.factory("f").expect("f").clone();
        crate::ops::backup::backup(&t.engine, &fc, false, crate::ops::system_clock)
            .await
            .expect("backup");
        let now = crate::ops::system_clock();
        let old = crate::snapshot::snapshot_id(now - time::Duration::hours(2), 1);
        let young = crate::snapshot::snapshot_id(now - time::Duration::minutes(5), 2);
        for id in [&old, &young] {
            for loc in ["weu", "neu"] {
                let path = t.dir.join(loc).join(layout::payload("f", id));
                std::fs::write(path, b"a payload whose manifest never came").expect("plant");
            }
        }
        let rules = rules(&t.engine.config, &fc);
        let report = prune(
            &t.engine.replicas,
            &t.engine.keys,
            None,
            "f",
            &rules,
            &|_| UtcOffset::UTC,
            now,
            false,
        )
        .await
        .expect("prune");
        assert_eq!(report.leftovers, std::slice::from_ref(&old), "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
        for loc in ["weu", "neu"] {
            assert!(!t.dir.join(loc).join(layout::payload("f", &old)).exists());
            assert!(t.dir.join(loc).join(layout::payload("f", &young)).exists());
        }
        assert_eq!(report.snapshots.len(), 1, "the real snapshot is untouched");
    }
}
