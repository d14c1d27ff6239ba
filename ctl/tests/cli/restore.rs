//! `adfdr restore` end to end, with the emulator as referee: an ordering bug
//! gets "invalid reference" or TriggerEnabledCannotUpdate from it and the
//! restore fails.

use std::collections::BTreeMap;

use adf_emulator::kinds::Kind;
use adf_emulator::state::child_view;
use adfdr_tests::comparable;
use serde_json::Value;

use crate::common::*;

pub const DR_RG: &str = "rg-dr";

/// (kind, name) -> (definition as tests compare it, runtime state) of a
/// factory in the emulator; None when the factory does not exist.
pub type Contents = BTreeMap<(String, String), (Value, Option<String>)>;

pub fn contents(rig: &Rig, rg: &str, factory: &str) -> Option<Contents> {
    rig.emu.with_world(|w| {
        let f = w.factory(SUB, rg, factory).ok()?;
        let mut out = BTreeMap::new();
        for kind in Kind::ALL {
            for c in f.children(kind).values() {
                let name = match &c.parent {
                    Some(p) => format!("{p}/{}", c.name).to_lowercase(),
                    None => c.name.to_lowercase(),
                };
                out.insert(
                    (format!("{kind:?}"), name),
                    (
                        comparable(kind, &child_view(f, kind, c)),
                        c.runtime_state.clone(),
                    ),
                );
            }
        }
        Some(out)
    })
}

pub fn started(c: &Contents) -> Vec<String> {
    c.iter()
        .filter(|((k, _), (_, s))| k == "Trigger" && s.as_deref() == Some("Started"))
        .map(|((_, n), _)| n.clone())
        .collect()
}

/// The label adfdr uses (`linkedService:ls_x`) of an emulator key, lowercased.
fn label(key: &(String, String)) -> String {
    let mut kind = key.0.clone();
    kind[..1].make_ascii_lowercase();
    format!("{kind}:{}", key.1).to_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_factory_restores_into_an_empty_factory() {
    let Some((rig, dirs)) = corpus_rig("restore-corpus").await else {
        return;
    };
    let names = rig.factories.clone();
    let out = rig.adfdr(&["backup", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut restored_total = 0;
    for ((name, arm_name), dir) in names.iter().zip(&dirs) {
        let what = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let source = contents(&rig, RG, arm_name).expect("source factory");
        let target = format!("{SUB}/{DR_RG}/{arm_name}-dr");
        // Credentials encrypted for the source factory work in no other:
        // the operator gives them again (here: one override per such linked
        // service, as the plan asks).
        let rules = credential_rules(dir);
        let mut args = vec![
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--yes",
            "--json",
        ];
        let file = (!rules.is_empty()).then(|| overrides(&rig, &rules));
        if let Some(file) = &file {
            args.extend(["--overrides", file.as_str()]);
        }
        let out = rig
            .command()
            .env("CORPUS_PASSWORD", "given-again")
            .args(&args)
            .output()
            .expect("runs");
        assert!(matches!(code(&out), 0 | 3), "{what}: {}", text(&out));
        let report = json(&out);
        assert_eq!(
            report["applied"]["failures"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
        assert_eq!(
            report["mismatches"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
        let skipped: Vec<String> = report["plan"]["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .map(|s| {
                let reason = s["reason"].as_str().unwrap_or_default();
                // A credential encrypted for the source factory works in no
                // other: without an override it is skipped, saying so.
                assert!(
                    reason.contains("neither in the snapshot nor in the target")
                        || reason.contains("which is skipped")
                        || reason.contains("encryptedCredential was made for the source factory"),
                    "{what}: only dangling references and foreign credentials may be skipped: {s}"
                );
                s["label"].as_str().unwrap_or_default().to_lowercase()
            })
            .collect();
        assert_eq!(
            code(&out) == 3,
            !skipped.is_empty(),
            "{what}: exit 3 exactly when something was skipped"
        );
        let restored =
            contents(&rig, DR_RG, &format!("{arm_name}-dr")).expect("target factory created");
        let given_again = |k: &(String, String), v: &Value| -> Value {
            let mut v = v.clone();
            if k.0 == "LinkedService" && v.pointer("/typeProperties/encryptedCredential").is_some()
            {
                let props = v["typeProperties"].as_object_mut().expect("typeProperties");
                props.remove("encryptedCredential");
                props.insert(
                    "password".into(),
                    serde_json::json!({"type": "SecureString", "value": "**********"}),
                );
            }
            v
        };
        let expected: Contents = source
            .iter()
            .filter(|(k, _)| !skipped.contains(&label(k)))
            .map(|(k, (v, _))| (k.clone(), (given_again(k, v), None)))
            .collect();
        let restored_defs: Contents = restored
            .iter()
            .map(|(k, (v, _))| (k.clone(), (v.clone(), None)))
            .collect();
        assert_eq!(
            restored_defs.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, v) in &expected {
            assert_eq!(&restored_defs[k], v, "{what}: {k:?} differs");
        }
        assert!(
            started(&restored).is_empty(),
            "{what}: triggers stay stopped by default"
        );
        restored_total += expected.len();

        // Triggers as they were: exactly the source's started ones.
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--yes",
            "--triggers",
            "as-backed-up",
        ]);
        assert!(matches!(code(&out), 0 | 3), "{what}: {}", text(&out));
        let restored = contents(&rig, DR_RG, &format!("{arm_name}-dr")).expect("target");
        let plan = json(&rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--plan",
            "--json",
            "--triggers",
            "as-backed-up",
        ]));
        let unstartable: Vec<String> = plan["plan"]["unstartable"]
            .as_array()
            .expect("unstartable")
            .iter()
            .map(|u| {
                assert!(
                    u["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("references no pipeline"),
                    "{u}"
                );
                u["label"].as_str().unwrap_or_default().to_lowercase()
            })
            .collect();
        let source_started: Vec<String> = started(&source)
            .into_iter()
            .filter(|n| {
                !skipped.contains(&format!("trigger:{n}"))
                    && !unstartable.contains(&format!("trigger:{n}"))
            })
            .collect();
        assert_eq!(started(&restored), source_started, "{what}");

        // Converged: nothing left to write.
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--plan",
            "--json",
            "--triggers",
            "as-backed-up",
        ]);
        assert_eq!(code(&out), 0, "{what}: {}", text(&out));
        let plan = json(&out);
        assert_eq!(
            plan["plan"]["steps"],
            serde_json::json!([]),
            "{what}: {plan:#}"
        );
        assert_eq!(
            plan["plan"]["factory"]["action"], "unchanged",
            "{what}: {plan:#}"
        );
    }
    assert!(restored_total > 50, "restored {restored_total} resources");
}

/// An override per linked service of `dir` whose credentials are encrypted
/// for its own factory: the password given again as a SecureString.
fn credential_rules(dir: &std::path::Path) -> String {
    let mut rules = String::new();
    for entry in std::fs::read_dir(dir.join("linkedService"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(body) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(ls) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        if ls
            .pointer("/properties/typeProperties/encryptedCredential")
            .is_none()
        {
            continue;
        }
        let name = ls["name"].as_str().unwrap_or_default();
        rules.push_str(&format!(
            "[[rule]]\nkind = \"linkedService\"\nname = \"{name}\"\nset = {{ \"/properties/typeProperties/password\" = {{ type = \"SecureString\", value = \"\" }} }}\n[rule.fill]\n\"/properties/typeProperties/password/value\" = {{ env = \"CORPUS_PASSWORD\" }}\n\n"
        ));
    }
    rules
}

fn factory_of(rig: &Rig, rg: &str, name: &str) -> Contents {
    contents(rig, rg, name).unwrap_or_else(|| panic!("factory {rg}/{name} exists"))
}

/// The raw stored body of a resource (secrets unmasked), from the emulator.
fn stored(rig: &Rig, rg: &str, factory: &str, kind: Kind, name: &str) -> Option<Value> {
    rig.emu.with_world(|w| {
        w.factory(SUB, rg, factory)
            .ok()?
            .children(kind)
            .get(&name.to_lowercase())
            .map(|c| c.body.clone())
    })
}

fn overrides(rig: &Rig, text: &str) -> String {
    let path = rig
        .dir
        .join(format!("overrides-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).expect("overrides");
    path.display().to_string()
}

const FILL_ERP: &str = r#"
[[rule]]
kind = "linkedService"
name = "LS_OnPrem*"
set = { "/properties/description" = "restored by adfdr" }
[rule.fill]
"/properties/typeProperties/connectionString" = { env = "ERP_CONNECTION" }

# The share's password lives in the source factory's credential store
# (encryptedCredential): another factory needs it given again.
[[rule]]
kind = "linkedService"
name = "LS_Erp_Files"
set = { "/properties/typeProperties/password" = { type = "SecureString", value = "" } }
[rule.fill]
"/properties/typeProperties/password/value" = { env = "ERP_CONNECTION" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn masked_secrets_are_never_written_and_an_override_fills_them() {
    let rig = Rig::start(
        "restore-secrets",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let to = format!("{SUB}/{DR_RG}/adf-sales-dr");

    // No value for the inline secret: that linked service and what needs it
    // are skipped, named with the reason; everything else is restored.
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
    ]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let report = stdout(&out);
    assert!(report.contains("SKIP   linkedService:LS_OnPremSql: secret /properties/typeProperties/connectionString/value came back masked"), "{report}");
    assert!(
        report.contains("SKIP   dataset:DS_Erp_Orders: needs linkedService:LS_OnPremSql"),
        "{report}"
    );
    assert!(report.contains("restored-with-skips"), "{report}");
    assert!(
        stored(
            &rig,
            DR_RG,
            "adf-sales-dr",
            Kind::LinkedService,
            "LS_OnPremSql"
        )
        .is_none()
    );
    let everything = rig.emu.with_world(|w| {
        let f = w.factory(SUB, DR_RG, "adf-sales-dr").expect("dr");
        Kind::ALL
            .iter()
            .flat_map(|k| f.children(*k).values().map(|c| c.body.to_string()))
            .collect::<String>()
    });
    assert!(
        !everything.contains("**********"),
        "a mask was written to the target"
    );

    // --strict refuses instead, before writing anything more.
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &format!("{SUB}/{DR_RG}/adf-strict"),
        "--yes",
        "--strict",
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("--strict") && stderr(&out).contains("LS_OnPremSql"),
        "{}",
        text(&out)
    );
    assert!(
        contents(&rig, DR_RG, "adf-strict").is_none(),
        "nothing written under --strict"
    );

    // The override fills it from the environment; the value reaches the
    // target and nothing else (not stdout, not stderr, not the audit trail).
    let file = overrides(&rig, FILL_ERP);
    let out = rig
        .command()
        .env("ERP_CONNECTION", "Server=dr-erp;Password=from-the-vault")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--to",
            &to,
            "--yes",
            "--overrides",
            &file,
        ])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("from-the-vault"), "{}", text(&out));
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit trail");
    assert!(!audit.contains("from-the-vault"));
    // The backup, the restore with skips, the --strict refusal (issue 27:
    // a refused restore is recorded too) and the filled restore.
    let actions: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .map(|v| {
            format!(
                "{}:{}",
                v["action"].as_str().unwrap_or("?"),
                v["job"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        ["backup:", "restore:", "failed:restore", "restore:"],
        "{audit}"
    );
    assert!(audit.contains("--strict"), "the refusal says why: {audit}");
    let ls = stored(
        &rig,
        DR_RG,
        "adf-sales-dr",
        Kind::LinkedService,
        "LS_OnPremSql",
    )
    .expect("restored");
    assert_eq!(
        ls["properties"]["typeProperties"]["connectionString"]["value"],
        "Server=dr-erp;Password=from-the-vault"
    );
    assert_eq!(ls["properties"]["description"], "restored by adfdr");

    // A path that matches nothing: a warning, an error under --strict.
    let typo = overrides(
        &rig,
        "[[rule]]\nkind = \"pipeline\"\nname = \"PL_Smoke\"\nremove = [\"/properties/nope\"]\n",
    );
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--plan",
        "--overrides",
        &typo,
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("warning: pipeline:PL_Smoke: rule 1 (pipeline:PL_Smoke): remove /properties/nope matches nothing"), "{}", text(&out));
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--plan",
        "--overrides",
        &typo,
        "--strict",
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drifted_factory_converges_and_delete_extraneous_removes_the_extras() {
    use azure_core::http::Method;
    let rig = Rig::start(
        "restore-drift",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let backed_up = factory_of(&rig, RG, "adf-sales");
    assert!(
        !started(&backed_up).is_empty(),
        "the sample has started triggers"
    );

    // A bad day in the portal: a hot-fix to a pipeline and to a started
    // trigger, a new pipeline with a started trigger, a deleted pipeline.
    let arm = adfdr_tests::arm_client(&rig.emu, "portal-user");
    let base = adfdr_tests::factory_path(SUB, RG, "adf-sales");
    let get = |kind: &str, name: &str| format!("{base}/{kind}/{name}");
    let mut pl = arm.get(&get("pipelines", "PL_Load_Dw")).await.expect("get");
    pl["properties"]["description"] = "hot-fix".into();
    arm.put(&get("pipelines", "PL_Load_Dw"), &pl)
        .await
        .expect("put");
    arm.send(Method::Post, &get("triggers", "TR_Daily/stop"), None)
        .await
        .expect("stop");
    let mut tr = arm.get(&get("triggers", "TR_Daily")).await.expect("get");
    tr["properties"]["typeProperties"]["recurrence"]["interval"] = 2.into();
    arm.put(&get("triggers", "TR_Daily"), &tr)
        .await
        .expect("put");
    arm.send(Method::Post, &get("triggers", "TR_Daily/start"), None)
        .await
        .expect("start");
    arm.put(&get("pipelines", "PL_Extra"), &serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}})).await.expect("put");
    arm.put(&get("triggers", "TR_Extra"), &serde_json::json!({"properties": {"type": "ScheduleTrigger", "typeProperties": {"recurrence": {"frequency": "Hour", "interval": 1}},
        "pipelines": [{"pipelineReference": {"referenceName": "PL_Extra", "type": "PipelineReference"}}]}})).await.expect("put");
    arm.send(Method::Post, &get("triggers", "TR_Extra/start"), None)
        .await
        .expect("start");
    // The factory's CanNotDelete lock refuses the delete (409 ScopeLocked):
    // whoever deletes by accident first removed the lock.
    let lock = format!(
        "{base}/providers/Microsoft.Authorization/locks/lock-no-delete?api-version=2020-05-01"
    );
    let refused = arm
        .delete(&get("pipelines", "PL_Smoke"))
        .await
        .expect_err("locked");
    assert_eq!(refused.code(), Some("ScopeLocked"), "{refused}");
    arm.delete(&lock).await.expect("unlock");
    arm.delete(&get("pipelines", "PL_Smoke"))
        .await
        .expect("delete");
    assert_ne!(factory_of(&rig, RG, "adf-sales"), backed_up);

    let to = format!("{SUB}/{RG}/adf-sales");
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
        "--triggers",
        "as-backed-up",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = stdout(&out);
    assert!(report.contains("stop triggers first: TR_Daily"), "{report}");
    assert!(
        report.contains("keep   pipeline:PL_Extra: not in the snapshot"),
        "{report}"
    );
    let now = factory_of(&rig, RG, "adf-sales");
    let extras = [
        ("Pipeline".to_string(), "pl_extra".to_string()),
        ("Trigger".to_string(), "tr_extra".to_string()),
    ];
    let without_extras: Contents = now
        .iter()
        .filter(|(k, _)| !extras.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        without_extras, backed_up,
        "definitions and trigger states as backed up"
    );
    assert_eq!(
        now[&extras[1]].1.as_deref(),
        Some("Started"),
        "extras are left alone without --delete-extraneous"
    );
    // The lock came back, last.
    assert!(
        text(&out).contains("locked: lock:lock-no-delete"),
        "{}",
        text(&out)
    );
    arm.get(&lock).await.expect("the lock is back");

    // It refuses the deletes --delete-extraneous asks for, before any write.
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
        "--triggers",
        "as-backed-up",
        "--delete-extraneous",
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("the target factory has the CanNotDelete lock 'lock-no-delete'")
            && stderr(&out).contains("az lock delete"),
        "{}",
        text(&out)
    );
    arm.delete(&lock).await.expect("unlock");

    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
        "--triggers",
        "as-backed-up",
        "--delete-extraneous",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("delete trigger:TR_Extra"),
        "{}",
        text(&out)
    );
    assert_eq!(factory_of(&rig, RG, "adf-sales"), backed_up);

    let plan = json(&rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--plan",
        "--json",
        "--triggers",
        "as-backed-up",
        "--delete-extraneous",
    ]));
    assert_eq!(plan["plan"]["steps"], serde_json::json!([]), "{plan:#}");
    assert_eq!(plan["plan"]["delete"], serde_json::json!([]), "{plan:#}");
    assert_eq!(
        plan["plan"]["stop_triggers"],
        serde_json::json!([]),
        "{plan:#}"
    );
    assert_eq!(
        plan["plan"]["start_triggers"],
        serde_json::json!([]),
        "{plan:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_killed_midway_converges_when_run_again() {
    let rig = Rig::start("restore-kill", &[("sales", "adf-sales", &sample_factory())]).await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let file = overrides(&rig, FILL_ERP);
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 120})).await;
    let restore = |to: &str| {
        let mut cmd = rig.command();
        cmd.env("ERP_CONNECTION", "x").args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--to",
            &format!("{SUB}/{DR_RG}/{to}"),
            "--yes",
            "--overrides",
            &file,
            // Timed on the writes: the SSIS IR's start would double the run.
            "--runtimes",
            "stopped",
        ]);
        cmd
    };
    let out = restore("adf-whole").output().expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let reference = factory_of(&rig, DR_RG, "adf-whole");
    let whole = contents(&rig, DR_RG, "adf-whole").expect("restored").len();

    let mut child = restore("adf-killed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Killed once a third of the resources are written (each write takes
    // the 120 ms latency, so the rest are still to come).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while contents(&rig, DR_RG, "adf-killed").map_or(0, |c| c.len()) < whole / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore wrote nothing in a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let partial = contents(&rig, DR_RG, "adf-killed").unwrap_or_default();
    assert!(
        partial.len() < reference.len(),
        "killed midway: {} of {} resources",
        partial.len(),
        reference.len()
    );

    let out = restore("adf-killed").output().expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(factory_of(&rig, DR_RG, "adf-killed"), reference);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_restore_reads_the_secondary_when_the_primary_is_damaged_or_down() {
    let rig = Rig::start(
        "restore-fallback",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let to = format!("{SUB}/{DR_RG}/adf-sales-dr");
    let payload = rig
        .objects()
        .await
        .into_iter()
        .find(|(account, key, _)| {
            account == &rig.azurite.accounts[0].name && key.ends_with(".payload")
        })
        .expect("payload in weu");
    let mut damaged = payload.2.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    rig.overwrite(0, &payload.1, damaged).await;
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--plan",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("(read from neu)"), "{}", text(&out));
    assert!(
        stderr(&out).contains("skipped location weu"),
        "{}",
        text(&out)
    );

    let down = rig
        .config_text(None)
        .replace(&rig.location_url(0), "https://127.0.0.1:9/adfdr");
    rig.write_config(&down);
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
    ]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(stdout(&out).contains("(read from neu)"), "{}", text(&out));
    assert!(
        stderr(&out).contains("skipped location weu"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_mode_needs_only_a_login_a_store_and_a_key() {
    let rig = Rig::start(
        "restore-incident",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let bin = rig.fake_az();
    let home = scratch("incident-home");
    let ca = adfdr_tests::ca_pem();
    let incident = |key: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"));
        cmd.env_clear()
            .env("PATH", path_with(&bin))
            .env("HOME", &home)
            .current_dir(&home)
            .args([
                "restore",
                "latest",
                "--factory",
                "sales",
                "--to",
                &format!("{SUB}/{DR_RG}/adf-incident"),
            ])
            .args([
                "--store",
                &rig.location_url(0),
                "--store",
                &rig.location_url(1),
                "--key",
                key,
            ])
            .args([
                "--arm-endpoint",
                &rig.emu.urls().arm,
                "--ca-file",
                ca.to_str().expect("utf8"),
            ])
            .args(extra);
        cmd.output().expect("runs")
    };
    let out = incident(rig.breakglass.to_str().expect("utf8"), &["--yes", "--json"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "restored-with-skips", "{report:#}");
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report:#}");
    let skipped = report["plan"]["skipped"].as_array().expect("skipped").len();
    let restored = factory_of(&rig, DR_RG, "adf-incident");
    let source = factory_of(&rig, RG, "adf-sales");
    assert!(
        skipped > 0,
        "the masked ERP connection string cannot be restored"
    );
    assert_eq!(
        restored.len() + skipped,
        source.len(),
        "everything else is restored"
    );
    let audit = std::fs::read_to_string(home.join(".local/state/adfdr/audit.jsonl"))
        .expect("audit trail in HOME");
    let record: Value = serde_json::from_str(audit.trim()).expect("one JSON line");
    assert_eq!(record["action"], "restore");
    assert_eq!(record["to"], format!("{SUB}/{DR_RG}/adf-incident"));
    assert_eq!(record["factory"], "sales");
    assert!(
        record["identity"]
            .as_str()
            .unwrap_or_default()
            .contains("Azure CLI"),
        "{record}"
    );

    // The wrong key: the error names the keys that can open the snapshot.
    let wrong = home.join("wrong.key");
    let out = rig.adfdr(&["key", "generate", "--out", wrong.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = incident(wrong.to_str().expect("utf8"), &["--plan"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("It can be opened by") && stderr(&out).contains("adfdr-kek"),
        "{}",
        text(&out)
    );

    // An unknown snapshot.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"));
    let out = cmd
        .env_clear()
        .env("PATH", path_with(&bin))
        .env("HOME", &home)
        .args([
            "restore",
            "20990101T000000Z-00000000",
            "--factory",
            "sales",
            "--to",
            &format!("{SUB}/{DR_RG}/adf-x"),
        ])
        .args([
            "--store",
            &rig.location_url(0),
            "--key",
            rig.breakglass.to_str().expect("utf8"),
        ])
        .args([
            "--arm-endpoint",
            &rig.emu.urls().arm,
            "--ca-file",
            ca.to_str().expect("utf8"),
            "--plan",
        ])
        .output()
        .expect("runs");
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        stderr(&out).contains("20990101T000000Z-00000000"),
        "{}",
        text(&out)
    );
}

/// Every read a person needs in an incident takes the same `--store` and
/// `--key` as restore, with no config file anywhere (restic's `-r`):
/// snapshots, show, diff, export and verify.
#[tokio::test(flavor = "multi_thread")]
async fn incident_reads_need_only_a_login_a_store_and_a_key() {
    let rig = Rig::start(
        "incident-reads",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let out = rig.adfdr(&["backup", "--force", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let bin = rig.fake_az();
    let home = scratch("incident-reads-home");
    let ca = adfdr_tests::ca_pem();
    let store = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"))
            .env_clear()
            .env("PATH", path_with(&bin))
            .env("HOME", &home)
            .current_dir(&home)
            .args(args)
            .args([
                "--store",
                &rig.location_url(0),
                "--store",
                &rig.location_url(1),
                "--key",
                rig.breakglass.to_str().expect("utf8"),
                "--ca-file",
                ca.to_str().expect("utf8"),
            ])
            .output()
            .expect("runs")
    };
    let out = store(&["snapshots", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let ids: Vec<String> = json(&out)["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{}", text(&out));
    let out = store(&["show", "latest", "--factory", "sales", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["id"], ids[1].as_str());
    let out = store(&["diff", &ids[0], &ids[1], "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(json(&out)["diff"].is_object(), "{}", text(&out));
    let out_dir = home.join("export");
    let out = store(&["export", &ids[1], "--out", out_dir.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(out_dir.join("pipeline/PL_Daily_Sales.json").exists());
    let out = store(&["verify", "--read-data", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["healthy"], true, "{}", text(&out));
    // No config was needed, and none was read: HOME holds no adfdr.toml and
    // ADFDR_CONFIG is unset.
    assert!(!home.join("adfdr.toml").exists());
    // The wrong key cannot open a manifest: verify says so.
    let wrong = home.join("wrong.key");
    assert_eq!(
        code(&rig.adfdr(&["key", "generate", "--out", wrong.to_str().expect("utf8")])),
        0
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .env_clear()
        .env("PATH", path_with(&bin))
        .env("HOME", &home)
        .args(["show", "latest", "--factory", "sales"])
        .args([
            "--store",
            &rig.location_url(0),
            "--key",
            wrong.to_str().expect("utf8"),
        ])
        .args(["--ca-file", ca.to_str().expect("utf8")])
        .output()
        .expect("runs");
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        stderr(&out).contains("It can be opened by"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_is_refused_with_its_path_and_a_target_without_rights_names_the_role() {
    let seed = scratch("cycle-seed");
    std::fs::create_dir_all(seed.join("pipeline")).expect("dir");
    std::fs::create_dir_all(seed.join("factory")).expect("dir");
    std::fs::write(
        seed.join("factory/adf-cycle.json"),
        r#"{"name": "adf-cycle", "location": "westeurope"}"#,
    )
    .expect("factory");
    for (me, other) in [("PL_A", "PL_B"), ("PL_B", "PL_A")] {
        std::fs::write(
            seed.join(format!("pipeline/{me}.json")),
            format!(r#"{{"name": "{me}", "properties": {{"activities": [{{"name": "x", "type": "ExecutePipeline", "typeProperties": {{"pipeline": {{"referenceName": "{other}", "type": "PipelineReference"}}}}}}]}}}}"#),
        )
        .expect("pipeline");
    }
    let rig = Rig::start(
        "restore-cycle",
        &[
            ("cycle", "adf-cycle", &seed),
            ("sales", "adf-sales", &sample_factory()),
        ],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup", "--all"])), 0);
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "cycle",
        "--to",
        &format!("{SUB}/{DR_RG}/adf-cycle-dr"),
        "--plan",
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("dependency cycle: pipeline:PL_A -> pipeline:PL_B -> pipeline:PL_A"),
        "{}",
        text(&out)
    );

    // RBAC on: the agent's identity may read the source but not the target.
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    for (role, scope) in [
        (
            "Reader",
            format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
        ),
        ("Key Vault Crypto User", "/keyvault".to_string()),
    ] {
        adfdr_tests::admin(
            &rig.emu,
            "role-assignments",
            serde_json::json!({"principal_id": mi, "role": role, "scope": scope}),
        )
        .await;
    }
    let to = format!("{SUB}/{DR_RG}/adf-sales-dr");
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("the system-assigned managed identity")
            && text(&out).contains("'Data Factory Contributor'"),
        "{}",
        text(&out)
    );
    adfdr_tests::admin(&rig.emu, "role-assignments", serde_json::json!({"principal_id": mi, "role": "Reader", "scope": format!("/subscriptions/{SUB}/resourceGroups/{DR_RG}")})).await;
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--yes",
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("may not change factory")
            && stdout(&out).contains("'Data Factory Contributor'"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_start_as_backed_up_through_provisioning_refusals_and_throttling() {
    let rig = Rig::start(
        "restore-triggers",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let source = factory_of(&rig, RG, "adf-sales");
    // Event triggers right after a write: "cannot be updated during
    // provisioning" (adftools #463/#484), twice; and a burst of 429s on writes.
    adfdr_tests::admin(&rig.emu, "faults", serde_json::json!({"method": "POST", "path_contains": "/start", "status": 400,
        "code": "BadRequest", "message": "Resource cannot be updated during provisioning", "count": 2})).await;
    adfdr_tests::admin(
        &rig.emu,
        "faults",
        serde_json::json!({"method": "PUT", "path_contains": "/pipelines/", "status": 429,
        "code": "TooManyRequests", "message": "throttled", "retry_after": 1, "count": 12}),
    )
    .await;
    let file = overrides(&rig, FILL_ERP);
    let out = rig
        .command()
        .env("ERP_CONNECTION", "x")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--to",
            &format!("{SUB}/{DR_RG}/adf-sales-dr"),
            "--yes",
            "--triggers",
            "as-backed-up",
            "--overrides",
            &file,
        ])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let restored = factory_of(&rig, DR_RG, "adf-sales-dr");
    assert_eq!(started(&restored), started(&source));
    assert!(
        started(&source).contains(&"tr_newfiles".to_string()),
        "the sample starts an event trigger"
    );
    let subscription = rig.emu.with_world(|w| {
        w.factory(SUB, DR_RG, "adf-sales-dr")
            .expect("dr")
            .children(Kind::Trigger)["tr_newfiles"]
            .subscription
            .clone()
    });
    assert_eq!(subscription.as_deref(), Some("Enabled"));
    let counters = rig.emu.counters();
    assert!(
        counters.injected_faults >= 14,
        "the faults were served: {counters:?}"
    );
}

/// "Restored" means running: the Azure-SSIS IR and the managed-VNet IR that
/// ran at backup run again and the CDC is started; each IR start is a
/// long-running operation followed through faults and throttling on its
/// polls (the recorded protocol: 202, Azure-AsyncOperation, Retry-After).
/// `--runtimes stopped` leaves them, and the plan says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_restored_factory_runs_its_runtimes_again_through_faults_on_the_polls() {
    let rig = Rig::start(
        "restore-runtimes",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    for fault in [
        serde_json::json!({"method": "GET", "path_contains": "/operationstatuses/", "status": 503,
            "code": "ServiceUnavailable", "message": "try again", "count": 3}),
        serde_json::json!({"method": "GET", "path_contains": "/operationstatuses/", "status": 429,
            "code": "TooManyRequests", "message": "throttled", "retry_after": 1, "count": 2}),
    ] {
        adfdr_tests::admin(&rig.emu, "faults", fault).await;
    }
    let file = overrides(&rig, FILL_ERP);
    let restore = |to: &str, extra: &[&str]| {
        let mut cmd = rig.command();
        cmd.env("ERP_CONNECTION", "x")
            .args([
                "restore",
                "latest",
                "--factory",
                "sales",
                "--to",
                &format!("{SUB}/{DR_RG}/{to}"),
                "--yes",
                "--json",
                "--overrides",
                &file,
            ])
            .args(extra);
        cmd.output().expect("runs")
    };
    let out = restore("adf-sales-running", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    let mut runtimes: Vec<(String, String)> = report["applied"]["runtimes"]
        .as_array()
        .expect("runtimes")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name").to_string(),
                r["state"].as_str().expect("state").to_string(),
            )
        })
        .collect();
    runtimes.sort();
    assert_eq!(
        runtimes,
        [
            (
                "AutoResolveIntegrationRuntime".to_string(),
                "Started".to_string()
            ),
            ("ir-ssis".to_string(), "Started".to_string())
        ]
    );
    assert_eq!(report["applied"]["cdcs_started"], 1, "{report}");
    assert!(report["timings"]["runtimes_ms"].as_u64().expect("ms") > 0);
    // The managed private endpoint was waited for until provisioned, and
    // the report names the resource whose owner must approve it.
    let endpoints = &report["applied"]["endpoints"];
    assert_eq!(
        endpoints,
        &serde_json::json!([{
            "endpoint": "managedPrivateEndpoint:default/mpe-datalake",
            "provisioning": "Succeeded",
            "approval": "Pending",
            "resource": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/salesdatalake",
            "group": "dfs",
        }]),
        "{report}"
    );
    let states = rig.emu.with_world(|w| {
        let f = w.factory(SUB, DR_RG, "adf-sales-running").expect("dr");
        let now = adf_emulator::clock::now_ms();
        (
            f.children(Kind::IntegrationRuntime)["ir-ssis"].state_at(now),
            f.children(Kind::ChangeDataCapture)["cdc_orders"]
                .runtime_state
                .clone(),
        )
    });
    assert_eq!(states, (Some("Started".into()), Some("Running".into())));
    assert!(
        rig.emu.counters().injected_faults >= 5,
        "the polls met the faults: {:?}",
        rig.emu.counters()
    );

    let out = restore("adf-sales-cold", &["--runtimes", "stopped"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["applied"]["runtimes"], serde_json::json!([]));
    let left = report["plan"]["runtimes_left"].to_string();
    assert!(
        left.contains("integrationRuntime:ir-ssis") && left.contains("--runtimes stopped"),
        "{left}"
    );
    let ssis = rig.emu.with_world(|w| {
        w.factory(SUB, DR_RG, "adf-sales-cold")
            .expect("dr")
            .children(Kind::IntegrationRuntime)["ir-ssis"]
            .state_at(adf_emulator::clock::now_ms())
    });
    assert_eq!(ssis.as_deref(), Some("Initial"), "never started");
}

/// Factory names are global (409 DataFactoryNameInUse, as Microsoft's docs
/// quote the service): a restore into a name another subscription holds
/// says so and what to do, and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_into_a_name_taken_elsewhere_says_to_choose_another() {
    let rig = Rig::start(
        "restore-taken",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    rig.emu
        .with_world(|w| {
            w.put_factory(
                "99999999-9999-9999-9999-999999999999",
                "rg-someone-else",
                "adf-taken",
                serde_json::json!({"location": "westeurope"}),
                None,
                "tenant",
            )
        })
        .expect("someone else's factory");
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &format!("{SUB}/{DR_RG}/adf-taken"),
        "--yes",
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("the factory name 'adf-taken' is taken")
            && report.contains(&format!("--to {SUB}/{DR_RG}/ANOTHER-NAME")),
        "{report}"
    );
    assert!(
        contents(&rig, DR_RG, "adf-taken").is_none(),
        "nothing written"
    );
}

/// A factory encrypted with a customer-managed key (fixtures/cmk-factory)
/// comes back with its key set by the first write, before any resource, and
/// the identity the key uses attached in the same body; into a factory the
/// service would refuse the key on (one with a managed VNet here), the plan
/// says why and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_factory_with_a_customer_managed_key_restores_only_into_an_empty_one() {
    let cmk = adfdr_tests::workspace_root().join("fixtures/cmk-factory");
    let rig = Rig::start(
        "restore-cmk",
        &[
            ("cmk", "adf-cmk", &cmk),
            ("sales", "adf-sales", &sample_factory()),
        ],
    )
    .await;
    let out = rig.adfdr(&["backup", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let restore = |factory: &str, to: &str| {
        rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            factory,
            "--to",
            &format!("{SUB}/{DR_RG}/{to}"),
            "--yes",
        ])
    };
    let out = restore("cmk", "adf-cmk-dr");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("customer-managed key https://kv-adf-cmk.vault.azure.net/keys/adf-cmk set with the factory's first write"),
        "{}",
        text(&out)
    );
    let body = rig.emu.with_world(|w| {
        w.factory(SUB, DR_RG, "adf-cmk-dr")
            .expect("restored")
            .body
            .clone()
    });
    assert_eq!(
        body["properties"]["encryption"]["keyName"], "adf-cmk",
        "{body}"
    );
    assert!(
        body["identity"]["userAssignedIdentities"]
            .as_object()
            .expect("identities")
            .keys()
            .any(|k| k.ends_with("/uami-cmk")),
        "{body}"
    );

    // A factory with a managed VNet (the sample) cannot take the key.
    let file = overrides(&rig, FILL_ERP);
    let out = rig
        .command()
        .env("ERP_CONNECTION", "x")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--yes",
            "--overrides",
            &file,
        ])
        .args(["--to", &format!("{SUB}/{DR_RG}/adf-busy")])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let before = contents(&rig, DR_RG, "adf-busy").expect("busy");
    let out = restore("cmk", "adf-busy");
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("customer-managed key")
            && stderr(&out).contains("managed virtual network")
            && stderr(&out).contains("--to"),
        "{}",
        text(&out)
    );
    assert_eq!(
        contents(&rig, DR_RG, "adf-busy").expect("busy"),
        before,
        "nothing written"
    );
}

/// The alerts watching a factory live in its resource group: restored, they
/// watch the target (its id in their scopes), beside the source's in the
/// same group under a suffixed name (the source's are never overwritten),
/// and under their own names in another group. Diagnostic settings go to
/// the same destinations.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_diagnostics_come_back_watching_the_restored_factory() {
    let rig = Rig::start(
        "restore-alerts",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let file = overrides(&rig, FILL_ERP);
    let restore = |to: String| {
        rig.command()
            .env("ERP_CONNECTION", "x")
            .args([
                "restore",
                "latest",
                "--factory",
                "sales",
                "--yes",
                "--overrides",
                &file,
                "--to",
                &to,
            ])
            .output()
            .expect("runs")
    };
    let alert = |rg: &str, name: &str| {
        rig.emu.with_world(|w| {
            w.extensions
                .get(&format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Insights/metricAlerts/{name}").to_ascii_lowercase())
                .cloned()
        })
    };
    let id = |rg: &str, f: &str| {
        format!(
            "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{f}"
        )
    };
    let source_alert = alert(RG, "alert-pipeline-failures").expect("seeded");

    let out = restore(format!("{SUB}/{DR_RG}/adf-sales-dr"));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let dr = alert(DR_RG, "alert-pipeline-failures").expect("in the DR group, same name");
    assert_eq!(
        dr["properties"]["scopes"],
        serde_json::json!([id(DR_RG, "adf-sales-dr")]),
        "{dr}"
    );
    assert_eq!(
        dr["properties"]["criteria"],
        source_alert["properties"]["criteria"]
    );

    let out = restore(format!("{SUB}/{RG}/adf-sales-copy"));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let beside =
        alert(RG, "alert-pipeline-failures-adf-sales-copy").expect("suffixed beside the source's");
    assert_eq!(
        beside["properties"]["scopes"],
        serde_json::json!([id(RG, "adf-sales-copy")]),
        "{beside}"
    );
    assert_eq!(
        alert(RG, "alert-pipeline-failures"),
        Some(source_alert),
        "the source's alert untouched"
    );

    let diag = rig.emu.with_world(|w| {
        w.extensions
            .get(
                &format!(
                    "{}/providers/Microsoft.Insights/diagnosticSettings/diag-to-workspace",
                    id(DR_RG, "adf-sales-dr")
                )
                .to_ascii_lowercase(),
            )
            .cloned()
    });
    let diag = diag.expect("diagnostic setting restored");
    assert!(
        diag["properties"]["workspaceId"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/workspaces/law-data-platform"),
        "{diag}"
    );
    // Per environment: an override rule sends the DR copy's logs to the DR
    // workspace (diagnostic settings are kinds like any other to the rules).
    let dr_workspace = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-monitoring-dr/providers/Microsoft.OperationalInsights/workspaces/law-dr";
    let per_env = overrides(
        &rig,
        &format!(
            "{FILL_ERP}\n[[rule]]\nkind = \"diagnosticSetting\"\nname = \"diag-*\"\nset = {{ \"/properties/workspaceId\" = \"{dr_workspace}\" }}\n"
        ),
    );
    let out = rig
        .command()
        .env("ERP_CONNECTION", "x")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--yes",
            "--overrides",
            &per_env,
        ])
        .args(["--to", &format!("{SUB}/{DR_RG}/adf-sales-dr-env")])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let diag_env = rig.emu.with_world(|w| {
        w.extensions
            .get(
                &format!(
                    "{}/providers/Microsoft.Insights/diagnosticSettings/diag-to-workspace",
                    id(DR_RG, "adf-sales-dr-env")
                )
                .to_ascii_lowercase(),
            )
            .cloned()
    });
    assert_eq!(
        diag_env.expect("restored")["properties"]["workspaceId"],
        dr_workspace
    );
    // Restoring again changes nothing: the renamed alerts are recognised.
    let out = rig
        .command()
        .env("ERP_CONNECTION", "x")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--plan",
            "--json",
        ])
        .args([
            "--overrides",
            &file,
            "--to",
            &format!("{SUB}/{RG}/adf-sales-copy"),
        ])
        .output()
        .expect("runs");
    let plan = json(&out);
    assert!(
        plan["plan"]["unchanged"]
            .to_string()
            .contains("metricAlert:alert-pipeline-failures-adf-sales-copy"),
        "{plan}"
    );
    let steps: Vec<String> = plan["plan"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["label"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!steps.iter().any(|l| l.contains("Alert")), "{steps:?}");
}

/// The factory's identity keeps its access: each role the source's
/// system-assigned identity held is granted to the restored factory's new
/// one at the same scope (the factory's own id where it was the source's).
/// A restoring identity that may not grant gets, per role, the exact
/// command for someone who may, and the restore says it is not done.
const DATA_ENGINEERS: &str = "d47a0000-0000-4000-8000-0000000000de";
const CUSTOM_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
const CUSTOM_B: &str = "b2b2b2b2-0000-4000-8000-00000000000b";

#[tokio::test(flavor = "multi_thread")]
async fn the_new_identity_is_granted_what_the_old_one_held() {
    let rig = Rig::start(
        "restore-grants",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    let source_principal = rig.emu.with_world(|w| {
        w.factory(SUB, RG, "adf-sales")
            .expect("source")
            .system_principal_id
            .clone()
            .expect("system-assigned")
    });
    let vault = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-sales"
    );
    let lake = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/salesdatalake"
    );
    let source_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DataFactory/factories/adf-sales"
    );
    for (principal, role, scope) in [
        (mi.clone(), "Owner", format!("/subscriptions/{SUB}")),
        (mi.clone(), "Key Vault Crypto User", "/keyvault".to_string()),
        (
            source_principal.clone(),
            "Key Vault Secrets User",
            vault.clone(),
        ),
        (source_principal.clone(), "Reader", source_id.clone()),
        // A custom role of the tenant (by its GUID).
        (source_principal.clone(), CUSTOM_A, lake.clone()),
        // A team's group works in the factory: held on the factory itself.
        (
            DATA_ENGINEERS.to_string(),
            "Data Factory Contributor",
            source_id.clone(),
        ),
    ] {
        adfdr_tests::admin(
            &rig.emu,
            "role-assignments",
            serde_json::json!({"principal_id": principal, "role": role, "scope": scope}),
        )
        .await;
    }
    let custom_role = |guid: &str| {
        rig.emu.with_world(|w| {
            w.role_definitions.clear();
            adf_emulator::rbac::put_definition(
                &mut w.role_definitions,
                &format!("/subscriptions/{SUB}"),
                guid,
                &serde_json::json!({"properties": {"roleName": "ADF Lake Writer",
                    "assignableScopes": [format!("/subscriptions/{SUB}")],
                    "permissions": [{"actions": [], "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"]}]}}),
            )
            .expect("custom role");
        })
    };
    custom_role(CUSTOM_A);
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Restored where the custom role has another GUID (another tenant's):
    // found by its name, which the backup recorded.
    custom_role(CUSTOM_B);
    let out = rig.adfdr(&["show", "latest", "--factory", "sales"]);
    assert!(
        // Two more the sample's seed gives it: Storage Blob Data Reader on
        // the lake and Key Vault Secrets User on contoso-kv; and its access
        // policy on contoso-kv.
        stdout(&out).contains("roleAssignment               6")
            && stdout(&out).contains("accessPolicy                 1"),
        "{}",
        text(&out)
    );

    let file = overrides(&rig, FILL_ERP);
    let restore = |to: &str| {
        rig.command()
            .env("ERP_CONNECTION", "x")
            .args([
                "restore",
                "latest",
                "--factory",
                "sales",
                "--yes",
                "--overrides",
                &file,
            ])
            .args(["--to", &format!("{SUB}/{DR_RG}/{to}")])
            .output()
            .expect("runs")
    };
    let held = |factory: &str| {
        rig.emu.with_world(|w| {
            let p = w
                .factory(SUB, DR_RG, factory)
                .expect("restored")
                .system_principal_id
                .clone()
                .expect("identity");
            let mut roles: Vec<(String, String)> = w
                .role_assignments
                .iter()
                .filter(|a| a.principal_id == p)
                .map(|a| (a.role.clone(), a.scope.clone()))
                .collect();
            roles.sort();
            (p, roles)
        })
    };
    let out = restore("adf-sales-granted");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (new_principal, roles) = held("adf-sales-granted");
    assert_ne!(
        new_principal, source_principal,
        "a new factory, a new principal"
    );
    let contoso = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/contoso-kv"
    );
    let mut expected = vec![
        ("Key Vault Secrets User".to_string(), vault.clone()),
        ("Key Vault Secrets User".to_string(), contoso.clone()),
        (
            "Reader".to_string(),
            format!(
                "/subscriptions/{SUB}/resourceGroups/{DR_RG}/providers/Microsoft.DataFactory/factories/adf-sales-granted"
            ),
        ),
        ("Storage Blob Data Reader".to_string(), lake.clone()),
        (CUSTOM_B.to_string(), lake.clone()),
    ];
    expected.sort();
    assert_eq!(roles, expected);
    // The group holds its role on the restored factory too.
    let team: Vec<String> = rig.emu.with_world(|w| {
        w.role_assignments
            .iter()
            .filter(|a| a.principal_id == DATA_ENGINEERS && a.role == "Data Factory Contributor")
            .map(|a| a.scope.clone())
            .collect()
    });
    assert!(
        team.iter()
            .any(|s| s.ends_with("/factories/adf-sales-granted")),
        "{team:?}"
    );
    // The vault's access policy: the old identity's permissions, for the new.
    let policy = rig.emu.with_world(|w| {
        adf_emulator::vaults::get(&w.key_vaults, SUB, "rg-sec", "contoso-kv")
            .expect("vault")["properties"]["accessPolicies"]
            .as_array()
            .expect("policies")
            .iter()
            .find(|p| p["objectId"] == serde_json::json!(new_principal))
            .cloned()
    });
    assert_eq!(
        policy.expect("a policy for the new identity")["permissions"]["secrets"],
        serde_json::json!(["get", "list"])
    );

    // May restore, may not grant: each grant is reported with its command.
    adfdr_tests::admin_delete(&rig.emu, "role-assignments").await;
    // (Monitoring Contributor for the diagnostic setting and alerts; no
    // Owner or User Access Administrator, so no grants, and no locks: the
    // lock is left out of this restore.)
    for (role, scope) in [
        ("Data Factory Contributor", format!("/subscriptions/{SUB}")),
        ("Monitoring Contributor", format!("/subscriptions/{SUB}")),
        ("Key Vault Crypto User", "/keyvault".to_string()),
    ] {
        adfdr_tests::admin(
            &rig.emu,
            "role-assignments",
            serde_json::json!({"principal_id": mi, "role": role, "scope": scope}),
        )
        .await;
    }
    let out = rig
        .command()
        .env("ERP_CONNECTION", "x")
        .args([
            "restore",
            "latest",
            "--factory",
            "sales",
            "--yes",
            "--overrides",
            &file,
        ])
        .args([
            "--exclude",
            "lock:*",
            "--to",
            &format!("{SUB}/{DR_RG}/adf-sales-ungranted"),
        ])
        .output()
        .expect("runs");
    assert_eq!(
        code(&out),
        3,
        "restored, not runnable while the access is missing: {}",
        text(&out)
    );
    let (p, roles) = held("adf-sales-ungranted");
    assert!(roles.is_empty(), "{roles:?}");
    let printed = text(&out);
    assert_eq!(
        printed
            .matches("az role assignment create --assignee-object-id")
            .count(),
        6,
        "{printed}"
    );
    assert!(
        printed.contains(&format!("az keyvault set-policy --subscription {SUB} --resource-group rg-sec --name contoso-kv --object-id {p} --secret-permissions get list")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("az role assignment create --assignee-object-id {p} --assignee-principal-type ServicePrincipal --role 4633458b-17de-408a-b874-0445c86b69e6 --scope {vault}")),
        "{printed}"
    );
}

/// A user-assigned identity outlives its factory and keeps what it holds:
/// its roles are backed up beside the system-assigned one's, and a restore
/// grants only what is missing (what was scoped to the old factory), so a
/// restoring identity that may not grant is asked for nothing the identity
/// still has.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_assigned_identity_is_granted_only_what_it_is_missing() {
    let rig = Rig::start("restore-uami", &[("sales", "adf-sales", &sample_factory())]).await;
    let uami = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-identity/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-etl"
    );
    rig.emu.with_world(|w| {
        let key = adf_emulator::state::factory_key(SUB, RG, "adf-sales");
        let f = w.factories.get_mut(&key).expect("source");
        f.body["identity"] = serde_json::json!({
            "type": "SystemAssigned,UserAssigned",
            "userAssignedIdentities": {uami.clone(): {}}});
    });
    let uami_principal =
        adf_emulator::auth::derived_guid(&format!("uami-principal:{}", uami.to_ascii_lowercase()));
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    let lake = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/salesdatalake"
    );
    let source_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DataFactory/factories/adf-sales"
    );
    for (principal, role, scope) in [
        (mi.as_str(), "Owner", format!("/subscriptions/{SUB}")),
        (
            mi.as_str(),
            "Key Vault Crypto User",
            "/keyvault".to_string(),
        ),
        (
            uami_principal.as_str(),
            "Storage Blob Data Contributor",
            lake.clone(),
        ),
        (uami_principal.as_str(), "Reader", source_id.clone()),
    ] {
        adfdr_tests::admin(
            &rig.emu,
            "role-assignments",
            serde_json::json!({"principal_id": principal, "role": role, "scope": scope}),
        )
        .await;
    }
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out_dir = rig.dir.join("uami-export");
    let out = rig.adfdr(&[
        "export",
        "latest",
        "--factory",
        "sales",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let kept: Vec<String> = std::fs::read_dir(out_dir.join("surroundings/roleAssignment"))
        .expect("roles exported")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("reads"))
        .filter(|t| t.contains(&format!("userAssigned:{}", uami.to_ascii_lowercase())))
        .collect();
    assert_eq!(
        kept.len(),
        2,
        "the identity's roles, kept by its id: {kept:?}"
    );
    let held = |scope_tail: &str| {
        rig.emu.with_world(|w| {
            w.role_assignments
                .iter()
                .filter(|a| a.principal_id == uami_principal && a.scope.ends_with(scope_tail))
                .map(|a| a.role.clone())
                .collect::<Vec<_>>()
        })
    };
    let file = overrides(&rig, FILL_ERP);
    let restore = |to: &str, extra: &[&str]| {
        rig.command()
            .env("ERP_CONNECTION", "x")
            .args([
                "restore",
                "latest",
                "--factory",
                "sales",
                "--yes",
                "--overrides",
                &file,
            ])
            .args(extra)
            .args(["--to", &format!("{SUB}/{DR_RG}/{to}")])
            .output()
            .expect("runs")
    };
    let out = restore("adf-sales-uami", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        held("/factories/adf-sales-uami"),
        ["Reader"],
        "{}",
        text(&out)
    );
    assert_eq!(
        held("/salesdatalake"),
        ["Storage Blob Data Contributor"],
        "held already, not doubled: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("already held: roleAssignment:"),
        "{}",
        text(&out)
    );

    // May restore, may not grant: asked only for the factory-scoped role.
    adfdr_tests::admin_delete(&rig.emu, "role-assignments").await;
    for (principal, role, scope) in [
        (
            mi.as_str(),
            "Data Factory Contributor",
            format!("/subscriptions/{SUB}"),
        ),
        (
            mi.as_str(),
            "Monitoring Contributor",
            format!("/subscriptions/{SUB}"),
        ),
        (
            mi.as_str(),
            "Key Vault Crypto User",
            "/keyvault".to_string(),
        ),
        (
            uami_principal.as_str(),
            "Storage Blob Data Contributor",
            lake.clone(),
        ),
    ] {
        adfdr_tests::admin(
            &rig.emu,
            "role-assignments",
            serde_json::json!({"principal_id": principal, "role": role, "scope": scope}),
        )
        .await;
    }
    let out = restore("adf-sales-uami-2", &["--exclude", "lock:*"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let printed = text(&out);
    let asked = format!("az role assignment create --assignee-object-id {uami_principal} ");
    assert_eq!(printed.matches(&asked).count(), 1, "{printed}");
    assert!(
        printed.contains(&format!(
            "{asked}--assignee-principal-type ServicePrincipal --role acdd72a7-3385-48ef-bd42-f606fba81ae7 --scope /subscriptions/{SUB}/resourceGroups/{DR_RG}/providers/Microsoft.DataFactory/factories/adf-sales-uami-2"
        )),
        "{printed}"
    );
}

/// Locks the resource group passes down are kept as context (shown,
/// exported), never put on a target; a target group's ReadOnly lock stops
/// the restore before any write, naming where it is and how it goes.
#[tokio::test(flavor = "multi_thread")]
async fn inherited_locks_are_context_and_a_locked_target_group_is_named() {
    let rig = Rig::start(
        "restore-inherited-locks",
        &[("sales", "adf-sales", &sample_factory())],
    )
    .await;
    let lock = |rg: &str, name: &str, level: &str| {
        rig.emu.with_world(|w| {
            adf_emulator::extension::put(
                &mut w.extensions,
                &format!("/subscriptions/{SUB}/resourceGroups/{rg}"),
                adf_emulator::extension::Extension::Lock,
                name,
                serde_json::json!({"properties": {"level": level}}),
            )
            .expect("lock");
        })
    };
    lock(RG, "rg-keep", "CanNotDelete");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["show", "latest", "--factory", "sales"]);
    assert!(
        stdout(&out).contains("lock                         2"),
        "{}",
        text(&out)
    );
    let dir = rig.dir.join("export-inherited");
    let out = rig.adfdr(&[
        "export",
        "latest",
        "--factory",
        "sales",
        "--out",
        dir.to_str().expect("utf8"),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let kept: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("surroundings/lock/inherited/rg-keep.json")).expect("exported"),
    )
    .expect("json");
    assert_eq!(
        kept["properties"]["inheritedFrom"],
        format!("/subscriptions/{SUB}/resourceGroups/{RG}")
    );

    let to = format!("{SUB}/{DR_RG}/adf-sales-inherited");
    let restore = |extra: &[&str]| {
        rig.command()
            .env("ERP_CONNECTION", "x")
            .args(["restore", "latest", "--factory", "sales", "--to", &to])
            .args(["--overrides", &overrides(&rig, FILL_ERP)])
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = restore(&["--plan"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("lock:inherited/rg-keep")
            && stdout(&out).contains(&format!(
                "inherited from /subscriptions/{SUB}/resourceGroups/{RG}: kept as context"
            )),
        "{}",
        text(&out)
    );

    lock(DR_RG, "dr-freeze", "ReadOnly");
    let out = restore(&["--yes"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the ReadOnly lock 'dr-freeze' on /subscriptions/{SUB}/resourceGroups/{DR_RG}, which forbids every write"
        )) && stderr(&out).contains(&format!(
            "az lock delete --ids /subscriptions/{SUB}/resourceGroups/{DR_RG}/providers/Microsoft.Authorization/locks/dr-freeze"
        )),
        "{}",
        text(&out)
    );
    assert!(
        contents(&rig, DR_RG, "adf-sales-inherited").is_none(),
        "nothing was written"
    );
}

/// Issue 28, item 2 (first part): `--map` says what stands in for what in
/// another region. The SSIS runtime's "West Europe" (a display name) takes
/// the mapped region, the new factory is created there, and the plan shows
/// each rewrite before anything is written; a map that is not one is a
/// usage error.
#[tokio::test(flavor = "multi_thread")]
async fn a_region_map_moves_what_is_bound_to_the_lost_region() {
    let rig = Rig::start("region-map", &[("sales", "adf-sales", &sample_factory())]).await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let map = rig.dir.join("dr-map.toml");
    std::fs::write(&map, "[regions]\nwesteurope = \"northeurope\"\n").expect("map");
    let to = format!("{SUB}/{DR_RG}/adf-sales-neu");
    let args = |extra: &str| {
        vec![
            "restore".to_string(),
            "latest".into(),
            "--factory".into(),
            "sales".into(),
            "--to".into(),
            to.clone(),
            "--map".into(),
            map.display().to_string(),
            extra.into(),
        ]
    };
    let plan_args = args("--plan");
    let out = rig.adfdr(&plan_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "region map: /properties/typeProperties/computeProperties/location West Europe -> northeurope"
        ),
        "{}",
        text(&out)
    );
    assert!(
        contents(&rig, DR_RG, "adf-sales-neu").is_none(),
        "a plan writes nothing"
    );
    let yes = args("--yes");
    let out = rig.adfdr(&yes.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        code(&out),
        3,
        "restored with the sample's usual skips: {}",
        text(&out)
    );
    let (location, ir) = rig.emu.with_world(|w| {
        let f = w.factory(SUB, DR_RG, "adf-sales-neu").expect("created");
        let ir = f
            .children(Kind::IntegrationRuntime)
            .get("ir-ssis")
            .map(|c| c.body.clone())
            .expect("the SSIS runtime");
        (f.body["location"].clone(), ir)
    });
    assert_eq!(location, "northeurope", "created in the mapped region");
    assert_eq!(
        ir.pointer("/properties/typeProperties/computeProperties/location"),
        Some(&Value::String("northeurope".into()))
    );
    // What the map says nothing of is named in the plan with the line that
    // would cover it; --strict refuses it.
    assert!(
        stderr(&out).contains("is not in the region map: add [ids] \"/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-sec\"")
            || stdout(&out).contains("is not in the region map: add [ids] \"/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-sec\""),
        "{}",
        text(&out)
    );
    let strict = args("--strict");
    let out = rig.adfdr(&strict.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("region-bound") && stderr(&out).contains("rg-sec"),
        "{}",
        text(&out)
    );
    std::fs::write(&map, "[ids]\n\"rg-a\" = \"rg-b\"\n").expect("map");
    let out = rig.adfdr(&plan_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("not an ARM id"), "{}", text(&out));
}

/// Issue 28's proof, the emulator as referee: West Europe is down (the
/// factory, its vault and its lake are there); a restore with a complete
/// region map into North Europe sends nothing to West Europe (the
/// emulator's per-region counter does not move), the SSIS runtime runs in
/// the new region, and nothing in the restored factory names the lost
/// region or its resources.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_region_down_a_mapped_restore_sends_nothing_there() {
    let rig = Rig::start("region-down", &[("sales", "adf-sales", &sample_factory())]).await;
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let rg = |name: &str| format!("/subscriptions/{SUB}/resourceGroups/{name}");
    // The sample's lake, its private endpoint and its event trigger are in
    // another subscription's rg-data.
    let lake = |name: &str| {
        format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{name}")
    };
    adfdr_tests::admin(
        &rig.emu,
        "resources",
        serde_json::json!([
            {"id": rg("rg-sec"), "location": "westeurope"},
            {"id": rg("rg-data"), "location": "westeurope"},
            {"id": rg("rg-sec-neu"), "location": "northeurope"},
            {"id": rg("rg-data-neu"), "location": "northeurope"},
            {"id": lake("rg-data"), "location": "westeurope"},
            {"id": lake("rg-data-neu"), "location": "northeurope"},
        ]),
    )
    .await;
    // The vault standing in for contoso-kv, in North Europe.
    let token = rig
        .emu
        .mint_token("https://management.azure.com/", "setup", 3600);
    let vault_of = |group: &str, name: &str| {
        format!("{}/providers/Microsoft.KeyVault/vaults/{name}", rg(group))
    };
    let vault = vault_of("rg-sec-neu", "contoso-kv-neu");
    let resp = adfdr_tests::raw_client()
        .put(format!("{}{vault}?api-version=2023-07-01", rig.emu.urls().arm))
        .bearer_auth(token)
        .json(&serde_json::json!({"location": "northeurope", "properties": {
            "tenantId": "00000000-0000-0000-0000-000000000001", "sku": {"family": "A", "name": "standard"}}}))
        .send()
        .await
        .expect("vault");
    assert!(resp.status().is_success(), "{}", resp.status());
    let map = rig.dir.join("dr-map.toml");
    std::fs::write(
        &map,
        format!(
            "[regions]\n\"West Europe\" = \"northeurope\"\n[ids]\n\"{}\" = \"{}\"\n\"{}\" = \"{}\"\n\"{}\" = \"{}\"\n\"{}\" = \"{}\"\n[hosts]\n\"contoso-kv.vault.azure.net\" = \"contoso-kv-neu.vault.azure.net\"\n\"sales.database.windows.net\" = \"sales-fog.database.windows.net\"\n",
            vault_of("rg-sec", "contoso-kv"),
            vault,
            rg("rg-sec"),
            rg("rg-sec-neu"),
            rg("rg-data"),
            rg("rg-data-neu"),
            lake("rg-data"),
            lake("rg-data-neu")
        ),
    )
    .expect("map");
    adfdr_tests::admin(
        &rig.emu,
        "regions/westeurope",
        serde_json::json!({"state": "down"}),
    )
    .await;
    let west = || async {
        adfdr_tests::raw_client()
            .get(format!("{}/_emulator/counters", rig.emu.urls().arm))
            .send()
            .await
            .expect("counters")
            .json::<Value>()
            .await
            .expect("json")["by_region"]["westeurope"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = west().await;
    let to = format!("{SUB}/{DR_RG}/adf-sales-neu");
    let map_arg = map.display().to_string();
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--map",
        &map_arg,
        "--yes",
    ]);
    assert_eq!(
        code(&out),
        3,
        "restored, with the sample's usual skips: {}",
        text(&out)
    );
    assert_eq!(
        west().await,
        before,
        "nothing was sent to the lost region: {}",
        text(&out)
    );
    let everything = rig.emu.with_world(|w| {
        let f = w.factory(SUB, DR_RG, "adf-sales-neu").expect("restored");
        let mut all = f.body.to_string();
        for kind in Kind::ALL {
            for c in f.children(kind).values() {
                all.push_str(&c.body.to_string());
            }
        }
        all.to_ascii_lowercase()
    });
    for lost in [
        "westeurope",
        "west europe",
        "/resourcegroups/rg-sec/",
        "/resourcegroups/rg-data/",
        "contoso-kv.vault",
    ] {
        assert!(
            !everything.contains(lost),
            "the restored factory still names {lost}"
        );
    }
    assert!(
        everything.contains("northeurope"),
        "its runtime runs in the new region"
    );

    // Without the vault's lines, its access policy goes to the vault in the
    // lost region, failed over read-only: reported with the command that
    // gives it once the vault takes changes (exit 3), not a failed write.
    let partial = rig.dir.join("partial-map.toml");
    std::fs::write(
        &partial,
        format!(
            "[regions]\nwesteurope = \"northeurope\"\n[ids]\n\"{}\" = \"{}\"\n\"{}\" = \"{}\"\n",
            rg("rg-data"),
            rg("rg-data-neu"),
            lake("rg-data"),
            lake("rg-data-neu")
        ),
    )
    .expect("map");
    let to = format!("{SUB}/{DR_RG}/adf-sales-neu2");
    let partial_arg = partial.display().to_string();
    let out = rig.adfdr(&[
        "restore",
        "latest",
        "--factory",
        "sales",
        "--to",
        &to,
        "--map",
        &partial_arg,
        "--yes",
    ]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("takes no changes now")
            && text(&out).contains("az keyvault set-policy"),
        "{}",
        text(&out)
    );
}
