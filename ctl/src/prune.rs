//! `adfdr prune [FACTORY…|--all] [--dry-run]`: apply each factory's `keep`
//! policy; every decision is shown with its reason.

use crate::exit;
use adfdr_core::ops::prune::{Report, prune};
use adfdr_core::ops::{OpError, system_clock};
use adfdr_core::plan::retention::zone;

use crate::{Ctx, output};

/// `adfdr prune --json` (schema `adfdr.prune.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct PruneOutput {
    pub factories: Vec<Report>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    factories: crate::factories::Many,
    /// Every factory, configured or discovered.
    #[arg(long)]
    all: bool,
    /// Show each decision and what would be freed; delete nothing.
    #[arg(long, short = 'n', visible_alias = "plan")]
    dry_run: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = ctx.engine()?;
    let names = crate::factories::select(&mut engine, &args.factories.names(), args.all).await?;
    let mut reports: Vec<Report> = Vec::new();
    if let Some(agent) = crate::agent::Agent::find(&engine.config) {
        // The agent owns the catalog and the factories' leases: it prunes.
        for name in &names {
            use adfdr_core::ops::contract::{Job, JobReport};
            let done = agent
                .run(
                    name,
                    Job::Prune {
                        dry_run: args.dry_run,
                    },
                )
                .await?;
            match done.report {
                Some(JobReport::Prune(r)) => reports.push(*r),
                _ => {
                    return Err(OpError::failed(format!(
                        "the agent's prune of {name} failed: {}",
                        done.summary
                    )));
                }
            }
        }
        return Ok(print(ctx, &reports));
    }
    let catalog = engine.catalog()?;
    for name in &names {
        let fc = engine.config.factory(name).expect("selected");
        let rules = adfdr_core::ops::prune::rules(&engine.config, fc);
        // Hours, days, weeks… are counted in the factory's time zone (validated
        // with the config; UTC by default).
        let tz = fc
            .timezone
            .as_deref()
            .and_then(|t| t.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(chrono_tz::UTC);
        // A dry run changes nothing; a real one must not race an agent's run.
        let guard = if args.dry_run {
            None
        } else {
            Some(
                adfdr_core::ops::lease::exclusive(
                    &engine.replicas,
                    name,
                    engine.config.agent.lease_seconds,
                    "cli",
                )
                .await?,
            )
        };
        let report = prune(
            &engine.replicas,
            &engine.keys,
            Some(&catalog),
            name,
            &rules,
            &zone(tz),
            system_clock(),
            args.dry_run,
        )
        .await;
        if let Some(g) = guard {
            g.release().await;
        }
        reports.push(report?);
    }
    Ok(print(ctx, &reports))
}

fn print(ctx: &Ctx, reports: &[Report]) -> i32 {
    let failed = reports.iter().any(|r| !r.failures.is_empty());
    if ctx.json {
        crate::json::emit(
            "prune",
            &PruneOutput {
                factories: reports.to_vec(),
            },
        );
    } else {
        for r in reports {
            let going = r.snapshots.iter().filter(|s| !s.keep).count();
            println!(
                "{}: {} snapshots, {} kept, {} {}",
                r.factory,
                r.snapshots.len(),
                r.snapshots.len() - going,
                going,
                if r.dry_run {
                    "would be deleted"
                } else {
                    "deleted"
                }
            );
            for s in &r.snapshots {
                println!(
                    "  {} {}  {:>9}  {}",
                    if s.keep { "keep  " } else { "delete" },
                    s.id,
                    output::size(s.bytes),
                    s.reasons.join("; ")
                );
            }
            println!(
                "  {} {} ({} checkpoints with them)",
                if r.dry_run { "would free" } else { "freed" },
                output::size(r.freed_bytes),
                r.checkpoints_deleted
            );
            if !r.leftovers.is_empty() {
                println!(
                    "  {} {} leftover payload(s) of backups that never committed: {}",
                    if r.dry_run { "would delete" } else { "deleted" },
                    r.leftovers.len(),
                    r.leftovers.join(", ")
                );
            }
            for u in &r.untouched {
                println!("  not pruned: {u}");
            }
            for f in &r.failures {
                println!("  FAILED {f}");
            }
            for f in &r.foreign {
                println!("  NOT A SNAPSHOT {f}");
            }
        }
    }
    // Names that are not snapshots are a failed check (a location holds
    // something planted or broken), whatever else the prune did.
    if reports.iter().any(|r| !r.foreign.is_empty()) {
        exit::CHECK_FAILED
    } else if failed {
        exit::DEGRADED
    } else {
        exit::OK
    }
}
