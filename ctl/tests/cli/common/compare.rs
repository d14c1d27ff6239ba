//! Source git layout vs exported git layout, resource by resource: only
//! masked secrets and server-managed fields may differ.

use std::path::Path;

use adf_emulator::seed::load_git_layout;
use adfdr_tests::comparable as normalize;
use serde_json::Value;

/// Panics with the first difference; returns how many resources matched.
pub fn same_factory(label: &str, source: &Path, exported: &Path) -> usize {
    let a = load_git_layout(source).unwrap_or_else(|e| panic!("{label}: source: {e}"));
    let b = load_git_layout(exported).unwrap_or_else(|e| panic!("{label}: export: {e}"));
    let key = |r: &adf_emulator::seed::SeedResource| {
        (
            r.kind,
            r.parent.clone().unwrap_or_default().to_lowercase(),
            r.name.to_lowercase(),
        )
    };
    let exported: std::collections::BTreeMap<_, _> =
        b.resources.iter().map(|r| (key(r), r)).collect();
    assert_eq!(
        b.resources.len(),
        a.resources.len(),
        "{label}: the export holds as many resources as the source"
    );
    for r in &a.resources {
        let back = exported
            .get(&key(r))
            .unwrap_or_else(|| panic!("{label}: {:?} {} missing from the export", r.kind, r.name));
        assert_eq!(
            normalize(r.kind, &back.body),
            normalize(r.kind, &r.body),
            "{label}: {:?} {} exports as the source defines it",
            r.kind,
            r.name
        );
    }
    if let Some(src) = &a.factory {
        let out = b
            .factory
            .as_ref()
            .unwrap_or_else(|| panic!("{label}: factory file missing"));
        let params = |v: &Value| {
            v.pointer("/properties/globalParameters")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect::<std::collections::BTreeSet<_>>())
                .unwrap_or_default()
        };
        assert_eq!(params(out), params(src), "{label}: global parameters");
    }
    a.resources.len()
}
