//! Regions and their loss in the emulator (issue 28, item 1): a resource's
//! region is where its `location` says (a factory's, a storage account's)
//! or where `POST /_emulator/resources` declares it; a region taken away
//! answers every ARM call on what is located there as the service does in
//! an outage, and `by_region` counts what was sent where.

use adfdr_tests::{admin, factory_path, raw_client, start_emulator, workspace_root};
use serde_json::{Value, json};

const SUB: &str = "11111111-2222-3333-4444-555555555555";

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
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        async move {
            let mut req = client
                .request(
                    method.parse().expect("method"),
                    format!("{base}{path}?api-version=2018-06-01"),
                )
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("answers");
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").is_some();
            (
                status,
                retry,
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let weu = factory_path(SUB, "rg-weu", "adf-weu");
    let neu = factory_path(SUB, "rg-neu", "adf-neu");
    let (status, _, body) = call(
        "PUT",
        neu.clone(),
        Some(json!({"location": "North Europe"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // West Europe goes: its factory and what is below it answer 503 with a
    // Retry-After; North Europe's still answers.
    admin(&emu, "regions/West Europe", json!({"state": "down"})).await;
    for path in [weu.clone(), format!("{weu}/pipelines")] {
        let (status, retry, body) = call("GET", path.clone(), None).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(retry, "a Retry-After, as ARM gives one");
        assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    }
    let (status, _, body) = call("GET", neu.clone(), None).await;
    assert_eq!(status, 200, "{body}");

    // A resource outside factories, declared in the lost region, is lost too.
    let vault = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-weu"
    );
    admin(
        &emu,
        "resources",
        json!([{"id": vault, "location": "westeurope"}]),
    )
    .await;
    let (status, _, body) = call("GET", vault.clone(), None).await;
    assert_eq!(status, 503, "{body}");

    let counters = raw_client()
        .get(format!("{}/_emulator/counters", emu.urls().arm))
        .send()
        .await
        .expect("counters")
        .json::<Value>()
        .await
        .expect("json");
    let by_region = &counters["by_region"];
    assert_eq!(by_region["westeurope"], 3, "{counters:#}");
    assert_eq!(
        by_region["northeurope"], 2,
        "the create counts where its body puts it: {counters:#}"
    );

    // It comes back.
    admin(&emu, "regions/westeurope", json!({"state": "up"})).await;
    let (status, _, body) = call("GET", weu, None).await;
    assert_eq!(status, 200, "{body}");
}
