//! Talking to a running adfdr-agent through its control socket (HTTP/1.0
//! with JSON on a Unix socket). Commands that the agent also runs (backup,
//! verify, prune, status) go through it when it answers, so one process owns
//! the catalog and the factories' leases.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use adfdr_core::config::Config;
use adfdr_core::ops::OpError;
use serde_json::Value;

/// A job the agent finished: its verdict, one line, and its report.
pub struct Done {
    pub ok: bool,
    pub outcome: String,
    pub result: Value,
}

pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    /// The agent, when its socket accepts a connection.
    pub fn find(config: &Config) -> Option<Agent> {
        let socket = config.agent.socket.clone();
        UnixStream::connect(&socket).ok()?;
        Some(Agent { socket })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), OpError> {
        let fail = |e: std::io::Error| {
            OpError::Failed(format!(
                "agent control socket {}: {e}",
                self.socket.display()
            ))
        };
        let mut s = UnixStream::connect(&self.socket).map_err(fail)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(fail)?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: adfdr-agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(fail)?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).map_err(fail)?;
        let status = reply
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let json = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok((status, serde_json::from_str(json).unwrap_or(Value::Null)))
    }

    /// Asks the agent to run `job` for `factory` now (with the job's
    /// options) and waits for the result.
    pub async fn run(
        &self,
        factory: &str,
        job: &str,
        force: bool,
        options: &Value,
    ) -> Result<Done, OpError> {
        let (status, reply) = self.call(
            "POST",
            "/run",
            Some(
                &serde_json::json!({"factory": factory, "job": job, "force": force, "options": options}),
            ),
        )?;
        if status != 202 {
            return Err(OpError::Failed(format!(
                "the agent refused to run {job} for {factory}: {}",
                reply["error"].as_str().unwrap_or("no reason given")
            )));
        }
        let id = reply["id"].as_str().unwrap_or_default().to_string();
        loop {
            let (_, run) = self.call("GET", &format!("/runs/{id}"), None)?;
            if run["state"] == "done" {
                return Ok(Done {
                    ok: run["ok"] == true,
                    outcome: run["outcome"].as_str().unwrap_or_default().to_string(),
                    result: run["result"].clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
