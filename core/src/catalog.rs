//! The local catalog: an index of what the store holds, on redb in state_dir.
//! It is never the truth (the store is): `adfdr catalog rebuild` recreates it
//! from the store alone, and deleting it loses nothing but speed.
//! Records are JSON in redb tables keyed `factory \0 id`, so ids sort by time.

// redb's error enum is large; it only travels from a closure to `write`.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const REPAIRS: TableDefinition<&str, &[u8]> = TableDefinition::new("repairs");
const DRILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("drills");
/// Snapshots this catalog's prunes deleted (factory \0 id -> when): what
/// tells a prune from a deletion behind adfdr's back. Kept by a rebuild.
const PRUNED: TableDefinition<&str, &[u8]> = TableDefinition::new("pruned");

#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {detail}")]
pub struct CatalogError {
    pub path: String,
    pub detail: String,
    /// Another process has it open (redb's lock): a conflict, not damage.
    pub in_use: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SnapshotRecord {
    pub factory: String,
    pub id: String,
    pub created: String,
    pub resources: usize,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub payload_size: u64,
    pub manifest_size: u64,
    /// Key descriptions (`kv (Key Vault key …)`), from the public header.
    pub keys: Vec<String>,
    /// Locations holding an intact manifest, as last seen.
    pub locations: Vec<String>,
    /// Root hash, when known (it is inside the encrypted manifest).
    #[serde(default)]
    pub root: Option<String>,
    /// When the source state was read (encrypted; known after a decrypt).
    #[serde(default)]
    pub exported_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckpointRecord {
    pub factory: String,
    pub id: String,
    /// The snapshot the factory was still identical to.
    pub snapshot: String,
    pub created: String,
    pub locations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RepairRecord {
    pub location: String,
    pub key: String,
    pub reason: String,
    pub since: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    pub id: String,
    pub kind: String,
    pub factory: String,
    pub started: String,
    pub finished: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

pub use adfdr_contract::drill::DrillRecord;

pub struct Catalog {
    db: Database,
    path: PathBuf,
}

fn k(factory: &str, id: &str) -> String {
    format!("{factory}\0{id}")
}

impl Catalog {
    /// Where this catalog lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("catalog.redb")
    }

    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let err = |detail: String| CatalogError {
            in_use: false,
            path: path.display().to_string(),
            detail,
        };
        // The state directory 0700, the catalog 0600 (docs/SECURITY.md):
        // also outside systemd, where no StateDirectoryMode= sets them.
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err(format!("cannot create its directory: {e}")))?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(format!("cannot open it: {e}")))?;
        if let Ok(meta) = file.metadata()
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        drop(file);
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => CatalogError {
                in_use: true,
                ..err("in use by another adfdr process (the agent?); try again when it is done".into())
            },
            e => err(format!(
                "{e}; if it is damaged, delete it and run `adfdr catalog rebuild` (the store is the truth)"
            )),
        })?;
        let catalog = Catalog {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables so readers never meet a missing one.
        catalog.write(|tx| {
            tx.open_table(SNAPSHOTS)?;
            tx.open_table(CHECKPOINTS)?;
            tx.open_table(RUNS)?;
            tx.open_table(REPAIRS)?;
            tx.open_table(DRILLS)?;
            tx.open_table(PRUNED)?;
            Ok(())
        })?;
        Ok(catalog)
    }

    fn err(&self, e: impl std::fmt::Display) -> CatalogError {
        CatalogError {
            in_use: false,
            path: self.path.display().to_string(),
            detail: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), CatalogError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.write(|tx| {
            tx.open_table(table)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    fn scan<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        prefix: &str,
    ) -> Result<Vec<T>, CatalogError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            if let Ok(record) = serde_json::from_slice(value.value()) {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn prefix(factory: Option<&str>) -> String {
        factory.map(|f| format!("{f}\0")).unwrap_or_default()
    }

    pub fn put_snapshot(&self, r: &SnapshotRecord) -> Result<(), CatalogError> {
        self.put(SNAPSHOTS, &k(&r.factory, &r.id), r)
    }

    /// Snapshots, oldest first.
    pub fn snapshots(&self, factory: Option<&str>) -> Result<Vec<SnapshotRecord>, CatalogError> {
        self.scan(SNAPSHOTS, &Self::prefix(factory))
    }

    pub fn snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, CatalogError> {
        Ok(self.snapshots(None)?.into_iter().find(|s| s.id == id))
    }

    pub fn latest_snapshot(&self, factory: &str) -> Result<Option<SnapshotRecord>, CatalogError> {
        Ok(self.snapshots(Some(factory))?.pop())
    }

    pub fn put_checkpoint(&self, r: &CheckpointRecord) -> Result<(), CatalogError> {
        self.put(CHECKPOINTS, &k(&r.factory, &r.id), r)
    }

    /// Checkpoints, oldest first.
    pub fn checkpoints(
        &self,
        factory: Option<&str>,
    ) -> Result<Vec<CheckpointRecord>, CatalogError> {
        self.scan(CHECKPOINTS, &Self::prefix(factory))
    }

    /// When `factory`'s state was last confirmed in the store: its newest
    /// snapshot or checkpoint (the RPO evidence).
    pub fn last_confirmed(
        &self,
        factory: &str,
    ) -> Result<Option<time::OffsetDateTime>, CatalogError> {
        let snapshots = self.snapshots(Some(factory))?;
        let checkpoints = self.checkpoints(Some(factory))?;
        Ok(snapshots
            .iter()
            .map(|s| s.created.as_str())
            .chain(checkpoints.iter().map(|c| c.created.as_str()))
            .filter_map(crate::snapshot::parse_time)
            .max())
    }

    /// Did a prune through this catalog delete `factory`/`id`?
    pub fn was_pruned(&self, factory: &str, id: &str) -> Result<bool, CatalogError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(PRUNED).map_err(|e| self.err(e))?;
        Ok(t.get(k(factory, id).as_str())
            .map_err(|e| self.err(e))?
            .is_some())
    }

    /// Forgets a pruned snapshot and the checkpoints that confirmed it, and
    /// remembers that it was pruned (not lost).
    pub fn remove_snapshot(&self, factory: &str, id: &str) -> Result<(), CatalogError> {
        let checkpoints: Vec<String> = self
            .checkpoints(Some(factory))?
            .into_iter()
            .filter(|c| c.snapshot == id)
            .map(|c| k(factory, &c.id))
            .collect();
        let key = k(factory, id);
        let when = crate::snapshot::rfc3339(time::OffsetDateTime::now_utc());
        self.write(|tx| {
            tx.open_table(SNAPSHOTS)?.remove(key.as_str())?;
            tx.open_table(PRUNED)?
                .insert(key.as_str(), when.as_bytes())?;
            let mut t = tx.open_table(CHECKPOINTS)?;
            for c in &checkpoints {
                t.remove(c.as_str())?;
            }
            Ok(())
        })
    }

    pub fn put_drill(&self, r: &DrillRecord) -> Result<(), CatalogError> {
        self.put(DRILLS, &k(&r.factory, &r.id), r)
    }

    /// Drills, oldest first (ids start with their time).
    pub fn drills(&self, factory: Option<&str>) -> Result<Vec<DrillRecord>, CatalogError> {
        self.scan(DRILLS, &Self::prefix(factory))
    }

    pub fn add_repair(&self, r: &RepairRecord) -> Result<(), CatalogError> {
        self.put(REPAIRS, &k(&r.location, &r.key), r)
    }

    pub fn repairs(&self) -> Result<Vec<RepairRecord>, CatalogError> {
        self.scan(REPAIRS, "")
    }

    pub fn remove_repair(&self, location: &str, key: &str) -> Result<(), CatalogError> {
        let key = k(location, key);
        self.write(|tx| {
            tx.open_table(REPAIRS)?.remove(key.as_str())?;
            Ok(())
        })
    }

    pub fn record_run(&self, r: &RunRecord) -> Result<(), CatalogError> {
        self.put(RUNS, &k(&r.started, &r.id), r)
    }

    /// The newest run of `kind` for `factory` (any outcome).
    pub fn last_run(&self, kind: &str, factory: &str) -> Result<Option<RunRecord>, CatalogError> {
        Ok(self
            .scan::<RunRecord>(RUNS, "")?
            .into_iter()
            .filter(|r| r.kind == kind && r.factory == factory)
            .max_by(|a, b| a.started.cmp(&b.started)))
    }

    /// Empties the index tables (runs are local history and stay).
    pub fn clear_index(&self) -> Result<(), CatalogError> {
        self.write(|tx| {
            for table in [SNAPSHOTS, CHECKPOINTS, REPAIRS, DRILLS] {
                tx.delete_table(table)?;
                tx.open_table(table)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(factory: &str, id: &str) -> SnapshotRecord {
        SnapshotRecord {
            factory: factory.into(),
            id: id.into(),
            created: "2026-11-22T00:00:00Z".into(),
            resources: 3,
            counts: Default::default(),
            payload_size: 10,
            manifest_size: 5,
            keys: vec!["bg".into()],
            locations: vec!["a".into()],
            root: None,
            exported_at: None,
        }
    }

    #[test]
    fn records_survive_reopen_and_sort_by_id() {
        let dir = std::env::temp_dir().join(format!("adfdr-cat-{}", uuid::Uuid::new_v4().simple()));
        let path = Catalog::path_in(&dir);
        {
            let c = Catalog::open(&path).expect("open");
            c.put_snapshot(&snap("sales", "20261122T000002Z-b"))
                .expect("put");
            c.put_snapshot(&snap("sales", "20261122T000001Z-a"))
                .expect("put");
            c.put_snapshot(&snap("sales-eu", "20261122T000003Z-c"))
                .expect("put");
            c.add_repair(&RepairRecord {
                location: "neu".into(),
                key: "v1/x".into(),
                reason: "down".into(),
                since: "t".into(),
            })
            .expect("repair");
        }
        let c = Catalog::open(&path).expect("reopen");
        let ids: Vec<_> = c
            .snapshots(Some("sales"))
            .expect("list")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            ids,
            ["20261122T000001Z-a", "20261122T000002Z-b"],
            "sales-eu is another factory"
        );
        assert_eq!(
            c.latest_snapshot("sales")
                .expect("latest")
                .expect("some")
                .id,
            "20261122T000002Z-b"
        );
        assert_eq!(c.snapshots(None).expect("all").len(), 3);
        assert_eq!(c.repairs().expect("repairs").len(), 1);
        c.remove_repair("neu", "v1/x").expect("remove");
        assert!(c.repairs().expect("repairs").is_empty());
        c.clear_index().expect("clear");
        assert!(c.snapshots(None).expect("all").is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
