//! One job of one factory from start to end, for every front end: the use
//! case it names (ops::backup, capture, verify, prune, drill), the verdict,
//! the summary, the one run record and the one audit record, and what it
//! found on the way (drift, repairs, location health) told to an
//! `Observer`. The agent observes for its metrics and notifications; the
//! CLI, running a job in its own process, observes for its progress lines.
//! Neither builds a verdict, a summary or an audit record of its own.

use std::collections::HashSet;

use super::contract::{
    AuditAction, CaptureReport, DrillOptions, Job, JobOutcome, JobReport, VerifyOptions,
};
use super::{Engine, backup, prune, system_clock, verify};
use crate::catalog::RunRecord;
use crate::config::FactoryConfig;
use crate::plan::retention::zone;
use crate::snapshot::rfc3339;
use crate::store::layout;

pub use super::actor::Actor;

/// What a job found on the way, for whoever runs it. Every method does
/// nothing unless the front end cares.
pub trait Observer: Send + Sync {
    /// A reconciliation listing found `changes` no event reported.
    fn drift(&self, _factory: &str, _changes: u64) {}
    /// A capture window ended: what it did, how many events it took, and
    /// each event's age when its state was sealed (seconds).
    fn captured(
        &self,
        _factory: &str,
        _captured: &super::capture::Captured,
        _events: u64,
        _lags: &[f64],
    ) {
    }
    /// Copies made again from a copy that checks out.
    fn repaired(&self, _factory: &str, _repaired: &[verify::Repaired]) {}
    /// Each location, and whether it answered during the job.
    fn locations(&self, _health: &[(String, bool)]) {}
    /// A progress line of a restore (a drill's), for people.
    fn say(&self, _line: &str, _said: super::restore::Said) {}
}

/// An observer that cares about nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Runs `job` for `factory` (the caller holds its lease: the agent's lease
/// manager, or `run_exclusive`) and says how it ended. Exactly one run
/// record and, for a job that may write, exactly one audit record, however
/// it ends.
pub async fn run(
    engine: &Engine,
    factory: &str,
    job: &Job,
    actor: &Actor,
    observer: &dyn Observer,
) -> JobOutcome {
    let started = system_clock();
    // A location that was down for an earlier job may be back.
    engine.replicas.retry_unreachable();
    let deadline = job.kind().deadline();
    let (outcome, action) = match engine.config.factory(factory).cloned() {
        None => (JobOutcome::failed("factory no longer configured"), None),
        Some(fc) => tokio::time::timeout(deadline, dispatch(engine, observer, &fc, job, actor))
            .await
            .unwrap_or_else(|_| {
                tracing::error!(%factory, job = job.kind().name(), "stopped at its deadline");
                (
                    JobOutcome::failed(format!(
                        "stopped after {} minutes, its deadline (an answer that never ends?); what it wrote is write-once and nothing half-written lists",
                        deadline.as_secs() / 60
                    )),
                    None,
                )
            }),
    };
    let outcome = finish(engine, factory, job, actor, started, outcome, action);
    observer.locations(&locations(engine));
    outcome
}

/// `run` under the factory's lease, taken here for a front end that has no
/// agent holding it (the CLI in its own process); `stop` (Ctrl-C,
/// SIGTERM) ends the job where it is, recorded and audited as interrupted,
/// and the lease given back.
pub async fn run_exclusive(
    engine: &Engine,
    factory: &str,
    job: &Job,
    actor: &Actor,
    observer: &dyn Observer,
    stop: impl std::future::Future<Output = ()>,
) -> Result<JobOutcome, super::OpError> {
    let guard = if job.changes_nothing() {
        None
    } else {
        let lease_seconds = engine.config.agent.lease_seconds;
        match super::lease::exclusive(&engine.replicas, factory, lease_seconds, "cli").await {
            Ok(guard) => Some(guard),
            // Refused (another holds the lease): recorded too.
            Err(e) => {
                let o = JobOutcome::from(&e);
                finish(engine, factory, job, actor, system_clock(), o, None);
                return Err(e);
            }
        }
    };
    let outcome = tokio::select! {
        o = run(engine, factory, job, actor, observer) => o,
        () = stop => {
            let started = system_clock();
            let o = JobOutcome::from(&super::OpError::new(
                super::Kind::Interrupted,
                format!("{} of {factory} interrupted (Ctrl-C or SIGTERM): what it wrote is write-once and nothing half-written lists; run the same command again", job.kind().name()),
            ));
            let action = AuditAction::Interrupted {
                factory: factory.to_string(),
                job: job.kind().name().to_string(),
            };
            finish(engine, factory, job, actor, started, o, Some(action))
        }
    };
    if let Some(g) = guard {
        g.release().await;
    }
    Ok(outcome)
}

/// The job's run record and audit record: a job that may write leaves one
/// audit record however it ended (its own, or `failed` with why).
fn finish(
    engine: &Engine,
    factory: &str,
    job: &Job,
    actor: &Actor,
    started: time::OffsetDateTime,
    mut outcome: JobOutcome,
    action: Option<AuditAction>,
) -> JobOutcome {
    record(engine, factory, job, started, &outcome);
    let action = action.or_else(|| {
        (!job.changes_nothing() && outcome.report.is_none()).then(|| AuditAction::Failed {
            factory: factory.to_string(),
            job: job.kind().name().to_string(),
            error: outcome.summary.clone(),
        })
    });
    if let Some(action) = action {
        let event = actor.event(action);
        if let Err(e) = super::contract::audit(&engine.config.agent.state_dir, &event) {
            tracing::warn!(error = %e, "could not write the audit trail");
            outcome.audit_error = Some(format!(
                "{}: {e}",
                engine.config.agent.state_dir.join("audit.jsonl").display()
            ));
        }
    }
    outcome
}

async fn dispatch(
    engine: &Engine,
    observer: &dyn Observer,
    fc: &FactoryConfig,
    job: &Job,
    actor: &Actor,
) -> (JobOutcome, Option<AuditAction>) {
    match job {
        Job::Backup { force, reconcile } => {
            run_backup(engine, observer, fc, *force, *reconcile, actor).await
        }
        Job::Capture { changes, list } => {
            run_capture(engine, observer, fc, changes.clone(), *list).await
        }
        Job::Verify(o) => run_verify(engine, observer, fc, o).await,
        Job::Prune { dry_run } => run_prune(engine, fc, *dry_run).await,
        Job::Drill(o) => run_drill(engine, observer, fc, o).await,
    }
}

async fn run_backup(
    engine: &Engine,
    observer: &dyn Observer,
    fc: &FactoryConfig,
    force: bool,
    reconcile: bool,
    actor: &Actor,
) -> (JobOutcome, Option<AuditAction>) {
    repair_pending(engine, observer, &fc.name, actor).await;
    let o = match backup::backup(engine, fc, force, system_clock).await {
        Ok(o) => o,
        Err(e) => return (JobOutcome::from(&e), None),
    };
    let report = o.report(&fc.name);
    let degraded = o.degraded();
    let mut summary = match &o {
        backup::Outcome::Created { record, .. } => {
            format!("snapshot {} ({} resources)", record.id, record.resources)
        }
        backup::Outcome::Unchanged { snapshot, .. } => {
            format!("unchanged since {snapshot} (checkpoint written)")
        }
    };
    if degraded {
        summary.push_str("; degraded: a location missed its copy");
    }
    if reconcile && !report.changed.is_empty() {
        // Events should have said all of it: each change found here is an
        // event that never came (or came and was set aside).
        let drift = report.changed.len();
        tracing::warn!(factory = %fc.name, drift, changed = %report.changed.join(","), "reconciliation found changes no event reported (missed events)");
        observer.drift(&fc.name, drift as u64);
        summary.push_str(&format!("; drift: {drift} change(s) no event reported"));
    }
    let action = AuditAction::Backup {
        factory: fc.name.clone(),
        report: report.clone(),
    };
    (
        JobOutcome {
            ok: !degraded,
            degraded,
            summary,
            report: Some(JobReport::Backup(report)),
            audit_error: None,
            error: None,
        },
        Some(action),
    )
}

/// What a capture window did, in a line.
fn capture_summary(c: &super::capture::Captured, report: &CaptureReport) -> String {
    use super::capture::Captured;
    match c {
        Captured::Sealed { .. } => format!(
            "snapshot {} from {} event(s): {} read, {} removed, {} changed",
            report.snapshot.as_deref().unwrap_or("?"),
            report.events,
            report.fetched,
            report.removed,
            report.changed
        ),
        Captured::Unchanged { snapshot, .. } => format!(
            "{} event(s) changed nothing {snapshot} does not hold",
            report.events
        ),
        Captured::FactoryDeleted { .. } => {
            "the factory was deleted: nothing sealed (its snapshots are kept)".to_string()
        }
        Captured::Listed { why, .. } => format!(
            "listed in full ({why}): snapshot {}",
            report.snapshot.as_deref().unwrap_or("?")
        ),
        Captured::Deferred { why, .. } => format!(
            "a listing asked for ({why}) waits until {}: one per ten minutes",
            report.until.as_deref().unwrap_or("?")
        ),
    }
}

/// Seals a window of ARM's events (ops::capture) and tells its lag.
async fn run_capture(
    engine: &Engine,
    observer: &dyn Observer,
    fc: &FactoryConfig,
    changes: Vec<crate::plan::events::Change>,
    list: bool,
) -> (JobOutcome, Option<AuditAction>) {
    use super::capture;
    let times: Vec<time::OffsetDateTime> = changes.iter().filter_map(|c| c.at()).collect();
    let events = changes.len() as u64;
    let captured = if list {
        let why = "its last windows failed: listed in full".to_string();
        capture::capture_listed(engine, fc, changes, why, system_clock).await
    } else {
        capture::capture(engine, fc, changes, system_clock).await
    };
    let c = match captured {
        Ok(c) => c,
        Err(e) => return (JobOutcome::from(&e), None),
    };
    let report = c.report(&fc.name);
    let done = system_clock();
    let lags: Vec<f64> = times
        .iter()
        .map(|t| (done - *t).as_seconds_f64().max(0.0))
        .collect();
    observer.captured(&fc.name, &c, events, &lags);
    let action = AuditAction::Capture {
        factory: fc.name.clone(),
        report: report.clone(),
    };
    (
        JobOutcome {
            ok: true,
            degraded: false,
            summary: capture_summary(&c, &report),
            report: Some(JobReport::Capture(report)),
            audit_error: None,
            error: None,
        },
        Some(action),
    )
}

async fn run_verify(
    engine: &Engine,
    observer: &dyn Observer,
    fc: &FactoryConfig,
    o: &VerifyOptions,
) -> (JobOutcome, Option<AuditAction>) {
    let repair = verify::Repair {
        copy: o.repair,
        delete_foreign: o.delete_foreign,
    };
    // Every manifest is decrypted (a forged copy is damage); payloads too
    // with read_data.
    let scope = verify::Scope {
        factory: Some(&fc.name),
        snapshot: o.snapshot.as_deref(),
        location: o.location.as_deref(),
        keys: Some(&engine.keys),
        read_data: o.read_data,
        now: system_clock(),
    };
    let catalog = engine.catalog().ok();
    let report = match verify::check(&engine.replicas, &scope, repair, catalog.as_deref()).await {
        Ok(r) => r,
        Err(e) => return (JobOutcome::from(&e), None),
    };
    observer.repaired(&fc.name, &report.repaired);
    for r in &report.repaired {
        tracing::info!(factory = %fc.name, location = %r.location, object = %r.key, from = %r.from, "repaired a missing copy");
    }
    let ok = report.healthy();
    // What verify changed (copies made, foreign objects deleted) is one
    // record; a check that changed nothing is not a privileged act.
    let action = (repair.copy || repair.delete_foreign).then(|| AuditAction::Repair {
        factory: fc.name.clone(),
        objects: report.repaired.clone(),
        deleted_foreign: report.deleted_foreign.clone(),
    });
    (
        JobOutcome {
            ok,
            degraded: !ok && !report.failed_check(),
            summary: if ok {
                "healthy"
            } else {
                "damaged or incomplete"
            }
            .into(),
            report: Some(JobReport::Verify(Box::new(report))),
            audit_error: None,
            error: None,
        },
        action,
    )
}

async fn run_prune(
    engine: &Engine,
    fc: &FactoryConfig,
    dry_run: bool,
) -> (JobOutcome, Option<AuditAction>) {
    let tz = fc.zone().0;
    let catalog = engine.catalog().ok();
    let result = prune::prune(
        &engine.replicas,
        &engine.keys,
        catalog.as_deref(),
        &fc.name,
        &prune::rules(&engine.config, fc),
        &zone(tz),
        system_clock(),
        dry_run,
    )
    .await;
    let r = match result {
        Ok(r) => r,
        Err(e) => return (JobOutcome::from(&e), None),
    };
    let action = (!dry_run).then(|| AuditAction::Prune {
        factory: fc.name.clone(),
        deleted: r.deleted.clone(),
        freed_bytes: r.freed_bytes,
        failures: r.failures.clone(),
    });
    let summary = format!(
        "{} {} snapshots, {} {} bytes",
        if dry_run { "would delete" } else { "deleted" },
        r.snapshots.iter().filter(|s| !s.keep).count(),
        if dry_run { "would free" } else { "freed" },
        r.freed_bytes
    );
    (
        JobOutcome {
            ok: r.failures.is_empty() && r.foreign.is_empty(),
            degraded: !r.failures.is_empty(),
            summary,
            report: Some(JobReport::Prune(Box::new(r))),
            audit_error: None,
            error: None,
        },
        action,
    )
}

/// Verify across the whole store (every name, foreign ones too), for a
/// front end without an agent: what it copied or deleted on request is one
/// audit record, however many factories it touched.
pub async fn verify_store(
    engine: &Engine,
    scope: &verify::Scope<'_>,
    repair: verify::Repair,
    actor: &Actor,
) -> Result<verify::Report, super::OpError> {
    let catalog = if engine.incident {
        None
    } else {
        Some(engine.catalog()?)
    };
    let result = verify::check(&engine.replicas, scope, repair, catalog.as_deref()).await;
    if repair.copy || repair.delete_foreign {
        let factory = scope
            .factory
            .unwrap_or("(every name in the store)")
            .to_string();
        let action = match &result {
            Ok(r) => AuditAction::Repair {
                factory,
                objects: r.repaired.clone(),
                deleted_foreign: r.deleted_foreign.clone(),
            },
            Err(e) => AuditAction::Failed {
                factory,
                job: "verify".into(),
                error: e.to_string(),
            },
        };
        if let Err(e) = super::contract::audit(&engine.config.agent.state_dir, &actor.event(action))
        {
            tracing::warn!(error = %e, "could not write the audit trail");
        }
    }
    result
}

/// A drill's options: the factory's, with what the request overrides.
pub fn drill_options(
    fc: &FactoryConfig,
    o: &DrillOptions,
) -> Result<super::drill::Options, String> {
    use super::drill::{Options, Pick};
    let mut options = Options::from_config(fc, super::restore::window::CEILING);
    if let Some(id) = &o.snapshot {
        options.pick = Pick::Id(id.clone());
    } else if let Some(w) = &o.random_within {
        let d = crate::config::DurationSpec::parse(w).map_err(|e| format!("random_within {e}"))?;
        options.pick = Pick::RandomWithin(d.0);
    }
    if let Some(c) = o.cleanup {
        options.cleanup = c;
    }
    if let Some(n) = o.concurrency {
        options.concurrency = n.max(1);
    }
    Ok(options)
}

async fn run_drill(
    engine: &Engine,
    observer: &dyn Observer,
    fc: &FactoryConfig,
    o: &DrillOptions,
) -> (JobOutcome, Option<AuditAction>) {
    let options = match drill_options(fc, o) {
        Ok(o) => o,
        Err(e) => return (JobOutcome::failed(e), None),
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let say = |line: &str, said: super::restore::Said| observer.say(line, said);
    let progress = super::restore::Progress::new(&say, &done);
    let report = match super::drill::drill(engine, fc, &options, system_clock, progress).await {
        Ok(r) => r,
        Err(e) => return (JobOutcome::from(&e), None),
    };
    let ok = report.passed();
    let verdict = if ok { "passed" } else { "failed" };
    let action = AuditAction::Drill {
        factory: fc.name.clone(),
        report: report.id.clone(),
        snapshot: report.snapshot.clone(),
        target: report.target.clone(),
        verdict: verdict.into(),
        cleanup: report.cleanup.mode.clone(),
    };
    let summary = format!(
        "drill {} {verdict}{}",
        report.id,
        report
            .judgement
            .reasons
            .first()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    (
        JobOutcome {
            ok,
            degraded: false,
            summary,
            report: Some(JobReport::Drill(Box::new(report))),
            audit_error: None,
            error: None,
        },
        Some(action),
    )
}

/// The run in the catalog's history: the verdict and the summary, not the
/// whole report. One per job.
fn record(
    engine: &Engine,
    factory: &str,
    job: &Job,
    started: time::OffsetDateTime,
    o: &JobOutcome,
) {
    let Ok(catalog) = engine.catalog() else {
        return;
    };
    let record = RunRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: job.kind().name().into(),
        factory: factory.to_string(),
        started: rfc3339(started),
        finished: rfc3339(system_clock()),
        outcome: if o.ok { "ok".into() } else { "failed".into() },
        detail: serde_json::json!({"summary": o.summary, "degraded": o.degraded}),
    };
    if let Err(e) = catalog.record_run(&record) {
        tracing::warn!(error = %e, "could not record the run");
    }
}

/// Location health as this job found it.
fn locations(engine: &Engine) -> Vec<(String, bool)> {
    let down: HashSet<String> = engine
        .replicas
        .unreachable()
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    engine
        .replicas
        .locations
        .iter()
        .map(|l| (l.name.clone(), !down.contains(&l.name)))
        .collect()
}

/// Copies left missing by degraded backups are made again, before the next
/// backup of the factory, once their location answers (audited as a
/// repair of their own when any was made).
async fn repair_pending(engine: &Engine, observer: &dyn Observer, factory: &str, actor: &Actor) {
    let Ok(catalog) = engine.catalog() else {
        return;
    };
    let prefix = layout::factory_prefix(factory);
    let pending: Vec<_> = catalog
        .repairs()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.key.starts_with(&prefix))
        .collect();
    if pending.is_empty() {
        return;
    }
    tracing::info!(%factory, pending = pending.len(), "copying what degraded runs left missing");
    let scope = verify::Scope {
        factory: Some(factory),
        snapshot: None,
        location: None,
        keys: Some(&engine.keys),
        read_data: false,
        now: system_clock(),
    };
    let repair = verify::Repair {
        copy: true,
        delete_foreign: false,
    };
    match verify::check(&engine.replicas, &scope, repair, Some(&catalog)).await {
        Ok(report) => {
            observer.repaired(factory, &report.repaired);
            for r in &report.repaired {
                tracing::info!(%factory, location = %r.location, object = %r.key, from = %r.from, "repaired a missing copy");
            }
            if !report.repaired.is_empty() {
                let event = actor.event(AuditAction::Repair {
                    factory: factory.to_string(),
                    objects: report.repaired.clone(),
                    deleted_foreign: Vec::new(),
                });
                if let Err(e) = super::contract::audit(&engine.config.agent.state_dir, &event) {
                    tracing::warn!(error = %e, "could not write the audit trail");
                }
            }
            forget_done_repairs(&catalog, &pending, &report);
        }
        Err(e) => tracing::warn!(%factory, error = %e, "repair pass failed"),
    }
}

/// What the store no longer misses (repaired, or pruned since) is done.
fn forget_done_repairs(
    catalog: &crate::catalog::Catalog,
    pending: &[crate::catalog::RepairRecord],
    report: &verify::Report,
) {
    let missing: HashSet<(String, String)> = report
        .locations
        .iter()
        .flat_map(|l| {
            l.missing
                .iter()
                .chain(&l.damaged)
                .map(|p| (l.name.clone(), p.key.clone()))
        })
        .collect();
    let unreachable: HashSet<String> = report
        .locations
        .iter()
        .filter(|l| l.error.is_some())
        .map(|l| l.name.clone())
        .collect();
    for r in pending {
        if !unreachable.contains(&r.location)
            && !missing.contains(&(r.location.clone(), r.key.clone()))
        {
            let _ = catalog.remove_repair(&r.location, &r.key);
        }
    }
}
