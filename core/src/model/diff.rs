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
    /// Resource label -> each differing pointer's old and new value (absent
    /// where the member is not there; secrets masked: `mask`).
    pub values: BTreeMap<String, Vec<Change>>,
    /// Trigger name -> (from, to) runtime state.
    pub trigger_states: BTreeMap<String, (String, String)>,
}

/// One changed member: where, what it was, what it is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Change {
    pub path: String,
    /// None: not there before.
    pub old: Option<Value>,
    /// None: not there now.
    pub new: Option<Value>,
}

/// What a masked value reads as.
pub const MASKED: &str = "(secret, not shown)";

/// The words that make a member a secret wherever it is: its name says so
/// (`password`, `accountKey`, `connectionString`, `encryptedCredential`,
/// `sasUri`, ...). Masking a harmless member costs a line of detail;
/// printing a secret costs the secret.
fn secret_name(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase();
    s.ends_with("key")
        || [
            "password",
            "secret",
            "connectionstring",
            "credential",
            "sasuri",
            "sastoken",
            "token",
            "pwd",
        ]
        .iter()
        .any(|w| s.contains(w))
}

/// Whether the member at `path` of `definition` is a secret: a name that
/// says so on the way, or a SecureString object around it.
fn secret_at(definition: &Value, path: &str) -> bool {
    let mut here = definition;
    let is_secure = |v: &Value| v.get("type").and_then(Value::as_str) == Some("SecureString");
    if is_secure(here) {
        return true;
    }
    for raw in path.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if secret_name(&segment) {
            return true;
        }
        here = match here {
            Value::Object(m) => match m.get(&segment) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match segment.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
        if is_secure(here) {
            return true;
        }
    }
    false
}

/// The value at `path` (`/` is the whole), masked when it is a secret, or
/// holds one.
fn value_at(definition: &Value, path: &str) -> Option<Value> {
    let v = if path == "/" {
        definition
    } else {
        definition.pointer(path)?
    };
    Some(if secret_at(definition, path) || holds_secret(v) {
        Value::String(MASKED.into())
    } else {
        v.clone()
    })
}

/// Whether a value (a whole object or array that changed) has a secret
/// anywhere inside.
fn holds_secret(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.get("type").and_then(Value::as_str) == Some("SecureString")
                || m.iter()
                    .any(|(k, v)| (secret_name(k) && !v.is_null()) || holds_secret(v))
        }
        Value::Array(a) => a.iter().any(holds_secret),
        _ => false,
    }
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
                    let changes = paths
                        .iter()
                        .map(|p| Change {
                            path: p.clone(),
                            old: value_at(&old.definition, p),
                            new: value_at(&r.definition, p),
                        })
                        .collect();
                    d.values.insert(r.label(), changes);
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
        let x = &d.values["pipeline:KEEP"];
        assert_eq!(x[0].old, Some(json!(2)));
        assert_eq!(x[0].new, Some(json!(3)));
        assert_eq!(x[1].old, None, "added member");
        assert_eq!(x[1].new, Some(json!(true)));
    }

    /// Issue 26, item 10: values are shown, secrets never: by their name
    /// on the way, by a SecureString around them, or inside a whole value
    /// that changed.
    #[test]
    fn values_are_shown_and_secrets_masked() {
        let a = vec![r(
            "ls",
            json!({"properties": {"description": "old", "typeProperties": {
                "connectionString": "Server=a;Password=hunter2",
                "servicePrincipalKey": {"type": "SecureString", "value": "k1"},
                "opaque": {"type": "SecureString", "value": "s1"},
                "extra": {"a": 1}
            }}}),
        )];
        let b = vec![r(
            "ls",
            json!({"properties": {"description": "new", "typeProperties": {
                "connectionString": "Server=b;Password=hunter3",
                "servicePrincipalKey": {"type": "SecureString", "value": "k2"},
                "opaque": {"type": "SecureString", "value": "s2"},
                "extra": {"a": 1, "nested": {"password": "p"}}
            }}}),
        )];
        let none = BTreeMap::new();
        let d = diff(&a, &b, &none, &none);
        let text = serde_json::to_string(&d.values).expect("json");
        for secret in ["hunter", "k1", "k2", "s1", "s2", "\"p\""] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
        let by: BTreeMap<&str, &Change> = d.values["pipeline:ls"]
            .iter()
            .map(|c| (c.path.as_str(), c))
            .collect();
        assert_eq!(by["/properties/description"].old, Some(json!("old")));
        assert_eq!(by["/properties/description"].new, Some(json!("new")));
        assert_eq!(
            by["/properties/typeProperties/opaque/value"].new,
            Some(json!(MASKED))
        );
        assert_eq!(
            by["/properties/typeProperties/extra/nested"].new,
            Some(json!(MASKED)),
            "a whole value holding a secret"
        );
    }
}
