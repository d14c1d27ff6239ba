//! `adfdr prune [FACTORY…|--all] [--dry-run]`: apply each factory's `keep`
//! policy; every decision is shown with its reason.

use crate::exit;
use adfdr_core::ops::OpError;
use adfdr_core::ops::prune::Report;

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
    for name in &names {
        use adfdr_core::ops::contract::{Job, JobReport};
        // Through the agent when it runs (it owns the catalog and the
        // leases), else here under the factory's lease; audited either way.
        let job = Job::Prune {
            dry_run: args.dry_run,
        };
        let (done, _) = crate::jobs::run(&engine, name, job, false).await?;
        match done.report {
            Some(JobReport::Prune(r)) => reports.push(*r),
            _ => return Err(OpError::from(&done)),
        }
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
