//! The fleet benchmark (docs/PERFORMANCE.md, "A fleet"): F factories in S
//! subscriptions, found by discovery, backed up by N agents on one store,
//! against an emulator that throttles as ARM does (per principal and
//! subscription: 250 reads, then 25 a second). Prints the time to full
//! coverage (every factory has a snapshot), ARM reads, 429s seen and each
//! agent's peak RSS.
//!
//!   cargo build -p adfdr-agent && \
//!   cargo run -p adfdr-agent --example fleet_bench -- 500 5 1 target/debug/adfdr-agent

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let factories: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let subs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let agents: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let bin = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "target/debug/adfdr-agent".into());
    let emu =
        adfdr_tests::start_emulator(|c| c.settings.throttle = Some(adf_emulator::Rates::ARM)).await;
    let dir = std::env::temp_dir().join(format!("adfdr-fleet-bench-{}", std::process::id()));
    for l in ["weu", "neu"] {
        std::fs::create_dir_all(dir.join(l)).expect("dir");
    }
    let sample = adfdr_tests::workspace_root().join("fixtures/sample-factory");
    let sub_ids: Vec<String> = (0..subs)
        .map(|i| format!("{i:08x}-0000-4000-8000-00000000f1ee"))
        .collect();
    for i in 0..factories {
        emu.seed(
            &format!("{}/rg-data/adf-bench-{i:04}", sub_ids[i % subs]),
            &sample,
        )
        .expect("seed");
    }
    let key = dir.join("bg.key");
    adfdr_core::keys::generate_key_file(&key).expect("key");
    let list = sub_ids
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut children = Vec::new();
    let started = Instant::now();
    for a in 0..agents {
        let config = dir.join(format!("agent-{a}.toml"));
        std::fs::write(
            &config,
            format!(
                "[agent]\nstate_dir = \"{state}\"\nsocket = \"{sock}\"\nlease_seconds = 15\n\n[auth]\nmethod = \"managed-identity\"\narm_endpoint = \"{arm}\"\nca_file = \"{ca}\"\n\n[[location]]\nname = \"weu\"\nurl = \"file://{weu}\"\n[[location]]\nname = \"neu\"\nurl = \"file://{neu}\"\n\n[[key]]\nid = \"breakglass\"\nfile = \"{key}\"\n\n[backup]\nparallel_factories = 16\n\n[[discover]]\nsubscriptions = [{list}]\npolicy = \"p\"\n\n[policy.p]\nbackup = \"0 0 1 1 *\"\n",
                state = dir.join(format!("state-{a}")).display(),
                sock = dir.join(format!("agent-{a}.sock")).display(),
                arm = emu.urls().arm,
                ca = adfdr_tests::ca_pem().display(),
                weu = dir.join("weu").display(),
                neu = dir.join("neu").display(),
                key = key.display(),
            ),
        )
        .expect("config");
        let child = Command::new(&bin)
            .args([
                "--config",
                config.to_str().expect("utf8"),
                "--log-format",
                "json",
            ])
            .env("IDENTITY_ENDPOINT", &emu.urls().managed_identity)
            .env("IDENTITY_HEADER", emu.identity_header())
            .env("ADFDR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("agent-{a}.log"))).expect("log"))
            .spawn()
            .expect("agent starts");
        children.push(child);
    }
    let covered = |d: &std::path::Path| {
        (0..factories)
            .filter(|i| {
                std::fs::read_dir(d.join(format!("weu/v1/adf-bench-{i:04}/snapshots"))).is_ok_and(
                    |e| {
                        e.filter_map(Result::ok)
                            .any(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
                    },
                )
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut rss = vec![0u64; agents];
    loop {
        for (i, c) in children.iter().enumerate() {
            rss[i] = rss[i].max(peak_rss_kib(c.id()));
        }
        let n = covered(&dir);
        if n == factories || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();
    for (i, c) in children.iter().enumerate() {
        rss[i] = rss[i].max(peak_rss_kib(c.id()));
    }
    let counters = emu.counters();
    for c in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    println!(
        "factories={factories} subscriptions={subs} agents={agents} covered={} seconds={:.1} arm_reads={} arm_writes={} throttled_429={} peak_rss_mib={:?}",
        covered(&dir),
        took.as_secs_f64(),
        counters.by_op.get("reads").copied().unwrap_or_default(),
        counters.by_op.get("writes").copied().unwrap_or_default(),
        counters.throttled,
        rss.iter().map(|k| k / 1024).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
