//! Who adfdr is: one Entra ID credential from the `[auth]` table, shared by the
//! ARM, Blob and Key Vault clients. azure_identity caches tokens and refreshes
//! them five minutes before expiry; the bearer policy refetches after a 401.

use std::path::Path;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use zeroize::Zeroizing;

use crate::config::{AuthConfig, AuthMethod};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("auth.{key} is required for method {method}")]
    Missing {
        key: &'static str,
        method: &'static str,
    },
    #[error(
        "secret file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path} (or use a systemd credential)"
    )]
    Exposed { path: String, mode: u32 },
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: String,
        source: crate::localfile::LocalFileError,
    },
    #[error("secret file {path} is empty")]
    Empty { path: String },
    #[error("cannot set up the {method} credential: {detail}")]
    Build {
        method: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
}

/// A credential and a description of it for error messages (never a secret).
#[derive(Clone)]
pub struct Identity {
    pub credential: Arc<dyn TokenCredential>,
    pub description: String,
    /// Where to fix a failed sign-in (the config's [auth], or incident
    /// mode's flags).
    pub fix: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.description)
    }
}

/// Client options for every Azure client: the transport (with `ca_file`), the
/// authority host, and a retry policy that honours Retry-After but gives up on
/// an unreachable endpoint within seconds rather than a minute.
pub fn client_options(auth: &AuthConfig) -> Result<ClientOptions, IdentityError> {
    let transport = crate::transport::transport(auth.ca_file.as_deref())?;
    let arm_host = auth.arm_endpoint.0.host_str().unwrap_or("").to_string();
    let mut options = ClientOptions {
        transport: Some(transport),
        retry: retry_options(),
        per_try_policies: vec![
            crate::telemetry::CountThrottled::policy(&arm_host),
            crate::telemetry::CapRetryAfter::policy(),
        ],
        ..Default::default()
    };
    if let Some(host) = &auth.authority_host {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = host.0.as_str().trim_end_matches('/').to_string();
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    }
    Ok(options)
}

/// Retries 408/429/5xx and dropped connections with exponential backoff;
/// Retry-After wins when the service sends it. Six tries (about 6 s of
/// backoff) so an unreachable endpoint fails in seconds, not minutes.
pub fn retry_options() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(100),
        max_retries: 5,
        max_total_elapsed: azure_core::time::Duration::seconds(120),
        max_delay: azure_core::time::Duration::seconds(30),
    })
}

/// Reads a secret file, refusing one that group or others can read.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    let shown = path.display().to_string();
    crate::localfile::read_private(path).map_err(|source| match source {
        crate::localfile::LocalFileError::Exposed { mode } => {
            IdentityError::Exposed { path: shown, mode }
        }
        source => IdentityError::Read {
            path: shown,
            source,
        },
    })
}

pub fn build(auth: &AuthConfig, options: &ClientOptions) -> Result<Identity, IdentityError> {
    let build_err = |method: &'static str| {
        move |e: azure_core::Error| IdentityError::Build {
            method,
            detail: e.to_string(),
        }
    };
    match auth.method {
        AuthMethod::ManagedIdentity => {
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: auth.client_id.clone().map(UserAssignedId::ClientId),
                    client_options: options.clone(),
                }))
                .map_err(build_err("managed-identity"))?;
            let description = match &auth.client_id {
                Some(id) => format!("managed identity (client id {id})"),
                None => "the system-assigned managed identity".into(),
            };
            Ok(Identity {
                credential,
                description,
                fix: "fix the credential in [auth]".into(),
            })
        }
        AuthMethod::WorkloadIdentity => {
            let credential =
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options.clone(),
                    },
                    client_id: auth.client_id.clone(),
                    tenant_id: auth.tenant_id.clone(),
                    token_file_path: auth.token_file.clone(),
                }))
                .map_err(build_err("workload-identity"))?;
            Ok(Identity {
                credential,
                description: format!(
                    "workload identity (client id {})",
                    auth.client_id.as_deref().unwrap_or("from AZURE_CLIENT_ID")
                ),
                fix: "fix the credential in [auth]".into(),
            })
        }
        AuthMethod::ClientSecret => {
            let method = "client-secret";
            let client_id = auth.client_id.clone().ok_or(IdentityError::Missing {
                key: "client_id",
                method,
            })?;
            let tenant = auth.tenant_id.clone().ok_or(IdentityError::Missing {
                key: "tenant_id",
                method,
            })?;
            let file = auth
                .client_secret_file
                .as_ref()
                .ok_or(IdentityError::Missing {
                    key: "client_secret_file",
                    method,
                })?;
            let bytes = read_secret_file(file)?;
            let secret = String::from_utf8_lossy(&bytes).trim().to_string();
            if secret.is_empty() {
                return Err(IdentityError::Empty {
                    path: file.display().to_string(),
                });
            }
            let credential = ClientSecretCredential::new(
                &tenant,
                client_id.clone(),
                Secret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: options.clone(),
                }),
            )
            .map_err(build_err(method))?;
            Ok(Identity {
                credential,
                description: format!("app {client_id} (tenant {tenant})"),
                fix: "fix the credential in [auth]".into(),
            })
        }
        AuthMethod::AzureCli => {
            let credential = AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: auth.tenant_id.clone(),
                ..Default::default()
            }))
            .map_err(build_err("azure-cli"))?;
            Ok(Identity {
                credential,
                description: "the Azure CLI login (az account show)".into(),
                fix: "fix the credential in [auth]".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_group_readable_secret_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("adfdr-id-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("secret");
        std::fs::write(&path, "s3cret").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = read_secret_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("chmod 600") && e.contains("640") && !e.contains("s3cret"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(&read_secret_file(&path).expect("read")[..], b"s3cret");
        std::fs::remove_dir_all(&dir).ok();
    }
}
