//! `adfdr snapshots [FACTORY] [--location NAME]`: what the store holds. The
//! store is listed (it is the truth); details come from the catalog, or from
//! the manifests' public headers when the catalog does not know a snapshot.

use adfdr_core::catalog::SnapshotRecord;
use adfdr_core::ops::{OpError, exit, read};
use adfdr_core::store::Replicas;

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this factory (configured name).
    factory: Option<String>,
    /// Only what this location holds.
    #[arg(long)]
    location: Option<String>,
}

/// A catalog record for a snapshot from its public header (no key needed).
pub async fn record_from_store(
    replicas: &Replicas,
    listed: &read::Listed,
) -> Result<SnapshotRecord, OpError> {
    let (header, _) = read::read_header(replicas, &listed.factory, &listed.id).await?;
    let public = header
        .manifest
        .unwrap_or_else(|| unreachable!("read_header checks the type"));
    Ok(SnapshotRecord {
        factory: listed.factory.clone(),
        id: listed.id.clone(),
        created: header.created,
        resources: public.resources,
        counts: public.counts,
        payload_size: public.payload.size,
        manifest_size: listed.manifest_size,
        keys: public.keys.iter().map(|k| k.describe()).collect(),
        locations: listed.locations.clone(),
        root: None,
        exported_at: None,
    })
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let factory = output::factory_filter(&engine.config, args.factory.as_deref())?;
    let replicas = match &args.location {
        None => engine.replicas.clone(),
        Some(name) => {
            let location = engine.replicas.get(name).cloned().ok_or_else(|| {
                OpError::Usage(format!(
                    "unknown location '{name}'; configured: {}",
                    engine
                        .replicas
                        .locations
                        .iter()
                        .map(|l| l.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            Replicas::new(vec![location])
        }
    };
    let (listed, failed) = read::list(&replicas, factory.as_deref()).await;
    for (location, error) in &failed {
        eprintln!("adfdr: warning: location {location} could not be listed: {error}");
    }
    if !failed.is_empty() && failed.len() == replicas.locations.len() {
        return Err(OpError::Failed("no location could be listed".into()));
    }
    let catalog = engine.catalog()?;
    let total = engine.replicas.locations.len();
    let mut records = Vec::new();
    for l in &listed {
        let mut record = match catalog.snapshot(&l.id)? {
            Some(r) if r.factory == l.factory => r,
            _ => record_from_store(&replicas, l).await?,
        };
        if args.location.is_none() {
            record.locations = l.locations.clone();
            catalog.put_snapshot(&record)?;
        }
        records.push(record);
    }
    if ctx.json {
        output::json(
            &serde_json::json!(records.iter().map(|r| serde_json::json!({
            "id": r.id, "created": r.created, "factory": r.factory, "resources": r.resources,
            "bytes": r.payload_size + r.manifest_size, "locations": r.locations, "keys": r.keys,
        })).collect::<Vec<_>>()),
        );
    } else if records.is_empty() {
        println!(
            "no snapshots{}",
            factory.map(|f| format!(" of {f}")).unwrap_or_default()
        );
    } else {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.created.clone(),
                    r.factory.clone(),
                    r.resources.to_string(),
                    output::size(r.payload_size + r.manifest_size),
                    format!(
                        "{}/{} ({})",
                        r.locations.len(),
                        total,
                        r.locations.join(",")
                    ),
                    r.keys
                        .iter()
                        .map(|k| k.split(' ').next().unwrap_or(k).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            })
            .collect();
        output::table(
            &[
                "ID",
                "CREATED",
                "FACTORY",
                "RESOURCES",
                "SIZE",
                "COPIES",
                "KEYS",
            ],
            &rows,
        );
    }
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::DEGRADED
    })
}
