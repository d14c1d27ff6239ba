//! A directory as a location (`file:///srv/adfdr`): for a mounted disk, an
//! offline copy, the demo and tests.
//!
//! Write-once and crash-safe: the object is written to a temporary file in the
//! same directory, fsynced, made read-only and then hard-linked to its final
//! name (which, unlike rename, fails if the name exists), and the directory is
//! fsynced. A crash leaves at worst a `.tmp-*` file, never a partial object.
//!
//! Trust no location: whoever can write to the directory may plant links,
//! FIFOs, devices or huge files in it. Every path below the root is walked
//! one component at a time with `openat(O_NOFOLLOW)`, so a symlinked
//! directory or file is refused rather than followed out of the location;
//! only regular files are read, opened without blocking and read up to the
//! caller's cap; every call gives up after a timeout (a hung mount).

use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::{BlobStore, Holder, LeaseAttempt, ObjectInfo, StoreError};

/// A lease in a directory: a small JSON record, read and rewritten under an
/// exclusive `flock` of the file itself, so that two processes (on one host,
/// or on hosts sharing the mount) decide one at a time.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct LeaseRecord {
    id: String,
    /// Milliseconds since the Unix epoch.
    expires_ms: u128,
    holder: Holder,
}

/// A lease record is a few hundred bytes.
const MAX_LEASE_RECORD: u64 = 64 << 10;
/// No call on a directory takes this long unless the mount hangs.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Deeper than the layout ever goes (`v1/{factory}/{folder}/{file}`).
const MAX_DEPTH: usize = 8;

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

/// Why a filesystem call failed, before it is turned into a `StoreError`.
enum Refusal {
    /// The root is missing (not mounted?).
    NoRoot,
    /// Something that must not be in a location (a link, a FIFO…).
    Planted(String),
    /// Not a key of the layout.
    BadKey,
    Io(std::io::Error),
}

impl From<Errno> for Refusal {
    fn from(e: Errno) -> Self {
        Refusal::Io(e.into())
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of unknown type",
    }
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore { root: root.into() }
    }

    /// The directory this location is (as configured).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key's components, checked: no empty, `.`, `..` or temporary names.
    fn components(key: &str) -> Result<Vec<&str>, Refusal> {
        let parts: Vec<&str> = key.split('/').collect();
        let ok = !key.is_empty()
            && parts.len() <= MAX_DEPTH
            && parts.iter().all(|p| {
                !p.is_empty()
                    && *p != "."
                    && *p != ".."
                    && !p.starts_with(".tmp-")
                    && !p.contains('\0')
            });
        if ok { Ok(parts) } else { Err(Refusal::BadKey) }
    }

    fn failed(&self, op: &'static str, key: &str, detail: String) -> StoreError {
        StoreError::Failed {
            location: self.describe(),
            op,
            key: key.to_string(),
            detail,
        }
    }

    fn error(&self, op: &'static str, key: &str, why: Refusal) -> StoreError {
        match why {
            Refusal::NoRoot => StoreError::Unreachable {
                location: self.describe(),
                op,
                key: key.to_string(),
                detail: "the directory does not exist (or is not mounted); create it first".into(),
            },
            Refusal::Planted(what) => self.failed(
                op,
                key,
                format!("{what}: refused (a location holds only directories and regular files; remove it)"),
            ),
            Refusal::BadKey => self.failed(op, key, "not a valid object key".into()),
            Refusal::Io(e) => self.failed(op, key, e.to_string()),
        }
    }

    /// The root directory, opened (the root itself may be a link: the
    /// operator configured it).
    fn open_root(&self) -> Result<OwnedFd, Refusal> {
        match rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT | Errno::NOTDIR) => Err(Refusal::NoRoot),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens directory `name` in `dir` without following a link; None when
    /// absent (and not created).
    /// A directory made here gets the root's permissions (`mode`), not
    /// the process umask's: a location made 0700 stays 0700 all the way
    /// down.
    fn open_dir(
        dir: &OwnedFd,
        name: &str,
        create: bool,
        shown: &str,
        mode: u32,
    ) -> Result<Option<OwnedFd>, Refusal> {
        let mut made = false;
        for attempt in 0..2 {
            match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    if made {
                        // On the descriptor: never through a path a link
                        // could have replaced meanwhile.
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
                    }
                    return Ok(Some(fd));
                }
                Err(Errno::NOENT) if create && attempt == 0 => {
                    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)) {
                        Ok(()) => {
                            made = true;
                            rustix::fs::fsync(dir)?;
                        }
                        Err(Errno::EXIST) => {
                            rustix::fs::fsync(dir)?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR | Errno::MLINK) => {
                    let what = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| type_name(FileType::from_raw_mode(st.st_mode)))
                        .unwrap_or("not a directory");
                    return Err(Refusal::Planted(format!(
                        "{shown} is {what}, where a directory belongs"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The directory holding `key`'s object (created with `create`) and the
    /// object's file name; None when a directory on the way is absent.
    fn parent<'k>(
        &self,
        key: &'k str,
        create: bool,
    ) -> Result<Option<(OwnedFd, &'k str)>, Refusal> {
        let parts = Self::components(key)?;
        let (file, dirs) = parts.split_last().ok_or(Refusal::BadKey)?;
        let mut dir = self.open_root()?;
        let mode = rustix::fs::fstat(&dir)?.st_mode & 0o777;
        let mut shown = String::new();
        for d in dirs {
            shown.push_str(d);
            match Self::open_dir(&dir, d, create, &shown, mode)? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
            shown.push('/');
        }
        Ok(Some((dir, *file)))
    }

    /// Opens a regular file without following a link or blocking on a FIFO.
    fn open_regular(
        dir: &OwnedFd,
        name: &str,
        flags: OFlags,
        key: &str,
    ) -> Result<Option<std::fs::File>, Refusal> {
        let fd = match rustix::fs::openat(
            dir,
            name,
            flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::MLINK) => {
                return Err(Refusal::Planted(format!("{key} is a symbolic link")));
            }
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            return Err(Refusal::Planted(format!("{key} is {}", type_name(ft))));
        }
        Ok(Some(std::fs::File::from(fd)))
    }

    fn read(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let fail = |e: Refusal| self.error("read", key, e);
        let Some((dir, name)) = self.parent(key, false).map_err(fail)? else {
            return Ok(None);
        };
        let Some(file) = Self::open_regular(&dir, name, OFlags::RDONLY, key).map_err(fail)? else {
            return Ok(None);
        };
        let io = |e: std::io::Error| self.failed("read", key, e.to_string());
        let len = file.metadata().map_err(io)?.len();
        if len > max {
            return Err(self.too_large(key, len, max));
        }
        let mut out = Vec::with_capacity(len as usize);
        file.take(max + 1).read_to_end(&mut out).map_err(io)?;
        if out.len() as u64 > max {
            return Err(self.too_large(key, out.len() as u64, max));
        }
        Ok(Some(out))
    }

    fn too_large(&self, key: &str, size: u64, max: u64) -> StoreError {
        self.failed(
            "read",
            key,
            format!("is {size} bytes, more than the {max} its kind of object can be: refused"),
        )
    }

    fn write(&self, key: &str, bytes: &[u8], replace: bool) -> Result<(), StoreError> {
        let fail = |e: Refusal| self.error("write", key, e);
        let (dir, name) = self
            .parent(key, true)
            .map_err(fail)?
            .ok_or_else(|| self.failed("write", key, "its directory vanished".into()))?;
        let tmp = format!(".tmp-{}", uuid::Uuid::new_v4().simple());
        let result = (|| -> Result<(), Refusal> {
            let fd = rustix::fs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            // The directory's permissions, read-only (a stored object is
            // never written again), whatever the umask.
            let mode = rustix::fs::fstat(&dir)?.st_mode & 0o444;
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes)?;
            file.sync_all()?;
            rustix::fs::fchmod(file.as_fd(), Mode::from_raw_mode(mode))?;
            if replace {
                rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?;
            } else {
                rustix::fs::linkat(&dir, tmp.as_str(), &dir, name, AtFlags::empty())?;
            }
            Ok(())
        })();
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        match result {
            Ok(()) => rustix::fs::fsync(&dir).map_err(|e| fail(e.into())),
            Err(Refusal::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::Exists {
                    location: self.describe(),
                    key: key.to_string(),
                })
            }
            Err(e) => Err(fail(e)),
        }
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        let fail = |e: Refusal| self.error("delete", key, e);
        let Some((dir, name)) = self.parent(key, false).map_err(fail)? else {
            return Ok(false);
        };
        // unlinkat removes a link itself, never what it points to.
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(fail(e.into())),
        }
    }

    /// Runs `f` on a blocking thread, giving up after `TIMEOUT`.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(FsStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        match tokio::time::timeout(TIMEOUT, tokio::task::spawn_blocking(move || f(me))).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                Err(self.failed(op, key, format!("the filesystem call failed: {join}")))
            }
            Err(_) => Err(StoreError::Unreachable {
                location: self.describe(),
                op,
                key: key.to_string(),
                detail: format!("no answer within {} s (a hung mount?)", TIMEOUT.as_secs()),
            }),
        }
    }

    /// Runs `change` on the lease record of `key` while holding the file's
    /// lock; `change` returns the record to write back (None: leave it).
    /// A record that does not parse is refused, never overwritten.
    fn with_lease<T: Send + 'static>(
        &self,
        key: &str,
        op: &'static str,
        change: impl FnOnce(Option<LeaseRecord>) -> (Option<Option<LeaseRecord>>, T),
    ) -> Result<T, StoreError> {
        let fail = |e: Refusal| self.error(op, key, e);
        let (dir, name) = self
            .parent(key, true)
            .map_err(fail)?
            .ok_or_else(|| self.failed(op, key, "its directory vanished".into()))?;
        let mut file = Self::open_regular(&dir, name, OFlags::RDWR | OFlags::CREATE, key)
            .map_err(fail)?
            .ok_or_else(|| self.failed(op, key, "the lease file vanished".into()))?;
        let io = |e: std::io::Error| self.failed(op, key, e.to_string());
        rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
        let mut text = Vec::new();
        (&mut file)
            .take(MAX_LEASE_RECORD + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        let current = if text.iter().all(u8::is_ascii_whitespace) {
            None
        } else if text.len() as u64 > MAX_LEASE_RECORD {
            return Err(self.failed(op, key, "the lease record is too large to be one of adfdr's: refused; remove it if no agent runs this factory".into()));
        } else {
            Some(serde_json::from_slice::<LeaseRecord>(&text).map_err(|e| {
                self.failed(
                    op,
                    key,
                    format!("the lease record does not parse ({e}): refused, not overwritten; remove it if no agent runs this factory"),
                )
            })?)
        };
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
        let owned = key.to_string();
        self.blocking(op, key, move |me| me.with_lease(&owned, op, change))
            .await
    }

    /// Lists `dir` (the directory of key prefix `base`) into `out`: regular
    /// files with their size, and anything else that is not a directory with
    /// size 0 (reading it is refused, so it shows up as damage, not as data).
    /// Subdirectories are opened without following links.
    fn walk(
        dir: OwnedFd,
        base: &str,
        depth: usize,
        out: &mut Vec<ObjectInfo>,
    ) -> Result<(), Refusal> {
        let entries = rustix::fs::Dir::read_from(&dir)?;
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue; // not UTF-8: no key of ours
            };
            if name == "." || name == ".." || name.starts_with(".tmp-") {
                continue;
            }
            let key = format!("{base}{name}");
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory if depth + 1 < MAX_DEPTH => {
                    if let Some(sub) = Self::open_dir(&dir, name, false, &key, 0o700)? {
                        Self::walk(sub, &format!("{key}/"), depth + 1, out)?;
                    }
                }
                FileType::Directory => {}
                FileType::RegularFile => out.push(ObjectInfo {
                    key,
                    size: st.st_size as u64,
                }),
                _ => out.push(ObjectInfo { key, size: 0 }),
            }
        }
        Ok(())
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let fail = |e: Refusal| self.error("list", prefix, e);
        // Walk only the deepest directory the prefix names.
        let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut dir = self.open_root().map_err(fail)?;
        let mut base = String::new();
        if !dir_part.is_empty() {
            for d in Self::components(dir_part).map_err(fail)? {
                base.push_str(d);
                match Self::open_dir(&dir, d, false, &base, 0o700).map_err(fail)? {
                    Some(next) => dir = next,
                    None => return Ok(Vec::new()),
                }
                base.push('/');
            }
        }
        let mut out = Vec::new();
        Self::walk(dir, &base, base.matches('/').count(), &mut out).map_err(fail)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[async_trait]
impl BlobStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put_new(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError> {
        let owned = key.to_string();
        self.blocking("write", key, move |me| me.write(&owned, &bytes, false))
            .await
    }

    async fn put_replace(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError> {
        let owned = key.to_string();
        self.blocking("write", key, move |me| me.write(&owned, &bytes, true))
            .await
    }

    async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let owned = key.to_string();
        self.blocking("read", key, move |me| me.read(&owned, max))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let owned = prefix.to_string();
        self.blocking("list", prefix, move |me| me.list_blocking(&owned))
            .await
    }

    async fn create(&self) -> Result<bool, StoreError> {
        self.blocking("create", "", |me| {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::symlink_metadata(&me.root) {
                Ok(m) if m.is_dir() => return Ok(false),
                // The root may be a link the operator made; it must lead to a directory.
                Ok(m) if m.file_type().is_symlink() && me.root.is_dir() => return Ok(false),
                Ok(_) => {
                    return Err(me.failed(
                        "create",
                        "",
                        "it exists and is not a directory: move it away or point the location elsewhere".into(),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(me.failed("create", "", e.to_string())),
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&me.root)
                .map(|()| true)
                .map_err(|e| me.failed("create", "", e.to_string()))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let owned = key.to_string();
        self.blocking("delete", key, move |me| me.remove(&owned))
            .await
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
                Some(r)
                    if r.expires_ms > now && r.expires_ms <= now + super::MAX_LEASE_AHEAD_MS =>
                {
                    (None, LeaseAttempt::Held(Some(r.holder)))
                }
                // Expired, or claiming to run far into the future (planted):
                // not a lease anyone holds.
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
            .put_new("v1/f/snapshots/a.payload", b"one".to_vec().into())
            .await
            .expect("put");
        let err = store
            .put_new("v1/f/snapshots/a.payload", b"two".to_vec().into())
            .await
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert_eq!(
            store
                .get("v1/f/snapshots/a.payload", 100)
                .await
                .expect("get")
                .as_deref(),
            Some(&b"one"[..])
        );
        store
            .put_new("v1/g/checkpoints/c.checkpoint", b"c".to_vec().into())
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
            .put_replace("v1/f/snapshots/a.payload", b"fixed".to_vec().into())
            .await
            .expect("replace");
        assert_eq!(
            store
                .get("v1/f/snapshots/a.payload", 100)
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
        assert!(store.get("../etc/passwd", 100).await.is_err());
        std::fs::remove_dir_all(&root).ok();
    }

    /// Issue 25, item 10: folders and objects made under a location take
    /// the root's permissions, not the umask's (0755 folders of a 0700 root
    /// let anyone on the host list the factories' names).
    #[tokio::test]
    async fn what_is_made_below_the_root_keeps_the_roots_permissions() {
        use std::os::unix::fs::PermissionsExt;
        for root_mode in [0o700, 0o750] {
            let root = scratch();
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(root_mode))
                .expect("chmod");
            let store = FsStore::new(&root);
            store
                .put_new("v1/f/snapshots/a.payload", b"one".to_vec().into())
                .await
                .expect("write");
            let mode = |p: &str| {
                std::fs::metadata(root.join(p))
                    .expect("stat")
                    .permissions()
                    .mode()
                    & 0o777
            };
            for dir in ["v1", "v1/f", "v1/f/snapshots"] {
                assert_eq!(mode(dir), root_mode, "{dir} of a {root_mode:o} root");
            }
            assert_eq!(mode("v1/f/snapshots/a.payload"), root_mode & 0o444);
            std::fs::remove_dir_all(&root).ok();
        }
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
        // A record that claims to run for ever (planted) holds nothing.
        let forever = LeaseRecord {
            id: "planted".into(),
            expires_ms: now_ms() + 10 * 365 * 24 * 3600 * 1000,
            holder: b.clone(),
        };
        std::fs::write(root.join(&key), serde_json::to_vec(&forever).expect("json"))
            .expect("plant");
        assert!(
            matches!(
                store.lease_acquire(&key, 15, &a).await.expect("a"),
                LeaseAttempt::Acquired(_)
            ),
            "a lease far in the future is not one adfdr took"
        );
        std::fs::remove_dir_all(&root).ok();
    }

    /// Everything a writer of the location may plant: links (to files and to
    /// directories), FIFOs, huge files, an unparsable lease record. Nothing
    /// outside the location is read, written or emptied; nothing blocks.
    #[tokio::test]
    async fn links_fifos_and_huge_files_are_refused_and_nothing_outside_changes() {
        use std::os::unix::fs::symlink;
        let root = scratch();
        let outside = scratch();
        let secret = outside.join("client-secret");
        std::fs::write(&secret, b"s3cret").expect("secret");
        let store = FsStore::new(&root);
        let snapshots = root.join("v1/f/snapshots");
        std::fs::create_dir_all(&snapshots).expect("dirs");

        // A lease that is a link to a file outside: refused, target intact.
        symlink(&secret, root.join("v1/f/lease")).expect("link");
        let me = Holder::me("agent", "t0");
        let err = store
            .lease_acquire("v1/f/lease", 15, &me)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&secret).expect("secret"), b"s3cret");

        // Reading through a link, or a FIFO, or a device: refused at once.
        symlink(&secret, snapshots.join("a.manifest")).expect("link");
        let err = store
            .get("v1/f/snapshots/a.manifest", 1 << 20)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        symlink("/dev/zero", snapshots.join("z.payload")).expect("link");
        assert!(
            store
                .get("v1/f/snapshots/z.payload", 1 << 20)
                .await
                .is_err()
        );
        let made = std::process::Command::new("mkfifo")
            .arg(snapshots.join("b.payload"))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = store
            .get("v1/f/snapshots/b.payload", 1 << 20)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        // A huge (sparse) file is refused from its size, never read whole.
        std::fs::File::create(snapshots.join("c.payload"))
            .and_then(|f| f.set_len(3 << 30))
            .expect("sparse");
        let err = store
            .get("v1/f/snapshots/c.payload", 1 << 20)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");

        // A directory that is a link to one outside: never followed, for
        // reads, writes, deletes or listings.
        std::fs::write(outside.join("x.manifest"), b"outside").expect("file");
        symlink(&outside, root.join("v1/g")).expect("dir link");
        assert!(store.get("v1/g/x.manifest", 100).await.is_err());
        assert!(
            store
                .put_new("v1/g/y.manifest", b"in?".to_vec().into())
                .await
                .is_err()
        );
        assert!(store.delete("v1/g/x.manifest").await.is_err());
        let listed = store.list("v1/").await.expect("list");
        assert!(
            !listed.iter().any(|o| o.key.starts_with("v1/g/")),
            "{listed:?}"
        );
        // Non-regular entries are listed (so verify reports them) with size 0.
        assert!(
            listed
                .iter()
                .any(|o| o.key == "v1/f/snapshots/b.payload" && o.size == 0)
        );
        assert!(outside.join("x.manifest").exists());
        assert!(!outside.join("y.manifest").exists());

        // Deleting a planted link removes the link, not its target.
        assert!(
            store
                .delete("v1/f/snapshots/a.manifest")
                .await
                .expect("delete")
        );
        assert_eq!(std::fs::read(&secret).expect("secret"), b"s3cret");

        // Repair may replace a planted FIFO with a real object.
        store
            .put_replace("v1/f/snapshots/b.payload", b"good".to_vec().into())
            .await
            .expect("replace");
        assert_eq!(
            store
                .get("v1/f/snapshots/b.payload", 100)
                .await
                .expect("get")
                .as_deref(),
            Some(&b"good"[..])
        );

        // A lease record that does not parse is refused, not overwritten.
        std::fs::remove_file(root.join("v1/f/lease")).expect("rm");
        std::fs::write(root.join("v1/f/lease"), b"not json").expect("junk");
        let err = store
            .lease_acquire("v1/f/lease", 15, &me)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
        assert_eq!(
            std::fs::read(root.join("v1/f/lease")).expect("lease"),
            b"not json"
        );
        std::fs::remove_dir_all(&root).ok();
        std::fs::remove_dir_all(&outside).ok();
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_not_an_empty_store() {
        let store = FsStore::new("/nonexistent/adfdr-store");
        let err = store.list("v1/").await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
