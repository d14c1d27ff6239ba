//! `adfdr verify [FACTORY] [--snapshot ID] [--read-data] [--location NAME] [--repair]`
//! Exit 4 when a copy is damaged, 3 when one is only missing or a location is unreachable.

use adfdr_core::ops::verify::{Report, Scope, check};
use adfdr_core::ops::{OpError, exit};

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {
    factory: Option<String>,
    /// Only this snapshot.
    #[arg(long)]
    snapshot: Option<String>,
    /// Also decrypt everything and check every resource hash.
    #[arg(long)]
    read_data: bool,
    /// Only this location.
    #[arg(long)]
    location: Option<String>,
    /// Copy missing or damaged objects from a healthy location.
    #[arg(long)]
    repair: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let factory = output::factory_filter(&engine.config, args.factory.as_deref())?;
    if let Some(l) = &args.location
        && engine.replicas.get(l).is_none()
    {
        return Err(OpError::Usage(format!("unknown location '{l}'")));
    }
    let scope = Scope {
        factory: factory.as_deref(),
        snapshot: args.snapshot.as_deref(),
        location: args.location.as_deref(),
        keys: args.read_data.then_some(&engine.keys),
    };
    let spinner = output::spinner(ctx.json, "verifying every copy…".into());
    let report = match crate::agent::Agent::find(&engine.config) {
        // The agent owns the catalog (and the factories' leases): it checks.
        Some(agent) => through_agent(&agent, &engine.config, factory.as_deref(), &args).await?,
        None => {
            let catalog = if args.repair {
                Some(engine.catalog()?)
            } else {
                None
            };
            check(&engine.replicas, &scope, args.repair, catalog.as_deref()).await?
        }
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let healthy = report.healthy();
    if ctx.json {
        output::json(&serde_json::json!({
            "healthy": healthy, "snapshots": report.snapshots, "read_data": report.read_data,
            "locations": report.locations.iter().map(|l| serde_json::json!({
                "name": l.name, "read_only": l.read_only, "error": l.error, "objects": l.checked, "bytes": l.bytes,
                "damaged": l.damaged.iter().map(|p| serde_json::json!({"key": p.key, "problem": p.problem})).collect::<Vec<_>>(),
                "missing": l.missing.iter().map(|p| serde_json::json!({"key": p.key, "problem": p.problem})).collect::<Vec<_>>(),
                "incomplete": l.incomplete,
            })).collect::<Vec<_>>(),
            "repaired": report.repaired.iter().map(|r| serde_json::json!({"location": r.location, "object": format!("{} (from {})", r.key, r.from)})).collect::<Vec<_>>(),
            "repair_failed": report.repair_failed.iter().map(|(l, k, e)| serde_json::json!({"location": l, "object": k, "error": e})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "verified {} snapshot(s){}",
            report.snapshots,
            if report.read_data {
                ", decrypting every resource"
            } else {
                " (object digests; --read-data also decrypts)"
            }
        );
        for l in &report.locations {
            let state = if !l.damaged.is_empty() {
                "DAMAGED"
            } else if l.healthy() {
                "ok"
            } else {
                "INCOMPLETE"
            };
            match &l.error {
                Some(e) => println!("  {:<12} UNREACHABLE  {e}", l.name),
                None => println!(
                    "  {:<12} {state:<12} {} objects, {}",
                    l.name,
                    l.checked,
                    output::size(l.bytes)
                ),
            }
            for p in &l.damaged {
                println!("      damaged  {}: {}", p.key, p.problem);
            }
            for p in &l.missing {
                println!("      missing  {}: {}", p.key, p.problem);
            }
        }
        for r in &report.repaired {
            println!("  repaired {}: {} (from {})", r.location, r.key, r.from);
        }
        for (l, k, e) in &report.repair_failed {
            println!("  NOT repaired {l}: {k}: {e}");
        }
        if !healthy && !args.repair {
            println!(
                "run `adfdr verify --repair` to copy good objects over missing or damaged ones"
            );
        }
    }
    // Damage is a failed check (4); a copy that is only missing, or a location
    // that cannot be reached, leaves the data intact elsewhere: degraded (3).
    let damaged = report.locations.iter().any(|l| !l.damaged.is_empty());
    Ok(if healthy {
        exit::OK
    } else if damaged {
        exit::CHECK_FAILED
    } else {
        exit::DEGRADED
    })
}

/// Runs the check in the agent, one factory at a time, and merges the reports.
async fn through_agent(
    agent: &crate::agent::Agent,
    config: &adfdr_core::config::Config,
    factory: Option<&str>,
    args: &Args,
) -> Result<Report, OpError> {
    let names = match factory {
        Some(f) => vec![f.to_string()],
        None => config.factory_names(),
    };
    let options = serde_json::json!({
        "snapshot": args.snapshot, "read_data": args.read_data,
        "location": args.location, "repair": args.repair,
    });
    let mut report = Report::default();
    for name in names {
        let done = agent.run(&name, "verify", false, &options).await?;
        let part: Report = serde_json::from_value(done.result.clone()).map_err(|_| {
            OpError::Failed(format!(
                "the agent's verify of {name} ended without a report: {}",
                done.outcome
            ))
        })?;
        report.merge(part);
    }
    Ok(report)
}
