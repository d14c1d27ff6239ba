//! adfdr-agent: scheduled backups, verification and retention as a systemd
//! service (Type=notify). READY after the config validated and the store
//! answered; WATCHDOG keep-alives from the scheduler loop; STATUS lines;
//! SIGHUP reloads a validated config (the old one stays on error); SIGTERM
//! stops scheduling and waits for running jobs up to a deadline (a second
//! signal quits at once: backups are crash-safe, nothing half-written lists).

mod control;
mod daemon;
mod jobs;
mod lease;
mod metrics;
mod scheduler;

use std::path::PathBuf;
use std::process::ExitCode;

use adfdr_core::config::Config;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "adfdr-agent", version, about = "adfdr's scheduling service")]
struct Args {
    /// Config file [default: $ADFDR_CONFIG, else /etc/adfdr/adfdr.toml]
    #[arg(short, long, env = "ADFDR_CONFIG")]
    config: Option<PathBuf>,
    /// Seconds to wait for running jobs on SIGTERM before abandoning them.
    #[arg(long, default_value_t = 60)]
    stop_timeout: u64,
}

/// Appends a privileged action to the audit trail (state_dir/audit.jsonl,
/// mode 0600) and to the log under the `audit` target. A trail that cannot be
/// written is logged, not fatal: backups must go on.
pub(crate) fn audit(
    engine: &adfdr_core::ops::Engine,
    action: adfdr_core::ops::contract::AuditAction,
) {
    use adfdr_core::ops::contract::{AuditEvent, audit};
    let event = AuditEvent::now("adfdr-agent", action);
    if let Err(e) = audit(&engine.config.agent.state_dir, &event) {
        tracing::warn!(error = %e, "could not write the audit trail");
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADFDR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // JSON lines for journald and log shippers; readable text on a terminal.
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from(adfdr_core::config::DEFAULT_PATH));
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("adfdr-agent: {e}");
            tracing::error!(error = %e, "config refused; not starting");
            return ExitCode::from(2);
        }
    };
    match daemon::run(
        path,
        config,
        std::time::Duration::from_secs(args.stop_timeout),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adfdr-agent: {e}");
            tracing::error!(error = %e, "stopped");
            // A config problem is 2 (systemd does not restart it); the rest 1.
            ExitCode::from(match e.kind() {
                adfdr_core::ops::Kind::Usage => 2,
                _ => 1,
            })
        }
    }
}
