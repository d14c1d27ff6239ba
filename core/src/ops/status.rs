//! `adfdr status` as a use case: per factory, when its state was last
//! confirmed in the store, the RPO against its target, its last drill, its
//! jobs and lease (from the agent when it runs, else from the catalog), and
//! whether the newest snapshot the catalog saw committed still exists (the
//! store is the truth: a rollback shows here).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::contract::{JobStatus, StatusReply};
use super::{Engine, OpError, read};
use crate::catalog::DrillRecord;
use crate::snapshot::{parse_time, rfc3339, snapshot_time};

/// One factory's line of `adfdr status`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FactoryRow {
    pub factory: String,
    /// When its state was last confirmed in the store (RFC 3339).
    pub last_confirmed: Option<String>,
    pub rpo_seconds: Option<i64>,
    pub rpo_target_seconds: Option<i64>,
    /// The RPO is over its target (or the factory was never backed up).
    pub rpo_missed: bool,
    pub last_drill: Option<DrillRecord>,
    /// Its jobs in the agent (none without an agent).
    pub jobs: Vec<JobStatus>,
    /// Who holds its lease, when the agent knows.
    pub lease: Option<String>,
    /// The newest snapshot the catalog saw committed, when no location
    /// holds it any more (deleted behind adfdr's back).
    pub vanished: Option<String>,
}

impl FactoryRow {
    /// Needs attention: a missed RPO or a vanished snapshot.
    pub fn failed(&self) -> bool {
        self.rpo_missed || self.vanished.is_some()
    }
}

/// Every configured factory's row. `agent` is the running agent's answer
/// (it owns the catalog then); without it the catalog is read here.
pub async fn report(
    engine: &Engine,
    agent: Option<&StatusReply>,
    now: time::OffsetDateTime,
) -> Result<Vec<FactoryRow>, OpError> {
    let catalog = match agent {
        Some(_) => None,
        None => Some(engine.catalog()?),
    };
    let mut rows = Vec::new();
    for f in engine.config.factories.iter().map(|f| f.get_ref()) {
        let from_agent = agent.and_then(|a| a.factories.iter().find(|x| x.name == f.name));
        let mut confirmed = match (&catalog, from_agent) {
            (_, Some(a)) => a.last_confirmed.as_deref().and_then(parse_time),
            (Some(c), None) => c.last_confirmed(&f.name)?,
            (None, None) => None,
        };
        let known = match (&catalog, from_agent) {
            (_, Some(a)) => a.newest_snapshot.clone(),
            (Some(c), None) => c.latest_snapshot(&f.name)?.map(|r| r.id),
            (None, None) => None,
        };
        let last_drill = match (&catalog, from_agent) {
            (_, Some(a)) => a.last_drill.clone(),
            (Some(c), None) => c.drills(Some(&f.name))?.pop(),
            (None, None) => None,
        };
        let vanished = vanished(engine, &f.name, known).await;
        if vanished.is_some() {
            // The RPO counts from what the store still holds.
            let (listed, _) = read::list(&engine.replicas, Some(&f.name)).await;
            confirmed = listed.last().and_then(|l| snapshot_time(&l.id));
        }
        let rpo = confirmed.map(|t| (now - t).whole_seconds());
        let target = f.rpo_target.as_ref().map(|t| t.0.as_secs() as i64);
        rows.push(FactoryRow {
            factory: f.name.clone(),
            last_confirmed: confirmed.map(rfc3339),
            rpo_seconds: rpo,
            rpo_target_seconds: target,
            rpo_missed: match (rpo, target) {
                (Some(r), Some(t)) => r > t,
                (None, _) => agent.is_none(),
                _ => false,
            },
            last_drill,
            jobs: agent
                .map(|a| {
                    a.jobs
                        .iter()
                        .filter(|j| j.factory == f.name)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            lease: from_agent.and_then(|a| a.lease.clone()),
            vanished,
        });
    }
    Ok(rows)
}

async fn vanished(engine: &Engine, factory: &str, known: Option<String>) -> Option<String> {
    let known = known?;
    let (listed, failed) = read::list(&engine.replicas, Some(factory)).await;
    (failed.is_empty() && read::vanished_newest(&known, &listed)).then_some(known)
}

/// The agent's view of locations (none without an agent).
pub fn locations(agent: Option<&StatusReply>) -> BTreeMap<String, bool> {
    agent.map(|a| a.locations.clone()).unwrap_or_default()
}

/// One factory of the fleet, from the store (every agent's work is there).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FleetRow {
    pub factory: String,
    /// `SUBSCRIPTION/RESOURCE_GROUP/FACTORY`, when configured or discovered.
    pub source: Option<String>,
    pub subscription: Option<String>,
    /// The discovery policy that covers it (None: a `[[factory]]` block).
    pub policy: Option<String>,
    /// When its state was last confirmed in the store (snapshot or checkpoint).
    pub last_confirmed: Option<String>,
    pub rpo_seconds: Option<i64>,
    pub rpo_target_seconds: Option<i64>,
    /// When the newest drill that passed started.
    pub last_proven: Option<String>,
    pub last_drill_verdict: Option<String>,
    /// Snapshots in the store, neither configured nor found any more.
    pub source_gone: bool,
    /// Found, but left out by a tag on the factory itself (`NAME=VALUE`):
    /// its owner switched its backups off.
    pub excluded_by_tag: Option<String>,
    /// What needs a person; empty when all is well.
    pub attention: Vec<String>,
}

/// `adfdr status --fleet`: every factory configured, discovered or in the
/// store, and which need attention.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Fleet {
    pub factories: Vec<FleetRow>,
    pub needs_attention: usize,
    /// Why discovery could not run, when it could not (the rest still shows).
    pub discovery_error: Option<String>,
}

/// Without an RPO target, a factory is flagged when its state is older than this.
pub const STALE_WITHOUT_TARGET: i64 = 24 * 3600;

/// What the store holds: names with a snapshot that opens (a name with
/// only planted or damaged objects is no factory), and when each one's
/// state was last confirmed by objects that open, not by names alone.
async fn confirmations(
    engine: &Engine,
    stored: &BTreeMap<String, crate::discovery::Stored>,
    now: time::OffsetDateTime,
) -> BTreeMap<String, time::OffsetDateTime> {
    use crate::store::layout::{self, Parsed};
    let mut checkpoints: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, result) in engine.replicas.list_all(layout::ROOT).await {
        let Ok(objects) = result else { continue };
        for o in objects {
            if let Some(Parsed::Checkpoint { factory, id }) = layout::parse(&o.key) {
                checkpoints.entry(factory).or_default().push(id);
            }
        }
    }
    let mut confirmed = BTreeMap::new();
    for name in stored.keys() {
        if let Ok(opened) = read::open_latest(&engine.replicas, &engine.keys, name, now).await {
            let ids = checkpoints.get(name).map(Vec::as_slice).unwrap_or_default();
            if let Some(t) = read::confirmed_at(&engine.replicas, &opened, ids, now).await {
                confirmed.insert(name.clone(), t);
            }
        }
    }
    confirmed
}

/// Reads the store (the truth, whichever agent wrote it), the configured
/// factories and, with `[[discover]]`, discovery's coverage.
pub async fn fleet(engine: &Engine, now: time::OffsetDateTime) -> Result<Fleet, OpError> {
    let mut configured: BTreeMap<String, (crate::config::FactoryConfig, Option<String>)> = engine
        .config
        .factories
        .iter()
        .map(|f| (f.get_ref().name.clone(), (f.get_ref().clone(), None)))
        .collect();
    let stored = super::discover::stored(engine).await;
    let confirmed = confirmations(engine, &stored, now).await;
    // A stored factory neither configured nor discovered is gone at the
    // source (`known` is None below), unless a tag on it left it out.
    let mut discovery_error = None;
    let mut excluded: BTreeMap<String, String> = BTreeMap::new();
    if !engine.config.discover.is_empty() {
        match super::discover::discover_against(engine, &engine.config, &stored).await {
            Ok(d) => {
                for c in d.coverage.covered {
                    configured.insert(c.name.clone(), (c.factory, Some(c.policy)));
                }
                for e in d.coverage.excluded {
                    if let (Some(ns), Some(tag)) = (e.namespace, e.by_tag) {
                        excluded.insert(ns, tag);
                    }
                }
            }
            Err(e) => discovery_error = Some(e.to_string()),
        }
    }
    let drills = super::catalog::drill_history(&engine.replicas, None, None, now).await?;
    let mut names: Vec<String> = configured.keys().cloned().collect();
    names.extend(
        stored
            .keys()
            .filter(|f| !configured.contains_key(*f))
            .cloned(),
    );
    names.sort();
    names.dedup();
    let mut rows = Vec::new();
    for name in names {
        let known = configured.get(&name);
        let last = confirmed.get(&name).copied();
        let rpo = last.map(|t| (now - t).whole_seconds());
        let target = known
            .and_then(|(f, _)| f.rpo_target)
            .map(|t| t.0.as_secs() as i64);
        let mine: Vec<&DrillRecord> = drills.iter().filter(|d| d.factory == name).collect();
        let proven = mine
            .iter()
            .filter(|d| d.verdict == "passed")
            .map(|d| d.started.clone())
            .max();
        let by_tag = excluded.get(&name).cloned();
        let source_gone = known.is_none() && by_tag.is_none();
        let attention = attention(
            rpo,
            target,
            proven.is_some() || known.is_none(),
            by_tag.as_deref(),
            source_gone,
        );
        rows.push(FleetRow {
            source: known.map(|(f, _)| f.path_text()),
            subscription: known.map(|(f, _)| f.subscription.clone()),
            policy: known.and_then(|(_, p)| p.clone()),
            last_confirmed: last.map(rfc3339),
            rpo_seconds: rpo,
            rpo_target_seconds: target,
            last_proven: proven,
            last_drill_verdict: mine.last().map(|d| d.verdict.clone()),
            source_gone,
            excluded_by_tag: by_tag,
            attention,
            factory: name,
        });
    }
    let needs_attention = rows.iter().filter(|r| !r.attention.is_empty()).count();
    Ok(Fleet {
        factories: rows,
        needs_attention,
        discovery_error,
    })
}

/// What needs a person's attention about one factory: no backup or an RPO
/// breach, no drill proving it, excluded by a tag, its source gone.
fn attention(
    rpo: Option<i64>,
    target: Option<i64>,
    proven_or_unknown: bool,
    by_tag: Option<&str>,
    source_gone: bool,
) -> Vec<String> {
    let mut attention = Vec::new();
    match (rpo, target) {
        (None, _) => attention.push("no backup yet".to_string()),
        (Some(r), Some(t)) if r > t => {
            attention.push(format!("RPO breach: {}s over a {}s target", r, t))
        }
        (Some(r), None) if r > STALE_WITHOUT_TARGET => {
            attention.push(format!("no recent backup: the last is {} h old", r / 3600))
        }
        _ => {}
    }
    if !proven_or_unknown {
        attention.push("not proven by a drill".to_string());
    }
    if let Some(tag) = by_tag {
        attention.push(format!(
            "excluded by tag {tag} on the factory: no longer backed up; snapshots kept"
        ));
    }
    if source_gone {
        attention
            .push("source gone: snapshots kept; restore it or remove them on purpose".to_string());
    }
    attention
}
