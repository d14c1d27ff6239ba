//! Data Factory adapters: the `FactoryApi` trait the use cases depend on (one
//! primitive, a request; lists, paging, JSON and long-running operations on
//! top of it), its ARM client, and an in-memory factory for unit tests of the
//! use cases.

pub mod arm;
pub mod budget;
pub mod lro;
pub mod memory;

use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Method;
use serde_json::Value;

pub use arm::{ArmClient, ArmError};

/// A successful answer: its status, its body as it came, and the headers of
/// a long-running operation (ARM's `Azure-AsyncOperation`, `Location`,
/// `Retry-After`).
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub async_operation: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Answer {
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Answer {
            status,
            body,
            ..Default::default()
        }
    }

    /// 201 or 202 with somewhere to poll: the work goes on after the answer.
    pub fn is_long_running(&self) -> bool {
        matches!(self.status, 201 | 202)
            && (self.async_operation.is_some() || self.location.is_some())
    }
}

/// The ARM surface of Data Factory, as the use cases see it.
#[async_trait]
pub trait FactoryApi: Send + Sync {
    /// Sends one request to a path (`/subscriptions/...`) or an absolute URL
    /// (a nextLink, a polling URL); returns the answer (a success), or the
    /// service's error.
    async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ArmError>;

    /// How many 429s the service has answered so far, also those a retry
    /// policy waited out unseen (0 where nothing counts them).
    fn throttled(&self) -> u64 {
        0
    }

    /// `agents` share this principal's ARM budget from now on (a client
    /// that keeps no budget ignores it).
    fn set_share(&self, _agents: usize) {}
}

#[async_trait]
impl FactoryApi for ArmClient {
    async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ArmError> {
        ArmClient::request(self, method, path_or_url, body).await
    }

    fn throttled(&self) -> u64 {
        ArmClient::throttled(self)
    }

    fn set_share(&self, agents: usize) {
        self.budget.set_share(agents);
    }
}

impl dyn FactoryApi + '_ {
    /// Sends one request; returns the status and the body as it came.
    pub async fn send_raw(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), ArmError> {
        let answer = self.request(method, path_or_url, body).await?;
        Ok((answer.status, answer.body))
    }

    /// Sends one request; returns the status and the JSON body (Null when empty).
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ArmError> {
        let (status, bytes) = self.send_raw(method, path_or_url, body).await?;
        if bytes.is_empty() {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| ArmError::Body {
            method: method.to_string(),
            url: path_or_url.to_string(),
            detail: e.to_string(),
        })?;
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ArmError> {
        Ok(self.send(Method::Get, path, None).await?.1)
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ArmError> {
        Ok(self.send(Method::Put, path, Some(body)).await?.1)
    }

    /// Returns whether something was deleted (200) rather than already absent (204).
    pub async fn delete(&self, path: &str) -> Result<bool, ArmError> {
        Ok(self.send(Method::Delete, path, None).await?.0 == 200)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ArmError> {
        Ok(self.send(Method::Post, path, Some(body)).await?.1)
    }

    /// Every item of a list, following nextLink to the last page (at most
    /// `MAX_PAGES`, none twice).
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, ArmError> {
        let mut items = Vec::new();
        self.list_each(path, |item| items.push(item)).await?;
        Ok(items)
    }

    /// Hands each item of a list to `each` as the bytes ARM answered, page by
    /// page (no value trees: `model::raw` canonicalizes them).
    pub async fn list_each_raw(
        &self,
        path: &str,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), ArmError> {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            value: Option<Vec<&'a serde_json::value::RawValue>>,
            #[serde(rename = "nextLink", default)]
            next_link: Option<String>,
        }
        let mut next = Some(path.to_string());
        let mut pages = Pages::default();
        while let Some(link) = next.take() {
            pages.next(&link)?;
            let (_, bytes) = self.send_raw(Method::Get, &link, None).await?;
            let body_error = |detail: String| ArmError::Body {
                method: "GET".into(),
                url: link.clone(),
                detail,
            };
            let page: Page =
                serde_json::from_slice(&bytes).map_err(|e| body_error(e.to_string()))?;
            // A page without a `value` array is not an empty list: treating it
            // as one would back up a factory with resources silently missing.
            let Some(values) = page.value else {
                return Err(body_error("a list page without a \"value\" array".into()));
            };
            for item in values {
                each(item.get().as_bytes());
            }
            next = page.next_link.filter(|s| !s.is_empty());
        }
        Ok(())
    }

    /// Hands each item of a list to `each` as its page arrives (one page in
    /// memory at a time).
    pub async fn list_each(&self, path: &str, mut each: impl FnMut(Value)) -> Result<(), ArmError> {
        let mut next = Some(path.to_string());
        let mut pages = Pages::default();
        while let Some(link) = next.take() {
            pages.next(&link)?;
            let mut page = self.get(&link).await?;
            // A page without a `value` array is not an empty list: treating it
            // as one would back up a factory with resources silently missing.
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => values.into_iter().for_each(&mut each),
                _ => {
                    return Err(ArmError::Body {
                        method: "GET".into(),
                        url: link.clone(),
                        detail: "a list page without a \"value\" array".into(),
                    });
                }
            }
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        Ok(())
    }
}

/// The most pages a list is followed through: Data Factory allows 5,000
/// resources in a factory; a nextLink chain longer than this is the
/// service's bug, or a hostile answer, not a list (Azure/azure-cli#28632:
/// ARM once answered empty pages with a new nextLink without end).
pub const MAX_PAGES: usize = 5_000;

/// The pages of one list followed so far: a nextLink that leads back to a
/// page already read, or one page too many, is an error that names it.
#[derive(Default)]
pub struct Pages {
    seen: std::collections::HashSet<String>,
}

impl Pages {
    pub fn next(&mut self, link: &str) -> Result<(), ArmError> {
        let body = |detail: String| ArmError::Body {
            method: "GET".into(),
            url: link.to_string(),
            detail,
        };
        if !self.seen.insert(link.to_string()) {
            return Err(body(
                "the list's nextLink leads back to a page already read: a loop, not a list".into(),
            ));
        }
        if self.seen.len() > MAX_PAGES {
            return Err(body(format!(
                "the list goes on past {MAX_PAGES} pages: more than a factory can hold; given up"
            )));
        }
        Ok(())
    }
}
