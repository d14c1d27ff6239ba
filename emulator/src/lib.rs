//! adf-emulator: an offline stand-in for the parts of Azure that adfdr talks to.
//!
//! One process serves, over HTTPS on one port:
//! - the Data Factory ARM API (api-version 2018-06-01) with the service's rules
//!   (reference validation, trigger rules, masked secrets, paging, ETags),
//!   ARM throttling, latency and fault injection;
//! - Entra ID's token endpoint (client secret and client assertion);
//! - Key Vault keys (create, wrapkey, unwrapkey) behind Key Vault's 401 challenge;
//! - an admin API under `/_emulator/` for tests (faults, counters, seeding, reset).
//!
//! And over plain HTTP on a second port, as App Service does, the managed
//! identity endpoint (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
//!
//! Tests start it in-process with [`Emulator::start`] on ephemeral ports.

pub mod auth;
pub mod clock;
pub mod control;
pub mod error;
pub mod events;
pub mod extension;
pub mod generate;
pub mod graph;
mod http;
pub mod keyvault;
pub mod kinds;
pub mod rbac;
pub mod regions;
pub mod sample;
pub mod seed;
pub mod state;
pub mod storage;
pub mod vaults;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use control::{Rates, Settings};
pub use http::API_VERSION;
pub use state::World;

/// The tenant the emulator issues tokens for unless told otherwise.
pub const DEFAULT_TENANT: &str = "72f988bf-0000-4000-8000-adf0e0000001";

/// Where a seed goes and where it comes from.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
    pub dir: PathBuf,
}

impl SeedSpec {
    /// Parses `SUB/RG/FACTORY=DIR`.
    pub fn parse(text: &str) -> Result<SeedSpec, String> {
        let (target, dir) = text
            .split_once('=')
            .ok_or_else(|| format!("--seed '{text}' is not SUB/RG/FACTORY=DIR"))?;
        let parts: Vec<&str> = target.split('/').collect();
        match parts.as_slice() {
            [s, r, f] if !s.is_empty() && !r.is_empty() && !f.is_empty() => Ok(SeedSpec {
                subscription: s.to_string(),
                resource_group: r.to_string(),
                factory: f.to_string(),
                dir: PathBuf::from(dir),
            }),
            _ => Err(format!("--seed target '{target}' is not SUB/RG/FACTORY")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Plain-HTTP listener for the managed identity endpoint.
    pub mi_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub seeds: Vec<SeedSpec>,
    pub settings: Settings,
    pub state_file: Option<PathBuf>,
    pub tenant_id: String,
    pub identity_header: String,
    /// Where ARM's events go, as an Event Grid subscription to a Storage
    /// Queue would put them (`--events-queue`), and the CA that queue's
    /// certificate chains to.
    pub events_queue: Option<(url::Url, Option<PathBuf>)>,
    /// Deliver events as Event Grid does, at least once and in no
    /// promised order (some twice, some late); off: each once, in order.
    pub events_at_least_once: bool,
}

impl Config {
    /// Ephemeral loopback ports and default settings.
    pub fn loopback(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mi_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_cert: tls_cert.into(),
            tls_key: tls_key.into(),
            seeds: Vec::new(),
            settings: Settings::default(),
            state_file: None,
            tenant_id: DEFAULT_TENANT.to_string(),
            identity_header: uuid::Uuid::new_v4().simple().to_string(),
            events_queue: None,
            events_at_least_once: true,
        }
    }
}

/// The emulator's public addresses.
#[derive(Clone, Debug)]
pub struct Urls {
    /// ARM endpoint, e.g. `https://127.0.0.1:PORT` (no trailing slash).
    pub arm: String,
    /// Entra authority host (same server).
    pub authority: String,
    /// Key Vault URL (same server).
    pub vault: String,
    /// Managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub managed_identity: String,
}

/// What the `--state` file holds.
#[derive(Serialize, Deserialize)]
struct Persisted {
    tenant_id: String,
    signing_key: String,
    world: World,
}

pub(crate) struct Shared {
    world: Mutex<World>,
    control: Mutex<control::Control>,
    pub(crate) signer: auth::TokenSigner,
    pub(crate) urls: Urls,
    pub(crate) identity_header: String,
    signing_key_b64: String,
    state_file: Option<PathBuf>,
    dirty: AtomicBool,
    /// ARM's events to deliver to the queue (None: kept only).
    pub(crate) events: Option<tokio::sync::mpsc::UnboundedSender<serde_json::Value>>,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, control::Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn settings(&self) -> Settings {
        self.control().settings.clone()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn seed(&self, target: &str, dir: &Path) -> anyhow::Result<Vec<String>> {
        let spec =
            SeedSpec::parse(&format!("{target}={}", dir.display())).map_err(anyhow::Error::msg)?;
        let seed = seed::load_git_layout(dir)?;
        let warnings = self
            .world()
            .seed(
                &spec.subscription,
                &spec.resource_group,
                &spec.factory,
                seed,
                &self.signer.tenant_id,
            )
            .map_err(|e| anyhow::anyhow!("seeding {target}: {e}"))?;
        self.mark_dirty();
        Ok(warnings)
    }

    /// Writes the state file if anything changed (temp file, fsync, rename).
    fn flush(&self) -> anyhow::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let persisted = Persisted {
            tenant_id: self.signer.tenant_id.clone(),
            signing_key: self.signing_key_b64.clone(),
            world: self.world().clone(),
        };
        let bytes = serde_json::to_vec(&persisted)?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("writing emulator state {}", tmp.display()))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("replacing emulator state {}", path.display()))?;
        Ok(())
    }
}

/// A running emulator. Dropping it stops the listeners.
pub struct Emulator {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    seed_warnings: Vec<String>,
}

/// The server TLS config of a certificate and key (PEM files).
pub fn load_tls(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Emulator {
    pub async fn start(config: Config) -> anyhow::Result<Emulator> {
        let tls = load_tls(&config.tls_cert, &config.tls_key)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let mi_listener = TcpListener::bind(config.mi_listen)
            .await
            .with_context(|| format!("binding {}", config.mi_listen))?;
        let addr = listener.local_addr()?;
        let mi_addr = mi_listener.local_addr()?;
        let base = format!("https://{addr}");
        let urls = Urls {
            arm: base.clone(),
            authority: base.clone(),
            vault: base.clone(),
            managed_identity: format!("http://{mi_addr}/msi/token"),
        };
        let (tenant_id, key_b64, world) = restored(&config)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(&key_b64)
            .context("emulator state has a corrupt signing key")?;
        let (events_tx, events_rx) = match &config.events_queue {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let mut tasks_before = Vec::new();
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            control: Mutex::new(control::Control {
                settings: config.settings.clone(),
                ..Default::default()
            }),
            signer: auth::TokenSigner::new(key, tenant_id),
            urls,
            identity_header: config.identity_header.clone(),
            signing_key_b64: key_b64,
            state_file: config.state_file.clone(),
            dirty: AtomicBool::new(false),
            events: events_tx,
        });
        if let (Some(rx), Some((queue, ca))) = (events_rx, &config.events_queue) {
            tasks_before.push(tokio::spawn(events::deliver(
                shared.clone(),
                rx,
                queue.clone(),
                ca.clone(),
                config.events_at_least_once,
            )));
        }
        let mut seed_warnings = Vec::new();
        for spec in &config.seeds {
            let target = format!(
                "{}/{}/{}",
                spec.subscription, spec.resource_group, spec.factory
            );
            let warnings = shared
                .seed(&target, &spec.dir)
                .with_context(|| format!("seeding {target} from {}", spec.dir.display()))?;
            seed_warnings.extend(warnings.into_iter().map(|w| format!("{target}: {w}")));
        }
        let mut tasks = vec![
            tokio::spawn(serve(
                listener,
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
                shared.clone(),
            )),
            tokio::spawn(serve(mi_listener, None, shared.clone())),
        ];
        tasks.append(&mut tasks_before);
        if shared.state_file.is_some() {
            let flusher = shared.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Err(e) = flusher.flush() {
                        tracing::error!("{e:#}");
                    }
                }
            }));
        }
        Ok(Emulator {
            shared,
            tasks,
            seed_warnings,
        })
    }

    pub fn urls(&self) -> &Urls {
        &self.shared.urls
    }

    pub fn tenant_id(&self) -> &str {
        &self.shared.signer.tenant_id
    }

    pub fn identity_header(&self) -> &str {
        &self.shared.identity_header
    }

    /// Dangling references found while seeding (real exports have them).
    pub fn seed_warnings(&self) -> &[String] {
        &self.seed_warnings
    }

    /// Seeds (or re-seeds) a factory from a git-layout folder.
    pub fn seed(&self, target: &str, dir: &Path) -> anyhow::Result<Vec<String>> {
        self.shared.seed(target, dir)
    }

    /// A token minted directly (tests; `lifetime_secs` may be negative).
    pub fn mint_token(&self, audience: &str, object_id: &str, lifetime_secs: i64) -> String {
        self.shared
            .signer
            .mint(audience, object_id, "adf-emulator-test", lifetime_secs)
            .0
    }

    /// Reads or changes the stored state directly (tests).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let out = f(&mut self.shared.world());
        self.shared.mark_dirty();
        out
    }

    pub fn counters(&self) -> control::Counters {
        self.shared.control().counters.clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.control().settings);
    }

    /// Writes the state file now (also done every 200 ms while dirty).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.shared.flush()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Err(e) = self.shared.flush() {
            tracing::error!("{e:#}");
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tls = tls.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::handle(shared.clone(), req));
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    // A client that does not trust our certificate hangs up here; nothing to answer.
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}
/// The tenant, signing key and world saved in `state_file`, or new ones.
fn restored(config: &Config) -> anyhow::Result<(String, String, World)> {
    let persisted = match &config.state_file {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading emulator state {}", path.display()))?;
            Some(
                serde_json::from_slice::<Persisted>(&bytes).with_context(|| {
                    format!(
                        "emulator state {} is not valid; delete it to start empty",
                        path.display()
                    )
                })?,
            )
        }
        _ => None,
    };
    Ok(match persisted {
        Some(p) => (p.tenant_id, p.signing_key, p.world),
        None => {
            let mut key = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut key);
            (
                config.tenant_id.clone(),
                base64::engine::general_purpose::STANDARD.encode(key),
                World::default(),
            )
        }
    })
}
