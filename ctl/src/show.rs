//! `adfdr show SNAPSHOT`: manifest, counts by kind, trigger states and the
//! restorability report (what needs a human after a restore).

use crate::exit;
use adfdr_core::ops::{OpError, read};

use crate::{Ctx, output};

/// `adfdr show --json` (schema `adfdr.show.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ShowOutput {
    pub id: String,
    pub factory: String,
    pub created: String,
    pub source: adfdr_core::snapshot::Source,
    pub region: Option<String>,
    pub exported_at: String,
    pub root: String,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub resources: Vec<adfdr_core::snapshot::Entry>,
    pub trigger_states: std::collections::BTreeMap<String, String>,
    /// What the integration runtimes and CDCs were doing at backup.
    pub runtimes: adfdr_core::snapshot::manifest::Runtimes,
    /// The source factory's createTime.
    pub factory_created: Option<String>,
    /// Kinds the service did not offer where the factory lives.
    pub not_offered: Vec<adfdr_core::model::ResourceKind>,
    pub keys: Vec<String>,
    pub payload: adfdr_core::snapshot::manifest::ObjectRef,
    /// The restorability report: what needs a human after a restore.
    pub report: Vec<adfdr_core::model::restorability::Finding>,
    /// The location the manifest was read from.
    pub read_from: String,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, or `latest` with --factory.
    snapshot: String,
    /// The factory (needed for `latest`).
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
    for (location, why) in &opened.skipped {
        crate::warning!(
            "skipped location {location}: {why}; read {} instead",
            opened.location
        );
    }
    let m = &opened.manifest;
    if ctx.json {
        crate::json::emit(
            "show",
            &ShowOutput {
                id,
                factory: f,
                created: opened.header.created.clone(),
                source: m.source.clone(),
                region: m.region.clone(),
                exported_at: m.exported_at.clone(),
                root: m.root.clone(),
                counts: opened.public.counts.clone(),
                resources: m.resources.clone(),
                trigger_states: m.trigger_states.clone(),
                runtimes: m.runtimes.clone(),
                factory_created: m.created.clone(),
                not_offered: m.not_offered.clone(),
                keys: opened.public.keys.iter().map(|k| k.describe()).collect(),
                payload: opened.public.payload.clone(),
                report: m.report.clone(),
                read_from: opened.location.clone(),
            },
        );
        return Ok(exit::OK);
    }
    println!("snapshot   {id}");
    println!(
        "factory    {f} = {} ({})",
        m.source.path(),
        m.region.as_deref().unwrap_or("region unknown")
    );
    println!(
        "created    {} (state read at {})",
        opened.header.created, m.exported_at
    );
    println!("root       {}", m.root);
    println!(
        "payload    {} sha256 {}",
        output::size(opened.public.payload.size),
        opened.public.payload.sha256
    );
    println!(
        "keys       {}",
        opened
            .public
            .keys
            .iter()
            .map(|k| k.describe())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("read from  {}", opened.location);
    println!();
    println!("{} resources:", m.resources.len());
    for (kind, n) in &opened.public.counts {
        println!("  {kind:<28} {n}");
    }
    states(m);
    restorability(m);
    Ok(exit::OK)
}

/// What the triggers, runtimes and CDCs were doing, and the kinds absent
/// where the factory lives.
fn states(m: &adfdr_core::snapshot::manifest::Manifest) {
    if !m.trigger_states.is_empty() {
        println!();
        println!("trigger states (restored stopped unless --triggers as-backed-up):");
        for (name, state) in &m.trigger_states {
            println!("  {name:<28} {state}");
        }
    }
    let runtimes = m
        .runtimes
        .integration_runtimes
        .iter()
        .map(|(n, s)| (format!("integrationRuntime:{n}"), s))
        .chain(
            m.runtimes
                .change_data_captures
                .iter()
                .map(|(n, s)| (format!("changeDataCapture:{n}"), s)),
        )
        .collect::<Vec<_>>();
    if !runtimes.is_empty() {
        println!();
        println!("runtime states (running ones are started again unless --runtimes stopped):");
        for (label, state) in runtimes {
            println!("  {label:<44} {state}");
        }
    }
    if !m.not_offered.is_empty() {
        println!();
        let kinds: Vec<&str> = m.not_offered.iter().map(|k| k.label()).collect();
        println!(
            "not offered where the factory lives (absent, not forgotten): {}",
            kinds.join(", ")
        );
    }
}

/// The restorability report: what needs a human after a restore.
fn restorability(m: &adfdr_core::snapshot::manifest::Manifest) {
    println!();
    if m.report.is_empty() {
        println!("restorability: nothing needs a human after a restore");
    } else {
        println!(
            "restorability: {} item(s) need attention after a restore:",
            m.report.len()
        );
        for finding in &m.report {
            let category = serde_json::to_value(&finding.category)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            println!(
                "  [{category}] {}{}",
                finding.resource,
                finding
                    .pointer
                    .as_deref()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default()
            );
            println!("      {}", finding.detail);
        }
    }
}
