//! Differences between two sets of resources (snapshot vs snapshot, or
//! snapshot vs live), down to the JSON Pointers that changed. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::Resource;

#[derive(Debug, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Resource label -> the JSON Pointers that differ.
    pub changed: BTreeMap<String, Vec<String>>,
    /// Trigger name -> (from, to) runtime state.
    pub trigger_states: BTreeMap<String, (String, String)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.trigger_states.is_empty()
    }
}

pub fn diff(
    from: &[Resource],
    to: &[Resource],
    from_states: &BTreeMap<String, String>,
    to_states: &BTreeMap<String, String>,
) -> Diff {
    let a: BTreeMap<_, _> = from.iter().map(|r| (r.key(), r)).collect();
    let b: BTreeMap<_, _> = to.iter().map(|r| (r.key(), r)).collect();
    let mut d = Diff::default();
    for (k, r) in &b {
        match a.get(k) {
            None => d.added.push(r.label()),
            Some(old) => {
                let mut paths = Vec::new();
                pointers(&old.definition, &r.definition, String::new(), &mut paths);
                if !paths.is_empty() {
                    d.changed.insert(r.label(), paths);
                }
            }
        }
    }
    for (k, r) in &a {
        if !b.contains_key(k) {
            d.removed.push(r.label());
        }
    }
    let none = String::from("(absent)");
    for name in from_states.keys().chain(to_states.keys()) {
        let x = from_states.get(name).unwrap_or(&none);
        let y = to_states.get(name).unwrap_or(&none);
        if x != y {
            d.trigger_states
                .insert(name.clone(), (x.clone(), y.clone()));
        }
    }
    d
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn pointers(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let here = format!("{at}/{}", escape(k));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => pointers(v, w, here, out),
                    _ => out.push(here),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                pointers(v, w, format!("{at}/{i}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(if at.is_empty() { "/".into() } else { at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;
    use serde_json::json;

    fn r(name: &str, def: Value) -> Resource {
        Resource {
            kind: ResourceKind::Pipeline,
            parent: None,
            name: name.into(),
            definition: def,
        }
    }

    #[test]
    fn added_removed_changed_and_states() {
        let a = vec![
            r("keep", json!({"properties": {"x": 1, "list": [1, 2]}})),
            r("gone", json!({})),
        ];
        let b = vec![
            r(
                "KEEP",
                json!({"properties": {"x": 2, "list": [1, 3], "new": true}}),
            ),
            r("fresh", json!({})),
        ];
        let sa = BTreeMap::from([("t".to_string(), "Started".to_string())]);
        let sb = BTreeMap::from([("t".to_string(), "Stopped".to_string())]);
        let d = diff(&a, &b, &sa, &sb);
        assert_eq!(d.added, ["pipeline:fresh"]);
        assert_eq!(d.removed, ["pipeline:gone"]);
        assert_eq!(
            d.changed["pipeline:KEEP"],
            ["/properties/list/1", "/properties/new", "/properties/x"]
        );
        assert_eq!(
            d.trigger_states["t"],
            ("Started".to_string(), "Stopped".to_string())
        );
        assert!(diff(&a, &a, &sa, &sa).is_empty());
    }
}
