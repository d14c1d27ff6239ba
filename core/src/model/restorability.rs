//! The restorability report: what a snapshot cannot bring back by itself, or
//! what needs a human after a restore. Computed at backup time, pure.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::ResourceKind;
use super::references::references;
use crate::model::resource::{Resource, key, label};

/// The mask the service puts on inline SecureString values.
pub const MASK: &str = "**********";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// An inline SecureString came back masked: its value is not in the snapshot.
    MaskedSecret,
    /// encryptedCredential is bound to the integration runtime that encrypted it.
    EncryptedCredential,
    /// A self-hosted IR: its nodes must be re-registered with the new auth key.
    SelfHostedNodes,
    /// An IR shared from another factory: that factory must grant access again.
    LinkedIntegrationRuntime,
    /// System-assigned identity: a restored factory gets a new principal.
    SystemAssignedIdentity,
    /// A managed private endpoint must be approved on the target resource.
    PrivateEndpointApproval,
    /// A reference to a resource that is not in the factory.
    DanglingReference,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    pub category: Category,
    /// The resource it concerns (`linkedService:LS_Sql`).
    pub resource: String,
    /// JSON Pointer inside the definition, when it is about one property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub detail: String,
}

/// What one resource contributes to the report: its own findings, and its
/// static dependencies (kind, name, pointer) to check against the factory.
#[derive(Clone, Debug, Default)]
pub struct Partial {
    pub resource: String,
    pub findings: Vec<Finding>,
    pub dependencies: Vec<(ResourceKind, String, String)>,
}

/// Every finding for a factory's resources, in resource order.
pub fn report(resources: &[Resource]) -> Vec<Finding> {
    let present: HashSet<_> = resources.iter().map(Resource::key).collect();
    resolve(resources.iter().map(inspect).collect(), &present)
}

/// Joins per-resource partials (in resource order) into the report, adding a
/// dangling-reference finding for each dependency not in `present`.
pub fn resolve(
    partials: Vec<Partial>,
    present: &HashSet<(ResourceKind, String, String)>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in partials {
        out.extend(p.findings);
        let mut seen = HashSet::new();
        for (kind, name, pointer) in p.dependencies {
            // Managed private endpoints are never referenced by name alone.
            if !present.contains(&key(kind, None, &name))
                && seen.insert((kind, name.to_lowercase()))
            {
                out.push(Finding {
                    category: Category::DanglingReference,
                    resource: p.resource.clone(),
                    pointer: Some(pointer),
                    detail: format!(
                        "references {} which is not in the factory; a restore of this resource fails until it exists",
                        label(kind, None, &name)
                    ),
                });
            }
        }
    }
    out
}

/// One resource's own findings and dependencies (no knowledge of the others).
pub fn inspect(r: &Resource) -> Partial {
    let label = r.label();
    let mut findings = masked_findings(&label, masked_pointers(&r.definition));
    kind_findings(r.kind, &r.definition, &label, &mut findings);
    Partial {
        dependencies: dependencies(references(&r.definition)),
        resource: label,
        findings,
    }
}

/// `inspect` for a resource canonicalized by `model::raw`, from what its
/// scan found; only the kinds with findings of their own parse the
/// definition (a few resources per factory).
pub fn inspect_scanned(
    kind: ResourceKind,
    parent: Option<&str>,
    name: &str,
    canonical: &[u8],
    references: Vec<super::references::Reference>,
    masked: Vec<String>,
) -> Partial {
    let label = label(kind, parent, name);
    let mut findings = masked_findings(&label, masked);
    if matches!(
        kind,
        ResourceKind::Factory
            | ResourceKind::LinkedService
            | ResourceKind::IntegrationRuntime
            | ResourceKind::ManagedPrivateEndpoint
    ) {
        let definition: Value =
            serde_json::from_slice(canonical).expect("canonical bytes are JSON");
        kind_findings(kind, &definition, &label, &mut findings);
    }
    Partial {
        dependencies: dependencies(references),
        resource: label,
        findings,
    }
}

fn masked_findings(label: &str, pointers: Vec<String>) -> Vec<Finding> {
    pointers
        .into_iter()
        .map(|pointer| Finding {
            category: Category::MaskedSecret,
            resource: label.to_string(),
            pointer: Some(pointer),
            detail: "inline SecureString came back masked; supply it with an override, or move it to Key Vault".into(),
        })
        .collect()
}

fn dependencies(
    references: Vec<super::references::Reference>,
) -> Vec<(ResourceKind, String, String)> {
    references
        .into_iter()
        .filter_map(|reference| {
            let (kind, name) = reference.dependency()?;
            Some((kind, name.to_string(), reference.pointer.clone()))
        })
        .collect()
}

/// Findings particular to a kind: encrypted credentials, self-hosted and
/// linked IRs, system-assigned identity, private endpoint approvals.
fn kind_findings(kind: ResourceKind, definition: &Value, here: &str, out: &mut Vec<Finding>) {
    let here = here.to_string();
    let props = definition.get("properties");
    let ptype = props.and_then(|p| p.get("type")).and_then(Value::as_str);
    match kind {
        ResourceKind::LinkedService => {
            if let Some(tp) = props.and_then(|p| p.get("typeProperties"))
                && tp.get("encryptedCredential").is_some()
            {
                let ir = props
                    .and_then(|p| p.pointer("/connectVia/referenceName"))
                    .and_then(Value::as_str)
                    .unwrap_or("AutoResolveIntegrationRuntime");
                out.push(Finding {
                        category: Category::EncryptedCredential,
                        resource: here.clone(),
                        pointer: Some("/properties/typeProperties/encryptedCredential".into()),
                        detail: format!("encrypted by integration runtime {ir} into this factory's credential store: it works in no other factory (and a DR copy is always another: factory names are global), so a restore elsewhere needs the linked service's credentials from an override, which replaces it"),
                    });
            }
        }
        ResourceKind::IntegrationRuntime if ptype == Some("SelfHosted") => {
            let linked = props.and_then(|p| p.pointer("/typeProperties/linkedInfo"));
            match linked {
                    Some(info) => out.push(Finding {
                        category: Category::LinkedIntegrationRuntime,
                        resource: here.clone(),
                        pointer: Some("/properties/typeProperties/linkedInfo".into()),
                        detail: format!(
                            "shared from another factory ({}); grant the restored factory's identity access on the sharing IR",
                            info.get("resourceId").and_then(Value::as_str).unwrap_or("resource id not recorded")
                        ),
                    }),
                    None => out.push(Finding {
                        category: Category::SelfHostedNodes,
                        resource: here.clone(),
                        pointer: None,
                        detail: "self-hosted nodes must be re-registered with the restored IR's new auth key".into(),
                    }),
                }
        }
        ResourceKind::Factory => {
            let identity = definition
                .pointer("/identity/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if identity.contains("SystemAssigned") {
                out.push(Finding {
                        category: Category::SystemAssignedIdentity,
                        resource: here.clone(),
                        pointer: Some("/identity".into()),
                        detail: "a restored factory gets a new system-assigned principal: the roles and Key Vault access policies backed up for the old one are granted to it; access given any other way (database users, ACLs on files, vaults outside the factory's subscription) must be given again by hand".into(),
                    });
            }
        }
        ResourceKind::ManagedPrivateEndpoint => out.push(Finding {
            category: Category::PrivateEndpointApproval,
            resource: here.clone(),
            pointer: None,
            detail: format!(
                "the private endpoint to {} must be approved again on the target resource",
                props
                    .and_then(|p| p.get("privateLinkResourceId"))
                    .and_then(Value::as_str)
                    .unwrap_or("its resource")
            ),
        }),
        _ => {}
    }
}

/// JSON Pointers of the masked inline SecureString values in `definition`.
pub fn masked_pointers(definition: &Value) -> Vec<String> {
    let mut found = Vec::new();
    masked(definition, "", &mut |p| found.push(p));
    found
}

fn masked(value: &Value, pointer: &str, found: &mut dyn FnMut(String)) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("SecureString")
                && map.get("value").and_then(Value::as_str) == Some(MASK)
            {
                found(format!("{pointer}/value"));
            }
            for (k, v) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                masked(v, &format!("{pointer}/{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                masked(v, &format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(kind: ResourceKind, name: &str, definition: Value) -> Resource {
        Resource {
            kind,
            parent: None,
            name: name.into(),
            definition,
        }
    }

    #[test]
    fn each_category_is_found() {
        let resources = vec![
            r(
                ResourceKind::Factory,
                "adf",
                json!({"identity": {"type": "SystemAssigned,UserAssigned"}}),
            ),
            r(
                ResourceKind::IntegrationRuntime,
                "shir",
                json!({"properties": {"type": "SelfHosted"}}),
            ),
            r(
                ResourceKind::IntegrationRuntime,
                "shared",
                json!({"properties": {"type": "SelfHosted", "typeProperties": {"linkedInfo": {"authorizationType": "Rbac", "resourceId": "/subscriptions/x/ir/y"}}}}),
            ),
            r(
                ResourceKind::LinkedService,
                "LS_Sql",
                json!({"properties": {"type": "SqlServer",
                "connectVia": {"referenceName": "shir", "type": "IntegrationRuntimeReference"},
                "typeProperties": {"encryptedCredential": "abc", "password": {"type": "SecureString", "value": MASK}}}}),
            ),
            r(
                ResourceKind::Dataset,
                "DS",
                json!({"properties": {"linkedServiceName": {"referenceName": "LS_Gone", "type": "LinkedServiceReference"}}}),
            ),
            Resource {
                kind: ResourceKind::ManagedPrivateEndpoint,
                parent: Some("default".into()),
                name: "mpe".into(),
                definition: json!({"properties": {"privateLinkResourceId": "/sub/sa"}}),
            },
        ];
        let found = report(&resources);
        let cats: Vec<_> = found
            .iter()
            .map(|f| (f.category.clone(), f.resource.as_str()))
            .collect();
        assert!(cats.contains(&(Category::SystemAssignedIdentity, "factory:adf")));
        assert!(cats.contains(&(Category::SelfHostedNodes, "integrationRuntime:shir")));
        assert!(cats.contains(&(
            Category::LinkedIntegrationRuntime,
            "integrationRuntime:shared"
        )));
        assert!(cats.contains(&(Category::EncryptedCredential, "linkedService:LS_Sql")));
        assert!(cats.contains(&(Category::MaskedSecret, "linkedService:LS_Sql")));
        assert!(cats.contains(&(Category::DanglingReference, "dataset:DS")));
        assert!(cats.contains(&(
            Category::PrivateEndpointApproval,
            "managedPrivateEndpoint:default/mpe"
        )));
        let masked = found
            .iter()
            .find(|f| f.category == Category::MaskedSecret)
            .expect("masked");
        assert_eq!(
            masked.pointer.as_deref(),
            Some("/properties/typeProperties/password/value")
        );
        let enc = found
            .iter()
            .find(|f| f.category == Category::EncryptedCredential)
            .expect("enc");
        assert!(enc.detail.contains("shir"), "{}", enc.detail);
        assert_eq!(found.len(), 7, "{found:#?}");
    }
}
