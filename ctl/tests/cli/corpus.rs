//! Every real factory of the corpus (`ADFDR_CORPUS`): backed up, exported,
//! and equal to its source resource by resource.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_factory_round_trips_through_a_snapshot() {
    let Some((rig, dirs)) = corpus_rig("corpus").await else {
        return;
    };
    let names = rig.factories.clone();
    let out = rig.adfdr(&["backup", "--all", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let results = json(&out);
    assert_eq!(
        results["factories"].as_array().map(Vec::len),
        Some(dirs.len()),
        "{results}"
    );
    let mut total = 0;
    for ((name, _), dir) in names.iter().zip(&dirs) {
        let label = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let out_dir = rig.dir.join(format!("export-{name}"));
        let out = rig.adfdr(&[
            "export",
            "latest",
            "--factory",
            name,
            "--out",
            out_dir.to_str().expect("utf8"),
        ]);
        assert_eq!(code(&out), 0, "{label}: {}", text(&out));
        total += crate::common::compare::same_factory(label, dir, &out_dir);
        let out = rig.adfdr(&["show", "latest", "--factory", name]);
        assert_eq!(code(&out), 0, "{label}: {}", text(&out));
    }
    assert!(total > 50, "the corpus exercised {total} resources");
    let out = rig.adfdr(&["verify", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    eprintln!(
        "round-tripped {} corpus factories, {total} resources",
        dirs.len()
    );
}
