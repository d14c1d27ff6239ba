//! `adfdr config check` judges each backup location's storage account:
//! redundancy, soft delete, versioning, immutability against the longest
//! keep rule, TLS, public and shared-key access, network, and whether the
//! locations together survive a region. Emulated accounts in a good and a
//! bad shape (Microsoft.Storage 2025-08-01 properties).

use crate::common::*;
use serde_json::{Value, json};

const WEU: &str = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-backup/providers/Microsoft.Storage/storageAccounts/stadfdrweu";
const NEU: &str = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-backup/providers/Microsoft.Storage/storageAccounts/stadfdrneu";

fn make(rig: &Rig, id: &str, account: Value, blob: Value) {
    let parts: Vec<&str> = id.split('/').collect();
    rig.emu.with_world(|w| {
        adf_emulator::storage::put_account(
            &mut w.storage_accounts,
            parts[2],
            parts[4],
            parts[8],
            account,
        )
        .expect("account");
        adf_emulator::storage::put_blob_service(
            &mut w.storage_accounts,
            parts[2],
            parts[4],
            parts[8],
            blob,
        )
        .expect("blob service");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_judges_each_backup_account_and_the_locations_together() {
    let rig = Rig::start("posture", &[("sales", "adf-sales", &sample_factory())]).await;
    // weu: geo-redundant, soft delete, versioning, locked immutability
    // longer than the keep rules, TLS 1.2, no anonymous or key access,
    // private only.
    make(
        &rig,
        WEU,
        json!({"sku": {"name": "Standard_RAGZRS"}, "kind": "StorageV2", "location": "westeurope",
            "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false,
                "allowSharedKeyAccess": false, "publicNetworkAccess": "Disabled",
                "immutableStorageWithVersioning": {"enabled": true, "immutabilityPolicy":
                    {"immutabilityPeriodSinceCreationInDays": 400, "state": "Locked"}}}}),
        json!({"properties": {"deleteRetentionPolicy": {"enabled": true, "days": 30},
            "containerDeleteRetentionPolicy": {"enabled": true, "days": 30}, "isVersioningEnabled": true}}),
    );
    // neu: what a quick portal default and a hurry leave, in the same region.
    make(
        &rig,
        NEU,
        json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "westeurope",
            "properties": {"allowBlobPublicAccess": true,
                "immutableStorageWithVersioning": {"enabled": true, "immutabilityPolicy":
                    {"immutabilityPeriodSinceCreationInDays": 7, "state": "Unlocked"}}}}),
        json!({"properties": {"deleteRetentionPolicy": {"enabled": true, "days": 1}}}),
    );
    let config = rig
        .config_text(None)
        .replace(
            "name = \"weu\"\n",
            &format!("name = \"weu\"\naccount = \"{WEU}\"\n"),
        )
        .replace(
            "name = \"neu\"\n",
            &format!("name = \"neu\"\naccount = \"{NEU}\"\n"),
        )
        .replace(
            "rpo_target = \"30m\"\n",
            "rpo_target = \"30m\"\nkeep = { daily = 14, monthly = 12 }\n",
        );
    rig.write_config(&config);

    let out = rig.adfdr(&["config", "check", "--json"]);
    assert_eq!(
        code(&out),
        0,
        "warnings do not fail the check: {}",
        text(&out)
    );
    let report = json(&out);
    let findings = report["posture"].as_array().expect("posture");
    let of = |location: &str| -> Vec<(String, bool, String)> {
        findings
            .iter()
            .filter(|f| f["location"] == location)
            .map(|f| {
                (
                    f["check"].as_str().expect("check").to_string(),
                    f["ok"].as_bool().expect("ok"),
                    f["detail"].as_str().expect("detail").to_string(),
                )
            })
            .collect()
    };
    let checks = adfdr_core::plan::posture::CHECKS;
    let weu = of("weu");
    assert_eq!(
        weu.iter().map(|(c, ..)| c.as_str()).collect::<Vec<_>>(),
        checks
    );
    assert!(weu.iter().all(|(_, ok, _)| *ok), "{weu:#?}");
    let neu = of("neu");
    let failed: Vec<&str> = neu
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(c, ..)| c.as_str())
        .collect();
    assert_eq!(failed, checks, "every check warns for neu: {neu:#?}");
    let detail = |c: &str| &neu.iter().find(|(n, ..)| n == c).expect(c).2;
    // The longest keep rule is 12 months: 372 days.
    assert!(
        detail("immutability").contains("holds 7 days")
            && detail("immutability").contains("372 days"),
        "{}",
        detail("immutability")
    );
    assert!(detail("redundancy").contains("Standard_LRS"));
    assert!(detail("blob-soft-delete").contains("only 1 days"));
    assert!(detail("container-soft-delete").contains("is off"));
    assert!(detail("versioning").contains("off"));
    assert!(detail("tls").contains("TLS1_0"));
    assert!(detail("public-blob-access").contains("allowBlobPublicAccess"));
    assert!(detail("shared-key-access").contains("allowSharedKeyAccess"));
    assert!(detail("public-network-access").contains("any network"));
    let together = of("weu, neu");
    assert_eq!(together.len(), 1, "{together:#?}");
    assert_eq!(together[0].0, "distinct-regions");
    assert!(
        together[0].2.contains("both in westeurope"),
        "{together:#?}"
    );

    // Text: one line per finding, warnings marked.
    let out = rig.adfdr(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("  ok    weu redundancy: Standard_RAGZRS"),
        "{printed}"
    );
    assert!(
        printed.contains("  warn  neu tls: minimum TLS is TLS1_0"),
        "{printed}"
    );
    assert!(
        printed.contains("  ok    surroundings of factory sales: readable: diagnosticSetting, lock, metricAlert, activityLogAlert"),
        "{printed}"
    );

    // An account that cannot be read is a warning that says so, not a failure.
    let missing = NEU.replace("stadfdrneu", "stnotthere");
    rig.write_config(&config.replace(NEU, &missing));
    let out = rig.adfdr(&["config", "check", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    let readable: Vec<&Value> = report["posture"]
        .as_array()
        .expect("posture")
        .iter()
        .filter(|f| f["check"] == "readable")
        .collect();
    assert_eq!(readable.len(), 1, "{report}");
    assert!(
        readable[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("could not read storage account"),
        "{report}"
    );
}
