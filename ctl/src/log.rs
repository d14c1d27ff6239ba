//! `adfdr log FACTORY [--resource KIND:NAME] [--since TIME] [--sets]`: the
//! factory's change history as its snapshots record it (core
//! ops::history): time, who, what, which snapshot; `--sets` groups the
//! changes by correlation id (one ADF Studio publish is one change set,
//! what `restore --undo` takes).

use adfdr_core::ops::OpError;
use adfdr_core::ops::history::{self, ChangeSet, Row};

use crate::{Ctx, exit, output};

/// `adfdr log --json` (schema `adfdr.log.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct LogOutput {
    pub factory: String,
    /// Oldest first.
    pub changes: Vec<Row>,
    pub change_sets: Vec<ChangeSet>,
    /// Snapshots whose manifest did not open (their changes are missing).
    pub unreadable: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The factory: configured or discovered, or any stored name with
    /// --store; may be left out when there is only one.
    #[command(flatten)]
    factory: crate::factories::One,
    /// Only changes to this resource (KIND:GLOB, e.g. pipeline:PL_Load*).
    #[arg(long, value_name = "KIND:GLOB")]
    resource: Option<String>,
    /// Only snapshots taken at or after this time (RFC 3339, or shorter and
    /// local: `2026-12-01 09:30`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// One line per change set (correlation id) instead of per change.
    #[arg(long)]
    sets: bool,
    #[command(flatten)]
    incident: crate::incident::IncidentArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = crate::incident::engine(ctx, &args.incident)?;
    let factory = match crate::factories::filter(&mut engine, args.factory.name()?).await? {
        Some(f) => f,
        None => match crate::factories::for_reference(&mut engine, None, "latest").await? {
            Some(only) => only,
            None => adfdr_core::ops::read::only_factory(&engine.replicas).await?,
        },
    };
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time("--since", t))
        .transpose()?;
    let selector = args
        .resource
        .as_deref()
        .map(|s| {
            adfdr_core::plan::select::Selector::parse(s)
                .map_err(|e| OpError::usage(format!("--resource {e}")))
        })
        .transpose()?;
    let mut h = history::history(&engine.replicas, &engine.keys, &factory, since).await?;
    if let Some(sel) = &selector {
        h.rows.retain(|r| {
            let (kind, name) = r.change.resource.split_once(':').unwrap_or(("", ""));
            let kind = adfdr_core::plan::select::parse_kind(kind).flatten();
            let (parent, name) = match name.split_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, name),
            };
            kind.is_some_and(|k| sel.matches(k, parent, name))
        });
    }
    for (id, why) in &h.unreadable {
        crate::warning!("snapshot {id} does not open, its changes are not shown: {why}");
    }
    let sets = history::change_sets(&h.rows);
    if ctx.json {
        crate::json::emit(
            "log",
            &LogOutput {
                factory: factory.clone(),
                changes: h.rows.clone(),
                change_sets: sets,
                unreadable: h.unreadable.iter().map(|(i, _)| i.clone()).collect(),
            },
        );
    } else if h.rows.is_empty() {
        println!(
            "no recorded changes of {factory}{}",
            if since.is_some() { " since then" } else { "" }
        );
    } else if args.sets {
        let rows: Vec<Vec<String>> = sets
            .iter()
            .map(|s| {
                vec![
                    s.first.clone(),
                    s.authors.join(", "),
                    s.resources.len().to_string(),
                    summary(s),
                    s.id.clone(),
                ]
            })
            .collect();
        output::table(&["FIRST", "WHO", "RESOURCES", "WHAT", "CHANGE SET"], &rows);
    } else {
        let rows: Vec<Vec<String>> = h
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.change.time.clone(),
                    r.change.who(),
                    r.change.effect.name().to_string(),
                    r.change.resource.clone(),
                    r.snapshot.clone(),
                    r.change_set(),
                ]
            })
            .collect();
        output::table(
            &["TIME", "WHO", "DID", "RESOURCE", "SNAPSHOT", "CHANGE SET"],
            &rows,
        );
    }
    Ok(if h.unreadable.is_empty() {
        exit::OK
    } else {
        exit::DEGRADED
    })
}

/// `3 updated, 1 created` for a change set.
fn summary(s: &ChangeSet) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in s.resources.values() {
        *counts.entry(e.name()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(e, n)| format!("{n} {e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A time as typed (RFC 3339, or shorter, or local: `snapshot::parse_when`);
/// how it was read is said on stderr when it was not RFC 3339 already.
pub fn parse_time(flag: &str, text: &str) -> Result<time::OffsetDateTime, OpError> {
    let (at, how) = adfdr_core::snapshot::parse_when(text, &local_offset)
        .map_err(|e| OpError::usage(format!("{flag} {e}")))?;
    if adfdr_core::snapshot::parse_time(text.trim()).is_none() {
        crate::warning!("reading {flag} {how}");
    }
    Ok(at)
}

/// This machine's UTC offset at a local time (daylight saving included).
pub fn local_offset(t: time::PrimitiveDateTime) -> time::UtcOffset {
    use chrono::{Offset, TimeZone};
    let naive =
        chrono::NaiveDate::from_ymd_opt(t.year(), u8::from(t.month()).into(), t.day().into())
            .and_then(|d| d.and_hms_opt(t.hour().into(), t.minute().into(), t.second().into()));
    let seconds = naive
        .and_then(|n| chrono::Local.offset_from_local_datetime(&n).earliest())
        .map_or(0, |o| o.fix().local_minus_utc());
    time::UtcOffset::from_whole_seconds(seconds).unwrap_or(time::UtcOffset::UTC)
}
