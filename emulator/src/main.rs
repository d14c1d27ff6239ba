//! `adf-emulator`: run the Azure control-plane stand-in as a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use adf_emulator::{Config, Emulator, Rates, SeedSpec};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Offline stand-in for the Azure Data Factory ARM API, Entra ID, managed identity and Key Vault"
)]
struct Args {
    /// HTTPS address for ARM, Entra and Key Vault (port 0: pick a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Plain-HTTP address of the managed identity endpoint (as App Service serves it).
    #[arg(long, default_value = "127.0.0.1:0")]
    mi_listen: SocketAddr,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
    /// Seed a factory from an ADF git-layout folder: SUB/RG/FACTORY=DIR (repeatable).
    #[arg(long, value_parser = SeedSpec::parse)]
    seed: Vec<SeedSpec>,
    /// Items per list page before a nextLink.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
    /// Latency added to every ARM and Key Vault request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// off, arm (ARM's per-principal buckets), or READS,WRITES,DELETES as BURST/PER_SECOND each.
    #[arg(long, default_value = "off")]
    throttle: String,
    /// Probability (0..1) of a random 500, 503 or dropped connection per request.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Keep factories across restarts in this file.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Deliver ARM's events for accepted writes to this Storage Queue
    /// (https://HOST/ACCOUNT/QUEUE), as an Event Grid subscription would.
    #[arg(long, value_name = "QUEUE_URL")]
    events_queue: Option<url::Url>,
    /// The CA the queue's certificate chains to (PEM).
    #[arg(long, value_name = "FILE", requires = "events_queue")]
    events_ca: Option<PathBuf>,
    /// Deliver each event once, in order (kinder than Event Grid, which
    /// promises neither: by default some arrive twice and some late).
    #[arg(long, requires = "events_queue")]
    events_in_order: bool,
    #[arg(long, default_value = adf_emulator::DEFAULT_TENANT)]
    tenant: String,
    /// The secret the managed identity endpoint expects in X-IDENTITY-HEADER (default: random).
    #[arg(long)]
    identity_header: Option<String>,
    /// Lifetime of issued tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: i64,
    /// How long a pipeline run takes before it succeeds or fails.
    #[arg(long, default_value_t = 1500)]
    run_duration_ms: u64,
    /// Long-running operations (an Azure-SSIS IR start: ~22 minutes) and
    /// their Retry-After at this fraction of the service's pace (1 = real).
    #[arg(long, default_value_t = 0.001)]
    time_scale: f64,
    /// Write a generated factory of N resources in git layout to DIR and exit
    /// (for benchmarks: N:DIR, e.g. 5000:/tmp/big).
    #[arg(long, value_name = "N:DIR")]
    generate: Option<String>,
    /// Write a factory at Data Factory's size limits to DIR and exit: N
    /// pipelines of KB kilobytes and one data flow of MB megabytes
    /// (N:KB:MB:DIR, e.g. 1000:190:7:/tmp/heavy).
    #[arg(long, value_name = "N:KB:MB:DIR")]
    generate_heavy: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adf-emulator: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(spec) = &args.generate_heavy {
        let parts: Vec<&str> = spec.splitn(4, ':').collect();
        let [n, kb, mb, dir] = parts.as_slice() else {
            anyhow::bail!("--generate-heavy takes N:KB:MB:DIR, got {spec}");
        };
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--generate-heavy: '{v}' is not a number"))
        };
        let generated = adf_emulator::generate::heavy(num(n)?, num(kb)?, num(mb)?);
        let written = adf_emulator::generate::write_files(std::path::Path::new(dir), generated)?;
        println!("wrote {written} resources to {dir}");
        return Ok(());
    }
    if let Some(spec) = &args.generate {
        let (n, dir) = spec
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--generate takes N:DIR, got {spec}"))?;
        let n: usize = n
            .parse()
            .map_err(|_| anyhow::anyhow!("--generate: '{n}' is not a number"))?;
        let written = adf_emulator::generate::write(std::path::Path::new(dir), n)?;
        println!("wrote {written} resources to {dir}");
        return Ok(());
    }
    let throttle = Rates::parse(&args.throttle).map_err(anyhow::Error::msg)?;
    if !(0.0..=1.0).contains(&args.fault_rate) {
        anyhow::bail!(
            "--fault-rate must be between 0 and 1, got {}",
            args.fault_rate
        );
    }
    if args.page_size == 0 {
        anyhow::bail!("--page-size must be at least 1");
    }
    let mut config = Config::loopback(args.tls_cert, args.tls_key);
    config.listen = args.listen;
    config.mi_listen = args.mi_listen;
    config.seeds = args.seed;
    config.state_file = args.state;
    config.events_queue = args.events_queue.map(|q| (q, args.events_ca));
    config.events_at_least_once = !args.events_in_order;
    config.tenant_id = args.tenant;
    if let Some(h) = args.identity_header {
        config.identity_header = h;
    }
    config.settings.page_size = args.page_size;
    config.settings.latency_ms = args.latency_ms;
    config.settings.throttle = throttle;
    config.settings.fault_rate = args.fault_rate;
    config.settings.token_lifetime_secs = args.token_lifetime;
    config.settings.run_duration_ms = args.run_duration_ms;
    if !(0.0..=10.0).contains(&args.time_scale) {
        anyhow::bail!(
            "--time-scale {} is out of range: give a fraction of the service's pace between 0 and 10",
            args.time_scale
        );
    }
    config.settings.time_scale = args.time_scale;
    let emulator = Emulator::start(config).await?;
    for w in emulator.seed_warnings() {
        eprintln!("adf-emulator: seed: dangling reference: {w}");
    }
    let u = emulator.urls();
    println!(
        "adf-emulator ready arm={} authority={} vault={} identity_endpoint={} identity_header={} tenant={}",
        u.arm,
        u.authority,
        u.vault,
        u.managed_identity,
        emulator.identity_header(),
        emulator.tenant_id()
    );
    shutdown_signal().await;
    emulator.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
