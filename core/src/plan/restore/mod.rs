//! The restore plan: from a snapshot's resources, the target's current state
//! and the options, what to create, update, leave, skip and delete, which
//! triggers to stop and to start, and which secrets need values. Pure: the
//! executor (`ops::restore`) only carries it out, and `--plan` prints it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::graph::{Cycle, Graph, Key};
use super::overrides::{Overrides, set_pointer};
use super::select::Selector;
use crate::model::resource::{Resource, key};
use crate::model::restorability::{MASK, masked_pointers};
use crate::model::{ResourceKind, canonical_bytes};
use crate::snapshot::manifest::Runtimes;

mod extraneous;
mod factory;
mod locks;
mod runtimes;
mod select;
#[cfg(test)]
mod tests;
mod triggers;

pub use extraneous::never_deleted;
use locks::target_locks;
pub use runtimes::plan_runtimes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerMode {
    /// Every restored trigger ends stopped (the default: a DR copy must not
    /// run pipelines by itself).
    Stopped,
    /// Triggers that were started at backup time are started again.
    AsBackedUp,
}

/// What happens to integration runtimes and change data captures that were
/// running at backup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeMode {
    /// Started again (the default: a restored factory must run, and an
    /// Azure-SSIS IR takes 20-30 minutes to start, so it starts at once).
    #[default]
    AsBackedUp,
    /// Left stopped.
    Stopped,
}

#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub include: Vec<Selector>,
    pub exclude: Vec<Selector>,
    pub triggers: TriggerMode,
    pub runtimes: RuntimeMode,
    pub delete_extraneous: bool,
    /// Override misses and unfillable secrets are errors, not warnings.
    pub strict: bool,
    /// Restore the git configuration too (off for DR copies).
    pub with_git: bool,
    /// Region for a factory that must be created (default: the snapshot's).
    pub region: Option<String>,
    /// Masked secrets no override fills get a placeholder instead of
    /// skipping their resource (drills into scratch factories: they prove the
    /// definitions restore; connections need real values from overrides).
    pub placeholder_secrets: bool,
    /// Put the snapshot's management locks back (last). Drills do not: a
    /// lock on the scratch factory would block its cleanup.
    pub locks: bool,
    /// Create the alerts that watch the factory. Drills do not: a scratch
    /// factory's alerts would page people.
    pub alerts: bool,
    /// Grant again the roles others (people, groups) held on the factory.
    /// Drills do not: nobody works in a scratch factory.
    pub others_access: bool,
    /// The target's resource group and name, for the commands the plan's
    /// refusals print (None: placeholders).
    pub target_path: Option<(String, String)>,
    /// The change set an undo puts back: its deletes are the undo's, not
    /// `--delete-extraneous`'s.
    pub undo: Option<String>,
    /// What stands in for what in another region (`--map`): applied to
    /// every definition before overrides, each rewrite in the plan.
    pub region_map: Option<super::region_map::RegionMap>,
}

/// Where a linked service keeps credentials encrypted for its own factory.
pub const ENCRYPTED_CREDENTIAL: &str = "/properties/typeProperties/encryptedCredential";

/// What a drill writes where a secret came back masked and nothing fills it.
pub const PLACEHOLDER_SECRET: &str = "adfdr-drill-placeholder";

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            triggers: TriggerMode::Stopped,
            runtimes: RuntimeMode::AsBackedUp,
            locks: true,
            alerts: true,
            others_access: true,
            target_path: None,
            undo: None,
            delete_extraneous: false,
            strict: false,
            with_git: false,
            region: None,
            placeholder_secrets: false,
            region_map: None,
        }
    }
}

/// The target factory as read before planning.
#[derive(Clone, Debug, Default)]
pub struct TargetState {
    /// The factory's canonical definition; None when it does not exist.
    pub factory: Option<Value>,
    pub resources: Vec<Resource>,
    /// Trigger name → runtimeState.
    pub trigger_states: BTreeMap<String, String>,
    /// The target factory's createTime, as read.
    pub created: Option<String>,
    /// The target is the very factory the snapshot came from (same resource
    /// id, same createTime): only there does an encryptedCredential work.
    pub is_source: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FactoryPlan {
    pub action: Action,
    pub region: String,
    /// The first PUT (without the staging back-reference when its linked
    /// service is not there yet).
    #[serde(skip)]
    pub body: Value,
    /// A second PUT once every resource exists, when the back-reference
    /// had to wait.
    #[serde(skip)]
    pub final_body: Option<Value>,
    /// A second factory write sets the staging back-reference at the end.
    pub second_write: bool,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub kind: ResourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub name: String,
    pub label: String,
    pub action: Action,
    /// What is PUT (secrets filled): never serialized.
    #[serde(skip)]
    pub definition: Value,
    /// Steps (indices) that must be done first.
    #[serde(skip)]
    pub deps: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub label: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Delete {
    pub kind: ResourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub name: String,
    pub label: String,
    /// Deletes (indices) that must be done first (their dependents).
    #[serde(skip)]
    pub after: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SecretNeed {
    pub resource: String,
    pub pointer: String,
    /// Filled by an override (the source is named in the step's changes).
    pub filled: bool,
}

/// What a restored resource must look like when read back: its canonical
/// definition with secrets masked as the service masks them.
#[derive(Clone, Debug)]
pub struct Expected {
    pub key: Key,
    pub label: String,
    /// As the snapshot spells them (the key is lower case).
    pub parent: Option<String>,
    pub name: String,
    pub definition: Value,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub factory: FactoryPlan,
    /// Resources to write, dependencies first.
    pub steps: Vec<Step>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub delete: Vec<Delete>,
    /// Target resources absent from the snapshot that stay.
    pub extraneous_kept: Vec<Skipped>,
    /// Target triggers to stop first, dependents first.
    pub stop_triggers: Vec<String>,
    /// Triggers to start at the end, dependencies first.
    pub start_triggers: Vec<String>,
    /// Triggers started at backup that cannot be started again, and why.
    pub unstartable: Vec<Skipped>,
    /// Managed IRs running at backup: each is started as soon as it exists
    /// (a long-running operation, in parallel with the rest).
    pub start_runtimes: Vec<String>,
    /// Change data captures running at backup, started at the end.
    pub start_cdcs: Vec<String>,
    /// Runtimes and CDCs running at backup that stay stopped, and why.
    pub runtimes_left: Vec<Skipped>,
    pub secrets: Vec<SecretNeed>,
    pub warnings: Vec<String>,
    /// Longest dependency chain among the steps (sequential round trips).
    pub depth: usize,
    #[serde(skip)]
    pub expected: Vec<Expected>,
    #[serde(skip)]
    pub expected_factory: Value,
}

impl Plan {
    /// Nothing to do.
    pub fn is_noop(&self) -> bool {
        self.factory.action == Action::Unchanged
            && self.factory.final_body.is_none()
            && self.steps.is_empty()
            && self.delete.is_empty()
            && self.stop_triggers.is_empty()
            && self.start_triggers.is_empty()
            && self.start_runtimes.is_empty()
            && self.start_cdcs.is_empty()
    }

    pub fn writes(&self) -> usize {
        usize::from(self.factory.action != Action::Unchanged)
            + usize::from(self.factory.final_body.is_some())
            + self.steps.len()
            + self.delete.len()
            + self.stop_triggers.len()
            + self.start_triggers.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}; break the cycle in the source factory, or --exclude one of its resources")]
    Cycle(#[from] Cycle),
    #[error(
        "{resource} needs {needs}, which is {why}; include it, or restore {resource} into a factory that has it"
    )]
    MissingDependency {
        resource: String,
        needs: String,
        why: String,
    },
    #[error("the snapshot has no factory definition")]
    NoFactory,
    #[error("the target factory does not exist and the snapshot records no region: give --region")]
    NoRegion,
    #[error("--strict: {}", .0.join("; "))]
    Strict(Vec<String>),
    /// A lock on the target forbids what the restore must do.
    #[error(
        "the target factory has the {level} lock {lock}, which forbids {what}, restore, and the restore puts the snapshot's locks back last"
    )]
    Locked {
        /// `'NAME'`, and where an inherited one is (`'NAME' on SCOPE`).
        lock: String,
        level: String,
        /// What it forbids, and the command that removes it.
        what: String,
    },
    /// The source factory is encrypted with a customer-managed key, and the
    /// service only accepts one on an empty factory without a managed VNet.
    #[error(
        "the snapshot's factory is encrypted with a customer-managed key ({key}), and {why}; restore with --to into a new factory name (it is created with the key before any resource), or remove the target's resources first"
    )]
    CustomerManagedKey { key: String, why: String },
}

/// Global configuration keys of the factory's staging back-reference to one
/// of its own linked services (applied after that linked service exists).
const STAGING: &[&str] = &[
    "factoryStagingLSReferenceName",
    "factoryStagingLSType",
    "factoryStagingFolderPath",
];

fn canon(v: &Value) -> Vec<u8> {
    canonical_bytes(v)
}

fn selected(options: &PlanOptions, kind: ResourceKind, parent: Option<&str>, name: &str) -> bool {
    (options.include.is_empty()
        || options
            .include
            .iter()
            .any(|s| s.matches(kind, parent, name)))
        && !options
            .exclude
            .iter()
            .any(|s| s.matches(kind, parent, name))
}

/// Kinds the API cannot create by PUT.
fn restorable(kind: ResourceKind) -> bool {
    kind != ResourceKind::PrivateEndpointConnection
}

pub fn plan(
    snapshot: &[Resource],
    snapshot_triggers: &BTreeMap<String, String>,
    snapshot_region: Option<&str>,
    target: &TargetState,
    overrides: Option<&Overrides>,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let source_factory = snapshot
        .iter()
        .find(|r| r.kind == ResourceKind::Factory)
        .ok_or(PlanError::NoFactory)?;
    let mut p = Planner::new(snapshot, target, overrides, options);
    let chosen = p.select()?;
    let mut prepared = p.prepare(&chosen);
    p.skip_dangling(&chosen, &mut prepared.skip);
    if !p.strict.is_empty() {
        return Err(PlanError::Strict(std::mem::take(&mut p.strict)));
    }
    p.propagate_skips(&chosen, &mut prepared.skip);
    let staged = p.stage(&chosen, &mut prepared);
    let (steps, depth) = p.order(&staged.writes)?;
    let (delete, extraneous_kept) = p.extraneous(&staged.expected);
    let triggers = p.triggers(snapshot_triggers, &steps, &delete, &staged.expected);
    let factory = p.factory(source_factory, snapshot_region)?;
    target_locks(target, &steps, &delete, options)?;
    Ok(Plan {
        factory: factory.plan,
        steps,
        unchanged: staged.unchanged,
        skipped: staged.skipped,
        delete,
        extraneous_kept,
        stop_triggers: triggers.stop,
        start_triggers: triggers.start,
        unstartable: triggers.unstartable,
        start_runtimes: Vec::new(),
        start_cdcs: Vec::new(),
        runtimes_left: Vec::new(),
        secrets: prepared.secrets,
        warnings: p.warnings,
        depth,
        expected: staged.expected,
        expected_factory: factory.expected,
    })
}

/// What every phase of planning reads, and the warnings it collects.
struct Planner<'a> {
    options: &'a PlanOptions,
    overrides: Option<&'a Overrides>,
    target: &'a TargetState,
    /// The snapshot's resources but the factory, and their graph.
    children: Vec<&'a Resource>,
    graph: Graph,
    in_target: HashMap<Key, &'a Resource>,
    warnings: Vec<String>,
    /// What `--strict` refuses.
    strict: Vec<String>,
}

/// A chosen resource's definition after overrides, with the override
/// notes and the pointers of the secrets they filled.
type Prepared = (Value, Vec<String>, Vec<String>);

/// Per resource (index into `children`): why it is skipped, its prepared
/// definition; and every secret that needs a value.
struct Preparation {
    skip: Vec<Option<String>>,
    definitions: Vec<Option<Prepared>>,
    secrets: Vec<SecretNeed>,
}

/// A write before ordering: the resource, the action, its definition and
/// the override notes.
type Write = (usize, Action, Value, Vec<String>);

struct Staged {
    writes: Vec<Write>,
    unchanged: Vec<String>,
    skipped: Vec<Skipped>,
    expected: Vec<Expected>,
}

struct Triggers {
    stop: Vec<String>,
    start: Vec<String>,
    unstartable: Vec<Skipped>,
}

struct Factory {
    plan: FactoryPlan,
    /// The factory as it must read back.
    expected: Value,
}

impl<'a> Planner<'a> {
    fn new(
        snapshot: &'a [Resource],
        target: &'a TargetState,
        overrides: Option<&'a Overrides>,
        options: &'a PlanOptions,
    ) -> Planner<'a> {
        let children: Vec<&Resource> = snapshot
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory)
            .collect();
        let in_target = target
            .resources
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory)
            .map(|r| (r.key(), r))
            .collect();
        Planner {
            graph: Graph::build(children.iter().copied()),
            children,
            in_target,
            options,
            overrides,
            target,
            warnings: Vec::new(),
            strict: Vec::new(),
        }
    }

    /// A warning, or under `--strict` a refusal.
    fn warn_or_refuse(&mut self, line: String) {
        if self.options.strict {
            self.strict.push(line);
        } else {
            self.warnings.push(line);
        }
    }
}

/// Human name of an action.
pub fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Unchanged => "unchanged",
    }
}
