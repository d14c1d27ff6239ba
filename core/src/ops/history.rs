//! A factory's change history from its snapshots (issue 18): every change
//! each manifest records (who, what, when, which event), grouped into change
//! sets by correlation id (one ADF Studio publish is one), and what undoing
//! one change set takes: the snapshot before it and exactly the resources
//! it touched. Read from the store (manifests decrypted), never from the
//! catalog: the store is the truth.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use serde::Serialize;

use super::{OpError, read};
use crate::keys::KeyRing;
use crate::plan::events::{ChangeRecord, Effect};
use crate::snapshot::Source;
use crate::store::Replicas;

/// One change, in the snapshot that recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Row {
    pub snapshot: String,
    #[serde(flatten)]
    pub change: ChangeRecord,
}

impl Row {
    /// The change set it belongs to: its correlation id, or (a change a
    /// listing found) the snapshot's.
    pub fn change_set(&self) -> String {
        match &self.change.event {
            Some(e) if !e.correlation_id.is_empty() => e.correlation_id.clone(),
            _ => format!("listing:{}", self.snapshot),
        }
    }
}

/// Changes that share a correlation id (or a listing's snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ChangeSet {
    pub id: String,
    pub first: String,
    pub last: String,
    /// Who made them (distinct, in order of appearance).
    pub authors: Vec<String>,
    /// Resource label → its last effect in the set.
    pub resources: BTreeMap<String, Effect>,
    /// The snapshots that hold them, oldest first.
    pub snapshots: Vec<String>,
}

/// A factory's history: rows oldest first, and the snapshots read (the
/// factory's snapshots in order, with whether their manifest opened).
#[derive(Debug)]
pub struct History {
    pub factory: String,
    pub source: Option<Source>,
    pub rows: Vec<Row>,
    /// Every snapshot in the range, oldest first: (id, opened).
    pub snapshots: Vec<(String, bool)>,
    /// Snapshots whose manifest did not open, with why.
    pub unreadable: Vec<(String, String)>,
}

/// What one manifest says: its source and its changes.
type Recorded = (Source, Vec<ChangeRecord>);

/// Reads the changes of `factory`'s snapshots taken at or after `since`
/// (all with None), manifests only, eight at a time.
pub async fn history(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    since: Option<time::OffsetDateTime>,
) -> Result<History, OpError> {
    let (listed, failed) = read::list(replicas, Some(factory)).await;
    if listed.is_empty() {
        return Err(
            if failed.len() == replicas.locations.len() && !failed.is_empty() {
                OpError::new(
                    super::Kind::Unreachable,
                    format!("no location could be listed: {}", read::describe(&failed)),
                )
            } else {
                OpError::not_found(format!(
                    "the store holds no snapshot of {factory}: `adfdr snapshots` lists what it holds"
                ))
            },
        );
    }
    let ids: Vec<(String, String)> = listed
        .into_iter()
        .filter(|l| {
            since.is_none_or(|s| crate::snapshot::snapshot_time(&l.id).is_some_and(|t| t >= s))
        })
        .map(|l| (l.factory, l.id))
        .collect();
    let opened: Vec<(String, Result<Recorded, String>)> = stream::iter(ids)
        .map(|(f, id)| async move {
            let o = read::open(replicas, keys, &f, &id).await;
            (
                id,
                o.map(|o| (o.manifest.source, o.manifest.changes))
                    .map_err(|e| e.to_string()),
            )
        })
        .buffered(8)
        .collect()
        .await;
    let mut out = History {
        factory: factory.to_string(),
        source: None,
        rows: Vec::new(),
        snapshots: Vec::new(),
        unreadable: Vec::new(),
    };
    for (id, o) in opened {
        match o {
            Ok((source, changes)) => {
                out.source = Some(source);
                out.snapshots.push((id.clone(), true));
                out.rows.extend(changes.into_iter().map(|c| Row {
                    snapshot: id.clone(),
                    change: c,
                }));
            }
            Err(why) => {
                out.snapshots.push((id.clone(), false));
                out.unreadable.push((id, why));
            }
        }
    }
    out.rows = once(out.rows);
    Ok(out)
}

/// Each event's first record only: an event delivered again after its
/// window was sealed is recorded again in a later snapshot, and counted
/// twice it would stretch its change set past the changes made after it
/// (and `--undo`'s guard against undoing those would not see them).
pub fn once(rows: Vec<Row>) -> Vec<Row> {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    rows.into_iter()
        .filter(|r| match &r.change.event {
            Some(e) => seen.insert((e.id.clone(), r.change.resource.to_lowercase())),
            None => true,
        })
        .collect()
}

/// The rows grouped into change sets, oldest first.
pub fn change_sets(rows: &[Row]) -> Vec<ChangeSet> {
    let mut order: Vec<String> = Vec::new();
    let mut sets: BTreeMap<String, ChangeSet> = BTreeMap::new();
    for r in rows {
        let id = r.change_set();
        let set = sets.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            ChangeSet {
                id: id.clone(),
                first: r.change.time.clone(),
                last: r.change.time.clone(),
                authors: Vec::new(),
                resources: BTreeMap::new(),
                snapshots: Vec::new(),
            }
        });
        let who = r.change.who();
        if !set.authors.contains(&who) {
            set.authors.push(who);
        }
        if r.change.time < set.first {
            set.first = r.change.time.clone();
        }
        if r.change.time > set.last {
            set.last = r.change.time.clone();
        }
        set.resources
            .insert(r.change.resource.clone(), r.change.effect);
        if !set.snapshots.contains(&r.snapshot) {
            set.snapshots.push(r.snapshot.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|id| sets.remove(&id))
        .collect()
}

/// What undoing a change set takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undo {
    pub change_set: ChangeSet,
    /// The snapshot just before the change set's first: the state it puts back.
    pub before: String,
    pub source: Option<Source>,
    /// Resources the set touched (created, updated or removed), by label.
    pub touched: Vec<String>,
    /// Touched resources changed again since, by another change set: undo
    /// puts them back too (label, the later change set).
    pub later: Vec<(String, String)>,
    /// Touched resources changed by another change set in the same
    /// snapshot (sealed together): their state cannot be told apart.
    pub entangled: Vec<(String, String)>,
}

/// The undo of `change_set` in `history`, decided: an error names why it
/// cannot be done (unknown set, nothing touched, no snapshot before it).
pub fn undo(history: &History, change_set: &str) -> Result<Undo, OpError> {
    let sets = change_sets(&history.rows);
    let Some(set) = sets.iter().find(|s| s.id.eq_ignore_ascii_case(change_set)) else {
        return Err(OpError::usage(format!(
            "{} has no change set {change_set:?} in its history; `adfdr log {}` lists them",
            history.factory, history.factory
        )));
    };
    let touched: Vec<String> = set
        .resources
        .iter()
        .filter(|(_, e)| **e != Effect::Unchanged)
        .map(|(l, _)| l.clone())
        .collect();
    if touched.is_empty() {
        return Err(OpError::usage(format!(
            "change set {} changed nothing (its writes left every resource as it was): there is nothing to undo",
            set.id
        )));
    }
    let first = set.snapshots.first().cloned().unwrap_or_default();
    let position = history.snapshots.iter().position(|(id, _)| *id == first);
    let before = position
        .and_then(|p| history.snapshots[..p].iter().rev().find(|(_, ok)| *ok))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            OpError::usage(format!(
                "no snapshot before change set {} opens (it is in {first}, the oldest read): nothing to put back; read further back with --since, or restore a snapshot by hand",
                set.id
            ))
        })?;
    let last = set.snapshots.last().cloned().unwrap_or_default();
    let mine: BTreeSet<&str> = touched.iter().map(String::as_str).collect();
    let mut later = Vec::new();
    let mut entangled = Vec::new();
    for r in &history.rows {
        let other = r.change_set();
        if other.eq_ignore_ascii_case(&set.id)
            || r.change.effect == Effect::Unchanged
            || !mine.contains(r.change.resource.as_str())
        {
            continue;
        }
        let pair = (r.change.resource.clone(), other);
        if set.snapshots.contains(&r.snapshot) {
            if !entangled.contains(&pair) {
                entangled.push(pair);
            }
        } else if r.snapshot > last && !later.contains(&pair) {
            later.push(pair);
        }
    }
    Ok(Undo {
        change_set: set.clone(),
        before,
        source: history.source.clone(),
        touched,
        later,
        entangled,
    })
}

/// An undo, decided and checked: what `adfdr restore --undo` runs.
#[derive(Debug)]
pub struct UndoPlan {
    pub undo: Undo,
    /// The resources to put back, as restore selectors.
    pub selectors: Vec<crate::plan::Selector>,
    /// What the operator should know (touched resources sealed together
    /// with another change set's).
    pub warnings: Vec<String>,
}

/// Decides the undo of `change_set` of `factory` and checks it: refused when
/// a later change set touched the same resources, and when its events are
/// not confirmed by ARM's activity log (an event in the queue is anyone's
/// word who may send to it: a planted one would make a real change look
/// like a change set of its own), unless `force`.
pub async fn prepare_undo(
    engine: &super::Engine,
    factory: &str,
    change_set: &str,
    force: bool,
) -> Result<UndoPlan, OpError> {
    let h = history(&engine.replicas, &engine.keys, factory, None).await?;
    let u = undo(&h, change_set)?;
    let warnings = u
        .entangled
        .iter()
        .map(|(label, other)| format!("{label} was also changed by change set {other}, sealed in the same snapshot: its undo puts that change back too"))
        .collect();
    if !u.later.is_empty() && !force {
        let what: Vec<String> = u
            .later
            .iter()
            .map(|(l, o)| format!("{l} (by {o})"))
            .collect();
        return Err(OpError::conflict(format!(
            "change set {} touched resources changed again since: {}; undoing it would put those later changes back too",
            u.change_set.id,
            what.join(", ")
        ))
        .with_hint("undo the later change sets first, or add --force"));
    }
    if !force && !u.change_set.id.starts_with("listing:") {
        let source = u.source.as_ref().ok_or_else(|| {
            OpError::usage("the snapshot names no source factory to confirm the change set against")
        })?;
        confirm(engine.arm.as_ref(), source, &u.change_set).await?;
    }
    // The factory's own locks as the snapshot before held them come back
    // too, last, as a full restore puts them back: an undo that needed one
    // out of the way (a CanNotDelete lock forbids its deletes) leaves the
    // factory locked again, and one that did not changes nothing there.
    let before = read::open(&engine.replicas, &engine.keys, factory, &u.before).await?;
    let locks = before
        .manifest
        .resources
        .iter()
        .filter(|e| e.kind == crate::model::ResourceKind::Lock && e.parent.is_none())
        .map(|e| e.label());
    let mut selectors = Vec::new();
    for label in u.touched.iter().cloned().chain(locks) {
        let (kind, name) = label.split_once(':').unwrap_or((&label, ""));
        let escaped: String = name
            .chars()
            .map(|c| match c {
                '*' | '?' | '[' | ']' | '{' | '}' | '\\' => format!("[{c}]"),
                c => c.to_string(),
            })
            .collect();
        selectors.push(
            crate::plan::Selector::parse(&format!("{kind}:{escaped}"))
                .map_err(|e| OpError::failed(e.to_string()))?,
        );
    }
    Ok(UndoPlan {
        undo: u,
        selectors,
        warnings,
    })
}

/// The activity log's API version and how far around a change set's times
/// it is read (events and the log do not stamp the same instant).
const ACTIVITY_LOG_API: &str = "2015-04-01";
const ACTIVITY_LOG_SLACK: time::Duration = time::Duration::hours(1);

/// Whether ARM's activity log holds a write of `set` (its correlation id,
/// around its times) on `source`'s factory: what tells a change set ARM
/// made from one only the queue says happened.
pub async fn confirm(
    arm: &dyn crate::factory::FactoryApi,
    source: &Source,
    set: &ChangeSet,
) -> Result<(), OpError> {
    let time = |t: &str| crate::snapshot::parse_time(t);
    let (Some(first), Some(last)) = (time(&set.first), time(&set.last)) else {
        return Err(OpError::conflict(format!(
            "change set {} has no event times to confirm it by",
            set.id
        )));
    };
    let filter = format!(
        "eventTimestamp ge '{}' and eventTimestamp le '{}' and correlationId eq '{}'",
        crate::snapshot::rfc3339(first - ACTIVITY_LOG_SLACK),
        crate::snapshot::rfc3339(last + ACTIVITY_LOG_SLACK),
        set.id.replace('\'', "")
    );
    let mut url = url::Url::parse("https://arm.invalid/").expect("static");
    url.set_path(&format!(
        "/subscriptions/{}/providers/Microsoft.Insights/eventtypes/management/values",
        source.subscription
    ));
    url.query_pairs_mut()
        .append_pair("api-version", ACTIVITY_LOG_API)
        .append_pair("$filter", &filter);
    let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    let factory = source.arm_id().to_ascii_lowercase();
    let mut found = false;
    arm.list_each(&path, |v| {
        let on_factory = v["resourceId"]
            .as_str()
            .is_some_and(|r| r.to_ascii_lowercase().starts_with(&factory));
        let succeeded = v["status"]["value"].as_str() == Some("Succeeded");
        found |= on_factory && succeeded;
    })
    .await
    .map_err(|e| {
        OpError::conflict(format!(
            "change set {} could not be confirmed in ARM's activity log: {e}",
            set.id
        ))
        .with_hint("grant the identity Reader on the subscription (it reads Microsoft.Insights/eventtypes/values), or add --force to undo it unconfirmed")
    })?;
    if found {
        return Ok(());
    }
    Err(OpError::conflict(format!(
        "ARM's activity log holds no write with correlation id {} on {} around {} to {}: its events are the queue's word alone (planted, or a log not yet written)",
        set.id, source.factory, set.first, set.last
    ))
    .with_hint("look at who may send to the event queue; if the change is real, wait a few minutes for the activity log, or add --force"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::events::{Action, Author, EventRecord};

    fn row(snapshot: &str, resource: &str, effect: Effect, corr: Option<&str>) -> Row {
        Row {
            snapshot: snapshot.into(),
            change: ChangeRecord {
                resource: resource.into(),
                effect,
                time: format!("2026-12-01T10:00:0{}Z", &snapshot[1..2]),
                event: corr.map(|c| EventRecord {
                    id: format!("{snapshot}{resource}"),
                    action: Action::Write,
                    operation: "x/write".into(),
                    correlation_id: c.into(),
                    author: Author {
                        upn: Some("alice@contoso.com".into()),
                        ..Default::default()
                    },
                }),
            },
        }
    }

    fn history(rows: Vec<Row>, snapshots: &[&str]) -> History {
        History {
            factory: "sales".into(),
            source: None,
            rows,
            snapshots: snapshots.iter().map(|s| (s.to_string(), true)).collect(),
            unreadable: Vec::new(),
        }
    }

    #[test]
    fn a_publish_is_one_change_set_and_its_undo_names_the_snapshot_before() {
        let h = history(
            vec![
                row("s2", "pipeline:A", Effect::Updated, Some("pub-1")),
                row("s3", "dataset:D", Effect::Created, Some("pub-1")),
                row("s3", "pipeline:B", Effect::Unchanged, Some("pub-1")),
                row("s3", "pipeline:C", Effect::Updated, Some("hotfix")),
                row("s4", "pipeline:A", Effect::Updated, Some("later")),
                row("s5", "trigger:T", Effect::Updated, None),
            ],
            &["s1", "s2", "s3", "s4", "s5"],
        );
        let sets = change_sets(&h.rows);
        let ids: Vec<&str> = sets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["pub-1", "hotfix", "later", "listing:s5"]);
        assert_eq!(sets[0].snapshots, ["s2", "s3"]);
        assert_eq!(sets[0].authors, ["alice@contoso.com"]);
        assert_eq!(sets[3].authors, ["(no event: found by a listing)"]);
        let u = undo(&h, "PUB-1").expect("undo");
        assert_eq!(u.before, "s1");
        assert_eq!(
            u.touched,
            ["dataset:D", "pipeline:A"],
            "B was left unchanged"
        );
        assert_eq!(u.later, [("pipeline:A".to_string(), "later".to_string())]);
        assert!(u.entangled.is_empty());
        assert!(undo(&h, "nope").is_err());
        // Nothing before the first snapshot: nothing to put back.
        let h = history(
            vec![row("s1", "pipeline:A", Effect::Created, Some("c"))],
            &["s1"],
        );
        assert!(undo(&h, "c").is_err());
    }

    /// Issue 25, item 10: a redelivered event recorded again in a later
    /// snapshot stretched its change set past a later change to the same
    /// resource, and the undo guard no longer saw that later change.
    #[test]
    fn a_redelivered_event_does_not_hide_a_later_change_from_undo() {
        let mut dup = row("s4", "pipeline:P", Effect::Unchanged, Some("A"));
        dup.change.event.as_mut().expect("event").id = "s2pipeline:P".into();
        let rows = vec![
            row("s2", "pipeline:P", Effect::Updated, Some("A")),
            row("s3", "pipeline:P", Effect::Updated, Some("B")),
            dup,
        ];
        let bare = history(rows.clone(), &["s1", "s2", "s3", "s4"]);
        assert!(
            undo(&bare, "A").map_or(true, |u| u.later.is_empty()),
            "without `once` the later change is not seen"
        );
        let h = history(once(rows), &["s1", "s2", "s3", "s4"]);
        let u = undo(&h, "A").expect("undo");
        assert_eq!(u.later, [("pipeline:P".to_string(), "B".to_string())]);
        assert_eq!(u.change_set.snapshots, ["s2"]);
    }

    /// Issue 25, item 10: a change set is confirmed by ARM's activity log
    /// (its correlation id, a succeeded write on the factory) or refused.
    #[tokio::test]
    async fn a_change_set_the_activity_log_does_not_hold_is_refused() {
        use crate::factory::memory::MemoryFactory;
        let source = Source {
            subscription: "s".into(),
            resource_group: "rg".into(),
            factory: "adf".into(),
        };
        let set = change_sets(&[row("s2", "pipeline:P", Effect::Updated, Some("pub-1"))])
            .pop()
            .expect("set");
        let log = "/subscriptions/s/providers/Microsoft.Insights/eventtypes/management/values";
        let arm = MemoryFactory::new();
        arm.put(log, serde_json::json!({"value": []}));
        let refused = confirm(&arm, &source, &set).await.expect_err("planted");
        assert!(
            refused
                .to_string()
                .contains("holds no write with correlation id pub-1"),
            "{refused}"
        );
        arm.put(
            log,
            serde_json::json!({"value": [{
                "resourceId": format!("{}/pipelines/P", source.arm_id()),
                "correlationId": "pub-1",
                "status": {"value": "Succeeded"}
            }]}),
        );
        confirm(&arm, &source, &set).await.expect("confirmed");
    }
}
