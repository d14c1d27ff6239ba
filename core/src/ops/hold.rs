//! Holds: a marker object (`v1/{factory}/holds/{snapshot}.{token}.hold`) a
//! running restore or drill writes in every writable location, so that a
//! prune anywhere keeps the snapshot in use. Plain JSON (who, since when),
//! nothing secret; ignored after `HOLD_TTL` (a holder that died).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::store::Replicas;
use crate::store::layout;

/// A hold older than this is left over from a process that died.
pub const HOLD_TTL: Duration = Duration::from_secs(12 * 3600);
/// A hold is a line of JSON.
pub const MAX_HOLD: u64 = 64 << 10;

/// A hold's content: who, since when.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HoldBody {
    pub by: String,
    pub since: String,
}

/// Marks `snapshot` as in use in every writable location (best effort: a
/// read-only incident-mode restore cannot write one). Returns the keys written.
pub async fn hold(
    replicas: &Replicas,
    factory: &str,
    snapshot: &str,
    by: &str,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let key = layout::hold(factory, snapshot, &token);
    let body = serde_json::to_vec(&HoldBody {
        by: by.into(),
        since: crate::snapshot::rfc3339(now),
    })
    .expect("json");
    let targets = replicas.writable_names();
    let put = replicas.put_new(&key, &body, &targets).await;
    put.written.into_iter().map(|l| (l, key.clone())).collect()
}

pub async fn release(replicas: &Replicas, held: &[(String, String)]) {
    for (location, key) in held {
        if let Some(l) = replicas.get(location)
            && let Err(e) = l.store.delete(key).await
        {
            tracing::warn!(location, key, error = %e, "could not remove a hold; it expires by itself");
        }
    }
}

/// Who is doing this, for holds and audit records: the user and the host.
pub fn who() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid {}", m.uid()))
                .unwrap_or_else(|_| "unknown".into())
        });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (user, host)
}
