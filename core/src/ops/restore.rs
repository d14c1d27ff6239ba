//! `adfdr restore`: read a snapshot (first intact location), read the target,
//! plan (`plan::restore`), then carry the plan out: factory, trigger stops,
//! every write as soon as its dependencies are done (bounded concurrency,
//! backing off together on throttling), deletes dependents first, the
//! factory's staging back-reference, trigger starts dependencies first; then
//! read everything back and compare canonical hashes with the plan.
//!
//! Works from the store and a key alone (incident mode): nothing here needs
//! a config file or the catalog.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::OpError;
use super::export::{self, ExportError, encode};
use super::read::{self, Opened};
use crate::config::FactoryConfig;
use crate::factory::arm::{ArmClient, ArmError};
use crate::keys::KeyRing;
use crate::model::{ResourceKind, canonical_bytes};
use crate::plan::overrides::Overrides;
use crate::plan::restore::{Action, Plan, PlanOptions, TargetState, plan};
use crate::store::Replicas;

/// `SUB/RG/FACTORY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetFactory {
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
}

impl TargetFactory {
    pub fn parse(text: &str) -> Result<TargetFactory, String> {
        let text = text.trim_start_matches("/subscriptions/");
        let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
        let parts: Vec<&str> = match parts.as_slice() {
            [
                sub,
                "resourceGroups",
                rg,
                "providers",
                "Microsoft.DataFactory",
                "factories",
                f,
            ] => {
                vec![sub, rg, f]
            }
            _ => parts,
        };
        match parts.as_slice() {
            [sub, rg, f] => {
                crate::model::names::factory_path(sub, rg, f).map_err(|e| format!("--to: {e}"))?;
                Ok(TargetFactory {
                    subscription: sub.to_string(),
                    resource_group: rg.to_string(),
                    factory: f.to_string(),
                })
            }
            _ => Err(format!(
                "--to {text:?}: expected SUBSCRIPTION/RESOURCE_GROUP/FACTORY (or the factory's ARM id)"
            )),
        }
    }

    pub fn config(&self) -> FactoryConfig {
        FactoryConfig::adhoc(
            &self.factory,
            &self.subscription,
            &self.resource_group,
            &self.factory,
        )
    }

    pub fn arm_path(&self) -> String {
        self.config().arm_path()
    }

    pub fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            self.subscription, self.resource_group, self.factory
        )
    }
}

/// Wall time per phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub fetch_ms: u128,
    pub decrypt_ms: u128,
    pub plan_ms: u128,
    pub apply_ms: u128,
    pub verify_ms: u128,
}

/// A snapshot read and a plan made against the target's current state.
pub struct Prepared {
    pub opened: Opened,
    /// Where the payload came from, and the locations skipped on the way.
    pub payload_location: String,
    pub skipped_locations: Vec<(String, String)>,
    pub target: TargetFactory,
    pub target_existed: bool,
    /// The target's trigger states before the restore.
    pub target_triggers: TargetStateTriggers,
    pub plan: Plan,
    pub timings: Timings,
}

/// Reads the target factory; a factory that does not exist is an empty state.
pub async fn read_target(
    arm: &ArmClient,
    target: &TargetFactory,
    identity: &str,
    concurrency: usize,
) -> Result<TargetState, OpError> {
    match export::export(arm, &target.config(), identity, concurrency).await {
        Ok(exported) => {
            let mut resources = exported.resources;
            let factory = resources
                .iter()
                .position(|r| r.kind == ResourceKind::Factory)
                .map(|i| resources.remove(i).definition);
            Ok(TargetState {
                factory,
                resources,
                trigger_states: exported.trigger_states,
            })
        }
        Err(ExportError::NotFound { .. }) => Ok(TargetState::default()),
        Err(ExportError::Denied {
            identity,
            path,
            status,
            code,
        }) => Err(OpError::Failed(format!(
            "{identity} may not read the target factory {path} (HTTP {status} {code}); grant it 'Data Factory Contributor' on the target factory or its resource group"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    replicas: &Replicas,
    keys: &KeyRing,
    arm: &ArmClient,
    identity: &str,
    snapshot: &str,
    factory: Option<&str>,
    target: &TargetFactory,
    overrides: Option<&Overrides>,
    options: &PlanOptions,
    concurrency: usize,
) -> Result<Prepared, OpError> {
    let fetching = Instant::now();
    let opened = read::open_reference(replicas, keys, snapshot, factory).await?;
    let (resources, from, decrypt) = read::payload_timed(replicas, &opened).await?;
    let fetch = fetching.elapsed().saturating_sub(decrypt);
    let planning = Instant::now();
    let state = read_target(arm, target, identity, concurrency).await?;
    let target_existed = state.factory.is_some();
    let target_triggers = state.trigger_states.clone();
    let plan = plan(
        &resources,
        &opened.manifest.trigger_states,
        opened.manifest.region.as_deref(),
        &state,
        overrides,
        options,
    )
    .map_err(|e| {
        use crate::plan::PlanError;
        let text = format!("cannot plan the restore: {e}");
        match e {
            // What the operator asked for cannot work: usage (exit 2).
            PlanError::Strict(_) | PlanError::MissingDependency { .. } | PlanError::NoRegion => {
                OpError::Usage(text)
            }
            PlanError::Cycle(_) | PlanError::NoFactory => OpError::Failed(text),
        }
    })?;
    let mut skipped_locations = opened.skipped.clone();
    skipped_locations.extend(from.skipped.iter().cloned());
    skipped_locations.dedup();
    Ok(Prepared {
        payload_location: from.location,
        skipped_locations,
        target: target.clone(),
        target_existed,
        target_triggers,
        plan,
        timings: Timings {
            fetch_ms: fetch.as_millis(),
            decrypt_ms: decrypt.as_millis(),
            plan_ms: planning.elapsed().as_millis(),
            ..Default::default()
        },
        opened,
    })
}

/// One thing that went wrong while applying.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub what: String,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Applied {
    pub written: usize,
    pub deleted: usize,
    pub stopped: usize,
    pub started: usize,
    pub failures: Vec<Failure>,
}

/// Progress lines (`created pipeline:PL_Load`).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Throttling seen by any request pauses every new request until the
/// service's Retry-After has passed: the whole restore backs off together.
#[derive(Default)]
struct Throttle {
    until: Mutex<Option<Instant>>,
}

impl Throttle {
    async fn wait(&self) {
        loop {
            let until = *self.until.lock().expect("throttle");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }

    fn pause(&self, d: Duration) {
        let mut until = self.until.lock().expect("throttle");
        let t = Instant::now() + d;
        if until.is_none_or(|u| u < t) {
            *until = Some(t);
        }
    }
}

/// How long writes keep being retried on throttling and transient faults.
const WRITE_DEADLINE: Duration = Duration::from_secs(600);

fn transient(e: &ArmError) -> bool {
    match e {
        ArmError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        ArmError::Transport { credential, .. } => !credential,
        _ => false,
    }
}

/// "Resource cannot be updated during provisioning" (event triggers after a write).
fn provisioning(e: &ArmError) -> bool {
    matches!(e, ArmError::Status { status: 400 | 409, message, .. } if message.to_lowercase().contains("provisioning"))
}

/// Sends one write, retrying what is transient (azure_core's retry policy
/// already honoured Retry-After; this outer loop outlasts a throttling storm
/// instead of failing the restore after its few retries).
async fn write(
    arm: &ArmClient,
    throttle: &Throttle,
    method: azure_core::http::Method,
    path: &str,
    body: Option<&Value>,
    retry_provisioning: bool,
) -> Result<Value, ArmError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        throttle.wait().await;
        match arm.send(method, path, body).await {
            Ok((_, v)) => return Ok(v),
            Err(e)
                if (transient(&e) || (retry_provisioning && provisioning(&e)))
                    && started.elapsed() < WRITE_DEADLINE =>
            {
                if e.status() == Some(429) {
                    throttle.pause(delay);
                }
                tracing::debug!(path, error = %e, "retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(20));
            }
            Err(e) => return Err(e),
        }
    }
}

fn resource_path(base: &str, kind: ResourceKind, parent: Option<&str>, name: &str) -> String {
    match (kind, parent) {
        (ResourceKind::ManagedPrivateEndpoint, Some(vnet)) => format!(
            "{base}/managedVirtualNetworks/{}/managedPrivateEndpoints/{}",
            encode(vnet),
            encode(name)
        ),
        _ => format!("{base}/{}/{}", kind.segment(), encode(name)),
    }
}

/// Runs `jobs` (indices) so that each starts after the jobs it `needs` are
/// done, at most `limit` at a time. A job whose prerequisite failed is not
/// run; it fails naming that prerequisite.
async fn run_dag<F, Fut>(
    count: usize,
    needs: impl Fn(usize) -> Vec<usize>,
    label: impl Fn(usize) -> String,
    limit: usize,
    job: F,
) -> Vec<Result<(), String>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut waiting: Vec<usize> = (0..count).map(|i| needs(i).len()).collect();
    let mut dependents = vec![Vec::new(); count];
    for i in 0..count {
        for d in needs(i) {
            dependents[d].push(i);
        }
    }
    let mut results: Vec<Option<Result<(), String>>> = vec![None; count];
    let mut ready: std::collections::VecDeque<usize> =
        (0..count).filter(|&i| waiting[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    loop {
        while let Some(i) = ready.pop_front() {
            let permit = semaphore.clone().acquire_owned();
            let fut = job(i);
            running.push(async move {
                let _permit = permit.await.expect("semaphore open");
                (i, fut.await)
            });
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        let ok = result.is_ok();
        results[i] = Some(result);
        if ok {
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 && results[d].is_none() {
                    ready.push_back(d);
                }
            }
        } else {
            // Dependents of a failure fail without running, and theirs after them.
            let mut failed = vec![i];
            while let Some(f) = failed.pop() {
                for &d in &dependents[f] {
                    if results[d].is_none() {
                        results[d] = Some(Err(format!(
                            "not attempted: needs {}, which failed",
                            label(f)
                        )));
                        failed.push(d);
                    }
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not attempted".into())))
        .collect()
}

/// An ARM error as an operator reads it: a refusal names the identity and
/// the role it needs.
fn explain(e: &ArmError, identity: &str, target: &TargetFactory) -> String {
    match e.status() {
        Some(401 | 403) => format!(
            "{identity} may not change factory {} (HTTP {} {}); grant it 'Data Factory Contributor' on the target factory or its resource group",
            target.describe(),
            e.status().unwrap_or(0),
            e.code().unwrap_or("")
        ),
        _ => e.to_string(),
    }
}

/// Carries the plan out. Never writes a masked secret (the plan skipped
/// those resources); stops at nothing but reports every failure.
pub async fn apply(
    arm: &ArmClient,
    identity: &str,
    target: &TargetFactory,
    plan: &Plan,
    concurrency: usize,
    progress: Progress<'_>,
) -> Applied {
    use azure_core::http::Method;
    let base = target.arm_path();
    let throttle = Throttle::default();
    let mut applied = Applied::default();
    let failures = Mutex::new(Vec::<Failure>::new());
    let fail = |what: String, error: String| {
        failures
            .lock()
            .expect("failures")
            .push(Failure { what, error });
    };

    // 1. The factory: everything else lives in it.
    if plan.factory.action != Action::Unchanged {
        match write(
            arm,
            &throttle,
            Method::Put,
            &base,
            Some(&plan.factory.body),
            false,
        )
        .await
        {
            Ok(_) => {
                applied.written += 1;
                progress(&format!(
                    "{} factory {}",
                    if plan.factory.action == Action::Create {
                        "created"
                    } else {
                        "updated"
                    },
                    target.describe()
                ));
            }
            Err(e) => {
                // Nothing else can succeed without the factory.
                fail(
                    format!("factory {}", target.describe()),
                    explain(&e, identity, target),
                );
                applied.failures = failures.into_inner().expect("failures");
                return applied;
            }
        }
    }

    // 2. Stop the started triggers that are rewritten, deleted or restored stopped.
    for name in &plan.stop_triggers {
        let path = format!("{base}/triggers/{}/stop", encode(name));
        match write(arm, &throttle, Method::Post, &path, None, true).await {
            Ok(_) => {
                applied.stopped += 1;
                progress(&format!("stopped trigger:{name}"));
            }
            Err(e) => fail(
                format!("stop trigger:{name}"),
                explain(&e, identity, target),
            ),
        }
    }

    // 3. Writes, each as soon as what it references exists.
    let results = run_dag(
        plan.steps.len(),
        |i| plan.steps[i].deps.clone(),
        |i| plan.steps[i].label.clone(),
        concurrency,
        |i| {
            let step = &plan.steps[i];
            let path = resource_path(&base, step.kind, step.parent.as_deref(), &step.name);
            let throttle = &throttle;
            async move {
                write(
                    arm,
                    throttle,
                    Method::Put,
                    &path,
                    Some(&step.definition),
                    false,
                )
                .await
                .map(|_| {
                    progress(&format!(
                        "{} {}",
                        if step.action == Action::Create {
                            "created"
                        } else {
                            "updated"
                        },
                        step.label
                    ))
                })
                .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    for (step, result) in plan.steps.iter().zip(results) {
        match result {
            Ok(()) => applied.written += 1,
            Err(e) => fail(step.label.clone(), e),
        }
    }

    // 4. Deletes, dependents first.
    let results = run_dag(
        plan.delete.len(),
        |i| plan.delete[i].after.clone(),
        |i| plan.delete[i].label.clone(),
        concurrency,
        |i| {
            let d = &plan.delete[i];
            let path = resource_path(&base, d.kind, d.parent.as_deref(), &d.name);
            let throttle = &throttle;
            async move {
                write(arm, throttle, Method::Delete, &path, None, false)
                    .await
                    .map(|_| progress(&format!("deleted {}", d.label)))
                    .map_err(|e| explain(&e, identity, target))
            }
        },
    )
    .await;
    for (d, result) in plan.delete.iter().zip(results) {
        match result {
            Ok(()) => applied.deleted += 1,
            Err(e) => fail(format!("delete {}", d.label), e),
        }
    }

    // 5. The factory's staging back-reference, now that its linked service exists.
    if let Some(body) = &plan.factory.final_body {
        match write(arm, &throttle, Method::Put, &base, Some(body), false).await {
            Ok(_) => {
                applied.written += 1;
                progress("set the factory's default staging linked service");
            }
            Err(e) => fail(
                "factory staging linked service".into(),
                explain(&e, identity, target),
            ),
        }
    }

    // 6. Start triggers, dependencies first; event triggers subscribe first.
    let types: HashMap<String, String> = plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
        .map(|e| {
            (
                e.key.2.clone(),
                e.definition
                    .pointer("/properties/type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let failed_now: Vec<String> = failures
        .lock()
        .expect("failures")
        .iter()
        .map(|f| f.what.to_lowercase())
        .collect();
    for name in &plan.start_triggers {
        if failed_now.contains(&format!("trigger:{}", name.to_lowercase())) {
            continue;
        }
        let kind = types
            .get(&name.to_lowercase())
            .map(String::as_str)
            .unwrap_or("");
        let trigger = format!("{base}/triggers/{}", encode(name));
        if matches!(kind, "BlobEventsTrigger" | "CustomEventsTrigger")
            && let Err(e) = subscribe(arm, &throttle, &trigger).await
        {
            fail(format!("subscribe trigger:{name} to events"), e);
            continue;
        }
        match write(
            arm,
            &throttle,
            Method::Post,
            &format!("{trigger}/start"),
            None,
            true,
        )
        .await
        {
            Ok(_) => {
                applied.started += 1;
                progress(&format!("started trigger:{name}"));
            }
            Err(e) => fail(
                format!("start trigger:{name}"),
                explain(&e, identity, target),
            ),
        }
    }
    applied.failures = failures.into_inner().expect("failures");
    applied
}

/// subscribeToEvents, then poll getEventSubscriptionStatus until Enabled.
async fn subscribe(arm: &ArmClient, throttle: &Throttle, trigger: &str) -> Result<(), String> {
    use azure_core::http::Method;
    write(
        arm,
        throttle,
        Method::Post,
        &format!("{trigger}/subscribeToEvents"),
        None,
        true,
    )
    .await
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut delay = Duration::from_millis(200);
    loop {
        let status = write(
            arm,
            throttle,
            Method::Post,
            &format!("{trigger}/getEventSubscriptionStatus"),
            None,
            true,
        )
        .await
        .map_err(|e| e.to_string())?;
        match status.get("status").and_then(Value::as_str) {
            Some("Enabled") => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "event subscription did not become Enabled within 5 minutes ({status}); check that the Microsoft.EventGrid resource provider is registered in the subscription of the trigger's storage account, then run the restore again"
                ));
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A restored resource that does not read back as planned.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    pub resource: String,
    pub detail: String,
}

/// Reads the target back and compares every planned resource (canonical
/// bytes, secrets masked as the service masks them), the factory, and the
/// trigger states.
/// Also hands back the target as it was read (drills check more of it).
pub async fn verify(
    arm: &ArmClient,
    target: &TargetFactory,
    identity: &str,
    plan: &Plan,
    started_triggers_expected: &[String],
    concurrency: usize,
) -> Result<(Vec<Mismatch>, TargetState), OpError> {
    let state = read_target(arm, target, identity, concurrency).await?;
    let actual: HashMap<_, _> = state.resources.iter().map(|r| (r.key(), r)).collect();
    let mut out = Vec::new();
    for e in &plan.expected {
        match actual.get(&e.key) {
            None => out.push(Mismatch {
                resource: e.label.clone(),
                detail: "missing from the target".into(),
            }),
            Some(r) if canonical_bytes(&r.definition) != canonical_bytes(&e.definition) => out
                .push(Mismatch {
                    resource: e.label.clone(),
                    detail: format!(
                        "differs from the snapshot at {}",
                        first_difference(&e.definition, &r.definition, "")
                            .unwrap_or_else(|| "the top".into())
                    ),
                }),
            Some(_) => {}
        }
    }
    match &state.factory {
        None => out.push(Mismatch {
            resource: format!("factory {}", target.describe()),
            detail: "missing".into(),
        }),
        Some(f) if canonical_bytes(f) != canonical_bytes(&plan.expected_factory) => {
            out.push(Mismatch {
                resource: format!("factory {}", target.describe()),
                detail: format!(
                    "differs from the plan at {}",
                    first_difference(&plan.expected_factory, f, "")
                        .unwrap_or_else(|| "the top".into())
                ),
            })
        }
        Some(_) => {}
    }
    for e in plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
    {
        let name = &actual
            .get(&e.key)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let is_started = state
            .trigger_states
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started");
        let should = started_triggers_expected
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&e.key.2));
        if is_started != should && !name.is_empty() {
            out.push(Mismatch {
                resource: e.label.clone(),
                detail: format!(
                    "is {}, expected {}",
                    if is_started { "started" } else { "stopped" },
                    if should { "started" } else { "stopped" }
                ),
            });
        }
    }
    Ok((out, state))
}

/// The JSON Pointer of the first place two values differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &here),
                    _ => Some(here),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".into() } else { at.into() }),
    }
}

/// The triggers that must be started after the restore: those the plan
/// starts, and restored ones that were already started and stay so.
pub fn started_after(plan: &Plan, before: &TargetStateTriggers) -> Vec<String> {
    let mut out: Vec<String> = plan.start_triggers.clone();
    for e in plan
        .expected
        .iter()
        .filter(|e| e.key.0 == ResourceKind::Trigger)
    {
        let was = before
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(&e.key.2) && s == "Started");
        let stopped = plan
            .stop_triggers
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&e.key.2));
        if was && !stopped && !out.iter().any(|n| n.eq_ignore_ascii_case(&e.key.2)) {
            out.push(e.key.2.clone());
        }
    }
    out
}

/// Trigger name → runtime state, as read before the restore.
pub type TargetStateTriggers = std::collections::BTreeMap<String, String>;

/// Appends one line to the audit trail (JSON lines, mode 0600). A restore
/// in an incident must not fail because the trail cannot be written: the
/// caller warns instead.
pub fn audit(dir: &std::path::Path, record: &Value) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join("audit.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_from_paths_and_arm_ids() {
        let t = TargetFactory::parse("11111111-2222-3333-4444-555555555555/rg-dr/adf-dr")
            .expect("path");
        assert_eq!(
            t.arm_path(),
            "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dr/providers/Microsoft.DataFactory/factories/adf-dr"
        );
        let id = TargetFactory::parse("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dr/providers/Microsoft.DataFactory/factories/adf-dr").expect("id");
        assert_eq!(id, t);
        let e = TargetFactory::parse("adf-dr").expect_err("short");
        assert!(e.contains("SUBSCRIPTION/RESOURCE_GROUP/FACTORY"), "{e}");
    }

    #[tokio::test]
    async fn the_dag_runs_dependencies_first_and_skips_after_failures() {
        // 0 <- 1 <- 2, 3 alone, 4 needs 3; job 1 fails.
        let needs = |i: usize| match i {
            1 => vec![0],
            2 => vec![1],
            4 => vec![3],
            _ => vec![],
        };
        let order = Mutex::new(Vec::new());
        let results = run_dag(
            5,
            needs,
            |i| format!("job{i}"),
            2,
            |i| {
                let order = &order;
                async move {
                    order.lock().expect("order").push(i);
                    if i == 1 {
                        Err("boom".to_string())
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        let order = order.into_inner().expect("order");
        assert!(order.iter().position(|&i| i == 0) < order.iter().position(|&i| i == 1));
        assert!(order.iter().position(|&i| i == 3) < order.iter().position(|&i| i == 4));
        assert!(!order.contains(&2), "a job after a failure does not run");
        assert_eq!(results[1], Err("boom".into()));
        assert_eq!(
            results[2],
            Err("not attempted: needs job1, which failed".into())
        );
        assert!(results[4].is_ok());
    }

    #[test]
    fn the_first_difference_is_named_by_pointer() {
        let a = serde_json::json!({"properties": {"a": [1, 2], "b": "x"}});
        let b = serde_json::json!({"properties": {"a": [1, 3], "b": "x"}});
        assert_eq!(
            first_difference(&a, &b, "").as_deref(),
            Some("/properties/a/1")
        );
        assert_eq!(first_difference(&a, &a, ""), None);
    }
}
