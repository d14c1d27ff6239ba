//! What a prune decided for each snapshot, and what it deleted.

use serde::Serialize;

#[derive(PartialEq, Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    pub id: String,
    pub time: String,
    pub bytes: u64,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(PartialEq, Clone, Debug, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub factory: String,
    pub dry_run: bool,
    pub snapshots: Vec<Snapshot>,
    pub deleted: Vec<String>,
    pub checkpoints_deleted: usize,
    pub freed_bytes: u64,
    /// Objects that could not be deleted (immutable, refused, unreachable).
    pub failures: Vec<String>,
    /// Locations that were not pruned (read-only or unreachable).
    pub untouched: Vec<String>,
    /// Payloads with no manifest in any location, older than an hour: the
    /// leftovers of backups that did not commit (a location refusing
    /// writes, a crash). Deleted with the rest (reported by a dry run).
    #[serde(default)]
    pub leftovers: Vec<String>,
    /// Snapshot names no copy of which opens with the configured keys
    /// (planted, forged, damaged everywhere, or sealed for retired keys):
    /// never counted by a keep rule, never deleted here; `adfdr verify`
    /// reports them.
    #[serde(default)]
    pub foreign: Vec<String>,
}
