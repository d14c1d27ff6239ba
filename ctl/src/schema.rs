//! `adfdr schema [COMMAND]`: every command's `--json` output schema, by
//! name (docs/JSON.md, docs/json/). Apart from `json`, which every command
//! uses to emit, so that no command module imports another through it.

use crate::json::{schema_name, schema_of};

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
        (
            "status-fleet",
            schema_of::<adfdr_core::ops::status::Fleet>("status-fleet"),
        ),
        ("prune", schema_of::<crate::prune::PruneOutput>("prune")),
        (
            "restore",
            schema_of::<crate::restore::RestoreOutput>("restore"),
        ),
        ("drill", schema_of::<crate::drill::DrillOutput>("drill")),
        ("drills", schema_of::<crate::drill::DrillsOutput>("drills")),
        ("log", schema_of::<crate::log::LogOutput>("log")),
        (
            "key-generate",
            schema_of::<crate::key::KeyOutput>("key-generate"),
        ),
        (
            "key-list",
            schema_of::<adfdr_core::ops::keyuse::KeyList>("key-list"),
        ),
        (
            "restores",
            schema_of::<crate::restores::RestoresOutput>("restores"),
        ),
        (
            "config-check",
            schema_of::<crate::check::CheckOutput>("config-check"),
        ),
        (
            "catalog-rebuild",
            schema_of::<adfdr_core::ops::catalog::Rebuilt>("catalog-rebuild"),
        ),
        (
            "init",
            schema_of::<adfdr_core::ops::check::Initialized>("init"),
        ),
        (
            "discover",
            schema_of::<adfdr_core::ops::discover::Discovery>("discover"),
        ),
        ("demo", schema_of::<crate::demo::DemoOutput>("demo")),
        ("error", schema_of::<crate::json::ErrorOutput>("error")),
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
