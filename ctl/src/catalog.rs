//! `adfdr catalog rebuild`: recreate the local index from the store alone.

use adfdr_core::catalog::CheckpointRecord;
use adfdr_core::ops::{OpError, exit, read};
use adfdr_core::snapshot::object;
use adfdr_core::store::layout::{self, Parsed};

use crate::{Ctx, output, snapshots::record_from_store};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Forget the index and read it back from every location.
    Rebuild,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let Command::Rebuild = cmd;
    let engine = ctx.engine()?;
    let (listed, failed) = read::list(&engine.replicas, None).await;
    if !failed.is_empty() && failed.len() == engine.replicas.locations.len() {
        return Err(OpError::Failed(format!(
            "no location could be listed ({}); the catalog was left as it was",
            read::describe(&failed)
        )));
    }
    // Read everything first; only then replace the index.
    let mut records = Vec::new();
    for l in &listed {
        let mut record = record_from_store(&engine.replicas, l).await?;
        if let Ok(opened) = read::open(&engine.replicas, &engine.keys, &l.factory, &l.id).await {
            record.root = Some(opened.manifest.root.clone());
            record.exported_at = Some(opened.manifest.exported_at.clone());
        }
        records.push(record);
    }
    let mut checkpoints = Vec::new();
    for (location, result) in engine.replicas.list_all(layout::ROOT).await {
        for o in result.into_iter().flatten() {
            if let Some(Parsed::Checkpoint { factory, id }) = layout::parse(&o.key) {
                if let Some(c) = checkpoints
                    .iter_mut()
                    .find(|c: &&mut CheckpointRecord| c.id == id && c.factory == factory)
                {
                    c.locations.push(location.clone());
                    continue;
                }
                let Ok(Some(bytes)) = engine
                    .replicas
                    .get(&location)
                    .expect("listed")
                    .store
                    .get(&o.key)
                    .await
                else {
                    continue;
                };
                let Ok(header) = object::check_digest(&bytes) else {
                    continue;
                };
                checkpoints.push(CheckpointRecord {
                    factory,
                    id,
                    snapshot: header.snapshot,
                    created: header.created,
                    locations: vec![location.clone()],
                });
            }
        }
    }
    // Drill reports: their plaintext summaries (no key needed).
    let drills = crate::drill::history(&engine.replicas, None).await;
    let catalog = engine.catalog()?;
    catalog.clear_index()?;
    for d in &drills {
        catalog.put_drill(d)?;
    }
    for r in &records {
        catalog.put_snapshot(r)?;
    }
    for c in &checkpoints {
        catalog.put_checkpoint(c)?;
    }
    if ctx.json {
        output::json(
            &serde_json::json!({"snapshots": records.len(), "checkpoints": checkpoints.len(), "drills": drills.len(), "unlisted_locations": failed.iter().map(|(l, _)| l).collect::<Vec<_>>()}),
        );
    } else {
        println!(
            "catalog {} rebuilt: {} snapshots, {} checkpoints, {} drills",
            engine.catalog_path.display(),
            records.len(),
            checkpoints.len(),
            drills.len()
        );
        for (l, e) in &failed {
            eprintln!("adfdr: warning: location {l} could not be listed: {e}");
        }
    }
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::DEGRADED
    })
}
