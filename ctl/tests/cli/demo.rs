//! `adfdr demo` runs from nothing but the binary: the sample factory backed
//! up, changed, verified and drilled, with a passed report.

use std::process::Command;

#[test]
fn demo_runs_offline_and_reads_the_whole_sample_factory() {
    // Where the user is: a new ./adfdr-demo, and it says so.
    let here = std::env::temp_dir().join(format!("adfdr-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&here).expect("dir");
    let dir = here.join("adfdr-demo");
    let out = Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .arg("demo")
        .current_dir(&here)
        .env("HOME", &here)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("the demo's files go into {}", dir.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("25 resources in the factory, read with nextLink paging"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TR_Daily (Started)"),
        "trigger state is shown: {stdout}"
    );
    assert!(
        stdout.contains("deleting LS_KeyVault is refused"),
        "{stdout}"
    );
    assert!(
        dir.join("sample-factory/pipeline/PL_Daily_Sales.json")
            .exists()
    );
    // Backups: a snapshot in both locations, a checkpoint when unchanged, the
    // hot-fix found by diff, everything verified.
    assert!(
        stdout.contains("34 resources (25 in the factory, 2 for the factory itself and its global parameters, 7 around it: 1 diagnosticSetting, 1 lock, 1 metricAlert, 1 activityLogAlert, 2 roleAssignment, 1 accessPolicy)")
            && stdout.contains("in weu and neu"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote only checkpoint"), "{stdout}");
    assert!(
        stdout.contains("~ pipeline:PL_Smoke\n")
            && stdout.contains("/properties/description: \"Cheap end-to-end check run by recovery drills\" → \"hot-fixed in the portal at 2 a.m.\""),
        "{stdout}"
    );
    assert!(stdout.contains("healthy"), "{stdout}");
    // The drill: restored into the scratch factory, proven, measured, passed.
    assert!(stdout.contains("== drill: restore "), "{stdout}");
    assert!(
        stdout.contains("of sample: PASSED"),
        "the demo's drill passes: {stdout}"
    );
    assert!(
        stdout.contains("RTO ") && stdout.contains("(target 5m, met)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("smoke pipeline     PL_Smoke_Vault Succeeded"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(dir.join("drill-report.md")).expect("markdown report");
    assert!(md.contains(": PASSED"), "{md}");
    assert!(dir.join("drill-report.html").exists());
    // The store outlives the emulator: the CLI lists and verifies it offline.
    let config = dir.join("adfdr.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .args(["verify", "--read-data", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 2 snapshot(s)"));
    let out = Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .args(["drills", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && history.contains("PASSED"),
        "{history}"
    );
    let _ = std::fs::remove_dir_all(here);
}

#[test]
fn unknown_subcommands_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .arg("frobnicate")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "bad usage exits 2");
}
