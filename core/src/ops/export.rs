//! Reading a live factory through ARM: the factory itself, then every child
//! kind listed concurrently (bounded), managed private endpoints per managed
//! virtual network. azure_core's retry policy waits out 429s as Retry-After
//! says; the bound keeps adfdr from hammering a throttled subscription.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::config::FactoryConfig;
use crate::factory::arm::{ArmClient, ArmError};
use crate::model::{ResourceKind, canonicalize_owned};
use crate::snapshot::Resource;

#[derive(Debug)]
pub struct Exported {
    pub resources: Vec<Resource>,
    pub trigger_states: BTreeMap<String, String>,
    pub region: Option<String>,
    /// ARM requests made (pages included).
    pub requests: usize,
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
}

fn classify(err: ArmError, fc: &FactoryConfig, identity: &str) -> ExportError {
    let path = format!("{}/{}/{}", fc.subscription, fc.resource_group, fc.factory);
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

/// Exports the factory `fc` describes.
pub async fn export(
    arm: &ArmClient,
    fc: &FactoryConfig,
    identity: &str,
    concurrency: usize,
) -> Result<Exported, ExportError> {
    let base = fc.arm_path();
    let path_text = format!("{}/{}/{}", fc.subscription, fc.resource_group, fc.factory);
    let factory = match arm.get(&base).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => {
            return Err(ExportError::NotFound {
                name: fc.name.clone(),
                path: path_text,
                code: e.code().unwrap_or("404").to_string(),
            });
        }
        Err(e) => return Err(classify(e, fc, identity)),
    };
    let region = factory
        .get("location")
        .and_then(Value::as_str)
        .map(str::to_string);
    let factory_name = factory
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&fc.factory)
        .to_string();

    // The kinds that run to many pages go first: a backup lasts as long as
    // its longest nextLink chain, so that chain must start at once.
    let mut kinds: Vec<ResourceKind> = ResourceKind::CHILDREN
        .into_iter()
        .filter(|k| *k != ResourceKind::ManagedPrivateEndpoint)
        .collect();
    kinds.sort_by_key(|k| match k {
        ResourceKind::Pipeline => 0,
        ResourceKind::Dataset => 1,
        ResourceKind::Trigger => 2,
        ResourceKind::LinkedService => 3,
        ResourceKind::DataFlow => 4,
        _ => 5,
    });
    let lists: Vec<(ResourceKind, Option<String>, Vec<Value>)> = stream::iter(kinds)
        .map(|kind| {
            let url = format!("{base}/{}", kind.segment());
            async move { arm.list(&url).await.map(|items| (kind, None, items)) }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
        .map_err(|e| classify(e, fc, identity))?;

    let vnets: Vec<String> = lists
        .iter()
        .filter(|(k, _, _)| *k == ResourceKind::ManagedVirtualNetwork)
        .flat_map(|(_, _, items)| items.iter())
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let endpoint_lists: Vec<(ResourceKind, Option<String>, Vec<Value>)> = stream::iter(vnets)
        .map(|vnet| {
            let url = format!(
                "{base}/managedVirtualNetworks/{}/managedPrivateEndpoints",
                encode(&vnet)
            );
            async move {
                arm.list(&url)
                    .await
                    .map(|items| (ResourceKind::ManagedPrivateEndpoint, Some(vnet), items))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
        .map_err(|e| classify(e, fc, identity))?;

    let mut resources = vec![Resource {
        kind: ResourceKind::Factory,
        parent: None,
        name: factory_name,
        definition: canonicalize_owned(ResourceKind::Factory, factory),
    }];
    let mut trigger_states = BTreeMap::new();
    let mut requests = 1;
    for (kind, parent, items) in lists.into_iter().chain(endpoint_lists) {
        requests += 1;
        for item in items {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ExportError::Unnamed {
                    path: path_text.clone(),
                    what: kind.label().to_string(),
                })?
                .to_string();
            if kind == ResourceKind::Trigger
                && let Some(state) = item
                    .pointer("/properties/runtimeState")
                    .and_then(Value::as_str)
            {
                trigger_states.insert(name.clone(), state.to_string());
            }
            resources.push(Resource {
                kind,
                parent: parent.clone(),
                name,
                definition: canonicalize_owned(kind, item),
            });
        }
    }
    Ok(Exported {
        resources,
        trigger_states,
        region,
        requests,
    })
}

/// Percent-encodes a name for a path segment (names may hold spaces).
pub fn encode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
