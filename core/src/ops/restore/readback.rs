//! Reading a restore back: every planned resource, the factory and the
//! trigger states compared with the plan (canonical bytes, secrets masked as
//! the service masks them).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::{TargetFactory, read_target};
use crate::factory::FactoryApi;
use crate::model::{ResourceKind, canonical_bytes};
use crate::ops::OpError;
use crate::plan::restore::{Plan, TargetState};

/// A restored resource that does not read back as planned.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Mismatch {
    pub resource: String,
    pub detail: String,
}

/// Reads the target back and compares every planned resource (canonical
/// bytes, secrets masked as the service masks them), the factory, and the
/// trigger states.
/// Also hands back the target as it was read (drills check more of it).
pub async fn verify(
    arm: &dyn FactoryApi,
    target: &TargetFactory,
    identity: &str,
    plan: &Plan,
    started_triggers_expected: &[String],
    concurrency: usize,
) -> Result<(Vec<Mismatch>, TargetState), OpError> {
    let state = read_target(arm, target, identity, concurrency).await?;
    let actual: HashMap<_, _> = state.resources.iter().map(|r| (r.key(), r)).collect();
    let mut out = Vec::new();
    for e in &plan.expected {
        match actual.get(&e.key) {
            None => out.push(Mismatch {
                resource: e.label.clone(),
                detail: "missing from the target".into(),
            }),
            Some(r) if canonical_bytes(&r.definition) != canonical_bytes(&e.definition) => out
                .push(Mismatch {
                    resource: e.label.clone(),
                    detail: format!(
                        "differs from the snapshot at {}",
                        first_difference(&e.definition, &r.definition, "")
                            .unwrap_or_else(|| "the top".into())
                    ),
                }),
            Some(_) => {}
        }
    }
    match &state.factory {
        None => out.push(Mismatch {
            resource: format!("factory {}", target.describe()),
            detail: "missing".into(),
        }),
        Some(f) if canonical_bytes(f) != canonical_bytes(&plan.expected_factory) => {
            out.push(Mismatch {
                resource: format!("factory {}", target.describe()),
                detail: format!(
                    "differs from the plan at {}",
                    first_difference(&plan.expected_factory, f, "")
                        .unwrap_or_else(|| "the top".into())
                ),
            })
        }
        Some(_) => {}
    }
    for e in plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
    {
        let name = &actual
            .get(&e.key)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let is_started = state
            .trigger_states
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started");
        let should = started_triggers_expected
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&e.key.2));
        if is_started != should && !name.is_empty() {
            out.push(Mismatch {
                resource: e.label.clone(),
                detail: format!(
                    "is {}, expected {}",
                    if is_started { "started" } else { "stopped" },
                    if should { "started" } else { "stopped" }
                ),
            });
        }
    }
    Ok((out, state))
}

/// The JSON Pointer of the first place two values differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &here),
                    _ => Some(here),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".into() } else { at.into() }),
    }
}

/// The triggers that must be started after the restore: those the plan
/// starts, and restored ones that were already started and stay so.
pub fn started_after(plan: &Plan, before: &TargetStateTriggers) -> Vec<String> {
    let mut out: Vec<String> = plan.start_triggers.clone();
    for e in plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
    {
        let was = before
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(&e.key.2) && s == "Started");
        let stopped = plan
            .stop_triggers
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&e.key.2));
        if was && !stopped && !out.iter().any(|n| n.eq_ignore_ascii_case(&e.key.2)) {
            out.push(e.key.2.clone());
        }
    }
    out
}

/// Trigger name → runtime state, as read before the restore.
pub type TargetStateTriggers = std::collections::BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_by_pointer() {
        let a = serde_json::json!({"properties": {"a": [1, 2], "b": "x"}});
        let b = serde_json::json!({"properties": {"a": [1, 3], "b": "x"}});
        assert_eq!(
            first_difference(&a, &b, "").as_deref(),
            Some("/properties/a/1")
        );
        assert_eq!(first_difference(&a, &a, ""), None);
    }
}
