//! ARM throttling and injected faults: the emulator answers like ARM (429 with
//! Retry-After and remaining-quota headers; 5xx; dropped connections), and a
//! client on azure_core's retry policy recovers.

use adf_emulator::Rates;
use adfdr_tests::{arm_client, factory_path, raw_client, start_emulator};
use serde_json::{Value, json};

const SUB: &str = "22222222-2222-2222-2222-222222222222";

fn pipeline() -> Value {
    json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}})
}

#[tokio::test]
async fn a_burst_beyond_the_bucket_gets_429_with_retry_after() {
    let emu =
        start_emulator(|c| c.settings.throttle = Rates::parse("100/50,3/1,3/1").expect("rates"))
            .await;
    let token = emu.mint_token("https://management.azure.com/", "burster", 600);
    let f = factory_path(SUB, "rg", "adf-burst");
    let client = raw_client();
    let put = |path: String, body: Value| {
        client
            .put(format!("{}{path}?api-version=2018-06-01", emu.urls().arm))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let first = put(f.clone(), json!({"location": "westeurope"}))
        .await
        .expect("send");
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["x-ms-ratelimit-remaining-subscription-writes"],
        "2"
    );
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..4 {
        let resp = put(format!("{f}/pipelines/p{i}"), pipeline())
            .await
            .expect("send");
        if resp.status() == 429 {
            retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");
            statuses.push(429);
        } else {
            statuses.push(resp.status().as_u16());
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "3 write tokens: the 4th and 5th writes are throttled"
    );
    assert!(
        retry_after
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "Retry-After in seconds"
    );
    let reads = client
        .get(format!("{}{f}?api-version=2018-06-01", emu.urls().arm))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(reads.status(), 200, "reads have their own bucket");
    assert!(emu.counters().throttled >= 2);
}

#[tokio::test]
async fn azure_core_retry_rides_out_a_throttling_storm() {
    let emu =
        start_emulator(|c| c.settings.throttle = Rates::parse("100/50,2/4,2/4").expect("rates"))
            .await;
    let arm = arm_client(&emu, "patient-app");
    let f = factory_path(SUB, "rg", "adf-storm");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    for i in 0..8 {
        arm.put(&format!("{f}/pipelines/p{i}"), &pipeline())
            .await
            .unwrap_or_else(|e| panic!("write {i} should succeed after retries: {e}"));
    }
    assert_eq!(
        arm.list(&format!("{f}/pipelines"))
            .await
            .expect("list")
            .len(),
        8
    );
    assert!(emu.counters().throttled > 0, "the storm really throttled");
}

#[tokio::test]
async fn scripted_5xx_and_dropped_connections_are_retried() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "patient-app");
    let f = factory_path(SUB, "rg", "adf-faults");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    for fault in [
        json!({"op": "writes", "count": 2, "status": 503, "retry_after": 1}),
        json!({"op": "writes", "count": 1, "status": 500}),
        json!({"op": "writes", "count": 1, "drop": true}),
    ] {
        adfdr_tests::admin(&emu, "faults", fault).await;
    }
    arm.put(&format!("{f}/pipelines/survivor"), &pipeline())
        .await
        .expect("the write gets through after 4 failures");
    let counters = emu.counters();
    assert_eq!(counters.injected_faults, 4);
    assert!(counters.by_status.get(&503).copied().unwrap_or(0) >= 2);
    // A fault that does not heal: the client gives up with the service's error, not a hang.
    adfdr_tests::admin(
        &emu,
        "faults",
        json!({"method": "GET", "count": 100, "status": 500}),
    )
    .await;
    let err = arm.get(&f).await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
}

#[tokio::test]
async fn random_faults_at_a_rate() {
    let emu = start_emulator(|c| c.settings.fault_rate = 0.5).await;
    let token = emu.mint_token("https://management.azure.com/", "x", 600);
    let client = raw_client();
    let url = format!(
        "{}/subscriptions/{SUB}/providers/Microsoft.DataFactory/factories?api-version=2018-06-01",
        emu.urls().arm
    );
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..60 {
        match client.get(&url).bearer_auth(&token).send().await {
            Ok(r) if r.status() == 200 => ok += 1,
            _ => failed += 1,
        }
    }
    assert!(
        ok > 5 && failed > 5,
        "about half fail: ok={ok} failed={failed}"
    );
    assert_eq!(emu.counters().injected_faults, failed);
}
