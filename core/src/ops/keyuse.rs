//! `adfdr key list` as a use case: every key at hand and every key the
//! store's snapshots name, with which snapshots each opens. A key file's
//! claim is proven by unwrapping each snapshot's data key with it (cheap,
//! local); a Key Vault key's is read from the snapshot's header (one vault
//! call per snapshot would be slow and costly), and said to be.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::Serialize;

use super::read::{self, Listed};
use crate::keys::KeyRing;
use crate::snapshot::keys::WrappedKey;
use crate::store::{Replicas, layout};

/// One key: what it is, and what it opens.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct KeyUse {
    /// The `[[key]] id` (as configured, or as the snapshots name it).
    pub id: String,
    /// `file` or `keyvault`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The Key Vault key (as configured; or the versioned id a snapshot
    /// records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
    /// Given here (the config's `[[key]]`, or `--key`); else only named by
    /// snapshots (a retired key, another host's, or a planted claim).
    pub at_hand: bool,
    /// Snapshots it opens.
    pub snapshots: usize,
    pub factories: Vec<String>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// `unwrapped` (each data key was unwrapped with it) or `header` (the
    /// snapshots name it; Key Vault keys and keys not at hand).
    pub proof: String,
}

/// What `key list` says.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct KeyList {
    pub keys: Vec<KeyUse>,
    /// Snapshots read.
    pub snapshots: usize,
    /// Snapshots no key at hand opens (by the proof above).
    pub none_at_hand: Vec<String>,
    /// Manifests whose header did not read (`adfdr verify` says why).
    pub unreadable: usize,
    /// Locations that could not be listed.
    pub unlisted: Vec<String>,
}

/// A key's identity across snapshots: a file key by its fingerprint, a
/// vault key by its unversioned URL.
fn identity(w: &WrappedKey) -> String {
    match (&w.fingerprint, &w.key_url) {
        (Some(fp), _) => format!("file:{fp}"),
        (_, Some(url)) => format!("keyvault:{}", unversioned(url)),
        _ => format!("id:{}", w.id),
    }
}

/// `https://v.vault.azure.net/keys/name/VERSION` → `…/keys/name`.
fn unversioned(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    match parts.iter().position(|p| *p == "keys") {
        Some(i) if parts.len() > i + 2 => parts[..i + 2].join("/"),
        _ => trimmed.to_string(),
    }
    .to_ascii_lowercase()
}

fn empty(id: &str, kind: &str, at_hand: bool, proof: &str) -> KeyUse {
    KeyUse {
        id: id.to_string(),
        kind: kind.to_string(),
        fingerprint: None,
        key_url: None,
        at_hand,
        snapshots: 0,
        factories: Vec::new(),
        oldest: None,
        newest: None,
        proof: proof.to_string(),
    }
}

/// The keys at hand, by identity.
fn at_hand(keys: &KeyRing) -> BTreeMap<String, KeyUse> {
    let mut out = BTreeMap::new();
    for (k, _) in &keys.files {
        let mut u = empty(&k.id, "file", true, "unwrapped");
        u.fingerprint = Some(k.fingerprint());
        out.insert(format!("file:{}", k.fingerprint()), u);
    }
    for v in &keys.vaults {
        let mut u = empty(&v.id, "keyvault", true, "header");
        u.key_url = Some(v.url.to_string());
        out.insert(format!("keyvault:{}", unversioned(v.url.as_str())), u);
    }
    out
}

fn count(u: &mut KeyUse, l: &Listed) {
    u.snapshots += 1;
    if !u.factories.contains(&l.factory) {
        u.factories.push(l.factory.clone());
    }
    if u.oldest.as_ref().is_none_or(|o| &l.id < o) {
        u.oldest = Some(l.id.clone());
    }
    if u.newest.as_ref().is_none_or(|n| &l.id > n) {
        u.newest = Some(l.id.clone());
    }
}

/// The wrapped keys a snapshot's header names, from the first location
/// whose copy checks out (None: no copy's header reads).
async fn header_keys(replicas: &Replicas, l: &Listed) -> Option<Vec<WrappedKey>> {
    let key = layout::manifest(&l.factory, &l.id);
    for name in &l.locations {
        let Some(location) = replicas.get(name) else {
            continue;
        };
        let Ok(Some(bytes)) = replicas
            .fetch(location, &key, crate::store::MAX_OBJECT)
            .await
        else {
            continue;
        };
        if let Ok(header) = read::check_manifest(&bytes, &l.factory, &l.id, None)
            && let Some(m) = header.manifest
        {
            return Some(m.keys);
        }
    }
    None
}

/// Every key at hand and every key the snapshots name, with what each
/// opens.
pub async fn key_list(replicas: &Replicas, keys: &KeyRing) -> KeyList {
    let (listed, failed) = read::list(replicas, None).await;
    let mut uses = at_hand(keys);
    let mut out = KeyList {
        unlisted: failed.into_iter().map(|(l, _)| l).collect(),
        ..Default::default()
    };
    let headers: Vec<(Listed, Option<Vec<WrappedKey>>)> = futures::stream::iter(listed)
        .map(|l| async move {
            let keys = header_keys(replicas, &l).await;
            (l, keys)
        })
        .buffered(8)
        .collect()
        .await;
    for (l, wrapped) in headers {
        let Some(wrapped) = wrapped else {
            out.unreadable += 1;
            continue;
        };
        out.snapshots += 1;
        let mut opened_here = false;
        for w in &wrapped {
            let id = identity(w);
            let proven = match uses.get(&id) {
                // A key file at hand counts only what it really unwraps.
                Some(u) if u.kind == "file" && u.at_hand => keys
                    .files
                    .iter()
                    .any(|(k, _)| k.unwrap(w, &l.factory, &l.id).is_some()),
                Some(_) => true,
                None => {
                    let mut u = empty(&w.id, &w.kind, false, "header");
                    u.fingerprint.clone_from(&w.fingerprint);
                    u.key_url.clone_from(&w.key_url);
                    uses.insert(id.clone(), u);
                    true
                }
            };
            if proven && let Some(u) = uses.get_mut(&id) {
                opened_here |= u.at_hand;
                count(u, &l);
            }
        }
        if !opened_here {
            out.none_at_hand.push(format!("{}/{}", l.factory, l.id));
        }
    }
    out.keys = uses.into_values().collect();
    out.keys
        .sort_by(|a, b| b.at_hand.cmp(&a.at_hand).then(a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_keys_are_one_key_across_versions() {
        assert_eq!(
            unversioned("https://KV.vault.azure.net/keys/kek/0123abcd"),
            "https://kv.vault.azure.net/keys/kek"
        );
        assert_eq!(
            unversioned("https://kv.vault.azure.net/keys/kek"),
            "https://kv.vault.azure.net/keys/kek"
        );
    }
}
