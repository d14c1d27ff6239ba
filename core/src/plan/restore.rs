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

/// A lock already on the target blocks the restore's writes (ReadOnly) or
/// deletes (CanNotDelete): refused before anything is written.
fn target_locks(
    target: &TargetState,
    steps: &[Step],
    delete: &[Delete],
    options: &PlanOptions,
) -> Result<(), PlanError> {
    let writes = steps.iter().any(|s| s.kind != ResourceKind::Lock);
    let deletes = match &options.undo {
        Some(set) => format!(
            "the deletes undoing change set {set} needs ({})",
            delete
                .iter()
                .map(|d| d.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "the deletes --delete-extraneous asks for".to_string(),
    };
    let (rg, factory) = options
        .target_path
        .clone()
        .unwrap_or_else(|| ("RG".into(), "FACTORY".into()));
    for lock in target
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Lock)
    {
        let level = lock
            .definition
            .pointer("/properties/level")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let what = match level {
            "ReadOnly" if writes || !delete.is_empty() => "every write".to_string(),
            "CanNotDelete" if !delete.is_empty() => deletes.clone(),
            _ => continue,
        };
        let from = lock
            .definition
            .pointer("/properties/inheritedFrom")
            .and_then(Value::as_str);
        let remove = match from {
            Some(scope) => format!(
                "az lock delete --ids {scope}/providers/Microsoft.Authorization/locks/{}",
                lock.name
            ),
            None => format!(
                "az lock delete --name {} --resource-group {rg} --resource-type Microsoft.DataFactory/factories --resource {factory}",
                lock.name
            ),
        };
        return Err(PlanError::Locked {
            lock: match from {
                Some(scope) => format!("'{}' on {scope}", lock.name),
                None => format!("'{}'", lock.name),
            },
            level: level.to_string(),
            what: format!("{what}; remove it ({remove})"),
        });
    }
    Ok(())
}

/// Which runtimes the restore starts: Managed IRs that were Started (or
/// Starting) at backup and CDCs that were Running, when they are part of the
/// restore and `mode` is as-backed-up; the others running at backup are
/// listed with why they stay stopped.
pub fn plan_runtimes(plan: &mut Plan, runtimes: &Runtimes, mode: RuntimeMode) {
    let restored = |kind: ResourceKind, name: &str| {
        let label = crate::model::resource::label(kind, None, name);
        plan.steps.iter().any(|s| s.label == label) || plan.unchanged.contains(&label)
    };
    let running = [
        (
            ResourceKind::IntegrationRuntime,
            &runtimes.integration_runtimes,
            &["Started", "Starting"][..],
        ),
        (
            ResourceKind::ChangeDataCapture,
            &runtimes.change_data_captures,
            &["Running"][..],
        ),
    ];
    let (mut start_irs, mut start_cdcs, mut left) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, states, up) in running {
        for (name, state) in states {
            if !up.iter().any(|u| u.eq_ignore_ascii_case(state)) {
                continue;
            }
            let label = crate::model::resource::label(kind, None, name);
            let reason = match (restored(kind, name), mode) {
                (false, _) => format!("{state} at backup, but not restored"),
                (true, RuntimeMode::Stopped) => {
                    format!("{state} at backup; left stopped (--runtimes stopped)")
                }
                (true, RuntimeMode::AsBackedUp) => {
                    match kind {
                        ResourceKind::IntegrationRuntime => start_irs.push(name.clone()),
                        _ => start_cdcs.push(name.clone()),
                    }
                    continue;
                }
            };
            left.push(Skipped { label, reason });
        }
    }
    plan.start_runtimes = start_irs;
    plan.start_cdcs = start_cdcs;
    plan.runtimes_left = left;
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

    /// The selection, then the dependencies the selection needs (unless the
    /// target has them); an excluded dependency the target lacks refuses.
    fn select(&self) -> Result<Vec<bool>, PlanError> {
        let (children, graph, options) = (&self.children, &self.graph, self.options);
        let mut chosen: Vec<bool> = children
            .iter()
            .map(|r| selected(options, r.kind, r.parent.as_deref(), &r.name))
            .collect();
        let mut queue: Vec<usize> = (0..children.len()).filter(|&i| chosen[i]).collect();
        while let Some(i) = queue.pop() {
            for &d in &graph.deps[i] {
                if chosen[d] || self.in_target.contains_key(&graph.keys[d]) {
                    continue;
                }
                let dep = children[d];
                if options
                    .exclude
                    .iter()
                    .any(|s| s.matches(dep.kind, dep.parent.as_deref(), &dep.name))
                {
                    return Err(PlanError::MissingDependency {
                        resource: graph.labels[i].clone(),
                        needs: graph.labels[d].clone(),
                        why: "excluded and not in the target factory".into(),
                    });
                }
                chosen[d] = true;
                queue.push(d);
            }
        }
        Ok(chosen)
    }

    /// Each chosen resource's definition after overrides and placeholders;
    /// skips for what PUT cannot make and for masked secrets nobody fills;
    /// override rules that matched nothing.
    fn prepare(&mut self, chosen: &[bool]) -> Preparation {
        let n = self.children.len();
        let mut out = Preparation {
            skip: vec![None; n],
            definitions: vec![None; n],
            secrets: Vec::new(),
        };
        let mut rule_used: HashSet<usize> = HashSet::new();
        for i in (0..n).filter(|&i| chosen[i]) {
            let r = self.children[i];
            if !restorable(r.kind) {
                // An inbound connection: the endpoint is someone else's.
                let endpoint = r
                    .definition
                    .pointer("/properties/privateEndpoint/id")
                    .and_then(Value::as_str)
                    .unwrap_or("its private endpoint");
                out.skip[i] = Some(format!(
                    "an inbound private endpoint connection cannot be re-created from here: the owner of {endpoint} connects it to the target factory again (a new private endpoint, or a new connection on theirs), and it is approved on the target"
                ));
                continue;
            }
            if r.kind.in_resource_group() && !self.options.alerts {
                out.skip[i] = Some(
                    "a drill creates no alerts: they would page people about a scratch factory"
                        .into(),
                );
                continue;
            }
            if r.kind == ResourceKind::Lock && r.parent.is_some() {
                let from = r
                    .definition
                    .pointer("/properties/inheritedFrom")
                    .and_then(Value::as_str)
                    .unwrap_or("the source's resource group");
                out.skip[i] = Some(format!(
                    "inherited from {from}: kept as context, not put on the target (its resource group and subscription have their own locks)"
                ));
                continue;
            }
            let others = r.kind == ResourceKind::RoleAssignment
                && r.definition
                    .pointer("/properties/principal")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !crate::model::kind::own_identity(p));
            if others && !self.options.others_access {
                out.skip[i] = Some(
                    "a drill grants nobody but the factory's identity access to its scratch factory"
                        .into(),
                );
                continue;
            }
            if r.kind == ResourceKind::Lock && !self.options.locks {
                out.skip[i] = Some(
                    "a drill puts no locks on its scratch factory: they would block its cleanup"
                        .into(),
                );
                continue;
            }
            let (definition, changes, filled, skip) =
                self.prepare_one(i, &mut rule_used, &mut out.secrets);
            out.skip[i] = skip;
            out.definitions[i] = Some((definition, changes, filled));
        }
        self.unused_rules(&rule_used);
        out
    }

    /// One resource: overrides, secrets filled or placeholders, and the skip
    /// reason when a masked secret stays unfilled.
    fn prepare_one(
        &mut self,
        i: usize,
        rule_used: &mut HashSet<usize>,
        secrets: &mut Vec<SecretNeed>,
    ) -> (Value, Vec<String>, Vec<String>, Option<String>) {
        let r = self.children[i];
        let label = self.graph.labels[i].clone();
        let mut definition = r.definition.clone();
        // Older ADF git exports store a managed VNet without `properties`;
        // the service refuses a PUT without it (400) and serves `{}` plus
        // its read-only fields, so that is what is sent and compared.
        if let Some(map) = definition.as_object_mut()
            && !map.get("properties").is_some_and(Value::is_object)
        {
            map.insert("properties".into(), Value::Object(Default::default()));
        }
        let (mut changes, mut filled) = (Vec::new(), Vec::new());
        if let Some(o) = self.overrides {
            for rule in &o.rules {
                if Overrides::rule_matches(rule, r.kind, r.parent.as_deref(), &r.name) {
                    rule_used.insert(rule.number);
                }
            }
            let applied = o.apply(r.kind, r.parent.as_deref(), &r.name, &mut definition);
            for miss in applied.misses {
                self.warn_or_refuse(format!("{label}: {miss} matches nothing"));
            }
            changes = applied.changes;
            filled = applied.filled;
        }
        let need = |pointer: &str, filled: bool| SecretNeed {
            resource: label.clone(),
            pointer: pointer.to_string(),
            filled,
        };
        secrets.extend(filled.iter().map(|p| need(p, true)));
        let mut masked = masked_pointers(&definition);
        if self.options.placeholder_secrets {
            for pointer in masked.drain(..) {
                set_pointer(
                    &mut definition,
                    &pointer,
                    Value::String(PLACEHOLDER_SECRET.into()),
                );
                secrets.push(need(&pointer, true));
                filled.push(pointer);
            }
        }
        let credential = self.encrypted_credential(r, &mut definition, &changes, &filled);
        if let Some(filled_by) = credential {
            secrets.push(need(ENCRYPTED_CREDENTIAL, filled_by));
        }
        // The target already holds this definition (its secret included, as
        // far as anyone can tell through the mask): nothing to write.
        let same_in_target = self.in_target.get(&r.key()).is_some_and(|t| {
            let mut view = definition.clone();
            for pointer in &filled {
                set_pointer(&mut view, pointer, Value::String(MASK.into()));
            }
            canon(&t.definition) == canon(&view)
        });
        let mut skip = None;
        if credential == Some(false) && !same_in_target {
            let reason = format!(
                "its encryptedCredential was made for the source factory's credential store and works in no other; supply the linked service's credentials with an override (a [[rule]] that sets or fills {}/...), which replaces it",
                "/properties/typeProperties"
            );
            if self.options.strict {
                self.strict.push(format!("{label}: {reason}"));
            }
            skip = Some(reason);
        }
        if !masked.is_empty() && !same_in_target && skip.is_none() {
            secrets.extend(masked.iter().map(|p| need(p, false)));
            let reason = format!(
                "secret {} came back masked at backup and no override fills it; add a [[rule]] with fill = {{ \"{}\" = {{ env = \"VAR\" }} }} to --overrides",
                masked.join(", "),
                masked[0]
            );
            if self.options.strict {
                self.strict.push(format!("{label}: {reason}"));
            }
            skip = Some(reason);
        }
        (definition, changes, filled, skip)
    }

    /// A linked service's encryptedCredential, restored anywhere but its own
    /// factory: dropped when an override supplies the credentials (or a drill
    /// uses placeholders); None when there is none or the target is the source.
    /// Some(true): replaced; Some(false): still needed.
    fn encrypted_credential(
        &self,
        r: &Resource,
        definition: &mut Value,
        changes: &[String],
        filled: &[String],
    ) -> Option<bool> {
        let present = definition
            .pointer(ENCRYPTED_CREDENTIAL)
            .is_some_and(Value::is_string);
        if r.kind != ResourceKind::LinkedService || !present || self.target.is_source {
            return None;
        }
        let supplied = changes.iter().chain(filled).any(|c| {
            c.contains("/properties/typeProperties/") && !c.contains("encryptedCredential")
        });
        if !(supplied || self.options.placeholder_secrets) {
            return Some(false);
        }
        if let Some(props) = definition
            .pointer_mut("/properties/typeProperties")
            .and_then(Value::as_object_mut)
        {
            props.shift_remove("encryptedCredential");
        }
        Some(true)
    }

    fn unused_rules(&mut self, used: &HashSet<usize>) {
        let Some(o) = self.overrides else { return };
        for rule in &o.rules {
            if !used.contains(&rule.number) {
                self.warn_or_refuse(format!(
                    "{}: rule {} ({}) matches no resource being restored",
                    o.source, rule.number, rule.what
                ));
            }
        }
    }

    /// References to what exists neither in the snapshot nor in the target.
    fn skip_dangling(&mut self, chosen: &[bool], skip: &mut [Option<String>]) {
        for e in &self.graph.external {
            if chosen[e.from] && skip[e.from].is_none() && !self.in_target.contains_key(&e.to) {
                let reason = format!(
                    "references {} (at {}), which is neither in the snapshot nor in the target factory",
                    e.label, e.pointer
                );
                if self.options.strict {
                    self.strict
                        .push(format!("{}: {reason}", self.graph.labels[e.from]));
                }
                skip[e.from] = Some(reason);
            }
        }
    }

    /// Whatever needs a skipped resource the target does not have is
    /// skipped too, in dependency order (a cycle is reported later, on the
    /// resources actually written).
    fn propagate_skips(&self, chosen: &[bool], skip: &mut [Option<String>]) {
        let graph = &self.graph;
        let order: Vec<usize> = match graph.waves() {
            Ok(w) => w.into_iter().flatten().collect(),
            Err(_) => (0..self.children.len()).collect(),
        };
        // One pass in dependency order suffices; the loop only matters when
        // a cycle leaves the order arbitrary.
        loop {
            let mut changed = false;
            for &i in &order {
                if !chosen[i] || skip[i].is_some() {
                    continue;
                }
                if let Some(&d) = graph.deps[i]
                    .iter()
                    .find(|&&d| skip[d].is_some() && !self.in_target.contains_key(&graph.keys[d]))
                {
                    skip[i] = Some(format!("needs {}, which is skipped", graph.labels[d]));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Create, update or unchanged, and what each must read back as.
    fn stage(&self, chosen: &[bool], prepared: &mut Preparation) -> Staged {
        let graph = &self.graph;
        let mut staged = Staged {
            writes: Vec::new(),
            unchanged: Vec::new(),
            skipped: Vec::new(),
            expected: Vec::new(),
        };
        for i in (0..self.children.len()).filter(|&i| chosen[i]) {
            if let Some(reason) = &prepared.skip[i] {
                staged.skipped.push(Skipped {
                    label: graph.labels[i].clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            let (definition, changes, filled) = prepared.definitions[i]
                .take()
                .expect("chosen and not skipped");
            let mut masked = definition.clone();
            for pointer in &filled {
                set_pointer(&mut masked, pointer, Value::String(MASK.into()));
            }
            staged.expected.push(Expected {
                key: graph.keys[i].clone(),
                label: graph.labels[i].clone(),
                parent: self.children[i].parent.clone(),
                name: self.children[i].name.clone(),
                definition: masked.clone(),
            });
            let action = match self.in_target.get(&graph.keys[i]) {
                None => Action::Create,
                Some(t) if canon(&t.definition) == canon(&masked) => {
                    staged.unchanged.push(graph.labels[i].clone());
                    continue;
                }
                Some(_) => Action::Update,
            };
            staged.writes.push((i, action, definition, changes));
        }
        staged
    }

    /// The writes in dependency order, each with the positions of the writes
    /// it needs: their own graph, so a cycle is reported on what is written.
    fn order(&self, writes: &[Write]) -> Result<(Vec<Step>, usize), PlanError> {
        let write_graph = Graph::build(writes.iter().map(|(i, ..)| self.children[*i]));
        let waves = write_graph.waves()?;
        let depth = waves.len();
        let mut position = vec![0usize; writes.len()];
        let order: Vec<usize> = waves.into_iter().flatten().collect();
        for (pos, &s) in order.iter().enumerate() {
            position[s] = pos;
        }
        let steps = order
            .iter()
            .map(|&s| {
                let (i, action, definition, changes) = &writes[s];
                let r = self.children[*i];
                Step {
                    kind: r.kind,
                    parent: r.parent.clone(),
                    name: r.name.clone(),
                    label: self.graph.labels[*i].clone(),
                    action: *action,
                    definition: definition.clone(),
                    deps: write_graph.deps[s].iter().map(|&d| position[d]).collect(),
                    changes: changes.clone(),
                }
            })
            .collect();
        Ok((steps, depth))
    }
}

impl<'a> Planner<'a> {
    /// In the target (and the selection), not in the snapshot: deleted with
    /// --delete-extraneous, dependents first, unless what stays still
    /// references it; else kept, each with why.
    fn extraneous(&mut self, expected: &[Expected]) -> (Vec<Delete>, Vec<Skipped>) {
        let in_snapshot: HashSet<Key> = self.children.iter().map(|r| r.key()).collect();
        let options = self.options;
        let extraneous: Vec<&'a Resource> = self
            .target
            .resources
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory && !in_snapshot.contains(&r.key()))
            .filter(|r| selected(options, r.kind, r.parent.as_deref(), &r.name))
            .collect();
        // What could not come back, or is not adfdr's to remove, stays.
        let (never, extraneous): (Vec<&'a Resource>, Vec<&'a Resource>) = extraneous
            .into_iter()
            .partition(|r| never_deleted(r).is_some());
        let mut never_kept: Vec<Skipped> = never
            .iter()
            .map(|r| Skipped {
                label: r.label(),
                reason: format!(
                    "not in the snapshot, kept: {}",
                    never_deleted(r).unwrap_or_default()
                ),
            })
            .collect();
        if !self.options.delete_extraneous || extraneous.is_empty() {
            let kept = extraneous
                .iter()
                .map(|r| Skipped {
                    label: r.label(),
                    reason: "not in the snapshot; --delete-extraneous removes it".into(),
                })
                .chain(never_kept)
                .collect();
            return (Vec::new(), kept);
        }
        let mut blocked = self.blocked(&extraneous, expected);
        let keep = keep_closure(&extraneous, &mut blocked);
        let going: Vec<&Resource> = extraneous
            .iter()
            .copied()
            .filter(|r| !keep.contains(&r.key()))
            .collect();
        let delete = self.deletions(&going);
        let kept = extraneous
            .iter()
            .filter(|r| keep.contains(&r.key()))
            .map(|r| Skipped {
                label: r.label(),
                reason: format!(
                    "not in the snapshot, but {} still references it",
                    blocked
                        .get(&r.key())
                        .map_or("a resource that stays", String::as_str)
                ),
            })
            .collect::<Vec<_>>();
        let mut kept = kept;
        kept.append(&mut never_kept);
        (delete, kept)
    }

    /// Extraneous resources that something staying references, and who:
    /// final definitions are the restored ones where restored, the
    /// target's elsewhere.
    fn blocked(&self, extraneous: &[&Resource], expected: &[Expected]) -> HashMap<Key, String> {
        let doomed: HashSet<Key> = extraneous.iter().map(|r| r.key()).collect();
        let restored: HashMap<Key, &Value> = expected
            .iter()
            .map(|e| (e.key.clone(), &e.definition))
            .collect();
        let mut finals: Vec<Resource> = Vec::new();
        for r in self
            .target
            .resources
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory && !doomed.contains(&r.key()))
        {
            let definition = restored.get(&r.key()).map_or(&r.definition, |d| *d).clone();
            finals.push(Resource {
                definition,
                ..r.clone()
            });
        }
        for e in expected
            .iter()
            .filter(|e| !self.in_target.contains_key(&e.key))
        {
            let r = self.children[self.graph.index(&e.key).expect("in graph")];
            finals.push(Resource {
                definition: e.definition.clone(),
                ..r.clone()
            });
        }
        let mut blocked: HashMap<Key, String> = HashMap::new();
        for r in &finals {
            for reference in crate::model::references(&r.definition) {
                if let Some((kind, name)) = reference.dependency() {
                    let k = key(kind, None, name);
                    if doomed.contains(&k) {
                        blocked.entry(k).or_insert_with(|| r.label());
                    }
                }
            }
        }
        blocked
    }

    /// Deletes of `going`, dependents first: the reverse of dependency order.
    fn deletions(&mut self, going: &[&Resource]) -> Vec<Delete> {
        let g = Graph::build(going.iter().copied());
        let order: Vec<usize> = match g.waves() {
            Ok(w) => w.into_iter().rev().flatten().collect(),
            Err(c) => {
                self.warnings.push(format!(
                    "extraneous resources form a {c}; deleting them in name order"
                ));
                (0..going.len()).collect()
            }
        };
        let mut pos = vec![0usize; going.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        let dependents = g.dependents();
        order
            .iter()
            .map(|&i| {
                let r = going[i];
                Delete {
                    kind: r.kind,
                    parent: r.parent.clone(),
                    name: r.name.clone(),
                    label: r.label(),
                    after: dependents[i].iter().map(|&d| pos[d]).collect(),
                }
            })
            .collect()
    }

    /// Which triggers to stop first (started target triggers that are
    /// rewritten, deleted or restored stopped; dependents first) and to
    /// start after (restored triggers that should run; dependencies first).
    fn triggers(
        &self,
        snapshot_triggers: &BTreeMap<String, String>,
        steps: &[Step],
        delete: &[Delete],
        expected: &[Expected],
    ) -> Triggers {
        let restored: Vec<&Expected> = expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::Trigger)
            .collect();
        let want_started = |name: &str| {
            self.options.triggers == TriggerMode::AsBackedUp
                && snapshot_triggers
                    .iter()
                    .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started")
        };
        let stop = self.stops(steps, delete, &restored, &want_started);
        let (start, unstartable) = self.starts(&restored, &stop, &want_started);
        Triggers {
            stop,
            start,
            unstartable,
        }
    }

    fn started_in_target(&self, name: &str) -> bool {
        self.target
            .trigger_states
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started")
    }

    fn stops(
        &self,
        steps: &[Step],
        delete: &[Delete],
        restored: &[&Expected],
        want_started: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let names = |kinds: &mut dyn Iterator<Item = (ResourceKind, &String)>| -> HashSet<String> {
            kinds
                .filter(|(k, _)| *k == ResourceKind::Trigger)
                .map(|(_, n)| n.to_lowercase())
                .collect()
        };
        let written = names(&mut steps.iter().map(|s| (s.kind, &s.name)));
        let deleted = names(&mut delete.iter().map(|d| (d.kind, &d.name)));
        let target_triggers: Vec<&Resource> = self
            .target
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Trigger)
            .collect();
        let mut stop: Vec<String> = Vec::new();
        for t in &target_triggers {
            let lower = t.name.to_lowercase();
            let is_restored = restored.iter().any(|e| e.key.2 == lower);
            if self.started_in_target(&t.name)
                && (written.contains(&lower)
                    || deleted.contains(&lower)
                    || (is_restored && !want_started(&t.name)))
            {
                stop.push(t.name.clone());
            }
        }
        let levels = trigger_levels(&Graph::build(target_triggers.iter().copied()));
        stop.sort_by_key(|n| (std::cmp::Reverse(rank(&levels, n)), n.to_lowercase()));
        stop
    }

    fn starts(
        &self,
        restored: &[&Expected],
        stop: &[String],
        want_started: &dyn Fn(&str) -> bool,
    ) -> (Vec<String>, Vec<Skipped>) {
        let mut start: Vec<String> = Vec::new();
        let mut unstartable = Vec::new();
        for e in restored {
            let i = self.graph.index(&e.key).expect("in graph");
            let r = self.children[i];
            let stopped_here = stop.iter().any(|s| s.eq_ignore_ascii_case(&r.name));
            if !want_started(&r.name) || (self.started_in_target(&r.name) && !stopped_here) {
                continue;
            }
            // The service refuses to start a trigger that runs no pipeline
            // (a git file can still say Started).
            let runs_something = crate::model::references(&e.definition)
                .iter()
                .any(|x| x.kind == Some(ResourceKind::Pipeline));
            if runs_something {
                start.push(r.name.clone());
            } else {
                unstartable.push(Skipped {
                    label: self.graph.labels[i].clone(),
                    reason: "was started at backup, but references no pipeline: the service refuses to start it".into(),
                });
            }
        }
        let source: Vec<&Resource> = self
            .children
            .iter()
            .copied()
            .filter(|r| r.kind == ResourceKind::Trigger)
            .collect();
        let levels = trigger_levels(&Graph::build(source.iter().copied()));
        start.sort_by_key(|n| (rank(&levels, n), n.to_lowercase()));
        (start, unstartable)
    }

    /// The factory's body: the snapshot's, without its git link on a DR
    /// copy (the target's own kept), in the target's region (or the one
    /// asked, or the snapshot's), its staging back-reference set only once
    /// that linked service exists.
    fn factory(
        &mut self,
        source: &Resource,
        snapshot_region: Option<&str>,
    ) -> Result<Factory, PlanError> {
        let mut notes = Vec::new();
        let mut body = source.definition.clone();
        let current = self.target.factory.as_ref();
        if !self.options.with_git {
            self.git(&mut body, current, &mut notes);
        }
        let region = self.region(&body, current, snapshot_region)?;
        if let Some(map) = body.as_object_mut() {
            map.insert("location".into(), Value::String(region.clone()));
        }
        identity(&mut body, current, &mut notes);
        self.identity_credentials(&body);
        self.encryption(&body, current, &mut notes)?;
        let (first_body, mut final_body) = self.staging(&body, &mut notes);
        let action = match current {
            None => Action::Create,
            Some(c) if canon(c) == canon(&body) => Action::Unchanged,
            Some(_) => Action::Update,
        };
        if action == Action::Unchanged {
            final_body = None;
        }
        Ok(Factory {
            plan: FactoryPlan {
                action,
                region,
                body: first_body,
                second_write: final_body.is_some(),
                final_body,
                notes,
            },
            expected: body,
        })
    }

    /// A customer-managed key goes on with the factory's first PUT, before
    /// any child, with the user-assigned identity it uses in the same body
    /// (attached as the key is set). The service refuses it on a factory
    /// that has resources or a managed virtual network ("Encrypt Azure Data
    /// Factory with customer-managed keys"), so such a plan is refused here,
    /// before anything is written.
    fn encryption(
        &self,
        body: &Value,
        current: Option<&Value>,
        notes: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let Some(encryption) = body
            .pointer("/properties/encryption")
            .filter(|e| e.is_object())
        else {
            return Ok(());
        };
        let text = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let key = format!(
            "{}keys/{}",
            text(encryption, "/vaultBaseUrl")
                .trim_end_matches('/')
                .to_string()
                + "/",
            text(encryption, "/keyName")
        );
        let same = current
            .and_then(|c| c.pointer("/properties/encryption"))
            .is_some_and(|c| canon(c) == canon(encryption));
        if !same {
            let vnet = self
                .target
                .resources
                .iter()
                .any(|r| r.kind == ResourceKind::ManagedVirtualNetwork);
            let why = if vnet {
                Some("the target factory has a managed virtual network, with which the service does not enable a customer-managed key".to_string())
            } else if !self.target.resources.is_empty() {
                Some(format!(
                    "the service sets a customer-managed key only on an empty factory, and the target has {} resource(s)",
                    self.target.resources.len()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(PlanError::CustomerManagedKey { key, why });
            }
        }
        let uami = text(encryption, "/identity/userAssignedIdentity");
        if !uami.is_empty() {
            let attached = body
                .pointer("/identity/userAssignedIdentities")
                .and_then(Value::as_object)
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(&uami)));
            if !attached {
                return Err(PlanError::CustomerManagedKey {
                    key,
                    why: format!(
                        "it uses the user-assigned identity {uami}, which the factory's definition does not attach"
                    ),
                });
            }
        }
        if !same {
            notes.push(format!(
                "customer-managed key {key} set with the factory's first write, before any resource{}; the identity needs get, wrapKey and unwrapKey on the key",
                if uami.is_empty() {
                    String::new()
                } else {
                    format!(", with {uami} attached")
                }
            ));
        }
        Ok(())
    }

    /// Credentials of kind ManagedIdentity name a user-assigned identity;
    /// the restored factory must have it attached, or they cannot work.
    fn identity_credentials(&mut self, factory: &Value) {
        let attached: Vec<String> = factory
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        for r in self
            .children
            .iter()
            .filter(|r| r.kind == ResourceKind::Credential)
        {
            let uses = r
                .definition
                .pointer("/properties/typeProperties/resourceId")
                .and_then(Value::as_str);
            let managed = r
                .definition
                .pointer("/properties/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("ManagedIdentity"));
            if let (true, Some(id)) = (managed, uses)
                && !attached.contains(&id.to_ascii_lowercase())
            {
                self.warnings.push(format!(
                    "{} uses the user-assigned identity {id}, which the restored factory does not have attached: attach it (identity.userAssignedIdentities of the factory) or point the credential at one it has",
                    r.label()
                ));
            }
        }
    }

    /// A DR copy gets no git link of the source; a PUT replaces the whole
    /// factory, so the target's own git link is carried over.
    fn git(&self, body: &mut Value, current: Option<&Value>, notes: &mut Vec<String>) {
        let had = body
            .pointer_mut("/properties")
            .and_then(Value::as_object_mut)
            .and_then(|p| p.shift_remove("repoConfiguration"))
            .is_some();
        if had {
            notes.push("git configuration not restored (DR copy); --with-git restores it".into());
        }
        if let Some(repo) = current.and_then(|c| c.pointer("/properties/repoConfiguration"))
            && let Some(props) = body
                .pointer_mut("/properties")
                .and_then(Value::as_object_mut)
        {
            props.insert("repoConfiguration".into(), repo.clone());
            notes.push("the target's own git configuration is kept".into());
        }
    }

    /// An existing factory's location is fixed; a new one takes --region,
    /// else the snapshot's region.
    fn region(
        &mut self,
        body: &Value,
        current: Option<&Value>,
        snapshot_region: Option<&str>,
    ) -> Result<String, PlanError> {
        match current
            .and_then(|c| c.get("location"))
            .and_then(Value::as_str)
        {
            Some(existing) => {
                if let Some(asked) = &self.options.region
                    && !asked.eq_ignore_ascii_case(existing)
                {
                    self.warnings.push(format!(
                        "--region {asked} ignored: the target factory exists in {existing} (location is fixed at creation)"
                    ));
                }
                Ok(existing.to_string())
            }
            None => self
                .options
                .region
                .clone()
                .or_else(|| snapshot_region.map(str::to_string))
                .or_else(|| {
                    body.get("location")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .ok_or(PlanError::NoRegion),
        }
    }

    /// The first body (without the staging back-reference when its linked
    /// service is not there yet) and the body written after it exists.
    fn staging(&self, body: &Value, notes: &mut Vec<String>) -> (Value, Option<Value>) {
        let mut first = body.clone();
        let Some(ls) = body
            .pointer("/properties/globalConfigurations/factoryStagingLSReferenceName")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
        else {
            return (first, None);
        };
        if self
            .in_target
            .contains_key(&key(ResourceKind::LinkedService, None, &ls))
        {
            return (first, None);
        }
        if let Some(gc) = first
            .pointer_mut("/properties/globalConfigurations")
            .and_then(Value::as_object_mut)
        {
            for k in STAGING {
                gc.shift_remove(*k);
            }
        }
        notes.push(format!(
            "default staging linked service {ls} is set after it is restored"
        ));
        (first, Some(body.clone()))
    }
}

/// The factory's identity in the PUT: the snapshot's, plus whatever the
/// target already has (a factory PUT replaces the identity, and a removed
/// system-assigned identity never comes back: a new one is a new principal
/// without the old one's access). User-assigned identities go without their
/// read-only `clientId`/`principalId`.
fn identity(body: &mut Value, current: Option<&Value>, notes: &mut Vec<String>) {
    let types = |v: Option<&Value>| -> (bool, bool) {
        let t = v
            .and_then(|v| v.pointer("/identity/type"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        (t.contains("systemassigned"), t.contains("userassigned"))
    };
    let (snap_system, snap_user) = types(Some(body));
    let (target_system, target_user) = types(current);
    let mut uamis = serde_json::Map::new();
    for source in [current, Some(&*body)].into_iter().flatten() {
        if let Some(map) = source
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
        {
            for id in map.keys() {
                if !uamis.keys().any(|k| k.eq_ignore_ascii_case(id)) {
                    uamis.insert(id.clone(), Value::Object(Default::default()));
                }
            }
        }
    }
    let system = snap_system || target_system;
    let user = snap_user || target_user || !uamis.is_empty();
    if target_system && !snap_system {
        notes.push("the target's system-assigned identity is kept: removing it would lose its principal and every role granted to it".into());
    }
    let kept_uamis = current
        .and_then(|c| c.pointer("/identity/userAssignedIdentities"))
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| {
                    !body
                        .pointer("/identity/userAssignedIdentities")
                        .and_then(Value::as_object)
                        .is_some_and(|b| b.keys().any(|x| x.eq_ignore_ascii_case(k)))
                })
                .count()
        })
        .unwrap_or(0);
    if kept_uamis > 0 {
        notes.push(format!(
            "{kept_uamis} user-assigned identit{} the target has attached stay attached",
            if kept_uamis == 1 { "y" } else { "ies" }
        ));
    }
    if current.is_none() && system {
        notes.push("a new factory gets a new system-assigned principal: the backed-up roles and Key Vault access policies are granted to it after the writes; access given any other way (database users, file ACLs) must be given again by hand".into());
    }
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let ty = match (system, user) {
        (true, true) => "SystemAssigned,UserAssigned",
        (true, false) => "SystemAssigned",
        (false, true) => "UserAssigned",
        (false, false) => return,
    };
    let mut identity = map
        .get("identity")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    identity.insert("type".into(), Value::String(ty.into()));
    if uamis.is_empty() {
        identity.shift_remove("userAssignedIdentities");
    } else {
        identity.insert("userAssignedIdentities".into(), Value::Object(uamis));
    }
    map.insert("identity".into(), Value::Object(identity));
}

/// Why a target resource is never deleted, even with --delete-extraneous:
/// it could not come back, or it is not the factory's to remove. (The
/// factory's own identity is kept by the factory's plan: `identity`.)
pub fn never_deleted(r: &Resource) -> Option<&'static str> {
    match r.kind {
        ResourceKind::ManagedVirtualNetwork => Some(
            "a managed virtual network has no DELETE in the REST API; it goes only with its factory",
        ),
        ResourceKind::PrivateEndpointConnection => Some(
            "an inbound private endpoint connection, approved for someone else's endpoint; adfdr never removes it",
        ),
        ResourceKind::Lock => Some(
            "a management lock someone put on the target protects it; adfdr never removes one (az lock delete, if it must go)",
        ),
        ResourceKind::RoleAssignment | ResourceKind::AccessPolicy => {
            Some("access the target's identity holds; adfdr grants, it never takes access away")
        }
        _ => None,
    }
}

/// Whatever a kept extraneous resource needs is kept too (to a fixed point);
/// `blocked` learns who keeps each.
fn keep_closure(all: &[&Resource], blocked: &mut HashMap<Key, String>) -> HashSet<Key> {
    let mut keep: HashSet<Key> = HashSet::new();
    let g = Graph::build(all.iter().copied());
    loop {
        let before = keep.len();
        for (i, r) in all.iter().enumerate() {
            if blocked.contains_key(&r.key()) || keep.contains(&r.key()) {
                keep.insert(r.key());
                for &d in &g.deps[i] {
                    if keep.insert(g.keys[d].clone()) {
                        blocked
                            .entry(g.keys[d].clone())
                            .or_insert_with(|| r.label());
                    }
                }
            }
        }
        if keep.len() == before {
            return keep;
        }
    }
}

/// Dependency level of each trigger by name (0 when a cycle leaves it unordered).
fn trigger_levels(g: &Graph) -> HashMap<String, usize> {
    g.waves()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .flat_map(|(level, w)| w.iter().map(move |&i| (g.keys[i].2.clone(), level)))
        .collect()
}

fn rank(levels: &HashMap<String, usize>, name: &str) -> usize {
    levels.get(&name.to_lowercase()).copied().unwrap_or(0)
}

/// Human name of an action.
pub fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Unchanged => "unchanged",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(kind: ResourceKind, name: &str, definition: Value) -> Resource {
        Resource {
            kind,
            parent: None,
            name: name.into(),
            definition,
        }
    }

    fn factory() -> Resource {
        r(
            ResourceKind::Factory,
            "adf-prod",
            json!({"location": "westeurope", "identity": {"type": "SystemAssigned"},
                "properties": {"repoConfiguration": {"type": "FactoryGitHubConfiguration", "accountName": "a"},
                "globalConfigurations": {"factoryStagingLSReferenceName": "LS_Blob", "factoryStagingLSType": "LinkedServiceReference"}}}),
        )
    }

    fn source() -> Vec<Resource> {
        vec![
            factory(),
            r(
                ResourceKind::LinkedService,
                "LS_Blob",
                json!({"properties": {"type": "AzureBlobStorage"}}),
            ),
            r(
                ResourceKind::Dataset,
                "DS",
                json!({"properties": {"linkedServiceName": {"referenceName": "LS_Blob", "type": "LinkedServiceReference"}}}),
            ),
            r(
                ResourceKind::Pipeline,
                "PL_Child",
                json!({"properties": {"activities": [{"name": "c", "type": "Copy", "inputs": [{"referenceName": "DS", "type": "DatasetReference"}]}]}}),
            ),
            r(
                ResourceKind::Pipeline,
                "PL_Parent",
                json!({"properties": {"activities": [{"name": "p", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Child", "type": "PipelineReference"}}}]}}),
            ),
            r(
                ResourceKind::Trigger,
                "TR_Up",
                json!({"properties": {"type": "TumblingWindowTrigger", "pipeline": {"pipelineReference": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}}),
            ),
            r(
                ResourceKind::Trigger,
                "TR_Down",
                json!({"properties": {"type": "TumblingWindowTrigger", "pipeline": {"pipelineReference": {"referenceName": "PL_Parent", "type": "PipelineReference"}},
                "typeProperties": {"dependsOn": [{"type": "TumblingWindowTriggerDependencyReference", "referenceTrigger": {"referenceName": "TR_Up", "type": "TriggerReference"}}]}}}),
            ),
            r(
                ResourceKind::Trigger,
                "TR_Off",
                json!({"properties": {"type": "ScheduleTrigger", "pipelines": [{"pipelineReference": {"referenceName": "PL_Child", "type": "PipelineReference"}}]}}),
            ),
        ]
    }

    fn states() -> BTreeMap<String, String> {
        [
            ("TR_Up", "Started"),
            ("TR_Down", "Started"),
            ("TR_Off", "Stopped"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    fn labels(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn into_an_empty_target_everything_is_created_in_dependency_order() {
        let p = plan(
            &source(),
            &states(),
            Some("westeurope"),
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        assert_eq!(p.factory.action, Action::Create);
        assert_eq!(p.factory.region, "westeurope");
        assert!(
            p.factory
                .body
                .pointer("/properties/repoConfiguration")
                .is_none(),
            "no git on a DR copy"
        );
        assert!(
            p.factory
                .body
                .pointer("/properties/globalConfigurations/factoryStagingLSReferenceName")
                .is_none()
        );
        let later = p
            .factory
            .final_body
            .as_ref()
            .expect("staging set afterwards");
        assert_eq!(
            later.pointer("/properties/globalConfigurations/factoryStagingLSReferenceName"),
            Some(&json!("LS_Blob"))
        );
        assert_eq!(
            labels(&p.steps),
            [
                "linkedService:LS_Blob",
                "dataset:DS",
                "pipeline:PL_Child",
                "pipeline:PL_Parent",
                "trigger:TR_Off",
                "trigger:TR_Up",
                "trigger:TR_Down"
            ]
        );
        assert!(p.steps.iter().all(|s| s.action == Action::Create));
        for (i, s) in p.steps.iter().enumerate() {
            assert!(
                s.deps.iter().all(|&d| d < i),
                "{} waits for a later step",
                s.label
            );
        }
        assert_eq!(p.depth, 6);
        assert!(p.start_triggers.is_empty(), "stopped by default");
        assert!(p.stop_triggers.is_empty());

        let as_backed_up = PlanOptions {
            triggers: TriggerMode::AsBackedUp,
            region: Some("northeurope".into()),
            ..Default::default()
        };
        let p = plan(
            &source(),
            &states(),
            Some("westeurope"),
            &TargetState::default(),
            None,
            &as_backed_up,
        )
        .expect("plan");
        assert_eq!(
            p.start_triggers,
            ["TR_Up", "TR_Down"],
            "dependencies first, stopped ones stay stopped"
        );
        assert_eq!(p.factory.region, "northeurope");
    }

    /// The service sets a customer-managed key only on an empty factory
    /// without a managed VNet, with its user-assigned identity attached: a
    /// plan that cannot meet that is refused before anything is written.
    #[test]
    fn a_customer_managed_key_goes_only_into_an_empty_factory_with_its_identity() {
        let uami = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-cmk";
        let mut snapshot = source();
        snapshot[0].definition["identity"] =
            json!({"type": "UserAssigned", "userAssignedIdentities": {uami: {}}});
        snapshot[0].definition["properties"]["encryption"] = json!({
            "vaultBaseUrl": "https://kv.vault.azure.net", "keyName": "adf",
            "identity": {"userAssignedIdentity": uami}});
        let run = |snapshot: &[Resource], target: &TargetState| {
            plan(
                snapshot,
                &states(),
                Some("westeurope"),
                target,
                None,
                &PlanOptions::default(),
            )
        };
        let p = run(&snapshot, &TargetState::default()).expect("a new factory takes it");
        assert_eq!(
            p.factory.body["properties"]["encryption"]["keyName"], "adf",
            "set with the first write, before any child"
        );
        assert!(
            p.factory.notes.iter().any(|n| n
                .contains("customer-managed key https://kv.vault.azure.net/keys/adf")
                && n.contains("uami-cmk attached")),
            "{:?}",
            p.factory.notes
        );
        let busy = target_from(source()[1..].to_vec(), &[]);
        let e = run(&snapshot, &busy).expect_err("not into a factory with resources");
        assert!(
            e.to_string().contains("only on an empty factory")
                && e.to_string().contains("7 resource(s)"),
            "{e}"
        );
        let vnet = target_from(
            vec![r(
                ResourceKind::ManagedVirtualNetwork,
                "default",
                json!({"properties": {}}),
            )],
            &[],
        );
        let e = run(&snapshot, &vnet).expect_err("not with a managed VNet");
        assert!(e.to_string().contains("managed virtual network"), "{e}");
        // Already encrypted with that key: a re-restore converges.
        let mut same = busy.clone();
        same.factory.as_mut().expect("factory")["properties"]["encryption"] =
            snapshot[0].definition["properties"]["encryption"].clone();
        run(&snapshot, &same).expect("the same key is no change");
        // The identity the key uses must be attached.
        snapshot[0].definition["identity"] = json!({"type": "SystemAssigned"});
        let e = run(&snapshot, &TargetState::default()).expect_err("identity missing");
        assert!(e.to_string().contains("does not attach"), "{e}");
    }

    fn target_from(resources: Vec<Resource>, started: &[&str]) -> TargetState {
        let mut f = factory().definition;
        f["properties"]["repoConfiguration"] =
            json!({"type": "FactoryVSTSConfiguration", "accountName": "dr"});
        TargetState {
            factory: Some(f),
            trigger_states: resources
                .iter()
                .filter(|r| r.kind == ResourceKind::Trigger)
                .map(|r| {
                    (
                        r.name.clone(),
                        if started.contains(&r.name.as_str()) {
                            "Started"
                        } else {
                            "Stopped"
                        }
                        .to_string(),
                    )
                })
                .collect(),
            resources,
            created: None,
            is_source: false,
        }
    }

    #[test]
    fn a_drifted_target_converges_and_started_triggers_are_stopped_first() {
        let mut drifted: Vec<Resource> = source()
            .into_iter()
            .filter(|r| r.kind != ResourceKind::Factory && r.name != "PL_Child")
            .collect();
        drifted
            .iter_mut()
            .find(|r| r.name == "TR_Up")
            .expect("TR_Up")
            .definition["properties"]["description"] = json!("hot-fix");
        drifted.push(r(ResourceKind::Pipeline, "PL_Extra", json!({"properties": {"activities": [{"name": "p", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}]}})));
        drifted.push(r(ResourceKind::Trigger, "TR_Extra", json!({"properties": {"type": "ScheduleTrigger", "pipelines": [{"pipelineReference": {"referenceName": "PL_Extra", "type": "PipelineReference"}}]}})));
        let target = target_from(drifted, &["TR_Up", "TR_Down", "TR_Extra"]);
        let p = plan(
            &source(),
            &states(),
            None,
            &target,
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        assert_eq!(
            p.factory.action,
            Action::Unchanged,
            "the target's own git link is kept: {:?}",
            p.factory.notes
        );
        assert!(
            p.factory.final_body.is_none(),
            "staging LS exists in the target"
        );
        assert_eq!(labels(&p.steps), ["pipeline:PL_Child", "trigger:TR_Up"]);
        assert_eq!(p.steps[0].action, Action::Create);
        assert_eq!(p.steps[1].action, Action::Update);
        assert_eq!(p.unchanged.len(), 5);
        assert_eq!(
            p.stop_triggers,
            ["TR_Down", "TR_Up"],
            "dependents first; TR_Extra is not ours to stop"
        );
        assert!(p.delete.is_empty());
        assert_eq!(p.extraneous_kept.len(), 2);

        let options = PlanOptions {
            delete_extraneous: true,
            triggers: TriggerMode::AsBackedUp,
            ..Default::default()
        };
        let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
        let deletes: Vec<&str> = p.delete.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(
            deletes,
            ["trigger:TR_Extra", "pipeline:PL_Extra"],
            "dependents first"
        );
        assert_eq!(p.delete[1].after, [0]);
        assert_eq!(
            p.stop_triggers,
            ["TR_Extra", "TR_Up"],
            "TR_Down stays started as backed up"
        );
        assert_eq!(p.start_triggers, ["TR_Up"]);
    }

    #[test]
    fn masked_secrets_skip_their_resource_and_its_dependents_unless_filled() {
        let mut src = source();
        src[1].definition["properties"]["typeProperties"] =
            json!({"accountKey": {"type": "SecureString", "value": MASK}});
        let p = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(skipped.len(), 7, "{skipped:?}");
        assert!(
            p.skipped[0]
                .reason
                .contains("/properties/typeProperties/accountKey/value"),
            "{}",
            p.skipped[0].reason
        );
        assert!(
            p.skipped
                .iter()
                .any(|s| s.reason.contains("needs linkedService:LS_Blob"))
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.secrets.len(), 1);
        assert!(!p.secrets[0].filled);
        let strict = PlanOptions {
            strict: true,
            ..Default::default()
        };
        let e = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &strict,
        )
        .expect_err("strict");
        assert!(e.to_string().contains("masked"), "{e}");
        // A drill writes a placeholder instead, and expects it masked on read.
        let drill = PlanOptions {
            placeholder_secrets: true,
            ..Default::default()
        };
        let p = plan(&src, &states(), None, &TargetState::default(), None, &drill).expect("plan");
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.secrets.len(), 1);
        assert!(p.secrets[0].filled);
        let step = p
            .steps
            .iter()
            .find(|s| s.label == "linkedService:LS_Blob")
            .expect("written");
        assert_eq!(
            step.definition["properties"]["typeProperties"]["accountKey"]["value"],
            PLACEHOLDER_SECRET
        );
        let expected = p
            .expected
            .iter()
            .find(|e| e.label == "linkedService:LS_Blob")
            .expect("expected");
        assert_eq!(
            expected.definition["properties"]["typeProperties"]["accountKey"]["value"],
            MASK
        );

        let rules = Overrides::parse(
            "[[rule]]\nkind = \"linkedService\"\nname = \"LS_Blob\"\nfill = { \"/properties/typeProperties/accountKey\" = { env = \"KEY\" } }\n",
            "o.toml",
            &|_| Some("the-key".into()),
        )
        .expect("rules");
        let p = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            Some(&rules),
            &PlanOptions::default(),
        )
        .expect("plan");
        assert!(p.skipped.is_empty());
        assert_eq!(
            p.steps[0]
                .definition
                .pointer("/properties/typeProperties/accountKey/value"),
            Some(&json!("the-key"))
        );
        assert_eq!(
            p.expected[0]
                .definition
                .pointer("/properties/typeProperties/accountKey/value"),
            Some(&json!(MASK))
        );
        assert!(p.secrets[0].filled);
        assert!(!serde_json::to_string(&p).expect("json").contains("the-key"));

        // Restored once, the target shows the mask: no rewrite next time.
        let mut restored = src.clone();
        restored.remove(0);
        let target = target_from(restored, &[]);
        let p = plan(
            &src,
            &states(),
            None,
            &target,
            Some(&rules),
            &PlanOptions::default(),
        )
        .expect("plan");
        assert!(p.steps.is_empty(), "{:?}", labels(&p.steps));
    }

    /// --delete-extraneous never deletes what could not come back: managed
    /// VNets have no DELETE (the REST spec), inbound private endpoint
    /// connections are someone else's approval, identity credentials carry
    /// the factory's access. The plan says which stay and why.
    #[test]
    fn delete_extraneous_keeps_what_cannot_come_back() {
        let mut extra = source();
        extra.push(r(
            ResourceKind::ManagedVirtualNetwork,
            "default",
            json!({"properties": {}}),
        ));
        extra.push(r(
            ResourceKind::PrivateEndpointConnection,
            "pe-from-consumer",
            json!({"properties": {"privateLinkServiceConnectionState": {"status": "Approved"}}}),
        ));
        extra.push(r(
            ResourceKind::Pipeline,
            "PL_Stray",
            json!({"properties": {"activities": []}}),
        ));
        let target = target_from(extra, &[]);
        let options = PlanOptions {
            delete_extraneous: true,
            ..Default::default()
        };
        let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
        let deleted: Vec<&str> = p.delete.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(deleted, ["pipeline:PL_Stray"]);
        let kept: Vec<(&str, &str)> = p
            .extraneous_kept
            .iter()
            .map(|k| (k.label.as_str(), k.reason.as_str()))
            .collect();
        for (label, why) in [
            ("managedVirtualNetwork:default", "has no DELETE"),
            (
                "privateEndpointConnection:pe-from-consumer",
                "never removes it",
            ),
        ] {
            assert!(
                kept.iter().any(|(l, r)| *l == label && r.contains(why)),
                "{label} kept because {why}: {kept:?}"
            );
        }
    }

    /// An inbound private endpoint connection in the snapshot cannot be
    /// PUT: the plan reports it, naming the endpoint whose owner connects
    /// the target again.
    #[test]
    fn inbound_private_endpoint_connections_are_reported_with_their_owner() {
        let mut src = source();
        let endpoint = "/subscriptions/s/resourceGroups/rg-consumer/providers/Microsoft.Network/privateEndpoints/pe-consumer";
        src.push(r(
            ResourceKind::PrivateEndpointConnection,
            "pe-from-consumer",
            json!({"properties": {"privateEndpoint": {"id": endpoint},
                "privateLinkServiceConnectionState": {"status": "Approved"}}}),
        ));
        let p = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        let skipped = p
            .skipped
            .iter()
            .find(|s| s.label == "privateEndpointConnection:pe-from-consumer")
            .expect("reported");
        assert!(
            skipped.reason.contains(endpoint) && skipped.reason.contains("cannot be re-created"),
            "{}",
            skipped.reason
        );
        assert!(
            p.steps
                .iter()
                .all(|s| s.kind != ResourceKind::PrivateEndpointConnection)
        );
    }

    /// An old git export's managed VNet (no `properties`) is sent with
    /// `"properties": {}`, which the service requires, and equals the
    /// target's when that is all it has.
    #[test]
    fn a_managed_vnet_without_properties_is_sent_with_empty_properties() {
        let mut src = source();
        src.push(r(
            ResourceKind::ManagedVirtualNetwork,
            "default",
            json!({"name": "default"}),
        ));
        let p = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        let step = p
            .steps
            .iter()
            .find(|s| s.kind == ResourceKind::ManagedVirtualNetwork)
            .expect("vnet step");
        assert_eq!(
            step.definition["properties"],
            json!({}),
            "{}",
            step.definition
        );
        let served = r(
            ResourceKind::ManagedVirtualNetwork,
            "default",
            json!({"name": "default", "properties": {}}),
        );
        let target = target_from(
            src.iter()
                .filter(|r| {
                    r.kind != ResourceKind::Factory && r.kind != ResourceKind::ManagedVirtualNetwork
                })
                .cloned()
                .chain([served])
                .collect(),
            &["TR_Up", "TR_Down"],
        );
        let p = plan(
            &src,
            &states(),
            None,
            &target,
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        assert!(
            p.unchanged
                .iter()
                .any(|u| u == "managedVirtualNetwork:default"),
            "{:?} / {:?}",
            p.unchanged,
            labels(&p.steps)
        );
    }

    /// An encryptedCredential points into its own factory's credential
    /// store: kept only when restoring into that very factory; elsewhere the
    /// linked service needs its credentials (an override replaces it, a
    /// drill drops it as a placeholder), or is skipped saying why.
    #[test]
    fn encrypted_credentials_work_only_in_their_own_factory() {
        let mut src = source();
        src[1].definition["properties"]["typeProperties"] =
            json!({"connectionString": "AccountName=a;", "encryptedCredential": "ew0KfQ=="});
        let into = |target: &TargetState, overrides: Option<&Overrides>, placeholders: bool| {
            let options = PlanOptions {
                placeholder_secrets: placeholders,
                ..Default::default()
            };
            plan(&src, &states(), None, target, overrides, &options).expect("plan")
        };
        let same = TargetState {
            is_source: true,
            ..Default::default()
        };
        let p = into(&same, None, false);
        let ls = p
            .steps
            .iter()
            .find(|s| s.label == "linkedService:LS_Blob")
            .expect("ls");
        assert_eq!(
            ls.definition["properties"]["typeProperties"]["encryptedCredential"],
            "ew0KfQ=="
        );

        let p = into(&TargetState::default(), None, false);
        let skipped = p
            .skipped
            .iter()
            .find(|s| s.label == "linkedService:LS_Blob")
            .expect("skip");
        assert!(
            skipped.reason.contains("works in no other"),
            "{}",
            skipped.reason
        );
        assert!(
            p.secrets
                .iter()
                .any(|s| s.pointer == ENCRYPTED_CREDENTIAL && !s.filled)
        );

        let rules = Overrides::parse(
            r#"
[[rule]]
kind = "linkedService"
name = "LS_Blob"
set = { "/properties/typeProperties/accountKey" = { type = "SecureString", value = "k" } }
"#,
            "test.toml",
            &|_| None,
        )
        .expect("rules");
        let p = into(&TargetState::default(), Some(&rules), false);
        let ls = p
            .steps
            .iter()
            .find(|s| s.label == "linkedService:LS_Blob")
            .expect("ls");
        let props = &ls.definition["properties"]["typeProperties"];
        assert!(
            props.get("encryptedCredential").is_none() && props["accountKey"]["value"] == "k",
            "{props}"
        );

        let p = into(&TargetState::default(), None, true);
        let ls = p
            .steps
            .iter()
            .find(|s| s.label == "linkedService:LS_Blob")
            .expect("ls");
        assert!(
            ls.definition["properties"]["typeProperties"]
                .get("encryptedCredential")
                .is_none()
        );
        assert!(
            p.secrets
                .iter()
                .any(|s| s.pointer == ENCRYPTED_CREDENTIAL && s.filled)
        );
    }

    #[test]
    fn selection_pulls_in_what_it_needs_and_names_what_it_cannot() {
        let only = PlanOptions {
            include: vec![Selector::parse("pipeline:pl_parent").expect("sel")],
            ..Default::default()
        };
        let p = plan(
            &source(),
            &states(),
            None,
            &TargetState::default(),
            None,
            &only,
        )
        .expect("plan");
        assert_eq!(
            labels(&p.steps),
            [
                "linkedService:LS_Blob",
                "dataset:DS",
                "pipeline:PL_Child",
                "pipeline:PL_Parent"
            ]
        );
        // What the target already has is used, not overwritten.
        let target = target_from(vec![source()[1].clone()], &[]);
        let mut changed = source();
        changed[1].definition["properties"]["description"] = json!("newer in the snapshot");
        let p = plan(&changed, &states(), None, &target, None, &only).expect("plan");
        assert_eq!(
            labels(&p.steps),
            ["dataset:DS", "pipeline:PL_Child", "pipeline:PL_Parent"]
        );
        let without = PlanOptions {
            include: vec![Selector::parse("pipeline:*").expect("sel")],
            exclude: vec![Selector::parse("dataset:*").expect("sel")],
            ..Default::default()
        };
        let e = plan(
            &source(),
            &states(),
            None,
            &TargetState::default(),
            None,
            &without,
        )
        .expect_err("missing");
        assert_eq!(
            e.to_string(),
            "pipeline:PL_Child needs dataset:DS, which is excluded and not in the target factory; include it, or restore pipeline:PL_Child into a factory that has it"
        );
    }

    #[test]
    fn cycles_dangling_references_and_blocked_deletes() {
        let mut src = source();
        src[3].definition["properties"]["activities"] = json!([{"name": "back", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}]);
        let e = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect_err("cycle");
        assert!(
            e.to_string()
                .contains("pipeline:PL_Child -> pipeline:PL_Parent -> pipeline:PL_Child"),
            "{e}"
        );

        let mut src = source();
        src[2].definition["properties"]["linkedServiceName"]["referenceName"] = json!("LS_Gone");
        let p = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        assert_eq!(p.skipped[0].label, "dataset:DS");
        assert!(
            p.skipped[0].reason.contains("linkedService:LS_Gone"),
            "{}",
            p.skipped[0].reason
        );
        let e = plan(
            &src,
            &states(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions {
                strict: true,
                ..Default::default()
            },
        )
        .expect_err("strict");
        assert!(e.to_string().contains("LS_Gone"));

        // An extra dataset still used by a pipeline outside the selection stays.
        let mut extra = source();
        extra.remove(0);
        extra.push(r(
            ResourceKind::Dataset,
            "DS_Extra",
            json!({"properties": {}}),
        ));
        extra.push(r(ResourceKind::Pipeline, "PL_Keep", json!({"properties": {"activities": [{"name": "c", "type": "Copy", "inputs": [{"referenceName": "DS_Extra", "type": "DatasetReference"}]}]}})));
        let target = target_from(extra, &[]);
        let options = PlanOptions {
            delete_extraneous: true,
            exclude: vec![Selector::parse("pipeline:PL_Keep").expect("sel")],
            ..Default::default()
        };
        let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        assert_eq!(p.extraneous_kept.len(), 1);
        assert!(
            p.extraneous_kept[0].reason.contains("pipeline:PL_Keep"),
            "{:?}",
            p.extraneous_kept
        );
    }
}
