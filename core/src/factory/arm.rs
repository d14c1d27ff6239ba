//! A thin, lossless client for the Data Factory ARM API on azure_core's
//! pipeline: bearer tokens from any `TokenCredential`, azure_core's retry policy
//! (which honours `Retry-After` on 429 and 503), nextLink paging followed to the
//! end. Bodies stay `serde_json::Value`: real definitions carry properties no
//! typed model knows.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineStreamOptions, Request, Url,
};
use serde_json::Value;

pub const API_VERSION: &str = "2018-06-01";

/// The largest answer read. Data Factory's documented limits (Learn, "Azure
/// Data Factory limits") put a pipeline at 200 KB and a dataset or linked
/// service at 2 MB at most; a list page of them is a few MB, and data flows
/// of 7 MB are seen. A bigger answer is refused, not held in memory.
pub const MAX_ANSWER: usize = 32 << 20;

/// Every try of one request, the waits between them and its answer, within
/// this (issue 25: a `Retry-After` of years or an answer dripped a byte at a
/// time held a job for ever).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

enum Capped {
    Transport(azure_core::Error),
    TooLarge,
}

/// The body, refused once it grows past `max`.
async fn read_capped(
    mut body: azure_core::http::response::AsyncResponseBody,
    max: usize,
    expected: usize,
) -> Result<Vec<u8>, Capped> {
    use futures::StreamExt;
    let mut out = Vec::with_capacity(expected);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Capped::Transport)?;
        if out.len() + chunk.len() > max {
            return Err(Capped::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// An ARM call that did not succeed, with what an operator needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("{method} {url} failed with HTTP {status} {code}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{method} {url} could not be sent: {detail}")]
    Transport {
        method: String,
        url: String,
        /// The whole error chain: the outer error alone often says only
        /// "will not be retried".
        detail: String,
        /// A token could not be obtained (sign-in failed), not a network error.
        credential: bool,
    },
    #[error(
        "cannot build an ARM request URL from '{path}' (endpoint {endpoint}): {detail}; check auth.arm_endpoint"
    )]
    Url {
        path: String,
        endpoint: String,
        detail: String,
    },
    #[error("{method} {url} answered with a body that is not JSON: {detail}")]
    Body {
        method: String,
        url: String,
        detail: String,
    },
    /// A long-running operation still running when adfdr stopped waiting.
    #[error(
        "{what} did not finish within {waited}: the service still says {last}; it may finish later (check it in the portal), then run again"
    )]
    Unfinished {
        what: String,
        waited: String,
        last: String,
    },
    /// A long-running operation that ended Failed or Canceled.
    #[error("{what} ended {status}: {code}: {message}")]
    OperationFailed {
        what: String,
        status: String,
        code: String,
        message: String,
    },
}

impl ArmError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// ARM said 429 (after the retry policy gave up).
    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }
}

/// An error and its sources, joined: "outer: cause: root cause".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Did the request fail because no token could be had?
pub fn is_credential_error(error: &azure_core::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(az) = e.downcast_ref::<azure_core::Error>()
            && matches!(az.kind(), azure_core::error::ErrorKind::Credential)
        {
            return true;
        }
        next = e.source();
    }
    false
}

pub struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
    deadline: std::time::Duration,
    throttled: Arc<std::sync::atomic::AtomicU64>,
    /// ARM's request budget, mirrored (every try, retries included, waits
    /// for its token).
    pub budget: Arc<super::budget::Budget>,
}

/// Waits for the request's token in the mirrored ARM budget.
#[derive(Debug)]
struct BudgetWait(Arc<super::budget::Budget>);

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for BudgetWait {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let kind = super::budget::Kind::of(request.method().as_str());
        let subscription = super::budget::subscription_of(request.url().path()).to_string();
        self.0.acquire(&subscription, kind).await;
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Counts every 429 the service sends, also the ones azure_core's retry
/// policy then waits out: how a caller learns it is going too fast.
#[derive(Debug)]
struct ThrottleWatch(Arc<std::sync::atomic::AtomicU64>);

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for ThrottleWatch {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let answer = next[0].send(ctx, request, &next[1..]).await;
        if let Ok(r) = &answer
            && u16::from(r.status()) == 429
        {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        answer
    }
}

impl ArmClient {
    /// `endpoint` is the ARM root (`https://management.azure.com`); bearer auth needs https.
    pub fn new(
        endpoint: Url,
        credential: Arc<dyn TokenCredential>,
        options: ClientOptions,
    ) -> Self {
        let auth = Arc::new(BearerTokenAuthorizationPolicy::new(credential, [ARM_SCOPE]));
        let throttled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watch = Arc::new(ThrottleWatch(throttled.clone()));
        let budget = super::budget::shared();
        let wait = Arc::new(BudgetWait(budget.clone()));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth, wait, watch],
            None,
        );
        ArmClient {
            pipeline,
            endpoint,
            deadline: REQUEST_DEADLINE,
            throttled,
            budget,
        }
    }

    /// The same client with another per-request deadline.
    pub fn with_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// 429s the service has sent this client so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves a path (`/subscriptions/...`) or an absolute URL (a nextLink,
    /// a polling URL). An absolute URL must be on the ARM endpoint itself: a
    /// token is never sent to a host an answer names.
    fn url(&self, path_or_url: &str) -> Result<Url, ArmError> {
        let absolute = path_or_url.starts_with("https://") || path_or_url.starts_with("http://");
        let mut url = if absolute {
            Url::parse(path_or_url)
        } else {
            self.endpoint.join(path_or_url)
        }
        .map_err(|e| ArmError::Url {
            path: path_or_url.into(),
            endpoint: self.endpoint.to_string(),
            detail: e.to_string(),
        })?;
        if absolute && url.origin() != self.endpoint.origin() {
            return Err(ArmError::Url {
                path: path_or_url.into(),
                endpoint: self.endpoint.to_string(),
                detail: "an answer pointed at another host; adfdr sends its token only to the ARM endpoint".into(),
            });
        }
        if !url.query_pairs().any(|(k, _)| k == "api-version") {
            url.query_pairs_mut()
                .append_pair("api-version", API_VERSION);
        }
        Ok(url)
    }

    /// Sends one request; returns the answer (a success), or the service's
    /// error.
    pub async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<super::Answer, ArmError> {
        let url = self.url(path_or_url)?;
        let shown = url.to_string();
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(serde_json::to_vec(body).unwrap_or_default());
        }
        let options = PipelineStreamOptions {
            skip_checks: true,
            ..Default::default()
        };
        let transport = |source: azure_core::Error| ArmError::Transport {
            method: method.to_string(),
            url: shown.clone(),
            credential: is_credential_error(&source),
            detail: error_chain(&source),
        };
        // One deadline for the whole request: every try, every wait between
        // them and the answer's body (a server that drips its answer, or
        // asks to be retried for ever, does not hold a job).
        let seen = crate::telemetry::LastAnswer::default();
        let ctx = Context::new().with_value(seen.clone());
        let answered = tokio::time::timeout(self.deadline, async {
            let response = self
                .pipeline
                .stream(&ctx, &mut request, Some(options))
                .await
                .map_err(transport)?;
            let (status, headers, body) = response.deconstruct();
            seen.set(format!("HTTP {}, its body still arriving", u16::from(status)));
            // Sized once from Content-Length (within the cap): a big page
            // is not copied over and over as it grows.
            let expected = headers
                .get_optional_str(&HeaderName::from_static("content-length"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0)
                .min(MAX_ANSWER);
            let bytes = read_capped(body, MAX_ANSWER, expected).await.map_err(|e| match e {
                Capped::Transport(e) => transport(e),
                Capped::TooLarge => ArmError::Body {
                    method: method.to_string(),
                    url: shown.clone(),
                    detail: format!(
                        "the answer is larger than {} MiB, more than any ARM answer within Data Factory's limits: refused",
                        MAX_ANSWER >> 20
                    ),
                },
            })?;
            Ok::<_, ArmError>((status, headers, bytes))
        })
        .await
        .map_err(|_| ArmError::Transport {
            method: method.to_string(),
            url: shown.clone(),
            credential: false,
            detail: format!(
                "no complete answer within {} s (tries and waits included; auth.request_deadline): {}; given up",
                self.deadline.as_secs(),
                seen.get()
                    .map_or("no answer at all".to_string(), |s| format!("the last answer was {s}"))
            ),
        })??;
        let (status, headers, bytes) = answered;
        let status = u16::from(status);
        let header = |name: &'static str| {
            headers
                .get_optional_str(&HeaderName::from_static(name))
                .map(str::to_string)
        };
        let async_operation = header("azure-asyncoperation");
        let location = header("location");
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        if (200..300).contains(&status) || status == 304 {
            Ok(super::Answer {
                status,
                body: bytes.to_vec(),
                async_operation,
                location,
                retry_after,
            })
        } else {
            Err(status_error(&method, shown, status, &bytes))
        }
    }
}

/// ARM's error answer: its code and message, or the start of a body that is
/// not ARM's JSON (a proxy's HTML page is still an HTTP error).
fn status_error(method: &Method, url: String, status: u16, bytes: &[u8]) -> ArmError {
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let code = value
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
        .to_string();
    let message = value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(bytes);
            match text.trim() {
                "" => "(no message)".to_string(),
                t => t.chars().take(200).collect(),
            }
        });
    ArmError::Status {
        method: method.to_string(),
        url,
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoCredential;

    #[async_trait::async_trait]
    impl TokenCredential for NoCredential {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "unused",
            ))
        }
    }

    fn client() -> ArmClient {
        let endpoint = Url::parse("https://management.azure.com").expect("url");
        ArmClient::new(endpoint, Arc::new(NoCredential), ClientOptions::default())
    }

    #[test]
    fn paths_get_the_api_version_and_next_links_keep_theirs() {
        let c = client();
        let url = c
            .url("/subscriptions/s/providers/Microsoft.DataFactory/factories")
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/s/providers/Microsoft.DataFactory/factories?api-version=2018-06-01"
        );
        let next = c
            .url("https://management.azure.com/x?api-version=2018-06-01&$skipToken=abc")
            .expect("url");
        assert_eq!(
            next.query_pairs()
                .filter(|(k, _)| k == "api-version")
                .count(),
            1
        );
    }

    #[test]
    fn an_unbuildable_url_says_so_and_names_the_setting() {
        let err = client().url("https://[bad").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ArmError::Url { .. }), "{text}");
        assert!(
            text.contains("auth.arm_endpoint") && !text.contains("not JSON"),
            "{text}"
        );
    }
}
