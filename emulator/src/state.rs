//! The emulated Data Factory service: factories, their child resources and the
//! rules the real service enforces. No HTTP here; `http.rs` maps requests onto
//! these operations.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::kinds::{Kind, check_dashed_name, references};

pub const MASK: &str = "**********";

/// A child resource of a factory, stored as it was PUT minus read-only fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Child {
    pub name: String,
    /// Managed private endpoints: the managed virtual network they live in.
    #[serde(default)]
    pub parent: Option<String>,
    pub body: Value,
    pub etag: String,
    /// Triggers: Started/Stopped; managed IRs: Initial/Started/Stopped; CDC: Running/Stopped.
    #[serde(default)]
    pub runtime_state: Option<String>,
    /// Event triggers: the Event Grid subscription status.
    #[serde(default)]
    pub subscription: Option<String>,
    /// Server-generated read-only properties merged into `properties` on output.
    #[serde(default)]
    pub server: Map<String, Value>,
    /// Managed IRs mid start or stop: the state shown (Starting, Stopping)
    /// until the epoch millisecond given, then `runtime_state`.
    #[serde(default)]
    pub settling: Option<(String, i128)>,
}

impl Child {
    /// The state as the service shows it at `now_ms`.
    pub fn state_at(&self, now_ms: i128) -> Option<String> {
        match &self.settling {
            Some((shown, until)) if now_ms < *until => Some(shown.clone()),
            _ => self.runtime_state.clone(),
        }
    }
}

/// A long-running operation the service answered 202 for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Operation {
    pub factory_key: String,
    pub kind: Kind,
    pub name: String,
    /// start, stop.
    pub verb: String,
    pub done_ms: i128,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Factory {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    /// location, tags, identity, properties (read-only fields stripped), unknown keys verbatim.
    pub body: Value,
    pub etag: String,
    pub create_time: String,
    #[serde(default)]
    pub system_principal_id: Option<String>,
    #[serde(default)]
    pub global_parameters_etag: String,
    pub children: BTreeMap<Kind, BTreeMap<String, Child>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PipelineRun {
    pub run_id: String,
    pub factory_key: String,
    pub pipeline: String,
    pub parameters: Value,
    pub start_unix_ms: i128,
    pub duration_ms: u64,
    pub failure: Option<String>,
    pub cancelled_unix_ms: Option<i128>,
}

/// Everything the emulator remembers (and writes to `--state`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct World {
    pub factories: BTreeMap<String, Factory>,
    pub runs: Vec<PipelineRun>,
    /// `factory_key/pipeline` (lower case) of pipelines whose runs fail.
    pub failing_pipelines: BTreeSet<String>,
    pub etag_seq: u64,
    #[serde(default)]
    pub vault: crate::keyvault::Vault,
    #[serde(default)]
    pub apps: Vec<crate::auth::App>,
    #[serde(default)]
    pub role_assignments: Vec<crate::auth::RoleAssignment>,
    /// Long-running operations by id.
    #[serde(default)]
    pub operations: BTreeMap<String, Operation>,
    /// Storage accounts (Microsoft.Storage) by lower-cased id.
    #[serde(default)]
    pub storage_accounts: crate::storage::Accounts,
    /// Diagnostic settings and locks, on factories and resource groups.
    #[serde(default)]
    pub extensions: crate::extension::Extensions,
    /// Key vaults as ARM resources (Microsoft.KeyVault/vaults) by
    /// lower-cased id: their access policies.
    #[serde(default)]
    pub key_vaults: crate::vaults::Vaults,
    /// Custom role definitions (Microsoft.Authorization/roleDefinitions).
    #[serde(default)]
    pub role_definitions: Vec<Value>,
    /// ARM's events for the writes accepted (crate::events), oldest first.
    #[serde(default)]
    pub events: std::collections::VecDeque<Value>,
}

pub fn factory_key(subscription: &str, resource_group: &str, factory: &str) -> String {
    format!("{subscription}/{resource_group}/{factory}").to_ascii_lowercase()
}

fn child_key(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}/{name}").to_ascii_lowercase(),
        None => name.to_ascii_lowercase(),
    }
}

/// The ARM id of a child resource.
pub fn child_id(
    sub: &str,
    rg: &str,
    factory: &str,
    kind: Kind,
    parent: Option<&str>,
    name: &str,
) -> String {
    let base = factory_id(sub, rg, factory);
    match parent {
        Some(vnet) => {
            format!("{base}/managedVirtualNetworks/{vnet}/managedPrivateEndpoints/{name}")
        }
        None => format!("{base}/{}/{name}", kind.segment()),
    }
}

pub fn factory_id(subscription: &str, resource_group: &str, factory: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.DataFactory/factories/{factory}"
    )
}

pub use crate::clock::{now_rfc3339, rfc3339};

fn factory_not_found(resource_group: &str, factory: &str) -> ApiError {
    ApiError::not_found(
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.DataFactory/factories/{factory}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn entity_not_found(kind: Kind, name: &str) -> ApiError {
    ApiError::not_found(
        "NotFound",
        format!(
            "Entity {name} not found: no {} with that name exists in this factory.",
            kind.label()
        ),
    )
}

fn strip_etag_quotes(s: &str) -> &str {
    s.trim().trim_start_matches("W/").trim_matches('"')
}

/// `If-Match` as ARM checks it on PUT: `*` needs the entity to exist, an ETag must equal its ETag.
fn check_if_match(if_match: Option<&str>, current: Option<&str>) -> ApiResult<()> {
    let Some(wanted) = if_match else {
        return Ok(());
    };
    let ok = match current {
        None => false,
        Some(_) if wanted.trim() == "*" => true,
        Some(etag) => strip_etag_quotes(wanted) == strip_etag_quotes(etag),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            412,
            "PreconditionFailed",
            format!(
                "The specified precondition 'If-Match = {wanted}' failed: the entity's current ETag is {}.",
                current.map_or(
                    "absent (the entity does not exist)".to_string(),
                    |e| format!("'{e}'")
                )
            ),
        ))
    }
}

/// Replaces every inline SecureString value with asterisks, as GET and list do.
/// One page of a list: the items after a key (keyset paging), at most `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    pub after: Option<&'a str>,
    pub limit: usize,
}

pub fn mask_secure_strings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("SecureString")
                && map.contains_key("value")
            {
                map.insert("value".into(), Value::String(MASK.into()));
            }
            map.values_mut().for_each(mask_secure_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secure_strings),
        _ => {}
    }
}

fn is_event_trigger(body: &Value) -> bool {
    matches!(
        body.pointer("/properties/type").and_then(Value::as_str),
        Some("BlobEventsTrigger" | "CustomEventsTrigger")
    )
}

fn is_managed_ir(body: &Value) -> bool {
    body.pointer("/properties/type").and_then(Value::as_str) == Some("Managed")
}

/// Global parameter types come back capitalised (`int` -> `Int`), as the service answers.
fn normalize_global_parameters(params: &mut Value) {
    let Some(map) = params.as_object_mut() else {
        return;
    };
    for param in map.values_mut() {
        if let Some(Value::String(ty)) = param.get_mut("type") {
            let canonical = match ty.to_ascii_lowercase().as_str() {
                "int" => "Int",
                "string" => "String",
                "float" => "Float",
                "bool" => "Bool",
                "array" => "Array",
                "object" => "Object",
                _ => continue,
            };
            *ty = canonical.to_string();
        }
    }
}

fn remove_pointer(body: &mut Value, parent: &str, key: &str) {
    if let Some(Value::Object(map)) = body.pointer_mut(parent) {
        map.remove(key);
    }
}

/// Drops what a client may send but the service owns.
fn strip_child_read_only(kind: Kind, body: &mut Value) {
    if let Value::Object(map) = body {
        for key in ["id", "name", "type", "etag", "Etag"] {
            map.remove(key);
        }
    }
    let props: &[&str] = match kind {
        Kind::Trigger => &["runtimeState"],
        Kind::IntegrationRuntime => &["state"],
        Kind::ManagedVirtualNetwork => &["vNetId", "alias"],
        Kind::ManagedPrivateEndpoint => &["provisioningState", "isReserved", "connectionState"],
        Kind::PrivateEndpointConnection => &["provisioningState"],
        _ => &[],
    };
    for key in props {
        remove_pointer(body, "/properties", key);
    }
}

fn strip_factory_read_only(body: &mut Value) {
    if let Value::Object(map) = body {
        for key in ["id", "name", "type", "eTag", "etag"] {
            map.remove(key);
        }
    }
    for key in ["provisioningState", "createTime", "version"] {
        remove_pointer(body, "/properties", key);
    }
    for key in ["principalId", "tenantId"] {
        remove_pointer(body, "/identity", key);
    }
    if let Some(Value::Object(uamis)) = body.pointer_mut("/identity/userAssignedIdentities") {
        for uami in uamis.values_mut() {
            if let Value::Object(u) = uami {
                u.remove("clientId");
                u.remove("principalId");
            }
        }
    }
}

impl World {
    pub fn next_etag(&mut self) -> String {
        self.etag_seq += 1;
        let secs = OffsetDateTime::now_utc().unix_timestamp() as u32;
        format!(
            "{:08x}-0000-0200-0000-{:08x}0000",
            self.etag_seq as u32, secs
        )
    }

    pub fn factory(&self, sub: &str, rg: &str, name: &str) -> ApiResult<&Factory> {
        self.factories
            .get(&factory_key(sub, rg, name))
            .ok_or_else(|| factory_not_found(rg, name))
    }

    fn factory_mut(&mut self, sub: &str, rg: &str, name: &str) -> ApiResult<&mut Factory> {
        self.factories
            .get_mut(&factory_key(sub, rg, name))
            .ok_or_else(|| factory_not_found(rg, name))
    }

    /// A child resource to change in place, or the service's 404.
    fn child_mut(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        kind: Kind,
        name: &str,
    ) -> ApiResult<&mut Child> {
        self.factory_mut(sub, rg, f)?
            .children
            .entry(kind)
            .or_default()
            .get_mut(&name.to_ascii_lowercase())
            .ok_or_else(|| entity_not_found(kind, name))
    }

    // ----- factories -----------------------------------------------------------------

    pub fn put_factory(
        &mut self,
        sub: &str,
        rg: &str,
        name: &str,
        mut body: Value,
        if_match: Option<&str>,
        tenant_id: &str,
    ) -> ApiResult<Value> {
        check_dashed_name(name, "Data factory")
            .map_err(|m| ApiError::new(400, "InvalidResourceName", m))?;
        if !body.is_object() {
            return Err(invalid_content("the factory body must be a JSON object"));
        }
        strip_factory_read_only(&mut body);
        if let Some(gp) = body.pointer_mut("/properties/globalParameters") {
            normalize_global_parameters(gp);
        }
        let key = factory_key(sub, rg, name);
        let existing = self.factories.get(&key);
        check_if_match(if_match, existing.map(|f| f.etag.as_str()))?;
        check_encryption(&body, existing)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (create_time, principal, stored_name) = match existing {
            Some(f) => {
                let old = f
                    .body
                    .get("location")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match &location {
                    Some(new)
                        if !new.eq_ignore_ascii_case(old)
                            && normalize_region(new) != normalize_region(old) =>
                    {
                        return Err(ApiError::new(
                            409,
                            "InvalidResourceLocation",
                            format!(
                                "The resource '{name}' already exists in location '{old}' in resource group '{rg}'. A resource with the same name cannot be created in location '{new}'. Please select a new resource name."
                            ),
                        ));
                    }
                    None => {
                        body["location"] = Value::String(old.to_string());
                    }
                    _ => {}
                }
                (
                    f.create_time.clone(),
                    f.system_principal_id.clone(),
                    f.name.clone(),
                )
            }
            None => {
                self.may_create(name, location.is_some())?;
                (now_rfc3339(), None, name.to_string())
            }
        };
        let principal = system_principal(&body, principal);
        let etag = format!("\"{}\"", self.next_etag());
        let gp_etag = self.next_etag();
        let children = self
            .factories
            .remove(&key)
            .map(|f| f.children)
            .unwrap_or_default();
        let factory = Factory {
            subscription: sub.to_string(),
            resource_group: rg.to_string(),
            name: stored_name,
            body,
            etag,
            create_time,
            system_principal_id: principal,
            global_parameters_etag: gp_etag,
            children,
        };
        let view = factory_view(&factory, tenant_id);
        self.factories.insert(key, factory);
        Ok(view)
    }

    /// A new factory needs a location, and its name must be free anywhere.
    fn may_create(&self, name: &str, located: bool) -> ApiResult<()> {
        if !located {
            return Err(ApiError::new(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        }
        // Factory names are global: the same name in any other
        // subscription or resource group is taken (the service's
        // answer, quoted in Microsoft's incremental-copy tutorial).
        if let Some(taken) = self
            .factories
            .values()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            return Err(ApiError::new(
                409,
                "DataFactoryNameInUse",
                format!(
                    "The specified resource name '{}' is already in use. Resource names must be globally unique.",
                    taken.name
                ),
            ));
        }
        Ok(())
    }

    pub fn patch_factory(
        &mut self,
        sub: &str,
        rg: &str,
        name: &str,
        patch: Value,
        tenant_id: &str,
    ) -> ApiResult<Value> {
        let Value::Object(patch) = patch else {
            return Err(invalid_content(
                "the factory update body must be a JSON object",
            ));
        };
        let etag = format!("\"{}\"", self.next_etag());
        let factory = self.factory_mut(sub, rg, name)?;
        for (key, value) in patch {
            match key.as_str() {
                "tags" | "identity" => {
                    factory.body[key.as_str()] = value;
                }
                "properties" => {
                    if let Some(access) = value.get("publicNetworkAccess") {
                        factory.body["properties"]["publicNetworkAccess"] = access.clone();
                    }
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "The property '{other}' cannot be updated with PATCH; only tags, identity and properties.publicNetworkAccess can."
                    )));
                }
            }
        }
        strip_factory_read_only(&mut factory.body);
        factory.system_principal_id =
            system_principal(&factory.body, factory.system_principal_id.take());
        factory.etag = etag;
        Ok(factory_view(factory, tenant_id))
    }

    /// What a seeded factory's identity may reach: its role assignments, and
    /// its access policies on vaults (made, on access policies, if absent).
    fn seed_access(
        &mut self,
        sub: &str,
        rg: &str,
        name: &str,
        roles: &[Value],
        policies: &[Value],
        tenant_id: &str,
    ) -> ApiResult<()> {
        let Some(principal) = self.factory(sub, rg, name)?.system_principal_id.clone() else {
            return Ok(());
        };
        let text = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace("{subscription}", sub)
        };
        for r in roles {
            let guid = text(r, "/properties/roleDefinitionId");
            let role = crate::rbac::BUILT_IN
                .iter()
                .find(|(g, _)| g.eq_ignore_ascii_case(&guid))
                .map_or(guid.clone(), |(_, n)| n.to_string());
            let scope = text(r, "/properties/scope");
            self.role_assignments.push(crate::auth::RoleAssignment {
                name: crate::auth::derived_guid(&format!("{principal}{role}{scope}")),
                principal_id: principal.clone(),
                role,
                scope,
                principal_type: "ServicePrincipal".into(),
                factory_identity: true,
                ..Default::default()
            });
        }
        for p in policies {
            let vault = text(p, "/properties/vault");
            let parts: Vec<&str> = vault.split('/').collect();
            let [_, "subscriptions", vsub, _, vrg, _, _, _, vname] = parts[..] else {
                return Err(ApiError::bad_request(format!(
                    "a seeded access policy's vault is not a vault id: {vault}"
                )));
            };
            if crate::vaults::get(&self.key_vaults, vsub, vrg, vname).is_err() {
                let body = json!({"location": "westeurope", "properties": {
                    "tenantId": tenant_id, "sku": {"family": "A", "name": "standard"}}});
                crate::vaults::put(&mut self.key_vaults, vsub, vrg, vname, &body)?;
            }
            let add = json!({"properties": {"accessPolicies": [{
                "tenantId": tenant_id, "objectId": principal,
                "permissions": p.pointer("/properties/permissions").cloned().unwrap_or(json!({}))}]}});
            crate::vaults::update_policies(&mut self.key_vaults, vsub, vrg, vname, "add", &add)?;
        }
        Ok(())
    }

    /// A role assignment made through the admin API.
    pub fn add_role_assignment(&mut self, a: crate::auth::RoleAssignment) {
        self.role_assignments.push(a);
        self.mark_factory_identities();
    }

    /// Marks the assignments held by a factory's system-assigned identity
    /// (they do not end the open sandbox: `auth::open`).
    pub fn mark_factory_identities(&mut self) {
        let principals: BTreeSet<String> = self
            .factories
            .values()
            .filter_map(|f| f.system_principal_id.as_deref())
            .map(str::to_ascii_lowercase)
            .collect();
        for a in &mut self.role_assignments {
            a.factory_identity |= principals.contains(&a.principal_id.to_ascii_lowercase());
        }
    }

    /// Returns whether the factory existed (200) or not (204).
    pub fn delete_factory(&mut self, sub: &str, rg: &str, name: &str) -> bool {
        let key = factory_key(sub, rg, name);
        self.runs.retain(|r| r.factory_key != key);
        // Its diagnostic settings and locks go with it, as in ARM.
        let below = format!(
            "/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.datafactory/factories/{name}/"
        )
        .to_ascii_lowercase();
        self.extensions.retain(|id, _| !id.starts_with(&below));
        self.factories.remove(&key).is_some()
    }

    pub fn list_factories(
        &self,
        sub: &str,
        rg: Option<&str>,
        tenant_id: &str,
    ) -> Vec<(String, Value)> {
        self.factories
            .iter()
            .filter(|(_, f)| {
                f.subscription.eq_ignore_ascii_case(sub)
                    && rg.is_none_or(|rg| f.resource_group.eq_ignore_ascii_case(rg))
            })
            .map(|(key, f)| (key.clone(), factory_view(f, tenant_id)))
            .collect()
    }

    // ----- child resources -----------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn put_child(
        &mut self,
        sub: &str,
        rg: &str,
        factory_name: &str,
        kind: Kind,
        parent: Option<&str>,
        name: &str,
        mut body: Value,
        if_match: Option<&str>,
        provisioning_ms: i128,
    ) -> ApiResult<Value> {
        kind.check_name(name).map_err(ApiError::bad_request)?;
        let size = body.to_string().len();
        if let Some(limit) = kind.size_limit()
            && size > limit
        {
            return Err(ApiError::bad_request(format!(
                "The {} '{name}' is {size} bytes, over the limit of {limit} bytes for one {} definition.",
                kind.label(),
                kind.label()
            )));
        }
        if !body.get("properties").is_some_and(Value::is_object) {
            return Err(invalid_content(
                "the body must be a JSON object with an object 'properties'",
            ));
        }
        strip_child_read_only(kind, &mut body);
        if kind.requires_type()
            && !body
                .pointer("/properties/type")
                .is_some_and(Value::is_string)
        {
            return Err(ApiError::bad_request(format!(
                "The {} '{name}' has no 'properties.type': every {} definition names its type (for example {}).",
                kind.label(),
                kind.label(),
                kind.type_example()
            )));
        }
        let etag = self.next_etag();
        let factory = self.factory_mut(sub, rg, factory_name)?;
        if kind == Kind::GlobalParameters {
            return put_global_parameters(factory, body, etag);
        }
        if kind == Kind::ManagedPrivateEndpoint {
            let vnet = parent.unwrap_or_default();
            if !factory
                .children(Kind::ManagedVirtualNetwork)
                .contains_key(&vnet.to_ascii_lowercase())
            {
                return Err(entity_not_found(Kind::ManagedVirtualNetwork, vnet));
            }
        }
        let key = child_key(parent, name);
        let existing = factory.children(kind).get(&key).cloned();
        check_if_match(if_match, existing.as_ref().map(|c| c.etag.as_str()))?;
        if let Some(old) = &existing
            && kind == Kind::Trigger
            && old.runtime_state.as_deref() == Some("Started")
        {
            return Err(trigger_enabled(&child_id(
                sub,
                rg,
                factory_name,
                kind,
                parent,
                &old.name,
            )));
        }
        for reference in references(&body) {
            let is_self = reference.kind == kind && reference.name.eq_ignore_ascii_case(name);
            if !is_self
                && !factory
                    .children(reference.kind)
                    .contains_key(&reference.name.to_ascii_lowercase())
            {
                return Err(ApiError::bad_request(format!(
                    "The document creation or update failed because of invalid reference '{}'.",
                    reference.name.to_ascii_lowercase()
                ))
                .with_target(child_id(sub, rg, factory_name, kind, parent, name)));
            }
        }
        let created = existing.is_none();
        let mut child = new_child(kind, factory, existing, parent, name, body, etag);
        if kind == Kind::ManagedPrivateEndpoint && created {
            // Provisioned asynchronously: Provisioning for about a minute
            // (scaled), then Succeeded.
            child.settling = Some((
                "Provisioning".into(),
                crate::clock::now_ms() + provisioning_ms,
            ));
        }
        let view = child_view(factory, kind, &child);
        factory.children.entry(kind).or_default().insert(key, child);
        Ok(view)
    }

    /// A managed private endpoint whose target is in a region that is down
    /// never provisions: it reads `Failed` (emulator::regions).
    pub fn fail_provisioning(
        &mut self,
        sub: &str,
        rg: &str,
        factory: &str,
        vnet: Option<&str>,
        name: &str,
    ) -> ApiResult<()> {
        let f = self.factory_mut(sub, rg, factory)?;
        if let Some(c) = f
            .children
            .get_mut(&Kind::ManagedPrivateEndpoint)
            .and_then(|m| m.get_mut(&child_key(vnet, name)))
        {
            c.settling = Some(("Failed".into(), i128::MAX));
        }
        Ok(())
    }

    pub fn get_child(
        &self,
        sub: &str,
        rg: &str,
        factory_name: &str,
        kind: Kind,
        parent: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, String)> {
        let factory = self.factory(sub, rg, factory_name)?;
        if kind == Kind::GlobalParameters {
            return global_parameters_view(factory)
                .filter(|_| name.eq_ignore_ascii_case("default"))
                .map(|v| (v, factory.global_parameters_etag.clone()))
                .ok_or_else(|| entity_not_found(kind, name));
        }
        factory
            .children(kind)
            .get(&child_key(parent, name))
            .map(|c| (child_view(factory, kind, c), c.etag.clone()))
            .ok_or_else(|| entity_not_found(kind, name))
    }

    pub fn list_children(
        &self,
        sub: &str,
        rg: &str,
        factory_name: &str,
        kind: Kind,
        parent: Option<&str>,
        window: Window<'_>,
    ) -> ApiResult<Vec<(String, Value)>> {
        let Window { after, limit } = window;
        let factory = self.factory(sub, rg, factory_name)?;
        if kind == Kind::GlobalParameters {
            return Ok(global_parameters_view(factory)
                .map(|v| ("default".to_string(), v))
                .into_iter()
                .collect());
        }
        if let Some(vnet) = parent
            && !factory
                .children(Kind::ManagedVirtualNetwork)
                .contains_key(&vnet.to_ascii_lowercase())
        {
            return Err(entity_not_found(Kind::ManagedVirtualNetwork, vnet));
        }
        let prefix = parent.map(|p| format!("{}/", p.to_ascii_lowercase()));
        // Keyset window: only the items of the page asked for are rendered
        // (rendering all of them per page made big factories quadratic).
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a.to_string()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(factory
            .children(kind)
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(key, _)| prefix.as_ref().is_none_or(|p| key.starts_with(p.as_str())))
            .take(limit)
            .map(|(key, c)| (key.clone(), child_view(factory, kind, c)))
            .collect())
    }

    /// Returns whether the resource existed (200) or not (204).
    pub fn delete_child(
        &mut self,
        sub: &str,
        rg: &str,
        factory_name: &str,
        kind: Kind,
        parent: Option<&str>,
        name: &str,
    ) -> ApiResult<bool> {
        let factory = self.factory_mut(sub, rg, factory_name)?;
        if kind == Kind::GlobalParameters {
            let existed = global_parameters_view(factory).is_some();
            remove_pointer(&mut factory.body, "/properties", "globalParameters");
            return Ok(existed);
        }
        let key = child_key(parent, name);
        let Some(child) = factory.children(kind).get(&key) else {
            return Ok(false);
        };
        if kind == Kind::Trigger && child.runtime_state.as_deref() == Some("Started") {
            return Err(trigger_enabled(&child_id(
                sub,
                rg,
                factory_name,
                kind,
                parent,
                &child.name,
            )));
        }
        if kind == Kind::ManagedVirtualNetwork {
            let prefix = format!("{key}/");
            if let Some(mpe) = factory
                .children(Kind::ManagedPrivateEndpoint)
                .iter()
                .find(|(k, _)| k.starts_with(&prefix))
            {
                return Err(referenced_by(&mpe.1.name));
            }
        }
        if let Some(referrer) = factory.referrer_of(kind, name) {
            return Err(referenced_by(&referrer));
        }
        factory.children.entry(kind).or_default().remove(&key);
        Ok(true)
    }

    /// The target resource's owner approves (or rejects) a managed private
    /// endpoint's connection: what the admin API stands in for.
    pub fn set_endpoint_approval(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        vnet: &str,
        name: &str,
        status: &str,
    ) -> ApiResult<Value> {
        let factory = self.factory_mut(sub, rg, f)?;
        let key = child_key(Some(vnet), name);
        let mpe = factory
            .children
            .entry(Kind::ManagedPrivateEndpoint)
            .or_default()
            .get_mut(&key)
            .ok_or_else(|| entity_not_found(Kind::ManagedPrivateEndpoint, name))?;
        mpe.server.insert(
            "connectionState".into(),
            json!({"status": status, "description": format!("{status} by the resource owner"), "actionsRequired": "None"}),
        );
        Ok(mpe.server["connectionState"].clone())
    }

    // ----- triggers ------------------------------------------------------------------

    pub fn set_trigger_state(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        start: bool,
    ) -> ApiResult<()> {
        // Start and stop change the trigger's etag (TestBlobEventTriggerSubscriptions.json).
        let etag = self.next_etag();
        let trigger = self.child_mut(sub, rg, f, Kind::Trigger, name)?;
        if start {
            let pipelines = trigger.body.pointer("/properties/pipelines");
            if pipelines.is_some_and(|p| p.as_array().is_some_and(Vec::is_empty)) {
                return Err(ApiError::bad_request(format!(
                    "Trigger '{}' cannot be started because it does not reference any pipeline.",
                    trigger.name
                )));
            }
            if is_event_trigger(&trigger.body) {
                trigger.subscription = Some("Enabled".into());
            }
        }
        trigger.runtime_state = Some(if start { "Started" } else { "Stopped" }.into());
        trigger.etag = etag;
        Ok(())
    }

    /// Subscribe or unsubscribe an event trigger; returns the new status.
    pub fn set_trigger_subscription(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        subscribe: bool,
    ) -> ApiResult<Value> {
        let trigger = self.child_mut(sub, rg, f, Kind::Trigger, name)?;
        if !is_event_trigger(&trigger.body) {
            return Err(ApiError::bad_request(format!(
                "Trigger '{}' is not an event trigger; only BlobEventsTrigger and CustomEventsTrigger subscribe to events.",
                trigger.name
            )));
        }
        trigger.subscription = Some(if subscribe { "Enabled" } else { "Disabled" }.into());
        Ok(json!({"triggerName": trigger.name, "status": trigger.subscription}))
    }

    pub fn trigger_subscription_status(
        &self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
    ) -> ApiResult<Value> {
        let factory = self.factory(sub, rg, f)?;
        let trigger = factory
            .children(Kind::Trigger)
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| entity_not_found(Kind::Trigger, name))?;
        Ok(
            json!({"triggerName": trigger.name, "status": trigger.subscription.as_deref().unwrap_or("Disabled")}),
        )
    }

    pub fn query_triggers(&self, sub: &str, rg: &str, f: &str, query: &Value) -> ApiResult<Value> {
        let factory = self.factory(sub, rg, f)?;
        let parent = query.get("parentTriggerName").and_then(Value::as_str);
        let value: Vec<Value> = factory
            .children(Kind::Trigger)
            .values()
            .filter(|t| {
                parent.is_none_or(|p| {
                    t.body
                        .pointer("/properties/typeProperties/parentTrigger")
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.eq_ignore_ascii_case(p))
                })
            })
            .map(|t| child_view(factory, Kind::Trigger, t))
            .collect();
        Ok(json!({"value": value}))
    }

    // ----- integration runtimes and CDC ---------------------------------------------

    /// Starts or stops a Managed IR: a long-running operation that settles
    /// after the service's usual time (an Azure-SSIS IR ~22 minutes to start,
    /// TestSsisAzureIntegrationRuntime.json), scaled. Returns the operation id.
    #[allow(clippy::too_many_arguments)]
    pub fn set_ir_state(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        start: bool,
        now_ms: i128,
        scaled: impl Fn(std::time::Duration) -> i128,
    ) -> ApiResult<String> {
        let ir = self.child_mut(sub, rg, f, Kind::IntegrationRuntime, name)?;
        if !is_managed_ir(&ir.body) {
            return Err(ApiError::bad_request(format!(
                "Integration runtime '{}' is not a Managed (Azure-SSIS) integration runtime; only those can be started and stopped.",
                ir.name
            )));
        }
        let target = if start { "Started" } else { "Stopped" };
        let ssis = ir
            .body
            .pointer("/properties/typeProperties/ssisProperties")
            .is_some();
        let minutes = |m: f64| scaled(std::time::Duration::from_secs_f64(m * 60.0));
        let takes = match (ir.state_at(now_ms).as_deref() == Some(target), start, ssis) {
            (true, _, _) => 0,
            (false, true, true) => minutes(22.5),
            (false, true, false) => minutes(2.0),
            (false, false, true) => minutes(3.0),
            (false, false, false) => minutes(1.0),
        };
        ir.runtime_state = Some(target.into());
        ir.settling = (takes > 0).then(|| {
            let shown = if start { "Starting" } else { "Stopping" };
            (shown.to_string(), now_ms + takes)
        });
        let id = uuid::Uuid::new_v4().simple().to_string();
        let operation = Operation {
            factory_key: factory_key(sub, rg, f),
            kind: Kind::IntegrationRuntime,
            name: name.to_ascii_lowercase(),
            verb: if start { "start" } else { "stop" }.into(),
            done_ms: now_ms + takes,
        };
        self.operations.insert(id.clone(), operation);
        Ok(id)
    }

    /// A long-running operation of `name`: done or not, and the resource's
    /// status once done (the service's operationstatuses/operationresults).
    #[allow(clippy::too_many_arguments)]
    pub fn operation(
        &self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        verb: &str,
        id: &str,
        now_ms: i128,
    ) -> ApiResult<(bool, Value)> {
        let op = self
            .operations
            .get(id)
            .filter(|o| {
                o.factory_key == factory_key(sub, rg, f)
                    && o.name == name.to_ascii_lowercase()
                    && o.verb.eq_ignore_ascii_case(verb)
            })
            .ok_or_else(|| {
                ApiError::not_found(
                    "OperationNotFound",
                    format!("The operation '{id}' of '{name}' was not found."),
                )
            })?;
        let done = now_ms >= op.done_ms;
        Ok((done, self.ir_status_at(sub, rg, f, name, now_ms)?))
    }

    pub fn ir_status(&self, sub: &str, rg: &str, f: &str, name: &str) -> ApiResult<Value> {
        self.ir_status_at(sub, rg, f, name, crate::clock::now_ms())
    }

    fn ir_status_at(
        &self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        now_ms: i128,
    ) -> ApiResult<Value> {
        let factory = self.factory(sub, rg, f)?;
        factory
            .children(Kind::IntegrationRuntime)
            .get(&name.to_ascii_lowercase())
            .map(|ir| ir_status(&factory.name, ir, now_ms))
            .ok_or_else(|| entity_not_found(Kind::IntegrationRuntime, name))
    }

    pub fn set_cdc_state(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        name: &str,
        start: bool,
    ) -> ApiResult<()> {
        let cdc = self.child_mut(sub, rg, f, Kind::ChangeDataCapture, name)?;
        cdc.runtime_state = Some(if start { "Running" } else { "Stopped" }.into());
        Ok(())
    }

    pub fn cdc_status(&self, sub: &str, rg: &str, f: &str, name: &str) -> ApiResult<Value> {
        let factory = self.factory(sub, rg, f)?;
        factory
            .children(Kind::ChangeDataCapture)
            .get(&name.to_ascii_lowercase())
            .map(|c| Value::String(c.runtime_state.clone().unwrap_or_else(|| "Stopped".into())))
            .ok_or_else(|| entity_not_found(Kind::ChangeDataCapture, name))
    }

    // ----- pipeline runs -------------------------------------------------------------

    pub fn create_run(
        &mut self,
        sub: &str,
        rg: &str,
        f: &str,
        pipeline: &str,
        parameters: Value,
        duration_ms: u64,
    ) -> ApiResult<Value> {
        let factory = self.factory(sub, rg, f)?;
        let stored = factory
            .children(Kind::Pipeline)
            .get(&pipeline.to_ascii_lowercase())
            .ok_or_else(|| entity_not_found(Kind::Pipeline, pipeline))?;
        let key = factory_key(sub, rg, f);
        let failing = self
            .failing_pipelines
            .contains(&format!("{key}/{}", pipeline.to_ascii_lowercase()));
        let foreign = factory.foreign_credential(Kind::Pipeline, &stored.name);
        let denied = self.vault_denied(factory, &stored.name);
        let run = PipelineRun {
            run_id: uuid::Uuid::new_v4().to_string(),
            factory_key: key,
            pipeline: stored.name.clone(),
            parameters: if parameters.is_object() {
                parameters
            } else {
                json!({})
            },
            start_unix_ms: OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
            duration_ms,
            failure: match (&foreign, failing) {
                _ if denied.is_some() => denied,
                (Some(ls), _) => Some(format!(
                    "Operation on target {} failed: the credential of linked service '{ls}' cannot be decrypted: its encryptedCredential was issued by another data factory's credential store. Enter the linked service's credentials again in this factory.",
                    stored.name
                )),
                (None, true) => Some(format!(
                    "Operation on target {} failed: the run was told to fail (adf-emulator fault injection).",
                    stored.name
                )),
                (None, false) => None,
            },
            cancelled_unix_ms: None,
        };
        let run_id = run.run_id.clone();
        self.runs.push(run);
        Ok(json!({"runId": run_id}))
    }

    /// Why a run of `pipeline` cannot read its secrets: a Key Vault it uses
    /// (that the emulator holds) does not let the factory's identity get
    /// secrets, by access policy or, on an RBAC vault, by role. Key Vault's
    /// answer for an access policy vault, as the service words it.
    fn vault_denied(&self, factory: &Factory, pipeline: &str) -> Option<String> {
        let principal = factory.system_principal_id.as_deref().unwrap_or_default();
        factory
            .key_vaults_used(Kind::Pipeline, pipeline)
            .iter()
            .filter_map(|url| crate::vaults::by_url(&self.key_vaults, url))
            .find(|v| !crate::vaults::may_get_secrets(v, principal, &self.role_assignments))
            .map(|v| {
                format!(
                    "Operation on target {pipeline} failed: The operation failed with 'Forbidden': The user, group or application 'appid={principal};oid={principal}' does not have secrets get permission on key vault '{};location={}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    v["name"].as_str().unwrap_or_default(),
                    v["location"].as_str().unwrap_or_default()
                )
            })
    }

    pub fn get_run(&self, sub: &str, rg: &str, f: &str, run_id: &str) -> ApiResult<Value> {
        self.factory(sub, rg, f)?;
        let key = factory_key(sub, rg, f);
        self.runs
            .iter()
            .find(|r| r.factory_key == key && r.run_id.eq_ignore_ascii_case(run_id))
            .map(run_view)
            .ok_or_else(|| {
                ApiError::not_found(
                    "PipelineRunNotFound",
                    format!("Pipeline run '{run_id}' was not found in factory '{f}'."),
                )
            })
    }

    pub fn cancel_run(&mut self, sub: &str, rg: &str, f: &str, run_id: &str) -> ApiResult<()> {
        self.factory(sub, rg, f)?;
        let key = factory_key(sub, rg, f);
        let run = self
            .runs
            .iter_mut()
            .find(|r| r.factory_key == key && r.run_id.eq_ignore_ascii_case(run_id))
            .ok_or_else(|| {
                ApiError::not_found(
                    "PipelineRunNotFound",
                    format!("Pipeline run '{run_id}' was not found in factory '{f}'."),
                )
            })?;
        run.cancelled_unix_ms
            .get_or_insert(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000);
        Ok(())
    }

    pub fn query_runs(&self, sub: &str, rg: &str, f: &str, filter: &Value) -> ApiResult<Value> {
        self.factory(sub, rg, f)?;
        let parse = |field: &str| -> ApiResult<OffsetDateTime> {
            let text = filter.get(field).and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The request body must contain '{field}' (RunFilterParameters)."
                ))
            })?;
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "'{field}' is not an ISO 8601 date-time: '{text}'."
                    ))
                },
            )
        };
        let after = parse("lastUpdatedAfter")?.unix_timestamp_nanos() / 1_000_000;
        let before = parse("lastUpdatedBefore")?.unix_timestamp_nanos() / 1_000_000;
        let key = factory_key(sub, rg, f);
        let filters = filter
            .get("filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let value: Vec<Value> = self
            .runs
            .iter()
            .filter(|r| r.factory_key == key)
            .map(run_view)
            .filter(|v| {
                let updated = v["lastUpdated"].as_str().and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                });
                updated.is_some_and(|u| {
                    let ms = u.unix_timestamp_nanos() / 1_000_000;
                    ms >= after && ms <= before
                })
            })
            .filter(|v| filters.iter().all(|flt| run_filter_matches(v, flt)))
            .collect();
        Ok(json!({"value": value, "continuationToken": null}))
    }

    // ----- seeding -------------------------------------------------------------------

    /// Installs a factory as-is (no reference validation: real exports have dangling
    /// references). Returns warnings about those dangling references.
    pub fn seed(
        &mut self,
        sub: &str,
        rg: &str,
        name: &str,
        seed: crate::seed::SeedFactory,
        tenant_id: &str,
    ) -> ApiResult<Vec<String>> {
        let mut body = seed.factory.unwrap_or_else(|| json!({}));
        if body.get("location").is_none() {
            body["location"] = Value::String("westeurope".into());
        }
        self.delete_factory(sub, rg, name);
        self.put_factory(sub, rg, name, body, None, tenant_id)?;
        let scope = format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{name}"
        );
        for (ext, ext_name, body) in seed.surroundings {
            // Alerts live in the resource group and name the factory by id
            // (`{factory}` in a seed, as adfdr's export writes it).
            let (at, body) = if ext.in_resource_group() {
                (
                    format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                    serde_json::from_str(&body.to_string().replace("{factory}", &scope))
                        .unwrap_or(body),
                )
            } else {
                (scope.clone(), body)
            };
            crate::extension::put(&mut self.extensions, &at, ext, &ext_name, body)?;
        }
        self.seed_access(
            sub,
            rg,
            name,
            &seed.role_assignments,
            &seed.access_policies,
            tenant_id,
        )?;
        for resource in seed.resources {
            let mut body = resource.body;
            // What the factory was doing: a trigger's runtimeState, a Managed
            // IR's state, a CDC's status (a seed's way of saying "running").
            let pointer = match resource.kind {
                Kind::IntegrationRuntime => "/properties/state",
                Kind::ChangeDataCapture => "/properties/status",
                _ => "/properties/runtimeState",
            };
            let state = body
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string);
            if resource.kind == Kind::ChangeDataCapture {
                remove_pointer(&mut body, "/properties", "status");
            }
            strip_child_read_only(resource.kind, &mut body);
            let etag = self.next_etag();
            let factory = self.factory_mut(sub, rg, name)?;
            if resource.kind == Kind::GlobalParameters {
                put_global_parameters(factory, body, etag)?;
                continue;
            }
            let mut child = new_child(
                resource.kind,
                factory,
                None,
                resource.parent.as_deref(),
                &resource.name,
                body,
                etag,
            );
            match (resource.kind, state.as_deref()) {
                (Kind::Trigger, Some("Started")) => {
                    child.runtime_state = state;
                    if is_event_trigger(&child.body) {
                        child.subscription = Some("Enabled".into());
                    }
                }
                (Kind::IntegrationRuntime, Some("Started")) if is_managed_ir(&child.body) => {
                    child.runtime_state = state;
                }
                (Kind::ChangeDataCapture, Some("Running")) => child.runtime_state = state,
                _ => {}
            }
            factory
                .children
                .entry(resource.kind)
                .or_default()
                .insert(child_key(resource.parent.as_deref(), &resource.name), child);
        }
        let factory = self.factory(sub, rg, name)?;
        Ok(factory.dangling_references())
    }
}

fn normalize_region(region: &str) -> String {
    region
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn invalid_content(detail: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidRequestContent",
        format!("The request content was invalid and could not be deserialized: {detail}."),
    )
}

/// The service's words (adf-api.md B.1: azure.datafactory.tools #350, liprec#63).
fn trigger_enabled(id: &str) -> ApiError {
    ApiError::new(
        400,
        "TriggerEnabledCannotUpdate",
        "Cannot update enabled Trigger; the trigger needs to be disabled first.",
    )
    .with_target(id)
}

fn referenced_by(referrer: &str) -> ApiError {
    ApiError::bad_request(format!(
        "The document cannot be deleted since it is referenced by {referrer}."
    ))
}

/// A system-assigned identity keeps its principal across updates and gets a new one when added.
fn system_principal(body: &Value, previous: Option<String>) -> Option<String> {
    let ty = body
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ty.contains("SystemAssigned") {
        Some(previous.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
    } else {
        None
    }
}

fn put_global_parameters(factory: &mut Factory, body: Value, etag: String) -> ApiResult<Value> {
    let mut params = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    normalize_global_parameters(&mut params);
    if !factory.body.get("properties").is_some_and(Value::is_object) {
        factory.body["properties"] = json!({});
    }
    factory.body["properties"]["globalParameters"] = params;
    factory.global_parameters_etag = etag;
    global_parameters_view(factory)
        .ok_or_else(|| ApiError::new(500, "InternalServerError", "global parameters vanished"))
}

fn global_parameters_view(factory: &Factory) -> Option<Value> {
    let params = factory.body.pointer("/properties/globalParameters")?;
    Some(json!({
        "id": format!("{}/globalParameters/default", factory_id(&factory.subscription, &factory.resource_group, &factory.name)),
        "name": "default",
        "type": Kind::GlobalParameters.type_name(),
        "properties": params,
        "etag": factory.global_parameters_etag,
    }))
}

/// The service's rules for a customer-managed key (Microsoft's docs,
/// "Encrypt Azure Data Factory with customer-managed keys"): it can only be
/// configured on an empty factory (no linked services, pipelines, data
/// flows...), not on one with a managed virtual network, and the
/// user-assigned identity it uses must be attached to the factory. Once
/// set, it stays (the same key may be PUT again).
fn check_encryption(body: &Value, existing: Option<&Factory>) -> ApiResult<()> {
    let Some(encryption) = body
        .pointer("/properties/encryption")
        .filter(|e| !e.is_null())
    else {
        return Ok(());
    };
    let bad = |m: String| {
        Err(ApiError::new(
            400,
            "InvalidCustomerManagedKeyConfiguration",
            m,
        ))
    };
    for field in ["keyName", "vaultBaseUrl"] {
        if encryption
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return bad(format!(
                "encryption.{field} is required for a customer-managed key."
            ));
        }
    }
    let before = existing.and_then(|f| f.body.pointer("/properties/encryption"));
    let changed = before.is_none_or(|b| !same_key(b, encryption));
    if let Some(f) = existing
        && changed
    {
        if f.children
            .get(&Kind::ManagedVirtualNetwork)
            .is_some_and(|m| !m.is_empty())
        {
            return bad(format!(
                "Customer-managed key encryption can't be enabled on factory '{}': it has a managed virtual network.",
                f.name
            ));
        }
        if f.children.values().any(|m| !m.is_empty()) {
            return bad(format!(
                "Customer-managed key can only be configured on an empty data factory; factory '{}' contains resources such as linked services, pipelines and data flows.",
                f.name
            ));
        }
    }
    if let Some(uami) = encryption
        .pointer("/identity/userAssignedIdentity")
        .and_then(Value::as_str)
    {
        let attached = |b: &Value| {
            b.pointer("/identity/userAssignedIdentities")
                .and_then(Value::as_object)
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(uami)))
        };
        if !attached(body) {
            return bad(format!(
                "The user-assigned identity '{uami}' used for customer-managed key encryption is not associated with the factory; attach it (identity.userAssignedIdentities) first."
            ));
        }
    }
    Ok(())
}

fn same_key(a: &Value, b: &Value) -> bool {
    let text = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    ["keyName", "vaultBaseUrl", "keyVersion"]
        .iter()
        .all(|f| text(a, f) == text(b, f))
}

fn new_child(
    kind: Kind,
    factory: &Factory,
    existing: Option<Child>,
    parent: Option<&str>,
    name: &str,
    body: Value,
    etag: String,
) -> Child {
    let mut server = existing
        .as_ref()
        .map(|c| c.server.clone())
        .unwrap_or_default();
    match kind {
        Kind::ManagedVirtualNetwork => {
            server
                .entry("vNetId")
                .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()));
            server.insert("alias".into(), Value::String(factory.name.clone()));
        }
        Kind::ManagedPrivateEndpoint => {
            server.insert("provisioningState".into(), "Succeeded".into());
            // Approval is the target resource owner's: Pending until then.
            server.entry("connectionState").or_insert_with(
                || json!({"status": "Pending", "description": "", "actionsRequired": "None"}),
            );
        }
        Kind::PrivateEndpointConnection => {
            server.insert("provisioningState".into(), "Succeeded".into());
        }
        _ => {}
    }
    let runtime_state = match (kind, &existing) {
        (_, Some(old)) if old.runtime_state.is_some() => old.runtime_state.clone(),
        (Kind::Trigger, _) => Some("Stopped".into()),
        (Kind::IntegrationRuntime, _) if is_managed_ir(&body) => Some("Initial".into()),
        (Kind::ChangeDataCapture, _) => Some("Stopped".into()),
        _ => None,
    };
    Child {
        name: existing
            .as_ref()
            .map_or_else(|| name.to_string(), |c| c.name.clone()),
        parent: parent.map(str::to_string),
        settling: existing.as_ref().and_then(|c| c.settling.clone()),
        subscription: existing.and_then(|c| c.subscription),
        body,
        etag,
        runtime_state,
        server,
    }
}

pub fn factory_view(f: &Factory, tenant_id: &str) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), f.name.clone().into());
    out.insert(
        "id".into(),
        factory_id(&f.subscription, &f.resource_group, &f.name).into(),
    );
    out.insert("type".into(), "Microsoft.DataFactory/factories".into());
    let mut props = Map::new();
    props.insert("provisioningState".into(), "Succeeded".into());
    props.insert("createTime".into(), f.create_time.clone().into());
    props.insert("version".into(), "2018-06-01".into());
    if let Some(Value::Object(stored)) = f.body.get("properties") {
        props.extend(stored.clone());
    }
    out.insert("properties".into(), Value::Object(props));
    out.insert("eTag".into(), f.etag.clone().into());
    if let Value::Object(body) = &f.body {
        for (k, v) in body {
            if k != "properties" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.entry("tags").or_insert_with(|| json!({}));
    if let (Some(principal), Some(Value::Object(identity))) =
        (&f.system_principal_id, out.get_mut("identity"))
    {
        identity.insert("principalId".into(), principal.clone().into());
        identity.insert("tenantId".into(), tenant_id.into());
    }
    // User-assigned identities come back with their ids filled in
    // (DataFactoryTests/TestCreateDataFactoryV2WithUserAssignedIdentity.json).
    if let Some(Value::Object(uamis)) = out
        .get_mut("identity")
        .and_then(|i| i.get_mut("userAssignedIdentities"))
    {
        for (id, uami) in uamis.iter_mut() {
            let key = id.to_ascii_lowercase();
            *uami = json!({
                "principalId": crate::auth::derived_guid(&format!("uami-principal:{key}")),
                "clientId": crate::auth::derived_guid(&format!("uami-client:{key}")),
            });
        }
    }
    let mut view = Value::Object(out);
    mask_secure_strings(&mut view);
    view
}

pub fn child_view(f: &Factory, kind: Kind, c: &Child) -> Value {
    let base = factory_id(&f.subscription, &f.resource_group, &f.name);
    let id = match &c.parent {
        Some(vnet) => format!(
            "{base}/managedVirtualNetworks/{vnet}/managedPrivateEndpoints/{}",
            c.name
        ),
        None => format!("{base}/{}/{}", kind.segment(), c.name),
    };
    let mut out = Map::new();
    out.insert("id".into(), id.into());
    out.insert("name".into(), c.name.clone().into());
    out.insert("type".into(), kind.type_name().into());
    if let Value::Object(body) = &c.body {
        out.extend(body.clone());
    }
    // What the service generates is always there, also for a resource seeded
    // from an old git export without `properties` (a managed VNet file).
    if !c.server.is_empty() && !out.get("properties").is_some_and(Value::is_object) {
        out.insert("properties".into(), json!({}));
    }
    if let Some(Value::Object(props)) = out.get_mut("properties") {
        props.extend(c.server.clone());
        match kind {
            Kind::Trigger => {
                props.insert(
                    "runtimeState".into(),
                    c.runtime_state
                        .clone()
                        .unwrap_or_else(|| "Stopped".into())
                        .into(),
                );
            }
            Kind::IntegrationRuntime if c.runtime_state.is_some() => {
                props.insert("state".into(), c.state_at(crate::clock::now_ms()).into());
            }
            Kind::ManagedPrivateEndpoint => {
                if let Some((shown, until)) = &c.settling
                    && crate::clock::now_ms() < *until
                {
                    props.insert("provisioningState".into(), shown.clone().into());
                }
            }
            _ => {}
        }
    }
    out.insert("etag".into(), c.etag.clone().into());
    let mut view = Value::Object(out);
    mask_secure_strings(&mut view);
    view
}

fn ir_status(factory_name: &str, ir: &Child, now_ms: i128) -> Value {
    let ty = ir
        .body
        .pointer("/properties/type")
        .and_then(Value::as_str)
        .unwrap_or("SelfHosted");
    let state = match ty {
        "Managed" => ir.state_at(now_ms).unwrap_or_else(|| "Initial".into()),
        "SelfHosted"
            if ir
                .body
                .pointer("/properties/typeProperties/linkedInfo")
                .is_some() =>
        {
            "Online".into()
        }
        // A self-hosted IR has no node until one registers with its auth key.
        "SelfHosted" => "NeedRegistration".into(),
        _ => "Online".into(),
    };
    json!({
        "name": ir.name,
        "properties": {"dataFactoryName": factory_name, "state": state, "type": ty,
                       "typeProperties": {"nodes": [], "otherErrors": [], "state": state}}
    })
}

fn run_view(r: &PipelineRun) -> Value {
    let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let end_ms = r.start_unix_ms + i128::from(r.duration_ms);
    let to_time = |ms: i128| {
        rfc3339(
            OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    };
    let (status, run_end, message) = match (r.cancelled_unix_ms, &r.failure) {
        (Some(c), _) if c < end_ms => ("Cancelled", Some(c), String::new()),
        _ if now_ms < end_ms => ("InProgress", None, String::new()),
        (_, Some(msg)) => ("Failed", Some(end_ms), msg.clone()),
        _ => ("Succeeded", Some(end_ms), String::new()),
    };
    let parameters: Map<String, Value> = r
        .parameters
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "runId": r.run_id,
        "pipelineName": r.pipeline,
        "parameters": parameters,
        "invokedBy": {"id": r.run_id.replace('-', ""), "name": "Manual", "invokedByType": "Manual"},
        "runStart": to_time(r.start_unix_ms),
        "runEnd": run_end.map(to_time),
        "durationInMs": run_end.map(|e| (e - r.start_unix_ms) as i64),
        "status": status,
        "message": message,
        "lastUpdated": to_time(run_end.unwrap_or(r.start_unix_ms)),
        "annotations": [],
        "runDimension": {"JobId": r.run_id},
    })
}

fn run_filter_matches(run: &Value, filter: &Value) -> bool {
    let operand = filter
        .get("operand")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let field = match operand {
        "PipelineName" => "pipelineName",
        "Status" => "status",
        "RunId" => "runId",
        _ => return true,
    };
    let actual = run[field].as_str().unwrap_or_default();
    let values: Vec<&str> = filter
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let hit = values.iter().any(|v| v.eq_ignore_ascii_case(actual));
    match filter
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equals")
    {
        "NotEquals" | "NotIn" => !hit,
        _ => hit,
    }
}

impl Factory {
    /// A linked service that `kind:name` uses (through datasets, data flows,
    /// child pipelines) whose encryptedCredential this factory did not issue:
    /// the service names its credential `FACTORY_guid` (recorded in
    /// TestBlobEventTriggerSubscriptions.json), and decrypts only its own.
    pub fn foreign_credential(&self, kind: Kind, name: &str) -> Option<String> {
        self.reached(kind, name)
            .into_iter()
            .find_map(|(kind, child)| {
                let blob = child
                    .body
                    .pointer("/properties/typeProperties/encryptedCredential")
                    .and_then(Value::as_str)?;
                (kind == Kind::LinkedService && !issued_by(blob, &self.name))
                    .then(|| child.name.clone())
            })
    }

    /// The base URLs of the Key Vault linked services that `kind`/`name`
    /// reaches (through datasets, data flows, other linked services).
    pub fn key_vaults_used(&self, kind: Kind, name: &str) -> Vec<String> {
        self.reached(kind, name)
            .into_iter()
            .filter(|(k, c)| {
                *k == Kind::LinkedService
                    && c.body.pointer("/properties/type") == Some(&json!("AzureKeyVault"))
            })
            .filter_map(|(_, c)| {
                c.body
                    .pointer("/properties/typeProperties/baseUrl")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// `kind`/`name` and everything it references, to the end.
    fn reached(&self, kind: Kind, name: &str) -> Vec<(Kind, &Child)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut todo = vec![(kind, name.to_ascii_lowercase())];
        while let Some((kind, name)) = todo.pop() {
            if !seen.insert((kind, name.clone())) {
                continue;
            }
            let Some(child) = self.children(kind).get(&name) else {
                continue;
            };
            todo.extend(
                references(&child.body)
                    .into_iter()
                    .map(|r| (r.kind, r.name.to_ascii_lowercase())),
            );
            out.push((kind, child));
        }
        out
    }

    pub fn children(&self, kind: Kind) -> &BTreeMap<String, Child> {
        static EMPTY: BTreeMap<String, Child> = BTreeMap::new();
        self.children.get(&kind).unwrap_or(&EMPTY)
    }

    /// The name of some resource that references `kind`/`name`, if any.
    pub fn referrer_of(&self, kind: Kind, name: &str) -> Option<String> {
        self.children
            .iter()
            .flat_map(|(k, map)| map.values().map(move |c| (*k, c)))
            .find_map(|(k, c)| {
                let is_self = k == kind && c.name.eq_ignore_ascii_case(name);
                let refers = references(&c.body)
                    .iter()
                    .any(|r| r.kind == kind && r.name.eq_ignore_ascii_case(name));
                (refers && !is_self).then(|| c.name.clone())
            })
    }

    /// Human-readable lines for references that point at nothing.
    pub fn dangling_references(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, map) in &self.children {
            for child in map.values() {
                for r in references(&child.body) {
                    if !self
                        .children(r.kind)
                        .contains_key(&r.name.to_ascii_lowercase())
                    {
                        out.push(format!(
                            "{} '{}' references {} '{}', which is not in the factory",
                            kind.label(),
                            child.name,
                            r.kind.label(),
                            r.name
                        ));
                    }
                }
            }
        }
        out
    }
}

/// Whether an encryptedCredential (base64 of `{"CredentialId": "FACTORY_guid", ...}`)
/// was issued by `factory`'s credential store.
fn issued_by(blob: &str, factory: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(blob.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| {
            v.get("CredentialId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|id| id.split_once('_').map(|(f, _)| f.to_string()))
        .is_some_and(|f| f.eq_ignore_ascii_case(factory))
}
