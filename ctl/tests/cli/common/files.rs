//! A rig with directory locations: the emulator (ARM, managed identity), two
//! `file://` locations (`weu`, `neu`) and a break-glass key file; no Azurite.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use adf_emulator::Emulator;

use super::{SUB, code, json, sample_factory, scratch, text};

pub struct FileRig {
    pub emu: Emulator,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weu: PathBuf,
    pub neu: PathBuf,
    pub key: PathBuf,
}

impl FileRig {
    pub async fn start(tag: &str) -> FileRig {
        let emu = adfdr_tests::start_emulator(|_| {}).await;
        emu.seed(&format!("{SUB}/rg-prod/adf-sales"), &sample_factory())
            .expect("seed");
        let dir = scratch(tag);
        let (weu, neu) = (dir.join("weu"), dir.join("neu"));
        std::fs::create_dir_all(&weu).expect("weu");
        std::fs::create_dir_all(&neu).expect("neu");
        let key = dir.join("bg.key");
        adfdr_core::keys::generate_key_file(&key).expect("key");
        let rig = FileRig {
            emu,
            config: dir.join("adfdr.toml"),
            weu,
            neu,
            key,
            dir,
        };
        rig.write_config("");
        rig
    }

    /// The config; `extra` is appended (e.g. a `[backup]` table).
    pub fn config_text(&self, factory_extra: &str) -> String {
        format!(
            r#"[agent]
state_dir = "{state}"
socket = "{socket}"
[auth]
method = "managed-identity"
arm_endpoint = "{arm}"
ca_file = "{ca}"
[[location]]
name = "weu"
url = "file://{weu}"
[[location]]
name = "neu"
url = "file://{neu}"
[[key]]
id = "breakglass"
file = "{key}"
[[factory]]
name = "sales"
subscription = "{SUB}"
resource_group = "rg-prod"
factory = "adf-sales"
{factory_extra}
"#,
            state = self.dir.join("state").display(),
            socket = self.dir.join("adfdr.sock").display(),
            arm = self.emu.urls().arm,
            ca = adfdr_tests::ca_pem().display(),
            weu = self.weu.display(),
            neu = self.neu.display(),
            key = self.key.display(),
        )
    }

    pub fn write_config(&self, factory_extra: &str) {
        std::fs::write(&self.config, self.config_text(factory_extra)).expect("config");
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

    /// Runs adfdr; a run that takes longer than `within` is killed and the
    /// test fails (a hang is the bug some of these tests look for).
    pub fn run_within(&self, args: &[&str], within: Duration) -> Output {
        run_within(self.command().args(args), within)
    }

    pub fn adfdr(&self, args: &[&str]) -> Output {
        self.run_within(args, Duration::from_secs(120))
    }

    /// A backup; returns its snapshot id.
    pub fn backup(&self, force: bool) -> String {
        let mut args = vec!["backup", "--json"];
        if force {
            args.push("--force");
        }
        let out = self.adfdr(&args);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let id = json(&out)["factories"][0]["report"]["snapshot"]
            .as_str()
            .expect("snapshot id")
            .to_string();
        // Ids order to the millisecond; keep them apart.
        std::thread::sleep(Duration::from_millis(20));
        id
    }

    pub fn snapshots_dir(&self, location: &Path) -> PathBuf {
        location.join("v1/sales/snapshots")
    }

    pub fn manifest(&self, location: &Path, id: &str) -> PathBuf {
        self.snapshots_dir(location).join(format!("{id}.manifest"))
    }

    pub fn payload(&self, location: &Path, id: &str) -> PathBuf {
        self.snapshots_dir(location).join(format!("{id}.payload"))
    }
}

pub fn run_within(cmd: &mut Command, within: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("adfdr runs");
    // Drained while it runs: an output bigger than a pipe's buffer would
    // otherwise block the child and look like a hang.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + within;
    let (status, hung) = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().expect("reaped"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    };
    if hung {
        panic!(
            "adfdr did not finish within {within:?} (it hangs):\n{}",
            text(&out)
        );
    }
    out
}
