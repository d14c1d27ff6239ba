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
