//! One capture of one factory (issue 18): a window's ARM events turned into
//! a new complete snapshot. The previous snapshot is opened, each changed
//! resource read once (a delete too: only the service's 404 removes a
//! resource from a snapshot, never the queue's word alone), and the result
//! sealed and committed exactly as a backup's (ops::backup: payload first,
//! manifests at min_copies). The snapshot stands alone (no chain to the
//! previous one); its manifest records, per changed resource, the event, its
//! author, operation and correlation id. Whatever events cannot say (no
//! earlier snapshot opens, a kind adfdr does not know) is listed in full.

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use super::backup::{self, Extra, Run};
use super::{Engine, OpError, export, read};
use crate::config::FactoryConfig;
use crate::factory::FactoryApi;
use crate::model::restorability::{self, inspect};
use crate::model::{ResourceKind, canonicalize_owned};
use crate::plan::binding::{Relation, SourceId, relate};
use crate::plan::events::{
    Change, Effect, Folded, Target, awaiting, fold, late_authors, locate, records,
};
use crate::snapshot::Resource;
use crate::snapshot::manifest::{self, Manifest, Runtimes, key};

/// Beyond this many resources to read again, one listing of the factory
/// costs fewer ARM reads than a GET each (a big publish, a burst).
pub const LIST_ABOVE: usize = 100;

// At most one listing that events ask for per factory per `relist_every`
// (default ten minutes): anyone who can send to the queue can ask for one
// with a single planted message (an unknown kind, a name with `..`), and a
// listing of a big factory costs thousands of ARM reads and, when nothing
// changed, a checkpoint (undeletable under WORM). The rest wait for the
// period's end.

/// What a capture did.
#[derive(Debug)]
pub enum Captured {
    /// A new snapshot from the previous one and the changes.
    Sealed {
        outcome: backup::Outcome,
        stats: Stats,
    },
    /// The events changed nothing the previous snapshot does not hold
    /// (duplicates, writes of the same definition): nothing written.
    Unchanged { snapshot: String, stats: Stats },
    /// The factory itself was deleted: nothing to seal (a listing reports
    /// its source gone; its snapshots are kept).
    FactoryDeleted { stats: Stats },
    /// Events could not say it all: the factory was listed in full.
    Listed {
        outcome: backup::Outcome,
        why: String,
        stats: Stats,
    },
    /// Events asked for a listing within `relist_every` of the last one:
    /// nothing read; the window waits until `until` (its messages hidden).
    Deferred {
        until: time::OffsetDateTime,
        why: String,
        stats: Stats,
    },
}

/// Counts of one capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events about this factory (ignored actions included).
    pub events: usize,
    /// Duplicate deliveries dropped.
    pub duplicates: usize,
    /// Resources read again (one GET each).
    pub fetched: usize,
    /// Resources dropped on a delete event, or found gone when read.
    pub removed: usize,
    /// Resources whose definition or state differ from the previous snapshot.
    pub changed: usize,
    /// Delete events the service refuted (the resource or factory is there).
    pub refuted: usize,
}

/// Captures `changes` (all about `fc`'s factory; others are ignored) into
/// a new snapshot.
pub async fn capture(
    engine: &Engine,
    fc: &FactoryConfig,
    changes: Vec<Change>,
    clock: super::Clock,
) -> Result<Captured, OpError> {
    let started = clock();
    let base = fc.arm_path();
    let located: Vec<(Change, Target)> = changes
        .into_iter()
        .filter_map(|c| locate(&c, &base).map(|t| (c, t)))
        .collect();
    let events = located.len();
    let previous = match read::open_latest(&engine.replicas, &engine.keys, &fc.name, started).await
    {
        Ok(p) => p,
        Err(e) => {
            let why = format!("no earlier snapshot opens ({e})");
            return listed(engine, fc, clock, why, &located, events).await;
        }
    };
    // The namespace's history is another ARM id's (the config or discovery
    // moved the name): a listing decides, under backup's binding rules.
    if !previous
        .manifest
        .source_id()
        .same_id(&SourceId::new(&base, None))
    {
        let why = "the previous snapshot is of another ARM id".to_string();
        return listed(engine, fc, clock, why, &located, events).await;
    }
    let mut folded = fold(located, &previous.manifest.applied);
    let mut stats = Stats {
        events,
        duplicates: folded.duplicates,
        ..Default::default()
    };
    if folded.factory_deleted && !refute_factory_delete(engine, fc, &mut folded, &mut stats).await?
    {
        return Ok(Captured::FactoryDeleted { stats });
    }
    if !folded.needs_listing.is_empty() {
        let why = format!(
            "events name what adfdr cannot read alone ({})",
            folded.needs_listing.join(", ")
        );
        return limited(engine, fc, clock, why, &folded.changes, events).await;
    }
    let reads = folded.work.len() + usize::from(folded.factory);
    if reads > LIST_ABOVE {
        let why =
            format!("{reads} resources changed: one listing costs fewer ARM reads than a GET each");
        return limited(engine, fc, clock, why, &folded.changes, events).await;
    }
    let (resources, _) = read::payload(&engine.replicas, &previous).await?;
    let state = State::from(resources, &previous.manifest);
    let fetched = fetch(
        engine.arm.as_ref(),
        &base,
        &folded,
        engine.config.backup.concurrency,
    )
    .await
    .map_err(|e| OpError::failed(format!("capturing {}: {e}", fc.name)))?;
    stats.fetched = fetched.len();
    if recreated(&fetched, &base, &previous.manifest) {
        let why = "the factory was re-created".to_string();
        return listed(engine, fc, clock, why, &folded.changes, events).await;
    }
    let (next, effects) = state.apply(&folded, fetched);
    stats.removed = effects.values().filter(|e| **e == Effect::Removed).count();
    stats.changed = effects
        .values()
        .filter(|e| **e != Effect::Unchanged)
        .count();
    seal_window(
        engine, fc, clock, started, previous, &folded, next, &effects, stats,
    )
    .await
}

/// The state after a window, sealed (or found the same as the previous
/// snapshot's, with late authors recorded if any).
#[allow(clippy::too_many_arguments)]
async fn seal_window(
    engine: &Engine,
    fc: &FactoryConfig,
    clock: super::Clock,
    started: time::OffsetDateTime,
    previous: read::Opened,
    folded: &Folded,
    next: State,
    effects: &BTreeMap<(ResourceKind, String, String), Effect>,
    stats: Stats,
) -> Result<Captured, OpError> {
    let (encoded, mut applied) = next.encode(&previous.manifest);
    let root = manifest::root(&encoded.entries, &encoded.trigger_states, &encoded.runtimes);
    let records = if root == previous.manifest.root {
        // The state is stored already; but a listing may have sealed these
        // changes before their events came (a burst): then the events
        // name the authors the listing could not, and that is recorded.
        let late = late_authors(&folded.changes, previous.manifest.before(), &mut applied);
        if late.is_empty() {
            return Ok(Captured::Unchanged {
                snapshot: previous.id,
                stats,
            });
        }
        late
    } else {
        records(folded, effects, previous.manifest.before(), &mut applied)
    };
    let catalog = engine.catalog()?;
    let run = Run::new(engine, &catalog, fc, started, clock);
    let extra = Extra {
        awaiting: awaiting(previous.manifest.before(), &records, started),
        changes: records,
        applied,
    };
    let sealed = run.seal(encoded, root, extra).await?;
    Ok(Captured::Sealed {
        outcome: run.commit(sealed).await?,
        stats,
    })
}

/// The queue's word is not enough (issue 25): one planted "factory
/// deleted" event would drop every real change of its window. The
/// service's 404 says the factory is gone (false: nothing to seal);
/// otherwise the delete is refuted and the window goes on, the factory read
/// again (true).
async fn refute_factory_delete(
    engine: &Engine,
    fc: &FactoryConfig,
    folded: &mut Folded,
    stats: &mut Stats,
) -> Result<bool, OpError> {
    match engine.arm.get(&fc.arm_path()).await {
        Err(e) if e.status() == Some(404) => Ok(false),
        Ok(_) => {
            tracing::warn!(factory = %fc.name, "an event says the factory was deleted, but the service still has it (a planted or stale event): its window is sealed as usual");
            folded.factory_deleted = false;
            folded.factory = true;
            stats.refuted += 1;
            Ok(true)
        }
        Err(e) => Err(OpError::failed(format!(
            "capturing {}: checking an event that says the factory was deleted: {e}",
            fc.name
        ))),
    }
}

/// The factory read again was created anew (deleted and re-created at the
/// same id within the window): a listing decides, under backup's binding.
fn recreated(fetched: &[Fetched], base: &str, previous: &Manifest) -> bool {
    fetched
        .iter()
        .find_map(|f| f.factory.as_ref())
        .is_some_and(|(_, c)| {
            let live = SourceId::new(base, c.as_deref());
            !matches!(relate(&previous.source_id(), &live), Relation::Same)
        })
}

/// A window sealed by listing the factory in full (its windows kept
/// failing: what the events name may be what fails).
pub async fn capture_listed(
    engine: &Engine,
    fc: &FactoryConfig,
    changes: Vec<Change>,
    why: String,
    clock: super::Clock,
) -> Result<Captured, OpError> {
    let base = fc.arm_path();
    let located: Vec<(Change, Target)> = changes
        .into_iter()
        .filter_map(|c| locate(&c, &base).map(|t| (c, t)))
        .collect();
    let events = located.len();
    limited(engine, fc, clock, why, &located, events).await
}

/// A listing events asked for, at most one per factory per `relist_every`
/// (counted in the catalog as `event-listing` runs): a later one is
/// deferred to the period's end.
async fn limited(
    engine: &Engine,
    fc: &FactoryConfig,
    clock: super::Clock,
    why: String,
    changes: &[(Change, Target)],
    events: usize,
) -> Result<Captured, OpError> {
    let catalog = engine.catalog()?;
    let now = clock();
    let last = catalog
        .last_run(EVENT_LISTING, &fc.name)?
        .and_then(|r| crate::snapshot::parse_time(&r.started));
    let every = time::Duration::try_from(fc.relist_period()).unwrap_or(time::Duration::minutes(10));
    if let Some(until) = deferred_until(last, now, every) {
        tracing::warn!(factory = %fc.name, %why, until = %crate::snapshot::rfc3339(until), "events ask for another listing within relist_every of the last: deferred");
        return Ok(Captured::Deferred {
            until,
            why,
            stats: Stats {
                events,
                ..Default::default()
            },
        });
    }
    let result = listed(engine, fc, clock, why, changes, events).await;
    catalog.record_run(&crate::catalog::RunRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: EVENT_LISTING.into(),
        factory: fc.name.clone(),
        started: crate::snapshot::rfc3339(now),
        finished: crate::snapshot::rfc3339(clock()),
        outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
        detail: serde_json::Value::Null,
    })?;
    result
}

/// The catalog's run kind for listings events asked for.
pub const EVENT_LISTING: &str = "event-listing";

/// When a listing events ask for at `now` may run, if not now: the last
/// one (`last`) plus `every` (a `last` in the future, a clock that jumped
/// back, allows one now).
pub fn deferred_until(
    last: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
    every: time::Duration,
) -> Option<time::OffsetDateTime> {
    let until = last? + every;
    (until > now && last? <= now).then_some(until)
}

/// The factory listed in full (a backup): each change it finds that an
/// event names is recorded with that event's author.
async fn listed(
    engine: &Engine,
    fc: &FactoryConfig,
    clock: super::Clock,
    why: String,
    changes: &[(Change, Target)],
    events: usize,
) -> Result<Captured, OpError> {
    tracing::info!(factory = %fc.name, %why, "capture lists the factory in full");
    let outcome = backup::backup_with(engine, fc, false, clock, changes).await?;
    Ok(Captured::Listed {
        outcome,
        why,
        stats: Stats {
            events,
            ..Default::default()
        },
    })
}

/// One resource as read again: its canonical resource and runtime state;
/// None when it is gone.
struct Fetched {
    key: (ResourceKind, String, String),
    resource: Option<Resource>,
    state: Option<String>,
    /// The factory's `location` and `createTime`, when this is the factory.
    factory: Option<(Option<String>, Option<String>)>,
}

/// Reads each resource the events name (none for deletes), bounded.
async fn fetch(
    arm: &dyn FactoryApi,
    base: &str,
    folded: &Folded,
    concurrency: usize,
) -> Result<Vec<Fetched>, crate::factory::ArmError> {
    // Deletes are read too: the queue is not trusted to remove a resource
    // from a snapshot (a planted or stale delete event); the service's 404
    // is. A delete costs one GET, as a write does.
    let mut wanted: Vec<(ResourceKind, Option<String>, String)> = folded
        .work
        .iter()
        .map(|w| (w.kind, w.parent.clone(), w.name.clone()))
        .collect();
    if folded.factory {
        wanted.push((ResourceKind::Factory, None, String::new()));
    }
    stream::iter(wanted)
        .map(|(kind, parent, name)| async move {
            let path = path(base, kind, parent.as_deref(), &name);
            let k = key(kind, parent.as_deref(), &name);
            let answer = match arm.get(&path).await {
                Ok(v) => v,
                Err(e) if e.status() == Some(404) => {
                    return Ok(Fetched {
                        key: k,
                        resource: None,
                        state: None,
                        factory: None,
                    });
                }
                Err(e) => return Err(e),
            };
            let text = |p: &str| {
                answer
                    .pointer(p)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let mut state = text(crate::model::raw::state_pointer(kind));
            let factory = (kind == ResourceKind::Factory)
                .then(|| (text("/location"), text("/properties/createTime")));
            let name = text("/name").unwrap_or(name);
            if kind == ResourceKind::ChangeDataCapture {
                let status = arm
                    .get(&format!(
                        "{}/status",
                        path.split('?').next().unwrap_or(&path)
                    ))
                    .await?;
                state = Some(status.as_str().unwrap_or("Unknown").to_string());
            }
            let k = if kind == ResourceKind::Factory {
                key(kind, None, &name)
            } else {
                k
            };
            Ok(Fetched {
                key: k,
                resource: Some(Resource {
                    kind,
                    parent,
                    name,
                    definition: canonicalize_owned(kind, answer),
                }),
                state,
                factory,
            })
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// Where a resource is read.
fn path(base: &str, kind: ResourceKind, parent: Option<&str>, name: &str) -> String {
    let name = export::encode(name);
    match (kind, parent, kind.extension()) {
        (ResourceKind::Factory, _, _) => base.to_string(),
        (ResourceKind::ManagedPrivateEndpoint, Some(vnet), _) => format!(
            "{base}/managedVirtualNetworks/{}/managedPrivateEndpoints/{name}",
            export::encode(vnet)
        ),
        (_, _, Some((provider, version))) => {
            format!("{base}/{provider}/{name}?api-version={version}")
        }
        _ => format!("{base}/{}/{name}", kind.segment()),
    }
}

/// The factory as the previous snapshot holds it, being brought up to date.
struct State {
    resources: BTreeMap<(ResourceKind, String, String), Resource>,
    triggers: BTreeMap<String, String>,
    runtimes: Runtimes,
    region: Option<String>,
    created: Option<String>,
}

impl State {
    fn from(resources: Vec<Resource>, m: &Manifest) -> State {
        State {
            resources: resources.into_iter().map(|r| (r.key(), r)).collect(),
            triggers: m.trigger_states.clone(),
            runtimes: m.runtimes.clone(),
            region: m.region.clone(),
            created: m.created.clone(),
        }
    }

    /// The state after the removals and the answers; each touched
    /// resource's effect (by label).
    fn apply(
        mut self,
        folded: &Folded,
        fetched: Vec<Fetched>,
    ) -> (State, BTreeMap<(ResourceKind, String, String), Effect>) {
        let mut effects = BTreeMap::new();
        let factory_key = self
            .resources
            .keys()
            .find(|k| k.0 == ResourceKind::Factory)
            .cloned();
        let removes: std::collections::HashSet<_> = folded
            .work
            .iter()
            .filter(|w| w.remove)
            .map(|w| key(w.kind, w.parent.as_deref(), &w.name))
            .collect();
        for f in fetched {
            if f.resource.is_some() && removes.contains(&f.key) {
                tracing::warn!(resource = %f.key.2, "a delete event names a resource the service still has: kept as the service answers it (a stale or planted event)");
            }
            let k = match (&f.factory, &factory_key) {
                (Some(_), Some(old)) => old.clone(),
                _ => f.key.clone(),
            };
            let Some(r) = f.resource else {
                let effect = match self.resources.remove(&k) {
                    Some(old) => {
                        self.forget_state(&old);
                        Effect::Removed
                    }
                    None => Effect::Unchanged,
                };
                effects.insert(k, effect);
                continue;
            };
            if let Some((region, created)) = f.factory {
                self.region = region.or(self.region.take());
                self.created = created.or(self.created.take());
            }
            let old_state = self.state_of(&r);
            self.set_state(&r, f.state);
            let effect = match self.resources.remove(&k) {
                None => Effect::Created,
                Some(old)
                    if manifest::encode_one(&old).entry.hash
                        != manifest::encode_one(&r).entry.hash =>
                {
                    Effect::Updated
                }
                Some(_) if old_state != self.state_of(&r) => Effect::Updated,
                Some(_) => Effect::Unchanged,
            };
            effects.insert(r.key(), effect);
            self.resources.insert(r.key(), r);
        }
        (self, effects)
    }

    fn state_of(&self, r: &Resource) -> Option<String> {
        match r.kind {
            ResourceKind::Trigger => self.triggers.get(&r.name).cloned(),
            ResourceKind::IntegrationRuntime => {
                self.runtimes.integration_runtimes.get(&r.name).cloned()
            }
            ResourceKind::ChangeDataCapture => {
                self.runtimes.change_data_captures.get(&r.name).cloned()
            }
            _ => None,
        }
    }

    fn states(&mut self, kind: ResourceKind) -> Option<&mut BTreeMap<String, String>> {
        match kind {
            ResourceKind::Trigger => Some(&mut self.triggers),
            ResourceKind::IntegrationRuntime => Some(&mut self.runtimes.integration_runtimes),
            ResourceKind::ChangeDataCapture => Some(&mut self.runtimes.change_data_captures),
            _ => None,
        }
    }

    fn set_state(&mut self, r: &Resource, state: Option<String>) {
        if let Some(states) = self.states(r.kind) {
            // Names differ in case only when the service renamed: keep one.
            states.retain(|n, _| !n.eq_ignore_ascii_case(&r.name));
            if let Some(s) = state {
                states.insert(r.name.clone(), s);
            }
        }
    }

    fn forget_state(&mut self, r: &Resource) {
        self.set_state(r, None);
    }

    /// The payload, entries and report of this state, as a backup would
    /// have encoded them; the applied event times carried forward for the
    /// resources still present.
    fn encode(self, previous: &Manifest) -> (export::Encoded, BTreeMap<String, String>) {
        let mut resources: Vec<Resource> = self.resources.into_values().collect();
        let present: HashSet<_> = resources.iter().map(Resource::key).collect();
        let partials = resources.iter().map(inspect).collect();
        let report = restorability::resolve(partials, &present);
        let (lines, entries) = manifest::encode_lines(&mut resources);
        let labels: HashSet<String> = entries.iter().map(|e| e.label().to_lowercase()).collect();
        let applied = previous
            .applied
            .iter()
            .filter(|(l, _)| labels.contains(&l.to_lowercase()))
            .map(|(l, t)| (l.clone(), t.clone()))
            .collect();
        let encoded = export::Encoded {
            lines,
            entries,
            report,
            trigger_states: self.triggers,
            runtimes: self.runtimes,
            region: self.region,
            created: self.created,
            not_offered: previous.not_offered.clone(),
        };
        (encoded, applied)
    }
}

impl Captured {
    /// What the capture did, as the contract reports it.
    pub fn report(&self, factory: &str) -> super::contract::CaptureReport {
        use super::contract::{CaptureReport, CaptureResult};
        let c = self;
        let snapshot_of = |o: &super::backup::Outcome| match o {
            super::backup::Outcome::Created { record, .. } => record.id.clone(),
            super::backup::Outcome::Unchanged { snapshot, .. } => snapshot.clone(),
        };
        let (result, snapshot, stats, why) = match c {
            Captured::Sealed { outcome, stats } => (
                CaptureResult::Sealed,
                Some(snapshot_of(outcome)),
                stats,
                None,
            ),
            Captured::Unchanged { snapshot, stats } => (
                CaptureResult::Unchanged,
                Some(snapshot.clone()),
                stats,
                None,
            ),
            Captured::Listed {
                outcome,
                why,
                stats,
            } => (
                CaptureResult::Listed,
                Some(snapshot_of(outcome)),
                stats,
                Some(why.clone()),
            ),
            Captured::FactoryDeleted { stats } => {
                (CaptureResult::FactoryDeleted, None, stats, None)
            }
            Captured::Deferred { why, stats, .. } => {
                (CaptureResult::Deferred, None, stats, Some(why.clone()))
            }
        };
        let until = match c {
            Captured::Deferred { until, .. } => Some(crate::snapshot::rfc3339(*until)),
            _ => None,
        };
        CaptureReport {
            factory: factory.to_string(),
            result,
            snapshot,
            events: stats.events,
            duplicates: stats.duplicates,
            fetched: stats.fetched,
            removed: stats.removed,
            changed: stats.changed,
            why,
            until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{self, FACTORY};

    fn clock() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn factory(t: &testing::TestEngine) -> FactoryConfig {
        t.engine.config.factory("f").expect("f").clone()
    }

    /// Issue 25, item 3: one planted "factory deleted" event in a window
    /// used to drop every real change of it; the service is asked, the
    /// factory is there, and the window is sealed with the real change.
    #[tokio::test]
    async fn a_planted_factory_delete_drops_no_real_change() {
        let t = testing::engine(&["p1"], "");
        let fc = factory(&t);
        backup::backup(&t.engine, &fc, false, clock)
            .await
            .expect("first backup");
        testing::put_pipeline(&t.arm, "p2", "Wait");
        let now = crate::snapshot::rfc3339(clock());
        let changes = vec![
            testing::event("e1", &format!("{FACTORY}/pipelines/p2"), "write", &now),
            testing::event("e2", FACTORY, "delete", &now),
        ];
        let captured = capture(&t.engine, &fc, changes, clock)
            .await
            .expect("capture");
        let Captured::Sealed { stats, .. } = captured else {
            panic!("the real change was not sealed: {captured:?}");
        };
        assert_eq!(stats.refuted, 1, "{stats:?}");
        let latest = read::open_latest(&t.engine.replicas, &t.engine.keys, "f", clock())
            .await
            .expect("latest");
        assert!(
            latest.manifest.resources.iter().any(|r| r.name == "p2"),
            "{:?}",
            latest.manifest.resources
        );
        // A factory that is really gone: nothing to seal, said so.
        let gone = testing::engine(&["p1"], "");
        let fc = factory(&gone);
        backup::backup(&gone.engine, &fc, false, clock)
            .await
            .expect("backup");
        gone.arm.remove(FACTORY);
        let changes = vec![testing::event("e3", FACTORY, "delete", &now)];
        let captured = capture(&gone.engine, &fc, changes, clock)
            .await
            .expect("capture");
        assert!(
            matches!(captured, Captured::FactoryDeleted { .. }),
            "{captured:?}"
        );
    }

    /// Issue 25, item 7: a planted message naming what only a listing can
    /// read forced a full listing per window; one runs per ten minutes, the
    /// next is deferred (nothing read, nothing written).
    #[tokio::test]
    async fn events_get_one_listing_per_period_the_rest_wait() {
        let t = testing::engine(&["p1"], "");
        let fc = factory(&t);
        backup::backup(&t.engine, &fc, false, clock)
            .await
            .expect("first backup");
        let now = crate::snapshot::rfc3339(clock());
        let odd = format!("{FACTORY}/pipelines/..%2F..%2Fetc");
        let first = capture(
            &t.engine,
            &fc,
            vec![testing::event("a", &odd, "write", &now)],
            clock,
        )
        .await
        .expect("capture");
        assert!(matches!(first, Captured::Listed { .. }), "{first:?}");
        let reads = t.arm.requests().len();
        let second = capture(
            &t.engine,
            &fc,
            vec![testing::event("b", &odd, "write", &now)],
            clock,
        )
        .await
        .expect("capture");
        let Captured::Deferred { until, .. } = second else {
            panic!("a second listing within ten minutes: {second:?}");
        };
        assert!(until > clock() + time::Duration::minutes(9), "{until}");
        assert_eq!(
            t.arm.requests().len(),
            reads,
            "a deferred window reads nothing"
        );
        // The rule itself, with time as data.
        let (t0, every) = (clock(), time::Duration::minutes(10));
        assert_eq!(deferred_until(None, t0, every), None);
        assert_eq!(deferred_until(Some(t0 - every), t0, every), None);
        assert_eq!(
            deferred_until(Some(t0 - time::Duration::minutes(4)), t0, every),
            Some(t0 + time::Duration::minutes(6))
        );
        assert_eq!(
            deferred_until(Some(t0 + time::Duration::hours(1)), t0, every),
            None,
            "a last run from the future allows one"
        );
    }
}
