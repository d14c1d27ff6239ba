//! The one error every use case returns: the typed sources (config, keys,
//! store, catalog, export, plan…) kept as they are, each with a *kind* (what
//! sort of failure it is), a hint for the operator where one helps, and
//! whether retrying can help. Front ends decide what a kind means to them
//! (the CLI's exit codes: ctl/src/output.rs); core decides no exit code.

use crate::config::ConfigError;
use crate::identity::IdentityError;
use crate::keys::KeyError;
use crate::store::StoreError;

pub use adfdr_contract::Kind;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    },
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
        match self {
            OpError::Op { kind, message, .. } => OpError::Op {
                kind,
                message,
                hint: Some(text.into()),
            },
            other => OpError::Op {
                kind: other.kind(),
                message: other.to_string(),
                hint: Some(text.into()),
            },
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
            OpError::Store(e) => match e {
                StoreError::Exists { .. } => Kind::Conflict,
                StoreError::Denied { .. } => Kind::Denied,
                StoreError::Unreachable { .. } => Kind::Unreachable,
                StoreError::Failed { .. } => Kind::Failed,
            },
            OpError::Catalog(e) if e.detail.contains("in use by another") => Kind::Conflict,
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

    /// What to do next, when the message does not already say it.
    pub fn hint(&self) -> Option<&str> {
        match self {
            OpError::Op { hint, .. } => hint.as_deref(),
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
        assert_eq!((e.kind(), e.hint()), (Kind::Usage, Some("see --help")));
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
}
