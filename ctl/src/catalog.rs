//! `adfdr catalog rebuild`: recreate the local index from the store alone
//! (the use case is `adfdr_core::ops::catalog::rebuild`).

use crate::exit;
use adfdr_core::ops::{OpError, system_clock};

use crate::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Forget the index and read it back from every location.
    Rebuild,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let Command::Rebuild = cmd;
    let engine = ctx.engine()?;
    if let Some(agent) = crate::agent::Agent::find(&engine.config) {
        // The agent holds the catalog open (redb allows one process).
        return Err(OpError::usage(format!(
            "the agent (socket {}) has the catalog open; stop it first (systemctl stop adfdr-agent), rebuild, then start it: the agent never rebuilds under a running job",
            agent.socket().display()
        )));
    }
    let catalog = engine.catalog()?;
    let rebuilt =
        adfdr_core::ops::catalog::rebuild(&engine.replicas, &engine.keys, &catalog, system_clock())
            .await?;
    if ctx.json {
        crate::json::emit("catalog-rebuild", &rebuilt);
    } else {
        println!(
            "catalog {} rebuilt: {} snapshots, {} checkpoints, {} drills",
            engine.catalog_path.display(),
            rebuilt.snapshots,
            rebuilt.checkpoints,
            rebuilt.drills
        );
        if rebuilt.left_out > 0 {
            println!(
                "left out {} object(s) that do not check out: run `adfdr verify` for details",
                rebuilt.left_out
            );
        }
        for v in &rebuilt.vanished {
            println!(
                "kept {v}: the catalog saw it committed and no location holds it (see `adfdr verify`)"
            );
        }
        for (l, e) in &rebuilt.unlisted {
            crate::warning!("location {l} could not be listed: {e}");
        }
    }
    Ok(if rebuilt.unlisted.is_empty() {
        exit::OK
    } else {
        exit::DEGRADED
    })
}
