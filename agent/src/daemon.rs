//! The agent's event loop: one `select!` that hands each event (a timer, a
//! request from the control socket, a lease gained or lost, a job done,
//! SIGHUP, SIGTERM) to one method. The decisions are the scheduler's
//! (scheduler.rs, pure); the jobs are core's use cases (jobs.rs); this
//! module owns the IO: tasks, channels, signals, sd_notify.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adfdr_core::catalog::Catalog;
use adfdr_core::config::Config;
use adfdr_core::ops::contract::{JobKind, JobOutcome, Trigger};
use adfdr_core::ops::{Engine, OpError};
use adfdr_core::store::layout;
use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::control::Control;
use crate::metrics::Shared;
use crate::scheduler::{Request, Scheduler, Start};

/// An event queue out of reach this long gets one listing when it is back.
const RELIST_AFTER: Duration = Duration::from_secs(300);

/// A finished job: factory, kind, outcome, duration, run id.
struct Done {
    factory: String,
    kind: JobKind,
    outcome: JobOutcome,
    took: Duration,
    id: String,
}

struct Daemon {
    path: PathBuf,
    engine: Arc<Engine>,
    catalog: Arc<Catalog>,
    view: Shared,
    control: Arc<Control>,
    scheduler: Scheduler,
    limit: Arc<Semaphore>,
    done_tx: mpsc::UnboundedSender<Done>,
    engine_tx: watch::Sender<Arc<Engine>>,
    /// Running jobs by factory: abort handle and run id.
    handles: HashMap<String, (tokio::task::AbortHandle, String)>,
    /// The `[[notify]]` webhooks; `notified` hears how each send went.
    notifier: crate::notify::Notifier,
    notified: mpsc::UnboundedSender<(String, bool)>,
    host: String,
    /// The config file as written (no discovered factories), for the
    /// rediscovery task; and what discovery covers now.
    base_tx: watch::Sender<Arc<Config>>,
    coverage: Option<adfdr_core::discovery::Coverage>,
    /// The last STATUS= sent to systemd.
    status: String,
    /// Capture runs by run id: who waits to hear whether they sealed.
    capture_acks: HashMap<String, oneshot::Sender<crate::events::Answer>>,
    /// Factories whose last capture failed (told once, until one seals).
    capture_failing: std::collections::HashSet<String>,
}

/// Runs `[[discover]]` at start and every `agent.discover_every` (and when
/// the config changes), handing each result to the daemon.
async fn rediscover(
    mut engine: watch::Receiver<Arc<Engine>>,
    mut base: watch::Receiver<Arc<Config>>,
    found: mpsc::UnboundedSender<Result<adfdr_core::discovery::Coverage, String>>,
) {
    loop {
        let config = base.borrow_and_update().clone();
        let current = engine.borrow_and_update().clone();
        if !config.discover.is_empty() {
            let answer = adfdr_core::ops::discover::discover_for(&current, &config)
                .await
                .map(|d| d.coverage)
                .map_err(|e| e.to_string());
            if found.send(answer).is_err() {
                return;
            }
        }
        let every = config.agent.discover_interval();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = base.changed() => if changed.is_err() { return },
        }
    }
}

/// Counts each webhook's deliveries for the metrics.
async fn count_notices(mut results: mpsc::UnboundedReceiver<(String, bool)>, view: Shared) {
    while let Some((name, sent)) = results.recv().await {
        *view
            .lock()
            .expect("view")
            .notices
            .entry((name, sent))
            .or_default() += 1;
    }
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// When the catalog says a job of a factory last started.
fn last_run(catalog: &Catalog, factory: &str, kind: JobKind) -> Option<DateTime<Utc>> {
    catalog
        .last_run(kind.name(), factory)
        .ok()
        .flatten()
        .and_then(|r| adfdr_core::snapshot::parse_time(&r.started))
        .map(to_chrono)
}

fn schedule(
    config: &Config,
    catalog: &Catalog,
) -> Result<Vec<crate::scheduler::Scheduled>, OpError> {
    crate::scheduler::plan(config, &|f, k| last_run(catalog, f, k), Utc::now())
        .map_err(OpError::usage)
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
        return Err(OpError::failed(format!(
            "no location answered: {}",
            failures.join("; ")
        )));
    }
    Ok(())
}

/// How often the backup accounts' protection is read again (and at every
/// reload): settings change rarely, and the loop sleeps in between.
const POSTURE_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Keeps the posture gauge current: each location's storage account judged
/// as `config check` judges it.
async fn posture(mut engine: watch::Receiver<Arc<Engine>>, view: Shared) {
    loop {
        let current = engine.borrow_and_update().clone();
        let findings = adfdr_core::ops::check::posture(&current).await;
        for f in findings.iter().filter(|f| !f.ok) {
            tracing::warn!(location = %f.location, check = %f.check, "backup account: {}", f.detail);
        }
        view.lock().expect("view").posture = findings
            .into_iter()
            .map(|f| ((f.location, f.check), f.ok))
            .collect();
        tokio::select! {
            _ = tokio::time::sleep(POSTURE_EVERY) => {}
            changed = engine.changed() => if changed.is_err() { return },
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> Result<Signals, OpError> {
        let s = |kind| signal(kind).map_err(|e| OpError::failed(e.to_string()));
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            hup: s(SignalKind::hangup())?,
        })
    }
}

pub async fn run(path: PathBuf, config: Config, stop_timeout: Duration) -> Result<(), OpError> {
    let (base_tx, base_rx) = watch::channel(Arc::new(config.clone()));
    let engine = Arc::new(Engine::new(config)?);
    // Scheduled jobs stay inside ARM's budget (the lease task divides it
    // among the agents it sees).
    engine.arm.set_share(1);
    let notifier = crate::notify::Notifier::new(&engine.config).map_err(OpError::usage)?;
    let catalog = engine.catalog()?;
    let view: Shared = Arc::default();
    let (notified, results) = mpsc::unbounded_channel();
    tokio::spawn(count_notices(results, view.clone()));
    view.lock().expect("view").configure(&engine.config);
    view.lock().expect("view").alive = Some(std::time::Instant::now());
    store_answers(&engine, &view).await?;
    let scheduler = Scheduler::new(schedule(&engine.config, &catalog)?);
    endpoints(&engine, &catalog, &view).await?;
    let mut signals = Signals::new()?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    // Leases: which factories this agent runs (several agents share a store).
    let (engine_tx, engine_rx) = watch::channel(engine.clone());
    let (lease_tx, mut lease_rx) = mpsc::unbounded_channel::<crate::lease::Event>();
    let (lease_stop, lease_stop_rx) = oneshot::channel();
    tokio::spawn(posture(engine_tx.subscribe(), view.clone()));
    let (found_tx, mut found_rx) = mpsc::unbounded_channel();
    tokio::spawn(rediscover(engine_tx.subscribe(), base_rx, found_tx));
    let (capture_tx, mut capture_rx) = mpsc::unbounded_channel();
    tokio::spawn(crate::events::run(
        engine_tx.subscribe(),
        view.clone(),
        capture_tx,
    ));
    let leases = tokio::spawn(crate::lease::run(
        engine_rx,
        view.clone(),
        lease_tx,
        lease_stop_rx,
    ));
    let (request_tx, mut request_rx) = mpsc::unbounded_channel::<Request>();
    let control = Arc::new(Control {
        catalog: catalog.clone(),
        runs: Default::default(),
        requests: request_tx,
        view: view.clone(),
        factories: std::sync::Mutex::new(engine.config.factory_names()),
    });
    crate::control::serve(&engine.config.agent.socket, control.clone())
        .await
        .map_err(OpError::usage)?;
    let mut d = Daemon {
        limit: Arc::new(Semaphore::new(
            engine.config.backup.parallel_factories.max(1),
        )),
        path,
        engine,
        catalog,
        view,
        control,
        scheduler,
        done_tx,
        engine_tx,
        handles: HashMap::new(),
        notifier,
        notified,
        host: crate::notify::host_name(),
        base_tx,
        coverage: None,
        status: String::new(),
        capture_acks: HashMap::new(),
        capture_failing: Default::default(),
    };
    let watchdog = sd_notify::watchdog_enabled().map(|w| w / 2);
    d.ready();
    loop {
        d.view.lock().expect("view").alive = Some(std::time::Instant::now());
        d.start_due();
        // At least once a minute: /healthz tells a stalled loop by it.
        let wait = d
            .wait()
            .min(watchdog.unwrap_or(Duration::MAX))
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(request) = request_rx.recv() => d.on_request(request),
            Some(event) = lease_rx.recv() => d.on_lease(event),
            Some(done) = done_rx.recv() => d.on_done(done),
            Some(found) = found_rx.recv() => d.on_discovered(found),
            Some(event) = capture_rx.recv() => d.on_capture(event),
            _ = signals.hup.recv() => d.on_reload().await,
            _ = signals.term.recv() => return d.shut_down(&mut signals, &mut done_rx, stop_timeout, lease_stop, leases).await,
            _ = signals.int.recv() => return d.shut_down(&mut signals, &mut done_rx, stop_timeout, lease_stop, leases).await,
        }
        if watchdog.is_some() {
            notify(&[NotifyState::Watchdog]);
        }
    }
}

/// The metrics endpoint and the health probes, where configured.
async fn endpoints(engine: &Engine, catalog: &Arc<Catalog>, view: &Shared) -> Result<(), OpError> {
    if let Some(addr) = &engine.config.agent.metrics {
        let bound = crate::metrics::serve(addr, catalog.clone(), view.clone())
            .await
            .map_err(OpError::usage)?;
        tracing::info!(address = %bound, "metrics at /metrics, health at /healthz");
    }
    if let Some(addr) = &engine.config.agent.health {
        let bound = crate::metrics::serve_health(addr, view.clone())
            .await
            .map_err(OpError::usage)?;
        tracing::info!(address = %bound, "probes at /healthz and /readyz");
    }
    Ok(())
}

impl Daemon {
    /// Tells systemd (and /readyz) the agent is ready.
    fn ready(&self) {
        tracing::info!(jobs = self.scheduler.jobs().len(), config = %self.path.display(), "ready");
        notify(&[
            NotifyState::Ready,
            NotifyState::Status(&self.scheduler.status_line()),
        ]);
        self.view.lock().expect("view").ready = true;
    }

    /// Who holds the leases of factories this agent does not run.
    fn holders(&self) -> BTreeMap<String, String> {
        self.view.lock().expect("view").leases.clone()
    }

    /// Starts what the scheduler says is due; tells refused requests why.
    fn start_due(&mut self) {
        let (starts, refused) = self.scheduler.due(Utc::now(), &self.holders());
        for r in refused {
            if let Some(ack) = self.capture_acks.remove(&r.id) {
                // Another agent holds the factory: its events go back.
                let _ = ack.send(crate::events::Answer::NotMine);
                self.control.finish(&r.id, JobOutcome::failed(r.why));
                continue;
            }
            tracing::warn!(run = %r.id, "refused: {}", r.why);
            self.control.finish(&r.id, JobOutcome::failed(r.why));
        }
        for start in starts {
            self.spawn(start);
        }
        self.publish();
        // STATUS= only when it changes: the loop wakes often.
        let status = self.scheduler.status_line();
        if status != self.status {
            notify(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    fn spawn(&mut self, start: Start) {
        let kind = start.job.kind();
        let id = match start.id {
            Some(id) => id,
            None => self
                .control
                .register(&start.factory, kind, Trigger::Schedule),
        };
        tracing::info!(factory = %start.factory, job = kind.name(), run = %id, "starting");
        let (engine, limit, done, control, view) = (
            self.engine.clone(),
            self.limit.clone(),
            self.done_tx.clone(),
            self.control.clone(),
            self.view.clone(),
        );
        let (factory, run_id) = (start.factory.clone(), id.clone());
        let task = tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            control.started(&id);
            let clock = std::time::Instant::now();
            let key = (factory.clone(), kind.name().to_string());
            view.lock()
                .expect("view")
                .started
                .insert(key.clone(), (clock, kind.deadline()));
            let outcome = crate::jobs::run(engine, view.clone(), factory.clone(), start.job).await;
            view.lock().expect("view").started.remove(&key);
            let took = clock.elapsed();
            let _ = done.send(Done {
                factory,
                kind,
                outcome,
                took,
                id,
            });
        });
        self.handles
            .insert(start.factory, (task.abort_handle(), run_id));
    }

    /// How long to sleep: until the next due job (an hour at most).
    fn wait(&self) -> Duration {
        self.scheduler
            .next_wake()
            .map(|n| (n - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600))
    }

    /// The scheduler's jobs as the metrics endpoint and /status show them.
    fn publish(&self) {
        let mut v = self.view.lock().expect("view");
        let keep: HashSet<(String, String)> = self
            .scheduler
            .jobs()
            .iter()
            .map(|j| (j.factory.clone(), j.kind.name().to_string()))
            .collect();
        // Captures are requested, not scheduled: their counts stay while
        // the factory is configured.
        v.jobs.retain(|k, _| {
            keep.contains(k) || (k.1 == "capture" && self.engine.config.factory(&k.0).is_some())
        });
        for j in self.scheduler.jobs() {
            let stats = v
                .jobs
                .entry((j.factory.clone(), j.kind.name().to_string()))
                .or_default();
            stats.next = (!j.running).then_some(j.next);
            stats.running = j.running;
        }
        v.busy = self.scheduler.busy().clone();
    }

    fn on_request(&mut self, request: Request) {
        tracing::info!(factory = %request.factory, job = request.job.kind().name(), run = %request.id, "requested through the control socket");
        self.scheduler.request(request);
    }

    fn on_lease(&mut self, event: crate::lease::Event) {
        let factory = match &event {
            crate::lease::Event::Gained(f)
            | crate::lease::Event::Lost(f)
            | crate::lease::Event::HandedOver(f) => f.clone(),
        };
        *self
            .view
            .lock()
            .expect("view")
            .lease_changes
            .entry(factory)
            .or_default() += 1;
        match event {
            crate::lease::Event::Gained(factory) => {
                let catalog = self.catalog.clone();
                self.scheduler
                    .gained(&factory, Utc::now(), &|f, k| last_run(&catalog, f, k));
            }
            crate::lease::Event::HandedOver(factory) => {
                // Idle (the lease task hands over no factory with a job
                // running): another agent runs it from now on.
                self.scheduler.lost(&factory, Utc::now());
            }
            crate::lease::Event::Lost(factory) => {
                self.tell(crate::notify::Notice::new(
                    crate::notify::Event::LeaseLost,
                    &factory,
                    "this agent no longer holds the factory's lease; another agent runs its jobs",
                    &self.host,
                    &Utc::now().to_rfc3339(),
                ));
                if self.scheduler.lost(&factory, Utc::now())
                    && let Some((task, id)) = self.handles.remove(&factory)
                {
                    // Another agent may start on it: stop writing now (an
                    // abandoned upload leaves nothing that lists).
                    task.abort();
                    if let Some(ack) = self.capture_acks.remove(&id) {
                        let _ = ack.send(crate::events::Answer::NotMine);
                    }
                    let why = "abandoned: the factory's lease was lost (another agent runs it now)";
                    tracing::warn!(%factory, run = %id, "{why}");
                    self.control.finish(&id, JobOutcome::failed(why));
                    let mut v = self.view.lock().expect("view");
                    v.started.retain(|(f, _), _| *f != factory);
                    for ((f, _), stats) in v.jobs.iter_mut() {
                        if *f == factory && stats.running {
                            stats.failures += 1;
                        }
                    }
                }
            }
        }
    }

    /// Hands a notice to the webhooks (never waits for them).
    fn tell(&self, notice: crate::notify::Notice) {
        if !self.notifier.is_empty() {
            self.notifier.send(notice, Some(self.notified.clone()));
        }
    }

    /// The event queue's news: a window to seal (as a job of the factory,
    /// only where this agent holds its lease), or the queue down or back.
    fn on_capture(&mut self, event: crate::events::Event) {
        use crate::events::Event;
        match event {
            Event::Ready {
                factory,
                changes,
                list,
                done,
            } => {
                if !self.scheduler.owns(&factory) {
                    // Another agent holds it: the messages go back to the
                    // queue for the holder to read.
                    let _ = done.send(crate::events::Answer::NotMine);
                    return;
                }
                let id = self
                    .control
                    .register(&factory, JobKind::Capture, Trigger::Schedule);
                tracing::debug!(%factory, events = changes.len(), run = %id, "sealing a window of events");
                self.capture_acks.insert(id.clone(), done);
                self.scheduler.request(Request {
                    id,
                    factory,
                    job: adfdr_core::ops::contract::Job::Capture { changes, list },
                });
            }
            Event::Down {
                queue,
                factories,
                why,
            } => {
                for f in &factories {
                    self.scheduler.events(f, false);
                }
                tracing::warn!(%queue, factories = %factories.join(","), %why, "capture falls back to the scheduled listing (backup = …) until the queue answers");
            }
            Event::Up {
                queue,
                factories,
                down_for,
            } => {
                for f in &factories {
                    if self.scheduler.events(f, true)
                        && self.scheduler.owns(f)
                        && down_for >= RELIST_AFTER
                    {
                        // A long outage: events may have expired on the
                        // way (a short one only delays them): one listing
                        // now settles it.
                        let id = self.control.register(f, JobKind::Backup, Trigger::Schedule);
                        self.scheduler.request(Request {
                            id,
                            factory: f.clone(),
                            job: adfdr_core::ops::contract::Job::Backup {
                                force: false,
                                reconcile: false,
                            },
                        });
                    }
                }
                tracing::info!(%queue, factories = %factories.join(","), "capturing from events");
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        self.handles.remove(&done.factory);
        if let Some(ack) = self.capture_acks.remove(&done.id) {
            use adfdr_core::ops::contract::{CaptureResult, JobReport};
            let later = match &done.outcome.report {
                Some(JobReport::Capture(r)) if r.result == CaptureResult::Deferred => r
                    .until
                    .as_deref()
                    .and_then(adfdr_core::snapshot::parse_time),
                _ => None,
            };
            let _ = ack.send(match later {
                Some(until) => crate::events::Answer::Later(
                    (until - adfdr_core::ops::system_clock()).unsigned_abs(),
                ),
                None if done.outcome.ok => crate::events::Answer::Sealed,
                None => crate::events::Answer::Failed,
            });
        }
        self.scheduler
            .finished(&done.factory, done.kind, Utc::now());
        let ok = done.outcome.ok;
        {
            let mut v = self.view.lock().expect("view");
            let stats = v
                .jobs
                .entry((done.factory.clone(), done.kind.name().to_string()))
                .or_default();
            stats.runs += 1;
            stats.failures += u64::from(!ok);
            stats.last_duration_secs = done.took.as_secs_f64();
            if ok {
                stats.last_success = Some(Utc::now());
            }
            v.durations
                .observe(done.kind.name(), done.took.as_secs_f64());
        }
        let summary = done.outcome.summary.clone();
        // Capture runs every few seconds: its failure is told once, when
        // it starts failing, not once per window.
        let repeat = done.kind == JobKind::Capture
            && if ok {
                self.capture_failing.remove(&done.factory);
                false
            } else {
                !self.capture_failing.insert(done.factory.clone())
            };
        if !repeat
            && let Some(notice) = crate::notify::Notice::of_job(
                done.kind.name(),
                &done.factory,
                &done.outcome,
                &self.host,
                &Utc::now().to_rfc3339(),
            )
        {
            self.tell(notice);
        }
        self.control.finish(&done.id, done.outcome);
        if ok {
            tracing::info!(factory = %done.factory, job = done.kind.name(), outcome = %summary, "done");
        } else {
            tracing::error!(factory = %done.factory, job = done.kind.name(), outcome = %summary, "failed");
        }
    }

    /// A discovery's result: the factories it covers join the configured
    /// ones (scheduled at once when new: a missed first run catches up);
    /// those gone at the source are reported, their snapshots kept.
    fn on_discovered(&mut self, found: Result<adfdr_core::discovery::Coverage, String>) {
        let coverage = match found {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "discovery failed: the factories found before stay covered");
                return;
            }
        };
        let names = |c: &adfdr_core::discovery::Coverage| -> Vec<(String, String, String)> {
            c.covered
                .iter()
                .map(|x| (x.name.clone(), x.id.to_ascii_lowercase(), x.policy.clone()))
                .collect()
        };
        let before = self.coverage.as_ref().map(names).unwrap_or_default();
        let now = names(&coverage);
        self.tell_news(&coverage);
        {
            let mut v = self.view.lock().expect("view");
            v.source_gone = coverage.source_gone.clone();
        }
        if before == now && self.coverage.is_some() {
            self.coverage = Some(coverage);
            return;
        }
        let added = now.iter().filter(|n| !before.contains(n)).count();
        let removed = before.iter().filter(|n| !now.contains(n)).count();
        for gone in &coverage.source_gone {
            tracing::warn!(factory = %gone, "source gone: the store holds snapshots of a factory that is neither configured nor found; they are kept and never pruned (restore with adfdr restore latest --factory NAME --to …)");
        }
        let base = self.base_tx.borrow().clone();
        let config = adfdr_core::ops::discover::with_discovered(&base, &coverage);
        match self.adopt(config) {
            Ok(()) => tracing::info!(
                covered = now.len(),
                added,
                removed,
                excluded = coverage.excluded.len(),
                source_gone = coverage.source_gone.len(),
                "discovery applied"
            ),
            Err(e) => {
                tracing::error!(error = %e, "discovery's factories refused; the previous ones stay")
            }
        }
        self.coverage = Some(coverage);
    }

    /// What discovery found that a person must hear of once: a factory
    /// given a namespace of its own because its name holds another
    /// factory's history, and one its own tag switched off.
    fn tell_news(&self, coverage: &adfdr_core::discovery::Coverage) {
        use crate::notify::{Event, Notice};
        let before = self.coverage.as_ref();
        let time = Utc::now().to_rfc3339();
        for c in &coverage.covered {
            let Some(why) = &c.renamed else { continue };
            if before.is_some_and(|b| {
                b.covered
                    .iter()
                    .any(|x| x.id == c.id && x.renamed.is_some())
            }) {
                continue;
            }
            tracing::warn!(factory = %c.name, id = %c.id, "{why}");
            self.tell(Notice::new(
                Event::SourceConflict,
                &c.name,
                why,
                &self.host,
                &time,
            ));
        }
        for e in &coverage.excluded {
            let Some(tag) = &e.by_tag else { continue };
            if before.is_some_and(|b| {
                b.excluded
                    .iter()
                    .any(|x| x.id == e.id && x.by_tag.is_some())
            }) {
                continue;
            }
            let name = e.namespace.clone().unwrap_or_else(|| e.id.clone());
            let summary = format!(
                "{} is excluded by tag {tag} on the factory itself: it is no longer backed up (its snapshots are kept)",
                e.id
            );
            tracing::warn!(factory = %name, id = %e.id, %tag, "excluded by a tag on the factory: no longer backed up; its snapshots are kept");
            self.tell(Notice::new(
                Event::Excluded,
                &name,
                &summary,
                &self.host,
                &time,
            ));
        }
    }

    /// Runs on `config` from now on: a new engine, its jobs to the
    /// scheduler (what was running goes on).
    fn adopt(&mut self, config: Config) -> Result<(), OpError> {
        let engine = Engine::new(config)?;
        engine.adopt_catalog(self.catalog.clone());
        self.scheduler
            .reload(schedule(&engine.config, &self.catalog)?);
        let engine = Arc::new(engine);
        self.limit = Arc::new(Semaphore::new(
            engine.config.backup.parallel_factories.max(1),
        ));
        self.view.lock().expect("view").configure(&engine.config);
        *self.control.factories.lock().expect("factories") = engine.config.factory_names();
        self.engine = engine;
        let _ = self.engine_tx.send(self.engine.clone());
        Ok(())
    }

    async fn on_reload(&mut self) {
        notify(&[
            NotifyState::Reloading,
            NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Custom("")),
        ]);
        match self.reloaded() {
            Ok(()) => tracing::info!(jobs = self.scheduler.jobs().len(), "config reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; still running on the previous config")
            }
        }
        notify(&[
            NotifyState::Ready,
            NotifyState::Status(&self.scheduler.status_line()),
        ]);
    }

    /// The file read again, with the factories the last discovery found
    /// (rediscovery runs again on the new file at once), adopted.
    fn reloaded(&mut self) -> Result<(), OpError> {
        let config = Config::load(&self.path)?;
        let notifier = crate::notify::Notifier::new(&config).map_err(OpError::usage)?;
        if config.agent.state_dir != self.engine.config.agent.state_dir {
            tracing::warn!("agent.state_dir changed: it takes effect at the next restart");
        }
        let merged = match &self.coverage {
            Some(c) if !config.discover.is_empty() => {
                adfdr_core::ops::discover::with_discovered(&config, c)
            }
            _ => config.clone(),
        };
        self.adopt(merged)?;
        self.notifier = notifier;
        let _ = self.base_tx.send(Arc::new(config));
        Ok(())
    }

    /// Stops scheduling; lets running jobs finish within the deadline (a
    /// second signal quits at once); gives the leases up so that another
    /// agent takes over at once.
    async fn shut_down(
        &self,
        signals: &mut Signals,
        done: &mut mpsc::UnboundedReceiver<Done>,
        timeout: Duration,
        lease_stop: oneshot::Sender<()>,
        leases: tokio::task::JoinHandle<()>,
    ) -> Result<(), OpError> {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        let mut busy = self.scheduler.busy().clone();
        tracing::info!(running = busy.len(), "stopping: waiting for running jobs");
        let deadline = tokio::time::Instant::now() + timeout;
        while !busy.is_empty() {
            tokio::select! {
                Some(d) = done.recv() => {
                    tracing::info!(factory = %d.factory, job = d.kind.name(), outcome = %d.outcome.summary, "finished before stopping");
                    busy.remove(&d.factory);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(abandoned = %busy.iter().map(String::as_str).collect::<Vec<_>>().join(","), "stop deadline reached: abandoning running jobs (nothing half-written lists)");
                    break;
                }
                _ = signals.term.recv() => { tracing::warn!("second signal: quitting now"); break; }
                _ = signals.int.recv() => { tracing::warn!("second signal: quitting now"); break; }
            }
        }
        let _ = lease_stop.send(());
        if tokio::time::timeout(Duration::from_secs(10), leases)
            .await
            .is_err()
        {
            tracing::warn!("leases not released in time: they expire by themselves");
        }
        Ok(())
    }
}
