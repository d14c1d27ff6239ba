//! Extension resources that live on any scope (a factory, a resource
//! group): diagnostic settings (Microsoft.Insights, 2021-05-01-preview) and
//! management locks (Microsoft.Authorization, 2020-05-01), as their REST
//! examples show them; and the locks enforced as ARM enforces them
//! (CanNotDelete refuses deletes, ReadOnly every write, both 409
//! ScopeLocked, for the locked scope and everything below it).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// One extension type the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    DiagnosticSetting,
    Lock,
    /// Resource-group resources of Microsoft.Insights that point at a
    /// factory by id: metric alerts, activity-log alerts, action groups.
    MetricAlert,
    ActivityLogAlert,
    ActionGroup,
}

impl Extension {
    /// From `providers/{namespace}/{type}`.
    pub fn of(namespace: &str, kind: &str) -> Option<Extension> {
        match (
            namespace.to_ascii_lowercase().as_str(),
            kind.to_ascii_lowercase().as_str(),
        ) {
            ("microsoft.insights", "diagnosticsettings") => Some(Extension::DiagnosticSetting),
            ("microsoft.authorization", "locks") => Some(Extension::Lock),
            ("microsoft.insights", "metricalerts") => Some(Extension::MetricAlert),
            ("microsoft.insights", "activitylogalerts") => Some(Extension::ActivityLogAlert),
            ("microsoft.insights", "actiongroups") => Some(Extension::ActionGroup),
            _ => None,
        }
    }

    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Extension::DiagnosticSetting => &["2021-05-01-preview"],
            Extension::Lock => &["2016-09-01", "2020-05-01"],
            Extension::MetricAlert => &["2018-03-01"],
            Extension::ActivityLogAlert => &["2020-10-01"],
            Extension::ActionGroup => &["2022-06-01", "2023-01-01"],
        }
    }

    /// Every extension type, in seeding order.
    pub const ALL: [Extension; 5] = [
        Extension::DiagnosticSetting,
        Extension::Lock,
        Extension::MetricAlert,
        Extension::ActivityLogAlert,
        Extension::ActionGroup,
    ];

    /// `Microsoft.Insights/metricAlerts`: the ARM type as RBAC names it.
    fn resource_type(self) -> &'static str {
        match self {
            Extension::DiagnosticSetting => "Microsoft.Insights/diagnosticSettings",
            Extension::Lock => "Microsoft.Authorization/locks",
            Extension::MetricAlert => "Microsoft.Insights/metricAlerts",
            Extension::ActivityLogAlert => "Microsoft.Insights/activityLogAlerts",
            Extension::ActionGroup => "Microsoft.Insights/actionGroups",
        }
    }

    fn provider_path(self) -> String {
        format!("providers/{}", self.resource_type())
    }

    /// The RBAC action a read (`read`) or a write (`write`) needs.
    pub fn action(self, verb: &str) -> String {
        format!("{}/{verb}", self.resource_type())
    }

    /// The built-in roles that may write it (locks: owners only).
    pub fn writers(self) -> &'static [&'static str] {
        match self {
            Extension::Lock => &["Owner", "User Access Administrator"],
            _ => &["Owner", "Contributor", "Monitoring Contributor"],
        }
    }

    /// Its folder under a seed's `surroundings/` (adfdr's export layout).
    pub fn seed_folder(self) -> Option<&'static str> {
        match self {
            Extension::DiagnosticSetting => Some("diagnosticSetting"),
            Extension::Lock => Some("lock"),
            Extension::MetricAlert => Some("metricAlert"),
            Extension::ActivityLogAlert => Some("activityLogAlert"),
            Extension::ActionGroup => None,
        }
    }

    /// Lives in the factory's resource group and names the factory by id
    /// (`{factory}` in a seed), rather than on the factory itself.
    pub fn in_resource_group(self) -> bool {
        matches!(self, Extension::MetricAlert | Extension::ActivityLogAlert)
    }

    /// Tracked resources (location, tags) rather than proxies on a scope.
    fn tracked(self) -> bool {
        matches!(
            self,
            Extension::MetricAlert | Extension::ActivityLogAlert | Extension::ActionGroup
        )
    }

    fn type_name(self) -> &'static str {
        match self {
            Extension::DiagnosticSetting => "Microsoft.Insights/diagnosticSettings",
            Extension::Lock => "Microsoft.Authorization/locks",
            Extension::MetricAlert => "Microsoft.Insights/metricAlerts",
            Extension::ActivityLogAlert => "Microsoft.Insights/ActivityLogAlerts",
            Extension::ActionGroup => "Microsoft.Insights/ActionGroups",
        }
    }
}

/// Extension resources by lower-cased id.
pub type Extensions = BTreeMap<String, Value>;

fn id(scope: &str, ext: Extension, name: &str) -> String {
    format!(
        "{}/{}/{name}",
        scope.trim_end_matches('/'),
        ext.provider_path()
    )
}

/// The diagnostic log categories a data factory offers (Azure Monitor's
/// supported-logs table for Microsoft.DataFactory/factories), and its one
/// metric category.
pub const FACTORY_LOG_CATEGORIES: &[&str] = &[
    "ActivityRuns",
    "PipelineRuns",
    "TriggerRuns",
    "SandboxPipelineRuns",
    "SandboxActivityRuns",
    "SSISPackageEventMessages",
    "SSISPackageExecutableStatistics",
    "SSISPackageEventMessageContext",
    "SSISPackageExecutionComponentPhases",
    "SSISPackageExecutionDataStatistics",
    "SSISIntegrationRuntimeLogs",
    "AirflowTaskLogs",
    "AirflowWorkerLogs",
    "AirflowDagProcessingLogs",
    "AirflowSchedulerLogs",
    "AirflowWebLogs",
];

fn is_factory(scope: &str) -> bool {
    scope
        .to_ascii_lowercase()
        .contains("/providers/microsoft.datafactory/factories/")
}

/// A log or metric category (or category group) a factory does not offer:
/// the service refuses the setting.
fn unsupported_category(props: &Value) -> ApiResult<()> {
    let named = |list: &str, key: &str| -> Vec<String> {
        props[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.get(key).and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let bad = named("logs", "category")
        .into_iter()
        .find(|c| {
            !FACTORY_LOG_CATEGORIES
                .iter()
                .any(|k| k.eq_ignore_ascii_case(c))
        })
        .or_else(|| {
            named("logs", "categoryGroup").into_iter().find(|g| {
                !["allLogs", "audit"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(g))
            })
        })
        .or_else(|| {
            named("metrics", "category")
                .into_iter()
                .find(|c| !c.eq_ignore_ascii_case("AllMetrics"))
        });
    match bad {
        Some(c) => Err(ApiError::bad_request(format!(
            "Category '{c}' is not supported."
        ))),
        None => Ok(()),
    }
}

/// `{factory}/providers/Microsoft.Insights/diagnosticSettingsCategories`, as
/// listDiagnosticSettingsCategories.json shows a resource's categories.
pub fn categories(scope: &str) -> Value {
    let scope = scope.trim_end_matches('/');
    let entry = |name: &str, ty: &str| {
        let mut v = json!({
            "id": format!("{scope}/providers/microsoft.insights/diagnosticSettingsCategories/{name}"),
            "type": "microsoft.insights/diagnosticSettingsCategories",
            "name": name,
            "properties": {"categoryType": ty},
        });
        if ty == "Logs" {
            v["properties"]["categoryGroups"] = json!(["allLogs"]);
        }
        v
    };
    let value: Vec<Value> = FACTORY_LOG_CATEGORIES
        .iter()
        .map(|c| entry(c, "Logs"))
        .chain([entry("AllMetrics", "Metrics")])
        .collect();
    json!({"value": value})
}

pub fn put(
    store: &mut Extensions,
    scope: &str,
    ext: Extension,
    name: &str,
    body: Value,
) -> ApiResult<(u16, Value)> {
    let props = body.get("properties").cloned().unwrap_or(Value::Null);
    match ext {
        Extension::Lock => {
            let level = props.get("level").and_then(Value::as_str).unwrap_or("");
            if !matches!(level, "CanNotDelete" | "ReadOnly") {
                return Err(ApiError::new(
                    400,
                    "LockLevelInvalid",
                    format!(
                        "The lock level '{level}' is invalid. The supported levels are 'CanNotDelete' and 'ReadOnly'."
                    ),
                ));
            }
        }
        Extension::DiagnosticSetting => {
            let has = |k: &str| {
                props
                    .get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if ![
                "workspaceId",
                "storageAccountId",
                "eventHubAuthorizationRuleId",
                "marketplacePartnerId",
            ]
            .iter()
            .any(|k| has(k))
            {
                return Err(ApiError::bad_request(
                    "A diagnostic setting needs at least one destination: workspaceId, storageAccountId, eventHubAuthorizationRuleId or marketplacePartnerId.",
                ));
            }
            if is_factory(scope) {
                unsupported_category(&props)?;
            }
        }
        Extension::MetricAlert | Extension::ActivityLogAlert => {
            let scopes = props.get("scopes").and_then(Value::as_array);
            if scopes.is_none_or(|s| s.is_empty()) {
                return Err(ApiError::bad_request(
                    "The alert rule needs at least one scope.",
                ));
            }
            let needs = if ext == Extension::MetricAlert {
                "/criteria"
            } else {
                "/condition/allOf"
            };
            if props.pointer(needs).is_none() {
                return Err(ApiError::bad_request(format!(
                    "The alert rule needs {}.",
                    needs.trim_start_matches('/')
                )));
            }
        }
        Extension::ActionGroup => {}
    }
    let id = id(scope, ext, name);
    let mut view = json!({"id": id, "type": ext.type_name(), "name": name, "properties": props});
    if ext.tracked() {
        view["location"] = body
            .get("location")
            .cloned()
            .unwrap_or_else(|| "global".into());
        view["tags"] = body.get("tags").cloned().unwrap_or_else(|| json!({}));
    }
    let created = store
        .insert(id.to_ascii_lowercase(), view.clone())
        .is_none();
    // Locks answer 201 when created (ManagementLocks_CreateOrUpdate*).
    let status = if created && ext == Extension::Lock {
        201
    } else {
        200
    };
    Ok((status, view))
}

pub fn get(store: &Extensions, scope: &str, ext: Extension, name: &str) -> ApiResult<Value> {
    store
        .get(&id(scope, ext, name).to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(
                "ResourceNotFound",
                format!("The {} '{name}' was not found.", ext.type_name()),
            )
        })
}

pub fn delete(store: &mut Extensions, scope: &str, ext: Extension, name: &str) -> bool {
    store
        .remove(&id(scope, ext, name).to_ascii_lowercase())
        .is_some()
}

/// Diagnostic settings at exactly `scope`; locks at `scope` and the scopes
/// above it (ARM lists a resource's locks with those it inherits).
pub fn list(store: &Extensions, scope: &str, ext: Extension) -> Vec<Value> {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let suffix = format!("/{}/", ext.provider_path().to_ascii_lowercase());
    store
        .iter()
        .filter_map(|(k, v)| {
            let at = &k[..k.find(&suffix)?];
            let matches = match ext {
                Extension::Lock => scope == at || scope.starts_with(&format!("{at}/")),
                _ => at == scope,
            };
            matches.then(|| v.clone())
        })
        .collect()
}

/// The lock that forbids `method` on `path` (a lock's own path is never
/// locked by it: removing a lock is how one unlocks), as ARM answers it.
pub fn locked(store: &Extensions, method: &str, path: &str) -> Option<ApiError> {
    if method == "GET"
        || path
            .to_ascii_lowercase()
            .contains("/providers/microsoft.authorization/locks")
    {
        return None;
    }
    let lower = path.trim_end_matches('/').to_ascii_lowercase();
    let suffix = "/providers/microsoft.authorization/locks/";
    // Reads through POST (status, run queries) are not writes.
    let reads = [
        "/getstatus",
        "/querypipelineruns",
        "/queryactivityruns",
        "/geteventsubscriptionstatus",
    ];
    if method == "POST" && reads.iter().any(|r| lower.ends_with(r)) {
        return None;
    }
    store.iter().find_map(|(k, v)| {
        let at = &k[..k.find(suffix)?];
        let below = lower == at || lower.starts_with(&format!("{at}/"));
        let level = v.pointer("/properties/level").and_then(Value::as_str)?;
        let blocks = match level {
            "ReadOnly" => true,
            "CanNotDelete" => method == "DELETE",
            _ => false,
        };
        (below && blocks).then(|| {
            let verb = if method == "DELETE" { "delete" } else { "write" };
            let shown = v["id"].as_str().unwrap_or(k);
            let scope = &shown[..shown.len().min(at.len())];
            ApiError::new(
                409,
                "ScopeLocked",
                format!(
                    "The scope '{path}' cannot perform {verb} operation because following scope(s) are locked: '{scope}'. Please remove the lock and try again."
                ),
            )
        })
    })
}
