//! The changes a snapshot records (its manifest's `changes` and
//! `awaiting`): which resource, what happened to it, and the ARM event that
//! said so (who, which operation, which correlation id), or none when a
//! listing found it. Part of the format (docs/FORMAT.md); capture's pure
//! folding (plan::events) decides them.

use adfdr_contract::events::{Action, Author, Change};
use serde::{Deserialize, Serialize};

/// What a snapshot's change did to one resource, compared with the
/// previous snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Created,
    Updated,
    Removed,
    /// An event said it changed, and it reads as it was (a duplicate, a
    /// write of the same definition, an action that left the state).
    Unchanged,
}

impl Effect {
    pub fn name(self) -> &'static str {
        match self {
            Effect::Created => "created",
            Effect::Updated => "updated",
            Effect::Removed => "removed",
            Effect::Unchanged => "unchanged",
        }
    }
}

/// One change a snapshot records (its manifest's `changes`): the resource,
/// what happened to it, and the event that said so, or none when a listing
/// found it (a backup, or capture's reconciliation: then it is a missed
/// event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeRecord {
    /// `pipeline:PL_Load`, `factory:NAME`.
    pub resource: String,
    pub effect: Effect,
    /// When: the event's time, or the listing's.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRecord>,
}

/// The event behind a change: who, which operation, which correlation id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventRecord {
    pub id: String,
    pub action: Action,
    pub operation: String,
    pub correlation_id: String,
    pub author: Author,
}

impl ChangeRecord {
    /// A change a listing found (no event, no author).
    pub fn listed(resource: &str, effect: Effect, time: &str) -> ChangeRecord {
        ChangeRecord {
            resource: resource.to_string(),
            effect,
            time: time.to_string(),
            event: None,
        }
    }

    /// A change an event reported, with its effect.
    pub fn from_event(resource: &str, effect: Effect, change: &Change) -> ChangeRecord {
        ChangeRecord {
            resource: resource.to_string(),
            effect,
            time: change.time.clone(),
            event: Some(EventRecord {
                id: change.id.clone(),
                action: change.action,
                operation: change.operation.clone(),
                correlation_id: change.correlation_id.clone(),
                author: change.author.clone(),
            }),
        }
    }

    /// Who made it, for a person to read.
    pub fn who(&self) -> String {
        match &self.event {
            Some(e) => e.author.display(),
            None => "(no event: found by a listing)".to_string(),
        }
    }
}

/// What the previous snapshot recorded of changes: its own, and the
/// authorless ones it carried (a manifest's `changes` and `awaiting`).
#[derive(Clone, Copy, Debug)]
pub struct Before<'m> {
    pub changes: &'m [ChangeRecord],
    pub awaiting: &'m [ChangeRecord],
}
