//! What sort of failure an error is: the one classification every front
//! end reads (the CLI's exit codes, `adfdr.error.v1`, a job's outcome).

use serde::{Deserialize, Serialize};

/// What sort of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Bad input: a flag, a config value, a name that does not exist here.
    Usage,
    /// An identity or key was refused (a missing role, the wrong key).
    Denied,
    /// Something named does not exist (a snapshot, a factory, a location).
    NotFound,
    /// A service or location did not answer.
    Unreachable,
    /// Stored data does not check out.
    Damaged,
    /// Someone else holds it (a lease, a name taken, a catalog in use).
    Conflict,
    /// A service said: not so fast.
    Throttled,
    /// Stopped by Ctrl-C or SIGTERM where it was (run it again).
    Interrupted,
    /// Anything else.
    Failed,
}

impl Kind {
    /// Can the same call, tried again later, succeed?
    pub fn retryable(self) -> bool {
        matches!(self, Kind::Unreachable | Kind::Conflict | Kind::Throttled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Denied => "denied",
            Kind::NotFound => "not-found",
            Kind::Unreachable => "unreachable",
            Kind::Damaged => "damaged",
            Kind::Conflict => "conflict",
            Kind::Throttled => "throttled",
            Kind::Interrupted => "interrupted",
            Kind::Failed => "failed",
        }
    }
}

/// The access a refused call needed, as data: which role (or action) the
/// principal lacks, on which scope. `adfdr.error.v1` and a job's outcome
/// carry it, so a script can grant it without reading the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Grant {
    /// The identity that was refused (as adfdr describes it).
    pub principal: String,
    /// The built-in role that allows the call.
    pub role: String,
    /// Where to grant it: an ARM resource id, a resource's path, or a
    /// container's address.
    pub scope: String,
    /// The permission the call needs, when known (for a custom role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}
