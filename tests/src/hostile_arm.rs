//! A hostile ARM endpoint for tests (issue 25): HTTPS on loopback with the
//! test certificate, a valid factory, empty lists for every kind, and one
//! list (pipelines) answered as the test asks: a 429 asking to wait for
//! years, a body dripped a byte at a time, a nextLink that points back at
//! itself, or a page far larger than any ARM answer. Written on raw TLS, not
//! hyper, so that it can misbehave the way a broken service does.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the pipelines list is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// 429 with `Retry-After: 1000000000`.
    RetryForever,
    /// 200, then the body one byte every 100 ms.
    Drip,
    /// `{"value": [], "nextLink": <this very URL>}`.
    LoopingNextLink,
    /// A 40 MiB page.
    Huge,
}

pub struct HostileArm {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileArm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileArm {
    pub async fn start(how: Misbehaviour) -> HostileArm {
        let dir = crate::tls_dir();
        let mut tls = adf_emulator::load_tls(&dir.join("server.pem"), &dir.join("server.key"))
            .expect("test certificate");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = format!("https://127.0.0.1:{port}");
        let base = url.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, base) = (acceptor.clone(), base.clone());
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = serve(&mut tls, how, &base).await;
                    }
                });
            }
        });
        HostileArm { url, task }
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    how: Misbehaviour,
    base: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("").to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .or_else(|| l.strip_prefix("Content-Length:"))
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    if path.ends_with("/factories/adf-hostile") {
        let factory = serde_json::json!({
            "name": "adf-hostile", "id": target.split('?').next().unwrap_or(""),
            "location": "westeurope",
            "properties": {"createTime": "2026-01-01T00:00:00Z", "provisioningState": "Succeeded"}
        });
        return answer(stream, 200, &[], factory.to_string().as_bytes()).await;
    }
    if !path.ends_with("/pipelines") {
        return answer(stream, 200, &[], br#"{"value": []}"#).await;
    }
    match how {
        Misbehaviour::RetryForever => {
            let body = br#"{"error": {"code": "TooManyRequests", "message": "wait"}}"#;
            answer(stream, 429, &[("Retry-After", "1000000000")], body).await
        }
        Misbehaviour::LoopingNextLink => {
            let page = serde_json::json!({"value": [], "nextLink": format!("{base}{target}")});
            answer(stream, 200, &[], page.to_string().as_bytes()).await
        }
        Misbehaviour::Huge => {
            let filler = "x".repeat(40 << 20);
            let page = format!(r#"{{"value": [], "padding": "{filler}"}}"#);
            answer(stream, 200, &[], page.as_bytes()).await
        }
        Misbehaviour::Drip => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\nconnection: close\r\n\r\n{\"value\": [";
            stream.write_all(head.as_bytes()).await?;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stream.write_all(b" ").await?;
                stream.flush().await?;
            }
        }
    }
}

async fn answer<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await
}
