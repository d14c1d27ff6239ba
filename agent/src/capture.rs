//! Continuous capture's queue side (issue 18): one reader per Storage Queue
//! the config names, reading ARM's events (at least once, in any order),
//! handing each factory's events to the daemon one window at a time
//! (`coalesce` after the first), and deleting a message only once the
//! snapshot it asked for is sealed (or the events turned out to change
//! nothing). The daemon runs the capture as a job of the factory, so the
//! factory's lease decides who captures: an agent that does not hold it
//! leaves the messages, and they come back to the holder. A message that is
//! not an event, or one never sealed after many receipts, is set aside in
//! the poison queue (`NAME-poison`) and reported. While the queue cannot be
//! read the daemon falls back to the factory's scheduled listing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adfdr_core::capture::{Change, locate, parse_message};
use adfdr_core::ops::Engine;
use adfdr_core::queue::{EventQueue, Message, QueueClient, Url};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Shared;

/// A message is set aside after this many receipts without a seal.
pub const POISON_AFTER: u32 = 20;
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
    /// A window of one factory's events, ready to seal; `done` answers
    /// what became of them.
    Ready {
        factory: String,
        changes: Vec<Change>,
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
}

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
        let inflight: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
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
                if inflight.lock().expect("inflight").contains(&m.id) {
                    continue;
                }
                me.take(m, &mut pending).await;
            }
            me.flush(&mut pending, &inflight);
            me.confirm_idle(&pending, &inflight);
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

    /// Files one message under the factories its events are about; deletes
    /// one about none of them; sets aside one that is not an event.
    async fn take(&self, m: Message, pending: &mut BTreeMap<String, Pending>) {
        let changes = match parse_message(&m.text) {
            Ok(c) => c,
            Err(why) => {
                return self
                    .set_aside(&m, &format!("not an ARM event: {why}"))
                    .await;
            }
        };
        if m.dequeue_count > POISON_AFTER {
            let why = format!("received {} times and never sealed", m.dequeue_count);
            return self.set_aside(&m, &why).await;
        }
        let mut mine = false;
        for c in changes {
            let Some(w) = self.watched.iter().find(|w| locate(&c, &w.path).is_some()) else {
                continue;
            };
            // Another agent holds its lease: the message goes back at once
            // for the holder to read.
            let holder = self.view.lock().expect("view").leases.get(&w.name).cloned();
            if holder.is_some_and(|h| h != crate::lease::THIS_AGENT) {
                let _ = self.queue.release(&m).await;
                return;
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
        if !mine {
            // About no factory read from here (another factory of the
            // subscription, another kind of resource): nobody's to keep.
            if let Err(e) = self.queue.delete(&m).await {
                tracing::debug!(error = %e, "could not delete an event about no watched factory");
            }
        }
    }

    /// A message that cannot be captured: copied to the poison queue (with
    /// why), then deleted, and reported. If the poison queue cannot take
    /// it, it stays where it is.
    async fn set_aside(&self, m: &Message, why: &str) {
        let Some(poison) = &self.poison else { return };
        let text = serde_json::json!({
            "reason": why,
            "message_id": m.id,
            "inserted": m.inserted,
            "text": m.text.chars().take(adfdr_core::capture::MAX_MESSAGE).collect::<String>(),
        })
        .to_string();
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
    /// the daemon says the events are sealed.
    fn flush(
        self: &Arc<Self>,
        pending: &mut BTreeMap<String, Pending>,
        inflight: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
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
                .extend(ids.iter().cloned());
            if self
                .tx
                .send(Event::Ready {
                    factory: name.clone(),
                    changes: p.changes,
                    done,
                })
                .is_err()
            {
                return;
            }
            let (me, inflight) = (self.clone(), inflight.clone());
            tokio::spawn(async move {
                match answer.await.unwrap_or(Answer::Failed) {
                    Answer::Sealed => {
                        for m in p.messages.values() {
                            if let Err(e) = me.queue.delete(m).await {
                                tracing::debug!(message = %m.id, error = %e, "a sealed event's message could not be deleted; it comes back as a duplicate");
                            }
                        }
                    }
                    Answer::NotMine => {
                        for m in p.messages.values() {
                            let _ = me.queue.release(m).await;
                        }
                    }
                    Answer::Failed => {}
                }
                let mut f = inflight.lock().expect("inflight");
                for id in &ids {
                    f.remove(id);
                }
            });
        }
    }

    /// The queue answered and holds nothing of a factory that is not being
    /// sealed: its state is confirmed current as of now (the RPO evidence
    /// events give).
    fn confirm_idle(
        &self,
        pending: &BTreeMap<String, Pending>,
        inflight: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    ) {
        if !inflight.lock().expect("inflight").is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let mut v = self.view.lock().expect("view");
        for w in self
            .watched
            .iter()
            .filter(|w| !pending.contains_key(&w.name))
        {
            v.capture.entry(w.name.clone()).or_default().confirmed = Some(now);
        }
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
        };
        (Arc::new(r), rx)
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
        queue.put(&event("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/other/pipelines/x", "x")).await.expect("put");
        queue.put("not an event").await.expect("put");
        let (r, mut rx) = reader(queue.clone(), poison.clone());
        let task = tokio::spawn(async move { Arc::try_unwrap(r).ok().expect("one").run().await });
        let mut events = Vec::new();
        let ready = loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("in time")
                .expect("event")
            {
                Event::Ready {
                    factory,
                    changes,
                    done,
                } => break (factory, changes, done),
                e => events.push(e),
            }
        };
        assert!(matches!(events[0], Event::Up { .. }), "{events:?}");
        assert_eq!(ready.0, "sales");
        assert_eq!(ready.1.len(), 5, "one window for the five");
        // The foreign event is deleted, the poison one set aside; the five
        // stay until the seal is confirmed.
        assert_eq!(queue.len(), 5);
        assert_eq!(poison.len(), 1);
        assert!(
            poison.texts()[0].contains("not an ARM event"),
            "{:?}",
            poison.texts()
        );
        ready.2.send(Answer::Sealed).expect("answer");
        for _ in 0..100 {
            if queue.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(queue.is_empty(), "sealed messages are deleted");
        task.abort();
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
