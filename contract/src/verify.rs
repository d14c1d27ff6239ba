//! What a verify found: per location, the objects checked, damaged, missing
//! or foreign, and what a repair copied.

#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

#[derive(
    PartialEq, Clone, Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LocationReport {
    pub name: String,
    pub read_only: bool,
    /// The location could not be listed at all.
    pub error: Option<String>,
    pub checked: usize,
    pub bytes: u64,
    pub damaged: Vec<Problem>,
    pub missing: Vec<Problem>,
    /// Objects that are not what their name says and of which no location
    /// holds a copy that checks out: planted, forged or not adfdr's.
    #[serde(default)]
    pub foreign: Vec<Problem>,
    /// Payloads without a manifest anywhere: leftovers of interrupted backups.
    pub incomplete: Vec<String>,
}

impl LocationReport {
    pub fn healthy(&self) -> bool {
        self.error.is_none()
            && self.damaged.is_empty()
            && self.missing.is_empty()
            && self.foreign.is_empty()
    }

    /// Damage or foreign objects: a failed check, not only a missing copy.
    pub fn damaged_or_foreign(&self) -> bool {
        !self.damaged.is_empty() || !self.foreign.is_empty()
    }
}

/// One object copied into a location from a healthy one.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Repaired {
    pub location: String,
    pub key: String,
    pub from: String,
}

#[derive(
    Clone, PartialEq, Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Report {
    pub locations: Vec<LocationReport>,
    pub snapshots: usize,
    pub read_data: bool,
    /// Manifests were decrypted (a key was at hand).
    #[serde(default)]
    pub authenticated: bool,
    /// Snapshots the catalog saw committed that no location holds any more,
    /// and that adfdr did not prune: deleted behind adfdr's back (rollback).
    #[serde(default)]
    pub vanished: Vec<String>,
    pub repaired: Vec<Repaired>,
    pub repair_failed: Vec<(String, String, String)>,
    /// Foreign objects deleted on request (location, key).
    #[serde(default)]
    pub deleted_foreign: Vec<(String, String)>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.locations.iter().all(LocationReport::healthy) && self.vanished.is_empty()
    }

    /// Damage, foreign objects or vanished snapshots: a failed check (exit 4).
    pub fn failed_check(&self) -> bool {
        self.locations
            .iter()
            .any(LocationReport::damaged_or_foreign)
            || !self.vanished.is_empty()
    }

    /// Adds another scope's report (another factory) to this one.
    pub fn merge(&mut self, other: Report) {
        self.snapshots += other.snapshots;
        self.read_data |= other.read_data;
        self.authenticated |= other.authenticated;
        self.vanished.extend(other.vanished);
        for l in other.locations {
            match self.locations.iter_mut().find(|m| m.name == l.name) {
                Some(m) => {
                    m.error = m.error.take().or(l.error);
                    m.checked += l.checked;
                    m.bytes += l.bytes;
                    m.damaged.extend(l.damaged);
                    m.missing.extend(l.missing);
                    m.foreign.extend(l.foreign);
                    m.incomplete.extend(l.incomplete);
                }
                None => self.locations.push(l),
            }
        }
        self.repaired.extend(other.repaired);
        self.repair_failed.extend(other.repair_failed);
        self.deleted_foreign.extend(other.deleted_foreign);
    }
}
