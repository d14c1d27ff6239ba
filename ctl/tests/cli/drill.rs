//! `adfdr drill` and `adfdr drills` end to end: restores into scratch
//! factories in the emulator, proven, measured, judged and reported.

use crate::common::*;
use crate::restore::contents;

const DRILL_RG: &str = "rg-drills";

/// The rig's config with `extra` lines added to each listed factory.
fn with_factory_lines(rig: &Rig, extra: &[(&str, String)]) -> String {
    let mut text = rig.config_text(None);
    for (name, lines) in extra {
        let arm = &rig
            .factories
            .iter()
            .find(|(n, _)| n == name)
            .expect("factory")
            .1;
        let block = format!("factory = \"{arm}\"\nrpo_target = \"30m\"\n");
        assert!(text.contains(&block), "{text}");
        text = text.replace(&block, &format!("{block}{lines}"));
    }
    text
}

fn drill_target(arm: &str) -> String {
    format!(
        "drill_target = {{ subscription = \"{SUB}\", resource_group = \"{DRILL_RG}\", factory = \"{arm}-drill\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_factory_passes_a_drill_and_the_source_is_never_touched() {
    let Some((rig, dirs)) = corpus_rig("drill-corpus").await else {
        return;
    };
    let names = rig.factories.clone();
    let extra: Vec<(&str, String)> = names
        .iter()
        .map(|(n, a)| {
            (
                n.as_str(),
                format!("{}rto_target = \"10m\"\n", drill_target(a)),
            )
        })
        .collect();
    rig.write_config(&with_factory_lines(&rig, &extra));
    let out = rig.adfdr(&["backup", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let before: Vec<_> = names
        .iter()
        .map(|(_, a)| contents(&rig, RG, a).expect("source"))
        .collect();

    let out = rig.adfdr(&["drill", "--json"]);
    let reports = json(&out);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let reports = reports["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), names.len());
    for (r, dir) in reports.iter().zip(&dirs) {
        let what = dir.display();
        assert_eq!(r["judgement"]["verdict"], "passed", "{what}: {r}");
        assert!(
            r["judgement"]["rto_seconds"].as_f64().expect("rto") > 0.0,
            "{what}"
        );
        assert!(r["judgement"]["rpo_seconds"].as_f64().is_some(), "{what}");
        assert!(r["resources"].as_u64().expect("count") > 0, "{what}");
        let checks = r["checks"].as_array().expect("checks");
        for name in ["references", "global parameters", "triggers", "resources"] {
            assert!(
                checks.iter().any(|c| c["name"] == name && c["ok"] == true),
                "{what}: {name}: {r}"
            );
        }
        assert_eq!(r["cleanup"]["mode"], "delete-resources");
        assert_eq!(r["cleanup"]["ok"], true, "{what}: {}", r["cleanup"]);
        assert_eq!(r["locations"], serde_json::json!(["weu", "neu"]), "{what}");
    }
    // Drills restore into the scratch factories only, and clean them up.
    for (((_, arm), before), dir) in names.iter().zip(&before).zip(&dirs) {
        assert_eq!(
            &contents(&rig, RG, arm).expect("source"),
            before,
            "{}: the source changed",
            dir.display()
        );
        let mut scratch =
            contents(&rig, DRILL_RG, &format!("{arm}-drill")).expect("scratch factory kept");
        // A managed VNet has no DELETE in the REST API: it stays with its factory.
        scratch.retain(|(kind, _), _| kind != "ManagedVirtualNetwork");
        assert!(
            scratch.is_empty(),
            "{}: left behind {:?}",
            dir.display(),
            scratch.keys()
        );
    }
    // The history comes from the stored reports.
    let out = rig.adfdr(&["drills", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let history = json(&out);
    assert_eq!(
        history["drills"].as_array().map(Vec::len),
        Some(names.len()),
        "{history}"
    );
    assert!(
        history["drills"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|h| h["verdict"] == "passed")
    );
    // Reports are sealed objects that verify (with --read-data they decrypt).
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn drills_fail_with_their_reason_and_write_reports_for_auditors() {
    let rig = Rig::start("drill-fail", &[("sales", "adf-sales", &sample_factory())]).await;
    let config = |extra: &str| {
        with_factory_lines(
            &rig,
            &[(
                "sales",
                format!(
                    "{}smoke_pipeline = \"PL_Smoke\"\n{extra}",
                    drill_target("adf-sales")
                ),
            )],
        )
    };
    rig.write_config(&config("rto_target = \"10m\"\n"));
    // config check probes the scratch factory too.
    let out = rig.adfdr(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains("drill target of sales")
            && stdout(&out).contains("the first drill creates it"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A passing drill, kept for inspection, with Markdown and HTML reports.
    let (md, html) = (rig.dir.join("drill.md"), rig.dir.join("drill.html"));
    let out = rig.adfdr(&[
        "drill",
        "sales",
        "--cleanup",
        "keep",
        "--markdown",
        md.to_str().expect("utf8"),
        "--html",
        html.to_str().expect("utf8"),
    ]);
    let printed = stdout(&out);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(printed.contains(": PASSED"), "{printed}");
    assert!(printed.contains("smoke pipeline"), "{printed}");
    assert!(
        printed.contains("masked secrets set to a placeholder"),
        "{printed}"
    );
    // Defined is not approved: the endpoint provisioned, and the verdict
    // names the resource whose owner has to approve it (not a failure of
    // the restore: nobody in the drill can approve it).
    assert!(
        printed.contains("by hand    defined, not approved: managedPrivateEndpoint:default/mpe-datalake is provisioned and awaits approval on /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/salesdatalake (sub-resource dfs)"),
        "{printed}"
    );
    assert!(
        printed.contains("1 defined, 1 provisioned, 0 approved, 1 awaiting approval"),
        "{printed}"
    );
    // So do the credentials and identity access a person has to give.
    assert!(
        printed.contains("by hand    linkedService:LS_Erp_Files: a placeholder stands in for")
            && printed.contains("by hand    a new factory gets a new system-assigned principal"),
        "{printed}"
    );
    let md = std::fs::read_to_string(&md).expect("markdown");
    assert!(md.contains("## Still to do by hand"), "{md}");
    assert!(
        md.starts_with("# Recovery drill ") && md.contains(": PASSED"),
        "{md}"
    );
    assert!(md.contains("| smoke pipeline | ok |"), "{md}");
    let html = std::fs::read_to_string(&html).expect("html");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("PASSED"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no scripts in an audit page");
    let kept = contents(&rig, DRILL_RG, "adf-sales-drill").expect("kept");
    let source = contents(&rig, RG, "adf-sales").expect("source");
    assert_eq!(kept.len(), source.len(), "keep leaves the restored factory");
    assert!(started(&kept).is_empty(), "drills leave triggers stopped");
    assert!(
        !started(&source).is_empty(),
        "the source keeps its started triggers"
    );

    // The smoke pipeline fails in the scratch factory.
    adfdr_tests::admin(
        &rig.emu,
        "pipeline-failures",
        serde_json::json!({"factory": format!("{SUB}/{DRILL_RG}/adf-sales-drill"), "pipeline": "PL_Smoke"}),
    )
    .await;
    let out = rig.adfdr(&["drill", "sales"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains("reason     smoke pipeline PL_Smoke ended Failed"),
        "{}",
        text(&out)
    );
    // Issue 26, item 10: why it failed is the line under the verdict, not
    // twenty lines down.
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    let verdict = lines
        .iter()
        .position(|l| l.ends_with(": FAILED"))
        .expect("a verdict line");
    assert!(
        lines[verdict + 1].starts_with("  reason "),
        "{}",
        text(&out)
    );
    adfdr_tests::admin_delete(&rig.emu, "pipeline-failures").await;

    // The Azure-SSIS IR that ran at backup does not start: not runnable.
    adfdr_tests::admin(
        &rig.emu,
        "faults",
        serde_json::json!({"method": "POST", "path_contains": "/integrationRuntimes/ir-ssis/start",
            "status": 400, "code": "BadRequest", "message": "the SSIS catalog database is unreachable", "count": 1}),
    )
    .await;
    let out = rig.adfdr(&["drill", "sales"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains("runtime(s) running at backup do not run in the restored factory: integrationRuntime:ir-ssis"),
        "{}",
        text(&out)
    );

    // The service drops a property on PUT: the restore does not read back.
    adfdr_tests::admin(
        &rig.emu,
        "mutations",
        serde_json::json!({"kind": "pipelines", "name": "PL_Load_Dw", "pointer": "/properties/folder"}),
    )
    .await;
    let out = rig.adfdr(&["drill", "sales", "--json"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let report = &json(&out)["reports"][0];
    let reasons = report["judgement"]["reasons"].to_string();
    assert!(
        reasons.contains("differ from the snapshot") && reasons.contains("PL_Load_Dw"),
        "{reasons}"
    );
    adfdr_tests::admin_delete(&rig.emu, "faults").await;

    // An RTO target no restore can meet at this latency.
    rig.write_config(&config("rto_target = \"1s\"\n"));
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 400})).await;
    let out = rig.adfdr(&["drill", "sales"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stdout(&out).contains("exceeds the target 1.0s"),
        "{}",
        text(&out)
    );
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 0})).await;
    // RTO runs to runnable: the Azure-SSIS IR's start (scaled) is part of it.
    rig.write_config(&config("rto_target = \"10m\"\n"));

    // The history shows each drill with its result; the source never changed.
    let out = rig.adfdr(&["drills", "sales"]);
    let table = stdout(&out);
    assert_eq!(code(&out), 0, "{table}");
    assert_eq!(table.matches("PASSED").count(), 1, "{table}");
    assert_eq!(table.matches("FAILED").count(), 4, "{table}");
    assert_eq!(contents(&rig, RG, "adf-sales").expect("source"), source);

    // delete-factory removes the scratch factory.
    let out = rig.adfdr(&["drill", "sales", "--cleanup", "delete-factory"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(contents(&rig, DRILL_RG, "adf-sales-drill").is_none());
    // An older snapshot picked on purpose restores too, and is not held to rpo_target.
    let out = rig.adfdr(&["drill", "sales", "--random-within", "1d", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = &json(&out)["reports"][0];
    assert!(
        report["pick"]
            .as_str()
            .unwrap_or_default()
            .starts_with("random within 1d (1 of 1"),
        "{report}"
    );
    assert_eq!(
        report["judgement"]["rpo_target_seconds"],
        serde_json::Value::Null
    );
    let out = rig.adfdr(&["drill", "sales", "--snapshot", "20200101T000000Z-00000000"]);
    assert_eq!(
        code(&out),
        2,
        "an unknown snapshot is a usage error: {}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("adfdr snapshots sales"),
        "{}",
        text(&out)
    );
    // adfdr status shows each factory's last drill (from the catalog here).
    let out = rig.adfdr(&["status"]);
    assert!(
        stdout(&out).contains("LAST DRILL") && stdout(&out).contains(" PASSED (RTO "),
        "{}",
        text(&out)
    );
    // The catalog is an index: rebuilt from the store, it knows every drill.
    std::fs::remove_dir_all(rig.dir.join("state")).expect("rm catalog");
    let out = rig.adfdr(&["catalog", "rebuild"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains(", 7 drills"), "{}", text(&out));

    // The evidence as people look at it: the history page and a drill's
    // report open in a browser without console errors and show the
    // verdicts and figures (screenshots under target/pages/).
    let page = rig.dir.join("history.html");
    let out = rig.adfdr(&["drills", "sales", "--html", page.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (dom, console) = open_in_chromium(&page, "drill-history");
    assert!(console.is_empty(), "console: {console:?}");
    assert!(dom.contains("7 drills of 1 factories"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 2, "RTO and RPO charts");
    assert!(
        dom.matches("class=\"pass\"").count() >= 2,
        "passed drills are plotted"
    );
    assert!(
        dom.matches("class=\"fail\"").count() >= 2,
        "failed drills are plotted"
    );
    assert!(
        dom.contains("target 10m") || dom.contains("target 30m"),
        "{dom}"
    );
    assert!(dom.contains("FAILED") && dom.contains("passed"), "{dom}");
    let (dom, console) = open_in_chromium(&rig.dir.join("drill.html"), "drill-report");
    assert!(console.is_empty(), "console: {console:?}");
    assert!(dom.contains("PASSED") && dom.contains("RTO"), "{dom}");
    // The console check itself catches an error on a page.
    let broken = rig.dir.join("broken.html");
    std::fs::write(
        &broken,
        "<!doctype html><p>x</p><script>console.error('boom')</script>",
    )
    .expect("page");
    let (_, console) = open_in_chromium(&broken, "console-check");
    assert_eq!(console.len(), 1, "{console:?}");
}

/// The proof the issue asks for: a drill whose smoke pipeline reads a
/// secret with the factory's identity fails while the new identity lacks
/// the old one's access, and passes once the drill may grant it.
#[tokio::test(flavor = "multi_thread")]
async fn a_drill_proves_the_restored_identity_can_reach_its_secrets() {
    let rig = Rig::start("drill-access", &[("sales", "adf-sales", &sample_factory())]).await;
    rig.write_config(&with_factory_lines(
        &rig,
        &[(
            "sales",
            format!(
                "{}smoke_pipeline = \"PL_Smoke_Vault\"\nrto_target = \"10m\"\n",
                drill_target("adf-sales")
            ),
        )],
    ));
    let mi = adf_emulator::auth::derived_guid("mi:system-assigned");
    let grant = |role: &'static str, scope: String| {
        let emu = &rig.emu;
        let mi = mi.clone();
        async move {
            adfdr_tests::admin(
                emu,
                "role-assignments",
                serde_json::json!({"principal_id": mi, "role": role, "scope": scope}),
            )
            .await;
        }
    };
    // May back up and restore, may not grant access to anyone.
    grant("Data Factory Contributor", format!("/subscriptions/{SUB}")).await;
    grant("Monitoring Contributor", format!("/subscriptions/{SUB}")).await;
    grant("Key Vault Crypto User", "/keyvault".into()).await;
    let out = rig.adfdr(&["backup"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let out = rig.adfdr(&["drill", "sales"]);
    let printed = text(&out);
    assert_eq!(code(&out), 4, "{printed}");
    // The emulator ran the smoke pipeline and Key Vault refused the secret
    // (the access policy was not given), and the verdict names each grant
    // with the command that gives it.
    assert!(
        printed.contains("does not have secrets get permission on key vault 'contoso-kv"),
        "{printed}"
    );
    assert!(
        printed.contains("az keyvault set-policy --subscription")
            && printed.contains("az role assignment create --assignee-object-id"),
        "{printed}"
    );

    // Someone lets the agent grant (roles, and the vault's policies).
    grant("User Access Administrator", format!("/subscriptions/{SUB}")).await;
    grant(
        "Key Vault Contributor",
        format!("/subscriptions/{SUB}/resourceGroups/rg-sec"),
    )
    .await;
    let out = rig.adfdr(&["drill", "sales", "--cleanup", "keep"]);
    let printed = text(&out);
    assert_eq!(code(&out), 0, "{printed}");
    assert!(
        printed.contains(": PASSED")
            && printed.contains("smoke pipeline     PL_Smoke_Vault Succeeded"),
        "{printed}"
    );
    let (principal, policy) = rig.emu.with_world(|w| {
        let p = w
            .factory(SUB, DRILL_RG, "adf-sales-drill")
            .ok()
            .and_then(|f| f.system_principal_id.clone());
        let vault =
            adf_emulator::vaults::get(&w.key_vaults, SUB, "rg-sec", "contoso-kv").expect("vault");
        (p, vault)
    });
    let principal = principal.expect("the kept scratch factory has an identity");
    assert!(
        adf_emulator::vaults::may_get_secrets(&policy, &principal, &[]),
        "the scratch factory's identity was given the old one's policy"
    );
}

fn started(c: &crate::restore::Contents) -> Vec<String> {
    crate::restore::started(c)
}

/// Issue 28: a factory's `region_map` makes its drill a region-loss drill:
/// the scratch factory is created in the mapped region, the SSIS runtime's
/// "West Europe" becomes that region, and the drill proves it as any other.
#[tokio::test(flavor = "multi_thread")]
async fn a_region_map_makes_a_drill_restore_into_the_mapped_region() {
    let rig = Rig::start("drill-region", &[("sales", "adf-sales", &sample_factory())]).await;
    let map = rig.dir.join("dr-map.toml");
    std::fs::write(&map, "[regions]\n\"West Europe\" = \"northeurope\"\n").expect("map");
    rig.write_config(&with_factory_lines(
        &rig,
        &[(
            "sales",
            format!(
                "{}rto_target = \"10m\"\nregion_map = \"{}\"\n",
                drill_target("adf-sales"),
                map.display()
            ),
        )],
    ));
    assert_eq!(code(&rig.adfdr(&["backup"])), 0);
    let out = rig.adfdr(&["drill", "sales", "--cleanup", "keep"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains(": PASSED"), "{}", text(&out));
    let (location, ir) = rig.emu.with_world(|w| {
        let f = w
            .factory(SUB, DRILL_RG, "adf-sales-drill")
            .expect("the scratch factory");
        let ir = f
            .children(adf_emulator::kinds::Kind::IntegrationRuntime)
            .get("ir-ssis")
            .map(|c| c.body.clone())
            .expect("the SSIS runtime");
        (f.body["location"].clone(), ir)
    });
    assert_eq!(location, "northeurope");
    assert_eq!(
        ir.pointer("/properties/typeProperties/computeProperties/location"),
        Some(&serde_json::json!("northeurope"))
    );
    // A map that does not read is the drill's usage error, named.
    std::fs::write(&map, "[hosts]\n\"https://x\" = \"y\"\n").expect("map");
    let out = rig.adfdr(&["drill", "sales"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("region_map"), "{}", text(&out));
}
