//! The `adf-emulator` binary as users run it: one ready line with its URLs,
//! `--state` keeping factories across a restart, clear errors for bad flags.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn tls(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tls")
        .join(name)
}

struct Running(Child, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adf-emulator"))
        .args(["--tls-cert"])
        .arg(tls("server.pem"))
        .args(["--tls-key"])
        .arg(tls("server.key"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    Running(child, line)
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

fn client() -> reqwest::blocking::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(tls("ca.pem")).expect("ca")).expect("pem");
    reqwest::blocking::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client")
}

fn token(arm: &str) -> String {
    let v: serde_json::Value = client()
        .post(format!("{arm}/_emulator/token"))
        .json(&serde_json::json!({}))
        .send()
        .expect("token")
        .json()
        .expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

#[test]
fn state_file_keeps_factories_across_a_restart() {
    let state =
        std::env::temp_dir().join(format!("adf-emulator-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let state_arg = state.display().to_string();
    let path =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf-kept";
    {
        let emu = start(&["--state", &state_arg]);
        assert!(emu.1.starts_with("adf-emulator ready "), "{}", emu.1);
        let arm = field(&emu.1, "arm").to_string();
        assert!(arm.starts_with("https://127.0.0.1:"));
        assert!(field(&emu.1, "identity_endpoint").starts_with("http://127.0.0.1:"));
        let resp = client()
            .put(format!("{arm}{path}?api-version=2018-06-01"))
            .bearer_auth(token(&arm))
            .json(&serde_json::json!({"location": "westeurope"}))
            .send()
            .expect("put");
        assert_eq!(resp.status(), 200);
        std::thread::sleep(std::time::Duration::from_millis(600));
    }
    let emu = start(&["--state", &state_arg]);
    let arm = field(&emu.1, "arm").to_string();
    let resp = client()
        .get(format!("{arm}{path}?api-version=2018-06-01"))
        .bearer_auth(token(&arm))
        .send()
        .expect("get");
    assert_eq!(resp.status(), 200, "the factory survived the restart");
    drop(emu);
    let _ = std::fs::remove_file(&state);
}

#[test]
fn bad_flags_fail_before_ready_with_a_clear_message() {
    for (args, needle) in [
        (vec!["--throttle", "fast"], "throttle"),
        (vec!["--fault-rate", "2"], "fault-rate"),
        (vec!["--seed", "nonsense"], "SUB/RG/FACTORY=DIR"),
        (
            vec!["--seed", "s/r/adf-x=/nonexistent/dir"],
            "/nonexistent/dir",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_adf-emulator"))
            .args(["--tls-cert"])
            .arg(tls("server.pem"))
            .args(["--tls-key"])
            .arg(tls("server.key"))
            .args(&args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "no ready line on failure");
    }
}
