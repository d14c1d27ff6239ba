//! Notifications: what needs a person (a failed or degraded backup, a failed
//! drill, damage found, a lease lost), decided purely from a job's outcome,
//! and sent to `[[notify]]` webhooks as generic JSON whose `text` field
//! Slack and Teams incoming webhooks show. Sending never holds up a job:
//! each notice goes out on its own task, retried with backoff, and the
//! webhook URL (a secret) never reaches a log.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use adfdr_core::ops::contract::{JobOutcome, JobReport};

/// What a notice is about (the `events` a `[[notify]]` takes).
pub use adfdr_core::config::NotifyEvent as Event;

/// One notice, as sent (schema `adfdr.notice.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Notice {
    pub schema: &'static str,
    pub event: Event,
    pub factory: String,
    /// The job's one-line outcome.
    pub summary: String,
    /// Where it happened.
    pub host: String,
    pub time: String,
    /// One line for people: what Slack and Teams incoming webhooks show.
    pub text: String,
}

impl Notice {
    pub fn new(event: Event, factory: &str, summary: &str, host: &str, time: &str) -> Notice {
        let what = match event {
            Event::BackupFailed => "backup FAILED",
            Event::BackupDegraded => "backup degraded (a location missed its copy)",
            Event::DrillFailed => "recovery drill FAILED",
            Event::Damage => "damage found in the backups",
            Event::LeaseLost => "lease lost (another agent runs it now)",
            Event::SourceConflict => "another factory took a name with a history",
            Event::Excluded => "excluded from backups by a tag on the factory",
        };
        Notice {
            schema: "adfdr.notice.v1",
            event,
            factory: factory.to_string(),
            summary: summary.to_string(),
            host: host.to_string(),
            time: time.to_string(),
            text: format!("adfdr on {host}: {factory}: {what}: {summary}"),
        }
    }

    /// The notice a finished job calls for, if any (pure).
    pub fn of_job(
        job: &str,
        factory: &str,
        outcome: &JobOutcome,
        host: &str,
        time: &str,
    ) -> Option<Notice> {
        let event = match (job, &outcome.report) {
            // A degraded run is not ok either: it did the job, short of a copy.
            ("backup", _) if outcome.degraded => Event::BackupDegraded,
            ("backup", _) if !outcome.ok => Event::BackupFailed,
            // A capture that fails leaves changes unsealed: a failed backup.
            ("capture", _) if !outcome.ok => Event::BackupFailed,
            ("drill", _) if !outcome.ok => Event::DrillFailed,
            ("verify", Some(JobReport::Verify(r))) if r.failed_check() => Event::Damage,
            _ => return None,
        };
        Some(Notice::new(event, factory, &outcome.summary, host, time))
    }
}

/// The machine's name, for notices.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// One webhook, read from its config.
#[derive(Clone)]
struct Target {
    name: String,
    url: url::Url,
    events: Option<Vec<Event>>,
    attempts: u32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "notify {} (URL not shown)", self.name)
    }
}

/// The configured webhooks and the client that posts to them.
#[derive(Clone, Debug)]
pub struct Notifier {
    targets: Arc<Vec<Target>>,
    client: reqwest::Client,
    /// The first wait between attempts (doubling).
    backoff: Duration,
}

impl Notifier {
    /// Reads each `[[notify]]` URL file: https, or http to a loopback host.
    pub fn new(config: &adfdr_core::config::Config) -> Result<Notifier, String> {
        let mut targets = Vec::new();
        for n in &config.notify {
            let c = n.get_ref();
            let bytes = adfdr_core::identity::read_secret_file(&c.url_file)
                .map_err(|e| format!("notify '{}': url_file: {e}", c.name))?;
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            let url = url::Url::parse(&text).map_err(|_| {
                format!(
                    "notify '{}': {} does not hold a URL (the webhook's https://… address)",
                    c.name,
                    c.url_file.display()
                )
            })?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                return Err(format!(
                    "notify '{}': the URL in {} must use https (http only to a loopback address)",
                    c.name,
                    c.url_file.display()
                ));
            }
            targets.push(Target {
                name: c.name.clone(),
                url,
                events: c.events.clone(),
                attempts: c.attempts.unwrap_or(5),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("notify: {e}"))?;
        Ok(Notifier {
            targets: Arc::new(targets),
            client,
            backoff: Duration::from_secs(1),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Sends `notice` to every webhook that wants it, each on its own task:
    /// returns at once. `done` hears each target's result (name, sent).
    pub fn send(
        &self,
        notice: Notice,
        done: Option<tokio::sync::mpsc::UnboundedSender<(String, bool)>>,
    ) {
        for t in self.targets.iter() {
            if t.events
                .as_ref()
                .is_some_and(|e| !e.contains(&notice.event))
            {
                continue;
            }
            let (t, client, notice, done) =
                (t.clone(), self.client.clone(), notice.clone(), done.clone());
            let backoff = self.backoff;
            tokio::spawn(async move {
                let sent = deliver(&client, &t, &notice, backoff).await;
                if let Some(done) = done {
                    let _ = done.send((t.name.clone(), sent));
                }
            });
        }
    }
}

/// Posts until a 2xx answer or the attempts run out, waiting 1 s, 2 s, 4 s
/// … between them (a 4xx other than 408 and 429 is not retried: the
/// webhook refuses the notice itself).
async fn deliver(client: &reqwest::Client, t: &Target, notice: &Notice, backoff: Duration) -> bool {
    let mut wait = backoff;
    for attempt in 1..=t.attempts {
        let answer = client.post(t.url.clone()).json(notice).send().await;
        let why = match answer {
            Ok(r) if r.status().is_success() => {
                tracing::info!(notify = %t.name, event = notice.event.name(), factory = %notice.factory, attempt, "notice sent");
                return true;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                if (400..500).contains(&status) && status != 408 && status != 429 {
                    tracing::warn!(notify = %t.name, event = notice.event.name(), status, "the webhook refused the notice; not retried");
                    return false;
                }
                format!("HTTP {status}")
            }
            Err(e) => e.without_url().to_string(),
        };
        if attempt == t.attempts {
            tracing::warn!(notify = %t.name, event = notice.event.name(), factory = %notice.factory, attempts = t.attempts, error = %why, "notice not delivered");
            return false;
        }
        tracing::debug!(notify = %t.name, attempt, error = %why, "notice not delivered yet; retrying");
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool, degraded: bool) -> JobOutcome {
        JobOutcome {
            ok,
            degraded,
            ..JobOutcome::failed("s")
        }
    }

    #[test]
    fn only_what_needs_a_person_is_a_notice() {
        let of = |job, o: &JobOutcome| Notice::of_job(job, "sales", o, "h", "t").map(|n| n.event);
        assert_eq!(
            of("backup", &outcome(false, false)),
            Some(Event::BackupFailed)
        );
        assert_eq!(
            of("backup", &outcome(false, true)),
            Some(Event::BackupDegraded)
        );
        assert_eq!(of("backup", &outcome(true, false)), None);
        assert_eq!(
            of("drill", &outcome(false, false)),
            Some(Event::DrillFailed)
        );
        assert_eq!(of("drill", &outcome(true, false)), None);
        assert_eq!(of("prune", &outcome(true, true)), None);
        let n = Notice::new(Event::LeaseLost, "sales", "taken by agent-b", "host-a", "t");
        assert_eq!(
            n.text,
            "adfdr on host-a: sales: lease lost (another agent runs it now): taken by agent-b"
        );
        let body = serde_json::to_value(&n).expect("json");
        assert_eq!(body["event"], "lease-lost");
        assert_eq!(body["schema"], "adfdr.notice.v1");
    }
}
