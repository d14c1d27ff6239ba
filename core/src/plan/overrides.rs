//! Overrides for restores and drills (design.md section 5): rules that set,
//! remove or fill a JSON Pointer path in the resources matched by kind and
//! name glob, in the spirit of azure.datafactory.tools' per-environment
//! config. `fill` takes secret values from the environment or a file (mode
//! 0600): they are held zeroizing, never printed, never written anywhere but
//! the target factory.
//!
//! ```toml
//! [[rule]]
//! kind = "linkedService"            # or "*"
//! name = "LS_Sql*"                  # glob, case-insensitive
//! set = { "/properties/typeProperties/server" = "dr-sql.database.windows.net" }
//! remove = ["/properties/connectVia"]
//! [rule.fill]
//! "/properties/typeProperties/password" = { env = "SQL_PASSWORD" }   # or { file = "/run/secrets/sql" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::select::{kind_names, name_glob, parse_kind};
use crate::model::ResourceKind;
use crate::model::restorability::MASK;

#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error("overrides file {path}: {detail}")]
    File { path: String, detail: String },
    #[error("overrides file {path}, rule {rule} ({what}): {detail}")]
    Rule {
        path: String,
        rule: usize,
        what: String,
        detail: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    rule: Vec<RuleShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleShape {
    kind: String,
    name: String,
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    fill: BTreeMap<String, SourceShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceShape {
    env: Option<String>,
    file: Option<PathBuf>,
}

/// A secret value: zeroized on drop, never shown.
pub struct Secret(Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

#[derive(Debug)]
pub struct Rule {
    /// 1-based, as the file lists them.
    pub number: usize,
    pub kind: Option<ResourceKind>,
    pub name: GlobMatcher,
    /// `linkedService:LS_Sql*`
    pub what: String,
    pub set: Vec<(String, Value)>,
    pub remove: Vec<String>,
    /// Pointer, value, and where it came from (`environment variable X`).
    pub fill: Vec<(String, Secret, String)>,
}

#[derive(Debug, Default)]
pub struct Overrides {
    pub rules: Vec<Rule>,
    pub source: String,
}

/// What applying the rules to one resource did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Human lines, secrets named by source only.
    pub changes: Vec<String>,
    /// Pointers that matched nothing in this resource.
    pub misses: Vec<String>,
    /// Pointers whose secret value an override supplied.
    pub filled: Vec<String>,
}

/// Reads a secret file's bytes (or says why not).
pub type SecretFile = dyn Fn(&Path) -> Result<Zeroizing<Vec<u8>>, String>;

/// Where fill values come from: environment variables and secret files.
/// Pure planning reads neither; the caller passes its readers.
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub file: &'a SecretFile,
}

impl Overrides {
    /// Parses rules; `env` looks up environment variables (injectable for
    /// tests). Secret files are not read: `parse_with` takes a reader.
    pub fn parse(
        text: &str,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Overrides, OverridesError> {
        let no_files = |_: &Path| Err("secret files are not read here".to_string());
        Self::parse_with(
            text,
            path,
            &Sources {
                env,
                file: &no_files,
            },
        )
    }

    /// Parses rules, fill values looked up in `sources` (the caller's IO:
    /// `localfile::overrides` reads the environment and private files).
    pub fn parse_with(
        text: &str,
        path: &str,
        sources: &Sources<'_>,
    ) -> Result<Overrides, OverridesError> {
        let shape: FileShape = toml::from_str(text).map_err(|e| OverridesError::File {
            path: path.into(),
            // toml's message names the line and the key, never a fill value
            // (those are not in this file).
            detail: e.to_string(),
        })?;
        let mut rules = Vec::new();
        for (i, r) in shape.rule.into_iter().enumerate() {
            let number = i + 1;
            let what = format!("{}:{}", r.kind, r.name);
            let err = |detail: String| OverridesError::Rule {
                path: path.into(),
                rule: number,
                what: what.clone(),
                detail,
            };
            let kind = parse_kind(&r.kind).ok_or_else(|| {
                err(format!(
                    "unknown kind {:?}; kinds are {}",
                    r.kind,
                    kind_names()
                ))
            })?;
            let name = name_glob(&r.name).map_err(|e| err(format!("bad name pattern: {e}")))?;
            let check = |p: &str| {
                if p.starts_with('/') {
                    Ok(())
                } else {
                    Err(err(format!(
                        "{p:?} is not a JSON Pointer (they start with /, as in /properties/typeProperties/server)"
                    )))
                }
            };
            let mut set = Vec::new();
            for (pointer, value) in r.set {
                check(&pointer)?;
                let value =
                    serde_json::to_value(value).map_err(|e| err(format!("set {pointer}: {e}")))?;
                set.push((pointer, value));
            }
            for pointer in &r.remove {
                check(pointer)?;
            }
            let mut fill = Vec::new();
            for (pointer, source) in r.fill {
                check(&pointer)?;
                let (value, from) = fill_value(&pointer, source, sources).map_err(err)?;
                fill.push((pointer, Secret(value), from));
            }
            rules.push(Rule {
                number,
                kind,
                name,
                what,
                set,
                remove: r.remove,
                fill,
            });
        }
        Ok(Overrides {
            rules,
            source: path.into(),
        })
    }

    pub fn rule_matches(rule: &Rule, kind: ResourceKind, parent: Option<&str>, name: &str) -> bool {
        rule.kind.is_none_or(|k| k == kind)
            && (rule.name.is_match(name)
                || parent.is_some_and(|p| rule.name.is_match(format!("{p}/{name}"))))
    }

    /// Applies every matching rule, in file order: remove, then set, then fill.
    pub fn apply(
        &self,
        kind: ResourceKind,
        parent: Option<&str>,
        name: &str,
        definition: &mut Value,
    ) -> Applied {
        let mut out = Applied::default();
        for rule in &self.rules {
            if !Self::rule_matches(rule, kind, parent, name) {
                continue;
            }
            let tag = format!("rule {} ({})", rule.number, rule.what);
            for pointer in &rule.remove {
                if remove_pointer(definition, pointer) {
                    out.changes.push(format!("{tag}: removed {pointer}"));
                } else {
                    out.misses.push(format!("{tag}: remove {pointer}"));
                }
            }
            for (pointer, value) in &rule.set {
                if set_pointer(definition, pointer, value.clone()) {
                    out.changes.push(format!("{tag}: set {pointer}"));
                } else {
                    out.misses.push(format!("{tag}: set {pointer}"));
                }
            }
            for (pointer, secret, from) in &rule.fill {
                // Pointing at the SecureString object fills its value.
                let target = match definition.pointer(pointer) {
                    Some(Value::Object(o))
                        if o.get("type").and_then(Value::as_str) == Some("SecureString") =>
                    {
                        format!("{pointer}/value")
                    }
                    _ => pointer.clone(),
                };
                if set_pointer(definition, &target, Value::String(secret.0.to_string())) {
                    out.changes
                        .push(format!("{tag}: filled {target} from {from}"));
                    out.filled.push(target);
                } else {
                    out.misses.push(format!("{tag}: fill {pointer}"));
                }
            }
        }
        out
    }
}

/// A fill value from exactly one of an environment variable or a secret
/// file (its last line break dropped), and where it came from; or why not.
fn fill_value(
    pointer: &str,
    source: SourceShape,
    sources: &Sources<'_>,
) -> Result<(Zeroizing<String>, String), String> {
    match (source.env, source.file) {
        (Some(var), None) => {
            let value = (sources.env)(&var)
                .ok_or_else(|| format!("fill {pointer}: environment variable {var} is not set"))?;
            Ok((Zeroizing::new(value), format!("environment variable {var}")))
        }
        (None, Some(file)) => {
            let bytes = (sources.file)(&file)
                .map_err(|e| format!("fill {pointer}: secret file {}: {e}", file.display()))?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| format!("fill {pointer}: {} is not UTF-8 text", file.display()))?;
            Ok((
                Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()),
                format!("file {}", file.display()),
            ))
        }
        _ => Err(format!(
            "fill {pointer}: give exactly one of env = \"VAR\" or file = \"PATH\""
        )),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Sets `pointer` in `root`: its parent must exist; an object gets the key,
/// an array's element is replaced (or appended at its length or `-`).
pub fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let Some(container) = root.pointer_mut(parent) else {
        return false;
    };
    let last = unescape(last);
    match container {
        Value::Object(map) => {
            map.insert(last, value);
            true
        }
        Value::Array(items) => match last.as_str() {
            "-" => {
                items.push(value);
                true
            }
            index => match index.parse::<usize>() {
                Ok(i) if i < items.len() => {
                    items[i] = value;
                    true
                }
                Ok(i) if i == items.len() => {
                    items.push(value);
                    true
                }
                _ => false,
            },
        },
        _ => false,
    }
}

pub fn remove_pointer(root: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = unescape(last);
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => map.shift_remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Whether a value is still the service's mask (never written to a target).
pub fn is_mask(v: &Value) -> bool {
    v.as_str() == Some(MASK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = r#"
[[rule]]
kind = "linkedService"
name = "ls_sql*"
set = { "/properties/typeProperties/server" = "dr-sql", "/properties/annotations/-" = "restored" }
remove = ["/properties/connectVia", "/properties/nothing"]
[rule.fill]
"/properties/typeProperties/password" = { env = "SQL_PW" }

[[rule]]
kind = "*"
name = "*"
set = { "/properties/description" = "DR copy" }
"#;

    fn env(name: &str) -> Option<String> {
        (name == "SQL_PW").then(|| "s3cret!".to_string())
    }

    #[test]
    fn rules_set_remove_and_fill_in_order() {
        let o = Overrides::parse(RULES, "dr.toml", &env).expect("parse");
        let mut ls = json!({"properties": {"type": "AzureSqlDatabase", "annotations": [],
            "connectVia": {"referenceName": "shir", "type": "IntegrationRuntimeReference"},
            "typeProperties": {"server": "prod-sql", "password": {"type": "SecureString", "value": "**********"}}}});
        let applied = o.apply(ResourceKind::LinkedService, None, "LS_Sql_Main", &mut ls);
        assert_eq!(
            ls,
            json!({"properties": {"type": "AzureSqlDatabase", "annotations": ["restored"],
                "typeProperties": {"server": "dr-sql", "password": {"type": "SecureString", "value": "s3cret!"}},
                "description": "DR copy"}})
        );
        assert_eq!(
            applied.filled,
            ["/properties/typeProperties/password/value"]
        );
        assert_eq!(
            applied.misses,
            ["rule 1 (linkedService:ls_sql*): remove /properties/nothing"]
        );
        let shown = format!("{applied:?} {o:?}");
        assert!(!shown.contains("s3cret"), "a secret leaked: {shown}");
        assert!(shown.contains("environment variable SQL_PW"));

        let mut ds = json!({"properties": {}});
        let applied = o.apply(ResourceKind::Dataset, None, "DS", &mut ds);
        assert_eq!(ds, json!({"properties": {"description": "DR copy"}}));
        assert!(applied.misses.is_empty());
    }

    #[test]
    fn bad_rules_name_the_rule_and_what_to_do() {
        let no_env = |_: &str| None;
        let e = Overrides::parse(RULES, "dr.toml", &no_env).expect_err("env");
        assert!(
            e.to_string().contains("rule 1 (linkedService:ls_sql*)"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("environment variable SQL_PW is not set"),
            "{e}"
        );
        let e = Overrides::parse(
            "[[rule]]\nkind = \"pipelines\"\nname = \"*\"\n",
            "o.toml",
            &env,
        )
        .expect_err("kind");
        assert!(e.to_string().contains("unknown kind"), "{e}");
        let e = Overrides::parse(
            "[[rule]]\nkind = \"pipeline\"\nname = \"*\"\nset = { \"properties/x\" = 1 }\n",
            "o.toml",
            &env,
        )
        .expect_err("pointer");
        assert!(e.to_string().contains("not a JSON Pointer"), "{e}");
        let e = Overrides::parse(
            "[[rule]]\nkind = \"pipeline\"\nnam = \"*\"\n",
            "o.toml",
            &env,
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("o.toml"), "{e}");
        assert!(e.to_string().contains("nam"), "{e}");
        let e = Overrides::parse("[[rule]]\nkind = \"pipeline\"\nname = \"*\"\nfill = { \"/a\" = { env = \"A\", file = \"/b\" } }\n", "o.toml", &env)
            .expect_err("both");
        assert!(e.to_string().contains("exactly one"), "{e}");
    }

    #[test]
    fn pointers_escape_and_arrays_work() {
        let mut v = json!({"a/b": {"c~d": [1, 2]}});
        assert!(set_pointer(&mut v, "/a~1b/c~0d/1", json!(5)));
        assert!(set_pointer(&mut v, "/a~1b/c~0d/2", json!(6)));
        assert!(!set_pointer(&mut v, "/a~1b/c~0d/9", json!(7)));
        assert!(!set_pointer(&mut v, "/missing/x", json!(7)));
        assert!(remove_pointer(&mut v, "/a~1b/c~0d/0"));
        assert_eq!(v, json!({"a/b": {"c~d": [5, 6]}}));
    }
}
