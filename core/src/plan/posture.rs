//! How well a backup location's storage account protects what adfdr keeps
//! there: geo-redundancy, soft delete, versioning, immutability against the
//! longest keep rule, TLS, public and shared-key access, public network
//! access; and whether the locations together are geo-redundant at all.
//! Pure: it judges the account's ARM properties as read (Microsoft.Storage
//! 2025-08-01 shapes), it reads nothing itself.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// One check of one location.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Finding {
    /// The location's name (or names, for checks across locations).
    pub location: String,
    /// `redundancy`, `blob-soft-delete`, `container-soft-delete`,
    /// `versioning`, `immutability`, `tls`, `public-blob-access`,
    /// `shared-key-access`, `public-network-access`, `distinct-regions`,
    /// `distinct-accounts`, `readable`.
    pub check: String,
    pub ok: bool,
    /// What was found, and for a warning what to change.
    pub detail: String,
}

/// Every check name, in report order (the agent's gauge has one series each).
pub const CHECKS: &[&str] = &[
    "redundancy",
    "blob-soft-delete",
    "container-soft-delete",
    "versioning",
    "immutability",
    "tls",
    "public-blob-access",
    "shared-key-access",
    "public-network-access",
];

/// The SKUs that keep a copy in a second region.
const GEO: &[&str] = &["GRS", "RAGRS", "GZRS", "RAGZRS"];

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

/// Judges one location's account and blob service properties.
/// `keep_days`: the longest span any keep rule holds snapshots for.
pub fn assess(
    location: &str,
    account: &Value,
    blob: &Value,
    keep_days: Option<u64>,
) -> Vec<Finding> {
    let name = text(account, "/name").unwrap_or("the account");
    let finding = |check: &str, ok: bool, detail: String| Finding {
        location: location.to_string(),
        check: check.to_string(),
        ok,
        detail,
    };
    let mut out = Vec::new();
    let sku = text(account, "/sku/name").unwrap_or("unknown");
    let redundancy = sku.rsplit('_').next().unwrap_or(sku);
    out.push(if GEO.contains(&redundancy) {
        finding("redundancy", true, format!("{sku}: a copy in a second region"))
    } else {
        finding(
            "redundancy",
            false,
            format!(
                "{sku} keeps every copy in one region; make {name} GZRS or RA-GZRS (or GRS), or rely on another location in another region"
            ),
        )
    });
    out.extend(soft_delete(blob, name, &finding));
    out.push(if flag(blob, "/properties/isVersioningEnabled") == Some(true) {
        finding("versioning", true, "blob versioning on".into())
    } else {
        finding(
            "versioning",
            false,
            format!("blob versioning is off: an overwritten or deleted blob cannot be brought back; turn it on for {name}"),
        )
    });
    out.push(immutability(account, name, keep_days, &finding));
    out.extend(access(account, name, &finding));
    out
}

/// Blob and container soft delete, 7 days or more.
fn soft_delete(
    blob: &Value,
    name: &str,
    finding: &dyn Fn(&str, bool, String) -> Finding,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (check, pointer, what) in [
        (
            "blob-soft-delete",
            "/properties/deleteRetentionPolicy",
            "blob",
        ),
        (
            "container-soft-delete",
            "/properties/containerDeleteRetentionPolicy",
            "container",
        ),
    ] {
        let enabled = flag(blob, &format!("{pointer}/enabled")).unwrap_or(false);
        let days = blob
            .pointer(&format!("{pointer}/days"))
            .and_then(Value::as_u64);
        out.push(match (enabled, days) {
            (true, Some(d)) if d >= 7 => finding(check, true, format!("{what} soft delete, {d} days")),
            (true, d) => finding(
                check,
                false,
                format!(
                    "{what} soft delete keeps deleted {what}s only {} days; give {name} 7 days or more",
                    d.unwrap_or(0)
                ),
            ),
            (false, _) => finding(
                check,
                false,
                format!("{what} soft delete is off: a deleted {what} is gone at once; turn it on for {name} (7 days or more)"),
            ),
        });
    }
    out
}

/// TLS, anonymous and shared-key access, network reach.
fn access(
    account: &Value,
    name: &str,
    finding: &dyn Fn(&str, bool, String) -> Finding,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let tls = text(account, "/properties/minimumTlsVersion").unwrap_or("TLS1_0");
    out.push(if matches!(tls, "TLS1_2" | "TLS1_3") {
        finding("tls", true, format!("minimum {tls}"))
    } else {
        finding(
            "tls",
            false,
            format!("minimum TLS is {tls}; set {name}'s minimum TLS version to TLS1_2"),
        )
    });
    out.push(
        if flag(account, "/properties/allowBlobPublicAccess") == Some(true) {
            finding(
                "public-blob-access",
                false,
                format!("anonymous blob access may be allowed; set allowBlobPublicAccess to false on {name}"),
            )
        } else {
            finding("public-blob-access", true, "anonymous access off".into())
        },
    );
    // Absent means allowed: the service's default.
    out.push(
        if flag(account, "/properties/allowSharedKeyAccess") == Some(false) {
            finding("shared-key-access", true, "shared keys refused: Entra ID only".into())
        } else {
            finding(
                "shared-key-access",
                false,
                format!("shared-key access is allowed: anyone with an account key bypasses RBAC; set allowSharedKeyAccess to false on {name} (adfdr needs no keys)"),
            )
        },
    );
    let network = text(account, "/properties/publicNetworkAccess");
    let default_action = text(account, "/properties/networkAcls/defaultAction").unwrap_or("Allow");
    out.push(match (network, default_action) {
        (Some("Disabled"), _) => finding(
            "public-network-access",
            true,
            "public network access disabled (private endpoints only)".into(),
        ),
        (_, "Deny") => finding(
            "public-network-access",
            true,
            "public network access limited to the network rules".into(),
        ),
        _ => finding(
            "public-network-access",
            false,
            format!("reachable from any network; disable public network access on {name} or set its firewall's default action to Deny"),
        ),
    });
    out
}

fn immutability(
    account: &Value,
    name: &str,
    keep_days: Option<u64>,
    finding: &dyn Fn(&str, bool, String) -> Finding,
) -> Finding {
    let base = "/properties/immutableStorageWithVersioning";
    if flag(account, &format!("{base}/enabled")) != Some(true) {
        return finding(
            "immutability",
            false,
            format!(
                "version-level immutability is off: whoever may write {name} may delete the backups; enable it (with an immutability period covering the keep rules)"
            ),
        );
    }
    let days = account
        .pointer(&format!(
            "{base}/immutabilityPolicy/immutabilityPeriodSinceCreationInDays"
        ))
        .and_then(Value::as_u64);
    let state = text(account, &format!("{base}/immutabilityPolicy/state")).unwrap_or("Unlocked");
    match (days, keep_days) {
        (None, _) => finding(
            "immutability",
            false,
            format!(
                "immutability is enabled on {name} without a default period: set one that covers the keep rules"
            ),
        ),
        (Some(d), Some(keep)) if d < keep => finding(
            "immutability",
            false,
            format!(
                "immutability holds {d} days ({state}), but the longest keep rule holds snapshots {keep} days: the rest of their life they can be deleted; raise the period to {keep} days"
            ),
        ),
        (Some(d), keep) => finding(
            "immutability",
            true,
            format!(
                "version-level immutability, {d} days ({state}){}",
                match keep {
                    Some(k) if d > k => format!(
                        "; longer than the longest keep rule ({k} days), so prune cannot delete a snapshot before {d} days"
                    ),
                    _ => String::new(),
                }
            ),
        ),
    }
}

/// Across locations: two in one account, or all in one region, are not
/// geo-redundant. `accounts`: (location, account id, region).
pub fn across(accounts: &[(String, String, String)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, (a, id_a, region_a)) in accounts.iter().enumerate() {
        for (b, id_b, region_b) in &accounts[i + 1..] {
            if id_a.eq_ignore_ascii_case(id_b) {
                out.push(Finding {
                    location: format!("{a}, {b}"),
                    check: "distinct-accounts".into(),
                    ok: false,
                    detail: format!("{a} and {b} are in the same storage account: one account lost loses both; put one in an account in another region"),
                });
            } else if region_a.eq_ignore_ascii_case(region_b) {
                out.push(Finding {
                    location: format!("{a}, {b}"),
                    check: "distinct-regions".into(),
                    ok: false,
                    detail: format!("{a} and {b} are both in {region_a}: a region outage takes both; move one to another region"),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> (Value, Value) {
        (
            json!({"name": "stbackupweu", "location": "westeurope", "sku": {"name": "Standard_RAGZRS"},
                "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false,
                    "allowSharedKeyAccess": false, "publicNetworkAccess": "Disabled",
                    "immutableStorageWithVersioning": {"enabled": true,
                        "immutabilityPolicy": {"immutabilityPeriodSinceCreationInDays": 400, "state": "Locked"}}}}),
            json!({"properties": {"deleteRetentionPolicy": {"enabled": true, "days": 30},
                "containerDeleteRetentionPolicy": {"enabled": true, "days": 30}, "isVersioningEnabled": true}}),
        )
    }

    #[test]
    fn a_well_protected_account_passes_every_check() {
        let (account, blob) = good();
        let findings = assess("weu", &account, &blob, Some(365));
        let checks: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, CHECKS);
        assert!(findings.iter().all(|f| f.ok), "{findings:#?}");
        assert!(
            findings[4].detail.contains("400 days (Locked)"),
            "{}",
            findings[4].detail
        );
    }

    #[test]
    fn each_weakness_is_a_warning_that_says_what_to_change() {
        let account = json!({"name": "stcheap", "sku": {"name": "Standard_LRS"},
            "properties": {"minimumTlsVersion": "TLS1_0", "allowBlobPublicAccess": true,
                "immutableStorageWithVersioning": {"enabled": true,
                    "immutabilityPolicy": {"immutabilityPeriodSinceCreationInDays": 30}}}});
        let blob = json!({"properties": {"deleteRetentionPolicy": {"enabled": true, "days": 1},
            "isVersioningEnabled": false}});
        let findings = assess("neu", &account, &blob, Some(365));
        let bad: Vec<(&str, &str)> = findings
            .iter()
            .filter(|f| !f.ok)
            .map(|f| (f.check.as_str(), f.detail.as_str()))
            .collect();
        let names: Vec<&str> = bad.iter().map(|(c, _)| *c).collect();
        assert_eq!(names, CHECKS, "every check fails: {bad:#?}");
        let detail = |c: &str| bad.iter().find(|(n, _)| *n == c).expect(c).1;
        assert!(
            detail("redundancy").contains("Standard_LRS") && detail("redundancy").contains("GZRS")
        );
        assert!(detail("blob-soft-delete").contains("only 1 days"));
        assert!(detail("container-soft-delete").contains("is off"));
        assert!(
            detail("immutability").contains("holds 30 days")
                && detail("immutability").contains("365 days")
        );
        assert!(detail("tls").contains("TLS1_0"));
        assert!(detail("shared-key-access").contains("allowSharedKeyAccess to false"));
        assert!(detail("public-network-access").contains("any network"));
        // Immutability off altogether.
        let off = assess("x", &json!({"sku": {"name": "Standard_GRS"}}), &blob, None);
        assert!(
            off.iter()
                .any(|f| f.check == "immutability" && !f.ok && f.detail.contains("is off"))
        );
    }

    #[test]
    fn locations_in_one_account_or_one_region_are_not_geo_redundant() {
        let l = |n: &str, id: &str, r: &str| (n.to_string(), id.to_string(), r.to_string());
        let findings = across(&[
            l("weu", "/s/a/st1", "westeurope"),
            l("weu2", "/s/a/ST1", "westeurope"),
            l("weu3", "/s/a/st3", "westeurope"),
            l("neu", "/s/a/st2", "northeurope"),
        ]);
        let got: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| (f.location.as_str(), f.check.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("weu, weu2", "distinct-accounts"),
                ("weu, weu3", "distinct-regions"),
                ("weu2, weu3", "distinct-regions")
            ]
        );
        assert!(
            across(&[
                l("weu", "/s/a/st1", "westeurope"),
                l("neu", "/s/a/st2", "northeurope")
            ])
            .is_empty()
        );
    }
}
