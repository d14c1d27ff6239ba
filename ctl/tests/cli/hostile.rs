//! A hostile location (issue 12): an attacker who can write to one backup
//! location but holds no key, and an operator whose share breaks. Two
//! directory locations (`weu`, `neu`), the emulator for ARM and the managed
//! identity, a break-glass key file. Each test plants or breaks something,
//! then asserts exit codes, what is listed, what survives in every location,
//! and that nothing outside the locations changed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::files::{FileRig, run_within};
use crate::common::{SUB, code, json, stderr, stdout, text};

/// Writes `bytes` over a stored (read-only) object.
fn overwrite(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).expect("plant");
}

/// `bytes` with a new SHA-256 trailer: what anyone without a key can do.
fn redigest(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len() - 32);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// Replaces `from` by `to` (same length) inside an object's header and fixes
/// its digest: a forged header that no key was needed to make.
fn forge_header(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
    let header = std::str::from_utf8(&bytes[12..12 + hlen]).expect("utf8");
    assert!(header.contains(from), "{from} not in the header");
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(header.replace(from, to).as_bytes());
    out.extend_from_slice(&bytes[12 + hlen..]);
    redigest(out)
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn ids_listed(out: &Output) -> Vec<String> {
    json(out)["snapshots"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// Issue 12, item 1: planted manifests (copies under future names, and a
/// forged header with a recomputed digest) never steer retention, `latest`,
/// listing or repair, and are deleted only on request.
#[tokio::test(flavor = "multi_thread")]
async fn planted_manifests_steer_nothing_and_go_only_when_asked() {
    let rig = FileRig::start("plant").await;
    rig.write_config("keep = { last = 2 }");
    let s1 = rig.backup(false);
    let s2 = rig.backup(true);
    // The attacker: nine copies of S1's manifest under names from 2999 …
    let s1_manifest = std::fs::read(rig.manifest(&rig.weu, &s1)).expect("s1");
    for i in 0..9 {
        overwrite(
            &rig.manifest(&rig.weu, &format!("29991231T00000{i}Z-00000000")),
            &s1_manifest,
        );
    }
    // … and a manifest whose header names a new, plausible id, digest fixed.
    let forged_id = adfdr_core::snapshot::snapshot_id(time::OffsetDateTime::now_utc(), 0xabcde);
    let s2_manifest = std::fs::read(rig.manifest(&rig.weu, &s2)).expect("s2");
    overwrite(
        &rig.manifest(&rig.weu, &forged_id),
        &forge_header(&s2_manifest, &s2, &forged_id),
    );
    let neu_before = names(&rig.snapshots_dir(&rig.neu));

    // Listing: only the real two, the plants named.
    let out = rig.adfdr(&["snapshots", "--json"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert_eq!(ids_listed(&out), [s1.clone(), s2.clone()], "{}", text(&out));
    assert!(
        stderr(&out).contains("29991231T000000Z-00000000.manifest"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains(&forged_id), "{}", text(&out));

    // Retention: the plants fill no keep rule; both real snapshots stay.
    let out = rig.adfdr(&["prune", "--all"]);
    assert_eq!(
        code(&out),
        4,
        "foreign objects are a failed check: {}",
        text(&out)
    );
    assert!(stdout(&out).contains("NOT A SNAPSHOT"), "{}", text(&out));
    for loc in [&rig.weu, &rig.neu] {
        for id in [&s1, &s2] {
            assert!(rig.manifest(loc, id).exists(), "{id} in {}", loc.display());
            assert!(rig.payload(loc, id).exists(), "{id} in {}", loc.display());
        }
    }

    // `latest` is the newest snapshot that opens: S2.
    let out = rig.adfdr(&["show", "latest", "--factory", "sales", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains(&s2), "{}", text(&out));

    // verify names them foreign (4); repair copies none of them to neu.
    let out = rig.adfdr(&["verify"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert_eq!(
        stdout(&out).matches("foreign  v1/sales/snapshots/").count(),
        10,
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 4, "still foreign: {}", text(&out));
    assert_eq!(
        names(&rig.snapshots_dir(&rig.neu)),
        neu_before,
        "repair copied a plant"
    );

    // Only an explicit request deletes them, and only them.
    let out = rig.adfdr(&["verify", "--delete-foreign"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        stdout(&out).matches("deleted foreign weu").count(),
        10,
        "{}",
        text(&out)
    );
    let mut want = vec![
        format!("{s1}.manifest"),
        format!("{s1}.payload"),
        format!("{s2}.manifest"),
        format!("{s2}.payload"),
    ];
    want.sort();
    assert_eq!(names(&rig.snapshots_dir(&rig.weu)), want);
    assert_eq!(names(&rig.snapshots_dir(&rig.neu)), want);
}

/// Issue 12, item 2: links in a location are never followed; a lease that
/// is a link to a local file leaves the file alone (and the lease moves to
/// the next location).
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_link_never_empties_the_file_it_points_to() {
    let rig = FileRig::start("leaselink").await;
    rig.backup(false);
    let audit = rig.dir.join("state/audit.jsonl");
    let secret = rig.dir.join("client-secret");
    std::fs::write(&secret, b"s3cret-value").expect("secret");
    let before_audit = std::fs::read(&audit).unwrap_or_default();
    let lease = rig.weu.join("v1/sales/lease");
    let _ = std::fs::remove_file(&lease);
    std::os::unix::fs::symlink(&secret, &lease).expect("link");
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 0, "the lease moved to neu: {}", text(&out));
    assert_eq!(std::fs::read(&secret).expect("secret"), b"s3cret-value");
    assert!(
        rig.neu.join("v1/sales/lease").is_file(),
        "lease taken in neu"
    );
    // A symlinked directory inside the location is refused, not followed.
    let outside = rig.dir.join("outside");
    std::fs::create_dir_all(&outside).expect("dir");
    std::fs::remove_file(&lease).expect("rm");
    std::fs::rename(rig.weu.join("v1/sales"), rig.dir.join("weu-sales")).expect("mv");
    std::os::unix::fs::symlink(&outside, rig.weu.join("v1/sales")).expect("dir link");
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(
        code(&out),
        1,
        "weu refuses, every location is needed: {}",
        text(&out)
    );
    assert!(stderr(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(
        names(&outside),
        Vec::<String>::new(),
        "nothing written outside"
    );
    assert!(
        std::fs::read(&audit)
            .unwrap_or_default()
            .starts_with(&before_audit)
    );
}

/// Issue 12, item 3: one bad copy (a key-wrap entry flipped, digest fixed)
/// never blocks a read, and plain verify (what the agent schedules) finds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_copy_is_read_past_found_by_plain_verify_and_repaired() {
    let rig = FileRig::start("badcopy").await;
    let s1 = rig.backup(false);
    let path = rig.manifest(&rig.weu, &s1);
    let good = std::fs::read(&path).expect("manifest");
    let hlen = u32::from_le_bytes(good[8..12].try_into().expect("4")) as usize;
    let header = std::str::from_utf8(&good[12..12 + hlen])
        .expect("utf8")
        .to_string();
    let at = header.find("\"wrapped\":\"").expect("a wrapped key") + 12;
    let mut bad = good.clone();
    bad[12 + at] = if bad[12 + at] == b'A' { b'B' } else { b'A' };
    overwrite(&path, &redigest(bad));

    let out = rig.adfdr(&["verify"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("damaged  v1/sales/snapshots/{s1}.manifest")),
        "{}",
        text(&out)
    );
    for args in [&["show", &s1][..], &["export", &s1, "--out"]] {
        let mut args = args.to_vec();
        let out_dir = rig.dir.join(format!("export-{}", args.len()));
        let out_dir = out_dir.to_string_lossy().to_string();
        if args.ends_with(&["--out"]) {
            args.push(&out_dir);
        }
        let out = rig.adfdr(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains("skipped location weu"),
            "{}",
            text(&out)
        );
    }
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(std::fs::read(&path).expect("repaired"), good);
}

/// Issue 12, item 4: FIFOs, links to devices, huge files and non-file config
/// or key paths end at once with an error that names them.
#[tokio::test(flavor = "multi_thread")]
async fn fifos_devices_and_huge_files_never_hang_or_exhaust_memory() {
    let rig = FileRig::start("unbounded").await;
    let s1 = rig.backup(false);
    let quick = Duration::from_secs(30);
    // The payload in both locations: a FIFO in weu, a link to /dev/zero in neu.
    let (p_weu, p_neu) = (rig.payload(&rig.weu, &s1), rig.payload(&rig.neu, &s1));
    std::fs::remove_file(&p_weu).expect("rm");
    let made = Command::new("mkfifo").arg(&p_weu).status().expect("mkfifo");
    assert!(made.success());
    std::fs::remove_file(&p_neu).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &p_neu).expect("link");
    let out_dir = rig.dir.join("out");
    let out = rig.run_within(
        &["export", &s1, "--out", out_dir.to_str().expect("utf8")],
        quick,
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("FIFO") && stderr(&out).contains("symbolic link"),
        "{}",
        text(&out)
    );
    let out = rig.run_within(&["verify", "--read-data"], quick);
    assert_eq!(code(&out), 4, "{}", text(&out));
    // A 3 GB (sparse) payload is refused from its size.
    std::fs::remove_file(&p_neu).expect("rm");
    std::fs::File::create(&p_neu)
        .and_then(|f| f.set_len(3 << 30))
        .expect("sparse");
    let out = rig.run_within(
        &["export", &s1, "--out", out_dir.to_str().expect("utf8")],
        quick,
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("more than"), "{}", text(&out));
    // Config and key files that are devices or FIFOs.
    let out = run_within(
        rig.command().args(["-c", "/dev/urandom", "snapshots"]),
        quick,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );
    let fifo_key = rig.dir.join("fifo.key");
    let made = Command::new("mkfifo")
        .arg(&fifo_key)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::write(
        &rig.config,
        rig.config_text("").replace(
            &rig.key.display().to_string(),
            &fifo_key.display().to_string(),
        ),
    )
    .expect("config");
    let out = rig.run_within(&["snapshots"], quick);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("FIFO"), "{}", text(&out));
}

/// Issue 12, item 5: a snapshot deleted from every location behind adfdr's
/// back is noticed (verify, status, restore latest), and a prune of ours is
/// not mistaken for one.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_is_reported_by_verify_status_and_restore() {
    let rig = FileRig::start("rollback").await;
    rig.write_config("keep = { last = 1 }\nrpo_target = \"1h\"");
    let s1 = rig.backup(false);
    let s2 = rig.backup(true);
    let out = rig.adfdr(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for loc in [&rig.weu, &rig.neu] {
        std::fs::remove_file(rig.manifest(loc, &s2)).expect("rm");
        std::fs::remove_file(rig.payload(loc, &s2)).expect("rm");
    }
    let out = rig.adfdr(&["verify"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("VANISHED sales/{s2}")),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["status"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains(&s2) && stdout(&out).contains("no location holds"),
        "{}",
        text(&out)
    );
    let target = format!("{SUB}/rg-dr/adf-sales-dr");
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &target,
        "--plan",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stderr(&out).contains(&s2) && stderr(&out).contains(&s1),
        "{}",
        text(&out)
    );
    // A prune of ours deletes S1 (keep last 1 while S3 is newest): no alarm.
    let _s3 = rig.backup(true);
    let out = rig.adfdr(&["prune", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["verify"]);
    assert_eq!(
        code(&out),
        0,
        "the pruned S1 and the older S2 are not a rollback now: {}",
        text(&out)
    );
}

/// Issue 12, items 6 and 7: a location that refuses writes (a read-only
/// mount) makes a backup degraded while min_copies is met, and, short of
/// min_copies, nothing is committed anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_location_degrades_and_short_of_min_copies_nothing_commits() {
    let rig = FileRig::start("readonly").await;
    let s1 = rig.backup(false);
    // Run adfdr with neu mounted read-only, in a mount namespace of its own.
    let read_only = |args: &[&str]| -> Output {
        let adfdr = env!("CARGO_BIN_EXE_adfdr");
        let neu = rig.neu.display().to_string();
        let script =
            format!("mount --bind -o ro '{neu}' '{neu}' || exit 97; exec '{adfdr}' \"$@\"");
        let mut cmd = rig.command();
        let mut sh = Command::new("unshare");
        sh.args(["-rm", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(args);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        let _ = &mut cmd;
        let out = run_within(&mut sh, Duration::from_secs(120));
        assert_ne!(
            code(&out),
            97,
            "could not mount neu read-only: {}",
            text(&out)
        );
        out
    };
    // Default: every location must hold the snapshot. Nothing is committed.
    let out = read_only(&["backup", "--force"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("nothing was committed"),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["snapshots", "--json"]);
    assert_eq!(ids_listed(&out), [s1], "{}", text(&out));
    // One copy is enough: degraded (3), queued for repair, lease in weu.
    rig.write_config("");
    let text_cfg = format!("{}\n[backup]\nmin_copies = 1\n", rig.config_text(""));
    std::fs::write(&rig.config, text_cfg).expect("config");
    let out = read_only(&["backup", "--force"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        stderr(&out).contains("location neu missed its copy"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Issue 12, item 8: one physical location under two names is a config error.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_location_twice_is_a_config_error() {
    let rig = FileRig::start("twice").await;
    let alias = rig.dir.join("alias");
    std::os::unix::fs::symlink(&rig.weu, &alias).expect("link");
    for neu in [
        rig.weu.display().to_string(),
        format!("{}/", rig.weu.display()),
        format!("{}/../weu", rig.weu.display()),
        alias.display().to_string(),
    ] {
        let text_cfg = rig.config_text("").replace(
            &format!("file://{}\"", rig.neu.display()),
            &format!("file://{neu}\""),
        );
        std::fs::write(&rig.config, text_cfg).expect("config");
        let out = rig.adfdr(&["config", "check", "--offline"]);
        assert_eq!(code(&out), 2, "{neu}: {}", text(&out));
        assert!(
            stderr(&out).contains("same place as location weu"),
            "{}",
            text(&out)
        );
    }
}

/// Issue 12, item 10: `--to` is checked against ARM's name rules before
/// anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_target_that_is_not_an_arm_name_is_refused_before_any_write() {
    let rig = FileRig::start("to").await;
    rig.backup(false);
    for to in [
        format!("{SUB}/rg/f?x=1"),
        format!("{SUB}/../f"),
        "s/r/f#x".to_string(),
        format!("{SUB}/rg/a%2Fb"),
        format!("{SUB}/rg/my factory"),
        format!("{SUB}/rg/-f"),
        "not-a-guid/rg/adf-x".to_string(),
    ] {
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            "sales",
            "--to",
            &to,
            "--yes",
        ]);
        assert_eq!(code(&out), 2, "{to}: {}", text(&out));
        assert!(stderr(&out).contains("--to"), "{to}: {}", text(&out));
    }
    let writes = rig.emu.counters().by_op.get("writes").copied().unwrap_or(0);
    assert_eq!(writes, 0, "nothing was written");
}

/// Issue 12, item 9: a restore that wrote and then failed (its read-back is
/// refused) says what it wrote and leaves its audit record.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_that_fails_midway_says_what_it_wrote_and_audits_it() {
    let rig = FileRig::start("faults").await;
    rig.backup(false);
    // Every read of data flows fails: only the read-back after the writes
    // lists them (the target does not exist before).
    adfdr_tests::admin(
        &rig.emu,
        "faults",
        serde_json::json!({"op": "reads", "path_contains": "/dataflows", "count": 1000, "status": 403, "code": "AuthorizationFailed"}),
    )
    .await;
    let target = format!("{SUB}/rg-dr/adf-sales-dr");
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &target,
        "--yes",
    ]);
    adfdr_tests::admin_delete(&rig.emu, "faults").await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let summary = stdout(&out);
    assert!(summary.contains("failed: sales@"), "{}", text(&out));
    assert!(summary.contains("READ-BACK FAILED"), "{}", text(&out));
    let written: usize = summary
        .lines()
        .find(|l| l.starts_with("failed: sales@"))
        .and_then(|l| l.split(" written,").next())
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no written count: {}", text(&out)));
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit trail");
    let record: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("a record")).expect("json");
    assert_eq!(record["action"], "restore");
    assert_eq!(record["outcome"], "failed");
    assert!(written > 10, "it wrote before it failed: {}", text(&out));
    assert_eq!(record["written"], written, "{record}");
}

/// Issue 12, smaller items: an unknown snapshot is a usage error, state and
/// exports are private, an export never lands in a non-empty directory, and
/// `config check --offline` opens the key files it names.
#[tokio::test(flavor = "multi_thread")]
async fn small_things_exit_codes_modes_and_offline_checks() {
    use std::os::unix::fs::PermissionsExt;
    let rig = FileRig::start("small").await;
    let s1 = rig.backup(false);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;

    let out = rig.adfdr(&["verify", "--snapshot", "20200101T000000Z-00000000"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("not in any location"),
        "{}",
        text(&out)
    );

    let state = rig.dir.join("state");
    assert_eq!(mode(&state), 0o700, "state dir");
    assert_eq!(mode(&state.join("catalog.redb")), 0o600, "catalog");

    let out_dir = rig.dir.join("export");
    let out = rig.adfdr(&["export", &s1, "--out", out_dir.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(mode(&out_dir), 0o700);
    let pipeline_dir = out_dir.join("pipeline");
    assert_eq!(mode(&pipeline_dir), 0o700);
    for f in std::fs::read_dir(&pipeline_dir).expect("files") {
        assert_eq!(
            mode(&f.expect("file").path()),
            0o600,
            "exported files are private"
        );
    }
    let out = rig.adfdr(&["export", &s1, "--out", out_dir.to_str().expect("utf8")]);
    assert_eq!(
        code(&out),
        2,
        "a non-empty directory is a usage error: {}",
        text(&out)
    );

    // An empty, then unreadable, key file: --offline says so (exit 2).
    let good = std::fs::read(&rig.key).expect("key");
    std::fs::remove_file(&rig.key).expect("rm");
    std::fs::write(&rig.key, b"").expect("empty");
    std::fs::set_permissions(&rig.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = rig.adfdr(&["config", "check", "--offline"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("exactly 32"), "{}", text(&out));
    std::fs::remove_file(&rig.key).expect("rm");
    let out = rig.adfdr(&["config", "check", "--offline"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains(&rig.key.display().to_string()),
        "{}",
        text(&out)
    );
    std::fs::write(&rig.key, &good).expect("key");
    std::fs::set_permissions(&rig.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = rig.adfdr(&["config", "check", "--offline", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["ok"], true);
}

/// Issue 25, item 1, for a hand-written `[[factory]]`: a name pointed at
/// another factory is refused (its history is another source's), with the
/// way out; `adopt = true` continues it, and then retention decides per
/// source (each keeps its own newest) and `restore latest` says the source
/// changed instead of silently taking the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_name_keeps_its_source_unless_adopted() {
    let rig = FileRig::start("bound").await;
    rig.write_config("keep = { last = 1 }");
    let s1 = rig.backup(false);
    let s2 = rig.backup(true);
    rig.emu
        .seed(
            &format!("{SUB}/rg-other/adf-impostor"),
            &crate::common::sample_factory(),
        )
        .expect("seed");
    let pointed = |extra: &str| {
        rig.config_text(extra)
            .replace(
                "resource_group = \"rg-prod\"",
                "resource_group = \"rg-other\"",
            )
            .replace("factory = \"adf-sales\"", "factory = \"adf-impostor\"")
    };
    std::fs::write(&rig.config, pointed("keep = { last = 1 }")).expect("config");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("belongs to /subscriptions/")
            && stderr(&out).contains("/factories/adf-sales")
            && stderr(&out).contains("adopt = true"),
        "{}",
        text(&out)
    );
    assert_eq!(
        names(&rig.snapshots_dir(&rig.weu)).len(),
        4,
        "nothing written"
    );

    std::fs::write(&rig.config, pointed("keep = { last = 1 }\nadopt = true")).expect("config");
    let s3 = rig.backup(false);
    let out = rig.adfdr(&["prune", "--all", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let kept: Vec<&str> = v["factories"][0]["snapshots"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|s| s["keep"] == true)
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(kept.len(), 2, "{v:#}");
    assert!(
        kept.contains(&s3.as_str()) && kept.contains(&s2.as_str()),
        "{v:#}"
    );
    assert_eq!(
        v["factories"][0]["deleted"],
        serde_json::json!([s1]),
        "{v:#}"
    );

    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &format!("{SUB}/rg-dr/adf-dr"),
        "--plan",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("the snapshot before it ({s2})"))
            && stderr(&out).contains("another factory"),
        "{}",
        text(&out)
    );
}

/// Issue 25, item 6: a lease record planted with an expiry years ahead used
/// to hold a factory's jobs for good; it holds nothing now.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_planted_for_ever_holds_nothing() {
    let rig = FileRig::start("forever").await;
    std::fs::create_dir_all(rig.weu.join("v1/sales")).expect("dir");
    let planted = serde_json::json!({
        "id": "planted",
        "expires_ms": 4_102_444_800_000u64,
        "holder": {"host": "elsewhere", "boot": "b", "pid": 1, "uid": 0,
                   "role": "agent", "since": "2026-01-01T00:00:00Z"}
    });
    std::fs::write(rig.weu.join("v1/sales/lease"), planted.to_string()).expect("plant");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Issue 25, item 8: a broken or hostile ARM answer (a 429 asking to wait
/// for years, a body dripped a byte at a time, a nextLink that leads back to
/// itself, a page of 40 MiB) used to hold a backup for ever or exhaust
/// memory. Each backup now ends within its request deadline with an error
/// that names the cause.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_arm_cannot_hold_a_backup() {
    use adfdr_tests::hostile_arm::{HostileArm, Misbehaviour};
    let rig = FileRig::start("hostile-arm").await;
    let cases = [
        (
            Misbehaviour::RetryForever,
            "HTTP 429 asking to wait 1000000000 s",
        ),
        (Misbehaviour::Drip, "its body still arriving"),
        (
            Misbehaviour::LoopingNextLink,
            "leads back to a page already read",
        ),
        (Misbehaviour::Huge, "larger than 32 MiB"),
    ];
    for (how, cause) in cases {
        let arm = HostileArm::start(how).await;
        let config = rig
            .config_text("")
            .replace(&rig.emu.urls().arm.to_string(), &arm.url)
            .replace(
                rig.emu.urls().arm.trim_end_matches('/'),
                arm.url.trim_end_matches('/'),
            )
            .replace("factory = \"adf-sales\"", "factory = \"adf-hostile\"")
            .replace("[auth]\n", "[auth]\nrequest_deadline = \"3s\"\n");
        std::fs::write(&rig.config, config).expect("config");
        let started = std::time::Instant::now();
        let out = rig.run_within(&["backup"], Duration::from_secs(60));
        let took = started.elapsed();
        assert_eq!(code(&out), 1, "{how:?}: {}", text(&out));
        assert!(stderr(&out).contains(cause), "{how:?}: {}", text(&out));
        assert!(took < Duration::from_secs(30), "{how:?} took {took:?}");
    }
}

/// Issue 25, item 10: a name in the store with nothing under it that opens
/// (a planted manifest, a checkpoint name) is no factory in the fleet view,
/// and a planted checkpoint name does not make an RPO look fresh.
#[tokio::test(flavor = "multi_thread")]
async fn planted_names_are_no_factory_and_no_confirmation_in_the_fleet() {
    let rig = FileRig::start("junk").await;
    let s1 = rig.backup(false);
    let ghost = rig.weu.join("v1/ghost/snapshots");
    std::fs::create_dir_all(&ghost).expect("dir");
    let manifest = std::fs::read(rig.manifest(&rig.weu, &s1)).expect("s1");
    let id = adfdr_core::snapshot::snapshot_id(time::OffsetDateTime::now_utc(), 0x123);
    std::fs::write(ghost.join(format!("{id}.manifest")), &manifest).expect("plant");
    let checkpoints = rig.weu.join("v1/sales/checkpoints");
    std::fs::create_dir_all(&checkpoints).expect("dir");
    let later = adfdr_core::snapshot::snapshot_id(
        time::OffsetDateTime::now_utc() + time::Duration::minutes(2),
        0x456,
    );
    std::fs::write(checkpoints.join(format!("{later}.checkpoint")), b"planted").expect("plant");
    let out = rig.adfdr(&["status", "--fleet", "--json"]);
    let v = json(&out);
    let rows = v["factories"].as_array().expect("rows");
    assert!(rows.iter().all(|r| r["factory"] != "ghost"), "{v:#}");
    let sales = rows
        .iter()
        .find(|r| r["factory"] == "sales")
        .expect("sales");
    let confirmed = sales["last_confirmed"].as_str().unwrap_or_default();
    assert_eq!(
        confirmed,
        adfdr_core::snapshot::rfc3339(adfdr_core::snapshot::snapshot_time(&s1).expect("time")),
        "{v:#}"
    );
}
