//! `adfdr`: the control CLI. One module per subcommand; the engine lives in
//! adfdr-core. Exit codes (design contract): 0 ok, 1 failed, 2 bad usage or
//! config, 3 done but degraded, 4 a check failed.

mod agent;
mod backup;
mod catalog;
mod check;
mod demo;
mod diff;
mod discover;
mod drill;
mod exit;
mod export;
mod factories;
mod help;
mod history_page;
mod incident;
mod init;
mod jobs;
mod json;
mod key;
mod log;
mod output;
mod prune;
mod restore;
mod restores;
mod schema;
mod show;
mod snapshots;
mod status;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use adfdr_core::config::Config;
use adfdr_core::ops::{Engine, OpError};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "adfdr",
    version,
    about = "Backup, restore and recovery drills for Azure Data Factory",
    after_help = help::TOP
)]
struct Cli {
    /// Config file [default: $ADFDR_CONFIG, else /etc/adfdr/adfdr.toml]
    #[arg(short, long, global = true, env = "ADFDR_CONFIG")]
    config: Option<PathBuf>,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// More log detail (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Back up factories now; prints the snapshot id or "unchanged since X".
    #[command(after_help = help::BACKUP)]
    Backup(backup::Args),
    /// List snapshots: id, time, factory, resources, size, copies, key ids.
    #[command(after_help = help::SNAPSHOTS)]
    Snapshots(snapshots::Args),
    /// A snapshot's manifest, counts by kind and restorability report.
    #[command(after_help = help::SHOW)]
    Show(show::Args),
    /// Added, removed and changed resources between two snapshots, or a snapshot and the live factory.
    #[command(after_help = help::DIFF)]
    Diff(diff::Args),
    /// Decrypt a snapshot into ADF git layout (factory/, pipeline/, dataset/, ...).
    #[command(after_help = help::EXPORT)]
    Export(export::Args),
    /// Check the integrity of every copy in every location.
    #[command(after_help = help::VERIFY)]
    Verify(verify::Args),
    /// Per factory: last confirmed backup, RPO against target, the agent's jobs.
    #[command(after_help = help::STATUS)]
    Status(status::Args),
    /// Apply retention (each factory's keep policy); --dry-run shows every decision.
    #[command(after_help = help::PRUNE)]
    Prune(prune::Args),
    /// Restore a snapshot into a factory: plan, apply in dependency order, verify.
    #[command(after_help = help::RESTORE)]
    Restore(Box<restore::Args>),
    /// Past restores from the audit trail: when, who, which snapshot into
    /// where, how it ended.
    #[command(after_help = help::RESTORES)]
    Restores(restores::Args),
    /// Run a recovery drill now: restore into the scratch factory, prove it, measure RTO and RPO.
    #[command(after_help = help::DRILL)]
    Drill(drill::Args),
    /// Drill history: time, snapshot, RTO and RPO against targets, result.
    #[command(after_help = help::DRILLS)]
    Drills(drill::HistoryArgs),
    /// A factory's change history: time, who, what, snapshot; --sets by change set (correlation id).
    #[command(after_help = help::LOG)]
    Log(log::Args),
    /// Key management.
    #[command(subcommand, after_help = help::KEY)]
    Key(key::Command),
    /// What the [[discover]] blocks cover: each found factory's policy, what is left out and
    /// why, and stored factories gone at the source.
    #[command(after_help = help::DISCOVER)]
    Discover(discover::Args),
    /// Make each location (a private directory, a container), prove it can write, read and
    /// delete, and print what is still missing.
    #[command(after_help = help::INIT)]
    Init(init::Args),
    /// Config validation and access probes.
    #[command(subcommand, after_help = help::CONFIG)]
    Config(check::Command),
    /// The local index.
    #[command(subcommand, after_help = help::CATALOG)]
    Catalog(catalog::Command),
    /// The JSON Schema of a command's --json output (docs/JSON.md).
    Schema(schema::SchemaArgs),
    /// Offline showcase: starts adf-emulator in-process with the built-in sample
    /// factory and walks it through the same client stack the agent uses.
    #[command(after_help = help::DEMO)]
    Demo(demo::Args),
    /// Shell completions on stdout (bash, zsh, fish, elvish, powershell).
    #[command(after_help = help::COMPLETIONS)]
    Completions { shell: clap_complete::Shell },
    /// Man pages: adfdr.1 and one per command (adfdr-restore.1, ...) into a directory.
    #[command(after_help = help::MAN)]
    Man {
        /// The directory to write them into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `adfdr man`: the pages clap_mangen renders from these definitions.
fn man_pages(out: &std::path::Path) -> Result<i32, OpError> {
    use clap::CommandFactory;
    let failed = |e: std::io::Error| {
        OpError::failed(format!("writing man pages into {}: {e}", out.display()))
    };
    std::fs::create_dir_all(out).map_err(failed)?;
    let top = Cli::command();
    let mut pages = vec![("adfdr".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("adfdr-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, cmd) in pages {
        let mut bytes = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut bytes)
            .map_err(failed)?;
        std::fs::write(out.join(format!("{name}.1")), bytes).map_err(failed)?;
    }
    Ok(exit::OK)
}

// serde_json value trees are allocation-heavy; mimalloc more than doubles the
// seal pipeline's throughput over glibc malloc (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What every command gets.
pub struct Ctx {
    pub config_path: PathBuf,
    pub json: bool,
}

impl Ctx {
    pub fn load_config(&self) -> Result<Config, OpError> {
        Config::load(&self.config_path).map_err(|e| {
            let missing = matches!(&e, adfdr_core::config::ConfigError::Read { source, .. }
                if source.to_string().contains("No such file"));
            let e = OpError::from(e);
            if missing {
                // An incident on a machine that was never set up: the flags
                // that work without a config file.
                e.with_hint(format!(
                    "no config at {} (-c PATH or ADFDR_CONFIG name another); in an incident, no config is needed: --store URL|PATH --key FILE|KEYVAULT-KEY-URL (or ADFDR_STORE, ADFDR_KEY), e.g. adfdr snapshots --store /mnt/backup",
                    self.config_path.display()
                ))
            } else {
                e
            }
        })
    }

    pub fn engine(&self) -> Result<Engine, OpError> {
        Engine::new(self.load_config()?)
    }
}

/// Colour only where a person reads it: stderr is a terminal and NO_COLOR
/// is unset (no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `-q` without `--json`: stdout goes to /dev/null, so nothing but errors
/// (on stderr) is printed; the exit code says how it went.
fn silence_stdout() {
    #[cfg(unix)]
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info,adfdr_core=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADFDR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .init();
}

/// `adfdr show … | head`: when the reader of stdout goes away, a print
/// fails with EPIPE and Rust's `println!` panics (exit 101 and a panic
/// message). That ends here quietly, with the code a program SIGPIPE
/// stopped has (141); any other panic is reported as before.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("Broken pipe") || text.contains("os error 32") {
            std::process::exit(exit::BROKEN_PIPE);
        }
        default(info)
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    output::set_quiet(cli.quiet);
    if cli.quiet && !cli.json {
        silence_stdout();
    }
    let ctx = Ctx {
        config_path: cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(adfdr_core::config::DEFAULT_PATH)),
        json: cli.json,
    };
    let result = match cli.command {
        Command::Backup(args) => backup::run(&ctx, args).await,
        Command::Snapshots(args) => snapshots::run(&ctx, args).await,
        Command::Show(args) => show::run(&ctx, args).await,
        Command::Diff(args) => diff::run(&ctx, args).await,
        Command::Export(args) => export::run(&ctx, args).await,
        Command::Verify(args) => verify::run(&ctx, args).await,
        Command::Prune(args) => prune::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Restore(args) => restore::run(&ctx, *args).await,
        Command::Restores(args) => restores::run(&ctx, args).await,
        Command::Drill(args) => drill::run(&ctx, args).await,
        Command::Drills(args) => drill::run_history(&ctx, args).await,
        Command::Log(args) => log::run(&ctx, args).await,
        Command::Key(cmd) => key::run(&ctx, cmd).await,
        Command::Init(args) => init::run(&ctx, args).await,
        Command::Discover(args) => discover::run(&ctx, args).await,
        Command::Config(cmd) => check::run(&ctx, cmd).await,
        Command::Catalog(cmd) => catalog::run(&ctx, cmd).await,
        Command::Schema(args) => schema::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "adfdr", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man { out } => man_pages(&out),
        Command::Demo(args) => demo::run(args, ctx.json)
            .await
            .map(|()| exit::OK)
            .map_err(|e| OpError::failed(format!("{e:#}"))),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("adfdr: error: {}", output::clean(&e.to_string()));
            if let Some(g) = e.grant() {
                eprintln!(
                    "adfdr: needs: the role '{}' for {} on {}",
                    output::clean(&g.role),
                    output::clean(&g.principal),
                    output::clean(&g.scope)
                );
            }
            if let Some(hint) = e.hint() {
                eprintln!("adfdr: hint: {}", output::clean(&hint));
            }
            if ctx.json {
                json::error(&e);
            }
            output::exit_code(&e)
        }
    };
    ExitCode::from(code as u8)
}
