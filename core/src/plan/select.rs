//! `--include/--exclude KIND:GLOB` and the kind + name-glob matching that
//! override rules share. Names compare case-insensitively, as ADF's do.

use globset::{Glob, GlobMatcher};

use crate::model::ResourceKind;

#[derive(Clone, Debug)]
pub struct Selector {
    /// None: any kind (`*:GLOB`).
    pub kind: Option<ResourceKind>,
    pub glob: GlobMatcher,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error(
        "{text:?}: expected KIND:GLOB, for example pipeline:PL_Load* or linkedService:* (kinds: {kinds})"
    )]
    Shape { text: String, kinds: String },
    #[error("{text:?}: unknown kind {kind:?}; kinds are {kinds}")]
    Kind {
        text: String,
        kind: String,
        kinds: String,
    },
    #[error("{text:?}: bad name pattern: {detail}")]
    Glob { text: String, detail: String },
}

/// Every kind, as the CLI and config name them.
pub fn kind_names() -> String {
    all_kinds()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn all_kinds() -> impl Iterator<Item = ResourceKind> {
    std::iter::once(ResourceKind::Factory)
        .chain(ResourceKind::CHILDREN)
        .chain(ResourceKind::SURROUNDINGS)
        .chain(ResourceKind::GRANTS)
}

/// `linkedService`, `linkedservice`, `*` (Some(None)); None when unknown.
pub fn parse_kind(text: &str) -> Option<Option<ResourceKind>> {
    if text == "*" {
        return Some(None);
    }
    all_kinds()
        .find(|k| k.label().eq_ignore_ascii_case(text))
        .map(Some)
}

pub fn name_glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .and_then(|g| {
            globset::GlobBuilder::new(g.glob())
                .case_insensitive(true)
                .literal_separator(false)
                .build()
        })
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let Some((kind, glob)) = text
            .split_once(':')
            .filter(|(k, g)| !k.is_empty() && !g.is_empty())
        else {
            return Err(SelectorError::Shape {
                text: text.into(),
                kinds: kind_names(),
            });
        };
        let kind = parse_kind(kind).ok_or_else(|| SelectorError::Kind {
            text: text.into(),
            kind: kind.into(),
            kinds: kind_names(),
        })?;
        let glob = name_glob(glob).map_err(|detail| SelectorError::Glob {
            text: text.into(),
            detail,
        })?;
        Ok(Selector {
            kind,
            glob,
            text: text.into(),
        })
    }

    /// Matches a resource; a managed private endpoint matches by `vnet/name`
    /// or by its name alone.
    pub fn matches(&self, kind: ResourceKind, parent: Option<&str>, name: &str) -> bool {
        if self.kind.is_some_and(|k| k != kind) {
            return false;
        }
        self.glob.is_match(name)
            || parent.is_some_and(|p| self.glob.is_match(format!("{p}/{name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_globs_match_case_insensitively() {
        let s = Selector::parse("pipeline:pl_load*").expect("parse");
        assert!(s.matches(ResourceKind::Pipeline, None, "PL_Load_Sales"));
        assert!(!s.matches(ResourceKind::Dataset, None, "PL_Load_Sales"));
        assert!(!s.matches(ResourceKind::Pipeline, None, "PL_Other"));
        let any = Selector::parse("*:*Sales*").expect("parse");
        assert!(any.matches(ResourceKind::Trigger, None, "TR_Sales_Daily"));
        let ls = Selector::parse("LinkedService:LS_?").expect("parse");
        assert!(ls.matches(ResourceKind::LinkedService, None, "ls_a"));
        assert!(!ls.matches(ResourceKind::LinkedService, None, "ls_ab"));
        let mpe = Selector::parse("managedPrivateEndpoint:default/*").expect("parse");
        assert!(mpe.matches(
            ResourceKind::ManagedPrivateEndpoint,
            Some("default"),
            "mpe1"
        ));
    }

    #[test]
    fn bad_selectors_say_what_is_expected() {
        let e = Selector::parse("pipelines").expect_err("shape");
        assert!(e.to_string().contains("KIND:GLOB"), "{e}");
        let e = Selector::parse("pipelines:x").expect_err("kind");
        assert!(e.to_string().contains("unknown kind \"pipelines\""), "{e}");
        assert!(e.to_string().contains("linkedService"), "{e}");
        let e = Selector::parse("pipeline:[").expect_err("glob");
        assert!(e.to_string().contains("bad name pattern"), "{e}");
    }
}
