//! Discovery's decisions, pure (a module of its own: it builds on the
//! config's types, which plan must not): which found factories a
//! `[[discover]]` block covers, with which policy, under which adfdr name;
//! which are left out and why; and which factories the store knows that
//! were not found (source gone: kept, never pruned to nothing).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use crate::config::{DiscoverConfig, FactoryConfig, PolicyConfig, TargetConfig};

/// The tag that picks a factory's policy.
pub const POLICY_TAG: &str = "adfdr-policy";

/// A factory as discovery found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Found {
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Found {
    /// From an ARM id (`/subscriptions/S/resourceGroups/R/providers/Microsoft.DataFactory/factories/F`).
    pub fn from_id(
        id: &str,
        location: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> Option<Found> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            [s, sub, r, rg, p, ns, f, name]
                if s.eq_ignore_ascii_case("subscriptions")
                    && r.eq_ignore_ascii_case("resourceGroups")
                    && p.eq_ignore_ascii_case("providers")
                    && ns.eq_ignore_ascii_case("Microsoft.DataFactory")
                    && f.eq_ignore_ascii_case("factories") =>
            {
                Some(Found {
                    id: id.to_string(),
                    subscription: sub.to_string(),
                    resource_group: rg.to_string(),
                    name: name.to_string(),
                    location,
                    tags,
                })
            }
            _ => None,
        }
    }
}

/// A found factory that a block covers.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Covered {
    /// adfdr's name for it (the store namespace).
    pub name: String,
    pub id: String,
    pub policy: String,
    /// How it was chosen: the block, and the tag that picked the policy.
    pub why: String,
    #[serde(skip)]
    pub factory: FactoryConfig,
}

/// A found factory left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Excluded {
    pub id: String,
    pub why: String,
}

/// What discovery decided.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Coverage {
    pub covered: Vec<Covered>,
    pub excluded: Vec<Excluded>,
    /// Factories the store holds snapshots of that are neither configured
    /// nor found: their snapshots are kept (an accidental delete is the main
    /// incident) and never pruned.
    pub source_gone: Vec<String>,
}

fn glob_match(globs: &[String], text: &str) -> bool {
    globs.is_empty()
        || globs.iter().any(|g| {
            globset::GlobBuilder::new(g)
                .case_insensitive(true)
                .build()
                .is_ok_and(|g| g.compile_matcher().is_match(text))
        })
}

/// The first of `tags` (name → value, `"*"` any) the factory carries.
fn tag_hit<'a>(
    want: &'a BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
) -> Option<(&'a str, &'a str)> {
    want.iter().find_map(|(k, v)| {
        let has = tags
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(k))
            .is_some_and(|(_, tv)| v == "*" || tv.eq_ignore_ascii_case(v));
        has.then_some((k.as_str(), v.as_str()))
    })
}

fn in_block(b: &DiscoverConfig, f: &Found) -> bool {
    (b.subscriptions
        .iter()
        .any(|s| s == "*" || s.eq_ignore_ascii_case(&f.subscription)))
        && glob_match(&b.resource_groups, &f.resource_group)
        && glob_match(&b.names, &f.name)
        && b.include_tags
            .iter()
            .all(|(k, v)| tag_hit(&BTreeMap::from([(k.clone(), v.clone())]), &f.tags).is_some())
}

fn fill(pattern: &str, f: &Found) -> String {
    pattern
        .replace("{factory}", &f.name)
        .replace("{resource_group}", &f.resource_group)
        .replace("{subscription}", &f.subscription)
}

/// A `[[factory]]` block for `f` under `policy`.
fn factory(name: &str, f: &Found, p: &PolicyConfig) -> FactoryConfig {
    FactoryConfig {
        name: name.to_string(),
        subscription: f.subscription.clone(),
        resource_group: f.resource_group.clone(),
        factory: f.name.clone(),
        backup: p.backup.clone(),
        drill: p.drill.clone(),
        verify: p.verify.clone(),
        prune: p.prune.clone(),
        timezone: p.timezone.clone(),
        rpo_target: p.rpo_target,
        rto_target: p.rto_target,
        keep: p.keep.clone(),
        drill_target: p.drill_target.as_ref().map(|t| TargetConfig {
            subscription: t
                .subscription
                .as_deref()
                .map_or(f.subscription.clone(), |s| fill(s, f)),
            resource_group: fill(&t.resource_group, f),
            factory: fill(&t.factory, f),
            region: t.region.clone(),
        }),
        drill_overrides: p.drill_overrides.clone(),
        smoke_pipeline: p.smoke_pipeline.clone(),
        smoke_timeout: p.smoke_timeout,
        drill_cleanup: p.drill_cleanup,
        drill_random_within: p.drill_random_within,
        capture: p.capture,
        queue: p.queue.clone(),
        reconcile: p.reconcile.clone(),
        coalesce: p.coalesce,
    }
}

/// What `found` comes to under `blocks` and `policies`, beside the
/// configured `explicit` factories (which win), with `stored` the factory
/// names the store holds snapshots of.
pub fn decide(
    found: &[Found],
    blocks: &[DiscoverConfig],
    policies: &BTreeMap<String, PolicyConfig>,
    explicit: &[FactoryConfig],
    stored: &BTreeSet<String>,
) -> Coverage {
    let mut out = Coverage::default();
    let mut names: BTreeSet<String> = explicit
        .iter()
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    let mut found = found.to_vec();
    found.sort_by_key(|f| f.id.to_ascii_lowercase());
    found.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
    for f in &found {
        let same = |e: &&FactoryConfig| {
            e.subscription.eq_ignore_ascii_case(&f.subscription)
                && e.resource_group.eq_ignore_ascii_case(&f.resource_group)
                && e.factory.eq_ignore_ascii_case(&f.name)
        };
        if let Some(e) = explicit.iter().find(same) {
            out.excluded.push(Excluded {
                id: f.id.clone(),
                why: format!("configured by [[factory]] {}", e.name),
            });
            continue;
        }
        let Some((i, block)) = blocks.iter().enumerate().find(|(_, b)| in_block(b, f)) else {
            out.excluded.push(Excluded {
                id: f.id.clone(),
                why: "no [[discover]] block matches its subscription, resource group, name and include_tags".into(),
            });
            continue;
        };
        if let Some((k, v)) = tag_hit(&block.exclude_tags, &f.tags) {
            out.excluded.push(Excluded {
                id: f.id.clone(),
                why: format!("tag {k}={v} (exclude_tags of [[discover]] #{})", i + 1),
            });
            continue;
        }
        let tagged = f
            .tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(POLICY_TAG))
            .map(|(_, v)| v.clone());
        let (policy, why) = match tagged {
            Some(t) if policies.contains_key(&t) => (
                t.clone(),
                format!("[[discover]] #{}, tag {POLICY_TAG}={t}", i + 1),
            ),
            Some(t) => (
                block.policy.clone(),
                format!(
                    "[[discover]] #{}; tag {POLICY_TAG}={t} names no [policy.{t}], so the block's policy applies",
                    i + 1
                ),
            ),
            None => (block.policy.clone(), format!("[[discover]] #{}", i + 1)),
        };
        let Some(p) = policies.get(&policy) else {
            continue;
        };
        // ADF names are unique in Azure; a configured name may still take it.
        let mut name = f.name.to_ascii_lowercase();
        if names.contains(&name) {
            name = format!(
                "{name}-{}",
                &f.subscription.to_ascii_lowercase()[..8.min(f.subscription.len())]
            );
        }
        names.insert(name.clone());
        out.covered.push(Covered {
            factory: factory(&name, f, p),
            name,
            id: f.id.clone(),
            policy,
            why,
        });
    }
    out.source_gone = stored
        .iter()
        .filter(|s| !names.contains(&s.to_ascii_lowercase()))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(sub: &str, rg: &str, name: &str, tags: &[(&str, &str)]) -> Found {
        Found::from_id(
            &format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{name}"),
            Some("westeurope".into()),
            tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        )
        .expect("an id")
    }

    fn policy(backup: &str) -> PolicyConfig {
        PolicyConfig {
            backup: Some(backup.into()),
            drill_target: Some(crate::config::TargetPattern {
                subscription: None,
                resource_group: "rg-dr-drills".into(),
                factory: "{factory}-drill".into(),
                region: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn blocks_tags_and_policies_decide_what_is_covered_and_why_not() {
        let blocks = vec![DiscoverConfig {
            subscriptions: vec!["*".into()],
            resource_groups: vec!["rg-*".into()],
            names: vec![],
            include_tags: BTreeMap::new(),
            exclude_tags: BTreeMap::from([("adfdr-exclude".into(), "true".into())]),
            policy: "standard".into(),
        }];
        let policies = BTreeMap::from([
            ("standard".into(), policy("0 * * * *")),
            ("gold".into(), policy("*/15 * * * *")),
        ]);
        let found = vec![
            found("s1", "rg-a", "adf-one", &[]),
            found("s1", "rg-a", "adf-gold", &[("adfdr-policy", "gold")]),
            found("s2", "rg-b", "adf-typo", &[("adfdr-policy", "glod")]),
            found("s2", "rg-b", "adf-skip", &[("ADFDR-EXCLUDE", "TRUE")]),
            found("s2", "other", "adf-elsewhere", &[]),
            found("s1", "rg-a", "adf-listed", &[]),
        ];
        let explicit = FactoryConfig::adhoc("listed", "s1", "rg-a", "adf-listed");
        let stored = BTreeSet::from([
            "adf-one".to_string(),
            "adf-deleted".to_string(),
            "listed".to_string(),
        ]);
        let c = decide(&found, &blocks, &policies, &[explicit], &stored);
        let covered: Vec<(&str, &str)> = c
            .covered
            .iter()
            .map(|c| (c.name.as_str(), c.policy.as_str()))
            .collect();
        assert_eq!(
            covered,
            [
                ("adf-gold", "gold"),
                ("adf-one", "standard"),
                ("adf-typo", "standard")
            ]
        );
        let gold = &c.covered[0];
        assert_eq!(gold.factory.backup.as_deref(), Some("*/15 * * * *"));
        let t = gold.factory.drill_target.as_ref().expect("drill target");
        assert_eq!(
            (
                t.subscription.as_str(),
                t.resource_group.as_str(),
                t.factory.as_str()
            ),
            ("s1", "rg-dr-drills", "adf-gold-drill")
        );
        assert!(
            c.covered[2].why.contains("names no [policy.glod]"),
            "{:?}",
            c.covered[2]
        );
        let why = |name: &str| {
            c.excluded
                .iter()
                .find(|e| e.id.ends_with(name))
                .map(|e| e.why.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            why("adf-skip"),
            "tag adfdr-exclude=true (exclude_tags of [[discover]] #1)"
        );
        assert!(why("adf-elsewhere").starts_with("no [[discover]] block matches"));
        assert_eq!(why("adf-listed"), "configured by [[factory]] listed");
        assert_eq!(c.source_gone, ["adf-deleted"]);
    }
}
