//! `adfdr prune`: the keep policy applied to the store, each decision with
//! its reason; holds and the newest intact snapshot protect; checkpoints go
//! with their snapshot.

use serde_json::Value;

use crate::common::*;

fn count(objects: &[(String, String, Vec<u8>)], suffix: &str) -> usize {
    objects
        .iter()
        .filter(|(_, k, _)| k.ends_with(suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_what_the_policy_says_and_what_is_in_use() {
    let rig = Rig::start("prune", &[("sales", "adf-sales", &sample_factory())]).await;
    rig.write_config(&rig.config_text(None).replace(
        "rpo_target = \"30m\"\n",
        "rpo_target = \"30m\"\nkeep = { last = 2 }\n",
    ));
    let mut ids = Vec::new();
    for args in [
        &["backup"][..],
        &["backup", "--force"],
        &["backup"],
        &["backup", "--force"],
        &["backup", "--force"],
    ] {
        let out = rig.adfdr(&[args, &["--json"][..]].concat());
        assert_eq!(code(&out), 0, "{}", text(&out));
        let v = json(&out);
        ids.push(
            v["factories"][0]["report"]["snapshot"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_default(),
        );
        std::thread::sleep(std::time::Duration::from_millis(1100)); // ids are per second
    }
    // s1, s2, (checkpoint of s2), s3, s4.
    let (s1, s2, s3, s4) = (&ids[0], &ids[1], &ids[3], &ids[4]);
    assert!(!s1.is_empty() && s1 != s2 && s3 != s4, "{ids:?}");
    let before = rig.objects().await;
    assert_eq!(count(&before, ".manifest"), 8);
    assert_eq!(count(&before, ".checkpoint"), 2);

    // A restore elsewhere holds s1.
    let hold = format!("v1/sales/holds/{s1}.0123456789abcdef.hold");
    let body = serde_json::json!({"by": "restore to x by alice@dr-host", "since": adfdr_core::snapshot::rfc3339(time::OffsetDateTime::now_utc())});
    rig.overwrite(0, &hold, serde_json::to_vec(&body).expect("json"))
        .await;

    let out = rig.adfdr(&["prune", "--dry-run", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = &json(&out)["factories"][0];
    let decisions: Vec<(String, bool, String)> = report["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["keep"] == Value::Bool(true),
                s["reasons"].to_string(),
            )
        })
        .collect();
    assert_eq!(decisions.len(), 4);
    assert_eq!((&decisions[0].0, decisions[0].1), (s4, true));
    assert!(
        decisions[0].2.contains("last 2 (#1)") && decisions[0].2.contains("newest intact"),
        "{decisions:?}"
    );
    assert_eq!((&decisions[1].0, decisions[1].1), (s3, true));
    assert_eq!((&decisions[2].0, decisions[2].1), (s2, false));
    assert!(decisions[2].2.contains("no rule keeps it"), "{decisions:?}");
    assert_eq!((&decisions[3].0, decisions[3].1), (s1, true));
    assert!(
        decisions[3]
            .2
            .contains("held by restore to x by alice@dr-host"),
        "{decisions:?}"
    );
    assert_eq!(report["checkpoints_deleted"], 2, "{report:#}");
    assert!(report["freed_bytes"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        rig.objects().await.len(),
        before.len() + 1,
        "a dry run deletes nothing"
    );

    let out = rig.adfdr(&["prune"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("delete {s2}")),
        "{}",
        text(&out)
    );
    let after = rig.objects().await;
    assert!(
        after.iter().all(|(_, k, _)| !k.contains(s2.as_str())),
        "every copy of {s2} is gone"
    );
    assert_eq!(count(&after, ".manifest"), 6);
    assert_eq!(
        count(&after, ".checkpoint"),
        0,
        "the checkpoint of {s2} went with it"
    );
    let out = rig.adfdr(&["snapshots", "--json"]);
    let listed = json(&out).to_string();
    assert!(
        !listed.contains(s2.as_str()) && listed.contains(s1.as_str()),
        "{listed}"
    );
    assert_eq!(code(&rig.adfdr(&["verify"])), 0);

    // The hold released (or expired), the next prune takes s1 too.
    rig.container(0)
        .blob_client(&hold)
        .delete(None)
        .await
        .expect("release");
    let out = rig.adfdr(&["prune", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        json(&out)["factories"][0]["deleted"],
        serde_json::json!([s1])
    );
}
