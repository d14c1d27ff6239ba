//! How many writes a restore keeps in flight: as many as the service takes.
//! The window grows while no 429 arrives (by one per finished write until
//! the first throttling, doubling each round trip; by one per round trip
//! after it) and halves, for every write at once, when one arrives. Below the
//! throttle a restore so reaches its dependency bound; at the throttle it
//! sits just under the bucket's rate instead of hammering it.
//!
//! [`Aimd`] is the decision, pure (time is a parameter); [`Window`] holds
//! the writes to it.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::factory::FactoryApi;

/// Writes in flight at the start (the fixed number of earlier releases).
pub const START: usize = 16;

/// The most writes in flight by default (`--concurrency`): enough to reach
/// the dependency bound of thousands of writes at 50 ms, few enough for one
/// client's connections.
pub const CEILING: usize = 128;

/// Additive increase, multiplicative decrease of the writes in flight.
#[derive(Clone, Debug)]
pub struct Aimd {
    limit: f64,
    ceiling: f64,
    /// Grow by one per write below this (slow start), by 1/limit above.
    threshold: f64,
    /// When the window was last cut: one throttling burst cuts it once.
    cut_ms: Option<u64>,
}

/// A burst of 429s within this long of a cut is the same event.
const HOLD_MS: u64 = 1_000;

impl Aimd {
    pub fn new(start: usize, ceiling: usize) -> Aimd {
        let ceiling = ceiling.max(1) as f64;
        Aimd {
            limit: (start.max(1) as f64).min(ceiling),
            ceiling,
            threshold: ceiling,
            cut_ms: None,
        }
    }

    /// Writes that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    /// A write finished without throttling.
    pub fn took(&mut self) {
        let step = if self.limit < self.threshold {
            1.0
        } else {
            1.0 / self.limit
        };
        self.limit = (self.limit + step).min(self.ceiling);
    }

    /// The service throttled (at `now_ms`): halve, once per burst.
    pub fn throttled(&mut self, now_ms: u64) {
        if self
            .cut_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < HOLD_MS)
        {
            return;
        }
        self.cut_ms = Some(now_ms);
        self.limit = (self.limit / 2.0).max(1.0);
        self.threshold = self.limit;
    }
}

/// Writes in flight under an [`Aimd`] window, fed by what the service
/// answers: every 429 it sent (also those a retry policy waited out).
pub struct Window<'a> {
    arm: &'a dyn FactoryApi,
    began: Instant,
    state: Mutex<State>,
    freed: Notify,
}

struct State {
    aimd: Aimd,
    in_flight: usize,
    /// The 429 count last looked at.
    seen: u64,
    /// The most writes ever in flight at once (for reports and benchmarks).
    peak: usize,
}

/// One write's place in the window; give it back with [`Window::done`].
pub struct Slot(());

impl<'a> Window<'a> {
    pub fn new(arm: &'a dyn FactoryApi, ceiling: usize) -> Window<'a> {
        Window {
            arm,
            began: Instant::now(),
            state: Mutex::new(State {
                aimd: Aimd::new(START.min(ceiling), ceiling),
                in_flight: 0,
                seen: arm.throttled(),
                peak: 0,
            }),
            freed: Notify::new(),
        }
    }

    /// Waits for room in the window.
    pub async fn enter(&self) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.state.lock().expect("window");
                if s.in_flight < s.aimd.limit() {
                    s.in_flight += 1;
                    s.peak = s.peak.max(s.in_flight);
                    return Slot(());
                }
            }
            freed.await;
        }
    }

    /// A write finished: the window learns whether the service throttled
    /// meanwhile, and the room goes to the next one.
    pub fn done(&self, _slot: Slot) {
        let throttled = self.arm.throttled();
        let now_ms = crate::ops::millis(self.began.elapsed());
        let room = {
            let mut s = self.state.lock().expect("window");
            s.in_flight -= 1;
            if throttled > s.seen {
                s.seen = throttled;
                s.aimd.throttled(now_ms);
            } else {
                s.aimd.took();
            }
            s.aimd.limit().saturating_sub(s.in_flight)
        };
        // Wake as many waiting writes as there is room (one, or two when
        // the window grew), not all of them.
        for _ in 0..room {
            self.freed.notify_one();
        }
    }

    pub fn peak(&self) -> usize {
        self.state.lock().expect("window").peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubling_until_throttled_then_halves_once_per_burst_and_grows_slowly() {
        let mut w = Aimd::new(16, 256);
        assert_eq!(w.limit(), 16);
        // One round trip of 16 writes without a 429: 32 in flight.
        (0..16).for_each(|_| w.took());
        assert_eq!(w.limit(), 32);
        (0..32).for_each(|_| w.took());
        assert_eq!(w.limit(), 64);
        // Never past the ceiling.
        (0..1000).for_each(|_| w.took());
        assert_eq!(w.limit(), 256);
        // A 429: half, and the rest of the burst does not halve again.
        w.throttled(10_000);
        assert_eq!(w.limit(), 128);
        w.throttled(10_400);
        assert_eq!(w.limit(), 128, "same burst");
        w.throttled(11_500);
        assert_eq!(w.limit(), 64, "a new burst");
        // After a cut it grows by about one per round trip of writes.
        (0..64).for_each(|_| w.took());
        assert_eq!(w.limit(), 64, "{w:?}");
        (0..70).for_each(|_| w.took());
        assert!((65..=66).contains(&w.limit()), "{w:?}");
        // Never below one write.
        let mut w = Aimd::new(1, 4);
        w.throttled(0);
        assert_eq!(w.limit(), 1);
        assert_eq!(Aimd::new(16, 4).limit(), 4, "start within the ceiling");
    }
}
