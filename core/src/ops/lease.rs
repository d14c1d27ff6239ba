//! Who runs a factory's jobs: a lease on `v1/{factory}/lease` in the store.
//!
//! The lease lives in the first writable location, in configured order, that
//! answers. When that location is unreachable or refuses (read-only, a lease
//! record that does not parse) the next one is used, and the
//! holder keeps trying to move its lease back: if it finds the earlier
//! location answering and leased by someone else, it gives its own up. A
//! holder that died frees the lease when it expires (at most `seconds`), or
//! at once when it died on this host (same boot, same user, process gone).

use std::sync::Arc;
use std::time::Duration;

use super::OpError;
use crate::store::{BlobStore, Holder, LeaseAttempt, Replicas, StoreError, layout};

/// Azure allows 15 to 60 seconds (or infinite, which a dead holder would keep).
pub const MIN_SECONDS: u32 = crate::config::LEASE_MIN_SECONDS;
pub const MAX_SECONDS: u32 = crate::config::LEASE_MAX_SECONDS;
pub const DEFAULT_SECONDS: u32 = crate::config::LEASE_DEFAULT_SECONDS;

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    pub factory: String,
    /// The location that holds it.
    pub location: String,
    index: usize,
    store: Arc<dyn BlobStore>,
    key: String,
    id: String,
    pub seconds: u32,
}

#[derive(Debug)]
pub enum Attempt {
    Taken(Lease),
    Held {
        location: String,
        holder: Option<Holder>,
    },
}

impl Attempt {
    /// Why a job cannot run here now, for errors and logs.
    pub fn held_message(factory: &str, location: &str, holder: &Option<Holder>) -> String {
        match holder {
            Some(h) => format!(
                "factory '{factory}' is being worked on by {h} (its lease is in location '{location}'); wait for that run to finish, or run the command on that host"
            ),
            None => format!(
                "factory '{factory}' is leased by another adfdr process (lease in location '{location}'); wait for it to finish"
            ),
        }
    }
}

/// Tries the writable locations in order from `from`; the first that answers decides.
async fn try_from(
    replicas: &Replicas,
    factory: &str,
    seconds: u32,
    me: &Holder,
    until: usize,
) -> Result<Attempt, OpError> {
    let key = layout::lease(factory);
    let mut unreachable = Vec::new();
    for (index, l) in replicas.writable().enumerate().take(until) {
        let mut broke = false;
        loop {
            match l.store.lease_acquire(&key, seconds, me).await {
                Ok(LeaseAttempt::Acquired(id)) => {
                    if index > 0 {
                        tracing::warn!(%factory, location = %l.name, unreachable = %unreachable.join("; "), "lease taken on a later location because earlier ones are unreachable");
                    }
                    return Ok(Attempt::Taken(Lease {
                        factory: factory.to_string(),
                        location: l.name.clone(),
                        index,
                        store: l.store.clone(),
                        key: key.clone(),
                        id,
                        seconds,
                    }));
                }
                Ok(LeaseAttempt::Held(Some(h))) if !broke && h.is_dead(me) => {
                    tracing::warn!(%factory, location = %l.name, holder = %h, "the lease holder died on this host: breaking its lease");
                    l.store.lease_break(&key).await?;
                    broke = true;
                }
                Ok(LeaseAttempt::Held(holder)) => {
                    return Ok(Attempt::Held {
                        location: l.name.clone(),
                        holder,
                    });
                }
                // Unreachable, or refusing (a read-only mount, a SAS without
                // write, a lease record that is not ours): the next location
                // decides. Every agent meets the same refusal, so they still
                // agree on where the lease lives.
                Err(e) => {
                    unreachable.push(format!("{}: {e}", l.name));
                    break;
                }
            }
        }
    }
    Err(OpError::failed(format!(
        "no writable location would take the lease of factory '{factory}': {}",
        if unreachable.is_empty() {
            "none is configured".to_string()
        } else {
            unreachable.join("; ")
        }
    )))
}

/// Takes the factory's lease if it is free.
pub async fn acquire(
    replicas: &Replicas,
    factory: &str,
    seconds: u32,
    me: &Holder,
) -> Result<Attempt, OpError> {
    try_from(replicas, factory, seconds, me, usize::MAX).await
}

impl Lease {
    /// Keeps the lease; false when it is lost. A lease held on a fallback
    /// location moves back to an earlier one that answers again, or is given
    /// up if someone else holds it there.
    pub async fn renew(&mut self, replicas: &Replicas, me: &Holder) -> Result<bool, StoreError> {
        if self.index > 0 {
            match try_from(replicas, &self.factory, self.seconds, me, self.index).await {
                Ok(Attempt::Taken(earlier)) => {
                    tracing::info!(factory = %self.factory, from = %self.location, to = %earlier.location, "lease moved back to the first location");
                    let _ = self.store.lease_release(&self.key, &self.id).await;
                    *self = earlier;
                    return Ok(true);
                }
                Ok(Attempt::Held { location, holder }) => {
                    tracing::warn!(factory = %self.factory, %location, holder = %holder.as_ref().map(ToString::to_string).unwrap_or_else(|| "unknown".into()), "an earlier location answers again and another process holds the lease there: giving this one up");
                    let _ = self.store.lease_release(&self.key, &self.id).await;
                    return Ok(false);
                }
                Err(_) => {} // still unreachable: keep this one
            }
        }
        self.store
            .lease_renew(&self.key, &self.id, self.seconds)
            .await
    }

    pub async fn release(self) {
        if let Err(e) = self.store.lease_release(&self.key, &self.id).await {
            tracing::warn!(factory = %self.factory, error = %e, "could not release the lease; it expires by itself");
        }
    }

    /// How often to renew: three times per lease period.
    pub fn renew_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.seconds.max(3)) / 3)
    }
}

/// An exclusive run for a command working in-process: the lease, renewed in
/// the background until released.
pub struct Guard {
    renewer: tokio::task::JoinHandle<Lease>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Takes the factory's lease for one command, or says who has it.
pub async fn exclusive(
    replicas: &Replicas,
    factory: &str,
    seconds: u32,
    role: &str,
) -> Result<Guard, OpError> {
    let me = Holder::me(role, &crate::snapshot::rfc3339(super::system_clock()));
    let mut lease = match acquire(replicas, factory, seconds, &me).await? {
        Attempt::Taken(l) => l,
        Attempt::Held { location, holder } => {
            return Err(OpError::conflict(Attempt::held_message(
                factory, &location, &holder,
            )));
        }
    };
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let replicas = replicas.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return lease,
                _ = tokio::time::sleep(lease.renew_every()) => {
                    match lease.renew(&replicas, &me).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(factory = %lease.factory, "the lease was lost while working"),
                        Err(e) => tracing::warn!(factory = %lease.factory, error = %e, "could not renew the lease"),
                    }
                }
            }
        }
    });
    Ok(Guard { renewer, stop })
}

impl Guard {
    pub async fn release(self) {
        let _ = self.stop.send(());
        if let Ok(lease) = self.renewer.await {
            lease.release().await;
        }
    }
}

/// Fair share among agents on one store (docs/adr/0003-fair-share.md):
/// each agent writes a heartbeat beside the leases, counts the live ones,
/// and holds at most [`cap`] factories; a factory nobody takes within a
/// lease period is taken over the cap (a planted heartbeat must not leave
/// factories unprotected).
pub mod share {
    use serde::{Deserialize, Serialize};
    use sha2::{Digest, Sha256};

    use crate::store::{Replicas, StoreError};

    /// The heartbeats' folder: `.agents` is never a factory's name.
    pub const PREFIX: &str = "v1/.agents/";
    /// The largest heartbeat read; a bigger object is not one.
    pub const MAX_HEARTBEAT: u64 = 4096;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Heartbeat {
        pub agent: String,
        /// Unix milliseconds after which it no longer counts.
        pub expires_ms: u64,
        /// Factories it holds (for people reading the store).
        pub held: usize,
    }

    pub fn key(agent: &str) -> String {
        format!("{PREFIX}{agent}.heartbeat")
    }

    /// The most factories one of `agents` live agents holds, of `factories`:
    /// an even share and one more, so that shares need not be exact.
    pub fn cap(factories: usize, agents: usize) -> usize {
        factories.div_ceil(agents.max(1)) + 1
    }

    /// An agent's preference for a factory (rendezvous hashing): each agent
    /// tries factories in its own order, so they do not all race for the
    /// same one, and hands back its least preferred first.
    pub fn preference(agent: &str, factory: &str) -> u64 {
        let h = Sha256::digest(format!("{agent}\0{factory}").as_bytes());
        u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
    }

    /// A stable name for this agent: its host and its state directory (a
    /// restart overwrites its heartbeat instead of adding one).
    pub fn agent_id(host: &str, state_dir: &std::path::Path) -> String {
        let h = Sha256::digest(state_dir.to_string_lossy().as_bytes());
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(60)
            .collect();
        format!(
            "{}-{}",
            if host.is_empty() { "agent" } else { &host },
            crate::snapshot::manifest::hex(&h[..4])
        )
    }

    /// Whether `beat` counts as live at `now_ms` with leases of `seconds`:
    /// not expired, and not claiming to live far into the future.
    pub fn live(beat: &Heartbeat, now_ms: u64, seconds: u32) -> bool {
        beat.expires_ms > now_ms && beat.expires_ms <= now_ms + 3 * u64::from(seconds) * 1000
    }

    /// Writes this agent's heartbeat into the first writable location that takes it.
    pub async fn beat(replicas: &Replicas, beat: &Heartbeat) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(beat).expect("a heartbeat serializes");
        let mut last = None;
        for l in replicas.locations.iter().filter(|l| !l.read_only) {
            match l
                .store
                .put_replace(&key(&beat.agent), bytes.clone().into())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        last.map_or(Ok(()), Err)
    }

    /// How many agents count (this one included), read from the first
    /// writable location that lists; at least 1. A heartbeat is only a
    /// claim (anyone who can write to the store can plant a thousand): an
    /// agent counts when it is `proven`, seen holding a factory's lease;
    /// of the live agents not proven yet (one that just started holds
    /// nothing) at most one counts, so a newcomer still gets its share and
    /// planted heartbeats cut this agent's share by one agent at most.
    pub async fn live_agents(
        replicas: &Replicas,
        me: &str,
        now_ms: u64,
        seconds: u32,
        proven: &std::collections::BTreeSet<String>,
    ) -> usize {
        for l in replicas.locations.iter().filter(|l| !l.read_only) {
            let Ok(listed) = l.store.list(PREFIX).await else {
                continue;
            };
            let (mut known, mut unknown) = (0, 0);
            for o in listed.iter().take(1000) {
                if o.size > MAX_HEARTBEAT || o.key == key(me) || !o.key.ends_with(".heartbeat") {
                    continue;
                }
                if let Ok(Some(bytes)) = l.store.get(&o.key, MAX_HEARTBEAT).await
                    && let Ok(b) = serde_json::from_slice::<Heartbeat>(&bytes)
                    && key(&b.agent) == o.key
                    && b.agent != me
                    && self::live(&b, now_ms, seconds)
                {
                    if proven.contains(&b.agent) {
                        known += 1;
                    } else {
                        unknown += 1;
                    }
                }
            }
            return 1 + known + unknown.min(1);
        }
        1
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn shares_are_even_with_slack_and_preferences_spread() {
            assert_eq!(cap(60, 3), 21);
            assert_eq!(cap(60, 1), 61);
            assert_eq!(cap(0, 3), 1);
            assert_eq!(cap(10, 0), 11);
            // Each agent's first choices differ: not one race for the same factory.
            let first = |agent: &str| {
                (0..60)
                    .map(|i| format!("f{i}"))
                    .max_by_key(|f| preference(agent, f))
                    .expect("one")
            };
            assert_ne!(first("a"), first("b"));
            let beat = Heartbeat {
                agent: "a".into(),
                expires_ms: 10_000,
                held: 3,
            };
            assert!(live(&beat, 5_000, 30));
            assert!(!live(&beat, 10_000, 30), "expired");
            let forever = Heartbeat {
                expires_ms: u64::MAX,
                ..beat
            };
            assert!(
                !live(&forever, 5_000, 30),
                "a far-future heartbeat is planted, not live"
            );
            assert_eq!(
                agent_id("pod/0 x", std::path::Path::new("/var/lib/adfdr")).len(),
                "pod-0-x-".len() + 8
            );
        }

        /// Issue 25, item 6: 999 planted heartbeats cut an agent's share by
        /// one agent at most; an agent seen holding a lease counts.
        #[tokio::test]
        async fn only_agents_that_hold_leases_count_beyond_one_newcomer() {
            let dir =
                std::env::temp_dir().join(format!("adfdr-beats-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("dir");
            let store: std::sync::Arc<dyn crate::store::BlobStore> =
                std::sync::Arc::new(crate::store::fs::FsStore::new(&dir));
            let replicas = Replicas::new(vec![crate::store::Location {
                name: "weu".into(),
                store: store.clone(),
                read_only: false,
            }]);
            let now = 1_000_000u64;
            for i in 0..999 {
                let b = Heartbeat {
                    agent: format!("ghost-{i}"),
                    expires_ms: now + 20_000,
                    held: 0,
                };
                beat(&replicas, &b).await.expect("plant");
            }
            let real = Heartbeat {
                agent: "real-agent".into(),
                expires_ms: now + 20_000,
                held: 5,
            };
            beat(&replicas, &real).await.expect("beat");
            let none = std::collections::BTreeSet::new();
            assert_eq!(live_agents(&replicas, "me", now, 30, &none).await, 2);
            let proven = std::collections::BTreeSet::from(["real-agent".to_string()]);
            assert_eq!(live_agents(&replicas, "me", now, 30, &proven).await, 3);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
