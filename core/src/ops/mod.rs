//! Use cases, every one the CLI or the agent runs: backup, verify (and
//! repair), prune, read a snapshot, restore (prepare, execute), drill, holds,
//! status, catalog rebuild and listing, config probes, export to git layout,
//! diff, leases. They combine the pure parts (model, snapshot, plan) with the
//! adapters (ARM, stores, keys, catalog) held by an `Engine`, answer typed
//! results (`contract`) and fail with an `OpError` that carries a kind.

pub mod actor;
pub mod backup;
pub mod capture;
pub mod catalog;
pub mod check;
pub mod contract;
pub mod discover;
pub mod drill;
pub mod export;
pub mod gitlayout;
pub mod history;
pub mod hold;
pub mod job;
pub mod keyuse;
pub mod lease;
pub mod prune;
pub mod read;
pub mod restore;
pub mod status;
#[cfg(test)]
pub mod testing;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::http::{ClientOptions, Url};

use crate::catalog::Catalog;
use crate::config::{Config, LocationConfig, LocationUrl};
use crate::factory::FactoryApi;
use crate::factory::arm::ArmClient;
use crate::identity::{self, Identity};
use crate::keys::{KeyRing, VaultKey, load_key_file};
use crate::store::azure::{AzureAuth, AzureStore};
use crate::store::fs::FsStore;
use crate::store::{BlobStore, Location, Replicas};

pub mod error;

pub use error::{Grant, Kind, OpError};

/// Everything a use case needs, built once from the config.
pub struct Engine {
    pub config: Config,
    pub identity: Identity,
    pub options: ClientOptions,
    pub arm: Arc<dyn FactoryApi>,
    pub replicas: Replicas,
    pub keys: KeyRing,
    pub catalog_path: PathBuf,
    /// Built from flags alone (`--store`/`--key`): no config file, no
    /// catalog, locations only read.
    pub incident: bool,
    catalog: std::sync::OnceLock<Arc<Catalog>>,
}

/// Incident mode (design.md section 4): what a restore needs when there is no
/// config file and no agent, only a login, the stores and a key.
pub struct Incident {
    /// Location URLs (https container or file://); only read.
    pub stores: Vec<String>,
    /// Key files, or Key Vault key URLs (`https://VAULT/keys/NAME`).
    pub keys: Vec<String>,
    pub auth: crate::config::AuthConfig,
}

/// Where incident mode keeps what it records (the audit trail of its
/// restores): the user's state directory, as XDG says.
pub fn incident_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("adfdr")
}

impl Engine {
    /// Builds clients (no network yet) and loads key files.
    pub fn new(config: Config) -> Result<Engine, OpError> {
        Engine::build(config, false)
    }

    fn build(config: Config, incident: bool) -> Result<Engine, OpError> {
        let options = identity::client_options(&config.auth)?;
        let mut identity = identity::build(&config.auth, &options)?;
        if incident {
            identity.fix = "sign in again (`az login`), or choose how with --auth".into();
        }
        let arm: Arc<dyn FactoryApi> = Arc::new(
            ArmClient::new(
                config.auth.arm_endpoint.0.clone(),
                identity.credential.clone(),
                options.clone(),
            )
            .with_deadline(config.auth.request_deadline()),
        );
        let locations = config
            .locations
            .iter()
            .map(|l| location(l.get_ref(), &identity, &options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = KeyRing::default();
        for k in &config.keys {
            let k = k.get_ref();
            if let Some(path) = &k.file {
                keys.files.push((load_key_file(&k.id, path)?, path.clone()));
            }
            if let Some(url) = &k.keyvault {
                keys.vaults
                    .push(VaultKey::new(&k.id, &url.0, &identity, &options)?);
            }
        }
        let catalog_path = Catalog::path_in(&config.agent.state_dir);
        Ok(Engine {
            config,
            identity,
            options,
            arm,
            replicas: Replicas::new(locations),
            keys,
            catalog_path,
            incident: false,
            catalog: std::sync::OnceLock::new(),
        })
    }

    /// An engine from incident-mode flags: the stores (read-only, named
    /// `store1`, `store2`, …) and keys (`key1`, …) as given, the audit trail
    /// under `$XDG_STATE_HOME/adfdr` (or `~/.local/state/adfdr`).
    pub fn incident(incident: Incident) -> Result<Engine, OpError> {
        use crate::config::{AgentConfig, BackupConfig, HttpsUrl, KeyConfig, Spanned};
        let mut locations = Vec::new();
        for (i, url) in incident.stores.iter().enumerate() {
            let url =
                LocationUrl::parse(url).map_err(|e| OpError::usage(format!("--store {e}")))?;
            locations.push(Spanned::new(
                0..0,
                LocationConfig {
                    name: format!("store{}", i + 1),
                    url,
                    read_only: true,
                    sas_file: None,
                    immutability_days: None,
                    account: None,
                },
            ));
        }
        let mut keys = Vec::new();
        for (i, k) in incident.keys.iter().enumerate() {
            let id = format!("key{}", i + 1);
            let key = if k.starts_with("https://") {
                let url = Url::parse(k)
                    .map_err(|e| OpError::usage(format!("--key {k:?} is not a URL: {e}")))?;
                KeyConfig {
                    id,
                    keyvault: Some(HttpsUrl(url)),
                    file: None,
                }
            } else {
                KeyConfig {
                    id,
                    keyvault: None,
                    file: Some(PathBuf::from(k)),
                }
            };
            keys.push(Spanned::new(0..0, key));
        }
        let state_dir = incident_state_dir();
        let config = Config {
            agent: AgentConfig {
                state_dir,
                ..AgentConfig::default()
            },
            auth: incident.auth,
            backup: BackupConfig::default(),
            locations,
            keys,
            factories: Vec::new(),
            notify: Vec::new(),
            discover: Vec::new(),
            policies: Default::default(),
            path: PathBuf::from("(incident mode: --store and --key)"),
        };
        let mut engine = Engine::build(config, true)?;
        engine.incident = true;
        Ok(engine)
    }

    /// Hands an already open catalog to this engine (a reloaded config in
    /// the same process: redb allows one opener).
    pub fn adopt_catalog(&self, catalog: Arc<Catalog>) {
        let _ = self.catalog.set(catalog);
    }

    /// The catalog, opened once per process (redb allows one opener).
    pub fn catalog(&self) -> Result<Arc<Catalog>, OpError> {
        if self.incident {
            return Err(OpError::usage(
                "incident mode keeps no catalog: run this with a config file",
            ));
        }
        if let Some(c) = self.catalog.get() {
            return Ok(c.clone());
        }
        let opened = Arc::new(Catalog::open(&self.catalog_path)?);
        Ok(self.catalog.get_or_init(|| opened).clone())
    }
}

/// Builds one location's store from its config.
pub fn location(
    l: &LocationConfig,
    identity: &Identity,
    options: &ClientOptions,
) -> Result<Location, OpError> {
    let store: Arc<dyn BlobStore> = match &l.url {
        LocationUrl::Dir(path) => Arc::new(FsStore::new(path)),
        LocationUrl::Azure(url) => {
            let auth = match &l.sas_file {
                Some(file) => {
                    let bytes = identity::read_secret_file(file)?;
                    let text = String::from_utf8_lossy(&bytes).trim().to_string();
                    // Accept a bare query string or a whole SAS URL.
                    let query = match Url::parse(&text) {
                        Ok(u) => u.query().unwrap_or("").to_string(),
                        Err(_) => text.trim_start_matches('?').to_string(),
                    };
                    AzureAuth::Sas {
                        query,
                        source: file.display().to_string(),
                    }
                }
                None => AzureAuth::Entra {
                    credential: identity.credential.clone(),
                    identity: identity.description.clone(),
                    fix: identity.fix.clone(),
                },
            };
            Arc::new(AzureStore::new(
                url,
                auth,
                options.clone(),
                l.immutability_days,
            )?)
        }
    };
    Ok(Location {
        name: l.name.clone(),
        store,
        read_only: l.read_only,
    })
}

/// Milliseconds of a duration, as the reports keep them (u64: JSON has no
/// 128-bit integers).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `now`, injectable: pure decisions take time as a parameter.
pub type Clock = fn() -> time::OffsetDateTime;

pub fn system_clock() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
