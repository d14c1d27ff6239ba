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

mod access;
mod locks;
mod runtimes;
#[cfg(test)]
mod tests;
mod triggers;

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
}
