//! Which integration runtimes and change data captures the restore starts.

use super::*;

/// Which runtimes the restore starts: Managed IRs that were Started (or
/// Starting) at backup and CDCs that were Running, when they are part of the
/// restore and `mode` is as-backed-up; the others running at backup are
/// listed with why they stay stopped.
pub fn plan_runtimes(plan: &mut Plan, runtimes: &Runtimes, mode: RuntimeMode) {
    let restored = |kind: ResourceKind, name: &str| {
        let label = crate::model::resource::label(kind, None, name);
        plan.steps.iter().any(|s| s.label == label) || plan.unchanged.contains(&label)
    };
    let running = [
        (
            ResourceKind::IntegrationRuntime,
            &runtimes.integration_runtimes,
            &["Started", "Starting"][..],
        ),
        (
            ResourceKind::ChangeDataCapture,
            &runtimes.change_data_captures,
            &["Running"][..],
        ),
    ];
    let (mut start_irs, mut start_cdcs, mut left) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, states, up) in running {
        for (name, state) in states {
            if !up.iter().any(|u| u.eq_ignore_ascii_case(state)) {
                continue;
            }
            let label = crate::model::resource::label(kind, None, name);
            let reason = match (restored(kind, name), mode) {
                (false, _) => format!("{state} at backup, but not restored"),
                (true, RuntimeMode::Stopped) => {
                    format!("{state} at backup; left stopped (--runtimes stopped)")
                }
                (true, RuntimeMode::AsBackedUp) => {
                    match kind {
                        ResourceKind::IntegrationRuntime => start_irs.push(name.clone()),
                        _ => start_cdcs.push(name.clone()),
                    }
                    continue;
                }
            };
            left.push(Skipped { label, reason });
        }
    }
    plan.start_runtimes = start_irs;
    plan.start_cdcs = start_cdcs;
    plan.runtimes_left = left;
}
