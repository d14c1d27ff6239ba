//! The contract between the front ends: the agent's control socket, the CLI
//! that talks to it, the audit trail and `--json` all serialize these types
//! (and nothing looser). JSON Schemas are generated from them (docs/JSON.md).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::DrillRecord;
use crate::config::DrillCleanup;

/// The kinds of job the agent schedules and runs on request.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Verify,
    Prune,
    Drill,
    /// A window of ARM's events sealed as a snapshot (capture = "events").
    Capture,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [
        JobKind::Backup,
        JobKind::Verify,
        JobKind::Prune,
        JobKind::Drill,
        JobKind::Capture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Verify => "verify",
            JobKind::Prune => "prune",
            JobKind::Drill => "drill",
            JobKind::Capture => "capture",
        }
    }

    pub fn parse(text: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// A job with its options, as the CLI asks the agent for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum Job {
    Backup {
        /// A new snapshot even when nothing changed.
        #[serde(default)]
        force: bool,
        /// Capture's reconciliation listing: what it finds changed is
        /// drift (events that never came).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconcile: bool,
    },
    Verify(VerifyOptions),
    Prune {
        /// Decide and report; delete nothing.
        #[serde(default)]
        dry_run: bool,
    },
    Drill(DrillOptions),
    /// ARM's events for the factory, read from its queue (the agent's own;
    /// the control socket does not take them).
    Capture {
        changes: Vec<crate::capture::Change>,
        /// List the factory in full instead of reading what the events
        /// name (its windows kept failing).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        list: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyOptions {
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub read_data: bool,
    #[serde(default)]
    pub repair: bool,
    #[serde(default)]
    pub delete_foreign: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrillOptions {
    /// This snapshot id, instead of the latest.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// A random snapshot from this window (`7d`), instead of the latest.
    #[serde(default)]
    pub random_within: Option<String>,
    #[serde(default)]
    pub cleanup: Option<DrillCleanup>,
    #[serde(default)]
    pub concurrency: Option<usize>,
}

impl JobKind {
    /// The longest a job of this kind may run before it is stopped (issue
    /// 25: answers that never end held every job slot for good). A drill
    /// starts integration runtimes (up to 45 minutes each) and runs a
    /// pipeline; a verify with `--read-data` reads every copy.
    pub fn deadline(self) -> std::time::Duration {
        let minutes = match self {
            JobKind::Capture => 30,
            JobKind::Backup | JobKind::Prune => 60,
            JobKind::Drill => 6 * 60,
            JobKind::Verify => 12 * 60,
        };
        std::time::Duration::from_secs(minutes * 60)
    }
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Backup { .. } => JobKind::Backup,
            Job::Verify(_) => JobKind::Verify,
            Job::Prune { .. } => JobKind::Prune,
            Job::Drill(_) => JobKind::Drill,
            Job::Capture { .. } => JobKind::Capture,
        }
    }

    /// The job a schedule starts: default options.
    pub fn scheduled(kind: JobKind) -> Job {
        match kind {
            JobKind::Backup => Job::Backup {
                force: false,
                reconcile: false,
            },
            JobKind::Verify => Job::Verify(VerifyOptions::default()),
            JobKind::Prune => Job::Prune { dry_run: false },
            JobKind::Drill => Job::Drill(DrillOptions::default()),
            JobKind::Capture => Job::Capture {
                changes: Vec::new(),
                list: false,
            },
        }
    }

    /// Checks that change nothing need no lease: any agent answers them.
    pub fn changes_nothing(&self) -> bool {
        match self {
            Job::Verify(o) => !o.repair && !o.delete_foreign,
            Job::Prune { dry_run } => *dry_run,
            Job::Backup { .. } | Job::Drill(_) | Job::Capture { .. } => false,
        }
    }
}

/// `POST /run`: run a job for a factory now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRequest {
    pub factory: String,
    #[serde(flatten)]
    pub job: Job,
}

/// The reply to an accepted `POST /run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Accepted {
    pub id: String,
}

/// Any refusal of the control socket (4xx).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Refusal {
    pub error: String,
}

/// Why a run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Request,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Queued,
    Running,
    Done,
}

/// One run of a job, as `GET /runs` and `GET /runs/{id}` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunState {
    pub id: String,
    pub factory: String,
    pub job: JobKind,
    pub trigger: Trigger,
    pub state: Phase,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// Set when the run is done.
    pub outcome: Option<JobOutcome>,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobOutcome {
    /// It did what it was asked, fully.
    pub ok: bool,
    /// It did it, but a location missed a copy (a backup) or a copy is
    /// only missing (verify): data is intact elsewhere.
    pub degraded: bool,
    /// One line for logs and the CLI.
    pub summary: String,
    /// The job's own report; None when it failed before it had one.
    pub report: Option<JobReport>,
    /// The audit trail could not be written (where, and why): the job ran,
    /// but its record is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// Why it failed before it had a report, as data: the error's kind
    /// (`forbidden`, `not-found`, `usage`, ...) and what to do, where known.
    /// The message is `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

/// A failed job's error, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobError {
    pub kind: super::Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl JobOutcome {
    pub fn failed(summary: impl Into<String>) -> JobOutcome {
        JobOutcome {
            ok: false,
            degraded: false,
            summary: summary.into(),
            report: None,
            audit_error: None,
            error: None,
        }
    }

    /// A job that failed with `e` before it had a report.
    pub fn from_error(e: &super::OpError) -> JobOutcome {
        JobOutcome {
            error: Some(JobError {
                kind: e.kind(),
                hint: e.hint().map(str::to_string),
            }),
            ..JobOutcome::failed(e.to_string())
        }
    }

    /// A failed job's error again, kind and hint kept (for a front end
    /// that reports errors as `OpError`s).
    pub fn to_error(&self) -> super::OpError {
        let e = super::OpError::new(
            self.error.as_ref().map_or(super::Kind::Failed, |e| e.kind),
            self.summary.clone(),
        );
        match self.error.as_ref().and_then(|e| e.hint.clone()) {
            Some(h) => e.with_hint(h),
            None => e,
        }
    }
}

/// Each kind of job's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum JobReport {
    Backup(BackupReport),
    Verify(Box<super::verify::Report>),
    Prune(Box<super::prune::Report>),
    Drill(Box<super::drill::Report>),
    Capture(CaptureReport),
}

/// What a capture did with a window of events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaptureReport {
    pub factory: String,
    pub result: CaptureResult,
    /// The snapshot sealed (or the one still current when unchanged).
    pub snapshot: Option<String>,
    /// Events about the factory in the window, duplicates included.
    pub events: usize,
    pub duplicates: usize,
    /// Resources read again (one GET each).
    pub fetched: usize,
    pub removed: usize,
    /// Resources whose definition or state changed.
    pub changed: usize,
    /// Why the factory was listed in full instead (result `listed`), or
    /// why a listing was asked for and deferred (result `deferred`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Until when the window waits (result `deferred`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureResult {
    Sealed,
    Unchanged,
    Listed,
    FactoryDeleted,
    /// A listing events asked for, deferred (one per factory per ten minutes).
    Deferred,
}

impl CaptureReport {
    pub fn from_captured(factory: &str, c: &super::capture::Captured) -> CaptureReport {
        use super::capture::Captured;
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

/// What a backup did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupReport {
    pub factory: String,
    /// `created` or `unchanged`.
    pub result: BackupResult,
    pub snapshot: String,
    /// The checkpoint written when unchanged.
    pub checkpoint: Option<String>,
    pub resources: Option<usize>,
    /// Locations holding it.
    pub locations: Vec<String>,
    /// Locations that missed their copy (queued for repair), with why.
    pub missed: Vec<Missed>,
    /// What the listing found changed since the previous snapshot (labels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupResult {
    Created,
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Missed {
    pub location: String,
    pub error: String,
}

impl BackupReport {
    pub fn from_outcome(factory: &str, o: &super::backup::Outcome) -> BackupReport {
        use super::backup::Outcome;
        let missed = |failed: &[(String, String)]| {
            failed
                .iter()
                .map(|(l, e)| Missed {
                    location: l.clone(),
                    error: e.clone(),
                })
                .collect()
        };
        match o {
            Outcome::Created {
                record,
                failed,
                changes,
            } => BackupReport {
                factory: factory.to_string(),
                result: BackupResult::Created,
                snapshot: record.id.clone(),
                checkpoint: None,
                resources: Some(record.resources),
                locations: record.locations.clone(),
                missed: missed(failed),
                changed: changes.iter().map(|c| c.resource.clone()).collect(),
            },
            Outcome::Unchanged {
                snapshot,
                checkpoint,
                failed,
            } => BackupReport {
                factory: factory.to_string(),
                result: BackupResult::Unchanged,
                snapshot: snapshot.clone(),
                checkpoint: Some(checkpoint.clone()),
                resources: None,
                locations: Vec::new(),
                missed: missed(failed),
                changed: Vec::new(),
            },
        }
    }
}

/// `GET /status`: what the agent is doing and what it knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusReply {
    pub agent: AgentInfo,
    pub factories: Vec<FactoryStatus>,
    pub jobs: Vec<JobStatus>,
    /// Location name -> answered at the last job.
    pub locations: BTreeMap<String, bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentInfo {
    pub pid: u32,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FactoryStatus {
    pub name: String,
    /// When its state was last confirmed in the store (snapshot or checkpoint).
    pub last_confirmed: Option<String>,
    /// The newest snapshot the catalog saw committed.
    pub newest_snapshot: Option<String>,
    pub rpo_target_seconds: Option<u64>,
    pub last_drill: Option<DrillRecord>,
    /// Who holds the factory's lease (this agent or another), when known.
    pub lease: Option<String>,
    /// This agent holds the lease and runs the factory's jobs.
    pub owned: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobStatus {
    pub factory: String,
    pub job: JobKind,
    pub running: bool,
    /// The next scheduled run (RFC 3339), when not running.
    pub next: Option<String>,
    pub runs: u64,
    pub failures: u64,
    pub last_duration_secs: f64,
}

/// One line of the audit trail: a privileged action, who did it, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEvent {
    /// RFC 3339.
    pub time: String,
    /// `adfdr-agent` or `adfdr`.
    pub by: String,
    pub pid: u32,
    /// The user and host, for commands run by a person.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(flatten)]
    pub action: AuditAction,
}

/// What was done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum AuditAction {
    Backup {
        factory: String,
        report: BackupReport,
    },
    Prune {
        factory: String,
        deleted: Vec<String>,
        freed_bytes: u64,
        failures: Vec<String>,
    },
    Repair {
        factory: String,
        objects: Vec<super::verify::Repaired>,
        /// Foreign objects deleted on request (location, key).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deleted_foreign: Vec<(String, String)>,
    },
    Drill {
        factory: String,
        report: String,
        snapshot: String,
        target: String,
        verdict: String,
        cleanup: String,
    },
    Restore(Box<RestoreAudit>),
    Capture {
        factory: String,
        report: CaptureReport,
    },
    LeaseTaken {
        factory: String,
        location: String,
    },
    LeaseLost {
        factory: String,
    },
    /// A job that may write failed before it had a report (the use case's
    /// error).
    Failed {
        factory: String,
        job: String,
        error: String,
    },
    /// A job stopped by Ctrl-C or SIGTERM where it was.
    Interrupted {
        factory: String,
        job: String,
    },
}

/// A restore's audit record: who restored which snapshot from where to
/// where, and what it did (not what it wrote).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreAudit {
    /// The identity that wrote to the target.
    pub identity: String,
    pub factory: String,
    pub snapshot: String,
    pub location: String,
    pub skipped_locations: Vec<String>,
    pub to: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub triggers: String,
    pub delete_extraneous: bool,
    pub overrides: Option<String>,
    pub outcome: RestoreResult,
    pub written: usize,
    pub deleted: usize,
    pub stopped: usize,
    pub started: usize,
    pub skipped: usize,
    pub failures: usize,
    pub mismatches: usize,
    pub read_back_error: Option<String>,
    pub seconds: f64,
    /// Stopped part way: the plan's writes done, and of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<(usize, usize)>,
}

/// How a restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreResult {
    Restored,
    RestoredWithSkips,
    VerifyFailed,
    Failed,
    /// Stopped by a signal (Ctrl-C, SIGTERM) part way: run it again.
    Interrupted,
}

impl AuditEvent {
    pub fn now(by: &str, action: AuditAction) -> AuditEvent {
        AuditEvent {
            time: crate::snapshot::rfc3339(super::system_clock()),
            by: by.to_string(),
            pid: std::process::id(),
            user: None,
            host: None,
            action,
        }
    }
}

/// The audit record in the log as fields of their own (a log shipper
/// filters on `action` and `factory`), not as text inside a string.
fn log_audit(event: &AuditEvent) {
    let by = event.by.as_str();
    match &event.action {
        AuditAction::Backup { factory, report } => tracing::info!(
            target: "audit", action = "backup", by, factory = factory.as_str(),
            snapshot = report.snapshot.as_str(),
            result = if report.result == BackupResult::Created { "created" } else { "unchanged" },
            locations = report.locations.join(",").as_str(), missed = report.missed.len(),
            "audit"
        ),
        AuditAction::Prune {
            factory,
            deleted,
            freed_bytes,
            failures,
        } => tracing::info!(
            target: "audit", action = "prune", by, factory = factory.as_str(),
            deleted = deleted.len(), freed_bytes, failures = failures.len(), "audit"
        ),
        AuditAction::Repair {
            factory,
            objects,
            deleted_foreign,
        } => tracing::info!(
            target: "audit", action = "repair", by, factory = factory.as_str(),
            objects = objects.len(), deleted_foreign = deleted_foreign.len(), "audit"
        ),
        AuditAction::Drill {
            factory,
            report,
            snapshot,
            target,
            verdict,
            cleanup,
        } => {
            tracing::info!(
                target: "audit", action = "drill", by, factory = factory.as_str(),
                report = report.as_str(), snapshot = snapshot.as_str(),
                drill_target = target.as_str(), verdict = verdict.as_str(),
                cleanup = cleanup.as_str(), "audit"
            )
        }
        AuditAction::Restore(r) => tracing::info!(
            target: "audit", action = "restore", by, identity = r.identity.as_str(),
            factory = r.factory.as_str(), snapshot = r.snapshot.as_str(),
            location = r.location.as_str(), to = r.to.as_str(),
            outcome = serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default().as_str(),
            written = r.written, deleted = r.deleted, skipped = r.skipped,
            failures = r.failures, mismatches = r.mismatches, seconds = r.seconds, "audit"
        ),
        AuditAction::Capture { factory, report } => tracing::info!(
            target: "audit", action = "capture", by, factory = factory.as_str(),
            snapshot = report.snapshot.as_deref().unwrap_or(""),
            result = serde_json::to_value(report.result).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default().as_str(),
            events = report.events, fetched = report.fetched, changed = report.changed, "audit"
        ),
        AuditAction::LeaseTaken { factory, location } => tracing::info!(
            target: "audit", action = "lease-taken", by, factory = factory.as_str(),
            location = location.as_str(), "audit"
        ),
        AuditAction::LeaseLost { factory } => tracing::info!(
            target: "audit", action = "lease-lost", by, factory = factory.as_str(), "audit"
        ),
        AuditAction::Failed {
            factory,
            job,
            error,
        } => tracing::info!(
            target: "audit", action = "failed", by, factory = factory.as_str(),
            job = job.as_str(), error = error.as_str(), "audit"
        ),
        AuditAction::Interrupted { factory, job } => tracing::info!(
            target: "audit", action = "interrupted", by, factory = factory.as_str(),
            job = job.as_str(), "audit"
        ),
    }
}

/// Appends `event` to `dir/audit.jsonl` (0600 in a 0700 directory), and
/// logs it under the `audit` target. Returns the trail's path.
pub fn audit(dir: &std::path::Path, event: &AuditEvent) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    log_audit(event);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join("audit.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_all()?;
    Ok(path)
}

/// The restores `dir/audit.jsonl` records, oldest first (`adfdr
/// restores`, as velero's `restore get`), optionally of one factory; and
/// how many lines did not read as audit events (said, not fatal: a trail
/// cut by a full disk still lists what it holds). No trail yet is none.
pub fn restores(
    dir: &std::path::Path,
    factory: Option<&str>,
) -> std::io::Result<(Vec<AuditEvent>, usize)> {
    use std::io::BufRead;
    let path = dir.join("audit.jsonl");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let (mut out, mut unreadable) = (Vec::new(), 0);
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<AuditEvent>(&line) {
            Ok(e) => {
                if let AuditAction::Restore(r) = &e.action
                    && factory.is_none_or(|f| r.factory.eq_ignore_ascii_case(f))
                {
                    out.push(e);
                }
            }
            Err(_) => unreadable += 1,
        }
    }
    Ok((out, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_runs_round_trip_as_json() {
        let r = RunRequest {
            factory: "sales".into(),
            job: Job::Verify(VerifyOptions {
                repair: true,
                ..Default::default()
            }),
        };
        let text = serde_json::to_string(&r).expect("json");
        assert!(
            text.contains("\"job\":\"verify\"") && text.contains("\"repair\":true"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RunRequest>(&text).expect("back"), r);
        // Unknown jobs do not parse: the socket answers 400.
        assert!(serde_json::from_str::<RunRequest>(r#"{"factory":"f","job":"explode"}"#).is_err());
        assert!(!r.job.changes_nothing());
        assert!(Job::Prune { dry_run: true }.changes_nothing());
        assert_eq!(JobKind::parse("drill"), Some(JobKind::Drill));
    }

    #[test]
    fn audit_events_are_flat_json_lines() {
        let e = AuditEvent::now(
            "adfdr-agent",
            AuditAction::LeaseTaken {
                factory: "sales".into(),
                location: "weu".into(),
            },
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["action"], "lease-taken");
        assert_eq!(v["factory"], "sales");
        assert_eq!(v["by"], "adfdr-agent");
    }
}
