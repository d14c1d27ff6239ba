//! Issue 26, item 6: one grammar. `--dry-run` everywhere (the old `--plan`
//! kept), the factory taken the same way by every command (positional or
//! `-f/--factory`, configured or discovered), `-y`; and every example in
//! every `--help` runs, as written, against the emulator.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use adf_emulator::kinds::Kind;

use crate::common::files::{FileRig, run_within};
use crate::common::*;

const DISCOVER: &str = r#"
[[discover]]
subscriptions = ["*"]
resource_groups = ["rg-data-*"]
policy = "standard"

[policy.standard]
backup = "0 * * * *"
rpo_target = "2h"
keep = { last = 5 }
"#;

/// A pipeline of the source changed, so the second backup has a change
/// (and a change set, `listing:ID`, for `restore --undo`; a change, not a
/// creation: the sample factory's CanNotDelete lock would refuse the
/// delete that undoing a creation takes).
fn change_pipeline(rig: &FileRig, name: &str) {
    rig.emu.with_world(|w| {
        w.put_child(
            SUB,
            RG,
            "adf-sales",
            Kind::Pipeline,
            None,
            name,
            serde_json::json!({"properties": {"activities": [
                {"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}
            ]}}),
            None,
            0,
        )
        .expect("pipeline");
    });
}

/// The subcommands `adfdr --help` lists.
fn subcommands(rig: &FileRig) -> Vec<String> {
    let out = rig.adfdr(&["--help"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let help = stdout(&out);
    help.split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Cuts `line` at the first run of two spaces outside quotes (where the
/// example's description starts).
fn command_part(line: &str) -> String {
    let mut quote = None;
    let chars: Vec<char> = line.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(*c),
            (Some(q), c) if q == *c => quote = None,
            (None, ' ') if chars.get(i + 1) == Some(&' ') => {
                return chars[..i].iter().collect();
            }
            _ => {}
        }
    }
    line.to_string()
}

/// The examples of one `--help` text: `adfdr …` lines, continuations
/// (`\`) joined, descriptions cut.
fn examples(help: &str) -> Vec<String> {
    let Some(section) = help.split("Examples:\n").nth(1) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in section.lines().take_while(|l| !l.trim().is_empty()) {
        let line = line.trim();
        if continued {
            let last = out.last_mut().expect("continued");
            last.push(' ');
            last.push_str(line);
        } else if line.starts_with("adfdr ") {
            out.push(line.to_string());
        }
        continued = line.ends_with('\\');
        if continued {
            let last = out.last_mut().expect("continued");
            last.truncate(last.trim_end_matches('\\').trim_end().len());
        }
    }
    out.into_iter().map(|e| command_part(&e)).collect()
}

/// What an example names that only exists on a reader's machine, and what
/// it stands for here.
struct Place {
    from: &'static str,
    to: String,
}

fn places(rig: &FileRig, work: &Path, older: &str, newer: &str, set: &str) -> Vec<Place> {
    let p = |from, to: String| Place { from, to };
    vec![
        p("20261130T030000Z-aaaa1111", older.into()),
        p("20261201T030000Z-bbbb2222", newer.into()),
        p("20261201T030000Z-1a2b3c4d", newer.into()),
        p("6f1c…e2", set.into()),
        p("CHANGE_SET", set.into()),
        // A time after the snapshots were taken (the example's is in the past).
        p("2026-12-01T09:30:00Z", "2099-01-01T00:00:00Z".into()),
        p(
            "https://stneu.blob.core.windows.net/adfdr",
            rig.neu.display().to_string(),
        ),
        p(
            "file:///mnt/backup",
            format!("file://{}", rig.weu.display()),
        ),
        p("/mnt/backup", rig.weu.display().to_string()),
        // Incident mode signs in with `az` (a stand-in on PATH here) and
        // reaches ARM at the emulator, whose CA the reader's machine would
        // not need.
        p(
            "./bg.key",
            format!(
                "{} --arm-endpoint {} --ca-file {}",
                rig.key.display(),
                rig.emu.urls().arm,
                adfdr_tests::ca_pem().display()
            ),
        ),
        p(
            "/etc/adfdr/credentials/breakglass.key",
            work.join("new.key").display().to_string(),
        ),
        p(
            "/usr/share/man/man1",
            work.join("man").display().to_string(),
        ),
        p("/tmp/adfdr-demo", work.join("demo").display().to_string()),
        p("SUB/", format!("{SUB}/")),
    ]
}

/// An example as the shell in the test runs it: placeholders replaced,
/// pipes into tools the machine may lack (jq) dropped, redirections into
/// system paths sent to the work directory.
fn runnable(example: &str, places: &[Place], n: usize) -> String {
    let mut cmd = example.to_string();
    for p in places {
        cmd = cmd.replace(p.from, &p.to);
    }
    if let Some((before, _)) = cmd.split_once(" | ") {
        cmd = before.to_string();
    }
    if let Some((before, _)) = cmd.split_once(" > ") {
        cmd = format!("{before} > out.{n}");
    }
    cmd
}

fn shell(rig: &FileRig, work: &Path, script: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_adfdr"));
    let template = rig.command();
    let mut cmd = Command::new("sh");
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let az = fake_az(&rig.emu, &rig.dir);
    let path = format!(
        "{}:{}",
        az.display(),
        path_with(bin.parent().expect("bin dir"))
    );
    cmd.env("PATH", path).current_dir(work).args(["-c", script]);
    run_within(&mut cmd, Duration::from_secs(120))
}

/// Every example of every command's `--help`, run as written (placeholders
/// for the reader's machine replaced), ends as its help says: 0, or the
/// documented code for what the example shows.
#[tokio::test(flavor = "multi_thread")]
async fn every_help_example_runs_as_written() {
    let rig = FileRig::start("examples").await;
    let drill = format!(
        "drill_target = {{ subscription = \"{SUB}\", resource_group = \"rg-dr\", factory = \"adf-sales-drill\" }}\n{DISCOVER}"
    );
    rig.write_config(&drill);
    let older = rig.backup(false);
    change_pipeline(&rig, "PL_Smoke");
    let newer = rig.backup(false);
    let set = format!("listing:{newer}");
    let work = rig.dir.join("work");
    std::fs::create_dir_all(&work).expect("work");
    let places = places(&rig, &work, &older, &newer, &set);

    let mut ran = Vec::new();
    let mut wrong = Vec::new();
    for sub in std::iter::once(None).chain(subcommands(&rig).into_iter().map(Some)) {
        let mut args: Vec<&str> = sub.iter().map(String::as_str).collect();
        args.push("--help");
        let out = rig.adfdr(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        for example in examples(&stdout(&out)) {
            let n = ran.len();
            let script = runnable(&example, &places, n);
            let out = shell(&rig, &work, &script);
            let expected = expected_code(&example);
            if code(&out) != expected {
                wrong.push(format!(
                    "`{example}` (run as `{script}`): exit {}, expected {expected}\n{}",
                    code(&out),
                    text(&out)
                ));
            }
            ran.push(example);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // Every command with examples was reached (a parser that found none
    // would pass vacuously).
    for must in [
        "adfdr backup --json | jq .factories",
        "adfdr restore 20261201T030000Z-1a2b3c4d --to SUB/rg-dr/adf-sales-dr --include 'pipeline:PL_*' -y",
        "adfdr key generate --out /etc/adfdr/credentials/breakglass.key",
        "adfdr discover --dry-run",
        "adfdr demo",
    ] {
        assert!(ran.iter().any(|e| e == must), "{must} not run: {ran:#?}");
    }
    assert!(ran.len() >= 40, "{} examples: {ran:#?}", ran.len());
}

/// The code an example ends with, where it is not 0 (each as its help's
/// "Exit codes" documents it).
fn expected_code(example: &str) -> i32 {
    match example {
        // No drill has proven the factory yet (the drill examples come
        // later): the fleet view says it needs attention.
        "adfdr status --fleet" => 4,
        // The sample factory's identity needs access granted by hand in
        // the DR resource group: restored, with what to grant (3).
        e if e.starts_with("adfdr restore")
            && e.contains("--to SUB/rg-dr")
            && !e.contains("--dry-run") =>
        {
            3
        }
        _ => 0,
    }
}

/// `--dry-run` on every command that plans (`--plan` kept), `-y`, and the
/// factory by position or `-f/--factory` on every command that takes one.
#[tokio::test(flavor = "multi_thread")]
async fn one_grammar_for_dry_run_yes_and_the_factory() {
    let rig = FileRig::start("grammar").await;
    rig.write_config(DISCOVER);
    let first = rig.backup(false);

    // The factory either way, on every command that takes one.
    for args in [
        vec!["backup", "-f", "sales"],
        vec!["backup", "--factory", "sales"],
        vec!["snapshots", "-f", "sales"],
        vec!["snapshots", "sales"],
        vec!["verify", "-f", "sales"],
        vec!["verify", "sales"],
        vec!["log", "-f", "sales"],
        vec!["log", "sales"],
        vec!["prune", "-f", "sales", "--dry-run"],
        vec!["drills", "-f", "sales"],
        vec!["show", "latest", "-f", "sales"],
        vec!["export", "latest", "-f", "sales", "--out", "exported"],
    ] {
        let mut cmd = rig.command();
        cmd.current_dir(&rig.dir).args(&args);
        let out = run_within(&mut cmd, Duration::from_secs(120));
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        // The name was taken, not ignored: another one is refused.
        let other: Vec<&str> = args
            .iter()
            .map(|a| if *a == "sales" { "nosuch" } else { a })
            .collect();
        let out = rig.adfdr(&other);
        assert_eq!(code(&out), 2, "{other:?}: {}", text(&out));
        assert!(
            stderr(&out).contains("unknown factory 'nosuch'"),
            "{other:?}: {}",
            text(&out)
        );
    }
    // Log with its only factory left out, as `latest` does.
    let out = rig.adfdr(&["log", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["factory"], "sales");
    // Two different factories to a one-factory command: said, not guessed.
    let out = rig.adfdr(&["snapshots", "sales", "-f", "other"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("two factories given"),
        "{}",
        text(&out)
    );

    // --dry-run, -n and the old --plan are one flag, on restore, prune and
    // discover.
    let to = format!("{SUB}/rg-dr/adf-sales-dr");
    for flag in ["--dry-run", "-n", "--plan"] {
        let out = rig.adfdr(&["restore", "latest", "--to", &to, flag, "--json"]);
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
        assert!(json(&out)["plan"].is_object(), "{flag}: {}", text(&out));
        let out = rig.adfdr(&["prune", flag, "--json"]);
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
        assert_eq!(json(&out)["factories"][0]["dry_run"], true, "{flag}");
        let out = rig.adfdr(&["discover", flag, "--json"]);
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
    }
    assert!(
        rig.emu
            .with_world(|w| w.factory(SUB, "rg-dr", "adf-sales-dr").is_err()),
        "a dry run created nothing"
    );
    // -y applies (3: restored, with the identity's access to grant by hand
    // in the DR resource group).
    let out = rig.adfdr(&["restore", &first, "--to", &to, "-y", "--json"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        rig.emu
            .with_world(|w| w.factory(SUB, "rg-dr", "adf-sales-dr").is_ok())
    );
    // The help shows one spelling, and says the other is there.
    let out = rig.adfdr(&["restore", "--help"]);
    let help = stdout(&out);
    assert!(
        help.contains("--dry-run") && help.contains("[alias: --plan]"),
        "{help}"
    );
}

/// Issue 26, item 10: a factory only a `[[discover]]` block names is a
/// factory every command can name (`adfdr backup adf-x` was "unknown
/// factory; configured: none" while the agent protected it).
#[tokio::test(flavor = "multi_thread")]
async fn every_command_takes_a_discovered_factory() {
    let rig = FileRig::start("discovered").await;
    rig.emu
        .seed(&format!("{SUB}/rg-data-eu/adf-found"), &sample_factory())
        .expect("seed");
    // No [[factory]] block at all: discovery alone.
    let config = rig.config_text("");
    let config = &config[..config.find("[[factory]]").expect("factory block")];
    std::fs::write(&rig.config, format!("{config}\n{DISCOVER}")).expect("config");

    let out = rig.adfdr(&["backup", "adf-found", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["factories"][0]["factory"], "adf-found", "{v:#}");
    assert!(v["factories"][0]["report"]["snapshot"].is_string(), "{v:#}");
    for args in [
        vec!["snapshots", "adf-found", "--json"],
        vec!["show", "latest", "-f", "adf-found", "--json"],
        vec!["log", "adf-found", "--json"],
        vec!["prune", "adf-found", "--dry-run", "--json"],
        vec!["verify", "adf-found", "--json"],
    ] {
        let out = rig.adfdr(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
    }
    // A name neither configured nor discovered is still refused, after
    // discovery was asked.
    let out = rig.adfdr(&["backup", "adf-nowhere"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("unknown factory 'adf-nowhere'; configured or discovered: adf-found"),
        "{}",
        text(&out)
    );
}
