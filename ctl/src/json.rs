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
                hint: e.hint().map(str::to_string),
                retryable: e.retryable(),
            },
        },
    );
}

/// Every command's output schema, by name (`adfdr schema` prints them).
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("backup", schema_of::<crate::backup::BackupOutput>("backup")),
        (
            "snapshots",
            schema_of::<crate::snapshots::SnapshotsOutput>("snapshots"),
        ),
        ("show", schema_of::<crate::show::ShowOutput>("show")),
        ("diff", schema_of::<crate::diff::DiffOutput>("diff")),
        ("export", schema_of::<crate::export::ExportOutput>("export")),
        (
            "verify",
            schema_of::<crate::verify::VerifyOutput<'static>>("verify"),
        ),
        ("status", schema_of::<crate::status::StatusOutput>("status")),
        ("prune", schema_of::<crate::prune::PruneOutput>("prune")),
        (
            "restore",
            schema_of::<crate::restore::RestoreOutput>("restore"),
        ),
        ("drill", schema_of::<crate::drill::DrillOutput>("drill")),
        ("drills", schema_of::<crate::drill::DrillsOutput>("drills")),
        (
            "key-generate",
            schema_of::<crate::key::KeyOutput>("key-generate"),
        ),
        (
            "config-check",
            schema_of::<crate::check::CheckOutput>("config-check"),
        ),
        (
            "catalog-rebuild",
            schema_of::<adfdr_core::ops::catalog::Rebuilt>("catalog-rebuild"),
        ),
        ("demo", schema_of::<crate::demo::DemoOutput>("demo")),
        ("error", schema_of::<ErrorOutput>("error")),
    ]
}

#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    /// One command's output (e.g. `status`, `config-check`); all when absent.
    command: Option<String>,
}

/// `adfdr schema [COMMAND]`: the JSON Schema of a command's `--json` output.
pub fn run(args: SchemaArgs) -> Result<i32, adfdr_core::ops::OpError> {
    let all = schemas();
    let value = match &args.command {
        None => {
            serde_json::Value::Object(all.into_iter().map(|(n, s)| (schema_name(n), s)).collect())
        }
        Some(c) => all
            .into_iter()
            .find(|(n, _)| n == c)
            .map(|(_, s)| s)
            .ok_or_else(|| {
                adfdr_core::ops::OpError::usage(format!(
                    "no command '{c}' has a --json output; known: {}",
                    schemas()
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    println!("{}", serde_json::to_string_pretty(&value).expect("json"));
    Ok(crate::exit::OK)
}
