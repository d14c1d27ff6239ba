//! The control socket: HTTP with JSON on a Unix socket (mode 0660, group
//! adfdr-ctl under the shipped unit), so only local users with access to the
//! socket can control the agent. Every body is a type of
//! `adfdr_core::ops::contract`: GET /status (StatusReply), POST /run
//! (RunRequest → Accepted, or Refusal), GET /runs, GET /runs/{id} (RunState,
//! with the job's outcome and report once done).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use adfdr_core::ops::contract::{
    Accepted, AgentInfo, FactoryStatus, JobKind, JobOutcome, JobStatus, Phase, Refusal, RunRequest,
    RunState, StatusReply, Trigger,
};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::metrics::Shared;
use crate::scheduler::Request;

/// How many finished runs the socket remembers.
const KEEP_RUNS: usize = 200;

pub struct Control {
    pub catalog: Arc<adfdr_core::catalog::Catalog>,
    pub runs: Mutex<BTreeMap<String, RunState>>,
    pub requests: mpsc::UnboundedSender<Request>,
    pub view: Shared,
    pub factories: Mutex<Vec<String>>,
}

impl Control {
    /// Registers a run; keeps the newest `KEEP_RUNS`.
    pub fn register(&self, factory: &str, job: JobKind, trigger: Trigger) -> String {
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
                job,
                trigger,
                state: Phase::Queued,
                started: None,
                finished: None,
                outcome: None,
            },
        );
        while runs.len() > KEEP_RUNS {
            let oldest = runs.keys().next().cloned().expect("non-empty");
            runs.remove(&oldest);
        }
        id
    }

    pub fn started(&self, id: &str) {
        self.update(id, |r| {
            r.state = Phase::Running;
            r.started = Some(now());
        });
    }

    pub fn finish(&self, id: &str, outcome: JobOutcome) {
        self.update(id, |r| {
            r.state = Phase::Done;
            r.finished = Some(now());
            r.outcome = Some(outcome);
        });
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut RunState)) {
        if let Some(r) = self.runs.lock().expect("runs").get_mut(id) {
            f(r);
        }
    }

    /// What `GET /status` answers.
    pub fn status(&self) -> StatusReply {
        let view = self.view.lock().expect("view");
        let jobs = view
            .jobs
            .iter()
            .filter_map(|((factory, job), s)| {
                Some(JobStatus {
                    factory: factory.clone(),
                    job: JobKind::parse(job)?,
                    running: s.running,
                    next: s
                        .next
                        .map(|n| n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    runs: s.runs,
                    failures: s.failures,
                    last_duration_secs: s.last_duration_secs,
                })
            })
            .collect();
        let factories = view
            .factories
            .iter()
            .map(|f| FactoryStatus {
                name: f.clone(),
                // The store's evidence, or capture's (the queue said nothing
                // of the factory was waiting), whichever is newer.
                last_confirmed: {
                    let stored = self.catalog.last_confirmed(f).ok().flatten();
                    let by_events = view.capture.get(f).and_then(|c| c.confirmed).and_then(|t| {
                        time::OffsetDateTime::from_unix_timestamp(t.timestamp()).ok()
                    });
                    stored.max(by_events).map(adfdr_core::snapshot::rfc3339)
                },
                newest_snapshot: self.catalog.latest_snapshot(f).ok().flatten().map(|s| s.id),
                rpo_target_seconds: view.rpo_targets.get(f).map(|t| *t as u64),
                last_drill: self.catalog.drills(Some(f)).ok().and_then(|mut d| d.pop()),
                lease: view.leases.get(f).cloned(),
                owned: view
                    .leases
                    .get(f)
                    .is_some_and(|h| h == crate::lease::THIS_AGENT),
            })
            .collect();
        StatusReply {
            agent: AgentInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            factories,
            jobs,
            locations: view.locations.clone(),
        }
    }
}

fn now() -> String {
    adfdr_core::snapshot::rfc3339(adfdr_core::ops::system_clock())
}

fn refuse(status: StatusCode, error: String) -> Response {
    (status, Json(Refusal { error })).into_response()
}

async fn status(State(c): State<Arc<Control>>) -> Json<StatusReply> {
    Json(c.status())
}

async fn run(
    State(c): State<Arc<Control>>,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("not a run request ({e}); jobs are backup, verify, prune and drill"),
            );
        }
    };
    if !c
        .factories
        .lock()
        .expect("factories")
        .contains(&body.factory)
    {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("unknown factory '{}'", body.factory),
        );
    }
    if matches!(body.job, adfdr_core::ops::contract::Job::Capture { .. }) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "capture jobs come from the factory's event queue, not the socket; ask for a backup instead".into(),
        );
    }
    let id = c.register(&body.factory, body.job.kind(), Trigger::Request);
    let _ = c.requests.send(Request {
        id: id.clone(),
        factory: body.factory,
        job: body.job,
    });
    (StatusCode::ACCEPTED, Json(Accepted { id })).into_response()
}

async fn runs(State(c): State<Arc<Control>>) -> Json<Vec<RunState>> {
    Json(c.runs.lock().expect("runs").values().cloned().collect())
}

async fn one(State(c): State<Arc<Control>>, UrlPath(id): UrlPath<String>) -> Response {
    match c.runs.lock().expect("runs").get(&id) {
        Some(r) => Json(r.clone()).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "no such run".into()),
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
