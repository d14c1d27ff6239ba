//! ARM's events as capture reads them: who changed what, when, and how
//! (Event Grid's `Resource*Success` events, read by core's capture).

use serde::{Deserialize, Serialize};

/// Who made a change, from the token claims ARM put in the event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Author {
    /// A person's sign-in name (`upn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// The display name (`name`), when the token has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The application the token was issued to (`appid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The principal's object id (`oid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
}

impl Author {
    /// `alice@contoso.com`, `Alice Smith`, `app 1950a258-…`, or the object id.
    pub fn display(&self) -> String {
        if let Some(u) = &self.upn {
            return u.clone();
        }
        match (&self.name, &self.app_id) {
            (Some(n), Some(a)) => format!("{n} (app {a})"),
            (Some(n), None) => n.clone(),
            (None, Some(a)) => format!("app {a}"),
            (None, None) => self
                .object_id
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
        }
    }
}

/// What ARM says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Write,
    Delete,
    /// A POST: a trigger, IR or CDC started or stopped (others change no
    /// definition and are ignored).
    Action,
}

/// One ARM event, read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// The event's id (a duplicate delivery carries the same).
    pub id: String,
    /// `eventTime`, as ARM wrote it (RFC 3339).
    pub time: String,
    pub resource_uri: String,
    pub action: Action,
    /// `operationName`, e.g. `Microsoft.DataFactory/factories/pipelines/write`.
    pub operation: String,
    /// Every write of one ADF Studio publish carries the same.
    pub correlation_id: String,
    pub author: Author,
}

impl Change {
    pub fn at(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339).ok()
    }
}
