//! Finding and opening snapshots in the store. Works from the store alone
//! (replicas + a key ring), so incident mode needs no catalog and no config.
//!
//! Trust no location: a name in a listing is only a claim. A copy counts
//! when its bytes bear it out: digest, object type, the factory and id its
//! header binds (docs/FORMAT.md), an id time not in the future; and, where a
//! key is at hand, a manifest that decrypts. Reads try every location in
//! turn and fall through on any failure, naming each copy they passed over.

use std::collections::BTreeMap;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::OpError;
use crate::keys::KeyRing;
use crate::snapshot::manifest::{Manifest, PublicManifest, decode_payload, hex, root};
use crate::snapshot::object::{self, DEFAULT_MAX_PLAIN, Header, ObjectType};
use crate::snapshot::{DataKey, Resource, snapshot_time};
use crate::store::layout::{self, Parsed};
use crate::store::{Location, MAX_OBJECT, Replicas, replicated::Read};

/// How far in the future a snapshot id may lie (writers' clocks differ).
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// A manifest lists one wrapped data key per configured key; more than this
/// is not one of ours (and each could cost a Key Vault call).
const MAX_WRAPPED: usize = 32;
/// Manifest copies read at once when taking an inventory.
const PARALLEL_READS: usize = 16;

/// A snapshot name as the locations list it: nothing is checked yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub factory: String,
    pub id: String,
    /// Locations listing its manifest (or, in an inventory, holding a copy
    /// that checks out).
    pub locations: Vec<String>,
    pub manifest_size: u64,
    pub payload_size: u64,
    /// What its opened manifest says of it (an inventory with keys only).
    pub meta: Option<Meta>,
}

/// What an opened manifest says about whose a snapshot is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub source: crate::snapshot::manifest::SourceId,
    /// The policy it was taken under, when recorded.
    pub policy: Option<String>,
}

impl Meta {
    fn of(m: &Manifest) -> Meta {
        Meta {
            source: m.source_id(),
            policy: m.policy.as_ref().map(|p| p.name.clone()),
        }
    }
}

/// Every snapshot name (a manifest is listed somewhere), oldest first, and
/// the locations that could not be listed. Names only: see `inventory`.
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
            if factory.is_some_and(|want| !want.eq_ignore_ascii_case(&f)) {
                continue;
            }
            let entry = found
                .entry((f.clone(), id.clone()))
                .or_insert_with(|| Listed {
                    factory: f,
                    id,
                    locations: Vec::new(),
                    manifest_size: 0,
                    payload_size: 0,
                    meta: None,
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

/// Did `known`, the newest snapshot of a factory that a catalog saw
/// committed, vanish? It did when no location lists it and it is newer than
/// all they list: retention never deletes the newest intact snapshot, so
/// that is a deletion behind adfdr's back (a rollback). Only meaningful when
/// every location was listed.
pub fn vanished_newest(known: &str, listed: &[Listed]) -> bool {
    !listed.iter().any(|l| l.id == known) && listed.iter().all(|l| l.id.as_str() < known)
}

/// Checks one copy of a manifest against the name it was found under,
/// without a key: digest, type, the factory and id its header binds, and
/// (with `now`) an id time no later than `now` plus the clock skew.
pub fn check_manifest(
    bytes: &[u8],
    factory: &str,
    id: &str,
    now: Option<time::OffsetDateTime>,
) -> Result<Header, String> {
    let parsed = object::parse(bytes)
        .and_then(|p| p.expect(ObjectType::Manifest))
        .map_err(|e| e.to_string())?;
    let header = parsed.header;
    check_binding(&header, factory, id).map_err(|e| e.to_string())?;
    let Some(public) = &header.manifest else {
        return Err("a manifest without its public part (key list, payload digest)".into());
    };
    if public.keys.len() > MAX_WRAPPED {
        return Err(format!(
            "lists {} wrapped keys; adfdr writes one per configured key",
            public.keys.len()
        ));
    }
    let Some(at) = snapshot_time(id) else {
        return Err(format!("{id} is not a snapshot id adfdr writes"));
    };
    if let Some(now) = now
        && at > now + CLOCK_SKEW
    {
        return Err(format!(
            "its id claims {} , in the future: not a snapshot adfdr wrote",
            crate::snapshot::rfc3339(at)
        ));
    }
    Ok(header)
}

/// An id adfdr writes, whose time is no later than `now` plus the skew.
pub fn plausible_id(id: &str, now: time::OffsetDateTime) -> bool {
    snapshot_time(id).is_some_and(|t| t <= now + CLOCK_SKEW)
}

fn check_binding(header: &Header, factory: &str, id: &str) -> Result<(), OpError> {
    if header.factory != factory || header.snapshot != id {
        return Err(OpError::damaged(format!(
            "object for {factory}/{id} claims to be {}/{}: it was moved, swapped or planted",
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

/// Reads a manifest's public header from the first copy that checks out
/// without a key (listing, sizes, key ids).
pub async fn read_header(
    replicas: &Replicas,
    factory: &str,
    id: &str,
) -> Result<(Header, Read), OpError> {
    let key = layout::manifest(factory, id);
    let read = replicas
        .read(&key, MAX_OBJECT, None, |bytes| {
            check_manifest(bytes, factory, id, None).map(|_| ())
        })
        .await
        .map_err(|skipped| {
            OpError::damaged(format!("no intact copy of {key}: {}", describe(&skipped)))
        })?;
    let header = object::parse(&read.bytes)
        .map_err(|e| OpError::failed(e.to_string()))?
        .header;
    Ok((header, read))
}

/// An opened manifest: decrypted, with the data key to read the payload.
pub struct Opened {
    pub factory: String,
    pub id: String,
    pub header: Header,
    pub public: PublicManifest,
    pub manifest: Manifest,
    pub dek: DataKey,
    /// Where the manifest was read, and the copies passed over before it.
    pub location: String,
    pub skipped: Vec<(String, String)>,
    /// Newer snapshots `latest` passed over (id, why): none of their copies
    /// opened.
    pub passed_over: Vec<(String, String)>,
}

/// One manifest copy, authenticated: it decrypts under a data key one of
/// `keys` unwraps (or `known`, the key a copy elsewhere already gave), and
/// its body parses and matches its root hash.
pub async fn authenticate(
    bytes: &[u8],
    keys: &KeyRing,
    factory: &str,
    id: &str,
    known: Option<&DataKey>,
) -> Result<(Header, Manifest, DataKey), AuthFailure> {
    let header = check_manifest(bytes, factory, id, None).map_err(AuthFailure::Damaged)?;
    let parsed = object::parse(bytes).map_err(|e| AuthFailure::Damaged(e.to_string()))?;
    let public = header.manifest.as_ref().expect("checked");
    let plain = match known.and_then(|k| parsed.open(k, DEFAULT_MAX_PLAIN).ok().map(|p| (p, k))) {
        Some((plain, k)) => (plain, DataKey::from_slice(k.bytes()).expect("32 bytes")),
        None => {
            let dek = keys
                .unwrap_any(&public.keys, factory, id)
                .await
                .map_err(AuthFailure::NoKey)?;
            let plain = parsed
                .open(&dek, DEFAULT_MAX_PLAIN)
                .map_err(|e| AuthFailure::Damaged(format!("does not decrypt: {e}")))?;
            (plain, dek)
        }
    };
    let (plain, dek) = plain;
    let manifest: Manifest = serde_json::from_slice(&plain)
        .map_err(|e| AuthFailure::Damaged(format!("its body does not parse: {e}")))?;
    if root(
        &manifest.resources,
        &manifest.trigger_states,
        &manifest.runtimes,
    ) != manifest.root
    {
        return Err(AuthFailure::Damaged(
            "its root hash does not match its entries".into(),
        ));
    }
    Ok((header, manifest, dek))
}

/// Why a manifest copy did not authenticate.
#[derive(Debug)]
pub enum AuthFailure {
    /// Broken, forged or not ours.
    Damaged(String),
    /// None of the configured keys is among those it was sealed for.
    NoKey(crate::keys::KeyError),
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::Damaged(why) => f.write_str(why),
            AuthFailure::NoKey(e) => write!(f, "{e}"),
        }
    }
}

/// Opens snapshot `factory`/`id`: each location in turn, falling through on
/// any failure of its copy (digest, binding, unwrap, decryption, body).
pub async fn open(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    id: &str,
) -> Result<Opened, OpError> {
    let key = layout::manifest(factory, id);
    let mut skipped = Vec::new();
    let mut no_key = None;
    for l in replicas.order(None) {
        let bytes = match replicas.fetch(l, &key, MAX_OBJECT).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                skipped.push((l.name.clone(), "no copy".to_string()));
                continue;
            }
            Err(e) => {
                skipped.push((l.name.clone(), e));
                continue;
            }
        };
        match authenticate(&bytes, keys, factory, id, None).await {
            Ok((header, manifest, dek)) => {
                let public = header.manifest.clone().expect("checked");
                return Ok(Opened {
                    factory: factory.to_string(),
                    id: id.to_string(),
                    header,
                    public,
                    manifest,
                    dek,
                    location: l.name.clone(),
                    skipped,
                    passed_over: Vec::new(),
                });
            }
            Err(AuthFailure::NoKey(e)) => {
                skipped.push((l.name.clone(), "no configured key opens this copy".into()));
                no_key.get_or_insert(e);
            }
            Err(AuthFailure::Damaged(why)) => {
                skipped.push((l.name.clone(), format!("damaged copy: {why}")))
            }
        }
    }
    // Only "no key" everywhere is a key problem; anything else is damage.
    if let Some(e) = no_key
        && skipped
            .iter()
            .all(|(_, why)| why.starts_with("no configured key") || why == "no copy")
    {
        return Err(e.into());
    }
    Err(OpError::damaged(format!(
        "no copy of snapshot {factory}/{id} opens: {}",
        describe(&skipped)
    )))
}

/// The newest snapshot of `factory` that opens, passing over newer names
/// whose copies are all damaged, forged or from the future.
pub async fn open_latest(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    now: time::OffsetDateTime,
) -> Result<Opened, OpError> {
    let (listed, failed) = list(replicas, Some(factory)).await;
    if listed.is_empty() && !failed.is_empty() && failed.len() == replicas.locations.len() {
        return Err(OpError::new(
            super::Kind::Unreachable,
            format!("no location could be listed: {}", describe(&failed)),
        ));
    }
    open_newest(replicas, keys, factory, &listed, now).await
}

/// `open_latest` over names already listed (oldest first).
pub async fn open_newest(
    replicas: &Replicas,
    keys: &KeyRing,
    factory: &str,
    listed: &[Listed],
    now: time::OffsetDateTime,
) -> Result<Opened, OpError> {
    let mut passed_over = Vec::new();
    for l in listed.iter().rev() {
        match snapshot_time(&l.id) {
            Some(t) if t <= now + CLOCK_SKEW => {}
            _ => {
                passed_over.push((
                    l.id.clone(),
                    "not a snapshot id adfdr writes, or one in the future".into(),
                ));
                continue;
            }
        }
        match open(replicas, keys, &l.factory, &l.id).await {
            Ok(mut opened) => {
                for (id, why) in &passed_over {
                    tracing::warn!(%factory, snapshot = %id, why = %why, "`latest` passed over a newer snapshot name that does not open");
                }
                opened.passed_over = passed_over;
                return Ok(opened);
            }
            Err(OpError::Key(e)) if passed_over.is_empty() => return Err(OpError::Key(e)),
            Err(e) => passed_over.push((l.id.clone(), e.to_string())),
        }
    }
    if passed_over.is_empty() {
        return Err(OpError::not_found(format!(
            "factory {factory} has no snapshots in the store"
        )));
    }
    Err(OpError::damaged(format!(
        "factory {factory} has no snapshot that opens: {}",
        describe(&passed_over)
    )))
}

/// When `opened`'s state was last confirmed: the newest of `checkpoints`
/// (ids, any order) that opens under its data key and names it, else the
/// snapshot's own time. A checkpoint name alone proves nothing: anyone who
/// can write to a location can plant one.
pub async fn confirmed_at(
    replicas: &Replicas,
    opened: &Opened,
    checkpoints: &[String],
    now: time::OffsetDateTime,
) -> Option<time::OffsetDateTime> {
    let own = snapshot_time(&opened.id);
    let mut ids: Vec<&String> = checkpoints
        .iter()
        .filter(|c| plausible_id(c, now) && snapshot_time(c) > own)
        .collect();
    ids.sort();
    // A few tries: planted names are passed over, not read without end.
    for id in ids.into_iter().rev().take(8) {
        let key = layout::checkpoint(&opened.factory, id);
        let opens = replicas
            .read(&key, MAX_OBJECT, None, |bytes| {
                let parsed = object::parse(bytes)
                    .and_then(|p| p.expect(ObjectType::Checkpoint))
                    .map_err(|e| e.to_string())?;
                let h = &parsed.header;
                if h.factory != opened.factory
                    || h.snapshot != opened.id
                    || h.id.as_deref() != Some(id.as_str())
                {
                    return Err("names another snapshot".into());
                }
                parsed
                    .open(&opened.dek, DEFAULT_MAX_PLAIN)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        if opens.is_ok() {
            return snapshot_time(id);
        }
    }
    own
}

/// Resolves `reference` (an id, or `latest` with a factory) and opens it.
pub async fn open_reference(
    replicas: &Replicas,
    keys: &KeyRing,
    reference: &str,
    factory: Option<&str>,
) -> Result<Opened, OpError> {
    if reference == "latest" {
        let f = match factory {
            Some(f) => find_factory(replicas, f).await,
            None => only_factory(replicas).await?,
        };
        return open_latest(replicas, keys, &f, super::system_clock()).await;
    }
    let (factory, id) = resolve_id(replicas, reference, factory).await?;
    open(replicas, keys, &factory, &id).await
}

/// The snapshot of `factory` in force at `at`: the newest committed one
/// taken at or before it (a checkpoint only confirms its snapshot).
pub async fn in_force_at(
    replicas: &Replicas,
    factory: &str,
    at: time::OffsetDateTime,
) -> Result<String, OpError> {
    let f = find_factory(replicas, factory).await;
    let (listed, _) = list(replicas, Some(&f)).await;
    let mut ids: Vec<(time::OffsetDateTime, String)> = listed
        .iter()
        .filter_map(|l| Some((crate::snapshot::snapshot_time(&l.id)?, l.id.clone())))
        .collect();
    ids.sort();
    match ids.iter().rev().find(|(t, _)| *t <= at) {
        Some((_, id)) => Ok(id.clone()),
        None => Err(OpError::usage(match ids.first() {
            Some((_, oldest)) => format!(
                "no snapshot of {f} was taken at or before {}: the oldest is {oldest}",
                crate::snapshot::rfc3339(at)
            ),
            None => {
                format!("the store holds no snapshot of {f}: `adfdr snapshots` lists what it holds")
            }
        })),
    }
}

/// Resolves `reference` (an id, or `latest` with a factory) to the
/// (factory, id) it names; `latest` is the newest snapshot that opens.
pub async fn resolve(
    replicas: &Replicas,
    keys: &KeyRing,
    reference: &str,
    factory: Option<&str>,
) -> Result<(String, String), OpError> {
    if reference == "latest" {
        return open_reference(replicas, keys, reference, factory)
            .await
            .map(|o| (o.factory, o.id));
    }
    resolve_id(replicas, reference, factory).await
}

/// The one factory the store holds snapshots of, for `latest` (or `adfdr
/// log`) without `--factory`; with several, a usage error naming them.
pub async fn only_factory(replicas: &Replicas) -> Result<String, OpError> {
    let (listed, _) = list(replicas, None).await;
    let mut names: Vec<String> = listed.into_iter().map(|l| l.factory).collect();
    names.sort();
    names.dedup();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(OpError::not_found("the store holds no snapshots")),
        many => Err(OpError::usage(format!(
            "which factory? the store holds snapshots of {}: name one with --factory NAME",
            many.join(", ")
        ))),
    }
}

/// The store's spelling of a configured factory name (names compare
/// case-insensitively; the store keeps the configured spelling).
async fn find_factory(replicas: &Replicas, factory: &str) -> String {
    let (listed, _) = list(replicas, Some(factory)).await;
    listed
        .last()
        .map(|l| l.factory.clone())
        .unwrap_or_else(|| factory.to_string())
}

/// Finds which factory an id belongs to (names only; opening checks it).
pub async fn resolve_id(
    replicas: &Replicas,
    id: &str,
    factory: Option<&str>,
) -> Result<(String, String), OpError> {
    let (all, failed) = list(replicas, factory).await;
    if all.is_empty() && !failed.is_empty() && failed.len() == replicas.locations.len() {
        return Err(OpError::new(
            super::Kind::Unreachable,
            format!("no location could be listed: {}", describe(&failed)),
        ));
    }
    if let Some(l) = all.iter().find(|l| l.id == id) {
        return Ok((l.factory.clone(), l.id.clone()));
    }
    // As restic takes a unique prefix: of the id, or of the part after its
    // time (the eight hex digits people copy).
    let matches: Vec<&Listed> = if id.len() >= 4 {
        all.iter()
            .filter(|l| {
                l.id.starts_with(id)
                    || l.id
                        .split_once('-')
                        .is_some_and(|(_, tail)| tail.starts_with(id))
            })
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok((one.factory.clone(), one.id.clone())),
        [] => Err(OpError::not_found(format!(
            "snapshot {id} is not in any location; list them with `adfdr snapshots`"
        ))),
        many => {
            let shown: Vec<String> = many
                .iter()
                .take(10)
                .map(|l| format!("{} ({})", l.id, l.factory))
                .collect();
            Err(OpError::usage(format!(
                "{id} names {} snapshots: {}{}; give more of the id",
                many.len(),
                shown.join(", "),
                if many.len() > 10 { ", …" } else { "" }
            )))
        }
    }
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
/// is fetching). Each copy is read up to the size the manifest records and
/// falls through to the next on any failure.
pub async fn payload_timed(
    replicas: &Replicas,
    opened: &Opened,
) -> Result<(Vec<Resource>, Read, std::time::Duration), OpError> {
    let key = layout::payload(&opened.factory, &opened.id);
    let want = &opened.public.payload;
    let ((resources, decrypting), read) = replicas
        .read_map(&key, want.size, Some(&opened.location), |bytes| {
            if bytes.len() as u64 != want.size || hex(&Sha256::digest(bytes)) != want.sha256 {
                return Err("SHA-256 differs from the manifest's".to_string());
            }
            let started = std::time::Instant::now();
            let resources = open_payload(bytes, opened)?;
            Ok((resources, started.elapsed()))
        })
        .await
        .map_err(|skipped| {
            OpError::damaged(format!("no intact copy of {key}: {}", describe(&skipped)))
        })?;
    Ok((resources, read, decrypting))
}

fn open_payload(bytes: &[u8], opened: &Opened) -> Result<Vec<Resource>, String> {
    let parsed = object::parse(bytes)
        .and_then(|p| p.expect(ObjectType::Payload))
        .map_err(|e| e.to_string())?;
    check_binding(&parsed.header, &opened.factory, &opened.id).map_err(|e| e.to_string())?;
    let plain = parsed
        .open(&opened.dek, DEFAULT_MAX_PLAIN)
        .map_err(|e| e.to_string())?;
    decode_payload(&plain, &opened.manifest.resources).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// One copy of a manifest that does not check out.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Rejected {
    pub location: String,
    pub key: String,
    pub why: String,
}

/// A snapshot no key at hand opens, and the keys it was sealed for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Locked {
    pub factory: String,
    pub id: String,
    /// The keys that open it (`kv (Key Vault key …)`, `breakglass (key file 9c1f…)`).
    pub opens_with: Vec<String>,
}

/// Why a copy did not count: damage, or only that no key at hand opens it.
enum Fault {
    Damaged(String),
    NoKey {
        why: String,
        opens_with: Vec<String>,
    },
}

/// What the store holds for a factory (or all), every manifest copy checked.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Snapshots with at least one copy that checks out, oldest first;
    /// `locations` are those holding such a copy.
    pub snapshots: Vec<Listed>,
    /// Copies of real snapshots that do not check out (repairable).
    pub damaged: Vec<Rejected>,
    /// Names no copy of which checks out: not snapshots at all.
    pub foreign: Vec<Rejected>,
    /// Snapshots whose copies are intact but sealed for none of the keys
    /// at hand (a wrong key, a retired one): not gone, closed to these keys.
    pub locked: Vec<Locked>,
    /// Locations that could not be listed.
    pub failed: Vec<(String, String)>,
}

/// Checks every listed manifest copy. Without `keys` a copy counts when its
/// header bears out its name and its id is not in the future; with `keys`
/// it must also decrypt. What a location lists under a snapshot's name but
/// does not bear it out never counts.
pub async fn inventory(
    replicas: &Replicas,
    factory: Option<&str>,
    keys: Option<&KeyRing>,
    now: time::OffsetDateTime,
) -> Inventory {
    let (listed, failed) = list(replicas, factory).await;
    // Owned work items: borrowed iterators inside the stream trip up the
    // compiler's Send proof in spawned tasks.
    let checks: Vec<(Listed, String)> = listed
        .iter()
        .flat_map(|l| l.locations.iter().map(move |loc| (l.clone(), loc.clone())))
        .collect();
    let results: Vec<(Listed, String, Result<Option<Meta>, Fault>)> = futures::stream::iter(checks)
        .map(|(l, loc)| async move {
            let result = match replicas.get(&loc) {
                Some(location) => check_copy(replicas, location, keys, &l, now).await,
                None => Err(Fault::Damaged("unknown location".into())),
            };
            (l, loc, result)
        })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    let mut inv = Inventory {
        failed,
        ..Default::default()
    };
    // Per name: what checked out, and each copy that did not (with the keys
    // it opens with, when only the key was missing).
    type Copies = (Listed, Vec<(Rejected, Option<Vec<String>>)>);
    let mut by_name: BTreeMap<(String, String), Copies> = BTreeMap::new();
    for (l, location, result) in results {
        let entry = by_name
            .entry((l.factory.clone(), l.id.clone()))
            .or_insert_with(|| {
                (
                    Listed {
                        locations: Vec::new(),
                        ..l.clone()
                    },
                    Vec::new(),
                )
            });
        let key = layout::manifest(&l.factory, &l.id);
        match result {
            Ok(meta) => {
                entry.0.locations.push(location);
                if entry.0.meta.is_none() {
                    entry.0.meta = meta;
                }
            }
            Err(Fault::Damaged(why)) => entry.1.push((Rejected { location, key, why }, None)),
            Err(Fault::NoKey { why, opens_with }) => entry
                .1
                .push((Rejected { location, key, why }, Some(opens_with))),
        }
    }
    for (_, (listed, rejected)) in by_name {
        if !listed.locations.is_empty() {
            inv.damaged.extend(rejected.into_iter().map(|(r, _)| r));
            inv.snapshots.push(listed);
        } else if !rejected.is_empty() && rejected.iter().all(|(_, k)| k.is_some()) {
            let opens_with = rejected
                .into_iter()
                .find_map(|(_, k)| k)
                .unwrap_or_default();
            inv.locked.push(Locked {
                factory: listed.factory,
                id: listed.id,
                opens_with,
            });
        } else {
            inv.foreign.extend(rejected.into_iter().map(|(r, _)| r));
        }
    }
    inv.snapshots
        .sort_by(|a, b| a.id.cmp(&b.id).then(a.factory.cmp(&b.factory)));
    inv
}

async fn check_copy(
    replicas: &Replicas,
    location: &Location,
    keys: Option<&KeyRing>,
    l: &Listed,
    now: time::OffsetDateTime,
) -> Result<Option<Meta>, Fault> {
    let key = layout::manifest(&l.factory, &l.id);
    let bytes = replicas
        .fetch(location, &key, MAX_OBJECT)
        .await
        .map_err(Fault::Damaged)?
        .ok_or(Fault::Damaged("listed but gone".into()))?;
    let header = check_manifest(&bytes, &l.factory, &l.id, Some(now)).map_err(Fault::Damaged)?;
    if let Some(keys) = keys {
        return match authenticate(&bytes, keys, &l.factory, &l.id, None).await {
            Ok((_, manifest, _)) => Ok(Some(Meta::of(&manifest))),
            Err(AuthFailure::Damaged(why)) => Err(Fault::Damaged(why)),
            Err(AuthFailure::NoKey(e)) => Err(Fault::NoKey {
                why: format!("sealed for other keys: {e}"),
                opens_with: header
                    .manifest
                    .map(|m| m.keys.iter().map(|k| k.describe()).collect())
                    .unwrap_or_default(),
            }),
        };
    }
    Ok(None)
}
