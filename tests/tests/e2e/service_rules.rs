//! The Data Factory rules the emulator enforces, driven through adfdr-core's ARM
//! client (azure_core pipeline, azure_identity client-secret credential).

use adfdr_tests::{arm_client, factory_path, raw_client, start_emulator};
use serde_json::{Value, json};

const SUB: &str = "11111111-1111-1111-1111-111111111111";

fn pipeline(wait: &str, child: Option<&str>) -> Value {
    let mut activities = vec![
        json!({"name": "Wait", "type": "Wait", "typeProperties": {"waitTimeInSeconds": wait}}),
    ];
    if let Some(child) = child {
        activities.push(json!({"name": "Run child", "type": "ExecutePipeline",
            "typeProperties": {"pipeline": {"referenceName": child, "type": "PipelineReference"}, "waitOnCompletion": true}}));
    }
    json!({"properties": {"activities": activities, "annotations": []}})
}

#[tokio::test]
async fn factory_create_requires_location_and_keeps_unknown_properties() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-rules");
    let err = arm.put(&f, &json!({"properties": {}})).await.unwrap_err();
    assert_eq!(err.code(), Some("LocationRequired"), "{err}");
    let created = arm
        .put(
            &f,
            &json!({"location": "westeurope", "identity": {"type": "SystemAssigned"},
            "properties": {"globalConfigurations": {"PipelineBillingEnabled": "true"},
                           "globalParameters": {"env": {"type": "string", "value": "prod"}}}}),
        )
        .await
        .expect("create factory");
    assert!(
        created["eTag"]
            .as_str()
            .is_some_and(|e| e.starts_with('"') && e.ends_with('"')),
        "factory eTag is quoted: {created}"
    );
    let principal = created["identity"]["principalId"]
        .as_str()
        .expect("system identity gets a principal")
        .to_string();
    assert_eq!(created["identity"]["tenantId"], emu.tenant_id());
    let got = arm.get(&f).await.expect("get factory");
    assert_eq!(
        got["properties"]["globalConfigurations"]["PipelineBillingEnabled"],
        "true"
    );
    assert_eq!(
        got["properties"]["globalParameters"]["env"]["type"], "String",
        "types are capitalised as the service answers"
    );
    assert_eq!(got["identity"]["principalId"], principal.as_str());
    let moved = arm
        .put(&f, &json!({"location": "eastus"}))
        .await
        .unwrap_err();
    assert_eq!(moved.status(), Some(409));
    let gp = arm
        .get(&format!("{f}/globalParameters/default"))
        .await
        .expect("global parameters child");
    assert_eq!(gp["properties"]["env"]["value"], "prod");
    let listed = arm
        .list(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.DataFactory/factories"
        ))
        .await
        .expect("list by subscription");
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn references_are_validated_on_put_and_protect_on_delete() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-refs");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    let err = arm
        .put(
            &format!("{f}/pipelines/parent"),
            &pipeline("1", Some("Child_Pipeline")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string()
            .contains("invalid reference 'child_pipeline'"),
        "{err}"
    );
    arm.put(
        &format!("{f}/pipelines/Child_Pipeline"),
        &pipeline("1", None),
    )
    .await
    .expect("child first");
    arm.put(
        &format!("{f}/pipelines/parent"),
        &pipeline("1", Some("child_pipeline")),
    )
    .await
    .expect("then parent (names are case-insensitive)");
    let err = arm
        .delete(&format!("{f}/pipelines/CHILD_PIPELINE"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot be deleted since it is referenced by parent"),
        "{err}"
    );
    assert!(
        arm.delete(&format!("{f}/pipelines/parent"))
            .await
            .expect("delete parent")
    );
    assert!(
        arm.delete(&format!("{f}/pipelines/child_pipeline"))
            .await
            .expect("then child")
    );
    assert!(
        !arm.delete(&format!("{f}/pipelines/child_pipeline"))
            .await
            .expect("absent: 204")
    );
}

#[tokio::test]
async fn started_triggers_cannot_change_and_runtime_state_is_read_only() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-triggers");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    arm.put(&format!("{f}/pipelines/pl"), &pipeline("1", None))
        .await
        .expect("pipeline");
    let trigger = json!({"properties": {"type": "ScheduleTrigger", "runtimeState": "Started",
        "typeProperties": {"recurrence": {"frequency": "Hour", "interval": 1, "startTime": "2026-01-01T00:00:00Z"}},
        "pipelines": [{"pipelineReference": {"referenceName": "pl", "type": "PipelineReference"}}]}});
    let put = arm
        .put(&format!("{f}/triggers/tr"), &trigger)
        .await
        .expect("trigger");
    assert_eq!(
        put["properties"]["runtimeState"], "Stopped",
        "runtimeState in a PUT body is ignored"
    );
    arm.post(&format!("{f}/triggers/tr/start"), &json!({}))
        .await
        .expect("start");
    assert_eq!(
        arm.get(&format!("{f}/triggers/tr")).await.expect("get")["properties"]["runtimeState"],
        "Started"
    );
    let err = arm
        .put(&format!("{f}/triggers/tr"), &trigger)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("TriggerEnabledCannotUpdate"), "{err}");
    let err = arm.delete(&format!("{f}/triggers/tr")).await.unwrap_err();
    assert_eq!(err.code(), Some("TriggerEnabledCannotUpdate"), "{err}");
    let err = arm.delete(&format!("{f}/pipelines/pl")).await.unwrap_err();
    assert!(err.to_string().contains("referenced by tr"), "{err}");
    arm.post(&format!("{f}/triggers/tr/stop"), &json!({}))
        .await
        .expect("stop");
    arm.put(&format!("{f}/triggers/tr"), &trigger)
        .await
        .expect("update once stopped");
    assert!(
        arm.delete(&format!("{f}/triggers/tr"))
            .await
            .expect("delete once stopped")
    );
}

#[tokio::test]
async fn etags_secrets_paging_and_read_only_fields() {
    let emu = start_emulator(|c| c.settings.page_size = 2).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-etags");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    let ls = json!({"properties": {"type": "AzureSqlDatabase", "typeProperties": {
        "connectionString": {"type": "SecureString", "value": "Server=x;Password=hunter2"}}}, "etag": "ignored", "id": "ignored"});
    let put = arm
        .put(&format!("{f}/linkedservices/LS_Sql"), &ls)
        .await
        .expect("linked service");
    assert_eq!(
        put["properties"]["typeProperties"]["connectionString"]["value"],
        "**********"
    );
    assert!(
        !put.to_string().contains("hunter2"),
        "secrets never come back"
    );
    let etag = put["etag"].as_str().expect("etag").to_string();
    assert_ne!(etag, "ignored");
    // The stored secret is real (only the answer is masked).
    let stored = emu.with_world(|w| {
        w.factories.values().next().map(|f| {
            f.children
                .values()
                .flat_map(|m| m.values())
                .map(|c| c.body.to_string())
                .collect::<String>()
        })
    });
    assert!(stored.is_some_and(|s| s.contains("hunter2")));
    let client = raw_client();
    let token = emu.mint_token("https://management.azure.com/", "tester", 600);
    let url = format!(
        "{}{f}/linkedservices/LS_Sql?api-version=2018-06-01",
        emu.urls().arm
    );
    let not_modified = client
        .get(&url)
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(not_modified.status(), 304);
    let stale = client
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", "00000000-0000")
        .json(&ls)
        .send()
        .await
        .expect("send");
    assert_eq!(stale.status(), 412);
    let fresh = client
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&ls)
        .send()
        .await
        .expect("send");
    assert_eq!(fresh.status(), 200);
    for i in 0..5 {
        arm.put(&format!("{f}/pipelines/p{i}"), &pipeline("1", None))
            .await
            .expect("pipeline");
    }
    let first = client
        .get(format!(
            "{}{f}/pipelines?api-version=2018-06-01",
            emu.urls().arm
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    let page: Value = first.json().await.expect("json");
    assert_eq!(page["value"].as_array().map(Vec::len), Some(2));
    assert!(
        page["nextLink"].as_str().is_some(),
        "a full page carries nextLink"
    );
    let all = arm
        .list(&format!("{f}/pipelines"))
        .await
        .expect("list all pages");
    let names: Vec<&str> = all.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
}

#[tokio::test]
async fn pipeline_runs_succeed_or_fail_as_told() {
    let emu = start_emulator(|c| c.settings.run_duration_ms = 200).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-runs");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    arm.put(&format!("{f}/pipelines/smoke"), &pipeline("1", None))
        .await
        .expect("pipeline");
    arm.put(&format!("{f}/pipelines/broken"), &pipeline("1", None))
        .await
        .expect("pipeline");
    adfdr_tests::admin(
        &emu,
        "pipeline-failures",
        json!({"factory": format!("{SUB}/rg/adf-runs"), "pipeline": "broken"}),
    )
    .await;
    let ok = arm
        .post(&format!("{f}/pipelines/smoke/createRun"), &json!({}))
        .await
        .expect("run")["runId"]
        .as_str()
        .map(str::to_string)
        .expect("runId");
    let bad = arm
        .post(&format!("{f}/pipelines/broken/createRun"), &json!({}))
        .await
        .expect("run")["runId"]
        .as_str()
        .map(str::to_string)
        .expect("runId");
    assert_eq!(
        arm.get(&format!("{f}/pipelineruns/{ok}"))
            .await
            .expect("run")["status"],
        "InProgress"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        arm.get(&format!("{f}/pipelineruns/{ok}"))
            .await
            .expect("run")["status"],
        "Succeeded"
    );
    let failed = arm
        .get(&format!("{f}/pipelineruns/{bad}"))
        .await
        .expect("run");
    assert_eq!(failed["status"], "Failed");
    assert!(failed["message"].as_str().is_some_and(|m| !m.is_empty()));
    let query = arm
        .post(&format!("{f}/queryPipelineRuns"), &json!({"lastUpdatedAfter": "2020-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z",
            "filters": [{"operand": "PipelineName", "operator": "Equals", "values": ["smoke"]}]}))
        .await
        .expect("query");
    assert_eq!(query["value"].as_array().map(Vec::len), Some(1));
    let err = arm
        .post(&format!("{f}/pipelines/nope/createRun"), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn tokens_are_checked_as_arm_checks_them() {
    let emu = start_emulator(|_| {}).await;
    let client = raw_client();
    let url = format!(
        "{}{}?api-version=2018-06-01",
        emu.urls().arm,
        factory_path(SUB, "rg", "adf-auth")
    );
    let cases = [
        (None, "AuthenticationFailed"),
        (
            Some(emu.mint_token("https://management.azure.com/", "p", -30)),
            "ExpiredAuthenticationToken",
        ),
        (
            Some(emu.mint_token("https://storage.azure.com/", "p", 600)),
            "InvalidAuthenticationTokenAudience",
        ),
        (
            Some("not.a.token".to_string()),
            "InvalidAuthenticationToken",
        ),
    ];
    for (token, code) in cases {
        let mut req = client.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), 401, "{code}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], code);
    }
}

#[tokio::test]
async fn a_reader_can_read_but_not_write() {
    let emu = start_emulator(|_| {}).await;
    let admin = |path: &'static str, body| adfdr_tests::admin(&emu, path, body);
    let owner = admin(
        "apps",
        json!({"client_id": "owner-app", "secret": "test-secret"}),
    )
    .await;
    let reader = admin(
        "apps",
        json!({"client_id": "reader-app", "secret": "test-secret"}),
    )
    .await;
    admin("role-assignments", json!({"principal_id": owner["object_id"], "role": "Data Factory Contributor", "scope": "/"})).await;
    admin("role-assignments", json!({"principal_id": reader["object_id"], "role": "Reader", "scope": format!("/subscriptions/{SUB}")})).await;
    let f = factory_path(SUB, "rg", "adf-rbac");
    arm_client(&emu, "owner-app")
        .put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("owner writes");
    let reader_arm = arm_client(&emu, "reader-app");
    reader_arm.get(&f).await.expect("reader reads");
    let err = reader_arm
        .put(&format!("{f}/pipelines/p"), &pipeline("1", None))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("AuthorizationFailed"));
    assert!(
        err.to_string()
            .contains("Microsoft.DataFactory/factories/pipelines/write"),
        "{err}"
    );
    let unknown = adfdr_tests::secret_credential(&emu, "stranger", "x");
    let token = unknown
        .get_token(&["https://management.azure.com/.default"], None)
        .await;
    assert!(
        token.is_err(),
        "unregistered apps get no token once apps are registered"
    );
    let wrong = adfdr_tests::secret_credential(&emu, "owner-app", "wrong-secret");
    let err = wrong
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
}

#[tokio::test]
async fn managed_identity_endpoint_speaks_the_app_service_protocol() {
    let emu = start_emulator(|c| c.identity_header = "header-secret".into()).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com",
        emu.urls().managed_identity
    );
    let refused = client.get(&url).send().await.expect("send");
    assert_eq!(refused.status(), 401, "the identity header is required");
    let ok: Value = client
        .get(&url)
        .header("X-IDENTITY-HEADER", "header-secret")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        ok["expires_on"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok()),
        "expires_on is a string of epoch seconds: {ok}"
    );
    let token = ok["access_token"].as_str().expect("token");
    let resp = raw_client()
        .get(format!("{}/subscriptions/{SUB}/providers/Microsoft.DataFactory/factories?api-version=2018-06-01", emu.urls().arm))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        200,
        "a managed identity token works against ARM"
    );
}

#[tokio::test]
async fn workload_identity_federated_tokens_are_exchanged() {
    use azure_identity::{
        ClientAssertionCredentialOptions, WorkloadIdentityCredential,
        WorkloadIdentityCredentialOptions,
    };
    let emu = start_emulator(|_| {}).await;
    adfdr_tests::admin(&emu, "apps", json!({"client_id": "aks-workload"})).await;
    let dir = std::env::temp_dir().join(format!("adfdr-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("token");
    // What the AKS webhook projects: a JWT from the cluster's issuer.
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWRmZHI6YWdlbnQifQ.c2ln",
    )
    .expect("write");
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: adfdr_tests::client_options_for(&emu),
        },
        client_id: Some("aks-workload".into()),
        tenant_id: Some(emu.tenant_id().into()),
        token_file_path: Some(token_file),
    };
    let credential = WorkloadIdentityCredential::new(Some(options)).expect("credential");
    let client = adfdr_core::factory::arm::ArmClient::new(
        azure_core::http::Url::parse(&emu.urls().arm).expect("url"),
        credential,
        adfdr_tests::client_options_for(&emu),
    );
    let arm: &dyn adfdr_core::factory::FactoryApi = &client;
    let listed = arm
        .list(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.DataFactory/factories"
        ))
        .await
        .expect("workload identity reaches ARM");
    assert!(listed.is_empty());
    let secret_attempt = adfdr_tests::secret_credential(&emu, "aks-workload", "guess");
    assert!(
        secret_attempt
            .get_token(&["https://management.azure.com/.default"], None)
            .await
            .is_err(),
        "a federated-only app has no secret"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn scripted_mutations_corrupt_what_is_stored_or_read() {
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "app-rules");
    let f = factory_path(SUB, "rg", "adf-mutations");
    arm.put(&f, &json!({"location": "westeurope"}))
        .await
        .expect("factory");
    adfdr_tests::admin(&emu, "mutations", json!({"on": "put", "kind": "pipelines", "name": "pl_*", "pointer": "/properties/description", "count": 1})).await;
    adfdr_tests::admin(&emu, "mutations", json!({"on": "get", "kind": "pipelines", "name": "other", "pointer": "/properties/annotations", "set": ["tampered"]})).await;
    let mut body = pipeline("1", None);
    body["properties"]["description"] = "keep me".into();
    arm.put(&format!("{f}/pipelines/pl_main"), &body)
        .await
        .expect("put");
    let stored = arm
        .get(&format!("{f}/pipelines/pl_main"))
        .await
        .expect("get");
    assert!(
        stored["properties"].get("description").is_none(),
        "the description was dropped on PUT"
    );
    arm.put(&format!("{f}/pipelines/pl_second"), &body)
        .await
        .expect("put");
    assert_eq!(
        arm.get(&format!("{f}/pipelines/pl_second"))
            .await
            .expect("get")["properties"]["description"],
        "keep me",
        "count 1: only once"
    );
    arm.put(&format!("{f}/pipelines/other"), &body)
        .await
        .expect("put");
    assert_eq!(
        arm.get(&format!("{f}/pipelines/other")).await.expect("get")["properties"]["annotations"],
        json!(["tampered"])
    );
    let listed = arm.list(&format!("{f}/pipelines")).await.expect("list");
    assert!(
        listed
            .iter()
            .any(|p| p["properties"]["annotations"] == json!(["tampered"])),
        "lists are mutated too"
    );
}
