//! Discovery's decisions, pure (a module of its own: it builds on the
//! config's types, which plan must not): which found factories a
//! `[[discover]]` block covers, with which policy, under which adfdr name;
//! which are left out and why; and which factories the store knows that
//! were not found (source gone: kept, never pruned to nothing).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use crate::config::{DiscoverConfig, FactoryConfig, Origin, PolicyConfig, TargetConfig};
use crate::plan::binding;

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
    /// Its address.
    pub fn address(&self) -> crate::model::names::FactoryId {
        crate::model::names::FactoryId {
            subscription: self.subscription.clone(),
            resource_group: self.resource_group.clone(),
            factory: self.name.clone(),
        }
    }

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
    /// Why it is not under its own name: that name holds another
    /// factory's history (issue 25), so it has a namespace of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed: Option<String>,
    #[serde(skip)]
    pub factory: FactoryConfig,
}

/// A found factory left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Excluded {
    pub id: String,
    pub why: String,
    /// Left out by a tag on the factory itself (its owner's word, not the
    /// operator's): the tag, as `NAME=VALUE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_tag: Option<String>,
    /// The store's history of this factory, if it has one (reported as
    /// excluded, not as gone at the source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Excluded {
    fn new(id: &str, why: String) -> Excluded {
        Excluded {
            id: id.to_string(),
            why,
            by_tag: None,
            namespace: None,
        }
    }
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

/// What the store holds under a name: the source (lower-cased ARM id) of
/// its newest snapshot that opens, or why that could not be read. A name
/// with no snapshot that opens (planted, damaged) holds no history at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Bound(String),
    Unreadable(String),
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
fn factory(name: &str, f: &Found, p: &PolicyConfig, origin: Origin) -> FactoryConfig {
    FactoryConfig {
        name: name.to_string(),
        subscription: f.subscription.clone(),
        resource_group: f.resource_group.clone(),
        factory: f.name.clone(),
        drill_target: p.drill_target.as_ref().map(|t| TargetConfig {
            subscription: t
                .subscription
                .as_deref()
                .map_or(f.subscription.clone(), |s| fill(s, f)),
            resource_group: fill(&t.resource_group, f),
            factory: fill(&t.factory, f),
            region: t.region.clone(),
        }),
        adopt: false,
        origin,
        // A policy is a factory's settings: given as they are.
        settings: p.settings.clone(),
    }
}

/// The names `f`'s history may be under: its own, the older
/// `{name}-{subscription prefix}` spelling, and `{name}-{id hash}`.
fn candidates(f: &Found) -> [String; 3] {
    let plain = f.name.to_ascii_lowercase();
    let sub = f.subscription.to_ascii_lowercase();
    [
        plain.clone(),
        format!("{plain}-{}", &sub[..8.min(sub.len())]),
        format!("{plain}-{}", binding::suffix(&f.id)),
    ]
}

/// A namespace the store already binds to `f` (its history continues).
fn own_history(
    f: &Found,
    stored: &BTreeMap<String, Stored>,
    taken: &BTreeSet<String>,
) -> Option<String> {
    let id = f.id.to_ascii_lowercase();
    candidates(f)
        .into_iter()
        .find(|c| !taken.contains(c) && stored.get(c) == Some(&Stored::Bound(id.clone())))
}

/// The namespace `f` is backed up under: its history's, else its own name
/// when free, else a name of its own when its name is another factory's
/// history (with why). Err: no name can be given safely now.
fn namespace(
    f: &Found,
    stored: &BTreeMap<String, Stored>,
    taken: &BTreeSet<String>,
) -> Result<(String, Option<String>), String> {
    if let Some(n) = own_history(f, stored, taken) {
        return Ok((n, None));
    }
    let [plain, _, own] = candidates(f);
    let holder = match stored.get(&plain) {
        None if !taken.contains(&plain) => return Ok((plain, None)),
        None => "another factory adfdr covers".to_string(),
        Some(Stored::Bound(other)) => other.clone(),
        Some(Stored::Unreadable(why)) => {
            return Err(format!(
                "the store's history '{plain}' could not be read to tell whose it is ({why}); the factory is left out until it can"
            ));
        }
    };
    if taken.contains(&own) || stored.contains_key(&own) {
        return Err(format!(
            "'{plain}' is {holder}'s history and '{own}' is taken too; name it in a [[factory]] block"
        ));
    }
    Ok((
        own.clone(),
        Some(format!(
            "'{plain}' holds the history of {holder}: this factory is another source, backed up as '{own}'"
        )),
    ))
}

/// What `found` comes to under `blocks` and `policies`, beside the
/// configured `explicit` factories (which win), with `stored` what the store
/// holds under each name.
pub fn decide(
    found: &[Found],
    blocks: &[DiscoverConfig],
    policies: &BTreeMap<String, PolicyConfig>,
    explicit: &[FactoryConfig],
    stored: &BTreeMap<String, Stored>,
) -> Coverage {
    let mut out = Coverage::default();
    let mut names: BTreeSet<String> = explicit
        .iter()
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    let mut found = found.to_vec();
    found.sort_by_key(|f| f.id.to_ascii_lowercase());
    found.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
    // A factory whose history the store holds keeps that name, whatever
    // order the factories are found in: first, so no other takes it.
    let reserved: BTreeSet<String> = found
        .iter()
        .filter_map(|f| own_history(f, stored, &names))
        .collect();
    let mut excluded_histories = BTreeSet::new();
    for f in &found {
        match decide_one(f, blocks, policies, explicit, stored, &names, &reserved) {
            Decided::Covered(c) => {
                names.insert(c.name.clone());
                out.covered.push(*c);
            }
            Decided::Excluded(e) => {
                if let (Some(h), Some(_)) = (&e.namespace, &e.by_tag) {
                    excluded_histories.insert(h.clone());
                }
                out.excluded.push(e);
            }
            Decided::NoPolicy => {}
        }
    }
    out.source_gone = stored
        .keys()
        .filter(|s| {
            let s = s.to_ascii_lowercase();
            !names.contains(&s) && !excluded_histories.contains(&s)
        })
        .cloned()
        .collect();
    out
}

enum Decided {
    Covered(Box<Covered>),
    Excluded(Excluded),
    /// Its policy names no `[policy.NAME]` (config validation prevents it).
    NoPolicy,
}

/// What one found factory comes to; `names` are those given so far.
fn decide_one(
    f: &Found,
    blocks: &[DiscoverConfig],
    policies: &BTreeMap<String, PolicyConfig>,
    explicit: &[FactoryConfig],
    stored: &BTreeMap<String, Stored>,
    names: &BTreeSet<String>,
    reserved: &BTreeSet<String>,
) -> Decided {
    let address = f.address();
    let same = |e: &&FactoryConfig| e.id().same(&address);
    if let Some(e) = explicit.iter().find(same) {
        return Decided::Excluded(Excluded::new(
            &f.id,
            format!("configured by [[factory]] {}", e.name),
        ));
    }
    let Some((i, block)) = blocks.iter().enumerate().find(|(_, b)| in_block(b, f)) else {
        return Decided::Excluded(Excluded::new(
            &f.id,
            "no [[discover]] block matches its subscription, resource group, name and include_tags"
                .into(),
        ));
    };
    if let Some((k, v)) = tag_hit(&block.exclude_tags, &f.tags) {
        return Decided::Excluded(Excluded {
            id: f.id.clone(),
            why: format!(
                "tag {k}={v} on the factory (exclude_tags of [[discover]] #{}): no longer backed up",
                i + 1
            ),
            by_tag: Some(format!("{k}={v}")),
            namespace: own_history(f, stored, names),
        });
    }
    let (policy, why, by_tag) = policy_of(f, block, i, policies);
    let Some(p) = policies.get(&policy) else {
        return Decided::NoPolicy;
    };
    let mine = own_history(f, stored, names);
    let mut taken = names.clone();
    taken.extend(
        reserved
            .iter()
            .filter(|r| Some(*r) != mine.as_ref())
            .cloned(),
    );
    let (name, renamed) = match namespace(f, stored, &taken) {
        Ok(n) => n,
        Err(why) => return Decided::Excluded(Excluded::new(&f.id, why)),
    };
    let origin = Origin::Discovered {
        policy: policy.clone(),
        block_policy: block.policy.clone(),
        by_tag,
        tag_may_shorten: block.policy_tag_may_shorten,
    };
    Decided::Covered(Box::new(Covered {
        factory: factory(&name, f, p, origin),
        name,
        id: f.id.clone(),
        policy,
        why,
        renamed,
    }))
}

/// The policy block `i` gives `f`: its `adfdr-policy` tag's when that names
/// one, else the block's; why; and whether the tag chose it.
fn policy_of(
    f: &Found,
    block: &DiscoverConfig,
    i: usize,
    policies: &BTreeMap<String, PolicyConfig>,
) -> (String, String, bool) {
    let tagged = f
        .tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(POLICY_TAG))
        .map(|(_, v)| v.clone());
    match tagged {
        Some(t) if policies.contains_key(&t) => (
            t.clone(),
            format!("[[discover]] #{}, tag {POLICY_TAG}={t}", i + 1),
            t != block.policy,
        ),
        Some(t) => (
            block.policy.clone(),
            format!(
                "[[discover]] #{}; tag {POLICY_TAG}={t} names no [policy.{t}], so the block's policy applies",
                i + 1
            ),
            false,
        ),
        None => (
            block.policy.clone(),
            format!("[[discover]] #{}", i + 1),
            false,
        ),
    }
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

    fn id(sub: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.datafactory/factories/{name}"
        )
    }

    fn policy(backup: &str) -> PolicyConfig {
        PolicyConfig {
            settings: crate::config::Settings {
                backup: Some(crate::plan::schedule::Cron::parse(backup).expect("cron")),
                ..Default::default()
            },
            drill_target: Some(crate::config::TargetPattern {
                subscription: None,
                resource_group: "rg-dr-drills".into(),
                factory: "{factory}-drill".into(),
                region: None,
            }),
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
            policy_tag_may_shorten: false,
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
        let stored = BTreeMap::from([
            (
                "adf-one".to_string(),
                Stored::Bound(id("s1", "rg-a", "adf-one")),
            ),
            (
                "adf-deleted".to_string(),
                Stored::Bound(id("s9", "rg-a", "adf-deleted")),
            ),
            (
                "listed".to_string(),
                Stored::Bound(id("s1", "rg-a", "adf-listed")),
            ),
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
        assert_eq!(
            gold.factory.backup.as_ref().map(|c| c.expr.as_str()),
            Some("*/15 * * * *")
        );
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
            "tag adfdr-exclude=true on the factory (exclude_tags of [[discover]] #1): no longer backed up"
        );
        assert!(why("adf-elsewhere").starts_with("no [[discover]] block matches"));
        assert_eq!(why("adf-listed"), "configured by [[factory]] listed");
        assert_eq!(c.source_gone, ["adf-deleted"]);
    }

    fn block() -> DiscoverConfig {
        DiscoverConfig {
            subscriptions: vec!["*".into()],
            resource_groups: vec![],
            names: vec![],
            include_tags: BTreeMap::new(),
            exclude_tags: BTreeMap::from([("adfdr-exclude".into(), "true".into())]),
            policy: "standard".into(),
            policy_tag_may_shorten: false,
        }
    }

    /// Issue 25, item 1: a name is not an identity. The victim's factory
    /// was deleted; an impostor with the same name in another subscription
    /// never gets the victim's history, whatever order they are found in.
    #[test]
    fn another_source_with_a_used_name_gets_a_namespace_of_its_own() {
        let policies = BTreeMap::from([("standard".into(), policy("0 * * * *"))]);
        let victim = id("s1", "rg", "adf-x");
        let stored = BTreeMap::from([("adf-x".to_string(), Stored::Bound(victim.clone()))]);
        // The victim is gone; the impostor (in a subscription that sorts first).
        let impostor = found("s0", "rg", "adf-x", &[("adfdr-policy", "standard")]);
        let c = decide(
            std::slice::from_ref(&impostor),
            &[block()],
            &policies,
            &[],
            &stored,
        );
        assert_eq!(c.covered.len(), 1);
        let own = format!("adf-x-{}", binding::suffix(&impostor.id));
        assert_eq!(c.covered[0].name, own);
        let why = c.covered[0].renamed.clone().unwrap_or_default();
        assert!(why.contains(&victim) && why.contains(&own), "{why}");
        assert_eq!(
            c.source_gone,
            ["adf-x"],
            "the victim's history is gone at its source, kept"
        );
        // Both found: the victim keeps its history's name.
        let back = found("s1", "rg", "adf-x", &[]);
        let c = decide(
            &[impostor.clone(), back],
            &[block()],
            &policies,
            &[],
            &stored,
        );
        let names: Vec<(&str, &str)> = c
            .covered
            .iter()
            .map(|c| (c.name.as_str(), c.id.as_str()))
            .collect();
        assert!(names.contains(&("adf-x", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf-x")), "{names:?}");
        assert!(
            names.iter().any(|(n, i)| *n == own && i.contains("/s0/")),
            "{names:?}"
        );
        assert!(c.source_gone.is_empty());
        // A history that cannot be read to tell whose it is: left alone.
        let unreadable =
            BTreeMap::from([("adf-x".to_string(), Stored::Unreadable("no key".into()))]);
        let c = decide(&[impostor], &[block()], &policies, &[], &unreadable);
        assert!(c.covered.is_empty());
        assert!(
            c.excluded[0].why.contains("could not be read"),
            "{:?}",
            c.excluded
        );
    }

    /// Issue 25, item 2: a factory excluded by its own tag is reported as
    /// excluded (with its history), not as gone at the source; a policy
    /// tag is told apart from the block's choice.
    #[test]
    fn exclusion_by_tag_is_exclusion_and_a_policy_tag_is_marked() {
        let policies = BTreeMap::from([
            ("standard".into(), policy("0 * * * *")),
            ("short".into(), policy("0 * * * *")),
        ]);
        let stored =
            BTreeMap::from([("adf-y".to_string(), Stored::Bound(id("s1", "rg", "adf-y")))]);
        let off = found("s1", "rg", "adf-y", &[("adfdr-exclude", "true")]);
        let c = decide(&[off], &[block()], &policies, &[], &stored);
        assert!(c.source_gone.is_empty(), "{:?}", c.source_gone);
        assert_eq!(c.excluded[0].by_tag.as_deref(), Some("adfdr-exclude=true"));
        assert_eq!(c.excluded[0].namespace.as_deref(), Some("adf-y"));
        let short = found("s1", "rg", "adf-y", &[("adfdr-policy", "short")]);
        let c = decide(&[short], &[block()], &policies, &[], &stored);
        assert_eq!(
            c.covered[0].factory.origin,
            Origin::Discovered {
                policy: "short".into(),
                block_policy: "standard".into(),
                by_tag: true,
                tag_may_shorten: false
            }
        );
    }
}
