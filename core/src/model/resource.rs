//! One resource of a factory as adfdr holds it: its kind, name (and the
//! managed VNet of a managed private endpoint) and canonical definition.
//! Names compare case-insensitively, as ADF's do.

use serde_json::Value;

use super::ResourceKind;

/// One exported resource: its identity and its canonical definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub kind: ResourceKind,
    /// The managed virtual network of a managed private endpoint.
    pub parent: Option<String>,
    pub name: String,
    pub definition: Value,
}

impl Resource {
    /// Sort and identity key: names are case-insensitive in ADF.
    pub fn key(&self) -> (ResourceKind, String, String) {
        key(self.kind, self.parent.as_deref(), &self.name)
    }

    pub fn label(&self) -> String {
        label(self.kind, self.parent.as_deref(), &self.name)
    }
}

pub fn key(kind: ResourceKind, parent: Option<&str>, name: &str) -> (ResourceKind, String, String) {
    (
        kind,
        parent.unwrap_or("").to_lowercase(),
        name.to_lowercase(),
    )
}

/// `pipeline:PL_Load`, `managedPrivateEndpoint:default/mpe1`.
pub fn label(kind: ResourceKind, parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{}:{p}/{name}", kind.label()),
        None => format!("{}:{name}", kind.label()),
    }
}
