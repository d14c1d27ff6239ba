//! `adfdr diff SNAPSHOT [SNAPSHOT|--live]`

use crate::exit;
use adfdr_core::model::diff::diff;
use adfdr_core::ops::{OpError, export, read};
use adfdr_core::snapshot::manifest::encode_payload;

use crate::Ctx;

/// `adfdr diff --json` (schema `adfdr.diff.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DiffOutput {
    pub from: String,
    /// The other snapshot, or `live`.
    pub to: String,
    pub diff: adfdr_core::model::diff::Diff,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot (id, or `latest` with --factory).
    from: String,
    /// The newer snapshot; omit with --live.
    to: Option<String>,
    /// Compare with the live factory instead.
    #[arg(long, conflicts_with = "to")]
    live: bool,
    #[arg(long, short = 'f', value_name = "FACTORY")]
    factory: Option<String>,
    #[command(flatten)]
    incident: crate::incident::IncidentArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = crate::incident::engine(ctx, &args.incident)?;
    let factory =
        crate::factories::for_reference(&mut engine, args.factory.as_deref(), &args.from).await?;
    if args.to.is_none() && !args.live {
        return Err(OpError::usage("give a second snapshot or --live"));
    }
    let a = read::open_reference(
        &engine.replicas,
        &engine.keys,
        &args.from,
        factory.as_deref(),
    )
    .await?;
    let (f, id) = (a.factory.clone(), a.id.clone());
    let (ra, _) = read::payload(&engine.replicas, &a).await?;
    let (rb, sb, label) = if args.live {
        let fc = engine.config.factory(&f).ok_or_else(|| {
            OpError::usage(format!(
                "factory {f} is not in the config; --live needs its ARM coordinates"
            ))
        })?;
        let mut live = export::export(
            engine.arm.as_ref(),
            fc,
            &engine.identity.description,
            engine.config.backup.concurrency,
        )
        .await?;
        encode_payload(&mut live.resources);
        (live.resources, live.trigger_states, "live".to_string())
    } else {
        let to = args.to.as_deref().expect("checked");
        let b = read::open_reference(&engine.replicas, &engine.keys, to, None).await?;
        let id2 = b.id.clone();
        let (rb, _) = read::payload(&engine.replicas, &b).await?;
        (rb, b.manifest.trigger_states.clone(), id2)
    };
    let d = diff(&ra, &rb, &a.manifest.trigger_states, &sb);
    if ctx.json {
        crate::json::emit(
            "diff",
            &DiffOutput {
                from: id.clone(),
                to: label.clone(),
                diff: d,
            },
        );
    } else if d.is_empty() {
        println!("{id} and {label} are identical");
    } else {
        println!("{id} -> {label}");
        for a in &d.added {
            println!("+ {a}");
        }
        for r in &d.removed {
            println!("- {r}");
        }
        for (r, paths) in &d.changed {
            println!("~ {r}: {}", paths.join(", "));
        }
        for (t, (x, y)) in &d.trigger_states {
            println!("~ trigger {t}: {x} -> {y}");
        }
    }
    Ok(exit::OK)
}
