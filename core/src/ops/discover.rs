//! Discovery as a use case: find every Data Factory the `[[discover]]`
//! blocks reach, with one Azure Resource Graph query across their
//! subscriptions (paged with `$skipToken`), or, where the identity may not
//! use Resource Graph, ARM's list by subscription; then decide coverage
//! (discovery) against the configured factories and what the store
//! holds.

use std::collections::{BTreeMap, BTreeSet};

use azure_core::http::Method;
use serde_json::{Value, json};

use super::{Engine, OpError};
use crate::config::Config;
use crate::discovery::{Coverage, Found, Stored, decide};
use crate::factory::FactoryApi;

pub const GRAPH_API: &str = "2024-04-01";
pub const SUBSCRIPTIONS_API: &str = "2022-12-01";
const FACTORIES_API: &str = "2018-06-01";
/// The query discovery sends; blocks' globs and tags are applied by adfdr.
pub const QUERY: &str = "Resources | where type =~ 'microsoft.datafactory/factories' | project id, name, resourceGroup, subscriptionId, location, tags";

/// How the factories were found.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Discovery {
    /// `resource graph`, or `ARM list by subscription` (and why).
    pub source: String,
    pub subscriptions: Vec<String>,
    pub found: usize,
    #[serde(flatten)]
    pub coverage: Coverage,
}

fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The subscriptions the blocks name; `"*"`: every one the identity sees.
async fn subscriptions(arm: &dyn FactoryApi, config: &Config) -> Result<Vec<String>, OpError> {
    let mut subs = BTreeSet::new();
    let mut every = false;
    for b in &config.discover {
        for s in &b.get_ref().subscriptions {
            if s == "*" {
                every = true;
            } else {
                subs.insert(s.to_ascii_lowercase());
            }
        }
    }
    if every {
        let url = format!("/subscriptions?api-version={SUBSCRIPTIONS_API}");
        arm.list_each_raw(&url, |item| {
            if let Ok(v) = serde_json::from_slice::<Value>(item)
                && let Some(id) = v["subscriptionId"].as_str()
            {
                subs.insert(id.to_ascii_lowercase());
            }
        })
        .await
        .map_err(|e| {
            OpError::failed(format!(
                "discovery: listing the subscriptions the identity sees: {e}"
            ))
        })?;
    }
    Ok(subs.into_iter().collect())
}

/// Every factory in `subs`, by Resource Graph, paged.
async fn by_graph(
    arm: &dyn FactoryApi,
    subs: &[String],
) -> Result<Vec<Found>, crate::factory::ArmError> {
    let url = format!("/providers/Microsoft.ResourceGraph/resources?api-version={GRAPH_API}");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    // A page cap: a token that never ends is the service's bug, not a loop.
    for _ in 0..10_000 {
        if let Some(t) = &token
            && !seen.insert(t.clone())
        {
            return Err(crate::factory::ArmError::Body {
                method: "POST".into(),
                url: url.clone(),
                detail: "Resource Graph's $skipToken leads back to a page already read".into(),
            });
        }
        let mut options = json!({"$top": 1000, "resultFormat": "objectArray"});
        if let Some(t) = &token {
            options["$skipToken"] = t.clone().into();
        }
        let body = json!({"subscriptions": subs, "query": QUERY, "options": options});
        let (_, page) = arm.send(Method::Post, &url, Some(&body)).await?;
        for row in page["data"].as_array().into_iter().flatten() {
            if let Some(f) = row["id"].as_str().and_then(|id| {
                Found::from_id(
                    id,
                    row["location"].as_str().map(str::to_string),
                    tags_of(&row["tags"]),
                )
            }) {
                out.push(f);
            }
        }
        match page["$skipToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
    Err(crate::factory::ArmError::Body {
        method: "POST".into(),
        url,
        detail: "Resource Graph's answer goes on past 10,000 pages: given up".into(),
    })
}

/// Every factory in `subs`, by ARM's list per subscription.
async fn by_list(arm: &dyn FactoryApi, subs: &[String]) -> Result<Vec<Found>, OpError> {
    let mut out = Vec::new();
    for s in subs {
        let url = format!(
            "/subscriptions/{s}/providers/Microsoft.DataFactory/factories?api-version={FACTORIES_API}"
        );
        let listed = arm
            .list_each_raw(&url, |item| {
                if let Ok(v) = serde_json::from_slice::<Value>(item)
                    && let Some(f) = v["id"].as_str().and_then(|id| {
                        Found::from_id(
                            id,
                            v["location"].as_str().map(str::to_string),
                            tags_of(&v["tags"]),
                        )
                    })
                {
                    out.push(f);
                }
            })
            .await;
        if let Err(e) = listed {
            return Err(OpError::failed(format!(
                "discovery: listing the factories of subscription {s}: {e} (the identity needs Reader there)"
            )));
        }
    }
    Ok(out)
}

/// Sources already read, by (namespace, snapshot id): a snapshot never
/// changes (write-once), so its source is read once per process.
static BOUND: std::sync::Mutex<Option<std::collections::HashMap<(String, String), String>>> =
    std::sync::Mutex::new(None);

/// What the store holds under each name: the source of the newest snapshot
/// that opens (a name with none holds no history: planted or damaged
/// objects only), or why it could not be read.
pub async fn stored(engine: &Engine) -> BTreeMap<String, Stored> {
    let (listed, _) = super::read::list(&engine.replicas, None).await;
    let mut by_name: BTreeMap<String, Vec<super::read::Listed>> = BTreeMap::new();
    for l in listed {
        by_name.entry(l.factory.clone()).or_default().push(l);
    }
    let now = super::system_clock();
    let mut out = BTreeMap::new();
    for (name, snapshots) in by_name {
        let newest = snapshots.last().map(|l| l.id.clone()).unwrap_or_default();
        let cached = BOUND
            .lock()
            .expect("bound")
            .as_ref()
            .and_then(|m| m.get(&(name.clone(), newest.clone())).cloned());
        if let Some(id) = cached {
            out.insert(name, Stored::Bound(id));
            continue;
        }
        match super::read::open_newest(&engine.replicas, &engine.keys, &name, &snapshots, now).await
        {
            Ok(opened) => {
                let id = opened.manifest.source_id().id.to_ascii_lowercase();
                let mut cache = BOUND.lock().expect("bound");
                let map = cache.get_or_insert_with(Default::default);
                if map.len() > 100_000 {
                    map.clear();
                }
                map.insert((name.clone(), opened.id.clone()), id.clone());
                out.insert(name, Stored::Bound(id));
            }
            Err(OpError::Key(e)) => {
                out.insert(name, Stored::Unreadable(e.to_string()));
            }
            Err(e) => {
                tracing::debug!(namespace = %name, error = %e, "a name in the store holds no snapshot that opens: no history");
            }
        }
    }
    out
}

/// Finds and decides: what the `[[discover]]` blocks of `engine`'s config
/// cover now.
pub async fn discover(engine: &Engine) -> Result<Discovery, OpError> {
    discover_for(engine, &engine.config).await
}

/// The same for `config` (the file as written: its own `[[factory]]`
/// blocks, not those an earlier discovery added), through `engine`'s
/// clients and store.
pub async fn discover_for(engine: &Engine, config: &Config) -> Result<Discovery, OpError> {
    discover_against(engine, config, &stored(engine).await).await
}

/// The same, with `stored` what the store holds under each name (for a
/// caller that has read it already).
pub async fn discover_against(
    engine: &Engine,
    config: &Config,
    stored: &BTreeMap<String, Stored>,
) -> Result<Discovery, OpError> {
    let arm = engine.arm.as_ref();
    let subs = subscriptions(arm, config).await?;
    let (found, source) = match by_graph(arm, &subs).await {
        Ok(found) => (found, "resource graph".to_string()),
        Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => (
            by_list(arm, &subs).await?,
            format!(
                "ARM list by subscription (Resource Graph refused: {})",
                e.code().unwrap_or("HTTP error")
            ),
        ),
        Err(e) => {
            return Err(OpError::failed(format!(
                "discovery: the Resource Graph query failed: {e}"
            )));
        }
    };
    let blocks: Vec<_> = config
        .discover
        .iter()
        .map(|b| b.get_ref().clone())
        .collect();
    let explicit: Vec<_> = config
        .factories
        .iter()
        .map(|f| f.get_ref().clone())
        .collect();
    let coverage = decide(&found, &blocks, &config.policies, &explicit, stored);
    Ok(Discovery {
        source,
        subscriptions: subs,
        found: found.len(),
        coverage,
    })
}

/// `config` with the discovered factories added as `[[factory]]` blocks.
pub fn with_discovered(config: &Config, coverage: &Coverage) -> Config {
    let mut out = config.clone();
    for c in &coverage.covered {
        out.factories
            .push(crate::config::Spanned::new(0..0, c.factory.clone()));
    }
    out
}

/// What a command that names factories works with (issue 26): `engine`'s
/// config, plus the factories the `[[discover]]` blocks cover now when a
/// name is not configured or none is named (every factory), so `adfdr
/// backup adf-x` reaches a factory the agent protects without a
/// `[[factory]]` block. Nothing is queried when every name is configured,
/// or there is no `[[discover]]` block to ask. Discovery failing is an
/// error naming the factory that needed it; for "every factory" it is a
/// warning (returned) and the configured ones go on.
pub async fn include_named(
    engine: &mut Engine,
    names: &[String],
) -> Result<Option<String>, OpError> {
    let unknown = names.iter().find(|n| engine.config.factory(n).is_none());
    if engine.config.discover.is_empty()
        || engine.incident
        || (!names.is_empty() && unknown.is_none())
    {
        return Ok(None);
    }
    match discover(engine).await {
        Ok(found) => {
            engine.config = with_discovered(&engine.config, &found.coverage);
            Ok(None)
        }
        Err(e) => match unknown {
            Some(name) => Err(OpError::failed(format!(
                "'{name}' is not a configured factory, and discovery (to find it among the [[discover]] blocks' factories) failed: {e}"
            ))),
            None => Ok(Some(format!(
                "discovery failed, so only the configured factories are included: {e}"
            ))),
        },
    }
}
