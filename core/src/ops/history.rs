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
use crate::capture::{ChangeRecord, Effect};
use crate::keys::KeyRing;
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
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Action, Author, EventRecord};

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
}
