//! An Azure Blob Storage container as a location, through azure_storage_blob 1.x:
//! Entra bearer tokens from the configured identity, or a SAS URL read from a
//! file. Writes carry `If-None-Match: *`, and, when the location asks for it, a
//! time-based immutability policy (version-level WORM) of N days.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseResultHeaders, BlobClientBreakLeaseOptions, BlobClientDownloadOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientSetMetadataOptions, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, ImmutabilityPolicyMode,
};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions, StorageError as SdkError,
};
use base64::Engine as _;
use futures::TryStreamExt;

use super::{BlobStore, Holder, LeaseAttempt, ObjectInfo, StoreError};

/// Reads and writes of whole objects, and listings.
const DATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Deletes and lease calls.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How a container is reached.
pub enum AzureAuth {
    /// Entra ID; `identity` describes who it is for error messages, `fix`
    /// says where its sign-in is set (the config's [auth], or incident
    /// mode's flags).
    Entra {
        credential: Arc<dyn TokenCredential>,
        identity: String,
        fix: String,
    },
    /// A SAS query string (secret: never printed); `source` names the file.
    Sas { query: String, source: String },
}

pub struct AzureStore {
    shown: String,
    container: BlobContainerClient,
    immutability_days: Option<u32>,
    who: String,
    /// Where the Entra sign-in is set, for a failed sign-in's hint.
    fix: String,
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
        let (container, who, fix) = match auth {
            AzureAuth::Entra {
                credential,
                identity,
                fix,
            } => (
                BlobContainerClient::new(url.clone(), Some(credential), Some(options)),
                identity,
                Some(fix),
            ),
            AzureAuth::Sas { query, source } => {
                let mut with_sas = url.clone();
                with_sas.set_query(Some(query.trim_start_matches('?')));
                (
                    BlobContainerClient::new(with_sas, None, Some(options)),
                    format!("the SAS from {source}"),
                    None,
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
            sas: fix.is_none(),
            fix: fix.unwrap_or_default(),
        })
    }

    fn error(&self, op: &'static str, key: &str, err: azure_core::Error) -> StoreError {
        let transport = !matches!(
            err.kind(),
            azure_core::error::ErrorKind::HttpResponse { .. }
        );
        if crate::factory::arm::is_credential_error(&err) {
            return StoreError::Denied {
                location: self.shown.clone(),
                op,
                key: key.to_string(),
                status: 401,
                detail: chain(&err),
                hint: format!("signing in as {} failed: {}", self.who, self.fix),
                grant: None,
            };
        }
        if transport {
            return StoreError::Unreachable {
                location: self.shown.clone(),
                op,
                key: key.to_string(),
                detail: transport_detail(&self.shown, &chain(&err)),
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
                grant: (!self.sas).then(|| {
                    Box::new(adfdr_contract::Grant {
                        principal: self.who.clone(),
                        role: role.split(" (").next().unwrap_or(role).to_string(),
                        scope: self.shown.clone(),
                        action: None,
                    })
                }),
            };
        }
        StoreError::Failed {
            location: self.shown.clone(),
            op,
            key: key.to_string(),
            detail: format!("HTTP {status} {code} {}", first_line(&message)),
        }
    }

    async fn upload(
        &self,
        key: &str,
        bytes: azure_core::Bytes,
        new: bool,
    ) -> Result<(), StoreError> {
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
            .upload(
                // Shared, not copied: the inherent `from` takes a Vec.
                <RequestContent<azure_core::Bytes, azure_core::http::NoFormat> as From<
                    azure_core::Bytes,
                >>::from(bytes),
                Some(options),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.error("write", key, e))
    }
}

/// What a connection failure was, told apart for the person at the
/// keyboard: a host that does not resolve is a typo in the account name, a
/// TLS failure a proxy or a CA, anything else the network.
fn transport_detail(shown: &str, chain: &str) -> String {
    let lower = chain.to_ascii_lowercase();
    let host = url::Url::parse(shown)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        format!(
            "the host {host} does not resolve: check the storage account name in the URL ({chain})"
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        format!(
            "TLS with {host} failed: behind a TLS-inspecting proxy, trust its CA (auth.ca_file, --ca-file) ({chain})"
        )
    } else {
        chain.to_string()
    }
}

/// The HTTP status and storage error code of a failed call, if it got a response.
fn status_code(err: &azure_core::Error) -> Option<(u16, String)> {
    let azure_core::error::ErrorKind::HttpResponse {
        status, error_code, ..
    } = err.kind()
    else {
        return None;
    };
    Some((u16::from(*status), error_code.clone().unwrap_or_default()))
}

impl AzureStore {
    /// Whether the lease on `key` is an infinite one.
    async fn infinite_lease(&self, key: &str) -> bool {
        use azure_storage_blob::models::{BlobClientGetPropertiesResultHeaders, LeaseDuration};
        self.container
            .blob_client(key)
            .get_properties(None)
            .await
            .ok()
            .and_then(|p| p.duration().ok().flatten())
            == Some(LeaseDuration::Infinite)
    }

    /// Who holds the lease on `key`, from the blob's metadata.
    async fn holder(&self, key: &str) -> Option<Holder> {
        let props = self
            .container
            .blob_client(key)
            .get_properties(None)
            .await
            .ok()?;
        let meta = props.metadata().ok()?;
        let text = base64::engine::general_purpose::STANDARD
            .decode(meta.get("holder")?)
            .ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// The error and its causes, one line each (the retry policy wraps the
/// cause in context).
fn chain(err: &azure_core::Error) -> String {
    let mut detail = first_line(&err.to_string()).to_string();
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        let line = first_line(&cause.to_string()).to_string();
        if !detail.contains(&line) {
            detail = format!("{detail}: {line}");
        }
        next = cause.source();
    }
    detail
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

#[async_trait]
impl BlobStore for AzureStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn create(&self) -> Result<bool, StoreError> {
        let call = async {
            match self.container.create(None).await {
                Ok(_) => Ok(true),
                Err(e) if status_code(&e).is_some_and(|(s, _)| s == 409) => Ok(false),
                Err(e) => Err(self.error("create the container", "", e)),
            }
        };
        self.timed("create the container", "", CALL_TIMEOUT, call)
            .await
    }

    async fn put_new(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError> {
        self.timed("write", key, DATA_TIMEOUT, self.upload(key, bytes, true))
            .await
    }

    async fn put_replace(&self, key: &str, bytes: azure_core::Bytes) -> Result<(), StoreError> {
        self.timed("write", key, DATA_TIMEOUT, self.upload(key, bytes, false))
            .await
    }

    async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let blob = self.container.blob_client(key);
        // Ask for one byte more than allowed: a larger blob shows itself
        // without being downloaded whole.
        let wanted = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
        let options = BlobClientDownloadOptions {
            range: Some((0..wanted).into()),
            ..Default::default()
        };
        let read = async {
            match blob.download(Some(options)).await {
                Ok(response) => {
                    let body = response
                        .body
                        .collect()
                        .await
                        .map_err(|e| self.error("read", key, e))?;
                    Ok(Some(body.to_vec()))
                }
                Err(e) if is_not_found(&e) => Ok(None),
                // A range of an empty blob is "not satisfiable".
                Err(e) if matches!(status_code(&e), Some((416, _))) => Ok(Some(Vec::new())),
                Err(e) => Err(self.error("read", key, e)),
            }
        };
        let bytes = self.timed("read", key, DATA_TIMEOUT, read).await?;
        match bytes {
            Some(b) if b.len() as u64 > max => Err(StoreError::Failed {
                location: self.shown.clone(),
                op: "read",
                key: key.to_string(),
                detail: format!(
                    "is larger than the {max} bytes its kind of object can be: refused"
                ),
            }),
            other => Ok(other),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.timed("list", prefix, DATA_TIMEOUT, self.list_all(prefix))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let delete = async {
            match self.container.blob_client(key).delete(None).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(self.error("delete", key, e)),
            }
        };
        self.timed("delete", key, CALL_TIMEOUT, delete).await
    }

    async fn lease_acquire(
        &self,
        key: &str,
        seconds: u32,
        holder: &Holder,
    ) -> Result<LeaseAttempt, StoreError> {
        self.timed(
            "lease",
            key,
            CALL_TIMEOUT,
            self.acquire(key, seconds, holder),
        )
        .await
    }

    async fn lease_renew(&self, key: &str, id: &str, _seconds: u32) -> Result<bool, StoreError> {
        // Azure renews for the duration the lease was acquired with.
        let renew = async {
            match self
                .container
                .blob_client(key)
                .renew_lease(id.to_string(), None)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if matches!(status_code(&e), Some((404 | 409 | 412, _))) => Ok(false),
                Err(e) => Err(self.error("lease", key, e)),
            }
        };
        self.timed("lease", key, CALL_TIMEOUT, renew).await
    }

    async fn lease_release(&self, key: &str, id: &str) -> Result<(), StoreError> {
        let release = async {
            match self
                .container
                .blob_client(key)
                .release_lease(id.to_string(), None)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if matches!(status_code(&e), Some((404 | 409 | 412, _))) => Ok(()),
                Err(e) => Err(self.error("lease", key, e)),
            }
        };
        self.timed("lease", key, CALL_TIMEOUT, release).await
    }

    async fn lease_break(&self, key: &str) -> Result<(), StoreError> {
        let options = BlobClientBreakLeaseOptions {
            break_period: Some(0),
            ..Default::default()
        };
        let brk = async {
            match self
                .container
                .blob_client(key)
                .break_lease(Some(options))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if matches!(status_code(&e), Some((404 | 409, _))) => Ok(()),
                Err(e) => Err(self.error("lease", key, e)),
            }
        };
        self.timed("lease", key, CALL_TIMEOUT, brk).await
    }
}

impl AzureStore {
    /// Gives up on a call that takes longer than `limit` (the transport's
    /// timeouts bound each read; this bounds the whole call).
    async fn timed<T>(
        &self,
        op: &'static str,
        key: &str,
        limit: std::time::Duration,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(StoreError::Unreachable {
                location: self.shown.clone(),
                op,
                key: key.to_string(),
                detail: format!("no answer within {} s", limit.as_secs()),
            })
        })
    }

    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
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

    async fn acquire(
        &self,
        key: &str,
        seconds: u32,
        holder: &Holder,
    ) -> Result<LeaseAttempt, StoreError> {
        let blob = self.container.blob_client(key);
        // The lease blob is empty and mutable (no immutability policy).
        let created = blob
            .upload(
                RequestContent::from(Vec::new()),
                Some(BlobClientUploadOptions::default().if_not_exists()),
            )
            .await;
        if let Err(e) = created
            && !matches!(status_code(&e), Some((409 | 412, _)))
        {
            return Err(self.error("lease", key, e));
        }
        let seconds = i32::try_from(seconds.clamp(15, 60)).unwrap_or(60);
        let id = match blob.acquire_lease(seconds, None).await {
            Ok(r) => r
                .lease_id()
                .ok()
                .flatten()
                .ok_or_else(|| StoreError::Failed {
                    location: self.shown.clone(),
                    op: "lease",
                    key: key.to_string(),
                    detail: "the service granted a lease without an id".into(),
                })?,
            Err(e) if matches!(status_code(&e), Some((409, _))) => {
                // adfdr takes leases of 15 to 60 seconds only: an infinite
                // one was planted and would stop the factory's jobs for
                // good. It is broken, and taken at the next try.
                if self.infinite_lease(key).await {
                    tracing::warn!(
                        key,
                        "an infinite lease (never one of adfdr's) held the factory: broken"
                    );
                    let _ = blob
                        .break_lease(Some(BlobClientBreakLeaseOptions {
                            break_period: Some(0),
                            ..Default::default()
                        }))
                        .await;
                }
                return Ok(LeaseAttempt::Held(self.holder(key).await));
            }
            Err(e) => return Err(self.error("lease", key, e)),
        };
        let text = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(holder).expect("serialize"));
        let meta = std::collections::HashMap::from([("holder".to_string(), text)]);
        let options = BlobClientSetMetadataOptions {
            lease_id: Some(id.clone()),
            ..Default::default()
        };
        if let Err(e) = blob.set_metadata(&meta, Some(options)).await {
            // The lease is ours either way; only the "who" is missing.
            tracing::debug!(error = %e, key, "could not record the lease holder");
        }
        Ok(LeaseAttempt::Acquired(id))
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
