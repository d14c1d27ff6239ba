//! `adfdr restore` and the restore inside a drill: one use case in two
//! steps. `prepare` resolves the snapshot (`latest` is the newest that
//! opens), holds it so no prune deletes it, reads it (first copy that
//! counts) and the target, and plans (`plan::restore`); the front end shows
//! the plan and asks. `execute` carries it out (apply.rs), reads everything
//! back (readback.rs), judges, writes the typed audit record and releases
//! the hold. A declined plan is `release`d.
//!
//! Works from the store and a key alone (incident mode): nothing here needs
//! a config file or the catalog.

mod apply;
mod readback;
pub mod window;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

pub use apply::{
    Applied, ENDPOINT_LIMIT, EndpointState, Failure, Progress, RUNTIME_LIMIT, RuntimeStarted, Said,
    apply,
};
pub use readback::{Mismatch, TargetStateTriggers, started_after, verify};

use super::contract::{AuditAction, AuditEvent, RestoreAudit, RestoreResult};
use super::export::{self, ExportError};
use super::read::{self, Opened};
use super::{Engine, OpError};
use crate::config::FactoryConfig;
use crate::factory::FactoryApi;
use crate::model::ResourceKind;
use crate::plan::overrides::Overrides;
use crate::plan::restore::{Plan, PlanOptions, TargetState, plan};

/// Where a restore writes: a factory's address (one type for every
/// factory address, model::names::FactoryId).
pub type TargetFactory = crate::model::names::FactoryId;

/// The target as export reads it (its name is its namespace).
fn target_config(t: &TargetFactory) -> FactoryConfig {
    FactoryConfig::adhoc(&t.factory, &t.subscription, &t.resource_group, &t.factory)
}

/// Wall time per phase.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Timings {
    pub fetch_ms: u64,
    pub decrypt_ms: u64,
    pub plan_ms: u64,
    pub apply_ms: u64,
    /// From the start of the apply until the last runtime it started was
    /// running (0: none to start); overlaps the apply.
    pub runtimes_ms: u64,
    pub verify_ms: u64,
}

/// What to restore, where, and how.
pub struct Request {
    /// A snapshot id, or `latest` (with `factory`).
    pub snapshot: String,
    /// The factory's name in the store.
    pub factory: Option<String>,
    pub target: TargetFactory,
    pub overrides: Option<Overrides>,
    pub options: PlanOptions,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// The newest snapshot of the factory a catalog saw committed: with
    /// `latest`, a newer one no location holds is reported (a rollback).
    pub known_newest: Option<String>,
    /// Who restores, for the hold ("restore by alice@host").
    pub by: String,
    /// Where the audit trail goes; None: no record (a drill keeps its own).
    pub audit_dir: Option<PathBuf>,
    /// What the operator asked for, as the audit record keeps it.
    pub asked: Asked,
}

/// The selection and override file as given, for the audit record.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub overrides: Option<String>,
}

/// A snapshot read and a plan made against the target's current state.
pub struct Prepared {
    pub opened: Opened,
    /// Where the payload came from, and the locations skipped on the way.
    pub payload_location: String,
    pub skipped_locations: Vec<(String, String)>,
    pub target: TargetFactory,
    pub target_existed: bool,
    /// The target's trigger states before the restore.
    pub target_triggers: TargetStateTriggers,
    pub plan: Plan,
    pub timings: Timings,
    /// With `latest`: a newer snapshot the catalog saw committed that no
    /// location holds (deleted behind adfdr's back).
    pub vanished: Option<String>,
    /// With `latest`: the snapshot before it is of another factory (another
    /// ARM id and createTime, or the same id re-created), said so that
    /// `latest` never silently takes a different source.
    pub other_source: Option<String>,
    /// The hold objects written (location, key), released by `execute`.
    held: Vec<(String, String)>,
    request: Request,
    started: time::OffsetDateTime,
    clock: Instant,
}

/// Reads the target factory; a factory that does not exist is an empty state.
pub async fn read_target(
    arm: &dyn FactoryApi,
    target: &TargetFactory,
    identity: &str,
    concurrency: usize,
) -> Result<TargetState, OpError> {
    match export::export(arm, &target_config(target), identity, concurrency).await {
        Ok(exported) => {
            let mut resources = exported.resources;
            let factory = resources
                .iter()
                .position(|r| r.kind == ResourceKind::Factory)
                .map(|i| resources.remove(i).definition);
            Ok(TargetState {
                factory,
                resources,
                trigger_states: exported.trigger_states,
                created: exported.created,
                is_source: false,
            })
        }
        // A new factory: what its resource group's locks forbid is known
        // before the first write (a group nobody may read locks of: the
        // writes say so).
        Err(ExportError::NotFound { .. }) => Ok(TargetState {
            resources: export::group_locks(arm, export::resource_group_of(&target.arm_path()))
                .await
                .unwrap_or_default(),
            ..TargetState::default()
        }),
        Err(ExportError::Denied {
            identity,
            path,
            status,
            code,
        }) => Err(OpError::failed(format!(
            "{identity} may not read the target factory {path} (HTTP {status} {code}); grant it 'Data Factory Contributor' on the target factory or its resource group"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Alerts live in the resource group, not in the factory: restored beside
/// the source (same group, another factory), each takes the target's name
/// as a suffix so the source's own alert is never overwritten.
fn alerts_beside(
    mut resources: Vec<crate::model::Resource>,
    source: &crate::snapshot::manifest::Source,
    target: &TargetFactory,
) -> Vec<crate::model::Resource> {
    let same_group = source
        .subscription
        .eq_ignore_ascii_case(&target.subscription)
        && source
            .resource_group
            .eq_ignore_ascii_case(&target.resource_group);
    if same_group && !source.factory.eq_ignore_ascii_case(&target.factory) {
        for r in resources.iter_mut().filter(|r| r.kind.in_resource_group()) {
            r.name = format!("{}-{}", r.name, target.factory);
        }
    }
    resources
}

/// Resolves and holds the snapshot, reads it and the target, and plans.
/// The hold is released again when anything fails.
pub async fn prepare(engine: &Engine, request: Request) -> Result<Prepared, OpError> {
    let factory = request.factory.clone();
    let (target, audit_dir) = (request.target.describe(), request.audit_dir.clone());
    let prepared = prepare_inner(engine, request).await;
    if let (Err(e), Some(dir)) = (&prepared, audit_dir) {
        refused(&dir, factory.as_deref(), &target, e);
    }
    prepared
}

/// A restore refused before its first write (no such snapshot, --strict,
/// a denied read) is a privileged act too: one record says so.
fn refused(dir: &std::path::Path, factory: Option<&str>, target: &str, e: &OpError) {
    let event = super::actor::Actor::person().event(AuditAction::Failed {
        factory: factory.unwrap_or("-").to_string(),
        job: "restore".into(),
        error: format!("to {target}: {e}"),
    });
    if let Err(w) = super::contract::audit(dir, &event) {
        tracing::warn!("the audit trail in {} is not writable: {w}", dir.display());
    }
}

async fn prepare_inner(engine: &Engine, request: Request) -> Result<Prepared, OpError> {
    let started = time::OffsetDateTime::now_utc();
    let clock = Instant::now();
    let (factory, id) = read::resolve(
        &engine.replicas,
        &engine.keys,
        &request.snapshot,
        request.factory.as_deref(),
    )
    .await?;
    let vanished = vanished(engine, &request, &factory).await;
    let other_source = match request.snapshot.as_str() {
        "latest" => other_source(engine, &factory, &id).await,
        _ => None,
    };
    let by = format!("{} to {}", request.by, request.target.describe());
    let held = super::hold::hold(&engine.replicas, &factory, &id, &by, started).await;
    match read_and_plan(engine, &request, &factory, &id).await {
        Ok(mut prepared) => {
            prepared.vanished = vanished;
            prepared.other_source = other_source;
            prepared.held = held;
            prepared.started = started;
            prepared.clock = clock;
            prepared.request = request;
            Ok(prepared)
        }
        Err(e) => {
            super::hold::release(&engine.replicas, &held).await;
            Err(e)
        }
    }
}

/// Whether the snapshot before `id` (the newest before it that opens) is of
/// another source than `id`: then `latest` changed hands, and the restore
/// says so (issue 25).
async fn other_source(engine: &Engine, factory: &str, id: &str) -> Option<String> {
    use crate::plan::binding::{Relation, relate};
    let (listed, _) = read::list(&engine.replicas, Some(factory)).await;
    let at = listed.iter().position(|l| l.id == id)?;
    let latest = read::open(&engine.replicas, &engine.keys, factory, id)
        .await
        .ok()?;
    let before = read::open_newest(
        &engine.replicas,
        &engine.keys,
        factory,
        &listed[..at],
        super::system_clock(),
    )
    .await
    .ok()?;
    let (was, now) = (before.manifest.source_id(), latest.manifest.source_id());
    match relate(&was, &now) {
        Relation::Same | Relation::Moved { .. } => None,
        Relation::Recreated { .. } | Relation::Other => Some(format!(
            "`latest` ({id}) is of {}, but the snapshot before it ({}) is of {}: another factory. To restore that one, name its snapshot or use --at",
            now.describe(),
            before.id,
            was.describe()
        )),
    }
}

/// The newer snapshot `latest` passed over because no location holds it.
async fn vanished(engine: &Engine, request: &Request, factory: &str) -> Option<String> {
    let known = request
        .known_newest
        .as_ref()
        .filter(|_| request.snapshot == "latest")?;
    let (listed, failed) = read::list(&engine.replicas, Some(factory)).await;
    (failed.is_empty() && read::vanished_newest(known, &listed)).then(|| known.clone())
}

async fn read_and_plan(
    engine: &Engine,
    request: &Request,
    factory: &str,
    id: &str,
) -> Result<Prepared, OpError> {
    let fetching = Instant::now();
    let opened = read::open(&engine.replicas, &engine.keys, factory, id).await?;
    let (resources, from, decrypt) = read::payload_timed(&engine.replicas, &opened).await?;
    let resources = alerts_beside(resources, &opened.manifest.source, &request.target);
    let fetch = fetching.elapsed().saturating_sub(decrypt);
    let planning = Instant::now();
    let identity = &engine.identity.description;
    let state = read_target(
        engine.arm.as_ref(),
        &request.target,
        identity,
        request.concurrency,
    )
    .await?;
    let mut state = state;
    // The very factory the snapshot came from: same path, same createTime
    // (one re-created under the name is another, with another credential store).
    state.is_source = request
        .target
        .describe()
        .eq_ignore_ascii_case(&opened.manifest.source.path())
        && state.created.is_some()
        && state.created == opened.manifest.created;
    let target_existed = state.factory.is_some();
    let target_triggers = state.trigger_states.clone();
    let mut options = request.options.clone();
    options.target_path = Some((
        request.target.resource_group.clone(),
        request.target.factory.clone(),
    ));
    let mut plan = plan(
        &resources,
        &opened.manifest.trigger_states,
        opened.manifest.region.as_deref(),
        &state,
        request.overrides.as_ref(),
        &options,
    )
    .map_err(plan_error)?;
    crate::plan::restore::plan_runtimes(
        &mut plan,
        &opened.manifest.runtimes,
        request.options.runtimes,
    );
    let mut skipped_locations = opened.skipped.clone();
    skipped_locations.extend(from.skipped.iter().cloned());
    skipped_locations.dedup();
    Ok(Prepared {
        payload_location: from.location,
        skipped_locations,
        target: request.target.clone(),
        target_existed,
        target_triggers,
        plan,
        timings: Timings {
            fetch_ms: super::millis(fetch),
            decrypt_ms: super::millis(decrypt),
            plan_ms: super::millis(planning.elapsed()),
            ..Default::default()
        },
        opened,
        vanished: None,
        other_source: None,
        held: Vec::new(),
        request: Request::placeholder(),
        started: time::OffsetDateTime::now_utc(),
        clock: Instant::now(),
    })
}

fn plan_error(e: crate::plan::PlanError) -> OpError {
    use crate::plan::PlanError;
    let text = format!("cannot plan the restore: {e}");
    match e {
        // What the operator asked for cannot work: usage (exit 2).
        PlanError::Strict(_)
        | PlanError::MissingDependency { .. }
        | PlanError::NoRegion
        | PlanError::CustomerManagedKey { .. }
        | PlanError::Locked { .. } => OpError::usage(text),
        PlanError::Cycle(_) | PlanError::NoFactory => OpError::failed(text),
    }
}

impl Request {
    fn placeholder() -> Request {
        Request {
            snapshot: String::new(),
            factory: None,
            target: TargetFactory {
                subscription: String::new(),
                resource_group: String::new(),
                factory: String::new(),
            },
            overrides: None,
            options: PlanOptions::default(),
            concurrency: 1,
            known_newest: None,
            by: String::new(),
            audit_dir: None,
            asked: Asked::default(),
        }
    }
}

/// How a restore ended.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RestoreOutcome {
    pub result: RestoreResult,
    pub applied: Applied,
    pub mismatches: Vec<Mismatch>,
    /// The read-back failed: what was written is not verified.
    pub read_back_error: Option<String>,
    pub timings: Timings,
    /// The audit trail it was recorded in (or why it could not be).
    pub audit: Option<PathBuf>,
    pub audit_error: Option<String>,
    /// Stopped by a signal part way: the plan's writes done, of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<(usize, usize)>,
    /// The target as read back (drills prove more from it).
    #[serde(skip)]
    #[schemars(skip)]
    pub state: Option<TargetState>,
}

impl RestoreOutcome {
    pub fn outcome_word(&self) -> &'static str {
        match self.result {
            RestoreResult::Restored => "restored",
            RestoreResult::RestoredWithSkips => "restored-with-skips",
            RestoreResult::VerifyFailed => "verify-failed",
            RestoreResult::Failed => "failed",
            RestoreResult::Interrupted => "interrupted",
        }
    }
}

/// A declined plan: gives the snapshot's hold back.
pub async fn release(engine: &Engine, prepared: &mut Prepared) {
    let held = std::mem::take(&mut prepared.held);
    super::hold::release(&engine.replicas, &held).await;
}

/// Carries the plan out, reads it back, judges it, records it in the audit
/// trail (on every path: a restore that wrote and then failed says so) and
/// releases the hold.
pub async fn execute(
    engine: &Engine,
    prepared: &mut Prepared,
    progress: Progress<'_>,
) -> RestoreOutcome {
    execute_until(engine, prepared, progress, std::future::pending()).await
}

/// `execute`, stopped when `stop` completes (Ctrl-C, SIGTERM): what was in
/// flight is abandoned (the plan is idempotent: running it again finishes
/// the job), the interruption is recorded in the audit trail with the
/// writes done of the plan's, and the hold is given back.
pub async fn execute_until(
    engine: &Engine,
    prepared: &mut Prepared,
    progress: Progress<'_>,
    stop: impl std::future::Future<Output = ()>,
) -> RestoreOutcome {
    let identity = engine.identity.description.clone();
    let concurrency = prepared.request.concurrency;
    let applying = Instant::now();
    let applied = tokio::select! {
        applied = apply(
            engine.arm.as_ref(),
            &identity,
            &prepared.target,
            &prepared.plan,
            concurrency,
            progress,
        ) => applied,
        () = stop => {
            prepared.timings.apply_ms = super::millis(applying.elapsed());
            let done = progress.done.load(std::sync::atomic::Ordering::Relaxed);
            let outcome = RestoreOutcome {
                result: RestoreResult::Interrupted,
                applied: Applied::default(),
                mismatches: Vec::new(),
                read_back_error: None,
                timings: prepared.timings.clone(),
                audit: None,
                audit_error: None,
                interrupted: Some((done, prepared.plan.writes())),
                state: None,
            };
            return finish(engine, prepared, outcome).await;
        }
    };
    prepared.timings.apply_ms = super::millis(applying.elapsed());
    prepared.timings.runtimes_ms = applied
        .runtimes
        .iter()
        .map(|r| r.ready_ms)
        .max()
        .unwrap_or(0);
    let verifying = Instant::now();
    // A grant that is still to be given is reported as such, not as a
    // resource that reads back wrong.
    prepared
        .plan
        .expected
        .retain(|e| !applied.grants_to_give.iter().any(|g| g.what == e.label));
    let expected = started_after(&prepared.plan, &prepared.target_triggers);
    let read_back = verify(
        engine.arm.as_ref(),
        &prepared.target,
        &identity,
        &prepared.plan,
        &expected,
        concurrency,
    )
    .await;
    prepared.timings.verify_ms = super::millis(verifying.elapsed());
    let (mismatches, state, read_back_error) = match read_back {
        Ok((m, state)) => (m, Some(state), None),
        Err(e) => (Vec::new(), None, Some(e.to_string())),
    };
    let result = verdict(
        &applied,
        &mismatches,
        read_back_error.is_some(),
        &prepared.plan,
    );
    let outcome = RestoreOutcome {
        result,
        applied,
        mismatches,
        read_back_error,
        timings: prepared.timings.clone(),
        audit: None,
        audit_error: None,
        interrupted: None,
        state,
    };
    finish(engine, prepared, outcome).await
}

/// Every restore's tail, however it ended: the audit record, and the hold
/// given back.
async fn finish(
    engine: &Engine,
    prepared: &mut Prepared,
    mut outcome: RestoreOutcome,
) -> RestoreOutcome {
    if let Some(dir) = prepared.request.audit_dir.clone() {
        let event = audit_event(engine, prepared, &outcome);
        match super::contract::audit(&dir, &event) {
            Ok(path) => outcome.audit = Some(path),
            Err(e) => outcome.audit_error = Some(format!("{}: {e}", dir.display())),
        }
    }
    release(engine, prepared).await;
    outcome
}

/// Failed (writes or the read-back failed), verify-failed (reads back
/// otherwise than planned), restored with skips, or restored.
pub fn verdict(
    applied: &Applied,
    mismatches: &[Mismatch],
    read_back_failed: bool,
    plan: &Plan,
) -> RestoreResult {
    if !applied.failures.is_empty() || read_back_failed {
        RestoreResult::Failed
    } else if !mismatches.is_empty() {
        RestoreResult::VerifyFailed
    } else if !plan.skipped.is_empty() || !applied.grants_to_give.is_empty() {
        RestoreResult::RestoredWithSkips
    } else {
        RestoreResult::Restored
    }
}

fn audit_event(engine: &Engine, p: &Prepared, o: &RestoreOutcome) -> AuditEvent {
    let (user, host) = super::hold::who();
    let r = &p.request;
    let record = RestoreAudit {
        identity: engine.identity.description.clone(),
        factory: p.opened.factory.clone(),
        snapshot: p.opened.id.clone(),
        location: p.payload_location.clone(),
        skipped_locations: p.skipped_locations.iter().map(|(l, _)| l.clone()).collect(),
        to: p.target.describe(),
        include: r.asked.include.clone(),
        exclude: r.asked.exclude.clone(),
        triggers: format!("{:?}", r.options.triggers).to_lowercase(),
        delete_extraneous: r.options.delete_extraneous,
        overrides: r.asked.overrides.clone(),
        outcome: o.result,
        written: o.applied.written,
        deleted: o.applied.deleted,
        stopped: o.applied.stopped,
        started: o.applied.started,
        skipped: p.plan.skipped.len(),
        failures: o.applied.failures.len(),
        mismatches: o.mismatches.len(),
        read_back_error: o.read_back_error.clone(),
        seconds: p.clock.elapsed().as_secs_f64(),
        interrupted: o.interrupted,
    };
    let mut event = AuditEvent::now("adfdr", AuditAction::Restore(Box::new(record)));
    event.time = crate::snapshot::rfc3339(p.started);
    event.user = Some(user);
    event.host = Some(host);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_from_paths_and_arm_ids() {
        let t = TargetFactory::parse("11111111-2222-3333-4444-555555555555/rg-dr/adf-dr")
            .expect("path");
        assert_eq!(
            t.arm_path(),
            "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dr/providers/Microsoft.DataFactory/factories/adf-dr"
        );
        let id = TargetFactory::parse("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dr/providers/Microsoft.DataFactory/factories/adf-dr").expect("id");
        assert_eq!(id, t);
        let e = TargetFactory::parse("adf-dr").expect_err("short");
        assert!(e.contains("SUBSCRIPTION/RESOURCE_GROUP/FACTORY"), "{e}");
    }
}
