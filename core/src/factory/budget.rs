//! A client-side mirror of ARM's request budget: a token bucket per
//! subscription and kind of request (reads 250 and 25/s; writes and
//! deletes 200 and 10/s, Microsoft's "Understand how Azure Resource Manager
//! throttles requests"), shared by every job of this process and divided
//! among the agents sharing a store. A request waits for its token instead
//! of drawing a 429 storm from the service. The agent turns it on (it runs
//! fleets on schedules); an incident restore from the CLI goes as fast as
//! ARM lets it (its restore window already backs off on 429s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What ARM counts separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Delete,
}

impl Kind {
    pub fn of(method: &str) -> Kind {
        match method {
            "GET" | "HEAD" => Kind::Read,
            "DELETE" => Kind::Delete,
            _ => Kind::Write,
        }
    }

    /// (burst, per second) for one principal in one subscription.
    pub fn limits(self) -> (f64, f64) {
        match self {
            Kind::Read => (250.0, 25.0),
            Kind::Write | Kind::Delete => (200.0, 10.0),
        }
    }
}

/// One bucket (pure: time comes in).
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now`: how long the request must wait for it
    /// (the token is reserved either way, so waiters queue fairly).
    pub fn take(&mut self, now: Instant, burst: f64, rate: f64) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// The share of ARM's budget used (the rest absorbs clock skew between the
/// two buckets and requests this mirror does not see).
pub const HEADROOM: f64 = 0.9;

/// The buckets of this process, by subscription and kind.
#[derive(Debug)]
pub struct Budget {
    buckets: Mutex<HashMap<(String, Kind), Bucket>>,
    /// Agents sharing the store (each takes its share of the budget); 0:
    /// off (no waits).
    share: AtomicUsize,
    /// Milliseconds requests waited for a token, in all.
    pub waited_ms: AtomicU64,
    /// Bumped when the share changes: waiters take their token again under
    /// the new share instead of sleeping out a wait reserved under the old.
    generation: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            buckets: Mutex::new(HashMap::new()),
            share: AtomicUsize::new(0),
            waited_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl Budget {
    /// `agents` share the principal's budget from now on.
    pub fn set_share(&self, agents: usize) {
        let agents = agents.max(1);
        if self.share.swap(agents, Ordering::Relaxed) != agents {
            self.generation.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// Gives back a token taken with `wait` (its waiter takes one again).
    pub fn refund(&self, subscription: &str, kind: Kind) {
        let mut buckets = self.buckets.lock().expect("budget");
        if let Some(b) = buckets.get_mut(&(subscription.to_ascii_lowercase(), kind)) {
            b.tokens += 1.0;
        }
    }

    /// Waits for a token of `kind` in `subscription`; when the share changes
    /// meanwhile (agents joined or went), the token is taken again under the
    /// new share: a wait is never longer than the current share makes it.
    pub async fn acquire(&self, subscription: &str, kind: Kind) {
        loop {
            let generation = self.generation.load(Ordering::Relaxed);
            let wait = self.wait(subscription, kind, Instant::now());
            if wait.is_zero() {
                return;
            }
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.generation.load(Ordering::Relaxed) != generation {
                self.refund(subscription, kind);
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => return,
                _ = &mut changed => self.refund(subscription, kind),
            }
        }
    }

    /// The wait before a `kind` request to `subscription` at `now` (none
    /// while the budget is off).
    pub fn wait(&self, subscription: &str, kind: Kind, now: Instant) -> Duration {
        let n = self.share.load(Ordering::Relaxed);
        if n == 0 {
            return Duration::ZERO;
        }
        // A tenth kept back: ARM's buckets start and refill on its own clock.
        let n = n as f64 / HEADROOM;
        let (burst, rate) = kind.limits();
        let (burst, rate) = (burst / n, rate / n);
        let mut buckets = self.buckets.lock().expect("budget");
        let b = buckets
            .entry((subscription.to_ascii_lowercase(), kind))
            .or_insert_with(|| Bucket::full(burst, now));
        let wait = b.take(now, burst, rate);
        self.waited_ms.fetch_add(
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        wait
    }
}

/// This process's budget: every ARM client of the process (a reload or a
/// rediscovery makes new ones) draws from the same buckets, as ARM counts
/// them for the principal.
pub fn shared() -> std::sync::Arc<Budget> {
    static SHARED: std::sync::OnceLock<std::sync::Arc<Budget>> = std::sync::OnceLock::new();
    SHARED.get_or_init(Default::default).clone()
}

/// The subscription a request path or URL is in (`/subscriptions/{id}/…`);
/// `tenant` for tenant-level calls (Resource Graph, the subscription list).
pub fn subscription_of(path: &str) -> &str {
    path.split("/subscriptions/")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .filter(|s| !s.is_empty())
        .unwrap_or("tenant")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate_as_arm_counts() {
        let t0 = Instant::now();
        let off = Budget::default();
        assert!(
            (0..1000).all(|_| off.wait("s1", Kind::Read, t0).is_zero()),
            "off until turned on"
        );
        let budget = Budget::default();
        budget.set_share(1);
        let waits: Vec<Duration> = (0..260)
            .map(|_| budget.wait("s1", Kind::Read, t0))
            .collect();
        // 90% of ARM's: a 225 burst, then 22.5 a second.
        assert!(
            waits[..225].iter().all(|w| w.is_zero()),
            "the burst goes at once"
        );
        assert!(!waits[225].is_zero(), "then it waits");
        assert_eq!(
            waits[233].as_millis(),
            400,
            "22.5 a second: {:?}",
            waits[233]
        );
        // Another subscription, and writes, have buckets of their own.
        assert!(budget.wait("s2", Kind::Read, t0).is_zero());
        assert!(budget.wait("s1", Kind::Write, t0).is_zero());
        // A second later 22.5 tokens came back: the 35 owed are not yet.
        assert!(
            !budget
                .wait("s1", Kind::Read, t0 + Duration::from_secs(1))
                .is_zero()
        );
        assert!(
            budget
                .wait("s1", Kind::Read, t0 + Duration::from_secs(3))
                .is_zero()
        );
        // Three agents: each a third.
        let shared = Budget::default();
        shared.set_share(3);
        let n = (0..200)
            .take_while(|_| shared.wait("s1", Kind::Read, t0).is_zero())
            .count();
        assert_eq!(n, 75, "a third of 225");
        assert_eq!(
            subscription_of(
                "https://management.azure.com/subscriptions/abc/resourceGroups/x?api-version=1"
            ),
            "abc"
        );
        assert_eq!(
            subscription_of("/providers/Microsoft.ResourceGraph/resources"),
            "tenant"
        );
    }

    /// Issue 25, item 6: a waiter whose token was reserved while a
    /// thousand (planted) agents shared the budget does not sleep out that
    /// wait once the share is back to one.
    #[tokio::test]
    async fn a_waiter_takes_its_token_again_when_the_share_changes() {
        let budget = std::sync::Arc::new(Budget::default());
        budget.set_share(1000);
        // Ten requests reserved under a thousandth of the budget: the next
        // one would wait about eight minutes.
        for _ in 0..10 {
            budget.wait("s1", Kind::Read, Instant::now());
        }
        let b = budget.clone();
        let started = Instant::now();
        let waiter = tokio::spawn(async move { b.acquire("s1", Kind::Read).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "it waits under a thousandth");
        budget.set_share(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("done within the new share's wait")
            .expect("joined");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
