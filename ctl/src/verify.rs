//! `adfdr verify [FACTORY] [--snapshot ID] [--read-data] [--location NAME] [--repair] [--delete-foreign]`
//! Every manifest is decrypted with the configured keys; `--read-data` also
//! decrypts every payload. Exit 4 when a copy is damaged, something foreign
//! sits in a location, or a snapshot vanished; 3 when a copy is only missing
//! or a location is unreachable; 2 for an unknown snapshot or location.

use crate::exit;
use adfdr_core::ops::verify::{Repair, Report, Scope};
use adfdr_core::ops::{OpError, system_clock};

use crate::{Ctx, output};

/// `adfdr verify --json` (schema `adfdr.verify.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct VerifyOutput<'a> {
    pub healthy: bool,
    #[serde(flatten)]
    pub report: &'a Report,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    factory: crate::factories::One,
    /// Only this snapshot.
    #[arg(long)]
    snapshot: Option<String>,
    /// Also decrypt every payload and check every resource hash.
    #[arg(long)]
    read_data: bool,
    /// Only this location.
    #[arg(long)]
    location: Option<String>,
    /// Copy missing or damaged objects from a copy that checks out.
    #[arg(long)]
    repair: bool,
    /// Delete foreign objects (names no copy of which checks out) from
    /// writable locations.
    #[arg(long)]
    delete_foreign: bool,
    #[command(flatten)]
    incident: crate::incident::IncidentArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = crate::incident::engine(ctx, &args.incident)?;
    let factory = crate::factories::filter(&mut engine, args.factory.name()?).await?;
    if let Some(l) = &args.location
        && engine.replicas.get(l).is_none()
    {
        return Err(OpError::usage(format!("unknown location '{l}'")));
    }
    let scope = Scope {
        factory: factory.as_deref(),
        snapshot: args.snapshot.as_deref(),
        location: args.location.as_deref(),
        keys: Some(&engine.keys),
        read_data: args.read_data,
        now: system_clock(),
    };
    let repair = Repair {
        copy: args.repair,
        delete_foreign: args.delete_foreign,
    };
    let spinner = output::spinner(ctx.json, "verifying every copy…".into());
    let report = match crate::incident::agent(&engine) {
        // The agent owns the catalog (and the factories' leases): it checks.
        Some(agent) => through_agent(&agent, &engine.config, factory.as_deref(), &args).await?,
        // Here: the whole store (incident mode keeps no catalog), what it
        // copies or deletes audited as one record.
        None => {
            let actor = adfdr_core::ops::job::Actor::person();
            adfdr_core::ops::job::verify_store(&engine, &scope, repair, &actor).await?
        }
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let healthy = report.healthy();
    if ctx.json {
        crate::json::emit(
            "verify",
            &VerifyOutput {
                healthy,
                report: &report,
            },
        );
    } else {
        print_text(&report, &args);
    }
    // Damage, foreign objects and vanished snapshots are a failed check (4);
    // a copy that is only missing, or a location that cannot be reached,
    // leaves the data intact elsewhere: degraded (3).
    Ok(if healthy {
        exit::OK
    } else if report.failed_check() {
        exit::CHECK_FAILED
    } else {
        exit::DEGRADED
    })
}

fn print_text(report: &Report, args: &Args) {
    println!(
        "verified {} snapshot(s){}",
        report.snapshots,
        if report.read_data {
            ", decrypting every manifest and every resource"
        } else if report.authenticated {
            ", decrypting every manifest (--read-data also decrypts payloads)"
        } else {
            " (object digests)"
        }
    );
    for l in &report.locations {
        let state = if l.damaged_or_foreign() {
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
        for p in &l.foreign {
            println!("      foreign  {}: {}", p.key, p.problem);
        }
    }
    for v in &report.vanished {
        println!(
            "  VANISHED {v}: the catalog saw it committed, no location holds it, and adfdr did not prune it (deleted behind adfdr's back?)"
        );
    }
    for r in &report.repaired {
        println!("  repaired {}: {} (from {})", r.location, r.key, r.from);
    }
    for (l, k) in &report.deleted_foreign {
        println!("  deleted foreign {l}: {k}");
    }
    for (l, k, e) in &report.repair_failed {
        println!("  NOT repaired {l}: {k}: {e}");
    }
    let damaged = report
        .locations
        .iter()
        .any(|l| !l.damaged.is_empty() || !l.missing.is_empty());
    let foreign = report.locations.iter().any(|l| !l.foreign.is_empty());
    if damaged && !args.repair {
        println!("run `adfdr verify --repair` to copy good objects over missing or damaged ones");
    }
    if foreign && !args.delete_foreign {
        println!(
            "foreign objects are never copied or counted; remove them with `adfdr verify --delete-foreign` once you know how they got there"
        );
    }
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
    use adfdr_core::ops::contract::{Job, JobReport, VerifyOptions};
    let job = Job::Verify(VerifyOptions {
        snapshot: args.snapshot.clone(),
        location: args.location.clone(),
        read_data: args.read_data,
        repair: args.repair,
        delete_foreign: args.delete_foreign,
    });
    let mut report = Report::default();
    for name in names {
        let done = agent.run(&name, job.clone()).await?;
        let part = match done.report {
            Some(JobReport::Verify(r)) => *r,
            // The error's kind came along as data (not-found: exit 2).
            _ => return Err(OpError::from(&done)),
        };
        report.merge(part);
    }
    Ok(report)
}
