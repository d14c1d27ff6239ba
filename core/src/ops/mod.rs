//! Use cases: backup, verify (and repair), read a snapshot, catalog rebuild,
//! export to git layout, diff. They combine the pure parts (model, snapshot)
//! with the adapters (ARM, stores, keys, catalog) held by an `Engine`.

pub mod backup;
pub mod catalog;
pub mod drill;
pub mod export;
pub mod gitlayout;
pub mod lease;
pub mod prune;
pub mod read;
pub mod restore;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::http::{ClientOptions, Url};

use crate::catalog::{Catalog, CatalogError};
use crate::config::{Config, LocationConfig, LocationUrl};
use crate::factory::arm::ArmClient;
use crate::identity::{self, Identity, IdentityError};
use crate::keys::{KeyError, KeyRing, VaultKey, load_key_file};
use crate::store::azure::{AzureAuth, AzureStore};
use crate::store::fs::FsStore;
use crate::store::{BlobStore, Location, Replicas, StoreError};

/// Exit codes of the CLI contract (design.md section 4).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const DEGRADED: i32 = 3;
    pub const CHECK_FAILED: i32 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Export(Box<export::ExportError>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl From<export::ExportError> for OpError {
    fn from(e: export::ExportError) -> Self {
        OpError::Export(Box::new(e))
    }
}

impl OpError {
    pub fn exit_code(&self) -> i32 {
        match self {
            OpError::Config(_) | OpError::Usage(_) => exit::USAGE,
            OpError::Identity(IdentityError::Missing { .. } | IdentityError::Exposed { .. }) => {
                exit::USAGE
            }
            // A key file that is exposed, missing or the wrong size is a config problem.
            OpError::Key(KeyError::File { .. } | KeyError::Length { .. }) => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

/// Everything a use case needs, built once from the config.
pub struct Engine {
    pub config: Config,
    pub identity: Identity,
    pub options: ClientOptions,
    pub arm: ArmClient,
    pub replicas: Replicas,
    pub keys: KeyRing,
    pub catalog_path: PathBuf,
    catalog: std::sync::OnceLock<Arc<Catalog>>,
}

impl Engine {
    /// Builds clients (no network yet) and loads key files.
    pub fn new(config: Config) -> Result<Engine, OpError> {
        let options = identity::client_options(&config.auth)?;
        let identity = identity::build(&config.auth, &options)?;
        let arm = ArmClient::new(
            config.auth.arm_endpoint.0.clone(),
            identity.credential.clone(),
            options.clone(),
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
            catalog: std::sync::OnceLock::new(),
        })
    }

    /// Hands an already open catalog to this engine (a reloaded config in
    /// the same process: redb allows one opener).
    pub fn adopt_catalog(&self, catalog: Arc<Catalog>) {
        let _ = self.catalog.set(catalog);
    }

    /// The catalog, opened once per process (redb allows one opener).
    pub fn catalog(&self) -> Result<Arc<Catalog>, OpError> {
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

/// `now`, injectable: pure decisions take time as a parameter.
pub type Clock = fn() -> time::OffsetDateTime;

pub fn system_clock() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
