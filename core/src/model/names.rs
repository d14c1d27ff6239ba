//! ARM's naming rules for what adfdr puts into a request path: a name that
//! breaks them is refused before any request, so `?`, `#`, `%2F`, `..` or a
//! space can never smuggle a query or another path into a URL.
//! Sources: Microsoft's "Naming rules and restrictions for Azure resources"
//! (Microsoft.Resources/resourcegroups, Microsoft.DataFactory/factories) and
//! the subscription id, a GUID.

/// A character that must not reach a terminal or a file name raw: a
/// control character (an escape sequence, a newline) or a bidirectional
/// override (text that reads backwards). ARM's names never hold them; a
/// hostile answer or a planted event may.
pub fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Is `name` usable as a store namespace (configured factory names, ids)?
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

/// A subscription id: a GUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn subscription(id: &str) -> Result<(), String> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "subscription {id:?} is not a subscription id (a GUID like 00000000-0000-0000-0000-000000000000)"
        ))
    }
}

/// A resource group: 1 to 90 letters, digits, `_`, `-`, `.`, `(`, `)`;
/// not ending in `.`.
pub fn resource_group(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    let ok = (1..=90).contains(&chars)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
        && !name.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "resource group {name:?} breaks ARM's rules: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"
        ))
    }
}

/// A data factory: 3 to 63 ASCII letters, digits and single dashes, starting
/// and ending with a letter or digit.
pub fn factory(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "factory name {name:?} breaks Data Factory's rules: 3-63 letters, digits and single dashes, starting and ending with a letter or digit"
        ))
    }
}

/// All three, for `SUB/RG/FACTORY`.
pub fn factory_path(subscription_id: &str, group: &str, name: &str) -> Result<(), String> {
    subscription(subscription_id)?;
    resource_group(group)?;
    factory(name)
}

/// A factory's address: subscription, resource group and name. The one
/// type every place that names a factory uses for it (a restore target, a
/// configured or discovered factory, a manifest's source, a drill target):
/// parsed and checked once, shown as `SUB/RG/FACTORY`, and made into its
/// ARM path here only.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
pub struct FactoryId {
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
}

impl FactoryId {
    /// Checked against Data Factory's and ARM's naming rules.
    pub fn new(
        subscription: &str,
        resource_group: &str,
        factory: &str,
    ) -> Result<FactoryId, String> {
        factory_path(subscription, resource_group, factory)?;
        Ok(FactoryId {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            factory: factory.to_string(),
        })
    }

    /// `SUB/RG/FACTORY`, or the factory's ARM id.
    pub fn parse(text: &str) -> Result<FactoryId, String> {
        let trimmed = text.trim_start_matches("/subscriptions/");
        let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
        let parts: &[&str] = match parts.as_slice() {
            [sub, rg_seg, rg, p, ns, f_seg, f]
                if rg_seg.eq_ignore_ascii_case("resourceGroups")
                    && p.eq_ignore_ascii_case("providers")
                    && ns.eq_ignore_ascii_case("Microsoft.DataFactory")
                    && f_seg.eq_ignore_ascii_case("factories") =>
            {
                &[sub, rg, f]
            }
            other => other,
        };
        match parts {
            [sub, rg, f] => FactoryId::new(sub, rg, f),
            _ => Err(format!(
                "{trimmed:?}: expected SUBSCRIPTION/RESOURCE_GROUP/FACTORY (or the factory's ARM id)"
            )),
        }
    }

    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.DataFactory/factories/…`.
    pub fn arm_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataFactory/factories/{}",
            self.subscription, self.resource_group, self.factory
        )
    }

    /// `SUB/RG/FACTORY`, as people and errors name it.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// The same factory, whatever the case ARM's names are written in.
    pub fn same(&self, other: &FactoryId) -> bool {
        self.arm_path().eq_ignore_ascii_case(&other.arm_path())
    }
}

impl std::fmt::Display for FactoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.subscription, self.resource_group, self.factory
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_bend_a_url_are_refused() {
        let sub = "11111111-2222-3333-4444-555555555555";
        assert!(factory_path(sub, "rg-prod", "adf-sales-prod").is_ok());
        assert!(factory_path(sub, "rg_(x).y", "a1b").is_ok());
        assert!(
            factory_path(sub, "rg-dénia", "adf").is_ok(),
            "Unicode letters are allowed in groups"
        );
        for (s, r, f) in [
            (sub, "rg", "f?x=1"),
            (sub, "..", "adf"),
            (sub, "rg", "a#x"),
            (sub, "rg", "a%2Fb"),
            (sub, "rg", "my factory"),
            (sub, "rg", "-adf"),
            (sub, "rg", "adf-"),
            (sub, "rg", "a--b"),
            (sub, "rg", "ab"),
            (sub, "rg.", "adf"),
            (sub, "r/g", "adf"),
            (sub, "", "adf"),
            ("sub-1", "rg", "adf"),
            ("11111111-2222-3333-4444-55555555555g", "rg", "adf"),
        ] {
            assert!(factory_path(s, r, f).is_err(), "{s}/{r}/{f} was accepted");
        }
        assert!(factory(&"a".repeat(64)).is_err());
        assert!(resource_group(&"r".repeat(91)).is_err());
    }

    /// Issue 27: one address type, parsed from either form, one ARM path.
    #[test]
    fn a_factory_id_parses_either_form_and_makes_one_path() {
        let sub = "11111111-2222-3333-4444-555555555555";
        let short = FactoryId::parse(&format!("{sub}/rg-dr/adf-dr")).expect("short");
        let long = FactoryId::parse(&format!(
            "/subscriptions/{sub}/resourceGroups/rg-dr/providers/Microsoft.DataFactory/factories/adf-dr"
        ))
        .expect("ARM id");
        assert_eq!(short, long);
        assert_eq!(short.to_string(), format!("{sub}/rg-dr/adf-dr"));
        assert!(short.arm_path().ends_with("/factories/adf-dr"));
        let upper = FactoryId::parse(&format!("{sub}/RG-DR/ADF-DR")).expect("case");
        assert!(short.same(&upper) && short != upper);
        assert!(FactoryId::parse("adf-dr").is_err());
        assert!(FactoryId::parse(&format!("{sub}/rg/f?x=1")).is_err());
    }
}
