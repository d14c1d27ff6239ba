//! The byte-level canonicalizer (`model::raw`) against the value-tree path it
//! replaces on the backup path: the same canonical bytes, name, trigger state,
//! references and masked pointers for every resource of a generated factory
//! and of every corpus factory (`ADFDR_CORPUS`), as written, compact,
//! pretty-printed and with keys reversed.

use std::path::Path;

use adfdr_core::model::raw::{Scan, canonicalize_fast, canonicalize_raw};
use adfdr_core::model::restorability::masked_pointers;
use adfdr_core::model::{ResourceKind, canonical_bytes, canonicalize_owned, references};
use serde_json::Value;

fn kind_of(folder: &str) -> Option<ResourceKind> {
    if folder == "managedPrivateEndpoint" {
        return Some(ResourceKind::ManagedPrivateEndpoint);
    }
    ResourceKind::CHILDREN
        .into_iter()
        .chain([ResourceKind::Factory])
        .find(|k| k.git_folder() == Some(folder))
}

fn tree(kind: ResourceKind, raw: &[u8]) -> (Vec<u8>, Scan) {
    let answer: Value = serde_json::from_slice(raw).expect("json");
    let name = answer
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let runtime_state = answer
        .pointer(adfdr_core::model::raw::state_pointer(kind))
        .and_then(Value::as_str)
        .map(str::to_string);
    let d = canonicalize_owned(kind, answer);
    let scan = Scan {
        name,
        runtime_state,
        references: references(&d),
        masked: masked_pointers(&d),
    };
    (canonical_bytes(&d), scan)
}

/// Keys in reverse order at every level: a different byte sequence, same value.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

/// Checks every variant; returns (references found, whether the fast path
/// took the resource as written).
fn check(kind: ResourceKind, raw: &[u8], what: &str) -> (usize, bool) {
    let value: Value = serde_json::from_slice(raw).expect("json");
    let variants = [
        raw.to_vec(),
        serde_json::to_vec(&value).expect("json"),
        serde_json::to_vec_pretty(&value).expect("json"),
        serde_json::to_vec_pretty(&reversed(&value)).expect("json"),
    ];
    for (i, bytes) in variants.iter().enumerate() {
        let expected = tree(kind, bytes);
        let mut out = Vec::new();
        let scan = canonicalize_raw(kind, bytes, &mut out).expect("valid JSON");
        assert!(
            out == expected.0,
            "{what} (variant {i}): canonical bytes differ\nraw:  {}\ntree: {}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected.0)
        );
        assert_eq!(scan, expected.1, "{what} (variant {i})");
    }
    let fast = canonicalize_fast(kind, raw, &mut Vec::new()).is_some();
    (tree(kind, raw).1.references.len(), fast)
}

#[test]
fn generated_factory_resources_match_the_tree_path() {
    let mut references = 0;
    let files = adf_emulator::generate::factory(1500).files;
    assert!(files.len() > 1500);
    for (path, mut body) in files {
        let Some(kind) = path.split('/').next().and_then(kind_of) else {
            continue;
        };
        // As ARM answers: with the envelope and, for triggers, the state.
        body["id"] = format!("/subscriptions/s/x/{path}").into();
        body["etag"] = "\"0a00\"".into();
        if kind == ResourceKind::Trigger {
            body["properties"]["runtimeState"] = "Started".into();
        }
        let (found, fast) = check(kind, &serde_json::to_vec(&body).expect("json"), &path);
        assert!(fast, "{path}: the fast path declined an ordinary answer");
        references += found;
    }
    assert!(
        references > 1000,
        "the generator makes references: {references}"
    );
}

#[test]
fn corpus_resources_match_the_tree_path() {
    let Some(root) = std::env::var_os("ADFDR_CORPUS") else {
        eprintln!(
            "SKIPPED: ADFDR_CORPUS is not set, so the corpus check did not run (.ci/run sets it)"
        );
        return;
    };
    let (mut seen, mut fast) = (0, 0);
    walk(Path::new(&root), &mut |path| {
        let Some(kind) = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|f| f.to_str())
            .and_then(kind_of)
        else {
            return;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            return;
        }
        let raw = std::fs::read(path).expect("read");
        if serde_json::from_slice::<Value>(&raw).is_err() {
            return;
        }
        fast += usize::from(check(kind, &raw, &path.display().to_string()).1);
        seen += 1;
    });
    eprintln!("corpus: {seen} files, {fast} taken by the fast path as written");
    assert!(seen > 50, "corpus files checked: {seen}");
    assert!(
        fast * 10 >= seen * 9,
        "the fast path took only {fast} of {seen}"
    );
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}
