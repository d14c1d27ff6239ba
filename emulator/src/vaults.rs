//! Microsoft.KeyVault vaults as ARM resources (not the data plane, which
//! `keyvault` serves): PUT, GET and list of a vault's properties, and its
//! access policies changed through `PUT {vault}/accessPolicies/{add|replace|remove}`
//! (Vaults_UpdateAccessPolicy in the Key Vault REST spec, 2023-07-01), with
//! the answers' shapes the spec gives. A vault either honours its access
//! policies (the default) or, with `enableRbacAuthorization`, only role
//! assignments; `may_get_secrets` decides with the one in force, as Key
//! Vault does for a pipeline that reads a secret.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::auth::RoleAssignment;
use crate::error::{ApiError, ApiResult};

/// The Microsoft.KeyVault api-versions the emulator answers.
pub const API_VERSIONS: &[&str] = &["2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"];

/// Vaults by lower-cased resource id.
pub type Vaults = BTreeMap<String, Value>;

/// Roles that let a principal read secrets of a vault that uses RBAC.
const SECRET_READERS: &[&str] = &[
    "Key Vault Secrets User",
    "Key Vault Secrets Officer",
    "Key Vault Administrator",
];

/// Roles that may change a vault's access policies
/// (`Microsoft.KeyVault/vaults/accessPolicies/write`).
pub const POLICY_WRITERS: &[&str] = &["Owner", "Contributor", "Key Vault Contributor"];

pub fn vault_id(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}")
}

fn not_found(name: &str, rg: &str) -> ApiError {
    ApiError::not_found(
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.KeyVault/vaults/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// A vault PUT: location, properties.tenantId and properties.sku required
/// (the spec's VaultProperties); vaultUri and provisioningState filled in.
pub fn put(vaults: &mut Vaults, sub: &str, rg: &str, name: &str, body: &Value) -> ApiResult<Value> {
    let (Some(location), Some(props)) = (
        body.get("location").and_then(Value::as_str),
        body.get("properties").and_then(Value::as_object),
    ) else {
        return Err(ApiError::bad_request(
            "a vault needs location and properties (tenantId, sku)",
        ));
    };
    if props.get("tenantId").and_then(Value::as_str).is_none() || props.get("sku").is_none() {
        return Err(ApiError::bad_request(
            "The request is missing properties.tenantId or properties.sku.",
        ));
    }
    let id = vault_id(sub, rg, name);
    let mut props: Map<String, Value> = props.clone();
    props.entry("accessPolicies").or_insert_with(|| json!([]));
    props
        .entry("enableRbacAuthorization")
        .or_insert(false.into());
    props.insert(
        "vaultUri".into(),
        format!("https://{}.vault.azure.net/", name.to_ascii_lowercase()).into(),
    );
    props.insert("provisioningState".into(), "Succeeded".into());
    let stored = json!({
        "id": id,
        "name": name,
        "type": "Microsoft.KeyVault/vaults",
        "location": location.to_ascii_lowercase().replace(' ', ""),
        "tags": body.get("tags").cloned().unwrap_or_else(|| json!({})),
        "properties": props,
    });
    vaults.insert(id.to_ascii_lowercase(), stored.clone());
    Ok(stored)
}

pub fn get(vaults: &Vaults, sub: &str, rg: &str, name: &str) -> ApiResult<Value> {
    vaults
        .get(&vault_id(sub, rg, name).to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| not_found(name, rg))
}

/// The vaults below `scope` (a subscription or a resource group).
pub fn list(vaults: &Vaults, scope: &str) -> Value {
    let prefix = format!("{}/", scope.trim_end_matches('/').to_ascii_lowercase());
    let value: Vec<Value> = vaults
        .iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .map(|(_, v)| v.clone())
        .collect();
    json!({"value": value})
}

/// `PUT {vault}/accessPolicies/{operation}`: `add` merges the sent
/// permissions into each named principal's entry (making one if needed),
/// `replace` sets them, `remove` takes them away (an entry left with none
/// goes). Answers the sent policies, as the service does.
pub fn update_policies(
    vaults: &mut Vaults,
    sub: &str,
    rg: &str,
    name: &str,
    operation: &str,
    body: &Value,
) -> ApiResult<Value> {
    let id = vault_id(sub, rg, name);
    let vault = vaults
        .get_mut(&id.to_ascii_lowercase())
        .ok_or_else(|| not_found(name, rg))?;
    let op = operation.to_ascii_lowercase();
    if !["add", "replace", "remove"].contains(&op.as_str()) {
        return Err(ApiError::bad_request(format!(
            "The access policy operation '{operation}' is not one of add, replace, remove."
        )));
    }
    let sent = body
        .pointer("/properties/accessPolicies")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("properties.accessPolicies is required"))?;
    let policies = vault["properties"]["accessPolicies"]
        .as_array_mut()
        .expect("a stored vault has accessPolicies");
    for policy in &sent {
        let text = |p: &Value, k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        };
        let (Some(tenant), Some(object)) = (text(policy, "tenantId"), text(policy, "objectId"))
        else {
            return Err(ApiError::bad_request(
                "every access policy needs tenantId and objectId",
            ));
        };
        let at = policies.iter().position(|p| {
            text(p, "tenantId") == Some(tenant.clone())
                && text(p, "objectId") == Some(object.clone())
        });
        let sent_permissions = policy
            .get("permissions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        match (op.as_str(), at) {
            ("add", Some(i)) => merge(&mut policies[i]["permissions"], &sent_permissions, true),
            ("add" | "replace", None) => policies.push(policy.clone()),
            ("replace", Some(i)) => policies[i]["permissions"] = sent_permissions,
            ("remove", Some(i)) => {
                merge(&mut policies[i]["permissions"], &sent_permissions, false);
                let empty = policies[i]["permissions"]
                    .as_object()
                    .is_none_or(|m| m.values().all(|v| v.as_array().is_none_or(Vec::is_empty)));
                if empty {
                    policies.remove(i);
                }
            }
            _ => {}
        }
    }
    Ok(json!({
        "id": format!("{id}/accessPolicies/{op}"),
        "name": op,
        "type": "Microsoft.KeyVault/vaults/accessPolicies",
        "location": vault["location"],
        "properties": {"accessPolicies": sent},
    }))
}

/// Adds (or, `add` false, removes) each permission of `sent` in `into`.
fn merge(into: &mut Value, sent: &Value, add: bool) {
    let Some(sent) = sent.as_object() else { return };
    if !into.is_object() {
        *into = json!({});
    }
    for (group, wanted) in sent {
        let list = into[group.as_str()].as_array().cloned().unwrap_or_default();
        let has = |v: &Value| {
            list.iter().any(|x| {
                x.as_str()
                    .zip(v.as_str())
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            })
        };
        let wanted = wanted.as_array().cloned().unwrap_or_default();
        let out: Vec<Value> = if add {
            list.iter()
                .cloned()
                .chain(wanted.iter().filter(|w| !has(w)).cloned())
                .collect()
        } else {
            list.iter()
                .filter(|x| {
                    !wanted.iter().any(|w| {
                        x.as_str()
                            .zip(w.as_str())
                            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
                    })
                })
                .cloned()
                .collect()
        };
        into[group.as_str()] = Value::Array(out);
    }
}

/// The vault a Key Vault base URL (`https://NAME.vault.azure.net/`) names.
pub fn by_url<'v>(vaults: &'v Vaults, url: &str) -> Option<&'v Value> {
    let host = url
        .trim()
        .trim_start_matches("https://")
        .split(['/', '.'])
        .next()?
        .to_ascii_lowercase();
    vaults.values().find(|v| {
        v["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(&host))
    })
}

/// Whether `principal` may get secrets from `vault`: by an access policy
/// granting `get` (or `all`) on secrets, or, when the vault uses RBAC, by a
/// secrets role at a scope covering it.
pub fn may_get_secrets(vault: &Value, principal: &str, assignments: &[RoleAssignment]) -> bool {
    let id = vault["id"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if vault["properties"]["enableRbacAuthorization"] == json!(true) {
        return assignments.iter().any(|a| {
            a.principal_id.eq_ignore_ascii_case(principal)
                && id.starts_with(&a.scope.trim_end_matches('/').to_ascii_lowercase())
                && SECRET_READERS
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&a.role))
        });
    }
    vault["properties"]["accessPolicies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["objectId"]
                .as_str()
                .is_some_and(|o| o.eq_ignore_ascii_case(principal))
        })
        .flat_map(|p| {
            p["permissions"]["secrets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .any(|s| {
            s.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("get") || s.eq_ignore_ascii_case("all"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vaults {
        let mut v = Vaults::new();
        put(
            &mut v,
            "s",
            "r",
            "kv",
            &json!({"location": "West Europe",
                    "properties": {"tenantId": "t", "sku": {"family": "A", "name": "standard"}}}),
        )
        .expect("put");
        v
    }

    #[test]
    fn access_policies_add_merge_and_remove() {
        let mut v = vault();
        let policy = |secrets: &[&str]| {
            json!({"properties": {"accessPolicies": [
                {"tenantId": "t", "objectId": "P", "permissions": {"secrets": secrets}}]}})
        };
        let out = update_policies(&mut v, "s", "r", "kv", "add", &policy(&["get"])).expect("add");
        assert_eq!(out["name"], "add");
        assert_eq!(out["type"], "Microsoft.KeyVault/vaults/accessPolicies");
        let kv = get(&v, "s", "r", "kv").expect("get");
        assert!(may_get_secrets(&kv, "p", &[]));
        update_policies(&mut v, "s", "r", "kv", "add", &policy(&["list", "GET"])).expect("add");
        let kv = get(&v, "s", "r", "kv").expect("get");
        assert_eq!(
            kv["properties"]["accessPolicies"][0]["permissions"]["secrets"],
            json!(["get", "list"])
        );
        update_policies(&mut v, "s", "r", "kv", "remove", &policy(&["get", "list"])).expect("rm");
        let kv = get(&v, "s", "r", "kv").expect("get");
        assert_eq!(kv["properties"]["accessPolicies"], json!([]));
        assert!(!may_get_secrets(&kv, "p", &[]));
        assert!(update_policies(&mut v, "s", "r", "kv", "merge", &policy(&[])).is_err());
        assert_eq!(
            by_url(&v, "https://KV.vault.azure.net/").map(|x| x["name"].clone()),
            Some(json!("kv"))
        );
    }

    #[test]
    fn a_vault_on_rbac_ignores_its_policies() {
        let mut v = vault();
        let id = vault_id("s", "r", "kv").to_ascii_lowercase();
        v.get_mut(&id).expect("kv")["properties"]["enableRbacAuthorization"] = json!(true);
        let policy = json!({"properties": {"accessPolicies": [
            {"tenantId": "t", "objectId": "p", "permissions": {"secrets": ["get"]}}]}});
        update_policies(&mut v, "s", "r", "kv", "add", &policy).expect("add");
        let kv = get(&v, "s", "r", "kv").expect("get");
        assert!(!may_get_secrets(&kv, "p", &[]));
        let user = RoleAssignment {
            principal_id: "p".into(),
            role: "Key Vault Secrets User".into(),
            scope: "/subscriptions/s/resourceGroups/r".into(),
            ..Default::default()
        };
        assert!(may_get_secrets(&kv, "p", &[user]));
    }
}
