//! Microsoft.Authorization role assignments over REST (2022-04-01), on the
//! same assignments the emulator authorizes with: list at a scope (with
//! `$filter=assignedTo('{principalId}')`), PUT and GET at any scope.
//! Writing one needs Owner, User Access Administrator or Role Based Access
//! Control Administrator at that scope, as in Azure.

use serde_json::{Value, json};

use crate::auth::RoleAssignment;
use crate::error::{ApiError, ApiResult};

pub const API_VERSIONS: &[&str] = &["2020-04-01-preview", "2020-10-01-preview", "2022-04-01"];

/// Built-in roles by their definition GUIDs (the same in every tenant).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"),
    (
        "673868aa-7521-48a0-acc6-0f60742d39f5",
        "Data Factory Contributor",
    ),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c2a72d9d",
        "User Access Administrator",
    ),
    (
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
    ),
    (
        "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
        "Monitoring Contributor",
    ),
    (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Contributor",
    ),
    (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
    ),
    (
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
    ),
    (
        "12338af0-0e69-4776-bea7-57ae8d297424",
        "Key Vault Crypto User",
    ),
];

/// Roles that may write role assignments.
pub const GRANTORS: &[&str] = &[
    "Owner",
    "User Access Administrator",
    "Role Based Access Control Administrator",
];

/// A built-in role's name; any other definition (a custom role, a
/// built-in the emulator does not know) keeps its GUID, and grants nothing
/// here.
fn role_name(definition_id: &str) -> Option<String> {
    let guid = definition_id.rsplit('/').next().unwrap_or(definition_id);
    if uuid::Uuid::parse_str(guid).is_err() {
        return None;
    }
    Some(
        BUILT_IN
            .iter()
            .find(|(g, _)| g.eq_ignore_ascii_case(guid))
            .map_or_else(|| guid.to_ascii_lowercase(), |(_, n)| n.to_string()),
    )
}

fn role_guid(name: &str) -> Option<String> {
    BUILT_IN
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(g, _)| g.to_string())
        .or_else(|| {
            uuid::Uuid::parse_str(name)
                .is_ok()
                .then(|| name.to_ascii_lowercase())
        })
}

/// What each built-in role lets its holder do, in the role definition's
/// `permissions` form (the emulator's reading of them: `auth::role_grants`).
fn built_in_actions(name: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    match name {
        "Owner" => (vec!["*"], vec![]),
        "Contributor" => (vec!["*"], vec![]),
        "Reader" => (vec!["*/read"], vec![]),
        "Data Factory Contributor" => (
            vec![
                "Microsoft.DataFactory/dataFactories/*",
                "Microsoft.DataFactory/factories/*",
            ],
            vec![],
        ),
        "User Access Administrator" | "Role Based Access Control Administrator" => (
            vec!["*/read", "Microsoft.Authorization/roleAssignments/*"],
            vec![],
        ),
        "Monitoring Contributor" => (vec!["*/read", "Microsoft.Insights/*"], vec![]),
        "Storage Blob Data Contributor" => (
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/*"],
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
        ),
        "Storage Blob Data Reader" => (
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        ),
        "Key Vault Secrets User" => (
            vec![],
            vec![
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            ],
        ),
        "Key Vault Crypto User" => (
            vec![],
            vec![
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/keys/wrap/action",
                "Microsoft.KeyVault/vaults/keys/unwrap/action",
            ],
        ),
        _ => (vec![], vec![]),
    }
}

/// A role definition as the REST API answers it (GetRoleDefinitionById):
/// a built-in one by its GUID, or a custom one made over REST.
pub fn definition(custom: &[Value], scope: &str, id: &str) -> ApiResult<Value> {
    let scope = scope.trim_end_matches('/');
    if let Some(c) = custom.iter().find(|c| {
        c["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(id))
    }) {
        return Ok(c.clone());
    }
    let Some((guid, name)) = BUILT_IN.iter().find(|(g, _)| g.eq_ignore_ascii_case(id)) else {
        return Err(ApiError::not_found(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{id}' does not exist."),
        ));
    };
    let (actions, data_actions) = built_in_actions(name);
    Ok(json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": guid,
        "properties": {
            "roleName": name,
            "type": "BuiltInRole",
            "description": format!("{name} (built-in role)"),
            "assignableScopes": ["/"],
            "permissions": [{"actions": actions, "notActions": [], "dataActions": data_actions, "notDataActions": []}],
        }
    }))
}

/// The role definitions visible at `scope`, or those `roleName eq '…'` names.
pub fn definitions(custom: &[Value], scope: &str, filter: Option<&str>) -> Vec<Value> {
    let wanted = filter.and_then(|f| {
        f.trim()
            .strip_prefix("roleName eq '")
            .and_then(|rest| rest.strip_suffix('\''))
    });
    BUILT_IN
        .iter()
        .filter_map(|(g, _)| definition(&[], scope, g).ok())
        .chain(custom.iter().cloned())
        .filter(|d| {
            wanted.is_none_or(|w| {
                d["properties"]["roleName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(w))
            })
        })
        .collect()
}

/// A custom role definition PUT at `scope` (roleName, permissions and
/// assignableScopes required); its GUID is its name.
pub fn put_definition(
    custom: &mut Vec<Value>,
    scope: &str,
    id: &str,
    body: &Value,
) -> ApiResult<Value> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!(
            "The role definition ID '{id}' is not valid: it must be a GUID."
        )));
    }
    let props = body.get("properties").cloned().unwrap_or_default();
    if props["roleName"].as_str().is_none()
        || !props["permissions"].is_array()
        || !props["assignableScopes"].is_array()
    {
        return Err(ApiError::bad_request(
            "a role definition needs properties.roleName, permissions and assignableScopes",
        ));
    }
    let mut props = props;
    props["type"] = "CustomRole".into();
    let stored = json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{id}", scope.trim_end_matches('/')),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": id.to_ascii_lowercase(),
        "properties": props,
    });
    custom.retain(|c| {
        !c["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(id))
    });
    custom.push(stored.clone());
    Ok(stored)
}

/// An assignment as the REST API answers it.
pub fn view(a: &RoleAssignment) -> Value {
    let scope = a.scope.trim_end_matches('/');
    let guid = role_guid(&a.role).unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let name = if a.name.is_empty() {
        crate::auth::derived_guid(&format!("{}|{}|{}", a.principal_id, a.role, scope))
    } else {
        a.name.clone()
    };
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "type": "Microsoft.Authorization/roleAssignments",
        "name": name,
        "properties": {
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
            "principalId": a.principal_id,
            "principalType": if a.principal_type.is_empty() { "ServicePrincipal" } else { &a.principal_type },
            "scope": scope,
        }
    })
}

/// Assignments at `scope` or below it (ARM's list at a scope with
/// `atScope()` off; with it, at the scope and above), or for one principal
/// with `assignedTo('…')`.
pub fn list(all: &[RoleAssignment], scope: &str, filter: Option<&str>) -> Vec<Value> {
    let principal = filter.and_then(|f| {
        f.strip_prefix("assignedTo('")
            .and_then(|rest| rest.strip_suffix("')"))
    });
    // `atScope()`: only what is assigned at the scope or above it.
    let at_scope = filter.is_some_and(|f| f.trim() == "atScope()");
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    all.iter()
        .filter(|a| a.scope != "/keyvault")
        .filter(|a| principal.is_none_or(|p| a.principal_id.eq_ignore_ascii_case(p)))
        .filter(|a| {
            let at = a.scope.trim_end_matches('/').to_ascii_lowercase();
            let above = scope.starts_with(&at);
            principal.is_some() || above || (!at_scope && at.starts_with(&scope))
        })
        .map(view)
        .collect()
}

fn at<'a>(all: &'a [RoleAssignment], scope: &str, name: &str) -> Option<&'a RoleAssignment> {
    all.iter().find(|a| {
        a.scope
            .trim_end_matches('/')
            .eq_ignore_ascii_case(scope.trim_end_matches('/'))
            && view(a)["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

pub fn get(all: &[RoleAssignment], scope: &str, name: &str) -> ApiResult<Value> {
    at(all, scope, name).map(view).ok_or_else(|| {
        ApiError::not_found(
            "RoleAssignmentNotFound",
            format!("The role assignment '{name}' is not found."),
        )
    })
}

/// DELETE: the assignment as it was (200), or None (204) when there was none.
pub fn delete(all: &mut Vec<RoleAssignment>, scope: &str, name: &str) -> Option<Value> {
    let gone = at(all, scope, name).map(view)?;
    all.retain(|a| view(a)["id"] != gone["id"]);
    Some(gone)
}

/// A PUT: the assignment named `name` at `scope`; 201 when new.
pub fn put(
    all: &mut Vec<RoleAssignment>,
    custom: &[Value],
    scope: &str,
    name: &str,
    body: &Value,
) -> ApiResult<(u16, Value)> {
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let definition = text("/properties/roleDefinitionId");
    let guid = definition.rsplit('/').next().unwrap_or(definition);
    let known = |g: &str| {
        BUILT_IN.iter().any(|(b, _)| b.eq_ignore_ascii_case(g))
            || custom.iter().any(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(g))
            })
    };
    // As Azure: only a role that exists (built in, or defined in the tenant).
    let Some(role) = role_name(definition).filter(|_| known(guid)) else {
        return Err(ApiError::new(
            400,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{definition}' does not exist."),
        ));
    };
    let principal = text("/properties/principalId");
    if principal.is_empty() {
        return Err(ApiError::bad_request("properties.principalId is required"));
    }
    let scope = scope.trim_end_matches('/').to_string();
    if let Some(same) = all.iter().find(|a| {
        a.principal_id.eq_ignore_ascii_case(principal)
            && a.role.eq_ignore_ascii_case(&role)
            && a.scope.eq_ignore_ascii_case(&scope)
            && !a.name.eq_ignore_ascii_case(name)
    }) {
        return Err(ApiError::new(
            409,
            "RoleAssignmentExists",
            format!(
                "The role assignment already exists. The ID of the existing role assignment is {}.",
                same.name
            ),
        ));
    }
    let existed = at(all, &scope, name).is_some();
    all.retain(|a| !a.name.eq_ignore_ascii_case(name));
    let assignment = RoleAssignment {
        principal_id: principal.to_string(),
        role,
        scope,
        not_actions: Vec::new(),
        name: name.to_string(),
        principal_type: match text("/properties/principalType") {
            "" => "ServicePrincipal".to_string(),
            t => t.to_string(),
        },
        factory_identity: false,
    };
    let out = view(&assignment);
    all.push(assignment);
    Ok((if existed { 200 } else { 201 }, out))
}
