//! Geo-redundancy: every object goes to every writable location at once;
//! reads take the first location whose copy is intact and say when they had
//! to fall back.

use std::sync::Arc;

use futures::future::join_all;

use super::{BlobStore, ObjectInfo, StoreError};

#[derive(Clone, Debug)]
pub struct Location {
    pub name: String,
    pub store: Arc<dyn BlobStore>,
    /// Used for reads and verification only (an RA-GRS secondary endpoint).
    pub read_only: bool,
}

/// Where one object landed.
#[derive(Debug, Default)]
pub struct PutReport {
    pub written: Vec<String>,
    pub failed: Vec<(String, StoreError)>,
}

impl PutReport {
    pub fn ok(&self, name: &str) -> bool {
        self.written.iter().any(|n| n == name)
    }
}

/// A read that fell back past damaged or unreachable copies.
#[derive(Debug)]
pub struct Read {
    pub bytes: Vec<u8>,
    pub location: String,
    /// Locations tried first, with why they were skipped.
    pub skipped: Vec<(String, String)>,
}

/// A location found unreachable is skipped for a while (one timeout per
/// run, not one per object): the error that tripped it is repeated. In a
/// long-running agent it is tried again after `DOWN_FOR`, so a location that
/// comes back is used (and repaired) again.
type Down = std::sync::Arc<
    std::sync::Mutex<std::collections::BTreeMap<String, (String, std::time::Instant)>>,
>;

const DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Replicas {
    pub locations: Vec<Location>,
    down: Down,
}

impl Replicas {
    pub fn new(locations: Vec<Location>) -> Self {
        Replicas {
            locations,
            down: Down::default(),
        }
    }

    fn tripped(&self, name: &str) -> Option<String> {
        let mut down = self.down.lock().expect("lock");
        match down.get(name) {
            Some((_, since)) if since.elapsed() >= DOWN_FOR => {
                down.remove(name);
                None
            }
            other => other.map(|(why, _)| why.clone()),
        }
    }

    fn note<T>(&self, name: &str, result: &Result<T, StoreError>) {
        if let Err(e) = result
            && e.is_unreachable()
        {
            self.down
                .lock()
                .expect("lock")
                .entry(name.to_string())
                .or_insert_with(|| (e.to_string(), std::time::Instant::now()));
        }
    }

    /// Tries unreachable locations again (a new job in a long-running agent).
    pub fn retry_unreachable(&self) {
        self.down.lock().expect("lock").clear();
    }

    /// Locations found unreachable in this run.
    pub fn unreachable(&self) -> Vec<(String, String)> {
        self.down
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    pub fn writable(&self) -> impl Iterator<Item = &Location> {
        self.locations.iter().filter(|l| !l.read_only)
    }

    pub fn get(&self, name: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.name == name)
    }

    /// Writes a new object to each of `targets` (writable location names) at once.
    /// An object that already exists with identical bytes counts as written
    /// (a retried backup); with different bytes it is a failure.
    /// `bytes` is shared, not copied, by the locations written at once.
    pub async fn put_new(&self, key: &str, bytes: &[u8], targets: &[String]) -> PutReport {
        self.put_shared(key, azure_core::Bytes::copy_from_slice(bytes), targets)
            .await
    }

    /// `put_new` of bytes already owned (a sealed payload: no copy made).
    pub async fn put_shared(
        &self,
        key: &str,
        bytes: azure_core::Bytes,
        targets: &[String],
    ) -> PutReport {
        let bytes = &bytes;
        let writes = self
            .writable()
            .filter(|l| targets.iter().any(|t| t == &l.name))
            .map(|l| async move {
                if let Some(why) = self.tripped(&l.name) {
                    return (
                        l.name.clone(),
                        Err(StoreError::Unreachable {
                            location: l.store.describe(),
                            op: "write",
                            key: key.to_string(),
                            detail: format!(
                                "skipped, found unreachable earlier in this run: {why}"
                            ),
                        }),
                    );
                }
                let result = match l.store.put_new(key, bytes.clone()).await {
                    Err(e) if e.is_exists() => match l.store.get(key, bytes.len() as u64).await {
                        Ok(Some(existing)) if existing.as_slice() == bytes.as_ref() => Ok(()),
                        _ => Err(e),
                    },
                    other => other,
                };
                self.note(&l.name, &result);
                (l.name.clone(), result)
            });
        let mut report = PutReport::default();
        for (name, result) in join_all(writes).await {
            match result {
                Ok(()) => report.written.push(name),
                Err(e) => report.failed.push((name, e)),
            }
        }
        report
    }

    /// The names of every writable location.
    pub fn writable_names(&self) -> Vec<String> {
        self.writable().map(|l| l.name.clone()).collect()
    }

    /// Locations in configured order, `prefer` first.
    pub fn order(&self, prefer: Option<&str>) -> Vec<&Location> {
        let mut order: Vec<&Location> = self.locations.iter().collect();
        if let Some(p) = prefer {
            order.sort_by_key(|l| l.name != p);
        }
        order
    }

    /// Reads `key` (at most `max` bytes) from one location, skipping one
    /// found unreachable earlier; the error as text.
    pub async fn fetch(
        &self,
        l: &Location,
        key: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, String> {
        if let Some(why) = self.tripped(&l.name) {
            return Err(format!("unreachable: {why}"));
        }
        let got = l.store.get(key, max).await;
        self.note(&l.name, &got);
        got.map_err(|e| e.to_string())
    }

    /// Reads `key` (at most `max` bytes) from the first location (in
    /// configured order, or `prefer` first) whose copy passes `check`.
    pub async fn read<F>(
        &self,
        key: &str,
        max: u64,
        prefer: Option<&str>,
        check: F,
    ) -> Result<Read, Vec<(String, String)>>
    where
        F: Fn(&[u8]) -> Result<(), String>,
    {
        self.read_map(key, max, prefer, check)
            .await
            .map(|((), read)| read)
    }

    /// `read`, where `check` also turns the bytes into what the caller wants.
    pub async fn read_map<T, F>(
        &self,
        key: &str,
        max: u64,
        prefer: Option<&str>,
        check: F,
    ) -> Result<(T, Read), Vec<(String, String)>>
    where
        F: Fn(&[u8]) -> Result<T, String>,
    {
        let mut skipped = Vec::new();
        for l in self.order(prefer) {
            match self.fetch(l, key, max).await {
                Ok(Some(bytes)) => match check(&bytes) {
                    Ok(value) => {
                        return Ok((
                            value,
                            Read {
                                bytes,
                                location: l.name.clone(),
                                skipped,
                            },
                        ));
                    }
                    Err(why) => skipped.push((l.name.clone(), format!("damaged copy: {why}"))),
                },
                Ok(None) => skipped.push((l.name.clone(), "no copy".into())),
                Err(e) => skipped.push((l.name.clone(), e)),
            }
        }
        Err(skipped)
    }

    /// Lists `prefix` in every location; per location the objects or the error.
    pub async fn list_all(
        &self,
        prefix: &str,
    ) -> Vec<(String, Result<Vec<ObjectInfo>, StoreError>)> {
        join_all(self.locations.iter().map(|l| async move {
            if let Some(why) = self.tripped(&l.name) {
                return (
                    l.name.clone(),
                    Err(StoreError::Unreachable {
                        location: l.store.describe(),
                        op: "list",
                        key: prefix.to_string(),
                        detail: why,
                    }),
                );
            }
            let result = l.store.list(prefix).await;
            self.note(&l.name, &result);
            (l.name.clone(), result)
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("adfdr-rep-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[tokio::test]
    async fn writes_go_everywhere_reads_fall_back_past_damage() {
        let (a, b) = (scratch(), scratch());
        let reps = Replicas::new(vec![
            Location {
                name: "a".into(),
                store: Arc::new(FsStore::new(&a)),
                read_only: false,
            },
            Location {
                name: "b".into(),
                store: Arc::new(FsStore::new(&b)),
                read_only: false,
            },
            Location {
                name: "gone".into(),
                store: Arc::new(FsStore::new("/nonexistent/x")),
                read_only: false,
            },
            Location {
                name: "ro".into(),
                store: Arc::new(FsStore::new(&b)),
                read_only: true,
            },
        ]);
        let all = reps.writable_names();
        assert_eq!(all, ["a", "b", "gone"]);
        let report = reps.put_new("v1/f/x", b"good", &all).await;
        assert_eq!(report.written, ["a", "b"]);
        assert_eq!(report.failed.len(), 1);
        // Retrying with identical bytes is fine; different bytes are not.
        assert_eq!(reps.put_new("v1/f/x", b"good", &all).await.written.len(), 2);
        assert_eq!(reps.put_new("v1/f/x", b"evil", &all).await.written.len(), 0);
        std::fs::remove_file(a.join("v1/f/x")).expect("rm");
        std::fs::write(a.join("v1/f/x"), b"bad!").expect("damage");
        let read = reps
            .read("v1/f/x", 100, None, |b| {
                if b == b"good" {
                    Ok(())
                } else {
                    Err("digest".into())
                }
            })
            .await
            .expect("read");
        assert_eq!(read.location, "b");
        assert_eq!(read.skipped.len(), 1);
        assert!(read.skipped[0].1.contains("damaged"));
        std::fs::remove_dir_all(&a).ok();
        std::fs::remove_dir_all(&b).ok();
    }
}
