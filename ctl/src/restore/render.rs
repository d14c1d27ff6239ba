//! How `adfdr restore` shows a plan and an outcome: text for people, the
//! typed `RestoreOutput` for `--json`.

use adfdr_core::ops::contract::RestoreResult;
use adfdr_core::ops::restore::{
    self as op, Applied, Mismatch, RestoreOutcome, TargetFactory, Timings,
};
use adfdr_core::plan::restore::{Action, Plan, action_word};
use schemars::JsonSchema;
use serde::Serialize;

/// `adfdr restore --json` (schema `adfdr.restore.v1`).
#[derive(Serialize, JsonSchema)]
pub struct RestoreOutput {
    pub source: Source,
    pub target: TargetFactory,
    pub target_exists: bool,
    pub plan: Plan,
    /// What was done; null when the plan was only shown.
    pub applied: Option<Applied>,
    pub outcome: Option<RestoreResult>,
    pub mismatches: Vec<Mismatch>,
    /// The read-back failed: what was written is not verified.
    pub read_back_error: Option<String>,
    pub timings: Timings,
    /// The audit trail the restore was recorded in.
    pub audit: Option<std::path::PathBuf>,
    /// A newer snapshot the catalog saw committed that no location holds.
    pub vanished: Option<String>,
    /// `latest` is of another factory than the snapshot before it.
    pub other_source: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Source {
    pub factory: String,
    pub snapshot: String,
    pub location: String,
    /// Locations passed over, with why.
    pub skipped: Vec<Skipped>,
}

#[derive(Serialize, JsonSchema)]
pub struct Skipped {
    pub location: String,
    pub why: String,
}

pub fn output(p: &op::Prepared, outcome: Option<&RestoreOutcome>) -> RestoreOutput {
    RestoreOutput {
        source: Source {
            factory: p.opened.factory.clone(),
            snapshot: p.opened.id.clone(),
            location: p.payload_location.clone(),
            skipped: p
                .skipped_locations
                .iter()
                .map(|(l, w)| Skipped {
                    location: l.clone(),
                    why: w.clone(),
                })
                .collect(),
        },
        target: p.target.clone(),
        target_exists: p.target_existed,
        plan: p.plan.clone(),
        applied: outcome.map(|o| o.applied.clone()),
        outcome: outcome.map(|o| o.result),
        mismatches: outcome.map(|o| o.mismatches.clone()).unwrap_or_default(),
        read_back_error: outcome.and_then(|o| o.read_back_error.clone()),
        timings: outcome.map_or_else(|| p.timings.clone(), |o| o.timings.clone()),
        audit: outcome.and_then(|o| o.audit.clone()),
        vanished: p.vanished.clone(),
        other_source: p.other_source.clone(),
    }
}

/// The outcome for people: failures, mismatches, the summary line, phases.
pub fn outcome(p: &op::Prepared, o: &RestoreOutcome) {
    if let Some((done, of)) = o.interrupted {
        eprintln!(
            "adfdr: interrupted after {done} of {of} writes into {}; nothing is half-written that a rerun does not fix: run the same command again to finish (the plan compares with what is there now){}",
            p.target.describe(),
            o.audit
                .as_ref()
                .map(|a| format!("; recorded in {}", a.display()))
                .unwrap_or_default()
        );
        return;
    }
    for f in &o.applied.failures {
        println!("FAILED {}: {}", f.what, f.error);
    }
    for m in &o.mismatches {
        println!("MISMATCH {}: {}", m.resource, m.detail);
    }
    if let Some(e) = &o.read_back_error {
        println!("READ-BACK FAILED (what was written is not verified): {e}");
    }
    let a = &o.applied;
    println!(
        "{}: {}@{} into {}: {} written, {} deleted, {} triggers stopped, {} started, {} skipped; {} checked after",
        o.outcome_word(),
        p.opened.factory,
        p.opened.id,
        p.target.describe(),
        a.written,
        a.deleted,
        a.stopped,
        a.started,
        p.plan.skipped.len(),
        p.plan.expected.len() + 1,
    );
    for r in &a.runtimes {
        println!(
            "integration runtime {}: {} after {:.1} s",
            r.name,
            r.state,
            r.ready_ms as f64 / 1000.0
        );
    }
    if a.cdcs_started > 0 {
        println!("change data captures started: {}", a.cdcs_started);
    }
    for g in &a.grants_to_give {
        println!("not granted: {}: {}", g.what, g.error);
    }
    for e in &a.endpoints {
        match e.blocker() {
            None => println!("{}: provisioned, approved", e.endpoint),
            Some(why) => println!("{why}"),
        }
    }
    let t = &o.timings;
    println!(
        "phases: fetch {} ms · decrypt {} ms · plan {} ms · apply {} ms{} · verify {} ms",
        t.fetch_ms,
        t.decrypt_ms,
        t.plan_ms,
        t.apply_ms,
        match t.runtimes_ms {
            0 => String::new(),
            ms => format!(" (runtimes running after {ms} ms)"),
        },
        t.verify_ms
    );
    if let Some(path) = &o.audit {
        println!("audit: {}", path.display());
    }
    if let Some(e) = &o.audit_error {
        crate::warning!("could not write the audit trail in {e}");
    }
}

/// Shows the plan and asks on the terminal; a plan that changes nothing
/// needs no answer.
pub fn confirm(prepared: &op::Prepared) -> bool {
    use std::io::Write;
    plan(prepared, &prepared.plan);
    if prepared.plan.is_noop() {
        return true;
    }
    eprint!("apply this plan to {}? [y/N] ", prepared.target.describe());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

pub fn plan(prepared: &op::Prepared, plan: &Plan) {
    println!(
        "restore {}@{} (read from {}) into {}",
        prepared.opened.factory,
        prepared.opened.id,
        prepared.payload_location,
        prepared.target.describe()
    );
    println!(
        "factory: {}{}",
        action_word(plan.factory.action),
        match plan.factory.action {
            Action::Create => format!(" in {}", plan.factory.region),
            _ => String::new(),
        }
    );
    for note in &plan.factory.notes {
        println!("  note: {note}");
    }
    if !plan.stop_triggers.is_empty() {
        println!("stop triggers first: {}", plan.stop_triggers.join(", "));
    }
    let creates = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Create)
        .count();
    println!(
        "create {creates} · update {} · unchanged {} · skip {} · delete {} · keep extraneous {}",
        plan.steps.len() - creates,
        plan.unchanged.len(),
        plan.skipped.len(),
        plan.delete.len(),
        plan.extraneous_kept.len()
    );
    const SHOWN: usize = 40;
    for s in plan.steps.iter().take(SHOWN) {
        println!("  {:<6} {}", action_word(s.action), s.label);
        for c in &s.changes {
            println!("         {c}");
        }
    }
    if plan.steps.len() > SHOWN {
        println!(
            "  ... and {} more (--json lists every one)",
            plan.steps.len() - SHOWN
        );
    }
    for d in plan.delete.iter().take(SHOWN) {
        println!("  delete {}", d.label);
    }
    for s in &plan.skipped {
        println!("  SKIP   {}: {}", s.label, s.reason);
    }
    for k in plan.extraneous_kept.iter().take(SHOWN) {
        println!("  keep   {}: {}", k.label, k.reason);
    }
    if !plan.start_triggers.is_empty() {
        println!("start triggers after: {}", plan.start_triggers.join(", "));
    }
    for u in &plan.unstartable {
        println!("  not started: {}: {}", u.label, u.reason);
    }
    if !plan.start_runtimes.is_empty() {
        println!(
            "start integration runtimes as soon as each exists: {}",
            plan.start_runtimes.join(", ")
        );
    }
    if !plan.start_cdcs.is_empty() {
        println!(
            "start change data captures after: {}",
            plan.start_cdcs.join(", ")
        );
    }
    for u in &plan.runtimes_left {
        println!("  not started: {}: {}", u.label, u.reason);
    }
    let missing = plan.secrets.iter().filter(|s| !s.filled).count();
    if !plan.secrets.is_empty() {
        println!(
            "secrets: {} need values, {} filled by overrides, {missing} missing",
            plan.secrets.len(),
            plan.secrets.len() - missing
        );
    }
    for w in &plan.warnings {
        println!("  warning: {w}");
    }
    println!(
        "{} writes; longest dependency chain: {} resources",
        plan.writes(),
        plan.depth
    );
}

/// What the on-call person must know before deciding: locations passed over, a vanished snapshot.
pub(super) fn warnings(prepared: &op::Prepared) {
    for (location, why) in &prepared.skipped_locations {
        crate::warning!(
            "skipped location {location}: {why}; read the snapshot from {}",
            prepared.payload_location
        );
    }
    if let Some(other) = &prepared.other_source {
        crate::warning!("{other}");
    }
    if let Some(known) = &prepared.vanished {
        crate::warning!(
            "snapshot {known} of {} was committed and no location holds it (deleted behind adfdr's back?); `latest` is {}, the newest the store still holds. Run `adfdr verify`.",
            prepared.opened.factory,
            prepared.opened.id
        );
    }
}

/// The plan, when it is not applied (--dry-run, no --yes, or no answer); for
/// the last two, why nothing was restored (on stderr: the exit code, 2, is
/// what a script reads).
pub(super) fn unapplied(
    json: bool,
    plan_only: bool,
    prepared: &op::Prepared,
    interactive: bool,
    shown: bool,
) {
    if json {
        crate::json::emit("restore", &output(prepared, None));
    } else if !shown {
        plan(prepared, &prepared.plan);
    }
    if !plan_only {
        eprintln!(
            "adfdr: nothing was restored: {}",
            if interactive {
                "the prompt was not answered yes; run again and answer yes, or pass --yes"
            } else {
                "no --yes, and stdin is not a terminal to ask on; pass --yes to apply (or --dry-run to only show the plan)"
            }
        );
    }
}
