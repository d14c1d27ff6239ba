//! Carrying a restore plan out: the factory, trigger stops, every write as
//! soon as its dependencies are done (bounded concurrency, backing off
//! together on throttling), deletes dependents first, the factory's staging
//! back-reference, trigger starts dependencies first (event triggers
//! subscribe first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::TargetFactory;
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
    arm: &dyn FactoryApi,
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
    arm: &dyn FactoryApi,
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
async fn subscribe(arm: &dyn FactoryApi, throttle: &Throttle, trigger: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
