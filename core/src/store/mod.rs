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

/// The largest manifest, checkpoint, drill report or hold adfdr reads
/// (docs/FORMAT.md). A payload is read up to the size its manifest records.
pub const MAX_OBJECT: u64 = 64 << 20;

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
        /// The role the identity lacks, and where (Entra sign-in, not a SAS).
        grant: Option<Box<adfdr_contract::Grant>>,
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

    /// Makes the location itself (the directory, private; the container)
    /// if it is not there: whether it was made (false: it was there).
    async fn create(&self) -> Result<bool, StoreError>;

    /// Writes a new object; `Exists` if the key is taken.
    async fn put_new(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError>;

    /// Replaces a damaged object (repair only).
    async fn put_replace(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError>;

    /// Reads an object of at most `max` bytes; None when absent. A larger
    /// object (or anything but a plain object: a link, a FIFO) is an error,
    /// and no more than `max + 1` bytes are ever held in memory.
    async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Deletes an object; false when it was already absent.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Takes the exclusive lease on `key` (created if absent) for `seconds`
    /// (15 to 60, as Azure allows), recording `holder` beside it.
    async fn lease_acquire(
        &self,
        key: &str,
        seconds: u32,
        holder: &Holder,
    ) -> Result<LeaseAttempt, StoreError>;

    /// Extends a lease this process holds; false when it was lost (expired
    /// and taken by someone else, or broken).
    async fn lease_renew(&self, key: &str, id: &str, seconds: u32) -> Result<bool, StoreError>;

    /// Gives a lease up; a lease already lost is not an error.
    async fn lease_release(&self, key: &str, id: &str) -> Result<(), StoreError>;

    /// Ends whatever lease is on `key` now (its holder is known to be dead).
    async fn lease_break(&self, key: &str) -> Result<(), StoreError>;
}

/// Who holds a lease, so that another process can say who, and can tell a
/// holder that died on this very host (same boot, process gone) from one
/// that is alive elsewhere.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Holder {
    pub host: String,
    pub boot: String,
    pub pid: u32,
    pub uid: u32,
    /// "agent" or "cli".
    pub role: String,
    /// RFC 3339, when it took the lease.
    pub since: String,
    /// The agent's id (`lease::share::agent_id`), for an agent: what proves
    /// its heartbeat is an agent that works, not one planted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl Holder {
    /// This process.
    pub fn me(role: &str, since: &str) -> Holder {
        use std::os::unix::fs::MetadataExt;
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Holder {
            host: read("/proc/sys/kernel/hostname"),
            boot: read("/proc/sys/kernel/random/boot_id"),
            pid: std::process::id(),
            uid: std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid()),
            role: role.to_string(),
            since: since.to_string(),
            agent: None,
        }
    }

    /// Is this holder certainly dead? Only answerable for a process of this
    /// host and user (others' processes may be hidden by ProtectProc=).
    pub fn is_dead(&self, me: &Holder) -> bool {
        if self.host.is_empty()
            || self.host != me.host
            || self.pid == me.pid && self.boot == me.boot
        {
            return false;
        }
        if !self.boot.is_empty() && !me.boot.is_empty() && self.boot != me.boot {
            return true; // the host rebooted since
        }
        self.uid == me.uid && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} on host {} (pid {}, since {})",
            if self.role == "agent" {
                "agent"
            } else {
                "adfdr command"
            },
            if self.host.is_empty() {
                "?"
            } else {
                &self.host
            },
            self.pid,
            self.since
        )
    }
}

/// The furthest ahead a lease may claim to run: a few of the longest lease
/// periods. adfdr never takes a longer one; a record that claims more was
/// planted (or written by a clock far off) and does not hold a factory.
pub const MAX_LEASE_AHEAD_MS: u128 = 3 * 60_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// Taken; the lease id to renew and release with.
    Acquired(String),
    /// Someone else has it (who, when known).
    Held(Option<Holder>),
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

    /// A drill report (sealed, immutable).
    pub fn report(factory: &str, id: &str) -> String {
        format!("v1/{factory}/drills/{id}.report")
    }

    /// The blob whose lease says which agent runs a factory's jobs.
    pub fn lease(factory: &str) -> String {
        format!("v1/{factory}/lease")
    }

    pub fn factory_prefix(factory: &str) -> String {
        format!("v1/{factory}/")
    }

    /// What a key names.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Parsed {
        Manifest {
            factory: String,
            snapshot: String,
        },
        Payload {
            factory: String,
            snapshot: String,
        },
        Checkpoint {
            factory: String,
            id: String,
        },
        Hold {
            factory: String,
            snapshot: String,
        },
        Lease {
            factory: String,
        },
        Report {
            factory: String,
            id: String,
        },
        /// `v1/.agents/{agent}.heartbeat`: an agent's share of the work
        /// (`.agents` is never a factory's name).
        Heartbeat {
            agent: String,
        },
    }

    pub fn parse(key: &str) -> Option<Parsed> {
        let rest = key.strip_prefix(ROOT)?;
        let mut parts = rest.split('/');
        let factory = parts.next()?.to_string();
        let folder = parts.next()?;
        if factory == ".agents" {
            let agent = folder.strip_suffix(".heartbeat")?;
            return (parts.next().is_none() && !agent.is_empty()).then(|| Parsed::Heartbeat {
                agent: agent.to_string(),
            });
        }
        if folder == "lease" && parts.next().is_none() {
            return Some(Parsed::Lease { factory });
        }
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
            "drills" => file.strip_suffix(".report").map(|id| Parsed::Report {
                factory: factory.clone(),
                id: id.into(),
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
            assert_eq!(
                parse(&lease("sales")),
                Some(Parsed::Lease {
                    factory: "sales".into()
                })
            );
            assert_eq!(parse("v1/sales/snapshots/x.tmp"), None);
            assert_eq!(parse("other/sales/snapshots/x.manifest"), None);
        }
    }
}
