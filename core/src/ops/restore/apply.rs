//! Carrying a restore plan out: the factory, trigger stops, every write as
//! soon as its dependencies are done (as many in flight as the service
//! takes: the window grows until a 429 and halves on one, backing off
//! together on throttling), deletes dependents first, the factory's staging
//! back-reference, trigger starts dependencies first (event triggers
//! subscribe first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::TargetFactory;
use super::window::Window;
use crate::factory::lro::{self, transient};
use crate::factory::{ArmError, FactoryApi};
use crate::model::ResourceKind;
use crate::ops::export::encode;
use crate::plan::restore::{Action, Plan};

/// One thing that went wrong while applying.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Failure {
    pub what: String,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Applied {
    pub written: usize,
    pub deleted: usize,
    pub stopped: usize,
    pub started: usize,
    /// Integration runtimes started, each with how long its start took.
    pub runtimes: Vec<RuntimeStarted>,
    /// Change data captures started.
    pub cdcs_started: usize,
    /// Managed private endpoints of the restore, once provisioned.
    pub endpoints: Vec<EndpointState>,
    /// The most writes in flight at once (the window grows while the
    /// service takes them).
    #[serde(default)]
    pub in_flight_peak: usize,
    /// Access the restoring identity could not grant the factory's new
    /// identity: each with the command for someone who may. The factory is
    /// restored, not yet runnable.
    #[serde(default)]
    pub grants_to_give: Vec<Failure>,
    pub failures: Vec<Failure>,
}

/// A managed private endpoint after the restore: provisioned (or not) by
/// the factory, approved (or not) by whoever owns the resource it reaches.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct EndpointState {
    /// `managedPrivateEndpoint:default/mpe-sql`.
    pub endpoint: String,
    /// provisioningState: Succeeded, Failed, or still Provisioning when the
    /// wait ran out.
    pub provisioning: String,
    /// The connection's status on the target resource: Approved, Pending,
    /// Rejected or Disconnected.
    pub approval: String,
    /// The resource whose owner approves the connection (privateLinkResourceId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl EndpointState {
    /// Provisioned and approved: traffic can flow.
    pub fn is_ready(&self) -> bool {
        self.provisioning == "Succeeded" && self.approval == "Approved"
    }

    /// What keeps it from carrying traffic, for reports and verdicts.
    pub fn blocker(&self) -> Option<String> {
        let at = self.resource.as_deref().unwrap_or("its target resource");
        let group = self
            .group
            .as_deref()
            .map(|g| format!(" (sub-resource {g})"))
            .unwrap_or_default();
        match (self.provisioning.as_str(), self.approval.as_str()) {
            ("Succeeded", "Approved") => None,
            ("Succeeded", "Pending") => Some(format!(
                "{} is provisioned and awaits approval on {at}{group}: its owner approves the private endpoint connection there",
                self.endpoint
            )),
            ("Succeeded", other) => Some(format!(
                "{}: the connection on {at} is {other}; ask its owner to approve it, or delete and restore the endpoint",
                self.endpoint
            )),
            ("Failed", _) => Some(format!(
                "{} failed to provision towards {at}{group}; check that the resource exists and the factory may reach it",
                self.endpoint
            )),
            (other, _) => Some(format!(
                "{} is still {other} after {}; it will carry traffic once provisioned and approved on {at}",
                self.endpoint,
                lro::human(ENDPOINT_LIMIT)
            )),
        }
    }
}

/// An integration runtime the restore started.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RuntimeStarted {
    pub name: String,
    /// As the service reported it at the end (`Started`).
    pub state: String,
    /// From the start of the apply until it was running.
    pub ready_ms: u64,
}

/// What a progress line is: one of many routine writes (a person off a
/// terminal gets these as periodic summaries), or news they must see each
/// of (a lock put back, a grant, a delete, a runtime started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Said {
    Routine,
    News,
}

/// Progress lines (`created pipeline:PL_Load`).
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    /// A line for people, as each step ends.
    pub say: &'a (dyn Fn(&str, Said) + Sync),
    /// Writes done so far, of the plan's `writes()`: what a progress bar
    /// shows, and what an interrupted restore reports.
    pub done: &'a std::sync::atomic::AtomicUsize,
}

impl<'a> Progress<'a> {
    pub fn new(
        say: &'a (dyn Fn(&str, Said) + Sync),
        done: &'a std::sync::atomic::AtomicUsize,
    ) -> Self {
        Progress { say, done }
    }

    /// One of the plan's writes done (`Plan::writes` counts these).
    pub fn wrote(&self, text: &str) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.say)(text, Said::Routine);
    }

    /// One of the plan's writes that is news: each is said.
    pub fn wrote_news(&self, text: &str) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.say)(text, Said::News);
    }

    /// Nothing said, nothing counted that anyone reads (tests, a drill's
    /// cleanup).
    pub fn silent() -> Progress<'static> {
        static NOTHING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Progress {
            say: &|_, _| {},
            done: &NOTHING,
        }
    }

    /// News that is not one of the plan's writes (a runtime, an endpoint).
    pub fn note(&self, text: &str) {
        (self.say)(text, Said::News);
    }
}

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

/// How long a long-running write (a trigger start, an event subscription,
/// a factory delete) is followed before it is reported unfinished.
const OPERATION_LIMIT: Duration = Duration::from_secs(600);

/// How long an integration runtime start is followed: an Azure-SSIS IR
/// takes 20-30 minutes (recorded: 22), so well beyond that.
pub const RUNTIME_LIMIT: Duration = Duration::from_secs(45 * 60);

/// How long a managed private endpoint's provisioning is waited for (the
/// service takes a minute or two).
pub const ENDPOINT_LIMIT: Duration = Duration::from_secs(10 * 60);

/// "Resource cannot be updated during provisioning" (event triggers after a write).
fn provisioning(e: &ArmError) -> bool {
    matches!(e, ArmError::Status { status: 400 | 409, message, .. } if message.to_lowercase().contains("provisioning"))
}

/// Sends one write, retrying what is transient (azure_core's retry policy
/// already honoured Retry-After; this outer loop outlasts a throttling storm
/// instead of failing the restore after its few retries). A write the
/// service answers as long-running (201/202 with somewhere to poll) is
/// followed to its end: an accepted operation is not a finished one.
async fn write(
    arm: &dyn FactoryApi,
    throttle: &Throttle,
    method: azure_core::http::Method,
    path: &str,
    body: Option<&Value>,
    retry_provisioning: bool,
) -> Result<Value, ArmError> {
    let call = Call {
        method,
        path,
        body,
        retry_provisioning,
        limit: OPERATION_LIMIT,
    };
    write_call(arm, throttle, call).await
}

/// One write: what `write` sends, with the wait for its operation.
struct Call<'a> {
    method: azure_core::http::Method,
    path: &'a str,
    body: Option<&'a Value>,
    retry_provisioning: bool,
    limit: Duration,
}

async fn write_call(
    arm: &dyn FactoryApi,
    throttle: &Throttle,
    call: Call<'_>,
) -> Result<Value, ArmError> {
    let Call {
        method,
        path,
        body,
        retry_provisioning,
        limit,
    } = call;
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        throttle.wait().await;
        match arm.request(method, path, body).await {
            Ok(answer) => {
                let what = format!("{method} {}", short_path(path));
                return lro::follow(arm, answer, &what, limit).await;
            }
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

/// A string field of a definition ("" when absent).
fn text_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `az keyvault set-policy` for `permissions` (keys, secrets, certificates,
/// storage) on the vault with id `vault`.
pub fn set_policy_command(vault: &str, principal: &str, permissions: &Value) -> String {
    let part = |i: usize| vault.split('/').nth(i).unwrap_or_default().to_string();
    let mut command = format!(
        "az keyvault set-policy --subscription {} --resource-group {} --name {} --object-id {principal}",
        part(2),
        part(4),
        part(8)
    );
    for group in ["keys", "secrets", "certificates", "storage"] {
        let granted: Vec<&str> = permissions
            .get(group)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !granted.is_empty() {
            let flag = group.trim_end_matches('s');
            command.push_str(&format!(" --{flag}-permissions {}", granted.join(" ")));
        }
    }
    command
}

/// The principal of the restored factory's identity a grant was held by
/// (`properties.principal`: the system-assigned one, or a user-assigned one
/// it has attached); a person's or group's own id is theirs (`Ok("")`: the
/// grant names it). Why not, for the report.
fn own_principal(identity: Option<&Value>, grant: &Value) -> Result<String, String> {
    use crate::model::kind::{SYSTEM_ASSIGNED, USER_ASSIGNED};
    let held_by = text_at(grant, "/properties/principal");
    if !crate::model::kind::own_identity(&held_by) {
        return Ok(String::new());
    }
    if held_by.is_empty() || held_by == SYSTEM_ASSIGNED {
        return identity
            .and_then(|i| i.get("principalId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                "the restored factory has no system-assigned identity to grant it to".to_string()
            });
    }
    let uami = &held_by[USER_ASSIGNED.len()..];
    identity
        .and_then(|i| i.get("userAssignedIdentities"))
        .and_then(Value::as_object)
        .and_then(|all| all.iter().find(|(id, _)| id.eq_ignore_ascii_case(uami)))
        .and_then(|(_, u)| u.get("principalId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the restored factory does not have the user-assigned identity {uami} attached (or it no longer exists): attach it (identity.userAssignedIdentities of the factory), or make it again, then run the restore again"
            )
        })
}

/// The same grant always gets the same assignment name (a name-based
/// GUID of principal, role and scope): a rerun finds it, never doubles it.
fn grant_name(principal: &str, role: &str, scope: &str) -> uuid::Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!("{principal}|{role}|{}", scope.to_ascii_lowercase()).as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
}

/// An alert's definition with FACTORY_ID made the target factory's id.
fn rescoped(definition: &Value, factory: &str) -> Value {
    use crate::model::kind::{FACTORY_ID, replace_strings};
    let mut out = definition.clone();
    replace_strings(&mut out, &|s| s == FACTORY_ID, factory);
    out
}

/// A path from the factory down (`…/triggers/T/start`), for messages.
fn short_path(path: &str) -> String {
    match path.find("/factories/") {
        Some(i) => format!("…{}", &path[i..]),
        None => path.to_string(),
    }
}

fn resource_path(base: &str, kind: ResourceKind, parent: Option<&str>, name: &str) -> String {
    if let Some((provider, version)) = kind.extension()
        && kind.in_resource_group()
    {
        return format!(
            "{}/{provider}/{}?api-version={version}",
            crate::ops::export::resource_group_of(base),
            encode(name)
        );
    }
    if let Some((provider, version)) = kind.extension() {
        return format!("{base}/{provider}/{}?api-version={version}", encode(name));
    }
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
/// done, as many at a time as the window holds. A job whose prerequisite
/// failed is not run; it fails naming that prerequisite.
async fn run_dag<F, Fut>(
    count: usize,
    needs: impl Fn(usize) -> Vec<usize>,
    label: impl Fn(usize) -> String,
    window: &Window<'_>,
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
    loop {
        while let Some(i) = ready.pop_front() {
            let fut = job(i);
            running.push(async move {
                let slot = window.enter().await;
                let result = fut.await;
                window.done(slot);
                (i, result)
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
    if e.code() == Some("DataFactoryNameInUse") {
        return format!(
            "the factory name '{}' is taken: factory names are global across Azure, and another subscription or tenant has a factory by that name; restore with --to {}/{}/ANOTHER-NAME",
            target.factory, target.subscription, target.resource_group
        );
    }
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
    arm: &dyn FactoryApi,
    identity: &str,
    target: &TargetFactory,
    plan: &Plan,
    concurrency: usize,
    progress: Progress<'_>,
) -> Applied {
    let a = Applier {
        arm,
        identity,
        target,
        base: target.arm_path(),
        throttle: Throttle::default(),
        failures: Mutex::new(Vec::new()),
        progress,
        began: Instant::now(),
        start_runtimes: &plan.start_runtimes,
        window: Window::new(arm, concurrency),
        ungranted: Mutex::new(Vec::new()),
    };
    let mut applied = Applied::default();
    // 1. The factory: everything else lives in it.
    match a.factory(plan).await {
        Ok(written) => applied.written += written,
        Err(()) => {
            // Nothing else can succeed without the factory.
            applied.failures = a.failures.into_inner().expect("failures");
            return applied;
        }
    }
    // 2. Stop the started triggers that are rewritten, deleted or restored stopped.
    applied.stopped = a.stop_triggers(plan).await;
    // Runtimes that were running start as soon as each exists, alongside
    // everything after this (an Azure-SSIS IR start takes 20-30 minutes).
    let (ready, written) = tokio::sync::mpsc::unbounded_channel::<String>();
    for name in &plan.start_runtimes {
        if !plan.steps.iter().any(|s| is_runtime(s.kind, &s.name, name)) {
            let _ = ready.send(name.clone());
        }
    }
    let rest = async {
        // 3. Writes, each as soon as what it references exists.
        let written = a.writes(plan, ready).await;
        let tail = async {
            // 4. Deletes, dependents first.
            let deleted = a.deletes(plan).await;
            // 5. The factory's staging back-reference, now that its linked service exists.
            let staged = a.staging(plan).await;
            // 6. Start triggers, dependencies first; event triggers subscribe first.
            let started = a.start_triggers(plan).await;
            // 7. Change data captures that were running.
            let cdcs = a.start_cdcs(plan).await;
            (staged, deleted, started, cdcs)
        };
        // Managed private endpoints provision meanwhile.
        let ((staged, deleted, started, cdcs), endpoints) = tokio::join!(tail, a.endpoints(plan));
        (written + staged, deleted, started, cdcs, endpoints)
    };
    let ((written, deleted, started, cdcs, endpoints), runtimes) =
        tokio::join!(rest, a.start_runtimes(written));
    // 8. The old identity's access, granted to the factory's own.
    let granted = a.grants(plan).await;
    // 9. Locks last, once every runtime is started too.
    let locked = a.locks(plan).await;
    applied.written += written + granted + locked;
    applied.deleted = deleted;
    applied.started = started;
    applied.cdcs_started = cdcs;
    applied.endpoints = endpoints;
    applied.runtimes = runtimes;
    applied.in_flight_peak = a.window.peak();
    applied.grants_to_give = a.ungranted.into_inner().expect("grants");
    applied.failures = a.failures.into_inner().expect("failures");
    applied
}

/// What every phase of an apply shares.
struct Applier<'a> {
    arm: &'a dyn FactoryApi,
    identity: &'a str,
    target: &'a TargetFactory,
    base: String,
    throttle: Throttle,
    failures: Mutex<Vec<Failure>>,
    progress: Progress<'a>,
    began: Instant,
    /// Runtimes to start once written.
    start_runtimes: &'a [String],
    /// Writes and deletes in flight.
    window: Window<'a>,
    /// Grants the restoring identity may not make.
    ungranted: Mutex<Vec<Failure>>,
}

/// Is this step the integration runtime `name`?
fn is_runtime(kind: ResourceKind, step: &str, name: &str) -> bool {
    kind == ResourceKind::IntegrationRuntime && step.eq_ignore_ascii_case(name)
}

impl Applier<'_> {
    fn fail(&self, what: String, error: String) {
        self.failures
            .lock()
            .expect("failures")
            .push(Failure { what, error });
    }

    fn explain(&self, e: &ArmError) -> String {
        explain(e, self.identity, self.target)
    }

    /// The factory PUT: 1 write, 0 when unchanged, Err when it failed.
    async fn factory(&self, plan: &Plan) -> Result<usize, ()> {
        use azure_core::http::Method;
        if plan.factory.action == Action::Unchanged {
            return Ok(0);
        }
        let body = Some(&plan.factory.body);
        match write(
            self.arm,
            &self.throttle,
            Method::Put,
            &self.base,
            body,
            false,
        )
        .await
        {
            Ok(_) => {
                let verb = if plan.factory.action == Action::Create {
                    "created"
                } else {
                    "updated"
                };
                self.progress
                    .wrote_news(&format!("{verb} factory {}", self.target.describe()));
                Ok(1)
            }
            Err(e) => {
                self.fail(
                    format!("factory {}", self.target.describe()),
                    self.explain(&e),
                );
                Err(())
            }
        }
    }

    async fn stop_triggers(&self, plan: &Plan) -> usize {
        self.act_on_each(
            &plan.stop_triggers,
            "triggers",
            ("stop", "stopped"),
            "trigger",
        )
        .await
    }

    /// POSTs `action` to each named resource in turn (trigger stops, CDC
    /// starts), counting what succeeded and naming what did not.
    async fn act_on_each(
        &self,
        names: &[String],
        segment: &str,
        (action, done_word): (&str, &str),
        label: &str,
    ) -> usize {
        use azure_core::http::Method;
        let mut done = 0;
        for name in names {
            let path = format!("{}/{segment}/{}/{action}", self.base, encode(name));
            match write(self.arm, &self.throttle, Method::Post, &path, None, true).await {
                Ok(_) => {
                    done += 1;
                    let text = format!("{done_word} {label}:{name}");
                    // Trigger stops are the plan's writes; CDC starts are not.
                    if label == "trigger" {
                        self.progress.wrote(&text);
                    } else {
                        self.progress.note(&text);
                    }
                }
                Err(e) => self.fail(format!("{action} {label}:{name}"), self.explain(&e)),
            }
        }
        done
    }

    async fn writes(
        &self,
        plan: &Plan,
        ready: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> usize {
        use azure_core::http::Method;
        let ready = &ready;
        let results = run_dag(
            plan.steps.len(),
            |i| plan.steps[i].deps.clone(),
            |i| plan.steps[i].label.clone(),
            &self.window,
            |i| {
                let step = &plan.steps[i];
                let path = resource_path(&self.base, step.kind, step.parent.as_deref(), &step.name);
                async move {
                    if step.kind == ResourceKind::Lock || ResourceKind::GRANTS.contains(&step.kind)
                    {
                        // Grants need the new principal (`grants`); locks go
                        // on last (`locks`): one would block the rest.
                        return Ok(());
                    }
                    // What watches the factory watches the target now.
                    let body = if step.kind.in_resource_group() {
                        std::borrow::Cow::Owned(rescoped(&step.definition, &self.base))
                    } else {
                        std::borrow::Cow::Borrowed(&step.definition)
                    };
                    write(
                        self.arm,
                        &self.throttle,
                        Method::Put,
                        &path,
                        Some(&body),
                        false,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let verb = if step.action == Action::Create {
                        "created"
                    } else {
                        "updated"
                    };
                    self.progress.wrote(&format!("{verb} {}", step.label));
                    if let Some(name) = self
                        .start_runtimes
                        .iter()
                        .find(|n| is_runtime(step.kind, &step.name, n))
                    {
                        let _ = ready.send(name.clone());
                        // Let the runtime starter send the start now, not
                        // after writes that happen not to wait on anything.
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }
            },
        )
        .await;
        let mut written = 0;
        for (step, result) in plan.steps.iter().zip(results) {
            match result {
                Ok(())
                    if step.kind == ResourceKind::Lock
                        || ResourceKind::GRANTS.contains(&step.kind) => {}
                Ok(()) => written += 1,
                Err(e) => self.fail(step.label.clone(), e),
            }
        }
        written
    }

    /// Each role the snapshot's identity held, granted to the restored
    /// factory's system-assigned identity at the same scope (the factory's
    /// own id where it was the source's), and each Key Vault access policy
    /// it had, given to the new identity on the same vault. A grant the
    /// restoring identity may not make fails with the exact command for
    /// someone who may.
    async fn grants(&self, plan: &Plan) -> usize {
        let grants: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| ResourceKind::GRANTS.contains(&s.kind))
            .collect();
        if grants.is_empty() {
            return 0;
        }
        let identity = match self.arm.get(&self.base).await {
            Ok(f) => f.get("identity").cloned(),
            Err(_) => None,
        };
        let tenant = identity
            .as_ref()
            .and_then(|i| i.get("tenantId"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut granted = 0;
        for step in grants {
            let principal = match own_principal(identity.as_ref(), &step.definition) {
                Ok(p) => p,
                Err(missing) => {
                    self.fail(step.label.clone(), missing);
                    continue;
                }
            };
            let (answer, command) = if step.kind == ResourceKind::AccessPolicy {
                self.give_policy(step, &principal, &tenant).await
            } else {
                self.grant_role(step, &principal).await
            };
            match answer {
                Ok(()) => {
                    granted += 1;
                    self.progress.wrote_news(&format!("granted {}", step.label));
                }
                Err(e) if e.code() == Some("RoleAssignmentExists") => {
                    granted += 1;
                    self.progress
                        .wrote_news(&format!("already held: {}", step.label));
                }
                Err(e) if matches!(e.status(), Some(401 | 403)) => {
                    self.ungranted.lock().expect("grants").push(Failure {
                        what: step.label.clone(),
                        error: format!("{e}; {command}"),
                    })
                }
                Err(e) => self.fail(
                    step.label.clone(),
                    format!("{}; {command}", self.explain(&e)),
                ),
            }
        }
        granted
    }

    /// A role for the new principal; the command for someone who may grant.
    async fn grant_role(
        &self,
        step: &crate::plan::restore::Step,
        principal: &str,
    ) -> (Result<(), ArmError>, String) {
        use azure_core::http::Method;
        let scope = match text_at(&step.definition, "/properties/scope") {
            s if s == crate::model::kind::FACTORY_ID => self.base.clone(),
            s => s,
        };
        // The factory's own identity is the new one; anyone else who held a
        // role on the factory holds it on the restored one.
        let (principal, kind) = match text_at(&step.definition, "/properties/principal") {
            p if crate::model::kind::own_identity(&p) => {
                (principal.to_string(), "ServicePrincipal".to_string())
            }
            p => (
                p,
                match text_at(&step.definition, "/properties/principalType") {
                    t if t.is_empty() => "ServicePrincipal".to_string(),
                    t => t,
                },
            ),
        };
        let principal = principal.as_str();
        // A custom role is known by its name: its GUID is its tenant's.
        let role = if text_at(&step.definition, "/properties/roleType") == "CustomRole" {
            let custom = text_at(&step.definition, "/properties/roleName");
            match self.custom_role(&scope, &custom).await {
                Some(guid) => guid,
                None => {
                    let missing = ArmError::Status {
                        method: "GET".into(),
                        url: format!("{scope}/providers/Microsoft.Authorization/roleDefinitions"),
                        status: 404,
                        code: "RoleDefinitionDoesNotExist".into(),
                        message: format!("no custom role named '{custom}' is visible at {scope}"),
                    };
                    return (
                        Err(missing),
                        format!(
                            "create the custom role '{custom}' where the target is (az role definition create), then run the restore again"
                        ),
                    );
                }
            }
        } else {
            text_at(&step.definition, "/properties/roleDefinitionId")
        };
        let command = format!(
            "someone with Owner, User Access Administrator or Role Based Access Control Administrator there runs: az role assignment create --assignee-object-id {principal} --assignee-principal-type {kind} --role {role} --scope {scope}"
        );
        // Granted only where missing: a user-assigned identity outlives
        // the factory and keeps what it held (and reading needs no right
        // to grant).
        if self.holds(&scope, principal, &role).await {
            let held = ArmError::Status {
                method: "GET".into(),
                url: format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
                status: 409,
                code: "RoleAssignmentExists".into(),
                message: "already held".into(),
            };
            return (Err(held), command);
        }
        let name = grant_name(principal, &role, &scope);
        let path = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={}",
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let body = serde_json::json!({"properties": {
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal, "principalType": kind}});
        let answer = write(
            self.arm,
            &self.throttle,
            Method::Put,
            &path,
            Some(&body),
            false,
        )
        .await;
        (answer.map(|_| ()), command)
    }

    /// Whether `principal` already holds `role` at exactly `scope` (an
    /// answer that cannot be read counts as no: the grant is tried).
    async fn holds(&self, scope: &str, principal: &str, role: &str) -> bool {
        let url = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments?$filter=assignedTo('{principal}')&api-version={}",
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let Ok(listed) = self.arm.get(&url).await else {
            return false;
        };
        let scope = scope.trim_end_matches('/');
        listed["value"].as_array().into_iter().flatten().any(|a| {
            let text = |p: &str| a.pointer(p).and_then(Value::as_str).unwrap_or_default();
            text("/properties/scope")
                .trim_end_matches('/')
                .eq_ignore_ascii_case(scope)
                && text("/properties/principalId").eq_ignore_ascii_case(principal)
                && text("/properties/roleDefinitionId")
                    .rsplit('/')
                    .next()
                    .is_some_and(|g| g.eq_ignore_ascii_case(role))
        })
    }

    /// The GUID of the custom role named `name` visible at `scope`.
    async fn custom_role(&self, scope: &str, name: &str) -> Option<String> {
        let url = format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq '{}'&api-version={}",
            name.replace('\'', "''"),
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let listed = self.arm.get(&url).await.ok()?;
        listed
            .pointer("/value/0/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The old identity's permissions on a vault, added for the new one
    /// (`accessPolicies/add` merges; nothing of anyone else's changes).
    async fn give_policy(
        &self,
        step: &crate::plan::restore::Step,
        principal: &str,
        tenant: &str,
    ) -> (Result<(), ArmError>, String) {
        use azure_core::http::Method;
        let vault = text_at(&step.definition, "/properties/vault");
        let permissions = step
            .definition
            .pointer("/properties/permissions")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let path = format!(
            "{vault}/accessPolicies/add?api-version={}",
            crate::model::kind::KEY_VAULT_API
        );
        let body = serde_json::json!({"properties": {"accessPolicies": [
            {"tenantId": tenant, "objectId": principal, "permissions": permissions}]}});
        let answer = write(
            self.arm,
            &self.throttle,
            Method::Put,
            &path,
            Some(&body),
            false,
        )
        .await;
        let command = format!(
            "someone with Owner, Contributor or Key Vault Contributor on the vault runs: {}",
            set_policy_command(&vault, principal, &permissions)
        );
        (answer.map(|_| ()), command)
    }

    /// Management locks, after everything else: a ReadOnly lock refuses
    /// every later write (trigger starts included), a CanNotDelete one every
    /// delete. Not when anything failed: a rerun must be able to write.
    async fn locks(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let locks: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.kind == ResourceKind::Lock)
            .collect();
        if locks.is_empty() {
            return 0;
        }
        if !self.failures.lock().expect("failures").is_empty() {
            for step in locks {
                self.fail(
                    step.label.clone(),
                    "not put on: the restore had failures, and a lock would block the rerun that fixes them; run the restore again".into(),
                );
            }
            return 0;
        }
        let mut written = 0;
        for step in locks {
            let path = resource_path(&self.base, step.kind, None, &step.name);
            match write(
                self.arm,
                &self.throttle,
                Method::Put,
                &path,
                Some(&step.definition),
                false,
            )
            .await
            {
                Ok(_) => {
                    written += 1;
                    self.progress.wrote_news(&format!("locked: {}", step.label));
                }
                Err(e) => self.fail(step.label.clone(), self.explain(&e)),
            }
        }
        written
    }

    async fn deletes(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let results = run_dag(
            plan.delete.len(),
            |i| plan.delete[i].after.clone(),
            |i| plan.delete[i].label.clone(),
            &self.window,
            |i| {
                let d = &plan.delete[i];
                let path = resource_path(&self.base, d.kind, d.parent.as_deref(), &d.name);
                async move {
                    write(self.arm, &self.throttle, Method::Delete, &path, None, false)
                        .await
                        .map(|_| self.progress.wrote_news(&format!("deleted {}", d.label)))
                        .map_err(|e| self.explain(&e))
                }
            },
        )
        .await;
        let mut deleted = 0;
        for (d, result) in plan.delete.iter().zip(results) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) => self.fail(format!("delete {}", d.label), e),
            }
        }
        deleted
    }

    async fn staging(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let Some(body) = &plan.factory.final_body else {
            return 0;
        };
        match write(
            self.arm,
            &self.throttle,
            Method::Put,
            &self.base,
            Some(body),
            false,
        )
        .await
        {
            Ok(_) => {
                self.progress
                    .wrote_news("set the factory's default staging linked service");
                1
            }
            Err(e) => {
                self.fail("factory staging linked service".into(), self.explain(&e));
                0
            }
        }
    }

    /// Starts each runtime named on `ready` at once, all in parallel, and
    /// follows every start to its end.
    async fn start_runtimes(
        &self,
        mut ready: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> Vec<RuntimeStarted> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let mut running = FuturesUnordered::new();
        let mut open = true;
        let mut started = Vec::new();
        loop {
            tokio::select! {
                next = ready.recv(), if open => match next {
                    Some(name) => running.push(self.start_runtime(name)),
                    None => open = false,
                },
                Some(done) = running.next(), if !running.is_empty() => {
                    started.extend(done);
                }
                else => break,
            }
        }
        started
    }

    async fn start_runtime(&self, name: String) -> Option<RuntimeStarted> {
        use azure_core::http::Method;
        let label = format!("integrationRuntime:{name}");
        self.progress.note(&format!("starting {label}"));
        let path = format!("{}/integrationRuntimes/{}/start", self.base, encode(&name));
        let call = Call {
            method: Method::Post,
            path: &path,
            body: None,
            retry_provisioning: true,
            limit: RUNTIME_LIMIT,
        };
        match write_call(self.arm, &self.throttle, call).await {
            Ok(status) => {
                let state = status
                    .pointer("/properties/state")
                    .and_then(Value::as_str)
                    .unwrap_or("Started")
                    .to_string();
                let ready_ms = crate::ops::millis(self.began.elapsed());
                self.progress.note(&format!("started {label} ({state})"));
                Some(RuntimeStarted {
                    name,
                    state,
                    ready_ms,
                })
            }
            Err(e) => {
                self.fail(format!("start {label}"), self.explain(&e));
                None
            }
        }
    }

    /// Waits (bounded) for each managed private endpoint of the restore to
    /// finish provisioning, and reads its approval.
    async fn endpoints(&self, plan: &Plan) -> Vec<EndpointState> {
        let failed: Vec<String> = self
            .failures
            .lock()
            .expect("failures")
            .iter()
            .map(|f| f.what.clone())
            .collect();
        let waits = plan
            .expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::ManagedPrivateEndpoint)
            .filter(|e| !failed.contains(&e.label))
            .map(|e| self.endpoint(e));
        futures::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn endpoint(&self, e: &crate::plan::restore::Expected) -> Option<EndpointState> {
        use azure_core::http::Method;
        let path = resource_path(
            &self.base,
            ResourceKind::ManagedPrivateEndpoint,
            e.parent.as_deref(),
            &e.name,
        );
        let deadline = Instant::now() + ENDPOINT_LIMIT;
        let mut polls = 0;
        loop {
            let call = Call {
                method: Method::Get,
                path: &path,
                body: None,
                retry_provisioning: false,
                limit: OPERATION_LIMIT,
            };
            let body = match write_call(self.arm, &self.throttle, call).await {
                Ok(body) => body,
                Err(err) => {
                    self.fail(format!("read {}", e.label), self.explain(&err));
                    return None;
                }
            };
            let state = endpoint_state(&e.label, &body);
            let settled = matches!(
                state.provisioning.as_str(),
                "Succeeded" | "Failed" | "Canceled"
            );
            if settled || Instant::now() >= deadline {
                match state.blocker() {
                    None => self
                        .progress
                        .note(&format!("{} provisioned and approved", e.label)),
                    Some(why) => self.progress.note(&why),
                }
                return Some(state);
            }
            polls += 1;
            tokio::time::sleep(lro::next_wait(None, polls)).await;
        }
    }

    async fn start_cdcs(&self, plan: &Plan) -> usize {
        self.act_on_each(
            &plan.start_cdcs,
            "adfcdcs",
            ("start", "started"),
            "changeDataCapture",
        )
        .await
    }

    async fn start_triggers(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let types: HashMap<String, String> = plan
            .expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::Trigger)
            .map(|e| {
                let kind = e
                    .definition
                    .pointer("/properties/type")
                    .and_then(Value::as_str);
                (e.key.2.clone(), kind.unwrap_or_default().to_string())
            })
            .collect();
        let failed_now: Vec<String> = self
            .failures
            .lock()
            .expect("failures")
            .iter()
            .map(|f| f.what.to_lowercase())
            .collect();
        let mut started = 0;
        for name in &plan.start_triggers {
            if failed_now.contains(&format!("trigger:{}", name.to_lowercase())) {
                continue;
            }
            let kind = types
                .get(&name.to_lowercase())
                .map(String::as_str)
                .unwrap_or("");
            let trigger = format!("{}/triggers/{}", self.base, encode(name));
            if matches!(kind, "BlobEventsTrigger" | "CustomEventsTrigger")
                && let Err(e) = subscribe(self.arm, &self.throttle, &trigger).await
            {
                self.fail(format!("subscribe trigger:{name} to events"), e);
                continue;
            }
            let start = format!("{trigger}/start");
            match write(self.arm, &self.throttle, Method::Post, &start, None, true).await {
                Ok(_) => {
                    started += 1;
                    self.progress.wrote(&format!("started trigger:{name}"));
                }
                Err(e) => self.fail(format!("start trigger:{name}"), self.explain(&e)),
            }
        }
        started
    }
}

/// A managed private endpoint as the service answers it.
fn endpoint_state(label: &str, body: &Value) -> EndpointState {
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
    EndpointState {
        endpoint: label.to_string(),
        provisioning: text("/properties/provisioningState").unwrap_or_else(|| "Unknown".into()),
        approval: text("/properties/connectionState/status").unwrap_or_else(|| "Unknown".into()),
        resource: text("/properties/privateLinkResourceId"),
        group: text("/properties/groupId"),
    }
}

/// subscribeToEvents, then poll getEventSubscriptionStatus until Enabled.
async fn subscribe(arm: &dyn FactoryApi, throttle: &Throttle, trigger: &str) -> Result<(), String> {
    use azure_core::http::Method;
    let subscribed = write(
        arm,
        throttle,
        Method::Post,
        &format!("{trigger}/subscribeToEvents"),
        None,
        true,
    )
    .await
    .map_err(|e| e.to_string())
    .map(|answer| answer.get("status").and_then(Value::as_str) == Some("Enabled"))?;
    // The service answers the new status at once (recorded); one that is
    // still Provisioning is polled.
    if subscribed {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::memory::MemoryFactory;
    use crate::model::Resource;
    use crate::plan::restore::{PlanOptions, TargetState, plan};
    use serde_json::json;

    fn resource(kind: ResourceKind, name: &str, definition: Value) -> Resource {
        Resource {
            kind,
            parent: None,
            name: name.into(),
            definition,
        }
    }

    fn snapshot() -> Vec<Resource> {
        let ls = |n: &str| json!({"referenceName": n, "type": "LinkedServiceReference"});
        vec![
            resource(
                ResourceKind::Factory,
                "adf",
                json!({"location": "westeurope", "properties": {}}),
            ),
            resource(
                ResourceKind::LinkedService,
                "LS",
                json!({"properties": {"type": "AzureBlobStorage", "typeProperties": {}}}),
            ),
            resource(
                ResourceKind::Dataset,
                "DS",
                json!({"properties": {"type": "Json", "linkedServiceName": ls("LS")}}),
            ),
            resource(
                ResourceKind::Pipeline,
                "PL",
                json!({"properties": {"activities": [{"name": "c", "type": "Copy",
                "inputs": [{"referenceName": "DS", "type": "DatasetReference"}], "outputs": []}]}}),
            ),
        ]
    }

    fn target() -> TargetFactory {
        TargetFactory::parse("11111111-2222-3333-4444-555555555555/rg/adf-dr").expect("target")
    }

    /// The use case against an in-memory factory: the factory first, each
    /// write after what it references, nothing after a failure it needs.
    #[tokio::test]
    async fn apply_writes_in_dependency_order_and_stops_below_a_failure() {
        let plan = plan(
            &snapshot(),
            &Default::default(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        let memory = MemoryFactory::new();
        let applied = apply(&memory, "test", &target(), &plan, 4, Progress::silent()).await;
        assert!(applied.failures.is_empty(), "{:?}", applied.failures);
        assert_eq!(applied.written, 4);
        let puts: Vec<String> = memory
            .requests()
            .into_iter()
            .filter(|r| r.starts_with("PUT"))
            .collect();
        let at = |what: &str| puts.iter().position(|p| p.contains(what)).expect(what);
        assert_eq!(at("/factories/adf-dr"), 0, "{puts:?}");
        assert!(
            at("/linkedservices/ls") < at("/datasets/ds")
                && at("/datasets/ds") < at("/pipelines/pl"),
            "{puts:?}"
        );
        let (mismatches, _) = super::super::verify(&memory, &target(), "test", &plan, &[], 4)
            .await
            .expect("read back");
        assert!(mismatches.is_empty(), "{mismatches:?}");

        let refusing = MemoryFactory::new();
        refusing
            .refuse_put
            .lock()
            .expect("refuse")
            .push("/datasets/".into());
        let applied = apply(&refusing, "test", &target(), &plan, 4, Progress::silent()).await;
        let failed: Vec<&str> = applied.failures.iter().map(|f| f.what.as_str()).collect();
        assert_eq!(
            failed,
            ["dataset:DS", "pipeline:PL"],
            "{:?}",
            applied.failures
        );
        assert!(
            applied.failures[1]
                .error
                .contains("needs dataset:DS, which failed")
        );
        assert!(
            !refusing
                .requests()
                .iter()
                .any(|r| r.contains("/pipelines/")),
            "never attempted"
        );
    }

    /// A runtime that was running starts as soon as it is written, while
    /// the rest of the restore goes on, and its start is followed to the end.
    #[tokio::test]
    async fn runtimes_start_as_soon_as_they_exist_alongside_the_writes() {
        let mut resources = snapshot();
        resources.push(resource(
            ResourceKind::IntegrationRuntime,
            "ir-ssis",
            json!({"properties": {"type": "Managed", "typeProperties": {"ssisProperties": {}}}}),
        ));
        for i in 0..6 {
            resources.push(resource(
                ResourceKind::Pipeline,
                &format!("PL_{i}"),
                json!({"properties": {"activities": [{"name": "c", "type": "Copy",
                "inputs": [{"referenceName": "DS", "type": "DatasetReference"}], "outputs": []}]}}),
            ));
        }
        let mut plan = plan(
            &resources,
            &Default::default(),
            None,
            &TargetState::default(),
            None,
            &PlanOptions::default(),
        )
        .expect("plan");
        let runtimes = crate::snapshot::manifest::Runtimes {
            integration_runtimes: [("ir-ssis".to_string(), "Started".to_string())].into(),
            ..Default::default()
        };
        crate::plan::restore::plan_runtimes(&mut plan, &runtimes, Default::default());
        assert_eq!(plan.start_runtimes, ["ir-ssis"]);
        let memory = MemoryFactory::new();
        memory.long_running(1, None);
        let applied = apply(&memory, "test", &target(), &plan, 1, Progress::silent()).await;
        assert!(applied.failures.is_empty(), "{:?}", applied.failures);
        assert_eq!(applied.runtimes.len(), 1, "{:?}", applied.runtimes);
        assert_eq!(applied.runtimes[0].state, "Started");
        let log = memory.requests();
        let start = log
            .iter()
            .position(|r| {
                r.starts_with("POST") && r.ends_with("/integrationruntimes/ir-ssis/start")
            })
            .expect("started");
        let last_put = log
            .iter()
            .rposition(|r| r.starts_with("PUT"))
            .expect("puts");
        assert!(
            start < last_put,
            "the start did not wait for the other writes: {log:?}"
        );
        assert!(
            log.iter().any(|r| r.contains("/operationstatuses/")),
            "the start was followed: {log:?}"
        );

        // --runtimes stopped: nothing started, and the plan says why.
        let mut stopped = plan.clone();
        crate::plan::restore::plan_runtimes(
            &mut stopped,
            &runtimes,
            crate::plan::restore::RuntimeMode::Stopped,
        );
        assert!(stopped.start_runtimes.is_empty());
        assert!(
            stopped.runtimes_left[0]
                .reason
                .contains("--runtimes stopped")
        );
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
        let arm = MemoryFactory::new();
        let results = run_dag(
            5,
            needs,
            |i| format!("job{i}"),
            &Window::new(&arm, 2),
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

    /// A service that throttles whenever more than `room` writes are in
    /// flight, and counts its 429s as the ARM client does.
    struct Crowded {
        room: usize,
        in_flight: std::sync::atomic::AtomicUsize,
        throttled: std::sync::atomic::AtomicU64,
    }

    #[async_trait::async_trait]
    impl FactoryApi for Crowded {
        async fn request(
            &self,
            _method: azure_core::http::Method,
            _path: &str,
            _body: Option<&Value>,
        ) -> Result<crate::factory::Answer, ArmError> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            if now > self.room {
                self.throttled.fetch_add(1, SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            Ok(crate::factory::Answer::new(200, b"{}".to_vec()))
        }

        fn throttled(&self) -> u64 {
            self.throttled.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Writes in flight grow past the 16 they start with while the service
    /// takes them, and come back down to what it takes once it throttles.
    #[tokio::test]
    async fn writes_in_flight_grow_until_throttled_and_back_off_together() {
        let run = |room: usize| async move {
            let arm = Crowded {
                room,
                in_flight: Default::default(),
                throttled: Default::default(),
            };
            let window = Window::new(&arm, 128);
            let results = run_dag(
                2_000,
                |_| Vec::new(),
                |i| format!("job{i}"),
                &window,
                |_| async {
                    let a: &dyn FactoryApi = &arm;
                    a.request(azure_core::http::Method::Put, "/x", None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                },
            )
            .await;
            assert!(results.iter().all(Result::is_ok));
            (window.peak(), arm.throttled())
        };
        let (peak, throttled) = run(usize::MAX).await;
        assert_eq!(throttled, 0);
        assert_eq!(peak, 128, "grew to the ceiling without a 429");
        let (peak, throttled) = run(40).await;
        assert!(throttled > 0, "it met the throttle");
        assert!(
            peak < 128,
            "halved on the 429s before reaching the ceiling: {peak}"
        );
    }
}
