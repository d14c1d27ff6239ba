//! The snapshot engine end to end through the `adfdr` binary: Entra tokens
//! from the emulator's managed-identity endpoint, ARM from the emulator, two
//! Azurite accounts as two regions, a Key Vault key and a break-glass key file.

use crate::common::*;
use adfdr_tests::{arm_client, factory_path};
use serde_json::Value;

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_is_sealed_geo_redundant_change_aware_and_exports_back_to_the_source() {
    let rig = Rig::start("life", &[("sales", "adf-sales", &sample_factory())]).await;

    // First backup: a snapshot in both regions.
    let out = rig.adfdr(&["backup", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let first = json(&out);
    let first = &first["factories"][0]["report"];
    assert_eq!(first["result"], "created", "{first}");
    let s1 = first["snapshot"].as_str().expect("id").to_string();
    let mut locations: Vec<_> = first["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect();
    locations.sort();
    assert_eq!(locations, ["neu", "weu"]);
    let objects = rig.objects().await;
    assert_eq!(objects.len(), 4, "payload + manifest in each account");

    // Nothing readable at rest: no name or value of the source appears in any object.
    let seed = adf_emulator::seed::load_git_layout(&sample_factory()).expect("seed");
    let mut secrets = vec!["adf-sales".to_string(), RG.to_string(), SUB.to_string()];
    for r in &seed.resources {
        secrets.push(r.name.clone());
        strings(&r.body, &mut secrets);
    }
    // The public header (listing without a key) is allowed to show kind
    // labels, key ids and sizes, never a resource name or the factory's ARM path.
    let mut public = Vec::new();
    for (_, key, bytes) in &objects {
        let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        let header: Value = serde_json::from_slice(&bytes[12..12 + hlen]).expect("header");
        strings(&header, &mut public);
        for r in &seed.resources {
            assert!(!public.contains(&r.name), "{key}: header shows {}", r.name);
        }
        assert!(
            !public
                .iter()
                .any(|p| p.contains("adf-sales") || p.contains(RG)),
            "{key}: header shows the ARM path"
        );
    }
    secrets.retain(|s| s.len() >= 6 && !public.iter().any(|p| p.contains(s.as_str())));
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets.len() > 50,
        "a meaningful probe set: {}",
        secrets.len()
    );
    for (account, key, bytes) in &objects {
        for s in &secrets {
            let at = bytes.windows(s.len()).position(|w| w == s.as_bytes());
            assert!(
                at.is_none(),
                "{account}/{key} reveals {s:?} at {at:?}: {:?}",
                String::from_utf8_lossy(
                    &bytes[at.unwrap_or(0).saturating_sub(40)
                        ..(at.unwrap_or(0) + 40).min(bytes.len())]
                )
            );
        }
    }

    // Unchanged factory: only a checkpoint, no snapshot objects.
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("sales: unchanged since {s1}")),
        "{}",
        text(&out)
    );
    let after = rig.objects().await;
    assert_eq!(after.len(), 6, "one checkpoint per account, nothing else");
    assert_eq!(
        after
            .iter()
            .filter(|(_, k, _)| k.ends_with(".checkpoint"))
            .count(),
        2
    );

    // Listing needs no key and shows both copies and the key ids.
    let out = rig.adfdr(&["snapshots", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let list = json(&out);
    assert_eq!(
        list["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    assert_eq!(
        list["snapshots"][0]["locations"].as_array().map(Vec::len),
        Some(2)
    );
    let keys = list["snapshots"][0]["keys"].to_string();
    assert!(
        keys.contains("kv (Key Vault key") && keys.contains("breakglass (key file"),
        "{keys}"
    );

    // show: the restorability report of the sample factory.
    let out = rig.adfdr(&["show", &s1]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = stdout(&out);
    for expected in [
        "[self-hosted-nodes] integrationRuntime:ir-selfhosted",
        "TR_Daily",
        "Started",
        "34 resources",
        "integrationRuntime:ir-ssis",
        "changeDataCapture:CDC_Orders",
        "Running",
        // The factory's surroundings, kinds of their own.
        "diagnosticSetting            1",
        "lock                         1",
        "metricAlert                  1",
        "activityLogAlert             1",
        // What the factory's identity may reach (the sample's seeded roles
        // and vault access policy).
        "roleAssignment               2",
        "accessPolicy                 1",
    ] {
        assert!(
            shown.contains(expected),
            "show lacks {expected:?}:\n{shown}"
        );
    }

    // export: ADF git layout equal to the source, resource by resource.
    let export_dir = rig.dir.join("export");
    let out = rig.adfdr(&["export", &s1, "--out", export_dir.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let matched = crate::common::compare::same_factory("sample", &sample_factory(), &export_dir);
    assert!(matched >= 20);
    // The surroundings beside the git layout, as the sample has them.
    for file in [
        "surroundings/lock/lock-no-delete.json",
        "surroundings/diagnosticSetting/diag-to-workspace.json",
        "surroundings/metricAlert/alert-pipeline-failures.json",
        "surroundings/activityLogAlert/alert-factory-deleted.json",
    ] {
        let exported: Value = serde_json::from_slice(
            &std::fs::read(export_dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")),
        )
        .expect("json");
        let source: Value =
            serde_json::from_slice(&std::fs::read(sample_factory().join(file)).expect("fixture"))
                .expect("json");
        assert_eq!(exported["properties"], source["properties"], "{file}");
    }
    let again = rig.adfdr(&["export", &s1, "--out", export_dir.to_str().expect("utf8")]);
    assert_eq!(
        code(&again),
        2,
        "never writes into a non-empty directory (a usage error): {}",
        text(&again)
    );

    // verify with decryption: every copy, every resource hash.
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("weu") && stdout(&out).contains("neu"));

    // A portal change: diff against live names it; the next backup captures it.
    let arm = arm_client(&rig.emu, "portal-user");
    let path = format!("{}/pipelines/PL_Smoke", factory_path(SUB, RG, "adf-sales"));
    let mut pipeline = arm.get(&path).await.expect("get");
    pipeline["properties"]["description"] = Value::String("hot-fixed in the portal".into());
    arm.put(&path, &pipeline).await.expect("put");
    // ... and the diagnostic setting sent to another workspace.
    let diag = format!(
        "{}/providers/Microsoft.Insights/diagnosticSettings/diag-to-workspace?api-version=2021-05-01-preview",
        factory_path(SUB, RG, "adf-sales")
    );
    let mut setting = arm.get(&diag).await.expect("get");
    setting["properties"]["workspaceId"] = Value::String("/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/workspaces/other".into());
    arm.put(&diag, &setting).await.expect("put");
    let out = rig.adfdr(&["diff", &s1, "--live"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("~ pipeline:PL_Smoke\n")
            && stdout(&out).contains("/properties/description: ")
            && stdout(&out).contains(" → \"hot-fixed in the portal\"")
            && stdout(&out)
                .contains("~ diagnosticSetting:diag-to-workspace\n    /properties/workspaceId: "),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["backup", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s2 = json(&out)["factories"][0]["report"]["snapshot"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(s1, s2);
    let out = rig.adfdr(&["diff", &s1, &s2, "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let d = json(&out);
    assert_eq!(
        d["diff"]["changed"]["pipeline:PL_Smoke"][0], "/properties/description",
        "{d}"
    );
    assert_eq!(d["diff"]["added"].as_array().map(Vec::len), Some(0));

    // The catalog is only an index: delete it, rebuild it from the store.
    std::fs::remove_file(rig.dir.join("state/catalog.redb")).expect("rm catalog");
    let out = rig.adfdr(&["catalog", "rebuild"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("2 snapshots, 1 checkpoints"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["snapshots", "sales", "--json"]);
    assert_eq!(json(&out)["snapshots"].as_array().map(Vec::len), Some(2));
}
