//! The `--json` contract (docs/JSON.md): every command's output names its
//! schema and validates against the JSON Schema `adfdr schema` prints (made
//! from the output types); errors are `adfdr.error.v1` with the exit code
//! unchanged; the schemas in docs/json/ are the ones the binary makes.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::Value;

use crate::common::files::FileRig;
use crate::common::{SUB, code, text};

fn schemas(rig: &FileRig) -> serde_json::Map<String, Value> {
    let out = rig.adfdr(&["schema"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    match serde_json::from_slice::<Value>(&out.stdout).expect("schemas are JSON") {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Validates `out` against the schema of `name`; returns the value.
fn valid(schemas: &serde_json::Map<String, Value>, name: &str, out: &Output) -> Value {
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not one JSON value ({e}):\n{}", text(out)));
    let schema_name = format!("adfdr.{name}.v1");
    assert_eq!(value["schema"], schema_name.as_str(), "{}", text(out));
    let schema = schemas
        .get(&schema_name)
        .unwrap_or_else(|| panic!("no schema {schema_name}"));
    let validator = jsonschema::validator_for(schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{value:#}");
    value
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_answers_json_that_matches_its_schema() {
    let rig = FileRig::start("json").await;
    rig.write_config(&format!(
        "rpo_target = \"1h\"\nsmoke_pipeline = \"PL_Smoke\"\ndrill_target = {{ subscription = \"{SUB}\", resource_group = \"rg-drill\", factory = \"adf-sales-drill\" }}\nkeep = {{ last = 1 }}"
    ));
    let all = schemas(&rig);
    let mut seen = BTreeSet::new();
    let mut check = |name: &str, args: &[&str], want: i32| -> Value {
        let out = rig.adfdr(args);
        assert_eq!(code(&out), want, "{args:?}: {}", text(&out));
        seen.insert(name.to_string());
        valid(&all, name, &out)
    };
    let s1 = check("backup", &["backup", "--json"], 0)["factories"][0]["report"]["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    let s2 =
        check("backup", &["backup", "--force", "--json"], 0)["factories"][0]["report"]["snapshot"]
            .as_str()
            .expect("snapshot id")
            .to_string();
    check("snapshots", &["snapshots", "--json"], 0);
    check("log", &["log", "sales", "--json"], 0);
    check("show", &["show", &s2, "--json"], 0);
    check("diff", &["diff", &s1, &s2, "--json"], 0);
    check("diff", &["diff", &s2, "--live", "--json"], 0);
    let out_dir = rig.dir.join("export");
    check(
        "export",
        &[
            "export",
            &s2,
            "--out",
            out_dir.to_str().expect("utf8"),
            "--json",
        ],
        0,
    );
    check("verify", &["verify", "--read-data", "--json"], 0);
    check("status", &["status", "--json"], 0);
    let to = format!("{SUB}/rg-dr/adf-sales-dr");
    let plan = check(
        "restore",
        &[
            "restore",
            "latest",
            "--factory",
            "sales",
            "--to",
            &to,
            "--plan",
            "--json",
        ],
        0,
    );
    assert!(plan["applied"].is_null(), "{plan:#}");
    let done = check(
        "restore",
        &["restore", &s2, "--to", &to, "--yes", "--json"],
        3,
    );
    assert_eq!(done["outcome"], "restored-with-skips", "{done:#}");
    let past = check("restores", &["restores", "--json"], 0);
    assert_eq!(past["restores"][0]["snapshot"], s2.as_str(), "{past:#}");
    let keys = check("key-list", &["key", "list", "--json"], 0);
    assert!(
        keys["snapshots"].as_u64().is_some_and(|n| n >= 2),
        "{keys:#}"
    );
    check("drill", &["drill", "--json"], 0);
    check("drills", &["drills", "--json"], 0);
    check("prune", &["prune", "--all", "--dry-run", "--json"], 0);
    let key = rig.dir.join("another.key");
    check(
        "key-generate",
        &[
            "key",
            "generate",
            "--out",
            key.to_str().expect("utf8"),
            "--json",
        ],
        0,
    );
    check(
        "config-check",
        &["config", "check", "--offline", "--json"],
        0,
    );
    check("config-check", &["config", "check", "--json"], 0);
    check("catalog-rebuild", &["catalog", "rebuild", "--json"], 0);
    check("init", &["init", "--json"], 0);
    let config = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(
        &rig.config,
        format!("{config}\n[[discover]]\nsubscriptions = [\"*\"]\npolicy = \"p\"\n[policy.p]\nbackup = \"0 * * * *\"\n"),
    )
    .expect("config");
    let found = check("discover", &["discover", "--plan", "--json"], 0);
    let fleet = check("status-fleet", &["status", "--fleet", "--json"], 4);
    assert!(
        fleet["factories"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["factory"] == "sales")),
        "{fleet:#}"
    );
    assert_eq!(
        found["excluded"][0]["why"], "configured by [[factory]] sales",
        "{found:#}"
    );
    std::fs::write(&rig.config, config).expect("config");
    let demo = rig.dir.join("demo");
    check(
        "demo",
        &["demo", "--dir", demo.to_str().expect("utf8"), "--json"],
        0,
    );
    // Errors: an adfdr.error.v1 object, the exit code the command has anyway.
    let e = check("error", &["show", "20200101T000000Z-00000000", "--json"], 2);
    assert_eq!(e["error"]["kind"], "not-found", "{e:#}");
    let e = check(
        "error",
        &[
            "export",
            &s2,
            "--out",
            out_dir.to_str().expect("utf8"),
            "--json",
        ],
        2,
    );
    assert_eq!(e["error"]["kind"], "usage", "{e:#}");
    // Every schema the binary knows was exercised.
    let known: BTreeSet<String> = all
        .keys()
        .map(|k| {
            k.trim_start_matches("adfdr.")
                .trim_end_matches(".v1")
                .to_string()
        })
        .collect();
    assert_eq!(seen, known, "commands whose --json no test validated");
}

#[test]
fn the_schemas_in_docs_are_the_ones_the_binary_makes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adfdr"))
        .arg("schema")
        .output()
        .expect("adfdr runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let all: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).expect("json");
    let docs = adfdr_tests::workspace_root().join("docs/json");
    let guide = std::fs::read_to_string(adfdr_tests::workspace_root().join("docs/JSON.md"))
        .expect("docs/JSON.md");
    for (name, schema) in &all {
        let path = docs.join(format!("{name}.json"));
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; run tools/dev/json-schemas.sh", path.display())
            }))
            .expect("json");
        assert_eq!(
            &committed,
            schema,
            "{} is stale: run tools/dev/json-schemas.sh",
            path.display()
        );
        assert!(
            guide.contains(name.as_str()),
            "docs/JSON.md does not describe {name}"
        );
    }
}
