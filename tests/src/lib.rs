//! End-to-end harness: starts Azurite (TLS, `--oauth basic`, two storage
//! accounts standing for two regions) and adf-emulator on ephemeral loopback
//! ports, and builds Azure SDK clients that trust the test CA and give up fast.
//!
//! Every process started here is stopped by pid when its handle drops (also on
//! panic), and a watchdog stops it if the test process dies without unwinding.

pub mod hostile_arm;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adf_emulator::{Config, Emulator};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Url};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

/// The workspace root (the folder holding Cargo.toml of the workspace).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn tls_dir() -> PathBuf {
    workspace_root().join("fixtures").join("tls")
}

pub fn ca_pem() -> PathBuf {
    tls_dir().join("ca.pem")
}

/// A folder named by an environment variable, or None with a visible skip message.
fn shared_dir(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_dir() => Some(p),
        Some(p) => panic!(
            "{var}={} is not a directory; unset it to skip {what} tests",
            p.display()
        ),
        None => {
            eprintln!(
                "SKIPPED: {var} is not set, so the {what} checks did not run (.ci/run sets it)"
            );
            None
        }
    }
}

/// The real-factory corpus (`ADFDR_CORPUS`), one folder per factory: the
/// folders in ADF git layout (a Fabric workspace in git-integration layout,
/// `NAME.TYPE/` folders with `.platform` files, sits beside them and is not
/// a factory).
pub fn corpus_factories() -> Option<Vec<PathBuf>> {
    let root = shared_dir("ADFDR_CORPUS", "corpus")?;
    let adf_kinds = [
        "factory",
        "pipeline",
        "dataset",
        "linkedService",
        "trigger",
        "dataflow",
    ];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && adf_kinds.iter().any(|k| p.join(k).is_dir()))
        .collect();
    dirs.sort();
    Some(dirs)
}

/// Microsoft's REST examples (`ADFDR_SPEC_EXAMPLES`).
pub fn spec_examples() -> Option<PathBuf> {
    shared_dir("ADFDR_SPEC_EXAMPLES", "spec-example conformance")
}

/// Client options for tests: the test CA trusted, and retries short enough that a
/// failure surfaces in seconds rather than the default minute.
pub fn client_options() -> ClientOptions {
    ClientOptions {
        transport: Some(adfdr_core::transport::transport(Some(&ca_pem())).expect("test CA loads")),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(50),
            max_retries: 6,
            max_total_elapsed: azure_core::time::Duration::seconds(30),
            max_delay: azure_core::time::Duration::seconds(3),
        }),
        ..Default::default()
    }
}

/// Client options whose identity requests go to the emulator's Entra endpoint.
pub fn client_options_for(emulator: &Emulator) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = emulator.urls().authority.clone();
    ClientOptions {
        cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
        ..client_options()
    }
}

/// A client-secret credential against the emulator's token endpoint.
pub fn secret_credential(
    emulator: &Emulator,
    client_id: &str,
    secret: &str,
) -> Arc<dyn TokenCredential> {
    let options = ClientSecretCredentialOptions {
        client_options: client_options_for(emulator),
    };
    ClientSecretCredential::new(
        emulator.tenant_id(),
        client_id.to_string(),
        Secret::new(secret.to_string()),
        Some(options),
    )
    .expect("client secret credential")
}

/// Starts adf-emulator in-process on ephemeral ports with the test certificate.
pub async fn start_emulator(tweak: impl FnOnce(&mut Config)) -> Emulator {
    let mut config = Config::loopback(tls_dir().join("server.pem"), tls_dir().join("server.key"));
    tweak(&mut config);
    Emulator::start(config).await.expect("emulator starts")
}

/// An ARM client on the emulator, authenticating as `client_id`.
pub fn arm_client(
    emulator: &Emulator,
    client_id: &str,
) -> Arc<dyn adfdr_core::factory::FactoryApi> {
    let credential = secret_credential(emulator, client_id, "test-secret");
    Arc::new(adfdr_core::factory::arm::ArmClient::new(
        Url::parse(&emulator.urls().arm).expect("arm url"),
        credential,
        client_options_for(emulator),
    ))
}

/// A free loopback port (bound and released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {addr} within {timeout:?}");
}

/// A process started by the harness, stopped by pid on drop.
pub struct Supervised {
    child: Child,
    pub name: String,
}

impl Supervised {
    /// Spawns `program args` under a watchdog that stops it if this test process dies.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Supervised {
        let watchdog = workspace_root().join("tests").join("watchdog.sh");
        let mut cmd = Command::new("sh");
        cmd.arg(&watchdog)
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        Supervised {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process (SIGTERM to the watchdog, which stops its child).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One storage account in Azurite.
#[derive(Clone, Debug)]
pub struct StorageAccount {
    pub name: String,
    pub key: String,
    /// `https://127.0.0.1:PORT/ACCOUNT`
    pub url: String,
}

/// Azurite's blob service with TLS and `--oauth basic`, with two accounts that
/// stand for two regions.
pub struct Azurite {
    process: Supervised,
    pub port: u16,
    pub accounts: Vec<StorageAccount>,
}

/// Azurite's flags for one `service` (blob, queue) on `port`: loopback,
/// in memory, TLS with the test CA, OAuth.
fn azurite_args(service: &str, port: u16) -> Vec<String> {
    let tls = tls_dir();
    [
        format!("--{service}Host"),
        "127.0.0.1".into(),
        format!("--{service}Port"),
        port.to_string(),
        "--inMemoryPersistence".into(),
        "--disableTelemetry".into(),
        "--skipApiVersionCheck".into(),
        "--oauth".into(),
        "basic".into(),
        "--cert".into(),
        tls.join("server.pem").display().to_string(),
        "--key".into(),
        tls.join("server.key").display().to_string(),
    ]
    .into()
}

pub fn azurite_bin() -> PathBuf {
    workspace_root().join("tools/azurite/node_modules/.bin/azurite-blob")
}

impl StorageAccount {
    /// An account SAS for the blob service (what an operator would put in a
    /// `sas_file`), signed with the account key: `permissions` like "racwdl".
    pub fn account_sas(&self, permissions: &str) -> String {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::STANDARD;
        let se = adfdr_core::snapshot::rfc3339(
            time::OffsetDateTime::now_utc() + time::Duration::hours(2),
        );
        let version = "2021-08-06";
        // Account SAS string-to-sign (2020-12-06 and later).
        let to_sign = format!(
            "{}\n{permissions}\nb\nsco\n\n{se}\n\nhttps\n{version}\n\n",
            self.name
        );
        let key = b64.decode(&self.key).expect("account key is base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(to_sign.as_bytes());
        let sig = b64.encode(mac.finalize().into_bytes());
        let sig: String = url::form_urlencoded::byte_serialize(sig.as_bytes()).collect();
        format!("sv={version}&ss=b&srt=sco&sp={permissions}&se={se}&spr=https&sig={sig}")
    }
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = azurite_bin();
        assert!(
            bin.exists(),
            "Azurite is not installed at {}; run scripts/setup (scripts/test does it)",
            bin.display()
        );
        let port = free_port();
        let accounts: Vec<StorageAccount> = ["adfdrweu", "adfdrneu"]
            .iter()
            .map(|name| {
                use base64::Engine;
                let key = base64::engine::general_purpose::STANDARD
                    .encode(format!("{name}-test-key-{}", std::process::id()));
                StorageAccount {
                    name: name.to_string(),
                    key,
                    url: format!("https://127.0.0.1:{port}/{name}"),
                }
            })
            .collect();
        let env_accounts = accounts
            .iter()
            .map(|a| format!("{}:{}", a.name, a.key))
            .collect::<Vec<_>>()
            .join(";");
        let args = azurite_args("blob", port);
        let mut process = Supervised::spawn(
            "azurite",
            &bin,
            &args,
            &[("AZURITE_ACCOUNTS", env_accounts)],
        );
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &mut process.child,
            "azurite",
            Duration::from_secs(30),
        );
        Azurite {
            process,
            port,
            accounts,
        }
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// A plain reqwest client trusting the test CA, for requests a test shapes by hand.
pub fn raw_client() -> reqwest::Client {
    let pem = std::fs::read(ca_pem()).expect("test CA");
    let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("test CA parses");
    reqwest::Client::builder()
        .tls_certs_merge(certs)
        .build()
        .expect("reqwest client")
}

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{f}`
pub fn factory_path(sub: &str, rg: &str, factory: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DataFactory/factories/{factory}"
    )
}

/// Calls the emulator's admin API (`POST /_emulator/{path}`), failing the test on an error
/// answer; returns the JSON answer (Null when empty).
pub async fn admin(emulator: &Emulator, path: &str, body: serde_json::Value) -> serde_json::Value {
    let resp = raw_client()
        .post(format!("{}/_emulator/{path}", emulator.urls().arm))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("admin {path}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "admin {path} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// `DELETE /_emulator/{path}` (clears faults and mutations, or pipeline failures).
pub async fn admin_delete(emulator: &Emulator, path: &str) {
    let resp = raw_client()
        .delete(format!("{}/_emulator/{path}", emulator.urls().arm))
        .send()
        .await
        .unwrap_or_else(|e| panic!("admin delete {path}: {e}"));
    assert!(
        resp.status().is_success(),
        "admin delete {path}: {}",
        resp.status()
    );
}

/// A definition as tests compare it with its source: `properties` only,
/// without the fields the service owns, with inline secrets masked.
pub fn comparable(kind: adf_emulator::kinds::Kind, body: &serde_json::Value) -> serde_json::Value {
    use adf_emulator::kinds::Kind;
    let mut props = body
        .get("properties")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut props {
        let server: &[&str] = match kind {
            Kind::Trigger => &["runtimeState"],
            Kind::IntegrationRuntime => &["state"],
            Kind::ManagedVirtualNetwork => &["vNetId", "alias"],
            Kind::ManagedPrivateEndpoint => &["provisioningState", "connectionState", "isReserved"],
            // The seed's way of saying "running" (the service keeps it apart).
            Kind::ChangeDataCapture => &["status"],
            _ => &[],
        };
        for key in server {
            map.remove(*key);
        }
    }
    adf_emulator::state::mask_secure_strings(&mut props);
    props
}

/// Azurite's queue service beside its blob service (issue 18: where ARM's
/// events arrive, as an Event Grid subscription to a Storage Queue puts
/// them): HTTPS with the test CA, OAuth, the account `adfdrweu`.
pub struct AzuriteQueues {
    process: Supervised,
    pub port: u16,
}

impl AzuriteQueues {
    pub fn start() -> AzuriteQueues {
        let port = free_port();
        AzuriteQueues {
            process: Self::spawn(port),
            port,
        }
    }

    fn spawn(port: u16) -> Supervised {
        let bin = workspace_root().join("tools/azurite/node_modules/.bin/azurite-queue");
        assert!(
            bin.exists(),
            "{} is missing; run scripts/setup",
            bin.display()
        );
        let args = azurite_args("queue", port);
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode("adfdrweu-queue-key");
        let mut process = Supervised::spawn(
            "azurite-queue",
            &bin,
            &args,
            &[("AZURITE_ACCOUNTS", format!("adfdrweu:{key}"))],
        );
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &mut process.child,
            "azurite-queue",
            Duration::from_secs(30),
        );
        process
    }

    /// An outage: the service stops (its queues, in memory, are gone).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Back on the same port, empty.
    pub fn restart(&mut self) {
        self.process.stop();
        self.process = Self::spawn(self.port);
    }

    /// `https://127.0.0.1:PORT/adfdrweu/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/adfdrweu/{name}", self.port)
    }
}
