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
    assert!(!stderr(&out).contains("nothing was restored"), "{}", text(&out));
    let written = rig
        .emu
        .with_world(|w| w.factory(SUB, "rg-dr", "adf-sales-unapplied").is_ok());
    assert!(!written, "nothing was written");
}
