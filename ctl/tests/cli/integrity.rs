//! Tampering, wrong keys and a region outage, end to end.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn tampering_is_found_repaired_and_a_wrong_key_names_the_keys_that_open() {
    let rig = Rig::start("tamper", &[("sales", "adf-sales", &sample_factory())]).await;
    let out = rig.adfdr(&["backup", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s1 = json(&out)["factories"][0]["report"]["snapshot"]
        .as_str()
        .expect("id")
        .to_string();
    let objects = rig.objects().await;
    assert_eq!(objects.len(), 4);

    // One flipped byte, anywhere in any stored object, is found by verify (no key needed).
    for (n, (account, key, bytes)) in objects.iter().enumerate() {
        let i = usize::from(account == "adfdrneu");
        let mut bad = bytes.clone();
        let at = [10, bytes.len() / 2, bytes.len() - 1, 40][n % 4];
        bad[at] ^= 0x20;
        rig.overwrite(i, key, bad).await;
        let out = rig.adfdr(&["verify"]);
        assert_eq!(
            code(&out),
            4,
            "flip at {at} of {account}/{key}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains(&format!("damaged  {key}")),
            "{}",
            text(&out)
        );
        rig.overwrite(i, key, bytes.clone()).await;
    }
    let out = rig.adfdr(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A damaged primary copy: reads fall back to the other region and say so; repair heals it.
    let (_, payload_key, payload) = objects
        .iter()
        .find(|(a, k, _)| a == "adfdrweu" && k.ends_with(".payload"))
        .expect("weu payload");
    let mut bad = payload.clone();
    bad[payload.len() / 3] ^= 1;
    rig.overwrite(0, payload_key, bad).await;
    let export_dir = rig.dir.join("export");
    let out = rig.adfdr(&["export", &s1, "--out", export_dir.to_str().expect("utf8")]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("skipped location weu"),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("repaired weu: {payload_key} (from neu)")),
        "{}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A key that cannot open the snapshot: the error names the keys that can.
    let other = rig.dir.join("other.key");
    assert_eq!(
        code(&rig.adfdr(&["key", "generate", "--out", other.to_str().expect("utf8")])),
        0
    );
    let config = rig.config_text(None);
    let start = config.find("[[key]]").expect("keys");
    let end = config.find("[[factory]]").expect("factories");
    let wrong = format!(
        "{}[[key]]\nid = \"other\"\nfile = \"{}\"\n\n{}",
        &config[..start],
        other.display(),
        &config[end..]
    );
    rig.write_config(&wrong);
    let out = rig.adfdr(&["show", &s1]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kv (Key Vault key https://127.0.0.1"), "{err}");
    assert!(err.contains("breakglass (key file, fingerprint"), "{err}");
    assert!(err.contains("Tried: other (key file"), "{err}");

    // Only the break-glass key (the vault is gone): it alone restores.
    let bg_only = format!(
        "{}[[key]]\nid = \"breakglass\"\nfile = \"{}\"\n\n{}",
        &config[..start],
        rig.breakglass.display(),
        &config[end..]
    );
    rig.write_config(&bg_only);
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_outage_degrades_the_backup_and_repair_heals_it() {
    let rig = Rig::start("outage", &[("sales", "adf-sales", &sample_factory())]).await;
    let dead = format!(
        "https://127.0.0.1:{}/adfdrneu/{CONTAINER}",
        adfdr_tests::free_port()
    );
    // With the default (every location), a region outage fails the backup.
    rig.write_config(&rig.config_text(Some(&dead)));
    let started = std::time::Instant::now();
    let out = rig.adfdr(&["backup"]);
    assert_eq!(
        code(&out),
        1,
        "not committed without every copy: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reached 1 of the 2 locations"),
        "{}",
        text(&out)
    );
    eprintln!("backup with one region down took {:?}", started.elapsed());
    // Not committed means not listed anywhere (docs/FORMAT.md): weu took the
    // payload, but no manifest was written, so neither `snapshots` nor
    // `restore latest` can pick it.
    let out = rig.adfdr(&["snapshots"]);
    assert!(stdout(&out).contains("no snapshots"), "{}", text(&out));
    let out = rig.adfdr(&["show", "latest", "--factory", "sales"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(stderr(&out).contains("no snapshots"), "{}", text(&out));
    // An operator who accepts one copy while a region is down says so.
    rig.write_config(&format!(
        "{}
[backup]
min_copies = 1
",
        rig.config_text(Some(&dead))
    ));
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 3, "done but degraded: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("location neu missed its copy") && err.contains(&dead),
        "{err}"
    );
    assert!(err.contains("adfdr verify --repair"), "{err}");

    // The region is back.
    rig.write_config(&rig.config_text(None));
    let out = rig.adfdr(&["snapshots"]);
    assert!(stdout(&out).contains("1/2 (weu)"), "{}", text(&out));
    assert_eq!(
        stdout(&out).matches("1/2 (weu)").count(),
        1,
        "the one committed snapshot lacks its neu copy: {}",
        text(&out)
    );
    let out = rig.adfdr(&["verify"]);
    assert_eq!(
        code(&out),
        3,
        "copies missing, nothing damaged: {}",
        text(&out)
    );
    let out = rig.adfdr(&["verify", "--repair"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["verify", "--read-data", "--location", "neu"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = rig.adfdr(&["snapshots"]);
    assert!(stdout(&out).contains("2/2"), "{}", text(&out));
    // The next backup is a plain success again.
    let out = rig.adfdr(&["backup", "--force"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
