//! `adfdr restore` end to end, with the emulator as referee: an ordering bug
//! gets "invalid reference" or TriggerEnabledCannotUpdate from it and the
//! restore fails.

use std::collections::BTreeMap;

use adf_emulator::kinds::Kind;
use adf_emulator::state::child_view;
use adfdr_tests::comparable;
use serde_json::Value;

use crate::common::*;

pub const DR_RG: &str = "rg-dr";

/// (kind, name) -> (definition as tests compare it, runtime state) of a
/// factory in the emulator; None when the factory does not exist.
pub type Contents = BTreeMap<(String, String), (Value, Option<String>)>;

pub fn contents(rig: &Rig, rg: &str, factory: &str) -> Option<Contents> {
    rig.emu.with_world(|w| {
        let f = w.factory(SUB, rg, factory).ok()?;
        let mut out = BTreeMap::new();
        for kind in Kind::ALL {
            for c in f.children(kind).values() {
                let name = match &c.parent {
                    Some(p) => format!("{p}/{}", c.name).to_lowercase(),
                    None => c.name.to_lowercase(),
                };
                out.insert(
                    (format!("{kind:?}"), name),
                    (
                        comparable(kind, &child_view(f, kind, c)),
                        c.runtime_state.clone(),
                    ),
                );
            }
        }
        Some(out)
    })
}

pub fn started(c: &Contents) -> Vec<String> {
    c.iter()
        .filter(|((k, _), (_, s))| k == "Trigger" && s.as_deref() == Some("Started"))
        .map(|((_, n), _)| n.clone())
        .collect()
}

/// The label adfdr uses (`linkedService:ls_x`) of an emulator key, lowercased.
fn label(key: &(String, String)) -> String {
    let mut kind = key.0.clone();
    kind[..1].make_ascii_lowercase();
    format!("{kind}:{}", key.1).to_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_factory_restores_into_an_empty_factory() {
    let Some(dirs) = adfdr_tests::corpus_factories() else {
        return;
    };
    let names: Vec<(String, String)> = (0..dirs.len())
        .map(|i| (format!("corpus-{i}"), format!("adf-corpus-{i}")))
        .collect();
    let specs: Vec<(&str, &str, &std::path::Path)> = names
        .iter()
        .zip(&dirs)
        .map(|((n, a), d)| (n.as_str(), a.as_str(), d.as_path()))
        .collect();
    let rig = Rig::start("restore-corpus", &specs).await;
    let out = rig.adfdr(&["backup", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut restored_total = 0;
    for ((name, arm_name), dir) in names.iter().zip(&dirs) {
        let what = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let source = contents(&rig, RG, arm_name).expect("source factory");
        let target = format!("{SUB}/{DR_RG}/{arm_name}-dr");
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--yes",
            "--json",
        ]);
        assert!(matches!(code(&out), 0 | 3), "{what}: {}", text(&out));
        let report = json(&out);
        assert_eq!(
            report["applied"]["failures"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
        assert_eq!(
            report["mismatches"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
        let skipped: Vec<String> = report["plan"]["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .map(|s| {
                let reason = s["reason"].as_str().unwrap_or_default();
                assert!(
                    reason.contains("neither in the snapshot nor in the target")
                        || reason.contains("which is skipped"),
                    "{what}: only dangling references may be skipped: {s}"
                );
                s["label"].as_str().unwrap_or_default().to_lowercase()
            })
            .collect();
        assert_eq!(
            code(&out) == 3,
            !skipped.is_empty(),
            "{what}: exit 3 exactly when something was skipped"
        );
        let restored =
            contents(&rig, DR_RG, &format!("{arm_name}-dr")).expect("target factory created");
        let expected: Contents = source
            .iter()
            .filter(|(k, _)| !skipped.contains(&label(k)))
            .map(|(k, (v, _))| (k.clone(), (v.clone(), None)))
            .collect();
        let restored_defs: Contents = restored
            .iter()
            .map(|(k, (v, _))| (k.clone(), (v.clone(), None)))
            .collect();
        assert_eq!(
            restored_defs.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, v) in &expected {
            assert_eq!(&restored_defs[k], v, "{what}: {k:?} differs");
        }
        assert!(
            started(&restored).is_empty(),
            "{what}: triggers stay stopped by default"
        );
        restored_total += expected.len();

        // Triggers as they were: exactly the source's started ones.
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--yes",
            "--triggers",
            "as-backed-up",
        ]);
        assert!(matches!(code(&out), 0 | 3), "{what}: {}", text(&out));
        let restored = contents(&rig, DR_RG, &format!("{arm_name}-dr")).expect("target");
        let plan = json(&rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--plan",
            "--json",
            "--triggers",
            "as-backed-up",
        ]));
        let unstartable: Vec<String> = plan["plan"]["unstartable"]
            .as_array()
            .expect("unstartable")
            .iter()
            .map(|u| {
                assert!(
                    u["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("references no pipeline"),
                    "{u}"
                );
                u["label"].as_str().unwrap_or_default().to_lowercase()
            })
            .collect();
        let source_started: Vec<String> = started(&source)
            .into_iter()
            .filter(|n| {
                !skipped.contains(&format!("trigger:{n}"))
                    && !unstartable.contains(&format!("trigger:{n}"))
            })
            .collect();
        assert_eq!(started(&restored), source_started, "{what}");

        // Converged: nothing left to write.
        let out = rig.adfdr(&[
            "restore",
            "latest",
            "--factory",
            name,
            "--to",
            &target,
            "--plan",
            "--json",
            "--triggers",
            "as-backed-up",
        ]);
        assert_eq!(code(&out), 0, "{what}: {}", text(&out));
        let plan = json(&out);
        assert_eq!(
            plan["plan"]["steps"],
            serde_json::json!([]),
            "{what}: {plan:#}"
        );
        assert_eq!(
            plan["plan"]["factory"]["action"], "unchanged",
            "{what}: {plan:#}"
        );
    }
    assert!(restored_total > 50, "restored {restored_total} resources");
}
