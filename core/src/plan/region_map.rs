//! A region map (issue 28): what stands in for what when a factory is
//! restored into another region. Pure: read from the TOML an operator
//! writes (`--map FILE`), applied to each definition before overrides.
//!
//! ```toml
//! [regions]
//! westeurope = "northeurope"          # display names ("West Europe") match too
//! [ids]                               # ARM id prefixes, case-insensitive
//! "/subscriptions/S/resourceGroups/rg-data-weu" = "/subscriptions/S/resourceGroups/rg-data-neu"
//! [hosts]                             # endpoints inside definitions
//! "salesweu.dfs.core.windows.net" = "salesneu.dfs.core.windows.net"
//! ```
//!
//! Every string of a definition is looked at: an ARM id under a mapped
//! prefix takes the new prefix (the longest prefix wins), a mapped host
//! inside a URL or a connection string is replaced where it stands as a
//! whole host name, and an integration runtime's compute location in a
//! mapped region takes the new region. Each replacement is reported (the
//! pointer, from, to), so the plan shows it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::ResourceKind;

/// `West Europe`, `westeurope` and `WESTEUROPE` are one region.
pub fn normalize_region(region: &str) -> String {
    region
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    #[serde(default)]
    regions: BTreeMap<String, String>,
    #[serde(default)]
    ids: BTreeMap<String, String>,
    #[serde(default)]
    hosts: BTreeMap<String, String>,
}

/// A parsed region map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionMap {
    /// Normalized lost region → the region standing in for it.
    pub regions: BTreeMap<String, String>,
    /// Lower-cased ARM id prefix (no trailing `/`) → its replacement.
    ids: Vec<(String, String)>,
    /// Lower-cased host → its replacement.
    hosts: Vec<(String, String)>,
}

/// One place a map rewrote: where, and from what to what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub pointer: String,
    pub from: String,
    pub to: String,
}

impl RegionMap {
    /// Reads a map; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<RegionMap, String> {
        let shape: Shape = toml::from_str(text).map_err(|e| format!("region map {path}: {e}"))?;
        let mut ids: Vec<(String, String)> = Vec::new();
        for (from, to) in shape.ids {
            for id in [&from, &to] {
                if !id.starts_with("/subscriptions/") {
                    return Err(format!(
                        "region map {path}: [ids] \"{id}\" is not an ARM id (they start with /subscriptions/)"
                    ));
                }
            }
            ids.push((
                from.trim_end_matches('/').to_ascii_lowercase(),
                to.trim_end_matches('/').to_string(),
            ));
        }
        // The longest prefix first: a VNet's own line wins over its group's.
        ids.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        let mut hosts = Vec::new();
        for (from, to) in shape.hosts {
            for h in [&from, &to] {
                if h.is_empty() || h.contains(['/', ':', ' ']) {
                    return Err(format!(
                        "region map {path}: [hosts] \"{h}\" is not a host name (like salesweu.dfs.core.windows.net)"
                    ));
                }
            }
            hosts.push((from.to_ascii_lowercase(), to));
        }
        hosts.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        let regions = shape
            .regions
            .into_iter()
            .map(|(from, to)| (normalize_region(&from), to))
            .collect();
        Ok(RegionMap {
            regions,
            ids,
            hosts,
        })
    }

    /// The region standing in for `region`, if the map moves it.
    pub fn region_for(&self, region: &str) -> Option<&str> {
        self.regions
            .get(&normalize_region(region))
            .map(String::as_str)
    }

    /// Rewrites `definition` (of a resource of `kind`) and says what it did.
    pub fn apply(&self, kind: ResourceKind, definition: &mut Value) -> Vec<Mapped> {
        let mut out = Vec::new();
        if kind == ResourceKind::IntegrationRuntime {
            let pointer = "/properties/typeProperties/computeProperties/location";
            if let Some(Value::String(location)) = definition.pointer_mut(pointer)
                && let Some(to) = self.region_for(location)
            {
                out.push(Mapped {
                    pointer: pointer.into(),
                    from: location.clone(),
                    to: to.to_string(),
                });
                *location = to.to_string();
            }
        }
        let mut edits = Vec::new();
        strings(definition, &mut String::new(), &mut |pointer, s| {
            if let Some(new) = self.rewrite(s) {
                edits.push(Mapped {
                    pointer: pointer.to_string(),
                    from: s.to_string(),
                    to: new,
                });
            }
        });
        for m in edits {
            if let Some(v) = definition.pointer_mut(&m.pointer) {
                *v = Value::String(m.to.clone());
            }
            out.push(m);
        }
        out
    }

    /// A string with its mapped id prefix and hosts replaced.
    fn rewrite(&self, s: &str) -> Option<String> {
        let lower = s.to_ascii_lowercase();
        let mut text = match self
            .ids
            .iter()
            .find(|(from, _)| lower == *from || lower.starts_with(&format!("{from}/")))
        {
            Some((from, to)) => format!("{to}{}", &s[from.len()..]),
            None => s.to_string(),
        };
        for (from, to) in &self.hosts {
            text = replace_host(&text, from, to);
        }
        (text != s).then_some(text)
    }
}

/// What kind of region-bound place a reference is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundKind {
    /// An integration runtime's compute location.
    Location,
    /// An ARM id outside the factory (a subnet, an endpoint's target, a
    /// trigger's storage scope, a diagnostic destination, a grant's scope).
    Id,
    /// An Azure service's host inside a URL or connection string.
    Host,
}

/// One region-bound place of a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub pointer: String,
    pub value: String,
    pub kind: BoundKind,
}

/// Host names of regional Azure services (a lake, a database, a vault,
/// Event Hubs, Cosmos DB, Synapse).
const REGIONAL_HOSTS: [&str; 6] = [
    ".core.windows.net",
    ".database.windows.net",
    ".vault.azure.net",
    ".servicebus.windows.net",
    ".documents.azure.com",
    ".azuresynapse.net",
];

/// The region-bound places of `definition`: an integration runtime's
/// compute location (not AutoResolve), every ARM id that is not the
/// factory's own, every regional service host. What a map has to say
/// something about before the region is lost.
pub fn bound(kind: ResourceKind, definition: &Value) -> Vec<Bound> {
    let mut out = Vec::new();
    if kind == ResourceKind::IntegrationRuntime {
        let pointer = "/properties/typeProperties/computeProperties/location";
        if let Some(location) = definition.pointer(pointer).and_then(Value::as_str)
            && !location.eq_ignore_ascii_case("AutoResolve")
        {
            out.push(Bound {
                pointer: pointer.into(),
                value: location.to_string(),
                kind: BoundKind::Location,
            });
        }
    }
    strings(definition, &mut String::new(), &mut |pointer, s| {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("/subscriptions/")
            && !lower.contains("/providers/microsoft.datafactory/factories/")
        {
            out.push(Bound {
                pointer: pointer.to_string(),
                value: s.to_string(),
                kind: BoundKind::Id,
            });
        }
        for host in hosts_in(s) {
            out.push(Bound {
                pointer: pointer.to_string(),
                value: host,
                kind: BoundKind::Host,
            });
        }
    });
    out
}

fn strings(v: &Value, at: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(at, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                strings(item, at, f);
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                strings(item, at, f);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// The regional service hosts written out in `s` (an expression that
/// builds one, `'.dfs.core.windows.net'`, names none).
fn hosts_in(s: &str) -> Vec<String> {
    let lower = s.to_ascii_lowercase();
    let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut out = Vec::new();
    for suffix in REGIONAL_HOSTS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(suffix) {
            let end = from + found + suffix.len();
            let start = lower[..from + found]
                .rfind(|c: char| !host_char(c))
                .map_or(0, |i| i + 1);
            let host = &lower[start..end];
            if !host.starts_with('.') && lower[end..].chars().next().is_none_or(|c| !host_char(c)) {
                out.push(host.to_string());
            }
            from = end;
        }
    }
    out
}

impl RegionMap {
    /// Whether the map says what happens to `b`: a location is a lost
    /// region's only if [regions] names it (else it needs nothing); an id
    /// needs an [ids] prefix, a host a [hosts] line (map one to itself to
    /// keep it where it is).
    pub fn covers(&self, b: &Bound) -> bool {
        match b.kind {
            BoundKind::Location => true,
            BoundKind::Id => {
                let lower = b.value.to_ascii_lowercase();
                self.ids
                    .iter()
                    .any(|(from, _)| lower == *from || lower.starts_with(&format!("{from}/")))
            }
            BoundKind::Host => self
                .hosts
                .iter()
                .any(|(from, _)| b.value.eq_ignore_ascii_case(from)),
        }
    }

    /// The line that would cover `b`, to add to the map.
    pub fn line_for(b: &Bound) -> String {
        match b.kind {
            BoundKind::Location => format!("[regions] \"{}\" = \"…\"", b.value),
            BoundKind::Id => {
                let group: Vec<&str> = b.value.split('/').take(5).collect();
                format!("[ids] \"{}\" = \"…\"", group.join("/"))
            }
            BoundKind::Host => format!("[hosts] \"{}\" = \"…\"", b.value),
        }
    }
}

/// `text` with every occurrence of the host `from` that stands as a whole
/// host name (not inside a longer one: `xsalesweu…` or `salesweu….evil`)
/// replaced, case-insensitively.
fn replace_host(text: &str, from: &str, to: &str) -> String {
    let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(from) {
        let start = search + found;
        let end = start + from.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if before.is_none_or(|c| !host_char(c)) && after.is_none_or(|c| !host_char(c)) {
            out.push_str(&text[last..start]);
            out.push_str(to);
            last = end;
        }
        search = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAP: &str = r#"
[regions]
"West Europe" = "northeurope"
[ids]
"/subscriptions/s/resourceGroups/rg-data-weu" = "/subscriptions/s/resourceGroups/rg-data-neu"
"/subscriptions/s/resourceGroups/rg-data-weu/providers/Microsoft.Network/virtualNetworks/vnet-weu" = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-neu"
[hosts]
"salesweu.dfs.core.windows.net" = "salesneu.dfs.core.windows.net"
"#;

    #[test]
    fn ids_hosts_and_runtime_locations_are_mapped_and_reported() {
        let map = RegionMap::parse(MAP, "dr.toml").expect("map");
        assert_eq!(map.region_for("westeurope"), Some("northeurope"));
        assert_eq!(map.region_for("North Europe"), None);
        let mut ir = json!({"properties": {"type": "Managed", "typeProperties": {
            "computeProperties": {"location": "westeurope"},
            "vNetProperties": {"subnetId": "/subscriptions/S/resourceGroups/RG-DATA-WEU/providers/Microsoft.Network/virtualNetworks/vnet-weu/subnets/ssis"}}}});
        let mapped = map.apply(ResourceKind::IntegrationRuntime, &mut ir);
        assert_eq!(
            ir.pointer("/properties/typeProperties/computeProperties/location"),
            Some(&json!("northeurope"))
        );
        assert_eq!(
            ir.pointer("/properties/typeProperties/vNetProperties/subnetId"),
            Some(&json!(
                "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-neu/subnets/ssis"
            )),
            "the longest prefix wins, case-insensitively, the rest of the id kept"
        );
        assert_eq!(mapped.len(), 2, "{mapped:?}");

        let mut ls = json!({"properties": {"typeProperties": {
            "url": "https://SalesWeu.dfs.core.windows.net/raw",
            "note": "xsalesweu.dfs.core.windows.net and salesweu.dfs.core.windows.net.evil stay"}}});
        let mapped = map.apply(ResourceKind::LinkedService, &mut ls);
        assert_eq!(
            ls.pointer("/properties/typeProperties/url"),
            Some(&json!("https://salesneu.dfs.core.windows.net/raw"))
        );
        assert_eq!(
            mapped.len(),
            1,
            "a host inside a longer one is not it: {mapped:?}"
        );
        assert_eq!(mapped[0].pointer, "/properties/typeProperties/url");

        // A runtime's location in a region the map does not move is left.
        let mut other = json!({"properties": {"typeProperties": {"computeProperties": {"location": "UK South"}}}});
        assert!(
            map.apply(ResourceKind::IntegrationRuntime, &mut other)
                .is_empty()
        );
    }

    #[test]
    fn a_bad_map_is_refused_naming_the_line() {
        let e = RegionMap::parse("[ids]\n\"rg-a\" = \"rg-b\"\n", "dr.toml").expect_err("not an id");
        assert!(e.contains("dr.toml") && e.contains("not an ARM id"), "{e}");
        let e = RegionMap::parse("[hosts]\n\"https://a\" = \"b\"\n", "dr.toml").expect_err("url");
        assert!(e.contains("not a host name"), "{e}");
        let e = RegionMap::parse("[region]\nx = \"y\"\n", "dr.toml").expect_err("typo");
        assert!(e.contains("region"), "{e}");
    }

    #[test]
    fn region_bound_places_are_found_and_the_map_says_which_it_covers() {
        let map = RegionMap::parse(MAP, "dr.toml").expect("map");
        let ls = json!({"properties": {"typeProperties": {
            "url": "https://salesweu.dfs.core.windows.net/raw",
            "connectionString": "Server=tcp:sql-weu.database.windows.net,1433;Database=dw",
            "built": "@{concat('https://', linkedService().account, '.dfs.core.windows.net/')}",
            "factory": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/f",
            "vault": "/subscriptions/s/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv"}}});
        let found = bound(ResourceKind::LinkedService, &ls);
        let values: Vec<(&str, BoundKind)> =
            found.iter().map(|b| (b.value.as_str(), b.kind)).collect();
        assert_eq!(
            values,
            [
                ("salesweu.dfs.core.windows.net", BoundKind::Host),
                ("sql-weu.database.windows.net", BoundKind::Host),
                (
                    "/subscriptions/s/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv",
                    BoundKind::Id
                ),
            ],
            "the factory's own id and a host an expression builds are not bound"
        );
        let uncovered: Vec<String> = found
            .iter()
            .filter(|b| !map.covers(b))
            .map(RegionMap::line_for)
            .collect();
        assert_eq!(
            uncovered,
            [
                "[hosts] \"sql-weu.database.windows.net\" = \"…\"",
                "[ids] \"/subscriptions/s/resourceGroups/rg-sec\" = \"…\""
            ]
        );
        let ir = json!({"properties": {"typeProperties": {"computeProperties": {"location": "AutoResolve"}}}});
        assert!(bound(ResourceKind::IntegrationRuntime, &ir).is_empty());
    }
}
