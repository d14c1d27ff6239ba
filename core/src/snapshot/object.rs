//! Sealed objects: the one byte layout every stored object uses (docs/FORMAT.md).
//!
//! ```text
//! magic     8 bytes   "ADFDR\0" + type byte ('M','P','C','R') + format version (1)
//! hlen      4 bytes   u32 little endian, length of the header (at most 1 MiB)
//! header    hlen      JSON (UTF-8): public metadata, readable without a key
//! body      n + 16    AES-256-GCM(data key, header.nonce, zstd(plaintext)), tag last
//! digest    32 bytes  SHA-256 of everything before it
//! ```
//!
//! The associated data of the AEAD is `magic || hlen || header`: the format
//! version, the object type, the factory, the snapshot id and every public
//! field are bound to the ciphertext, so objects cannot be swapped between
//! snapshots or factories and no public field can be edited unnoticed.
//! The trailing digest lets anyone check an object's integrity without a key.

use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::DataKey;

pub const FORMAT_VERSION: u8 = 1;
pub const MAGIC_PREFIX: &[u8; 6] = b"ADFDR\0";
const MAX_HEADER: usize = 1 << 20;
const TAG: usize = 16;
const DIGEST: usize = 32;
/// Default cap on a decompressed body: a hostile object cannot exhaust memory.
pub const DEFAULT_MAX_PLAIN: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Manifest,
    Payload,
    Checkpoint,
    Report,
}

impl ObjectType {
    pub fn byte(self) -> u8 {
        match self {
            ObjectType::Manifest => b'M',
            ObjectType::Payload => b'P',
            ObjectType::Checkpoint => b'C',
            ObjectType::Report => b'R',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'M' => ObjectType::Manifest,
            b'P' => ObjectType::Payload,
            b'C' => ObjectType::Checkpoint,
            b'R' => ObjectType::Report,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("not an adfdr object (bad magic)")]
    BadMagic,
    #[error(
        "written by a newer adfdr (format version {0}, this build reads {FORMAT_VERSION}); upgrade adfdr"
    )]
    NewerFormat(u8),
    #[error("object is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("object digest mismatch: the stored bytes were changed or damaged")]
    Digest,
    #[error("object header is invalid: {0}")]
    Header(String),
    #[error("object type is {found:?}, expected {expected:?}")]
    WrongType {
        found: ObjectType,
        expected: ObjectType,
    },
    #[error("decryption failed: wrong data key, or the object was tampered with")]
    Decrypt,
    #[error("body is larger than the {0}-byte cap")]
    TooLarge(u64),
    #[error("body does not decompress: {0}")]
    Decompress(String),
}

/// The public part of an object, readable without a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Header {
    pub format: u8,
    pub object: ObjectType,
    /// The configured factory name (the store's namespace, not an ARM name).
    pub factory: String,
    /// The snapshot this object belongs to (for a checkpoint: the one it confirms).
    pub snapshot: String,
    /// Checkpoint or report id; absent for manifests and payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// RFC 3339 UTC.
    pub created: String,
    pub cipher: String,
    pub compression: String,
    /// Base64 of the 12-byte AES-GCM nonce.
    pub nonce: String,
    /// Size of the plaintext before compression.
    pub plain_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<super::manifest::PublicManifest>,
    /// A report's own data key, wrapped under every configured key (a report
    /// outlives the snapshot it drilled, so it cannot borrow its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<super::keys::WrappedKey>>,
    /// A report's verdict and measurements, readable without a key (no
    /// resource names): what `adfdr drills` and a catalog rebuild list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
}

impl Header {
    pub fn new(object: ObjectType, factory: &str, snapshot: &str, created: &str) -> Self {
        Header {
            format: FORMAT_VERSION,
            object,
            factory: factory.to_string(),
            snapshot: snapshot.to_string(),
            id: None,
            created: created.to_string(),
            cipher: "AES-256-GCM".into(),
            compression: "zstd".into(),
            nonce: String::new(),
            plain_size: 0,
            manifest: None,
            keys: None,
            summary: None,
        }
    }
}

/// Compresses, encrypts and frames `plaintext`; fills the header's nonce and size.
pub fn seal(mut header: Header, plaintext: &[u8], key: &DataKey) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    header.nonce = B64.encode(nonce);
    header.plain_size = plaintext.len() as u64;
    header.format = FORMAT_VERSION;
    let header_bytes = serde_json::to_vec(&header).expect("headers serialize");
    assert!(header_bytes.len() <= MAX_HEADER, "header over 1 MiB");

    let mut out = Vec::with_capacity(12 + header_bytes.len() + plaintext.len() / 4 + 64);
    out.extend_from_slice(MAGIC_PREFIX);
    out.push(header.object.byte());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    let aad_len = out.len();

    // zstd level 1: on the corpus 2-6% larger than level 3 (the library
    // default) and ~20% faster; snapshots are small, the seal pipeline is
    // CPU-bound (docs/PERFORMANCE.md). The level is not part of the format.
    let mut body = zstd::bulk::compress(plaintext, 1).expect("in-memory zstd cannot fail");
    let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &out[..aad_len], &mut body)
        .expect("AES-GCM encrypts any size we produce");
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Room kept before the compressed body for the header, so that sealing
/// never copies the body (a payload of a big factory is tens of MB).
const RESERVED: usize = 16 * 1024;

/// A payload sealed as its plaintext is written: each part is compressed as
/// it comes (the plaintext is never held whole), then encrypted in place and
/// framed as `seal` frames it. The same bytes `seal` would write for the
/// same plaintext, nonce aside.
pub struct SealWriter {
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
    plain: u64,
}

impl SealWriter {
    /// `size` is the plaintext's length (recorded in the zstd frame, as
    /// `seal`'s one-shot compression records it).
    pub fn new(size: u64) -> SealWriter {
        let mut room = Vec::with_capacity(RESERVED + (size as usize / 4).min(1 << 26));
        room.resize(RESERVED, 0);
        let mut encoder =
            zstd::stream::write::Encoder::new(room, 1).expect("in-memory zstd cannot fail");
        encoder
            .set_pledged_src_size(Some(size))
            .expect("a fresh encoder takes a size");
        encoder
            .include_contentsize(true)
            .expect("in-memory zstd cannot fail");
        SealWriter { encoder, plain: 0 }
    }

    pub fn write(&mut self, part: &[u8]) {
        use std::io::Write;
        self.encoder
            .write_all(part)
            .expect("in-memory zstd cannot fail");
        self.plain += part.len() as u64;
    }

    /// The sealed object. Panics when fewer or more bytes were written than
    /// the size given to `new` (a caller's bug, not input).
    pub fn seal(self, mut header: Header, key: &DataKey) -> Vec<u8> {
        let mut buf = self.encoder.finish().expect("the pledged size was written");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        header.nonce = B64.encode(nonce);
        header.plain_size = self.plain;
        header.format = FORMAT_VERSION;
        let header_bytes = serde_json::to_vec(&header).expect("headers serialize");
        let prefix = 12 + header_bytes.len();
        let start = match RESERVED.checked_sub(prefix) {
            Some(start) => start,
            None => {
                // A header larger than the room (never for a payload): room made.
                buf.splice(0..0, std::iter::repeat_n(0, prefix - RESERVED));
                0
            }
        };
        let frame = &mut buf[start..start + prefix];
        frame[..6].copy_from_slice(MAGIC_PREFIX);
        frame[6] = header.object.byte();
        frame[7] = FORMAT_VERSION;
        frame[8..12].copy_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        frame[12..].copy_from_slice(&header_bytes);
        let (aad, body) = buf[start..].split_at_mut(prefix);
        let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
        let tag = cipher
            .encrypt_in_place_detached(&nonce, aad, body)
            .expect("AES-GCM encrypts any size we produce");
        buf.drain(..start);
        buf.extend_from_slice(&tag);
        let digest = Sha256::digest(&buf);
        buf.extend_from_slice(&digest);
        buf
    }
}

/// An object split into its parts after the digest and header were checked.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Header,
    aad: &'a [u8],
    body: &'a [u8],
}

/// Checks the magic, version and digest and parses the header. Needs no key.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, ObjectError> {
    if bytes.len() < 12 + TAG + DIGEST {
        return Err(if bytes.starts_with(MAGIC_PREFIX) || bytes.len() < 6 {
            ObjectError::Truncated(bytes.len())
        } else {
            ObjectError::BadMagic
        });
    }
    if &bytes[..6] != MAGIC_PREFIX {
        return Err(ObjectError::BadMagic);
    }
    let object = ObjectType::from_byte(bytes[6]).ok_or(ObjectError::BadMagic)?;
    if bytes[7] > FORMAT_VERSION {
        return Err(ObjectError::NewerFormat(bytes[7]));
    }
    let (content, digest) = bytes.split_at(bytes.len() - DIGEST);
    if Sha256::digest(content).as_slice() != digest {
        return Err(ObjectError::Digest);
    }
    let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if hlen > MAX_HEADER || 12 + hlen + TAG > content.len() {
        return Err(ObjectError::Header(format!(
            "header length {hlen} does not fit"
        )));
    }
    let header: Header = serde_json::from_slice(&bytes[12..12 + hlen])
        .map_err(|e| ObjectError::Header(e.to_string()))?;
    if header.object != object || header.format != bytes[7] {
        return Err(ObjectError::Header(
            "header disagrees with the magic bytes".into(),
        ));
    }
    Ok(Parsed {
        header,
        aad: &bytes[..12 + hlen],
        body: &content[12 + hlen..],
    })
}

/// Checks only the trailing digest (what `verify` does without a key).
pub fn check_digest(bytes: &[u8]) -> Result<Header, ObjectError> {
    parse(bytes).map(|p| p.header)
}

impl Parsed<'_> {
    pub fn expect(self, expected: ObjectType) -> Result<Self, ObjectError> {
        if self.header.object == expected {
            Ok(self)
        } else {
            Err(ObjectError::WrongType {
                found: self.header.object,
                expected,
            })
        }
    }

    /// Decrypts and decompresses the body, refusing more than `max_plain` bytes.
    pub fn open(&self, key: &DataKey, max_plain: u64) -> Result<Vec<u8>, ObjectError> {
        if self.header.plain_size > max_plain {
            return Err(ObjectError::TooLarge(max_plain));
        }
        let nonce_bytes = B64
            .decode(&self.header.nonce)
            .map_err(|e| ObjectError::Header(format!("nonce: {e}")))?;
        if nonce_bytes.len() != 12 {
            return Err(ObjectError::Header("nonce is not 12 bytes".into()));
        }
        let (ct, tag) = self.body.split_at(self.body.len() - TAG);
        let mut buf = ct.to_vec();
        let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce_bytes),
                self.aad,
                &mut buf,
                tag.into(),
            )
            .map_err(|_| ObjectError::Decrypt)?;
        let plain = zstd::bulk::decompress(&buf, self.header.plain_size as usize)
            .map_err(|e| ObjectError::Decompress(e.to_string()))?;
        if plain.len() as u64 != self.header.plain_size {
            return Err(ObjectError::Decompress(format!(
                "{} bytes, header says {}",
                plain.len(),
                self.header.plain_size
            )));
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header::new(
            ObjectType::Payload,
            "sales",
            "20261122T000000Z-0011",
            "2026-11-22T00:00:00Z",
        )
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let key = DataKey::generate();
        let text = b"{\"name\":\"PL_Secret_Pipeline\"}".repeat(50);
        let sealed = seal(header(), &text, &key);
        assert!(
            !sealed
                .windows(b"PL_Secret".len())
                .any(|w| w == b"PL_Secret")
        );
        let parsed = parse(&sealed).expect("parse");
        assert_eq!(parsed.header.plain_size, text.len() as u64);
        assert_eq!(parsed.open(&key, DEFAULT_MAX_PLAIN).expect("open"), text);
    }

    /// A payload sealed as it is written opens as one sealed whole, and
    /// its frame records the size as the one-shot compression does.
    #[test]
    fn a_payload_sealed_in_parts_opens_as_one_sealed_whole() {
        let key = DataKey::generate();
        let parts: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("{{\"name\":\"PL_{i}\",\"x\":{}}}\n", "7".repeat(i)).into_bytes())
            .collect();
        let whole: Vec<u8> = parts.concat();
        let mut w = SealWriter::new(whole.len() as u64);
        for p in &parts {
            w.write(p);
        }
        let sealed = w.seal(header(), &key);
        let parsed = parse(&sealed).expect("parse");
        assert_eq!(parsed.header.plain_size, whole.len() as u64);
        assert_eq!(parsed.open(&key, DEFAULT_MAX_PLAIN).expect("open"), whole);
        let one = seal(header(), &whole, &key);
        assert_eq!(
            parse(&one).expect("parse").header.plain_size,
            parsed.header.plain_size
        );
    }

    #[test]
    fn every_flipped_byte_is_caught_by_the_digest() {
        let key = DataKey::generate();
        let sealed = seal(header(), b"hello", &key);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(parse(&bad).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn a_header_edit_with_a_recomputed_digest_fails_decryption() {
        let key = DataKey::generate();
        let sealed = seal(header(), b"hello", &key);
        let text = String::from_utf8_lossy(&sealed).to_string();
        assert!(text.contains("20261122T000000Z-0011"));
        // Swap the snapshot id for another of the same length, fix the digest.
        let pos = sealed
            .windows(4)
            .position(|w| w == b"0011")
            .expect("id in header");
        let mut forged = sealed[..sealed.len() - 32].to_vec();
        forged[pos..pos + 4].copy_from_slice(b"0022");
        let digest = Sha256::digest(&forged);
        forged.extend_from_slice(&digest);
        let parsed = parse(&forged).expect("digest is valid again");
        assert_eq!(
            parsed.open(&key, DEFAULT_MAX_PLAIN).unwrap_err(),
            ObjectError::Decrypt
        );
    }

    #[test]
    fn wrong_key_truncation_newer_format_and_size_cap_are_named() {
        let key = DataKey::generate();
        let sealed = seal(header(), &[7u8; 4096], &key);
        let parsed = parse(&sealed).expect("parse");
        assert_eq!(
            parsed
                .open(&DataKey::generate(), DEFAULT_MAX_PLAIN)
                .unwrap_err(),
            ObjectError::Decrypt
        );
        assert_eq!(
            parsed.open(&key, 100).unwrap_err(),
            ObjectError::TooLarge(100)
        );
        assert!(matches!(
            parse(&sealed[..20]).unwrap_err(),
            ObjectError::Truncated(20)
        ));
        let mut newer = sealed.clone();
        newer[7] = 9;
        assert_eq!(parse(&newer).unwrap_err(), ObjectError::NewerFormat(9));
        assert_eq!(
            parse(b"{\"json\": true}  but not ours, no no no no no no no no no no no no")
                .unwrap_err(),
            ObjectError::BadMagic
        );
    }
}
