//! `adfdr status`: per factory the last confirmed backup, RPO against its
//! target, the last drill, the agent's jobs (next runs, failures) and
//! location health; from the agent when it runs, else from the local
//! catalog (the use case is `adfdr_core::ops::status`).

use std::collections::BTreeMap;

use crate::exit;
use adfdr_core::ops::status::{FactoryRow, locations, report};
use adfdr_core::ops::{OpError, system_clock};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Ctx, output};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Every factory configured, discovered or in the store (read from the
    /// store, whichever agent wrote it), and which need attention: no recent
    /// backup, none proven by a drill, an RPO breach, a source gone.
    #[arg(long)]
    fleet: bool,
}

/// `adfdr status --fleet`.
async fn fleet(ctx: &Ctx) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let f = adfdr_core::ops::status::fleet(&engine, system_clock()).await?;
    if ctx.json {
        crate::json::emit("status-fleet", &f);
    } else {
        if let Some(e) = &f.discovery_error {
            crate::warning!("discovery failed, so factories it would find are not shown: {e}");
        }
        let rows: Vec<Vec<String>> = f
            .factories
            .iter()
            .map(|r| {
                vec![
                    r.factory.clone(),
                    r.subscription.clone().unwrap_or_else(|| "-".into()),
                    r.policy.clone().unwrap_or_else(|| "-".into()),
                    r.last_confirmed.clone().unwrap_or_else(|| "never".into()),
                    r.last_proven.clone().unwrap_or_else(|| "never".into()),
                    if r.attention.is_empty() {
                        "ok".into()
                    } else {
                        r.attention.join("; ")
                    },
                ]
            })
            .collect();
        output::table(
            &[
                "FACTORY",
                "SUBSCRIPTION",
                "POLICY",
                "LAST CONFIRMED",
                "PROVEN",
                "ATTENTION",
            ],
            &rows,
        );
        println!(
            "{} of {} factories need attention",
            f.needs_attention,
            f.factories.len()
        );
    }
    Ok(if f.needs_attention > 0 {
        exit::CHECK_FAILED
    } else {
        exit::OK
    })
}

/// `adfdr status --json` (schema `adfdr.status.v1`).
#[derive(Serialize, JsonSchema)]
pub struct StatusOutput {
    /// The running agent; null when none answers on its socket.
    pub agent: Option<AgentOut>,
    pub factories: Vec<FactoryRow>,
    /// Location -> answered at the agent's last job (empty without an agent).
    pub locations: BTreeMap<String, bool>,
}

#[derive(Serialize, JsonSchema)]
pub struct AgentOut {
    pub pid: u32,
    pub version: String,
    pub socket: String,
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    if args.fleet {
        return fleet(ctx).await;
    }
    let engine = ctx.engine()?;
    let agent = crate::agent::Agent::find(&engine.config);
    let reply = match &agent {
        Some(a) => Some(a.status().await?),
        None => None,
    };
    let rows = report(&engine, reply.as_ref(), system_clock()).await?;
    let out = StatusOutput {
        agent: reply.as_ref().zip(agent.as_ref()).map(|(r, a)| AgentOut {
            pid: r.agent.pid,
            version: r.agent.version.clone(),
            socket: a.socket().display().to_string(),
        }),
        locations: locations(reply.as_ref()),
        factories: rows,
    };
    if ctx.json {
        crate::json::emit("status", &out);
    } else {
        print(&out, &engine.config.agent.socket);
    }
    Ok(if out.factories.iter().any(FactoryRow::failed) {
        exit::CHECK_FAILED
    } else {
        exit::OK
    })
}

fn print(out: &StatusOutput, socket: &std::path::Path) {
    match &out.agent {
        Some(a) => println!("agent: running (pid {}, socket {})", a.pid, a.socket),
        None => println!(
            "agent: not running (socket {} does not answer)",
            socket.display()
        ),
    }
    let rows: Vec<Vec<String>> = out
        .factories
        .iter()
        .map(|f| row(f, out.agent.is_some()))
        .collect();
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
    for f in out.factories.iter().filter(|f| f.vanished.is_some()) {
        println!(
            "VANISHED {}: snapshot {} was committed, and no location holds it: deleted behind adfdr's back? (`adfdr verify`; RPO counts from what the store holds)",
            f.factory,
            f.vanished.as_deref().unwrap_or("?")
        );
    }
    for (name, up) in &out.locations {
        println!(
            "location {name}: {}",
            if *up { "ok" } else { "UNREACHABLE" }
        );
    }
}

fn row(f: &FactoryRow, agent: bool) -> Vec<String> {
    let rpo = match (f.rpo_seconds, f.rpo_target_seconds) {
        (Some(r), Some(t)) => format!(
            "{} / {}{}",
            age(r),
            age(t),
            if r > t { " MISSED" } else { "" }
        ),
        (Some(r), None) => age(r),
        (None, _) if agent => "(agent: see metrics)".into(),
        (None, _) => "never backed up".into(),
    };
    let drill = f.last_drill.as_ref().map_or("-".to_string(), |d| {
        format!(
            "{} {}{}",
            d.started,
            d.verdict.to_uppercase(),
            d.rto_seconds
                .map(|r| format!(" (RTO {})", adfdr_core::plan::drill::human(r)))
                .unwrap_or_default()
        )
    });
    let jobs: Vec<String> = f
        .jobs
        .iter()
        .map(|j| {
            format!(
                "{} next {}{}",
                j.job.name(),
                j.next
                    .as_deref()
                    .unwrap_or(if j.running { "running" } else { "-" }),
                if j.failures == 0 {
                    String::new()
                } else {
                    format!(" ({} failed)", j.failures)
                }
            )
        })
        .collect();
    vec![
        f.factory.clone(),
        f.last_confirmed.clone().unwrap_or_else(|| "-".into()),
        rpo,
        drill,
        if jobs.is_empty() {
            "-".into()
        } else {
            jobs.join("; ")
        },
    ]
}
