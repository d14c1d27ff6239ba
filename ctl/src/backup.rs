//! `adfdr backup [FACTORY…|--all] [--force]`

use adfdr_core::ops::backup::{Outcome, backup};
use adfdr_core::ops::{OpError, exit, system_clock};
use futures::StreamExt;

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Factories to back up (configured names).
    factories: Vec<String>,
    /// Every configured factory.
    #[arg(long)]
    all: bool,
    /// Write a new snapshot even when nothing changed.
    #[arg(long)]
    force: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let names = output::select_factories(&engine.config, &args.factories, args.all)?;
    if let Some(agent) = crate::agent::Agent::find(&engine.config) {
        return through_agent(ctx, &agent, &names, args.force).await;
    }
    let parallel = engine.config.backup.parallel_factories.max(1);
    let engine_ref = &engine;
    let json_out = ctx.json;
    let results: Vec<(String, Result<Outcome, OpError>)> = futures::stream::iter(names)
        .map(|name| async move {
            let fc = engine_ref.config.factory(&name).expect("selected").clone();
            let spinner = output::spinner(json_out, format!("backing up {name} ({})…", fc.factory));
            // Another agent or command may be working on this factory: the
            // factory's lease in the store says who may.
            let result = match adfdr_core::ops::lease::exclusive(
                &engine_ref.replicas,
                &name,
                engine_ref.config.agent.lease_seconds,
                "cli",
            )
            .await
            {
                Ok(guard) => {
                    let result = backup(engine_ref, &fc, args.force, system_clock).await;
                    guard.release().await;
                    result
                }
                Err(e) => Err(e),
            };
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            (name, result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;

    let (mut usage, mut failed_any, mut degraded) = (false, false, false);
    let mut json = Vec::new();
    for (name, result) in results {
        match result {
            Ok(outcome) => {
                degraded |= outcome.degraded();
                let (failed, line, value) = match &outcome {
                    Outcome::Created { record, failed } => (
                        failed,
                        format!(
                            "{name}: snapshot {} ({} resources, {}) in {}",
                            record.id,
                            record.resources,
                            output::size(record.payload_size + record.manifest_size),
                            record.locations.join(", ")
                        ),
                        serde_json::json!({"factory": name, "result": "created", "snapshot": record.id,
                            "resources": record.resources, "bytes": record.payload_size + record.manifest_size,
                            "locations": record.locations}),
                    ),
                    Outcome::Unchanged {
                        snapshot,
                        checkpoint,
                        failed,
                    } => (
                        failed,
                        format!("{name}: unchanged since {snapshot} (checkpoint {checkpoint})"),
                        serde_json::json!({"factory": name, "result": "unchanged", "snapshot": snapshot, "checkpoint": checkpoint}),
                    ),
                };
                let mut value = value;
                value["degraded"] = serde_json::json!(
                    failed
                        .iter()
                        .map(|(l, e)| serde_json::json!({"location": l, "error": e}))
                        .collect::<Vec<_>>()
                );
                if ctx.json {
                    json.push(value);
                } else {
                    println!("{line}");
                    for (location, error) in failed {
                        eprintln!(
                            "adfdr: warning: {name}: location {location} missed its copy: {error}"
                        );
                        eprintln!(
                            "adfdr: warning: queued for repair; run `adfdr verify --repair` when {location} is back"
                        );
                    }
                }
            }
            Err(e) => {
                usage |= e.exit_code() == exit::USAGE;
                failed_any = true;
                if ctx.json {
                    json.push(serde_json::json!({"factory": name, "result": "failed", "error": e.to_string()}));
                }
                eprintln!("adfdr: error: {name}: {e}");
            }
        }
    }
    if ctx.json {
        output::json(&serde_json::Value::Array(json));
    }
    // Usage errors win (2), then failures (1), then degraded (3).
    Ok(if usage {
        exit::USAGE
    } else if failed_any {
        exit::FAILED
    } else if degraded {
        exit::DEGRADED
    } else {
        exit::OK
    })
}

/// The agent owns the catalog while it runs: it does the backups.
async fn through_agent(
    ctx: &Ctx,
    agent: &crate::agent::Agent,
    names: &[String],
    force: bool,
) -> Result<i32, OpError> {
    let (mut failed_any, mut degraded_any) = (false, false);
    let mut json = Vec::new();
    for name in names {
        let done = agent
            .run(name, "backup", force, &serde_json::Value::Null)
            .await?;
        let (ok, outcome) = (done.ok, done.outcome);
        let degraded = !ok && outcome.contains("degraded");
        failed_any |= !ok && !degraded;
        degraded_any |= degraded;
        if ctx.json {
            json.push(serde_json::json!({"factory": name, "ok": ok, "outcome": outcome, "through": "agent"}));
        } else if ok {
            println!("{name}: {outcome} (run by the agent)");
        } else {
            eprintln!("adfdr: error: {name}: {outcome} (run by the agent)");
        }
    }
    if ctx.json {
        output::json(&serde_json::Value::Array(json));
    }
    Ok(if failed_any {
        exit::FAILED
    } else if degraded_any {
        exit::DEGRADED
    } else {
        exit::OK
    })
}
