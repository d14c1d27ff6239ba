//! `adfdr restore SNAPSHOT|latest --factory NAME --to SUB/RG/FACTORY [...]`:
//! parse, prepare (core: resolve, hold, read, plan), show the plan and ask
//! (or --yes), execute (core: apply, read back, judge, audit, release),
//! render. Incident mode: `--store URL... --key FILE|KEYVAULT-KEY-URL` needs
//! no config file, no catalog and no agent.

mod render;

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::exit;
use adfdr_core::ops::restore::{self as op, Asked, TargetFactory};
use adfdr_core::ops::{Engine, OpError};
use adfdr_core::plan::Selector;
use adfdr_core::plan::restore::{PlanOptions, RuntimeMode, TriggerMode};

pub use render::RestoreOutput;

use crate::Ctx;
use crate::incident::IncidentArgs;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Triggers {
    /// Restored triggers stay stopped.
    Stopped,
    /// Triggers started at backup time are started again.
    AsBackedUp,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Runtimes {
    /// Integration runtimes and CDCs running at backup are started again.
    AsBackedUp,
    /// They stay stopped.
    Stopped,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, or `latest` (with --factory).
    #[arg(required_unless_present_any = ["at", "undo"])]
    snapshot: Option<String>,
    /// Put back exactly what one change set touched (its correlation id,
    /// from `adfdr log FACTORY --sets`), as the snapshot before it held it:
    /// resources it created are deleted (with --factory; into the source
    /// unless --to says otherwise).
    #[arg(
        long,
        value_name = "CHANGE_SET",
        conflicts_with_all = ["snapshot", "at", "include", "exclude", "delete_extraneous"]
    )]
    undo: Option<String>,
    /// With --undo: also put back resources changed again since by other
    /// change sets (their later changes are undone too).
    #[arg(long, requires = "undo")]
    force: bool,
    /// The snapshot in force at this time (RFC 3339, or shorter and local:
    /// `2026-12-01 09:30`): the newest taken at or before it.
    #[arg(long, value_name = "TIME", conflicts_with = "snapshot")]
    at: Option<String>,
    /// The factory: configured or discovered name, or the store's name in
    /// incident mode [default: the only one].
    #[arg(long, short = 'f', value_name = "FACTORY")]
    factory: Option<String>,
    /// Target factory: SUBSCRIPTION/RESOURCE_GROUP/FACTORY (or its ARM id)
    /// [default with --undo: the snapshot's source].
    #[arg(long, value_name = "SUB/RG/FACTORY", required_unless_present = "undo")]
    to: Option<String>,
    /// Region of a factory that must be created [default: the snapshot's,
    /// or what --map puts in its place].
    #[arg(long)]
    region: Option<String>,
    /// A region map (TOML: [regions], [ids], [hosts]): what stands in for
    /// what in another region; applied to every definition before
    /// --overrides, each rewrite shown in the plan (docs/OPERATIONS.md).
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Restore only these (KIND:GLOB, repeatable); what they need comes along.
    #[arg(long, value_name = "KIND:GLOB")]
    include: Vec<String>,
    /// Leave these out (KIND:GLOB, repeatable).
    #[arg(long, value_name = "KIND:GLOB")]
    exclude: Vec<String>,
    /// Rules that set, remove or fill JSON Pointer paths (docs/OPERATIONS.md).
    #[arg(long, value_name = "FILE")]
    overrides: Option<PathBuf>,
    /// Trigger state after the restore [default: stopped; with --undo:
    /// as-backed-up, the state before the change set].
    #[arg(long, value_enum)]
    triggers: Option<Triggers>,
    /// Integration runtimes (an Azure-SSIS IR takes 20-30 minutes) and
    /// change data captures after the restore.
    #[arg(long, value_enum, default_value = "as-backed-up")]
    runtimes: Runtimes,
    /// Delete target resources that are not in the snapshot.
    #[arg(long)]
    delete_extraneous: bool,
    /// Print the plan and change nothing (also --plan).
    #[arg(long = "dry-run", short = 'n', visible_alias = "plan")]
    plan: bool,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Override paths that match nothing, and secrets nobody fills, are errors.
    #[arg(long)]
    strict: bool,
    /// Also restore the git configuration (not wanted on a DR copy).
    #[arg(long)]
    with_git: bool,
    /// Most writes in flight: the restore starts with 16 and grows while the
    /// service takes them, halving (all writes together) on throttling.
    #[arg(long, default_value_t = adfdr_core::ops::restore::window::CEILING)]
    concurrency: usize,
    #[command(flatten)]
    incident: IncidentArgs,
}

fn plan_options(args: &Args) -> Result<PlanOptions, OpError> {
    let selectors = |list: &[String]| {
        list.iter()
            .map(|s| {
                Selector::parse(s).map_err(|e| OpError::usage(format!("--include/--exclude {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(PlanOptions {
        include: selectors(&args.include)?,
        exclude: selectors(&args.exclude)?,
        triggers: match args.triggers {
            Some(Triggers::Stopped) => TriggerMode::Stopped,
            Some(Triggers::AsBackedUp) => TriggerMode::AsBackedUp,
            None if args.undo.is_some() => TriggerMode::AsBackedUp,
            None => TriggerMode::Stopped,
        },
        runtimes: match args.runtimes {
            Runtimes::AsBackedUp => RuntimeMode::AsBackedUp,
            Runtimes::Stopped => RuntimeMode::Stopped,
        },
        delete_extraneous: args.delete_extraneous,
        strict: args.strict,
        with_git: args.with_git,
        region: args.region.clone(),
        region_map: args.map.as_deref().map(region_map).transpose()?,
        placeholder_secrets: false,
        locks: true,
        alerts: true,
        others_access: true,
        target_path: None,
        undo: args.undo.clone(),
    })
}

/// The engine (from the config, or incident mode's flags), the factory in
/// the store, and the newest snapshot the catalog knows of it.
async fn engine(
    ctx: &Ctx,
    args: &Args,
) -> Result<(Engine, Option<String>, Option<String>), OpError> {
    if let Some(incident) = args.incident.incident()? {
        return Ok((Engine::incident(incident)?, args.factory.clone(), None));
    }
    let mut engine = ctx.engine()?;
    let reference = args.snapshot.as_deref().unwrap_or("latest");
    let factory =
        crate::factories::for_reference(&mut engine, args.factory.as_deref(), reference).await?;
    let known = match &factory {
        None => None,
        Some(f) => match crate::agent::Agent::find(&engine.config) {
            Some(agent) => agent.status().await.ok().and_then(|s| {
                s.factories
                    .into_iter()
                    .find(|x| &x.name == f)
                    .and_then(|x| x.newest_snapshot)
            }),
            None => engine
                .catalog()
                .ok()
                .and_then(|c| c.latest_snapshot(f).ok().flatten())
                .map(|r| r.id),
        },
    };
    Ok((engine, factory, known))
}

/// An undo, decided and checked by core (ops::history::prepare_undo): the
/// snapshot before the change set, its resources as selectors, the target.
async fn undo(
    engine: &Engine,
    factory: &str,
    change_set: &str,
    args: &Args,
    options: &mut PlanOptions,
) -> Result<(String, TargetFactory, Vec<String>), OpError> {
    use adfdr_core::ops::history;
    let plan = history::prepare_undo(engine, factory, change_set, args.force).await?;
    for w in &plan.warnings {
        crate::warning!("{w}");
    }
    let u = plan.undo;
    options.include = plan.selectors;
    options.delete_extraneous = true;
    let target = match (&args.to, &u.source) {
        (Some(to), _) => target(to)?,
        (None, Some(s)) => TargetFactory::parse(&s.path()).map_err(OpError::usage)?,
        (None, None) => {
            return Err(OpError::usage(
                "the snapshot names no source factory; give --to",
            ));
        }
    };
    if !crate::output::quiet() {
        eprintln!(
            "adfdr: undoing change set {} by {} ({} resource(s): {}) from snapshot {}",
            crate::output::clean(&u.change_set.id),
            crate::output::clean(&u.change_set.authors.join(", ")),
            u.touched.len(),
            crate::output::clean(&u.touched.join(", ")),
            u.before
        );
    }
    Ok((u.before, target, u.touched))
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut options = plan_options(&args)?;
    let overrides = args
        .overrides
        .as_deref()
        .map(adfdr_core::localfile::overrides)
        .transpose()
        .map_err(|e| OpError::usage(e.to_string()))?;
    let (engine, factory, known_newest) = engine(ctx, &args).await?;
    let mut include = args.include.clone();
    let (snapshot, target) = match (&args.undo, &factory) {
        (Some(set), Some(f)) => {
            let (before, target, touched) = undo(&engine, f, set, &args, &mut options).await?;
            include = touched;
            (before, target)
        }
        (Some(_), None) => {
            return Err(OpError::usage(
                "--undo needs --factory NAME: the config has several factories",
            ));
        }
        _ => {
            let to = args
                .to
                .as_deref()
                .ok_or_else(|| OpError::usage("--to SUB/RG/FACTORY is needed"))?;
            let target = target(to)?;
            (snapshot(&engine, &args, &factory).await?, target)
        }
    };
    let (user, host) = adfdr_core::ops::hold::who();
    let request = op::Request {
        snapshot,
        factory,
        target,
        overrides,
        options,
        concurrency: args.concurrency,
        known_newest,
        by: format!("restore by {user}@{host}"),
        audit_dir: Some(engine.config.agent.state_dir.clone()),
        asked: Asked {
            include,
            exclude: args.exclude.clone(),
            overrides: args.overrides.as_ref().map(|p| p.display().to_string()),
        },
    };
    prepare_and_apply(ctx, &engine, &args, request).await
}

/// The snapshot id, `latest` or the one in force --at a time.
async fn snapshot(
    engine: &Engine,
    args: &Args,
    factory: &Option<String>,
) -> Result<String, OpError> {
    Ok(match (&args.snapshot, &args.at, factory) {
        (_, Some(at), Some(f)) => {
            let when = crate::log::parse_time("--at", at)?;
            adfdr_core::ops::read::in_force_at(&engine.replicas, f, when).await?
        }
        (Some(s), _, _) => s.clone(),
        _ => {
            return Err(OpError::usage(
                "give a snapshot id, `latest`, --at TIME or --undo CHANGE_SET (with --factory NAME when the config has several)",
            ));
        }
    })
}

async fn prepare_and_apply(
    ctx: &Ctx,
    engine: &Engine,
    args: &Args,
    request: op::Request,
) -> Result<i32, OpError> {
    let spinner = crate::output::spinner(ctx.json, "reading the snapshot and the target".into());
    let prepared = op::prepare(engine, request).await;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let mut prepared = prepared?;
    render::warnings(&prepared);
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // The prompt shows the plan itself: a "no" does not print it again.
    let asked = !args.plan && !args.yes && interactive && !ctx.json;
    let apply = !args.plan && (args.yes || (asked && render::confirm(&prepared)));
    if !apply {
        render::unapplied(ctx.json, args.plan, &prepared, interactive, asked);
        op::release(engine, &mut prepared).await;
        // A restore that applied nothing is not a success a script may
        // mistake for one; showing the plan (--plan) is.
        return Ok(if args.plan { exit::OK } else { exit::USAGE });
    }
    if !ctx.json && !interactive {
        render::plan(&prepared, &prepared.plan);
    }
    execute(ctx, engine, &mut prepared).await
}

async fn execute(ctx: &Ctx, engine: &Engine, prepared: &mut op::Prepared) -> Result<i32, OpError> {
    let quiet = ctx.json || crate::output::quiet();
    let total = prepared.plan.writes() as u64;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} writes  {per_sec:.0}  eta {eta}  {wide_msg}",
            )
            .expect("template"),
        );
        bar
    });
    // The bar's position is the plan's writes done (not every line said:
    // a runtime started is news, not a write), so it never passes its total.
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Off a terminal (a log, a pipe): each piece of news, and the routine
    // writes summed up every 5 s with their rate and what is left.
    let lines = crate::output::Periodic::new(std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let say = |line: &str, said: op::Said| {
        let n = done.load(std::sync::atomic::Ordering::Relaxed) as u64;
        match &bar {
            Some(b) => {
                b.set_position(n.min(total));
                b.set_message(crate::output::clean(line));
            }
            None if quiet => {}
            None if said == op::Said::News => {
                eprintln!("{n}/{total} writes: {}", crate::output::clean(line));
            }
            None => lines.say(&format!(
                "{}: {}",
                crate::output::progress_line(n, total, started.elapsed()),
                crate::output::clean(line)
            )),
        }
    };
    let progress = op::Progress::new(&say, &done);
    // Ctrl-C or SIGTERM stop the restore where it is: recorded, the hold
    // given back, and the same command finishes it.
    let stop = crate::output::stop_signal();
    let outcome = op::execute_until(engine, prepared, progress, stop).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if ctx.json {
        crate::json::emit("restore", &render::output(prepared, Some(&outcome)));
    } else {
        render::outcome(prepared, &outcome);
    }
    use adfdr_core::ops::contract::RestoreResult;
    Ok(match outcome.result {
        RestoreResult::Failed => exit::FAILED,
        RestoreResult::VerifyFailed => exit::CHECK_FAILED,
        RestoreResult::RestoredWithSkips => exit::DEGRADED,
        RestoreResult::Restored => exit::OK,
        RestoreResult::Interrupted => exit::INTERRUPTED,
    })
}

/// `--to SUB/RG/FACTORY` (or the factory's ARM id).
fn target(to: &str) -> Result<TargetFactory, OpError> {
    TargetFactory::parse(to).map_err(|e| OpError::usage(format!("--to {e}")))
}

/// `--map FILE`, read and checked.
fn region_map(path: &std::path::Path) -> Result<adfdr_core::plan::region_map::RegionMap, OpError> {
    adfdr_core::localfile::region_map(path).map_err(|e| OpError::usage(format!("--map {e}")))
}
