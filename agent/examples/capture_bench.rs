//! The capture benchmark (docs/PERFORMANCE.md, "Continuous capture"): one
//! factory (the sample) captured from ARM's events (Azurite's queue, fed
//! by the emulator as Event Grid would) against an emulator that throttles
//! as ARM does. Prints:
//!
//! - capture lag (event time to the sealed manifest's mtime), median and
//!   p99, over CHANGES single writes one every GAP ms;
//! - ARM reads those changes cost, and reads per hour at that rate (busy);
//! - ARM reads over IDLE seconds with no change (idle);
//! - ARM reads of one full listing of the same factory (what scheduled
//!   listing pays each period).
//!
//!   cargo build -p adfdr-agent -p adfdr && \
//!   cargo run -p adfdr-agent --example capture_bench -- 100 3000 600 2s target/debug/adfdr-agent

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUB: &str = "11111111-2222-3333-4444-555555555555";

fn arm_reads(emu: &adf_emulator::Emulator) -> u64 {
    emu.counters().by_op.get("reads").copied().unwrap_or(0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let changes: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let gap = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3000));
    let idle = Duration::from_secs(args.get(3).and_then(|a| a.parse().ok()).unwrap_or(600));
    let coalesce = args.get(4).cloned().unwrap_or_else(|| "2s".into());
    let bin = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "target/debug/adfdr-agent".into());
    let queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("adf-bench");
    let emu = adfdr_tests::start_emulator(|c| {
        c.settings.throttle = Some(adf_emulator::Rates::ARM);
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    let dir = std::env::temp_dir().join(format!("adfdr-capture-bench-{}", std::process::id()));
    for l in ["weu", "neu"] {
        std::fs::create_dir_all(dir.join(l)).expect("dir");
    }
    emu.seed(
        &format!("{SUB}/rg-prod/adf-sales"),
        &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
    )
    .expect("seed");
    let key = dir.join("bg.key");
    adfdr_core::keys::generate_key_file(&key).expect("key");
    let config = dir.join("adfdr.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{state}\"\nsocket = \"{sock}\"\n\n[auth]\nmethod = \"managed-identity\"\narm_endpoint = \"{arm}\"\nca_file = \"{ca}\"\n\n[[location]]\nname = \"weu\"\nurl = \"file://{weu}\"\n[[location]]\nname = \"neu\"\nurl = \"file://{neu}\"\n\n[[key]]\nid = \"breakglass\"\nfile = \"{key}\"\n\n[[factory]]\nname = \"sales\"\nsubscription = \"{SUB}\"\nresource_group = \"rg-prod\"\nfactory = \"adf-sales\"\nbackup = \"0 0 1 1 *\"\ncapture = \"events\"\nqueue = \"{queue}\"\ncoalesce = \"{coalesce}\"\n",
            state = dir.join("state").display(),
            sock = dir.join("agent.sock").display(),
            arm = emu.urls().arm,
            ca = adfdr_tests::ca_pem().display(),
            weu = dir.join("weu").display(),
            neu = dir.join("neu").display(),
            key = key.display(),
        ),
    )
    .expect("config");
    let ctl = std::path::Path::new(&bin).with_file_name("adfdr");
    let cli = |args: &[&str]| {
        Command::new(&ctl)
            .args(["--config", config.to_str().expect("utf8")])
            .args(args)
            .env("IDENTITY_ENDPOINT", &emu.urls().managed_identity)
            .env("IDENTITY_HEADER", emu.identity_header())
            .output()
            .expect("adfdr runs")
    };
    cli(&["init"]);
    let mut agent = Command::new(&bin)
        .args(["--config", config.to_str().expect("utf8")])
        .env("IDENTITY_ENDPOINT", &emu.urls().managed_identity)
        .env("IDENTITY_HEADER", emu.identity_header())
        .env("ADFDR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).expect("log"))
        .spawn()
        .expect("agent");
    let snapshots = dir.join("weu/v1/sales/snapshots");
    let count = || {
        std::fs::read_dir(&snapshots)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
                    .count()
            })
            .unwrap_or(0)
    };
    while count() == 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One full listing's ARM reads: what the first (reconciliation) cost.
    let listing_reads = arm_reads(&emu);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Busy: one write every `gap`.
    let reads_before = arm_reads(&emu);
    let client = adfdr_tests::raw_client();
    let token = emu.mint_token("https://management.azure.com/", "bench-writer", 7200);
    let f = adfdr_tests::factory_path(SUB, "rg-prod", "adf-sales");
    let busy_started = Instant::now();
    for i in 0..changes {
        let body = serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": i + 1}}]}});
        let r = client
            .put(format!(
                "{}{f}/pipelines/PL_Bench_{}?api-version=2018-06-01",
                emu.urls().arm,
                i % 10
            ))
            .bearer_auth(&token)
            .header("x-ms-correlation-request-id", format!("bench-{i}"))
            .json(&body)
            .send()
            .await
            .expect("put");
        assert!(r.status().is_success(), "{}", r.status());
        tokio::time::sleep(gap).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let busy_secs = busy_started.elapsed().as_secs_f64();
    let busy_reads = arm_reads(&emu) - reads_before;
    // Lag: each change's event time to its manifest's mtime.
    let out = cli(&[
        "log",
        "sales",
        "--resource",
        "pipeline:PL_Bench_*",
        "--json",
    ]);
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("log json");
    let mut lags: Vec<f64> = log["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| !c["event"].is_null())
        .filter_map(|c| {
            let at = adfdr_core::snapshot::parse_time(c["time"].as_str()?)?;
            let id = c["snapshot"].as_str()?;
            let sealed = std::fs::metadata(snapshots.join(format!("{id}.manifest")))
                .ok()?
                .modified()
                .ok()?;
            let sealed = time::OffsetDateTime::from(sealed);
            Some((sealed - at).as_seconds_f64())
        })
        .collect();
    lags.sort_by(f64::total_cmp);

    // Idle.
    let idle_before = arm_reads(&emu);
    tokio::time::sleep(idle).await;
    let idle_reads = arm_reads(&emu) - idle_before;
    let _ = agent.kill();
    let _ = agent.wait();
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    let listings = log
        .lines()
        .filter(|l| l.contains("\"starting\"") && l.contains("\"job\":\"backup\""))
        .count();
    let down = log.lines().filter(|l| l.contains("cannot be read")).count();
    println!("agent log: {listings} listings started in all, queue reported down {down} times");
    println!("changes: {changes}, one every {gap:?}, coalesce {coalesce}");
    println!(
        "capture lag: median {:.2} s, p99 {:.2} s, max {:.2} s ({} changes sealed)",
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.len()
    );
    println!(
        "busy: {busy_reads} ARM reads for {changes} changes in {busy_secs:.0} s = {:.0} reads/hour",
        busy_reads as f64 * 3600.0 / busy_secs
    );
    println!(
        "idle: {idle_reads} ARM reads in {} s = {:.0} reads/hour",
        idle.as_secs(),
        idle_reads as f64 * 3600.0 / idle.as_secs_f64()
    );
    println!(
        "one full listing: {listing_reads} ARM reads (every 15 min: {} reads/hour; hourly: {listing_reads})",
        listing_reads * 4
    );
    drop(queues);
}
