//! The official Key Vault keys client wraps and unwraps data keys against the
//! emulator, through Key Vault's 401 challenge, with role checks.

use adfdr_tests::{client_options_for, secret_credential, start_emulator};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, EncryptionAlgorithm, KeyOperationParameters, KeyType,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use serde_json::json;

fn client(emu: &adf_emulator::Emulator, app: &str) -> KeyClient {
    let options = KeyClientOptions {
        client_options: client_options_for(emu),
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    KeyClient::new(
        &format!("{}/", emu.urls().vault),
        secret_credential(emu, app, "test-secret"),
        Some(options),
    )
    .expect("key client")
}

#[tokio::test]
async fn data_keys_round_trip_through_rsa_oaep_256() {
    let emu = start_emulator(|_| {}).await;
    let kv = client(&emu, "kv-app");
    let params = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(2048),
        ..Default::default()
    };
    let key = kv
        .create_key("adfdr-kek", params.try_into().expect("body"), None)
        .await
        .expect("create")
        .into_model()
        .expect("model");
    let kid = key.key.and_then(|k| k.kid).expect("kid");
    let version = kid.rsplit('/').next().expect("version").to_string();
    let dek = vec![42u8; 32];
    let wrap = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(dek.clone()),
        ..Default::default()
    };
    let wrapped = kv
        .wrap_key("adfdr-kek", wrap.try_into().expect("body"), None)
        .await
        .expect("wrap")
        .into_model()
        .expect("model");
    let ciphertext = wrapped.result.expect("ciphertext");
    assert_ne!(ciphertext, dek);
    let unwrap = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(ciphertext),
        ..Default::default()
    };
    let plain = kv
        .unwrap_key(
            "adfdr-kek",
            &version,
            unwrap.try_into().expect("body"),
            None,
        )
        .await
        .expect("unwrap")
        .into_model()
        .expect("model");
    assert_eq!(plain.result, Some(dek));
}

#[tokio::test]
async fn a_principal_without_a_crypto_role_is_refused() {
    let emu = start_emulator(|_| {}).await;
    let admin = |path: &'static str, body| adfdr_tests::admin(&emu, path, body);
    let officer = admin(
        "apps",
        json!({"client_id": "kv-officer", "secret": "test-secret"}),
    )
    .await;
    admin(
        "apps",
        json!({"client_id": "kv-nobody", "secret": "test-secret"}),
    )
    .await;
    admin("role-assignments", json!({"principal_id": officer["object_id"], "role": "Key Vault Crypto Officer", "scope": "/keyvault"})).await;
    let params = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(2048),
        ..Default::default()
    };
    client(&emu, "kv-officer")
        .create_key("k", params.try_into().expect("body"), None)
        .await
        .expect("officer creates");
    let wrap = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(vec![1; 32]),
        ..Default::default()
    };
    let err = client(&emu, "kv-nobody")
        .wrap_key("k", wrap.try_into().expect("body"), None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403), "{err}");
}
