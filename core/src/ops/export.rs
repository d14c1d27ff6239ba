//! Reading a live factory through ARM: the factory itself, then every child
//! kind listed concurrently (bounded), managed private endpoints per managed
//! virtual network. azure_core's retry policy waits out 429s as Retry-After
//! says; the bound keeps adfdr from hammering a throttled subscription.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::config::FactoryConfig;
use crate::factory::{ArmError, FactoryApi};
use crate::model::{ResourceKind, canonicalize_owned};
use crate::snapshot::Resource;

#[derive(Debug)]
pub struct Exported {
    pub resources: Vec<Resource>,
    pub trigger_states: BTreeMap<String, String>,
    pub runtimes: Runtimes,
    pub region: Option<String>,
    /// The factory's `createTime`: a factory re-created under the same name is another one.
    pub created: Option<String>,
    /// Kinds the service does not offer here (their list answered 404 or "not supported").
    pub not_offered: Vec<ResourceKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "factory {path} does not exist (ARM answered {code}); check subscription, resource_group and factory of [[factory]] {name}"
    )]
    NotFound {
        name: String,
        path: String,
        code: String,
    },
    #[error(
        "{identity} may not read factory {path} (HTTP {status} {code}); grant it the role 'Reader' (or 'Data Factory Contributor') on the factory or its resource group"
    )]
    Denied {
        identity: String,
        path: String,
        status: u16,
        code: String,
    },
    #[error("reading factory {path}: {source}")]
    Arm { path: String, source: ArmError },
    #[error("signing in as {identity} failed, so factory {path} could not be read: {detail}")]
    SignIn {
        identity: String,
        path: String,
        detail: String,
    },
    #[error("factory {path}: {what} has no name in ARM's answer")]
    Unnamed { path: String, what: String },
    /// More definitions than a backup may hold (backup.max_definitions_mib).
    #[error(
        "factory {path} holds more than {limit} MiB of definitions, more than backup.max_definitions_mib allows: not backed up (a backup holds them in memory, about 1.3 bytes per byte; docs/PERFORMANCE.md); raise the limit and the agent's memory with it"
    )]
    TooBig { path: String, limit: usize },
    /// One kind's list refused: a snapshot without it would be silently partial.
    #[error(
        "{identity} may not list the {kind}s of factory {path} (HTTP {status} {code}): its role lacks {action}; {grant}, then back up again"
    )]
    DeniedKind {
        identity: String,
        path: String,
        kind: String,
        action: String,
        grant: String,
        status: u16,
        code: String,
    },
}

pub use crate::snapshot::manifest::Runtimes;

fn classify(err: ArmError, fc: &FactoryConfig, identity: &str) -> ExportError {
    let path = fc.path_text();
    if let ArmError::Transport {
        credential: true,
        detail,
        ..
    } = &err
    {
        return ExportError::SignIn {
            identity: identity.to_string(),
            path,
            detail: detail.clone(),
        };
    }
    match err.status() {
        Some(401 | 403) => ExportError::Denied {
            identity: identity.to_string(),
            path,
            status: err.status().unwrap_or(0),
            code: err.code().unwrap_or("").to_string(),
        },
        _ => ExportError::Arm { path, source: err },
    }
}

/// What the walk learned besides the items.
struct Walked {
    region: Option<String>,
    created: Option<String>,
    not_offered: Vec<ResourceKind>,
    cdc_status: BTreeMap<String, String>,
}

/// A list's refusal, sorted: a kind not offered here is recorded, one the
/// identity may not read fails the export (naming the permission).
#[allow(clippy::result_large_err)] // once per kind, like the async fns around it
fn listed(
    result: Result<(), ArmError>,
    kind: ResourceKind,
    fc: &FactoryConfig,
    identity: &str,
) -> Result<Option<ResourceKind>, ExportError> {
    let Err(e) = result else {
        return Ok(None);
    };
    let not_supported = |e: &ArmError| {
        let text = format!("{} {}", e.code().unwrap_or(""), e).to_ascii_lowercase();
        text.contains("not supported") || text.contains("notsupported")
    };
    match e.status() {
        Some(404) => Ok(Some(kind)),
        Some(400) if not_supported(&e) => Ok(Some(kind)),
        Some(status @ (401 | 403)) => Err(ExportError::DeniedKind {
            identity: identity.to_string(),
            path: fc.path_text(),
            kind: kind.label().to_string(),
            action: match kind.extension() {
                Some((provider, _)) => {
                    format!("{}/read", provider.trim_start_matches("providers/"))
                }
                None if kind == ResourceKind::AccessPolicy => "Microsoft.KeyVault/vaults/read".into(),
                None if kind == ResourceKind::RoleAssignment => {
                    "Microsoft.Authorization/roleAssignments/read".into()
                }
                None => format!("Microsoft.DataFactory/factories/{}/read", kind.segment()),
            },
            grant: match kind.extension() {
                Some(_) => "grant it Reader on the factory".into(),
                None if kind == ResourceKind::RoleAssignment => {
                    "grant it Reader on the subscription (role assignments are read there)".into()
                }
                None if kind == ResourceKind::AccessPolicy => {
                    "grant it Reader on the subscription or the vaults (their access policies are read there)".into()
                }
                None => "grant 'Data Factory Contributor' (or add that action to the custom role)"
                    .into(),
            },
            status,
            code: e.code().unwrap_or("").to_string(),
        }),
        _ => Err(classify(e, fc, identity)),
    }
}

/// Takes one ARM answer (kind, managed VNet of an MPE, the bytes as they came)
/// and returns its name (None: the answer has none).
type Sink<'s> = Mutex<
    dyn FnMut(ResourceKind, Option<String>, &[u8]) -> Result<Option<String>, serde_json::Error>
        + Send
        + 's,
>;

fn bad_json(path: &str, url: &str, e: serde_json::Error) -> ExportError {
    ExportError::Arm {
        path: path.to_string(),
        source: ArmError::Body {
            method: "GET".into(),
            url: url.to_string(),
            detail: e.to_string(),
        },
    }
}

/// One of the factory's identities: its principal, and how a backup names
/// it (`properties.principal` of what it holds).
struct Own {
    principal: String,
    label: String,
}

/// The factory's identities as its answer lists them: the system-assigned
/// one, then each user-assigned one with its principal filled in.
fn own_identities(answer: &Value) -> Vec<Own> {
    use crate::model::kind::{SYSTEM_ASSIGNED, USER_ASSIGNED};
    let mut out = Vec::new();
    if let Some(p) = answer
        .pointer("/identity/principalId")
        .and_then(Value::as_str)
    {
        out.push(Own {
            principal: p.to_string(),
            label: SYSTEM_ASSIGNED.to_string(),
        });
    }
    if let Some(uamis) = answer
        .pointer("/identity/userAssignedIdentities")
        .and_then(Value::as_object)
    {
        for (id, uami) in uamis {
            if let Some(p) = uami.get("principalId").and_then(Value::as_str) {
                out.push(Own {
                    principal: p.to_string(),
                    label: format!("{USER_ASSIGNED}{}", id.to_ascii_lowercase()),
                });
            }
        }
    }
    out
}

/// Reads the factory itself, hands it to `sink` and answers its region,
/// `createTime` and identities.
async fn read_factory(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    sink: &Sink<'_>,
) -> Result<(Option<String>, Option<String>, Vec<Own>), ExportError> {
    let base = fc.arm_path();
    let path_text = fc.path_text();
    let factory = match arm
        .send_raw(azure_core::http::Method::Get, &base, None)
        .await
    {
        Ok((_, bytes)) => bytes,
        Err(e) if e.status() == Some(404) => {
            return Err(ExportError::NotFound {
                name: fc.name.clone(),
                path: path_text,
                code: e.code().unwrap_or("404").to_string(),
            });
        }
        Err(e) => return Err(classify(e, fc, identity)),
    };
    let answer =
        serde_json::from_slice::<Value>(&factory).map_err(|e| bad_json(&path_text, &base, e))?;
    let text = |p: &str| {
        answer
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (region, created) = (text("/location"), text("/properties/createTime"));
    let own = own_identities(&answer);
    if (sink.lock().expect("sink"))(ResourceKind::Factory, None, &factory)
        .map_err(|e| bad_json(&path_text, &base, e))?
        .is_none()
    {
        return Err(ExportError::Unnamed {
            path: path_text,
            what: "the factory".into(),
        });
    }
    Ok((region, created, own))
}

/// The child kinds listed at the factory, those that run to many pages
/// first: a backup lasts as long as its longest nextLink chain, so that
/// chain must start at once. (Private endpoints are listed per managed VNet.)
fn listed_kinds() -> Vec<ResourceKind> {
    let mut kinds: Vec<ResourceKind> = ResourceKind::CHILDREN
        .into_iter()
        .filter(|k| *k != ResourceKind::ManagedPrivateEndpoint)
        .chain(ResourceKind::SURROUNDINGS)
        .collect();
    kinds.sort_by_key(|k| match k {
        ResourceKind::Pipeline => 0,
        ResourceKind::Dataset => 1,
        ResourceKind::Trigger => 2,
        ResourceKind::LinkedService => 3,
        ResourceKind::DataFlow => 4,
        _ => 5,
    });
    kinds
}

/// Reads the factory and hands every resource to `sink` as its page arrives.
async fn walk(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    concurrency: usize,
    sink: &Sink<'_>,
) -> Result<Walked, ExportError> {
    let (region, created, identities) = read_factory(arm, fc, identity, sink).await?;
    let base = fc.arm_path();
    let path_text = fc.path_text();
    let kinds = listed_kinds();
    let problem = Mutex::new(None::<ExportError>);
    let vnets = Mutex::new(Vec::<String>::new());
    let cdcs = Mutex::new(Vec::<String>::new());
    let vault_urls = Mutex::new(Vec::<String>::new());
    let own = format!("{}/", base.to_ascii_lowercase());
    let take = |kind: ResourceKind, parent: Option<String>, url: &str, item: &[u8]| {
        let Some((parent, item)) = scoped(kind, parent, item, &own, &base) else {
            return;
        };
        let item = &item[..];
        let named = (sink.lock().expect("sink"))(kind, parent, item);
        let failed = match named {
            Ok(Some(name)) => {
                match kind {
                    ResourceKind::ManagedVirtualNetwork => vnets.lock().expect("lock").push(name),
                    ResourceKind::ChangeDataCapture => cdcs.lock().expect("lock").push(name),
                    ResourceKind::LinkedService => {
                        if let Some(url) = key_vault_url(item) {
                            vault_urls.lock().expect("lock").push(url);
                        }
                    }
                    _ => {}
                }
                return;
            }
            Ok(None) => ExportError::Unnamed {
                path: path_text.clone(),
                what: kind.label().to_string(),
            },
            Err(e) => bad_json(&path_text, url, e),
        };
        problem.lock().expect("lock").get_or_insert(failed);
    };
    let not_offered: Vec<ResourceKind> = stream::iter(kinds)
        .map(|kind| {
            let url = match kind.extension() {
                Some((provider, version)) if kind.in_resource_group() => format!(
                    "{}/{provider}?api-version={version}",
                    resource_group_of(&base)
                ),
                Some((provider, version)) => format!("{base}/{provider}?api-version={version}"),
                None => format!("{base}/{}", kind.segment()),
            };
            let take = &take;
            async move {
                let result = arm
                    .list_each_raw(&url, |item| take(kind, None, &url, item))
                    .await;
                listed(result, kind, fc, identity)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<Option<ResourceKind>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let vnet_names = std::mem::take(&mut *vnets.lock().expect("lock"));
    endpoints(arm, &base, vnet_names, concurrency, &take)
        .await
        .map_err(|e| classify(e, fc, identity))?;
    roles(arm, fc, identity, &identities, &take).await?;
    let urls = std::mem::take(&mut *vault_urls.lock().expect("lock"));
    access_policies(arm, fc, identity, &identities, &urls, &take).await?;
    if let Some(problem) = problem.lock().expect("lock").take() {
        return Err(problem);
    }
    let cdc_names = std::mem::take(&mut *cdcs.lock().expect("lock"));
    let cdc_status = cdc_statuses(arm, &base, cdc_names, concurrency)
        .await
        .map_err(|e| classify(e, fc, identity))?;
    Ok(Walked {
        region,
        created,
        not_offered,
        cdc_status,
    })
}

/// What of an answer is the factory's: a lock its resource group or
/// subscription passes down is kept as context (`inherited/`), never put
/// back; an alert of the resource group only when it watches this factory,
/// its id written as FACTORY_ID (a restore puts the target's there). None:
/// not the factory's.
fn scoped<'i>(
    kind: ResourceKind,
    parent: Option<String>,
    item: &'i [u8],
    own: &str,
    base: &str,
) -> Option<(Option<String>, std::borrow::Cow<'i, [u8]>)> {
    use std::borrow::Cow;
    let (parent, item) = if kind == ResourceKind::Lock && !on_factory(item, own) {
        let bytes = inherited_lock(item).and_then(|v| serde_json::to_vec(&v).ok())?;
        (Some(INHERITED.to_string()), Cow::Owned(bytes))
    } else {
        (parent, Cow::Borrowed(item))
    };
    if kind.in_resource_group() {
        return Some((parent, Cow::Owned(watching(&item, base)?)));
    }
    Some((parent, item))
}

/// The managed private endpoints of each managed VNet, listed per VNet.
async fn endpoints(
    arm: &dyn FactoryApi,
    base: &str,
    vnet_names: Vec<String>,
    concurrency: usize,
    take: &Take<'_>,
) -> Result<(), ArmError> {
    stream::iter(vnet_names)
        .map(|vnet| {
            let url = format!(
                "{base}/managedVirtualNetworks/{}/managedPrivateEndpoints",
                encode(&vnet)
            );
            async move {
                arm.list_each_raw(&url, |item| {
                    take(
                        ResourceKind::ManagedPrivateEndpoint,
                        Some(vnet.clone()),
                        &url,
                        item,
                    )
                })
                .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

/// Hands one listed item (kind, parent, the URL it came from, its bytes) on.
type Take<'t> = dyn Fn(ResourceKind, Option<String>, &str, &[u8]) + Sync + 't;

/// The roles the factory's identities (system- and user-assigned) hold,
/// listed at the subscription (every scope in it), or, for a reader of the
/// resource group only, at the group (what is assigned there and above);
/// then the roles others hold on the factory.
async fn roles(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    identities: &[Own],
    take: &Take<'_>,
) -> Result<(), ExportError> {
    let base = fc.arm_path();
    let held = Mutex::new(Vec::<Value>::new());
    let mut url = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments",
        fc.subscription
    );
    for own in identities {
        let path = format!(
            "providers/Microsoft.Authorization/roleAssignments?$filter=assignedTo('{}')&api-version={}",
            own.principal,
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        url = match at_subscription_or_group(arm, fc, &path, &|item| {
            if let Some(v) = role_held(item, &base, &own.label) {
                held.lock().expect("lock").push(v);
            }
        })
        .await
        {
            Ok(url) => url,
            Err(e) => {
                return listed(Err(e), ResourceKind::RoleAssignment, fc, identity).map(|_| ());
            }
        };
    }
    let mut held = held.into_inner().expect("lock");
    let principals: Vec<&str> = identities.iter().map(|o| o.principal.as_str()).collect();
    match granted_on_factory(arm, &base, &principals).await {
        Ok(others) => held.extend(others),
        Err(e) => return listed(Err(e), ResourceKind::RoleAssignment, fc, identity).map(|_| ()),
    }
    named_roles(arm, &fc.subscription, &mut held).await;
    for v in held {
        if let Ok(bytes) = serde_json::to_vec(&v) {
            take(ResourceKind::RoleAssignment, None, &url, &bytes);
        }
    }
    Ok(())
}

/// Lists `path` (a provider path and its query) at the factory's
/// subscription (every scope in it), or, for a reader of only the resource
/// group, at the group (what is there and above), handing each item to
/// `each`; the URL that answered.
async fn at_subscription_or_group(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    path: &str,
    each: &(dyn Fn(&[u8]) + Sync),
) -> Result<String, ArmError> {
    let group = format!("{}/{path}", resource_group_of(&fc.arm_path()));
    let url = format!("/subscriptions/{}/{path}", fc.subscription);
    match arm.list_each_raw(&url, each).await {
        Err(e) if matches!(e.status(), Some(401 | 403)) => {
            arm.list_each_raw(&group, each).await.map(|()| group)
        }
        other => other.map(|()| url),
    }
}

/// Roles others (people, groups, other identities) hold on the factory
/// itself: a new factory is a new scope, so they are granted there again to
/// the same principals.
async fn granted_on_factory(
    arm: &dyn FactoryApi,
    base: &str,
    own: &[&str],
) -> Result<Vec<Value>, ArmError> {
    use sha2::Digest;
    let url = format!(
        "{base}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()&api-version={}",
        crate::model::kind::ROLE_ASSIGNMENTS_API
    );
    let found = Mutex::new(Vec::new());
    let factory = base.trim_end_matches('/').to_ascii_lowercase();
    arm.list_each_raw(&url, |item| {
            let Ok(v) = serde_json::from_slice::<Value>(item) else {
                return;
            };
            let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let principal = text("/properties/principalId");
            let at = text("/properties/scope").trim_end_matches('/').to_ascii_lowercase();
            if at != factory || principal.is_empty() || own.iter().any(|o| principal.eq_ignore_ascii_case(o)) {
                return;
            }
            let role = text("/properties/roleDefinitionId")
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let digest = sha2::Sha256::digest(format!("{}|{}", crate::model::kind::FACTORY_ID, principal.to_ascii_lowercase()).as_bytes());
            found.lock().expect("lock").push(serde_json::json!({
                "name": format!("{role}-{}", &crate::snapshot::manifest::hex(&digest)[..12]),
                "properties": {"roleDefinitionId": role, "scope": crate::model::kind::FACTORY_ID,
                    "principal": principal.to_ascii_lowercase(), "principalType": text("/properties/principalType")}
            }));
        })
        .await?;
    Ok(found.into_inner().expect("lock"))
}

/// Adds each role's name and type (BuiltInRole, CustomRole) from its role
/// definition: what a person reads, and how a restore into another tenant
/// finds a custom role (by name: its GUID is the old tenant's). A
/// definition that cannot be read leaves the role as its GUID alone.
async fn named_roles(arm: &dyn FactoryApi, subscription: &str, held: &mut [Value]) {
    let mut names: std::collections::BTreeMap<String, Option<(Value, Value)>> = Default::default();
    for v in held.iter() {
        if let Some(role) = v
            .pointer("/properties/roleDefinitionId")
            .and_then(Value::as_str)
        {
            names.entry(role.to_string()).or_default();
        }
    }
    for (role, named) in names.iter_mut() {
        let url = format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}?api-version={}",
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        if let Ok(d) = arm.get(&url).await {
            let field = |k: &str| d.pointer(&format!("/properties/{k}")).cloned();
            *named = field("roleName").zip(field("type"));
        }
    }
    for v in held.iter_mut() {
        let role = v
            .pointer("/properties/roleDefinitionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(Some((name, ty))) = names.get(&role) else {
            continue;
        };
        // A custom role is its tenant's: kept by name, not GUID, so that
        // the same grant is the same resource in any tenant.
        if ty == "CustomRole" {
            let slug: String = name
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let scope_hash = v["name"]
                .as_str()
                .and_then(|n| n.rsplit('-').next())
                .unwrap_or_default()
                .to_string();
            v["name"] = format!("{slug}-{scope_hash}").into();
        }
        if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
            if ty == "CustomRole" {
                props.shift_remove("roleDefinitionId");
            }
            props.insert("roleName".into(), name.clone());
            props.insert("roleType".into(), ty.clone());
        }
    }
}

/// The vault an AzureKeyVault linked service (raw JSON) names by a literal
/// `baseUrl` (one given by an expression is not known until a run).
fn key_vault_url(item: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(item).ok()?;
    let props = v.get("properties")?;
    if props.get("type")?.as_str()? != "AzureKeyVault" {
        return None;
    }
    let url = props.pointer("/typeProperties/baseUrl")?.as_str()?;
    (!url.contains('@')).then(|| url.to_string())
}

/// The Key Vault access policies that name one of the factory's identities,
/// on the vaults its linked services use, found among the vaults
/// of the factory's subscription (or, for a group reader, its resource
/// group). A vault on RBAC has no policies that count: its role
/// assignments are backed up as roles.
async fn access_policies(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    identities: &[Own],
    urls: &[String],
    take: &Take<'_>,
) -> Result<(), ExportError> {
    let names: Vec<String> = urls.iter().filter_map(|u| vault_name(u)).collect();
    if names.is_empty() || identities.is_empty() {
        return Ok(());
    }
    let path = format!(
        "providers/Microsoft.KeyVault/vaults?api-version={}",
        crate::model::kind::KEY_VAULT_API
    );
    let result = at_subscription_or_group(arm, fc, &path, &|item| {
        for own in identities {
            if let Some(bytes) = policy_held(item, &names, own) {
                take(ResourceKind::AccessPolicy, None, &path, &bytes);
            }
        }
    })
    .await;
    listed(result.map(|_| ()), ResourceKind::AccessPolicy, fc, identity).map(|_| ())
}

/// `contoso-kv` of `https://contoso-kv.vault.azure.net/`.
pub fn vault_name(url: &str) -> Option<String> {
    let host = url.trim().strip_prefix("https://")?.split('/').next()?;
    let (name, rest) = host.split_once('.')?;
    rest.to_ascii_lowercase()
        .starts_with("vault.")
        .then(|| name.to_ascii_lowercase())
}

/// The access policy of one of the factory's identities on a listed vault
/// (raw JSON) the factory uses, as adfdr keeps it: named by the vault (and
/// a user-assigned identity's name), holding the vault's id and the
/// permissions (the tenant and object ids are the old identity's).
fn policy_held(item: &[u8], names: &[String], own: &Own) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(item).ok()?;
    let name = v.get("name")?.as_str()?;
    if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return None;
    }
    let props = v.get("properties")?;
    if props.get("enableRbacAuthorization") == Some(&Value::Bool(true)) {
        return None;
    }
    let policy = props.get("accessPolicies")?.as_array()?.iter().find(|p| {
        p.get("objectId")
            .and_then(Value::as_str)
            .is_some_and(|o| o.eq_ignore_ascii_case(&own.principal))
    })?;
    let mut name = name.to_ascii_lowercase();
    if let Some(uami) = own.label.strip_prefix(crate::model::kind::USER_ASSIGNED) {
        name = format!("{name}-{}", uami.rsplit('/').next().unwrap_or_default());
    }
    serde_json::to_vec(&serde_json::json!({
        "name": name,
        "properties": {
            "vault": v.get("id")?,
            "permissions": policy.get("permissions")?,
            "principal": own.label,
        }
    }))
    .ok()
}

/// A role assignment of one of the factory's identities (`principal`, as
/// kept), as adfdr keeps it: named by role and scope (the assignment's own
/// GUID and the principal id are the old identity's), and by the identity
/// where it is a user-assigned one; the factory's id in its scope written
/// FACTORY_ID.
fn role_held(item: &[u8], factory: &str, principal: &str) -> Option<Value> {
    let v: Value = serde_json::from_slice(item).ok()?;
    let props = v.get("properties")?;
    let role = props
        .get("roleDefinitionId")
        .and_then(Value::as_str)?
        .rsplit('/')
        .next()?
        .to_ascii_lowercase();
    let mut scope = props
        .get("scope")
        .and_then(Value::as_str)?
        .trim_end_matches('/')
        .to_string();
    if scope.eq_ignore_ascii_case(factory.trim_end_matches('/')) {
        scope = crate::model::kind::FACTORY_ID.to_string();
    }
    let mut kept = serde_json::json!({
        "properties": {"roleDefinitionId": role, "scope": scope, "principal": principal}
    });
    let name = crate::model::kind::grant_name(ResourceKind::RoleAssignment, &kept)?;
    kept["name"] = Value::String(name);
    Some(kept)
}

/// `/subscriptions/S/resourceGroups/R` of a factory's path.
pub fn resource_group_of(factory: &str) -> &str {
    let lower = factory.to_ascii_lowercase();
    match lower.find("/providers/microsoft.datafactory/") {
        Some(i) => &factory[..i],
        None => factory,
    }
}

/// An alert (raw JSON) that watches the factory at `factory` (in its
/// scopes, or as the resourceId its condition names), with the factory's
/// id written as FACTORY_ID and the service's hidden-link tags dropped;
/// None for the group's other alerts.
fn watching(item: &[u8], factory: &str) -> Option<Vec<u8>> {
    use crate::model::kind::{FACTORY_ID, replace_strings};
    let mut v: Value = serde_json::from_slice(item).ok()?;
    let id = factory.trim_matches('/');
    let is_it = |s: &str| s.trim_matches('/').eq_ignore_ascii_case(id);
    if !replace_strings(v.get_mut("properties")?, &is_it, FACTORY_ID) {
        return None;
    }
    if let Some(tags) = v.get_mut("tags").and_then(Value::as_object_mut) {
        tags.retain(|k, _| !k.starts_with("hidden-link:"));
    }
    serde_json::to_vec(&v).ok()
}

/// The locks a factory made in `group` (`/subscriptions/S/resourceGroups/R`)
/// would inherit, as inherited locks (what a restore into a new factory
/// there must know before its first write).
pub async fn group_locks(arm: &dyn FactoryApi, group: &str) -> Result<Vec<Resource>, ArmError> {
    let (provider, version) = ResourceKind::Lock.extension().expect("an extension");
    let url = format!("{group}/{provider}?api-version={version}");
    let found = Mutex::new(Vec::new());
    arm.list_each_raw(&url, |item| {
        let Some(v) = inherited_lock(item) else {
            return;
        };
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            found.lock().expect("lock").push(Resource {
                kind: ResourceKind::Lock,
                parent: Some(INHERITED.to_string()),
                name: name.to_string(),
                definition: crate::model::canonical::canonicalize(ResourceKind::Lock, &v),
            });
        }
    })
    .await?;
    Ok(found.into_inner().expect("lock"))
}

/// The parent of a lock the factory inherits from its resource group or
/// subscription.
pub const INHERITED: &str = "inherited";

/// An inherited lock (raw JSON) with the scope it comes from as
/// `properties.inheritedFrom`.
fn inherited_lock(item: &[u8]) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(item).ok()?;
    let id = v.get("id")?.as_str()?.to_string();
    let lower = id.to_ascii_lowercase();
    let at = lower.find("/providers/microsoft.authorization/locks/")?;
    v.get_mut("properties")?
        .as_object_mut()?
        .insert("inheritedFrom".into(), Value::String(id[..at].to_string()));
    Some(v)
}

/// Is this lock (raw JSON) on the factory itself (its id below `own`)?
fn on_factory(item: &[u8], own: &str) -> bool {
    serde_json::from_slice::<Value>(item)
        .ok()
        .and_then(|v| {
            v.get("id")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        })
        .is_some_and(|id| id.starts_with(own))
}

/// Each change data capture's status (`GET …/adfcdcs/{name}/status`
/// answers a JSON string, ChangeDataCapture_Status.json).
async fn cdc_statuses(
    arm: &dyn FactoryApi,
    base: &str,
    names: Vec<String>,
    concurrency: usize,
) -> Result<BTreeMap<String, String>, ArmError> {
    stream::iter(names)
        .map(|name| async move {
            let url = format!("{base}/adfcdcs/{}/status", encode(&name));
            let status = arm.get(&url).await?;
            Ok((name, status.as_str().unwrap_or("Unknown").to_string()))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// Exports the factory `fc` describes, as value trees (diff against live).
pub async fn export(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    concurrency: usize,
) -> Result<Exported, ExportError> {
    let mut resources = Vec::new();
    let mut trigger_states = BTreeMap::new();
    let mut ir_states = BTreeMap::new();
    let walked = {
        let sink = Mutex::new(|kind: ResourceKind, parent: Option<String>, item: &[u8]| {
            let answer: Value = serde_json::from_slice(item)?;
            let Some(name) = answer
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return Ok(None);
            };
            let state = answer
                .pointer(crate::model::raw::state_pointer(kind))
                .and_then(Value::as_str)
                .map(str::to_string);
            note_state(kind, &name, state, &mut trigger_states, &mut ir_states);
            resources.push(Resource {
                kind,
                parent,
                name: name.clone(),
                definition: canonicalize_owned(kind, answer),
            });
            Ok(Some(name))
        });
        walk(arm, fc, identity, concurrency, &sink).await?
    };
    Ok(Exported {
        resources,
        trigger_states,
        runtimes: Runtimes {
            integration_runtimes: ir_states,
            change_data_captures: walked.cdc_status,
        },
        region: walked.region,
        created: walked.created,
        not_offered: walked.not_offered,
    })
}

/// Keeps the runtime state an answer carried: a trigger's, or a Managed IR's
/// (self-hosted and Azure IRs carry none in their definition).
fn note_state(
    kind: ResourceKind,
    name: &str,
    state: Option<String>,
    triggers: &mut BTreeMap<String, String>,
    runtimes: &mut BTreeMap<String, String>,
) {
    let Some(state) = state else { return };
    match kind {
        ResourceKind::Trigger => {
            triggers.insert(name.to_string(), state);
        }
        ResourceKind::IntegrationRuntime => {
            runtimes.insert(name.to_string(), state);
        }
        _ => {}
    }
}

/// An export already encoded for a snapshot: each answer is canonicalized
/// from its bytes, encoded and inspected as it arrives (`model::raw`: no
/// value trees), so memory holds canonical bytes, not trees.
#[derive(Debug)]
pub struct Encoded {
    /// The payload's lines in snapshot order (sealed one by one, never
    /// joined: a big factory's payload is not held twice), packed.
    pub lines: Vec<crate::snapshot::manifest::Packed>,
    pub entries: Vec<crate::snapshot::Entry>,
    pub report: Vec<crate::model::restorability::Finding>,
    pub trigger_states: BTreeMap<String, String>,
    pub runtimes: Runtimes,
    pub region: Option<String>,
    pub created: Option<String>,
    pub not_offered: Vec<ResourceKind>,
}

pub async fn export_encoded(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    concurrency: usize,
    max_bytes: usize,
) -> Result<Encoded, ExportError> {
    use crate::model::restorability::{self, Partial};
    use crate::snapshot::manifest::{self, encode_answer};
    // Each line is packed (compressed on its own) as its page arrives: a
    // factory's definitions are held until the payload is written in
    // order, and packed they take a fraction of the memory.
    let mut items: Vec<(
        (
            manifest::ResourceKey,
            manifest::Packed,
            crate::snapshot::Entry,
        ),
        Partial,
    )> = Vec::new();
    let mut held = 0usize;
    let mut trigger_states = BTreeMap::new();
    let mut ir_states = BTreeMap::new();
    let walked = {
        let sink = Mutex::new(|kind: ResourceKind, parent: Option<String>, item: &[u8]| {
            let Some((encoded, partial, state)) = encode_answer(kind, parent, item)? else {
                return Ok(None);
            };
            let name = encoded.entry.name.clone();
            // Past the limit nothing more is held: the backup fails when the
            // walk ends, instead of the process running out of memory (a
            // factory owner can grow a factory to the service's limits).
            held += encoded.line.len();
            if held > max_bytes {
                return Ok(Some(name));
            }
            note_state(kind, &name, state, &mut trigger_states, &mut ir_states);
            let packed = manifest::Packed::pack(encoded.line);
            items.push(((encoded.key, packed, encoded.entry), partial));
            Ok(Some(name))
        });
        walk(arm, fc, identity, concurrency, &sink).await?
    };
    if held > max_bytes {
        return Err(ExportError::TooBig {
            path: fc.path_text(),
            limit: max_bytes >> 20,
        });
    }
    items.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    let present = items.iter().map(|(e, _)| e.0.clone()).collect();
    let (encoded, partials): (Vec<_>, Vec<_>) = items.into_iter().unzip();
    let report = restorability::resolve(partials, &present);
    let (lines, entries) = manifest::sorted_lines(encoded);
    Ok(Encoded {
        lines,
        entries,
        report,
        trigger_states,
        runtimes: Runtimes {
            integration_runtimes: ir_states,
            change_data_captures: walked.cdc_status,
        },
        region: walked.region,
        created: walked.created,
        not_offered: walked.not_offered,
    })
}

/// Percent-encodes a name for a path segment (names may hold spaces).
pub fn encode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
