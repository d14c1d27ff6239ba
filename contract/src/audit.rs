//! The audit trail's records: a privileged act, who did it, and when.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::{BackupReport, CaptureReport};

/// `2026-12-08T00:34:04Z`: the trail's time format (UTC, whole seconds).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| "?".into())
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
        objects: Vec<crate::verify::Repaired>,
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
            time: rfc3339(time::OffsetDateTime::now_utc()),
            by: by.to_string(),
            pid: std::process::id(),
            user: None,
            host: None,
            action,
        }
    }
}
