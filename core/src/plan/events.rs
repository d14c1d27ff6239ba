//! Continuous capture's pure decisions (issue 18): an ARM event as Event Grid
//! delivers it (the schema of Microsoft's `Resource*Success` samples) read
//! into the change it reports; which resource of which factory it is about;
//! and a window's events folded into one fetch (or one removal) per
//! resource. Nothing here does IO: ops::capture fetches and seals, the agent
//! reads the queue. Events carry no body, so a change is only ever a reason
//! to read that one resource again; a delete too (the service's 404 decides,
//! never the queue's word alone: a queue can be written by others).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use crate::model::ResourceKind;
use crate::model::resource::{key, label};
pub use crate::snapshot::changes::{Before, ChangeRecord, Effect, EventRecord};

/// The largest queue message adfdr reads as an event (Storage Queue's own
/// limit is 64 KiB; anything bigger is not an ARM event).
pub const MAX_MESSAGE: usize = 64 * 1024;

pub use adfdr_contract::events::{Action, Author, Change};

/// Who made a change, from the token claims ARM put in the event.
fn author_from_claims(claims: &Value) -> Author {
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Author {
        upn: text(&[
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
            "upn",
        ]),
        name: text(&["name"]),
        app_id: text(&["appid", "azp"]),
        object_id: text(&[
            "http://schemas.microsoft.com/identity/claims/objectidentifier",
            "oid",
        ]),
    }
}

/// The event types capture reads; others (failures, cancels, a
/// subscription's validation) are none of its business.
const TYPES: [(&str, Action); 3] = [
    ("Microsoft.Resources.ResourceWriteSuccess", Action::Write),
    ("Microsoft.Resources.ResourceDeleteSuccess", Action::Delete),
    ("Microsoft.Resources.ResourceActionSuccess", Action::Action),
];

/// A queue message's text read as events: the event's JSON (or an array of
/// them), as is or base64-encoded (both ways a Storage Queue destination may
/// carry it). Events of other types are left out; an error means the
/// message is not an event at all (a poison message).
pub fn parse_message(text: &str) -> Result<Vec<Change>, String> {
    if text.len() > MAX_MESSAGE {
        return Err(format!(
            "{} bytes, more than any event ({MAX_MESSAGE})",
            text.len()
        ));
    }
    let trimmed = text.trim();
    let decoded;
    let json = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        trimmed
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|_| "neither JSON nor base64-encoded JSON".to_string())?;
        decoded = String::from_utf8(bytes).map_err(|_| "base64 of something not UTF-8")?;
        decoded.as_str()
    };
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let events = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let mut out = Vec::new();
    for e in &events {
        if let Some(change) = parse_event(e)? {
            out.push(change);
        }
    }
    Ok(out)
}

/// One event in the Event Grid schema; None for a type capture ignores.
pub fn parse_event(e: &Value) -> Result<Option<Change>, String> {
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let Some(event_type) = text(e, "/eventType") else {
        return Err("no eventType: not an Event Grid event".into());
    };
    let Some((_, action)) = TYPES
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(&event_type))
    else {
        return Ok(None);
    };
    let data = e.get("data").ok_or("an event without data")?;
    let resource_uri = text(data, "/resourceUri")
        .or_else(|| text(e, "/subject"))
        .ok_or("an event without resourceUri")?;
    let time = text(e, "/eventTime").ok_or("an event without eventTime")?;
    if time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339).is_err() {
        return Err(format!("eventTime {time:?} is not RFC 3339"));
    }
    Ok(Some(Change {
        id: text(e, "/id").ok_or("an event without id")?,
        time,
        resource_uri,
        action: *action,
        operation: text(data, "/operationName").unwrap_or_default(),
        correlation_id: text(data, "/correlationId").unwrap_or_default(),
        author: data
            .get("claims")
            .map(author_from_claims)
            .unwrap_or_default(),
    }))
}

/// What an event is about, inside one factory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The factory itself.
    Factory,
    /// One resource of it.
    Resource {
        kind: ResourceKind,
        parent: Option<String>,
        name: String,
    },
    /// Something below the factory adfdr cannot read on its own (a kind it
    /// does not know): only a listing tells what changed.
    Unknown(String),
    /// An action that changes no definition or state adfdr keeps (a
    /// pipeline run, a query, a key listed).
    Ignored,
}

/// What `change` is about in the factory at `factory_path` (its ARM id);
/// None when it is about another factory.
pub fn locate(change: &Change, factory_path: &str) -> Option<Target> {
    let uri = change.resource_uri.trim_end_matches('/');
    if uri.len() < factory_path.len()
        || !uri.is_char_boundary(factory_path.len())
        || !uri[..factory_path.len()].eq_ignore_ascii_case(factory_path)
    {
        return None;
    }
    let rest = &uri[factory_path.len()..];
    if !rest.is_empty() && !rest.starts_with('/') {
        return None; // another factory whose name starts with this one's
    }
    let mut parts: Vec<String> = rest.split('/').skip(1).map(decode).collect();
    // A name ARM would never give (a path of its own once decoded) is not
    // read alone: only a listing says what changed.
    if parts.iter().any(|p| {
        p.is_empty()
            || p == "."
            || p == ".."
            || p.contains(['/', '\\', '?', '#'])
            || p.chars().any(char::is_control)
    }) {
        return Some(Target::Unknown(rest.to_string()));
    }
    // An action's URI may name the action too (`…/triggers/T/start`).
    if change.action == Action::Action && parts.len() % 2 == 1 {
        parts.pop();
    }
    if change.action == Action::Action && !changes_state(&change.operation) {
        return Some(Target::Ignored);
    }
    Some(match parts.as_slice() {
        [] => match change.action {
            Action::Action => Target::Ignored,
            _ => Target::Factory,
        },
        [s, vnet, m, name]
            if s.eq_ignore_ascii_case("managedVirtualNetworks")
                && m.eq_ignore_ascii_case("managedPrivateEndpoints") =>
        {
            Target::Resource {
                kind: ResourceKind::ManagedPrivateEndpoint,
                parent: Some(vnet.clone()),
                name: name.clone(),
            }
        }
        [segment, name] => match child_kind(segment) {
            Some(kind) => Target::Resource {
                kind,
                parent: None,
                name: name.clone(),
            },
            None => Target::Unknown(rest.to_string()),
        },
        [p, ns, t, name] if p.eq_ignore_ascii_case("providers") => {
            let segment = format!("providers/{ns}/{t}");
            match child_kind(&segment) {
                Some(kind) if kind.extension().is_some() && !kind.in_resource_group() => {
                    Target::Resource {
                        kind,
                        parent: None,
                        name: name.clone(),
                    }
                }
                _ => Target::Unknown(rest.to_string()),
            }
        }
        _ => Target::Unknown(rest.to_string()),
    })
}

/// The actions that change what a snapshot keeps: runtime state (a
/// trigger's, an IR's, a CDC's) and a trigger's event subscription.
fn changes_state(operation: &str) -> bool {
    let op = operation.to_ascii_lowercase();
    [
        "/start/action",
        "/stop/action",
        "/subscribetoevents/action",
        "/unsubscribefromevents/action",
    ]
    .iter()
    .any(|a| op.ends_with(a))
}

fn child_kind(segment: &str) -> Option<ResourceKind> {
    ResourceKind::CHILDREN
        .into_iter()
        .chain(ResourceKind::SURROUNDINGS)
        .find(|k| k.segment().eq_ignore_ascii_case(segment))
}

/// `%20` and friends, as a path segment carries them.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = segment.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_string())
}

/// A resource to read again or to drop, with the events that asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    pub kind: ResourceKind,
    pub parent: Option<String>,
    pub name: String,
    /// Drop it (its newest event is a delete, newer than anything the
    /// previous snapshot applied); else read it again.
    pub remove: bool,
}

/// A window's events for one factory, folded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// One entry per resource, in key order.
    pub work: Vec<Work>,
    /// The factory itself was written: read it again.
    pub factory: bool,
    /// The factory was deleted.
    pub factory_deleted: bool,
    /// Something only a listing can tell (an unknown kind): what, for the log.
    pub needs_listing: Vec<String>,
    /// The events, each once (duplicates by id dropped), oldest first.
    pub changes: Vec<(Change, Target)>,
    /// Duplicates dropped.
    pub duplicates: usize,
}

/// Folds events into work: each event once (by id); per resource only the
/// newest event counts (by event time, then arrival). A delete removes the
/// resource unless the previous snapshot applied an event newer than it
/// (`applied`: label → event time): a late delete must not drop a resource
/// re-created since, so then the resource is read again and the service
/// decides. Writes and actions always read the resource again: the answer
/// is the current state, whatever order events came in.
pub fn fold(events: Vec<(Change, Target)>, applied: &BTreeMap<String, String>) -> Folded {
    let mut out = Folded::default();
    let mut seen = std::collections::HashSet::new();
    let mut events: Vec<(usize, Change, Target)> = events
        .into_iter()
        .enumerate()
        .filter_map(|(i, (c, t))| {
            if seen.insert(c.id.clone()) {
                Some((i, c, t))
            } else {
                out.duplicates += 1;
                None
            }
        })
        .collect();
    events.sort_by(|a, b| a.1.at().cmp(&b.1.at()).then(a.0.cmp(&b.0)));
    let mut newest: BTreeMap<(ResourceKind, String, String), (Work, Change)> = BTreeMap::new();
    for (_, change, target) in &events {
        match target {
            Target::Factory => match change.action {
                Action::Delete => out.factory_deleted = true,
                _ => {
                    out.factory = true;
                    out.factory_deleted = false;
                }
            },
            Target::Unknown(what) => out.needs_listing.push(what.clone()),
            Target::Ignored => {}
            Target::Resource { kind, parent, name } => {
                let work = Work {
                    kind: *kind,
                    parent: parent.clone(),
                    name: name.clone(),
                    remove: change.action == Action::Delete,
                };
                newest.insert(key(*kind, parent.as_deref(), name), (work, change.clone()));
            }
        }
    }
    for (_, (mut work, change)) in newest {
        if work.remove {
            let l = label(work.kind, work.parent.as_deref(), &work.name);
            let later = applied.iter().find(|(k, _)| k.eq_ignore_ascii_case(&l));
            let stale = later.is_some_and(|(_, t)| {
                let t =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok();
                t.is_some() && t >= change.at()
            });
            if stale {
                work.remove = false;
            }
        }
        out.work.push(work);
    }
    out.changes = events.into_iter().map(|(_, c, t)| (c, t)).collect();
    out
}

/// How long an authorless change waits for its event: events come within
/// seconds, or (when Event Grid gave up, or they were set aside) never.
const AWAIT_AUTHOR: time::Duration = time::Duration::hours(1);

/// A change of `label` the previous snapshot, or one before it, recorded
/// without an author (a listing found it first).
fn unauthored<'m>(previous: Before<'m>, label: &str) -> Option<&'m ChangeRecord> {
    previous
        .changes
        .iter()
        .rev()
        .chain(previous.awaiting.iter())
        .find(|r| r.event.is_none() && r.resource.eq_ignore_ascii_case(label))
}

/// The authorless changes still waiting for their event after this
/// snapshot: the previous snapshot's and those it carried, less what
/// `recorded` attributes now, plus `recorded`'s own authorless ones; an
/// hour at most, newest per resource.
pub fn awaiting(
    previous: Before<'_>,
    recorded: &[ChangeRecord],
    now: time::OffsetDateTime,
) -> Vec<ChangeRecord> {
    let attributed: std::collections::HashSet<String> = recorded
        .iter()
        .filter(|r| r.event.is_some())
        .map(|r| r.resource.to_lowercase())
        .collect();
    let mut out: BTreeMap<String, ChangeRecord> = BTreeMap::new();
    let candidates = previous
        .awaiting
        .iter()
        .chain(previous.changes.iter())
        .chain(recorded.iter())
        .filter(|r| r.event.is_none());
    for r in candidates {
        let fresh =
            time::OffsetDateTime::parse(&r.time, &time::format_description::well_known::Rfc3339)
                .ok()
                .is_some_and(|t| now - t <= AWAIT_AUTHOR);
        let lower = r.resource.to_lowercase();
        if fresh && !attributed.contains(&lower) {
            out.insert(lower, r.clone());
        }
    }
    out.into_values().collect()
}

/// Events about changes the previous snapshot recorded without an author
/// (a listing found them first): those records again, with their event.
pub fn late_authors(
    changes: &[(Change, Target)],
    previous: Before<'_>,
    applied: &mut BTreeMap<String, String>,
) -> Vec<ChangeRecord> {
    let mut out = Vec::new();
    for (change, target) in changes {
        let Target::Resource { kind, parent, name } = target else {
            continue;
        };
        let l = label(*kind, parent.as_deref(), name);
        if let Some(r) = unauthored(previous, &l) {
            if r.effect != Effect::Removed {
                applied.insert(r.resource.clone(), change.time.clone());
            }
            out.push(ChangeRecord::from_event(&r.resource, r.effect, change));
        }
    }
    out
}

/// One record per event that touched a resource, with that resource's
/// effect; the applied times advanced to each resource's newest event.
pub fn records(
    folded: &Folded,
    effects: &BTreeMap<(ResourceKind, String, String), Effect>,
    previous: Before<'_>,
    applied: &mut BTreeMap<String, String>,
) -> Vec<ChangeRecord> {
    // A change a listing sealed before its event came: the event is its
    // author (the effect is the listing's).
    let unauthored = |label: &str| unauthored(previous, label).map(|r| r.effect);
    let mut out = Vec::new();
    let factory = effects
        .iter()
        .find(|(k, _)| k.0 == ResourceKind::Factory)
        .map(|(k, e)| (k.2.clone(), *e));
    for (change, target) in &folded.changes {
        let (label, effect) = match target {
            Target::Resource { kind, parent, name } => {
                let k = key(*kind, parent.as_deref(), name);
                (
                    label(*kind, parent.as_deref(), name),
                    effects.get(&k).copied().unwrap_or(Effect::Unchanged),
                )
            }
            Target::Factory => match &factory {
                Some((name, e)) => (label(ResourceKind::Factory, None, name), *e),
                None => continue,
            },
            Target::Ignored | Target::Unknown(_) => continue,
        };
        let effect = match effect {
            Effect::Unchanged => unauthored(&label).unwrap_or(Effect::Unchanged),
            e => e,
        };
        if effect != Effect::Removed {
            let newer = applied
                .get(&label)
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_none_or(|t| change.at().is_some_and(|c| c > t));
            if newer {
                applied.insert(label.clone(), change.time.clone());
            }
        } else {
            applied.remove(&label);
        }
        out.push(ChangeRecord::from_event(&label, effect, change));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf";

    fn event(kind: &str, uri: &str, op: &str, time: &str, id: &str) -> Value {
        serde_json::json!({
            "subject": uri, "eventType": kind, "eventTime": time, "id": id,
            "data": {"resourceUri": uri, "operationName": op, "correlationId": "c1",
                     "claims": {"appid": "app-1", "name": "Pipeline Bot",
                                "http://schemas.microsoft.com/identity/claims/objectidentifier": "oid-1"}},
            "dataVersion": "2", "metadataVersion": "1", "topic": "/subscriptions/s"
        })
    }

    fn change(v: Value) -> Change {
        parse_event(&v).expect("parses").expect("a change")
    }

    /// A pipeline write event of `name` at `time`, located.
    fn write_of(name: &str, time: &str, id: &str) -> (Change, Target) {
        let uri = format!("{F}/pipelines/{name}");
        let c = change(event(
            "Microsoft.Resources.ResourceWriteSuccess",
            &uri,
            "Microsoft.DataFactory/factories/pipelines/write",
            time,
            id,
        ));
        let target = Target::Resource {
            kind: ResourceKind::Pipeline,
            parent: None,
            name: name.to_string(),
        };
        (c, target)
    }

    /// Issue 27: the author folding that used to live untested in
    /// ops::capture. Which authorless changes keep waiting for their event
    /// (an hour at most, newest per resource, less what is attributed now).
    #[test]
    fn authorless_changes_wait_an_hour_for_their_event() {
        let now = parse_time("2026-12-08T12:00:00Z");
        let listed = |r: &str, at: &str| ChangeRecord::listed(r, Effect::Updated, at);
        let (c, _) = write_of("PL_B", "2026-12-08T11:59:00Z", "e1");
        let attributed = ChangeRecord::from_event("pipeline:PL_B", Effect::Updated, &c);
        // (previous changes, carried, recorded now) -> still waiting
        type Case<'a> = (
            Vec<ChangeRecord>,
            Vec<ChangeRecord>,
            Vec<ChangeRecord>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            // fresh and unattributed: waits
            (
                vec![listed("pipeline:PL_A", "2026-12-08T11:30:00Z")],
                vec![],
                vec![],
                vec!["pipeline:PL_A"],
            ),
            // older than an hour: given up
            (
                vec![listed("pipeline:PL_A", "2026-12-08T10:59:00Z")],
                vec![],
                vec![],
                vec![],
            ),
            // attributed now (case-insensitively): no longer waits
            (
                vec![listed("Pipeline:pl_b", "2026-12-08T11:58:00Z")],
                vec![],
                vec![attributed.clone()],
                vec![],
            ),
            // carried from before and still fresh: waits; this snapshot's own authorless change too
            (
                vec![],
                vec![listed("pipeline:PL_C", "2026-12-08T11:10:00Z")],
                vec![listed("pipeline:PL_D", "2026-12-08T12:00:00Z")],
                vec!["pipeline:PL_C", "pipeline:PL_D"],
            ),
            // a time that does not parse never waits
            (
                vec![listed("pipeline:PL_E", "yesterday")],
                vec![],
                vec![],
                vec![],
            ),
        ];
        for (changes, carried, recorded, want) in cases {
            let before = Before {
                changes: &changes,
                awaiting: &carried,
            };
            let got: Vec<String> = awaiting(before, &recorded, now)
                .into_iter()
                .map(|r| r.resource)
                .collect();
            assert_eq!(got, want, "{changes:?} {carried:?} {recorded:?}");
        }
    }

    /// An event about a change a listing sealed first is recorded as its
    /// author, with the listing's effect; its time advances `applied`
    /// unless the change was a removal; events about other resources add
    /// nothing.
    #[test]
    fn late_events_author_what_a_listing_found_first() {
        let changes = vec![
            ChangeRecord::listed("pipeline:PL_A", Effect::Updated, "2026-12-08T11:00:00Z"),
            ChangeRecord::listed("pipeline:PL_GONE", Effect::Removed, "2026-12-08T11:00:00Z"),
        ];
        let before = Before {
            changes: &changes,
            awaiting: &[],
        };
        let events = vec![
            write_of("PL_A", "2026-12-08T10:59:59Z", "e1"),
            write_of("PL_GONE", "2026-12-08T10:59:00Z", "e2"),
            write_of("PL_OTHER", "2026-12-08T10:59:00Z", "e3"),
        ];
        let mut applied = BTreeMap::new();
        let got = late_authors(&events, before, &mut applied);
        let got: Vec<(String, Effect, bool)> = got
            .into_iter()
            .map(|r| (r.resource, r.effect, r.event.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("pipeline:PL_A".to_string(), Effect::Updated, true),
                ("pipeline:PL_GONE".to_string(), Effect::Removed, true)
            ]
        );
        assert_eq!(
            applied.get("pipeline:PL_A").map(String::as_str),
            Some("2026-12-08T10:59:59Z")
        );
        assert!(!applied.contains_key("pipeline:PL_GONE"));
    }

    /// One record per event with its resource's effect: an older event
    /// does not move `applied` back, a removal takes the resource out, an
    /// unchanged one a listing found first keeps the listing's effect.
    #[test]
    fn records_carry_each_resources_effect_and_applied_only_moves_forward() {
        let changes = vec![ChangeRecord::listed(
            "pipeline:PL_L",
            Effect::Created,
            "2026-12-08T11:00:00Z",
        )];
        let before = Before {
            changes: &changes,
            awaiting: &[],
        };
        let folded = Folded {
            changes: vec![
                write_of("PL_A", "2026-12-08T11:00:00Z", "e1"),
                write_of("PL_OLD", "2026-12-08T09:00:00Z", "e2"),
                write_of("PL_X", "2026-12-08T11:00:00Z", "e3"),
                write_of("PL_L", "2026-12-08T11:00:01Z", "e4"),
            ],
            ..Folded::default()
        };
        let effects: BTreeMap<(ResourceKind, String, String), Effect> = [
            ("PL_A", Effect::Updated),
            ("PL_OLD", Effect::Updated),
            ("PL_X", Effect::Removed),
            ("PL_L", Effect::Unchanged),
        ]
        .into_iter()
        .map(|(n, e)| (key(ResourceKind::Pipeline, None, n), e))
        .collect();
        let mut applied: BTreeMap<String, String> = [
            ("pipeline:PL_OLD", "2026-12-08T10:00:00Z"),
            ("pipeline:PL_X", "2026-12-08T10:00:00Z"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let got: Vec<(String, Effect)> = records(&folded, &effects, before, &mut applied)
            .into_iter()
            .map(|r| (r.resource, r.effect))
            .collect();
        assert_eq!(
            got,
            [
                ("pipeline:PL_A".to_string(), Effect::Updated),
                ("pipeline:PL_OLD".to_string(), Effect::Updated),
                ("pipeline:PL_X".to_string(), Effect::Removed),
                ("pipeline:PL_L".to_string(), Effect::Created),
            ]
        );
        assert_eq!(applied["pipeline:PL_A"], "2026-12-08T11:00:00Z");
        assert_eq!(
            applied["pipeline:PL_OLD"], "2026-12-08T10:00:00Z",
            "never moved back"
        );
        assert!(!applied.contains_key("pipeline:PL_X"));
        assert_eq!(applied["pipeline:PL_L"], "2026-12-08T11:00:01Z");
    }

    fn parse_time(t: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .expect("time")
    }

    #[test]
    fn microsofts_samples_read_as_changes_with_their_author() {
        let Some(dir) = std::env::var_os("ADFDR_SPEC_EXAMPLES") else {
            eprintln!("SKIPPED: ADFDR_SPEC_EXAMPLES is not set");
            return;
        };
        let dir = std::path::Path::new(&dir).join("surroundings/eventgrid");
        for (file, action) in [
            (
                "event-schema-resource-groups.ResourceWriteSuccess.json",
                Action::Write,
            ),
            (
                "event-schema-resource-groups.ResourceDeleteSuccess.json",
                Action::Delete,
            ),
            (
                "event-schema-resource-groups.ResourceActionSuccess.json",
                Action::Action,
            ),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).expect("sample");
            let changes = parse_message(&text).expect(file);
            assert_eq!(changes.len(), 1, "{file}");
            let c = &changes[0];
            assert_eq!(c.action, action, "{file}");
            if action == Action::Action {
                // A service principal's token: no user, the app is the author.
                assert_eq!(c.author.upn, None, "{file}");
                assert_eq!(c.author.display(), "app {ID}");
            } else {
                assert_eq!(c.author.upn.as_deref(), Some("{user-name}"), "{file}");
                assert_eq!(c.author.display(), "{user-name}");
            }
            assert!(c.resource_uri.starts_with("/subscriptions/"), "{file}");
            assert_eq!(c.correlation_id, "{ID}");
            assert!(c.at().is_some(), "{file}: {}", c.time);
        }
    }

    #[test]
    fn messages_may_be_base64_and_other_types_are_left_out() {
        let e = event(
            "Microsoft.Resources.ResourceWriteSuccess",
            &format!("{F}/pipelines/p"),
            "Microsoft.DataFactory/factories/pipelines/write",
            "2026-12-01T10:00:00.1234567Z",
            "e1",
        );
        let plain = parse_message(&e.to_string()).expect("plain");
        let b64 = base64::engine::general_purpose::STANDARD.encode(e.to_string());
        assert_eq!(parse_message(&b64).expect("base64"), plain);
        assert_eq!(plain[0].author.display(), "Pipeline Bot (app app-1)");
        let failure = event(
            "Microsoft.Resources.ResourceWriteFailure",
            F,
            "x",
            "2026-12-01T10:00:00Z",
            "e2",
        );
        assert!(
            parse_message(&failure.to_string())
                .expect("parses")
                .is_empty()
        );
        assert!(parse_message("hello").is_err());
        assert!(parse_message("{\"no\":1}").is_err());
        assert!(parse_message(&"x".repeat(MAX_MESSAGE + 1)).is_err());
    }

    #[test]
    fn an_event_is_located_in_its_factory_only() {
        let at = |uri: &str, op: &str, kind: &str| {
            locate(
                &change(event(kind, uri, op, "2026-12-01T10:00:00Z", "e")),
                F,
            )
        };
        let w = "Microsoft.Resources.ResourceWriteSuccess";
        let a = "Microsoft.Resources.ResourceActionSuccess";
        assert_eq!(
            at(&format!("{F}/pipelines/Load%20Sales"), "x/write", w),
            Some(Target::Resource {
                kind: ResourceKind::Pipeline,
                parent: None,
                name: "Load Sales".into()
            })
        );
        assert_eq!(at(&F.to_lowercase(), "x/write", w), Some(Target::Factory));
        assert_eq!(at(&format!("{F}2/pipelines/p"), "x/write", w), None);
        assert_eq!(
            at(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/other",
                "x/write",
                w
            ),
            None
        );
        assert_eq!(
            at(
                &format!("{F}/managedVirtualNetworks/default/managedPrivateEndpoints/mpe1"),
                "x/write",
                w
            ),
            Some(Target::Resource {
                kind: ResourceKind::ManagedPrivateEndpoint,
                parent: Some("default".into()),
                name: "mpe1".into()
            })
        );
        assert_eq!(
            at(
                &format!("{F}/triggers/t1"),
                "Microsoft.DataFactory/factories/triggers/start/action",
                a
            ),
            Some(Target::Resource {
                kind: ResourceKind::Trigger,
                parent: None,
                name: "t1".into()
            })
        );
        assert_eq!(
            at(
                &format!("{F}/triggers/t1/stop"),
                "Microsoft.DataFactory/factories/triggers/stop/action",
                a
            ),
            Some(Target::Resource {
                kind: ResourceKind::Trigger,
                parent: None,
                name: "t1".into()
            })
        );
        assert_eq!(
            at(
                &format!("{F}/pipelines/p"),
                "Microsoft.DataFactory/factories/pipelines/createRun/action",
                a
            ),
            Some(Target::Ignored)
        );
        assert_eq!(
            at(
                &format!("{F}/providers/Microsoft.Insights/diagnosticSettings/d"),
                "x/write",
                w
            ),
            Some(Target::Resource {
                kind: ResourceKind::DiagnosticSetting,
                parent: None,
                name: "d".into()
            })
        );
        assert_eq!(
            at(&format!("{F}/newKind/n"), "x/write", w),
            Some(Target::Unknown("/newKind/n".into()))
        );
        // Names that would be paths of their own are never read alone.
        for bad in [
            "/pipelines/..",
            "/pipelines/%2E%2E",
            "/pipelines/a%2Fb",
            "/pipelines/a%3Fb",
            "/pipelines//x",
        ] {
            assert!(
                matches!(
                    at(&format!("{F}{bad}"), "x/write", w),
                    Some(Target::Unknown(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn folding_keeps_the_newest_event_per_resource_and_drops_duplicates() {
        let w = "Microsoft.Resources.ResourceWriteSuccess";
        let d = "Microsoft.Resources.ResourceDeleteSuccess";
        let p = format!("{F}/pipelines/p");
        let ev = |kind: &str, uri: &str, time: &str, id: &str| {
            let c = change(event(kind, uri, "x", time, id));
            let t = locate(&c, F).expect("here");
            (c, t)
        };
        // Delivered out of order: the delete (10:00:05) before the write
        // (10:00:01), and the write twice.
        let events = vec![
            ev(d, &p, "2026-12-01T10:00:05Z", "e2"),
            ev(w, &p, "2026-12-01T10:00:01Z", "e1"),
            ev(w, &p, "2026-12-01T10:00:01Z", "e1"),
            ev(w, &format!("{F}/datasets/ds"), "2026-12-01T10:00:02Z", "e3"),
        ];
        let folded = fold(events.clone(), &BTreeMap::new());
        assert_eq!(folded.duplicates, 1);
        assert_eq!(folded.changes.len(), 3);
        assert_eq!(folded.changes[0].0.id, "e1", "oldest first");
        let work: Vec<(&str, bool)> = folded
            .work
            .iter()
            .map(|w| (w.name.as_str(), w.remove))
            .collect();
        assert_eq!(work, [("ds", false), ("p", true)]);
        // A delete older than what the previous snapshot applied is stale:
        // the resource is read again instead.
        let applied =
            BTreeMap::from([("pipeline:p".to_string(), "2026-12-01T10:00:09Z".to_string())]);
        let folded = fold(events, &applied);
        assert!(folded.work.iter().all(|w| !w.remove), "{:?}", folded.work);
    }
}
