//! Bad input gets the answers ADF gives (status and error code), never a crash
//! or a hang; the emulator keeps serving afterwards.

use adfdr_tests::{factory_path, raw_client, start_emulator};
use serde_json::{Value, json};

const SUB: &str = "33333333-3333-3333-3333-333333333333";

#[tokio::test]
async fn malformed_unknown_invalid_and_oversized_requests() {
    let emu = start_emulator(|_| {}).await;
    let token = emu.mint_token("https://management.azure.com/", "fuzzer", 600);
    let client = raw_client();
    let base = emu.urls().arm.clone();
    let f = factory_path(SUB, "rg", "adf-bad");
    let url = |path: &str| format!("{base}{f}{path}?api-version=2018-06-01");
    let ok = client
        .put(url(""))
        .bearer_auth(&token)
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    let big_pipeline =
        json!({"properties": {"activities": [], "description": "x".repeat(210 * 1024)}});
    let big_dataset = json!({"properties": {"type": "Json", "linkedServiceName": {"referenceName": "x", "type": "LinkedServiceReference"}, "description": "y".repeat(101 * 1024)}});
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        (
            "malformed JSON",
            url("/pipelines/p"),
            Some("{\"properties\": {".into()),
            400,
            "InvalidRequestContent",
        ),
        (
            "body that is not an object",
            url("/pipelines/p"),
            Some("[1,2]".into()),
            400,
            "InvalidRequestContent",
        ),
        (
            "no properties",
            url("/pipelines/p"),
            Some("{}".into()),
            400,
            "InvalidRequestContent",
        ),
        (
            "unknown resource type",
            url("/widgets/w"),
            Some("{\"properties\": {}}".into()),
            400,
            "InvalidResourceType",
        ),
        (
            "name with a dot",
            url("/pipelines/a.b"),
            Some("{\"properties\": {}}".into()),
            400,
            "BadRequest",
        ),
        (
            "name starting with a dash",
            url("/datasets/-x"),
            Some("{\"properties\": {}}".into()),
            400,
            "BadRequest",
        ),
        (
            "name too long",
            url(&format!("/pipelines/{}", "n".repeat(261))),
            Some("{\"properties\": {}}".into()),
            400,
            "BadRequest",
        ),
        (
            "integration runtime name with underscore",
            url("/integrationRuntimes/ir_1"),
            Some("{\"properties\": {\"type\": \"SelfHosted\"}}".into()),
            400,
            "BadRequest",
        ),
        (
            "factory name too short",
            format!(
                "{base}{}?api-version=2018-06-01",
                factory_path(SUB, "rg", "ab")
            ),
            Some("{\"location\": \"westeurope\"}".into()),
            400,
            "InvalidResourceName",
        ),
        (
            "pipeline over 200 KB",
            url("/pipelines/big"),
            Some(big_pipeline.to_string()),
            400,
            "BadRequest",
        ),
        (
            "dataset over 100 KB",
            url("/datasets/big"),
            Some(big_dataset.to_string()),
            400,
            "BadRequest",
        ),
        (
            "global parameters not named default",
            url("/globalParameters/other"),
            Some("{\"properties\": {}}".into()),
            400,
            "BadRequest",
        ),
        (
            "wrong api-version",
            format!("{base}{f}?api-version=2017-09-01-preview"),
            None,
            400,
            "InvalidResourceType",
        ),
        (
            "missing api-version",
            format!("{base}{f}"),
            None,
            400,
            "MissingApiVersionParameter",
        ),
        (
            "unknown factory",
            format!(
                "{base}{}/pipelines?api-version=2018-06-01",
                factory_path(SUB, "rg", "adf-none")
            ),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            "unknown pipeline",
            url("/pipelines/none"),
            None,
            404,
            "NotFound",
        ),
    ];
    for (what, target, body, status, code) in cases {
        let req = match body {
            Some(b) => client
                .put(&target)
                .header("content-type", "application/json")
                .body(b),
            None => client.get(&target),
        };
        let resp = req
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: error body is JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{what}: the message explains"
        );
    }
    let huge = client
        .put(url("/pipelines/huge"))
        .bearer_auth(&token)
        .body(vec![b' '; 9 * 1024 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(huge.status(), 413);
    let health = client
        .get(format!("{base}/_emulator/health"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(health.status(), 200);
}
