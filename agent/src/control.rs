//! The control socket: HTTP with JSON on a Unix socket (mode 0660, group
//! adfdr-ctl under the shipped unit), so only local users with access to the
//! socket can control the agent. GET /status, POST /run {factory, job,
//! force, options}, GET /runs, GET /runs/{id} (with the job's report).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::Shared;
use crate::scheduler::Kind;

#[derive(Clone, Debug, Serialize)]
pub struct RunState {
    pub id: String,
    pub factory: String,
    pub job: String,
    /// `schedule` or `request`.
    pub trigger: String,
    /// `queued`, `running` or `done`.
    pub state: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub ok: Option<bool>,
    pub outcome: Option<String>,
    /// The job's report (verify, prune), as the CLI prints it.
    pub result: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct Request {
    pub id: String,
    pub factory: String,
    pub kind: Kind,
    pub force: bool,
    /// Job options from the CLI (verify: snapshot, read_data, location,
    /// repair; prune: dry_run).
    pub options: serde_json::Value,
}

pub struct Control {
    pub catalog: Arc<adfdr_core::catalog::Catalog>,
    pub runs: Mutex<BTreeMap<String, RunState>>,
    pub requests: mpsc::UnboundedSender<Request>,
    pub view: Shared,
    pub factories: Mutex<Vec<String>>,
}

impl Control {
    /// Registers a run; keeps the newest 200.
    pub fn register(&self, factory: &str, kind: Kind, trigger: &str) -> String {
        let id = format!(
            "{}-{}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut runs = self.runs.lock().expect("runs");
        runs.insert(
            id.clone(),
            RunState {
                id: id.clone(),
                factory: factory.into(),
                job: kind.name().into(),
                trigger: trigger.into(),
                state: "queued".into(),
                started: None,
                finished: None,
                ok: None,
                outcome: None,
                result: None,
            },
        );
        while runs.len() > 200 {
            let oldest = runs.keys().next().cloned().expect("non-empty");
            runs.remove(&oldest);
        }
        id
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut RunState)) {
        if let Some(r) = self.runs.lock().expect("runs").get_mut(id) {
            f(r);
        }
    }
}

#[derive(Deserialize)]
struct RunBody {
    factory: String,
    job: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    options: serde_json::Value,
}

async fn status(State(c): State<Arc<Control>>) -> impl IntoResponse {
    let view = c.view.lock().expect("view");
    let jobs: Vec<serde_json::Value> = view
        .jobs
        .iter()
        .map(|((factory, job), s)| {
            serde_json::json!({"factory": factory, "job": job, "running": s.running,
                "next": s.next.map(|n| n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "runs": s.runs, "failures": s.failures, "last_duration_secs": s.last_duration_secs})
        })
        .collect();
    // When each factory's state was last confirmed in the store (snapshot or checkpoint).
    let confirmed: BTreeMap<String, Option<String>> = view
        .factories
        .iter()
        .map(|f| {
            let last = c.catalog.last_confirmed(f).ok().flatten();
            (f.clone(), last.map(adfdr_core::snapshot::rfc3339))
        })
        .collect();
    // Each factory's newest snapshot the catalog saw committed: the CLI
    // compares it with what the store lists (a rollback shows as a newest
    // snapshot no location holds).
    let newest: BTreeMap<String, String> = view
        .factories
        .iter()
        .filter_map(|f| {
            let s = c.catalog.latest_snapshot(f).ok()??;
            Some((f.clone(), s.id))
        })
        .collect();
    // Each factory's newest drill (from the catalog: the agent's drills and
    // those it learned from the store).
    let last_drill: BTreeMap<String, serde_json::Value> = view
        .factories
        .iter()
        .filter_map(|f| {
            let last = c.catalog.drills(Some(f)).ok()?.pop()?;
            Some((f.clone(), serde_json::to_value(last).ok()?))
        })
        .collect();
    Json(serde_json::json!({
        "agent": {"pid": std::process::id(), "version": env!("CARGO_PKG_VERSION")},
        "last_confirmed": confirmed,
        "newest_snapshot": newest,
        "last_drill": last_drill,
        "factories": view.factories,
        "rpo_targets": view.rpo_targets,
        "jobs": jobs,
        "locations": view.locations,
        "leases": view.leases,
    }))
}

async fn run(State(c): State<Arc<Control>>, Json(body): Json<RunBody>) -> impl IntoResponse {
    let Some(kind) = Kind::parse(&body.job) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"error": format!("unknown job '{}': backup, verify, prune or drill", body.job)}),
            ),
        );
    };
    if !c
        .factories
        .lock()
        .expect("factories")
        .contains(&body.factory)
    {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("unknown factory '{}'", body.factory)})),
        );
    }
    let id = c.register(&body.factory, kind, "request");
    let _ = c.requests.send(Request {
        id: id.clone(),
        factory: body.factory,
        kind,
        force: body.force,
        options: body.options,
    });
    (StatusCode::ACCEPTED, Json(serde_json::json!({"id": id})))
}

async fn runs(State(c): State<Arc<Control>>) -> impl IntoResponse {
    let runs: Vec<RunState> = c.runs.lock().expect("runs").values().cloned().collect();
    Json(runs)
}

async fn one(State(c): State<Arc<Control>>, UrlPath(id): UrlPath<String>) -> impl IntoResponse {
    match c.runs.lock().expect("runs").get(&id) {
        Some(r) => (StatusCode::OK, Json(serde_json::to_value(r).expect("json"))),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such run"})),
        ),
    }
}

/// Binds the socket (replacing a stale one), mode 0660, and serves.
pub async fn serve(path: &Path, control: Arc<Control>) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Only a stale socket is ours to replace: never a file, a link or a
        // directory someone pointed agent.socket at.
        if !meta.file_type().is_socket() {
            return Err(format!(
                "agent.socket {shown} exists and is not a socket; point agent.socket at a path of its own (nothing was removed)"
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "agent.socket {shown}: another agent is listening there"
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("agent.socket {shown}: cannot replace the stale socket: {e}"))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| {
        format!("agent.socket {shown}: cannot listen: {e} (the directory must exist and be writable by the agent: RuntimeDirectory= under systemd)")
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("agent.socket {shown}: cannot set mode 0660: {e}"))?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/run", post(run))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(one))
        .with_state(control);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "control socket stopped");
        }
    });
    Ok(())
}
