//! A directory as a location (`file:///srv/adfdr`): for a mounted disk, an
//! offline copy, the demo and tests.
//!
//! Write-once and crash-safe: the object is written to a temporary file in the
//! same directory, fsynced, made read-only and then hard-linked to its final
//! name (which, unlike rename, fails if the name exists), and the directory is
//! fsynced. A crash leaves at worst a `.tmp-*` file, never a partial object.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{BlobStore, Holder, LeaseAttempt, ObjectInfo, StoreError};

/// A lease in a directory: a small JSON record, read and rewritten under an
/// exclusive `flock` of the file itself, so that two processes (on one host,
/// or on hosts sharing the mount) decide one at a time.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    id: String,
    /// Milliseconds since the Unix epoch.
    expires_ms: u128,
    holder: Holder,
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with(".tmp-"));
        if !ok {
            return Err(self.failed("open", key, "not a valid object key".into()));
        }
        Ok(self.root.join(key))
    }

    fn failed(&self, op: &'static str, key: &str, detail: String) -> StoreError {
        StoreError::Failed {
            location: self.describe(),
            op,
            key: key.to_string(),
            detail,
        }
    }

    fn write(&self, key: &str, bytes: &[u8], replace: bool) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a parent").to_path_buf();
        let io = |e: std::io::Error| self.failed("write", key, e.to_string());
        if !self.root.is_dir() {
            return Err(StoreError::Unreachable {
                location: self.describe(),
                op: "write",
                key: key.to_string(),
                detail: "the directory does not exist (or is not mounted); create it first".into(),
            });
        }
        create_dirs(&self.root, &dir).map_err(io)?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            let mut perms = file.metadata()?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(&tmp, perms)?;
            if replace {
                std::fs::rename(&tmp, &path)
            } else {
                std::fs::hard_link(&tmp, &path)
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        match result {
            Ok(()) => sync_dir(&dir).map_err(io),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists {
                location: self.describe(),
                key: key.to_string(),
            }),
            Err(e) => Err(io(e)),
        }
    }

    async fn write_blocking(
        &self,
        key: &str,
        bytes: Vec<u8>,
        replace: bool,
    ) -> Result<(), StoreError> {
        let me = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || me.write(&key, &bytes, replace))
            .await
            .expect("blocking write")
    }

    /// Runs `change` on the lease record of `key` while holding the file's
    /// lock; `change` returns the record to write back (None: leave it).
    fn with_lease<T: Send + 'static>(
        &self,
        key: &str,
        op: &'static str,
        change: impl FnOnce(Option<LeaseRecord>) -> (Option<Option<LeaseRecord>>, T),
    ) -> Result<T, StoreError> {
        use std::io::{Read, Seek};
        let path = self.path(key)?;
        if !self.root.is_dir() {
            return Err(StoreError::Unreachable {
                location: self.describe(),
                op,
                key: key.to_string(),
                detail: "the directory does not exist (or is not mounted)".into(),
            });
        }
        let io = |e: std::io::Error| self.failed(op, key, e.to_string());
        let dir = path.parent().expect("keys have a parent");
        create_dirs(&self.root, dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let current = serde_json::from_str::<LeaseRecord>(&text).ok();
        let (write, out) = change(current);
        if let Some(record) = write {
            let bytes = record
                .map(|r| serde_json::to_vec(&r).expect("serialize"))
                .unwrap_or_default();
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(out)
    }

    async fn lease_blocking<T: Send + 'static>(
        &self,
        key: &str,
        op: &'static str,
        change: impl FnOnce(Option<LeaseRecord>) -> (Option<Option<LeaseRecord>>, T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || me.with_lease(&key, op, change))
            .await
            .expect("blocking lease")
    }

    fn walk(&self, dir: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_dir() {
                self.walk(&entry.path(), out)?;
            } else if ty.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(&self.root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(ObjectInfo {
                    key: rel,
                    size: entry.metadata()?.len(),
                });
            }
        }
        Ok(())
    }
}

/// Creates `dir` (under `root`, which exists) and fsyncs each new directory's parent.
fn create_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(root);
    if parent != root && parent.starts_with(root) {
        create_dirs(root, parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write_blocking(key, bytes, false).await
    }

    async fn put_replace(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write_blocking(key, bytes, true).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed("read", key, e.to_string())),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let me = self.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            if !me.root.is_dir() {
                return Err(StoreError::Unreachable {
                    location: me.describe(),
                    op: "list",
                    key: prefix.clone(),
                    detail: "the directory does not exist (or is not mounted)".into(),
                });
            }
            // Walk only the deepest directory the prefix names.
            let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let start = if dir_part.is_empty() {
                me.root.clone()
            } else {
                me.root.join(dir_part)
            };
            let mut out = Vec::new();
            me.walk(&start, &mut out)
                .map_err(|e| me.failed("list", &prefix, e.to_string()))?;
            out.retain(|o| o.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .expect("blocking list")
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.failed("delete", key, e.to_string())),
        }
    }

    async fn lease_acquire(
        &self,
        key: &str,
        seconds: u32,
        holder: &Holder,
    ) -> Result<LeaseAttempt, StoreError> {
        let holder = holder.clone();
        self.lease_blocking(key, "lease", move |current| {
            let now = now_ms();
            match current {
                Some(r) if r.expires_ms > now => (None, LeaseAttempt::Held(Some(r.holder))),
                _ => {
                    let id = uuid::Uuid::new_v4().to_string();
                    let record = LeaseRecord {
                        id: id.clone(),
                        expires_ms: now + u128::from(seconds) * 1000,
                        holder,
                    };
                    (Some(Some(record)), LeaseAttempt::Acquired(id))
                }
            }
        })
        .await
    }

    async fn lease_renew(&self, key: &str, id: &str, seconds: u32) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.lease_blocking(key, "lease", move |current| match current {
            // As in Azure, an expired lease can be renewed while nobody else took it.
            Some(mut r) if r.id == id => {
                r.expires_ms = now_ms() + u128::from(seconds) * 1000;
                (Some(Some(r)), true)
            }
            _ => (None, false),
        })
        .await
    }

    async fn lease_release(&self, key: &str, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.lease_blocking(key, "lease", move |current| match current {
            Some(r) if r.id == id => (Some(None), ()),
            _ => (None, ()),
        })
        .await
    }

    async fn lease_break(&self, key: &str) -> Result<(), StoreError> {
        self.lease_blocking(key, "lease", |_| (Some(None), ()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adfdr-fs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[tokio::test]
    async fn objects_are_write_once_listed_and_read_only() {
        let root = scratch();
        let store = FsStore::new(&root);
        store
            .put_new("v1/f/snapshots/a.payload", b"one".to_vec())
            .await
            .expect("put");
        let err = store
            .put_new("v1/f/snapshots/a.payload", b"two".to_vec())
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert_eq!(
            store
                .get("v1/f/snapshots/a.payload")
                .await
                .expect("get")
                .as_deref(),
            Some(&b"one"[..])
        );
        store
            .put_new("v1/g/checkpoints/c.checkpoint", b"c".to_vec())
            .await
            .expect("put");
        let all = store.list("v1/").await.expect("list");
        assert_eq!(
            all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["v1/f/snapshots/a.payload", "v1/g/checkpoints/c.checkpoint"]
        );
        assert_eq!(store.list("v1/f/").await.expect("list").len(), 1);
        let meta = std::fs::metadata(root.join("v1/f/snapshots/a.payload")).expect("meta");
        assert!(meta.permissions().readonly());
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(root.join("v1/f/snapshots"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        store
            .put_replace("v1/f/snapshots/a.payload", b"fixed".to_vec())
            .await
            .expect("replace");
        assert_eq!(
            store
                .get("v1/f/snapshots/a.payload")
                .await
                .expect("get")
                .as_deref(),
            Some(&b"fixed"[..])
        );
        assert!(
            store
                .delete("v1/g/checkpoints/c.checkpoint")
                .await
                .expect("delete")
        );
        assert!(
            !store
                .delete("v1/g/checkpoints/c.checkpoint")
                .await
                .expect("delete")
        );
        assert!(store.get("../etc/passwd").await.is_err());
        std::fs::remove_dir_all(&root).ok();
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
        let root = scratch();
        let store = FsStore::new(&root);
        let key = crate::store::layout::lease("f");
        let a = Holder::me("agent", "t0");
        let mut b = a.clone();
        b.pid += 1;
        let LeaseAttempt::Acquired(id) = store.lease_acquire(&key, 15, &a).await.expect("a") else {
            panic!("a should get the free lease")
        };
        match store.lease_acquire(&key, 15, &b).await.expect("b") {
            LeaseAttempt::Held(Some(h)) => assert_eq!(h, a),
            other => panic!("b got {other:?}"),
        }
        assert!(store.lease_renew(&key, &id, 15).await.expect("renew"));
        assert!(
            !store
                .lease_renew(&key, "not-mine", 15)
                .await
                .expect("renew")
        );
        // Released: free for the next one.
        store.lease_release(&key, &id).await.expect("release");
        let LeaseAttempt::Acquired(id_b) = store.lease_acquire(&key, 15, &b).await.expect("b")
        else {
            panic!("b should get the released lease")
        };
        // Broken: the old id no longer renews.
        store.lease_break(&key).await.expect("break");
        assert!(!store.lease_renew(&key, &id_b, 15).await.expect("renew"));
        // Expired: taken by someone else, so the first holder cannot renew.
        let LeaseAttempt::Acquired(short) = store.lease_acquire(&key, 0, &a).await.expect("a")
        else {
            panic!("free")
        };
        assert!(matches!(
            store.lease_acquire(&key, 15, &b).await.expect("b"),
            LeaseAttempt::Acquired(_)
        ));
        assert!(!store.lease_renew(&key, &short, 15).await.expect("renew"));
        std::fs::remove_dir_all(&root).ok();
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_not_an_empty_store() {
        let store = FsStore::new("/nonexistent/adfdr-store");
        let err = store.list("v1/").await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
