//! What a drill found: the evidence auditors ask for (the sealed report),
//! the facts it observed, the judgement against the targets, and the
//! record the catalog and the report's plaintext header keep.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cleanup {
    pub mode: String,
    pub ok: bool,
    pub detail: String,
}

/// Everything a drill found: the evidence auditors ask for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub id: String,
    pub factory: String,
    pub source: String,
    pub target: String,
    pub snapshot: String,
    /// How the snapshot was chosen.
    pub pick: String,
    /// When the snapshot's state was last confirmed in the store.
    pub confirmed: String,
    pub started: String,
    pub finished: String,
    pub judgement: Judgement,
    pub phases: Vec<Phase>,
    /// Resources in the snapshot, restored, and left alone as already equal.
    pub resources: usize,
    pub written: usize,
    pub unchanged: usize,
    /// Masked secrets given a placeholder in the scratch factory.
    pub placeholder_secrets: usize,
    /// Resources not restored, with why (by design: PE connections, ...).
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
    pub checks: Vec<Check>,
    pub cleanup: Cleanup,
    pub facts: Facts,
    /// Where the report was stored.
    #[serde(default)]
    pub locations: Vec<String>,
}

/// One line of the proof: what was checked and how it came out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.judgement.verdict == Verdict::Passed
    }

    /// What the catalog and the report's plaintext header keep (no resource names).
    pub fn record(&self) -> DrillRecord {
        DrillRecord {
            factory: self.factory.clone(),
            id: self.id.clone(),
            started: self.started.clone(),
            snapshot: self.snapshot.clone(),
            target: self.target.clone(),
            verdict: match self.judgement.verdict {
                Verdict::Passed => "passed".into(),
                Verdict::Failed => "failed".into(),
            },
            rto_seconds: self.judgement.rto_seconds,
            rto_target_seconds: self.judgement.rto_target_seconds,
            rpo_seconds: self.judgement.rpo_seconds,
            rpo_target_seconds: self.judgement.rpo_target_seconds,
            confirmed: self.confirmed.clone(),
            reasons: self.judgement.reasons.len(),
            locations: self.locations.clone(),
        }
    }
}

/// What the smoke pipeline did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Smoke {
    pub pipeline: String,
    pub run_id: Option<String>,
    /// Succeeded, Failed, Cancelled, TimedOut, or NotStarted.
    pub status: String,
    pub message: Option<String>,
    pub seconds: f64,
}

/// One phase and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Phase {
    pub name: String,
    pub ms: u64,
}

/// What a drill observed (all times in milliseconds since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Facts {
    pub started_ms: i64,
    /// When the restore was verified (None: it never was).
    pub verified_ms: Option<i64>,
    /// When the snapshot's state was last confirmed in the store.
    pub confirmed_ms: i64,
    /// A restore that could not run or finish.
    pub restore_error: Option<String>,
    /// Writes that failed.
    pub apply_failures: Vec<String>,
    /// Restored resources that do not read back as the snapshot has them.
    pub mismatches: Vec<String>,
    /// References that resolve in the snapshot but not in the scratch factory.
    pub broken_references: Vec<String>,
    /// Resources the restore skipped (unrestorable by design, or excluded).
    pub skipped: Vec<String>,
    pub global_parameters_equal: bool,
    /// Trigger names in the snapshot that are not in the scratch factory,
    /// and the ones there that should not be.
    pub triggers_missing: Vec<String>,
    pub triggers_extra: Vec<String>,
    pub triggers_started: Vec<String>,
    /// Integration runtimes and CDCs running at backup that do not run in
    /// the scratch factory: it could not run what depends on them.
    #[serde(default)]
    pub runtimes_not_running: Vec<String>,
    /// Managed private endpoints that failed to provision (or never
    /// finished): the restored factory cannot reach what they lead to.
    #[serde(default)]
    pub endpoints_failed: Vec<String>,
    /// Managed private endpoints defined and provisioned but not approved on
    /// the resource they reach: a step for that resource's owner, not a
    /// failure of the restore.
    #[serde(default)]
    pub endpoints_pending: Vec<String>,
    /// Credentials and identities the restored factory needs from people:
    /// placeholders standing in for secrets, a new system-assigned
    /// principal, a credential whose identity is not attached.
    #[serde(default)]
    pub credentials_to_give: Vec<String>,
    /// Roles the old identity held that the new one was not granted: what
    /// its pipelines reached, they cannot reach.
    #[serde(default)]
    pub access_not_granted: Vec<String>,
    pub smoke: Option<Smoke>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// What keeps the restored factory from running that is not the
    /// restore's to do (approvals on other teams' resources): reported, not
    /// failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Drill start to verified restore.
    pub rto_seconds: Option<f64>,
    pub rto_target_seconds: Option<f64>,
    /// Drill start minus the time the snapshot's state was last confirmed.
    pub rpo_seconds: f64,
    pub rpo_target_seconds: Option<f64>,
}

/// A drill's verdict and measurements (the report's plaintext summary).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillRecord {
    pub factory: String,
    pub id: String,
    pub started: String,
    pub snapshot: String,
    pub target: String,
    /// passed | failed
    pub verdict: String,
    pub rto_seconds: Option<f64>,
    pub rto_target_seconds: Option<f64>,
    pub rpo_seconds: f64,
    pub rpo_target_seconds: Option<f64>,
    /// When the snapshot's state was last confirmed (the verified RPO evidence).
    pub confirmed: String,
    pub reasons: usize,
    pub locations: Vec<String>,
}

/// What a drill does with the scratch factory afterwards.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DrillCleanup {
    /// Delete what the drill restored; keep the (empty) factory.
    #[default]
    DeleteResources,
    /// Delete the whole scratch factory.
    DeleteFactory,
    /// Leave everything for inspection.
    Keep,
}

impl DrillCleanup {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "delete-resources" => Some(DrillCleanup::DeleteResources),
            "delete-factory" => Some(DrillCleanup::DeleteFactory),
            "keep" => Some(DrillCleanup::Keep),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DrillCleanup::DeleteResources => "delete-resources",
            DrillCleanup::DeleteFactory => "delete-factory",
            DrillCleanup::Keep => "keep",
        }
    }
}
