//! Microsoft.Storage, as much as adfdr reads of it: storage account
//! properties and the blob service's properties (soft delete, versioning),
//! PUT and GET, as the REST spec's examples (2025-08-01) show them. Enough
//! for `config check` to judge a backup account's protection; no data plane
//! (Azurite serves that).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// The Microsoft.Storage api-versions the emulator answers.
pub const API_VERSIONS: &[&str] = &["2023-01-01", "2023-05-01", "2024-01-01", "2025-08-01"];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Account {
    pub body: Value,
    pub blob_service: Value,
}

/// Accounts by lower-cased resource id.
pub type Accounts = BTreeMap<String, Account>;

fn account_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
    )
}

/// A storage account PUT: sku, kind and location required; what the
/// service owns (provisioningState, creationTime, endpoints, primaryLocation,
/// statusOfPrimary) filled in; the rest kept as sent.
pub fn put_account(
    accounts: &mut Accounts,
    sub: &str,
    rg: &str,
    name: &str,
    body: Value,
) -> ApiResult<Value> {
    if !(3..=24).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(ApiError::new(
            400,
            "AccountNameInvalid",
            format!(
                "{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
            ),
        ));
    }
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
    let (Some(sku), Some(kind), Some(location)) =
        (text("/sku/name"), text("/kind"), text("/location"))
    else {
        return Err(ApiError::bad_request(
            "a storage account needs sku.name, kind and location",
        ));
    };
    let id = account_id(sub, rg, name);
    let existing = accounts.get(&id.to_ascii_lowercase());
    let mut props: Map<String, Value> = existing
        .and_then(|a| a.body.get("properties").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    if let Some(sent) = body.get("properties").and_then(Value::as_object) {
        for (k, v) in sent {
            props.insert(k.clone(), v.clone());
        }
    }
    let region = location.to_ascii_lowercase().replace(' ', "");
    server_owned(&mut props, &region, &sku);
    let endpoint = |svc: &str| format!("https://{name}.{svc}.core.windows.net/");
    props.insert(
        "primaryEndpoints".into(),
        json!({"blob": endpoint("blob"), "dfs": endpoint("dfs"), "file": endpoint("file"),
               "queue": endpoint("queue"), "table": endpoint("table"), "web": endpoint("web")}),
    );
    let tier = if sku.starts_with("Premium") {
        "Premium"
    } else {
        "Standard"
    };
    let mut stored = json!({
        "id": id,
        "name": name,
        "type": "Microsoft.Storage/storageAccounts",
        "location": region,
        "kind": kind,
        "sku": {"name": sku, "tier": tier},
        "tags": body.get("tags").cloned().unwrap_or_else(|| json!({})),
        "properties": props,
    });
    if let Some(extended) = body.get("extendedLocation") {
        stored["extendedLocation"] = extended.clone();
    }
    let blob_service = existing
        .map(|a| a.blob_service.clone())
        .unwrap_or_else(|| default_blob_service(&id));
    accounts.insert(
        id.to_ascii_lowercase(),
        Account {
            body: stored.clone(),
            blob_service,
        },
    );
    Ok(stored)
}

/// What the service sets on an account itself: state, locations (a
/// geo-redundant SKU's pair too), times, and its defaults.
fn server_owned(props: &mut Map<String, Value>, region: &str, sku: &str) {
    props.insert("provisioningState".into(), "Succeeded".into());
    props.insert("primaryLocation".into(), region.to_string().into());
    props.insert("statusOfPrimary".into(), "available".into());
    props
        .entry("creationTime")
        .or_insert_with(|| crate::clock::now_rfc3339().into());
    props.entry("minimumTlsVersion").or_insert("TLS1_0".into());
    let now = crate::clock::now_rfc3339();
    props
        .entry("keyCreationTime")
        .or_insert_with(|| json!({"key1": now, "key2": now}));
    if let Some(services) = props
        .get_mut("encryption")
        .and_then(|e| e.get_mut("services"))
        .and_then(Value::as_object_mut)
    {
        for service in services.values_mut() {
            if service["enabled"] == json!(true) && service.get("lastEnabledTime").is_none() {
                service["lastEnabledTime"] = now.clone().into();
            }
        }
    }
    props.entry("allowBlobPublicAccess").or_insert(false.into());
    props
        .entry("supportsHttpsTrafficOnly")
        .or_insert(true.into());
    let geo = ["GRS", "RAGRS", "GZRS", "RAGZRS"]
        .iter()
        .any(|g| sku.ends_with(&format!("_{g}")));
    if geo {
        props.insert("secondaryLocation".into(), format!("{region}-pair").into());
        props.insert("statusOfSecondary".into(), "available".into());
    }
}

/// A new account's blob service: no soft delete, no versioning (the
/// service's defaults for an account made through the API).
fn default_blob_service(account: &str) -> Value {
    json!({
        "id": format!("{account}/blobServices/default"),
        "name": "default",
        "type": "Microsoft.Storage/storageAccounts/blobServices",
        "properties": {
            "cors": {"corsRules": []},
            "deleteRetentionPolicy": {"enabled": false},
            "containerDeleteRetentionPolicy": {"enabled": false},
            "isVersioningEnabled": false,
        }
    })
}

fn not_found(name: &str, rg: &str) -> ApiError {
    ApiError::not_found(
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.Storage/storageAccounts/{name}' under resource group '{rg}' was not found."
        ),
    )
}

pub fn get_account(accounts: &Accounts, sub: &str, rg: &str, name: &str) -> ApiResult<Value> {
    accounts
        .get(&account_id(sub, rg, name).to_ascii_lowercase())
        .map(|a| a.body.clone())
        .ok_or_else(|| not_found(name, rg))
}

/// blobServices/default PUT: the properties sent replace those named, the
/// answer carries the account's sku.
pub fn put_blob_service(
    accounts: &mut Accounts,
    sub: &str,
    rg: &str,
    name: &str,
    body: Value,
) -> ApiResult<Value> {
    let account = accounts
        .get_mut(&account_id(sub, rg, name).to_ascii_lowercase())
        .ok_or_else(|| not_found(name, rg))?;
    if let (Some(props), Some(sent)) = (
        account
            .blob_service
            .get_mut("properties")
            .and_then(Value::as_object_mut),
        body.get("properties").and_then(Value::as_object),
    ) {
        for (k, v) in sent {
            props.insert(k.clone(), v.clone());
        }
    }
    Ok(blob_service_view(account))
}

pub fn get_blob_service(accounts: &Accounts, sub: &str, rg: &str, name: &str) -> ApiResult<Value> {
    accounts
        .get(&account_id(sub, rg, name).to_ascii_lowercase())
        .map(blob_service_view)
        .ok_or_else(|| not_found(name, rg))
}

fn blob_service_view(account: &Account) -> Value {
    let mut view = account.blob_service.clone();
    view["sku"] = account.body["sku"].clone();
    view
}
