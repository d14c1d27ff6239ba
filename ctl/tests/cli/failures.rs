//! Bad input, refused access, throttling and expiring tokens: clear errors
//! with the CLI contract's exit codes, and backups that survive the weather.

use std::time::Instant;

use crate::common::*;
use adfdr_tests::{admin, admin_delete};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_the_usage_exit_code() {
    let rig = Rig::start("badinput", &[("sales", "adf-sales", &sample_factory())]).await;
    let good = rig.config_text(None);

    // A typo in the config: named with its line, exit 2, before any network.
    rig.write_config(&good.replace(
        "method = \"managed-identity\"",
        "methd = \"managed-identity\"",
    ));
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("line 6") && stderr(&out).contains("methd"),
        "{}",
        text(&out)
    );
    rig.write_config(&good.replace("rpo_target = \"30m\"", "rpo_target = \"soon\""));
    let out = rig.adfdr(&["snapshots"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("not a duration"), "{}", text(&out));
    rig.write_config(&good);

    // An unknown factory.
    let out = rig.adfdr(&["backup", "nope"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("unknown factory 'nope'; configured: sales"),
        "{}",
        text(&out)
    );

    // A factory that does not exist in Azure.
    rig.write_config(&good.replace("factory = \"adf-sales\"", "factory = \"adf-sails\""));
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("adf-sails does not exist"),
        "{}",
        text(&out)
    );

    // An unreachable ARM endpoint fails in seconds and names the URL.
    let dead = format!("https://127.0.0.1:{}", adfdr_tests::free_port());
    rig.write_config(&good.replace(&rig.emu.urls().arm, &dead));
    let started = Instant::now();
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains(&dead), "{}", text(&out));
    eprintln!(
        "unreachable ARM endpoint failed after {:?}",
        started.elapsed()
    );
    rig.write_config(&good);

    // A key file others can read is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rig.breakglass, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", text(&out));
    std::fs::set_permissions(&rig.breakglass, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");

    // ARM answers 200 with something that is not a list: refused, not read as empty.
    admin(
        &rig.emu,
        "faults",
        json!({"method": "GET", "path_contains": "/datasets", "status": 200, "count": 20}),
    )
    .await;
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("without a \"value\" array"),
        "{}",
        text(&out)
    );
    adfdr_tests::raw_client()
        .delete(format!("{}/_emulator/faults", rig.emu.urls().arm))
        .send()
        .await
        .expect("clear faults");

    // A property the emulator corrupts on the way out is captured as it came, and
    // diff names exactly that property.
    let out = rig.adfdr(&["backup", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s1 = json(&out)["factories"][0]["report"]["snapshot"]
        .as_str()
        .expect("id")
        .to_string();
    admin(&rig.emu, "mutations", json!({"on": "get", "kind": "pipelines", "name": "PL_Load_Dw", "pointer": "/properties/activities", "set": "garbage"})).await;
    let out = rig.adfdr(&["diff", &s1, "--live"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("~ pipeline:PL_Load_Dw\n    /properties/activities: ["),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_access_names_the_identity_the_resource_and_the_role() {
    let rig = Rig::start("rbac", &[("sales", "adf-sales", &sample_factory())]).await;
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    // RBAC switches on with the first assignment: the agent's identity has none yet.
    admin(
        &rig.emu,
        "role-assignments",
        json!({"principal_id": "someone-else", "role": "Owner", "scope": "/"}),
    )
    .await;
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the system-assigned managed identity may not read factory"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{SUB}/{RG}/adf-sales")) && err.contains("'Reader'"),
        "{err}"
    );
    // Issue 27: the role and the scope as data, not only in the message,
    // with what to do next.
    let out = rig.adfdr(&["backup", "--json"]);
    let error = &json(&out)["factories"][0]["error"];
    assert_eq!(
        error["grant"],
        json!({"principal": "the system-assigned managed identity", "role": "Reader", "scope": format!("{SUB}/{RG}/adf-sales")}),
        "{error:#}"
    );
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|h| h.contains("adfdr config check")),
        "{error:#}"
    );

    // Reader on the factory, but no role on the key.
    admin(&rig.emu, "role-assignments", json!({"principal_id": mi, "role": "Reader", "scope": format!("/subscriptions/{SUB}/resourceGroups/{RG}")})).await;
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Key Vault key kv") && err.contains("'Key Vault Crypto User'"),
        "{err}"
    );
    assert!(
        err.contains("the system-assigned managed identity"),
        "{err}"
    );

    // config check probes each and names what is missing.
    let out = rig.adfdr(&["config", "check"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = stdout(&out);
    assert!(report.contains("ok    factory sales"), "{report}");
    assert!(
        report.contains("FAIL  key kv") && report.contains("Key Vault Crypto User"),
        "{report}"
    );
    assert!(
        report.contains("ok    location weu") && report.contains("ok    key breakglass"),
        "{report}"
    );

    admin(
        &rig.emu,
        "role-assignments",
        json!({"principal_id": mi, "role": "Key Vault Crypto User", "scope": "/keyvault"}),
    )
    .await;
    let out = rig.adfdr(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// A backup is complete or says why not: a custom role that may not list
/// one kind (here CDCs) fails the backup naming the missing permission, and
/// nothing partial is committed; a kind the service does not offer where
/// the factory lives is recorded as not offered.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_is_complete_or_names_the_missing_permission() {
    let rig = Rig::start("partial", &[("sales", "adf-sales", &sample_factory())]).await;
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    admin(
        &rig.emu,
        "role-assignments",
        json!({"principal_id": mi, "role": "Data Factory Contributor",
        "scope": format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
        "not_actions": ["Microsoft.DataFactory/factories/adfcdcs/read"]}),
    )
    .await;
    admin(
        &rig.emu,
        "role-assignments",
        json!({"principal_id": mi, "role": "Key Vault Crypto User", "scope": "/keyvault"}),
    )
    .await;
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("may not list the changeDataCaptures of factory")
            && err.contains("Microsoft.DataFactory/factories/adfcdcs/read"),
        "{err}"
    );
    let out = rig.adfdr(&["snapshots", "--json"]);
    assert_eq!(
        json(&out)["snapshots"],
        json!([]),
        "nothing partial was committed"
    );

    // The factory's surroundings likewise: a role that may not read locks
    // fails the backup naming the permission, and config check says so first.
    admin_delete(&rig.emu, "role-assignments").await;
    for (role, scope, not) in [
        (
            "Data Factory Contributor",
            format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            json!(["Microsoft.Authorization/locks/read"]),
        ),
        ("Key Vault Crypto User", "/keyvault".to_string(), json!([])),
    ] {
        admin(
            &rig.emu,
            "role-assignments",
            json!({"principal_id": mi, "role": role, "scope": scope, "not_actions": not}),
        )
        .await;
    }
    let out = rig.adfdr(&["config", "check"]);
    assert!(
        stdout(&out).contains("FAIL  surroundings of factory sales")
            && stdout(&out).contains("Microsoft.Authorization/locks/read"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("may not list the locks of factory")
            && stderr(&out)
                .contains("Microsoft.Authorization/locks/read; grant it Reader on the factory"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["backup", "--json"]);
    let grant = &json(&out)["factories"][0]["error"]["grant"];
    assert_eq!(
        grant["action"], "Microsoft.Authorization/locks/read",
        "{grant:#}"
    );
    assert_eq!(grant["role"], "Reader", "{grant:#}");

    // A kind this cloud does not offer (its list: 400 "not supported"):
    // recorded in the snapshot, which is complete for what exists.
    admin_delete(&rig.emu, "role-assignments").await;
    admin(&rig.emu, "faults", json!({"method": "GET", "path_contains": "/adfcdcs", "status": 400,
        "code": "InvalidResourceType", "message": "The resource type 'factories/adfcdcs' is not supported in this cloud.", "count": 1})).await;
    let out = rig.adfdr(&["backup", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let id = json(&out)["factories"][0]["report"]["snapshot"]
        .as_str()
        .expect("id")
        .to_string();
    let out = rig.adfdr(&["show", &id]);
    assert!(
        stdout(&out).contains(
            "not offered where the factory lives (absent, not forgotten): changeDataCapture"
        ),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_ride_out_throttling_faults_and_expiring_tokens() {
    let rig = Rig::start("weather", &[("sales", "adf-sales", &sample_factory())]).await;
    // Tokens that live 2 s (always inside azure_identity's 5-minute refresh
    // window), ARM latency, a throttle that trips, and random 5xx/dropped connections.
    admin(&rig.emu, "settings", json!({"token_lifetime_secs": 2, "latency_ms": 150, "throttle": "8,4,4", "fault_rate": 0.1})).await;
    admin(&rig.emu, "faults", json!({"method": "GET", "path_contains": "/pipelines", "status": 429, "retry_after": 1, "count": 2})).await;
    let started = Instant::now();
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let elapsed = started.elapsed();
    let counters = rig.emu.counters();
    assert!(
        counters.by_status.get(&429).copied().unwrap_or(0) >= 2,
        "{counters:?}"
    );
    assert!(
        counters.tokens_issued >= 3,
        "tokens were refreshed: {counters:?}"
    );
    assert!(
        elapsed.as_secs_f64() >= 1.0,
        "Retry-After was honoured: {elapsed:?}"
    );
    admin(
        &rig.emu,
        "settings",
        json!({"fault_rate": 0.0, "throttle": "off", "latency_ms": 0}),
    )
    .await;
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sas_file_location_works_and_a_refused_sas_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::start("sas", &[("sales", "adf-sales", &sample_factory())]).await;
    let sas_file = rig.dir.join("weu.sas");
    let weu = rig.location_url(0);
    let with_sas = rig.config_text(None).replace(
        &format!("url = \"{weu}\""),
        &format!("url = \"{weu}\"\nsas_file = \"{}\"", sas_file.display()),
    );
    rig.write_config(&with_sas);

    // A SAS that may only read and list: the write is refused, and the message
    // says which SAS and what it lacks, never the token itself.
    let read_only = rig.azurite.accounts[0].account_sas("rl");
    std::fs::write(&sas_file, &read_only).expect("sas");
    std::fs::set_permissions(&sas_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the SAS from {}", sas_file.display()))
            && err.contains("lacks permission"),
        "{err}"
    );
    let sig = read_only.split("sig=").nth(1).expect("sig");
    assert!(
        !err.contains(sig) && !stdout(&out).contains(sig),
        "the SAS signature leaked: {err}"
    );

    // A SAS readable by others is refused before any request.
    std::fs::set_permissions(&sas_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", text(&out));

    // A full SAS: weu through the SAS, neu through Entra ID. The refused run
    // took its lease in neu but committed nothing (weu refused the payload
    // and the default needs every location), so this run writes the first
    // snapshot, in both.
    std::fs::set_permissions(&sas_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(
        &sas_file,
        format!("?{}", rig.azurite.accounts[0].account_sas("racwdl")),
    )
    .expect("sas");
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("sales: snapshot") && stdout(&out).contains("in weu, neu"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
