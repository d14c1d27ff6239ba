//! `adfdr config check`: validate the config, then probe every identity,
//! factory, location and key the way backups use them, and name the missing
//! role when access is refused. Exit 2 for an invalid config, 1 when a probe
//! fails.

use adfdr_core::factory::arm::ARM_SCOPE;
use adfdr_core::ops::{OpError, exit};
use adfdr_core::snapshot::DataKey;

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
    pub probes: Vec<ProbeOut>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProbeOut {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

struct Probe {
    what: String,
    result: Result<String, String>,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<i32, OpError> {
    let Command::Check { offline } = cmd;
    let config = ctx.load_config()?;
    // Offline too, every local file the config names is opened as it will
    // be: key files (regular, 0600, exactly 32 bytes), secret and SAS files.
    let engine = adfdr_core::ops::Engine::new(config)?;
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
                },
            );
        } else {
            println!("config {} is valid", engine.config.path.display());
            for k in &keys {
                println!("  ok    {k}");
            }
        }
        return Ok(exit::OK);
    }
    let who = engine.identity.description.clone();
    let mut probes = Vec::new();

    let token = engine
        .identity
        .credential
        .get_token(&[ARM_SCOPE], None)
        .await;
    probes.push(Probe {
        what: format!("identity: {who}"),
        result: token
            .map(|_| "token issued for ARM".into())
            .map_err(|e| format!("no token: {}", first_line(&e.to_string()))),
    });

    for f in &engine.config.factories {
        let fc = f.get_ref();
        let result = match engine.arm.get(&fc.arm_path()).await {
            Ok(_) => Ok("readable".into()),
            Err(e) if matches!(e.status(), Some(401 | 403)) => Err(format!(
                "{who} may not read it (HTTP {} {}); grant 'Reader' on the factory",
                e.status().unwrap_or(0),
                e.code().unwrap_or("")
            )),
            Err(e) if e.status() == Some(404) => {
                Err("not found: check subscription, resource_group and factory".into())
            }
            Err(e) => Err(first_line(&e.to_string()).to_string()),
        };
        probes.push(Probe {
            what: format!(
                "factory {} ({}/{}/{})",
                fc.name, fc.subscription, fc.resource_group, fc.factory
            ),
            result,
        });
        // The drill's scratch factory: drills create and write it.
        if let Some(t) = &fc.drill_target {
            let path = adfdr_core::config::FactoryConfig::adhoc(
                &t.factory,
                &t.subscription,
                &t.resource_group,
                &t.factory,
            )
            .arm_path();
            let result = match engine.arm.get(&path).await {
                Ok(_) => {
                    Ok("readable; drills write here (needs 'Data Factory Contributor')".into())
                }
                Err(e) if e.status() == Some(404) => Ok(format!(
                    "does not exist yet: the first drill creates it (needs 'Data Factory Contributor' on resource group {})",
                    t.resource_group
                )),
                Err(e) if matches!(e.status(), Some(401 | 403)) => Err(format!(
                    "{who} may not use it (HTTP {} {}); grant 'Data Factory Contributor' on it or on resource group {}",
                    e.status().unwrap_or(0),
                    e.code().unwrap_or(""),
                    t.resource_group
                )),
                Err(e) => Err(first_line(&e.to_string()).to_string()),
            };
            probes.push(Probe {
                what: format!(
                    "drill target of {} ({}/{}/{})",
                    fc.name, t.subscription, t.resource_group, t.factory
                ),
                result,
            });
        }
    }

    for l in &engine.replicas.locations {
        let what = format!(
            "location {} ({}){}",
            l.name,
            l.store.describe(),
            if l.read_only { " read-only" } else { "" }
        );
        let result = async {
            l.store.list("v1/").await.map_err(|e| e.to_string())?;
            if l.read_only {
                return Ok("listable".to_string());
            }
            let key = format!("v1/.probe-{}", uuid::Uuid::new_v4().simple());
            l.store
                .put_new(&key, b"adfdr config check".to_vec())
                .await
                .map_err(|e| e.to_string())?;
            l.store.delete(&key).await.map_err(|e| e.to_string())?;
            Ok("list, write and delete work".to_string())
        }
        .await;
        probes.push(Probe { what, result });
    }

    let dek = DataKey::generate();
    for (key, path) in &engine.keys.files {
        // The key was loaded (and its file mode checked) with the engine.
        let wrapped = key.wrap(&dek, "probe", "probe");
        let result = key
            .unwrap(&wrapped, "probe", "probe")
            .map(|_| format!("fingerprint {}", key.fingerprint()))
            .ok_or_else(|| "a wrap made with this key did not unwrap".to_string());
        probes.push(Probe {
            what: format!("key {} (file {})", key.id, path.display()),
            result,
        });
    }
    for vault in &engine.keys.vaults {
        let result = match vault.wrap(&dek).await {
            Ok(w) => vault
                .unwrap(&w)
                .await
                .map(|_| "wrap and unwrap work".into())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        probes.push(Probe {
            what: format!("key {} (Key Vault {})", vault.id, vault.url),
            result,
        });
    }

    let failed = probes.iter().filter(|p| p.result.is_err()).count();
    if ctx.json {
        crate::json::emit(
            "config-check",
            &CheckOutput {
                config: engine.config.path.clone(),
                ok: failed == 0,
                offline: false,
                key_files: Vec::new(),
                probes: probes
                    .iter()
                    .map(|p| ProbeOut {
                        what: p.what.clone(),
                        ok: p.result.is_ok(),
                        detail: match &p.result {
                            Ok(m) | Err(m) => m.clone(),
                        },
                    })
                    .collect(),
            },
        );
    } else {
        println!("config {} is valid", engine.config.path.display());
        for p in &probes {
            match &p.result {
                Ok(m) => println!("  ok    {}: {m}", p.what),
                Err(m) => println!("  FAIL  {}: {m}", p.what),
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}
