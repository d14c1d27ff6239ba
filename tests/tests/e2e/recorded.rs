//! The emulator holds the rules of the real service, each checked against
//! its source: Azure PowerShell's recordings of the service
//! (Azure/azure-powershell, src/DataFactory/DataFactoryV2.Test/SessionRecords/),
//! the REST spec (azure-rest-api-specs, 2018-06-01) and Microsoft's docs.
//! Where the emulator and these disagree, the emulator is wrong.

use std::time::{Duration, Instant};

use adfdr_core::factory::FactoryApi;
use adfdr_tests::{admin, arm_client, factory_path, start_emulator};
use azure_core::http::Method;
use serde_json::{Value, json};

const SUB: &str = "11111111-1111-1111-1111-111111111111";

fn pipeline() -> Value {
    json!({"properties": {"activities": [
        {"name": "Wait", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}})
}

async fn factory(arm: &dyn FactoryApi, f: &str) {
    arm.put(f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
}

/// TriggerTests/TestBlobEventTriggerSubscriptions.json: subscribeToEvents and
/// unsubscribeFromEvents answer 200 at once with `{"triggerName", "status"}`;
/// start and stop answer 200 with no body and change the trigger's etag.
#[tokio::test]
async fn event_subscriptions_answer_at_once_and_start_stop_change_the_etag() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let f = factory_path(SUB, "rg", "adf-recorded-events");
    factory(arm, &f).await;
    arm.put(&format!("{f}/pipelines/pl"), &pipeline())
        .await
        .expect("pipeline");
    let trigger = json!({"properties": {"type": "BlobEventsTrigger",
        "typeProperties": {"blobPathBeginsWith": "/in/blobs/", "events": ["Microsoft.Storage.BlobCreated"],
            "scope": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a"},
        "pipelines": [{"pipelineReference": {"referenceName": "pl", "type": "PipelineReference"}}]}});
    let put = arm
        .put(&format!("{f}/triggers/foo"), &trigger)
        .await
        .expect("trigger");
    let etag = |v: &Value| v["etag"].as_str().expect("etag").to_string();
    let created = etag(&put);

    let answer = arm
        .request(
            Method::Post,
            &format!("{f}/triggers/foo/subscribeToEvents"),
            None,
        )
        .await
        .expect("subscribe");
    assert_eq!(answer.status, 200);
    let body: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(body, json!({"triggerName": "foo", "status": "Enabled"}));

    let started = arm
        .request(Method::Post, &format!("{f}/triggers/foo/start"), None)
        .await
        .expect("start");
    assert_eq!((started.status, started.body.len()), (200, 0));
    let after_start = arm.get(&format!("{f}/triggers/foo")).await.expect("get");
    assert_eq!(after_start["properties"]["runtimeState"], "Started");
    assert_ne!(etag(&after_start), created, "start changes the etag");

    arm.post(&format!("{f}/triggers/foo/stop"), &json!({}))
        .await
        .expect("stop");
    let after_stop = arm.get(&format!("{f}/triggers/foo")).await.expect("get");
    assert_eq!(after_stop["properties"]["runtimeState"], "Stopped");
    assert_ne!(
        etag(&after_stop),
        etag(&after_start),
        "stop changes the etag"
    );

    let answer = arm
        .request(
            Method::Post,
            &format!("{f}/triggers/foo/unsubscribeFromEvents"),
            None,
        )
        .await
        .expect("unsubscribe");
    assert_eq!(answer.status, 200);
    let body: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(body, json!({"triggerName": "foo", "status": "Disabled"}));
}

/// IntegrationRuntimeTests/TestSsisAzureIntegrationRuntime.json: start is
/// a long-running operation: 202, no body, Location (…/start/operationresults/
/// {id}), Azure-AsyncOperation (…/start/operationstatuses/{id}), Retry-After;
/// the status says InProgress (the IR `Starting`) until it says Succeeded
/// with the IR's status, and operationresults then answers that status.
#[tokio::test]
async fn integration_runtime_start_is_a_long_running_operation() {
    // One thousandth of the service's pace: the ~22 minute start takes ~1.3 s.
    let emu = start_emulator(|c| c.settings.time_scale = 0.001).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let f = factory_path(SUB, "rg", "adf-recorded-ssis");
    factory(arm, &f).await;
    let ssis = json!({"properties": {"type": "Managed", "typeProperties": {
        "computeProperties": {"location": "West Europe", "nodeSize": "Standard_D2_v3", "numberOfNodes": 1},
        "ssisProperties": {"edition": "Standard", "licenseType": "LicenseIncluded"}}}});
    let put = arm
        .put(&format!("{f}/integrationRuntimes/ssis"), &ssis)
        .await
        .expect("ir");
    assert_eq!(put["properties"]["state"], "Initial");

    let begun = Instant::now();
    let answer = arm
        .request(
            Method::Post,
            &format!("{f}/integrationRuntimes/ssis/start"),
            None,
        )
        .await
        .expect("start");
    assert_eq!((answer.status, answer.body.len()), (202, 0));
    let status_url = answer
        .async_operation
        .clone()
        .expect("Azure-AsyncOperation");
    let location = answer.location.clone().expect("Location");
    assert!(
        status_url.contains("/integrationRuntimes/ssis/start/operationstatuses/"),
        "{status_url}"
    );
    assert!(
        location.contains("/integrationRuntimes/ssis/start/operationresults/"),
        "{location}"
    );
    assert!(answer.retry_after.is_some(), "Retry-After is sent");

    let ir = arm
        .get(&format!("{f}/integrationRuntimes/ssis"))
        .await
        .expect("get");
    assert_eq!(ir["properties"]["state"], "Starting");
    let status = arm.get(&status_url).await.expect("status");
    assert_eq!(status["status"], "InProgress", "{status}");
    assert_eq!(status["properties"], Value::Null);
    let pending = arm
        .request(Method::Get, &location, None)
        .await
        .expect("results");
    assert_eq!(
        pending.status, 202,
        "operationresults answers 202 until done"
    );

    let done = loop {
        let status = arm.get(&status_url).await.expect("status");
        if status["status"] != "InProgress" {
            break status;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the start settles"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert_eq!(
        done["properties"]["properties"]["state"], "Started",
        "{done}"
    );
    assert!(
        begun.elapsed() >= Duration::from_millis(1000),
        "an SSIS start takes its (scaled) time: {:?}",
        begun.elapsed()
    );
    let result = arm.get(&location).await.expect("result");
    assert_eq!(result["properties"]["state"], "Started");
    let ir = arm
        .get(&format!("{f}/integrationRuntimes/ssis"))
        .await
        .expect("get");
    assert_eq!(ir["properties"]["state"], "Started");

    // adfdr follows it the same way, to the end.
    let stopped = arm
        .send_following(
            Method::Post,
            &format!("{f}/integrationRuntimes/ssis/stop"),
            None,
            "stop of integrationRuntime:ssis",
            Duration::from_secs(30),
        )
        .await
        .expect("stop followed");
    assert_eq!(stopped["properties"]["state"], "Stopped", "{stopped}");
}

/// Microsoft's incremental-copy tutorial (PowerShell) quotes the service:
/// `HTTP Status Code: Conflict`, `Error Code: DataFactoryNameInUse`, "The
/// specified resource name '…' is already in use. Resource names must be
/// globally unique."
#[tokio::test]
async fn factory_names_are_unique_across_subscriptions() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    factory(arm, &factory_path(SUB, "rg", "adf-global")).await;
    let other = factory_path(
        "22222222-2222-2222-2222-222222222222",
        "rg-dr",
        "ADF-Global",
    );
    let err = arm
        .put(&other, &json!({"location": "northeurope"}))
        .await
        .expect_err("taken");
    assert_eq!(err.status(), Some(409), "{err}");
    assert_eq!(err.code(), Some("DataFactoryNameInUse"), "{err}");
    assert!(
        err.to_string().contains(
            "The specified resource name 'adf-global' is already in use. Resource names must be globally unique."
        ),
        "{err}"
    );
    // Updating the factory that has the name is not a conflict.
    factory(arm, &factory_path(SUB, "rg", "adf-global")).await;
}

/// The spec: managed virtual networks have GET and PUT but no DELETE, and
/// their read-only `vNetId` and `alias` are always served; an old git
/// export's `managedVirtualNetwork/default.json` has no `properties`.
#[tokio::test]
async fn managed_vnets_always_have_properties_and_no_delete() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let dir = std::env::temp_dir().join(format!("adfdr-old-export-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("managedVirtualNetwork")).expect("mkdir");
    std::fs::write(
        dir.join("managedVirtualNetwork/default.json"),
        r#"{"name": "default", "type": "Microsoft.DataFactory/factories/managedvirtualnetworks"}"#,
    )
    .expect("write");
    admin(
        &emu,
        "seed",
        json!({"target": format!("{SUB}/rg/adf-old-export"), "dir": dir}),
    )
    .await;
    std::fs::remove_dir_all(&dir).expect("clean up");
    let f = factory_path(SUB, "rg", "adf-old-export");
    let vnet = arm
        .get(&format!("{f}/managedVirtualNetworks/default"))
        .await
        .expect("get");
    assert!(vnet["properties"]["vNetId"].is_string(), "{vnet}");
    assert_eq!(vnet["properties"]["alias"], "adf-old-export", "{vnet}");

    let err = arm
        .put(
            &format!("{f}/managedVirtualNetworks/other"),
            &json!({"name": "other"}),
        )
        .await
        .expect_err("a PUT without properties is refused");
    assert_eq!(err.status(), Some(400), "{err}");
    arm.put(
        &format!("{f}/managedVirtualNetworks/other"),
        &json!({"properties": {}}),
    )
    .await
    .expect("with properties: {}");

    let err = arm
        .delete(&format!("{f}/managedVirtualNetworks/default"))
        .await
        .expect_err("no DELETE");
    assert_eq!(err.status(), Some(405), "{err}");
}

/// Errors in the service's words: an invalid reference names the resource
/// in `target`; TriggerEnabledCannotUpdate says "Cannot update enabled
/// Trigger; the trigger needs to be disabled first." (adf-api.md B.1).
#[tokio::test]
async fn errors_carry_the_services_text_and_target() {
    let emu = start_emulator(|_| {}).await;
    let f = factory_path(SUB, "rg", "adf-recorded-errors");
    let arm = arm_client(&emu, "app-recorded");
    factory(arm.as_ref(), &f).await;
    let http = adfdr_tests::raw_client();
    let token = adfdr_tests::admin(&emu, "token", json!({})).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let url = |p: &str| format!("{}{p}?api-version=2018-06-01", emu.urls().arm);
    let answer: Value = http
        .put(url(&format!("{f}/datasets/ds")))
        .bearer_auth(&token)
        .json(&json!({"properties": {"type": "Json",
            "linkedServiceName": {"referenceName": "Missing", "type": "LinkedServiceReference"}}}))
        .send()
        .await
        .expect("put")
        .json()
        .await
        .expect("json");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid reference 'missing'")),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["target"],
        format!("{f}/datasets/ds"),
        "{answer}"
    );

    arm.put(&format!("{f}/pipelines/pl"), &pipeline())
        .await
        .expect("pipeline");
    let trigger = json!({"properties": {"type": "ScheduleTrigger",
        "typeProperties": {"recurrence": {"frequency": "Hour", "interval": 1}},
        "pipelines": [{"pipelineReference": {"referenceName": "pl", "type": "PipelineReference"}}]}});
    arm.put(&format!("{f}/triggers/tr"), &trigger)
        .await
        .expect("trigger");
    arm.post(&format!("{f}/triggers/tr/start"), &json!({}))
        .await
        .expect("start");
    let answer: Value = http
        .put(url(&format!("{f}/triggers/tr")))
        .bearer_auth(&token)
        .json(&trigger)
        .send()
        .await
        .expect("put")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["error"]["code"], "TriggerEnabledCannotUpdate");
    assert_eq!(
        answer["error"]["message"],
        "Cannot update enabled Trigger; the trigger needs to be disabled first."
    );
    assert_eq!(answer["error"]["target"], format!("{f}/triggers/tr"));
}

/// ChangeDataCapture_Status.json: `GET …/adfcdcs/{name}/status` answers a
/// JSON string; start and stop (sync 200 in the spec) change it.
#[tokio::test]
async fn change_data_capture_status_follows_start_and_stop() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let f = factory_path(SUB, "rg", "adf-recorded-cdc");
    factory(arm, &f).await;
    arm.put(
        &format!("{f}/adfcdcs/cdc1"),
        &json!({"properties": {"sourceConnectionsInfo": [], "targetConnectionsInfo": [],
            "policy": {"mode": "Microbatch", "recurrence": {"frequency": "Minute", "interval": 15}}}}),
    )
    .await
    .expect("cdc");
    let url = format!("{f}/adfcdcs/cdc1/status");
    async fn status_of(arm: &dyn FactoryApi, url: &str) -> Value {
        arm.get(url).await.expect("status")
    }
    assert_eq!(status_of(arm, &url).await, json!("Stopped"));
    arm.post(&format!("{f}/adfcdcs/cdc1/start"), &json!({}))
        .await
        .expect("start");
    assert_eq!(status_of(arm, &url).await, json!("Running"));
    arm.post(&format!("{f}/adfcdcs/cdc1/stop"), &json!({}))
        .await
        .expect("stop");
    assert_eq!(status_of(arm, &url).await, json!("Stopped"));
}

/// DataFactoryTests/TestCreateDataFactoryV2WithUserAssignedIdentity.json:
/// a factory PUT names its user-assigned identities with `{}`; the service
/// answers each with its `clientId` and `principalId` (read-only), which
/// adfdr's canonical form drops so the definition hashes the same.
#[tokio::test]
async fn user_assigned_identities_come_back_with_their_ids() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let uami = "/subscriptions/1e42591f-1f0c-4c5a-b7f2-a268f6105ec5/resourcegroups/ADF/providers/Microsoft.ManagedIdentity/userAssignedIdentities/PacoTestUAMI2";
    let f = factory_path(SUB, "rg", "adf-recorded-uami");
    let put = arm
        .put(
            &f,
            &json!({"location": "West Europe",
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {uami: {}}}}),
        )
        .await
        .expect("factory");
    let ids = &put["identity"]["userAssignedIdentities"][uami];
    assert!(
        ids["clientId"].is_string() && ids["principalId"].is_string(),
        "{put}"
    );
    let canonical = adfdr_core::model::canonicalize(adfdr_core::model::ResourceKind::Factory, &put);
    assert_eq!(
        canonical["identity"]["userAssignedIdentities"][uami],
        json!({}),
        "{canonical}"
    );
}

/// An encryptedCredential names the credential store that issued it
/// (`{"CredentialId": "PS6554_e76a…"}` for factory ps6554, recorded in
/// TestBlobEventTriggerSubscriptions.json): a run in another factory that
/// uses it fails, as the service cannot decrypt it, so smoke pipelines catch
/// a restore that copied one over.
#[tokio::test]
async fn runs_fail_on_a_credential_issued_by_another_factory() {
    use base64::Engine;
    let emu = start_emulator(|c| c.settings.run_duration_ms = 50).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let f = factory_path(SUB, "rg", "adf-dr-copy");
    factory(arm, &f).await;
    let blob = |factory: &str| {
        base64::engine::general_purpose::STANDARD.encode(
            json!({"Version": "2017-11-30", "ProtectionMode": "Key", "SecretContentType": "Plaintext",
                "CredentialId": format!("{}_e76a3961-ee88-4e59-afd3-f988def992d0", factory.to_uppercase())})
            .to_string(),
        )
    };
    for (ls, issuer) in [("LS_Foreign", "adf-prod"), ("LS_Own", "adf-dr-copy")] {
        arm.put(
            &format!("{f}/linkedservices/{ls}"),
            &json!({"properties": {"type": "AzureStorage", "typeProperties": {
                "connectionString": "DefaultEndpointsProtocol=https;AccountName=a;", "encryptedCredential": blob(issuer)}}}),
        )
        .await
        .expect("ls");
        arm.put(
            &format!("{f}/datasets/DS_{ls}"),
            &json!({"properties": {"type": "AzureBlob", "linkedServiceName": {"referenceName": ls, "type": "LinkedServiceReference"}}}),
        )
        .await
        .expect("dataset");
        arm.put(
            &format!("{f}/pipelines/PL_{ls}"),
            &json!({"properties": {"activities": [{"name": "copy", "type": "Copy",
                "inputs": [{"referenceName": format!("DS_{ls}"), "type": "DatasetReference"}], "outputs": []}]}}),
        )
        .await
        .expect("pipeline");
    }
    let mut results = Vec::new();
    for pl in ["PL_LS_Foreign", "PL_LS_Own"] {
        let run = arm
            .post(&format!("{f}/pipelines/{pl}/createRun"), &json!({}))
            .await
            .expect("run");
        let id = run["runId"].as_str().expect("runId").to_string();
        let begun = Instant::now();
        let done = loop {
            let r = arm
                .get(&format!("{f}/pipelineruns/{id}"))
                .await
                .expect("run");
            if !matches!(r["status"].as_str(), Some("Queued" | "InProgress")) {
                break r;
            }
            assert!(begun.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        results.push(done);
    }
    assert_eq!(results[0]["status"], "Failed", "{}", results[0]);
    assert!(
        results[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("LS_Foreign") && m.contains("another data factory")),
        "{}",
        results[0]
    );
    assert_eq!(results[1]["status"], "Succeeded", "{}", results[1]);
}

/// Managed private endpoints provision asynchronously and wait for the
/// owner of the resource they reach (Microsoft's docs, "Azure Data Factory
/// managed virtual network": "a private endpoint connection is created in a
/// Pending state ... the private link resource owner approves"): a new
/// endpoint reads Provisioning, then Succeeded with its connection Pending,
/// and Approved only once the resource's owner (the admin call stands in for
/// it) approves. The REST example (ManagedPrivateEndpoints_Create.json)
/// shows the same properties: provisioningState and connectionState.status.
#[tokio::test]
async fn managed_private_endpoints_provision_then_wait_for_approval() {
    let emu = start_emulator(|c| c.settings.time_scale = 0.002).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let f = factory_path(SUB, "rg", "adf-mpe");
    factory(arm, &f).await;
    arm.put(
        &format!("{f}/managedVirtualNetworks/default"),
        &json!({"properties": {}}),
    )
    .await
    .expect("vnet");
    let mpe = format!("{f}/managedVirtualNetworks/default/managedPrivateEndpoints/mpe-lake");
    let lake = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/lake";
    let created = arm
        .put(
            &mpe,
            &json!({"properties": {"privateLinkResourceId": lake, "groupId": "dfs"}}),
        )
        .await
        .expect("mpe");
    assert_eq!(
        created["properties"]["provisioningState"], "Provisioning",
        "{created}"
    );
    let started = Instant::now();
    let provisioned = loop {
        let now = arm.get(&mpe).await.expect("get");
        if now["properties"]["provisioningState"] != "Provisioning" {
            break now;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(provisioned["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        provisioned["properties"]["connectionState"]["status"], "Pending",
        "nobody approved it yet: {provisioned}"
    );
    assert_eq!(provisioned["properties"]["privateLinkResourceId"], lake);
    let approved = admin(
        &emu,
        "private-endpoints/approve",
        json!({"factory": format!("{SUB}/rg/adf-mpe"), "vnet": "default", "name": "mpe-lake"}),
    )
    .await;
    assert_eq!(approved["status"], "Approved", "{approved}");
    let now = arm.get(&mpe).await.expect("get");
    assert_eq!(now["properties"]["connectionState"]["status"], "Approved");
}

/// Customer-managed keys (Microsoft's docs, "Encrypt Azure Data Factory with
/// customer-managed keys"): "A customer-managed key can only be configured
/// on an empty data factory. The data factory can't contain any resources
/// such as linked services, pipelines and data flows"; the user-assigned
/// identity it names must be associated with the factory; and it is not
/// enabled on a factory with a managed virtual network.
#[tokio::test]
async fn a_customer_managed_key_is_set_only_on_an_empty_factory_with_its_identity() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-recorded");
    let arm = arm.as_ref();
    let uami = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-identity/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-cmk";
    let encrypted = |identity: Value| {
        json!({"location": "westeurope", "identity": identity, "properties": {"encryption": {
            "vaultBaseUrl": "https://kv.vault.azure.net", "keyName": "adf",
            "identity": {"userAssignedIdentity": uami}}}})
    };
    let attached = json!({"type": "UserAssigned", "userAssignedIdentities": {uami: {}}});

    let f = factory_path(SUB, "rg", "adf-cmk-new");
    let err = arm
        .put(&f, &encrypted(json!({"type": "SystemAssigned"})))
        .await
        .expect_err("the key's identity is not attached");
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string().contains("not associated with the factory"),
        "{err}"
    );
    let made = arm
        .put(&f, &encrypted(attached.clone()))
        .await
        .expect("empty");
    assert_eq!(made["properties"]["encryption"]["keyName"], "adf", "{made}");
    // Resources after the key are fine, and the same key may be PUT again.
    arm.put(&format!("{f}/pipelines/PL"), &pipeline())
        .await
        .expect("pipeline");
    arm.put(&f, &encrypted(attached.clone()))
        .await
        .expect("the same key again");

    let busy = factory_path(SUB, "rg", "adf-cmk-busy");
    factory(arm, &busy).await;
    arm.put(&format!("{busy}/pipelines/PL"), &pipeline())
        .await
        .expect("pipeline");
    let err = arm
        .put(&busy, &encrypted(attached.clone()))
        .await
        .expect_err("not on a factory with resources");
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string()
            .contains("only be configured on an empty data factory"),
        "{err}"
    );

    let vnet = factory_path(SUB, "rg", "adf-cmk-vnet");
    factory(arm, &vnet).await;
    arm.put(
        &format!("{vnet}/managedVirtualNetworks/default"),
        &json!({"properties": {}}),
    )
    .await
    .expect("vnet");
    let err = arm
        .put(&vnet, &encrypted(attached))
        .await
        .expect_err("not with a managed VNet");
    assert!(err.to_string().contains("managed virtual network"), "{err}");
}
