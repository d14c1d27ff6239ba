//! The `--json` contract (docs/JSON.md): every command prints one JSON
//! object on stdout whose `schema` names it (`adfdr.<command>.v1`) and whose
//! fields are a typed output struct; `adfdr schema COMMAND` prints the JSON
//! Schema generated from that struct. An error is `adfdr.error.v1`.

use schemars::JsonSchema;
use serde::Serialize;

/// An output with its schema name in front.
#[derive(Serialize, JsonSchema)]
pub struct Output<'a, T: Serialize + JsonSchema> {
    /// `adfdr.<command>.v1`.
    pub schema: String,
    #[serde(flatten)]
    pub body: &'a T,
}

/// The schema name of a command's output.
pub fn schema_name(command: &str) -> String {
    format!("adfdr.{command}.v1")
}

/// Prints `body` as `command`'s JSON output.
pub fn emit<T: Serialize + JsonSchema>(command: &str, body: &T) {
    let out = Output {
        schema: schema_name(command),
        body,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("outputs serialize")
    );
}

/// The JSON Schema of `command`'s output: the output type with `schema`.
pub fn schema_of<T: Serialize + JsonSchema + 'static>(command: &str) -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Output<'static, T>)).expect("schemas serialize");
    schema["title"] = serde_json::Value::String(schema_name(command));
    // The body's own description, not the envelope's.
    let body = serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialize");
    schema["description"] = body["description"].clone();
    schema["properties"]["schema"] = serde_json::json!({"const": schema_name(command)});
    schema
}

/// `--json` when a command fails (schema `adfdr.error.v1`); the exit code
/// is the command's as without --json.
#[derive(Serialize, JsonSchema)]
pub struct ErrorOutput {
    pub error: ErrorBody,
}

#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    pub kind: adfdr_core::ops::Kind,
    pub message: String,
    /// What to do next, where the message does not say it.
    pub hint: Option<String>,
    /// For a refusal: the role the principal lacks, and on which scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<adfdr_core::ops::Grant>,
    /// The same command, later, may succeed.
    pub retryable: bool,
}

pub fn error(e: &adfdr_core::ops::OpError) {
    emit(
        "error",
        &ErrorOutput {
            error: ErrorBody {
                kind: e.kind(),
                message: e.to_string(),
                hint: e.hint(),
                grant: e.grant(),
                retryable: e.retryable(),
            },
        },
    );
}
