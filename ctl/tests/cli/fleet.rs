//! Issue 17: a fleet. Discovery finds factories across subscriptions by
//! Resource Graph (or ARM's list when Graph is refused), policies by tag,
//! what is left out and why, and factories gone at the source.

use crate::common::files::FileRig;
use crate::common::*;

const SUBS: [&str; 3] = [
    "aaaaaaaa-0000-4000-8000-000000000001",
    "bbbbbbbb-0000-4000-8000-000000000002",
    "cccccccc-0000-4000-8000-000000000003",
];

/// Seeds a factory in `sub/rg/name` with `tags`.
fn seed(rig: &FileRig, sub: &str, rg: &str, name: &str, tags: serde_json::Value) {
    rig.emu
        .seed(&format!("{sub}/{rg}/{name}"), &sample_factory())
        .expect("seed");
    rig.emu.with_world(|w| {
        let key = adf_emulator::state::factory_key(sub, rg, name);
        w.factories.get_mut(&key).expect("seeded").body["tags"] = tags;
    });
}

const FLEET: &str = r#"
[[discover]]
subscriptions = ["*"]
resource_groups = ["rg-data-*"]
exclude_tags = { "adfdr-exclude" = "true" }
policy = "standard"

[policy.standard]
backup = "0 * * * *"
rpo_target = "2h"
keep = { last = 5 }

[policy.gold]
backup = "*/15 * * * *"
rpo_target = "30m"
drill = "0 4 * * 0"
drill_target = { resource_group = "rg-dr-drills", factory = "{factory}-drill" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn discover_plan_covers_factories_by_tag_and_says_what_it_leaves_out() {
    let rig = FileRig::start("discover").await;
    seed(
        &rig,
        SUBS[0],
        "rg-data-eu",
        "adf-fleet-a",
        serde_json::json!({"adfdr-policy": "gold"}),
    );
    seed(
        &rig,
        SUBS[1],
        "rg-data-us",
        "adf-fleet-b",
        serde_json::json!({}),
    );
    seed(
        &rig,
        SUBS[2],
        "rg-data-us",
        "adf-fleet-c",
        serde_json::json!({"adfdr-exclude": "true"}),
    );
    seed(
        &rig,
        SUBS[2],
        "rg-sandbox",
        "adf-fleet-d",
        serde_json::json!({}),
    );
    // A factory that was backed up under the old, hand-written config.
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Now the hand-written block names another factory: the store's
    // "sales" is neither configured nor discovered (rg-prod is outside the
    // block's resource groups): its source is gone as far as adfdr knows.
    let config = rig
        .config_text("")
        .replace("name = \"sales\"", "name = \"sales-old\"")
        .replace("factory = \"adf-sales\"", "factory = \"adf-sales-renamed\"");
    std::fs::write(&rig.config, format!("{config}\n{FLEET}")).expect("config");

    let out = rig.adfdr(&["discover", "--plan", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["source"], "resource graph", "{v:#}");
    let covered: Vec<(String, String)> = v["covered"]
        .as_array()
        .expect("covered")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().into(),
                c["policy"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        covered,
        [
            ("adf-fleet-a".to_string(), "gold".to_string()),
            ("adf-fleet-b".to_string(), "standard".to_string())
        ],
        "{v:#}"
    );
    let why = |name: &str| {
        v["excluded"]
            .as_array()
            .expect("excluded")
            .iter()
            .find(|e| e["id"].as_str().is_some_and(|i| i.ends_with(name)))
            .map(|e| e["why"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(
        why("/adf-fleet-c").contains("tag adfdr-exclude=true"),
        "{v:#}"
    );
    assert!(
        why("/adf-fleet-d").starts_with("no [[discover]] block matches"),
        "{v:#}"
    );
    assert!(
        why("/adf-sales").starts_with("no [[discover]] block matches"),
        "{v:#}"
    );
    assert_eq!(v["source_gone"], serde_json::json!(["sales"]), "{v:#}");
    let out = rig.adfdr(&["discover", "--plan"]);
    assert!(
        stdout(&out).contains("source gone (snapshots kept"),
        "{}",
        text(&out)
    );

    // The fleet view, from the store and discovery: what needs a person.
    let out = rig.adfdr(&["status", "--fleet", "--json"]);
    assert_eq!(code(&out), 4, "factories need attention: {}", text(&out));
    let f = json(&out);
    let row = |name: &str| {
        f["factories"]
            .as_array()
            .expect("factories")
            .iter()
            .find(|r| r["factory"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not in the fleet: {f:#}"))
    };
    let a = row("adf-fleet-a");
    assert_eq!(a["policy"], "gold");
    assert_eq!(a["subscription"], SUBS[0]);
    assert_eq!(
        a["attention"],
        serde_json::json!(["no backup yet", "not proven by a drill"]),
        "{a:#}"
    );
    let gone = row("sales");
    assert_eq!(gone["source_gone"], true);
    assert!(
        gone["last_confirmed"].is_string(),
        "its snapshot is still there: {gone:#}"
    );
    assert!(
        gone["attention"].as_array().is_some_and(|a| a
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.starts_with("source gone")))),
        "{gone:#}"
    );
    assert!(
        f["factories"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["factory"] != "adf-fleet-c")),
        "excluded: not in the fleet"
    );
    let out = rig.adfdr(&["status", "--fleet"]);
    assert!(stdout(&out).contains("need attention"), "{}", text(&out));

    // Resource Graph refused: ARM's list per subscription finds the same.
    adfdr_tests::admin(
        &rig.emu,
        "faults",
        serde_json::json!({"method": "POST", "path_contains": "Microsoft.ResourceGraph", "status": 403,
            "code": "AuthorizationFailed", "message": "no Resource Graph for you", "count": 1}),
    )
    .await;
    let out = rig.adfdr(&["discover", "--plan", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    assert!(
        v["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("ARM list by subscription")),
        "{v:#}"
    );
    assert_eq!(v["covered"].as_array().map(Vec::len), Some(2), "{v:#}");
}
