//! Azurite (TLS, `--oauth basic`, two accounts) accepts the emulator's Entra
//! tokens through the official azure_storage_blob client: the storage half of the
//! harness every later issue relies on.

use adfdr_tests::{Azurite, client_options_for, secret_credential, start_emulator};
use azure_core::http::{RequestContent, Url};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};

#[tokio::test]
async fn both_regions_accept_bearer_tokens_from_the_emulator() {
    let emu = start_emulator(|_| {}).await;
    let azurite = Azurite::start();
    let credential = secret_credential(&emu, "storage-app", "s3cret");
    for account in &azurite.accounts {
        let url = Url::parse(&format!("{}/backups", account.url)).expect("url");
        let options = BlobContainerClientOptions {
            client_options: client_options_for(&emu),
            ..Default::default()
        };
        let container =
            BlobContainerClient::new(url, Some(credential.clone()), Some(options)).expect("client");
        container
            .create(None)
            .await
            .unwrap_or_else(|e| panic!("create container in {}: {e}", account.name));
        let blob = container.blob_client("hello.bin");
        let payload = format!("written to {}", account.name).into_bytes();
        blob.upload(RequestContent::from(payload.clone()), None)
            .await
            .expect("upload");
        let body = blob
            .download(None)
            .await
            .expect("download")
            .body
            .collect()
            .await
            .expect("read");
        assert_eq!(body.as_ref(), payload.as_slice());
        assert!(blob.exists().await.expect("exists"));
    }
    assert!(
        emu.counters().tokens_issued >= 1,
        "storage tokens came from the emulator"
    );
}

#[tokio::test]
async fn expired_storage_tokens_are_refused() {
    let emu = start_emulator(|_| {}).await;
    let azurite = Azurite::start();
    let expired = emu.mint_token("https://storage.azure.com", "someone", -60);
    let resp = adfdr_tests::raw_client()
        .put(format!(
            "{}/nope?restype=container",
            azurite.accounts[0].url
        ))
        .bearer_auth(expired)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        403,
        "Azurite checks token expiry under --oauth basic"
    );
}

/// The texts of the messages on `queue` (peeked, not taken), once there
/// are at least `want` (or after five seconds).
async fn queued(queue: &str, token: &str, want: usize) -> Vec<String> {
    let client = adfdr_tests::raw_client();
    let mut texts = Vec::new();
    for _ in 0..50 {
        let listed = client
            .get(format!("{queue}/messages?numofmessages=32&peekonly=true"))
            .bearer_auth(token)
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .expect("peek")
            .text()
            .await
            .unwrap_or_default();
        // A peek has no pop receipt: read the texts alone.
        texts = listed
            .split("<QueueMessage>")
            .skip(1)
            .map(|m| {
                let xml = format!(
                    "<QueueMessagesList><QueueMessage><MessageId>p</MessageId><PopReceipt>p</PopReceipt>{m}"
                );
                adfdr_core::queue::parse_messages(&xml)
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|m| m.text)
                    .unwrap_or_default()
            })
            .collect();
        if texts.len() >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    texts
}

/// ARM's events reach a Storage Queue (Azurite's queue service) as an
/// Event Grid subscription would put them: one message per accepted write,
/// its text the event's JSON.
#[tokio::test]
async fn the_emulator_delivers_arms_events_to_a_storage_queue() {
    let queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("arm-events");
    let emu = adfdr_tests::start_emulator(|c| {
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    let client = adfdr_tests::raw_client();
    let storage = emu.mint_token("https://storage.azure.com/", "queue-reader", 3600);
    let made = client
        .put(&queue)
        .bearer_auth(&storage)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .expect("create the queue");
    assert!(made.status().is_success(), "{}", made.status());
    let arm = emu.mint_token("https://management.azure.com/", "sdk-user", 3600);
    let f = format!(
        "{}/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-q/providers/Microsoft.DataFactory/factories/adf-q",
        emu.urls().arm
    );
    for (path, body) in [
        (f.clone(), serde_json::json!({"location": "westeurope"})),
        (
            format!("{f}/pipelines/PL_Q"),
            serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}}),
        ),
    ] {
        let r = client
            .put(format!("{path}?api-version=2018-06-01"))
            .bearer_auth(&arm)
            .json(&body)
            .send()
            .await
            .expect("put");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let texts = queued(&queue, &storage, 2).await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    let events: Vec<serde_json::Value> = texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("an event's JSON"))
        .collect();
    assert_eq!(
        events[0]["data"]["operationName"],
        "Microsoft.DataFactory/factories/write"
    );
    assert_eq!(
        events[1]["data"]["operationName"],
        "Microsoft.DataFactory/factories/pipelines/write"
    );
    assert!(
        events[1]["subject"]
            .as_str()
            .is_some_and(|s| s.ends_with("/pipelines/PL_Q"))
    );
    assert_eq!(
        events[1]["data"]["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"],
        "sdk-user",
        "the caller is the author"
    );
}

/// Event Grid delivers "at least once" and "doesn't guarantee order for
/// event delivery, so subscribers may receive them out of order"
/// (Microsoft Learn, "Event Grid message delivery and retry",
/// learn.microsoft.com/azure/event-grid/delivery-and-retry). The emulator
/// is no kinder: of eight writes, the fourth and the eighth arrive twice
/// and the seventh after the eighth; every event arrives.
#[tokio::test]
async fn the_emulator_delivers_events_at_least_once_and_out_of_order_as_event_grid_does() {
    let queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("arm-unordered");
    let emu = adfdr_tests::start_emulator(|c| {
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    let client = adfdr_tests::raw_client();
    let storage = emu.mint_token("https://storage.azure.com/", "queue-reader", 3600);
    let made = client
        .put(&queue)
        .bearer_auth(&storage)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .expect("create the queue");
    assert!(made.status().is_success(), "{}", made.status());
    let arm = emu.mint_token("https://management.azure.com/", "sdk-user", 3600);
    let f = format!(
        "{}/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-q/providers/Microsoft.DataFactory/factories/adf-q",
        emu.urls().arm
    );
    let mut paths = vec![f.clone()];
    paths.extend((1..8).map(|i| format!("{f}/pipelines/PL_{i}")));
    for (i, path) in paths.iter().enumerate() {
        let body = if i == 0 {
            serde_json::json!({"location": "westeurope"})
        } else {
            serde_json::json!({"properties": {"activities": []}})
        };
        let r = client
            .put(format!("{path}?api-version=2018-06-01"))
            .bearer_auth(&arm)
            .json(&body)
            .send()
            .await
            .expect("put");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let texts = queued(&queue, &storage, 10).await;
    let order: Vec<String> = texts
        .iter()
        .map(|t| {
            let e: serde_json::Value = serde_json::from_str(t).expect("an event's JSON");
            e["subject"]
                .as_str()
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        [
            "adf-q", "PL_1", "PL_2", "PL_3", "PL_3", "PL_4", "PL_5", "PL_7", "PL_7", "PL_6"
        ],
        "the fourth and eighth twice, the seventh after the eighth"
    );
}
