//! Incident mode's flags: `--store URL… --key FILE|KEYVAULT-KEY-URL` and how
//! to sign in, with no config file (the engine is `Engine::incident`).

use std::path::PathBuf;

use adfdr_core::config::{AuthConfig, AuthMethod, HttpsUrl};
use adfdr_core::ops::{Incident, OpError};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Auth {
    AzureCli,
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
}

#[derive(clap::Args, Debug)]
pub struct IncidentArgs {
    /// Incident mode: read snapshots from this location (repeatable; an
    /// https container URL, file:// or a directory path), without a config
    /// file [env: ADFDR_STORE, comma-separated; ADFDR_STORE_FILE: a file of
    /// them, one per line].
    #[arg(long, value_name = "URL", help_heading = "Incident mode")]
    pub store: Vec<String>,
    /// Incident mode: a key file or a Key Vault key URL (repeatable) [env:
    /// ADFDR_KEY; ADFDR_KEY_FILE: a file naming them, one per line].
    #[arg(long, value_name = "FILE|URL", help_heading = "Incident mode")]
    pub key: Vec<String>,
    /// Incident mode: how to sign in.
    #[arg(
        long,
        value_enum,
        default_value = "azure-cli",
        help_heading = "Incident mode"
    )]
    pub auth: Auth,
    #[arg(long, help_heading = "Incident mode")]
    pub client_id: Option<String>,
    #[arg(long, help_heading = "Incident mode")]
    pub tenant_id: Option<String>,
    #[arg(long, value_name = "FILE", help_heading = "Incident mode")]
    pub client_secret_file: Option<PathBuf>,
    #[arg(long, value_name = "URL", help_heading = "Incident mode", default_value = adfdr_core::config::DEFAULT_ARM)]
    pub arm_endpoint: String,
    #[arg(long, value_name = "URL", help_heading = "Incident mode")]
    pub authority_host: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    #[arg(long, value_name = "FILE", help_heading = "Incident mode")]
    pub ca_file: Option<PathBuf>,
}

fn https(flag: &str, text: &str) -> Result<HttpsUrl, OpError> {
    let url = url::Url::parse(text)
        .map_err(|e| OpError::usage(format!("{flag} {text:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(OpError::usage(format!(
            "{flag} {text:?} must use https: Entra tokens are only sent over TLS"
        )));
    }
    Ok(HttpsUrl(url))
}

/// Values from the flag, else from `VAR` (comma-separated), else from the
/// file `VAR_FILE` names (one per line), as restic reads its repository.
fn from_env(flag: &[String], var: &str) -> Result<Vec<String>, OpError> {
    if !flag.is_empty() {
        return Ok(flag.to_vec());
    }
    let split = |text: &str, sep: char| -> Vec<String> {
        text.split(sep)
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    if let Ok(v) = std::env::var(var) {
        return Ok(split(&v, ','));
    }
    match std::env::var_os(format!("{var}_FILE")) {
        Some(path) => {
            let bytes = adfdr_core::localfile::read_capped(std::path::Path::new(&path), 64 << 10)
                .map_err(|e| OpError::usage(format!("{var}_FILE: {e}")))?;
            Ok(split(&String::from_utf8_lossy(&bytes), '\n'))
        }
        None => Ok(Vec::new()),
    }
}

impl IncidentArgs {
    /// The stores given (flags or environment).
    pub fn stores(&self) -> Result<Vec<String>, OpError> {
        from_env(&self.store, "ADFDR_STORE")
    }

    /// Incident mode when `--store` (or ADFDR_STORE) is given; `--key`
    /// without it is a usage error (with a config, keys come from [[key]]).
    pub fn incident(&self) -> Result<Option<Incident>, OpError> {
        let stores = self.stores()?;
        let keys = from_env(&self.key, "ADFDR_KEY")?;
        if stores.is_empty() {
            if !self.key.is_empty() {
                return Err(OpError::usage(
                    "--key is for incident mode (with --store); with a config, keys come from [[key]]",
                ));
            }
            return Ok(None);
        }
        let auth = AuthConfig {
            method: match self.auth {
                Auth::AzureCli => AuthMethod::AzureCli,
                Auth::ManagedIdentity => AuthMethod::ManagedIdentity,
                Auth::WorkloadIdentity => AuthMethod::WorkloadIdentity,
                Auth::ClientSecret => AuthMethod::ClientSecret,
            },
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            client_secret_file: self.client_secret_file.clone(),
            token_file: None,
            arm_endpoint: https("--arm-endpoint", &self.arm_endpoint)?,
            authority_host: self
                .authority_host
                .as_deref()
                .map(|a| https("--authority-host", a))
                .transpose()?,
            ca_file: self.ca_file.clone(),
            request_deadline: None,
        };
        Ok(Some(Incident { stores, keys, auth }))
    }
}

/// The engine a read command works with: incident mode's when `--store`
/// is given (no config file is read), else the config's. Incident mode
/// without a key can only list what the store holds.
pub fn engine(ctx: &crate::Ctx, args: &IncidentArgs) -> Result<adfdr_core::ops::Engine, OpError> {
    let engine = engine_keyless(ctx, args)?;
    if engine.incident && engine.keys.is_empty() {
        return Err(OpError::usage(
            "incident mode needs --key FILE or --key https://VAULT.vault.azure.net/keys/NAME to open snapshots (or ADFDR_KEY); `adfdr snapshots --store URL` lists what the store holds without one",
        ));
    }
    Ok(engine)
}

/// `engine`, where incident mode may go without a key (`snapshots` lists
/// what the store holds from the public headers).
pub fn engine_keyless(
    ctx: &crate::Ctx,
    args: &IncidentArgs,
) -> Result<adfdr_core::ops::Engine, OpError> {
    match args.incident()? {
        Some(incident) => adfdr_core::ops::Engine::incident(incident),
        None => ctx.engine(),
    }
}

/// `--factory` of a read command: a configured name, or in incident mode
/// any name the store holds (there is no config to check it against).
pub fn factory(
    engine: &adfdr_core::ops::Engine,
    name: Option<&str>,
) -> Result<Option<String>, OpError> {
    if engine.incident {
        return Ok(name.map(str::to_string));
    }
    crate::output::factory_filter(&engine.config, name)
}

/// The running agent, when there is one to go through (never in incident
/// mode: that reads the given store, not the host's).
pub fn agent(engine: &adfdr_core::ops::Engine) -> Option<crate::agent::Agent> {
    if engine.incident {
        return None;
    }
    crate::agent::Agent::find(&engine.config)
}
