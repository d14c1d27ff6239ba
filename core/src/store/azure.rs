//! An Azure Blob Storage container as a location, through azure_storage_blob 1.x:
//! Entra bearer tokens from the configured identity, or a SAS URL read from a
//! file. Writes carry `If-None-Match: *`, and, when the location asks for it, a
//! time-based immutability policy (version-level WORM) of N days.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{
    BlobClientUploadOptions, BlobContainerClientListBlobsOptions, ImmutabilityPolicyMode,
};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions, StorageError as SdkError,
};
use futures::TryStreamExt;

use super::{BlobStore, ObjectInfo, StoreError};

/// How a container is reached.
pub enum AzureAuth {
    /// Entra ID; `identity` describes who it is for error messages.
    Entra {
        credential: Arc<dyn TokenCredential>,
        identity: String,
    },
    /// A SAS query string (secret: never printed); `source` names the file.
    Sas { query: String, source: String },
}

pub struct AzureStore {
    shown: String,
    container: BlobContainerClient,
    immutability_days: Option<u32>,
    who: String,
    sas: bool,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AzureStore({})", self.shown)
    }
}

impl AzureStore {
    /// `url` is the container URL (`https://acct.blob.core.windows.net/adfdr`).
    pub fn new(
        url: &Url,
        auth: AzureAuth,
        client_options: ClientOptions,
        immutability_days: Option<u32>,
    ) -> Result<Self, StoreError> {
        let shown = url.as_str().trim_end_matches('/').to_string();
        let options = BlobContainerClientOptions {
            client_options,
            ..Default::default()
        };
        let (container, who, sas) = match auth {
            AzureAuth::Entra {
                credential,
                identity,
            } => (
                BlobContainerClient::new(url.clone(), Some(credential), Some(options)),
                identity,
                false,
            ),
            AzureAuth::Sas { query, source } => {
                let mut with_sas = url.clone();
                with_sas.set_query(Some(query.trim_start_matches('?')));
                (
                    BlobContainerClient::new(with_sas, None, Some(options)),
                    format!("the SAS from {source}"),
                    true,
                )
            }
        };
        let container = container.map_err(|e| StoreError::Failed {
            location: shown.clone(),
            op: "open",
            key: String::new(),
            detail: e.to_string(),
        })?;
        Ok(AzureStore {
            shown,
            container,
            immutability_days,
            who,
            sas,
        })
    }

    fn error(&self, op: &'static str, key: &str, err: azure_core::Error) -> StoreError {
        let transport = !matches!(
            err.kind(),
            azure_core::error::ErrorKind::HttpResponse { .. }
        );
        if transport {
            return StoreError::Unreachable {
                location: self.shown.clone(),
                op,
                key: key.to_string(),
                detail: first_line(&err.to_string()).to_string(),
            };
        }
        let sdk = SdkError::try_from(err);
        let (status, code, message) = match &sdk {
            Ok(e) => (
                u16::from(e.status_code),
                e.error_code
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            ),
            Err(e) => (0, String::new(), e.to_string()),
        };
        if status == 409 && code.contains("BlobAlreadyExists") {
            return StoreError::Exists {
                location: self.shown.clone(),
                key: key.to_string(),
            };
        }
        if status == 401 || status == 403 {
            let role = if matches!(op, "read" | "list") {
                "Storage Blob Data Reader (or Contributor)"
            } else {
                "Storage Blob Data Contributor"
            };
            let hint = if self.sas {
                format!(
                    "{} is expired or lacks permission for {op}; a backup location's SAS needs racwl",
                    self.who
                )
            } else {
                format!(
                    "{} needs the role '{role}' on the container {} (or its storage account)",
                    self.who, self.shown
                )
            };
            return StoreError::Denied {
                location: self.shown.clone(),
                op,
                key: key.to_string(),
                status,
                detail: format!("{code} {}", first_line(&message)),
                hint,
            };
        }
        StoreError::Failed {
            location: self.shown.clone(),
            op,
            key: key.to_string(),
            detail: format!("HTTP {status} {code} {}", first_line(&message)),
        }
    }

    async fn upload(&self, key: &str, bytes: Vec<u8>, new: bool) -> Result<(), StoreError> {
        let mut options = BlobClientUploadOptions::default();
        if new {
            options = options.if_not_exists();
        }
        if let Some(days) = self.immutability_days {
            options.immutability_policy_expiry =
                Some(time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)));
            options.immutability_policy_mode = Some(ImmutabilityPolicyMode::Unlocked);
        }
        self.container
            .blob_client(key)
            .upload(RequestContent::from(bytes), Some(options))
            .await
            .map(|_| ())
            .map_err(|e| self.error("write", key, e))
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

#[async_trait]
impl BlobStore for AzureStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(key, bytes, true).await
    }

    async fn put_replace(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(key, bytes, false).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let blob = self.container.blob_client(key);
        match blob.download(None).await {
            Ok(response) => {
                let body = response
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.error("read", key, e))?;
                Ok(Some(body.to_vec()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("read", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        };
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| self.error("list", prefix, e))?;
        let mut out = Vec::new();
        loop {
            match pager.try_next().await {
                Ok(Some(item)) => {
                    if let Some(name) = item.name {
                        let size = item.properties.and_then(|p| p.content_length).unwrap_or(0);
                        out.push(ObjectInfo { key: name, size });
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.error("list", prefix, e)),
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        match self.container.blob_client(key).delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }
}

fn is_not_found(err: &azure_core::Error) -> bool {
    matches!(
        err.kind(),
        azure_core::error::ErrorKind::HttpResponse {
            status: StatusCode::NotFound,
            ..
        }
    )
}
