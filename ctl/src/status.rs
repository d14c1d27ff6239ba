//! `adfdr status`: per factory the last confirmed backup, RPO against its
//! target, the last drill, the agent's jobs (next runs, failures) and
//! location health; from the agent when it runs, else from the local catalog.

use adfdr_core::ops::{OpError, exit, read, system_clock};
use adfdr_core::snapshot::{parse_time, snapshot_time};

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub async fn run(ctx: &Ctx, _args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let config = &engine.config;
    let agent = crate::agent::Agent::find(config);
    let agent_status = match &agent {
        Some(a) => Some(a.call("GET", "/status", None)?.1),
        None => None,
    };
    // The catalog is the agent's while it runs; otherwise read it here.
    let catalog = if agent.is_none() {
        Some(adfdr_core::catalog::Catalog::open(
            &adfdr_core::catalog::Catalog::path_in(&config.agent.state_dir),
        )?)
    } else {
        None
    };
    let now = system_clock();
    let mut rows = Vec::new();
    let mut late = false;
    let mut json = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for f in config.factories.iter().map(|f| f.get_ref()) {
        let from_agent = agent_status
            .as_ref()
            .and_then(|s| s["last_confirmed"][f.name.as_str()].as_str())
            .and_then(parse_time);
        let mut confirmed = from_agent.or_else(|| {
            catalog
                .as_ref()
                .and_then(|c| c.last_confirmed(&f.name).ok().flatten())
        });
        // The store is the truth: a newest snapshot the catalog knows and no
        // location holds was deleted behind adfdr's back. Then the RPO is
        // what the store still holds.
        let known = match &agent_status {
            Some(st) => st["newest_snapshot"][f.name.as_str()]
                .as_str()
                .map(str::to_string),
            None => catalog
                .as_ref()
                .and_then(|c| c.latest_snapshot(&f.name).ok().flatten())
                .map(|r| r.id),
        };
        let mut vanished = None;
        if let Some(known) = known {
            let (listed, failed) = read::list(&engine.replicas, Some(&f.name)).await;
            if failed.is_empty() && read::vanished_newest(&known, &listed) {
                confirmed = listed.last().and_then(|l| snapshot_time(&l.id));
                vanished = Some(known);
            }
        }
        late |= vanished.is_some();
        let drill: Option<adfdr_core::catalog::DrillRecord> = match &agent_status {
            Some(st) => serde_json::from_value(st["last_drill"][f.name.as_str()].clone()).ok(),
            None => catalog
                .as_ref()
                .and_then(|c| c.drills(Some(&f.name)).ok())
                .and_then(|mut d| d.pop()),
        };
        let drill_text = drill.as_ref().map_or("-".to_string(), |d| {
            format!(
                "{} {}{}",
                d.started,
                d.verdict.to_uppercase(),
                d.rto_seconds
                    .map(|r| format!(" (RTO {})", adfdr_core::plan::drill::human(r)))
                    .unwrap_or_default()
            )
        });
        let rpo = confirmed.map(|t| (now - t).whole_seconds());
        let target = f.rpo_target.as_ref().map(|t| t.0.as_secs() as i64);
        let missed = matches!((rpo, target), (Some(r), Some(t)) if r > t)
            || (rpo.is_none() && agent.is_none());
        late |= missed && agent.is_none();
        let jobs: Vec<String> = agent_status
            .as_ref()
            .and_then(|s| s["jobs"].as_array())
            .map(|jobs| {
                jobs.iter()
                    .filter(|j| j["factory"] == f.name.as_str())
                    .map(|j| {
                        format!(
                            "{} next {}{}",
                            j["job"].as_str().unwrap_or("?"),
                            j["next"].as_str().unwrap_or(if j["running"] == true {
                                "running"
                            } else {
                                "-"
                            }),
                            match j["failures"].as_u64() {
                                Some(0) | None => String::new(),
                                Some(n) => format!(" ({n} failed)"),
                            }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        json.push(serde_json::json!({"factory": f.name, "last_confirmed": confirmed.map(adfdr_core::snapshot::rfc3339),
            "rpo_seconds": rpo, "rpo_target_seconds": target, "jobs": jobs, "last_drill": drill,
            "vanished": vanished}));
        if let Some(v) = &vanished {
            warnings.push(format!(
                "{}: snapshot {v} was committed, and no location holds it: deleted behind adfdr's back? (`adfdr verify`; RPO counts from what the store holds)",
                f.name
            ));
        }
        rows.push(vec![
            f.name.clone(),
            confirmed.map_or("-".into(), adfdr_core::snapshot::rfc3339),
            match (rpo, target) {
                (Some(r), Some(t)) => format!(
                    "{} / {}{}",
                    age(r),
                    age(t),
                    if r > t { " MISSED" } else { "" }
                ),
                (Some(r), None) => age(r),
                (None, _) => {
                    if agent.is_some() {
                        "(agent: see metrics)".into()
                    } else {
                        "never backed up".into()
                    }
                }
            },
            drill_text,
            if jobs.is_empty() {
                "-".into()
            } else {
                jobs.join("; ")
            },
        ]);
    }
    if ctx.json {
        output::json(&serde_json::json!({"agent": agent_status, "factories": json}));
    } else {
        match (&agent, &agent_status) {
            (Some(a), Some(s)) => println!(
                "agent: running (pid {}, socket {})",
                s["agent"]["pid"],
                a.socket().display()
            ),
            _ => println!(
                "agent: not running (socket {} does not answer)",
                config.agent.socket.display()
            ),
        }
        output::table(
            &[
                "FACTORY",
                "LAST CONFIRMED",
                "RPO / TARGET",
                "LAST DRILL",
                "JOBS",
            ],
            &rows,
        );
        for w in &warnings {
            println!("VANISHED {w}");
        }
        if let Some(locations) = agent_status
            .as_ref()
            .and_then(|s| s["locations"].as_object())
        {
            for (name, up) in locations {
                println!(
                    "location {name}: {}",
                    if up == true { "ok" } else { "UNREACHABLE" }
                );
            }
        }
    }
    Ok(if late { exit::CHECK_FAILED } else { exit::OK })
}
