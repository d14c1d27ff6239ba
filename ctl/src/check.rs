//! `adfdr config check`: validate the config, then probe every identity,
//! factory, location and key the way backups use them, and name the missing
//! role when access is refused. Exit 2 for an invalid config, 1 when a probe
//! fails.

use crate::exit;
use adfdr_core::ops::OpError;

use crate::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Validate the config and probe access.
    Check {
        /// Only validate the file; no network.
        #[arg(long)]
        offline: bool,
    },
}

/// `adfdr config check --json` (schema `adfdr.config-check.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CheckOutput {
    pub config: std::path::PathBuf,
    /// The config is valid and every probe answered.
    pub ok: bool,
    /// Only the file and the local files it names were checked.
    pub offline: bool,
    /// With --offline: each key file, opened and fingerprinted.
    pub key_files: Vec<String>,
    /// Without --offline: each identity, factory, location and key probed.
    pub probes: Vec<adfdr_core::ops::check::Probe>,
    /// Without --offline: how well each location's storage account protects
    /// the backups. Warnings, never a failure of the check.
    #[serde(default)]
    pub posture: Vec<adfdr_core::plan::posture::Finding>,
    /// Each factory's scheduled jobs and their next five runs.
    #[serde(default)]
    pub schedules: Vec<adfdr_core::ops::check::JobSchedule>,
}

fn print_schedules(schedules: &[adfdr_core::ops::check::JobSchedule]) {
    for s in schedules {
        println!(
            "  next  {} {} = \"{}\" ({}): {}",
            s.factory,
            s.job,
            s.schedule,
            s.timezone,
            s.next.join(", ")
        );
    }
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let Command::Check { offline } = cmd;
    let config = ctx.load_config()?;
    // Offline too, every local file the config names is opened as it will
    // be: key files (regular, 0600, exactly 32 bytes), secret and SAS files.
    let engine = adfdr_core::ops::Engine::new(config)?;
    let schedules = adfdr_core::ops::check::schedules(&engine.config, chrono::Utc::now());
    if offline {
        let keys: Vec<String> = engine
            .keys
            .files
            .iter()
            .map(|(k, p)| {
                format!(
                    "key {} (file {}): fingerprint {}",
                    k.id,
                    p.display(),
                    k.fingerprint()
                )
            })
            .collect();
        if ctx.json {
            crate::json::emit(
                "config-check",
                &CheckOutput {
                    config: engine.config.path.clone(),
                    ok: true,
                    offline: true,
                    key_files: keys,
                    probes: Vec::new(),
                    posture: Vec::new(),
                    schedules,
                },
            );
        } else {
            println!("config {} is valid", engine.config.path.display());
            for k in &keys {
                println!("  ok    {k}");
            }
            print_schedules(&schedules);
        }
        return Ok(exit::OK);
    }
    let (probes, posture) = tokio::join!(
        adfdr_core::ops::check::probe(&engine),
        adfdr_core::ops::check::posture(&engine)
    );
    let failed = probes.iter().filter(|p| !p.ok).count();
    if ctx.json {
        crate::json::emit(
            "config-check",
            &CheckOutput {
                config: engine.config.path.clone(),
                ok: failed == 0,
                offline: false,
                key_files: Vec::new(),
                probes: probes.clone(),
                posture: posture.clone(),
                schedules,
            },
        );
    } else {
        println!("config {} is valid", engine.config.path.display());
        for p in &probes {
            let state = if p.ok { "ok  " } else { "FAIL" };
            println!("  {state}  {}: {}", p.what, p.detail);
        }
        for f in &posture {
            let state = if f.ok { "ok  " } else { "warn" };
            println!("  {state}  {} {}: {}", f.location, f.check, f.detail);
        }
        print_schedules(&schedules);
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}
