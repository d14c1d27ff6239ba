//! Continuous capture's queue side (issue 18): one reader per Storage Queue
//! the config names, reading ARM's events (at least once, in any order),
//! handing each factory's events to the daemon one window at a time
//! (`coalesce` after the first), and deleting a message only once the
//! snapshot it asked for is sealed (or the events turned out to change
//! nothing). The daemon runs the capture as a job of the factory, so the
//! factory's lease decides who captures: an agent that does not hold it
//! leaves the messages, and they come back to the holder. A message that is
//! not an event is set aside in the poison queue (`NAME-poison`) and
//! reported; an event is never set aside for failing to seal (a later
//! window, or a listing, can seal it): a factory whose windows keep
//! failing is listed in full instead, and its changes are told as waiting,
//! not confirmed, until one seals. While the queue cannot be read the
//! daemon falls back to the factory's scheduled listing.
//!
//! Nothing a queue sender plants may cost an event (issue 25): handing a
//! message back to its holder never counts against it; a factory whose
//! lease is in doubt keeps its messages hidden for a lease period; a
//! message about a factory this agent does not know is left for the agents
//! that may (deleted only once it is older than two discovery periods).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adfdr_core::ops::Engine;
use adfdr_core::plan::events::{Change, locate, parse_message};
use adfdr_core::queue::{EventQueue, Message, QueueClient, Url};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Shared;

/// After this many failed windows in a row, a factory's next window lists
/// it in full (what the events name may be what fails).
pub const LIST_AFTER_FAILURES: u32 = 3;
/// How long a received message stays invisible beyond the window: enough
/// for the capture job; if it takes longer the message comes back, a
/// duplicate that reads as unchanged.
const VISIBLE_AFTER: Duration = Duration::from_secs(60);
/// How often an empty queue is asked again.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Longest wait between tries while the queue cannot be read.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the queue must fail before its factories fall back to listing
/// (a blip costs nothing: events wait in the queue).
pub const DOWN_AFTER: Duration = Duration::from_secs(15);

/// What a queue reader tells the daemon.
#[derive(Debug)]
pub enum Event {
    /// The queue cannot be read: these factories fall back to listing.
    Down {
        queue: String,
        factories: Vec<String>,
        why: String,
    },
    /// It answers again, after failing this long (zero at the start).
    Up {
        queue: String,
        factories: Vec<String>,
        down_for: Duration,
    },
    /// A window of one factory's events, ready to seal (`list`: list the
    /// factory in full, its windows keep failing); `done` answers what
    /// became of them.
    Ready {
        factory: String,
        changes: Vec<Change>,
        list: bool,
        done: oneshot::Sender<Answer>,
    },
}

/// What became of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Sealed (or found unchanged): its messages are deleted.
    Sealed,
    /// Another agent holds the factory: its messages go back at once.
    NotMine,
    /// The capture failed: its messages come back when their time is up.
    Failed,
    /// A listing they ask for is deferred: their messages wait this long.
    Later(Duration),
}

/// A factory read from a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watched {
    name: String,
    path: String,
    coalesce: Duration,
}

/// Keeps one reader per queue the current config names (restarted when
/// the config changes).
pub async fn run(
    mut engine: watch::Receiver<Arc<Engine>>,
    view: Shared,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut readers: Vec<(Url, Vec<Watched>, tokio::task::JoinHandle<()>)> = Vec::new();
    loop {
        let current = engine.borrow_and_update().clone();
        let wanted = queues(&current);
        let same = readers.len() == wanted.len()
            && readers
                .iter()
                .all(|(q, w, _)| wanted.get(q).is_some_and(|x| x == w));
        if !same {
            for (_, _, task) in readers.drain(..) {
                task.abort();
            }
            for (url, watched) in wanted {
                let poison = adfdr_core::queue::poison_url(&url)
                    .ok()
                    .map(|u| client(&current, u));
                let reader = Reader {
                    queue: client(&current, url.clone()),
                    poison,
                    watched: watched.clone(),
                    view: view.clone(),
                    tx: tx.clone(),
                    down_after: DOWN_AFTER,
                    in_doubt: Duration::from_secs(current.config.agent.lease_seconds.into()),
                    unknown: unknown_for(&current),
                    retry_base: Duration::from_secs(5),
                };
                readers.push((url, watched, tokio::spawn(reader.run())));
            }
        }
        if engine.changed().await.is_err() {
            for (_, _, task) in readers.drain(..) {
                task.abort();
            }
            return;
        }
    }
}

/// Queue URL → the factories read from it.
fn queues(engine: &Engine) -> BTreeMap<Url, Vec<Watched>> {
    engine
        .config
        .event_queues()
        .into_iter()
        .map(|(url, factories)| {
            let watched = factories
                .iter()
                .map(|f| Watched {
                    name: f.name.clone(),
                    path: f.arm_path(),
                    coalesce: f.coalesce_window(),
                })
                .collect();
            (url, watched)
        })
        .collect()
}

/// How long a message about a factory this agent does not know is left
/// for others: a discovery period (another agent may have found it
/// sooner); five minutes without discovery.
fn unknown_for(engine: &Engine) -> Duration {
    if engine.config.discover.is_empty() {
        Duration::from_secs(300)
    } else {
        engine
            .config
            .agent
            .discover_interval()
            .max(Duration::from_secs(1))
    }
}

fn client(engine: &Engine, url: Url) -> Arc<dyn EventQueue> {
    Arc::new(QueueClient::new(
        url,
        engine.identity.credential.clone(),
        engine.options.clone(),
    ))
}

/// One factory's window: its events and the messages that carried them.
struct Pending {
    first: Instant,
    changes: Vec<Change>,
    messages: HashMap<String, Message>,
}

pub struct Reader {
    queue: Arc<dyn EventQueue>,
    poison: Option<Arc<dyn EventQueue>>,
    watched: Vec<Watched>,
    view: Shared,
    tx: mpsc::UnboundedSender<Event>,
    down_after: Duration,
    /// How long a factory whose lease is in doubt keeps its messages hidden.
    in_doubt: Duration,
    /// How long a message about an unknown factory is left for others.
    unknown: Duration,
    /// The first wait before a failed window is tried again (doubling).
    retry_base: Duration,
}

/// Who holds a factory's lease, as this agent's lease task last saw it.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// This agent, or not looked at yet (the daemon decides).
    Me,
    /// Another agent holds it: its messages go back at once.
    Other,
    /// Nobody, or unknown: handed back, they would cycle until someone
    /// takes the lease.
    Doubt,
}

/// Consecutive failed windows per factory (shared with the answer tasks).
type Failing = Arc<std::sync::Mutex<HashMap<String, u32>>>;

/// Messages handed over and not answered yet, by id, each with its newest
/// receipt (one received again meanwhile is not taken again).
type Inflight = Arc<std::sync::Mutex<HashMap<String, Message>>>;

impl Reader {
    fn names(&self) -> Vec<String> {
        self.watched.iter().map(|w| w.name.clone()).collect()
    }

    async fn run(self) {
        let me = Arc::new(self);
        // Every queue read from has a poison count and each factory its
        // capture counts, zero until something happens.
        {
            let mut v = me.view.lock().expect("view");
            v.poison.entry(me.queue.name().to_string()).or_default();
            for w in &me.watched {
                v.capture.entry(w.name.clone()).or_default();
            }
        }
        let mut up: Option<bool> = None;
        let mut backoff = Duration::from_millis(500);
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        // Messages handed over and not answered yet: not taken again.
        let inflight: Inflight = Arc::default();
        let failing: Failing = Arc::default();
        let longest = me
            .watched
            .iter()
            .map(|w| w.coalesce)
            .max()
            .unwrap_or_default();
        let mut failing_since: Option<Instant> = None;
        loop {
            let got = me
                .queue
                .receive(adfdr_core::queue::BATCH, longest + VISIBLE_AFTER)
                .await;
            let messages = match got {
                Ok(m) => m,
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if up != Some(false) && since.elapsed() < me.down_after {
                        tracing::debug!(queue = %me.queue.name(), error = %e, "the event queue did not answer; trying again");
                    } else if up != Some(false) {
                        let why = e.to_string();
                        tracing::warn!(queue = %me.queue.name(), error = %why, factories = %me.names().join(","), "the event queue cannot be read: its factories fall back to their scheduled listing");
                        me.set_up(false);
                        let _ = me.tx.send(Event::Down {
                            queue: me.queue.name().to_string(),
                            factories: me.names(),
                            why,
                        });
                        up = Some(false);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(500);
            let down_for = failing_since
                .take()
                .map(|s| s.elapsed())
                .unwrap_or_default();
            if up != Some(true) {
                if up == Some(false) {
                    tracing::info!(queue = %me.queue.name(), "the event queue answers again: capture resumes");
                }
                me.set_up(true);
                let _ = me.tx.send(Event::Up {
                    queue: me.queue.name().to_string(),
                    factories: me.names(),
                    down_for: if up == Some(false) {
                        down_for
                    } else {
                        Duration::ZERO
                    },
                });
                up = Some(true);
            }
            let full = messages.len() as u32 >= adfdr_core::queue::BATCH;
            for m in messages {
                // Received again while its window is being sealed (it came
                // back): its newest receipt is the one that deletes or hides
                // it when the answer comes.
                if let Some(held) = inflight.lock().expect("inflight").get_mut(&m.id) {
                    *held = m;
                    continue;
                }
                me.take(m, &mut pending).await;
            }
            me.flush(&mut pending, &inflight, &failing);
            me.confirm_idle(&pending, &inflight, &failing);
            if !full {
                let next = pending
                    .iter()
                    .filter_map(|(name, p)| {
                        let w = me.watched.iter().find(|w| &w.name == name)?;
                        Some((p.first + w.coalesce).saturating_duration_since(Instant::now()))
                    })
                    .min()
                    .unwrap_or(IDLE_POLL)
                    .min(IDLE_POLL);
                tokio::time::sleep(next).await;
            }
        }
    }

    fn set_up(&self, up: bool) {
        let mut v = self.view.lock().expect("view");
        for w in &self.watched {
            v.capture.entry(w.name.clone()).or_default().queue_up = Some(up);
        }
    }

    /// Who holds `factory`'s lease, as this agent saw it last.
    fn holder(&self, factory: &str) -> Holder {
        match self.view.lock().expect("view").leases.get(factory) {
            None => Holder::Me,
            Some(h) if h == crate::lease::THIS_AGENT => Holder::Me,
            Some(h) if h.starts_with("unknown") || h.starts_with("nobody") => Holder::Doubt,
            Some(_) => Holder::Other,
        }
    }

    /// Files one message under the factories its events are about; sets
    /// aside one that is not an event. A message about a factory another
    /// agent holds goes back at once, one whose lease is in doubt is hidden
    /// for a lease period; one about a factory this agent does not know is
    /// left for the agents that may, and deleted only when nobody took it
    /// in two discovery periods; one about no factory at all is deleted.
    async fn take(&self, m: Message, pending: &mut BTreeMap<String, Pending>) {
        let changes = match parse_message(&m.text) {
            Ok(c) => c,
            Err(why) => {
                return self
                    .set_aside(&m, &format!("not an ARM event: {why}"))
                    .await;
            }
        };
        let mut mine = false;
        let mut unknown = false;
        for c in changes {
            let Some(w) = self.watched.iter().find(|w| locate(&c, &w.path).is_some()) else {
                unknown |= about_a_factory(&c);
                continue;
            };
            match self.holder(&w.name) {
                Holder::Other => {
                    let _ = self.queue.release(&m).await;
                    return;
                }
                Holder::Doubt => {
                    let _ = self.queue.hide(&m, self.in_doubt).await;
                    return;
                }
                Holder::Me => {}
            }
            mine = true;
            self.view
                .lock()
                .expect("view")
                .capture
                .entry(w.name.clone())
                .or_default()
                .received += 1;
            let p = pending.entry(w.name.clone()).or_insert_with(|| Pending {
                first: Instant::now(),
                changes: Vec::new(),
                messages: HashMap::new(),
            });
            if !p.changes.iter().any(|x| x.id == c.id) {
                p.changes.push(c);
            }
            p.messages.insert(m.id.clone(), m.clone());
        }
        if mine {
            return;
        }
        let old = adfdr_core::queue::parse_http_date(&m.inserted).is_some_and(|t| {
            (time::OffsetDateTime::now_utc() - t).unsigned_abs() > 2 * self.unknown
        });
        if unknown && !old {
            // Another agent may know this factory (discovery runs on each
            // agent's own clock): left for it.
            let _ = self.queue.hide(&m, self.unknown).await;
            return;
        }
        // About no factory read from here that any agent took up in time
        // (another factory of the subscription), or about none at all.
        if let Err(e) = self.queue.delete(&m).await {
            tracing::debug!(error = %e, "could not delete an event about no watched factory");
        }
    }

    /// A message that cannot be captured: copied to the poison queue (with
    /// why, the text cut to what a message may hold), then deleted, and
    /// reported. If the poison queue cannot take it, it stays where it is.
    async fn set_aside(&self, m: &Message, why: &str) {
        let Some(poison) = &self.poison else { return };
        let text = poison_text(m, why);
        let mut put = poison.put(&text).await;
        if put.is_err() {
            let _ = poison.create().await;
            put = poison.put(&text).await;
        }
        if let Err(e) = put {
            tracing::error!(queue = %self.queue.name(), message = %m.id, error = %e, "a poison message could not be set aside; it stays in the queue");
            return;
        }
        let _ = self.queue.delete(m).await;
        tracing::warn!(queue = %self.queue.name(), message = %m.id, %why, poison = %poison.name(), "a message was set aside in the poison queue");
        *self
            .view
            .lock()
            .expect("view")
            .poison
            .entry(self.queue.name().to_string())
            .or_default() += 1;
    }

    /// Hands over each window that is complete; deletes its messages once
    /// the daemon says the events are sealed. A factory whose windows keep
    /// failing is listed in full by its next one.
    fn flush(
        self: &Arc<Self>,
        pending: &mut BTreeMap<String, Pending>,
        inflight: &Inflight,
        failing: &Failing,
    ) {
        let now = Instant::now();
        let ready: Vec<String> = pending
            .iter()
            .filter(|(name, p)| {
                self.watched
                    .iter()
                    .find(|w| &w.name == *name)
                    .is_some_and(|w| now >= p.first + w.coalesce)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in ready {
            let Some(p) = pending.remove(&name) else {
                continue;
            };
            let (done, answer) = oneshot::channel();
            let ids: Vec<String> = p.messages.keys().cloned().collect();
            inflight
                .lock()
                .expect("inflight")
                .extend(p.messages.clone());
            let failed = failing
                .lock()
                .expect("failing")
                .get(&name)
                .copied()
                .unwrap_or(0);
            if self
                .tx
                .send(Event::Ready {
                    factory: name.clone(),
                    changes: p.changes,
                    list: failed >= LIST_AFTER_FAILURES,
                    done,
                })
                .is_err()
            {
                return;
            }
            let (me, inflight, failing) = (self.clone(), inflight.clone(), failing.clone());
            tokio::spawn(async move {
                let answer = answer.await.unwrap_or(Answer::Failed);
                // Each message with its newest receipt, out of the inflight set.
                let messages: Vec<Message> = {
                    let mut f = inflight.lock().expect("inflight");
                    ids.iter().filter_map(|id| f.remove(id)).collect()
                };
                match answer {
                    Answer::Sealed => {
                        failing.lock().expect("failing").remove(&name);
                        for m in &messages {
                            if let Err(e) = me.queue.delete(m).await {
                                tracing::debug!(message = %m.id, error = %e, "a sealed event's message could not be deleted; it comes back as a duplicate");
                            }
                        }
                    }
                    Answer::NotMine => {
                        for m in &messages {
                            let _ = me.queue.release(m).await;
                        }
                    }
                    // Waiting, not failed: hidden until the listing may run
                    // (the factory is not confirmed meanwhile).
                    Answer::Later(wait) => {
                        failing
                            .lock()
                            .expect("failing")
                            .entry(name.clone())
                            .or_default();
                        for m in &messages {
                            let _ = me.queue.hide(m, wait).await;
                        }
                    }
                    // The messages come back after a backoff (5 s, doubling
                    // to a minute); until a window seals, the factory's
                    // changes are waiting, not confirmed.
                    Answer::Failed => {
                        let n = {
                            let mut f = failing.lock().expect("failing");
                            let n = f.entry(name.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        for m in &messages {
                            let _ = me.queue.hide(m, retry_after(me.retry_base, n)).await;
                        }
                    }
                }
            });
        }
    }

    /// The queue answered and holds nothing of a factory that is not being
    /// sealed, and its last window did not fail: its state is confirmed
    /// current as of now (the RPO evidence events give). A factory whose
    /// window failed is not: its changes wait, hidden in the queue.
    fn confirm_idle(
        &self,
        pending: &BTreeMap<String, Pending>,
        inflight: &Inflight,
        failing: &Failing,
    ) {
        if !inflight.lock().expect("inflight").is_empty() {
            return;
        }
        let failing = failing.lock().expect("failing").clone();
        let now = chrono::Utc::now();
        let mut v = self.view.lock().expect("view");
        for w in self
            .watched
            .iter()
            .filter(|w| !pending.contains_key(&w.name) && !failing.contains_key(&w.name))
        {
            v.capture.entry(w.name.clone()).or_default().confirmed = Some(now);
        }
    }
}

/// How long a failed window's messages wait before they are tried again:
/// `base` after the first failure, doubling, at most a minute.
fn retry_after(base: Duration, failures: u32) -> Duration {
    (base * (1 << failures.saturating_sub(1).min(4))).min(VISIBLE_AFTER)
}

/// Whether an event is about a Data Factory factory at all (then some agent
/// may watch it).
fn about_a_factory(c: &Change) -> bool {
    c.resource_uri
        .to_ascii_lowercase()
        .contains("/providers/microsoft.datafactory/factories/")
}

/// The poison queue's copy of `m`: why, and as much of its text as a
/// message may hold once JSON- and XML-escaped (a text of quotes doubles).
fn poison_text(m: &Message, why: &str) -> String {
    let mut keep = adfdr_core::plan::events::MAX_MESSAGE;
    loop {
        let text = serde_json::json!({
            "reason": why,
            "message_id": m.id,
            "inserted": m.inserted,
            "truncated": keep < m.text.chars().count(),
            "text": m.text.chars().take(keep).collect::<String>(),
        })
        .to_string();
        if adfdr_core::queue::message_size(&text) <= adfdr_core::queue::MAX_PUT || keep == 0 {
            return text;
        }
        keep /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adfdr_core::queue::MemoryQueue;

    const F: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf";

    fn event(uri: &str, id: &str) -> String {
        serde_json::json!({
            "subject": uri, "eventType": "Microsoft.Resources.ResourceWriteSuccess",
            "eventTime": "2026-12-01T10:00:00Z", "id": id,
            "data": {"resourceUri": uri, "operationName": "Microsoft.DataFactory/factories/pipelines/write",
                     "correlationId": "c", "claims": {"appid": "a"}}
        })
        .to_string()
    }

    fn reader(
        queue: Arc<MemoryQueue>,
        poison: Arc<MemoryQueue>,
    ) -> (Arc<Reader>, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = Reader {
            queue,
            poison: Some(poison),
            watched: vec![Watched {
                name: "sales".into(),
                path: F.into(),
                coalesce: Duration::from_millis(50),
            }],
            view: Shared::default(),
            tx,
            down_after: Duration::ZERO,
            in_doubt: Duration::from_secs(30),
            unknown: Duration::from_secs(60),
            retry_base: Duration::from_millis(50),
        };
        (Arc::new(r), rx)
    }

    async fn next_ready(
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> (String, Vec<Change>, bool, oneshot::Sender<Answer>) {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("in time")
                .expect("event")
            {
                Event::Ready {
                    factory,
                    changes,
                    list,
                    done,
                } => return (factory, changes, list, done),
                _ => continue,
            }
        }
    }

    async fn settle(queue: &MemoryQueue, len: usize) {
        for _ in 0..100 {
            if queue.len() == len {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_window_is_handed_over_once_and_its_messages_go_only_when_sealed() {
        let (queue, poison) = (
            Arc::new(MemoryQueue::default()),
            Arc::new(MemoryQueue::default()),
        );
        for i in 0..5 {
            queue
                .put(&event(&format!("{F}/pipelines/p{i}"), &format!("e{i}")))
                .await
                .expect("put");
        }
        let other = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/other/pipelines/x";
        // About a factory this agent does not know: another may (left for
        // it), unless nobody took it up in two discovery periods.
        queue.put(&event(other, "x")).await.expect("put");
        queue.put_at(
            &event(other, "old"),
            time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        // About no factory at all: nobody's.
        queue
            .put(&event(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa",
                "sa",
            ))
            .await
            .expect("put");
        queue.put("not an event").await.expect("put");
        let (r, mut rx) = reader(queue.clone(), poison.clone());
        let task = tokio::spawn(async move { Arc::try_unwrap(r).ok().expect("one").run().await });
        let (factory, changes, list, done) = next_ready(&mut rx).await;
        assert_eq!(factory, "sales");
        assert_eq!(changes.len(), 5, "one window for the five");
        assert!(!list);
        // The old unknown one and the storage one are deleted, the poison
        // one set aside; the young unknown one and the five stay.
        assert_eq!(queue.len(), 6, "{:?}", queue.texts());
        assert!(queue.texts().iter().any(|t| t.contains("\"x\"")));
        assert_eq!(poison.len(), 1);
        assert!(
            poison.texts()[0].contains("not an ARM event"),
            "{:?}",
            poison.texts()
        );
        done.send(Answer::Sealed).expect("answer");
        settle(&queue, 1).await;
        assert_eq!(queue.len(), 1, "sealed messages are deleted");
        task.abort();
    }

    /// Issue 25, item 4: a message handed back to the lease holder never
    /// counts against it (they were poisoned after 20 hand-backs, during a
    /// hand-over), and a factory whose lease is in doubt keeps its messages
    /// hidden for a lease period instead of cycling.
    #[tokio::test]
    async fn handing_back_never_poisons_and_a_lease_in_doubt_hides_messages() {
        let (queue, poison) = (
            Arc::new(MemoryQueue::default()),
            Arc::new(MemoryQueue::default()),
        );
        queue
            .put(&event(&format!("{F}/pipelines/p"), "e"))
            .await
            .expect("put");
        let (r, mut rx) = reader(queue.clone(), poison.clone());
        let view = r.view.clone();
        view.lock().expect("view").leases.insert(
            "sales".into(),
            "the agent on host b (pid 7, since then)".into(),
        );
        let task = tokio::spawn(async move { Arc::try_unwrap(r).ok().expect("one").run().await });
        // Received and handed back about once a second.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(poison.is_empty(), "{:?}", poison.texts());
        assert_eq!(queue.len(), 1);
        assert!(
            queue
                .receive(32, Duration::ZERO)
                .await
                .is_ok_and(|m| m.len() == 1 && m[0].dequeue_count >= 3),
            "handed back, visible at once"
        );
        view.lock()
            .expect("view")
            .leases
            .insert("sales".into(), "nobody (free)".into());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            queue
                .receive(32, Duration::ZERO)
                .await
                .is_ok_and(|m| m.is_empty()),
            "hidden while nobody holds the lease"
        );
        assert_eq!(queue.len(), 1);
        while let Ok(e) = rx.try_recv() {
            assert!(
                !matches!(e, Event::Ready { .. }),
                "not this agent's to seal"
            );
        }
        task.abort();
    }

    /// Issue 25, item 5: a window that fails is not confirmed (the RPO
    /// grows), is tried again with backoff, then listed in full; its
    /// events are never set aside as poison.
    #[tokio::test]
    async fn a_failing_window_is_retried_then_listed_and_never_poisoned() {
        let (queue, poison) = (
            Arc::new(MemoryQueue::default()),
            Arc::new(MemoryQueue::default()),
        );
        queue
            .put(&event(&format!("{F}/pipelines/p"), "e"))
            .await
            .expect("put");
        let (r, mut rx) = reader(queue.clone(), poison.clone());
        let view = r.view.clone();
        let task = tokio::spawn(async move { Arc::try_unwrap(r).ok().expect("one").run().await });
        let confirmed = || {
            view.lock()
                .expect("view")
                .capture
                .get("sales")
                .and_then(|c| c.confirmed)
        };
        for n in 1..=LIST_AFTER_FAILURES {
            let (_, _, list, done) = next_ready(&mut rx).await;
            assert!(!list, "window {n} reads what the events name");
            done.send(Answer::Failed).expect("answer");
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert_eq!(confirmed(), None, "a failed window confirms nothing");
        }
        let (_, _, list, done) = next_ready(&mut rx).await;
        assert!(
            list,
            "after {LIST_AFTER_FAILURES} failures the factory is listed"
        );
        done.send(Answer::Sealed).expect("answer");
        settle(&queue, 0).await;
        assert!(queue.is_empty());
        assert!(poison.is_empty(), "{:?}", poison.texts());
        for _ in 0..100 {
            if confirmed().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(confirmed().is_some(), "confirmed again once sealed");
        task.abort();
    }

    /// Issue 25, item 10: a message of 60,000 quotes doubles when quoted:
    /// its poison copy is cut to what a message may hold.
    #[test]
    fn a_poison_copy_fits_in_a_message() {
        let m = Message {
            id: "m1".into(),
            pop_receipt: "r".into(),
            dequeue_count: 1,
            text: "\"".repeat(60_000),
            inserted: String::new(),
        };
        let text = poison_text(&m, "not an ARM event");
        assert!(adfdr_core::queue::message_size(&text) <= adfdr_core::queue::MAX_PUT);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["truncated"], true);
        assert!(v["text"].as_str().is_some_and(|t| t.len() > 10_000));
    }

    #[tokio::test]
    async fn an_unreadable_queue_is_reported_down_then_up() {
        let (queue, poison) = (
            Arc::new(MemoryQueue::default()),
            Arc::new(MemoryQueue::default()),
        );
        queue.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let (r, mut rx) = reader(queue.clone(), poison);
        let task = tokio::spawn(async move { Arc::try_unwrap(r).ok().expect("one").run().await });
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert!(
            matches!(first, Some(Event::Down { ref factories, .. }) if factories == &["sales"]),
            "{first:?}"
        );
        queue
            .down
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert!(matches!(next, Some(Event::Up { .. })), "{next:?}");
        task.abort();
    }
}
