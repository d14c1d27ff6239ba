//! Integrity of every copy: each object's SHA-256 trailer (no key needed),
//! the factory and id its header binds, each manifest's link to its payload;
//! with keys every manifest decrypts, and with `read_data` every payload and
//! every resource hash too. Repair copies missing or damaged objects from a
//! location whose copy checked out.
//!
//! Trust no location: what one location lists is a claim, not a snapshot.
//! An object counts (is expected everywhere, can be copied by repair) only
//! when at least one copy of it checks out. A name no copy of which checks
//! out is *foreign*: reported (exit 4), never copied, deleted only when asked
//! (`delete_foreign`).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::OpError;
use super::read::{self, AuthFailure};
use crate::keys::KeyRing;
use crate::snapshot::DataKey;
use crate::snapshot::manifest::{Manifest, decode_payload, hex};
use crate::snapshot::object::{self, DEFAULT_MAX_PLAIN, ObjectType};
use crate::store::layout::{self, Parsed};
use crate::store::{MAX_OBJECT, Replicas};

/// Objects read at once.
const PARALLEL_READS: usize = 16;

pub use adfdr_contract::verify::{LocationReport, Problem, Repaired, Report};

pub struct Scope<'a> {
    pub factory: Option<&'a str>,
    pub snapshot: Option<&'a str>,
    pub location: Option<&'a str>,
    /// Decrypt every manifest (and, with `read_data`, every payload).
    pub keys: Option<&'a KeyRing>,
    /// Also decrypt every payload and check every resource hash.
    pub read_data: bool,
    /// Ids after this (plus the clock skew) are from the future: not ours.
    pub now: time::OffsetDateTime,
}

/// What repair may do besides copying.
#[derive(Clone, Copy, Debug, Default)]
pub struct Repair {
    pub copy: bool,
    /// Delete foreign objects in writable locations.
    pub delete_foreign: bool,
}

/// Verifies `scope`; with `repair`, copies good objects over missing or
/// damaged ones (and deletes foreign ones when asked), clears the catalog's
/// pending repairs it fulfilled, and verifies again: the report that counts
/// is the state after repair. With a catalog, snapshots it saw committed and
/// that vanished from every location are reported.
pub async fn check(
    replicas: &Replicas,
    scope: &Scope<'_>,
    repair: Repair,
    catalog: Option<&crate::catalog::Catalog>,
) -> Result<Report, OpError> {
    if (repair.copy || repair.delete_foreign) && scope.keys.is_none() {
        return Err(OpError::usage(
            "repair copies only objects it can authenticate: it needs a key (--key, or a [[key]] in the config)",
        ));
    }
    let mut outcome = verify_inner(replicas, scope, catalog).await?;
    if repair.copy || repair.delete_foreign {
        let mut report = std::mem::take(&mut outcome.report);
        if repair.copy {
            copy_good(replicas, &outcome, &mut report).await;
        }
        if repair.delete_foreign {
            delete_foreign(replicas, &mut report).await;
        }
        if let Some(catalog) = catalog {
            for r in &report.repaired {
                catalog.remove_repair(&r.location, &r.key)?;
            }
        }
        if !report.repaired.is_empty() || !report.deleted_foreign.is_empty() {
            let mut after = verify_inner(replicas, scope, catalog).await?.report;
            after.repaired = report.repaired;
            after.repair_failed = report.repair_failed;
            after.deleted_foreign = report.deleted_foreign;
            return Ok(after);
        }
        return Ok(report);
    }
    Ok(outcome.report)
}

/// Verifies without repairing.
pub async fn verify(replicas: &Replicas, scope: &Scope<'_>) -> Result<Report, OpError> {
    Ok(verify_inner(replicas, scope, None).await?.report)
}

/// A verification and what repair and a catalog rebuild need from it: for
/// every object with a copy that checks out, where such copies are.
#[derive(Debug, Default)]
pub struct Survey {
    pub report: Report,
    pub good: BTreeMap<String, Good>,
}

/// The copies of one object that check out.
#[derive(Clone, Debug)]
pub struct Good {
    /// The first such copy's location, its SHA-256 and size.
    pub location: String,
    pub sha256: String,
    pub size: u64,
    /// Every location holding a copy that checks out.
    pub locations: Vec<String>,
}

/// Verifies `scope` and tells which copies of which objects check out.
pub async fn survey(replicas: &Replicas, scope: &Scope<'_>) -> Result<Survey, OpError> {
    verify_inner(replicas, scope, None).await
}

/// One stored object, by name.
#[derive(Clone, Debug)]
struct Object {
    parsed: Parsed,
    /// Locations listing it, with the listed size.
    copies: BTreeMap<String, u64>,
}

/// What one copy turned out to be.
enum Verdict {
    Good { sha: String, bytes: u64 },
    Bad { why: String, bytes: u64 },
    Unreadable(String),
}

fn in_scope(parsed: &Parsed, scope: &Scope<'_>) -> bool {
    let (f, s) = match parsed {
        Parsed::Manifest { factory, snapshot } | Parsed::Payload { factory, snapshot } => {
            (factory, Some(snapshot))
        }
        Parsed::Checkpoint { factory, .. } | Parsed::Report { factory, .. } => (factory, None),
        // Holds and leases are plain markers, not sealed objects.
        Parsed::Hold { .. } | Parsed::Lease { .. } | Parsed::Heartbeat { .. } => return false,
    };
    if scope
        .factory
        .is_some_and(|want| !want.eq_ignore_ascii_case(f))
    {
        return false;
    }
    match scope.snapshot {
        Some(want) => s.is_some_and(|s| s == want),
        None => true,
    }
}

async fn verify_inner(
    replicas: &Replicas,
    scope: &Scope<'_>,
    catalog: Option<&crate::catalog::Catalog>,
) -> Result<Survey, OpError> {
    let listed = list_objects(replicas, scope).await;
    if let Some(want) = scope.snapshot
        && !listed.objects.keys().any(|k| {
            matches!(layout::parse(k), Some(Parsed::Manifest { snapshot, .. }) if snapshot == want)
        })
        && !catalog_knows(catalog, scope.factory, want)
    {
        return Err(OpError::not_found(format!(
            "snapshot {want} is not in any location{}; list them with `adfdr snapshots`",
            scope
                .factory
                .map(|f| format!(" for factory {f}"))
                .unwrap_or_default()
        )));
    }
    let mut checker = Checker {
        replicas,
        scope,
        deks: BTreeMap::new(),
        payload_refs: BTreeMap::new(),
        verdicts: BTreeMap::new(),
    };
    // Manifests first: they say which payloads and checkpoints are real.
    checker.manifests(&listed.objects).await;
    checker.others(&listed.objects).await;
    let valid: Vec<(String, String)> = checker.payload_refs.keys().cloned().collect();
    let mut per_location = location_reports(replicas, scope, &listed.errors);
    let good = classify(&listed.objects, &checker.verdicts, &mut per_location);
    for (location, key) in listed.unknown {
        if let Some(report) = per_location.get_mut(&location) {
            report.foreign.push(Problem {
                key,
                problem: "not an object of adfdr's layout".into(),
            });
        }
    }
    let vanished = match catalog {
        Some(catalog) if listed.errors.is_empty() => vanished(catalog, scope.factory, &valid)?
            .into_iter()
            .filter(|v| scope.snapshot.is_none_or(|s| v.ends_with(&format!("/{s}"))))
            .collect(),
        _ => Vec::new(),
    };
    // Keep the configured order of locations.
    let order: Vec<&str> = replicas.locations.iter().map(|l| l.name.as_str()).collect();
    let mut locations: Vec<LocationReport> = per_location.into_values().collect();
    locations.sort_by_key(|l| order.iter().position(|n| *n == l.name));
    Ok(Survey {
        report: Report {
            locations,
            snapshots: valid.len(),
            read_data: scope.read_data && scope.keys.is_some(),
            authenticated: scope.keys.is_some(),
            vanished,
            ..Default::default()
        },
        good,
    })
}

/// What the locations list in scope: objects by key (with their copies),
/// keys that are not adfdr's layout, and locations that could not be listed.
struct Listed {
    objects: BTreeMap<String, Object>,
    unknown: Vec<(String, String)>,
    errors: BTreeMap<String, String>,
}

async fn list_objects(replicas: &Replicas, scope: &Scope<'_>) -> Listed {
    let prefix = scope
        .factory
        .map(layout::factory_prefix)
        .unwrap_or_else(|| layout::ROOT.to_string());
    let mut out = Listed {
        objects: BTreeMap::new(),
        unknown: Vec::new(),
        errors: BTreeMap::new(),
    };
    for (location, result) in replicas.list_all(&prefix).await {
        let list = match result {
            Ok(list) => list,
            Err(e) => {
                out.errors.insert(location, e.to_string());
                continue;
            }
        };
        for o in list {
            match layout::parse(&o.key) {
                Some(p) if in_scope(&p, scope) => {
                    out.objects
                        .entry(o.key.clone())
                        .or_insert_with(|| Object {
                            parsed: p,
                            copies: BTreeMap::new(),
                        })
                        .copies
                        .insert(location.clone(), o.size);
                }
                Some(_) => {}
                None if scope.snapshot.is_none() && scope.factory_matches(&o.key) => {
                    out.unknown.push((location.clone(), o.key.clone()))
                }
                None => {}
            }
        }
    }
    out
}

/// An empty report per location in scope (with its listing error).
fn location_reports(
    replicas: &Replicas,
    scope: &Scope<'_>,
    errors: &BTreeMap<String, String>,
) -> BTreeMap<String, LocationReport> {
    replicas
        .locations
        .iter()
        .filter(|l| scope.location.is_none_or(|n| n == l.name))
        .map(|l| {
            let report = LocationReport {
                name: l.name.clone(),
                read_only: l.read_only,
                error: errors.get(&l.name).cloned(),
                ..Default::default()
            };
            (l.name.clone(), report)
        })
        .collect()
}

/// Each object's copies sorted into the location reports: checked, damaged
/// (a good copy exists elsewhere), foreign (no copy checks out), missing,
/// or an interrupted backup's leftover. Returns where the good copies are.
fn classify(
    objects: &BTreeMap<String, Object>,
    verdicts: &BTreeMap<String, BTreeMap<String, Verdict>>,
    per_location: &mut BTreeMap<String, LocationReport>,
) -> BTreeMap<String, Good> {
    let mut goods = BTreeMap::new();
    for (key, object) in objects {
        let verdicts = verdicts.get(key);
        let good: Vec<(&String, &String, u64)> = verdicts
            .map(|v| {
                v.iter()
                    .filter_map(|(l, v)| match v {
                        Verdict::Good { sha, bytes } => Some((l, sha, *bytes)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some((l, sha, size)) = good.first() {
            goods.insert(
                key.clone(),
                Good {
                    location: (*l).clone(),
                    sha256: (*sha).clone(),
                    size: *size,
                    locations: good.iter().map(|(l, _, _)| (*l).clone()).collect(),
                },
            );
        }
        let leftover = match &object.parsed {
            Parsed::Payload { factory, snapshot } => {
                !objects.contains_key(&layout::manifest(factory, snapshot))
            }
            _ => false,
        };
        for (name, report) in per_location.iter_mut() {
            if report.error.is_none() {
                let verdict = verdicts.and_then(|v| v.get(name));
                file(report, key, object, verdict, !good.is_empty(), leftover);
            }
        }
    }
    goods
}

/// Files one copy (or its absence) of `key` in one location's report.
fn file(
    report: &mut LocationReport,
    key: &str,
    object: &Object,
    verdict: Option<&Verdict>,
    good_elsewhere: bool,
    leftover: bool,
) {
    match verdict {
        None if object.copies.contains_key(&report.name) => {}
        None if good_elsewhere => report.missing.push(Problem {
            key: key.to_string(),
            problem: "missing here, present in another location".into(),
        }),
        None => {}
        Some(Verdict::Good { bytes, .. }) => {
            report.checked += 1;
            report.bytes += bytes;
        }
        Some(Verdict::Unreadable(why)) => report.damaged.push(Problem {
            key: key.to_string(),
            problem: format!("cannot read: {why}"),
        }),
        Some(Verdict::Bad { why, bytes }) => {
            report.checked += 1;
            report.bytes += bytes;
            let problem = Problem {
                key: key.to_string(),
                problem: why.clone(),
            };
            if leftover {
                report.incomplete.push(key.to_string());
            } else if good_elsewhere {
                report.damaged.push(problem);
            } else {
                report.foreign.push(problem);
            }
        }
    }
}

/// Snapshots the catalog saw committed that no location holds, that no
/// prune of this catalog deleted, and that are newer than the newest the
/// store holds of their factory: retention never deletes a factory's newest
/// intact snapshot, so such a snapshot was deleted behind adfdr's back (a
/// rollback). `held` are the (factory, id) the store holds. As
/// `factory/id`, oldest first.
pub fn vanished(
    catalog: &crate::catalog::Catalog,
    factory: Option<&str>,
    held: &[(String, String)],
) -> Result<Vec<String>, OpError> {
    let mut out = Vec::new();
    for record in catalog.snapshots(factory)? {
        let newest_held = held
            .iter()
            .filter(|(f, _)| *f == record.factory)
            .map(|(_, id)| id.as_str())
            .max();
        let gone = !held
            .iter()
            .any(|(f, id)| *f == record.factory && *id == record.id);
        if gone
            && newest_held.is_none_or(|n| record.id.as_str() > n)
            && !catalog.was_pruned(&record.factory, &record.id)?
        {
            out.push(format!("{}/{}", record.factory, record.id));
        }
    }
    Ok(out)
}

fn catalog_knows(
    catalog: Option<&crate::catalog::Catalog>,
    factory: Option<&str>,
    id: &str,
) -> bool {
    catalog
        .and_then(|c| c.snapshots(factory).ok())
        .is_some_and(|all| all.iter().any(|r| r.id == id))
}

impl Scope<'_> {
    fn factory_matches(&self, key: &str) -> bool {
        match self.factory {
            None => key.starts_with(layout::ROOT),
            Some(f) => key.starts_with(&layout::factory_prefix(f)),
        }
    }
}

/// Checks every copy, remembering what a later check needs.
struct Checker<'a> {
    replicas: &'a Replicas,
    scope: &'a Scope<'a>,
    /// A data key per snapshot, from its first copy that authenticated.
    deks: BTreeMap<(String, String), DataKey>,
    /// Per snapshot with a good manifest: its payload's SHA-256 and size.
    payload_refs: BTreeMap<(String, String), (String, u64)>,
    /// Per object key, per location.
    verdicts: BTreeMap<String, BTreeMap<String, Verdict>>,
}

impl Checker<'_> {
    async fn fetch(&self, location: &str, key: &str, max: u64) -> Result<Vec<u8>, String> {
        let l = self.replicas.get(location).ok_or("unknown location")?;
        self.replicas
            .fetch(l, key, max)
            .await?
            .ok_or_else(|| "listed but not readable (deleted meanwhile?)".into())
    }

    fn record(&mut self, key: &str, location: &str, verdict: Verdict) {
        self.verdicts
            .entry(key.to_string())
            .or_default()
            .insert(location.to_string(), verdict);
    }

    /// Every manifest copy: header checks, and with keys decryption. The
    /// first good copy of a snapshot decides its payload's digest.
    async fn manifests(&mut self, objects: &BTreeMap<String, Object>) {
        let now = self.scope.now;
        let this = &*self;
        let work: Vec<(String, String, String, String)> = objects
            .iter()
            .filter_map(|(key, o)| match &o.parsed {
                Parsed::Manifest { factory, snapshot } => Some((key, o, factory, snapshot)),
                _ => None,
            })
            .flat_map(|(key, o, f, s)| {
                o.copies
                    .keys()
                    .map(move |l| (key.clone(), l.clone(), f.clone(), s.clone()))
            })
            .collect();
        type Fetched = (String, String, String, String, Result<Vec<u8>, String>);
        let reads: Vec<Fetched> = futures::stream::iter(work)
            .map(|(key, l, f, s)| async move {
                let bytes = this.fetch(&l, &key, MAX_OBJECT).await;
                (key, l, f, s, bytes)
            })
            .buffered(PARALLEL_READS)
            .collect()
            .await;
        for (key, location, factory, snapshot, bytes) in reads {
            let bytes = match bytes {
                Ok(b) => b,
                Err(why) => {
                    self.record(&key, &location, Verdict::Unreadable(why));
                    continue;
                }
            };
            let size = bytes.len() as u64;
            let checked = read::check_manifest(&bytes, &factory, &snapshot, Some(now));
            let verdict = match checked {
                Err(why) => Verdict::Bad { why, bytes: size },
                Ok(header) => {
                    let public = header.manifest.clone().expect("checked");
                    let authentic = match self.scope.keys {
                        None => Ok(()),
                        Some(keys) => {
                            let id = (factory.clone(), snapshot.clone());
                            match read::authenticate(
                                &bytes,
                                keys,
                                &factory,
                                &snapshot,
                                self.deks.get(&id),
                            )
                            .await
                            {
                                Ok((_, _, dek)) => {
                                    self.deks.entry(id).or_insert(dek);
                                    Ok(())
                                }
                                Err(AuthFailure::Damaged(why)) => Err(why),
                                Err(AuthFailure::NoKey(e)) => Err(e.to_string()),
                            }
                        }
                    };
                    match authentic {
                        Ok(()) => {
                            let id = (factory.clone(), snapshot.clone());
                            let want = (public.payload.sha256.clone(), public.payload.size);
                            match self.payload_refs.get(&id) {
                                // Without a key two copies that check out
                                // could still disagree (a forged header).
                                Some(first) if *first != want => Verdict::Bad {
                                    why: "records another payload than the other copies".into(),
                                    bytes: size,
                                },
                                _ => {
                                    self.payload_refs.insert(id, want);
                                    Verdict::Good {
                                        sha: hex(&Sha256::digest(&bytes)),
                                        bytes: size,
                                    }
                                }
                            }
                        }
                        Err(why) => Verdict::Bad { why, bytes: size },
                    }
                }
            };
            self.record(&key, &location, verdict);
        }
    }

    /// Payloads, checkpoints and drill reports.
    async fn others(&mut self, objects: &BTreeMap<String, Object>) {
        let this = &*self;
        let work: Vec<(String, Object, String)> = objects
            .iter()
            .filter(|(_, o)| !matches!(o.parsed, Parsed::Manifest { .. }))
            .flat_map(|(key, o)| {
                o.copies
                    .keys()
                    .map(move |l| (key.clone(), o.clone(), l.clone()))
            })
            .collect();
        let reads: Vec<(String, String, Verdict)> = futures::stream::iter(work)
            .map(|(key, o, l)| async move {
                let verdict = this.check_other(&key, &o, &l).await;
                (key, l, verdict)
            })
            .buffered(PARALLEL_READS)
            .collect()
            .await;
        for (key, location, verdict) in reads {
            self.record(&key, &location, verdict);
        }
    }

    async fn check_other(&self, key: &str, object: &Object, location: &str) -> Verdict {
        let now = self.scope.now;
        match &object.parsed {
            Parsed::Payload { factory, snapshot } => {
                let id = (factory.clone(), snapshot.clone());
                let Some((sha, size)) = self.payload_refs.get(&id) else {
                    return Verdict::Bad {
                        why: "no manifest that checks out names this payload".into(),
                        bytes: object.copies[location],
                    };
                };
                let bytes = match self.fetch(location, key, *size).await {
                    Ok(b) => b,
                    Err(why) => return Verdict::Unreadable(why),
                };
                let len = bytes.len() as u64;
                if len != *size || hex(&Sha256::digest(&bytes)) != *sha {
                    return Verdict::Bad {
                        why: "does not match the SHA-256 its manifest records".into(),
                        bytes: len,
                    };
                }
                if self.scope.read_data
                    && let Err(why) = self.read_payload(&bytes, factory, snapshot).await
                {
                    return Verdict::Bad { why, bytes: len };
                }
                Verdict::Good {
                    sha: sha.clone(),
                    bytes: len,
                }
            }
            Parsed::Checkpoint { factory, id } => {
                let bytes = match self.fetch(location, key, MAX_OBJECT).await {
                    Ok(b) => b,
                    Err(why) => return Verdict::Unreadable(why),
                };
                let len = bytes.len() as u64;
                match self.check_checkpoint(&bytes, factory, id, now) {
                    Ok(()) => Verdict::Good {
                        sha: hex(&Sha256::digest(&bytes)),
                        bytes: len,
                    },
                    Err(why) => Verdict::Bad { why, bytes: len },
                }
            }
            Parsed::Report { factory, id } => {
                let bytes = match self.fetch(location, key, MAX_OBJECT).await {
                    Ok(b) => b,
                    Err(why) => return Verdict::Unreadable(why),
                };
                let len = bytes.len() as u64;
                match self.check_report(&bytes, factory, id, now).await {
                    Ok(()) => Verdict::Good {
                        sha: hex(&Sha256::digest(&bytes)),
                        bytes: len,
                    },
                    Err(why) => Verdict::Bad { why, bytes: len },
                }
            }
            Parsed::Manifest { .. }
            | Parsed::Hold { .. }
            | Parsed::Lease { .. }
            | Parsed::Heartbeat { .. } => Verdict::Unreadable("not checked here".into()),
        }
    }

    async fn read_payload(
        &self,
        bytes: &[u8],
        factory: &str,
        snapshot: &str,
    ) -> Result<(), String> {
        let (Some(keys), Some(dek)) = (
            self.scope.keys,
            self.deks.get(&(factory.to_string(), snapshot.to_string())),
        ) else {
            return Err("no configured key opens its manifest".into());
        };
        let _ = keys;
        let manifest_key = layout::manifest(factory, snapshot);
        // The manifest body lists the resources the payload must hold.
        let body = self
            .manifest_body(&manifest_key, factory, snapshot, dek)
            .await?;
        let parsed = object::parse(bytes)
            .and_then(|p| p.expect(ObjectType::Payload))
            .map_err(|e| format!("payload: {e}"))?;
        if parsed.header.factory != factory || parsed.header.snapshot != snapshot {
            return Err("payload header names another snapshot".into());
        }
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

    /// The decrypted body of a snapshot's manifest, from a good copy.
    async fn manifest_body(
        &self,
        key: &str,
        factory: &str,
        snapshot: &str,
        dek: &DataKey,
    ) -> Result<Manifest, String> {
        let good = self
            .verdicts
            .get(key)
            .and_then(|v| v.iter().find(|(_, v)| matches!(v, Verdict::Good { .. })))
            .map(|(l, _)| l.clone())
            .ok_or("no good copy of its manifest")?;
        let bytes = self.fetch(&good, key, MAX_OBJECT).await?;
        let keys = self.scope.keys.ok_or("no key")?;
        read::authenticate(&bytes, keys, factory, snapshot, Some(dek))
            .await
            .map(|(_, m, _)| m)
            .map_err(|e| e.to_string())
    }

    fn check_checkpoint(
        &self,
        bytes: &[u8],
        factory: &str,
        id: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), String> {
        let parsed = object::parse(bytes)
            .and_then(|p| p.expect(ObjectType::Checkpoint))
            .map_err(|e| e.to_string())?;
        let header = &parsed.header;
        if header.factory != factory || header.id.as_deref() != Some(id) {
            return Err(format!(
                "claims to be checkpoint {}/{}: moved, swapped or planted",
                header.factory,
                header.id.as_deref().unwrap_or("?")
            ));
        }
        if !read::plausible_id(id, now) {
            return Err("its id is not one adfdr writes, or lies in the future".into());
        }
        let confirmed = (factory.to_string(), header.snapshot.clone());
        if !self.payload_refs.contains_key(&confirmed) {
            return Err(format!(
                "confirms snapshot {}, which no location holds a good copy of",
                header.snapshot
            ));
        }
        if self.scope.keys.is_some() {
            let Some(dek) = self.deks.get(&confirmed) else {
                return Err("its snapshot does not open with the configured keys".into());
            };
            parsed
                .open(dek, DEFAULT_MAX_PLAIN)
                .map_err(|e| format!("does not open under its snapshot's key: {e}"))?;
        }
        Ok(())
    }

    async fn check_report(
        &self,
        bytes: &[u8],
        factory: &str,
        id: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), String> {
        let parsed = object::parse(bytes)
            .and_then(|p| p.expect(ObjectType::Report))
            .map_err(|e| e.to_string())?;
        let header = &parsed.header;
        if header.factory != factory || header.id.as_deref() != Some(id) {
            return Err(format!(
                "claims to be report {}/{}: moved, swapped or planted",
                header.factory,
                header.id.as_deref().unwrap_or("?")
            ));
        }
        if !read::plausible_id(id, now) {
            return Err("its id is not one adfdr writes, or lies in the future".into());
        }
        if let Some(keys) = self.scope.keys {
            let wrapped = header.keys.clone().unwrap_or_default();
            let dek = keys
                .unwrap_any(&wrapped, factory, id)
                .await
                .map_err(|e| e.to_string())?;
            parsed
                .open(&dek, DEFAULT_MAX_PLAIN)
                .map_err(|e| format!("report does not decrypt: {e}"))?;
        }
        Ok(())
    }
}

/// Copies every missing or damaged object into its writable location from
/// the location whose copy checked out, if its bytes are still the ones
/// checked. Payloads go before manifests, so a repaired manifest never
/// points at nothing. Foreign objects are never copied.
async fn copy_good(replicas: &Replicas, outcome: &Survey, report: &mut Report) {
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
            let Some(Good {
                location: from,
                sha256: sha,
                size,
                ..
            }) = outcome.good.get(&problem.key)
            else {
                report.repair_failed.push((
                    loc.name.clone(),
                    problem.key.clone(),
                    "no location holds a copy that checks out".into(),
                ));
                continue;
            };
            let result =
                copy_one(replicas, &problem.key, (from, sha, *size), damaged, target).await;
            match result {
                Ok(()) => report.repaired.push(Repaired {
                    location: loc.name.clone(),
                    key: problem.key.clone(),
                    from: from.clone(),
                }),
                Err(e) => report
                    .repair_failed
                    .push((loc.name.clone(), problem.key.clone(), e)),
            }
        }
    }
}

async fn copy_one(
    replicas: &Replicas,
    key: &str,
    (from, sha, size): (&str, &str, u64),
    replace: bool,
    target: &crate::store::Location,
) -> Result<(), String> {
    let source = replicas.get(from).ok_or("unknown location")?;
    // The bytes must still be those that checked out.
    let bytes = replicas
        .fetch(source, key, size)
        .await?
        .ok_or("the good copy is gone")?;
    if hex(&Sha256::digest(&bytes)) != sha {
        return Err(format!("the copy in {from} changed since it was checked"));
    }
    let write = if replace {
        target.store.put_replace(key, bytes.into()).await
    } else {
        target.store.put_new(key, bytes.into()).await
    };
    write.map_err(|e| e.to_string())
}

/// Deletes the foreign objects found in writable locations.
async fn delete_foreign(replicas: &Replicas, report: &mut Report) {
    for loc in &report.locations {
        let Some(target) = replicas.get(&loc.name).filter(|l| !l.read_only) else {
            continue;
        };
        for p in &loc.foreign {
            match target.store.delete(&p.key).await {
                Ok(_) => report
                    .deleted_foreign
                    .push((loc.name.clone(), p.key.clone())),
                Err(e) => {
                    report
                        .repair_failed
                        .push((loc.name.clone(), p.key.clone(), e.to_string()))
                }
            }
        }
    }
}
