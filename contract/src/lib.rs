//! What adfdr's front ends exchange, and nothing else: the jobs the agent
//! runs and how a run is asked for, how it ended and what it reported, the
//! agent's status, the audit trail's records and the kinds of failure.
//! The control socket, the CLI's `--json` and the audit trail serialize
//! these types; the JSON Schemas in docs/json are generated from them.
//!
//! A leaf, as tokio-console's console-api is: it depends on neither front
//! end nor the engine (adfdr-core), so the compiler keeps it one. The
//! engine builds these values; the front ends render them.

pub mod audit;
pub mod drill;
pub mod error;
pub mod events;
pub mod job;
pub mod prune;
pub mod verify;

pub use audit::*;
pub use error::{Grant, Kind};
pub use job::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_runs_round_trip_as_json() {
        let r = RunRequest {
            factory: "sales".into(),
            job: Job::Verify(VerifyOptions {
                repair: true,
                ..Default::default()
            }),
        };
        let text = serde_json::to_string(&r).expect("json");
        assert!(
            text.contains("\"job\":\"verify\"") && text.contains("\"repair\":true"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RunRequest>(&text).expect("back"), r);
        // Unknown jobs do not parse: the socket answers 400.
        assert!(serde_json::from_str::<RunRequest>(r#"{"factory":"f","job":"explode"}"#).is_err());
        assert!(!r.job.changes_nothing());
        assert!(Job::Prune { dry_run: true }.changes_nothing());
        assert_eq!(JobKind::parse("drill"), Some(JobKind::Drill));
    }

    #[test]
    fn audit_events_are_flat_json_lines() {
        let e = AuditEvent::now(
            "adfdr-agent",
            AuditAction::LeaseTaken {
                factory: "sales".into(),
                location: "weu".into(),
            },
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["action"], "lease-taken");
        assert_eq!(v["factory"], "sales");
        assert_eq!(v["by"], "adfdr-agent");
    }
}
