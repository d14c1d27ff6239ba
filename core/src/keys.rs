//! The key ring: every configured key, able to wrap a snapshot's data key
//! under all of them and to unwrap it with any one. Key Vault keys wrap with
//! RSA-OAEP-256 through azure_security_keyvault_keys (the key never leaves the
//! vault); key files are read once, checked for mode 0600, and zeroized.

use std::path::{Path, PathBuf};

use azure_core::http::{ClientOptions, Url};
use azure_security_keyvault_keys::models::{EncryptionAlgorithm, KeyOperationParameters};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::identity::{Identity, IdentityError, read_secret_file};
use crate::snapshot::{DataKey, FileKey, WrappedKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    File { path: String, source: IdentityError },
    #[error(
        "key file {path} holds {len} bytes; an adfdr key file is exactly 32 (make one with: adfdr key generate --out FILE)"
    )]
    Length { path: String, len: usize },
    #[error("Key Vault key {id} ({url}): {detail}")]
    Vault {
        id: String,
        url: String,
        detail: String,
    },
    #[error(
        "no configured key can open snapshot {snapshot}. It can be opened by: {can_open}. Tried: {tried}"
    )]
    NoKey {
        snapshot: String,
        can_open: String,
        tried: String,
    },
    #[error("cannot write key file {path}: {detail}")]
    Write { path: String, detail: String },
}

pub use crate::config::parse_key_url;

pub struct VaultKey {
    pub id: String,
    pub url: Url,
    name: String,
    version: Option<String>,
    client: KeyClient,
    identity: String,
}

impl VaultKey {
    pub fn new(
        id: &str,
        url: &Url,
        identity: &Identity,
        options: &ClientOptions,
    ) -> Result<Self, KeyError> {
        let err = |detail: String| KeyError::Vault {
            id: id.into(),
            url: url.to_string(),
            detail,
        };
        let (vault, name, version) = parse_key_url(url)
            .ok_or_else(|| err("not a key URL (https://VAULT/keys/NAME[/VERSION])".into()))?;
        // Real vaults answer the challenge for *.vault.azure.net; only check it there.
        let real = url
            .host_str()
            .is_some_and(|h| h.ends_with(".vault.azure.net"));
        let client = KeyClient::new(
            &vault,
            identity.credential.clone(),
            Some(KeyClientOptions {
                client_options: options.clone(),
                verify_challenge_resource: Some(real),
                ..Default::default()
            }),
        )
        .map_err(|e| err(e.to_string()))?;
        Ok(VaultKey {
            id: id.into(),
            url: url.clone(),
            name,
            version,
            client,
            identity: identity.description.clone(),
        })
    }

    /// The error, and whether it is a refusal (401/403: retrying cannot help).
    fn vault_error(&self, op: &str, e: azure_core::Error) -> (KeyError, bool) {
        let status = match e.kind() {
            azure_core::error::ErrorKind::HttpResponse { status, .. } => Some(u16::from(*status)),
            _ => None,
        };
        let detail = match status {
            Some(401 | 403) => format!(
                "{op} refused (HTTP {}): {} needs the role 'Key Vault Crypto User' on this key (or its vault)",
                status.unwrap_or(0),
                self.identity
            ),
            _ => format!("{op} failed: {}", first_line(&e.to_string())),
        };
        (
            KeyError::Vault {
                id: self.id.clone(),
                url: self.url.to_string(),
                detail,
            },
            matches!(status, Some(401 | 403)),
        )
    }

    /// Wraps `dek`, retrying a failed call twice: wrapping is idempotent, and
    /// the SDK's challenge flow can turn one transient 5xx or dropped
    /// connection into a malformed retry (seen as a 400 "must name an
    /// algorithm" under the emulator's fault injection). Refusals (401/403)
    /// are not retried.
    pub async fn wrap(&self, dek: &DataKey) -> Result<WrappedKey, KeyError> {
        let mut attempt = 0;
        loop {
            match self.wrap_once(dek).await {
                Err((e, refused)) if !refused && attempt < 2 => {
                    attempt += 1;
                    tracing::warn!(key = %self.id, error = %e, attempt, "Key Vault wrap failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                other => return other.map_err(|(e, _)| e),
            }
        }
    }

    /// Unwraps, with the same retry rule as `wrap`.
    pub async fn unwrap(&self, w: &WrappedKey) -> Result<DataKey, KeyError> {
        let mut attempt = 0;
        loop {
            match self.unwrap_once(w).await {
                Err((e, refused)) if !refused && attempt < 2 => {
                    attempt += 1;
                    tracing::warn!(key = %self.id, error = %e, attempt, "Key Vault unwrap failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                other => return other.map_err(|(e, _)| e),
            }
        }
    }

    async fn wrap_once(&self, dek: &DataKey) -> Result<WrappedKey, (KeyError, bool)> {
        let params = KeyOperationParameters {
            algorithm: Some(EncryptionAlgorithm::RsaOaep256),
            value: Some(dek.bytes().to_vec()),
            ..Default::default()
        };
        let body = params
            .try_into()
            .map_err(|e: azure_core::Error| self.vault_error("wrap", e))?;
        let options = self.version.clone().map(|v| {
            azure_security_keyvault_keys::models::KeyClientWrapKeyOptions {
                key_version: Some(v),
                ..Default::default()
            }
        });
        let result = self
            .client
            .wrap_key(&self.name, body, options)
            .await
            .map_err(|e| self.vault_error("wrap", e))?
            .into_model()
            .map_err(|e| self.vault_error("wrap", e))?;
        let wrapped = result.result.ok_or_else(|| {
            (
                KeyError::Vault {
                    id: self.id.clone(),
                    url: self.url.to_string(),
                    detail: "wrap answered without a result".into(),
                },
                false,
            )
        })?;
        Ok(WrappedKey {
            id: self.id.clone(),
            kind: "keyvault".into(),
            fingerprint: None,
            key_url: Some(result.kid.unwrap_or_else(|| self.url.to_string())),
            alg: "RSA-OAEP-256".into(),
            wrapped: B64.encode(wrapped),
        })
    }

    /// Does this key's URL name the key that wrapped `w` (any version)?
    fn matches(&self, w: &WrappedKey) -> bool {
        let Some(url) = w.key_url.as_deref().and_then(|u| Url::parse(u).ok()) else {
            return false;
        };
        match (parse_key_url(&url), parse_key_url(&self.url)) {
            (Some((v1, n1, _)), Some((v2, n2, _))) => {
                v1.eq_ignore_ascii_case(&v2) && n1.eq_ignore_ascii_case(&n2)
            }
            _ => false,
        }
    }

    async fn unwrap_once(&self, w: &WrappedKey) -> Result<DataKey, (KeyError, bool)> {
        let url = Url::parse(w.key_url.as_deref().unwrap_or_default()).map_err(|e| {
            (
                KeyError::Vault {
                    id: self.id.clone(),
                    url: self.url.to_string(),
                    detail: format!("recorded key id is not a URL: {e}"),
                },
                true,
            )
        })?;
        let version = parse_key_url(&url)
            .and_then(|(_, _, v)| v)
            .unwrap_or_default();
        let value = Zeroizing::new(B64.decode(&w.wrapped).unwrap_or_default());
        let params = KeyOperationParameters {
            algorithm: Some(EncryptionAlgorithm::RsaOaep256),
            value: Some(value.to_vec()),
            ..Default::default()
        };
        let body = params
            .try_into()
            .map_err(|e: azure_core::Error| self.vault_error("unwrap", e))?;
        let result = self
            .client
            .unwrap_key(&self.name, &version, body, None)
            .await
            .map_err(|e| self.vault_error("unwrap", e))?
            .into_model()
            .map_err(|e| self.vault_error("unwrap", e))?;
        let plain = Zeroizing::new(result.result.unwrap_or_default());
        DataKey::from_slice(&plain).ok_or_else(|| {
            (
                KeyError::Vault {
                    id: self.id.clone(),
                    url: self.url.to_string(),
                    detail: "unwrap returned something that is not a 32-byte key".into(),
                },
                false,
            )
        })
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// Every key adfdr may use.
#[derive(Default)]
pub struct KeyRing {
    pub files: Vec<(FileKey, PathBuf)>,
    pub vaults: Vec<VaultKey>,
}

impl KeyRing {
    /// No key at all (incident mode listing a store without one).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.vaults.is_empty()
    }
}

/// Loads a key file: exactly 32 bytes, mode 0600 or stricter.
pub fn load_key_file(id: &str, path: &Path) -> Result<FileKey, KeyError> {
    let shown = path.display().to_string();
    let bytes = read_secret_file(path).map_err(|source| KeyError::File {
        path: shown.clone(),
        source,
    })?;
    FileKey::new(id, &bytes).ok_or(KeyError::Length {
        path: shown,
        len: bytes.len(),
    })
}

/// Writes a new key file with mode 0600; refuses to overwrite.
pub fn generate_key_file(path: &Path) -> Result<String, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |detail: String| KeyError::Write {
        path: path.display().to_string(),
        detail,
    };
    let key = FileKey::generate_bytes();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                err("the file exists; adfdr never overwrites a key".into())
            } else {
                err(e.to_string())
            }
        })?;
    file.write_all(&key[..]).map_err(|e| err(e.to_string()))?;
    file.sync_all().map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(crate::snapshot::keys::fingerprint(&key[..]))
}

impl KeyRing {
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .files
            .iter()
            .map(|(k, p)| {
                format!(
                    "{} (key file {}, fingerprint {})",
                    k.id,
                    p.display(),
                    k.fingerprint()
                )
            })
            .collect();
        ids.extend(
            self.vaults
                .iter()
                .map(|v| format!("{} (Key Vault key {})", v.id, v.url)),
        );
        ids
    }

    /// Wraps `dek` under every key; any failure fails the backup, because a
    /// snapshot missing a configured key would break the promise that each
    /// key restores.
    pub async fn wrap_all(
        &self,
        dek: &DataKey,
        factory: &str,
        snapshot: &str,
    ) -> Result<Vec<WrappedKey>, KeyError> {
        let mut out = Vec::new();
        for (key, _) in &self.files {
            out.push(key.wrap(dek, factory, snapshot));
        }
        for vault in &self.vaults {
            out.push(vault.wrap(dek).await?);
        }
        Ok(out)
    }

    /// Opens a snapshot's data key with the first key that can: key files
    /// first (no network), then Key Vault keys.
    pub async fn unwrap_any(
        &self,
        wrapped: &[WrappedKey],
        factory: &str,
        snapshot: &str,
    ) -> Result<DataKey, KeyError> {
        for w in wrapped {
            for (key, _) in &self.files {
                if let Some(dek) = key.unwrap(w, factory, snapshot) {
                    return Ok(dek);
                }
            }
        }
        let mut failures = Vec::new();
        for w in wrapped.iter().filter(|w| w.kind == "keyvault") {
            for vault in self.vaults.iter().filter(|v| v.matches(w)) {
                match vault.unwrap(w).await {
                    Ok(dek) => return Ok(dek),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        }
        let mut tried = self.ids();
        tried.extend(failures);
        Err(KeyError::NoKey {
            snapshot: snapshot.to_string(),
            can_open: wrapped
                .iter()
                .map(WrappedKey::describe)
                .collect::<Vec<_>>()
                .join(", "),
            tried: if tried.is_empty() {
                "no keys configured".into()
            } else {
                tried.join("; ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls() {
        let u = Url::parse("https://kv.vault.azure.net/keys/kek/abc123").expect("url");
        assert_eq!(
            parse_key_url(&u),
            Some((
                "https://kv.vault.azure.net/".into(),
                "kek".into(),
                Some("abc123".into())
            ))
        );
        assert!(
            parse_key_url(&Url::parse("https://kv.vault.azure.net/secrets/x").expect("url"))
                .is_none()
        );
    }

    #[tokio::test]
    async fn generated_key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("adfdr-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bg.key");
        let fp = generate_key_file(&path).expect("generate");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            generate_key_file(&path)
                .unwrap_err()
                .to_string()
                .contains("never overwrites")
        );
        let key = load_key_file("bg", &path).expect("load");
        assert_eq!(key.fingerprint(), fp);

        let ring = KeyRing {
            files: vec![(key, path.clone())],
            vaults: vec![],
        };
        let dek = DataKey::generate();
        let wrapped = ring.wrap_all(&dek, "f", "s").await.expect("wrap");
        assert_eq!(
            ring.unwrap_any(&wrapped, "f", "s")
                .await
                .expect("unwrap")
                .bytes(),
            dek.bytes()
        );

        let other_path = dir.join("other.key");
        generate_key_file(&other_path).expect("generate");
        let other = KeyRing {
            files: vec![(
                load_key_file("other", &other_path).expect("load"),
                other_path,
            )],
            vaults: vec![],
        };
        let e = other
            .unwrap_any(&wrapped, "f", "s")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("bg (key file, fingerprint {fp})"))
                && e.contains("other (key file"),
            "{e}"
        );

        std::fs::write(dir.join("short.key"), [1u8; 16]).expect("write");
        std::fs::set_permissions(
            dir.join("short.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        assert!(
            load_key_file("s", &dir.join("short.key"))
                .unwrap_err()
                .to_string()
                .contains("exactly 32")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            load_key_file("bg", &path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
