//! The catalog from the store: `adfdr catalog rebuild`, and the records a
//! listing adds. The store is the truth, so only what checks out in it
//! enters the index: manifests that open with a configured key, checkpoints
//! that open under their snapshot's key, drill reports that open under their
//! own. What the catalog saw committed and the store no longer holds is kept
//! (it is how a rollback is noticed: `verify` reports it).

use std::collections::BTreeMap;

use super::verify::{self, Scope, Survey};
use super::{OpError, read};
use crate::catalog::{Catalog, CheckpointRecord, DrillRecord, SnapshotRecord};
use crate::keys::KeyRing;
use crate::snapshot::object::{self, Header};
use crate::store::layout::{self, Parsed};
use crate::store::{MAX_OBJECT, Replicas};

/// What a rebuild found.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Rebuilt {
    pub snapshots: usize,
    pub checkpoints: usize,
    pub drills: usize,
    /// Snapshots the catalog knew that vanished from the store (kept).
    pub vanished: Vec<String>,
    /// Objects that did not check out and were left out of the index.
    pub left_out: usize,
    /// Locations that could not be listed (location, error).
    pub unlisted: Vec<(String, String)>,
}

/// A catalog record for a snapshot from its public header (no key needed).
pub fn snapshot_record(
    factory: &str,
    id: &str,
    header: &Header,
    manifest_size: u64,
    locations: Vec<String>,
) -> Option<SnapshotRecord> {
    let public = header.manifest.as_ref()?;
    Some(SnapshotRecord {
        factory: factory.to_string(),
        id: id.to_string(),
        created: header.created.clone(),
        resources: public.resources,
        counts: public.counts.clone(),
        payload_size: public.payload.size,
        manifest_size,
        keys: public.keys.iter().map(|k| k.describe()).collect(),
        locations,
        root: None,
        exported_at: None,
    })
}

/// Recreates the index from the store: checks every object (as `verify`
/// does with a key), then replaces the index with what checked out. Fails,
/// leaving the catalog as it was, when no location can be listed.
pub async fn rebuild(
    replicas: &Replicas,
    keys: &KeyRing,
    catalog: &Catalog,
    now: time::OffsetDateTime,
) -> Result<Rebuilt, OpError> {
    let scope = Scope {
        factory: None,
        snapshot: None,
        location: None,
        keys: Some(keys),
        read_data: false,
        now,
    };
    let survey = verify::survey(replicas, &scope).await?;
    let unlisted: Vec<(String, String)> = survey
        .report
        .locations
        .iter()
        .filter_map(|l| l.error.clone().map(|e| (l.name.clone(), e)))
        .collect();
    if !replicas.locations.is_empty() && unlisted.len() == replicas.locations.len() {
        return Err(OpError::failed(format!(
            "no location could be listed ({}); the catalog was left as it was",
            read::describe(&unlisted)
        )));
    }
    let (snapshots, checkpoints, drills) = records(replicas, keys, &survey).await;
    let left_out = survey
        .report
        .locations
        .iter()
        .map(|l| l.damaged.len() + l.foreign.len())
        .sum();
    let held: Vec<(String, String)> = snapshots
        .iter()
        .map(|r| (r.factory.clone(), r.id.clone()))
        .collect();
    // Kept as evidence: what was committed and is gone without a prune.
    let vanished_names = if unlisted.is_empty() {
        verify::vanished(catalog, None, &held)?
    } else {
        Vec::new()
    };
    let keep: Vec<SnapshotRecord> = catalog
        .snapshots(None)?
        .into_iter()
        .filter(|r| vanished_names.contains(&format!("{}/{}", r.factory, r.id)))
        .collect();
    catalog.clear_index()?;
    for r in snapshots.iter().chain(&keep) {
        catalog.put_snapshot(r)?;
    }
    for c in &checkpoints {
        catalog.put_checkpoint(c)?;
    }
    for d in &drills {
        catalog.put_drill(d)?;
    }
    Ok(Rebuilt {
        snapshots: snapshots.len(),
        checkpoints: checkpoints.len(),
        drills: drills.len(),
        vanished: vanished_names,
        left_out,
        unlisted,
    })
}

/// The records of every object that checked out in `survey`.
async fn records(
    replicas: &Replicas,
    keys: &KeyRing,
    survey: &Survey,
) -> (Vec<SnapshotRecord>, Vec<CheckpointRecord>, Vec<DrillRecord>) {
    let mut snapshots = Vec::new();
    let mut checkpoints: Vec<CheckpointRecord> = Vec::new();
    let mut drills = Vec::new();
    for (key, good) in &survey.good {
        let Some(parsed) = layout::parse(key) else {
            continue;
        };
        let Some(l) = replicas.get(&good.location) else {
            continue;
        };
        let Ok(Some(bytes)) = replicas.fetch(l, key, MAX_OBJECT.min(good.size)).await else {
            continue;
        };
        let Ok(header) = object::parse(&bytes).map(|p| p.header) else {
            continue;
        };
        match parsed {
            Parsed::Manifest { factory, snapshot } => {
                let Some(mut record) = snapshot_record(
                    &factory,
                    &snapshot,
                    &header,
                    good.size,
                    good.locations.clone(),
                ) else {
                    continue;
                };
                if let Ok(opened) = read::open(replicas, keys, &factory, &snapshot).await {
                    record.root = Some(opened.manifest.root.clone());
                    record.exported_at = Some(opened.manifest.exported_at.clone());
                }
                snapshots.push(record);
            }
            Parsed::Checkpoint { factory, id } => checkpoints.push(CheckpointRecord {
                factory,
                id,
                snapshot: header.snapshot,
                created: header.created,
                locations: good.locations.clone(),
            }),
            Parsed::Report { factory, id } => {
                if let Some(mut record) = header
                    .summary
                    .and_then(|s| serde_json::from_value::<DrillRecord>(s).ok())
                {
                    // The name bears out the header; the summary says the same.
                    record.factory = factory;
                    record.id = id;
                    record.locations = good.locations.clone();
                    drills.push(record);
                }
            }
            _ => {}
        }
    }
    snapshots.sort_by(|a, b| a.id.cmp(&b.id));
    (snapshots, checkpoints, drills)
}

/// What `adfdr snapshots` lists.
#[derive(Debug, Default)]
pub struct Listing {
    /// Snapshots with a copy that checks out, oldest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// Manifest copies that do not check out (planted, forged, damaged).
    pub not_counted: Vec<read::Rejected>,
    /// Locations that could not be listed (location, error).
    pub unlisted: Vec<(String, String)>,
    /// Snapshots intact but sealed for none of the keys at hand.
    pub locked: Vec<read::Locked>,
}

/// The snapshots the store holds: every manifest copy checked (with the
/// keys: it must decrypt), details from its public header. The catalog,
/// when given, learns each one's current locations (what it knew beyond
/// the header, root and export time, stays).
pub async fn list(
    replicas: &Replicas,
    keys: &KeyRing,
    catalog: Option<&Catalog>,
    factory: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<Listing, OpError> {
    // Without any key (incident mode listing a store) the public headers
    // alone are checked: what the store holds, not what opens.
    let inventory =
        read::inventory(replicas, factory, Some(keys).filter(|k| !k.is_empty()), now).await;
    if !inventory.failed.is_empty() && inventory.failed.len() == replicas.locations.len() {
        return Err(OpError::new(
            super::Kind::Unreachable,
            format!(
                "no location could be listed: {}",
                read::describe(&inventory.failed)
            ),
        ));
    }
    let mut out = Listing {
        not_counted: inventory
            .foreign
            .iter()
            .chain(&inventory.damaged)
            .cloned()
            .collect(),
        unlisted: inventory.failed.clone(),
        locked: inventory.locked.clone(),
        ..Default::default()
    };
    for l in &inventory.snapshots {
        let (header, _) = read::read_header(replicas, &l.factory, &l.id).await?;
        let Some(record) = snapshot_record(
            &l.factory,
            &l.id,
            &header,
            l.manifest_size,
            l.locations.clone(),
        ) else {
            continue;
        };
        if let Some(c) = catalog {
            let mut known = c
                .snapshot(&l.id)?
                .filter(|r| r.factory == l.factory)
                .unwrap_or_else(|| record.clone());
            known.locations = l.locations.clone();
            c.put_snapshot(&known)?;
        }
        out.snapshots.push(record);
    }
    Ok(out)
}

/// Every drill report's summary for `factory` (or all) that checks out in
/// the store (with `keys`: that opens), oldest first.
pub async fn drill_history(
    replicas: &Replicas,
    keys: Option<&KeyRing>,
    factory: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<Vec<DrillRecord>, OpError> {
    let scope = Scope {
        factory,
        snapshot: None,
        location: None,
        keys,
        read_data: false,
        now,
    };
    let survey = verify::survey(replicas, &scope).await?;
    let mut by_id: BTreeMap<String, DrillRecord> = BTreeMap::new();
    for (key, good) in &survey.good {
        let Some(Parsed::Report { factory, id }) = layout::parse(key) else {
            continue;
        };
        let Some(l) = replicas.get(&good.location) else {
            continue;
        };
        let Ok(Some(bytes)) = replicas.fetch(l, key, MAX_OBJECT.min(good.size)).await else {
            continue;
        };
        let Some(mut record) = object::parse(&bytes)
            .ok()
            .and_then(|p| p.header.summary)
            .and_then(|s| serde_json::from_value::<DrillRecord>(s).ok())
        else {
            continue;
        };
        record.factory = factory;
        record.id = id;
        record.locations = good.locations.clone();
        by_id.insert(key.clone(), record);
    }
    let mut out: Vec<DrillRecord> = by_id.into_values().collect();
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    Ok(out)
}
