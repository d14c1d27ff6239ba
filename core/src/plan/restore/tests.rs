use super::*;
use serde_json::json;

fn r(kind: ResourceKind, name: &str, definition: Value) -> Resource {
    Resource {
        kind,
        parent: None,
        name: name.into(),
        definition,
    }
}

fn factory() -> Resource {
    r(
        ResourceKind::Factory,
        "adf-prod",
        json!({"location": "westeurope", "identity": {"type": "SystemAssigned"},
            "properties": {"repoConfiguration": {"type": "FactoryGitHubConfiguration", "accountName": "a"},
            "globalConfigurations": {"factoryStagingLSReferenceName": "LS_Blob", "factoryStagingLSType": "LinkedServiceReference"}}}),
    )
}

fn source() -> Vec<Resource> {
    vec![
        factory(),
        r(
            ResourceKind::LinkedService,
            "LS_Blob",
            json!({"properties": {"type": "AzureBlobStorage"}}),
        ),
        r(
            ResourceKind::Dataset,
            "DS",
            json!({"properties": {"linkedServiceName": {"referenceName": "LS_Blob", "type": "LinkedServiceReference"}}}),
        ),
        r(
            ResourceKind::Pipeline,
            "PL_Child",
            json!({"properties": {"activities": [{"name": "c", "type": "Copy", "inputs": [{"referenceName": "DS", "type": "DatasetReference"}]}]}}),
        ),
        r(
            ResourceKind::Pipeline,
            "PL_Parent",
            json!({"properties": {"activities": [{"name": "p", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Child", "type": "PipelineReference"}}}]}}),
        ),
        r(
            ResourceKind::Trigger,
            "TR_Up",
            json!({"properties": {"type": "TumblingWindowTrigger", "pipeline": {"pipelineReference": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}}),
        ),
        r(
            ResourceKind::Trigger,
            "TR_Down",
            json!({"properties": {"type": "TumblingWindowTrigger", "pipeline": {"pipelineReference": {"referenceName": "PL_Parent", "type": "PipelineReference"}},
            "typeProperties": {"dependsOn": [{"type": "TumblingWindowTriggerDependencyReference", "referenceTrigger": {"referenceName": "TR_Up", "type": "TriggerReference"}}]}}}),
        ),
        r(
            ResourceKind::Trigger,
            "TR_Off",
            json!({"properties": {"type": "ScheduleTrigger", "pipelines": [{"pipelineReference": {"referenceName": "PL_Child", "type": "PipelineReference"}}]}}),
        ),
    ]
}

fn states() -> BTreeMap<String, String> {
    [
        ("TR_Up", "Started"),
        ("TR_Down", "Started"),
        ("TR_Off", "Stopped"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

fn labels(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.label.as_str()).collect()
}

#[test]
fn into_an_empty_target_everything_is_created_in_dependency_order() {
    let p = plan(
        &source(),
        &states(),
        Some("westeurope"),
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(p.factory.action, Action::Create);
    assert_eq!(p.factory.region, "westeurope");
    assert!(
        p.factory
            .body
            .pointer("/properties/repoConfiguration")
            .is_none(),
        "no git on a DR copy"
    );
    assert!(
        p.factory
            .body
            .pointer("/properties/globalConfigurations/factoryStagingLSReferenceName")
            .is_none()
    );
    let later = p
        .factory
        .final_body
        .as_ref()
        .expect("staging set afterwards");
    assert_eq!(
        later.pointer("/properties/globalConfigurations/factoryStagingLSReferenceName"),
        Some(&json!("LS_Blob"))
    );
    assert_eq!(
        labels(&p.steps),
        [
            "linkedService:LS_Blob",
            "dataset:DS",
            "pipeline:PL_Child",
            "pipeline:PL_Parent",
            "trigger:TR_Off",
            "trigger:TR_Up",
            "trigger:TR_Down"
        ]
    );
    assert!(p.steps.iter().all(|s| s.action == Action::Create));
    for (i, s) in p.steps.iter().enumerate() {
        assert!(
            s.deps.iter().all(|&d| d < i),
            "{} waits for a later step",
            s.label
        );
    }
    assert_eq!(p.depth, 6);
    assert!(p.start_triggers.is_empty(), "stopped by default");
    assert!(p.stop_triggers.is_empty());

    let as_backed_up = PlanOptions {
        triggers: TriggerMode::AsBackedUp,
        region: Some("northeurope".into()),
        ..Default::default()
    };
    let p = plan(
        &source(),
        &states(),
        Some("westeurope"),
        &TargetState::default(),
        None,
        &as_backed_up,
    )
    .expect("plan");
    assert_eq!(
        p.start_triggers,
        ["TR_Up", "TR_Down"],
        "dependencies first, stopped ones stay stopped"
    );
    assert_eq!(p.factory.region, "northeurope");
}

/// The service sets a customer-managed key only on an empty factory
/// without a managed VNet, with its user-assigned identity attached: a
/// plan that cannot meet that is refused before anything is written.
#[test]
fn a_customer_managed_key_goes_only_into_an_empty_factory_with_its_identity() {
    let uami = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-cmk";
    let mut snapshot = source();
    snapshot[0].definition["identity"] =
        json!({"type": "UserAssigned", "userAssignedIdentities": {uami: {}}});
    snapshot[0].definition["properties"]["encryption"] = json!({
        "vaultBaseUrl": "https://kv.vault.azure.net", "keyName": "adf",
        "identity": {"userAssignedIdentity": uami}});
    let run = |snapshot: &[Resource], target: &TargetState| {
        plan(
            snapshot,
            &states(),
            Some("westeurope"),
            target,
            None,
            &PlanOptions::default(),
        )
    };
    let p = run(&snapshot, &TargetState::default()).expect("a new factory takes it");
    assert_eq!(
        p.factory.body["properties"]["encryption"]["keyName"], "adf",
        "set with the first write, before any child"
    );
    assert!(
        p.factory.notes.iter().any(|n| n
            .contains("customer-managed key https://kv.vault.azure.net/keys/adf")
            && n.contains("uami-cmk attached")),
        "{:?}",
        p.factory.notes
    );
    let busy = target_from(source()[1..].to_vec(), &[]);
    let e = run(&snapshot, &busy).expect_err("not into a factory with resources");
    assert!(
        e.to_string().contains("only on an empty factory")
            && e.to_string().contains("7 resource(s)"),
        "{e}"
    );
    let vnet = target_from(
        vec![r(
            ResourceKind::ManagedVirtualNetwork,
            "default",
            json!({"properties": {}}),
        )],
        &[],
    );
    let e = run(&snapshot, &vnet).expect_err("not with a managed VNet");
    assert!(e.to_string().contains("managed virtual network"), "{e}");
    // Already encrypted with that key: a re-restore converges.
    let mut same = busy.clone();
    same.factory.as_mut().expect("factory")["properties"]["encryption"] =
        snapshot[0].definition["properties"]["encryption"].clone();
    run(&snapshot, &same).expect("the same key is no change");
    // The identity the key uses must be attached.
    snapshot[0].definition["identity"] = json!({"type": "SystemAssigned"});
    let e = run(&snapshot, &TargetState::default()).expect_err("identity missing");
    assert!(e.to_string().contains("does not attach"), "{e}");
}

fn target_from(resources: Vec<Resource>, started: &[&str]) -> TargetState {
    let mut f = factory().definition;
    f["properties"]["repoConfiguration"] =
        json!({"type": "FactoryVSTSConfiguration", "accountName": "dr"});
    TargetState {
        factory: Some(f),
        trigger_states: resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Trigger)
            .map(|r| {
                (
                    r.name.clone(),
                    if started.contains(&r.name.as_str()) {
                        "Started"
                    } else {
                        "Stopped"
                    }
                    .to_string(),
                )
            })
            .collect(),
        resources,
        created: None,
        is_source: false,
    }
}

#[test]
fn a_drifted_target_converges_and_started_triggers_are_stopped_first() {
    let mut drifted: Vec<Resource> = source()
        .into_iter()
        .filter(|r| r.kind != ResourceKind::Factory && r.name != "PL_Child")
        .collect();
    drifted
        .iter_mut()
        .find(|r| r.name == "TR_Up")
        .expect("TR_Up")
        .definition["properties"]["description"] = json!("hot-fix");
    drifted.push(r(ResourceKind::Pipeline, "PL_Extra", json!({"properties": {"activities": [{"name": "p", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}]}})));
    drifted.push(r(ResourceKind::Trigger, "TR_Extra", json!({"properties": {"type": "ScheduleTrigger", "pipelines": [{"pipelineReference": {"referenceName": "PL_Extra", "type": "PipelineReference"}}]}})));
    let target = target_from(drifted, &["TR_Up", "TR_Down", "TR_Extra"]);
    let p = plan(
        &source(),
        &states(),
        None,
        &target,
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(
        p.factory.action,
        Action::Unchanged,
        "the target's own git link is kept: {:?}",
        p.factory.notes
    );
    assert!(
        p.factory.final_body.is_none(),
        "staging LS exists in the target"
    );
    assert_eq!(labels(&p.steps), ["pipeline:PL_Child", "trigger:TR_Up"]);
    assert_eq!(p.steps[0].action, Action::Create);
    assert_eq!(p.steps[1].action, Action::Update);
    assert_eq!(p.unchanged.len(), 5);
    assert_eq!(
        p.stop_triggers,
        ["TR_Down", "TR_Up"],
        "dependents first; TR_Extra is not ours to stop"
    );
    assert!(p.delete.is_empty());
    assert_eq!(p.extraneous_kept.len(), 2);

    let options = PlanOptions {
        delete_extraneous: true,
        triggers: TriggerMode::AsBackedUp,
        ..Default::default()
    };
    let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
    let deletes: Vec<&str> = p.delete.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(
        deletes,
        ["trigger:TR_Extra", "pipeline:PL_Extra"],
        "dependents first"
    );
    assert_eq!(p.delete[1].after, [0]);
    assert_eq!(
        p.stop_triggers,
        ["TR_Extra", "TR_Up"],
        "TR_Down stays started as backed up"
    );
    assert_eq!(p.start_triggers, ["TR_Up"]);
}

#[test]
fn masked_secrets_skip_their_resource_and_its_dependents_unless_filled() {
    let mut src = source();
    src[1].definition["properties"]["typeProperties"] =
        json!({"accountKey": {"type": "SecureString", "value": MASK}});
    let p = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(skipped.len(), 7, "{skipped:?}");
    assert!(
        p.skipped[0]
            .reason
            .contains("/properties/typeProperties/accountKey/value"),
        "{}",
        p.skipped[0].reason
    );
    assert!(
        p.skipped
            .iter()
            .any(|s| s.reason.contains("needs linkedService:LS_Blob"))
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.secrets.len(), 1);
    assert!(!p.secrets[0].filled);
    let strict = PlanOptions {
        strict: true,
        ..Default::default()
    };
    let e = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &strict,
    )
    .expect_err("strict");
    assert!(e.to_string().contains("masked"), "{e}");
    // A drill writes a placeholder instead, and expects it masked on read.
    let drill = PlanOptions {
        placeholder_secrets: true,
        ..Default::default()
    };
    let p = plan(&src, &states(), None, &TargetState::default(), None, &drill).expect("plan");
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    assert_eq!(p.secrets.len(), 1);
    assert!(p.secrets[0].filled);
    let step = p
        .steps
        .iter()
        .find(|s| s.label == "linkedService:LS_Blob")
        .expect("written");
    assert_eq!(
        step.definition["properties"]["typeProperties"]["accountKey"]["value"],
        PLACEHOLDER_SECRET
    );
    let expected = p
        .expected
        .iter()
        .find(|e| e.label == "linkedService:LS_Blob")
        .expect("expected");
    assert_eq!(
        expected.definition["properties"]["typeProperties"]["accountKey"]["value"],
        MASK
    );

    let rules = Overrides::parse(
        "[[rule]]\nkind = \"linkedService\"\nname = \"LS_Blob\"\nfill = { \"/properties/typeProperties/accountKey\" = { env = \"KEY\" } }\n",
        "o.toml",
        &|_| Some("the-key".into()),
    )
    .expect("rules");
    let p = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        Some(&rules),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert!(p.skipped.is_empty());
    assert_eq!(
        p.steps[0]
            .definition
            .pointer("/properties/typeProperties/accountKey/value"),
        Some(&json!("the-key"))
    );
    assert_eq!(
        p.expected[0]
            .definition
            .pointer("/properties/typeProperties/accountKey/value"),
        Some(&json!(MASK))
    );
    assert!(p.secrets[0].filled);
    assert!(!serde_json::to_string(&p).expect("json").contains("the-key"));

    // Restored once, the target shows the mask: no rewrite next time.
    let mut restored = src.clone();
    restored.remove(0);
    let target = target_from(restored, &[]);
    let p = plan(
        &src,
        &states(),
        None,
        &target,
        Some(&rules),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert!(p.steps.is_empty(), "{:?}", labels(&p.steps));
}

/// --delete-extraneous never deletes what could not come back: managed
/// VNets have no DELETE (the REST spec), inbound private endpoint
/// connections are someone else's approval, identity credentials carry
/// the factory's access. The plan says which stay and why.
#[test]
fn delete_extraneous_keeps_what_cannot_come_back() {
    let mut extra = source();
    extra.push(r(
        ResourceKind::ManagedVirtualNetwork,
        "default",
        json!({"properties": {}}),
    ));
    extra.push(r(
        ResourceKind::PrivateEndpointConnection,
        "pe-from-consumer",
        json!({"properties": {"privateLinkServiceConnectionState": {"status": "Approved"}}}),
    ));
    extra.push(r(
        ResourceKind::Pipeline,
        "PL_Stray",
        json!({"properties": {"activities": []}}),
    ));
    let target = target_from(extra, &[]);
    let options = PlanOptions {
        delete_extraneous: true,
        ..Default::default()
    };
    let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
    let deleted: Vec<&str> = p.delete.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(deleted, ["pipeline:PL_Stray"]);
    let kept: Vec<(&str, &str)> = p
        .extraneous_kept
        .iter()
        .map(|k| (k.label.as_str(), k.reason.as_str()))
        .collect();
    for (label, why) in [
        ("managedVirtualNetwork:default", "has no DELETE"),
        (
            "privateEndpointConnection:pe-from-consumer",
            "never removes it",
        ),
    ] {
        assert!(
            kept.iter().any(|(l, r)| *l == label && r.contains(why)),
            "{label} kept because {why}: {kept:?}"
        );
    }
}

/// An inbound private endpoint connection in the snapshot cannot be
/// PUT: the plan reports it, naming the endpoint whose owner connects
/// the target again.
#[test]
fn inbound_private_endpoint_connections_are_reported_with_their_owner() {
    let mut src = source();
    let endpoint = "/subscriptions/s/resourceGroups/rg-consumer/providers/Microsoft.Network/privateEndpoints/pe-consumer";
    src.push(r(
        ResourceKind::PrivateEndpointConnection,
        "pe-from-consumer",
        json!({"properties": {"privateEndpoint": {"id": endpoint},
            "privateLinkServiceConnectionState": {"status": "Approved"}}}),
    ));
    let p = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    let skipped = p
        .skipped
        .iter()
        .find(|s| s.label == "privateEndpointConnection:pe-from-consumer")
        .expect("reported");
    assert!(
        skipped.reason.contains(endpoint) && skipped.reason.contains("cannot be re-created"),
        "{}",
        skipped.reason
    );
    assert!(
        p.steps
            .iter()
            .all(|s| s.kind != ResourceKind::PrivateEndpointConnection)
    );
}

/// An old git export's managed VNet (no `properties`) is sent with
/// `"properties": {}`, which the service requires, and equals the
/// target's when that is all it has.
#[test]
fn a_managed_vnet_without_properties_is_sent_with_empty_properties() {
    let mut src = source();
    src.push(r(
        ResourceKind::ManagedVirtualNetwork,
        "default",
        json!({"name": "default"}),
    ));
    let p = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = p
        .steps
        .iter()
        .find(|s| s.kind == ResourceKind::ManagedVirtualNetwork)
        .expect("vnet step");
    assert_eq!(
        step.definition["properties"],
        json!({}),
        "{}",
        step.definition
    );
    let served = r(
        ResourceKind::ManagedVirtualNetwork,
        "default",
        json!({"name": "default", "properties": {}}),
    );
    let target = target_from(
        src.iter()
            .filter(|r| {
                r.kind != ResourceKind::Factory && r.kind != ResourceKind::ManagedVirtualNetwork
            })
            .cloned()
            .chain([served])
            .collect(),
        &["TR_Up", "TR_Down"],
    );
    let p = plan(
        &src,
        &states(),
        None,
        &target,
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    assert!(
        p.unchanged
            .iter()
            .any(|u| u == "managedVirtualNetwork:default"),
        "{:?} / {:?}",
        p.unchanged,
        labels(&p.steps)
    );
}

/// An encryptedCredential points into its own factory's credential
/// store: kept only when restoring into that very factory; elsewhere the
/// linked service needs its credentials (an override replaces it, a
/// drill drops it as a placeholder), or is skipped saying why.
#[test]
fn encrypted_credentials_work_only_in_their_own_factory() {
    let mut src = source();
    src[1].definition["properties"]["typeProperties"] =
        json!({"connectionString": "AccountName=a;", "encryptedCredential": "ew0KfQ=="});
    let into = |target: &TargetState, overrides: Option<&Overrides>, placeholders: bool| {
        let options = PlanOptions {
            placeholder_secrets: placeholders,
            ..Default::default()
        };
        plan(&src, &states(), None, target, overrides, &options).expect("plan")
    };
    let same = TargetState {
        is_source: true,
        ..Default::default()
    };
    let p = into(&same, None, false);
    let ls = p
        .steps
        .iter()
        .find(|s| s.label == "linkedService:LS_Blob")
        .expect("ls");
    assert_eq!(
        ls.definition["properties"]["typeProperties"]["encryptedCredential"],
        "ew0KfQ=="
    );

    let p = into(&TargetState::default(), None, false);
    let skipped = p
        .skipped
        .iter()
        .find(|s| s.label == "linkedService:LS_Blob")
        .expect("skip");
    assert!(
        skipped.reason.contains("works in no other"),
        "{}",
        skipped.reason
    );
    assert!(
        p.secrets
            .iter()
            .any(|s| s.pointer == ENCRYPTED_CREDENTIAL && !s.filled)
    );

    let rules = Overrides::parse(
        r#"
[[rule]]
kind = "linkedService"
name = "LS_Blob"
set = { "/properties/typeProperties/accountKey" = { type = "SecureString", value = "k" } }
"#,
        "test.toml",
        &|_| None,
    )
    .expect("rules");
    let p = into(&TargetState::default(), Some(&rules), false);
    let ls = p
        .steps
        .iter()
        .find(|s| s.label == "linkedService:LS_Blob")
        .expect("ls");
    let props = &ls.definition["properties"]["typeProperties"];
    assert!(
        props.get("encryptedCredential").is_none() && props["accountKey"]["value"] == "k",
        "{props}"
    );

    let p = into(&TargetState::default(), None, true);
    let ls = p
        .steps
        .iter()
        .find(|s| s.label == "linkedService:LS_Blob")
        .expect("ls");
    assert!(
        ls.definition["properties"]["typeProperties"]
            .get("encryptedCredential")
            .is_none()
    );
    assert!(
        p.secrets
            .iter()
            .any(|s| s.pointer == ENCRYPTED_CREDENTIAL && s.filled)
    );
}

#[test]
fn selection_pulls_in_what_it_needs_and_names_what_it_cannot() {
    let only = PlanOptions {
        include: vec![Selector::parse("pipeline:pl_parent").expect("sel")],
        ..Default::default()
    };
    let p = plan(
        &source(),
        &states(),
        None,
        &TargetState::default(),
        None,
        &only,
    )
    .expect("plan");
    assert_eq!(
        labels(&p.steps),
        [
            "linkedService:LS_Blob",
            "dataset:DS",
            "pipeline:PL_Child",
            "pipeline:PL_Parent"
        ]
    );
    // What the target already has is used, not overwritten.
    let target = target_from(vec![source()[1].clone()], &[]);
    let mut changed = source();
    changed[1].definition["properties"]["description"] = json!("newer in the snapshot");
    let p = plan(&changed, &states(), None, &target, None, &only).expect("plan");
    assert_eq!(
        labels(&p.steps),
        ["dataset:DS", "pipeline:PL_Child", "pipeline:PL_Parent"]
    );
    let without = PlanOptions {
        include: vec![Selector::parse("pipeline:*").expect("sel")],
        exclude: vec![Selector::parse("dataset:*").expect("sel")],
        ..Default::default()
    };
    let e = plan(
        &source(),
        &states(),
        None,
        &TargetState::default(),
        None,
        &without,
    )
    .expect_err("missing");
    assert_eq!(
        e.to_string(),
        "pipeline:PL_Child needs dataset:DS, which is excluded and not in the target factory; include it, or restore pipeline:PL_Child into a factory that has it"
    );
}

#[test]
fn cycles_dangling_references_and_blocked_deletes() {
    let mut src = source();
    src[3].definition["properties"]["activities"] = json!([{"name": "back", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Parent", "type": "PipelineReference"}}}]);
    let e = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect_err("cycle");
    assert!(
        e.to_string()
            .contains("pipeline:PL_Child -> pipeline:PL_Parent -> pipeline:PL_Child"),
        "{e}"
    );

    let mut src = source();
    src[2].definition["properties"]["linkedServiceName"]["referenceName"] = json!("LS_Gone");
    let p = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(p.skipped[0].label, "dataset:DS");
    assert!(
        p.skipped[0].reason.contains("linkedService:LS_Gone"),
        "{}",
        p.skipped[0].reason
    );
    let e = plan(
        &src,
        &states(),
        None,
        &TargetState::default(),
        None,
        &PlanOptions {
            strict: true,
            ..Default::default()
        },
    )
    .expect_err("strict");
    assert!(e.to_string().contains("LS_Gone"));

    // An extra dataset still used by a pipeline outside the selection stays.
    let mut extra = source();
    extra.remove(0);
    extra.push(r(
        ResourceKind::Dataset,
        "DS_Extra",
        json!({"properties": {}}),
    ));
    extra.push(r(ResourceKind::Pipeline, "PL_Keep", json!({"properties": {"activities": [{"name": "c", "type": "Copy", "inputs": [{"referenceName": "DS_Extra", "type": "DatasetReference"}]}]}})));
    let target = target_from(extra, &[]);
    let options = PlanOptions {
        delete_extraneous: true,
        exclude: vec![Selector::parse("pipeline:PL_Keep").expect("sel")],
        ..Default::default()
    };
    let p = plan(&source(), &states(), None, &target, None, &options).expect("plan");
    assert!(p.delete.is_empty(), "{:?}", p.delete);
    assert_eq!(p.extraneous_kept.len(), 1);
    assert!(
        p.extraneous_kept[0].reason.contains("pipeline:PL_Keep"),
        "{:?}",
        p.extraneous_kept
    );
}
