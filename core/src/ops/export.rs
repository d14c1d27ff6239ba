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
    pub region: Option<String>,
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

/// Reads the factory itself, hands it to `sink` and answers its region.
async fn read_factory(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    sink: &Sink<'_>,
) -> Result<Option<String>, ExportError> {
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
    let region = serde_json::from_slice::<Value>(&factory)
        .map_err(|e| bad_json(&path_text, &base, e))?
        .get("location")
        .and_then(Value::as_str)
        .map(str::to_string);
    if (sink.lock().expect("sink"))(ResourceKind::Factory, None, &factory)
        .map_err(|e| bad_json(&path_text, &base, e))?
        .is_none()
    {
        return Err(ExportError::Unnamed {
            path: path_text,
            what: "the factory".into(),
        });
    }
    Ok(region)
}

/// The child kinds listed at the factory, those that run to many pages
/// first: a backup lasts as long as its longest nextLink chain, so that
/// chain must start at once. (Private endpoints are listed per managed VNet.)
fn listed_kinds() -> Vec<ResourceKind> {
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
    let region = read_factory(arm, fc, identity, sink).await?;
    let base = fc.arm_path();
    let path_text = fc.path_text();
    let kinds = listed_kinds();
    let problem = Mutex::new(None::<ExportError>);
    let vnets = Mutex::new(Vec::<String>::new());
    let take = |kind: ResourceKind, parent: Option<String>, url: &str, item: &[u8]| {
        let named = (sink.lock().expect("sink"))(kind, parent, item);
        let failed = match named {
            Ok(Some(name)) => {
                if kind == ResourceKind::ManagedVirtualNetwork {
                    vnets.lock().expect("lock").push(name);
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
    stream::iter(kinds)
        .map(|kind| {
            let url = format!("{base}/{}", kind.segment());
            let take = &take;
            async move {
                arm.list_each_raw(&url, |item| take(kind, None, &url, item))
                    .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| classify(e, fc, identity))?;
    let vnet_names = std::mem::take(&mut *vnets.lock().expect("lock"));
    stream::iter(vnet_names)
        .map(|vnet| {
            let url = format!(
                "{base}/managedVirtualNetworks/{}/managedPrivateEndpoints",
                encode(&vnet)
            );
            let take = &take;
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
        .map_err(|e| classify(e, fc, identity))?;
    if let Some(problem) = problem.lock().expect("lock").take() {
        return Err(problem);
    }
    Ok(Walked { region })
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
            if kind == ResourceKind::Trigger
                && let Some(state) = answer
                    .pointer("/properties/runtimeState")
                    .and_then(Value::as_str)
            {
                trigger_states.insert(name.clone(), state.to_string());
            }
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
        region: walked.region,
    })
}

/// An export already encoded for a snapshot: each answer is canonicalized
/// from its bytes, encoded and inspected as it arrives (`model::raw`: no
/// value trees), so memory holds canonical bytes, not trees.
#[derive(Debug)]
pub struct Encoded {
    pub plain: Vec<u8>,
    pub entries: Vec<crate::snapshot::Entry>,
    pub report: Vec<crate::model::restorability::Finding>,
    pub trigger_states: BTreeMap<String, String>,
    pub region: Option<String>,
}

pub async fn export_encoded(
    arm: &dyn FactoryApi,
    fc: &FactoryConfig,
    identity: &str,
    concurrency: usize,
) -> Result<Encoded, ExportError> {
    use crate::model::restorability::{self, Partial};
    use crate::snapshot::manifest::{self, encode_answer};
    let mut items: Vec<(manifest::Encoded, Partial)> = Vec::new();
    let mut trigger_states = BTreeMap::new();
    let walked = {
        let sink = Mutex::new(|kind: ResourceKind, parent: Option<String>, item: &[u8]| {
            let Some((encoded, partial, state)) = encode_answer(kind, parent, item)? else {
                return Ok(None);
            };
            let name = encoded.entry.name.clone();
            if kind == ResourceKind::Trigger
                && let Some(state) = state
            {
                trigger_states.insert(name.clone(), state);
            }
            items.push((encoded, partial));
            Ok(Some(name))
        });
        walk(arm, fc, identity, concurrency, &sink).await?
    };
    items.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let present = items.iter().map(|(e, _)| e.key.clone()).collect();
    let (encoded, partials): (Vec<_>, Vec<_>) = items.into_iter().unzip();
    let report = restorability::resolve(partials, &present);
    let (plain, entries) = manifest::assemble(encoded);
    Ok(Encoded {
        plain,
        entries,
        report,
        trigger_states,
        region: walked.region,
    })
}

/// Percent-encodes a name for a path segment (names may hold spaces).
pub fn encode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
