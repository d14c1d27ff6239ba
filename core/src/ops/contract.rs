//! The contract between the front ends (the agent's control socket, the
//! CLI that talks to it, the audit trail, `--json`) is its own leaf crate,
//! adfdr-contract: it depends on neither front end nor on the engine, and
//! the compiler keeps it so. This module re-exports it and keeps what
//! needs the engine: the audit trail's file, and a use case's error as a
//! job's outcome and back.

pub use adfdr_contract::audit::*;
pub use adfdr_contract::job::*;

use super::{Kind, OpError};

impl From<&OpError> for JobOutcome {
    /// A job that failed with `e` before it had a report: kind, hint and
    /// grant kept.
    fn from(e: &OpError) -> JobOutcome {
        JobOutcome {
            error: Some(JobError {
                kind: e.kind(),
                hint: e.hint(),
                grant: e.grant(),
            }),
            ..JobOutcome::failed(e.to_string())
        }
    }
}

impl From<&JobOutcome> for OpError {
    /// A failed job's error again, kind, hint and grant kept (for a front end
    /// that reports errors as `OpError`s).
    fn from(o: &JobOutcome) -> OpError {
        OpError::Op {
            kind: o.error.as_ref().map_or(Kind::Failed, |e| e.kind),
            message: o.summary.clone(),
            hint: o.error.as_ref().and_then(|e| e.hint.clone()),
            grant: o.error.as_ref().and_then(|e| e.grant.clone()).map(Box::new),
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
