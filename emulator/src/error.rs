//! Errors in the shapes Azure answers with.

use serde_json::{Value, json};

/// An error answer: ARM's `CloudError` (`{"error": {"code", "message"}}`) unless
/// `body` overrides it (Entra answers in OAuth's own shape).
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `error.target`: the resource the error is about (ARM puts its id there).
    pub target: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            target: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(404, code, message)
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(Box::new(body));
        self
    }

    pub fn body(&self) -> Value {
        self.body.as_deref().cloned().unwrap_or_else(|| {
            json!({"error": {"code": self.code, "message": self.message, "target": self.target, "details": null}})
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;
