//! `adfdr drill [FACTORY…] [--snapshot ID | --random-within DUR] [--cleanup MODE]
//! [--markdown FILE] [--html FILE]` and `adfdr drills [FACTORY]`.
//!
//! A drill exits 0 when it passed and 4 when it failed (a target missed,
//! resources diverged, the smoke run failed, the restore broke). Reports are
//! printed, stored sealed in the store, and can be written as Markdown or
//! HTML for auditors. `drills` reads the reports' plaintext summaries from
//! the store (the truth), so it works with or without the agent.

use std::path::PathBuf;

use crate::exit;
use crate::output::esc;
use adfdr_core::config::DrillCleanup;
use adfdr_core::ops::OpError;
use adfdr_core::ops::drill::Report;
use adfdr_core::plan::drill::human;

use crate::{Ctx, output};

/// `adfdr drill --json` (schema `adfdr.drill.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DrillOutput {
    pub reports: Vec<Report>,
}

/// `adfdr drills --json` (schema `adfdr.drills.v1`): the history, oldest first.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DrillsOutput {
    pub drills: Vec<adfdr_core::catalog::DrillRecord>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Default: every factory with a drill_target.
    #[command(flatten)]
    factories: crate::factories::Many,
    /// Drill this snapshot instead of the latest.
    #[arg(long, conflicts_with = "random_within")]
    snapshot: Option<String>,
    /// Drill a random snapshot from this window (e.g. 30d): old ones must restore too.
    #[arg(long, value_name = "DURATION")]
    random_within: Option<String>,
    /// What to do with the scratch factory afterwards [default: the config's drill_cleanup].
    #[arg(long, value_parser = ["delete-resources", "delete-factory", "keep"])]
    cleanup: Option<String>,
    /// Also write the report as Markdown here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write the report as a standalone HTML page here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Most writes in flight: the restore starts with 16 and grows while the
    /// service takes them, halving on throttling.
    #[arg(long, default_value_t = adfdr_core::ops::restore::window::CEILING)]
    concurrency: usize,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    factory: crate::factories::One,
    /// Also write the history as a standalone HTML page with charts of RTO
    /// and RPO against their targets over time.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// The factories to drill: those named (configured or discovered), or
/// every one with a drill_target.
async fn drill_names(
    engine: &mut adfdr_core::ops::Engine,
    named: &[String],
) -> Result<Vec<String>, OpError> {
    if let Some(warning) = adfdr_core::ops::discover::include_named(engine, named).await? {
        crate::warning!("{warning}");
    }
    if !named.is_empty() {
        return output::select_factories(&engine.config, named, false);
    }
    let with_target: Vec<String> = engine
        .config
        .factories
        .iter()
        .map(|f| f.get_ref())
        .filter(|f| f.drill_target.is_some())
        .map(|f| f.name.clone())
        .collect();
    if with_target.is_empty() {
        return Err(OpError::usage(
            "no factory has a drill_target: add drill_target = { subscription = \"…\", resource_group = \"…\", factory = \"…\" } to a [[factory]]",
        ));
    }
    Ok(with_target)
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let mut engine = ctx.engine()?;
    let names = drill_names(&mut engine, &args.factories.names()).await?;
    if let Some(w) = &args.random_within {
        adfdr_core::config::DurationSpec::parse(w)
            .map_err(|e| OpError::usage(format!("--random-within {e}")))?;
    }
    let mut reports = Vec::new();
    for name in &names {
        use adfdr_core::ops::contract::{DrillOptions, Job, JobReport};
        let fc = engine.config.factory(name).expect("selected").clone();
        if !ctx.json && !crate::output::quiet() {
            eprintln!(
                "drilling {name}: restoring into {}…",
                fc.drill_target
                    .as_ref()
                    .map(|t| t.id().to_string())
                    .unwrap_or_default()
            );
        }
        // Through the agent when it runs (it owns the catalog and the
        // factory's lease), else here; audited either way.
        let job = Job::Drill(DrillOptions {
            snapshot: args.snapshot.clone(),
            random_within: args.random_within.clone(),
            cleanup: args.cleanup.as_deref().and_then(DrillCleanup::parse),
            concurrency: Some(args.concurrency),
        });
        let (done, _) = crate::jobs::run(&engine, name, job, !ctx.json).await?;
        let report = match done.report {
            Some(JobReport::Drill(r)) => *r,
            _ => return Err(OpError::from(&done)),
        };
        if let Some(path) = &args.markdown {
            write(path, &markdown(&report), names.len() > 1, &report)?;
        }
        if let Some(path) = &args.html {
            write(path, &html(&report), names.len() > 1, &report)?;
        }
        if !ctx.json {
            print!("{}", text(&report));
        }
        reports.push(report);
    }
    if ctx.json {
        crate::json::emit(
            "drill",
            &DrillOutput {
                reports: reports.clone(),
            },
        );
    }
    Ok(if reports.iter().all(Report::passed) {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// Writes a rendered report; with several factories, one file each
/// (`report.md` → `report-sales.md`).
fn write(path: &std::path::Path, body: &str, many: bool, report: &Report) -> Result<(), OpError> {
    let path = if many {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("report");
        let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("txt");
        path.with_file_name(format!("{stem}-{}.{ext}", report.factory))
    } else {
        path.to_path_buf()
    };
    std::fs::write(&path, body).map_err(|e| {
        OpError::failed(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    })
}

fn verdict(report: &Report) -> &'static str {
    if report.passed() { "PASSED" } else { "FAILED" }
}

fn against(value: Option<f64>, target: Option<f64>) -> String {
    match (value, target) {
        (Some(v), Some(t)) => format!(
            "{} (target {}, {})",
            human(v),
            human(t),
            if v <= t { "met" } else { "MISSED" }
        ),
        (Some(v), None) => format!("{} (no target)", human(v)),
        (None, Some(t)) => format!("not measured (target {})", human(t)),
        (None, None) => "not measured".into(),
    }
}

/// The terminal rendering.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(
        &mut out,
        format!("drill {} of {}: {}", r.id, r.factory, verdict(r)),
    );
    // Why it failed comes first: it is what the reader came for.
    for reason in &r.judgement.reasons {
        line(&mut out, format!("  reason     {reason}"));
    }
    line(
        &mut out,
        format!(
            "  snapshot   {} ({}), state confirmed {}",
            r.snapshot, r.pick, r.confirmed
        ),
    );
    line(&mut out, format!("  target     {}", r.target));
    line(
        &mut out,
        format!(
            "  RTO        {}",
            against(r.judgement.rto_seconds, r.judgement.rto_target_seconds)
        ),
    );
    line(
        &mut out,
        format!(
            "  RPO        {}",
            against(
                Some(r.judgement.rpo_seconds),
                r.judgement.rpo_target_seconds
            )
        ),
    );
    line(
        &mut out,
        format!(
            "  phases     {}",
            r.phases
                .iter()
                .map(|p| format!("{} {}", p.name, human(p.ms as f64 / 1000.0)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    line(
        &mut out,
        format!(
            "  restored   {} resources and the factory ({} writes, {} already equal){}",
            r.resources,
            r.written,
            r.unchanged,
            if r.placeholder_secrets > 0 {
                format!(
                    "; {} masked secrets set to a placeholder",
                    r.placeholder_secrets
                )
            } else {
                String::new()
            }
        ),
    );
    for c in &r.checks {
        line(
            &mut out,
            format!(
                "  {} {:<18} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ),
        );
    }
    for s in &r.skipped {
        line(&mut out, format!("  skipped    {s}"));
    }
    line(
        &mut out,
        format!(
            "  cleanup    {} ({}){}",
            r.cleanup.detail,
            r.cleanup.mode,
            if r.cleanup.ok { "" } else { ": FAILED" }
        ),
    );
    for note in &r.judgement.notes {
        line(&mut out, format!("  by hand    {note}"));
    }
    line(
        &mut out,
        format!("  report     stored in {}", r.locations.join(", ")),
    );
    out
}

/// Markdown for auditors: evidence that backups are tested.
pub fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Recovery drill {}: {}\n\n| | |\n|---|---|\n",
        r.id,
        verdict(r)
    );
    if !r.judgement.reasons.is_empty() {
        md.push_str("## Why it failed\n\n");
        for reason in &r.judgement.reasons {
            md.push_str(&format!("- {reason}\n"));
        }
        md.push('\n');
    }
    let rows = [
        ("Factory", format!("{} (`{}`)", r.factory, r.source)),
        ("Restored into", format!("`{}`", r.target)),
        ("Snapshot", format!("`{}` ({})", r.snapshot, r.pick)),
        ("State last confirmed", r.confirmed.clone()),
        (
            "Started / finished",
            format!("{} / {}", r.started, r.finished),
        ),
        (
            "RTO",
            against(r.judgement.rto_seconds, r.judgement.rto_target_seconds),
        ),
        (
            "RPO",
            against(
                Some(r.judgement.rpo_seconds),
                r.judgement.rpo_target_seconds,
            ),
        ),
        (
            "Resources",
            format!(
                "{} ({} written, {} already equal, {} secrets as placeholders)",
                r.resources, r.written, r.unchanged, r.placeholder_secrets
            ),
        ),
        (
            "Cleanup",
            format!("{} ({})", r.cleanup.detail, r.cleanup.mode),
        ),
    ];
    for (k, v) in rows {
        md.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
    }
    md.push_str("\n## Checks\n\n| Check | Result | Detail |\n|---|---|---|\n");
    for c in &r.checks {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            c.name,
            if c.ok { "ok" } else { "**failed**" },
            c.detail.replace('|', "\\|")
        ));
    }
    md.push_str("\n## Phases\n\n| Phase | Time |\n|---|---|\n");
    for p in &r.phases {
        md.push_str(&format!(
            "| {} | {} |\n",
            p.name,
            human(p.ms as f64 / 1000.0)
        ));
    }
    if !r.judgement.notes.is_empty() {
        md.push_str("\n## Still to do by hand\n\n");
        for note in &r.judgement.notes {
            md.push_str(&format!("- {note}\n"));
        }
    }
    if !r.skipped.is_empty() {
        md.push_str("\n## Not restored (by design)\n\n");
        for s in &r.skipped {
            md.push_str(&format!("- {s}\n"));
        }
    }
    md.push_str(&format!(
        "\nThe sealed report is stored in: {}.\n",
        r.locations.join(", ")
    ));
    md
}

/// A standalone HTML page (no scripts, no external resources).
pub fn html(r: &Report) -> String {
    let mut rows = String::new();
    for c in &r.checks {
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&c.name),
            if c.ok { "ok" } else { "fail" },
            if c.ok { "ok" } else { "failed" },
            esc(&c.detail)
        ));
    }
    let reasons: String = r
        .judgement
        .reasons
        .iter()
        .map(|x| format!("<li>{}</li>", esc(x)))
        .collect();
    let notes: String = r
        .judgement
        .notes
        .iter()
        .map(|x| format!("<li>{}</li>", esc(x)))
        .collect();
    let phases: String = r
        .phases
        .iter()
        .map(|p| {
            format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                human(p.ms as f64 / 1000.0)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Recovery drill {id}</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}table{{border-collapse:collapse}}.ok{{color:#060}}.fail{{color:#a00;font-weight:bold}}</style></head><body>\
<h1>Recovery drill {id}: <span class=\"{cls}\">{verdict}</span></h1>{why}\
<table><tr><th>Factory</th><td>{factory} ({source})</td></tr><tr><th>Restored into</th><td>{target}</td></tr>\
<tr><th>Snapshot</th><td>{snapshot} ({pick})</td></tr><tr><th>State last confirmed</th><td>{confirmed}</td></tr>\
<tr><th>Started / finished</th><td>{started} / {finished}</td></tr><tr><th>RTO</th><td>{rto}</td></tr><tr><th>RPO</th><td>{rpo}</td></tr>\
<tr><th>Cleanup</th><td>{cleanup}</td></tr></table>\
<h2>Checks</h2><table><tr><th>Check</th><th>Result</th><th>Detail</th></tr>{rows}</table>\
<h2>Phases</h2><table><tr><th>Phase</th><th>Time</th></tr>{phases}</table>{by_hand}\
<p>The sealed report is stored in: {locations}.</p></body></html>\n",
        id = esc(&r.id),
        cls = if r.passed() { "ok" } else { "fail" },
        verdict = verdict(r),
        factory = esc(&r.factory),
        source = esc(&r.source),
        target = esc(&r.target),
        snapshot = esc(&r.snapshot),
        pick = esc(&r.pick),
        confirmed = esc(&r.confirmed),
        started = esc(&r.started),
        finished = esc(&r.finished),
        rto = esc(&against(
            r.judgement.rto_seconds,
            r.judgement.rto_target_seconds
        )),
        rpo = esc(&against(
            Some(r.judgement.rpo_seconds),
            r.judgement.rpo_target_seconds
        )),
        cleanup = esc(&format!("{} ({})", r.cleanup.detail, r.cleanup.mode)),
        why = if reasons.is_empty() {
            String::new()
        } else {
            format!("<h2>Why it failed</h2><ul>{reasons}</ul>")
        },
        by_hand = if notes.is_empty() {
            String::new()
        } else {
            format!("<h2>Still to do by hand</h2><ul>{notes}</ul>")
        },
        locations = esc(&r.locations.join(", ")),
    )
}

pub async fn run_history(ctx: &Ctx, args: HistoryArgs) -> Result<i32, OpError> {
    let mut engine = ctx.engine()?;
    let factory = crate::factories::filter(&mut engine, args.factory.name()?).await?;
    let records = adfdr_core::ops::catalog::drill_history(
        &engine.replicas,
        Some(&engine.keys),
        factory.as_deref(),
        adfdr_core::ops::system_clock(),
    )
    .await?;
    if let Some(path) = &args.html {
        let generated = adfdr_core::snapshot::rfc3339(adfdr_core::ops::system_clock());
        std::fs::write(path, crate::history_page::page(&records, &generated)).map_err(|e| {
            OpError::failed(format!("cannot write the page to {}: {e}", path.display()))
        })?;
    }
    if ctx.json {
        crate::json::emit("drills", &DrillsOutput { drills: records });
        return Ok(exit::OK);
    }
    if records.is_empty() {
        println!("no drills yet: run `adfdr drill`");
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.started.clone(),
                r.factory.clone(),
                r.snapshot.clone(),
                against(r.rto_seconds, r.rto_target_seconds),
                against(Some(r.rpo_seconds), r.rpo_target_seconds),
                r.verdict.to_uppercase(),
            ]
        })
        .collect();
    output::table(
        &["TIME", "FACTORY", "SNAPSHOT", "RTO", "RPO", "RESULT"],
        &rows,
    );
    Ok(exit::OK)
}
