//! Pure drill verdicts: what a drill measured, judged against the targets.
//! No IO and no clock: the times come in as data, so every rule is tested
//! with fixed values.

use std::time::Duration;

pub use adfdr_contract::drill::{Facts, Judgement, Phase, Smoke, Verdict};

/// `1h2m3s`-style text for people.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 1.0 {
        return format!("{}ms", (s * 1000.0).round() as u64);
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    if total >= 86_400 {
        let (d, h) = (total / 86_400, (total % 86_400) / 3600);
        return if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        };
    }
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m, sec) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub fn judge(
    facts: &Facts,
    rto_target: Option<Duration>,
    rpo_target: Option<Duration>,
) -> Judgement {
    let mut reasons = Vec::new();
    if let Some(e) = &facts.restore_error {
        reasons.push(format!("restore error: {e}"));
    }
    if !facts.apply_failures.is_empty() {
        reasons.push(format!(
            "{} write(s) failed: {}",
            facts.apply_failures.len(),
            list(&facts.apply_failures)
        ));
    }
    if !facts.mismatches.is_empty() {
        reasons.push(format!(
            "{} resource(s) differ from the snapshot after restore: {}",
            facts.mismatches.len(),
            list(&facts.mismatches)
        ));
    }
    let notes = not_runnable(facts, &mut reasons);
    if !facts.broken_references.is_empty() {
        reasons.push(format!(
            "{} reference(s) do not resolve in the restored factory: {}",
            facts.broken_references.len(),
            list(&facts.broken_references)
        ));
    }
    if facts.restore_error.is_none() && !facts.global_parameters_equal {
        reasons.push("global parameters differ from the snapshot".into());
    }
    trigger_and_smoke_reasons(facts, &mut reasons);
    let rto_seconds = facts
        .verified_ms
        .map(|v| ((v - facts.started_ms).max(0) as f64) / 1000.0);
    let rpo_seconds = ((facts.started_ms - facts.confirmed_ms).max(0) as f64) / 1000.0;
    let rto_target_seconds = rto_target.map(|d| d.as_secs_f64());
    let rpo_target_seconds = rpo_target.map(|d| d.as_secs_f64());
    match (rto_seconds, rto_target_seconds) {
        (Some(rto), Some(target)) if rto > target => reasons.push(format!(
            "RTO {} exceeds the target {}",
            human(rto),
            human(target)
        )),
        (None, Some(target)) => reasons.push(format!(
            "no verified restore, so the RTO target {} was not met",
            human(target)
        )),
        _ => {}
    }
    if let Some(target) = rpo_target_seconds
        && rpo_seconds > target
    {
        reasons.push(format!(
            "RPO {} exceeds the target {} (the snapshot's state was last confirmed {} before the drill)",
            human(rpo_seconds),
            human(target),
            human(rpo_seconds)
        ));
    }
    Judgement {
        verdict: if reasons.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed
        },
        reasons,
        notes,
        rto_seconds,
        rto_target_seconds,
        rpo_seconds,
        rpo_target_seconds,
    }
}

/// Triggers not as the snapshot has them, or started; a smoke run that
/// did not succeed.
fn trigger_and_smoke_reasons(facts: &Facts, reasons: &mut Vec<String>) {
    if !facts.triggers_missing.is_empty() {
        reasons.push(format!(
            "triggers missing: {}",
            list(&facts.triggers_missing)
        ));
    }
    if !facts.triggers_extra.is_empty() {
        reasons.push(format!(
            "triggers not in the snapshot: {}",
            list(&facts.triggers_extra)
        ));
    }
    if !facts.triggers_started.is_empty() {
        reasons.push(format!(
            "triggers started in the scratch factory (drills keep them stopped): {}",
            list(&facts.triggers_started)
        ));
    }
    if let Some(s) = &facts.smoke
        && s.status != "Succeeded"
    {
        reasons.push(format!(
            "smoke pipeline {} {}{}",
            s.pipeline,
            match s.status.as_str() {
                "TimedOut" => "did not finish in time".to_string(),
                "NotStarted" => "could not be started".to_string(),
                other => format!("ended {other}"),
            },
            s.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
}

/// What keeps the restored factory from running: runtimes down and
/// endpoints not provisioned are reasons; what people must still do
/// (approvals, credentials, access) comes back as notes.
fn not_runnable(facts: &Facts, reasons: &mut Vec<String>) -> Vec<String> {
    if !facts.access_not_granted.is_empty() {
        reasons.push(format!(
            "{} role(s) of the source's identity not granted to the restored one: {}",
            facts.access_not_granted.len(),
            list(&facts.access_not_granted)
        ));
    }
    if !facts.runtimes_not_running.is_empty() {
        reasons.push(format!(
            "{} runtime(s) running at backup do not run in the restored factory: {}",
            facts.runtimes_not_running.len(),
            list(&facts.runtimes_not_running)
        ));
    }
    if !facts.endpoints_failed.is_empty() {
        reasons.push(format!(
            "{} managed private endpoint(s) not provisioned: {}",
            facts.endpoints_failed.len(),
            list(&facts.endpoints_failed)
        ));
    }
    facts
        .endpoints_pending
        .iter()
        .map(|e| format!("defined, not approved: {e}"))
        .chain(facts.credentials_to_give.iter().cloned())
        .collect()
}

/// The first few items, and how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            started_ms: 1_000_000,
            verified_ms: Some(1_000_000 + 90_000),
            confirmed_ms: 1_000_000 - 600_000,
            global_parameters_equal: true,
            ..Default::default()
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_clean_drill_within_targets_passes_with_measured_rto_and_rpo() {
        let j = judge(&healthy(), Some(2 * MIN), Some(15 * MIN));
        assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.reasons);
        assert_eq!(j.rto_seconds, Some(90.0));
        assert_eq!(j.rpo_seconds, 600.0);
        assert_eq!(j.rto_target_seconds, Some(120.0));
        // No targets: measured, nothing to miss.
        assert_eq!(judge(&healthy(), None, None).verdict, Verdict::Passed);
    }

    /// Defined is not approved: an endpoint awaiting its owner's approval is
    /// noted and passes; one that failed to provision fails the drill.
    #[test]
    fn endpoints_awaiting_approval_are_noted_and_failed_ones_fail() {
        let mut f = healthy();
        f.endpoints_pending = vec!["mpe-lake awaits approval on /subscriptions/s/…/lake".into()];
        let j = judge(&f, None, None);
        assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.reasons);
        assert_eq!(
            j.notes,
            ["defined, not approved: mpe-lake awaits approval on /subscriptions/s/…/lake"]
        );
        f.credentials_to_give = vec!["linkedService:LS_Files: a placeholder stands in".into()];
        let j = judge(&f, None, None);
        assert_eq!(j.verdict, Verdict::Passed);
        assert_eq!(
            j.notes[1],
            "linkedService:LS_Files: a placeholder stands in"
        );
        f.access_not_granted = vec!["roleAssignment:kv-reader: az role assignment create …".into()];
        let j = judge(&f, None, None);
        assert_eq!(
            j.verdict,
            Verdict::Failed,
            "not runnable without its access"
        );
        assert!(
            j.reasons[0].contains("1 role(s) of the source's identity not granted"),
            "{:?}",
            j.reasons
        );
        f.access_not_granted.clear();
        f.endpoints_failed = vec!["mpe-sql failed to provision".into()];
        let j = judge(&f, None, None);
        assert_eq!(j.verdict, Verdict::Failed);
        assert!(
            j.reasons[0].contains("1 managed private endpoint(s) not provisioned: mpe-sql"),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn each_target_missed_is_a_reason() {
        let j = judge(&healthy(), Some(MIN), Some(5 * MIN));
        assert_eq!(j.verdict, Verdict::Failed);
        assert_eq!(j.reasons.len(), 2, "{:?}", j.reasons);
        assert!(
            j.reasons[0].contains("RTO 1m30s exceeds the target 1m"),
            "{:?}",
            j.reasons
        );
        assert!(
            j.reasons[1].contains("RPO 10m exceeds the target 5m"),
            "{:?}",
            j.reasons
        );
        // Exactly on target passes.
        let j = judge(&healthy(), Some(Duration::from_secs(90)), Some(10 * MIN));
        assert_eq!(j.verdict, Verdict::Passed, "{:?}", j.reasons);
    }

    #[test]
    fn a_restore_that_never_verified_misses_its_rto_and_says_why() {
        let mut f = healthy();
        f.verified_ms = None;
        f.restore_error = Some("target factory refused the PUT".into());
        let j = judge(&f, Some(MIN), None);
        assert_eq!(j.verdict, Verdict::Failed);
        assert_eq!(j.rto_seconds, None);
        assert!(
            j.reasons[0].starts_with("restore error: target factory"),
            "{:?}",
            j.reasons
        );
        assert!(
            j.reasons.iter().any(|r| r.contains("no verified restore")),
            "{:?}",
            j.reasons
        );
        // Global parameters are not judged when nothing was restored.
        assert!(
            !j.reasons.iter().any(|r| r.contains("global")),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn mismatches_references_triggers_and_smoke_each_fail_the_drill() {
        type Case = (fn(&mut Facts), &'static str);
        let cases: Vec<Case> = vec![
            (
                |f| f.mismatches = vec!["pipeline:PL_A differs at /properties/x".into()],
                "differ from the snapshot",
            ),
            (
                |f| f.apply_failures = vec!["PUT dataset:DS".into()],
                "write(s) failed",
            ),
            (
                |f| f.broken_references = vec!["pipeline:P -> dataset:Gone".into()],
                "do not resolve",
            ),
            (
                |f| f.global_parameters_equal = false,
                "global parameters differ",
            ),
            (
                |f| f.triggers_missing = vec!["TR_Daily".into()],
                "triggers missing: TR_Daily",
            ),
            (
                |f| f.triggers_extra = vec!["TR_Old".into()],
                "not in the snapshot: TR_Old",
            ),
            (
                |f| f.triggers_started = vec!["TR_Daily".into()],
                "drills keep them stopped",
            ),
            (
                |f| {
                    f.smoke = Some(Smoke {
                        pipeline: "pl_smoke".into(),
                        run_id: Some("r1".into()),
                        status: "Failed".into(),
                        message: Some("Operation on target Wait1 failed".into()),
                        seconds: 3.0,
                    })
                },
                "smoke pipeline pl_smoke ended Failed: Operation on target Wait1 failed",
            ),
            (
                |f| {
                    f.smoke = Some(Smoke {
                        pipeline: "pl_smoke".into(),
                        run_id: Some("r1".into()),
                        status: "TimedOut".into(),
                        message: None,
                        seconds: 600.0,
                    })
                },
                "did not finish in time",
            ),
        ];
        for (change, want) in cases {
            let mut f = healthy();
            change(&mut f);
            let j = judge(&f, None, None);
            assert_eq!(j.verdict, Verdict::Failed, "{want}");
            assert_eq!(j.reasons.len(), 1, "{:?}", j.reasons);
            assert!(
                j.reasons[0].contains(want),
                "{:?} should say {want}",
                j.reasons
            );
        }
        let mut f = healthy();
        f.smoke = Some(Smoke {
            pipeline: "pl_smoke".into(),
            run_id: Some("r1".into()),
            status: "Succeeded".into(),
            message: None,
            seconds: 2.0,
        });
        assert_eq!(judge(&f, None, None).verdict, Verdict::Passed);
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let mut f = healthy();
        f.mismatches = (0..8).map(|i| format!("pipeline:P{i}")).collect();
        let j = judge(&f, None, None);
        assert!(
            j.reasons[0].contains("8 resource(s)") && j.reasons[0].ends_with("and 3 more"),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(12.34), "12.3s");
        assert_eq!(human(0.0421), "42ms");
        assert_eq!(human(90.0), "1m30s");
        assert_eq!(human(600.0), "10m");
        assert_eq!(human(3600.0), "1h");
        assert_eq!(human(3900.0), "1h5m");
        assert_eq!(human(86_400.0), "1d");
        assert_eq!(human(30.0 * 86_400.0 + 7200.0), "30d2h");
    }
}
