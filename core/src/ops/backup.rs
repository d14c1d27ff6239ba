//! One backup of one factory: export, canonicalize, compare with the latest
//! snapshot, then either seal and store a new snapshot (payload first, the
//! manifest last as the commit point) or write only a checkpoint.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Engine, OpError, export, read};
use crate::catalog::{CheckpointRecord, RepairRecord, SnapshotRecord};
use crate::config::FactoryConfig;
use crate::plan::binding::{self, SourceId, Verdict};
use crate::plan::events::{Change, ChangeRecord, Effect, Target};
use crate::snapshot::manifest::{self, Manifest, ObjectRef, PublicManifest, Source, hex};
use crate::snapshot::object::{self, Header, ObjectType};
use crate::snapshot::{DataKey, rfc3339, snapshot_id};
use crate::store::layout;

/// The encrypted body of a checkpoint.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckpointBody {
    pub root: String,
    pub exported_at: String,
}

#[derive(Debug)]
pub enum Outcome {
    Created {
        record: SnapshotRecord,
        /// Locations that missed a copy (queued for repair).
        failed: Vec<(String, String)>,
        /// What changed since the previous snapshot (its `changes`).
        changes: Vec<ChangeRecord>,
    },
    Unchanged {
        snapshot: String,
        checkpoint: String,
        failed: Vec<(String, String)>,
    },
}

impl Outcome {
    pub fn degraded(&self) -> bool {
        match self {
            Outcome::Created { failed, .. } | Outcome::Unchanged { failed, .. } => {
                !failed.is_empty()
            }
        }
    }
}

pub async fn backup(
    engine: &Engine,
    fc: &FactoryConfig,
    force: bool,
    clock: super::Clock,
) -> Result<Outcome, OpError> {
    backup_with(engine, fc, force, clock, &[]).await
}

/// A backup (a full listing) that ARM's `events` asked for (capture, when
/// events alone cannot say it all): each change the listing finds that an
/// event names is recorded with that event (its author, operation and
/// correlation id).
pub(super) async fn backup_with(
    engine: &Engine,
    fc: &FactoryConfig,
    force: bool,
    clock: super::Clock,
    events: &[(Change, Target)],
) -> Result<Outcome, OpError> {
    let started = clock();
    // Each resource is encoded as its page arrives and its value tree dropped:
    // memory holds canonical bytes, not trees.
    let exported = export::export_encoded(
        engine.arm.as_ref(),
        fc,
        &engine.identity.description,
        engine.config.backup.concurrency,
        engine.config.backup.max_definitions_mib << 20,
    )
    .await?;
    let root = manifest::root(
        &exported.entries,
        &exported.trigger_states,
        &exported.runtimes,
    );
    let catalog = engine.catalog()?;
    let run = Run::new(engine, &catalog, fc, started, clock);
    let previous = run.previous().await;
    // The namespace is bound to its source (issue 25): another factory
    // never writes into this history, and one that continues it (moved,
    // re-created, adopted) gets a snapshot of its own, said in the log.
    let force = match &previous {
        Some(p) => bound(fc, p, exported.created.as_deref())? || force,
        None => force,
    };
    let mut applied = previous
        .as_ref()
        .map(|p| p.manifest.applied.clone())
        .unwrap_or_default();
    let changes = match &previous {
        Some(p) => listing_changes(&p.manifest, &exported, &run.exported_at),
        None => Vec::new(),
    };
    // Events about changes an earlier listing sealed without an author
    // (unchanged since): their authors are recorded now.
    let late = match &previous {
        Some(p) => {
            let changed: std::collections::HashSet<String> =
                changes.iter().map(|c| c.resource.to_lowercase()).collect();
            let rest: Vec<(Change, Target)> = events
                .iter()
                .filter(|(_, t)| target_label(t).is_none_or(|l| !changed.contains(&l)))
                .cloned()
                .collect();
            crate::plan::events::late_authors(&rest, p.manifest.before(), &mut applied)
        }
        None => Vec::new(),
    };
    if !force
        && late.is_empty()
        && let Some(p) = &previous
        && p.manifest.root == root
        && let Some(unchanged) = run.confirm_unchanged(p, &root).await?
    {
        return Ok(unchanged);
    }
    let mut changes = attribute(changes, events, &mut applied);
    changes.extend(late);
    // Capture's listings keep waiting for the authors of what they found
    // before its events came; a plain backup expects no event.
    let awaiting = match &previous {
        Some(p) if !events.is_empty() => {
            crate::plan::events::awaiting(p.manifest.before(), &changes, started)
        }
        _ => Vec::new(),
    };
    let extra = Extra {
        applied,
        changes,
        awaiting,
    };
    let sealed = run.seal(exported, root, extra).await?;
    run.commit(sealed).await
}

/// The namespace is bound to its source (issue 25): another factory never
/// writes into this history (refused, with what to do), and one that
/// continues it (moved, re-created, adopted) gets a snapshot of its own,
/// said in the log (true: force one).
fn bound(
    fc: &FactoryConfig,
    previous: &read::Opened,
    created: Option<&str>,
) -> Result<bool, OpError> {
    let live = SourceId::new(&fc.arm_path(), created);
    match binding::verdict(&fc.name, &previous.manifest.source_id(), &live, fc.adopt) {
        Verdict::Write(None) => Ok(false),
        Verdict::Write(Some(note)) => {
            tracing::warn!(factory = %fc.name, "{note}");
            Ok(true)
        }
        Verdict::Refuse(why) => {
            let hint = match fc.origin {
                crate::config::Origin::Configured => format!(
                    "give this factory its own `name` in its [[factory]] block, or, if it now carries on this history (restored elsewhere), set `adopt = true` there; the history of '{}' is kept either way",
                    fc.name
                ),
                crate::config::Origin::Discovered { .. } => {
                    "discovery gives it a namespace of its own at its next run".to_string()
                }
            };
            Err(OpError::conflict(format!("{why}: not backed up into it")).with_hint(hint))
        }
    }
}

/// What a snapshot records besides the state: what changed since the
/// previous one (and who, when an event said), and the event times capture
/// applied (docs/FORMAT.md).
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub changes: Vec<ChangeRecord>,
    pub applied: std::collections::BTreeMap<String, String>,
    pub awaiting: Vec<ChangeRecord>,
}

/// The label of the resource an event is about, lowercased.
fn target_label(t: &Target) -> Option<String> {
    match t {
        Target::Resource { kind, parent, name } => {
            Some(manifest::label(*kind, parent.as_deref(), name).to_lowercase())
        }
        _ => None,
    }
}

/// The listing's changes, each one an event names recorded with that event
/// (and its time applied); the rest as found by the listing.
fn attribute(
    changes: Vec<ChangeRecord>,
    events: &[(Change, Target)],
    applied: &mut std::collections::BTreeMap<String, String>,
) -> Vec<ChangeRecord> {
    if events.is_empty() {
        return changes;
    }
    // Labels once per event, not once per event per change: a burst's
    // listing holds a thousand changes and a thousand events.
    let mut by_label: std::collections::HashMap<String, Vec<&Change>> = Default::default();
    for (e, t) in events {
        if let Some(l) = target_label(t) {
            by_label.entry(l).or_default().push(e);
        }
    }
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let Some(named) = by_label.get(&c.resource.to_lowercase()) else {
            out.push(c);
            continue;
        };
        for e in named {
            out.push(ChangeRecord::from_event(&c.resource, c.effect, e));
        }
        if c.effect == Effect::Removed {
            applied.remove(&c.resource);
        } else if let Some(newest) = named.iter().max_by_key(|e| e.at()) {
            applied.insert(c.resource.clone(), newest.time.clone());
        }
    }
    out
}

/// What a listing found changed since the previous snapshot, resource by
/// resource (a trigger's state counts): no event said so, so no author.
fn listing_changes(previous: &Manifest, now: &export::Encoded, at: &str) -> Vec<ChangeRecord> {
    use std::collections::BTreeMap;
    let index = |entries: &[manifest::Entry]| -> BTreeMap<_, (String, String)> {
        entries
            .iter()
            .map(|e| {
                (
                    crate::snapshot::manifest::key(e.kind, e.parent.as_deref(), &e.name),
                    (e.label(), e.hash.clone()),
                )
            })
            .collect()
    };
    let before = index(&previous.resources);
    let after = index(&now.entries);
    let state = |m: &BTreeMap<String, String>, label: &str| {
        label
            .strip_prefix("trigger:")
            .and_then(|n| m.get(n).cloned())
    };
    let mut out = Vec::new();
    for (k, (label, hash)) in &after {
        let effect = match before.get(k) {
            None => Effect::Created,
            Some((_, h)) if h != hash => Effect::Updated,
            Some(_)
                if state(&previous.trigger_states, label) != state(&now.trigger_states, label) =>
            {
                Effect::Updated
            }
            Some(_) => continue,
        };
        out.push(ChangeRecord::listed(label, effect, at));
    }
    for (k, (label, _)) in &before {
        if !after.contains_key(k) {
            out.push(ChangeRecord::listed(label, Effect::Removed, at));
        }
    }
    out
}

/// One backup run: what every step of it needs (capture seals through it too).
pub(super) struct Run<'a> {
    pub engine: &'a Engine,
    pub catalog: &'a crate::catalog::Catalog,
    pub fc: &'a FactoryConfig,
    pub started: time::OffsetDateTime,
    pub clock: super::Clock,
    pub exported_at: String,
    pub targets: Vec<String>,
}

/// A new snapshot, sealed and not yet stored.
pub(super) struct Sealed {
    id: String,
    created: String,
    payload: Vec<u8>,
    manifest: Vec<u8>,
    public: PublicManifest,
    root: String,
    changes: Vec<ChangeRecord>,
}

impl<'a> Run<'a> {
    /// A run that started at `started`, writing to every writable
    /// location. (Its run record is the job runner's: ops::job.)
    pub(super) fn new(
        engine: &'a Engine,
        catalog: &'a crate::catalog::Catalog,
        fc: &'a FactoryConfig,
        started: time::OffsetDateTime,
        clock: super::Clock,
    ) -> Self {
        Run {
            engine,
            catalog,
            fc,
            started,
            clock,
            exported_at: rfc3339(started),
            targets: engine.replicas.writable_names(),
        }
    }

    /// The newest snapshot that opens. A newer name that does not open
    /// (planted, damaged everywhere, sealed for a retired key) is passed
    /// over, and an unopenable latest does not stop backups: a fresh
    /// snapshot is written instead.
    async fn previous(&self) -> Option<read::Opened> {
        let (engine, fc) = (self.engine, self.fc);
        match read::open_latest(&engine.replicas, &engine.keys, &fc.name, (self.clock)()).await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::debug!(factory = %fc.name, error = %e, "no earlier snapshot opens; writing a new one");
                None
            }
        }
    }

    /// `opened` holds this very state: writes a checkpoint confirming it
    /// (completing its missing copies first) and returns the outcome; None
    /// when a new snapshot is needed after all.
    async fn confirm_unchanged(
        &self,
        opened: &read::Opened,
        root: &str,
    ) -> Result<Option<Outcome>, OpError> {
        let (engine, fc) = (self.engine, self.fc);
        let listed = read::list(&engine.replicas, Some(&fc.name))
            .await
            .0
            .into_iter()
            .find(|l| l.id == opened.id);
        let Some(latest) = listed else {
            return Ok(None);
        };
        // The state is already stored; if an earlier run left it short of a
        // copy, this run completes it before confirming it.
        if self.targets.iter().any(|t| !latest.locations.contains(t)) {
            heal(engine, self.catalog, &fc.name, &latest.id).await;
        }
        self.checkpoint(opened, root).await.map(Some)
    }

    async fn checkpoint(&self, opened: &read::Opened, root: &str) -> Result<Outcome, OpError> {
        let (fc, clock) = (self.fc, self.clock);
        let id = snapshot_id(clock(), rand_u32());
        let mut header = Header::new(
            ObjectType::Checkpoint,
            &fc.name,
            &opened.id,
            &rfc3339(clock()),
        );
        header.id = Some(id.clone());
        let body = serde_json::to_vec(&CheckpointBody {
            root: root.to_string(),
            exported_at: self.exported_at.clone(),
        })
        .expect("serialize");
        let sealed = object::seal(header, &body, &opened.dek);
        let key = layout::checkpoint(&fc.name, &id);
        let report = self
            .engine
            .replicas
            .put_new(&key, &sealed, &self.targets)
            .await;
        let failed = failures(&report);
        if report.written.is_empty() {
            return Err(OpError::failed(format!(
                "checkpoint for {} could not be written anywhere: {}",
                fc.name,
                read::describe(&failed)
            )));
        }
        queue_repairs(self.catalog, &failed, &[key], clock)?;
        self.catalog.put_checkpoint(&CheckpointRecord {
            factory: fc.name.clone(),
            id: id.clone(),
            snapshot: opened.id.clone(),
            created: rfc3339(clock()),
            locations: report.written.clone(),
        })?;
        Ok(Outcome::Unchanged {
            snapshot: opened.id.clone(),
            checkpoint: id,
            failed,
        })
    }

    /// Seals the payload and the manifest under a fresh data key wrapped
    /// under every configured key.
    pub(super) async fn seal(
        &self,
        exported: export::Encoded,
        root: String,
        extra: Extra,
    ) -> Result<Sealed, OpError> {
        let fc = self.fc;
        let id = snapshot_id(self.started, rand_u32());
        let created = rfc3339((self.clock)());
        let manifest_body = Manifest {
            source: Source {
                subscription: fc.subscription.clone(),
                resource_group: fc.resource_group.clone(),
                factory: fc.factory.clone(),
            },
            region: exported.region,
            exported_at: self.exported_at.clone(),
            root: root.clone(),
            resources: exported.entries.clone(),
            trigger_states: exported.trigger_states,
            runtimes: exported.runtimes,
            created: exported.created,
            not_offered: exported.not_offered,
            report: exported.report,
            changes: extra.changes.clone(),
            applied: extra.applied,
            awaiting: extra.awaiting,
            policy: Some(fc.origin.note()),
        };
        let dek = DataKey::generate();
        let wrapped = self.engine.keys.wrap_all(&dek, &fc.name, &id).await?;
        // Each line is compressed as it is written and freed: the payload's
        // plaintext is never held whole beside its sealed copy.
        let size = exported.lines.iter().map(|l| l.len() as u64).sum();
        let mut writer = object::SealWriter::new(size);
        for line in exported.lines {
            writer.write(&line.line());
        }
        let payload = writer.seal(
            Header::new(ObjectType::Payload, &fc.name, &id, &created),
            &dek,
        );
        let public = PublicManifest {
            resources: exported.entries.len(),
            counts: manifest::counts(&exported.entries),
            payload: ObjectRef {
                sha256: hex(&Sha256::digest(&payload)),
                size: payload.len() as u64,
            },
            keys: wrapped,
            tool: format!("adfdr {}", env!("CARGO_PKG_VERSION")),
        };
        let mut header = Header::new(ObjectType::Manifest, &fc.name, &id, &created);
        header.manifest = Some(public.clone());
        let manifest = object::seal(
            header,
            &serde_json::to_vec(&manifest_body).expect("serialize"),
            &dek,
        );
        Ok(Sealed {
            id,
            created,
            payload,
            manifest,
            public,
            root,
            changes: extra.changes,
        })
    }

    /// Stores a sealed snapshot (docs/FORMAT.md): the payload everywhere;
    /// manifests only once the payload reached min_copies locations, and
    /// only where it landed (a manifest is a promise that its payload is
    /// there). Short of that, nothing lists.
    pub(super) async fn commit(&self, mut sealed: Sealed) -> Result<Outcome, OpError> {
        let (engine, fc) = (self.engine, self.fc);
        let id = sealed.id.clone();
        let payload_key = layout::payload(&fc.name, &id);
        let manifest_key = layout::manifest(&fc.name, &id);
        let min = engine.config.min_copies();
        // Shared by every location written at once, not copied for each.
        let payload = azure_core::Bytes::from(std::mem::take(&mut sealed.payload));
        let first = engine
            .replicas
            .put_shared(&payload_key, payload, &self.targets)
            .await;
        let mut failed = failures(&first);
        if first.written.len() < min {
            return Err(OpError::failed(format!(
                "snapshot {id} of {} reached {} of the {min} locations needed to commit ({}); nothing was committed (the payload copies written are leftovers that `adfdr verify` lists as incomplete)",
                fc.name,
                first.written.len(),
                read::describe(&failed)
            )));
        }
        let second = engine
            .replicas
            .put_new(&manifest_key, &sealed.manifest, &first.written)
            .await;
        failed.extend(failures(&second));
        if second.written.len() < min {
            return Err(self
                .take_back(&id, &manifest_key, &second.written, &failed, min)
                .await);
        }
        queue_repairs(
            self.catalog,
            &failed,
            &[payload_key, manifest_key],
            self.clock,
        )?;
        let record = SnapshotRecord {
            factory: fc.name.clone(),
            id: id.clone(),
            created: sealed.created,
            resources: sealed.public.resources,
            counts: sealed.public.counts.clone(),
            payload_size: sealed.public.payload.size,
            manifest_size: sealed.manifest.len() as u64,
            keys: sealed.public.keys.iter().map(|k| k.describe()).collect(),
            locations: second.written.clone(),
            root: Some(sealed.root),
            exported_at: Some(self.exported_at.clone()),
        };
        self.catalog.put_snapshot(&record)?;
        Ok(Outcome::Created {
            record,
            failed,
            changes: sealed.changes,
        })
    }

    /// Takes back the manifests that did land short of min_copies, so the
    /// snapshot is not listed. Under WORM a delete may be refused: then the
    /// copies stay and `verify --repair` completes them.
    async fn take_back(
        &self,
        id: &str,
        manifest_key: &str,
        written: &[String],
        failed: &[(String, String)],
        min: usize,
    ) -> OpError {
        let mut kept = Vec::new();
        for name in written {
            if let Some(l) = self.engine.replicas.get(name)
                && let Err(e) = l.store.delete(manifest_key).await
            {
                kept.push(format!("{name}: {e}"));
            }
        }
        OpError::failed(format!(
            "snapshot {id} of {}: its manifest reached {} of the {min} locations needed to commit ({}); {}",
            self.fc.name,
            written.len(),
            read::describe(failed),
            if kept.is_empty() {
                "the manifests written were taken back: nothing was committed".to_string()
            } else {
                format!(
                    "manifests that could not be taken back stay listed ({}); `adfdr verify --repair` completes them",
                    kept.join("; ")
                )
            }
        ))
    }
}

/// Copies a snapshot's objects into writable locations that miss them.
async fn heal(engine: &Engine, catalog: &crate::catalog::Catalog, factory: &str, snapshot: &str) {
    use super::verify::{Repair, Scope, check};
    let scope = Scope {
        factory: Some(factory),
        snapshot: Some(snapshot),
        location: None,
        keys: Some(&engine.keys),
        read_data: false,
        now: super::system_clock(),
    };
    let repair = Repair {
        copy: true,
        delete_foreign: false,
    };
    let report = match check(&engine.replicas, &scope, repair, Some(catalog)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%factory, %snapshot, error = %e, "could not complete the copies of the unchanged snapshot");
            return;
        }
    };
    for r in &report.repaired {
        tracing::info!(location = %r.location, object = %r.key, from = %r.from, "copied a missing copy from a healthy location");
    }
    for (location, key, error) in &report.repair_failed {
        tracing::warn!(%location, object = %key, %error, "a missing copy could not be made yet");
    }
}

fn failures(report: &crate::store::PutReport) -> Vec<(String, String)> {
    report
        .failed
        .iter()
        .map(|(l, e)| (l.clone(), e.to_string()))
        .collect()
}

fn queue_repairs(
    catalog: &crate::catalog::Catalog,
    failed: &[(String, String)],
    keys: &[String],
    clock: super::Clock,
) -> Result<(), OpError> {
    for (location, reason) in failed {
        for key in keys {
            catalog.add_repair(&RepairRecord {
                location: location.clone(),
                key: key.clone(),
                reason: reason.clone(),
                since: rfc3339(clock()),
            })?;
        }
    }
    Ok(())
}

fn rand_u32() -> u32 {
    u32::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .expect("4 bytes"),
    )
}

impl Outcome {
    /// What the backup did, as the contract reports it.
    pub fn report(&self, factory: &str) -> super::contract::BackupReport {
        use super::contract::{BackupReport, BackupResult, Missed};
        let o = self;
        let missed = |failed: &[(String, String)]| {
            failed
                .iter()
                .map(|(l, e)| Missed {
                    location: l.clone(),
                    error: e.clone(),
                })
                .collect()
        };
        match o {
            Outcome::Created {
                record,
                failed,
                changes,
            } => BackupReport {
                factory: factory.to_string(),
                result: BackupResult::Created,
                snapshot: record.id.clone(),
                checkpoint: None,
                resources: Some(record.resources),
                locations: record.locations.clone(),
                missed: missed(failed),
                changed: changes.iter().map(|c| c.resource.clone()).collect(),
            },
            Outcome::Unchanged {
                snapshot,
                checkpoint,
                failed,
            } => BackupReport {
                factory: factory.to_string(),
                result: BackupResult::Unchanged,
                snapshot: snapshot.clone(),
                checkpoint: Some(checkpoint.clone()),
                resources: None,
                locations: Vec::new(),
                missed: missed(failed),
                changed: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing;

    /// Issue 25, item 9: a factory grown past what a backup may hold fails
    /// its backup, naming the limit, instead of exhausting the process's
    /// memory (and every agent that takes its lease over after a crash).
    #[tokio::test]
    async fn a_factory_past_the_definitions_limit_fails_its_backup_not_the_process() {
        let t = testing::engine(&[], "[backup]\nmax_definitions_mib = 1");
        for i in 0..8 {
            let name = format!("PL_Big_{i}");
            let text = "x".repeat(200 * 1024);
            t.arm.put(
                &format!("{}/pipelines/{name}", testing::FACTORY),
                serde_json::json!({"name": name, "properties": {"description": text, "activities": []}}),
            );
        }
        let fc = t.engine.config.factory("f").expect("f").clone();
        let e = backup(&t.engine, &fc, false, super::super::system_clock)
            .await
            .expect_err("past the limit");
        assert!(
            e.to_string().contains("more than 1 MiB of definitions"),
            "{e}"
        );
        assert!(
            read::list(&t.engine.replicas, Some("f")).await.0.is_empty(),
            "nothing written"
        );
    }
}
