//! The services around a factory, as their REST examples describe them
//! (`ADFDR_SPEC_EXAMPLES`/surroundings, provenance in its SOURCES.md):
//! Microsoft.Storage account and blob service properties, 2025-08-01.

use adfdr_tests::{raw_client, spec_examples, start_emulator};
use serde_json::{Value, json};

use crate::conformance::shape_diff;

/// Documented properties the emulator does not model, and why.
const NOT_MODELED: &[(&str, &str)] = &[
    (
        "/properties/primaryEndpoints/microsoftEndpoints",
        "routing-preference endpoints",
    ),
    (
        "/properties/primaryEndpoints/internetEndpoints",
        "routing-preference endpoints",
    ),
    ("/properties/geoReplicationStats", "only with $expand"),
    ("/properties/accountMigrationInProgress", "migrations"),
    ("/properties/isSkuConversionBlocked", "migrations"),
    (
        "/properties/geoPriorityReplicationStatus",
        "preview feature",
    ),
];

/// Values the service makes up (times, endpoints of the example's account).
fn generated(diff: &str) -> bool {
    [
        "Time",
        "/primaryLocation",
        "/secondaryLocation",
        "/location",
        "/id:",
        "/tags",
    ]
    .iter()
    .any(|g| diff.contains(g))
}

#[tokio::test]
async fn storage_accounts_and_blob_services_answer_as_documented() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/storage");
    let emu = start_emulator(|_| {}).await;
    let client = raw_client();
    let token = emu.mint_token("https://management.azure.com/", "conformance", 3600);
    let base = emu.urls().arm.clone();
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        async move {
            let mut req = client
                .request(
                    method.parse().expect("method"),
                    format!("{base}{path}?api-version=2025-08-01"),
                )
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in [
        "StorageAccountCreate",
        "StorageAccountCreateWithImmutabilityPolicy",
        "StorageAccountGetProperties",
        "BlobServicesPut",
        "BlobServicesGet",
    ] {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.json"))).expect("example"),
        )
        .expect("json");
        let p = &doc["parameters"];
        let account = format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{}",
            p["resourceGroupName"].as_str().expect("rg"),
            p["accountName"].as_str().expect("account")
        );
        let documented = &doc["responses"]["200"]["body"];
        let (status, answer) = match name {
            "StorageAccountCreate" | "StorageAccountCreateWithImmutabilityPolicy" => {
                call("PUT", account.clone(), Some(p["parameters"].clone())).await
            }
            "StorageAccountGetProperties" => {
                // The account as documented, made first.
                let body = json!({"sku": documented["sku"], "kind": documented["kind"],
                    "location": documented["location"], "tags": documented["tags"],
                    "properties": documented["properties"]});
                let (made, answer) = call("PUT", account.clone(), Some(body)).await;
                assert_eq!(made, 200, "{answer}");
                call("GET", account.clone(), None).await
            }
            _ => {
                let body =
                    json!({"sku": documented["sku"], "kind": "StorageV2", "location": "eastus"});
                let (made, answer) = call("PUT", account.clone(), Some(body)).await;
                assert_eq!(made, 200, "{answer}");
                let blob = format!("{account}/blobServices/default");
                if name == "BlobServicesPut" {
                    call("PUT", blob, Some(p["parameters"].clone())).await
                } else {
                    let body = json!({"properties": documented["properties"]});
                    let (put, answer) = call("PUT", blob.clone(), Some(body)).await;
                    assert_eq!(put, 200, "{answer}");
                    call("GET", blob, None).await
                }
            }
        };
        checked += 1;
        if status != 200 {
            failures.push(format!(
                "{name}: documented 200, answered {status}: {answer}"
            ));
            continue;
        }
        let mut diffs = Vec::new();
        shape_diff(documented, &answer, "", "", &mut diffs);
        diffs.retain(|d| {
            if let Some((_, why)) = NOT_MODELED.iter().find(|(path, _)| d.starts_with(path)) {
                eprintln!("not modeled in {name}: {d} ({why})");
                return false;
            }
            !generated(d)
        });
        if !diffs.is_empty() {
            failures.push(format!("{name}:\n    {}", diffs.join("\n    ")));
        }
    }
    assert_eq!(checked, 5);
    assert!(
        failures.is_empty(),
        "storage examples the emulator does not answer as documented:\n{}",
        failures.join("\n")
    );
}

/// A client for one emulator: `(status, body)` of a call at an api-version.
struct Arm {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Arm {
    async fn new(emu: &adf_emulator::Emulator) -> Arm {
        Arm {
            client: raw_client(),
            base: emu.urls().arm.clone(),
            token: emu.mint_token("https://management.azure.com/", "surroundings", 3600),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        version: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                method.parse().expect("method"),
                format!(
                    "{}{path}{}api-version={version}",
                    self.base,
                    if path.contains('?') { '&' } else { '?' }
                ),
            )
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }
}

fn example(dir: &std::path::Path, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(file)).expect("example")).expect("json")
}

/// Shape and values as documented, ids and the example's own scope aside.
fn conforms(name: &str, documented: &Value, answer: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    shape_diff(documented, answer, "", "", &mut diffs);
    diffs.retain(|d| !d.contains("/id:") && !d.starts_with("/id") && !d.contains("/id: "));
    diffs.into_iter().map(|d| format!("{name}: {d}")).collect()
}

/// Diagnostic settings and management locks on a factory and its resource
/// group, as Microsoft.Insights (2021-05-01-preview) and
/// Microsoft.Authorization (2020-05-01) examples document them; and locks
/// enforced as ARM does: CanNotDelete refuses deletes, ReadOnly every
/// write, 409 ScopeLocked, for the scope and everything below it (Microsoft's
/// docs, "Lock your resources to protect your infrastructure").
#[tokio::test]
async fn diagnostic_settings_and_locks_answer_as_documented_and_locks_hold() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let rg = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-locks";
    let factory = format!("{rg}/providers/Microsoft.DataFactory/factories/adf-locks");
    let (made, _) = arm
        .call(
            "PUT",
            &factory,
            "2018-06-01",
            Some(&json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(made, 200);
    let mut failures = Vec::new();

    // The example's setting is a Logic App's: on a factory its workflow
    // metrics are the factory's AllMetrics (a factory refuses another
    // resource type's categories, as the service does).
    let create: Value = serde_json::from_str(
        &example(&dir, "insights/createOrUpdateDiagnosticSetting.json")
            .to_string()
            .replace("\"WorkflowMetrics\"", "\"AllMetrics\"")
            .replace("\"WorkflowRuntime\"", "\"PipelineRuns\""),
    )
    .expect("json");
    let diag = format!("{factory}/providers/Microsoft.Insights/diagnosticSettings/mysetting");
    let v = "2021-05-01-preview";
    let (status, answer) = arm
        .call("PUT", &diag, v, Some(&create["parameters"]["parameters"]))
        .await;
    assert_eq!(status, 200, "{answer}");
    failures.extend(conforms(
        "createOrUpdateDiagnosticSetting",
        &create["responses"]["200"]["body"],
        &answer,
    ));
    let (status, got) = arm.call("GET", &diag, v, None).await;
    assert_eq!(status, 200);
    let documented = example(&dir, "insights/getDiagnosticSetting.json");
    // The example's GET shows another setting's destinations: keys and types only.
    let mut keys = Vec::new();
    shape_diff(
        &json!({"name": "mysetting", "type": documented["responses"]["200"]["body"]["type"]}),
        &got,
        "",
        "",
        &mut keys,
    );
    failures.extend(keys);
    let (status, listed) = arm
        .call(
            "GET",
            &format!("{factory}/providers/Microsoft.Insights/diagnosticSettings"),
            v,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["value"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let (status, refused) = arm
        .call("PUT", &diag, v, Some(&json!({"properties": {"logs": []}})))
        .await;
    assert_eq!(status, 400, "a setting without a destination: {refused}");

    let lv = "2020-05-01";
    let rg_lock = example(
        &dir,
        "authorization/ManagementLocks_CreateOrUpdateAtResourceGroupLevel.json",
    );
    let at_rg = format!("{rg}/providers/Microsoft.Authorization/locks/testlock");
    let (status, answer) = arm
        .call(
            "PUT",
            &at_rg,
            lv,
            Some(&rg_lock["parameters"]["parameters"]),
        )
        .await;
    assert_eq!(status, 201, "created: {answer}");
    failures.extend(conforms(
        "ManagementLocks_CreateOrUpdateAtResourceGroupLevel",
        &rg_lock["responses"]["201"]["body"],
        &answer,
    ));
    let (status, again) = arm
        .call(
            "PUT",
            &at_rg,
            lv,
            Some(&rg_lock["parameters"]["parameters"]),
        )
        .await;
    assert_eq!(
        (status, &again["properties"]["level"]),
        (200, &json!("ReadOnly"))
    );
    // ReadOnly on the group: no write below it, reads go on.
    let pipeline = json!({"properties": {"activities": []}});
    let (status, e) = arm
        .call(
            "PUT",
            &format!("{factory}/pipelines/PL"),
            "2018-06-01",
            Some(&pipeline),
        )
        .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["code"], "ScopeLocked", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot perform write operation because following scope(s) are locked"),
        "{e}"
    );
    let (status, _) = arm.call("GET", &factory, "2018-06-01", None).await;
    assert_eq!(status, 200, "reads are not locked");
    // The lock applies to everything below the scope, the factory's
    // extension resources too (the docs: "the lock applies to that
    // resource and all its child resources").
    let (status, e) = arm
        .call("PUT", &diag, v, Some(&create["parameters"]["parameters"]))
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (409, &json!("ScopeLocked")),
        "{e}"
    );
    // A resource's lock list holds what its group passes down.
    let (status, inherited) = arm
        .call(
            "GET",
            &format!("{factory}/providers/Microsoft.Authorization/locks"),
            lv,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(inherited["value"][0]["name"], "testlock", "{inherited}");
    let (status, _) = arm.call("DELETE", &at_rg, lv, None).await;
    assert_eq!(status, 200, "removing the lock is how one unlocks");

    // CanNotDelete on the factory: writes go on, deletes do not.
    let on_factory = format!("{factory}/providers/Microsoft.Authorization/locks/keep");
    let (status, _) = arm
        .call(
            "PUT",
            &on_factory,
            lv,
            Some(&json!({"properties": {"level": "CanNotDelete", "notes": "production"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = arm
        .call(
            "PUT",
            &format!("{factory}/pipelines/PL"),
            "2018-06-01",
            Some(&pipeline),
        )
        .await;
    assert_eq!(status, 200);
    for path in [format!("{factory}/pipelines/PL"), factory.clone()] {
        let (status, e) = arm.call("DELETE", &path, "2018-06-01", None).await;
        assert_eq!(
            (status, &e["error"]["code"]),
            (409, &json!("ScopeLocked")),
            "{path}: {e}"
        );
    }
    let listed = example(
        &dir,
        "authorization/ManagementLocks_ListAtResourceLevel.json",
    );
    let (status, answer) = arm
        .call(
            "GET",
            &format!("{factory}/providers/Microsoft.Authorization/locks"),
            lv,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let documented_item = &listed["responses"]["200"]["body"]["value"][0];
    let mut keys = Vec::new();
    shape_diff(
        &json!({"type": documented_item["type"], "properties": {"level": "CanNotDelete"}}),
        &answer["value"][0],
        "",
        "",
        &mut keys,
    );
    failures.extend(keys);
    let (status, e) = arm
        .call(
            "PUT",
            &on_factory,
            lv,
            Some(&json!({"properties": {"level": "Sometimes"}})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Metric alerts (2018-03-01), activity-log alerts (2020-10-01) and action
/// groups (2023-01-01) in a resource group, as the Insights examples show
/// them: PUT answers the rule back with location and tags, a list holds it,
/// an alert without scopes is refused.
#[tokio::test]
async fn alerts_and_action_groups_answer_as_documented() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/insights");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let rg = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-alerts";
    let mut failures = Vec::new();
    for (file, kind, version, param) in [
        (
            "createOrUpdateMetricAlertSingleResource.json",
            "metricAlerts",
            "2018-03-01",
            "parameters",
        ),
        (
            "ActivityLogAlertRule_CreateOrUpdate.json",
            "activityLogAlerts",
            "2020-10-01",
            "activityLogAlertRule",
        ),
        (
            "createOrUpdateActionGroup.json",
            "actionGroups",
            "2023-01-01",
            "actionGroup",
        ),
    ] {
        let doc = example(&dir, file);
        let body = &doc["parameters"][param];
        assert!(body.is_object(), "{file}: {param}");
        let path = format!("{rg}/providers/Microsoft.Insights/{kind}/rule1");
        let (status, answer) = arm.call("PUT", &path, version, Some(body)).await;
        assert!(matches!(status, 200 | 201), "{file}: {status} {answer}");
        let documented = doc["responses"]
            .get(status.to_string())
            .or_else(|| doc["responses"].get("200"))
            .map(|r| r["body"].clone())
            .unwrap_or_default();
        let mut diffs = Vec::new();
        shape_diff(
            &json!({"type": documented["type"], "location": documented["location"], "properties": body["properties"]}),
            &answer,
            "",
            "",
            &mut diffs,
        );
        failures.extend(diffs.into_iter().map(|d| format!("{file}: {d}")));
        let (status, listed) = arm
            .call(
                "GET",
                &format!("{rg}/providers/Microsoft.Insights/{kind}"),
                version,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(listed["value"][0]["name"], "rule1", "{listed}");
    }
    let (status, e) = arm
        .call(
            "PUT",
            &format!("{rg}/providers/Microsoft.Insights/metricAlerts/noscope"),
            "2018-03-01",
            Some(&json!({"location": "global", "properties": {"scopes": [], "criteria": {}}})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Role assignments as Microsoft.Authorization's examples show them: PUT at
/// a resource's scope answers 201 with the assignment (its definition id
/// without the subscription), GET and a list at the scope find it, DELETE
/// answers it once and 204 after.
fn path_of(scope: &str, name: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

#[tokio::test]
async fn role_assignments_answer_as_documented() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/authorization");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    // Once any assignment exists, callers need one: this caller is Owner.
    adfdr_tests::admin(
        &emu,
        "role-assignments",
        json!({"principal_id": "surroundings", "role": "Owner", "scope": "/"}),
    )
    .await;
    let mut failures = Vec::new();
    let create = example(&dir, "RoleAssignments_CreateForResource.json");
    let p = &create["parameters"];
    let scope = format!("/{}", p["scope"].as_str().expect("scope"));
    let name = p["roleAssignmentName"].as_str().expect("name");
    // Azure assigns only roles that exist: the example's role is not built
    // in, so it is the tenant's custom role (made first, as there).
    let role_path = |id: &str| format!("/providers/Microsoft.Authorization/roleDefinitions/{id}");
    let (status, e) = arm
        .call(
            "PUT",
            &path_of(&scope, name),
            "2022-04-01",
            Some(&p["parameters"]),
        )
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (400, &json!("RoleDefinitionDoesNotExist")),
        "{e}"
    );
    let custom = "0b5fe924-9a61-425c-96af-cfe6e287ca2d";
    let (status, made) = arm
        .call(
            "PUT",
            &format!("/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2{}", role_path(custom)),
            "2022-04-01",
            Some(&json!({"properties": {"roleName": "Example custom role", "description": "the example's role",
                "assignableScopes": ["/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"],
                "permissions": [{"actions": ["action"], "notActions": [], "dataActions": ["dataAction"], "notDataActions": []}]}})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    // Role definitions answer as GetRoleDefinitionById/ByName show them.
    for (file, got) in [
        (
            "GetRoleDefinitionById.json",
            arm.call(
                "GET",
                &format!(
                    "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2{}",
                    role_path(custom)
                ),
                "2022-04-01",
                None,
            )
            .await,
        ),
        (
            "GetRoleDefinitionByName.json",
            arm.call(
                "GET",
                &format!(
                    "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2{}",
                    role_path(custom)
                ),
                "2022-04-01",
                None,
            )
            .await,
        ),
    ] {
        assert_eq!(got.0, 200, "{}", got.1);
        // Their values are placeholders ("Role name", "roletype"): the
        // shape is what is documented.
        failures.extend(
            conforms(
                file,
                &example(&dir, file)["responses"]["200"]["body"],
                &got.1,
            )
            .into_iter()
            .filter(|d| !d.contains(": documented \"")),
        );
    }
    let (status, by_name) = arm
        .call(
            "GET",
            "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName%20eq%20'Reader'",
            "2022-04-01",
            None,
        )
        .await;
    assert_eq!(status, 200, "{by_name}");
    assert_eq!(
        by_name["value"].as_array().map(Vec::len),
        Some(1),
        "{by_name}"
    );
    assert_eq!(
        by_name["value"][0]["name"],
        "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    );
    assert_eq!(by_name["value"][0]["properties"]["type"], "BuiltInRole");
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let (status, answer) = arm
        .call("PUT", &path, "2022-04-01", Some(&p["parameters"]))
        .await;
    assert_eq!(status, 201, "{answer}");
    failures.extend(conforms(
        "RoleAssignments_CreateForResource",
        &create["responses"]["201"]["body"],
        &answer,
    ));
    let (status, again) = arm
        .call("PUT", &path, "2022-04-01", Some(&p["parameters"]))
        .await;
    assert_eq!(status, 200, "the same assignment again: {again}");
    let (status, got) = arm.call("GET", &path, "2020-10-01-preview", None).await;
    assert_eq!(status, 200);
    failures.extend(conforms(
        "RoleAssignments_Get",
        &create["responses"]["201"]["body"],
        &got,
    ));
    let (status, listed) = arm
        .call(
            "GET",
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
            "2022-04-01",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        listed["value"]
            .as_array()
            .is_some_and(|v| v.iter().any(|a| a["name"] == name)),
        "{listed}"
    );
    let (status, gone) = arm.call("DELETE", &path, "2022-04-01", None).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["name"], name);
    let (status, _) = arm.call("DELETE", &path, "2022-04-01", None).await;
    assert_eq!(status, 204);
    let (status, e) = arm
        .call(
            "PUT",
            &path,
            "2022-04-01",
            Some(&json!({"properties": {"roleDefinitionId": "not-a-guid", "principalId": "p"}})),
        )
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (400, &json!("RoleDefinitionDoesNotExist")),
        "{e}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Key vaults as ARM resources, their access policies changed by
/// `accessPolicies/{add|replace|remove}` (Vaults_UpdateAccessPolicy in the
/// Microsoft.KeyVault REST spec, 2023-07-01; no example of it is among the
/// collected ones): who may write them, what the answers hold, locks.
#[tokio::test]
async fn key_vault_access_policies_answer_as_specified_and_rbac_and_locks_hold() {
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let sub = "/subscriptions/11111111-2222-3333-4444-555555555555";
    let rg = format!("{sub}/resourceGroups/rg-sec");
    let vault = format!("{rg}/providers/Microsoft.KeyVault/vaults/kv-ops");
    let body = json!({"location": "westeurope", "properties": {
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "sku": {"family": "A", "name": "standard"}}});
    let grant = |role: &str, scope: &str| {
        adfdr_tests::admin(
            &emu,
            "role-assignments",
            json!({"principal_id": "surroundings", "role": role, "scope": scope}),
        )
    };
    // Data Factory Contributor writes factories, not vaults.
    grant("Data Factory Contributor", "/").await;
    let (status, e) = arm.call("PUT", &vault, "2023-07-01", Some(&body)).await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (403, &json!("AuthorizationFailed")),
        "{e}"
    );
    grant("Key Vault Contributor", &rg).await;
    let (status, made) = arm.call("PUT", &vault, "2023-07-01", Some(&body)).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        made["properties"]["vaultUri"],
        "https://kv-ops.vault.azure.net/"
    );
    assert_eq!(made["properties"]["accessPolicies"], json!([]));
    assert_eq!(made["type"], "Microsoft.KeyVault/vaults");
    let (status, _) = arm.call("PUT", &vault, "2023-07-01", Some(&body)).await;
    assert_eq!(status, 200, "the same vault again");
    let (status, e) = arm
        .call(
            "PUT",
            &vault,
            "2023-07-01",
            Some(&json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(status, 400, "tenantId and sku are required: {e}");

    let policy = json!({"properties": {"accessPolicies": [{"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "objectId": "00000000-0000-0000-0000-0000000000aa", "permissions": {"secrets": ["get", "list"]}}]}});
    let (status, added) = arm
        .call(
            "PUT",
            &format!("{vault}/accessPolicies/add"),
            "2023-07-01",
            Some(&policy),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(
        (&added["name"], &added["type"]),
        (
            &json!("add"),
            &json!("Microsoft.KeyVault/vaults/accessPolicies")
        )
    );
    assert_eq!(added["id"], format!("{vault}/accessPolicies/add"));
    let (status, listed) = arm
        .call(
            "GET",
            &format!("{sub}/providers/Microsoft.KeyVault/vaults"),
            "2023-07-01",
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["value"][0]["properties"]["accessPolicies"][0]["permissions"]["secrets"],
        json!(["get", "list"]),
        "{listed}"
    );
    let (status, e) = arm
        .call(
            "PUT",
            &format!("{vault}/accessPolicies/merge"),
            "2023-07-01",
            Some(&policy),
        )
        .await;
    assert_eq!(status, 400, "add, replace or remove only: {e}");

    // A ReadOnly lock on the group refuses the policy change, as ARM does.
    grant("Owner", &rg).await;
    let lock = format!("{rg}/providers/Microsoft.Authorization/locks/ro");
    let (status, _) = arm
        .call(
            "PUT",
            &lock,
            "2020-05-01",
            Some(&json!({"properties": {"level": "ReadOnly"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, e) = arm
        .call(
            "PUT",
            &format!("{vault}/accessPolicies/add"),
            "2023-07-01",
            Some(&policy),
        )
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (409, &json!("ScopeLocked")),
        "{e}"
    );
}

/// A factory's diagnostic categories answer as listDiagnosticSettingsCategories
/// shows a resource's; a setting naming a category the factory does not
/// offer is refused; a delete answers as deleteDiagnosticSetting (200, then
/// 204 when already gone).
#[tokio::test]
async fn diagnostic_categories_are_a_factorys_and_deletes_answer_as_documented() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/insights");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let factory = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-diag/providers/Microsoft.DataFactory/factories/adf-diag";
    let (made, _) = arm
        .call(
            "PUT",
            factory,
            "2018-06-01",
            Some(&json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(made, 200);
    let (status, listed) = arm
        .call(
            "GET",
            &format!("{factory}/providers/Microsoft.Insights/diagnosticSettingsCategories"),
            "2021-05-01-preview",
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let documented = example(&dir, "listDiagnosticSettingsCategories.json");
    let documented = &documented["responses"]["200"]["body"]["value"];
    let find = |ty: &str| {
        listed["value"]
            .as_array()
            .and_then(|v| v.iter().find(|c| c["properties"]["categoryType"] == ty))
            .cloned()
            .unwrap_or_default()
    };
    let mut failures = Vec::new();
    for (i, ty) in [(0, "Logs"), (1, "Metrics")] {
        failures.extend(
            conforms(
                "listDiagnosticSettingsCategories",
                &documented[i],
                &find(ty),
            )
            .into_iter()
            .filter(|d| !d.contains("/name: documented")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        listed["value"]
            .as_array()
            .is_some_and(|v| v.iter().any(|c| c["name"] == "PipelineRuns")),
        "{listed}"
    );

    let setting = format!("{factory}/providers/Microsoft.Insights/diagnosticSettings/to-law");
    let body = |category: &str| {
        json!({"properties": {"workspaceId": "/subscriptions/1/resourceGroups/m/providers/Microsoft.OperationalInsights/workspaces/law",
            "logs": [{"category": category, "enabled": true}]}})
    };
    let (status, e) = arm
        .call(
            "PUT",
            &setting,
            "2021-05-01-preview",
            Some(&body("WorkflowRuntime")),
        )
        .await;
    assert_eq!(status, 400, "a Logic Apps category on a factory: {e}");
    assert!(
        e.to_string()
            .contains("Category 'WorkflowRuntime' is not supported"),
        "{e}"
    );
    let (status, _) = arm
        .call(
            "PUT",
            &setting,
            "2021-05-01-preview",
            Some(&body("PipelineRuns")),
        )
        .await;
    assert_eq!(status, 200);
    let deleted = example(&dir, "deleteDiagnosticSetting.json");
    for expected in ["200", "204"] {
        assert!(deleted["responses"].get(expected).is_some());
        let (status, _) = arm
            .call("DELETE", &setting, "2021-05-01-preview", None)
            .await;
        assert_eq!(status.to_string(), expected);
    }
}

/// Resource Graph as ResourcesFirstPageQuery.json and
/// ResourcesNextPageQuery.json (Microsoft.ResourceGraph 2024-04-01) answer:
/// `totalRecords`, `count`, `resultTruncated`, `facets`, `data`, and a
/// `$skipToken` while more remain, the next page taken with it; and, as the
/// service, only rows the caller may read, and a query outside the subset
/// refused (400), not half-answered.
#[tokio::test]
async fn resource_graph_pages_as_documented_and_shows_only_what_the_caller_reads() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let sub = "cfbbd179-59d2-4052-aa06-9270a38aa9d6";
    for i in 0..7 {
        let (made, _) = arm
            .call(
                "PUT",
                &format!("/subscriptions/{sub}/resourceGroups/RG{}/providers/Microsoft.DataFactory/factories/test-{i}", i % 2),
                "2018-06-01",
                Some(&json!({"location": "eastus", "tags": {"team": if i < 3 { "a" } else { "b" }}})),
            )
            .await;
        assert_eq!(made, 200);
    }
    let first = example(&dir, "resourcegraph/ResourcesFirstPageQuery.json");
    let mut request = first["parameters"]["query"].clone();
    // The example's query (`name contains`) is outside the subset adfdr
    // sends: the emulator refuses it rather than answer it wrongly.
    let (status, refused) = arm
        .call(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            "2024-04-01",
            Some(&request),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    request["query"] = "Resources | where type =~ 'microsoft.datafactory/factories' | project id, name, type, location".into();
    let (status, page1) = arm
        .call(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            "2024-04-01",
            Some(&request),
        )
        .await;
    assert_eq!(status, 200, "{page1}");
    // The example's rows are other resources: its keys and types are the contract.
    let mut failures = Vec::new();
    keys_and_types(
        "ResourcesFirstPageQuery",
        &first["responses"]["200"]["body"],
        &page1,
        &mut failures,
    );
    assert_eq!(page1["totalRecords"], 7);
    assert_eq!(page1["count"], 3);
    let next = example(&dir, "resourcegraph/ResourcesNextPageQuery.json");
    let mut request2 = next["parameters"]["query"].clone();
    request2["query"] = request["query"].clone();
    request2["options"]["$skipToken"] = page1["$skipToken"].clone();
    request2["options"]["$top"] = 3.into();
    let (status, page2) = arm
        .call(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            "2024-04-01",
            Some(&request2),
        )
        .await;
    assert_eq!(status, 200, "{page2}");
    keys_and_types(
        "ResourcesNextPageQuery",
        &next["responses"]["200"]["body"],
        &page2,
        &mut failures,
    );
    let names = |p: &Value| -> Vec<String> {
        p["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (a, b) = (names(&page1), names(&page2));
    assert!(
        a.iter().all(|n| !b.contains(n)),
        "pages do not repeat: {a:?} {b:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Tag tests, and only what the caller may read.
    request["query"] = "Resources | where type =~ 'microsoft.datafactory/factories' and tags['team'] =~ 'A' | project id, name, tags".into();
    request["options"] = json!({"$top": 100});
    let (_, team) = arm
        .call(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            "2024-04-01",
            Some(&request),
        )
        .await;
    assert_eq!(team["totalRecords"], 3, "{team}");
    emu.with_world(|w| {
        w.add_role_assignment(adf_emulator::auth::RoleAssignment {
            principal_id: "someone-else".into(),
            role: "Reader".into(),
            scope: format!("/subscriptions/{sub}"),
            not_actions: vec![],
            name: "ra-1".into(),
            principal_type: "User".into(),
            factory_identity: false,
        })
    });
    let (_, none) = arm
        .call(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            "2024-04-01",
            Some(&request),
        )
        .await;
    assert_eq!(none["totalRecords"], 0, "the caller holds no role: {none}");
}

/// Every key the documented body has, with the same JSON type, in the
/// answer (arrays: their first elements), whatever the values.
fn keys_and_types(path: &str, documented: &Value, answer: &Value, out: &mut Vec<String>) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if kind(documented) != kind(answer) {
        out.push(format!(
            "{path}: documented a {}, answered a {}",
            kind(documented),
            kind(answer)
        ));
        return;
    }
    match (documented, answer) {
        (Value::Object(d), Value::Object(a)) => {
            for (k, v) in d {
                match a.get(k) {
                    Some(av) => keys_and_types(&format!("{path}/{k}"), v, av, out),
                    None => out.push(format!("{path}/{k}: documented, not answered")),
                }
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if let (Some(dv), Some(av)) = (d.first(), a.first()) {
                keys_and_types(&format!("{path}/0"), dv, av, out);
            }
        }
        _ => {}
    }
}

/// ARM's events for accepted writes, in the Event Grid schema of
/// event-schema-resource-groups.ResourceWriteSuccess.json,
/// …ResourceDeleteSuccess.json and …ResourceActionSuccess.json: the same
/// keys and types (the claims are the caller's token's, not the sample
/// user's), one per write, none for a refused one or a read.
#[tokio::test]
async fn writes_raise_arm_events_shaped_as_event_grid_delivers_them() {
    let Some(dir) = spec_examples() else { return };
    let dir = dir.join("surroundings/eventgrid");
    let emu = start_emulator(|_| {}).await;
    let arm = Arm::new(&emu).await;
    let f = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-events/providers/Microsoft.DataFactory/factories/adf-events";
    assert_eq!(
        arm.call(
            "PUT",
            f,
            "2018-06-01",
            Some(&json!({"location": "westeurope"}))
        )
        .await
        .0,
        200
    );
    let pipeline = format!("{f}/pipelines/PL_A");
    let body = json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}});
    assert_eq!(
        arm.call("PUT", &pipeline, "2018-06-01", Some(&body))
            .await
            .0,
        200
    );
    let _ = arm.call("GET", &pipeline, "2018-06-01", None).await;
    let (refused, _) = arm
        .call(
            "PUT",
            &format!("{f}/pipelines/bad%20name%3F"),
            "2018-06-01",
            Some(&json!({})),
        )
        .await;
    assert!(refused >= 400);
    assert_eq!(
        arm.call("DELETE", &pipeline, "2018-06-01", None).await.0,
        200
    );
    let events: Vec<Value> = raw_client()
        .get(format!("{}/_emulator/events", emu.urls().arm))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        [
            "Microsoft.Resources.ResourceWriteSuccess",
            "Microsoft.Resources.ResourceWriteSuccess",
            "Microsoft.Resources.ResourceDeleteSuccess"
        ],
        "one per accepted write, none for a read or a refusal"
    );
    let mut failures = Vec::new();
    for (event, sample) in [
        (&events[1], "ResourceWriteSuccess"),
        (&events[2], "ResourceDeleteSuccess"),
    ] {
        let mut documented =
            example(&dir, &format!("event-schema-resource-groups.{sample}.json"))[0].clone();
        // The sample's claims are its user's; ours are the caller's.
        documented["data"]["claims"] = json!({});
        keys_and_types(sample, &documented, event, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        events[1]["data"]["operationName"],
        "Microsoft.DataFactory/factories/pipelines/write"
    );
    assert_eq!(events[1]["subject"], pipeline);
    assert_eq!(
        events[2]["data"]["operationName"],
        "Microsoft.DataFactory/factories/pipelines/delete"
    );
    assert_eq!(
        events[1]["data"]["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"],
        "surroundings"
    );
    let action = example(
        &dir,
        "event-schema-resource-groups.ResourceActionSuccess.json",
    );
    assert_eq!(
        action[0]["eventType"],
        "Microsoft.Resources.ResourceActionSuccess"
    );
}
