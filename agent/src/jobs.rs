//! Running one job of one factory: the core use case it names, its audit
//! record, its run in the catalog, and the location health it found. The
//! use cases are core's (ops::backup, verify, prune, drill); this module only
//! turns a `Job` into the call and the result into a `JobOutcome`.

use std::collections::HashSet;
use std::sync::Arc;

use adfdr_core::catalog::RunRecord;
use adfdr_core::config::FactoryConfig;
use adfdr_core::ops::contract::{
    AuditAction, BackupReport, DrillOptions, Job, JobOutcome, JobReport, VerifyOptions,
};
use adfdr_core::ops::{Engine, backup, prune, system_clock, verify};
use adfdr_core::plan::retention::zone;
use adfdr_core::snapshot::rfc3339;
use adfdr_core::store::layout;

use crate::metrics::Shared;

/// Runs `job` for `factory` and says how it ended.
pub async fn run(engine: Arc<Engine>, view: Shared, factory: String, job: Job) -> JobOutcome {
    let started = system_clock();
    // A location that was down for an earlier job may be back.
    engine.replicas.retry_unreachable();
    let deadline = job.kind().deadline();
    let outcome = match engine.config.factory(&factory).cloned() {
        None => JobOutcome::failed("factory no longer configured"),
        Some(fc) => tokio::time::timeout(deadline, dispatch(&engine, &view, &fc, &job))
            .await
            .unwrap_or_else(|_| {
                tracing::error!(%factory, job = job.kind().name(), "stopped at its deadline");
                JobOutcome::failed(format!(
                    "stopped after {} minutes, its deadline (an answer that never ends?); what it wrote is write-once and nothing half-written lists",
                    deadline.as_secs() / 60
                ))
            }),
    };
    record(&engine, &factory, &job, started, &outcome);
    note_locations(&engine, &view);
    outcome
}

async fn dispatch(
    engine: &Arc<Engine>,
    view: &Shared,
    fc: &FactoryConfig,
    job: &Job,
) -> JobOutcome {
    match job {
        Job::Backup { force, reconcile } => run_backup(engine, view, fc, *force, *reconcile).await,
        Job::Capture { changes, list } => {
            run_capture(engine, view, fc, changes.clone(), *list).await
        }
        Job::Verify(o) => run_verify(engine, view, fc, o).await,
        Job::Prune { dry_run } => run_prune(engine, fc, *dry_run).await,
        Job::Drill(o) => run_drill(engine, fc, o).await,
    }
}

async fn run_backup(
    engine: &Arc<Engine>,
    view: &Shared,
    fc: &FactoryConfig,
    force: bool,
    reconcile: bool,
) -> JobOutcome {
    repair_pending(engine, view, &fc.name).await;
    match backup::backup(engine, fc, force, system_clock).await {
        Ok(o) => {
            let report = BackupReport::from_outcome(&fc.name, &o);
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
                // Events should have said all of it: each change found here
                // is an event that never came (or came and was set aside).
                let drift = report.changed.len();
                tracing::warn!(factory = %fc.name, drift, changed = %report.changed.join(","), "reconciliation found changes no event reported (missed events)");
                view.lock()
                    .expect("view")
                    .capture
                    .entry(fc.name.clone())
                    .or_default()
                    .drift += drift as u64;
                summary.push_str(&format!("; drift: {drift} change(s) no event reported"));
            }
            crate::audit(
                engine,
                AuditAction::Backup {
                    factory: fc.name.clone(),
                    report: report.clone(),
                },
            );
            JobOutcome {
                ok: !degraded,
                degraded,
                summary,
                report: Some(JobReport::Backup(report)),
            }
        }
        Err(e) => JobOutcome::failed(e.to_string()),
    }
}

/// Seals a window of ARM's events (ops::capture) and records its lag.
async fn run_capture(
    engine: &Arc<Engine>,
    view: &Shared,
    fc: &FactoryConfig,
    changes: Vec<adfdr_core::capture::Change>,
    list: bool,
) -> JobOutcome {
    use adfdr_core::ops::capture::{self, Captured};
    use adfdr_core::ops::contract::CaptureReport;
    let times: Vec<time::OffsetDateTime> = changes.iter().filter_map(|c| c.at()).collect();
    let events = changes.len() as u64;
    let captured = if list {
        let why = "its last windows failed: listed in full".to_string();
        capture::capture_listed(engine, fc, changes, why, system_clock).await
    } else {
        capture::capture(engine, fc, changes, system_clock).await
    };
    match captured {
        Ok(c) => {
            let report = CaptureReport::from_captured(&fc.name, &c);
            let sealed = matches!(c, Captured::Sealed { .. } | Captured::Listed { .. });
            let done = system_clock();
            {
                let mut v = view.lock().expect("view");
                let stats = v.capture.entry(fc.name.clone()).or_default();
                stats.snapshots += u64::from(matches!(c, Captured::Sealed { .. }));
                stats.listings += u64::from(matches!(c, Captured::Listed { .. }));
                if matches!(c, Captured::Deferred { .. }) {
                    stats.deferred += 1;
                } else {
                    stats.coalesced += events;
                }
                for t in &times {
                    v.capture_lag
                        .observe(&fc.name, (done - *t).as_seconds_f64().max(0.0));
                }
            }
            let summary = match &c {
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
            };
            if sealed {
                crate::audit(
                    engine,
                    AuditAction::Capture {
                        factory: fc.name.clone(),
                        report: report.clone(),
                    },
                );
            }
            JobOutcome {
                ok: true,
                degraded: false,
                summary,
                report: Some(JobReport::Capture(report)),
            }
        }
        Err(e) => JobOutcome::failed(e.to_string()),
    }
}

async fn run_verify(
    engine: &Arc<Engine>,
    view: &Shared,
    fc: &FactoryConfig,
    o: &VerifyOptions,
) -> JobOutcome {
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
    match verify::check(&engine.replicas, &scope, repair, catalog.as_deref()).await {
        Ok(report) => {
            note_repairs(engine, view, &fc.name, &report.repaired);
            let ok = report.healthy();
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
            }
        }
        Err(e) => JobOutcome::failed(e.to_string()),
    }
}

async fn run_prune(engine: &Arc<Engine>, fc: &FactoryConfig, dry_run: bool) -> JobOutcome {
    let tz = fc
        .timezone
        .as_deref()
        .and_then(|t| t.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC);
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
        Err(e) => return JobOutcome::failed(e.to_string()),
    };
    if !dry_run && !r.deleted.is_empty() {
        crate::audit(
            engine,
            AuditAction::Prune {
                factory: fc.name.clone(),
                deleted: r.deleted.clone(),
                freed_bytes: r.freed_bytes,
                failures: r.failures.clone(),
            },
        );
    }
    let summary = format!(
        "{} {} snapshots, {} {} bytes",
        if dry_run { "would delete" } else { "deleted" },
        r.snapshots.iter().filter(|s| !s.keep).count(),
        if dry_run { "would free" } else { "freed" },
        r.freed_bytes
    );
    JobOutcome {
        ok: r.failures.is_empty() && r.foreign.is_empty(),
        degraded: !r.failures.is_empty(),
        summary,
        report: Some(JobReport::Prune(Box::new(r))),
    }
}

fn drill_options(
    fc: &FactoryConfig,
    o: &DrillOptions,
) -> Result<adfdr_core::ops::drill::Options, String> {
    use adfdr_core::ops::drill::{Options, Pick};
    let mut options = Options::from_config(fc, adfdr_core::ops::restore::window::CEILING);
    if let Some(id) = &o.snapshot {
        options.pick = Pick::Id(id.clone());
    } else if let Some(w) = &o.random_within {
        let d =
            adfdr_core::config::DurationSpec::parse(w).map_err(|e| format!("random_within {e}"))?;
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

async fn run_drill(engine: &Arc<Engine>, fc: &FactoryConfig, o: &DrillOptions) -> JobOutcome {
    let options = match drill_options(fc, o) {
        Ok(o) => o,
        Err(e) => return JobOutcome::failed(e),
    };
    let report = match adfdr_core::ops::drill::drill(
        engine,
        fc,
        &options,
        system_clock,
        adfdr_core::ops::restore::Progress::silent(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return JobOutcome::failed(e.to_string()),
    };
    let ok = report.passed();
    let verdict = if ok { "passed" } else { "failed" };
    crate::audit(
        engine,
        AuditAction::Drill {
            factory: fc.name.clone(),
            report: report.id.clone(),
            snapshot: report.snapshot.clone(),
            target: report.target.clone(),
            verdict: verdict.into(),
            cleanup: report.cleanup.mode.clone(),
        },
    );
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
    JobOutcome {
        ok,
        degraded: false,
        summary,
        report: Some(JobReport::Drill(Box::new(report))),
    }
}

/// The run in the catalog's history: the verdict and the summary, not the
/// whole report.
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
fn note_locations(engine: &Engine, view: &Shared) {
    let down: HashSet<String> = engine
        .replicas
        .unreachable()
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let mut v = view.lock().expect("view");
    for l in &engine.replicas.locations {
        v.locations.insert(l.name.clone(), !down.contains(&l.name));
    }
}

/// Copies left missing by degraded backups are made again, before the next
/// backup of the factory, once their location answers.
async fn repair_pending(engine: &Engine, view: &Shared, factory: &str) {
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
            note_repairs(engine, view, factory, &report.repaired);
            forget_done_repairs(&catalog, &pending, &report);
        }
        Err(e) => tracing::warn!(%factory, error = %e, "repair pass failed"),
    }
}

/// What the store no longer misses (repaired, or pruned since) is done.
fn forget_done_repairs(
    catalog: &adfdr_core::catalog::Catalog,
    pending: &[adfdr_core::catalog::RepairRecord],
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

fn note_repairs(engine: &Engine, view: &Shared, factory: &str, repaired: &[verify::Repaired]) {
    if repaired.is_empty() {
        return;
    }
    {
        let mut v = view.lock().expect("view");
        for r in repaired {
            *v.repaired.entry(r.location.clone()).or_default() += 1;
        }
    }
    for r in repaired {
        tracing::info!(%factory, location = %r.location, object = %r.key, from = %r.from, "repaired a missing copy");
    }
    crate::audit(
        engine,
        AuditAction::Repair {
            factory: factory.to_string(),
            objects: repaired.to_vec(),
        },
    );
}
