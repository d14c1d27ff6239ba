//! Every real factory in the corpus (`ADFDR_CORPUS`) seeds into the emulator,
//! lists back losslessly (except masked secrets and server fields), and its
//! resources can be PUT again, in dependency order, into an empty factory, where
//! they list back equal. The emulator's reference checks decide the order: a
//! resource is PUT in the first round in which everything it needs exists.

use std::collections::BTreeMap;

use adf_emulator::kinds::Kind;
use adf_emulator::seed::load_git_layout;
use adfdr_tests::{
    arm_client, comparable as normalize, corpus_factories, factory_path, start_emulator,
};
use serde_json::{Value, json};

const SUB: &str = "44444444-4444-4444-4444-444444444444";

fn listable_kinds() -> impl Iterator<Item = Kind> {
    Kind::ALL.into_iter().filter(|k| {
        !matches!(
            k,
            Kind::ManagedPrivateEndpoint | Kind::GlobalParameters | Kind::PrivateEndpointConnection
        )
    })
}

/// Lists every child resource of a factory: (kind, vnet, lower name) -> body.
async fn list_all(
    arm: &dyn adfdr_core::factory::FactoryApi,
    f: &str,
) -> BTreeMap<(Kind, String, String), Value> {
    let mut out = BTreeMap::new();
    for kind in listable_kinds() {
        for item in arm
            .list(&format!("{f}/{}", kind.segment()))
            .await
            .unwrap_or_else(|e| panic!("list {kind:?}: {e}"))
        {
            let name = item["name"].as_str().unwrap_or_default().to_string();
            if kind == Kind::ManagedVirtualNetwork {
                for mpe in arm
                    .list(&format!(
                        "{f}/managedVirtualNetworks/{name}/managedPrivateEndpoints"
                    ))
                    .await
                    .expect("list endpoints")
                {
                    let n = mpe["name"].as_str().unwrap_or_default().to_lowercase();
                    out.insert((Kind::ManagedPrivateEndpoint, name.clone(), n), mpe);
                }
            }
            out.insert((kind, String::new(), name.to_lowercase()), item);
        }
    }
    out
}

fn item_path(f: &str, kind: Kind, vnet: &str, name: &str) -> String {
    match kind {
        Kind::ManagedPrivateEndpoint => {
            format!("{f}/managedVirtualNetworks/{vnet}/managedPrivateEndpoints/{name}")
        }
        _ => format!("{f}/{}/{name}", kind.segment()),
    }
}

#[tokio::test]
async fn corpus_factories_seed_list_back_and_redeploy_in_dependency_order() {
    let Some(factories) = corpus_factories() else {
        return;
    };
    assert!(!factories.is_empty(), "the corpus holds factories");
    let emu = start_emulator(|c| c.settings.page_size = 4).await;
    let arm = arm_client(&emu, "corpus-app");
    for (i, dir) in factories.iter().enumerate() {
        let label = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let source_name = format!("adf-src-{i}");
        let warnings = emu
            .seed(&format!("{SUB}/rg-source/{source_name}"), dir)
            .unwrap_or_else(|e| panic!("{label} seeds: {e:#}"));
        let seed = load_git_layout(dir).expect("loads");
        let src = factory_path(SUB, "rg-source", &source_name);
        let listed = list_all(arm.as_ref(), &src).await;

        // Lossless: every file comes back as written (but for masked secrets and server fields).
        assert_eq!(
            listed.len(),
            seed.resources.len(),
            "{label}: every seeded resource is listed"
        );
        for r in &seed.resources {
            let key = (
                r.kind,
                r.parent.clone().unwrap_or_default(),
                r.name.to_lowercase(),
            );
            let back = listed
                .get(&key)
                .unwrap_or_else(|| panic!("{label}: {:?} {} not listed", r.kind, r.name));
            assert_eq!(
                normalize(r.kind, back),
                normalize(r.kind, &r.body),
                "{label}: {:?} {} lists back as seeded",
                r.kind,
                r.name
            );
        }
        if let Some(factory) = &seed.factory {
            let live = arm.get(&src).await.expect("get factory");
            assert_eq!(
                live["properties"]["globalParameters"].is_object(),
                factory.pointer("/properties/globalParameters").is_some(),
                "{label}: global parameters"
            );
        }
        let started: Vec<String> = listed
            .iter()
            .filter(|((k, _, _), v)| {
                *k == Kind::Trigger && v["properties"]["runtimeState"] == "Started"
            })
            .map(|((_, _, n), _)| n.clone())
            .collect();

        // Redeploy into an empty factory, round by round.
        let dst = factory_path(SUB, "rg-target", &format!("adf-dst-{i}"));
        arm.put(&dst, &json!({"location": "northeurope"}))
            .await
            .expect("target factory");
        let mut pending: Vec<(&(Kind, String, String), &Value)> = listed.iter().collect();
        let mut rounds = 0;
        let mut last_errors = Vec::new();
        while !pending.is_empty() {
            rounds += 1;
            let before = pending.len();
            let mut next = Vec::new();
            last_errors.clear();
            for (key, body) in pending {
                let (kind, vnet, _) = key;
                let name = body["name"].as_str().unwrap_or_default();
                let put = json!({"properties": body["properties"].clone()});
                match arm.put(&item_path(&dst, *kind, vnet, name), &put).await {
                    Ok(_) => {}
                    Err(e) if matches!(e.status(), Some(400 | 404)) => {
                        last_errors.push(format!("{kind:?} {name}: {e}"));
                        next.push((key, body));
                    }
                    Err(e) => panic!("{label}: {kind:?} {name}: {e}"),
                }
            }
            pending = next;
            if pending.len() == before {
                break;
            }
        }
        // What never goes in is exactly what references something the export lacks.
        for e in &last_errors {
            assert!(
                e.contains("invalid reference"),
                "{label}: only dangling references may block: {e}"
            );
        }
        assert_eq!(
            last_errors.is_empty(),
            warnings.is_empty(),
            "{label}: blocked resources {last_errors:?} vs seed warnings {warnings:?}"
        );
        assert!(
            rounds <= 12,
            "{label}: dependency depth bounds the rounds ({rounds})"
        );

        let restored = list_all(arm.as_ref(), &dst).await;
        for (key, body) in &restored {
            assert_eq!(
                normalize(key.0, body),
                normalize(key.0, &listed[key]),
                "{label}: {key:?} equal after redeploy"
            );
        }
        assert_eq!(
            restored.len() + last_errors.len(),
            listed.len(),
            "{label}: everything else was redeployed"
        );
        assert!(
            restored
                .iter()
                .filter(|((k, _, _), _)| *k == Kind::Trigger)
                .all(|(_, v)| v["properties"]["runtimeState"] == "Stopped"),
            "{label}: redeployed triggers start stopped"
        );
        eprintln!(
            "{label}: {} resources, {} rounds, {} started triggers in source, {} blocked by dangling references",
            listed.len(),
            rounds,
            started.len(),
            last_errors.len()
        );
    }
}

/// adfdr-core's reference extraction and the emulator's (written independently,
/// on purpose) agree on every static dependency of every real resource, and a
/// definition's canonical hash survives the round trip through the service.
#[tokio::test]
async fn core_model_agrees_with_the_referee_on_real_factories() {
    use adfdr_core::model::{
        ResourceKind, canonicalize, content_hash, references as core_references,
    };
    let Some(factories) = corpus_factories() else {
        return;
    };
    let emu = start_emulator(|_| {}).await;
    let arm = arm_client(&emu, "model-app");
    let mut checked = 0;
    for (i, dir) in factories.iter().enumerate() {
        let seed = load_git_layout(dir).expect("loads");
        let target = format!("{SUB}/rg-model/adf-model-{i}");
        emu.seed(&target, dir).expect("seeds");
        let listed = list_all(
            arm.as_ref(),
            &factory_path(SUB, "rg-model", &format!("adf-model-{i}")),
        )
        .await;
        for r in &seed.resources {
            let mut core: Vec<(String, String)> = core_references(&r.body)
                .iter()
                .filter_map(|x| x.dependency())
                .map(|(k, n)| (k.segment().to_ascii_lowercase(), n.to_ascii_lowercase()))
                .collect();
            let mut referee: Vec<(String, String)> = adf_emulator::kinds::references(&r.body)
                .into_iter()
                .map(|x| {
                    (
                        x.kind.segment().to_ascii_lowercase(),
                        x.name.to_ascii_lowercase(),
                    )
                })
                .collect();
            core.sort();
            referee.sort();
            assert_eq!(core, referee, "{}: {:?} {}", dir.display(), r.kind, r.name);

            let kind = match r.kind {
                Kind::IntegrationRuntime => ResourceKind::IntegrationRuntime,
                Kind::LinkedService => ResourceKind::LinkedService,
                Kind::Dataset => ResourceKind::Dataset,
                Kind::Pipeline => ResourceKind::Pipeline,
                Kind::Trigger => ResourceKind::Trigger,
                Kind::DataFlow => ResourceKind::DataFlow,
                Kind::ManagedVirtualNetwork => ResourceKind::ManagedVirtualNetwork,
                Kind::ManagedPrivateEndpoint => ResourceKind::ManagedPrivateEndpoint,
                Kind::Credential => ResourceKind::Credential,
                Kind::GlobalParameters => ResourceKind::GlobalParameters,
                Kind::PrivateEndpointConnection => ResourceKind::PrivateEndpointConnection,
                Kind::ChangeDataCapture => ResourceKind::ChangeDataCapture,
            };
            let key = (
                r.kind,
                r.parent.clone().unwrap_or_default(),
                r.name.to_lowercase(),
            );
            let mut sent = r.body.clone();
            adf_emulator::state::mask_secure_strings(&mut sent);
            let sent = canonicalize(kind, &sent);
            let back = canonicalize(kind, &listed[&key]);
            assert_eq!(
                content_hash(&json!({"properties": back["properties"]})),
                content_hash(&json!({"properties": sent["properties"]})),
                "{}: {:?} {} hashes equal after the round trip",
                dir.display(),
                r.kind,
                r.name
            );
            checked += 1;
        }
    }
    eprintln!("{checked} real resources: references and canonical hashes agree");
    assert!(checked > 50);
}
