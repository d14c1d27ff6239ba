//! The object reader against hostile bytes (issue 12): random truncations,
//! byte flips, length-field edits and objects swapped between snapshots and
//! factories never panic, never allocate past the cap, never hang, and never
//! yield anything but what was sealed. One test binary of its own, so the
//! peak-heap measurement sees only this work.

use std::alloc::System;

use adfdr_core::ops::read::check_manifest;
use adfdr_core::snapshot::DataKey;
use adfdr_core::snapshot::object::{Header, ObjectType, parse, seal};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

const CAP: u64 = 1 << 20;

fn header(object: ObjectType, factory: &str, snapshot: &str) -> Header {
    Header::new(object, factory, snapshot, "2026-12-01T00:00:00Z")
}

/// Opens `bytes` as the reader does: parse (digest, header), expected type
/// and binding, then decrypt under `key` with the cap.
fn read(bytes: &[u8], key: &DataKey, factory: &str, snapshot: &str) -> Option<Vec<u8>> {
    let parsed = parse(bytes).ok()?.expect(ObjectType::Payload).ok()?;
    if parsed.header.factory != factory || parsed.header.snapshot != snapshot {
        return None;
    }
    parsed.open(key, CAP).ok()
}

fn redigest(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < 32 {
        return bytes;
    }
    bytes.truncate(bytes.len() - 32);
    let d = Sha256::digest(&bytes);
    bytes.extend_from_slice(&d);
    bytes
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    FlipAndRedigest(usize, u8),
    HeaderLength(u32),
    Extend(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Damage::Flip(i, b)),
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Damage::FlipAndRedigest(i, b)),
        any::<u32>().prop_map(Damage::HeaderLength),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Extend),
    ]
}

fn apply(bytes: &[u8], d: &Damage) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match d {
        Damage::Truncate(at) => out.truncate(at % bytes.len()),
        Damage::Flip(at, b) => out[at % bytes.len()] ^= b,
        Damage::FlipAndRedigest(at, b) => {
            let n = bytes.len() - 32;
            out[at % n] ^= b;
            out = redigest(out);
        }
        Damage::HeaderLength(len) => {
            out[8..12].copy_from_slice(&len.to_le_bytes());
            out = redigest(out);
        }
        Damage::Extend(tail) => {
            out.extend_from_slice(tail);
            out = redigest(out);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Damage of any kind: an error, or (for a no-op damage) the very bytes
    /// that were sealed. Never a panic, never a different plaintext.
    #[test]
    fn damaged_objects_fail_or_yield_exactly_what_was_sealed(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        d in damage(),
    ) {
        let key = DataKey::generate();
        let sealed = seal(header(ObjectType::Payload, "sales", "S1"), &body, &key);
        let bad = apply(&sealed, &d);
        match read(&bad, &key, "sales", "S1") {
            None => {}
            Some(plain) => {
                prop_assert_eq!(&bad, &sealed, "a changed object opened");
                prop_assert_eq!(plain, body);
            }
        }
        // The keyless manifest check never panics on any of it either.
        let _ = check_manifest(&bad, "sales", "S1", None);
    }

    /// An object sealed for another snapshot or factory never reads as this
    /// one, even under the same key.
    #[test]
    fn objects_swapped_between_snapshots_and_factories_never_read(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        other_factory in prop_oneof![Just("sales"), Just("hr")],
        other_snapshot in prop_oneof![Just("S1"), Just("S2")],
    ) {
        prop_assume!(!(other_factory == "sales" && other_snapshot == "S1"));
        let key = DataKey::generate();
        let theirs = seal(header(ObjectType::Payload, other_factory, other_snapshot), &body, &key);
        prop_assert!(read(&theirs, &key, "sales", "S1").is_none());
        // Renamed in the header (digest fixed): the AEAD binds the header.
        let hlen = u32::from_le_bytes(theirs[8..12].try_into().unwrap()) as usize;
        let text = String::from_utf8(theirs[12..12 + hlen].to_vec()).unwrap();
        let renamed = text
            .replace(&format!("\"factory\":\"{other_factory}\""), "\"factory\":\"sales\"")
            .replace(&format!("\"snapshot\":\"{other_snapshot}\""), "\"snapshot\":\"S1\"");
        let mut forged = theirs[..12].to_vec();
        forged[8..12].copy_from_slice(&(renamed.len() as u32).to_le_bytes());
        forged.extend_from_slice(renamed.as_bytes());
        forged.extend_from_slice(&theirs[12 + hlen..]);
        prop_assert!(read(&redigest(forged), &key, "sales", "S1").is_none());
    }
}

/// A header that claims a huge plaintext, and a body that decompresses to
/// far more than it claims: refused without allocating past the cap.
#[test]
fn a_hostile_size_never_allocates_past_the_cap() {
    let key = DataKey::generate();
    // 64 MiB of zeros compresses to a few KiB: a decompression bomb.
    let bomb = vec![0u8; 64 << 20];
    let sealed = seal(header(ObjectType::Payload, "sales", "S1"), &bomb, &key);
    drop(bomb);
    GLOBAL.reset_peak_memory();
    let before = GLOBAL.get_peak_memory();
    assert!(read(&sealed, &key, "sales", "S1").is_none(), "over the cap");
    let peak = GLOBAL.get_peak_memory().saturating_sub(before);
    assert!(
        (peak as u64) < CAP + sealed.len() as u64 * 2 + (1 << 20),
        "opening a 64 MiB bomb under a {CAP}-byte cap peaked at {peak} bytes"
    );
    // The header lies about its size (claims 10 bytes): decompression
    // stops at the claim and the object is refused.
    let hlen = u32::from_le_bytes(sealed[8..12].try_into().unwrap()) as usize;
    let text = String::from_utf8(sealed[12..12 + hlen].to_vec()).unwrap();
    let plain_size = format!("\"plain_size\":{}", 64u64 << 20);
    assert!(text.contains(&plain_size));
    let lying = text.replace(&plain_size, "\"plain_size\":10");
    let mut forged = sealed[..12].to_vec();
    forged[8..12].copy_from_slice(&(lying.len() as u32).to_le_bytes());
    forged.extend_from_slice(lying.as_bytes());
    forged.extend_from_slice(&sealed[12 + hlen..]);
    let forged = redigest(forged);
    GLOBAL.reset_peak_memory();
    let before = GLOBAL.get_peak_memory();
    assert!(read(&forged, &key, "sales", "S1").is_none());
    let peak = GLOBAL.get_peak_memory().saturating_sub(before);
    assert!(
        (peak as u64) < sealed.len() as u64 * 3 + (1 << 20),
        "a lying header peaked at {peak} bytes"
    );
}

/// The filesystem store reads a 3 GB file as an error, from its size.
#[tokio::test]
async fn a_huge_stored_file_is_refused_without_reading_it() {
    use adfdr_core::store::BlobStore;
    let dir = std::env::temp_dir().join(format!("adfdr-huge-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("v1/f/snapshots")).unwrap();
    std::fs::File::create(dir.join("v1/f/snapshots/s.payload"))
        .and_then(|f| f.set_len(3 << 30))
        .unwrap();
    let store = adfdr_core::store::fs::FsStore::new(&dir);
    GLOBAL.reset_peak_memory();
    let before = GLOBAL.get_peak_memory();
    assert!(store.get("v1/f/snapshots/s.payload", CAP).await.is_err());
    let peak = GLOBAL.get_peak_memory().saturating_sub(before);
    assert!(peak < (1 << 20), "peaked at {peak} bytes");
    std::fs::remove_dir_all(&dir).ok();
}
