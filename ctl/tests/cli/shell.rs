//! Issue 16: the CLI as SREs use it beside restic and node_exporter:
//! crontab lines as cron means them, completions and man pages, help with
//! examples and exit codes, colour only on a terminal, quiet means quiet.

use crate::common::files::FileRig;
use crate::common::*;

/// `config check` shows each job's next five runs, as cron would run the
/// line: `0 3 1 * MON` runs on the 1st and on every Monday (crontab(5):
/// "if both fields are restricted, the command runs when either matches").
#[tokio::test(flavor = "multi_thread")]
async fn config_check_shows_the_next_runs_as_crontab_means_them() {
    let rig = FileRig::start("schedules").await;
    rig.write_config(
        "backup = \"0 3 1 * MON\"\nverify = \"@daily\"\ntimezone = \"Europe/Amsterdam\"",
    );
    let out = rig.adfdr(&["config", "check", "--offline", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let jobs = v["schedules"].as_array().expect("schedules");
    assert_eq!(jobs.len(), 2, "{v}");
    let backup = jobs.iter().find(|j| j["job"] == "backup").expect("backup");
    assert_eq!(backup["timezone"], "Europe/Amsterdam");
    let runs: Vec<chrono::DateTime<chrono::FixedOffset>> = backup["next"]
        .as_array()
        .expect("next")
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t.as_str().expect("text")).expect("time"))
        .collect();
    assert_eq!(runs.len(), 5, "{backup}");
    use chrono::{Datelike, Timelike};
    for t in &runs {
        assert_eq!((t.hour(), t.minute()), (3, 0), "{t}");
        assert!(
            t.day() == 1 || t.weekday() == chrono::Weekday::Mon,
            "{t}: neither the 1st nor a Monday"
        );
    }
    // OR, not AND: a Monday comes within a week, not once in months.
    let now = chrono::Utc::now();
    assert!(
        (runs[0].with_timezone(&chrono::Utc) - now).num_days() < 7,
        "{runs:?}"
    );
    assert!(runs.windows(2).all(|w| w[0] < w[1]), "{runs:?}");
    let out = rig.adfdr(&["config", "check", "--offline"]);
    assert!(
        stdout(&out).contains("next  sales backup = \"0 3 1 * MON\" (Europe/Amsterdam): "),
        "{}",
        text(&out)
    );
}

/// A restore that applied nothing (no `--yes`, stdin not a terminal) exits
/// 2 and says why, so a script cannot mistake it for a restore; `--plan`
/// (asked for the plan only) is 0. Nothing is written either way.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_that_applied_nothing_exits_2_with_the_reason() {
    let rig = FileRig::start("unapplied").await;
    rig.backup(false);
    let to = format!("{SUB}/rg-dr/adf-sales-unapplied");
    let run = |extra: &[&str]| {
        rig.command()
            .args(["restore", "latest", "--factory", "sales", "--to", &to])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs")
    };
    let out = run(&[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("nothing was restored: no --yes, and stdin is not a terminal"),
        "{}",
        text(&out)
    );
    let out = run(&["--json"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(json(&out)["applied"].is_null(), "{}", text(&out));
    let out = run(&["--plan"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        !stderr(&out).contains("nothing was restored"),
        "{}",
        text(&out)
    );
    let written = rig
        .emu
        .with_world(|w| w.factory(SUB, "rg-dr", "adf-sales-unapplied").is_ok());
    assert!(!written, "nothing was written");
}

/// Completions for the shells people use, man pages for every command, and
/// every command's help ends with examples and its exit codes.
#[test]
fn completions_man_pages_and_help_with_examples_and_exit_codes() {
    let adfdr = || std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"));
    let out = adfdr()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let script = stdout(&out);
    assert!(
        script.contains("restore") && script.contains("--store"),
        "{script}"
    );
    let dir = scratch("completions");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("adfdr.bash");
    std::fs::write(&file, &script).expect("write");
    // bash itself parses it, and it completes a subcommand.
    let probe = format!(
        "source {}; COMP_WORDS=(adfdr rest); COMP_CWORD=1; _adfdr adfdr rest adfdr; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash");
    assert!(
        stdout(&out).lines().any(|l| l == "restore"),
        "{}",
        text(&out)
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = adfdr().args(["completions", shell]).output().expect("runs");
        assert_eq!(code(&out), 0, "{shell}: {}", text(&out));
        assert!(stdout(&out).contains("snapshots"), "{shell}");
    }
    let out = adfdr()
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 2, "an unknown shell is a usage error");

    let man = dir.join("man1");
    let out = adfdr()
        .args(["man", "--out", man.to_str().expect("utf8")])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let page = std::fs::read_to_string(man.join("adfdr-restore.1")).expect("restore page");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH adfdr-restore 1"),
        "{page}"
    );
    assert!(
        page.contains("Exit codes") && page.contains("\\-\\-store"),
        "{page}"
    );
    assert!(man.join("adfdr.1").exists());

    let commands = [
        "backup",
        "snapshots",
        "show",
        "diff",
        "export",
        "verify",
        "status",
        "prune",
        "restore",
        "drill",
        "drills",
        "key",
        "config",
        "catalog",
        "demo",
        "completions",
        "man",
    ];
    for command in commands {
        assert!(man.join(format!("adfdr-{command}.1")).exists(), "{command}");
        let out = adfdr().args([command, "--help"]).output().expect("runs");
        assert_eq!(code(&out), 0, "{command}: {}", text(&out));
        let help = stdout(&out);
        let examples = help
            .find("Examples:\n  adfdr ")
            .unwrap_or_else(|| panic!("{command}: {help}"));
        let codes = help
            .find("Exit codes:\n  0  ")
            .unwrap_or_else(|| panic!("{command}: {help}"));
        assert!(examples < codes, "{command}: examples, then exit codes");
    }
}

/// Colour only on a terminal: logs piped to a file carry no escapes; `-q`
/// prints nothing but errors.
#[tokio::test(flavor = "multi_thread")]
async fn no_colour_off_a_terminal_and_quiet_means_only_errors() {
    let rig = FileRig::start("quiet").await;
    let out = rig.adfdr(&["-vv", "backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("DEBUG") || err.contains("INFO"),
        "-vv logs: {err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in piped logs: {err:?}"
    );

    let out = rig.adfdr(&["-q", "backup", "--force"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    let out = rig.adfdr(&["-q", "snapshots"]);
    assert_eq!((code(&out), stdout(&out)), (0, String::new()));
    // --json is asked for: it is still written.
    let out = rig.adfdr(&["-q", "snapshots", "--json"]);
    assert!(json(&out)["snapshots"].is_array(), "{}", text(&out));
    // An error is still an error.
    let out = rig.adfdr(&["-q", "show", "20200101T000000Z-00000000"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("adfdr: error:"), "{}", text(&out));
    assert_eq!(stdout(&out), "");
}

/// `adfdr init` makes what the config names and proves it works: a missing
/// directory (private, 0700) and a missing container are made, each
/// location writes, reads and deletes a probe, and a second run changes
/// nothing. Something in the way is named, and nothing is half made.
#[tokio::test(flavor = "multi_thread")]
async fn init_makes_each_location_proves_it_and_is_idempotent() {
    use std::os::unix::fs::PermissionsExt;
    let rig = FileRig::start("init").await;
    let fresh = rig.dir.join("new/weu");
    let config = rig.config_text("").replace(
        &format!("file://{}", rig.weu.display()),
        &format!("file://{}", fresh.display()),
    );
    std::fs::write(&rig.config, &config).expect("config");
    let out = rig.adfdr(&["init", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    let made: Vec<(String, bool, bool)> = v["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| {
            (
                l["location"].as_str().expect("name").to_string(),
                l["created"].as_bool().expect("created"),
                l["ready"].as_bool().expect("ready"),
            )
        })
        .collect();
    assert_eq!(
        made,
        [
            ("weu".to_string(), true, true),
            ("neu".to_string(), false, true)
        ]
    );
    let mode = std::fs::metadata(&fresh)
        .expect("made")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let left: Vec<_> = std::fs::read_dir(fresh.join("v1"))
        .expect("v1")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "the probe is gone: {left:?}");
    let out = rig.adfdr(&["init"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("location weu") && stdout(&out).contains("was there"),
        "{}",
        text(&out)
    );
    // It backs up into what init made.
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A file where the directory should be: named, exit 1.
    let blocked = rig.dir.join("blocked");
    std::fs::write(&blocked, b"not a directory").expect("file");
    let config = config.replace(
        &format!("file://{}", fresh.display()),
        &format!("file://{}", blocked.display()),
    );
    std::fs::write(&rig.config, &config).expect("config");
    let out = rig.adfdr(&["init"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("still missing") && stdout(&out).contains("is not a directory"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&blocked).expect("file"), b"not a directory");
}

/// A container that does not exist yet is made by init (Azurite).
#[tokio::test(flavor = "multi_thread")]
async fn init_makes_a_missing_container() {
    let rig = Rig::start(
        "init-container",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    let fresh = format!("{}/fresh", rig.azurite.accounts[1].url);
    rig.write_config(&rig.config_text(Some(&fresh)));
    let out = rig.adfdr(&["init", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["locations"][1]["created"], true, "{v}");
    assert_eq!(v["locations"][0]["created"], false, "{v}");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["init", "--json"]);
    assert_eq!(json(&out)["locations"][1]["created"], false, "idempotent");
}

/// `restore --at TIME` takes the snapshot in force then: the newest taken
/// at or before it; a time before the first snapshot says which is oldest.
#[tokio::test(flavor = "multi_thread")]
async fn restore_at_a_time_takes_the_snapshot_in_force_then() {
    let rig = FileRig::start("restore-at").await;
    let first = rig.backup(false);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = rig.backup(true);
    assert_ne!(first, second);
    let time_of = |id: &str| {
        chrono::NaiveDateTime::parse_from_str(&id[..16], "%Y%m%dT%H%M%SZ")
            .expect("an id starts with its time")
            .and_utc()
    };
    let between = time_of(&first) + chrono::Duration::seconds(1);
    assert!(between < time_of(&second));
    let at = |t: chrono::DateTime<chrono::Utc>| {
        rig.adfdr(&[
            "restore",
            "--factory",
            "sales",
            "--at",
            &t.to_rfc3339(),
            "--to",
            &format!("{SUB}/rg-dr/adf-sales-at"),
            "--plan",
            "--json",
        ])
    };
    let out = at(between);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        json(&out)["source"]["snapshot"],
        first.as_str(),
        "{}",
        text(&out)
    );
    let out = at(time_of(&second) + chrono::Duration::hours(1));
    assert_eq!(
        json(&out)["source"]["snapshot"],
        second.as_str(),
        "{}",
        text(&out)
    );
    let out = at(time_of(&first) - chrono::Duration::days(1));
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("the oldest is {first}")),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--at",
        "2026-12-01T00:00:00Z",
        "--to",
        "x/y/z",
    ]);
    assert_eq!(
        code(&out),
        2,
        "a snapshot and --at are one too many: {}",
        text(&out)
    );
}
