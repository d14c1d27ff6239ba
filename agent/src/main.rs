//! adfdr-agent: scheduled backups, verification and retention as a systemd
//! service (Type=notify). READY after the config validated and the store
//! answered; WATCHDOG keep-alives from the scheduler loop; STATUS lines;
//! SIGHUP reloads a validated config (the old one stays on error); SIGTERM
//! stops scheduling and waits for running jobs up to a deadline (a second
//! signal quits at once: backups are crash-safe, nothing half-written lists).

mod control;
mod daemon;
mod events;
mod jobs;
mod lease;
mod metrics;
mod notify;
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
    /// Log lines: journald (JSON with a syslog priority prefix, so
    /// `journalctl -p err` filters), json, or text [default: journald under
    /// systemd (JOURNAL_STREAM), text on a terminal, else json].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Journald,
    Json,
    Text,
}

/// Writes each formatted event to stderr in one write, prefixed with its
/// syslog priority (`<3>` error … `<7>` debug): systemd's
/// SyslogLevelPrefix= (on by default) takes it as the journal entry's
/// priority and strips it.
struct Prioritized;

struct Line {
    priority: u8,
    buf: Vec<u8>,
}

impl std::io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        use std::io::Write;
        let mut out = format!("<{}>", self.priority).into_bytes();
        out.append(&mut self.buf);
        let _ = std::io::stderr().lock().write_all(&out);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Prioritized {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            priority: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        let priority = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        Line {
            priority,
            buf: Vec::new(),
        }
    }
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

fn init_logging(format: Option<LogFormat>) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADFDR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if std::env::var_os("JOURNAL_STREAM").is_some() {
        LogFormat::Journald
    } else if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // JSON lines (one object per event, fields flattened) for journald and
    // log shippers; readable text, in colour, on a terminal.
    match format {
        LogFormat::Text => builder
            .with_writer(std::io::stderr)
            .with_ansi(terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
            .init(),
        LogFormat::Json => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .init(),
        LogFormat::Journald => builder
            .with_writer(Prioritized)
            .json()
            .flatten_event(true)
            .init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
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
