//! Crash safety: `adfdr backup` killed with SIGKILL at random points, many
//! times, never leaves a snapshot that lists but does not verify, and the next
//! backup succeeds.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_never_leaves_a_listed_snapshot_that_does_not_verify() {
    let rig = Rig::start("crash", &[("sales", "adf-sales", &sample_factory())]).await;
    // Slow ARM a little so kills land in export, sealing and both upload phases.
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 20})).await;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64;
    eprintln!("crash loop seed {seed}");
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    // How long one backup takes here: kills are drawn from inside that window.
    let started = std::time::Instant::now();
    assert_eq!(code(&rig.adfdr(&["backup", "--force"])), 0);
    let window = started.elapsed().as_millis().max(50) as u64;
    eprintln!("one backup takes {window} ms");
    let mut killed = 0;
    for round in 0..20 {
        let mut child = rig
            .command()
            .args(["backup", "--force"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(next() % window);
        std::thread::sleep(delay);
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        child.wait().expect("reap");

        // Whatever lists must verify, decrypted, wherever its manifest is.
        let out = rig.adfdr(&["verify", "--read-data", "--json"]);
        let report = json(&out);
        assert_ne!(
            code(&out),
            4,
            "round {round} (kill after {delay:?}): {report:#}"
        );
        for location in report["locations"].as_array().expect("locations") {
            assert!(
                location["damaged"].as_array().is_some_and(Vec::is_empty),
                "round {round}: {location}"
            );
            let missing: BTreeSet<String> = location["missing"]
                .as_array()
                .expect("missing")
                .iter()
                .map(|m| m["key"].as_str().expect("key").to_string())
                .collect();
            for key in &missing {
                if let Some(id) = key.strip_suffix(".payload") {
                    assert!(
                        missing.contains(&format!("{id}.manifest")),
                        "round {round}: {} holds a manifest whose payload is missing: {key}",
                        location["name"]
                    );
                }
            }
        }
    }
    assert!(killed >= 10, "the loop actually killed backups ({killed})");
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
