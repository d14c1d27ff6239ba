//! Which factories this agent runs: it holds each one's lease in the store
//! (core/src/ops/lease.rs), renews it three times per lease period, takes
//! over a factory whose lease expired (its agent died), and says when it
//! gained or lost one. The scheduler runs jobs only for factories it holds,
//! and abandons a running job whose lease is lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adfdr_core::ops::Engine;
use adfdr_core::ops::contract::AuditAction;
use adfdr_core::ops::lease::{self, Attempt, Lease};
use adfdr_core::snapshot::rfc3339;
use adfdr_core::store::Holder;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Shared;

/// How the view names this agent as a factory's lease holder.
pub const THIS_AGENT: &str = "this agent";

#[derive(Debug)]
pub enum Event {
    Gained(String),
    Lost(String),
}

struct Held {
    lease: Lease,
    renewed: Instant,
}

/// Runs until `stop` fires, then releases every lease it holds (another
/// agent takes over at once instead of after expiry).
pub async fn run(
    mut engine: watch::Receiver<Arc<Engine>>,
    view: Shared,
    events: mpsc::UnboundedSender<Event>,
    mut stop: oneshot::Receiver<()>,
) {
    let me = Holder::me("agent", &rfc3339(adfdr_core::ops::system_clock()));
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    loop {
        let current = engine.borrow_and_update().clone();
        let seconds = current.config.agent.lease_seconds;
        let tick = Duration::from_secs(u64::from(seconds / 3).max(1));
        let names = current.config.factory_names();
        // Factories no longer configured: let them go.
        let gone: Vec<String> = held
            .keys()
            .filter(|f| !names.contains(f))
            .cloned()
            .collect();
        for f in gone {
            if let Some(h) = held.remove(&f) {
                h.lease.release().await;
                let _ = events.send(Event::Lost(f));
            }
        }
        for factory in &names {
            if let Some(h) = held.get_mut(factory) {
                let lost = match h.lease.renew(&current.replicas, &me).await {
                    Ok(true) => {
                        h.renewed = Instant::now();
                        false
                    }
                    Ok(false) => {
                        tracing::warn!(%factory, "lease lost: another agent runs this factory now");
                        true
                    }
                    Err(e) => {
                        // Unsure whether it still holds: past the safe margin
                        // another agent may take it, so stop working on it.
                        let unsure =
                            h.renewed.elapsed() + tick >= Duration::from_secs(seconds.into());
                        tracing::warn!(%factory, error = %e, giving_up = unsure, "could not renew the lease");
                        unsure
                    }
                };
                if lost {
                    held.remove(factory);
                    note(&view, factory, "unknown (lease lost)".into());
                    crate::audit(
                        &current,
                        AuditAction::LeaseLost {
                            factory: factory.clone(),
                        },
                    );
                    let _ = events.send(Event::Lost(factory.clone()));
                }
                continue;
            }
            match lease::acquire(&current.replicas, factory, seconds, &me).await {
                Ok(Attempt::Taken(lease)) => {
                    tracing::info!(%factory, location = %lease.location, "lease taken: this agent runs the factory's jobs");
                    crate::audit(
                        &current,
                        AuditAction::LeaseTaken {
                            factory: factory.clone(),
                            location: lease.location.clone(),
                        },
                    );
                    held.insert(
                        factory.clone(),
                        Held {
                            lease,
                            renewed: Instant::now(),
                        },
                    );
                    note(&view, factory, THIS_AGENT.into());
                    let _ = events.send(Event::Gained(factory.clone()));
                }
                Ok(Attempt::Held { location, holder }) => {
                    let who = holder.map_or_else(
                        || format!("another process (lease in {location})"),
                        |h| h.to_string(),
                    );
                    note(&view, factory, who);
                }
                Err(e) => {
                    tracing::warn!(%factory, error = %e, "could not take the lease");
                    note(&view, factory, format!("unknown: {e}"));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            changed = engine.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = &mut stop => break,
        }
    }
    for (factory, h) in held {
        h.lease.release().await;
        tracing::info!(%factory, "lease released");
    }
}

fn note(view: &Shared, factory: &str, who: String) {
    view.lock()
        .expect("view")
        .leases
        .insert(factory.to_string(), who);
}
