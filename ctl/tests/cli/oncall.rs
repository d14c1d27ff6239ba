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
