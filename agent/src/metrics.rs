//! `/metrics` (Prometheus text format) and `/healthz` on the configured
//! loopback address. Values come from the catalog (snapshots, checkpoints:
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
use prometheus_client::registry::Registry;

/// What the scheduler knows that the catalog does not.
#[derive(Default)]
pub struct View {
    /// (factory, job) → next run, running, and run statistics.
    pub jobs: BTreeMap<(String, String), JobStats>,
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
}

#[derive(Clone, Debug, Default)]
pub struct JobStats {
    pub next: Option<DateTime<Utc>>,
    pub running: bool,
    pub runs: u64,
    pub failures: u64,
    pub last_duration_secs: f64,
}

pub type Shared = Arc<Mutex<View>>;

impl View {
    pub fn configure(&mut self, config: &Config) {
        self.factories = config.factory_names();
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
    }
}

type Labels = Vec<(String, String)>;

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

/// The text exposition, built from the catalog and the scheduler's view.
pub fn render(catalog: &Catalog, view: &View, now: DateTime<Utc>) -> Result<String, String> {
    let mut registry = Registry::default();
    factories(&mut registry, catalog, view, now)?;
    jobs(&mut registry, view);
    locations(&mut registry, catalog, view)?;
    let mut out = String::new();
    encode(&mut out, &registry).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Per factory: RPO evidence, snapshots, the last drill, the lease.
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
    for factory in &view.factories {
        let f = label(&[("factory", factory)]);
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
        let confirmed = catalog
            .last_confirmed(factory)
            .map_err(|e| e.to_string())?
            .map(|t| t.unix_timestamp() as f64);
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
        let l = label(&[("factory", factory), ("job", job)]);
        if let Some(n) = stats.next {
            next.get_or_create(&l).set(n.timestamp() as f64);
        }
        running
            .get_or_create(&l)
            .set(if stats.running { 1.0 } else { 0.0 });
        duration.get_or_create(&l).set(stats.last_duration_secs);
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

/// Binds the metrics address (loopback only) and serves until the process ends.
pub async fn serve(addr: &str, catalog: Arc<Catalog>, view: Shared) -> Result<SocketAddr, String> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| format!("agent.metrics = '{addr}' is not an address like 127.0.0.1:9464"))?;
    if !socket.ip().is_loopback() {
        return Err(format!(
            "agent.metrics = '{addr}' is not a loopback address: metrics name factories; scrape through a local proxy or agent"
        ));
    }
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|e| format!("agent.metrics: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let (catalog, view) = (catalog.clone(), view.clone());
                async move {
                    let text = {
                        let view = view.lock().expect("view");
                        render(&catalog, &view, Utc::now())
                    };
                    match text {
                        Ok(t) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            t,
                        )
                            .into_response(),
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
