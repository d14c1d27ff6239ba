//! What a snapshot holds: the public manifest fields (listing without a key),
//! the encrypted manifest (names, hashes, trigger states, restorability
//! report) and the payload (every resource's canonical JSON, one per line).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys::WrappedKey;
use crate::model::raw::canonicalize_raw;
use crate::model::restorability::{Finding, Partial, inspect_scanned};
use crate::model::{ResourceKind, canonical_bytes, write_canonical};

pub use crate::model::resource::{Resource, key, label};

/// Public, key-less fields of a manifest header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicManifest {
    pub resources: usize,
    pub counts: BTreeMap<String, usize>,
    pub payload: ObjectRef,
    pub keys: Vec<WrappedKey>,
    pub tool: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectRef {
    /// SHA-256 (hex) of the whole stored object, digest trailer included.
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Source {
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
}

impl Source {
    /// The factory's ARM id.
    pub fn arm_id(&self) -> String {
        self.id().arm_path()
    }

    pub fn path(&self) -> String {
        self.id().to_string()
    }

    /// Its address.
    pub fn id(&self) -> crate::model::names::FactoryId {
        crate::model::names::FactoryId {
            subscription: self.subscription.clone(),
            resource_group: self.resource_group.clone(),
            factory: self.factory.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    pub kind: ResourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub name: String,
    /// SHA-256 (hex) of the canonical JSON.
    pub hash: String,
    pub size: u64,
}

impl Entry {
    pub fn label(&self) -> String {
        label(self.kind, self.parent.as_deref(), &self.name)
    }
}

/// The encrypted part of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub source: Source,
    /// The factory's Azure region (`location`), the default for a restore.
    #[serde(default)]
    pub region: Option<String>,
    /// When the export started (RFC 3339): the state is at least this fresh.
    pub exported_at: String,
    /// Hex SHA-256 over the entries and trigger states (see `root`).
    pub root: String,
    pub resources: Vec<Entry>,
    /// Trigger name -> runtime state (`Started`, `Stopped`, `Disabled`).
    pub trigger_states: BTreeMap<String, String>,
    /// What the IRs and CDCs were doing (absent in snapshots before 2026-12).
    #[serde(default, skip_serializing_if = "Runtimes::is_empty")]
    pub runtimes: Runtimes,
    /// The source factory's `createTime`: with `source`, which factory this
    /// is (one re-created under the same name is another, and credentials
    /// encrypted for the old one do not work in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Kinds the service did not offer where the factory lives (their list
    /// answered 404 or "not supported"): absent, not forgotten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_offered: Vec<ResourceKind>,
    pub report: Vec<Finding>,
    /// What changed since the previous snapshot, resource by resource, and
    /// who changed it where an event said (absent before 2026-12, and in a
    /// factory's first snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<crate::snapshot::changes::ChangeRecord>,
    /// Capture's newest event time applied per resource (label → RFC 3339),
    /// carried from snapshot to snapshot: a delete delivered after a newer
    /// write is told stale by it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<String, String>,
    /// Changes capture sealed from a listing before their events came,
    /// carried (an hour at most) until an event names their author.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<crate::snapshot::changes::ChangeRecord>,
    /// The keep policy the snapshot was taken under, and who chose it
    /// (absent before 2026-12): a policy tag set later cannot shorten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyNote>,
}

/// Which policy a snapshot was taken under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyNote {
    /// `[policy.NAME]`, or `config` for a hand-written `[[factory]]`.
    pub name: String,
    /// `config` (a `[[factory]]`), `block` (a `[[discover]]` block's
    /// policy) or `tag` (the factory's `adfdr-policy` tag).
    pub by: String,
}

impl Manifest {
    /// The changes it recorded and the authorless ones it carried, as
    /// capture's author folding reads them.
    pub fn before(&self) -> crate::snapshot::changes::Before<'_> {
        crate::snapshot::changes::Before {
            changes: &self.changes,
            awaiting: &self.awaiting,
        }
    }

    /// The source this snapshot is of (docs/FORMAT.md: a namespace is bound
    /// to it; `plan::binding` decides what another source may do).
    pub fn source_id(&self) -> SourceId {
        SourceId::new(&self.source.arm_id(), self.created.as_deref())
    }
}

/// A factory as a manifest records it: its ARM id (compared
/// case-insensitively, as ARM compares them) and its `createTime` (absent
/// in snapshots before 2026-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceId {
    pub id: String,
    pub created: Option<String>,
}

impl SourceId {
    pub fn new(id: &str, created: Option<&str>) -> SourceId {
        SourceId {
            id: id.trim_end_matches('/').to_string(),
            created: created.map(str::to_string).filter(|c| !c.is_empty()),
        }
    }

    /// One line for people: the id, and when it was created.
    pub fn describe(&self) -> String {
        match &self.created {
            Some(c) => format!("{} (created {c})", self.id),
            None => self.id.clone(),
        }
    }

    /// A key retention groups snapshots by: one per source.
    pub fn key(&self) -> String {
        let created = self
            .created
            .as_deref()
            .and_then(crate::snapshot::parse_time)
            .map(crate::snapshot::rfc3339)
            .or_else(|| self.created.clone())
            .unwrap_or_default();
        format!("{}|{created}", self.id.to_ascii_lowercase())
    }

    /// The same ARM id (ARM ids compare case-insensitively).
    pub fn same_id(&self, other: &SourceId) -> bool {
        self.id.eq_ignore_ascii_case(&other.id)
    }
}

/// What a factory's integration runtimes and change data captures were
/// doing: state the service keeps outside the definitions (a Managed IR's
/// `state`, a CDC's `status`), needed to bring a restored factory back
/// running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Runtimes {
    /// Managed IR name -> state (`Started`, `Stopped`, `Initial`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub integration_runtimes: BTreeMap<String, String>,
    /// CDC name -> status (`Running`, `Stopped`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub change_data_captures: BTreeMap<String, String>,
}

impl Runtimes {
    pub fn is_empty(&self) -> bool {
        self.integration_runtimes.is_empty() && self.change_data_captures.is_empty()
    }
}

/// The root hash: SHA-256 over `kind \0 parent \0 name \0 hash \n` for every
/// entry in order, then `trigger-state \0 name \0 state \n` per trigger,
/// then `runtime-state \0 kind \0 name \0 state \n` per IR and CDC (none in
/// older snapshots, whose roots are unchanged).
pub fn root(
    entries: &[Entry],
    trigger_states: &BTreeMap<String, String>,
    runtimes: &Runtimes,
) -> String {
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.kind.label().as_bytes());
        h.update([0]);
        h.update(e.parent.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(e.name.as_bytes());
        h.update([0]);
        h.update(e.hash.as_bytes());
        h.update(b"\n");
    }
    for (name, state) in trigger_states {
        h.update(b"trigger-state\0");
        h.update(name.as_bytes());
        h.update([0]);
        h.update(state.as_bytes());
        h.update(b"\n");
    }
    let kinds = [
        (
            ResourceKind::IntegrationRuntime,
            &runtimes.integration_runtimes,
        ),
        (
            ResourceKind::ChangeDataCapture,
            &runtimes.change_data_captures,
        ),
    ];
    for (kind, states) in kinds {
        for (name, state) in states {
            h.update(b"runtime-state\0");
            h.update(kind.label().as_bytes());
            h.update([0]);
            h.update(name.as_bytes());
            h.update([0]);
            h.update(state.as_bytes());
            h.update(b"\n");
        }
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// One resource's payload line and manifest entry, encoded on its own so an
/// export can drop each value tree as soon as it has been read.
#[derive(Debug)]
pub struct Encoded {
    pub key: (ResourceKind, String, String),
    pub line: Vec<u8>,
    pub entry: Entry,
}

/// `{"kind":..,"parent":..,"name":..,"definition":<canonical>}\n` and its entry.
pub fn encode_one(r: &Resource) -> Encoded {
    let mut out = Vec::with_capacity(512);
    let size = encode_line(r, &mut out);
    let definition_hash = size.1;
    Encoded {
        key: r.key(),
        line: out,
        entry: Entry {
            kind: r.kind,
            parent: r.parent.clone(),
            name: r.name.clone(),
            hash: definition_hash,
            size: size.0,
        },
    }
}

/// Encodes one resource straight from its ARM answer (`model::raw`, no value
/// tree): its payload line and entry, and its restorability partial.
/// None when the answer has no name.
pub fn encode_answer(
    kind: ResourceKind,
    parent: Option<String>,
    answer: &[u8],
) -> Result<Option<(Encoded, Partial, Option<String>)>, serde_json::Error> {
    thread_local! {
        /// The canonical definition waits here while its name is learned
        /// (it comes before the definition in the line).
        static DEFINITION: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    DEFINITION.with_borrow_mut(|definition| {
        definition.clear();
        encode_scanned(kind, parent, answer, definition)
    })
}

fn encode_scanned(
    kind: ResourceKind,
    parent: Option<String>,
    answer: &[u8],
    definition: &mut Vec<u8>,
) -> Result<Option<(Encoded, Partial, Option<String>)>, serde_json::Error> {
    let scan = canonicalize_raw(kind, answer, definition)?;
    let Some(name) = scan.name else {
        return Ok(None);
    };
    let mut line = Vec::with_capacity(definition.len() + name.len() + 64);
    let (size, hash) = encode_line_with(kind, parent.as_deref(), &name, &mut line, |out| {
        out.extend_from_slice(definition)
    });
    let partial = inspect_scanned(
        kind,
        parent.as_deref(),
        &name,
        definition,
        scan.references,
        scan.masked,
    );
    let encoded = Encoded {
        key: key(kind, parent.as_deref(), &name),
        line,
        entry: Entry {
            kind,
            parent,
            name,
            hash,
            size,
        },
    };
    Ok(Some((encoded, partial, scan.runtime_state)))
}

/// Appends one line; returns the canonical definition's size and hash.
fn encode_line(r: &Resource, out: &mut Vec<u8>) -> (u64, String) {
    encode_line_with(r.kind, r.parent.as_deref(), &r.name, out, |out| {
        write_canonical(&r.definition, out)
    })
}

fn encode_line_with(
    kind: ResourceKind,
    parent: Option<&str>,
    name: &str,
    out: &mut Vec<u8>,
    definition: impl FnOnce(&mut Vec<u8>),
) -> (u64, String) {
    out.extend_from_slice(b"{\"kind\":");
    out.extend_from_slice(&serde_json::to_vec(&kind).expect("kind"));
    if let Some(parent) = parent {
        out.extend_from_slice(b",\"parent\":");
        out.extend_from_slice(&serde_json::to_vec(parent).expect("string"));
    }
    out.extend_from_slice(b",\"name\":");
    out.extend_from_slice(&serde_json::to_vec(name).expect("string"));
    out.extend_from_slice(b",\"definition\":");
    let start = out.len();
    definition(out);
    let canonical = &out[start..];
    let hash = hex(&Sha256::digest(canonical));
    let size = canonical.len() as u64;
    out.extend_from_slice(b"}\n");
    (size, hash)
}

/// Puts encoded resources in snapshot order and joins them into the payload.
pub fn assemble(mut items: Vec<Encoded>) -> (Vec<u8>, Vec<Entry>) {
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = Vec::with_capacity(items.iter().map(|i| i.line.len()).sum());
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        out.extend_from_slice(&item.line);
        entries.push(item.entry);
    }
    (out, entries)
}

/// A payload line kept until it is sealed: compressed on its own when that
/// saves memory (a backup holds every line of a factory until the payload
/// is written in order; definitions compress several times over).
#[derive(Clone, Debug)]
pub struct Packed {
    bytes: Vec<u8>,
    /// The line's length; `bytes` is zstd of it when it differs.
    raw: usize,
}

impl Packed {
    /// Lines shorter than this are kept as they are (compressing them
    /// saves little and costs a frame each).
    const SMALL: usize = 4096;

    pub fn raw(line: Vec<u8>) -> Packed {
        Packed {
            raw: line.len(),
            bytes: line,
        }
    }

    pub fn pack(line: Vec<u8>) -> Packed {
        if line.len() < Self::SMALL {
            return Packed::raw(line);
        }
        match zstd::bulk::compress(&line, 1) {
            Ok(mut small) if small.len() < line.len() => {
                // zstd reserves the worst case: what is not used goes back.
                small.shrink_to_fit();
                Packed {
                    raw: line.len(),
                    bytes: small,
                }
            }
            _ => Packed::raw(line),
        }
    }

    /// The line's length.
    pub fn len(&self) -> usize {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw == 0
    }

    /// The line itself.
    pub fn line(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.bytes.len() == self.raw {
            return std::borrow::Cow::Borrowed(&self.bytes);
        }
        std::borrow::Cow::Owned(
            zstd::bulk::decompress(&self.bytes, self.raw).expect("packed here, read back here"),
        )
    }
}

/// The payload's lines in snapshot order, not joined (each is handed to the
/// sealer and freed in turn), and the manifest entries.
pub fn sorted_lines(mut items: Vec<(ResourceKey, Packed, Entry)>) -> (Vec<Packed>, Vec<Entry>) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.into_iter().map(|(_, p, e)| (p, e)).unzip()
}

/// A resource's place in snapshot order.
pub type ResourceKey = (ResourceKind, String, String);

/// `encode_payload`, its lines not joined.
pub fn encode_lines(resources: &mut [Resource]) -> (Vec<Packed>, Vec<Entry>) {
    resources.sort_by_cached_key(Resource::key);
    resources
        .iter()
        .map(|r| {
            let e = encode_one(r);
            (Packed::raw(e.line), e.entry)
        })
        .unzip()
}

/// Sorts resources into snapshot order and encodes the payload:
/// one line per resource, `{"kind":..,"parent":..,"name":..,"definition":<canonical>}`.
/// Returns the payload plaintext and the manifest entries.
pub fn encode_payload(resources: &mut [Resource]) -> (Vec<u8>, Vec<Entry>) {
    resources.sort_by_cached_key(Resource::key);
    let mut out = Vec::with_capacity(resources.len() * 512);
    let mut entries = Vec::with_capacity(resources.len());
    for r in resources.iter() {
        let (size, hash) = encode_line(r, &mut out);
        entries.push(Entry {
            kind: r.kind,
            parent: r.parent.clone(),
            name: r.name.clone(),
            hash,
            size,
        });
    }
    (out, entries)
}

#[derive(Deserialize)]
struct Line {
    kind: ResourceKind,
    #[serde(default)]
    parent: Option<String>,
    name: String,
    definition: Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("payload line {line} is not a resource record: {detail}")]
    Parse { line: usize, detail: String },
    #[error("payload holds {found} resources, the manifest lists {listed}")]
    Count { found: usize, listed: usize },
    #[error("{label}: content hash {found} does not match the manifest's {listed}")]
    Hash {
        label: String,
        found: String,
        listed: String,
    },
    #[error("payload line {line} is {found}, the manifest lists {listed} there")]
    Order {
        line: usize,
        found: String,
        listed: String,
    },
}

/// Decodes a payload and checks every resource against the manifest's entries.
pub fn decode_payload(plain: &[u8], entries: &[Entry]) -> Result<Vec<Resource>, Vec<PayloadError>> {
    let mut resources = Vec::with_capacity(entries.len());
    let mut errors = Vec::new();
    let lines = plain.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    for (i, line) in lines.enumerate() {
        let rec: Line = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                errors.push(PayloadError::Parse {
                    line: i + 1,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let resource = Resource {
            kind: rec.kind,
            parent: rec.parent,
            name: rec.name,
            definition: rec.definition,
        };
        if let Some(entry) = entries.get(i) {
            if key(entry.kind, entry.parent.as_deref(), &entry.name) != resource.key() {
                errors.push(PayloadError::Order {
                    line: i + 1,
                    found: resource.label(),
                    listed: entry.label(),
                });
            } else {
                let found = hex(&Sha256::digest(canonical_bytes(&resource.definition)));
                if found != entry.hash {
                    errors.push(PayloadError::Hash {
                        label: resource.label(),
                        found,
                        listed: entry.hash.clone(),
                    });
                }
            }
        }
        resources.push(resource);
    }
    if resources.len() != entries.len() {
        errors.push(PayloadError::Count {
            found: resources.len(),
            listed: entries.len(),
        });
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

/// Counts by kind label, for the public header.
pub fn counts(entries: &[Entry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.kind.label().to_string()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Resource> {
        vec![
            Resource {
                kind: ResourceKind::Pipeline,
                parent: None,
                name: "b".into(),
                definition: json!({"properties": {"activities": [], "z": 1, "a": 2}}),
            },
            Resource {
                kind: ResourceKind::ManagedPrivateEndpoint,
                parent: Some("default".into()),
                name: "mpe".into(),
                definition: json!({"properties": {"groupId": "blob"}}),
            },
            Resource {
                kind: ResourceKind::Pipeline,
                parent: None,
                name: "A".into(),
                definition: json!({"properties": {"description": "line\nbreak \u{2028}"}}),
            },
        ]
    }

    #[test]
    fn payload_round_trips_in_a_stable_order() {
        let mut rs = sample();
        let (plain, entries) = encode_payload(&mut rs);
        assert_eq!(
            entries.iter().map(Entry::label).collect::<Vec<_>>(),
            [
                "managedPrivateEndpoint:default/mpe",
                "pipeline:A",
                "pipeline:b"
            ]
        );
        let back = decode_payload(&plain, &entries).expect("decode");
        assert_eq!(back, rs);
        // Another input order gives the same bytes and root.
        let mut reversed: Vec<_> = sample().into_iter().rev().collect();
        let (plain2, entries2) = encode_payload(&mut reversed);
        assert_eq!(plain, plain2);
        let states = BTreeMap::from([("t".to_string(), "Started".to_string())]);
        let none = Runtimes::default();
        assert_eq!(
            root(&entries, &states, &none),
            root(&entries2, &states, &none)
        );
        assert_ne!(
            root(&entries, &states, &none),
            root(&entries, &BTreeMap::new(), &none)
        );
        // A started IR is state too: stopping it makes another snapshot.
        let running = Runtimes {
            integration_runtimes: BTreeMap::from([("ssis".to_string(), "Started".to_string())]),
            ..Default::default()
        };
        let stopped = Runtimes {
            integration_runtimes: BTreeMap::from([("ssis".to_string(), "Stopped".to_string())]),
            ..Default::default()
        };
        assert_ne!(
            root(&entries, &states, &running),
            root(&entries, &states, &stopped)
        );
        assert_ne!(
            root(&entries, &states, &running),
            root(&entries, &states, &none)
        );
    }

    #[test]
    fn encoding_one_by_one_gives_the_same_payload() {
        let mut rs = sample();
        let (plain, entries) = encode_payload(&mut rs);
        let (plain2, entries2) = assemble(sample().iter().rev().map(encode_one).collect());
        assert_eq!(plain, plain2);
        assert_eq!(entries, entries2);
    }

    #[test]
    fn a_changed_resource_is_named() {
        let mut rs = sample();
        let (plain, entries) = encode_payload(&mut rs);
        let text = String::from_utf8(plain)
            .expect("utf8")
            .replace("blob", "file");
        let errors = decode_payload(text.as_bytes(), &entries).unwrap_err();
        assert!(
            matches!(&errors[..], [PayloadError::Hash { label, .. }] if label == "managedPrivateEndpoint:default/mpe"),
            "{errors:?}"
        );
        let short: Vec<u8> = text
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
        let errors = decode_payload(&short, &entries).unwrap_err();
        assert!(errors.iter().any(|e| matches!(
            e,
            PayloadError::Count {
                found: 2,
                listed: 3
            }
        )));
    }
}
