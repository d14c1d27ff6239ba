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
