//! `adfdr backup [FACTORY…|--all] [--force]`: each factory's backup, through
//! the agent when it runs (it owns the catalog and the leases), else here
//! under the factory's lease. Both paths print the same `BackupOutput`.

use crate::exit;
use adfdr_core::ops::OpError;
use adfdr_core::ops::contract::{BackupReport, BackupResult, Job, JobReport};
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
    /// For a refusal: the role the principal lacks, and on which scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<adfdr_core::ops::Grant>,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = ctx.engine()?;
    let names = crate::factories::select(&mut engine, &args.factories.names(), args.all).await?;
    let results = backups(ctx, &engine, names, args.force).await;
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

/// Interrupted wins (130), then usage errors (2), then failures (1), then
/// degraded (3).
fn exit_code(results: &[FactoryBackup]) -> i32 {
    let kind = |k: &str| {
        results
            .iter()
            .any(|r| r.error.as_ref().is_some_and(|e| e.kind == k))
    };
    if kind("interrupted") {
        exit::INTERRUPTED
    } else if kind("usage") {
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
        if let Some(g) = &e.grant {
            eprintln!(
                "adfdr: needs: the role '{}' for {} on {}",
                output::clean(&g.role),
                output::clean(&g.principal),
                output::clean(&g.scope)
            );
        }
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

/// Each factory's backup, as many at once as `parallel_factories` allows
/// (through the agent when it runs, else here: crate::jobs).
async fn backups(
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
            let job = Job::Backup {
                force,
                reconcile: false,
            };
            let result = crate::jobs::run(engine, &name, job, false).await;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            match result {
                Ok((done, through)) => from_outcome(name, through.as_str(), done),
                Err(e) => failed(name, "process", &e),
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

fn from_outcome(
    factory: String,
    through: &str,
    done: adfdr_core::ops::contract::JobOutcome,
) -> FactoryBackup {
    match done.report {
        Some(JobReport::Backup(report)) => FactoryBackup {
            factory,
            ok: done.ok,
            degraded: done.degraded,
            through: through.into(),
            report: Some(report),
            error: None,
        },
        _ => failed(factory, through, &OpError::from(&done)),
    }
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
            hint: e.hint(),
            grant: e.grant(),
        }),
    }
}
