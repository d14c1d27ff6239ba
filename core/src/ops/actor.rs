//! Who does a privileged act: the name on its audit record, and for a
//! person the user and host (ops::job for jobs, ops::restore for restores).

use super::contract::{AuditAction, AuditEvent};

/// Who runs jobs: the name on each audit record, and for a person the
/// user and host.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `adfdr-agent` or `adfdr`.
    pub by: String,
    pub user: Option<String>,
    pub host: Option<String>,
}

impl Actor {
    /// The agent, on its own schedule or asked through its socket.
    pub fn agent() -> Actor {
        Actor {
            by: "adfdr-agent".into(),
            user: None,
            host: None,
        }
    }

    /// A person running `adfdr` (user and host from the environment).
    pub fn person() -> Actor {
        let (user, host) = super::hold::who();
        Actor {
            by: "adfdr".into(),
            user: Some(user),
            host: Some(host),
        }
    }

    pub fn event(&self, action: AuditAction) -> AuditEvent {
        let mut e = AuditEvent::now(&self.by, action);
        e.user.clone_from(&self.user);
        e.host.clone_from(&self.host);
        e
    }
}
