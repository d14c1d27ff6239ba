//! The resource kinds of a factory, as adfdr backs them up and restores them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
}
