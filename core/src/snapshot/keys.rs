//! Envelope keys, pure part: the per-snapshot data key, break-glass key files
//! and the wrapped-key records every manifest carries. Key Vault wrapping is IO
//! and lives in `crate::keys`; it produces the same `WrappedKey` records.
//!
//! Key material sits in `Zeroizing` buffers (wiped on drop) and has no
//! `Debug`/`Display` that could print it.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A 256-bit AES key that wipes itself.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// How a data key was wrapped, as recorded in the manifest's public header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WrappedKey {
    /// The configured key id (`[[key]] id`).
    pub id: String,
    /// `file` or `keyvault`.
    pub kind: String,
    /// For key files: the key's fingerprint (not secret, identifies the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// For Key Vault keys: the versioned key id (kid) that wrapped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
    /// `A256GCM` (key files) or the Key Vault algorithm (`RSA-OAEP-256`).
    pub alg: String,
    /// Base64 of the wrapped data key.
    pub wrapped: String,
}

impl WrappedKey {
    /// How an operator recognises the key: "breakglass (key file ab12…)".
    pub fn describe(&self) -> String {
        match (&self.fingerprint, &self.key_url) {
            (Some(fp), _) => format!("{} (key file, fingerprint {fp})", self.id),
            (_, Some(url)) => format!("{} (Key Vault key {url})", self.id),
            _ => self.id.clone(),
        }
    }
}

/// A break-glass key file: exactly 32 random bytes.
pub struct FileKey {
    pub id: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileKey({}, fingerprint {})",
            self.id,
            self.fingerprint()
        )
    }
}

impl FileKey {
    pub fn new(id: &str, bytes: &[u8]) -> Option<Self> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(FileKey {
            id: id.to_string(),
            key: Zeroizing::new(key),
        })
    }

    pub fn generate_bytes() -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        k
    }

    /// First 16 hex digits of SHA-256("adfdr-key-fingerprint-v1\0" || key).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key[..])
    }

    fn aad(factory: &str, snapshot: &str) -> Vec<u8> {
        let mut aad = b"adfdr-wrap-v1\0".to_vec();
        aad.extend_from_slice(factory.as_bytes());
        aad.push(0);
        aad.extend_from_slice(snapshot.as_bytes());
        aad
    }

    /// Wraps a data key: base64(nonce(12) || AES-256-GCM(dek) || tag(16)),
    /// bound to the factory and snapshot id.
    pub fn wrap(&self, dek: &DataKey, factory: &str, snapshot: &str) -> WrappedKey {
        let cipher = Aes256Gcm::new_from_slice(&self.key[..]).expect("32-byte key");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::aad(factory, snapshot);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: dek.bytes(),
                    aad: &aad,
                },
            )
            .expect("wrap");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        WrappedKey {
            id: self.id.clone(),
            kind: "file".into(),
            fingerprint: Some(self.fingerprint()),
            key_url: None,
            alg: "A256GCM".into(),
            wrapped: B64.encode(blob),
        }
    }

    /// Unwraps a record made by `wrap` with this key; None when it is not ours.
    pub fn unwrap(&self, wrapped: &WrappedKey, factory: &str, snapshot: &str) -> Option<DataKey> {
        if wrapped.kind != "file" || wrapped.fingerprint.as_deref() != Some(&self.fingerprint()) {
            return None;
        }
        let blob = Zeroizing::new(B64.decode(&wrapped.wrapped).ok()?);
        if blob.len() != 12 + 32 + 16 {
            return None;
        }
        let cipher = Aes256Gcm::new_from_slice(&self.key[..]).expect("32-byte key");
        let aad = Self::aad(factory, snapshot);
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&blob[..12]),
                    Payload {
                        msg: &blob[12..],
                        aad: &aad,
                    },
                )
                .ok()?,
        );
        DataKey::from_slice(&plain)
    }
}

pub fn fingerprint(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"adfdr-key-fingerprint-v1\0");
    h.update(key);
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_key_unwraps_only_its_own_binding() {
        let key = FileKey::new("breakglass", &[9u8; 32]).expect("key");
        let dek = DataKey::generate();
        let w = key.wrap(&dek, "sales", "S1");
        assert_eq!(w.fingerprint.as_deref(), Some(key.fingerprint().as_str()));
        let back = key.unwrap(&w, "sales", "S1").expect("unwrap");
        assert_eq!(back.bytes(), dek.bytes());
        assert!(
            key.unwrap(&w, "sales", "S2").is_none(),
            "moved to another snapshot"
        );
        assert!(
            key.unwrap(&w, "hr", "S1").is_none(),
            "moved to another factory"
        );
        let other = FileKey::new("other", &[8u8; 32]).expect("key");
        assert!(other.unwrap(&w, "sales", "S1").is_none());
        assert!(FileKey::new("short", &[1u8; 31]).is_none());
    }

    #[test]
    fn key_material_never_prints() {
        let dek = DataKey::generate();
        assert_eq!(format!("{dek:?}"), "DataKey(<redacted>)");
    }
}
