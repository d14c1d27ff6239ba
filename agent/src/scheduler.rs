//! The scheduler loop: per-factory cron jobs (backup, verify, prune), one job
//! per factory at a time, factories concurrently under a global limit, runs
//! missed while the host was down caught up once at start-up, stable jitter.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adfdr_core::catalog::{Catalog, RunRecord};

use crate::metrics::Shared;
use adfdr_core::config::Config;
use adfdr_core::ops::{Engine, OpError, backup, prune, system_clock, verify};
use adfdr_core::plan::retention::{Policy, zone};
use adfdr_core::plan::schedule::{Schedule, jitter};
use adfdr_core::snapshot::rfc3339;
use adfdr_core::store::layout;
use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Backup,
    Verify,
    Prune,
    Drill,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "backup" => Some(Kind::Backup),
            "verify" => Some(Kind::Verify),
            "prune" => Some(Kind::Prune),
            "drill" => Some(Kind::Drill),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Backup => "backup",
            Kind::Verify => "verify",
            Kind::Prune => "prune",
            Kind::Drill => "drill",
        }
    }
}

#[derive(Clone, Debug)]
struct Job {
    factory: String,
    kind: Kind,
    schedule: Schedule,
    next: DateTime<Utc>,
    running: bool,
}

impl Job {
    fn key(&self) -> String {
        format!("{}/{}", self.factory, self.kind.name())
    }

    /// The next run after `t`, pushed by this job's stable jitter (at most a
    /// tenth of the period, and 30 s).
    fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let Some(at) = self.schedule.next_after(t) else {
            return t + chrono::Duration::days(3650);
        };
        let max = self
            .schedule
            .period_after(t)
            .map_or(Duration::ZERO, |p| (p / 10).min(Duration::from_secs(30)));
        at + chrono::Duration::from_std(jitter(&self.key(), max)).unwrap_or_default()
    }
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// The jobs a config asks for, with their first run: now when a run was
/// missed (caught up once), else the next scheduled time.
fn jobs(config: &Config, catalog: &Catalog, now: DateTime<Utc>) -> Result<Vec<Job>, OpError> {
    let mut out = Vec::new();
    for f in config.factories.iter().map(|f| f.get_ref()) {
        for (kind, expr) in [
            (Kind::Backup, &f.backup),
            (Kind::Verify, &f.verify),
            (Kind::Prune, &f.prune),
            (Kind::Drill, &f.drill),
        ] {
            let Some(expr) = expr else { continue };
            let schedule = Schedule::parse(expr, f.timezone.as_deref()).map_err(|e| {
                OpError::Usage(format!("factory '{}': {} = {e}", f.name, kind.name()))
            })?;
            let last = catalog
                .last_run(kind.name(), &f.name)?
                .and_then(|r| adfdr_core::snapshot::parse_time(&r.started))
                .map(to_chrono);
            let mut job = Job {
                factory: f.name.clone(),
                kind,
                schedule,
                next: now,
                running: false,
            };
            if !job.schedule.missed(last, now) {
                job.next = job.next_after(now);
            } else {
                tracing::info!(factory = %f.name, job = kind.name(), last_run = ?last, "a scheduled run was missed: running it now");
            }
            out.push(job);
        }
    }
    Ok(out)
}

/// A finished job: factory, kind, outcome, duration, run id.
type Done = (String, Kind, Outcome, Duration, String);

/// The scheduler's jobs as the metrics endpoint shows them.
fn publish(view: &Shared, jobs: &[Job]) {
    let mut v = view.lock().expect("view");
    let keep: HashSet<(String, String)> = jobs
        .iter()
        .map(|j| (j.factory.clone(), j.kind.name().to_string()))
        .collect();
    v.jobs.retain(|k, _| keep.contains(k));
    for j in jobs {
        let stats = v
            .jobs
            .entry((j.factory.clone(), j.kind.name().to_string()))
            .or_default();
        stats.next = (!j.running).then_some(j.next);
        stats.running = j.running;
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

fn status(jobs: &[Job]) -> String {
    let running: Vec<String> = jobs.iter().filter(|j| j.running).map(Job::key).collect();
    let next = jobs.iter().filter(|j| !j.running).min_by_key(|j| j.next);
    format!(
        "{} jobs; running: {}; next: {}",
        jobs.len(),
        if running.is_empty() {
            "none".into()
        } else {
            running.join(", ")
        },
        next.map_or("none".into(), |j| format!(
            "{} at {}",
            j.key(),
            j.next.format("%Y-%m-%dT%H:%M:%SZ")
        ))
    )
}

/// The store must answer before READY: at least one location lists.
async fn store_answers(engine: &Engine, view: &Shared) -> Result<(), OpError> {
    let mut failures = Vec::new();
    let mut ok = 0;
    for (location, result) in engine.replicas.list_all(layout::ROOT).await {
        view.lock()
            .expect("view")
            .locations
            .insert(location.clone(), result.is_ok());
        match result {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{location}: {e}")),
        }
    }
    for f in &failures {
        tracing::warn!(location = %f, "location unreachable at start-up");
    }
    if ok == 0 {
        return Err(OpError::Failed(format!(
            "no location answered: {}",
            failures.join("; ")
        )));
    }
    Ok(())
}

/// What a job ended with: one line, success, and its report.
pub struct Outcome {
    pub text: String,
    pub ok: bool,
    pub result: serde_json::Value,
}

async fn run_job(
    engine: Arc<Engine>,
    view: Shared,
    factory: String,
    kind: Kind,
    force: bool,
    options: serde_json::Value,
) -> Outcome {
    let outcome = run_job_inner(&engine, &view, factory, kind, force, options).await;
    // Location health as this job found it.
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
    outcome
}

async fn run_job_inner(
    engine: &Arc<Engine>,
    view: &Shared,
    factory: String,
    kind: Kind,
    force: bool,
    options: serde_json::Value,
) -> Outcome {
    let started = system_clock();
    // A location that was down for an earlier job may be back.
    engine.replicas.retry_unreachable();
    let fc = match engine.config.factory(&factory) {
        Some(f) => f.clone(),
        None => {
            return Outcome {
                text: "factory no longer configured".into(),
                ok: false,
                result: serde_json::Value::Null,
            };
        }
    };
    let (outcome, ok, detail) = match kind {
        Kind::Backup => {
            repair_pending(engine, view, &factory).await;
            match backup::backup(engine, &fc, force, system_clock).await {
                // backup records its own run in the catalog.
                Ok(o) => {
                    let (text, value) = match &o {
                        backup::Outcome::Created { record, .. } => (
                            format!("snapshot {} ({} resources)", record.id, record.resources),
                            serde_json::json!({"result": "created", "snapshot": record.id, "resources": record.resources}),
                        ),
                        backup::Outcome::Unchanged {
                            snapshot,
                            checkpoint,
                            ..
                        } => (
                            format!("unchanged since {snapshot} (checkpoint written)"),
                            serde_json::json!({"result": "unchanged", "snapshot": snapshot, "checkpoint": checkpoint}),
                        ),
                    };
                    let text = if o.degraded() {
                        format!("{text}; degraded: a location missed its copy")
                    } else {
                        text
                    };
                    crate::audit(
                        engine,
                        &serde_json::json!({"action": "backup", "factory": factory, "outcome": value, "degraded": o.degraded()}),
                    );
                    return Outcome {
                        text,
                        ok: !o.degraded(),
                        result: value,
                    };
                }
                Err(e) => {
                    return Outcome {
                        text: e.to_string(),
                        ok: false,
                        result: serde_json::Value::Null,
                    };
                }
            }
        }
        Kind::Verify => {
            let text = |k: &str| options[k].as_str().map(str::to_string);
            let (snapshot, location) = (text("snapshot"), text("location"));
            let read_data = options["read_data"] == true;
            let repair = verify::Repair {
                copy: options["repair"] == true,
                delete_foreign: options["delete_foreign"] == true,
            };
            // Every manifest is decrypted (a forged copy is damage); payloads
            // too with read_data.
            let scope = verify::Scope {
                factory: Some(&factory),
                snapshot: snapshot.as_deref(),
                location: location.as_deref(),
                keys: Some(&engine.keys),
                read_data,
                now: system_clock(),
            };
            let catalog = engine.catalog().ok();
            match verify::check(&engine.replicas, &scope, repair, catalog.as_deref()).await {
                Ok(report) => {
                    let ok = report.healthy();
                    note_repairs(engine, view, &factory, &report.repaired);
                    (
                        if ok {
                            "healthy"
                        } else {
                            "damaged or incomplete"
                        }
                        .to_string(),
                        ok,
                        serde_json::to_value(&report).unwrap_or_default(),
                    )
                }
                Err(e) => (e.to_string(), false, serde_json::Value::Null),
            }
        }
        Kind::Drill => {
            let mut o = adfdr_core::ops::drill::Options::from_config(&fc, 16);
            if let Some(id) = options["snapshot"].as_str() {
                o.pick = adfdr_core::ops::drill::Pick::Id(id.to_string());
            } else if let Some(w) = options["random_within"].as_str() {
                match adfdr_core::config::DurationSpec::parse(w) {
                    Ok(d) => o.pick = adfdr_core::ops::drill::Pick::RandomWithin(d.0),
                    Err(e) => {
                        return Outcome {
                            text: format!("random_within {e}"),
                            ok: false,
                            result: serde_json::Value::Null,
                        };
                    }
                }
            }
            if let Some(c) = options["cleanup"]
                .as_str()
                .and_then(adfdr_core::config::DrillCleanup::parse)
            {
                o.cleanup = c;
            }
            if let Some(n) = options["concurrency"].as_u64() {
                o.concurrency = (n as usize).max(1);
            }
            match adfdr_core::ops::drill::drill(engine, &fc, &o, system_clock, &|_| {}).await {
                Ok(report) => {
                    let ok = report.passed();
                    crate::audit(
                        engine,
                        &serde_json::json!({"action": "drill", "factory": factory, "report": report.id,
                            "snapshot": report.snapshot, "target": report.target, "verdict": if ok { "passed" } else { "failed" },
                            "cleanup": report.cleanup.mode}),
                    );
                    (
                        format!(
                            "drill {} {}{}",
                            report.id,
                            if ok { "passed" } else { "failed" },
                            report
                                .judgement
                                .reasons
                                .first()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        ok,
                        serde_json::to_value(&report).unwrap_or_default(),
                    )
                }
                Err(e) => (e.to_string(), false, serde_json::Value::Null),
            }
        }
        Kind::Prune => {
            let tz = fc
                .timezone
                .as_deref()
                .and_then(|t| t.parse::<chrono_tz::Tz>().ok())
                .unwrap_or(chrono_tz::UTC);
            let dry_run = options["dry_run"] == true;
            let catalog = engine.catalog().ok();
            match prune::prune(
                &engine.replicas,
                &engine.keys,
                catalog.as_deref(),
                &factory,
                &Policy::from(&fc.keep),
                &zone(tz),
                system_clock(),
                dry_run,
            )
            .await
            {
                Ok(r) => {
                    let ok = r.failures.is_empty();
                    if !dry_run && !r.deleted.is_empty() {
                        crate::audit(
                            engine,
                            &serde_json::json!({"action": "prune", "factory": factory, "deleted": r.deleted, "freed_bytes": r.freed_bytes, "failures": r.failures}),
                        );
                    }
                    (
                        format!(
                            "{} {} snapshots, {} {} bytes",
                            if dry_run { "would delete" } else { "deleted" },
                            r.snapshots.iter().filter(|s| !s.keep).count(),
                            if dry_run { "would free" } else { "freed" },
                            r.freed_bytes
                        ),
                        ok,
                        serde_json::to_value(&r).unwrap_or_default(),
                    )
                }
                Err(e) => (e.to_string(), false, serde_json::Value::Null),
            }
        }
    };
    if let Ok(catalog) = engine.catalog() {
        let record = RunRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: kind.name().into(),
            factory: factory.clone(),
            started: rfc3339(started),
            finished: rfc3339(system_clock()),
            outcome: if ok { "ok".into() } else { "failed".into() },
            // The run log keeps the verdict, not whole reports.
            detail: summary(&detail),
        };
        if let Err(e) = catalog.record_run(&record) {
            tracing::warn!(error = %e, "could not record the run");
        }
    }
    Outcome {
        text: outcome,
        ok,
        result: detail,
    }
}

fn summary(detail: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = detail.as_object() {
        for (k, v) in map {
            if !v.is_array() {
                out.insert(k.clone(), v.clone());
            } else {
                out.insert(k.clone(), v.as_array().map_or(0, Vec::len).into());
            }
        }
    }
    serde_json::Value::Object(out)
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
            // What the store no longer misses (repaired, or pruned since) is done.
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
            for r in &pending {
                if !unreachable.contains(&r.location)
                    && !missing.contains(&(r.location.clone(), r.key.clone()))
                {
                    let _ = catalog.remove_repair(&r.location, &r.key);
                }
            }
        }
        Err(e) => tracing::warn!(%factory, error = %e, "repair pass failed"),
    }
}

fn note_repairs(
    engine: &Engine,
    view: &Shared,
    factory: &str,
    repaired: &[adfdr_core::ops::verify::Repaired],
) {
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
        &serde_json::json!({"action": "repair", "factory": factory,
            "objects": repaired.iter().map(|r| serde_json::json!({"location": r.location, "key": r.key, "from": r.from})).collect::<Vec<_>>()}),
    );
}

pub async fn run(path: PathBuf, config: Config, stop_timeout: Duration) -> Result<(), OpError> {
    let mut engine = Arc::new(Engine::new(config)?);
    let catalog = engine.catalog()?;
    let view: Shared = Arc::default();
    view.lock().expect("view").configure(&engine.config);
    store_answers(&engine, &view).await?;
    let mut jobs = jobs(&engine.config, &catalog, Utc::now())?;
    if let Some(addr) = &engine.config.agent.metrics {
        let bound = crate::metrics::serve(addr, catalog.clone(), view.clone())
            .await
            .map_err(OpError::Usage)?;
        tracing::info!(address = %bound, "metrics at /metrics, health at /healthz");
    }
    let mut limit = Arc::new(Semaphore::new(
        engine.config.backup.parallel_factories.max(1),
    ));
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| OpError::Failed(e.to_string()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| OpError::Failed(e.to_string()))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| OpError::Failed(e.to_string()))?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    // Leases: which factories this agent runs (several agents share a store).
    let (engine_tx, engine_rx) = tokio::sync::watch::channel(engine.clone());
    let (lease_tx, mut lease_rx) = mpsc::unbounded_channel::<crate::lease::Event>();
    let (lease_stop, lease_stop_rx) = tokio::sync::oneshot::channel();
    let leases = tokio::spawn(crate::lease::run(
        engine_rx,
        view.clone(),
        lease_tx,
        lease_stop_rx,
    ));
    let mut owned: HashSet<String> = HashSet::new();
    let mut handles: std::collections::HashMap<String, (tokio::task::AbortHandle, String)> =
        Default::default();
    let (request_tx, mut request_rx) = mpsc::unbounded_channel::<crate::control::Request>();
    let control = Arc::new(crate::control::Control {
        catalog: catalog.clone(),
        runs: Default::default(),
        requests: request_tx,
        view: view.clone(),
        factories: std::sync::Mutex::new(engine.config.factory_names()),
    });
    crate::control::serve(&engine.config.agent.socket, control.clone())
        .await
        .map_err(OpError::Usage)?;
    let mut pending: std::collections::VecDeque<crate::control::Request> = Default::default();
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    tracing::info!(jobs = jobs.len(), config = %path.display(), "ready");
    notify(&[NotifyState::Ready, NotifyState::Status(&status(&jobs))]);

    let mut busy: HashSet<String> = HashSet::new();
    loop {
        let now = Utc::now();
        // Start what is due: one job per factory at a time, the global limit
        // applied inside the task.
        let mut starts: Vec<(String, Kind, bool, String, serde_json::Value)> = Vec::new();
        // Requests through the control socket first, then what is due.
        let mut waiting = std::collections::VecDeque::new();
        while let Some(r) = pending.pop_front() {
            // Checks that change nothing need no lease: any agent answers them.
            let read_only = (r.kind == Kind::Verify && r.options["repair"] != true)
                || (r.kind == Kind::Prune && r.options["dry_run"] == true);
            if !owned.contains(&r.factory) && !read_only {
                let holder = view.lock().expect("view").leases.get(&r.factory).cloned();
                match holder {
                    // Not known yet (the first lease pass is under way): wait.
                    None => waiting.push_back(r),
                    Some(who) => {
                        let why = format!(
                            "factory '{}' is run by {who} (it holds the factory's lease); ask there, or wait for its lease to expire",
                            r.factory
                        );
                        tracing::warn!(factory = %r.factory, job = r.kind.name(), "refused: {why}");
                        control.update(&r.id, |run| {
                            run.state = "done".into();
                            run.ok = Some(false);
                            run.outcome = Some(why);
                        });
                    }
                }
                continue;
            }
            if busy.contains(&r.factory) {
                waiting.push_back(r);
                continue;
            }
            busy.insert(r.factory.clone());
            if let Some(job) = jobs
                .iter_mut()
                .find(|j| j.factory == r.factory && j.kind == r.kind)
            {
                job.running = true;
            }
            starts.push((r.factory, r.kind, r.force, r.id, r.options));
        }
        pending = waiting;
        for job in jobs.iter_mut() {
            if job.running
                || job.next > now
                || busy.contains(&job.factory)
                || !owned.contains(&job.factory)
            {
                continue;
            }
            job.running = true;
            busy.insert(job.factory.clone());
            let id = control.register(&job.factory, job.kind, "schedule");
            starts.push((
                job.factory.clone(),
                job.kind,
                false,
                id,
                serde_json::Value::Null,
            ));
        }
        for (factory, kind, force, id, options) in starts {
            let (engine, limit, done, control, view) = (
                engine.clone(),
                limit.clone(),
                done_tx.clone(),
                control.clone(),
                view.clone(),
            );
            tracing::info!(factory = %factory, job = kind.name(), run = %id, "starting");
            let run_id = id.clone();
            let name = factory.clone();
            let task = tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                control.update(&id, |r| {
                    r.state = "running".into();
                    r.started = Some(rfc3339(system_clock()));
                });
                let clock = std::time::Instant::now();
                let outcome = run_job(engine, view, factory.clone(), kind, force, options).await;
                let _ = done.send((factory, kind, outcome, clock.elapsed(), id));
            });
            handles.insert(name, (task.abort_handle(), run_id));
        }
        publish(&view, &jobs);
        notify(&[NotifyState::Status(&status(&jobs))]);
        let next = jobs
            .iter()
            .filter(|j| !j.running && !busy.contains(&j.factory) && owned.contains(&j.factory))
            .map(|j| j.next)
            .min();
        let mut wait = next
            .map(|n| (n - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600));
        if let Some(w) = watchdog {
            wait = wait.min(w);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(request) = request_rx.recv() => {
                tracing::info!(factory = %request.factory, job = request.kind.name(), run = %request.id, "requested through the control socket");
                pending.push_back(request);
            }
            Some(event) = lease_rx.recv() => match event {
                crate::lease::Event::Gained(factory) => {
                    owned.insert(factory.clone());
                    // Taking over: run once what its last holder may have missed.
                    let now = Utc::now();
                    for job in jobs.iter_mut().filter(|j| j.factory == factory && !j.running) {
                        let last = catalog
                            .last_run(job.kind.name(), &factory)
                            .ok()
                            .flatten()
                            .and_then(|r| adfdr_core::snapshot::parse_time(&r.started))
                            .map(to_chrono);
                        if job.schedule.missed(last, now) {
                            tracing::info!(factory = %factory, job = job.kind.name(), "a scheduled run may have been missed: running it now");
                            job.next = now;
                        }
                    }
                }
                crate::lease::Event::Lost(factory) => {
                    owned.remove(&factory);
                    if let Some((task, id)) = handles.remove(&factory) {
                        // Another agent may start on it: stop writing now
                        // (an abandoned upload leaves nothing that lists).
                        task.abort();
                        busy.remove(&factory);
                        let why = "abandoned: the factory's lease was lost (another agent runs it now)";
                        tracing::warn!(factory = %factory, run = %id, "{why}");
                        control.update(&id, |r| {
                            r.state = "done".into();
                            r.finished = Some(rfc3339(system_clock()));
                            r.ok = Some(false);
                            r.outcome = Some(why.into());
                        });
                        let now = Utc::now();
                        for job in jobs.iter_mut().filter(|j| j.factory == factory && j.running) {
                            job.running = false;
                            job.next = job.next_after(now);
                            view.lock().expect("view").jobs.entry((factory.clone(), job.kind.name().to_string())).or_default().failures += 1;
                        }
                    }
                }
            },
            Some((factory, kind, outcome, took, id)) = done_rx.recv() => {
                busy.remove(&factory);
                handles.remove(&factory);
                let ok = outcome.ok;
                let outcome_text = outcome.text.clone();
                control.update(&id, |r| {
                    r.state = "done".into();
                    r.finished = Some(rfc3339(system_clock()));
                    r.ok = Some(ok);
                    r.outcome = Some(outcome.text);
                    r.result = Some(outcome.result);
                });
                let outcome = outcome_text;
                {
                    let mut v = view.lock().expect("view");
                    let stats = v.jobs.entry((factory.clone(), kind.name().to_string())).or_default();
                    stats.runs += 1;
                    stats.failures += u64::from(!ok);
                    stats.last_duration_secs = took.as_secs_f64();
                }
                let now = Utc::now();
                if let Some(job) = jobs.iter_mut().find(|j| j.factory == factory && j.kind == kind) {
                    job.running = false;
                    job.next = job.next_after(now);
                }
                if ok {
                    tracing::info!(factory = %factory, job = kind.name(), outcome = %outcome, "done");
                } else {
                    tracing::error!(factory = %factory, job = kind.name(), outcome = %outcome, "failed");
                }
            }
            _ = sighup.recv() => {
                notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Custom(""))]);
                match reload(&path, &catalog).await {
                    Ok((new_engine, new_jobs)) => {
                        let old: BTreeMap<(String, Kind, String), (DateTime<Utc>, bool)> = jobs
                            .iter()
                            .map(|j| ((j.factory.clone(), j.kind, j.schedule.expr.clone()), (j.next, j.running)))
                            .collect();
                        jobs = new_jobs
                            .into_iter()
                            .map(|mut j| {
                                if let Some((next, running)) = old.get(&(j.factory.clone(), j.kind, j.schedule.expr.clone())) {
                                    j.next = *next;
                                    j.running = *running;
                                }
                                j
                            })
                            .collect();
                        limit = Arc::new(Semaphore::new(new_engine.config.backup.parallel_factories.max(1)));
                        view.lock().expect("view").configure(&new_engine.config);
                        *control.factories.lock().expect("factories") = new_engine.config.factory_names();
                        engine = new_engine;
                        let _ = engine_tx.send(engine.clone());
                        tracing::info!(jobs = jobs.len(), "config reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "config reload refused; still running on the previous config"),
                }
                notify(&[NotifyState::Ready, NotifyState::Status(&status(&jobs))]);
            }
            _ = sigterm.recv() => {
                let result = stop(&mut sigterm, &mut sigint, &mut done_rx, busy, stop_timeout).await;
                release_leases(lease_stop, leases).await;
                return result;
            }
            _ = sigint.recv() => {
                let result = stop(&mut sigterm, &mut sigint, &mut done_rx, busy, stop_timeout).await;
                release_leases(lease_stop, leases).await;
                return result;
            }
        }
        if watchdog.is_some() {
            notify(&[NotifyState::Watchdog]);
        }
    }
}

/// Gives the leases up so that another agent takes over at once.
async fn release_leases(stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) {
    let _ = stop.send(());
    if tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .is_err()
    {
        tracing::warn!("leases not released in time: they expire by themselves");
    }
}

async fn reload(
    path: &std::path::Path,
    catalog: &Arc<Catalog>,
) -> Result<(Arc<Engine>, Vec<Job>), OpError> {
    let config = Config::load(path)?;
    let engine = Engine::new(config)?;
    if engine.catalog_path != *catalog.path() {
        tracing::warn!("agent.state_dir changed: it takes effect at the next restart");
    }
    engine.adopt_catalog(catalog.clone());
    let jobs = jobs(&engine.config, catalog, Utc::now())?;
    Ok((Arc::new(engine), jobs))
}

/// Stop scheduling; let running jobs finish within the deadline; a second
/// signal quits at once.
async fn stop(
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
    done: &mut mpsc::UnboundedReceiver<Done>,
    mut busy: HashSet<String>,
    timeout: Duration,
) -> Result<(), OpError> {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    tracing::info!(running = busy.len(), "stopping: waiting for running jobs");
    let deadline = tokio::time::Instant::now() + timeout;
    while !busy.is_empty() {
        tokio::select! {
            Some((factory, kind, outcome, _, _)) = done.recv() => {
                tracing::info!(factory = %factory, job = kind.name(), outcome = %outcome.text, "finished before stopping");
                busy.remove(&factory);
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(abandoned = ?busy, "stop deadline reached: abandoning running jobs (nothing half-written lists)");
                break;
            }
            _ = sigterm.recv() => { tracing::warn!("second signal: quitting now"); break; }
            _ = sigint.recv() => { tracing::warn!("second signal: quitting now"); break; }
        }
    }
    Ok(())
}
