//! The child resource types of a factory, as the ARM API names them, and the
//! references between them.
//!
//! This module is deliberately independent of `adfdr-core`: the emulator is the
//! referee for adfdr's ordering, so it must not share adfdr's understanding of
//! references (a shared bug would pass unseen).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A child resource type of a factory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    IntegrationRuntime,
    LinkedService,
    Dataset,
    Pipeline,
    Trigger,
    DataFlow,
    ManagedVirtualNetwork,
    ManagedPrivateEndpoint,
    Credential,
    GlobalParameters,
    PrivateEndpointConnection,
    ChangeDataCapture,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::IntegrationRuntime,
        Kind::LinkedService,
        Kind::Dataset,
        Kind::Pipeline,
        Kind::Trigger,
        Kind::DataFlow,
        Kind::ManagedVirtualNetwork,
        Kind::ManagedPrivateEndpoint,
        Kind::Credential,
        Kind::GlobalParameters,
        Kind::PrivateEndpointConnection,
        Kind::ChangeDataCapture,
    ];

    /// The path segment as it appears in resource ids.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::IntegrationRuntime => "integrationruntimes",
            Kind::LinkedService => "linkedservices",
            Kind::Dataset => "datasets",
            Kind::Pipeline => "pipelines",
            Kind::Trigger => "triggers",
            Kind::DataFlow => "dataflows",
            Kind::ManagedVirtualNetwork => "managedVirtualNetworks",
            Kind::ManagedPrivateEndpoint => "managedPrivateEndpoints",
            Kind::Credential => "credentials",
            Kind::GlobalParameters => "globalParameters",
            Kind::PrivateEndpointConnection => "privateEndpointConnections",
            Kind::ChangeDataCapture => "adfcdcs",
        }
    }

    /// Parses a path segment the way ARM does: case-insensitively. The list path
    /// of private endpoint connections is spelled `privateEndPointConnections`
    /// in the spec, which the case-insensitive match covers.
    pub fn from_segment(segment: &str) -> Option<Kind> {
        let lower = segment.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| k.segment().eq_ignore_ascii_case(&lower))
    }

    /// The `type` string in responses (lower/mixed case exactly as the service answers).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::ManagedPrivateEndpoint => {
                "Microsoft.DataFactory/factories/managedVirtualNetworks/managedPrivateEndpoints"
            }
            other => TYPE_NAMES[other as usize],
        }
    }

    /// Whether GET honours `If-None-Match` with a 304 (documented for these only).
    pub fn supports_not_modified(self) -> bool {
        matches!(
            self,
            Kind::IntegrationRuntime
                | Kind::LinkedService
                | Kind::Dataset
                | Kind::Pipeline
                | Kind::Trigger
        )
    }

    /// ADF's documented maximum size of one object's JSON, where there is one.
    pub fn size_limit(self) -> Option<usize> {
        match self {
            Kind::Pipeline => Some(200 * 1024),
            Kind::Dataset | Kind::LinkedService => Some(100 * 1024),
            _ => None,
        }
    }

    /// Whether definitions of this kind are polymorphic on `properties.type`.
    pub fn requires_type(self) -> bool {
        matches!(
            self,
            Kind::IntegrationRuntime
                | Kind::LinkedService
                | Kind::Dataset
                | Kind::Trigger
                | Kind::DataFlow
                | Kind::Credential
        )
    }

    /// A valid `properties.type`, for messages.
    pub fn type_example(self) -> &'static str {
        match self {
            Kind::IntegrationRuntime => "SelfHosted or Managed",
            Kind::LinkedService => "AzureBlobStorage",
            Kind::Dataset => "DelimitedText",
            Kind::Trigger => "ScheduleTrigger",
            Kind::DataFlow => "MappingDataFlow",
            Kind::Credential => "ManagedIdentity",
            _ => "-",
        }
    }

    /// The name used in messages ("pipeline", "linked service", ...).
    pub fn label(self) -> &'static str {
        match self {
            Kind::IntegrationRuntime => "integration runtime",
            Kind::LinkedService => "linked service",
            Kind::Dataset => "dataset",
            Kind::Pipeline => "pipeline",
            Kind::Trigger => "trigger",
            Kind::DataFlow => "data flow",
            Kind::ManagedVirtualNetwork => "managed virtual network",
            Kind::ManagedPrivateEndpoint => "managed private endpoint",
            Kind::Credential => "credential",
            Kind::GlobalParameters => "global parameters",
            Kind::PrivateEndpointConnection => "private endpoint connection",
            Kind::ChangeDataCapture => "change data capture",
        }
    }

    /// The folder of the ADF git layout that holds this kind (None: not in git).
    pub fn git_folder(self) -> Option<&'static str> {
        match self {
            Kind::IntegrationRuntime => Some("integrationRuntime"),
            Kind::LinkedService => Some("linkedService"),
            Kind::Dataset => Some("dataset"),
            Kind::Pipeline => Some("pipeline"),
            Kind::Trigger => Some("trigger"),
            Kind::DataFlow => Some("dataflow"),
            Kind::ManagedVirtualNetwork => Some("managedVirtualNetwork"),
            Kind::Credential => Some("credential"),
            Kind::ChangeDataCapture => Some("adfcdc"),
            Kind::ManagedPrivateEndpoint
            | Kind::GlobalParameters
            | Kind::PrivateEndpointConnection => None,
        }
    }

    /// The kind a reference object's `type` points at.
    pub fn from_reference_type(reference_type: &str) -> Option<Kind> {
        match reference_type {
            "LinkedServiceReference" => Some(Kind::LinkedService),
            "DatasetReference" => Some(Kind::Dataset),
            "PipelineReference" => Some(Kind::Pipeline),
            "DataFlowReference" => Some(Kind::DataFlow),
            "IntegrationRuntimeReference" => Some(Kind::IntegrationRuntime),
            "CredentialReference" => Some(Kind::Credential),
            "TriggerReference" => Some(Kind::Trigger),
            "ManagedVirtualNetworkReference" => Some(Kind::ManagedVirtualNetwork),
            _ => None,
        }
    }

    /// Validates a child name against ADF's naming rules; the error is the message.
    pub fn check_name(self, name: &str) -> Result<(), String> {
        match self {
            Kind::IntegrationRuntime => check_dashed_name(name, "Integration runtime"),
            Kind::GlobalParameters if !name.eq_ignore_ascii_case("default") => Err(format!(
                "The global parameters resource name '{name}' is invalid: it must be 'default'."
            )),
            _ => check_entity_name(name),
        }
    }
}

const TYPE_NAMES: [&str; 12] = [
    "Microsoft.DataFactory/factories/integrationruntimes",
    "Microsoft.DataFactory/factories/linkedservices",
    "Microsoft.DataFactory/factories/datasets",
    "Microsoft.DataFactory/factories/pipelines",
    "Microsoft.DataFactory/factories/triggers",
    "Microsoft.DataFactory/factories/dataflows",
    "Microsoft.DataFactory/factories/managedVirtualNetworks",
    "Microsoft.DataFactory/factories/managedVirtualNetworks/managedPrivateEndpoints",
    "Microsoft.DataFactory/factories/credentials",
    "Microsoft.DataFactory/factories/globalParameters",
    "Microsoft.DataFactory/factories/privateEndpointConnections",
    "Microsoft.DataFactory/factories/adfcdcs",
];

const FORBIDDEN_IN_ENTITY_NAMES: &[char] =
    &['<', '>', '*', '#', '.', '%', '&', ':', '\\', '+', '?', '/'];

/// Pipelines, datasets, linked services, triggers, data flows...: 1 to 260
/// characters, starting with a letter, digit or underscore, none of `<>*#.%&:\+?/`.
pub fn check_entity_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.chars().count() > 260 {
        return Err(format!(
            "The name '{}...' is too long: entity names are at most 260 characters.",
            name.chars().take(40).collect::<String>()
        ));
    }
    if !first_ok
        || name
            .chars()
            .any(|c| c.is_control() || FORBIDDEN_IN_ENTITY_NAMES.contains(&c))
    {
        return Err(format!(
            "The name of the entity '{name}' contains invalid characters. Names must start with a letter, a number or an underscore and cannot contain <>*#.%&:\\+?/ or control characters."
        ));
    }
    Ok(())
}

/// Factories and integration runtimes: 3 to 63 letters, digits and single dashes,
/// starting and ending with a letter or digit.
pub fn check_dashed_name(name: &str, what: &str) -> Result<(), String> {
    let len_ok = (3..=63).contains(&name.len());
    let chars_ok = name
        .split('-')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if len_ok && chars_ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name '{name}' is invalid: it can contain only letters, numbers and the dash (-) character, 3 to 63 characters long. The first and last characters must be a letter or number, and consecutive dashes are not permitted."
        ))
    }
}

/// A reference found inside a resource body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub kind: Kind,
    pub name: String,
}

/// Collects every reference in a body: any object with a string `referenceName`
/// and a `type` naming a known reference kind. Expression-valued names (objects,
/// or strings starting with `@`) are resolved at run time and are not references
/// the service can check.
pub fn references(body: &Value) -> Vec<Reference> {
    let mut found = Vec::new();
    collect_references(body, &mut found);
    found
}

fn collect_references(value: &Value, found: &mut Vec<Reference>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(Value::String(ty))) =
                (map.get("referenceName"), map.get("type"))
                && let Some(kind) = Kind::from_reference_type(ty)
                && !name.starts_with('@')
                && !is_implicit(kind, name)
            {
                found.push(Reference {
                    kind,
                    name: name.clone(),
                });
            }
            for child in map.values() {
                collect_references(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

/// Resources that exist in every factory without being defined.
fn is_implicit(kind: Kind, name: &str) -> bool {
    kind == Kind::IntegrationRuntime && name.eq_ignore_ascii_case("AutoResolveIntegrationRuntime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn segments_round_trip_case_insensitively() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_segment(kind.segment()), Some(kind));
            assert_eq!(
                Kind::from_segment(&kind.segment().to_uppercase()),
                Some(kind)
            );
        }
        assert_eq!(
            Kind::from_segment("privateEndPointConnections"),
            Some(Kind::PrivateEndpointConnection)
        );
        assert_eq!(Kind::from_segment("widgets"), None);
    }

    #[test]
    fn references_are_found_anywhere_and_expressions_skipped() {
        let body = json!({
            "properties": {
                "linkedServiceName": {"referenceName": "LS_Blob", "type": "LinkedServiceReference"},
                "activities": [{"typeProperties": {
                    "pipeline": {"referenceName": "child", "type": "PipelineReference"},
                    "dataset": {"referenceName": {"value": "@x", "type": "Expression"}, "type": "DatasetReference"},
                    "other": {"referenceName": "@pipeline().parameters.ds", "type": "DatasetReference"},
                    "ir": {"referenceName": "AutoResolveIntegrationRuntime", "type": "IntegrationRuntimeReference"},
                    "dep": {"type": "TumblingWindowTriggerDependencyReference",
                            "referenceTrigger": {"referenceName": "t1", "type": "TriggerReference"}}
                }}]
            }
        });
        let refs = references(&body);
        assert_eq!(
            refs,
            vec![
                Reference {
                    kind: Kind::LinkedService,
                    name: "LS_Blob".into()
                },
                Reference {
                    kind: Kind::Pipeline,
                    name: "child".into()
                },
                Reference {
                    kind: Kind::Trigger,
                    name: "t1".into()
                },
            ]
        );
    }

    #[test]
    fn names_follow_adf_rules() {
        assert!(check_entity_name("PL_Copy data_1").is_ok());
        assert!(check_entity_name("_x").is_ok());
        assert!(check_entity_name("a.b").is_err());
        assert!(check_entity_name("-a").is_err());
        assert!(check_entity_name("").is_err());
        assert!(check_entity_name(&"a".repeat(261)).is_err());
        assert!(check_dashed_name("adf-sales-prod", "Factory").is_ok());
        assert!(check_dashed_name("ab", "Factory").is_err());
        assert!(check_dashed_name("a--b", "Factory").is_err());
        assert!(check_dashed_name("ab-", "Factory").is_err());
    }
}
