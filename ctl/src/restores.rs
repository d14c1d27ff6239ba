//! `adfdr restores [FACTORY]`: the restores this host's audit trail
//! records (who, when, what, into where, how it ended), newest first, as
//! velero's `restore get` lists a cluster's.

use adfdr_core::ops::OpError;
use adfdr_core::ops::contract::{AuditAction, RestoreAudit};

use crate::{Ctx, exit};

/// `adfdr restores --json` (schema `adfdr.restores.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RestoresOutput {
    /// The trail read (`{state_dir}/audit.jsonl`).
    pub trail: String,
    /// Newest first.
    pub restores: Vec<RestoreRow>,
    /// Lines of the trail that did not read as audit events.
    pub unreadable: usize,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RestoreRow {
    /// When it started (RFC 3339).
    pub time: String,
    /// `user@host` that ran it.
    pub by: String,
    #[serde(flatten)]
    pub restore: RestoreAudit,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    factory: crate::factories::One,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// The restores run in incident mode (no config; recorded under
    /// $XDG_STATE_HOME/adfdr).
    #[arg(long)]
    incident: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    // The config's state directory; with no config, incident mode's, where
    // its restores were recorded.
    let dir = if args.incident {
        adfdr_core::ops::incident_state_dir()
    } else {
        ctx.load_config()?.agent.state_dir
    };
    let factory = args.factory.name()?;
    let (events, unreadable) = adfdr_core::ops::contract::restores(&dir, factory).map_err(|e| {
        OpError::failed(format!(
            "cannot read the audit trail {}: {e}",
            dir.join("audit.jsonl").display()
        ))
    })?;
    let mut rows: Vec<RestoreRow> = events
        .into_iter()
        .filter_map(|e| match e.action {
            AuditAction::Restore(r) => Some(RestoreRow {
                time: e.time,
                by: match (e.user, e.host) {
                    (Some(u), Some(h)) => format!("{u}@{h}"),
                    _ => e.by,
                },
                restore: *r,
            }),
            _ => None,
        })
        .rev()
        .collect();
    if let Some(n) = args.last {
        rows.truncate(n);
    }
    if unreadable > 0 {
        crate::warning!(
            "{unreadable} line(s) of {} did not read as audit events and are not listed",
            dir.join("audit.jsonl").display()
        );
    }
    let trail = dir.join("audit.jsonl").display().to_string();
    if ctx.json {
        crate::json::emit(
            "restores",
            &RestoresOutput {
                trail,
                restores: rows,
                unreadable,
            },
        );
    } else if rows.is_empty() {
        println!(
            "no restores recorded in {trail}{}",
            factory.map(|f| format!(" for {f}")).unwrap_or_default()
        );
    } else {
        table(&rows);
    }
    Ok(exit::OK)
}

fn table(rows: &[RestoreRow]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let x = &r.restore;
            let outcome = serde_json::to_value(x.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                r.time.clone(),
                r.by.clone(),
                format!("{}@{}", x.factory, x.snapshot),
                x.to.clone(),
                match x.interrupted {
                    Some((done, of)) => format!("{outcome} ({done} of {of} writes)"),
                    None => outcome,
                },
                format!(
                    "{} written, {} deleted, {} skipped, {} failed",
                    x.written, x.deleted, x.skipped, x.failures
                ),
                adfdr_core::plan::drill::human(x.seconds),
            ]
        })
        .collect();
    crate::output::table(
        &[
            "STARTED", "BY", "SNAPSHOT", "INTO", "OUTCOME", "CHANGES", "TOOK",
        ],
        &cells,
    );
}
