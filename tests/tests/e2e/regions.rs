//! Regions and their loss in the emulator (issue 28, item 1): a resource's
//! region is where its `location` says (a factory's, a storage account's,
//! a vault's) or where `POST /_emulator/resources` declares it; a region
//! taken away answers every ARM call on what is located there as the
//! service does in an outage, a vault there is failed over read-only, and
//! `by_region` counts what was sent where.

use adfdr_tests::{admin, factory_path, raw_client, start_emulator, workspace_root};
use serde_json::{Value, json};

const SUB: &str = "11111111-2222-3333-4444-555555555555";
const ADF: &str = "2018-06-01";
const KV: &str = "2023-07-01";
const DIAG: &str = "2021-05-01-preview";

#[tokio::test]
async fn a_region_taken_away_answers_as_an_outage_and_requests_are_counted_by_region() {
    let emu = start_emulator(|_| {}).await;
    let sample = workspace_root().join("fixtures/sample-factory");
    // The sample factory says westeurope; a second factory is in North Europe.
    emu.seed(&format!("{SUB}/rg-weu/adf-weu"), &sample)
        .expect("seed");
    let token = emu.mint_token("https://management.azure.com/", "regions", 3600);
    let base = emu.urls().arm.clone();
    let client = raw_client();
    let call = |method: &'static str, path: String, version: &'static str, body: Option<Value>| {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        async move {
            let mut req = client
                .request(
                    method.parse().expect("method"),
                    format!("{base}{path}?api-version={version}"),
                )
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("answers");
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").is_some();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    };
    let weu = factory_path(SUB, "rg-weu", "adf-weu");
    let neu = factory_path(SUB, "rg-neu", "adf-neu");
    let new_factory = json!({"location": "North Europe"});
    let (status, _, body) = call("PUT", neu.clone(), ADF, Some(new_factory)).await;
    assert_eq!(status, 200, "{body}");
    let vault = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-weu"
    );
    let vault_body = json!({"location": "westeurope", "properties": {
        "tenantId": "00000000-0000-0000-0000-000000000001", "sku": {"family": "A", "name": "standard"}}});
    let (status, _, body) = call("PUT", vault.clone(), KV, Some(vault_body)).await;
    assert_eq!(status, 201, "a new vault: {body}");

    // West Europe goes: its factory and what is below it answer 503 with a
    // Retry-After; North Europe's still answers.
    admin(&emu, "regions/West Europe", json!({"state": "down"})).await;
    for path in [weu.clone(), format!("{weu}/pipelines")] {
        let (status, retry, body) = call("GET", path.clone(), ADF, None).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(retry, "a Retry-After, as ARM gives one");
        assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    }
    let (status, _, body) = call("GET", neu.clone(), ADF, None).await;
    assert_eq!(status, 200, "{body}");

    // A resource outside factories, declared in the lost region, is lost too.
    let sql = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-weu"
    );
    admin(
        &emu,
        "resources",
        json!([{"id": sql, "location": "West Europe"}]),
    )
    .await;
    let (status, _, body) = call("GET", sql.clone(), "2021-11-01", None).await;
    assert_eq!(status, 503, "{body}");

    // A private endpoint to it from the factory that is left never
    // provisions (it reads Failed), whatever the answer to its PUT.
    let vnet = format!("{neu}/managedVirtualNetworks/default");
    let (status, _, body) = call("PUT", vnet.clone(), ADF, Some(json!({"properties": {}}))).await;
    assert_eq!(status, 200, "{body}");
    let mpe = format!("{vnet}/managedPrivateEndpoints/mpe-sql");
    let endpoint = json!({"properties": {"groupId": "sqlServer", "privateLinkResourceId": sql}});
    let (status, _, body) = call("PUT", mpe.clone(), ADF, Some(endpoint)).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = call("GET", mpe, ADF, None).await;
    assert_eq!(body["properties"]["provisioningState"], "Failed", "{body}");

    // Its vault is failed over read-only: read, but its policies stay as they are.
    let (status, _, body) = call("GET", vault.clone(), KV, None).await;
    assert_eq!(status, 200, "a failed-over vault reads: {body}");
    let grant = json!({"properties": {"accessPolicies": [{"tenantId": "00000000-0000-0000-0000-000000000001",
        "objectId": "00000000-0000-0000-0000-0000000000aa", "permissions": {"secrets": ["get"]}}]}});
    let policies = format!("{vault}/accessPolicies/add");
    let (status, _, body) = call("PUT", policies, KV, Some(grant)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "VaultReadOnly", "{body}");

    let counters = raw_client()
        .get(format!("{}/_emulator/counters", emu.urls().arm))
        .send()
        .await
        .expect("counters")
        .json::<Value>()
        .await
        .expect("json");
    let by_region = &counters["by_region"];
    // The vault's create, two factory reads, the SQL read, the vault's read and write.
    assert_eq!(by_region["westeurope"], 6, "{counters:#}");
    // The factory's create (where its body puts it) and read, the VNet,
    // the endpoint's PUT and read.
    assert_eq!(by_region["northeurope"], 5, "{counters:#}");

    // It comes back.
    admin(&emu, "regions/westeurope", json!({"state": "up"})).await;
    let (status, _, body) = call("GET", weu, ADF, None).await;
    assert_eq!(status, 200, "{body}");
}

/// Azure Monitor sends a resource's logs to a storage account or an Event
/// Hub in the resource's own region only (MicrosoftDocs
/// azure-monitor-docs, diagnostic-settings.md, "Destination limitations");
/// a workspace may be anywhere. The emulator holds it whatever the state of
/// the region.
#[tokio::test]
async fn diagnostic_destinations_must_be_in_the_resources_region() {
    let emu = start_emulator(|_| {}).await;
    let sample = workspace_root().join("fixtures/sample-factory");
    emu.seed(&format!("{SUB}/rg-weu/adf-weu"), &sample)
        .expect("seed");
    let far = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-neu/providers/Microsoft.Storage/storageAccounts/stneu"
    );
    let near = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-weu/providers/Microsoft.Storage/storageAccounts/stweu"
    );
    admin(
        &emu,
        "resources",
        json!([{"id": far, "location": "northeurope"}, {"id": near, "location": "westeurope"}]),
    )
    .await;
    let token = emu.mint_token("https://management.azure.com/", "regions", 3600);
    let put = |storage: String| {
        let (token, base) = (token.clone(), emu.urls().arm.clone());
        async move {
            let path = format!(
                "{}/providers/Microsoft.Insights/diagnosticSettings/diag",
                factory_path(SUB, "rg-weu", "adf-weu")
            );
            let resp = raw_client()
                .put(format!("{base}{path}?api-version={DIAG}"))
                .bearer_auth(token)
                .json(&json!({"properties": {"storageAccountId": storage,
                    "logs": [{"categoryGroup": "allLogs", "enabled": true}]}}))
                .send()
                .await
                .expect("answers");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = put(far).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("northeurope")),
        "{body}"
    );
    let (status, body) = put(near).await;
    assert!(status == 200 || status == 201, "{status} {body}");
}
