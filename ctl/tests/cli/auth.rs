//! Every `[auth] method` of the config contract, through the real binary:
//! managed identity is the rig's default (every other test); here the Azure
//! CLI login, workload identity and a client secret from a file.

use std::os::unix::fs::PermissionsExt;

use adfdr_tests::admin;
use serde_json::json;

use crate::common::*;

fn with_auth(config: &str, auth: &str) -> String {
    config.replace("method = \"managed-identity\"\n", auth)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_azure_cli_login_backs_up() {
    let rig = Rig::start("azcli", &[("sales", "adf-sales", &sample_factory())]).await;
    let bin = rig.fake_az();
    rig.write_config(&with_auth(
        &rig.config_text(None),
        "method = \"azure-cli\"\n",
    ));
    let out = rig
        .command()
        .env("PATH", path_with(&bin))
        .args(["backup"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let calls = std::fs::read_to_string(bin.join("calls")).expect("az was called");
    assert!(
        calls.contains("https://management.azure.com")
            && calls.contains("https://storage.azure.com"),
        "{calls}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_and_client_secret_back_up() {
    let rig = Rig::start("wi", &[("sales", "adf-sales", &sample_factory())]).await;
    admin(&rig.emu, "apps", json!({"client_id": "aks-workload"})).await;
    admin(
        &rig.emu,
        "apps",
        json!({"client_id": "adfdr-app", "secret": "app-s3cret"}),
    )
    .await;
    admin(
        &rig.emu,
        "apps",
        json!({"client_id": "platform-admin", "secret": "s3cret"}),
    )
    .await;
    let token_file = rig.dir.join("federated-token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWRmZHI6YWdlbnQifQ.c2ln",
    )
    .expect("token");
    let common = format!(
        "tenant_id = \"{}\"\nauthority_host = \"{}\"\n",
        rig.emu.tenant_id(),
        rig.emu.urls().authority
    );

    rig.write_config(&with_auth(
        &rig.config_text(None),
        &format!("method = \"workload-identity\"\nclient_id = \"aks-workload\"\ntoken_file = \"{}\"\n{common}", token_file.display()),
    ));
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "workload identity: {}", text(&out));

    let secret = rig.dir.join("client-secret");
    std::fs::write(&secret, "app-s3cret\n").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    rig.write_config(&with_auth(
        &rig.config_text(None),
        &format!("method = \"client-secret\"\nclient_id = \"adfdr-app\"\nclient_secret_file = \"{}\"\n{common}", secret.display()),
    ));
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 0, "client secret: {}", text(&out));

    // A wrong secret: the error says who could not sign in, never the secret.
    std::fs::write(&secret, "not-the-secret").expect("secret");
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("not-the-secret"), "{err}");
    assert!(
        err.contains("signing in as app adfdr-app") && err.contains("Invalid client secret"),
        "{err}"
    );
    // Missing keys for the method are config errors.
    rig.write_config(&with_auth(
        &rig.config_text(None),
        "method = \"client-secret\"\nclient_id = \"adfdr-app\"\n",
    ));
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("auth.tenant_id is required"),
        "{}",
        text(&out)
    );
}
