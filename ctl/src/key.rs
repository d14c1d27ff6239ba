//! `adfdr key generate --out FILE`: a new break-glass key file (mode 0600).

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
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let Command::Generate { out } = cmd;
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
