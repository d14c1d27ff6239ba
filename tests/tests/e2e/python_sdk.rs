//! Microsoft's own Python SDK (azure-mgmt-datafactory, azure-identity from PyPI)
//! drives the emulator through every resource type, trigger start/stop and a
//! pipeline run, with its real credential classes: proof that a real client
//! accepts what the emulator answers.

use std::process::Command;

use adfdr_tests::{ca_pem, start_emulator, workspace_root};
use serde_json::Value;

#[tokio::test]
async fn microsofts_python_sdk_accepts_the_emulator() {
    let python = workspace_root().join("tools/venv/bin/python");
    assert!(
        python.exists(),
        "the Python SDK venv is missing at {}; run scripts/setup (scripts/test does it)",
        python.display()
    );
    let emu = start_emulator(|c| {
        c.settings.run_duration_ms = 300;
        c.settings.page_size = 2;
        c.identity_header = "py-identity-header".into();
    })
    .await;
    let script = workspace_root().join("tests/python/drive_emulator.py");
    let urls = emu.urls().clone();
    let tenant = emu.tenant_id().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("ADFDR_ARM", &urls.arm)
            .env("ADFDR_AUTHORITY", &urls.authority)
            .env("ADFDR_TENANT", tenant)
            .env("REQUESTS_CA_BUNDLE", ca_pem())
            .env("SSL_CERT_FILE", ca_pem())
            .env("IDENTITY_ENDPOINT", &urls.managed_identity)
            .env("IDENTITY_HEADER", "py-identity-header")
            .env("AZURE_CLIENT_ID", "")
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python SDK run failed:\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("summary line: {e}\n{stdout}"));
    let kinds = summary["kinds"].as_array().map(Vec::len).unwrap_or(0);
    assert!(kinds >= 11, "every resource type was exercised: {summary}");
    assert_eq!(summary["pipeline_run"], "Succeeded");
    assert_eq!(summary["managed_identity_factories"], 1);
    assert!(
        emu.counters().requests > 50,
        "the SDK really talked to the emulator"
    );
}
