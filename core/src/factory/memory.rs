//! An in-memory factory behind `FactoryApi`, for unit tests of the use cases
//! where a real process adds nothing: PUT stores a body (with an `etag`),
//! GET answers it or 404, DELETE removes it, a GET of a collection lists its
//! children in one page, POST answers `{}`. Every request is recorded. It
//! checks nothing else: the emulator is the referee of the service's rules.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use azure_core::http::Method;
use serde_json::{Value, json};

use super::{Answer, ArmError, FactoryApi};

#[derive(Debug, Default)]
pub struct MemoryFactory {
    /// Lowercased path (no query) -> body.
    items: Mutex<BTreeMap<String, Value>>,
    /// Every request, as "METHOD path".
    pub log: Mutex<Vec<String>>,
    /// Paths (lowercased, substring) whose PUT fails with 400.
    pub refuse_put: Mutex<Vec<String>>,
    /// POSTs of `start`/`stop` answer 202 and poll as the service does: this
    /// many InProgress answers, then Succeeded (or Failed with the code).
    lro: Mutex<Option<(usize, Option<String>)>>,
}

fn path_of(path_or_url: &str) -> String {
    let path = match path_or_url.find("/subscriptions/") {
        Some(i) => &path_or_url[i..],
        None => path_or_url,
    };
    path.split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_lowercase()
}

impl MemoryFactory {
    pub fn new() -> Self {
        Self::default()
    }

    /// What is stored at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.items
            .lock()
            .expect("items")
            .get(&path_of(path))
            .cloned()
    }

    /// Stores `body` at `path` (seeding a test).
    pub fn put(&self, path: &str, body: Value) {
        self.items
            .lock()
            .expect("items")
            .insert(path_of(path), body);
    }

    /// Removes what is stored at `path` (a test deleting behind the use case).
    pub fn remove(&self, path: &str) {
        self.items.lock().expect("items").remove(&path_of(path));
    }

    /// Makes start/stop long-running (see `lro`).
    pub fn long_running(&self, in_progress: usize, fail: Option<&str>) {
        *self.lro.lock().expect("lro") = Some((in_progress, fail.map(str::to_string)));
    }

    /// The long-running answers, when `long_running` was set and `path` is one.
    fn long_running_answer(&self, method: &Method, path: &str) -> Option<Answer> {
        let mut lro = self.lro.lock().expect("lro");
        let (left, fail) = lro.as_mut()?;
        let state = |done: bool| {
            let verb = if path.contains("/stop/") {
                "Stopped"
            } else {
                "Started"
            };
            json!({"name": "ir", "properties": {"state": if done { verb } else { "Starting" }}})
        };
        if *method == Method::Post && (path.ends_with("/start") || path.ends_with("/stop")) {
            return Some(Answer {
                status: 202,
                body: Vec::new(),
                async_operation: Some(format!("{path}/operationstatuses/op1")),
                location: Some(format!("{path}/operationresults/op1")),
                retry_after: None,
            });
        }
        if *method == Method::Get && path.contains("/operationstatuses/") {
            let body = if *left > 0 {
                *left -= 1;
                json!({"status": "InProgress", "name": "op1", "properties": null, "error": null})
            } else if let Some(code) = fail {
                json!({"status": "Failed", "name": "op1", "properties": null,
                       "error": {"code": code, "message": "refused by the test"}})
            } else {
                json!({"status": "Succeeded", "name": "op1", "properties": state(true), "error": null})
            };
            return Some(Answer::new(200, serde_json::to_vec(&body).expect("json")));
        }
        if *method == Method::Get && path.contains("/operationresults/") {
            let body = state(*left == 0 && fail.is_none());
            let status = if *left == 0 { 200 } else { 202 };
            return Some(Answer::new(
                status,
                serde_json::to_vec(&body).expect("json"),
            ));
        }
        None
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    fn status(method: &Method, url: &str, status: u16, code: &str, message: &str) -> ArmError {
        ArmError::Status {
            method: method.to_string(),
            url: url.to_string(),
            status,
            code: code.to_string(),
            message: message.to_string(),
        }
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ArmError> {
        let mut items = self.items.lock().expect("items");
        match *method {
            Method::Put => {
                if self
                    .refuse_put
                    .lock()
                    .expect("refuse")
                    .iter()
                    .any(|p| path.contains(p))
                {
                    return Err(Self::status(
                        method,
                        url,
                        400,
                        "BadRequest",
                        "refused by the test",
                    ));
                }
                let mut stored = body.cloned().unwrap_or(Value::Null);
                if let Some(map) = stored.as_object_mut() {
                    map.insert("name".into(), json!(path.rsplit('/').next().unwrap_or("")));
                    map.insert("etag".into(), json!(uuid::Uuid::new_v4().to_string()));
                }
                items.insert(path.to_string(), stored.clone());
                Ok((200, stored))
            }
            Method::Delete => Ok((
                if items.remove(path).is_some() {
                    200
                } else {
                    204
                },
                Value::Null,
            )),
            Method::Get => {
                if let Some(v) = items.get(path) {
                    return Ok((200, v.clone()));
                }
                let prefix = format!("{path}/");
                let children: Vec<Value> = items
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                let parent = path
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                if children.is_empty() && !items.contains_key(&parent) {
                    return Err(Self::status(
                        method,
                        url,
                        404,
                        "ResourceNotFound",
                        "not found",
                    ));
                }
                Ok((200, json!({ "value": children })))
            }
            _ => Ok((200, json!({}))),
        }
    }
}

#[async_trait]
impl FactoryApi for MemoryFactory {
    async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ArmError> {
        let path = path_of(path_or_url);
        self.log
            .lock()
            .expect("log")
            .push(format!("{method} {path}"));
        if let Some(answer) = self.long_running_answer(&method, &path) {
            return Ok(answer);
        }
        let (status, value) = self.answer(&method, &path, path_or_url, body)?;
        let bytes = if value.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&value).expect("json")
        };
        Ok(Answer::new(status, bytes))
    }
}
