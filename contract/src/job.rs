//! The jobs the agent schedules and runs on request, how a run is asked
//! for and how it ended, and the agent's status: the control socket's
//! bodies and the CLI's `--json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::drill::{DrillCleanup, DrillRecord};

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
        changes: Vec<crate::events::Change>,
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
    pub kind: crate::Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For a refusal: the role the principal lacks, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<crate::Grant>,
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
}

/// Each kind of job's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum JobReport {
    Backup(BackupReport),
    Verify(Box<crate::verify::Report>),
    Prune(Box<crate::prune::Report>),
    Drill(Box<crate::drill::Report>),
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
