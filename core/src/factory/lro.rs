//! Long-running operations, followed as ARM's contract describes them (ARM
//! RPC, "Asynchronous operations"): an answer of 201 or 202 with an
//! `Azure-AsyncOperation` URL is polled until its `status` is terminal
//! (Succeeded, Failed, Canceled), one with only a `Location` until that stops
//! answering 202. `Retry-After` is honoured between polls, a poll that fails
//! transiently is tried again, and a deadline names the operation. Recorded
//! from the service (Azure PowerShell's TestSsisAzureIntegrationRuntime.json):
//! an Azure-SSIS IR start answers 202 with both URLs and Retry-After 15, and
//! its status says InProgress for about 22 minutes.

use std::time::{Duration, Instant};

use azure_core::http::Method;
use serde_json::Value;

use super::{Answer, ArmError, FactoryApi};

/// Polls are never closer than this, whatever Retry-After says (0 included).
const MIN_POLL: Duration = Duration::from_millis(250);
/// Nor further apart than this (a Retry-After of an hour is not waited).
const MAX_POLL: Duration = Duration::from_secs(60);

/// How long until the next poll: the service's Retry-After within bounds,
/// or, when it gives none, a back-off from one second to fifteen.
pub fn next_wait(retry_after: Option<Duration>, polls: u32) -> Duration {
    match retry_after {
        Some(d) => d.clamp(MIN_POLL, MAX_POLL),
        None => {
            let secs = 1.5f64.powi(polls.min(8) as i32);
            Duration::from_secs_f64(secs.min(15.0))
        }
    }
}

/// A duration as an operator reads it: `90 s`, `45 min`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 120 {
        format!("{secs} s")
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

/// Worth trying again: throttling, a server fault, a dropped connection.
pub fn transient(e: &ArmError) -> bool {
    match e {
        ArmError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        ArmError::Transport { credential, .. } => !credential,
        _ => false,
    }
}

fn json(method: &str, url: &str, bytes: &[u8]) -> Result<Value, ArmError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| ArmError::Body {
        method: method.into(),
        url: url.into(),
        detail: e.to_string(),
    })
}

/// Follows `first` (the answer to the request that started `what`) to its
/// end; returns the operation's result (the final body, or Null). An answer
/// that is not long-running is its own result.
pub async fn follow(
    api: &dyn FactoryApi,
    first: Answer,
    what: &str,
    limit: Duration,
) -> Result<Value, ArmError> {
    if !first.is_long_running() {
        return json("", what, &first.body);
    }
    let mut poll = Poller {
        api,
        what,
        started: Instant::now(),
        limit,
        polls: 0,
        last: format!("HTTP {} (accepted)", first.status),
    };
    let mut wait = first.retry_after;
    if let Some(status_url) = &first.async_operation {
        let result = poll.status(status_url, wait).await?;
        match &first.location {
            // The result lives at Location once the status says Succeeded.
            Some(location) => poll.location(location, None).await,
            None => Ok(result),
        }
    } else {
        let location = first.location.as_deref().unwrap_or_default();
        wait = wait.or(Some(MIN_POLL));
        poll.location(location, wait).await
    }
}

struct Poller<'a> {
    api: &'a dyn FactoryApi,
    what: &'a str,
    started: Instant,
    limit: Duration,
    polls: u32,
    last: String,
}

impl Poller<'_> {
    /// Sleeps before the next poll, or gives up when that would pass the deadline.
    async fn pause(&mut self, retry_after: Option<Duration>) -> Result<(), ArmError> {
        let wait = next_wait(retry_after, self.polls);
        self.polls += 1;
        if self.started.elapsed() + wait > self.limit {
            return Err(ArmError::Unfinished {
                what: self.what.to_string(),
                waited: human(self.limit),
                last: self.last.clone(),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// One GET of a polling URL; transient failures are tried again (until the deadline).
    async fn get(&mut self, url: &str) -> Result<Answer, ArmError> {
        loop {
            match self.api.request(Method::Get, url, None).await {
                Ok(answer) => return Ok(answer),
                Err(e) if transient(&e) => {
                    tracing::debug!(what = self.what, error = %e, "poll failed, trying again");
                    self.last = format!("(a poll failed: {e})");
                    self.pause(None).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls an Azure-AsyncOperation URL until its status is terminal.
    async fn status(&mut self, url: &str, first_wait: Option<Duration>) -> Result<Value, ArmError> {
        let mut wait = first_wait;
        loop {
            self.pause(wait).await?;
            let answer = self.get(url).await?;
            // A status answer without Retry-After keeps the interval the
            // service gave last (as the Azure SDKs' pollers do), rather than
            // backing off to 15 s polls of a 2-minute operation.
            wait = answer.retry_after.or(wait);
            let body = json("GET", url, &answer.body)?;
            let status = body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("(no status)")
                .to_string();
            match status.to_ascii_lowercase().as_str() {
                "succeeded" => {
                    return Ok(body.get("properties").cloned().unwrap_or(Value::Null));
                }
                "failed" | "canceled" | "cancelled" => {
                    let text = |p: &str| {
                        body.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    return Err(ArmError::OperationFailed {
                        what: self.what.to_string(),
                        status,
                        code: match text("/error/code") {
                            c if c.is_empty() => "(no code)".into(),
                            c => c,
                        },
                        message: match text("/error/message") {
                            m if m.is_empty() => "(no message)".into(),
                            m => m,
                        },
                    });
                }
                _ => self.last = status,
            }
        }
    }

    /// Polls a Location URL until it answers something other than 202.
    async fn location(
        &mut self,
        url: &str,
        first_wait: Option<Duration>,
    ) -> Result<Value, ArmError> {
        let mut wait = first_wait;
        loop {
            if wait.is_some() {
                self.pause(wait).await?;
            }
            let answer = self.get(url).await?;
            if answer.status != 202 {
                return json("GET", url, &answer.body);
            }
            self.last = "HTTP 202 (in progress)".into();
            wait = answer.retry_after.or(Some(MIN_POLL));
        }
    }
}

impl dyn FactoryApi + '_ {
    /// Sends a request that may start a long-running operation and follows
    /// it to its end (`what` names it in errors; `limit` bounds the wait).
    pub async fn send_following(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
        limit: Duration,
    ) -> Result<Value, ArmError> {
        let first = self.request(method, path, body).await?;
        follow(self, first, what, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::memory::MemoryFactory;

    #[test]
    fn waits_honour_retry_after_within_bounds_and_back_off_without_it() {
        assert_eq!(
            next_wait(Some(Duration::from_secs(15)), 0),
            Duration::from_secs(15)
        );
        assert_eq!(next_wait(Some(Duration::ZERO), 3), MIN_POLL);
        assert_eq!(next_wait(Some(Duration::from_secs(3600)), 0), MAX_POLL);
        assert_eq!(next_wait(None, 0), Duration::from_secs(1));
        assert!(next_wait(None, 2) > next_wait(None, 1));
        assert_eq!(next_wait(None, 40), Duration::from_secs(15));
    }

    /// The recorded shape: 202 with Azure-AsyncOperation and Location;
    /// InProgress, InProgress, Succeeded; then the result at Location.
    #[tokio::test]
    async fn an_async_operation_is_polled_to_success_and_its_result_read() {
        let memory = MemoryFactory::new();
        memory.long_running(2, None);
        let api: &dyn FactoryApi = &memory;
        let result = api
            .send_following(
                Method::Post,
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.DataFactory/factories/f/integrationRuntimes/ir/start",
                None,
                "start of integrationRuntime:ir",
                Duration::from_secs(30),
            )
            .await
            .expect("follows");
        assert_eq!(result["properties"]["state"], "Started", "{result}");
        let polls = memory
            .requests()
            .iter()
            .filter(|r| r.contains("operationstatuses"))
            .count();
        assert_eq!(polls, 3, "{:?}", memory.requests());
    }

    #[tokio::test]
    async fn a_failed_operation_says_what_failed_and_an_endless_one_times_out_naming_it() {
        let memory = MemoryFactory::new();
        memory.long_running(1, Some("IntegrationRuntimeStartFailed"));
        let api: &dyn FactoryApi = &memory;
        let path = "/subscriptions/s/resourceGroups/r/providers/Microsoft.DataFactory/factories/f/integrationRuntimes/ir/start";
        let err = api
            .send_following(
                Method::Post,
                path,
                None,
                "start of integrationRuntime:ir",
                Duration::from_secs(30),
            )
            .await
            .expect_err("failed");
        let text = err.to_string();
        assert!(
            text.contains("start of integrationRuntime:ir ended Failed")
                && text.contains("IntegrationRuntimeStartFailed"),
            "{text}"
        );

        let endless = MemoryFactory::new();
        endless.long_running(usize::MAX, None);
        let api: &dyn FactoryApi = &endless;
        let err = api
            .send_following(
                Method::Post,
                path,
                None,
                "start of integrationRuntime:ir",
                Duration::from_secs(2),
            )
            .await
            .expect_err("times out");
        assert!(matches!(err, ArmError::Unfinished { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("start of integrationRuntime:ir did not finish within 2 s")
                && text.contains("InProgress"),
            "{text}"
        );
    }
}
