//! Integrity of every copy: each object's SHA-256 trailer (no key needed),
//! each manifest's link to its payload, and with `read_data` a full decrypt
//! and per-resource hash check. Repair copies missing or damaged objects from
//! a healthy location.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use sha2::{Digest, Sha256};

use super::read;
use crate::keys::KeyRing;
use crate::snapshot::DataKey;
use crate::snapshot::manifest::{Manifest, decode_payload, hex, root};
use crate::snapshot::object::{self, DEFAULT_MAX_PLAIN, ObjectType};
use crate::store::layout::{self, Parsed};
use crate::store::{Location, Replicas};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LocationReport {
    pub name: String,
    pub read_only: bool,
    /// The location could not be listed at all.
    pub error: Option<String>,
    pub checked: usize,
    pub bytes: u64,
    pub damaged: Vec<Problem>,
    pub missing: Vec<Problem>,
    /// Payloads without a manifest anywhere: leftovers of interrupted backups.
    pub incomplete: Vec<String>,
}

impl LocationReport {
    pub fn healthy(&self) -> bool {
        self.error.is_none() && self.damaged.is_empty() && self.missing.is_empty()
    }
}

/// One object copied into a location from a healthy one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repaired {
    pub location: String,
    pub key: String,
    pub from: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub locations: Vec<LocationReport>,
    pub snapshots: usize,
    pub read_data: bool,
    pub repaired: Vec<Repaired>,
    pub repair_failed: Vec<(String, String, String)>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.locations.iter().all(LocationReport::healthy)
    }

    /// Adds another scope's report (another factory) to this one.
    pub fn merge(&mut self, other: Report) {
        self.snapshots += other.snapshots;
        self.read_data |= other.read_data;
        for l in other.locations {
            match self.locations.iter_mut().find(|m| m.name == l.name) {
                Some(m) => {
                    m.error = m.error.take().or(l.error);
                    m.checked += l.checked;
                    m.bytes += l.bytes;
                    m.damaged.extend(l.damaged);
                    m.missing.extend(l.missing);
                    m.incomplete.extend(l.incomplete);
                }
                None => self.locations.push(l),
            }
        }
        self.repaired.extend(other.repaired);
        self.repair_failed.extend(other.repair_failed);
    }
}

/// Verifies `scope`; with `repair`, copies good objects over missing or
/// damaged ones, clears the catalog's pending repairs it fulfilled, and
/// verifies again: the report that counts is the state after repair.
pub async fn check(
    replicas: &Replicas,
    scope: &Scope<'_>,
    repair_too: bool,
    catalog: Option<&crate::catalog::Catalog>,
) -> Result<Report, crate::catalog::CatalogError> {
    let mut report = verify(replicas, scope).await;
    if repair_too {
        repair(replicas, &mut report).await;
        if !report.repaired.is_empty() {
            if let Some(catalog) = catalog {
                for r in &report.repaired {
                    catalog.remove_repair(&r.location, &r.key)?;
                }
            }
            let repaired = std::mem::take(&mut report.repaired);
            let failed = std::mem::take(&mut report.repair_failed);
            report = verify(replicas, scope).await;
            report.repaired = repaired;
            report.repair_failed = failed;
        }
    }
    Ok(report)
}

fn wanted(key: &str, factory: Option<&str>, snapshot: Option<&str>) -> Option<Parsed> {
    let parsed = layout::parse(key)?;
    let (f, s) = match &parsed {
        Parsed::Manifest { factory, snapshot } | Parsed::Payload { factory, snapshot } => {
            (factory, snapshot)
        }
        Parsed::Checkpoint { factory, id } | Parsed::Report { factory, id } => (factory, id),
        // Holds and leases are plain markers, not sealed objects.
        Parsed::Hold { .. } | Parsed::Lease { .. } => return None,
    };
    if factory.is_some_and(|want| !want.eq_ignore_ascii_case(f)) {
        return None;
    }
    if let Some(want) = snapshot {
        let matches = match &parsed {
            Parsed::Checkpoint { .. } | Parsed::Report { .. } => false,
            _ => s == want,
        };
        if !matches {
            return None;
        }
    }
    Some(parsed)
}

pub struct Scope<'a> {
    pub factory: Option<&'a str>,
    pub snapshot: Option<&'a str>,
    pub location: Option<&'a str>,
    /// With keys: decrypt and check every resource hash.
    pub keys: Option<&'a KeyRing>,
}

pub async fn verify(replicas: &Replicas, scope: &Scope<'_>) -> Report {
    let prefix = scope
        .factory
        .map(layout::factory_prefix)
        .unwrap_or_else(|| layout::ROOT.to_string());
    let listings = replicas.list_all(&prefix).await;
    // Everything some location holds: what every location should hold.
    let mut expected: BTreeMap<String, Parsed> = BTreeMap::new();
    for (_, result) in &listings {
        for o in result.iter().flatten() {
            if let Some(p) = wanted(&o.key, scope.factory, scope.snapshot) {
                expected.insert(o.key.clone(), p);
            }
        }
    }
    let manifests: BTreeSet<(String, String)> = expected
        .values()
        .filter_map(|p| match p {
            Parsed::Manifest { factory, snapshot } => Some((factory.clone(), snapshot.clone())),
            _ => None,
        })
        .collect();
    let deks = tokio::sync::Mutex::new(BTreeMap::<(String, String), Option<DataKey>>::new());
    let checks = replicas
        .locations
        .iter()
        .zip(listings)
        .filter(|(l, _)| scope.location.is_none_or(|n| n == l.name))
        .map(|(location, (_, listing))| {
            let expected = &expected;
            let manifests = &manifests;
            let deks = &deks;
            async move {
                let mut report = LocationReport {
                    name: location.name.clone(),
                    read_only: location.read_only,
                    ..Default::default()
                };
                let objects = match listing {
                    Ok(o) => o,
                    Err(e) => {
                        report.error = Some(e.to_string());
                        return report;
                    }
                };
                let present: BTreeMap<String, u64> = objects
                    .into_iter()
                    .filter(|o| expected.contains_key(&o.key))
                    .map(|o| (o.key, o.size))
                    .collect();
                for (key, parsed) in expected {
                    if present.contains_key(key) {
                        continue;
                    }
                    let leftover = matches!(parsed, Parsed::Payload { factory, snapshot } if !manifests.contains(&(factory.clone(), snapshot.clone())));
                    if !leftover {
                        report.missing.push(Problem {
                            key: key.clone(),
                            problem: "missing here, present in another location".into(),
                        });
                    }
                }
                check_location(location, &present, expected, manifests, scope.keys, deks, &mut report).await;
                report
            }
        });
    let locations = join_all(checks).await;
    Report {
        locations,
        snapshots: manifests.len(),
        read_data: scope.keys.is_some(),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
async fn check_location(
    location: &Location,
    present: &BTreeMap<String, u64>,
    expected: &BTreeMap<String, Parsed>,
    manifests: &BTreeSet<(String, String)>,
    keys: Option<&KeyRing>,
    deks: &tokio::sync::Mutex<BTreeMap<(String, String), Option<DataKey>>>,
    report: &mut LocationReport,
) {
    let mut payload_sha: BTreeMap<String, String> = BTreeMap::new();
    // Payloads first, so manifests can be checked against them.
    let mut order: Vec<&String> = present.keys().collect();
    order.sort_by_key(|k| !matches!(expected.get(*k), Some(Parsed::Payload { .. })));
    for key in order {
        let parsed_key = &expected[key];
        let damaged = |report: &mut LocationReport, problem: String| {
            report.damaged.push(Problem {
                key: key.clone(),
                problem,
            })
        };
        let bytes = match location.store.get(key).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                report.missing.push(Problem {
                    key: key.clone(),
                    problem: "listed but not readable (deleted meanwhile?)".into(),
                });
                continue;
            }
            Err(e) => {
                damaged(report, format!("cannot read: {e}"));
                continue;
            }
        };
        report.checked += 1;
        report.bytes += bytes.len() as u64;
        let parsed = match object::parse(&bytes) {
            Ok(p) => p,
            Err(e) => {
                damaged(report, e.to_string());
                continue;
            }
        };
        let (factory, id, want_type) = match parsed_key {
            Parsed::Manifest { factory, snapshot } => (factory, snapshot, ObjectType::Manifest),
            Parsed::Payload { factory, snapshot } => (factory, snapshot, ObjectType::Payload),
            Parsed::Checkpoint { factory, id } => (factory, id, ObjectType::Checkpoint),
            Parsed::Report { factory, id } => (factory, id, ObjectType::Report),
            Parsed::Hold { .. } | Parsed::Lease { .. } => continue,
        };
        let header_id = match want_type {
            ObjectType::Checkpoint | ObjectType::Report => {
                parsed.header.id.clone().unwrap_or_default()
            }
            _ => parsed.header.snapshot.clone(),
        };
        if parsed.header.object != want_type
            || &parsed.header.factory != factory
            || &header_id != id
        {
            damaged(
                report,
                format!(
                    "object claims to be {:?} {}/{}: moved or swapped",
                    parsed.header.object, parsed.header.factory, header_id
                ),
            );
            continue;
        }
        match parsed_key {
            Parsed::Payload { .. } => {
                payload_sha.insert(key.clone(), hex(&Sha256::digest(&bytes)));
            }
            Parsed::Manifest { factory, snapshot } => {
                let public = parsed.header.manifest.clone();
                let Some(public) = public else {
                    damaged(report, "manifest without key list".into());
                    continue;
                };
                let payload_key = layout::payload(factory, snapshot);
                match payload_sha.get(&payload_key) {
                    None if !present.contains_key(&payload_key)
                        && !report.missing.iter().any(|p| p.key == payload_key) =>
                    {
                        report.missing.push(Problem {
                            key: payload_key.clone(),
                            problem: "payload missing beside its manifest".into(),
                        })
                    }
                    Some(sha) if *sha != public.payload.sha256 => damaged(
                        report,
                        format!(
                            "payload {payload_key} does not match the SHA-256 this manifest records"
                        ),
                    ),
                    _ => {}
                }
                if let Some(keys) = keys {
                    let dek = dek_for(keys, deks, factory, snapshot, &public.keys).await;
                    let Some(dek) = dek else {
                        damaged(report, "no configured key opens it".into());
                        continue;
                    };
                    if let Err(problem) = read_data(location, &parsed, &dek, &payload_key).await {
                        damaged(report, problem);
                    }
                }
            }
            Parsed::Hold { .. } | Parsed::Lease { .. } => {}
            Parsed::Report { factory, id } => {
                // With keys: the report opens with its own wrapped data key.
                if let Some(keys) = keys {
                    let wrapped = parsed.header.keys.clone().unwrap_or_default();
                    match keys.unwrap_any(&wrapped, factory, id).await {
                        Ok(dek) => {
                            if let Err(e) = parsed.open(&dek, DEFAULT_MAX_PLAIN) {
                                damaged(report, format!("report does not decrypt: {e}"));
                            }
                        }
                        Err(e) => damaged(report, e.to_string()),
                    }
                }
            }
            Parsed::Checkpoint { factory, .. } => {
                let snapshot = &parsed.header.snapshot;
                if !manifests.contains(&(factory.clone(), snapshot.clone())) {
                    // Its snapshot may live outside the verified scope; only a
                    // full-scope run can call it dangling.
                    continue;
                }
                if let Some(keys) = keys {
                    let listed = read::read_header(
                        &Replicas::new(vec![location.clone()]),
                        factory,
                        snapshot,
                    )
                    .await;
                    let Ok((header, _)) = listed else { continue };
                    let wrapped = header.manifest.map(|m| m.keys).unwrap_or_default();
                    if let Some(dek) = dek_for(keys, deks, factory, snapshot, &wrapped).await
                        && let Err(e) = parsed.open(&dek, DEFAULT_MAX_PLAIN)
                    {
                        damaged(report, format!("checkpoint does not open: {e}"));
                    }
                }
            }
        }
    }
}

async fn dek_for(
    keys: &KeyRing,
    deks: &tokio::sync::Mutex<BTreeMap<(String, String), Option<DataKey>>>,
    factory: &str,
    snapshot: &str,
    wrapped: &[crate::snapshot::WrappedKey],
) -> Option<DataKey> {
    let mut cache = deks.lock().await;
    let entry = cache.entry((factory.to_string(), snapshot.to_string()));
    let slot = match entry {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(keys.unwrap_any(wrapped, factory, snapshot).await.ok())
        }
    };
    slot.as_ref().and_then(|k| DataKey::from_slice(k.bytes()))
}

async fn read_data(
    location: &Location,
    manifest: &object::Parsed<'_>,
    dek: &DataKey,
    payload_key: &str,
) -> Result<(), String> {
    let plain = manifest
        .open(dek, DEFAULT_MAX_PLAIN)
        .map_err(|e| format!("manifest: {e}"))?;
    let body: Manifest =
        serde_json::from_slice(&plain).map_err(|e| format!("manifest does not parse: {e}"))?;
    if root(&body.resources, &body.trigger_states) != body.root {
        return Err("manifest root hash does not match its entries".into());
    }
    let bytes = location
        .store
        .get(payload_key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("payload missing")?;
    let parsed = object::parse(&bytes).map_err(|e| format!("payload: {e}"))?;
    let plain = parsed
        .open(dek, DEFAULT_MAX_PLAIN)
        .map_err(|e| format!("payload: {e}"))?;
    decode_payload(&plain, &body.resources)
        .map(|_| ())
        .map_err(|errors| {
            format!(
                "payload: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
}

/// Copies every missing or damaged object into its writable location from a
/// location whose copy is intact. Payloads go before manifests, so a repaired
/// manifest never points at nothing.
pub async fn repair(replicas: &Replicas, report: &mut Report) {
    for loc in &report.locations {
        let Some(target) = replicas.get(&loc.name) else {
            continue;
        };
        if target.read_only || loc.error.is_some() {
            continue;
        }
        let mut work: Vec<(&Problem, bool)> = loc
            .missing
            .iter()
            .map(|p| (p, false))
            .chain(loc.damaged.iter().map(|p| (p, true)))
            .collect();
        work.sort_by_key(|(p, _)| match layout::parse(&p.key) {
            Some(Parsed::Payload { .. }) => 0,
            Some(Parsed::Manifest { .. }) => 1,
            _ => 2,
        });
        let mut seen = BTreeSet::new();
        for (problem, damaged) in work {
            if !seen.insert(problem.key.clone()) {
                continue;
            }
            let others = Replicas::new(
                replicas
                    .locations
                    .iter()
                    .filter(|l| l.name != loc.name)
                    .cloned()
                    .collect(),
            );
            let source = others
                .read(&problem.key, None, |b| {
                    object::parse(b).map(|_| ()).map_err(|e| e.to_string())
                })
                .await;
            let result = match source {
                Ok(read) => {
                    let write = if damaged {
                        target.store.put_replace(&problem.key, read.bytes).await
                    } else {
                        target.store.put_new(&problem.key, read.bytes).await
                    };
                    write.map(|_| read.location).map_err(|e| e.to_string())
                }
                Err(skipped) => Err(format!(
                    "no intact copy elsewhere: {}",
                    read::describe(&skipped)
                )),
            };
            match result {
                Ok(from) => report.repaired.push(Repaired {
                    location: loc.name.clone(),
                    key: problem.key.clone(),
                    from,
                }),
                Err(e) => report
                    .repair_failed
                    .push((loc.name.clone(), problem.key.clone(), e)),
            }
        }
    }
}
