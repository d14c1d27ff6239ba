//! `adfdr export SNAPSHOT --out DIR`: decrypt into ADF git layout.

use std::path::PathBuf;

use crate::exit;
use adfdr_core::ops::{OpError, gitlayout, read};

use crate::Ctx;

/// `adfdr export --json` (schema `adfdr.export.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ExportOutput {
    pub snapshot: String,
    pub factory: String,
    pub out: PathBuf,
    pub files: usize,
    /// Resources the git layout has no place for (kept in the snapshot).
    pub not_in_git_layout: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, or `latest` with --factory.
    snapshot: String,
    /// A new or empty directory.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, short = 'f', value_name = "FACTORY")]
    factory: Option<String>,
    #[command(flatten)]
    incident: crate::incident::IncidentArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = crate::incident::engine(ctx, &args.incident)?;
    let factory =
        crate::factories::for_reference(&mut engine, args.factory.as_deref(), &args.snapshot)
            .await?;
    let opened = read::open_reference(
        &engine.replicas,
        &engine.keys,
        &args.snapshot,
        factory.as_deref(),
    )
    .await?;
    let (f, id) = (opened.factory.clone(), opened.id.clone());
    let (resources, from) = read::payload(&engine.replicas, &opened).await?;
    for (location, why) in opened.skipped.iter().chain(&from.skipped) {
        crate::warning!("skipped location {location}: {why}");
    }
    let written = gitlayout::write(&args.out, &resources).map_err(|e| match e {
        gitlayout::GitLayoutError::NotEmpty { .. } => OpError::usage(e.to_string()),
        e => OpError::failed(e.to_string()),
    })?;
    if ctx.json {
        crate::json::emit(
            "export",
            &ExportOutput {
                snapshot: id,
                factory: f,
                out: args.out.clone(),
                files: written.files,
                not_in_git_layout: written.skipped,
            },
        );
    } else {
        println!(
            "exported {id} ({} files) to {}",
            written.files,
            args.out.display()
        );
        if !written.skipped.is_empty() {
            println!(
                "not part of ADF git layout (kept in the snapshot, restored by adfdr restore): {}",
                written.skipped.join(", ")
            );
        }
        let secrets = opened
            .manifest
            .report
            .iter()
            .filter(|f| f.category == adfdr_core::model::restorability::Category::MaskedSecret)
            .count();
        if secrets > 0 {
            println!("{secrets} inline secret(s) are masked (********** ): see `adfdr show {id}`");
        }
    }
    Ok(exit::OK)
}
