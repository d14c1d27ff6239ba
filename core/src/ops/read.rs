//! Finding and opening snapshots in the store. Works from the store alone
//! (replicas + a key ring), so incident mode needs no catalog and no config.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::OpError;
use crate::keys::KeyRing;
use crate::snapshot::manifest::{Manifest, PublicManifest, decode_payload, hex};
use crate::snapshot::object::{self, DEFAULT_MAX_PLAIN, Header, ObjectType};
use crate::snapshot::{DataKey, Resource};
use crate::store::layout::{self, Parsed};
use crate::store::{Replicas, replicated::Read};

/// A snapshot as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub factory: String,
    pub id: String,
    /// Locations holding its manifest.
    pub locations: Vec<String>,
    pub manifest_size: u64,
    pub payload_size: u64,
}

/// Every committed snapshot (a manifest exists somewhere), oldest first, and
/// the locations that could not be listed.
pub async fn list(
    replicas: &Replicas,
    factory: Option<&str>,
) -> (Vec<Listed>, Vec<(String, String)>) {
    let prefix = factory
        .map(layout::factory_prefix)
        .unwrap_or_else(|| layout::ROOT.to_string());
    let mut found: BTreeMap<(String, String), Listed> = BTreeMap::new();
    let mut failed = Vec::new();
    for (location, result) in replicas.list_all(&prefix).await {
        let objects = match result {
            Ok(o) => o,
            Err(e) => {
                failed.push((location, e.to_string()));
                continue;
            }
        };
        for o in objects {
            let (f, id, is_manifest) = match layout::parse(&o.key) {
                Some(Parsed::Manifest { factory, snapshot }) => (factory, snapshot, true),
                Some(Parsed::Payload { factory, snapshot }) => (factory, snapshot, false),
                _ => continue,
            };
            let entry = found
                .entry((f.clone(), id.clone()))
                .or_insert_with(|| Listed {
                    factory: f,
                    id,
                    locations: Vec::new(),
                    manifest_size: 0,
                    payload_size: 0,
                });
            if is_manifest {
                entry.locations.push(location.clone());
                entry.manifest_size = o.size;
            } else {
                entry.payload_size = o.size;
            }
        }
    }
    let mut out: Vec<Listed> = found
        .into_values()
        .filter(|l| !l.locations.is_empty())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id).then(a.factory.cmp(&b.factory)));
    (out, failed)
}

/// Resolves `latest` (per factory) or an id to (factory, id).
pub async fn resolve(
    replicas: &Replicas,
    reference: &str,
    factory: Option<&str>,
) -> Result<(String, String), OpError> {
    let (all, failed) = list(replicas, factory).await;
    if all.is_empty() && failed.len() == replicas.locations.len() {
        return Err(OpError::Failed(format!(
            "no location could be listed: {}",
            failed
                .iter()
                .map(|(l, e)| format!("{l}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    if reference == "latest" {
        let Some(f) = factory else {
            return Err(OpError::Usage(
                "'latest' needs a factory: name one (--factory NAME)".into(),
            ));
        };
        return all
            .into_iter()
            .rfind(|l| l.factory.eq_ignore_ascii_case(f))
            .map(|l| (l.factory, l.id))
            .ok_or_else(|| OpError::Usage(format!("factory {f} has no snapshots in the store")));
    }
    all.into_iter()
        .find(|l| l.id == reference && factory.is_none_or(|f| l.factory.eq_ignore_ascii_case(f)))
        .map(|l| (l.factory, l.id))
        .ok_or_else(|| {
            OpError::Usage(format!(
                "snapshot {reference} is not in any location; list them with `adfdr snapshots`"
            ))
        })
}

/// Reads a manifest's public header from the first intact copy (no key needed).
pub async fn read_header(
    replicas: &Replicas,
    factory: &str,
    id: &str,
) -> Result<(Header, Read), OpError> {
    let key = layout::manifest(factory, id);
    let read = replicas
        .read(&key, None, |bytes| {
            object::parse(bytes)
                .and_then(|p| p.expect(ObjectType::Manifest))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|skipped| {
            OpError::Failed(format!("no intact copy of {key}: {}", describe(&skipped)))
        })?;
    let header = object::parse(&read.bytes).expect("checked").header;
    check_binding(&header, factory, id)?;
    Ok((header, read))
}

fn check_binding(header: &Header, factory: &str, id: &str) -> Result<(), OpError> {
    if header.factory != factory || header.snapshot != id {
        return Err(OpError::Failed(format!(
            "object for {factory}/{id} claims to be {}/{}: it was moved or swapped",
            header.factory, header.snapshot
        )));
    }
    Ok(())
}

pub fn describe(skipped: &[(String, String)]) -> String {
    skipped
        .iter()
        .map(|(l, why)| format!("{l}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An opened manifest: decrypted, with the data key to read the payload.
pub struct Opened {
    pub factory: String,
    pub id: String,
    pub header: Header,
    pub public: PublicManifest,
    pub manifest: Manifest,
    pub dek: DataKey,
    /// Where the manifest was read, and what was skipped before it.
    pub location: String,
    pub skipped: Vec<(String, String)>,
}

/// Resolves `reference` (an id, or `latest` with a factory) and opens it.
pub async fn open_reference(
    replicas: &Replicas,
    keys: &KeyRing,
    reference: &str,
    factory: Option<&str>,
) -> Result<Opened, OpError> {
    let (factory, id) = resolve(replicas, reference, factory).await?;
    open(replicas, keys, &factory, &id).await
}

pub async fn open(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    id: &str,
) -> Result<Opened, OpError> {
    let (header, read) = read_header(replicas, factory, id).await?;
    let public = header
        .manifest
        .clone()
        .ok_or_else(|| OpError::Failed(format!("manifest {factory}/{id} has no key list")))?;
    let dek = keys.unwrap_any(&public.keys, factory, id).await?;
    let parsed = object::parse(&read.bytes).expect("checked");
    let plain = parsed.open(&dek, DEFAULT_MAX_PLAIN).map_err(|e| {
        OpError::Failed(format!("manifest {factory}/{id} in {}: {e}", read.location))
    })?;
    let manifest: Manifest = serde_json::from_slice(&plain)
        .map_err(|e| OpError::Failed(format!("manifest {factory}/{id} does not parse: {e}")))?;
    Ok(Opened {
        factory: factory.to_string(),
        id: id.to_string(),
        header,
        public,
        manifest,
        dek,
        location: read.location,
        skipped: read.skipped,
    })
}

/// The payload of an opened snapshot, every resource hash-checked, read from
/// the first location whose copy matches the manifest's SHA-256.
pub async fn payload(
    replicas: &Replicas,
    opened: &Opened,
) -> Result<(Vec<Resource>, Read), OpError> {
    payload_timed(replicas, opened)
        .await
        .map(|(resources, read, _)| (resources, read))
}

/// `payload`, also returning how long decryption and decoding took (the rest
/// is fetching).
pub async fn payload_timed(
    replicas: &Replicas,
    opened: &Opened,
) -> Result<(Vec<Resource>, Read, std::time::Duration), OpError> {
    let key = layout::payload(&opened.factory, &opened.id);
    let want = opened.public.payload.sha256.clone();
    let read = replicas
        .read(&key, Some(&opened.location), |bytes| {
            if hex(&Sha256::digest(bytes)) == want {
                Ok(())
            } else {
                Err("SHA-256 differs from the manifest's".into())
            }
        })
        .await
        .map_err(|skipped| {
            OpError::Failed(format!("no intact copy of {key}: {}", describe(&skipped)))
        })?;
    let parsed = object::parse(&read.bytes)
        .and_then(|p| p.expect(ObjectType::Payload))
        .map_err(|e| OpError::Failed(format!("{key}: {e}")))?;
    check_binding(&parsed.header, &opened.factory, &opened.id)?;
    let decrypting = std::time::Instant::now();
    let plain = parsed
        .open(&opened.dek, DEFAULT_MAX_PLAIN)
        .map_err(|e| OpError::Failed(format!("{key} in {}: {e}", read.location)))?;
    let resources = decode_payload(&plain, &opened.manifest.resources).map_err(|errors| {
        OpError::Failed(format!(
            "{key}: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok((resources, read, decrypting.elapsed()))
}
