//! `/metrics` and `/healthz` on the configured address (loopback unless
//! chosen otherwise). A client
//! that asks for OpenMetrics (`Accept: application/openmetrics-text`, as
//! Prometheus does) gets it; any other gets the classic text format 0.0.4,
//! where a counter's metadata is named as its `_total` samples. Values come from the catalog (snapshots, checkpoints:
//! the RPO evidence) and from the scheduler's view (jobs, locations), read at
//! scrape time: the endpoint says what the catalog says.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use adfdr_core::catalog::Catalog;
use adfdr_core::config::Config;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What the scheduler knows that the catalog does not.
#[derive(Default)]
pub struct View {
    /// (factory, job) → next run, running, and run statistics.
    pub jobs: BTreeMap<(String, String), JobStats>,
    /// Factories with a job running, requested ones (a capture) included.
    pub busy: std::collections::BTreeSet<String>,
    /// Running jobs: (factory, kind) → when they started and their deadline.
    pub started: BTreeMap<(String, String), (std::time::Instant, std::time::Duration)>,
    /// Location → answered at the last check.
    pub locations: BTreeMap<String, bool>,
    /// Factory → RPO target in seconds.
    pub rpo_targets: BTreeMap<String, f64>,
    pub factories: Vec<String>,
    /// Factory → who runs it ("this agent", or the other lease holder).
    pub leases: BTreeMap<String, String>,
    /// Location → objects copied there by repair since the agent started.
    pub repaired: BTreeMap<String, u64>,
    /// (location, check) → the backup account passes it (config check's posture).
    pub posture: BTreeMap<(String, String), bool>,
    /// Factory → RTO target in seconds.
    pub rto_targets: BTreeMap<String, f64>,
    /// (factory, job) → seconds between two scheduled runs.
    pub periods: BTreeMap<(String, String), f64>,
    /// Factory → leases gained or lost since the agent started.
    pub lease_changes: BTreeMap<String, u64>,
    /// Job durations by kind, since the agent started.
    pub durations: Durations,
    /// (notify name, delivered) → notices since the agent started.
    pub notices: BTreeMap<(String, bool), u64>,
    /// Stored factories neither configured nor discovered (source gone).
    pub source_gone: Vec<String>,
    /// Live agents on the store, this one included (their heartbeats).
    pub agents: usize,
    /// Factory → (subscription, resource group, ARM name).
    pub sources: BTreeMap<String, (String, String, String)>,
    /// When the scheduler loop last turned (liveness), and whether the
    /// agent is ready (config valid, store answered).
    pub alive: Option<std::time::Instant>,
    pub ready: bool,
    /// Factory → continuous capture's counts (capture = "events").
    pub capture: BTreeMap<String, CaptureStats>,
    /// Queue → messages set aside in its poison queue.
    pub poison: BTreeMap<String, u64>,
    /// Event time to sealed snapshot, per factory.
    pub capture_lag: CaptureLag,
}

/// One factory's capture, since the agent started.
#[derive(Clone, Debug, Default)]
pub struct CaptureStats {
    /// Events about it read from the queue (duplicates included).
    pub received: u64,
    /// Events sealed into snapshots (many per snapshot: coalesced).
    pub coalesced: u64,
    /// Snapshots sealed from events.
    pub snapshots: u64,
    /// Changes the reconciliation listing found that no event reported.
    pub drift: u64,
    /// Listings events asked for, and those deferred (one per ten minutes).
    pub listings: u64,
    pub deferred: u64,
    /// The queue answered at the last try (None: not tried yet).
    pub queue_up: Option<bool>,
    /// When the queue last said nothing of the factory was waiting: its
    /// stored state was current then.
    pub confirmed: Option<DateTime<Utc>>,
}

/// Capture lag buckets: from a tenth of a second to ten minutes.
#[derive(Clone)]
pub struct CaptureLag(pub Family<Labels, Histogram, fn() -> Histogram>);

impl Default for CaptureLag {
    fn default() -> Self {
        fn new() -> Histogram {
            Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
            ])
        }
        CaptureLag(Family::new_with_constructor(new))
    }
}

impl CaptureLag {
    pub fn observe(&self, factory: &str, seconds: f64) {
        self.0
            .get_or_create(&vec![("factory".to_string(), factory.to_string())])
            .observe(seconds);
    }
}

/// How long the scheduler loop may go without turning before `/healthz`
/// fails (it turns at least once a minute).
pub const STALL: std::time::Duration = std::time::Duration::from_secs(180);

/// `/healthz`: the scheduler loop turned lately and no job runs past its
/// deadline (a job that outlives it is stuck where even its deadline cannot
/// stop it); `/readyz`: ready.
fn health(view: &Shared, ready_only: bool) -> (StatusCode, &'static str) {
    let v = view.lock().expect("view");
    let alive = v.alive.is_some_and(|t| t.elapsed() < STALL);
    let stuck = v
        .started
        .values()
        .any(|(since, deadline)| since.elapsed() > *deadline + STALL);
    match (ready_only, alive, v.ready) {
        (false, true, _) if stuck => (
            StatusCode::SERVICE_UNAVAILABLE,
            "a job runs past its deadline: stuck\n",
        ),
        (false, true, _) => (StatusCode::OK, "ok\n"),
        (false, false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the scheduler loop has stalled\n",
        ),
        (true, true, true) => (StatusCode::OK, "ready\n"),
        (true, _, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

/// `agent.health`: probes only, on any address (nothing about factories).
pub async fn serve_health(addr: &str, view: Shared) -> Result<SocketAddr, String> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| format!("agent.health = '{addr}' is not an address like 0.0.0.0:8080"))?;
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|e| format!("agent.health: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (live, ready) = (view.clone(), view);
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let v = live.clone();
                async move { health(&v, false) }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let v = ready.clone();
                async move { health(&v, true) }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(bound)
}

/// Job durations by kind: buckets from a second to six hours (a drill with
/// runtimes to start takes tens of minutes).
#[derive(Clone)]
pub struct Durations(pub Family<Labels, Histogram, fn() -> Histogram>);

impl Default for Durations {
    fn default() -> Self {
        fn new() -> Histogram {
            Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
                21600.0,
            ])
        }
        Durations(Family::new_with_constructor(new))
    }
}

impl Durations {
    pub fn observe(&self, job: &str, seconds: f64) {
        self.0
            .get_or_create(&vec![("kind".to_string(), job.to_string())])
            .observe(seconds);
    }
}

#[derive(Clone, Debug, Default)]
pub struct JobStats {
    pub next: Option<DateTime<Utc>>,
    pub running: bool,
    pub runs: u64,
    pub failures: u64,
    pub last_duration_secs: f64,
    pub last_success: Option<DateTime<Utc>>,
}

pub type Shared = Arc<Mutex<View>>;

impl View {
    pub fn configure(&mut self, config: &Config) {
        self.factories = config.factory_names();
        self.sources = config
            .factories
            .iter()
            .map(|f| {
                let f = f.get_ref();
                (
                    f.name.clone(),
                    (
                        f.subscription.clone(),
                        f.resource_group.clone(),
                        f.factory.clone(),
                    ),
                )
            })
            .collect();
        self.rpo_targets = config
            .factories
            .iter()
            .filter_map(|f| {
                let f = f.get_ref();
                f.rpo_target
                    .as_ref()
                    .map(|t| (f.name.clone(), t.0.as_secs_f64()))
            })
            .collect();
        self.rto_targets = config
            .factories
            .iter()
            .filter_map(|f| {
                let f = f.get_ref();
                f.rto_target
                    .as_ref()
                    .map(|t| (f.name.clone(), t.0.as_secs_f64()))
            })
            .collect();
        let now = Utc::now();
        self.periods = config
            .factories
            .iter()
            .flat_map(|f| {
                let f = f.get_ref();
                f.schedules().filter_map(move |(job, s)| {
                    let period = s.period_after(now)?.as_secs_f64();
                    Some(((f.name.clone(), job.to_string()), period))
                })
            })
            .collect();
    }
}

pub type Labels = Vec<(String, String)>;

fn gauge_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> Family<Labels, Gauge<f64, AtomicU64>> {
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    registry.register(name, help, family.clone());
    family
}

fn label(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The exposition, built from the catalog and the scheduler's view:
/// OpenMetrics, or the classic text format.
pub fn render(
    catalog: &Catalog,
    view: &View,
    now: DateTime<Utc>,
    openmetrics: bool,
) -> Result<String, String> {
    let mut registry = Registry::default();
    let build = gauge_family(
        &mut registry,
        "adfdr_build_info",
        "The agent's version and target (always 1)",
    );
    build
        .get_or_create(&label(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ]))
        .set(1.0);
    factories(&mut registry, catalog, view, now)?;
    capture(&mut registry, view);
    jobs(&mut registry, view);
    locations(&mut registry, catalog, view)?;
    let mut out = String::new();
    encode(&mut out, &registry).map_err(|e| e.to_string())?;
    Ok(if openmetrics { out } else { classic(&out) })
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition:
/// a counter's `# HELP`/`# TYPE` named as its `_total` samples, no `# UNIT`
/// or `# EOF`, `info` and `stateset` as gauges, `unknown` as untyped, and
/// no exemplars.
pub fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = |prefix: &str| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((name, tail))
        };
        if let Some((name, ty)) = meta("# TYPE ") {
            let ty = match ty {
                "info" | "stateset" => "gauge",
                "unknown" => "untyped",
                "gaugehistogram" => "histogram",
                t => t,
            };
            let suffix = if counters.contains(name) {
                "_total"
            } else {
                ""
            };
            out.push_str(&format!("# TYPE {name}{suffix} {ty}\n"));
        } else if let Some((name, help)) = meta("# HELP ") {
            let suffix = if counters.contains(name) {
                "_total"
            } else {
                ""
            };
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {name}{suffix} {help}\n"));
        } else {
            // An exemplar follows ` # ` after the value.
            out.push_str(line.split(" # ").next().unwrap_or(line));
            out.push('\n');
        }
    }
    out
}

/// Per factory: RPO evidence, snapshots, the lease.
fn factories(
    registry: &mut Registry,
    catalog: &Catalog,
    view: &View,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let registry = &mut *registry;
    let last_backup = gauge_family(
        registry,
        "adfdr_last_backup_timestamp_seconds",
        "When the factory's state was last confirmed in the store (snapshot or checkpoint)",
    );
    let rpo = gauge_family(
        registry,
        "adfdr_rpo_seconds",
        "Now minus the time the factory's current state was last confirmed in the store",
    );
    let rpo_target = gauge_family(
        registry,
        "adfdr_rpo_target_seconds",
        "The factory's rpo_target",
    );
    let snapshots = gauge_family(registry, "adfdr_snapshots", "Snapshots in the catalog");
    let bytes = gauge_family(
        registry,
        "adfdr_snapshot_bytes",
        "Bytes of the factory's snapshots (one copy)",
    );
    let owned = gauge_family(
        registry,
        "adfdr_factory_owned",
        "1 when this agent holds the factory's lease and runs its jobs",
    );
    let lease_changes = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_lease_changes",
        "Times this agent gained or lost the factory's lease since it started",
        lease_changes.clone(),
    );
    drills(registry, catalog, view, now)?;
    fleet(registry, view);
    for factory in &view.factories {
        let f = label(&[("factory", factory)]);
        lease_changes
            .get_or_create(&f)
            .inc_by(view.lease_changes.get(factory).copied().unwrap_or(0));
        owned.get_or_create(&f).set(
            if view.leases.get(factory).map(String::as_str) == Some("this agent") {
                1.0
            } else {
                0.0
            },
        );
        let records = catalog
            .snapshots(Some(factory))
            .map_err(|e| e.to_string())?;
        snapshots.get_or_create(&f).set(records.len() as f64);
        bytes.get_or_create(&f).set(
            records
                .iter()
                .map(|r| (r.payload_size + r.manifest_size) as f64)
                .sum(),
        );
        // Events confirm the stored state too: the queue said nothing of
        // the factory was waiting (capture = "events").
        let by_events = view
            .capture
            .get(factory)
            .and_then(|c| c.confirmed)
            .map(|t| t.timestamp() as f64);
        let confirmed = catalog
            .last_confirmed(factory)
            .map_err(|e| e.to_string())?
            .map(|t| t.unix_timestamp() as f64);
        let confirmed = match (confirmed, by_events) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = confirmed {
            last_backup.get_or_create(&f).set(t);
            rpo.get_or_create(&f)
                .set((now.timestamp() as f64 - t).max(0.0));
        }
        if let Some(target) = view.rpo_targets.get(factory) {
            rpo_target.get_or_create(&f).set(*target);
        }
    }
    Ok(())
}

/// The fleet: live agents, where each factory is, and sources gone.
fn fleet(registry: &mut Registry, view: &View) {
    let agents = gauge_family(
        registry,
        "adfdr_agents",
        "Live agents sharing the store (their heartbeats), this one included",
    );
    agents
        .get_or_create(&Vec::new())
        .set(view.agents.max(1) as f64);
    let info = gauge_family(
        registry,
        "adfdr_factory_info",
        "Where each factory is (always 1): join on factory for its subscription and resource group, e.g. adfdr_rpo_seconds * on(factory) group_left(subscription) adfdr_factory_info",
    );
    for (name, (sub, rg, arm)) in &view.sources {
        info.get_or_create(&label(&[
            ("factory", name),
            ("subscription", sub),
            ("resource_group", rg),
            ("arm_name", arm),
        ]))
        .set(1.0);
    }
    let gone = gauge_family(
        registry,
        "adfdr_source_gone",
        "1 for a factory the store holds snapshots of that is neither configured nor found by discovery (its snapshots are kept)",
    );
    for g in &view.source_gone {
        gone.get_or_create(&label(&[("factory", g)])).set(1.0);
    }
}

/// Continuous capture: events read and sealed, snapshots, drift, the
/// queue's health, lag.
fn capture(registry: &mut Registry, view: &View) {
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Counter>::default();
        registry.register(name, help, family.clone());
        family
    };
    let received = counter(
        registry,
        "adfdr_capture_events_received",
        "ARM events about the factory read from its queue (duplicates included)",
    );
    let coalesced = counter(
        registry,
        "adfdr_capture_events_coalesced",
        "Events sealed into snapshots (a window's events make one snapshot)",
    );
    let snapshots = counter(
        registry,
        "adfdr_capture_snapshots",
        "Snapshots sealed from events",
    );
    let drift = counter(
        registry,
        "adfdr_capture_drift",
        "Changes the reconciliation listing found that no event reported (missed events)",
    );
    let poison = counter(
        registry,
        "adfdr_capture_poison_messages",
        "Messages set aside in the queue's poison queue",
    );
    let listings = counter(
        registry,
        "adfdr_capture_listings",
        "Listings events asked for: listed, or deferred (one per factory per ten minutes)",
    );
    let up = gauge_family(
        registry,
        "adfdr_capture_queue_up",
        "1 when the factory's event queue answered at the last try (0: it falls back to listing)",
    );
    registry.register(
        "adfdr_capture_lag_seconds",
        "Event time to sealed snapshot",
        view.capture_lag.0.clone(),
    );
    for (factory, c) in &view.capture {
        let f = label(&[("factory", factory)]);
        // Its lag histogram exists (empty) from the start, as its counters do.
        drop(view.capture_lag.0.get_or_create(&f));
        received.get_or_create(&f).inc_by(c.received);
        coalesced.get_or_create(&f).inc_by(c.coalesced);
        snapshots.get_or_create(&f).inc_by(c.snapshots);
        drift.get_or_create(&f).inc_by(c.drift);
        for (result, n) in [("listed", c.listings), ("deferred", c.deferred)] {
            listings
                .get_or_create(&label(&[("factory", factory), ("result", result)]))
                .inc_by(n);
        }
        if let Some(u) = c.queue_up {
            up.get_or_create(&f).set(if u { 1.0 } else { 0.0 });
        }
    }
    for (queue, n) in &view.poison {
        poison.get_or_create(&label(&[("queue", queue)])).inc_by(*n);
    }
}

/// Per factory: the last drill, its RTO against the target, the verified RPO.
fn drills(
    registry: &mut Registry,
    catalog: &Catalog,
    view: &View,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let drill_time = gauge_family(
        registry,
        "adfdr_last_drill_timestamp_seconds",
        "When the factory's last drill started",
    );
    let drill_passed = gauge_family(
        registry,
        "adfdr_last_drill_passed",
        "1 when the factory's last drill passed, 0 when it failed",
    );
    let drill_rto = gauge_family(
        registry,
        "adfdr_last_drill_rto_seconds",
        "The last drill's RTO: drill start to verified restore",
    );
    let drill_rpo = gauge_family(
        registry,
        "adfdr_last_drill_rpo_seconds",
        "The last drill's RPO: drill start minus when the snapshot's state was last confirmed",
    );
    let verified_rpo = gauge_family(
        registry,
        "adfdr_verified_rpo_seconds",
        "Now minus when the newest snapshot that passed a drill was last confirmed",
    );
    let rto_target = gauge_family(
        registry,
        "adfdr_rto_target_seconds",
        "The factory's rto_target",
    );
    for factory in &view.factories {
        let f = label(&[("factory", factory)]);
        if let Some(target) = view.rto_targets.get(factory) {
            rto_target.get_or_create(&f).set(*target);
        }
        let drills = catalog.drills(Some(factory)).map_err(|e| e.to_string())?;
        if let Some(last) = drills.last() {
            if let Some(t) = adfdr_core::snapshot::parse_time(&last.started) {
                drill_time.get_or_create(&f).set(t.unix_timestamp() as f64);
            }
            drill_passed
                .get_or_create(&f)
                .set(if last.verdict == "passed" { 1.0 } else { 0.0 });
            if let Some(rto) = last.rto_seconds {
                drill_rto.get_or_create(&f).set(rto);
            }
            drill_rpo.get_or_create(&f).set(last.rpo_seconds);
        }
        if let Some(t) = drills
            .iter()
            .filter(|d| d.verdict == "passed")
            .filter_map(|d| adfdr_core::snapshot::parse_time(&d.confirmed))
            .max()
        {
            verified_rpo
                .get_or_create(&f)
                .set((now.timestamp() as f64 - t.unix_timestamp() as f64).max(0.0));
        }
    }
    Ok(())
}

/// Per job: runs, failures, duration, next run, running.
fn jobs(registry: &mut Registry, view: &View) {
    let registry = &mut *registry;
    let duration = gauge_family(
        registry,
        "adfdr_job_last_duration_seconds",
        "Duration of the job's last run",
    );
    let next = gauge_family(
        registry,
        "adfdr_next_run_timestamp_seconds",
        "When the job runs next",
    );
    let running = gauge_family(registry, "adfdr_job_running", "1 while the job runs");
    let success = gauge_family(
        registry,
        "adfdr_job_last_success_timestamp_seconds",
        "When the job last finished without failing",
    );
    let period = gauge_family(
        registry,
        "adfdr_job_period_seconds",
        "Seconds between two scheduled runs of the job",
    );
    registry.register(
        "adfdr_job_duration_seconds",
        "How long jobs took since the agent started, by kind",
        view.durations.0.clone(),
    );
    for ((factory, job), p) in &view.periods {
        period
            .get_or_create(&label(&[("factory", factory), ("kind", job)]))
            .set(*p);
    }
    let runs = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_job_runs",
        "Job runs since the agent started",
        runs.clone(),
    );
    let failures = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_job_failures",
        "Failed job runs since the agent started",
        failures.clone(),
    );

    for ((factory, job), stats) in &view.jobs {
        let l = label(&[("factory", factory), ("kind", job)]);
        if let Some(n) = stats.next {
            next.get_or_create(&l).set(n.timestamp() as f64);
        }
        running
            .get_or_create(&l)
            .set(if stats.running { 1.0 } else { 0.0 });
        duration.get_or_create(&l).set(stats.last_duration_secs);
        if let Some(t) = stats.last_success {
            success.get_or_create(&l).set(t.timestamp() as f64);
        }
        runs.get_or_create(&l).inc_by(stats.runs);
        failures.get_or_create(&l).inc_by(stats.failures);
    }
}

/// Per location: health, repairs; per service: throttling.
fn locations(registry: &mut Registry, catalog: &Catalog, view: &View) -> Result<(), String> {
    let registry = &mut *registry;
    let location_up = gauge_family(
        registry,
        "adfdr_location_up",
        "1 when the location answered at the last check",
    );
    let throttled = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_throttled_responses",
        "429 and 503 answers retried since the agent started, by service",
        throttled.clone(),
    );
    for (service, n) in adfdr_core::telemetry::throttled() {
        throttled
            .get_or_create(&label(&[("service", service)]))
            .inc_by(n);
    }
    let repaired = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_repaired_objects",
        "Missing copies made again from a healthy location since the agent started",
        repaired.clone(),
    );
    let pending = gauge_family(
        registry,
        "adfdr_repairs_pending",
        "Copies a location still misses (queued for repair)",
    );
    let notices = Family::<Labels, Counter>::default();
    registry.register(
        "adfdr_notifications",
        "Notices sent to each [[notify]] webhook since the agent started, by result (sent: a 2xx answer; failed: every attempt failed or it was refused)",
        notices.clone(),
    );
    for ((name, sent), n) in &view.notices {
        let result = if *sent { "sent" } else { "failed" };
        notices
            .get_or_create(&label(&[("notify", name), ("result", result)]))
            .inc_by(*n);
    }
    for (location, n) in &view.repaired {
        repaired
            .get_or_create(&label(&[("location", location)]))
            .inc_by(*n);
    }
    let mut queued: BTreeMap<String, u64> = view.locations.keys().map(|l| (l.clone(), 0)).collect();
    for r in catalog.repairs().map_err(|e| e.to_string())? {
        *queued.entry(r.location).or_default() += 1;
    }
    for (location, n) in &queued {
        pending
            .get_or_create(&label(&[("location", location)]))
            .set(*n as f64);
    }
    for (location, up) in &view.locations {
        location_up
            .get_or_create(&label(&[("location", location)]))
            .set(if *up { 1.0 } else { 0.0 });
    }
    let posture = gauge_family(
        registry,
        "adfdr_location_posture",
        "1 when the location's storage account passes the check (redundancy, soft delete, versioning, immutability, TLS, public and shared-key access, network; see adfdr config check), 0 when it is a warning",
    );
    for ((location, check), ok) in &view.posture {
        posture
            .get_or_create(&label(&[("location", location), ("check", check)]))
            .set(if *ok { 1.0 } else { 0.0 });
    }
    Ok(())
}

/// Whether the client's `Accept` names OpenMetrics with a weight above 0.
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// Binds the metrics address and serves until the process ends.
pub async fn serve(addr: &str, catalog: Arc<Catalog>, view: Shared) -> Result<SocketAddr, String> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| format!("agent.metrics = '{addr}' is not an address like 127.0.0.1:9464"))?;
    if !socket.ip().is_loopback() {
        // Loopback is the default because the metrics name every factory,
        // subscription and resource group: on another address, let only the
        // scraper reach it (deploy/k8s/adfdr.yaml's NetworkPolicy does).
        tracing::info!(%addr, "metrics served beyond loopback: only the scraper should reach this address");
    }
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|e| format!("agent.metrics: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/healthz", {
            let v = view.clone();
            get(move || {
                let v = v.clone();
                async move { health(&v, false) }
            })
        })
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let (catalog, view) = (catalog.clone(), view.clone());
                async move {
                    let openmetrics = wants_openmetrics(&headers);
                    let text = {
                        let view = view.lock().expect("view");
                        render(&catalog, &view, Utc::now(), openmetrics)
                    };
                    let media = if openmetrics {
                        "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    } else {
                        "text/plain; version=0.0.4; charset=utf-8"
                    };
                    match text {
                        Ok(t) => {
                            (StatusCode::OK, [(header::CONTENT_TYPE, media)], t).into_response()
                        }
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, item 8: a job that outlives its deadline turns /healthz red.
    #[test]
    fn a_job_past_its_deadline_turns_health_red() {
        let view = Shared::default();
        view.lock().expect("view").alive = Some(std::time::Instant::now());
        assert_eq!(health(&view, false).0, StatusCode::OK);
        let long_ago = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(1000))
            .expect("uptime");
        view.lock().expect("view").started.insert(
            ("sales".into(), "backup".into()),
            (long_ago, std::time::Duration::from_secs(1)),
        );
        let (status, body) = health(&view, false);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("past its deadline"), "{body}");
    }

    /// What prometheus-client writes (OpenMetrics 1.0) becomes what the
    /// classic parser reads: the counter family named as its samples.
    #[test]
    fn the_classic_format_names_counters_as_their_samples() {
        let runs = Family::<Labels, Counter>::default();
        let mut registry = Registry::default();
        registry.register("adfdr_job_runs", "Job \"runs\"", runs.clone());
        runs.get_or_create(&label(&[("job", "backup")])).inc_by(3);
        let up = gauge_family(&mut registry, "adfdr_location_up", "Up");
        up.get_or_create(&label(&[("location", "weu")])).set(1.0);
        let mut open = String::new();
        encode(&mut open, &registry).expect("encode");
        assert!(open.contains("# TYPE adfdr_job_runs counter"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        let text = classic(&open);
        assert!(
            text.contains("# TYPE adfdr_job_runs_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP adfdr_job_runs_total Job \"runs\".\n"),
            "{text}"
        );
        assert!(
            text.contains("adfdr_job_runs_total{job=\"backup\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE adfdr_location_up gauge\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# TYPE adfdr_job_runs counter"));
        // Exemplars and units have no place in the classic format.
        let text = classic(
            "# TYPE a_seconds histogram\n# UNIT a_seconds seconds\na_seconds_bucket{le=\"1\"} 2 # {trace=\"x\"} 0.5\n# EOF\n",
        );
        assert_eq!(
            text,
            "# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 2\n"
        );
    }

    #[test]
    fn openmetrics_is_served_only_to_a_client_that_asks_for_it() {
        let with = |accept: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().expect("header"));
            wants_openmetrics(&h)
        };
        // Prometheus 2.x's Accept.
        assert!(with(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!with("text/plain;version=0.0.4"));
        assert!(!with("*/*"));
        assert!(!with("application/openmetrics-text;q=0"));
        assert!(!wants_openmetrics(&axum::http::HeaderMap::new()));
    }
}
