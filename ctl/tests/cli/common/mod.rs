//! A rig for the CLI's end-to-end tests: the emulator (ARM, managed identity,
//! Key Vault) and Azurite (two accounts = two regions) on loopback, a config
//! file that points adfdr at them, and the real `adfdr` binary run as a
//! child process with the managed-identity environment an Azure VM would give.

#![allow(dead_code)]

pub mod compare;
pub mod files;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adf_emulator::Emulator;
use adfdr_tests::{Azurite, client_options_for, secret_credential, start_emulator};
use azure_core::http::{RequestContent, Url};
use azure_security_keyvault_keys::models::{CreateKeyParameters, KeyType};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};

pub const SUB: &str = "11111111-2222-3333-4444-555555555555";
pub const RG: &str = "rg-prod";
pub const CONTAINER: &str = "adfdr";

pub struct Rig {
    pub emu: Emulator,
    pub azurite: Azurite,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub breakglass: PathBuf,
    /// `[[factory]]` name -> ARM factory name.
    pub factories: Vec<(String, String)>,
}

/// A rig seeded with every corpus factory (`corpus-N` in the config,
/// `adf-corpus-N` in ARM; `rig.factories` lists them) and their folders.
/// None without ADFDR_CORPUS (`corpus_factories` says SKIPPED).
pub async fn corpus_rig(tag: &str) -> Option<(Rig, Vec<PathBuf>)> {
    let dirs = adfdr_tests::corpus_factories()?;
    let names: Vec<(String, String)> = (0..dirs.len())
        .map(|i| (format!("corpus-{i}"), format!("adf-corpus-{i}")))
        .collect();
    let specs: Vec<(&str, &str, &Path)> = names
        .iter()
        .zip(&dirs)
        .map(|((n, a), d)| (n.as_str(), a.as_str(), d.as_path()))
        .collect();
    Some((Rig::start(tag, &specs).await, dirs))
}

pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adfdr-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Rig {
    /// Seeds each `(config name, ARM factory name, git-layout dir)` and writes a config.
    pub async fn start(tag: &str, factories: &[(&str, &str, &Path)]) -> Rig {
        let emu = start_emulator(|c| c.settings.page_size = 7).await;
        let azurite = Azurite::start();
        let dir = scratch(tag);
        for (_, arm_name, seed) in factories {
            emu.seed(&format!("{SUB}/{RG}/{arm_name}"), seed)
                .unwrap_or_else(|e| panic!("seed {arm_name}: {e}"));
        }
        // The operator's setup: the KEK exists (containers: below).
        let admin = secret_credential(&emu, "platform-admin", "s3cret");
        let kv = KeyClient::new(
            &format!("{}/", emu.urls().vault),
            admin.clone(),
            Some(KeyClientOptions {
                client_options: client_options_for(&emu),
                verify_challenge_resource: Some(false),
                ..Default::default()
            }),
        )
        .expect("kv");
        let params = CreateKeyParameters {
            kty: Some(KeyType::Rsa),
            key_size: Some(2048),
            ..Default::default()
        };
        kv.create_key("adfdr-kek", params.try_into().expect("body"), None)
            .await
            .expect("create key");
        let breakglass = dir.join("breakglass.key");
        let rig = Rig {
            emu,
            azurite,
            config: dir.join("adfdr.toml"),
            breakglass: breakglass.clone(),
            factories: factories
                .iter()
                .map(|(n, a, _)| (n.to_string(), a.to_string()))
                .collect(),
            dir,
        };
        let out = rig.adfdr(&[
            "key",
            "generate",
            "--out",
            breakglass.to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        for i in 0..rig.azurite.accounts.len() {
            rig.container(i)
                .create(None)
                .await
                .expect("create container");
        }
        rig.write_config(&rig.config_text(None));
        rig
    }

    pub fn location_url(&self, i: usize) -> String {
        format!("{}/{CONTAINER}", self.azurite.accounts[i].url)
    }

    /// The config; `neu_url` replaces the second location's URL (an outage).
    pub fn config_text(&self, neu_url: Option<&str>) -> String {
        let ca = adfdr_tests::ca_pem();
        let mut text = format!(
            r#"# written by the test rig
[agent]
state_dir = "{state}"

[auth]
method = "managed-identity"
arm_endpoint = "{arm}"
ca_file = "{ca}"

[[location]]
name = "weu"
url = "{weu}"

[[location]]
name = "neu"
url = "{neu}"

[[key]]
id = "kv"
keyvault = "{vault}/keys/adfdr-kek"

[[key]]
id = "breakglass"
file = "{bg}"
"#,
            state = self.dir.join("state").display(),
            arm = self.emu.urls().arm,
            ca = ca.display(),
            weu = self.location_url(0),
            neu = neu_url
                .map(str::to_string)
                .unwrap_or_else(|| self.location_url(1)),
            vault = self.emu.urls().vault,
            bg = self.breakglass.display(),
        );
        for (name, arm_name) in &self.factories {
            text.push_str(&format!(
                "\n[[factory]]\nname = \"{name}\"\nsubscription = \"{SUB}\"\nresource_group = \"{RG}\"\nfactory = \"{arm_name}\"\nrpo_target = \"30m\"\n"
            ));
        }
        text
    }

    /// A stand-in `az` (`fake_az`).
    pub fn fake_az(&self) -> PathBuf {
        fake_az(&self.emu, &self.dir)
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("config");
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_adfdr"));
        cmd.env("ADFDR_CONFIG", &self.config)
            .env("HOME", &self.dir)
            .env("IDENTITY_ENDPOINT", &self.emu.urls().managed_identity)
            .env("IDENTITY_HEADER", self.emu.identity_header())
            .env_remove("ADFDR_LOG")
            .env_remove("SSL_CERT_FILE");
        cmd
    }

    pub fn adfdr(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("adfdr runs")
    }

    /// Every object in both accounts, as (account, key, bytes).
    pub async fn objects(&self) -> Vec<(String, String, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, account) in self.azurite.accounts.iter().enumerate() {
            let c = self.container(i);
            let mut pager = c.list_blobs(None).expect("list");
            use futures::TryStreamExt;
            while let Some(item) = pager.try_next().await.expect("page") {
                let name = item.name.expect("name");
                // Lease blobs are coordination markers (empty, mutable by
                // design), not stored data: checked on their own.
                if name.ends_with("/lease") {
                    assert_eq!(item.properties.and_then(|p| p.content_length), Some(0));
                    continue;
                }
                let bytes = c
                    .blob_client(&name)
                    .download(None)
                    .await
                    .expect("download")
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .to_vec();
                out.push((account.name.clone(), name, bytes));
            }
        }
        out
    }

    pub fn container(&self, i: usize) -> BlobContainerClient {
        let admin = secret_credential(&self.emu, "platform-admin", "s3cret");
        let url = Url::parse(&self.location_url(i)).expect("url");
        BlobContainerClient::new(
            url,
            Some(admin),
            Some(BlobContainerClientOptions {
                client_options: client_options_for(&self.emu),
                ..Default::default()
            }),
        )
        .expect("client")
    }

    /// Overwrites an object in account `i` (an attacker, or bit rot).
    pub async fn overwrite(&self, i: usize, key: &str, bytes: Vec<u8>) {
        self.container(i)
            .blob_client(key)
            .upload(RequestContent::from(bytes), None)
            .await
            .expect("overwrite");
    }
}

/// PATH with `bin` first.
/// A stand-in `az` (returned: its directory, to put first on PATH) that
/// answers `az account get-access-token --scope S` with a token the
/// emulator signed for S's audience, and logs each scope to `calls`.
pub fn fake_az(emu: &adf_emulator::Emulator, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).expect("dir");
    let mut script = String::from(
        "#!/bin/sh\nscope=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = --scope ] && scope=\"$2\"; shift; done\necho \"$scope\" >> \"$(dirname \"$0\")/calls\"\ncase \"$scope\" in\n",
    );
    for audience in [
        "https://management.azure.com",
        "https://storage.azure.com",
        "https://vault.azure.net",
    ] {
        let token = emu.mint_token(audience, "az-cli-user", 3600);
        script.push_str(&format!("  {audience}*) t={token} ;;\n"));
    }
    script.push_str("  *) echo \"unknown scope $scope\" >&2; exit 1 ;;\nesac\nexp=$(( $(date +%s) + 3600 ))\nprintf '{\"accessToken\":\"%s\",\"expires_on\":%s,\"tokenType\":\"Bearer\"}\\n' \"$t\" \"$exp\"\n");
    let az = bin.join("az");
    std::fs::write(&az, script).expect("az");
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn sample_factory() -> PathBuf {
    adfdr_tests::workspace_root().join("fixtures/sample-factory")
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(out)))
}

/// A page as a person sees it: `page` opened in headless Chromium (the
/// Debian package scripts/setup installs), its DOM after load, the console
/// messages it logged, and a screenshot kept at `target/pages/{shot}.png`.
pub fn open_in_chromium(page: &std::path::Path, shot: &str) -> (String, Vec<String>) {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: scripts/setup installs the chromium package"
    );
    let profile = scratch(&format!("chromium-{shot}"));
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        Command::new(chromium)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs")
    };
    let out = run(&["--dump-dom".to_string()]);
    assert!(out.status.success(), "chromium: {}", text(&out));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let dir = adfdr_tests::workspace_root().join("target/pages");
    std::fs::create_dir_all(&dir).expect("target/pages");
    let png = dir.join(format!("{shot}.png"));
    let _ = std::fs::remove_file(&png);
    let shot_out = run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1100,1500".to_string(),
        "--hide-scrollbars".to_string(),
    ]);
    assert!(
        shot_out.status.success(),
        "chromium screenshot: {}",
        text(&shot_out)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 1_000,
        "a real screenshot"
    );
    (String::from_utf8_lossy(&out.stdout).to_string(), console)
}
