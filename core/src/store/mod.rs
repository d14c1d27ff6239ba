//! Blob storage, the source of truth: a `BlobStore` trait with the Azure Blob
//! and local filesystem implementations, and `Replicas`, which writes every
//! object to every writable location and reads from the first healthy one.
//!
//! Objects are write-once: `put_new` fails with `Exists` rather than overwrite.
//! Only repair replaces an object, and only one whose digest is broken.

pub mod azure;
pub mod fs;
pub mod replicated;

use async_trait::async_trait;

pub use replicated::{Location, PutReport, Replicas};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("location {location}: {key} already exists (stored objects are write-once)")]
    Exists { location: String, key: String },
    #[error("location {location}: {op} {key} was refused (HTTP {status}): {detail}. {hint}")]
    Denied {
        location: String,
        op: &'static str,
        key: String,
        status: u16,
        detail: String,
        hint: String,
    },
    #[error("location {location}: {op} {key} failed: {detail}")]
    Failed {
        location: String,
        op: &'static str,
        key: String,
        detail: String,
    },
    #[error("location {location} is unreachable ({op} {key}): {detail}")]
    Unreachable {
        location: String,
        op: &'static str,
        key: String,
        detail: String,
    },
}

impl StoreError {
    pub fn is_exists(&self) -> bool {
        matches!(self, StoreError::Exists { .. })
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }
}

/// One storage location (an Azure container, a directory).
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Where it is, safe to print (no SAS).
    fn describe(&self) -> String;

    /// Writes a new object; `Exists` if the key is taken.
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Replaces a damaged object (repair only).
    async fn put_replace(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Reads an object; None when absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Deletes an object; false when it was already absent.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
}

/// Object keys of the layout (docs/FORMAT.md):
/// `v1/{factory}/snapshots/{id}.payload`, `v1/{factory}/snapshots/{id}.manifest`,
/// `v1/{factory}/checkpoints/{id}.checkpoint`, `v1/{factory}/holds/{snapshot}.{token}.hold`.
pub mod layout {
    pub const ROOT: &str = "v1/";

    pub fn payload(factory: &str, snapshot: &str) -> String {
        format!("v1/{factory}/snapshots/{snapshot}.payload")
    }

    pub fn manifest(factory: &str, snapshot: &str) -> String {
        format!("v1/{factory}/snapshots/{snapshot}.manifest")
    }

    pub fn checkpoint(factory: &str, id: &str) -> String {
        format!("v1/{factory}/checkpoints/{id}.checkpoint")
    }

    /// A hold: a running restore or drill uses `snapshot`; prune keeps it.
    pub fn hold(factory: &str, snapshot: &str, token: &str) -> String {
        format!("v1/{factory}/holds/{snapshot}.{token}.hold")
    }

    pub fn factory_prefix(factory: &str) -> String {
        format!("v1/{factory}/")
    }

    /// What a key names.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Parsed {
        Manifest { factory: String, snapshot: String },
        Payload { factory: String, snapshot: String },
        Checkpoint { factory: String, id: String },
        Hold { factory: String, snapshot: String },
    }

    pub fn parse(key: &str) -> Option<Parsed> {
        let rest = key.strip_prefix(ROOT)?;
        let mut parts = rest.split('/');
        let factory = parts.next()?.to_string();
        let folder = parts.next()?;
        let file = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        match folder {
            "snapshots" => {
                if let Some(id) = file.strip_suffix(".manifest") {
                    Some(Parsed::Manifest {
                        factory,
                        snapshot: id.into(),
                    })
                } else {
                    file.strip_suffix(".payload").map(|id| Parsed::Payload {
                        factory,
                        snapshot: id.into(),
                    })
                }
            }
            "holds" => file
                .strip_suffix(".hold")
                .and_then(|f| f.rsplit_once('.'))
                .map(|(snapshot, _)| Parsed::Hold {
                    factory,
                    snapshot: snapshot.into(),
                }),
            "checkpoints" => file
                .strip_suffix(".checkpoint")
                .map(|id| Parsed::Checkpoint {
                    factory,
                    id: id.into(),
                }),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn keys_parse_back() {
            assert_eq!(
                parse(&manifest("sales", "S1")),
                Some(Parsed::Manifest {
                    factory: "sales".into(),
                    snapshot: "S1".into()
                })
            );
            assert_eq!(
                parse(&checkpoint("sales", "C1")),
                Some(Parsed::Checkpoint {
                    factory: "sales".into(),
                    id: "C1".into()
                })
            );
            assert_eq!(parse("v1/sales/snapshots/x.tmp"), None);
            assert_eq!(parse("other/sales/snapshots/x.manifest"), None);
        }
    }
}
