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
