//! Realistic factories of any size, for benchmarks and load tests, written
//! in ADF git layout: parameterized linked services with Key Vault secret
//! references, datasets over them, data flows, pipelines in deep
//! ExecutePipeline chains with Copy, ForEach and Lookup activities, and
//! started schedule and tumbling-window triggers (with window dependencies),
//! and what makes a factory run: a managed virtual network with managed
//! private endpoints, a managed-VNet IR and an Azure-SSIS IR that are
//! running, a running CDC, a credential with a user-assigned identity, and
//! file-share linked services whose password is an encryptedCredential;
//! and its surroundings: a diagnostic setting, a lock, two alerts, and the
//! access its identity holds (two role assignments, a vault access policy).
//! Deterministic: the same size gives the same factory.

use std::path::Path;

use serde_json::{Value, json};

/// Share of each kind, in per mille of the requested size.
const LINKED: usize = 40;
const DATASETS: usize = 250;
const DATAFLOWS: usize = 30;
const TRIGGERS: usize = 100;
/// How deep ExecutePipeline chains go.
pub const CHAIN_DEPTH: usize = 12;

/// Deterministic noise: real factories are not copies of one template, and
/// compression benchmarks on repeated text would flatter zstd.
fn noise(seed: usize, words: usize) -> String {
    const VOCAB: [&str; 32] = [
        "orders",
        "customer",
        "ledger",
        "nightly",
        "staging",
        "curated",
        "delta",
        "merge",
        "invoice",
        "region",
        "backfill",
        "archive",
        "finance",
        "sales",
        "inventory",
        "audit",
        "retry",
        "partition",
        "watermark",
        "snapshot",
        "export",
        "import",
        "daily",
        "hourly",
        "legacy",
        "replica",
        "quarantine",
        "reconcile",
        "hash",
        "lookup",
        "pivot",
        "rollup",
    ];
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(words);
    for _ in 0..words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(if x.is_multiple_of(5) {
            format!("{:08x}", x >> 32)
        } else {
            VOCAB[(x % 32) as usize].to_string()
        });
    }
    out.join(" ")
}

pub struct Generated {
    pub files: Vec<(String, Value)>,
}

fn split(n: usize) -> (usize, usize, usize, usize, usize) {
    let ls = (n * LINKED / 1000).max(2);
    let ds = (n * DATASETS / 1000).max(1);
    let df = (n * DATAFLOWS / 1000).max(1);
    let tr = (n * TRIGGERS / 1000).max(1);
    let pl = n.saturating_sub(ls + ds + df + tr + 1).max(1);
    (ls, ds, df, pl, tr)
}

const UAMI: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-identity/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-generated";

/// An encryptedCredential as the service mints it: base64 of a JSON blob
/// whose CredentialId points into the factory's own credential store.
fn encrypted_credential(i: usize) -> String {
    use base64::Engine;
    let blob = json!({"Version": "2017-11-30", "ProtectionMode": "Key", "SecretContentType": "Plaintext",
        "CredentialId": format!("ADF-GENERATED_5d1f4b1e-6c2a-4c7e-9a1e-{i:012x}")});
    base64::engine::general_purpose::STANDARD.encode(blob.to_string())
}

/// What makes the factory run, beyond its definitions (see the module doc).
fn runnable(n: usize) -> Vec<(String, Value)> {
    let mut files = vec![
        (
            "managedVirtualNetwork/default.json".to_string(),
            json!({"name": "default", "type": "Microsoft.DataFactory/factories/managedvirtualnetworks", "properties": {}}),
        ),
        (
            "integrationRuntime/ir-vnet.json".to_string(),
            json!({"name": "ir-vnet", "properties": {"type": "Managed", "state": "Started",
                "managedVirtualNetwork": {"type": "ManagedVirtualNetworkReference", "referenceName": "default"},
                "typeProperties": {"computeProperties": {"location": "AutoResolve",
                    "dataFlowProperties": {"computeType": "General", "coreCount": 8, "timeToLive": 10}}}}}),
        ),
        (
            "integrationRuntime/ir-ssis.json".to_string(),
            json!({"name": "ir-ssis", "properties": {"type": "Managed", "state": "Started",
                "description": "Azure-SSIS IR (starts take 20-30 minutes)",
                "typeProperties": {"computeProperties": {"location": "West Europe", "nodeSize": "Standard_D2_v3", "numberOfNodes": 2, "maxParallelExecutionsPerNode": 2,
                        "vNetProperties": {"subnetId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net-weu/providers/Microsoft.Network/virtualNetworks/vnet-weu/subnets/ssis"}},
                    "ssisProperties": {"edition": "Standard", "licenseType": "LicenseIncluded",
                        "catalogInfo": {"catalogServerEndpoint": "sql-ssis-weu.database.windows.net", "catalogAdminUserName": "ssisadmin", "catalogPricingTier": "Basic"}}}}}),
        ),
        (
            "credential/cred-uami.json".to_string(),
            json!({"name": "cred-uami", "properties": {"type": "ManagedIdentity", "typeProperties": {"resourceId": UAMI}}}),
        ),
        (
            "adfcdc/CDC_Orders.json".to_string(),
            json!({"name": "CDC_Orders", "properties": {"description": "continuous copy of orders", "allowVNetOverride": false, "status": "Running",
                "sourceConnectionsInfo": [{"sourceEntities": [{"name": "dbo.orders", "properties": {}}],
                    "connection": {"linkedService": {"referenceName": "LS_Sql_0000", "type": "LinkedServiceReference"}, "linkedServiceType": "AzureSqlDatabase", "type": "linkedservicetype", "isInlineDataset": true}}],
                "targetConnectionsInfo": [{"targetEntities": [{"name": "sales.orders", "properties": {}}],
                    "connection": {"linkedService": {"referenceName": "LS_Sql_0000", "type": "LinkedServiceReference"}, "linkedServiceType": "AzureSqlDatabase", "type": "linkedservicetype", "isInlineDataset": true},
                    "dataMapperMappings": [], "relationships": []}],
                "policy": {"mode": "Microbatch", "recurrence": {"frequency": "Minute", "interval": 15}}}}),
        ),
    ];
    for k in 0..(n / 500).clamp(1, 8) {
        let name = format!("mpe-sql-{k:02}");
        files.push((
            format!("managedVirtualNetwork/default/managedPrivateEndpoint/{name}.json"),
            json!({"name": name, "properties": {"groupId": "sqlServer",
                "privateLinkResourceId": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-{k:02}")}}),
        ));
    }
    files.extend(surroundings());
    // New files in a lake of the factory's region start a pipeline.
    files.push((
        "trigger/TR_NewFiles.json".to_string(),
        json!({"name": "TR_NewFiles", "properties": {"type": "BlobEventsTrigger", "runtimeState": "Stopped",
            "pipelines": [{"pipelineReference": {"referenceName": "PL_Step_00000", "type": "PipelineReference"}}],
            "typeProperties": {"blobPathBeginsWith": "/raw/blobs/", "ignoreEmptyBlobs": true, "events": ["Microsoft.Storage.BlobCreated"],
                "scope": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data-weu/providers/Microsoft.Storage/storageAccounts/lakeweu"}}}),
    ));
    for k in 0..(n / 1000).clamp(1, 4) {
        let name = format!("LS_Files_{k:02}");
        files.push((
            format!("linkedService/{name}.json"),
            json!({"name": name, "properties": {"type": "FileServer",
                "connectVia": {"referenceName": "ir-selfhosted", "type": "IntegrationRuntimeReference"},
                "typeProperties": {"host": format!("\\\\files{k:02}\\exports"), "userId": "corp\\svc-adf",
                    "encryptedCredential": encrypted_credential(k)}}}),
        ));
    }
    files
}

/// Its surroundings: diagnostics to a workspace, a lock, and the alerts
/// that watch it (in its resource group, naming it as `{factory}`).
fn surroundings() -> Vec<(String, Value)> {
    // Its surroundings: diagnostics to a workspace, a lock, and the alerts
    // that watch it (in its resource group, naming it as `{factory}`).
    let action_group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-monitoring/providers/Microsoft.Insights/actionGroups/ag-oncall";
    vec![
        (
            "surroundings/diagnosticSetting/diag-all.json".to_string(),
            json!({"name": "diag-all", "properties": {
                "workspaceId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-monitoring/providers/Microsoft.OperationalInsights/workspaces/law-generated",
                "storageAccountId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-monitoring/providers/Microsoft.Storage/storageAccounts/stlogsweu",
                "logs": [{"categoryGroup": "allLogs", "enabled": true}], "metrics": [{"category": "AllMetrics", "enabled": true}]}}),
        ),
        (
            "surroundings/lock/lock-no-delete.json".to_string(),
            json!({"name": "lock-no-delete", "properties": {"level": "CanNotDelete"}}),
        ),
        (
            "surroundings/metricAlert/alert-failed-runs.json".to_string(),
            json!({"name": "alert-failed-runs", "location": "global", "tags": {}, "properties": {
                "severity": 1, "enabled": true, "scopes": ["{factory}"], "evaluationFrequency": "PT5M", "windowSize": "PT15M",
                "criteria": {"odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria", "allOf": [
                    {"criterionType": "StaticThresholdCriterion", "name": "failed", "metricName": "PipelineFailedRuns",
                     "dimensions": [], "operator": "GreaterThan", "threshold": 0, "timeAggregation": "Total"}]},
                "actions": [{"actionGroupId": action_group, "webhookProperties": {}}]}}),
        ),
        (
            "surroundings/activityLogAlert/alert-deleted.json".to_string(),
            json!({"name": "alert-deleted", "location": "Global", "tags": {}, "properties": {
                "enabled": true, "scopes": ["{factory}"],
                "condition": {"allOf": [{"field": "category", "equals": "Administrative"},
                                        {"field": "operationName", "equals": "Microsoft.DataFactory/factories/delete"}]},
                "actions": {"actionGroups": [{"actionGroupId": action_group, "webhookProperties": {}}]}}}),
        ),
        // What the factory's identity may reach (export's form; `{subscription}`
        // is the seeded factory's): a vault through an access policy, a lake
        // through a role.
        (
            "surroundings/accessPolicy/kv-generated.json".to_string(),
            json!({"name": "kv-generated", "properties": {
                "vault": "/subscriptions/{subscription}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-generated",
                "permissions": {"secrets": ["get", "list"]}, "principal": "systemAssigned"}}),
        ),
        (
            "surroundings/roleAssignment/lake-reader.json".to_string(),
            json!({"name": "lake-reader", "properties": {
                "roleDefinitionId": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
                "scope": "/subscriptions/{subscription}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/lakegenerated",
                "principal": "systemAssigned"}}),
        ),
        (
            "surroundings/roleAssignment/vault-secrets-user.json".to_string(),
            json!({"name": "vault-secrets-user", "properties": {
                "roleDefinitionId": "4633458b-17de-408a-b874-0445c86b69e6",
                "scope": "/subscriptions/{subscription}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-generated",
                "principal": "systemAssigned"}}),
        ),
    ]
}

/// A factory of about `n` resources (plus the factory file).
pub fn factory(n: usize) -> Generated {
    let (ls, ds, df, pl, tr) = split(n);
    let extra = runnable(n);
    let pl = pl.saturating_sub(extra.len()).max(1);
    let mut files = Vec::with_capacity(n + 2);
    files.push((
        "factory/adf-generated.json".to_string(),
        json!({"name": "adf-generated", "location": "westeurope",
               "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {UAMI: {}}},
               "properties": {"globalParameters": {"env": {"type": "String", "value": "prod"}, "batchSize": {"type": "Int", "value": 500}}}}),
    ));
    files.extend(extra);
    files.push((
        "integrationRuntime/ir-selfhosted.json".to_string(),
        json!({"name": "ir-selfhosted", "properties": {"type": "SelfHosted", "description": "on-premises gateway"}}),
    ));
    files.push((
        "linkedService/LS_KeyVault.json".to_string(),
        json!({"name": "LS_KeyVault", "properties": {"type": "AzureKeyVault", "typeProperties": {"baseUrl": "https://kv-generated.vault.azure.net/"}}}),
    ));
    for i in 0..ls.saturating_sub(1) {
        let name = format!("LS_Sql_{i:04}");
        files.push((
            format!("linkedService/{name}.json"),
            json!({"name": name, "properties": {
                "type": "AzureSqlDatabase",
                "parameters": {"serverName": {"type": "String"}, "databaseName": {"type": "String", "defaultValue": format!("db{i}")}},
                "connectVia": {"referenceName": "ir-selfhosted", "type": "IntegrationRuntimeReference"},
                "typeProperties": {
                    "connectionString": "Integrated Security=False;Encrypt=True;Data Source=@{linkedService().serverName}.database.windows.net;Initial Catalog=@{linkedService().databaseName}",
                    "password": {"type": "AzureKeyVaultSecret", "store": {"referenceName": "LS_KeyVault", "type": "LinkedServiceReference"}, "secretName": format!("sql-password-{i}")}
                },
                "annotations": ["generated", "sql"]}}),
        ));
    }
    let ls_name = |i: usize| format!("LS_Sql_{:04}", i % (ls - 1).max(1));
    for i in 0..ds {
        let name = format!("DS_Table_{i:05}");
        files.push((
            format!("dataset/{name}.json"),
            json!({"name": name, "properties": {
                "type": "AzureSqlTable",
                "linkedServiceName": {"referenceName": ls_name(i), "type": "LinkedServiceReference",
                                      "parameters": {"serverName": format!("sql-{:02}", i % 7)}},
                "parameters": {"schema": {"type": "string", "defaultValue": "dbo"}},
                "schema": (0..8).map(|c| json!({"name": format!("column_{c}"), "type": if c % 3 == 0 { "int" } else { "nvarchar" }})).collect::<Vec<_>>(),
                "description": noise(i * 11 + 5, 12),
                "typeProperties": {"schema": {"value": "@dataset().schema", "type": "Expression"}, "table": format!("table_{i}")},
                "folder": {"name": format!("area{:02}", i % 20)}}}),
        ));
    }
    let ds_name = |i: usize| format!("DS_Table_{:05}", i % ds);
    for i in 0..df {
        let name = format!("DF_Transform_{i:04}");
        files.push((
            format!("dataflow/{name}.json"),
            json!({"name": name, "properties": {"type": "MappingDataFlow", "typeProperties": {
                "sources": [{"dataset": {"referenceName": ds_name(i), "type": "DatasetReference"}, "name": "source1"}],
                "sinks": [{"dataset": {"referenceName": ds_name(i + 1), "type": "DatasetReference"}, "name": "sink1"}],
                "transformations": [{"name": "derived"}, {"name": "filtered"}],
                "scriptLines": ["source(allowSchemaDrift: true) ~> source1", "source1 derive(loaded = currentTimestamp()) ~> derived", "derived filter(!isNull(id)) ~> filtered", "filtered sink(allowSchemaDrift: true) ~> sink1"]}}}),
        ));
    }
    for i in 0..pl {
        files.push(pipeline(i, pl, ds));
    }
    // Triggers start chain heads; every fourth is a tumbling window depending on the previous one.
    for i in 0..tr {
        let name = format!("TR_{i:04}");
        let head = format!("PL_Step_{:05}", (i * CHAIN_DEPTH) % pl);
        let body = if i % 4 == 3 {
            json!({"name": name, "properties": {"type": "TumblingWindowTrigger", "runtimeState": "Started",
                "pipeline": {"pipelineReference": {"referenceName": head, "type": "PipelineReference"},
                             "parameters": {"runDate": "@trigger().outputs.windowStartTime"}},
                "typeProperties": {"frequency": "Hour", "interval": 1, "startTime": "2026-01-01T00:00:00Z", "maxConcurrency": 4,
                    "dependsOn": [{"type": "TumblingWindowTriggerDependencyReference",
                                   "referenceTrigger": {"referenceName": format!("TR_{:04}", i - 1), "type": "TriggerReference"}}]}}})
        } else {
            json!({"name": name, "properties": {"type": "ScheduleTrigger", "runtimeState": "Started",
                "pipelines": [{"pipelineReference": {"referenceName": head, "type": "PipelineReference"}, "parameters": {"runDate": "@trigger().scheduledTime"}}],
                "typeProperties": {"recurrence": {"frequency": "Day", "interval": 1, "startTime": "2026-01-01T02:00:00Z", "timeZone": "UTC",
                                                   "schedule": {"hours": [i % 24], "minutes": [0]}}}}})
        };
        files.push((format!("trigger/{name}.json"), body));
    }
    Generated { files }
}

/// Pipeline `i` of `pl`: chains of CHAIN_DEPTH, each calling the next one
/// down, reading and writing datasets of `ds`.
fn pipeline(i: usize, pl: usize, ds: usize) -> (String, Value) {
    let ds_name = |i: usize| format!("DS_Table_{:05}", i % ds);
    let name = format!("PL_Step_{i:05}");
    let depth = i % CHAIN_DEPTH;
    let mut activities = vec![
        json!({"name": "Lookup watermark", "type": "Lookup", "dependsOn": [],
               "policy": {"timeout": "0.12:00:00", "retry": 2, "retryIntervalInSeconds": 30},
               "typeProperties": {"source": {"type": "AzureSqlSource", "sqlReaderQuery": "SELECT MAX(modified) AS wm FROM etl.watermark"},
                                  "dataset": {"referenceName": ds_name(i), "type": "DatasetReference"}}}),
        json!({"name": "Copy rows", "type": "Copy", "dependsOn": [{"activity": "Lookup watermark", "dependencyConditions": ["Succeeded"]}],
               "description": noise(i * 7 + 2, 16),
               "userProperties": [{"name": "Source", "value": noise(i * 7 + 3, 3)}, {"name": "Destination", "value": noise(i * 7 + 4, 3)}],
               "inputs": [{"referenceName": ds_name(i), "type": "DatasetReference", "parameters": {"schema": "staging"}}],
               "outputs": [{"referenceName": ds_name(i + 3), "type": "DatasetReference"}],
               "typeProperties": {"source": {"type": "AzureSqlSource", "sqlReaderQuery": {"value": "@concat('SELECT * FROM t WHERE modified > ''', activity('Lookup watermark').output.firstRow.wm, '''')", "type": "Expression"}},
                                  "sink": {"type": "AzureSqlSink", "writeBatchSize": {"value": "@pipeline().globalParameters.batchSize", "type": "Expression"}},
                                  "enableStaging": false}}),
        json!({"name": "For each partition", "type": "ForEach", "dependsOn": [{"activity": "Copy rows", "dependencyConditions": ["Succeeded"]}],
               "typeProperties": {"items": {"value": "@pipeline().parameters.partitions", "type": "Expression"}, "isSequential": false, "batchCount": 8,
                                  "activities": [{"name": "Wait a bit", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}}),
    ];
    if depth + 1 < CHAIN_DEPTH && i + 1 < pl {
        activities.push(json!({"name": "Run next step", "type": "ExecutePipeline",
            "dependsOn": [{"activity": "For each partition", "dependencyConditions": ["Succeeded"]}],
            "typeProperties": {"pipeline": {"referenceName": format!("PL_Step_{:05}", i + 1), "type": "PipelineReference"}, "waitOnCompletion": true}}));
    }
    (
        format!("pipeline/{name}.json"),
        json!({"name": name, "properties": {"activities": activities,
            "description": noise(i * 7 + 1, 24),
            "parameters": {"partitions": {"type": "array", "defaultValue": [1, 2, 3, 4]}, "runDate": {"type": "string"}},
            "variables": {"rows": {"type": "String"}},
            "folder": {"name": format!("chain{:03}", i / CHAIN_DEPTH)},
            "annotations": ["generated"]}}),
    )
}

/// Writes a generated factory of about `n` resources in git layout under `dir`.
pub fn write(dir: &Path, n: usize) -> std::io::Result<usize> {
    write_files(dir, factory(n))
}

/// A factory at Data Factory's size limits, for memory benchmarks: `n`
/// pipelines of about `kb` KB each (40 activities, the most a pipeline may
/// have, each with a long query; Learn, "Azure Data Factory limits": 200 KB
/// per pipeline object) and one data flow of about `dataflow_mb` MB of
/// script (data flows have no documented size limit; 7 MB ones are seen).
pub fn heavy(n: usize, kb: usize, dataflow_mb: usize) -> Generated {
    let mut files = vec![(
        "factory/adf-heavy.json".to_string(),
        json!({"name": "adf-heavy", "location": "westeurope", "properties": {}}),
    )];
    // About 8.4 bytes per word of noise, quoting included.
    let words = (kb * 1024 * 10 / 40 / 84).max(1);
    for i in 0..n {
        let name = format!("PL_Heavy_{i:04}");
        let activities: Vec<Value> = (0..40)
            .map(|a| {
                json!({"name": format!("Step{a:02}"), "type": "Wait",
                       "description": noise(i * 40 + a, words),
                       "typeProperties": {"waitTimeInSeconds": 1}})
            })
            .collect();
        files.push((
            format!("pipeline/{name}.json"),
            json!({"name": name, "properties": {"activities": activities, "annotations": ["heavy"]}}),
        ));
    }
    if dataflow_mb > 0 {
        // About 100 bytes per script line, quoting included.
        let lines: Vec<String> = (0..dataflow_mb * 1024 * 1024 / 100)
            .map(|l| format!("derive(col{l} = {}) ~> step{l}", noise(l, 8)))
            .collect();
        files.push((
            "dataflow/DF_Heavy.json".to_string(),
            json!({"name": "DF_Heavy", "properties": {"type": "MappingDataFlow",
                   "typeProperties": {"sources": [], "sinks": [], "transformations": [], "scriptLines": lines}}}),
        ));
    }
    Generated { files }
}

/// Writes a generated factory in git layout; the count of resources.
pub fn write_files(dir: &Path, generated: Generated) -> std::io::Result<usize> {
    for (rel, body) in &generated.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(body).expect("json"))?;
    }
    Ok(generated.files.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_chains_and_references_hold() {
        let g = factory(5000);
        let resources = g.files.len() - 1;
        assert!((4990..=5010).contains(&resources), "{resources}");
        let executes = g
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("pipeline/"))
            .filter(|(_, b)| b.to_string().contains("ExecutePipeline"))
            .count();
        assert!(executes > 2000, "deep chains: {executes}");
        let started = g
            .files
            .iter()
            .filter(|(_, b)| b.pointer("/properties/runtimeState") == Some(&json!("Started")))
            .count();
        assert!(started >= 400, "{started}");
        // What makes it run: two running managed IRs, endpoints, a running
        // CDC, a user-assigned credential, encryptedCredentials.
        let count = |prefix: &str| {
            g.files
                .iter()
                .filter(|(p, _)| p.starts_with(prefix))
                .count()
        };
        let state = |path: &str, pointer: &str| {
            g.files
                .iter()
                .find(|(p, _)| p == path)
                .and_then(|(_, b)| b.pointer(pointer).cloned())
        };
        assert_eq!(
            state("integrationRuntime/ir-ssis.json", "/properties/state"),
            Some(json!("Started"))
        );
        assert_eq!(
            state("integrationRuntime/ir-vnet.json", "/properties/state"),
            Some(json!("Started"))
        );
        assert_eq!(
            state("adfcdc/CDC_Orders.json", "/properties/status"),
            Some(json!("Running"))
        );
        assert_eq!(
            count("managedVirtualNetwork/default/managedPrivateEndpoint/"),
            8
        );
        assert_eq!(count("credential/"), 1);
        // Issue 28: what is bound to the factory's region, for the region
        // map to move: an SSIS IR in a VNet with a catalog server (and a
        // display-name location), a blob event trigger's storage scope, a
        // diagnostic setting to a storage account.
        let ssis = "integrationRuntime/ir-ssis.json";
        let ssis_at = |p: &str| state(ssis, &format!("/properties/typeProperties/{p}"));
        assert_eq!(
            ssis_at("computeProperties/location"),
            Some(json!("West Europe"))
        );
        assert!(ssis_at("computeProperties/vNetProperties/subnetId").is_some());
        assert!(ssis_at("ssisProperties/catalogInfo/catalogServerEndpoint").is_some());
        assert!(
            state(
                "trigger/TR_NewFiles.json",
                "/properties/typeProperties/scope"
            )
            .is_some()
        );
        assert!(
            state(
                "surroundings/diagnosticSetting/diag-all.json",
                "/properties/storageAccountId"
            )
            .is_some()
        );
        let encrypted = g
            .files
            .iter()
            .filter(|(_, b)| {
                b.pointer("/properties/typeProperties/encryptedCredential")
                    .is_some()
            })
            .count();
        assert_eq!(encrypted, 4);
        assert_eq!(
            count("surroundings/"),
            7,
            "diagnostics, a lock, two alerts, an access policy, two roles"
        );
        let dir = std::env::temp_dir().join(format!("adf-gen-{}", std::process::id()));
        let n = write(&dir, 300).expect("write");
        let seed = crate::seed::load_git_layout(&dir).expect("loads");
        let access = seed.role_assignments.len() + seed.access_policies.len();
        assert_eq!(access, 3);
        assert_eq!(seed.resources.len() + seed.surroundings.len() + access, n);
        std::fs::remove_dir_all(&dir).ok();
    }
}
