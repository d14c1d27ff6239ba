//! Which triggers stop before the writes and which start after them.

use super::*;

impl<'a> Planner<'a> {
    /// Which triggers to stop first (started target triggers that are
    /// rewritten, deleted or restored stopped; dependents first) and to
    /// start after (restored triggers that should run; dependencies first).
    pub(super) fn triggers(
        &self,
        snapshot_triggers: &BTreeMap<String, String>,
        steps: &[Step],
        delete: &[Delete],
        expected: &[Expected],
    ) -> Triggers {
        let restored: Vec<&Expected> = expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::Trigger)
            .collect();
        let want_started = |name: &str| {
            self.options.triggers == TriggerMode::AsBackedUp
                && snapshot_triggers
                    .iter()
                    .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started")
        };
        let stop = self.stops(steps, delete, &restored, &want_started);
        let (start, unstartable) = self.starts(&restored, &stop, &want_started);
        Triggers {
            stop,
            start,
            unstartable,
        }
    }

    pub(super) fn started_in_target(&self, name: &str) -> bool {
        self.target
            .trigger_states
            .iter()
            .any(|(n, s)| n.eq_ignore_ascii_case(name) && s == "Started")
    }

    pub(super) fn stops(
        &self,
        steps: &[Step],
        delete: &[Delete],
        restored: &[&Expected],
        want_started: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let names = |kinds: &mut dyn Iterator<Item = (ResourceKind, &String)>| -> HashSet<String> {
            kinds
                .filter(|(k, _)| *k == ResourceKind::Trigger)
                .map(|(_, n)| n.to_lowercase())
                .collect()
        };
        let written = names(&mut steps.iter().map(|s| (s.kind, &s.name)));
        let deleted = names(&mut delete.iter().map(|d| (d.kind, &d.name)));
        let target_triggers: Vec<&Resource> = self
            .target
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Trigger)
            .collect();
        let mut stop: Vec<String> = Vec::new();
        for t in &target_triggers {
            let lower = t.name.to_lowercase();
            let is_restored = restored.iter().any(|e| e.key.2 == lower);
            if self.started_in_target(&t.name)
                && (written.contains(&lower)
                    || deleted.contains(&lower)
                    || (is_restored && !want_started(&t.name)))
            {
                stop.push(t.name.clone());
            }
        }
        let levels = trigger_levels(&Graph::build(target_triggers.iter().copied()));
        stop.sort_by_key(|n| (std::cmp::Reverse(rank(&levels, n)), n.to_lowercase()));
        stop
    }

    pub(super) fn starts(
        &self,
        restored: &[&Expected],
        stop: &[String],
        want_started: &dyn Fn(&str) -> bool,
    ) -> (Vec<String>, Vec<Skipped>) {
        let mut start: Vec<String> = Vec::new();
        let mut unstartable = Vec::new();
        for e in restored {
            let i = self.graph.index(&e.key).expect("in graph");
            let r = self.children[i];
            let stopped_here = stop.iter().any(|s| s.eq_ignore_ascii_case(&r.name));
            if !want_started(&r.name) || (self.started_in_target(&r.name) && !stopped_here) {
                continue;
            }
            // The service refuses to start a trigger that runs no pipeline
            // (a git file can still say Started).
            let runs_something = crate::model::references(&e.definition)
                .iter()
                .any(|x| x.kind == Some(ResourceKind::Pipeline));
            if runs_something {
                start.push(r.name.clone());
            } else {
                unstartable.push(Skipped {
                    label: self.graph.labels[i].clone(),
                    reason: "was started at backup, but references no pipeline: the service refuses to start it".into(),
                });
            }
        }
        let source: Vec<&Resource> = self
            .children
            .iter()
            .copied()
            .filter(|r| r.kind == ResourceKind::Trigger)
            .collect();
        let levels = trigger_levels(&Graph::build(source.iter().copied()));
        start.sort_by_key(|n| (rank(&levels, n), n.to_lowercase()));
        (start, unstartable)
    }
}

/// Dependency level of each trigger by name (0 when a cycle leaves it unordered).
pub(super) fn trigger_levels(g: &Graph) -> HashMap<String, usize> {
    g.waves()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .flat_map(|(level, w)| w.iter().map(move |&i| (g.keys[i].2.clone(), level)))
        .collect()
}

pub(super) fn rank(levels: &HashMap<String, usize>, name: &str) -> usize {
    levels.get(&name.to_lowercase()).copied().unwrap_or(0)
}
