//! The Azure Blob store against Azurite: write-once, WORM headers on the
//! wire (Azurite ignores them, so the requests are inspected), read-only
//! locations never written, reads falling back to them.

use std::sync::{Arc, Mutex};

use adfdr_core::store::azure::{AzureAuth, AzureStore};
use adfdr_core::store::{BlobStore, Location, Replicas};
use adfdr_tests::{Azurite, client_options_for, secret_credential, start_emulator};
use azure_core::http::Url;
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};

/// A one-shot HTTP listener that records the head of each request and
/// answers 201: the wire as Azure would see it (SAS auth allows plain http).
async fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/acct/worm", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    record.lock().expect("lock").push(head);
                    buf.drain(..end + 4 + length);
                    let reply = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nETag: \"0x1\"\r\nx-ms-request-server-encrypted: true\r\n\r\n";
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn uploads_carry_if_none_match_and_the_immutability_policy_on_the_wire() {
    let (url, seen) = recording_server().await;
    let store = AzureStore::new(
        &Url::parse(&url).expect("url"),
        AzureAuth::Sas {
            query: "sv=2021-08-06&sig=c2VjcmV0".into(),
            source: "/run/credentials/sas".into(),
        },
        adfdr_tests::client_options(),
        Some(30),
    )
    .expect("store");
    store
        .put_new("v1/f/snapshots/a.payload", b"one".to_vec().into())
        .await
        .expect("put");
    let heads = seen.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(
        head.starts_with("put /acct/worm/v1%2ff%2fsnapshots%2fa.payload?"),
        "{head}"
    );
    assert!(head.contains("\r\nif-none-match: *"), "{head}");
    assert!(
        head.contains("\r\nx-ms-immutability-policy-mode: unlocked"),
        "{head}"
    );
    let until = heads[0]
        .lines()
        .find_map(|l| l.strip_prefix("x-ms-immutability-policy-until-date: "))
        .unwrap_or_else(|| panic!("no WORM expiry: {head}"));
    let until = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|e| panic!("{until}: {e}"));
    let days = (until - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&days), "expiry {days} days ahead");
}

#[tokio::test]
async fn azure_locations_are_write_once_and_read_only_ones_are_never_written() {
    let emu = start_emulator(|_| {}).await;
    let azurite = Azurite::start();
    let credential = secret_credential(&emu, "backup-agent", "s3cret");
    let mut stores = Vec::new();
    for account in &azurite.accounts {
        let url = Url::parse(&format!("{}/worm", account.url)).expect("url");
        BlobContainerClient::new(
            url.clone(),
            Some(credential.clone()),
            Some(BlobContainerClientOptions {
                client_options: client_options_for(&emu),
                ..Default::default()
            }),
        )
        .expect("client")
        .create(None)
        .await
        .expect("container");
        let store = AzureStore::new(
            &url,
            AzureAuth::Entra {
                credential: credential.clone(),
                identity: "test identity".into(),
                fix: "fix the test's credential".into(),
            },
            client_options_for(&emu),
            Some(30),
        )
        .expect("store");
        stores.push(Arc::new(store));
    }

    // Write-once: a second write of the same key is refused.
    stores[0]
        .put_new("v1/f/snapshots/a.payload", b"one".to_vec().into())
        .await
        .expect("put");
    let again = stores[0]
        .put_new("v1/f/snapshots/a.payload", b"two".to_vec().into())
        .await
        .unwrap_err();
    assert!(again.is_exists(), "{again}");
    assert_eq!(
        stores[0]
            .get("v1/f/snapshots/a.payload", 3)
            .await
            .expect("get")
            .as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(stores[0].get("v1/f/nothing", 3).await.expect("get"), None);
    // A read is capped: a blob larger than its kind may be is refused after
    // one byte past the cap (a ranged download), never fetched whole.
    let big = vec![7u8; 3 << 20];
    stores[0]
        .put_new("v1/f/snapshots/big.manifest", big.into())
        .await
        .expect("put");
    let err = stores[0]
        .get("v1/f/snapshots/big.manifest", 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    stores[0]
        .put_new("v1/f/snapshots/empty.manifest", azure_core::Bytes::new())
        .await
        .expect("put");
    assert_eq!(
        stores[0]
            .get("v1/f/snapshots/empty.manifest", 100)
            .await
            .expect("an empty blob reads as empty"),
        Some(Vec::new())
    );

    // A read-only location (an RA-GRS secondary) is read, never written.
    let replicas = Replicas::new(vec![
        Location {
            name: "primary".into(),
            store: stores[1].clone(),
            read_only: false,
        },
        Location {
            name: "secondary".into(),
            store: stores[0].clone(),
            read_only: true,
        },
    ]);
    assert_eq!(replicas.writable_names(), ["primary"]);
    let report = replicas
        .put_new(
            "v1/f/snapshots/b.payload",
            b"bee",
            &["primary".into(), "secondary".into()],
        )
        .await;
    assert_eq!(report.written, ["primary"]);
    assert_eq!(
        stores[0]
            .get("v1/f/snapshots/b.payload", 3)
            .await
            .expect("get"),
        None,
        "nothing reached the read-only location"
    );
    let read = replicas
        .read("v1/f/snapshots/a.payload", 3, None, |_| Ok(()))
        .await
        .expect("read");
    assert_eq!(read.location, "secondary", "only the secondary holds it");
}
