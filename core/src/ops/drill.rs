//! Recovery drills: restore a snapshot into the factory's scratch
//! `drill_target` with triggers stopped and the drill overrides applied, prove
//! it (every resource reads back as the snapshot has it, references resolve,
//! global parameters and the trigger set are equal, the smoke pipeline runs),
//! measure RTO and RPO, judge them against the targets (plan::drill), clean
//! the scratch factory up as configured, and store the report as an
//! immutable, sealed object. A drill never touches the source factory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::restore::{self as op, TargetFactory};
use super::{Clock, Engine, OpError};

use crate::config::{DrillCleanup, FactoryConfig};
use crate::model::{ResourceKind, canonical_bytes};
use crate::plan::drill::{Facts, Phase, Smoke, judge};
use crate::plan::{Graph, Overrides, PlanOptions, TargetState, TriggerMode};
use crate::snapshot::keys::DataKey;
use crate::snapshot::manifest::Resource;
use crate::snapshot::object::{self, Header, ObjectType};
use crate::snapshot::{rfc3339, snapshot_id, snapshot_time};
use crate::store::layout;

/// How a drill picks its snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    Latest,
    /// A random committed snapshot no older than this.
    RandomWithin(Duration),
    /// This snapshot id.
    Id(String),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub pick: Pick,
    pub cleanup: DrillCleanup,
    pub concurrency: usize,
    pub smoke_timeout: Duration,
}

impl Options {
    /// The factory's configured drill.
    pub fn from_config(fc: &FactoryConfig, concurrency: usize) -> Options {
        Options {
            pick: fc
                .drill_random_within
                .as_ref()
                .map_or(Pick::Latest, |d| Pick::RandomWithin(d.0)),
            cleanup: fc.drill_cleanup,
            concurrency,
            smoke_timeout: fc
                .smoke_timeout
                .as_ref()
                .map_or(Duration::from_secs(600), |d| d.0),
        }
    }
}

pub use adfdr_contract::drill::{Check, Cleanup, Report};

fn ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn target_of(fc: &FactoryConfig) -> Result<(TargetFactory, Option<String>), OpError> {
    let t = fc.drill_target.as_ref().ok_or_else(|| {
        OpError::usage(format!(
            "factory '{}' has no drill_target: add drill_target = {{ subscription = \"…\", resource_group = \"…\", factory = \"…\" }} (a scratch factory; never the source)",
            fc.name
        ))
    })?;
    let target = t.id();
    if target.same(&fc.id()) {
        return Err(OpError::usage(format!(
            "factory '{}': drill_target is the source factory itself; a drill must never touch the source",
            fc.name
        )));
    }
    Ok((target, t.region.clone()))
}

/// Chooses the snapshot to drill.
async fn choose(
    engine: &Engine,
    fc: &FactoryConfig,
    pick: &Pick,
    now: time::OffsetDateTime,
) -> Result<(String, String), OpError> {
    // Only snapshots that open count: a name a location lists is a claim.
    let inventory =
        super::read::inventory(&engine.replicas, Some(&fc.name), Some(&engine.keys), now).await;
    for f in &inventory.foreign {
        tracing::warn!(factory = %fc.name, location = %f.location, object = %f.key, why = %f.why, "not a snapshot: passed over");
    }
    let listed = inventory.snapshots;
    if listed.is_empty() {
        return Err(OpError::failed(format!(
            "factory '{}' has no snapshot to drill: run `adfdr backup {}` first",
            fc.name, fc.name
        )));
    }
    match pick {
        Pick::Latest => Ok((
            listed.last().expect("non-empty").id.clone(),
            "latest".into(),
        )),
        Pick::Id(id) => listed
            .iter()
            .find(|l| &l.id == id)
            .map(|l| (l.id.clone(), "requested".into()))
            .ok_or_else(|| {
                OpError::not_found(format!(
                    "snapshot {id} of factory '{}' is not in the store (adfdr snapshots {} lists them)",
                    fc.name, fc.name
                ))
            }),
        Pick::RandomWithin(window) => {
            let oldest = now - *window;
            let eligible: Vec<&str> = listed
                .iter()
                .filter(|l| snapshot_time(&l.id).is_some_and(|t| t >= oldest))
                .map(|l| l.id.as_str())
                .collect();
            if eligible.is_empty() {
                return Err(OpError::failed(format!(
                    "factory '{}' has no snapshot from the last {}",
                    fc.name,
                    crate::plan::drill::human(window.as_secs_f64())
                )));
            }
            let i = rand::random_range(0..eligible.len());
            Ok((
                eligible[i].to_string(),
                format!(
                    "random within {} ({} of {} eligible)",
                    crate::plan::drill::human(window.as_secs_f64()),
                    i + 1,
                    eligible.len()
                ),
            ))
        }
    }
}

/// When the snapshot's state was last confirmed: its own time, or the newest
/// checkpoint that confirmed it (from the catalog, the index of the store).
fn confirmed(engine: &Engine, factory: &str, snapshot: &str) -> time::OffsetDateTime {
    let own = snapshot_time(snapshot).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let Ok(catalog) = engine.catalog() else {
        return own;
    };
    catalog
        .checkpoints(Some(factory))
        .unwrap_or_default()
        .iter()
        .filter(|c| c.snapshot == snapshot)
        .filter_map(|c| crate::snapshot::parse_time(&c.created))
        .chain([own])
        .max()
        .unwrap_or(own)
}

/// Runs one drill. Errors are only for drills that cannot start (no target,
/// no snapshot); everything after that is judged and reported.
/// A drill's restore: into the scratch factory, triggers stopped,
/// extraneous resources deleted, placeholders for masked secrets, no locks
/// (they would block the cleanup) and no alerts (they would page people).
fn drill_request(
    fc: &FactoryConfig,
    snapshot: &str,
    target: &op::TargetFactory,
    region: Option<String>,
    overrides: Option<Overrides>,
    options: &Options,
) -> op::Request {
    op::Request {
        snapshot: snapshot.to_string(),
        factory: Some(fc.name.clone()),
        target: target.clone(),
        overrides,
        options: PlanOptions {
            triggers: TriggerMode::Stopped,
            delete_extraneous: true,
            placeholder_secrets: true,
            locks: false,
            alerts: false,
            others_access: false,
            region,
            ..Default::default()
        },
        concurrency: options.concurrency,
        known_newest: None,
        by: "drill".into(),
        audit_dir: None,
        asked: op::Asked::default(),
    }
}

/// The factory's `drill_overrides` and `region_map` (a region map makes it
/// a region-loss drill: into the mapped region), read and checked.
fn drill_files(
    fc: &FactoryConfig,
) -> Result<
    (
        Option<Overrides>,
        Option<crate::plan::region_map::RegionMap>,
    ),
    OpError,
> {
    let overrides = fc
        .drill_overrides
        .as_deref()
        .map(crate::localfile::overrides)
        .transpose()
        .map_err(|e| OpError::usage(format!("factory '{}': drill_overrides: {e}", fc.name)))?;
    let region_map = fc
        .region_map
        .as_deref()
        .map(crate::localfile::region_map)
        .transpose()
        .map_err(|e| OpError::usage(format!("factory '{}': region_map {e}", fc.name)))?;
    Ok((overrides, region_map))
}

pub async fn drill(
    engine: &Engine,
    fc: &FactoryConfig,
    options: &Options,
    clock: Clock,
    progress: op::Progress<'_>,
) -> Result<Report, OpError> {
    let (target, region) = target_of(fc)?;
    let (overrides, region_map) = drill_files(fc)?;
    let started = clock();
    let wall = Instant::now();
    let (snapshot, pick) = choose(engine, fc, &options.pick, started).await?;
    let confirmed_at = confirmed(engine, &fc.name, &snapshot);
    let mut facts = Facts {
        started_ms: ms(started),
        confirmed_ms: ms(confirmed_at),
        ..Default::default()
    };
    let mut request = drill_request(fc, &snapshot, &target, region.clone(), overrides, options);
    request.options.region_map = region_map;
    let restored = restore(engine, request, &mut facts, wall, progress).await;
    let mut phases = restored.phases;
    let mut checks = restored.checks;
    let state_after = restored.state;
    // The smoke pipeline runs in the restored factory (not part of the RTO).
    if let Some(pipeline) = &fc.smoke_pipeline {
        let smoking = Instant::now();
        let smoke = smoke_after(engine, &target, pipeline, state_after.is_some(), options).await;
        checks.push(Check {
            name: "smoke pipeline".into(),
            ok: smoke.status == "Succeeded",
            detail: format!(
                "{} {} in {:.1}s",
                smoke.pipeline, smoke.status, smoke.seconds
            ),
        });
        facts.smoke = Some(smoke);
        phases.push(Phase {
            name: "smoke".into(),
            ms: super::millis(smoking.elapsed()),
        });
    }

    // An older snapshot chosen on purpose is not held to the RPO target.
    let rpo_target = match options.pick {
        Pick::Latest => fc.rpo_target.as_ref().map(|d| d.0),
        _ => None,
    };
    let judgement = judge(&facts, fc.rto_target.as_ref().map(|d| d.0), rpo_target);

    let cleaning = Instant::now();
    let cleanup = cleanup(
        engine,
        &target,
        state_after,
        region,
        options,
        &restored.runtimes,
    )
    .await;
    phases.push(Phase {
        name: "cleanup".into(),
        ms: super::millis(cleaning.elapsed()),
    });

    let finished = clock();
    let mut report = Report {
        id: snapshot_id(started, rand::random()),
        factory: fc.name.clone(),
        source: fc.arm_path(),
        target: target.describe(),
        snapshot,
        pick,
        confirmed: rfc3339(confirmed_at),
        started: rfc3339(started),
        finished: rfc3339(finished),
        judgement,
        phases,
        resources: restored.counts.0,
        written: restored.counts.1,
        unchanged: restored.counts.2,
        placeholder_secrets: restored.counts.3,
        skipped: restored.skipped,
        warnings: restored.warnings,
        checks,
        cleanup,
        facts,
        locations: Vec::new(),
    };
    report.locations = store(engine, &report).await?;
    if let Ok(catalog) = engine.catalog() {
        catalog.put_drill(&report.record())?;
    }
    Ok(report)
}

/// The smoke pipeline's run in the restored factory, or why it did not start.
async fn smoke_after(
    engine: &Engine,
    target: &TargetFactory,
    pipeline: &str,
    restored: bool,
    options: &Options,
) -> Smoke {
    if restored {
        return smoke(engine, target, pipeline, options.smoke_timeout).await;
    }
    Smoke {
        pipeline: pipeline.to_string(),
        run_id: None,
        status: "NotStarted".into(),
        message: Some("the restore did not complete".into()),
        seconds: 0.0,
    }
}

/// Runtimes the drill started are stopped whatever the cleanup keeps (a
/// running Azure-SSIS IR is billed by the hour), then the scratch factory
/// is cleaned as configured.
async fn cleanup(
    engine: &Engine,
    target: &TargetFactory,
    state_after: Option<TargetState>,
    region: Option<String>,
    options: &Options,
    runtimes: &[String],
) -> Cleanup {
    let stopped = stop_runtimes(engine, target, runtimes).await;
    let mut cleanup = clean(engine, target, state_after, region, options).await;
    if let Err(failed) = stopped {
        cleanup.ok = false;
        cleanup.detail = format!("{failed}; {}", cleanup.detail);
    } else if !runtimes.is_empty() {
        cleanup.detail = format!("stopped {}; {}", runtimes.join(", "), cleanup.detail);
    }
    cleanup
}

/// What the restore part of a drill found.
#[derive(Default)]
struct Restored {
    phases: Vec<Phase>,
    checks: Vec<Check>,
    /// Resources in the snapshot, written, unchanged, placeholder secrets.
    counts: (usize, usize, usize, usize),
    skipped: Vec<String>,
    warnings: Vec<String>,
    /// The scratch factory as read back, when the restore got that far.
    state: Option<TargetState>,
    /// Integration runtimes the restore started (the cleanup stops them).
    runtimes: Vec<String>,
}

/// Stops the integration runtimes a drill started, each followed to its end.
async fn stop_runtimes(
    engine: &Engine,
    target: &TargetFactory,
    names: &[String],
) -> Result<(), String> {
    let base = target.arm_path();
    let stops = names.iter().map(|name| {
        let path = format!(
            "{base}/integrationRuntimes/{}/stop",
            super::export::encode(name)
        );
        let what = format!("the stop of integrationRuntime:{name}");
        async move {
            engine
                .arm
                .send_following(
                    azure_core::http::Method::Post,
                    &path,
                    None,
                    &what,
                    op::RUNTIME_LIMIT,
                )
                .await
                .map_err(|e| e.to_string())
        }
    });
    let failed: Vec<String> = futures::future::join_all(stops)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "could not stop every integration runtime the drill started (they are billed while running): {}",
            failed.join("; ")
        )),
    }
}

/// The restore into the scratch factory (the same use case as `adfdr
/// restore`), measured by phase; RTO ends when it reads back as planned.
async fn restore(
    engine: &Engine,
    request: op::Request,
    facts: &mut Facts,
    wall: Instant,
    progress: op::Progress<'_>,
) -> Restored {
    let mut prepared = match op::prepare(engine, request).await {
        Ok(p) => p,
        Err(e) => {
            facts.restore_error = Some(e.to_string());
            return Restored::default();
        }
    };
    let phase = |name: &str, ms: u64| Phase {
        name: name.into(),
        ms,
    };
    let mut out = Restored {
        phases: vec![
            phase("fetch", prepared.timings.fetch_ms),
            phase("decrypt", prepared.timings.decrypt_ms),
            phase("plan", prepared.timings.plan_ms),
        ],
        skipped: prepared
            .plan
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.label, s.reason))
            .collect(),
        warnings: prepared.plan.warnings.clone(),
        ..Default::default()
    };
    let outcome = op::execute(engine, &mut prepared, progress).await;
    let plan = &prepared.plan;
    let placeholders = plan.secrets.iter().filter(|s| s.filled).count();
    facts.credentials_to_give = credentials_to_give(plan);
    out.phases.push(phase("apply", outcome.timings.apply_ms));
    if !plan.start_runtimes.is_empty() {
        // Overlaps the apply: the runtimes start as soon as each exists.
        out.phases
            .push(phase("runtimes", outcome.timings.runtimes_ms));
    }
    out.runtimes = outcome
        .applied
        .runtimes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    facts.runtimes_not_running = runtime_checks(plan, &outcome.applied, &mut out.checks);
    endpoint_checks(&outcome.applied, facts, &mut out.checks);
    facts.access_not_granted = outcome
        .applied
        .grants_to_give
        .iter()
        .map(|g| format!("{}: {}", g.what, g.error))
        .collect();
    facts.apply_failures = outcome
        .applied
        .failures
        .iter()
        .map(|f| format!("{}: {}", f.what, f.error))
        .collect();
    match (outcome.state, outcome.read_back_error) {
        (Some(state), None) => {
            out.phases.push(phase("verify", outcome.timings.verify_ms));
            facts.mismatches = outcome
                .mismatches
                .iter()
                .map(|m| format!("{} {}", m.resource, m.detail))
                .collect();
            if facts.apply_failures.is_empty() {
                facts.verified_ms = Some(facts.started_ms + super::millis(wall.elapsed()) as i64);
            }
            prove(plan, &state, facts, &mut out.checks);
            out.state = Some(state);
        }
        (_, e) => {
            facts.restore_error = Some(format!(
                "reading the restore back: {}",
                e.unwrap_or_default()
            ))
        }
    }
    out.counts = (
        plan.expected.len() + plan.skipped.len(),
        outcome.applied.written,
        plan.unchanged.len(),
        placeholders,
    );
    out
}

/// "Restored" means runnable: every integration runtime that was running at
/// backup runs again, and every CDC that was running is started.
fn runtime_checks(
    plan: &crate::plan::Plan,
    applied: &op::Applied,
    checks: &mut Vec<Check>,
) -> Vec<String> {
    let mut down = Vec::new();
    if !plan.start_runtimes.is_empty() {
        let not_running: Vec<&String> = plan
            .start_runtimes
            .iter()
            .filter(|n| {
                !applied
                    .runtimes
                    .iter()
                    .any(|r| r.name.eq_ignore_ascii_case(n) && r.state == "Started")
            })
            .collect();
        checks.push(Check {
            name: "integration runtimes running".into(),
            ok: not_running.is_empty(),
            detail: match not_running.is_empty() {
                true => format!(
                    "{} started: {}",
                    applied.runtimes.len(),
                    plan.start_runtimes.join(", ")
                ),
                false => format!(
                    "not running: {}",
                    not_running
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        });
        down.extend(
            not_running
                .iter()
                .map(|n| format!("integrationRuntime:{n}")),
        );
    }
    if !plan.start_cdcs.is_empty() {
        checks.push(Check {
            name: "change data captures started".into(),
            ok: applied.cdcs_started == plan.start_cdcs.len(),
            detail: format!(
                "{} of {} started: {}",
                applied.cdcs_started,
                plan.start_cdcs.len(),
                plan.start_cdcs.join(", ")
            ),
        });
        if applied.cdcs_started < plan.start_cdcs.len() {
            down.push(format!(
                "{} of {} change data captures",
                plan.start_cdcs.len() - applied.cdcs_started,
                plan.start_cdcs.len()
            ));
        }
    }
    down
}

/// What the restored factory needs from people before its connections work:
/// each resource given a placeholder (per resource, with the values), a new
/// system-assigned principal, a credential whose identity is not attached.
fn credentials_to_give(plan: &crate::plan::Plan) -> Vec<String> {
    let mut by_resource: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for s in plan.secrets.iter().filter(|s| s.filled) {
        by_resource
            .entry(s.resource.as_str())
            .or_default()
            .push(s.pointer.as_str());
    }
    let mut out: Vec<String> = by_resource
        .into_iter()
        .map(|(resource, pointers)| {
            format!(
                "{resource}: a placeholder stands in for {} (give the real value with drill_overrides for a working connection)",
                pointers.join(", ")
            )
        })
        .collect();
    out.extend(
        plan.factory
            .notes
            .iter()
            .filter(|n| n.contains("new system-assigned principal"))
            .cloned(),
    );
    out.extend(
        plan.warnings
            .iter()
            .filter(|w| w.contains("user-assigned identity"))
            .cloned(),
    );
    out
}

/// Managed private endpoints: provisioned, and approved or awaiting their
/// approval (which is the target resource owner's, so it is noted, not
/// failed).
fn endpoint_checks(applied: &op::Applied, facts: &mut Facts, checks: &mut Vec<Check>) {
    if applied.endpoints.is_empty() {
        return;
    }
    let provisioned = |e: &&op::EndpointState| e.provisioning == "Succeeded";
    facts.endpoints_failed = applied
        .endpoints
        .iter()
        .filter(|e| !provisioned(e))
        .filter_map(op::EndpointState::blocker)
        .collect();
    facts.endpoints_pending = applied
        .endpoints
        .iter()
        .filter(provisioned)
        .filter_map(op::EndpointState::blocker)
        .collect();
    let approved = applied.endpoints.iter().filter(|e| e.is_ready()).count();
    checks.push(Check {
        name: "managed private endpoints".into(),
        ok: facts.endpoints_failed.is_empty(),
        detail: format!(
            "{} defined, {} provisioned, {approved} approved{}",
            applied.endpoints.len(),
            applied.endpoints.iter().filter(provisioned).count(),
            match facts.endpoints_pending.len() {
                0 => String::new(),
                n => format!(", {n} awaiting approval on the resource they reach"),
            }
        ),
    });
}

/// The checks beyond "reads back as planned": references resolve, global
/// parameters and the set of triggers are the snapshot's, triggers stopped.
fn prove(
    plan: &crate::plan::Plan,
    state: &TargetState,
    facts: &mut Facts,
    checks: &mut Vec<Check>,
) {
    let restored: BTreeSet<_> = plan.expected.iter().map(|e| e.key.clone()).collect();
    let graph = Graph::build(&state.resources);
    // A reference to something the snapshot has but the scratch factory
    // lacks is broken; one to what the snapshot never had was dangling at
    // the source already (the restorability report names it).
    facts.broken_references = graph
        .external
        .iter()
        .filter(|e| restored.contains(&e.to))
        .map(|e| format!("{} -> {}", graph.labels[e.from], e.label))
        .collect();
    checks.push(Check {
        name: "references".into(),
        ok: facts.broken_references.is_empty(),
        detail: if facts.broken_references.is_empty() {
            format!(
                "every reference of {} resources resolves{}",
                state.resources.len(),
                match graph.external.len() {
                    0 => String::new(),
                    n => format!(" ({n} dangling at the source already)"),
                }
            )
        } else {
            format!("{} broken", facts.broken_references.len())
        },
    });

    let params = |v: Option<&Value>| {
        v.and_then(|f| f.pointer("/properties/globalParameters"))
            .map(canonical_bytes)
            .unwrap_or_default()
    };
    let want = params(Some(&plan.expected_factory));
    facts.global_parameters_equal = want == params(state.factory.as_ref());
    let count = plan
        .expected_factory
        .pointer("/properties/globalParameters")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    checks.push(Check {
        name: "global parameters".into(),
        ok: facts.global_parameters_equal,
        detail: if facts.global_parameters_equal {
            format!("{count} equal")
        } else {
            "differ".into()
        },
    });

    prove_triggers(plan, state, facts, checks);
    checks.push(Check {
        name: "resources".into(),
        ok: facts.mismatches.is_empty() && facts.apply_failures.is_empty(),
        detail: format!(
            "{} read back with the snapshot's canonical hash, {} differ, {} writes failed",
            plan.expected.len() - facts.mismatches.len().min(plan.expected.len()),
            facts.mismatches.len(),
            facts.apply_failures.len()
        ),
    });
}

/// The trigger set equals the snapshot's, and none runs in the scratch
/// factory.
fn prove_triggers(
    plan: &crate::plan::Plan,
    state: &TargetState,
    facts: &mut Facts,
    checks: &mut Vec<Check>,
) {
    let want: BTreeMap<String, String> = plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
        .map(|e| (e.key.2.clone(), e.label.clone()))
        .collect();
    let have: BTreeMap<String, String> = state
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Trigger)
        .map(|r| (r.name.to_lowercase(), r.name.clone()))
        .collect();
    facts.triggers_missing = want
        .iter()
        .filter(|(k, _)| !have.contains_key(*k))
        .map(|(_, label)| label.clone())
        .collect();
    facts.triggers_extra = have
        .iter()
        .filter(|(k, _)| !want.contains_key(*k))
        .map(|(_, name)| name.clone())
        .collect();
    facts.triggers_started = state
        .trigger_states
        .iter()
        .filter(|(_, s)| s.as_str() == "Started")
        .map(|(n, _)| n.clone())
        .collect();
    checks.push(Check {
        name: "triggers".into(),
        ok: facts.triggers_missing.is_empty()
            && facts.triggers_extra.is_empty()
            && facts.triggers_started.is_empty(),
        detail: format!(
            "{} of {} present, {} started",
            want.len() - facts.triggers_missing.len(),
            want.len(),
            facts.triggers_started.len()
        ),
    });
}

/// Runs the smoke pipeline and waits for it (createRun, then poll).
async fn smoke(
    engine: &Engine,
    target: &TargetFactory,
    pipeline: &str,
    timeout: Duration,
) -> Smoke {
    let started = Instant::now();
    let base = target.arm_path();
    let encoded = super::export::encode(pipeline);
    let done = |run_id: Option<String>, status: &str, message: Option<String>| Smoke {
        pipeline: pipeline.to_string(),
        run_id,
        status: status.to_string(),
        message,
        seconds: started.elapsed().as_secs_f64(),
    };
    let created = engine
        .arm
        .post(
            &format!("{base}/pipelines/{encoded}/createRun"),
            &serde_json::json!({}),
        )
        .await;
    let run_id = match created {
        Ok(v) => match v["runId"].as_str() {
            Some(id) => id.to_string(),
            None => {
                return done(
                    None,
                    "NotStarted",
                    Some("createRun returned no runId".into()),
                );
            }
        },
        Err(e) => return done(None, "NotStarted", Some(e.to_string())),
    };
    let mut wait = Duration::from_millis(200);
    loop {
        match engine
            .arm
            .get(&format!("{base}/pipelineruns/{run_id}"))
            .await
        {
            Ok(run) => {
                let status = run["status"].as_str().unwrap_or("Unknown").to_string();
                if matches!(status.as_str(), "Succeeded" | "Failed" | "Cancelled") {
                    let message = run["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(str::to_string);
                    return done(Some(run_id), &status, message);
                }
            }
            Err(e) => tracing::warn!(pipeline, run = %run_id, error = %e, "polling the smoke run"),
        }
        if started.elapsed() + wait > timeout {
            let _ = engine
                .arm
                .post(
                    &format!("{base}/pipelineruns/{run_id}/cancel"),
                    &serde_json::json!({}),
                )
                .await;
            return done(
                Some(run_id),
                "TimedOut",
                Some(format!(
                    "still running after {}; cancelled",
                    crate::plan::drill::human(timeout.as_secs_f64())
                )),
            );
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Leaves the scratch factory as configured.
async fn clean(
    engine: &Engine,
    target: &TargetFactory,
    state: Option<TargetState>,
    region: Option<String>,
    options: &Options,
) -> Cleanup {
    let mode = options.cleanup.name().to_string();
    match options.cleanup {
        DrillCleanup::Keep => Cleanup {
            mode,
            ok: true,
            detail: format!("kept {} for inspection", target.describe()),
        },
        DrillCleanup::DeleteFactory => match engine
            .arm
            .send_following(
                azure_core::http::Method::Delete,
                &target.arm_path(),
                None,
                &format!("the delete of factory {}", target.describe()),
                Duration::from_secs(600),
            )
            .await
        {
            Ok(_) => Cleanup {
                mode,
                ok: true,
                detail: format!("deleted the factory {}", target.describe()),
            },
            Err(e) => Cleanup {
                mode,
                ok: false,
                detail: format!("could not delete {}: {e}", target.describe()),
            },
        },
        DrillCleanup::DeleteResources => {
            delete_resources(engine, target, state, region, options, mode).await
        }
    }
}

/// Deletes what the drill restored (what is there now: a failed restore
/// leaves some of it), dependents first; the empty factory stays.
async fn delete_resources(
    engine: &Engine,
    target: &TargetFactory,
    state: Option<TargetState>,
    region: Option<String>,
    options: &Options,
    mode: String,
) -> Cleanup {
    let identity = &engine.identity.description;
    // Read what is there now (a failed restore leaves some of it).
    let state = match state {
        Some(s) => s,
        None => match op::read_target(engine.arm.as_ref(), target, identity, options.concurrency)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return Cleanup {
                    mode,
                    ok: false,
                    detail: format!("could not read {}: {e}", target.describe()),
                };
            }
        },
    };
    let Some(factory) = state.factory.clone() else {
        return Cleanup {
            mode,
            ok: true,
            detail: "nothing to delete: the scratch factory does not exist".into(),
        };
    };
    // A plan to a snapshot holding only the factory deletes every
    // child, dependents first.
    let only = [Resource {
        kind: ResourceKind::Factory,
        parent: None,
        name: target.factory.clone(),
        definition: factory,
    }];
    let plan = crate::plan::restore::plan(
        &only,
        &BTreeMap::new(),
        region.as_deref(),
        &state,
        None,
        &PlanOptions {
            delete_extraneous: true,
            region: region.clone(),
            ..Default::default()
        },
    );
    match plan {
        Ok(plan) => {
            let applied = op::apply(
                engine.arm.as_ref(),
                identity,
                target,
                &plan,
                options.concurrency,
                op::Progress::silent(),
            )
            .await;
            Cleanup {
                mode,
                ok: applied.failures.is_empty(),
                detail: if applied.failures.is_empty() {
                    format!(
                        "deleted the {} restored resources; the empty factory stays",
                        applied.deleted
                    )
                } else {
                    format!(
                        "deleted {} resources; {} could not be deleted: {}",
                        applied.deleted,
                        applied.failures.len(),
                        applied.failures[0].error
                    )
                },
            }
        }
        Err(e) => Cleanup {
            mode,
            ok: false,
            detail: format!("could not plan the cleanup: {e}"),
        },
    }
}

/// Seals the report under a fresh data key wrapped under every configured
/// key, and writes it to every writable location (write-once).
async fn store(engine: &Engine, report: &Report) -> Result<Vec<String>, OpError> {
    let dek = DataKey::generate();
    let wrapped = engine
        .keys
        .wrap_all(&dek, &report.factory, &report.id)
        .await?;
    let mut header = Header::new(
        ObjectType::Report,
        &report.factory,
        &report.snapshot,
        &report.finished,
    );
    header.id = Some(report.id.clone());
    header.keys = Some(wrapped);
    header.summary = Some(serde_json::to_value(report.record()).expect("serialize"));
    let body = serde_json::to_vec(report).expect("serialize");
    let sealed = object::seal(header, &body, &dek);
    let key = layout::report(&report.factory, &report.id);
    let put = engine
        .replicas
        .put_new(&key, &sealed, &engine.replicas.writable_names())
        .await;
    for (location, e) in &put.failed {
        tracing::warn!(%location, error = %e, "drill report not stored there");
    }
    if put.written.is_empty() {
        return Err(OpError::failed(format!(
            "the drill report could not be stored anywhere: {}",
            put.failed
                .iter()
                .map(|(l, e)| format!("{l}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(put.written)
}

/// Opens a stored report (needs a key that wraps its data key): each
/// location in turn, falling through on any failure of its copy.
pub async fn open(engine: &Engine, factory: &str, id: &str) -> Result<Report, OpError> {
    let key = layout::report(factory, id);
    let replicas = &engine.replicas;
    let mut skipped = Vec::new();
    for l in replicas.order(None) {
        let bytes = match replicas.fetch(l, &key, crate::store::MAX_OBJECT).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                skipped.push((l.name.clone(), "no copy".to_string()));
                continue;
            }
            Err(e) => {
                skipped.push((l.name.clone(), e));
                continue;
            }
        };
        match open_report(engine, &bytes, factory, id).await {
            Ok(report) => return Ok(report),
            Err(why) => skipped.push((l.name.clone(), why)),
        }
    }
    Err(OpError::failed(format!(
        "drill report {id} of '{factory}' opens nowhere: {}",
        super::read::describe(&skipped)
    )))
}

async fn open_report(
    engine: &Engine,
    bytes: &[u8],
    factory: &str,
    id: &str,
) -> Result<Report, String> {
    let parsed = object::parse(bytes)
        .and_then(|p| p.expect(object::ObjectType::Report))
        .map_err(|e| e.to_string())?;
    if parsed.header.factory != factory || parsed.header.id.as_deref() != Some(id) {
        return Err("the copy claims to be another report: moved, swapped or planted".into());
    }
    let wrapped = parsed.header.keys.clone().unwrap_or_default();
    let dek = engine
        .keys
        .unwrap_any(&wrapped, factory, id)
        .await
        .map_err(|e| e.to_string())?;
    let plain = parsed
        .open(&dek, object::DEFAULT_MAX_PLAIN)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&plain).map_err(|e| format!("does not parse: {e}"))
}
