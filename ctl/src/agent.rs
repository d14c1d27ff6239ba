//! Talking to a running adfdr-agent through its control socket: HTTP/1.1
//! (hyper) over tokio's UnixStream, every body a type of
//! `adfdr_core::ops::contract`. Commands the agent also runs (backup,
//! verify, prune, drill, status) go through it when it answers, so one
//! process owns the catalog and the factories' leases.

use std::path::{Path, PathBuf};
use std::time::Duration;

use adfdr_core::config::Config;
use adfdr_core::ops::OpError;
use adfdr_core::ops::contract::{
    Accepted, Job, JobOutcome, Phase, Refusal, RunRequest, RunState, StatusReply,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::de::DeserializeOwned;

/// No answer from the socket within this is an error, not a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    /// The agent, when its socket accepts a connection.
    pub fn find(config: &Config) -> Option<Agent> {
        let socket = config.agent.socket.clone();
        std::os::unix::net::UnixStream::connect(&socket).ok()?;
        Some(Agent { socket })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn fail(&self, what: impl std::fmt::Display) -> OpError {
        OpError::failed(format!(
            "agent control socket {}: {what}",
            self.socket.display()
        ))
    }

    /// One request; the status and the body's bytes.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), OpError> {
        let call = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|e| self.fail(e))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| self.fail(e))?;
            tokio::spawn(conn);
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "adfdr-agent")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| self.fail(e))?;
            let reply = sender
                .send_request(request)
                .await
                .map_err(|e| self.fail(e))?;
            let status = reply.status().as_u16();
            let bytes = reply
                .into_body()
                .collect()
                .await
                .map_err(|e| self.fail(e))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| self.fail(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))?
    }

    /// A typed answer, or the agent's refusal as an error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        want: u16,
    ) -> Result<T, OpError> {
        let (status, bytes) = self.send(method, path, body).await?;
        if status != want {
            let why = serde_json::from_slice::<Refusal>(&bytes)
                .map(|r| r.error)
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(if status == 404 || status == 400 {
                OpError::usage(format!("the agent refused: {why}"))
            } else {
                OpError::failed(format!("the agent refused: {why}"))
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            self.fail(format!(
                "{method} {path}: an answer that is not the contract's ({e})"
            ))
        })
    }

    pub async fn status(&self) -> Result<StatusReply, OpError> {
        self.call("GET", "/status", None, 200).await
    }

    /// Asks the agent to run `job` for `factory` now and waits for it.
    pub async fn run(&self, factory: &str, job: Job) -> Result<JobOutcome, OpError> {
        let request = RunRequest {
            factory: factory.to_string(),
            job,
        };
        let body = serde_json::to_vec(&request).expect("a request serializes");
        let accepted: Accepted = self.call("POST", "/run", Some(body), 202).await?;
        loop {
            let run: RunState = self
                .call("GET", &format!("/runs/{}", accepted.id), None, 200)
                .await?;
            if run.state == Phase::Done {
                return run
                    .outcome
                    .ok_or_else(|| self.fail("a finished run without an outcome"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
