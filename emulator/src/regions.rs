//! Regions and their loss (issue 28): every resource the emulator serves or
//! knows has a region (a factory's `location`, a storage account's, or one
//! declared with `POST /_emulator/resources`), and a region can be taken
//! away (`POST /_emulator/regions/{region}` with `{"state": "down"}`):
//! ARM calls on resources located there then fail as the service does in an
//! outage. `GET /_emulator/counters` counts requests per region
//! (`by_region`), so a test can show nothing was sent to a lost one.
//!
//! A choice (docs/EMULATOR.md): in an outage ARM's answer for a resource
//! in the region is `503 ServiceUnavailable` with a Retry-After; public
//! sources describe 503s and timeouts without fixing the body.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::state::World;

/// `West Europe`, `westeurope` and `WESTEUROPE` are one region.
pub fn normalize(region: &str) -> String {
    region
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Regions taken away, and resources declared outside factories.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Regions {
    /// Normalized names of regions that are down.
    pub down: BTreeSet<String>,
    /// Lower-cased ARM id → normalized region, for resources adfdr only
    /// names (vaults, SQL servers, workspaces, Event Hubs, identities).
    pub declared: BTreeMap<String, String>,
}

/// One resource declared with `POST /_emulator/resources`.
#[derive(Clone, Debug, Deserialize)]
pub struct Declared {
    pub id: String,
    pub location: String,
}

impl Regions {
    pub fn set(&mut self, region: &str, down: bool) {
        let r = normalize(region);
        if down {
            self.down.insert(r);
        } else {
            self.down.remove(&r);
        }
    }

    pub fn declare(&mut self, resources: &[Declared]) {
        for d in resources {
            self.declared.insert(
                d.id.trim_end_matches('/').to_ascii_lowercase(),
                normalize(&d.location),
            );
        }
    }

    pub fn is_down(&self, region: &str) -> bool {
        self.down.contains(region)
    }
}

/// The region of the resource an ARM `path` addresses, when known: a
/// factory (and everything below it) is where its `location` says; a
/// storage account where its `location` says; else the longest declared id
/// the path starts with.
pub fn region_of(world: &World, regions: &Regions, path: &str) -> Option<String> {
    let lower = path.trim_end_matches('/').to_ascii_lowercase();
    // Role assignments and locks are Microsoft.Authorization's, a global
    // service: they answer for a resource whose region is down.
    if lower.contains("/providers/microsoft.authorization/") {
        return None;
    }
    let s: Vec<&str> = lower.split('/').filter(|p| !p.is_empty()).collect();
    if s.len() >= 8
        && s[0] == "subscriptions"
        && s[2] == "resourcegroups"
        && s[4] == "providers"
        && s[5] == "microsoft.datafactory"
        && s[6] == "factories"
    {
        let key = crate::state::factory_key(s[1], s[3], s[7]);
        if let Some(f) = world.factories.get(&key) {
            return f
                .body
                .get("location")
                .and_then(|l| l.as_str())
                .map(normalize);
        }
    }
    if s.len() >= 8 && s[5] == "microsoft.storage" && s[6] == "storageaccounts" {
        let id = format!("/{}", s[..8].join("/"));
        if let Some(a) = world.storage_accounts.get(&id) {
            return a
                .body
                .get("location")
                .and_then(|l| l.as_str())
                .map(normalize);
        }
    }
    if s.len() >= 8 && s[5] == "microsoft.keyvault" && s[6] == "vaults" {
        let id = format!("/{}", s[..8].join("/"));
        if let Some(v) = world.key_vaults.get(&id) {
            return v.get("location").and_then(|l| l.as_str()).map(normalize);
        }
    }
    regions
        .declared
        .iter()
        .filter(|(id, _)| lower == **id || lower.starts_with(&format!("{id}/")))
        .max_by_key(|(id, _)| id.len())
        .map(|(_, region)| region.clone())
}

/// A Key Vault (or what is below it: its access policies).
pub fn is_vault(path: &str) -> bool {
    path.to_ascii_lowercase()
        .contains("/providers/microsoft.keyvault/vaults/")
}

/// Azure Monitor sends a resource's logs to a storage account or an Event
/// Hub in the resource's own region only (MicrosoftDocs azure-monitor-docs,
/// diagnostic-settings.md, "Destination limitations"); a Log Analytics
/// workspace may be anywhere. Checked where both regions are known, in
/// every state of the region.
pub fn same_region_destinations(
    world: &World,
    regions: &Regions,
    scope: &str,
    body: &serde_json::Value,
) -> Result<(), crate::error::ApiError> {
    let Some(home) = region_of(world, regions, scope) else {
        return Ok(());
    };
    for field in ["storageAccountId", "eventHubAuthorizationRuleId"] {
        let Some(id) = body
            .pointer(&format!("/properties/{field}"))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        if let Some(there) = region_of(world, regions, id)
            && there != home
        {
            return Err(crate::error::ApiError::new(
                400,
                "BadRequest",
                format!(
                    "The {field} '{id}' is in region '{there}', but the resource is in '{home}': a diagnostic setting's storage account and event hub must be in the resource's region."
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_and_ids_resolve_to_one_region() {
        assert_eq!(normalize("West Europe"), "westeurope");
        let mut r = Regions::default();
        r.declare(&[
            Declared {
                id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
                    .into(),
                location: "North Europe".into(),
            },
            Declared {
                id: "/subscriptions/s/resourceGroups/rg".into(),
                location: "westeurope".into(),
            },
        ]);
        let w = World::default();
        let vault = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/accessPolicies/add";
        assert_eq!(
            region_of(&w, &r, vault).as_deref(),
            Some("northeurope"),
            "the longest id wins"
        );
        let other = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Sql/servers/x";
        assert_eq!(region_of(&w, &r, other).as_deref(), Some("westeurope"));
        assert_eq!(
            region_of(&w, &r, "/subscriptions/s/resourceGroups/rg2").as_deref(),
            None
        );
        assert_eq!(
            region_of(&w, &r, "/subscriptions/s/resourceGroups/rgx").as_deref(),
            None,
            "a prefix of a name is not its parent"
        );
        r.set("West Europe", true);
        assert!(r.is_down("westeurope"));
        r.set("westeurope", false);
        assert!(!r.is_down("westeurope"));
    }
}
