//! Canonical JSON: one byte sequence per definition, whatever key order or
//! whitespace the service answered with, and without the fields the service
//! owns. Identical definitions therefore hash identically, which is what makes
//! "unchanged since snapshot X" and restore verification possible.
//!
//! Form: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
//! strings escaped as serde_json escapes them, numbers as serde_json prints them
//! (integers exactly, floats in shortest round-trip form).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::kind::ResourceKind;

/// Top-level fields of every ARM answer that are not part of a definition.
pub(crate) const ENVELOPE: &[&str] = &["id", "name", "type", "etag", "eTag", "Etag"];

/// The definition as adfdr keeps it: the service's answer without the envelope
/// (`id`, `name`, `type`, `etag`) or the server-owned properties of its kind.
/// Unknown fields are kept: they are part of the definition.
pub fn canonicalize(kind: ResourceKind, answer: &Value) -> Value {
    canonicalize_owned(kind, answer.clone())
}

/// `canonicalize` without the copy, for answers the caller owns. Keys keep
/// the service's order (sorting an order-preserving map in place rebuilds its
/// index and cost more than sorting while writing: docs/PERFORMANCE.md).
pub fn canonicalize_owned(kind: ResourceKind, mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        for key in ENVELOPE {
            map.shift_remove(*key);
        }
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            for key in kind.server_properties() {
                props.shift_remove(*key);
            }
        }
        if kind == ResourceKind::Factory
            && let Some(Value::Object(identity)) = map.get_mut("identity")
        {
            identity.shift_remove("principalId");
            identity.shift_remove("tenantId");
            // Each user-assigned identity's ids are the service's (read-only).
            if let Some(Value::Object(uamis)) = identity.get_mut("userAssignedIdentities") {
                for uami in uamis.values_mut() {
                    if let Value::Object(u) = uami {
                        u.shift_remove("clientId");
                        u.shift_remove("principalId");
                    }
                }
            }
        }
    }
    body
}

/// The canonical bytes of a JSON value.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out` (no intermediate buffer).
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    write(value, out);
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own compact rendering is already canonical
        // (written straight into the buffer: no allocation per value).
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    // Canonicalized values arrive sorted: no allocation, no sort.
    let sorted = map.keys().is_sorted_by(|a, b| a.as_bytes() <= b.as_bytes());
    let mut entries: Vec<(&String, &Value)>;
    let iter: &mut dyn Iterator<Item = (&String, &Value)> = if sorted {
        &mut map.iter()
    } else {
        entries = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        &mut entries.into_iter()
    };
    for (i, (key, value)) in iter.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
        out.push(b':');
        write(value, out);
    }
    out.push(b'}');
}

/// SHA-256 of canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hash that identifies a definition's content.
pub fn content_hash(value: &Value) -> ContentHash {
    ContentHash(Sha256::digest(canonical_bytes(value)).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2.5, "x"], "x": null}}"#)
            .expect("json");
        let b: Value =
            serde_json::from_str("{\"a\":{\"x\":null,\"y\":[1,2.5,\"x\"]},\"b\":1}").expect("json");
        assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        assert_eq!(
            canonical_bytes(&a),
            br#"{"a":{"x":null,"y":[1,2.5,"x"]},"b":1}"#.to_vec()
        );
        assert_eq!(content_hash(&a), content_hash(&b));
    }

    #[test]
    fn array_order_and_values_do_matter() {
        assert_ne!(content_hash(&json!([1, 2])), content_hash(&json!([2, 1])));
        assert_ne!(
            content_hash(&json!({"a": "1"})),
            content_hash(&json!({"a": 1}))
        );
    }

    #[test]
    fn strings_are_escaped_and_keys_sorted_by_bytes() {
        let v = json!({"é": "line\nbreak \"quoted\" \u{1}", "Z": true, "a": false});
        let text = String::from_utf8(canonical_bytes(&v)).expect("utf8");
        assert_eq!(
            text,
            "{\"Z\":true,\"a\":false,\"é\":\"line\\nbreak \\\"quoted\\\" \\u0001\"}"
        );
        let back: Value = serde_json::from_str(&text).expect("canonical bytes are JSON");
        assert_eq!(back, v);
    }

    #[test]
    fn server_owned_fields_are_dropped_and_unknown_fields_kept() {
        let answer = json!({"id": "/x", "name": "TR", "type": "Microsoft.DataFactory/factories/triggers", "etag": "e1",
            "properties": {"type": "ScheduleTrigger", "runtimeState": "Started", "somethingNew": {"k": 1}}});
        let other_etag = json!({"id": "/x", "name": "TR", "etag": "e2",
            "properties": {"somethingNew": {"k": 1}, "runtimeState": "Stopped", "type": "ScheduleTrigger"}});
        let a = canonicalize(ResourceKind::Trigger, &answer);
        assert_eq!(
            a,
            json!({"properties": {"type": "ScheduleTrigger", "somethingNew": {"k": 1}}})
        );
        assert_eq!(
            content_hash(&a),
            content_hash(&canonicalize(ResourceKind::Trigger, &other_etag))
        );
        let factory = json!({"name": "f", "eTag": "\"1\"", "location": "westeurope",
            "identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
            "properties": {"createTime": "now", "provisioningState": "Succeeded", "version": "2018-06-01", "publicNetworkAccess": "Enabled"}});
        assert_eq!(
            canonicalize(ResourceKind::Factory, &factory),
            json!({"location": "westeurope", "identity": {"type": "SystemAssigned"}, "properties": {"publicNetworkAccess": "Enabled"}})
        );
    }

    #[test]
    fn large_and_fractional_numbers_round_trip() {
        let v: Value = serde_json::from_str(
            r#"{"big": 9007199254740993, "neg": -0.5, "exp": 1e300, "small": 1.5e-7}"#,
        )
        .expect("json");
        let back: Value = serde_json::from_slice(&canonical_bytes(&v)).expect("json");
        assert_eq!(back, v);
        assert_eq!(
            canonical_bytes(&back),
            canonical_bytes(&v),
            "canonical form is a fixed point"
        );
    }
}
