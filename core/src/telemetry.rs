//! Process-wide counters the agent's /metrics shows: how often Azure told
//! us to slow down. A per-try pipeline policy sees every attempt, so a
//! request retried three times after 429s counts three.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

const SERVICES: [&str; 3] = ["arm", "storage", "keyvault"];
static THROTTLED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// (service, 429/503 answers so far).
pub fn throttled() -> Vec<(&'static str, u64)> {
    SERVICES
        .iter()
        .zip(THROTTLED.iter())
        .map(|(s, n)| (*s, n.load(Ordering::Relaxed)))
        .collect()
}

/// Counts throttling answers; the service is told apart by the request:
/// the ARM host, a Key Vault key path, else blob storage.
#[derive(Debug)]
pub struct CountThrottled {
    pub arm_host: String,
}

impl CountThrottled {
    pub fn policy(arm_host: &str) -> Arc<dyn Policy> {
        Arc::new(CountThrottled {
            arm_host: arm_host.to_string(),
        })
    }

    fn service(&self, request: &Request) -> usize {
        let url = request.url();
        if url.host_str() == Some(self.arm_host.as_str())
            && url.path().starts_with("/subscriptions")
        {
            0
        } else if url.path().starts_with("/keys/") {
            2
        } else {
            1
        }
    }
}

#[async_trait::async_trait]
impl Policy for CountThrottled {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let service = self.service(request);
        let response = next[0].send(ctx, request, &next[1..]).await;
        if let Ok(r) = &response {
            let status = u16::from(r.status());
            if status == 429 || status == 503 {
                THROTTLED[service].fetch_add(1, Ordering::Relaxed);
            }
        }
        response
    }
}

/// The longest wait a service may ask for between tries (Retry-After,
/// retry-after-ms, x-ms-retry-after-ms): ARM's own throttling asks for
/// seconds; an answer asking for days is broken or hostile, and a job must
/// not wait on it (issue 25).
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What the last try of a request was answered (a request's context may
/// carry one): what a deadline's error names.
#[derive(Clone, Debug, Default)]
pub struct LastAnswer(Arc<std::sync::Mutex<Option<String>>>);

impl LastAnswer {
    pub fn set(&self, what: String) {
        *self.0.lock().expect("last answer") = Some(what);
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().expect("last answer").clone()
    }
}

/// Caps the waits a 429 or 503 asks for at `MAX_RETRY_AFTER` before the
/// retry policy reads them.
#[derive(Debug)]
pub struct CapRetryAfter;

impl CapRetryAfter {
    pub fn policy() -> Arc<dyn Policy> {
        Arc::new(CapRetryAfter)
    }
}

/// The capped value of a retry header, when it asks for more than the cap.
fn capped(name: &str, value: &str) -> Option<String> {
    let max = MAX_RETRY_AFTER;
    let value = value.trim();
    if name.ends_with("-ms") {
        let ms: u128 = value.parse().ok()?;
        return (ms > max.as_millis()).then(|| max.as_millis().to_string());
    }
    match value.parse::<u64>() {
        Ok(s) => (s > max.as_secs()).then(|| max.as_secs().to_string()),
        // An HTTP date: too far ahead is capped too (a date in the past or
        // one that does not parse is the retry policy's to read).
        Err(_) => {
            let at =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            (at - time::OffsetDateTime::now_utc() > time::Duration::try_from(max).ok()?)
                .then(|| max.as_secs().to_string())
        }
    }
}

#[async_trait::async_trait]
impl Policy for CapRetryAfter {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        use azure_core::http::headers::HeaderName;
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let status = u16::from(response.status());
        let last = ctx.value::<LastAnswer>();
        if status != 429 && status != 503 {
            if let Some(l) = last {
                l.set(format!("HTTP {status}"));
            }
            return Ok(response);
        }
        let names = ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"];
        if let Some(l) = last {
            let asked = response
                .headers()
                .get_optional_str(&HeaderName::from_static("retry-after"))
                .map(|v| format!(" asking to wait {v} s (waits are capped at a minute)"))
                .unwrap_or_default();
            l.set(format!("HTTP {status}{asked}"));
        }
        let fixes: Vec<(&str, String)> = names
            .iter()
            .filter_map(|n| {
                let v = response
                    .headers()
                    .get_optional_str(&HeaderName::from_static(n))?;
                Some((*n, capped(n, v)?))
            })
            .collect();
        if fixes.is_empty() {
            return Ok(response);
        }
        let (status, mut headers, body) = response.deconstruct();
        for (name, value) in fixes {
            tracing::warn!(
                header = name,
                "a throttling answer asked for a wait longer than a minute: capped"
            );
            headers.insert(HeaderName::from_static(name), value);
        }
        Ok(azure_core::http::AsyncRawResponse::new(
            status,
            headers,
            Box::pin(body),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_beyond_a_minute_are_capped() {
        assert_eq!(capped("retry-after", "1000000000").as_deref(), Some("60"));
        assert_eq!(capped("retry-after", "15"), None);
        assert_eq!(
            capped("retry-after-ms", "999999999").as_deref(),
            Some("60000")
        );
        assert_eq!(capped("x-ms-retry-after-ms", "500"), None);
        assert_eq!(
            capped("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT").as_deref(),
            Some("60")
        );
        assert_eq!(capped("retry-after", "not a wait"), None);
    }
}
