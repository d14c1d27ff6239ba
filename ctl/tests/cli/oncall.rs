//! Issue 26: what a tired on-call person meets at 2 a.m., made right. Each
//! test is one item of the issue, against the real binary.

use std::process::Output;

use crate::common::files::FileRig;
use crate::common::{code, json, stderr, stdout, text};

/// `adfdr` with no config at all: incident mode from flags or environment.
fn bare(rig: &FileRig, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = rig.command();
    cmd.env_remove("ADFDR_CONFIG")
        .env("ADFDR_CONFIG", rig.dir.join("no-such-config.toml"))
        .env_remove("ADFDR_STORE")
        .env_remove("ADFDR_KEY")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::common::files::run_within(&mut cmd, std::time::Duration::from_secs(60))
}

/// Item 2: a wrong key is not "the backups are gone": the snapshots found
/// are counted once, with the keys that open them, and a code of its own;
/// without a key the store's snapshots are listed from their headers. Item
/// 7: a store given as a bare path, or through ADFDR_STORE/ADFDR_KEY.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_says_which_keys_open_and_no_key_still_lists() {
    let rig = FileRig::start("wrongkey").await;
    let s1 = rig.backup(false);
    let s2 = rig.backup(true);
    let wrong = rig.dir.join("wrong.key");
    adfdr_core::keys::generate_key_file(&wrong).expect("key");
    let weu = rig.weu.display().to_string();
    let wrong_s = wrong.display().to_string();

    let out = bare(
        &rig,
        &["snapshots", "--store", &weu, "--key", &wrong_s],
        &[],
    );
    assert_eq!(code(&out), 5, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("2 snapshot(s) found that none of the keys given opens"),
        "{err}"
    );
    assert!(err.contains("breakglass (key file"), "{err}");
    assert_eq!(
        err.matches("none of the keys").count(),
        1,
        "said once: {err}"
    );
    assert!(!stdout(&out).contains("no snapshots"), "{}", text(&out));

    // No key: what the store holds, from the public headers.
    let out = bare(&rig, &["snapshots", "--store", &weu, "--json"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let ids: Vec<&str> = v["snapshots"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [s1.as_str(), s2.as_str()], "{v:#}");
    assert_eq!(v["headers_only"], true);
    assert!(
        v["snapshots"][0]["keys"].to_string().contains("key file"),
        "{v:#}"
    );

    // The right key, from the environment, the store a relative path.
    let mut cmd = rig.command();
    cmd.current_dir(&rig.dir)
        .env("ADFDR_CONFIG", rig.dir.join("no-such-config.toml"))
        .env("ADFDR_STORE", "./weu")
        .env("ADFDR_KEY", rig.key.display().to_string())
        .args(["snapshots", "--json"]);
    let out = crate::common::files::run_within(&mut cmd, std::time::Duration::from_secs(60));
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["snapshots"].as_array().map(Vec::len), Some(2));
    // A store that is neither a URL nor a path says what it takes.
    let out = bare(&rig, &["snapshots", "--store", "weu"], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("neither a URL nor a directory path"),
        "{}",
        text(&out)
    );
    // Reading needs a key, and says how to list without one.
    let out = bare(&rig, &["show", &s1, "--store", &weu], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("lists what the store holds without one"),
        "{}",
        text(&out)
    );
}

/// Item 7: with no config file the error says how to work without one.
#[tokio::test(flavor = "multi_thread")]
async fn no_config_points_at_incident_mode() {
    let rig = FileRig::start("noconfig").await;
    let out = bare(&rig, &["snapshots"], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--store") && err.contains("ADFDR_STORE") && err.contains("--key"),
        "{err}"
    );
}

/// Item 7: a host that does not resolve is told as such (not as a sign-in
/// failure), and in incident mode a failed sign-in points at the flags and
/// `az login`, not at a config's [auth] there is none of.
#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_the_host_and_a_failed_sign_in_are_told_apart() {
    let rig = FileRig::start("typo").await;
    let key = rig.key.display().to_string();
    let ca = adfdr_tests::ca_pem().display().to_string();
    let out = bare(
        &rig,
        &[
            "snapshots",
            "--store",
            "https://adfdr-typo.invalid/adfdr",
            "--key",
            &key,
            "--auth",
            "managed-identity",
            "--ca-file",
            &ca,
        ],
        &[],
    );
    assert_ne!(code(&out), 0, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not resolve") && err.contains("adfdr-typo.invalid"),
        "{err}"
    );
    assert!(!err.contains("[auth]"), "{err}");
    // A sign-in that fails (no identity endpoint answers).
    let mut cmd = rig.command();
    cmd.env("ADFDR_CONFIG", rig.dir.join("no-such-config.toml"))
        .env("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
        .args([
            "snapshots",
            "--store",
            "https://127.0.0.1:9/adfdr",
            "--key",
            &key,
            "--auth",
            "managed-identity",
        ]);
    let out = crate::common::files::run_within(&mut cmd, std::time::Duration::from_secs(120));
    assert_ne!(code(&out), 0, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        !err.contains("[auth]") && err.contains("choose how with --auth"),
        "{err}"
    );
}

/// Item 3: Ctrl-C in the middle of a restore's writes stops it with exit
/// 130, says how far it got and what to do, records the interruption in the
/// audit trail and gives the snapshot's hold back; the same command then
/// finishes the job.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_mid_restore_says_how_far_records_it_and_releases_the_hold() {
    let rig = FileRig::start("ctrlc").await;
    rig.backup(false);
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 250})).await;
    let before = std::fs::read_to_string(rig.dir.join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    let to = format!("{}/rg-dr/adf-interrupted", crate::common::SUB);
    let args = [
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        to.as_str(),
        "--yes",
    ];
    let child = rig
        .command()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Into the writes: the factory is created first, then the rest.
    let f = adfdr_tests::factory_path(crate::common::SUB, "rg-dr", "adf-interrupted");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let exists = rig.emu.with_world(|w| {
            w.factories.contains_key(&adf_emulator::state::factory_key(
                crate::common::SUB,
                "rg-dr",
                "adf-interrupted",
            ))
        });
        if exists || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("exits");
    assert_eq!(code(&out), 130, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("interrupted after") && err.contains("run the same command again"),
        "{err} ({f})"
    );
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit trail");
    // Exactly one record of the restore (issue 27): the backup's and this one.
    assert_eq!(audit.lines().count(), before + 1, "{audit}");
    let last: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("a record")).expect("json");
    assert_eq!(last["action"], "restore", "{last:#}");
    assert_eq!(last["outcome"], "interrupted", "{last:#}");
    assert!(last["interrupted"].is_array(), "{last:#}");
    for loc in [&rig.weu, &rig.neu] {
        let holds = loc.join("v1/sales/holds");
        let left = std::fs::read_dir(&holds).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "no hold left in {}", holds.display());
    }
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 0})).await;
    let out = rig.adfdr(&args);
    // Restored, with the sample factory's usual skips (masked secrets): 3.
    assert_eq!(
        code(&out),
        3,
        "the same command finishes it: {}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("restored-with-skips"),
        "{}",
        text(&out)
    );
}

/// Item 5: snapshot ids as people copy them (a unique prefix, or the hex
/// after the time; an ambiguous one lists the candidates), `latest` without
/// --factory when there is one, and --at as people type times.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_references_take_prefixes_latest_alone_and_short_times() {
    let rig = FileRig::start("refs").await;
    let s1 = rig.backup(false);
    let s2 = rig.backup(true);
    let hex = s2.split_once('-').expect("id").1;
    let out = rig.adfdr(&["show", hex, "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["id"], s2.as_str(), "{}", text(&out));
    let out = rig.adfdr(&["show", &s1[..s1.len() - 2], "--json"]);
    assert_eq!(json(&out)["id"], s1.as_str(), "{}", text(&out));
    // The date prefix both share: ambiguous, the candidates named.
    let out = rig.adfdr(&["show", &s1[..8]]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("names 2 snapshots") && stderr(&out).contains(&s2),
        "{}",
        text(&out)
    );
    // `latest` with one configured factory needs no --factory.
    let out = rig.adfdr(&["show", "latest", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["id"], s2.as_str());
    // --at in this machine's local time, without seconds.
    // This machine's local time is the child's TZ: three hours east here.
    let local =
        time::OffsetDateTime::now_utc() + time::Duration::minutes(1) + time::Duration::hours(3);
    let typed = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute()
    );
    let to = format!("{}/rg-dr/adf-at", crate::common::SUB);
    let mut cmd = rig.command();
    cmd.env("TZ", "Etc/GMT-3")
        .args(["restore", "--at", &typed, "--to", &to, "--plan"]);
    let out = crate::common::files::run_within(&mut cmd, std::time::Duration::from_secs(60));
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("reading --at {typed} as")),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains(&s2), "{}", text(&out));
}

/// Item 10: `adfdr show … | head` and the like: the reader going away is
/// not a crash (exit 101 and a panic message before); the code is a
/// SIGPIPE'd program's, and nothing is said.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_goes_away_is_not_a_crash() {
    let rig = FileRig::start("epipe").await;
    let id = rig.backup(false);
    for args in [
        vec!["show", "latest"],
        vec!["show", id.as_str(), "--json"],
        vec!["schema", "snapshots"],
        vec!["completions", "bash"],
        vec!["snapshots"],
        vec!["log", "sales"],
        vec!["status", "--json"],
    ] {
        // The read end is closed before adfdr starts: its first print
        // meets EPIPE, every time.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = rig
            .command()
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .expect("adfdr runs");
        assert_eq!(code(&out), 141, "{args:?}: {}", text(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

/// Item 10: `adfdr restores` lists past restores from the audit trail
/// (who, when, what, into where, outcome), as velero's `restore get`.
#[tokio::test(flavor = "multi_thread")]
async fn past_restores_are_listed_from_the_audit_trail() {
    let rig = FileRig::start("restores").await;
    let out = rig.adfdr(&["restores"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("no restores recorded"),
        "{}",
        text(&out)
    );
    let s1 = rig.backup(false);
    let to = format!("{}/rg-dr/adf-sales-dr", crate::common::SUB);
    let out = rig.adfdr(&["restore", &s1, "--to", &to, "-y"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let out = rig.adfdr(&[
        "restore",
        &s1,
        "--to",
        &to,
        "--include",
        "pipeline:PL_Smoke",
        "-y",
    ]);
    assert!(code(&out) == 0 || code(&out) == 3, "{}", text(&out));

    let out = rig.adfdr(&["restores", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let rows = v["restores"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{v:#}");
    // Newest first: the second asked for one pipeline.
    assert_eq!(
        rows[0]["include"],
        serde_json::json!(["pipeline:PL_Smoke"]),
        "{v:#}"
    );
    assert_eq!(rows[1]["snapshot"], s1.as_str());
    assert_eq!(rows[1]["factory"], "sales");
    assert!(
        rows[1]["to"]
            .as_str()
            .is_some_and(|t| t.ends_with("adf-sales-dr")),
        "{v:#}"
    );
    assert_eq!(rows[1]["outcome"], "restored-with-skips");
    assert!(
        rows[1]["by"].as_str().is_some_and(|b| b.contains('@')),
        "{v:#}"
    );
    let out = rig.adfdr(&["restores", "--last", "1"]);
    let table = stdout(&out);
    assert!(
        table.contains("STARTED") && table.contains(&format!("sales@{s1}")),
        "{table}"
    );
    assert_eq!(table.lines().count(), 2, "one row: {table}");
    let out = rig.adfdr(&["restores", "other", "--json"]);
    assert_eq!(json(&out)["restores"], serde_json::json!([]));
}

/// Item 10: `key list`: each key's fingerprint and which snapshots it
/// opens (a key file's claim proven by unwrapping), a retired key still
/// named by the snapshots it sealed, and snapshots no key at hand opens.
#[tokio::test(flavor = "multi_thread")]
async fn keys_are_listed_with_what_each_opens() {
    let rig = FileRig::start("keylist").await;
    let s1 = rig.backup(false);
    let second = rig.dir.join("second.key");
    let fp2 = adfdr_core::keys::generate_key_file(&second).expect("key");
    let with_second = format!(
        "{}\n[[key]]\nid = \"second\"\nfile = \"{}\"\n",
        rig.config_text(""),
        second.display()
    );
    std::fs::write(&rig.config, &with_second).expect("config");
    let s2 = rig.backup(true);

    let out = rig.adfdr(&["key", "list", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let key = |v: &serde_json::Value, id: &str| {
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no key {id}: {v:#}"))
    };
    let bg = key(&v, "breakglass");
    assert_eq!(bg["snapshots"], 2, "{v:#}");
    assert_eq!(bg["proof"], "unwrapped");
    assert_eq!(bg["oldest"], s1.as_str());
    assert_eq!(bg["newest"], s2.as_str());
    let k2 = key(&v, "second");
    assert_eq!(k2["fingerprint"], fp2.as_str());
    assert_eq!(k2["snapshots"], 1, "only the snapshot taken since: {v:#}");
    assert_eq!(v["none_at_hand"], serde_json::json!([]));

    // "second" retired from the config: still named by the snapshot it
    // sealed, not at hand.
    rig.write_config("");
    let v = json(&rig.adfdr(&["key", "list", "--json"]));
    let k2 = key(&v, "second");
    assert_eq!(k2["at_hand"], false, "{v:#}");
    assert_eq!(k2["proof"], "header");
    assert_eq!(k2["snapshots"], 1);

    // A wrong key in incident mode: every snapshot named, with its code.
    let wrong = rig.dir.join("wrong.key");
    adfdr_core::keys::generate_key_file(&wrong).expect("key");
    let weu = rig.weu.display().to_string();
    let out = bare(
        &rig,
        &[
            "key",
            "list",
            "--store",
            &weu,
            "--key",
            &wrong.display().to_string(),
            "--json",
        ],
        &[],
    );
    assert_eq!(code(&out), 5, "{}", text(&out));
    let v = json(&out);
    assert_eq!(
        v["none_at_hand"],
        serde_json::json!([format!("sales/{s1}"), format!("sales/{s2}")]),
        "{v:#}"
    );
    assert_eq!(
        key(&v, "key1")["snapshots"],
        0,
        "the wrong key opens nothing"
    );
}
