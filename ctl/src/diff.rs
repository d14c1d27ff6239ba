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
    /// Each value in full (by default long ones are cut at 60 characters;
    /// secrets are never shown).
    #[arg(long)]
    values: bool,
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
        for line in changed_lines(&d, args.values) {
            println!("{line}");
        }
        for (t, (x, y)) in &d.trigger_states {
            println!("~ trigger {t}: {x} -> {y}");
        }
    }
    Ok(exit::OK)
}

/// `~ pipeline:X` and under it each member `path: old → new`.
pub fn changed_lines(d: &adfdr_core::model::diff::Diff, full: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (r, changes) in &d.values {
        out.push(format!("~ {r}"));
        for c in changes {
            out.push(format!(
                "    {}: {} → {}",
                c.path,
                shown(c.old.as_ref(), full),
                shown(c.new.as_ref(), full)
            ));
        }
    }
    out
}

/// A value as `diff` prints it: compact JSON, cut at 60 characters unless
/// `full`; `(absent)` where the member is not there.
fn shown(v: Option<&serde_json::Value>, full: bool) -> String {
    let Some(v) = v else {
        return "(absent)".into();
    };
    let text = match v {
        serde_json::Value::String(s) if s == adfdr_core::model::diff::MASKED => s.clone(),
        _ => v.to_string(),
    };
    let text = crate::output::clean(&text);
    if full || text.chars().count() <= 60 {
        text
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_cut_unless_asked_in_full() {
        let long = serde_json::json!("x".repeat(100));
        assert_eq!(super::shown(None, false), "(absent)");
        assert_eq!(super::shown(Some(&serde_json::json!(3)), false), "3");
        let cut = super::shown(Some(&long), false);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with('…'));
        assert_eq!(super::shown(Some(&long), true).len(), 102);
        assert_eq!(
            super::shown(
                Some(&serde_json::json!(adfdr_core::model::diff::MASKED)),
                false
            ),
            adfdr_core::model::diff::MASKED
        );
    }
}
