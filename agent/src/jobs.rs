//! Running one job of one factory: core's job runner (ops::job) does it
//! all, from the use case to the audit record; the agent only observes, for
//! its metrics: drift, capture counts and lag, repairs, location health.

use std::sync::Arc;

use adfdr_core::ops::Engine;
use adfdr_core::ops::capture::Captured;
use adfdr_core::ops::contract::{Job, JobOutcome};
use adfdr_core::ops::job::{self, Actor, Observer};
use adfdr_core::ops::verify::Repaired;

use crate::metrics::Shared;

/// Runs `job` for `factory` (the agent holds its lease) and says how it
/// ended.
pub async fn run(engine: Arc<Engine>, view: Shared, factory: String, job: Job) -> JobOutcome {
    job::run(&engine, &factory, &job, &Actor::agent(), &Metrics(view)).await
}

/// What jobs find, into the metrics the endpoint serves.
struct Metrics(Shared);

impl Observer for Metrics {
    fn drift(&self, factory: &str, changes: u64) {
        self.0
            .lock()
            .expect("view")
            .capture
            .entry(factory.to_string())
            .or_default()
            .drift += changes;
    }

    fn captured(&self, factory: &str, c: &Captured, events: u64, lags: &[f64]) {
        let mut v = self.0.lock().expect("view");
        let stats = v.capture.entry(factory.to_string()).or_default();
        stats.snapshots += u64::from(matches!(c, Captured::Sealed { .. }));
        stats.listings += u64::from(matches!(c, Captured::Listed { .. }));
        if matches!(c, Captured::Deferred { .. }) {
            stats.deferred += 1;
        } else {
            stats.coalesced += events;
        }
        for lag in lags {
            v.capture_lag.observe(factory, *lag);
        }
    }

    fn repaired(&self, _factory: &str, repaired: &[Repaired]) {
        let mut v = self.0.lock().expect("view");
        for r in repaired {
            *v.repaired.entry(r.location.clone()).or_default() += 1;
        }
    }

    fn locations(&self, health: &[(String, bool)]) {
        let mut v = self.0.lock().expect("view");
        for (name, up) in health {
            v.locations.insert(name.clone(), *up);
        }
    }
}
