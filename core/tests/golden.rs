//! Golden snapshots: objects written by an earlier adfdr must keep opening.
//! fixtures/golden/v1 holds a snapshot sealed by format version 1 with a
//! published test key. A change that stops it from opening, or that changes
//! what comes out, fails here. Regenerate only for a new format version:
//! ADFDR_REGENERATE_GOLDEN=1 cargo test -p adfdr-core --test golden

use std::collections::BTreeMap;
use std::path::PathBuf;

use adfdr_core::model::ResourceKind;
use adfdr_core::snapshot::manifest::{
    self, Manifest, ObjectRef, PublicManifest, Resource, Source, hex,
};
use adfdr_core::snapshot::object::{self, DEFAULT_MAX_PLAIN, Header, ObjectType};
use adfdr_core::snapshot::{DataKey, FileKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FACTORY: &str = "golden";
const SNAPSHOT: &str = "20261122T000000Z-00000001";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/v1")
}

/// Not a secret: published (bytes 0..32) so anyone can check the format by hand.
fn key() -> FileKey {
    let bytes: Vec<u8> = (0u8..32).collect();
    FileKey::new("golden", &bytes).expect("32 bytes")
}

fn resources() -> Vec<Resource> {
    let r = |kind, parent: Option<&str>, name: &str, definition: Value| Resource {
        kind,
        parent: parent.map(str::to_string),
        name: name.into(),
        definition,
    };
    vec![
        r(
            ResourceKind::Factory,
            None,
            "adf-golden",
            json!({"location": "westeurope", "identity": {"type": "SystemAssigned"}, "properties": {"globalParameters": {"env": {"type": "String", "value": "prod"}}}}),
        ),
        r(
            ResourceKind::LinkedService,
            None,
            "LS_Sql",
            json!({"properties": {"type": "AzureSqlDatabase", "typeProperties": {"connectionString": {"type": "SecureString", "value": "**********"}}}}),
        ),
        r(
            ResourceKind::Dataset,
            None,
            "DS Ünïcode ✓",
            json!({"properties": {"type": "AzureSqlTable", "linkedServiceName": {"referenceName": "LS_Sql", "type": "LinkedServiceReference"}, "description": "line\nbreak \"quoted\" \u{2028}", "n": 1.5e300, "i": -42}}),
        ),
        r(
            ResourceKind::Pipeline,
            None,
            "PL_Main",
            json!({"properties": {"activities": [{"name": "Copy", "type": "Copy", "inputs": [{"referenceName": "DS Ünïcode ✓", "type": "DatasetReference"}]}], "unknownFutureField": {"kept": true}}}),
        ),
        r(
            ResourceKind::Trigger,
            None,
            "TR_Daily",
            json!({"properties": {"type": "ScheduleTrigger", "pipelines": [{"pipelineReference": {"referenceName": "PL_Main", "type": "PipelineReference"}}]}}),
        ),
        r(
            ResourceKind::ManagedVirtualNetwork,
            None,
            "default",
            json!({"properties": {}}),
        ),
        r(
            ResourceKind::ManagedPrivateEndpoint,
            Some("default"),
            "mpe-sql",
            json!({"properties": {"groupId": "sqlServer", "privateLinkResourceId": "/subscriptions/x/sql"}}),
        ),
    ]
}

fn regenerate() {
    let mut rs = resources();
    let (plain, entries) = manifest::encode_payload(&mut rs);
    let states = BTreeMap::from([("TR_Daily".to_string(), "Started".to_string())]);
    let dek = DataKey::generate();
    let created = "2026-11-22T00:00:00Z";
    let payload = object::seal(
        Header::new(ObjectType::Payload, FACTORY, SNAPSHOT, created),
        &plain,
        &dek,
    );
    let body = Manifest {
        source: Source {
            subscription: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg-golden".into(),
            factory: "adf-golden".into(),
        },
        region: Some("westeurope".into()),
        exported_at: created.into(),
        root: manifest::root(&entries, &states, &Default::default()),
        resources: entries.clone(),
        trigger_states: states,
        runtimes: Default::default(),
        created: None,
        not_offered: Vec::new(),
        report: adfdr_core::model::restorability::report(&rs),
        changes: Vec::new(),
        applied: Default::default(),
        awaiting: Vec::new(),
        policy: None,
    };
    let mut header = Header::new(ObjectType::Manifest, FACTORY, SNAPSHOT, created);
    header.manifest = Some(PublicManifest {
        resources: entries.len(),
        counts: manifest::counts(&entries),
        payload: ObjectRef {
            sha256: hex(&Sha256::digest(&payload)),
            size: payload.len() as u64,
        },
        keys: vec![key().wrap(&dek, FACTORY, SNAPSHOT)],
        tool: "adfdr 0.1.0".into(),
    });
    let manifest = object::seal(header, &serde_json::to_vec(&body).expect("json"), &dek);
    std::fs::create_dir_all(dir()).expect("dir");
    std::fs::write(dir().join(format!("{SNAPSHOT}.payload")), payload).expect("write");
    std::fs::write(dir().join(format!("{SNAPSHOT}.manifest")), manifest).expect("write");
    let expected = json!({"root": body.root, "entries": entries});
    std::fs::write(
        dir().join("expected.json"),
        serde_json::to_string_pretty(&expected).expect("json") + "\n",
    )
    .expect("write");
}

#[test]
fn the_golden_v1_snapshot_still_opens_and_yields_the_same_resources() {
    if std::env::var_os("ADFDR_REGENERATE_GOLDEN").is_some() {
        regenerate();
    }
    let manifest_bytes =
        std::fs::read(dir().join(format!("{SNAPSHOT}.manifest"))).expect("golden manifest");
    let payload_bytes =
        std::fs::read(dir().join(format!("{SNAPSHOT}.payload"))).expect("golden payload");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("expected.json")).expect("expected"),
    )
    .expect("json");

    // Without a key: digest, header, payload link.
    let parsed = object::parse(&manifest_bytes).expect("manifest digest and header");
    let header = parsed.header.clone();
    assert_eq!(
        (
            header.format,
            header.factory.as_str(),
            header.snapshot.as_str()
        ),
        (1, FACTORY, SNAPSHOT)
    );
    let public = header.manifest.clone().expect("public manifest");
    assert_eq!(public.payload.sha256, hex(&Sha256::digest(&payload_bytes)));
    assert_eq!(public.resources, 7);

    // With the published key: everything decrypts and every hash checks.
    let dek = key()
        .unwrap(&public.keys[0], FACTORY, SNAPSHOT)
        .expect("golden key opens it");
    let body: Manifest = serde_json::from_slice(
        &parsed
            .open(&dek, DEFAULT_MAX_PLAIN)
            .expect("manifest opens"),
    )
    .expect("manifest json");
    assert_eq!(body.root, expected["root"].as_str().expect("root"));
    assert_eq!(
        serde_json::to_value(&body.resources).expect("json"),
        expected["entries"]
    );
    assert_eq!(
        manifest::root(&body.resources, &body.trigger_states, &body.runtimes),
        body.root
    );
    let payload = object::parse(&payload_bytes).expect("payload digest");
    let plain = payload
        .open(&dek, DEFAULT_MAX_PLAIN)
        .expect("payload opens");
    let decoded = manifest::decode_payload(&plain, &body.resources).expect("hashes check");
    let mut want = resources();
    manifest::encode_payload(&mut want);
    assert_eq!(
        decoded, want,
        "the golden snapshot yields today's resources"
    );
}
