//! The resource kinds of a factory, as adfdr backs them up and restores them.

use serde::{Deserialize, Serialize};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    Factory,
    GlobalParameters,
    ManagedVirtualNetwork,
    ManagedPrivateEndpoint,
    IntegrationRuntime,
    Credential,
    LinkedService,
    Dataset,
    DataFlow,
    Pipeline,
    ChangeDataCapture,
    Trigger,
    PrivateEndpointConnection,
    /// Microsoft.Insights/diagnosticSettings on the factory.
    DiagnosticSetting,
    /// Microsoft.Authorization/locks on the factory.
    Lock,
    /// Microsoft.Insights/metricAlerts in the factory's resource group
    /// whose scopes hold the factory.
    MetricAlert,
    /// Microsoft.Insights/activityLogAlerts in its resource group that
    /// watch the factory.
    ActivityLogAlert,
    /// A role the factory's system-assigned identity holds at some scope
    /// (what its pipelines may reach); restored as a grant to the new one.
    RoleAssignment,
    /// A Key Vault access policy naming the factory's system-assigned
    /// identity, on a vault its linked services use; restored as the same
    /// permissions for the new one.
    AccessPolicy,
}

/// Stands for the factory's own resource id inside the definitions of what
/// points at it (alert scopes): a restore puts the target's id there.
pub const FACTORY_ID: &str = "{factory}";

/// Replaces every string in `v` that `matches` with `with`; whether any did.
/// (The factory's id becomes FACTORY_ID at backup, and the target's id at
/// restore.)
pub fn replace_strings(
    v: &mut serde_json::Value,
    matches: &dyn Fn(&str) -> bool,
    with: &str,
) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) if matches(s) => {
            *s = with.to_string();
            true
        }
        Value::Array(a) => a
            .iter_mut()
            .fold(false, |any, x| replace_strings(x, matches, with) | any),
        Value::Object(m) => m
            .values_mut()
            .fold(false, |any, x| replace_strings(x, matches, with) | any),
        _ => false,
    }
}

/// The Microsoft.KeyVault (vaults, access policies) API version.
pub const KEY_VAULT_API: &str = "2023-07-01";

/// The role assignments API version.
pub const ROLE_ASSIGNMENTS_API: &str = "2022-04-01";

/// `properties.principal` of a grant held by the factory's system-assigned
/// identity (a restore grants it to the new factory's new principal).
pub const SYSTEM_ASSIGNED: &str = "systemAssigned";

/// `properties.principal` of a grant held by a user-assigned identity the
/// factory has attached, followed by that identity's resource id
/// (lowercase): the identity outlives the factory, so a restore grants only
/// what it is missing (what was scoped to the old factory, or all of it if
/// the identity was made again).
pub const USER_ASSIGNED: &str = "userAssigned:";

/// Whether a grant's `properties.principal` is one of the factory's own
/// identities (and not a person, group or other identity that works in it).
pub fn own_identity(principal: &str) -> bool {
    principal.is_empty() || principal == SYSTEM_ASSIGNED || principal.starts_with(USER_ASSIGNED)
}

/// The name adfdr keeps a grant under, from its definition: a role
/// assignment by role and scope (and the identity, for a user-assigned
/// one), an access policy by its vault (and the identity). Export names
/// what it reads so, and a restore that moves a grant's scope (a region
/// map) expects it back under the name its new scope gives.
pub fn grant_name(kind: ResourceKind, definition: &serde_json::Value) -> Option<String> {
    use sha2::Digest;
    let text = |p: &str| definition.pointer(p).and_then(serde_json::Value::as_str);
    let principal = text("/properties/principal").unwrap_or(SYSTEM_ASSIGNED);
    match kind {
        ResourceKind::RoleAssignment => {
            let role = text("/properties/roleDefinitionId")?
                .rsplit('/')
                .next()?
                .to_ascii_lowercase();
            let mut named = text("/properties/scope")?
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if principal != SYSTEM_ASSIGNED {
                named = format!("{named}|{principal}");
            }
            let digest = sha2::Sha256::digest(named.as_bytes());
            let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("{role}-{hex}"))
        }
        ResourceKind::AccessPolicy => {
            let mut name = text("/properties/vault")?
                .rsplit('/')
                .next()?
                .to_ascii_lowercase();
            if let Some(uami) = principal.strip_prefix(USER_ASSIGNED) {
                name = format!("{name}-{}", uami.rsplit('/').next().unwrap_or_default());
            }
            Some(name)
        }
        _ => None,
    }
}

impl ResourceKind {
    /// Child kinds, listed through `…/factories/{f}/{segment}`.
    pub const CHILDREN: [ResourceKind; 12] = [
        ResourceKind::GlobalParameters,
        ResourceKind::ManagedVirtualNetwork,
        ResourceKind::ManagedPrivateEndpoint,
        ResourceKind::IntegrationRuntime,
        ResourceKind::Credential,
        ResourceKind::LinkedService,
        ResourceKind::Dataset,
        ResourceKind::DataFlow,
        ResourceKind::Pipeline,
        ResourceKind::ChangeDataCapture,
        ResourceKind::Trigger,
        ResourceKind::PrivateEndpointConnection,
    ];

    /// The factory's surroundings: extension resources on it
    /// (`…/factories/{f}/providers/…`) and alerts in its resource group
    /// that watch it, each read and written at its provider's api-version.
    pub const SURROUNDINGS: [ResourceKind; 4] = [
        ResourceKind::DiagnosticSetting,
        ResourceKind::Lock,
        ResourceKind::MetricAlert,
        ResourceKind::ActivityLogAlert,
    ];

    /// Access the factory's identity holds elsewhere: granted to the
    /// restored factory's identity after the writes, never taken away.
    pub const GRANTS: [ResourceKind; 2] =
        [ResourceKind::RoleAssignment, ResourceKind::AccessPolicy];

    /// Lives in the factory's resource group (not below the factory), and
    /// points at the factory by id.
    pub fn in_resource_group(self) -> bool {
        matches!(
            self,
            ResourceKind::MetricAlert | ResourceKind::ActivityLogAlert
        )
    }

    /// For an extension kind: the provider path below the factory and its
    /// api-version.
    pub fn extension(self) -> Option<(&'static str, &'static str)> {
        match self {
            ResourceKind::DiagnosticSetting => Some((
                "providers/Microsoft.Insights/diagnosticSettings",
                "2021-05-01-preview",
            )),
            ResourceKind::Lock => Some(("providers/Microsoft.Authorization/locks", "2020-05-01")),
            ResourceKind::MetricAlert => {
                Some(("providers/Microsoft.Insights/metricAlerts", "2018-03-01"))
            }
            ResourceKind::ActivityLogAlert => Some((
                "providers/Microsoft.Insights/activityLogAlerts",
                "2020-10-01",
            )),
            _ => None,
        }
    }

    /// The ARM path segment (`…/factories/{f}/{segment}`); managed private
    /// endpoints live under `managedVirtualNetworks/{vnet}/`.
    pub fn segment(self) -> &'static str {
        match self {
            ResourceKind::Factory => "",
            ResourceKind::GlobalParameters => "globalParameters",
            ResourceKind::ManagedVirtualNetwork => "managedVirtualNetworks",
            ResourceKind::ManagedPrivateEndpoint => "managedPrivateEndpoints",
            ResourceKind::IntegrationRuntime => "integrationRuntimes",
            ResourceKind::Credential => "credentials",
            ResourceKind::LinkedService => "linkedservices",
            ResourceKind::Dataset => "datasets",
            ResourceKind::DataFlow => "dataflows",
            ResourceKind::Pipeline => "pipelines",
            ResourceKind::ChangeDataCapture => "adfcdcs",
            ResourceKind::Trigger => "triggers",
            ResourceKind::PrivateEndpointConnection => "privateEndpointConnections",
            ResourceKind::DiagnosticSetting => "providers/Microsoft.Insights/diagnosticSettings",
            ResourceKind::Lock => "providers/Microsoft.Authorization/locks",
            ResourceKind::MetricAlert => "providers/Microsoft.Insights/metricAlerts",
            ResourceKind::ActivityLogAlert => "providers/Microsoft.Insights/activityLogAlerts",
            ResourceKind::RoleAssignment => "providers/Microsoft.Authorization/roleAssignments",
            ResourceKind::AccessPolicy => "providers/Microsoft.KeyVault/vaults/accessPolicies",
        }
    }

    /// The kind a reference object's `type` names (`LinkedServiceReference`, ...).
    pub fn from_reference_type(reference_type: &str) -> Option<ResourceKind> {
        Some(match reference_type {
            "LinkedServiceReference" => ResourceKind::LinkedService,
            "DatasetReference" => ResourceKind::Dataset,
            "PipelineReference" => ResourceKind::Pipeline,
            "DataFlowReference" => ResourceKind::DataFlow,
            "IntegrationRuntimeReference" => ResourceKind::IntegrationRuntime,
            "CredentialReference" => ResourceKind::Credential,
            "TriggerReference" => ResourceKind::Trigger,
            "ManagedVirtualNetworkReference" => ResourceKind::ManagedVirtualNetwork,
            _ => return None,
        })
    }

    /// Fields the service owns inside `properties` (read-only, or state changed
    /// only through actions): never part of a definition's identity, never PUT.
    pub fn server_properties(self) -> &'static [&'static str] {
        match self {
            ResourceKind::Factory => &["provisioningState", "createTime", "version"],
            ResourceKind::Trigger => &["runtimeState"],
            ResourceKind::IntegrationRuntime => &["state"],
            ResourceKind::ManagedVirtualNetwork => &["vNetId", "alias"],
            ResourceKind::ManagedPrivateEndpoint => {
                &["provisioningState", "isReserved", "connectionState"]
            }
            ResourceKind::PrivateEndpointConnection => &["provisioningState"],
            _ => &[],
        }
    }

    /// The name used in labels, JSON and the CLI (`linkedService`, `pipeline`).
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Factory => "factory",
            ResourceKind::GlobalParameters => "globalParameters",
            ResourceKind::ManagedVirtualNetwork => "managedVirtualNetwork",
            ResourceKind::ManagedPrivateEndpoint => "managedPrivateEndpoint",
            ResourceKind::IntegrationRuntime => "integrationRuntime",
            ResourceKind::Credential => "credential",
            ResourceKind::LinkedService => "linkedService",
            ResourceKind::Dataset => "dataset",
            ResourceKind::DataFlow => "dataFlow",
            ResourceKind::Pipeline => "pipeline",
            ResourceKind::ChangeDataCapture => "changeDataCapture",
            ResourceKind::Trigger => "trigger",
            ResourceKind::PrivateEndpointConnection => "privateEndpointConnection",
            ResourceKind::DiagnosticSetting => "diagnosticSetting",
            ResourceKind::Lock => "lock",
            ResourceKind::MetricAlert => "metricAlert",
            ResourceKind::ActivityLogAlert => "activityLogAlert",
            ResourceKind::RoleAssignment => "roleAssignment",
            ResourceKind::AccessPolicy => "accessPolicy",
        }
    }

    /// The kind whose git-layout folder is `folder` (`pipeline`, `adfcdc`, …).
    pub fn from_git_folder(folder: &str) -> Option<ResourceKind> {
        std::iter::once(ResourceKind::Factory)
            .chain(ResourceKind::CHILDREN)
            .find(|k| k.git_folder() == Some(folder))
    }

    /// The folder of ADF's git layout; None for kinds git integration does
    /// not keep (global parameters live in the factory file there).
    pub fn git_folder(self) -> Option<&'static str> {
        Some(match self {
            ResourceKind::Factory => "factory",
            ResourceKind::ManagedVirtualNetwork => "managedVirtualNetwork",
            ResourceKind::IntegrationRuntime => "integrationRuntime",
            ResourceKind::Credential => "credential",
            ResourceKind::LinkedService => "linkedService",
            ResourceKind::Dataset => "dataset",
            ResourceKind::DataFlow => "dataflow",
            ResourceKind::Pipeline => "pipeline",
            ResourceKind::ChangeDataCapture => "adfcdc",
            ResourceKind::Trigger => "trigger",
            // Not ADF git: `export` writes them beside it, in surroundings/.
            ResourceKind::DiagnosticSetting
            | ResourceKind::Lock
            | ResourceKind::MetricAlert
            | ResourceKind::ActivityLogAlert
            | ResourceKind::RoleAssignment
            | ResourceKind::AccessPolicy => return None,
            ResourceKind::GlobalParameters
            | ResourceKind::ManagedPrivateEndpoint
            | ResourceKind::PrivateEndpointConnection => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_serde_names() {
        for kind in ResourceKind::CHILDREN
            .into_iter()
            .chain(ResourceKind::SURROUNDINGS)
            .chain(ResourceKind::GRANTS)
            .chain([ResourceKind::Factory])
        {
            let json = serde_json::to_string(&kind).expect("kind");
            assert_eq!(json.trim_matches('"'), kind.label());
        }
    }
}
