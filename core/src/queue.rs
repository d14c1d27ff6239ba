//! The Storage Queue an Event Grid subscription fills with ARM's events
//! (issue 18): receive, delete, put (the poison queue) and create, over
//! azure_core's pipeline with an Entra bearer token (scope
//! `https://storage.azure.com/.default`: no account keys, no SAS). The REST
//! surface is Azure Storage's Queue service (x-ms-version 2021-08-06); the
//! SDK has no queue crate at the versions adfdr uses (docs/adr/0001).
//! An answer larger than 32 messages of 64 KiB is refused as not a queue's
//! (the transport's timeouts bound how long one is read).

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
/// Queue URLs are `url::Url`s (azure_core's re-export).
pub use azure_core::http::Url;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request};

pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const VERSION: &str = "2021-08-06";
/// Most messages one receive asks for (the service's own limit).
pub const BATCH: u32 = 32;
/// Largest answer read: 32 messages of 64 KiB, base64 and XML escaping
/// with room to spare.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// Needed to delete it (changes when it is received again).
    pub pop_receipt: String,
    /// How often it has been received, this time included.
    pub dequeue_count: u32,
    pub text: String,
    /// When it was put (RFC 1123, as the service says it).
    pub inserted: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue}: HTTP {status} {code}")]
    Status {
        queue: String,
        status: u16,
        code: String,
    },
    #[error("queue {queue} could not be reached: {detail}")]
    Unreachable { queue: String, detail: String },
    #[error("queue {queue} answered something that is not a message list: {detail}")]
    Answer { queue: String, detail: String },
}

impl QueueError {
    pub fn status(&self) -> Option<u16> {
        match self {
            QueueError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What capture needs of a queue (a trait so the agent's capture is tested
/// against an in-memory one too).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// The queue's URL, as configured (for logs).
    fn name(&self) -> &str;
    /// Up to `max` messages, each invisible to others for `visibility`.
    async fn receive(
        &self,
        max: u32,
        visibility: std::time::Duration,
    ) -> Result<Vec<Message>, QueueError>;
    /// Deletes a received message; a message already gone is not an error.
    async fn delete(&self, message: &Message) -> Result<(), QueueError>;
    /// Makes a received message visible again at once (for another reader).
    async fn release(&self, message: &Message) -> Result<(), QueueError> {
        self.hide(message, std::time::Duration::ZERO).await
    }
    /// Makes a received message visible again after `for_` (Update Message).
    async fn hide(&self, message: &Message, for_: std::time::Duration) -> Result<(), QueueError>;
    /// Puts a message (text as is).
    async fn put(&self, text: &str) -> Result<(), QueueError>;
    /// Creates the queue; one that exists is fine.
    async fn create(&self) -> Result<(), QueueError>;
}

pub struct QueueClient {
    pipeline: Pipeline,
    url: Url,
    shown: String,
}

impl QueueClient {
    /// `url` is `https://ACCOUNT.queue.core.windows.net/NAME` (or Azurite's
    /// `https://127.0.0.1:PORT/ACCOUNT/NAME`).
    pub fn new(url: Url, credential: Arc<dyn TokenCredential>, options: ClientOptions) -> Self {
        let auth = Arc::new(BearerTokenAuthorizationPolicy::new(
            credential,
            [STORAGE_SCOPE],
        ));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        let shown = url.to_string();
        QueueClient {
            pipeline,
            url,
            shown,
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<(u16, Vec<u8>), QueueError> {
        let mut request = Request::new(url, method);
        request.insert_header("x-ms-version", VERSION);
        if let Some(body) = body {
            request.insert_header("content-type", "application/xml");
            request.set_body(body.into_bytes());
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(|e| QueueError::Unreachable {
                queue: self.shown.clone(),
                detail: crate::factory::arm::error_chain(&e),
            })?;
        let status = u16::from(response.status());
        let bytes = response.into_body();
        if bytes.len() > MAX_ANSWER {
            return Err(QueueError::Answer {
                queue: self.shown.clone(),
                detail: format!("{} bytes, more than {MAX_ANSWER}", bytes.len()),
            });
        }
        if (200..300).contains(&status) {
            return Ok((status, bytes.to_vec()));
        }
        let text = String::from_utf8_lossy(&bytes);
        Err(QueueError::Status {
            queue: self.shown.clone(),
            status,
            code: tag(&text, "Code").unwrap_or_default(),
        })
    }

    fn messages_url(&self) -> Url {
        let mut url = self.url.clone();
        let path = format!("{}/messages", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

#[async_trait]
impl EventQueue for QueueClient {
    fn name(&self) -> &str {
        &self.shown
    }

    async fn receive(
        &self,
        max: u32,
        visibility: std::time::Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let mut url = self.messages_url();
        url.query_pairs_mut()
            .append_pair("numofmessages", &max.clamp(1, BATCH).to_string())
            .append_pair(
                "visibilitytimeout",
                &visibility.as_secs().clamp(1, 7 * 24 * 3600).to_string(),
            );
        let (_, body) = self.send(Method::Get, url, None).await?;
        parse_messages(&String::from_utf8_lossy(&body)).map_err(|detail| QueueError::Answer {
            queue: self.shown.clone(),
            detail,
        })
    }

    async fn delete(&self, message: &Message) -> Result<(), QueueError> {
        let mut url = self.messages_url();
        let path = format!("{}/{}", url.path(), message.id);
        url.set_path(&path);
        url.query_pairs_mut()
            .append_pair("popreceipt", &message.pop_receipt);
        match self.send(Method::Delete, url, None).await {
            Ok(_) => Ok(()),
            // Gone already (another reader, or its receipt expired and it
            // comes back to be read again): nothing to do here.
            Err(e) if matches!(e.status(), Some(404)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn hide(&self, message: &Message, for_: std::time::Duration) -> Result<(), QueueError> {
        // Update Message: the same text, visible again after `for_` (the
        // service allows up to seven days).
        let mut url = self.messages_url();
        let path = format!("{}/{}", url.path(), message.id);
        url.set_path(&path);
        let seconds = for_.as_secs().min(7 * 24 * 3600);
        url.query_pairs_mut()
            .append_pair("popreceipt", &message.pop_receipt)
            .append_pair("visibilitytimeout", &seconds.to_string());
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            escape(&message.text)
        );
        match self.send(Method::Put, url, Some(body)).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.status(), Some(404)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, text: &str) -> Result<(), QueueError> {
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            escape(text)
        );
        self.send(Method::Post, self.messages_url(), Some(body))
            .await
            .map(|_| ())
    }

    async fn create(&self) -> Result<(), QueueError> {
        match self.send(Method::Put, self.url.clone(), None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `…/NAME` → `…/NAME-poison`.
pub fn poison_url(url: &Url) -> Result<Url, String> {
    let mut out = url.clone();
    let path = url.path().trim_end_matches('/');
    let (head, name) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{url} names no queue"))?;
    if name.is_empty() {
        return Err(format!("{url} names no queue"));
    }
    out.set_path(&format!("{head}/{name}-poison"));
    Ok(out)
}

/// A Get Messages answer, read without an XML library: the service's
/// answer is flat (`QueueMessagesList` of `QueueMessage` elements of text).
pub fn parse_messages(xml: &str) -> Result<Vec<Message>, String> {
    if !xml.contains("QueueMessagesList") {
        return Err("no QueueMessagesList".into());
    }
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<QueueMessage>") {
        let after = &rest[start + "<QueueMessage>".len()..];
        let end = after
            .find("</QueueMessage>")
            .ok_or("an unterminated QueueMessage")?;
        let one = &after[..end];
        let field = |t: &str| tag(one, t).ok_or_else(|| format!("a message without {t}"));
        out.push(Message {
            id: field("MessageId")?,
            pop_receipt: field("PopReceipt")?,
            dequeue_count: field("DequeueCount")?
                .parse()
                .map_err(|_| "a DequeueCount that is not a number")?,
            text: tag(one, "MessageText").unwrap_or_default(),
            inserted: tag(one, "InsertionTime").unwrap_or_default(),
        });
        rest = &after[end..];
    }
    Ok(out)
}

/// The unescaped text of the first `<name>…</name>` in `xml`.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(&xml[start..end]))
}

const HTTP_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// A time as the service writes `InsertionTime` (RFC 1123).
pub fn http_date(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(HTTP_DATE)
        .unwrap_or_default()
}

/// `InsertionTime` read back (None when it is not an RFC 1123 date).
pub fn parse_http_date(text: &str) -> Option<time::OffsetDateTime> {
    time::PrimitiveDateTime::parse(text.trim(), HTTP_DATE)
        .ok()
        .map(|t| t.assume_utc())
}

/// The bytes `text` takes in a message body (XML-escaped): what the
/// service's 64 KiB limit counts.
pub fn message_size(text: &str) -> usize {
    text.len() + 4 * text.matches('&').count() + 3 * text.matches(['<', '>']).count()
}

/// The most a message adfdr puts may take (the service allows 64 KiB).
pub const MAX_PUT: usize = 48 * 1024;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An in-memory queue with the service's visibility rules, for tests of
/// what reads it.
#[derive(Default)]
pub struct MemoryQueue {
    state: std::sync::Mutex<MemoryState>,
    /// While set, every call fails as an unreachable queue would.
    pub down: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct MemoryState {
    next: u64,
    /// (id, receipt, dequeue count, text, visible again at, inserted)
    messages: Vec<(String, String, u32, String, std::time::Instant, String)>,
}

impl MemoryQueue {
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue").messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn texts(&self) -> Vec<String> {
        let state = self.state.lock().expect("queue");
        state.messages.iter().map(|m| m.3.clone()).collect()
    }

    /// Puts a message as if it had been put at `inserted`.
    pub fn put_at(&self, text: &str, inserted: time::OffsetDateTime) {
        let mut state = self.state.lock().expect("queue");
        state.next += 1;
        let id = format!("m{}", state.next);
        state.messages.push((
            id,
            String::new(),
            0,
            text.to_string(),
            std::time::Instant::now(),
            http_date(inserted),
        ));
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(QueueError::Unreachable {
                queue: "memory".into(),
                detail: "down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    fn name(&self) -> &str {
        "memory"
    }

    async fn receive(
        &self,
        max: u32,
        visibility: std::time::Duration,
    ) -> Result<Vec<Message>, QueueError> {
        self.check()?;
        let now = std::time::Instant::now();
        let mut state = self.state.lock().expect("queue");
        state.next += 1;
        let receipt = state.next.to_string();
        let mut out = Vec::new();
        for m in state.messages.iter_mut() {
            if out.len() as u32 >= max {
                break;
            }
            if m.4 <= now {
                m.1 = receipt.clone();
                m.2 += 1;
                m.4 = now + visibility;
                out.push(Message {
                    id: m.0.clone(),
                    pop_receipt: m.1.clone(),
                    dequeue_count: m.2,
                    text: m.3.clone(),
                    inserted: m.5.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, message: &Message) -> Result<(), QueueError> {
        self.check()?;
        let mut state = self.state.lock().expect("queue");
        state
            .messages
            .retain(|m| !(m.0 == message.id && m.1 == message.pop_receipt));
        Ok(())
    }

    async fn hide(&self, message: &Message, for_: std::time::Duration) -> Result<(), QueueError> {
        self.check()?;
        let mut state = self.state.lock().expect("queue");
        for m in state.messages.iter_mut() {
            if m.0 == message.id && m.1 == message.pop_receipt {
                m.4 = std::time::Instant::now() + for_;
            }
        }
        Ok(())
    }

    async fn put(&self, text: &str) -> Result<(), QueueError> {
        self.check()?;
        self.put_at(text, time::OffsetDateTime::now_utc());
        Ok(())
    }

    async fn create(&self) -> Result<(), QueueError> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_messages_answer_reads_with_its_escapes() {
        // The shape of Get Messages in the Queue service REST reference.
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList><QueueMessage><MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId><InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime><ExpirationTime>Fri, 16 Oct 2009 21:04:30 GMT</ExpirationTime><PopReceipt>YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw</PopReceipt><TimeNextVisible>Fri, 09 Oct 2009 23:29:20 GMT</TimeNextVisible><DequeueCount>2</DequeueCount><MessageText>{&quot;a&quot;:&lt;1&gt; &amp; &#x41;}</MessageText></QueueMessage></QueueMessagesList>";
        let m = parse_messages(xml).expect("parses");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].dequeue_count, 2);
        assert_eq!(m[0].text, "{\"a\":<1> & A}");
        assert_eq!(
            m[0].pop_receipt,
            "YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw"
        );
        assert!(
            parse_messages("<QueueMessagesList></QueueMessagesList>")
                .expect("empty")
                .is_empty()
        );
        assert!(parse_messages("<html>proxy</html>").is_err());
        assert!(
            parse_messages("<QueueMessagesList><QueueMessage><MessageId>x</MessageId>").is_err()
        );
    }

    #[test]
    fn the_poison_queue_sits_beside_the_queue() {
        let u = Url::parse("https://acct.queue.core.windows.net/adf-events").expect("url");
        assert_eq!(
            poison_url(&u).expect("poison").as_str(),
            "https://acct.queue.core.windows.net/adf-events-poison"
        );
        assert!(
            poison_url(&Url::parse("https://acct.queue.core.windows.net/").expect("url")).is_err()
        );
    }

    #[tokio::test]
    async fn the_memory_queue_hides_what_was_received_until_its_visibility_ends() {
        let q = MemoryQueue::default();
        q.put("a").await.expect("put");
        let got = q
            .receive(32, std::time::Duration::from_secs(60))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
        assert!(
            q.receive(32, std::time::Duration::from_secs(60))
                .await
                .expect("again")
                .is_empty()
        );
        q.delete(&got[0]).await.expect("delete");
        assert!(q.is_empty());
    }
}
