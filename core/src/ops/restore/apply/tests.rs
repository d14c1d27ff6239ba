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
        at("/linkedservices/ls") < at("/datasets/ds") && at("/datasets/ds") < at("/pipelines/pl"),
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
        .position(|r| r.starts_with("POST") && r.ends_with("/integrationruntimes/ir-ssis/start"))
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
