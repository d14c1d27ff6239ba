//! `adfdr snapshots [FACTORY] [--location NAME]`: what the store holds. The
//! store is listed (it is the truth) and every manifest copy is checked
//! (digest, the factory and id its header binds, an id not in the future,
//! and that it decrypts with a configured key): a name that does not bear
//! out is not a snapshot and is named as foreign. Details come from the public headers; the catalog, when
//! this process can open it, learns what it did not know.

use crate::exit;
use adfdr_core::ops::{OpError, read, system_clock};
use adfdr_core::store::Replicas;

use crate::{Ctx, output};

/// `adfdr snapshots --json` (schema `adfdr.snapshots.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SnapshotsOutput {
    /// Oldest first; only snapshots with a copy that checks out.
    pub snapshots: Vec<SnapshotRow>,
    /// Manifest copies that do not check out (planted, forged, damaged).
    pub not_counted: Vec<read::Rejected>,
    /// Locations that could not be listed.
    pub unlisted: Vec<String>,
    /// Snapshots there, intact, that none of the keys given opens.
    pub locked: Vec<read::Locked>,
    /// Listed from the public headers only (incident mode without a key).
    pub headers_only: bool,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SnapshotRow {
    pub id: String,
    pub created: String,
    pub factory: String,
    pub resources: usize,
    pub bytes: u64,
    /// Locations holding a copy that checks out.
    pub locations: Vec<String>,
    pub keys: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    factory: crate::factories::One,
    /// Only what this location holds.
    #[arg(long)]
    location: Option<String>,
    #[command(flatten)]
    incident: crate::incident::IncidentArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    // Listing needs no key: without one, what the store holds is listed
    // from the public headers (ids, times, sizes, key fingerprints).
    let mut engine = crate::incident::engine_keyless(ctx, &args.incident)?;
    let headers_only = engine.keys.is_empty();
    let factory = crate::factories::filter(&mut engine, args.factory.name()?).await?;
    let replicas = only(&engine, args.location.as_deref())?;
    // The agent holds the catalog while it runs: then the store alone
    // answers. A listing of one location does not update it.
    let catalog = if args.location.is_some() || crate::incident::agent(&engine).is_some() {
        None
    } else {
        engine.catalog().ok()
    };
    let listing = adfdr_core::ops::catalog::list(
        &replicas,
        &engine.keys,
        catalog.as_deref(),
        factory.as_deref(),
        system_clock(),
    )
    .await?;
    for (location, error) in &listing.unlisted {
        crate::warning!("location {location} could not be listed: {error}");
    }
    for f in &listing.not_counted {
        crate::warning!(
            "{} in {} is not counted: {} (see `adfdr verify`)",
            f.key,
            f.location,
            f.why
        );
    }
    let records = &listing.snapshots;
    if ctx.json {
        crate::json::emit(
            "snapshots",
            &SnapshotsOutput {
                snapshots: records
                    .iter()
                    .map(|r| SnapshotRow {
                        id: r.id.clone(),
                        created: r.created.clone(),
                        factory: r.factory.clone(),
                        resources: r.resources,
                        bytes: r.payload_size + r.manifest_size,
                        locations: r.locations.clone(),
                        keys: r.keys.clone(),
                    })
                    .collect(),
                not_counted: listing.not_counted.clone(),
                unlisted: listing.unlisted.iter().map(|(l, _)| l.clone()).collect(),
                locked: listing.locked.clone(),
                headers_only,
            },
        );
    } else if records.is_empty() && !listing.locked.is_empty() {
        // Told once, not once per copy: the backups are not gone.
    } else if records.is_empty() {
        println!(
            "no snapshots{}",
            factory.map(|f| format!(" of {f}")).unwrap_or_default()
        );
    } else {
        table(records, engine.replicas.locations.len());
    }
    if headers_only && !records.is_empty() {
        crate::warning!(
            "no key given: listed from the public headers (not checked to open); add --key FILE|URL to check they open with it"
        );
    }
    if !listing.locked.is_empty() {
        let message = locked_message(&listing.locked, !records.is_empty());
        if records.is_empty() {
            eprintln!("adfdr: {}", output::clean(&message));
            return Ok(exit::NO_KEY);
        }
        crate::warning!("{message}");
    }
    Ok(if !listing.not_counted.is_empty() {
        exit::CHECK_FAILED
    } else if listing.unlisted.is_empty() {
        exit::OK
    } else {
        exit::DEGRADED
    })
}

/// Every location, or only the one named (`--location`).
fn only(engine: &adfdr_core::ops::Engine, location: Option<&str>) -> Result<Replicas, OpError> {
    let Some(name) = location else {
        return Ok(engine.replicas.clone());
    };
    let location = engine.replicas.get(name).cloned().ok_or_else(|| {
        let names: Vec<String> = engine
            .replicas
            .locations
            .iter()
            .map(|l| l.name.clone())
            .collect();
        OpError::usage(format!(
            "unknown location '{name}'; configured: {}",
            names.join(", ")
        ))
    })?;
    Ok(Replicas::new(vec![location]))
}

/// Snapshots none of the keys given opens, told once: how many, which
/// (the first five), and the keys they open with; beside snapshots that
/// do open, a hint that they may not be the reader's own.
fn locked_message(locked: &[adfdr_core::ops::read::Locked], others_open: bool) -> String {
    let mut keys: Vec<&str> = locked
        .iter()
        .flat_map(|l| l.opens_with.iter().map(String::as_str))
        .collect();
    keys.sort();
    keys.dedup();
    let mut ids: Vec<String> = locked
        .iter()
        .take(5)
        .map(|l| format!("{}/{}", l.factory, l.id))
        .collect();
    if locked.len() > ids.len() {
        ids.push(format!("and {} more", locked.len() - ids.len()));
    }
    format!(
        "{} snapshot(s) found that none of the keys given opens ({}); they open with: {}{}",
        locked.len(),
        ids.join(", "),
        keys.join(", "),
        if others_open {
            " (beside snapshots these keys open: if no key of yours is named, they were not written by you; see `adfdr verify`)"
        } else {
            ""
        }
    )
}

fn table(records: &[adfdr_core::catalog::SnapshotRecord], total: usize) {
    {
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
}
