//! The one error every use case returns: the typed sources (config, keys,
//! store, catalog, export, plan…) kept as they are, each with a *kind* (what
//! sort of failure it is), a hint for the operator where one helps, and
//! whether retrying can help. Front ends decide what a kind means to them
//! (the CLI's exit codes: ctl/src/output.rs); core decides no exit code.

use crate::config::ConfigError;
use crate::identity::IdentityError;
use crate::keys::KeyError;
use crate::store::StoreError;

pub use adfdr_contract::{Grant, Kind};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Export(Box<crate::ops::export::ExportError>),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A use case's own failure: what happened, its kind, and what to do.
    #[error("{message}")]
    Op {
        kind: Kind,
        message: String,
        hint: Option<String>,
        /// For a refusal: the role the principal lacks, and where.
        grant: Option<Box<Grant>>,
    },
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(Box::new(e))
    }
}

impl From<crate::ops::export::ExportError> for OpError {
    fn from(e: crate::ops::export::ExportError) -> Self {
        OpError::Export(Box::new(e))
    }
}

impl OpError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        OpError::Op {
            kind,
            message: message.into(),
            hint: None,
            grant: None,
        }
    }

    /// Bad input from the operator.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    pub fn damaged(message: impl Into<String>) -> Self {
        Self::new(Kind::Damaged, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, message)
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Kind::Denied, message)
    }

    /// Adds what the operator should do next.
    pub fn with_hint(self, text: impl Into<String>) -> Self {
        let grant = self.grant();
        match self {
            OpError::Op {
                kind,
                message,
                grant,
                ..
            } => OpError::Op {
                kind,
                message,
                hint: Some(text.into()),
                grant,
            },
            other => OpError::Op {
                kind: other.kind(),
                message: other.to_string(),
                hint: Some(text.into()),
                grant: grant.map(Box::new),
            },
        }
    }

    /// Adds the access a refused call needed.
    pub fn with_grant(self, grant: Option<Grant>) -> Self {
        let hint = self.hint();
        let kind = self.kind();
        OpError::Op {
            kind,
            message: self.to_string(),
            hint,
            grant: grant.map(Box::new),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            OpError::Config(_) | OpError::Plan(_) => Kind::Usage,
            OpError::Identity(e) => match e {
                IdentityError::Missing { .. }
                | IdentityError::Exposed { .. }
                | IdentityError::Read { .. }
                | IdentityError::Empty { .. }
                | IdentityError::Transport(_) => Kind::Usage,
                IdentityError::Build { .. } => Kind::Failed,
            },
            OpError::Key(e) => match e {
                KeyError::File { .. } | KeyError::Length { .. } => Kind::Usage,
                KeyError::NoKey { .. } => Kind::Denied,
                KeyError::Vault { .. } | KeyError::Write { .. } => Kind::Failed,
            },
            OpError::Store(e) => match e.as_ref() {
                StoreError::Exists { .. } => Kind::Conflict,
                StoreError::Denied { .. } => Kind::Denied,
                StoreError::Unreachable { .. } => Kind::Unreachable,
                StoreError::Failed { .. } => Kind::Failed,
            },
            OpError::Catalog(e) if e.in_use => Kind::Conflict,
            OpError::Catalog(_) => Kind::Failed,
            OpError::Export(e) => match e.as_ref() {
                crate::ops::export::ExportError::NotFound { .. } => Kind::NotFound,
                crate::ops::export::ExportError::Denied { .. }
                | crate::ops::export::ExportError::DeniedKind { .. }
                | crate::ops::export::ExportError::SignIn { .. } => Kind::Denied,
                crate::ops::export::ExportError::Arm { source, .. } if source.is_throttled() => {
                    Kind::Throttled
                }
                _ => Kind::Failed,
            },
            OpError::Op { kind, .. } => *kind,
        }
    }

    /// What to do next, when the message does not already say it: the
    /// use case's own, else what helps with the typed source's failure.
    pub fn hint(&self) -> Option<String> {
        use crate::ops::export::ExportError;
        let text = match self {
            OpError::Op { hint, .. } => return hint.clone(),
            OpError::Catalog(e) if e.in_use => {
                "while the agent runs, commands go through its socket; stop it for `catalog rebuild`"
            }
            OpError::Catalog(_) => {
                "the store is the truth: `adfdr catalog rebuild` makes the catalog again"
            }
            OpError::Key(KeyError::NoKey { .. }) => {
                "`adfdr key list` shows which configured keys open which snapshots"
            }
            OpError::Store(e) if e.is_unreachable() => {
                "the other locations still serve reads; `adfdr verify --repair` completes the copies when it is back"
            }
            OpError::Identity(_) => {
                "`adfdr config check` signs in as each identity and says what fails"
            }
            OpError::Store(_) | OpError::Export(_) if self.kind() == Kind::Denied => {
                "`adfdr config check` signs in as each identity and probes every permission adfdr needs"
            }
            OpError::Export(e) if matches!(e.as_ref(), ExportError::Arm { source, .. } if source.is_throttled()) => {
                "ARM throttles per principal and subscription; the same command in a minute succeeds"
            }
            _ => return None,
        };
        Some(text.to_string())
    }

    /// For a refusal: the role the principal lacks, and where, as data.
    pub fn grant(&self) -> Option<Grant> {
        use crate::ops::export::ExportError;
        match self {
            OpError::Op { grant, .. } => grant.as_deref().cloned(),
            OpError::Store(e) => match e.as_ref() {
                StoreError::Denied { grant, .. } => grant.as_deref().cloned(),
                _ => None,
            },
            OpError::Export(e) => match e.as_ref() {
                ExportError::Denied { identity, path, .. } => Some(Grant {
                    principal: identity.clone(),
                    role: "Reader".into(),
                    scope: path.clone(),
                    action: None,
                }),
                ExportError::DeniedKind {
                    identity,
                    path,
                    action,
                    ..
                } => Some(Grant {
                    principal: identity.clone(),
                    role: if action.starts_with("Microsoft.DataFactory/") {
                        "Data Factory Contributor".into()
                    } else {
                        "Reader".into()
                    },
                    scope: path.clone(),
                    action: Some(action.clone()),
                }),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn retryable(&self) -> bool {
        self.kind().retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_typed_sources() {
        let e: OpError = StoreError::Unreachable {
            location: "weu".into(),
            op: "read",
            key: "k".into(),
            detail: "down".into(),
        }
        .into();
        assert_eq!(e.kind(), Kind::Unreachable);
        assert!(e.retryable());
        let e = OpError::usage("bad flag").with_hint("see --help");
        assert_eq!(
            (e.kind(), e.hint().as_deref()),
            (Kind::Usage, Some("see --help"))
        );
        assert!(!e.retryable());
        assert_eq!(e.to_string(), "bad flag");
        let e: OpError = KeyError::Length {
            path: "/k".into(),
            len: 3,
        }
        .into();
        assert_eq!(e.kind(), Kind::Usage);
        assert_eq!(Kind::NotFound.as_str(), "not-found");
        assert_eq!(
            serde_json::to_value(Kind::NotFound).expect("json"),
            "not-found"
        );
    }

    /// Issue 27: kinds and grants come from the typed source's data, never
    /// from its message text; typed sources carry a hint where one helps.
    #[test]
    fn kind_grant_and_hint_are_data() {
        let busy: OpError = crate::catalog::CatalogError {
            path: "/c".into(),
            detail: "some other words".into(),
            in_use: true,
        }
        .into();
        assert_eq!(busy.kind(), Kind::Conflict);
        assert!(busy.hint().is_some_and(|h| h.contains("socket")));
        let damaged: OpError = crate::catalog::CatalogError {
            path: "/c".into(),
            detail: "in use by another adfdr process".into(),
            in_use: false,
        }
        .into();
        assert_eq!(damaged.kind(), Kind::Failed, "the text decides nothing");
        let denied: OpError = crate::ops::export::ExportError::Denied {
            identity: "mi".into(),
            path: "s/rg/f".into(),
            status: 403,
            code: "AuthorizationFailed".into(),
        }
        .into();
        assert_eq!(denied.kind(), Kind::Denied);
        let grant = denied.grant().expect("a grant");
        assert_eq!(
            (grant.role.as_str(), grant.scope.as_str()),
            ("Reader", "s/rg/f")
        );
        // Kept when a hint is added and through a job's outcome.
        let hinted = denied.with_hint("ask the owner");
        assert_eq!(hinted.grant(), Some(grant.clone()));
        let back = OpError::from(&crate::ops::contract::JobOutcome::from(&hinted));
        assert_eq!((back.kind(), back.grant()), (Kind::Denied, Some(grant)));
        assert_eq!(back.hint().as_deref(), Some("ask the owner"));
        let down: OpError = StoreError::Unreachable {
            location: "weu".into(),
            op: "read",
            key: "k".into(),
            detail: "down".into(),
        }
        .into();
        assert!(down.hint().is_some_and(|h| h.contains("verify --repair")));
        assert_eq!(down.grant(), None);
    }
}
