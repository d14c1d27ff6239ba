//! The services around a factory, as their REST examples describe them
//! (`ADFDR_SPEC_EXAMPLES`/surroundings, provenance in its SOURCES.md):
//! Microsoft.Storage account and blob service properties, 2025-08-01.

use adfdr_tests::{raw_client, spec_examples, start_emulator};
use serde_json::{Value, json};

use crate::conformance::shape_diff;

/// Documented properties the emulator does not model, and why.
const NOT_MODELED: &[(&str, &str)] = &[
    (
        "/properties/primaryEndpoints/microsoftEndpoints",
        "routing-preference endpoints",
    ),
    (
        "/properties/primaryEndpoints/internetEndpoints",
        "routing-preference endpoints",
    ),
    ("/properties/geoReplicationStats", "only with $expand"),
    ("/properties/accountMigrationInProgress", "migrations"),
    ("/properties/isSkuConversionBlocked", "migrations"),
    (
        "/properties/geoPriorityReplicationStatus",
        "preview feature",
    ),
];

/// Values the service makes up (times, endpoints of the example's account).
fn generated(diff: &str) -> bool {
    [
        "Time",
        "/primaryLocation",
        "/secondaryLocation",
        "/location",
        "/id:",
        "/tags",
    ]
    .iter()
    .any(|g| diff.contains(g))
}

#[tokio::test]
async fn storage_accounts_and_blob_services_answer_as_documented() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/storage");
    let emu = start_emulator(|_| {}).await;
    let client = raw_client();
    let token = emu.mint_token("https://management.azure.com/", "conformance", 3600);
    let base = emu.urls().arm.clone();
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        async move {
            let mut req = client
                .request(
                    method.parse().expect("method"),
                    format!("{base}{path}?api-version=2025-08-01"),
                )
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in [
        "StorageAccountCreate",
        "StorageAccountCreateWithImmutabilityPolicy",
        "StorageAccountGetProperties",
        "BlobServicesPut",
        "BlobServicesGet",
    ] {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.json"))).expect("example"),
        )
        .expect("json");
        let p = &doc["parameters"];
        let account = format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{}",
            p["resourceGroupName"].as_str().expect("rg"),
            p["accountName"].as_str().expect("account")
        );
        let documented = &doc["responses"]["200"]["body"];
        let (status, answer) = match name {
            "StorageAccountCreate" | "StorageAccountCreateWithImmutabilityPolicy" => {
                call("PUT", account.clone(), Some(p["parameters"].clone())).await
            }
            "StorageAccountGetProperties" => {
                // The account as documented, made first.
                let body = json!({"sku": documented["sku"], "kind": documented["kind"],
                    "location": documented["location"], "tags": documented["tags"],
                    "properties": documented["properties"]});
                let (made, answer) = call("PUT", account.clone(), Some(body)).await;
                assert_eq!(made, 200, "{answer}");
                call("GET", account.clone(), None).await
            }
            _ => {
                let body =
                    json!({"sku": documented["sku"], "kind": "StorageV2", "location": "eastus"});
                let (made, answer) = call("PUT", account.clone(), Some(body)).await;
                assert_eq!(made, 200, "{answer}");
                let blob = format!("{account}/blobServices/default");
                if name == "BlobServicesPut" {
                    call("PUT", blob, Some(p["parameters"].clone())).await
                } else {
                    let body = json!({"properties": documented["properties"]});
                    let (put, answer) = call("PUT", blob.clone(), Some(body)).await;
                    assert_eq!(put, 200, "{answer}");
                    call("GET", blob, None).await
                }
            }
        };
        checked += 1;
        if status != 200 {
            failures.push(format!(
                "{name}: documented 200, answered {status}: {answer}"
            ));
            continue;
        }
        let mut diffs = Vec::new();
        shape_diff(documented, &answer, "", "", &mut diffs);
        diffs.retain(|d| {
            if let Some((_, why)) = NOT_MODELED.iter().find(|(path, _)| d.starts_with(path)) {
                eprintln!("not modeled in {name}: {d} ({why})");
                return false;
            }
            !generated(d)
        });
        if !diffs.is_empty() {
            failures.push(format!("{name}:\n    {}", diffs.join("\n    ")));
        }
    }
    assert_eq!(checked, 5);
    assert!(
        failures.is_empty(),
        "storage examples the emulator does not answer as documented:\n{}",
        failures.join("\n")
    );
}
