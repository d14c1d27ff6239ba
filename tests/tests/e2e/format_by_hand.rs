//! docs/FORMAT.md says a snapshot can be decrypted by hand. Its Python recipe,
//! taken from the document itself, decrypts the golden v1 snapshot with the
//! published key and lists the resources: the document stays true.

use std::process::Command;

use adfdr_tests::workspace_root;

#[test]
fn the_format_documents_recipe_decrypts_the_golden_snapshot() {
    let python = workspace_root().join("tools/venv/bin/python");
    assert!(
        python.exists(),
        "the venv is missing at {}; run scripts/setup",
        python.display()
    );
    let doc = std::fs::read_to_string(workspace_root().join("docs/FORMAT.md")).expect("FORMAT.md");
    let start = doc.find("```python\n").expect("a python recipe") + "```python\n".len();
    let recipe = &doc[start..start + doc[start..].find("```").expect("end of recipe")];
    let script = recipe
        .replace(
            "open(\"S.manifest\", \"rb\")",
            "open(\"20261122T000000Z-00000001.manifest\", \"rb\")",
        )
        .replace(
            "open(\"S.payload\", \"rb\")",
            "open(\"20261122T000000Z-00000001.payload\", \"rb\")",
        )
        .replace(
            "open(\"breakglass.key\", \"rb\").read()",
            "bytes(range(32))",
        );
    assert_ne!(script, recipe, "the recipe names the files it opens");
    let out = Command::new(python)
        .arg("-c")
        .arg(&script)
        .current_dir(workspace_root().join("fixtures/golden/v1"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        names,
        [
            "adf-golden",
            "default",
            "mpe-sql",
            "LS_Sql",
            "DS Ünïcode ✓",
            "PL_Main",
            "TR_Daily"
        ]
    );
}
