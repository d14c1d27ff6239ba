//! `adfdr backup [FACTORY…|--all] [--force]`: each factory's backup, through
//! the agent when it runs (it owns the catalog and the leases), else here
//! under the factory's lease. Both paths print the same `BackupOutput`.

use crate::exit;
use adfdr_core::ops::contract::{BackupReport, BackupResult, Job, JobReport};
use adfdr_core::ops::{OpError, system_clock};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    factories: crate::factories::Many,
    /// Every factory, configured or discovered.
    #[arg(long)]
    all: bool,
    /// Write a new snapshot even when nothing changed.
    #[arg(long)]
    force: bool,
}

/// `adfdr backup --json` (schema `adfdr.backup.v1`).
#[derive(Serialize, JsonSchema)]
pub struct BackupOutput {
    pub factories: Vec<FactoryBackup>,
}

#[derive(Serialize, JsonSchema)]
pub struct FactoryBackup {
    pub factory: String,
    /// Backed up, every copy written.
    pub ok: bool,
    /// Backed up, but a location missed its copy (queued for repair).
    pub degraded: bool,
    /// `agent` or `process`.
    pub through: String,
    pub report: Option<BackupReport>,
    /// Why it failed.
    pub error: Option<ErrorOut>,
}

#[derive(Serialize, JsonSchema)]
pub struct ErrorOut {
    pub kind: String,
    pub message: String,
    /// What to do next, where adfdr knows.
    pub hint: Option<String>,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = ctx.engine()?;
    let names = crate::factories::select(&mut engine, &args.factories.names(), args.all).await?;
    let results = match crate::agent::Agent::find(&engine.config) {
        Some(agent) => through_agent(&agent, &names, args.force).await?,
        None => in_process(ctx, &engine, names, args.force).await,
    };
    let code = exit_code(&results);
    if ctx.json {
        crate::json::emit("backup", &BackupOutput { factories: results });
    } else {
        for r in &results {
            print(r);
        }
    }
    Ok(code)
}

/// Usage errors win (2), then failures (1), then degraded (3).
fn exit_code(results: &[FactoryBackup]) -> i32 {
    if results
        .iter()
        .any(|r| r.error.as_ref().is_some_and(|e| e.kind == "usage"))
    {
        exit::USAGE
    } else if results.iter().any(|r| r.error.is_some()) {
        exit::FAILED
    } else if results.iter().any(|r| r.degraded) {
        exit::DEGRADED
    } else {
        exit::OK
    }
}

fn print(r: &FactoryBackup) {
    let by = if r.through == "agent" {
        " (run by the agent)"
    } else {
        ""
    };
    if let Some(e) = &r.error {
        eprintln!(
            "adfdr: error: {}: {}{by}",
            r.factory,
            output::clean(&e.message)
        );
        if let Some(hint) = &e.hint {
            eprintln!("adfdr: hint: {}", output::clean(hint));
        }
        return;
    }
    let Some(report) = &r.report else { return };
    match report.result {
        BackupResult::Created => println!(
            "{}: snapshot {} ({} resources) in {}{by}",
            r.factory,
            report.snapshot,
            report.resources.unwrap_or(0),
            report.locations.join(", ")
        ),
        BackupResult::Unchanged => println!(
            "{}: unchanged since {} (checkpoint {}){by}",
            r.factory,
            report.snapshot,
            report.checkpoint.as_deref().unwrap_or("?")
        ),
    }
    for m in &report.missed {
        crate::warning!(
            "{}: location {} missed its copy: {}",
            r.factory,
            m.location,
            m.error
        );
        crate::warning!(
            "queued for repair; run `adfdr verify --repair` when {} is back",
            m.location
        );
    }
}

async fn in_process(
    ctx: &Ctx,
    engine: &adfdr_core::ops::Engine,
    names: Vec<String>,
    force: bool,
) -> Vec<FactoryBackup> {
    let parallel = engine.config.backup.parallel_factories.max(1);
    let json_out = ctx.json;
    futures::stream::iter(names)
        .map(|name| async move {
            let fc = engine.config.factory(&name).expect("selected").clone();
            let spinner = output::spinner(json_out, format!("backing up {name} ({})…", fc.factory));
            let result = backup_one(engine, &fc, force).await;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            match result {
                Ok(report) => FactoryBackup {
                    degraded: !report.missed.is_empty(),
                    ok: report.missed.is_empty(),
                    factory: name,
                    through: "process".into(),
                    report: Some(report),
                    error: None,
                },
                Err(e) => failed(name, "process", &e),
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// One backup under the factory's lease: another agent or command may be
/// working on it, and the lease in the store says who may.
async fn backup_one(
    engine: &adfdr_core::ops::Engine,
    fc: &adfdr_core::config::FactoryConfig,
    force: bool,
) -> Result<BackupReport, OpError> {
    let guard = adfdr_core::ops::lease::exclusive(
        &engine.replicas,
        &fc.name,
        engine.config.agent.lease_seconds,
        "cli",
    )
    .await?;
    let result = adfdr_core::ops::backup::backup(engine, fc, force, system_clock).await;
    guard.release().await;
    result.map(|o| BackupReport::from_outcome(&fc.name, &o))
}

fn failed(factory: String, through: &str, e: &OpError) -> FactoryBackup {
    FactoryBackup {
        factory,
        ok: false,
        degraded: false,
        through: through.into(),
        report: None,
        error: Some(ErrorOut {
            kind: e.kind().as_str().into(),
            message: e.to_string(),
            hint: e.hint().map(str::to_string),
        }),
    }
}

/// The agent owns the catalog while it runs: it does the backups.
async fn through_agent(
    agent: &crate::agent::Agent,
    names: &[String],
    force: bool,
) -> Result<Vec<FactoryBackup>, OpError> {
    let mut out = Vec::new();
    for name in names {
        let done = agent
            .run(
                name,
                Job::Backup {
                    force,
                    reconcile: false,
                },
            )
            .await?;
        let report = match done.report {
            Some(JobReport::Backup(r)) => Some(r),
            _ => None,
        };
        out.push(match report {
            Some(report) => FactoryBackup {
                factory: name.clone(),
                ok: done.ok,
                degraded: done.degraded,
                through: "agent".into(),
                report: Some(report),
                error: None,
            },
            None => failed(name.clone(), "agent", &OpError::failed(done.summary)),
        });
    }
    Ok(out)
}
