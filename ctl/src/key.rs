//! `adfdr key generate --out FILE`: a new break-glass key file (mode 0600).
//! `adfdr key list`: every key at hand and every key the store's snapshots
//! name, with which snapshots each opens (core `ops::keyuse`).

use std::path::PathBuf;

use crate::exit;
use adfdr_core::keys::generate_key_file;
use adfdr_core::ops::OpError;

use crate::Ctx;

/// `adfdr key generate --json` (schema `adfdr.key-generate.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct KeyOutput {
    pub file: PathBuf,
    /// Names the key without revealing it (also in every manifest it wraps).
    pub fingerprint: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write 32 random bytes to a new file, readable by its owner only.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Every key (configured, or given with --key) and every key the
    /// snapshots name: fingerprint or Key Vault URL, and which snapshots
    /// each opens (key files proven by unwrapping, Key Vault keys by the
    /// snapshots' headers).
    List {
        #[command(flatten)]
        incident: crate::incident::IncidentArgs,
    },
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let out = match cmd {
        Command::Generate { out } => out,
        Command::List { incident } => return list(ctx, &incident).await,
    };
    let fingerprint = generate_key_file(&out).map_err(|e| OpError::usage(e.to_string()))?;
    if ctx.json {
        crate::json::emit(
            "key-generate",
            &KeyOutput {
                file: out,
                fingerprint,
            },
        );
    } else {
        println!(
            "wrote {} (mode 0600), fingerprint {fingerprint}",
            out.display()
        );
        println!(
            "add it as a [[key]] with file = \"{}\", and keep a copy offline: any one key restores",
            out.display()
        );
    }
    Ok(exit::OK)
}

/// `adfdr key list`.
async fn list(ctx: &Ctx, incident: &crate::incident::IncidentArgs) -> Result<i32, OpError> {
    let engine = crate::incident::engine_keyless(ctx, incident)?;
    let report = adfdr_core::ops::keyuse::key_list(&engine.replicas, &engine.keys).await;
    for l in &report.unlisted {
        crate::warning!("location {l} could not be listed: its snapshots are not counted");
    }
    if report.unreadable > 0 {
        crate::warning!(
            "{} manifest(s) whose header does not read are not counted (see `adfdr verify`)",
            report.unreadable
        );
    }
    if ctx.json {
        crate::json::emit("key-list", &report);
    } else {
        let rows: Vec<Vec<String>> = report
            .keys
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.kind.clone(),
                    k.fingerprint
                        .clone()
                        .or_else(|| k.key_url.clone())
                        .unwrap_or_default(),
                    if k.at_hand { "yes" } else { "no" }.into(),
                    format!("{} ({})", k.snapshots, k.proof),
                    match (&k.oldest, &k.newest) {
                        (Some(o), Some(n)) if o != n => format!("{o} … {n}"),
                        (Some(o), _) => o.clone(),
                        _ => "-".into(),
                    },
                    k.factories.join(", "),
                ]
            })
            .collect();
        crate::output::table(
            &[
                "KEY",
                "KIND",
                "FINGERPRINT / URL",
                "AT HAND",
                "OPENS",
                "SNAPSHOTS",
                "FACTORIES",
            ],
            &rows,
        );
        println!(
            "{} snapshot(s) read; {} open with no key at hand",
            report.snapshots,
            report.none_at_hand.len()
        );
    }
    Ok(if !report.unlisted.is_empty() || report.unreadable > 0 {
        exit::DEGRADED
    } else if !report.none_at_hand.is_empty() {
        exit::NO_KEY
    } else {
        exit::OK
    })
}
