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
use adfdr_core::ops::lease::{self, Attempt, Lease, share};
use adfdr_core::snapshot::rfc3339;
use adfdr_core::store::Holder;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Shared;

/// How the view names this agent as a factory's lease holder.
pub const THIS_AGENT: &str = "this agent";

#[derive(Debug)]
pub enum Event {
    Gained(String),
    /// Taken by another agent, or unsure: jobs stop, people are told.
    Lost(String),
    /// Given up on purpose (not configured any more, or over the share).
    HandedOver(String),
}

struct Held {
    lease: Lease,
    renewed: Instant,
}

/// Runs until `stop` fires, then releases every lease it holds (another
/// agent takes over at once instead of after expiry). With other agents on
/// the store it holds its fair share (core's `lease::share`, ADR 0003):
/// at most ⌈F/N⌉+1 factories, N counted from the agents' heartbeats; it
/// hands an idle factory back when over its share, and takes a factory
/// nobody took within a lease period whatever its share.
pub async fn run(
    mut engine: watch::Receiver<Arc<Engine>>,
    view: Shared,
    events: mpsc::UnboundedSender<Event>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut me = Holder::me("agent", &rfc3339(adfdr_core::ops::system_clock()));
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    // Agents seen holding a lease at the last tick: their heartbeats count.
    let mut proven: std::collections::BTreeSet<String> = Default::default();
    // Factories this agent found free while over its share, since when.
    let mut free_since: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let current = engine.borrow_and_update().clone();
        let seconds = current.config.agent.lease_seconds;
        let tick = Duration::from_secs(u64::from(seconds / 3).max(1));
        let agent = share::agent_id(&me.host, &current.config.agent.state_dir);
        me.agent = Some(agent.clone());
        let mut names = current.config.factory_names();
        names.sort_by_key(|f| std::cmp::Reverse(share::preference(&agent, f)));
        let_go(&names, &mut held, &events).await;
        renew_all(&current, &me, &mut held, &view, &events, tick, seconds).await;
        let agents = heartbeat(&current, &agent, held.len(), seconds, &mut proven).await;
        // This principal's ARM budget, mirrored, divided among the agents.
        current.arm.set_share(agents);
        let cap = share::cap(names.len(), agents);
        view.lock().expect("view").agents = agents;
        // Over the share (an agent joined): the excess goes back now, the
        // newcomer takes it within its next tick.
        let excess = held.len().saturating_sub(cap);
        for _ in 0..excess {
            hand_over_one(&names, &mut held, &view, &events, cap, agents).await;
        }
        for factory in &names {
            if held.contains_key(factory) {
                continue;
            }
            let over = held.len() >= cap;
            match lease::acquire(&current.replicas, factory, seconds, &me).await {
                Ok(Attempt::Taken(lease)) if over => {
                    // Free, but this agent has its share: another should
                    // take it, unless nobody does within a lease period.
                    let since = *free_since
                        .entry(factory.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() < Duration::from_secs(seconds.into()) {
                        lease.release().await;
                        note(&view, factory, "nobody (free)".into());
                        continue;
                    }
                    tracing::warn!(%factory, share = cap, "no agent took this factory within a lease period: taking it beyond this agent's share");
                    free_since.remove(factory);
                    taken(&current, factory, lease, &mut held, &view, &events);
                }
                Ok(Attempt::Taken(lease)) => {
                    free_since.remove(factory);
                    taken(&current, factory, lease, &mut held, &view, &events);
                }
                Ok(Attempt::Held { location, holder }) => {
                    free_since.remove(factory);
                    if let Some(a) = holder.as_ref().and_then(|h| h.agent.clone()) {
                        proven.insert(a);
                    }
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

/// Factories no longer configured: their leases are let go.
async fn let_go(
    names: &[String],
    held: &mut BTreeMap<String, Held>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let gone: Vec<String> = held
        .keys()
        .filter(|f| !names.contains(f))
        .cloned()
        .collect();
    for f in gone {
        if let Some(h) = held.remove(&f) {
            h.lease.release().await;
            let _ = events.send(Event::HandedOver(f));
        }
    }
}

/// Writes this agent's heartbeat and counts the live agents (those whose
/// heartbeats count: seen holding a lease at the last tick, `proven`, which
/// starts over).
async fn heartbeat(
    current: &Engine,
    agent: &str,
    held: usize,
    seconds: u32,
    proven: &mut std::collections::BTreeSet<String>,
) -> usize {
    let now_ms = u64::try_from(adfdr_core::ops::system_clock().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(0);
    let beat = share::Heartbeat {
        agent: agent.to_string(),
        expires_ms: now_ms + u64::from(seconds) * 1000,
        held,
    };
    if let Err(e) = share::beat(&current.replicas, &beat).await {
        tracing::warn!(error = %e, "could not write this agent's heartbeat");
    }
    let agents = share::live_agents(&current.replicas, agent, now_ms, seconds, proven).await;
    proven.clear();
    agents
}

/// Renews every lease held; one that is lost (or unsure past the safe
/// margin) stops being worked on.
async fn renew_all(
    current: &Engine,
    me: &Holder,
    held: &mut BTreeMap<String, Held>,
    view: &Shared,
    events: &mpsc::UnboundedSender<Event>,
    tick: Duration,
    seconds: u32,
) {
    let names: Vec<String> = held.keys().cloned().collect();
    for factory in names {
        let Some(h) = held.get_mut(&factory) else {
            continue;
        };
        let lost = match h.lease.renew(&current.replicas, me).await {
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
                let unsure = h.renewed.elapsed() + tick >= Duration::from_secs(seconds.into());
                tracing::warn!(%factory, error = %e, giving_up = unsure, "could not renew the lease");
                unsure
            }
        };
        if lost {
            held.remove(&factory);
            note(view, &factory, "unknown (lease lost)".into());
            crate::audit(
                current,
                AuditAction::LeaseLost {
                    factory: factory.clone(),
                },
            );
            let _ = events.send(Event::Lost(factory));
        }
    }
}

/// Over its share (an agent joined): hands back its least preferred idle
/// factory, one per tick, for the newcomer to take.
async fn hand_over_one(
    names: &[String],
    held: &mut BTreeMap<String, Held>,
    view: &Shared,
    events: &mpsc::UnboundedSender<Event>,
    cap: usize,
    agents: usize,
) {
    // A factory with any job running (a capture requested by the queue
    // reader included) is not handed over mid-run.
    let busy: Vec<String> = {
        let v = view.lock().expect("view");
        v.jobs
            .iter()
            .filter(|(_, s)| s.running)
            .map(|((f, _), _)| f.clone())
            .chain(v.busy.iter().cloned())
            .collect()
    };
    let Some(factory) = names
        .iter()
        .rev()
        .find(|f| held.contains_key(*f) && !busy.contains(f))
        .cloned()
    else {
        return;
    };
    if let Some(h) = held.remove(&factory) {
        h.lease.release().await;
        tracing::info!(%factory, share = cap, agents, "handed over: this agent holds more than its share");
        note(view, &factory, "nobody (handed over)".into());
        let _ = events.send(Event::HandedOver(factory));
    }
}

/// A lease just taken: held from now on, told to the daemon.
fn taken(
    current: &Engine,
    factory: &str,
    lease: Lease,
    held: &mut BTreeMap<String, Held>,
    view: &Shared,
    events: &mpsc::UnboundedSender<Event>,
) {
    tracing::info!(%factory, location = %lease.location, "lease taken: this agent runs the factory's jobs");
    crate::audit(
        current,
        AuditAction::LeaseTaken {
            factory: factory.to_string(),
            location: lease.location.clone(),
        },
    );
    held.insert(
        factory.to_string(),
        Held {
            lease,
            renewed: Instant::now(),
        },
    );
    note(view, factory, THIS_AGENT.into());
    let _ = events.send(Event::Gained(factory.to_string()));
}

fn note(view: &Shared, factory: &str, who: String) {
    view.lock()
        .expect("view")
        .leases
        .insert(factory.to_string(), who);
}
