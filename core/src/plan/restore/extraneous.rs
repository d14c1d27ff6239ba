//! What is in the target and not in the snapshot: deleted with
//! --delete-extraneous (dependents first) unless something kept still
//! needs it, or kept with why.

use super::*;

impl<'a> Planner<'a> {
    /// In the target (and the selection), not in the snapshot: deleted with
    /// --delete-extraneous, dependents first, unless what stays still
    /// references it; else kept, each with why.
    pub(super) fn extraneous(&mut self, expected: &[Expected]) -> (Vec<Delete>, Vec<Skipped>) {
        let in_snapshot: HashSet<Key> = self.children.iter().map(|r| r.key()).collect();
        let options = self.options;
        let extraneous: Vec<&'a Resource> = self
            .target
            .resources
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory && !in_snapshot.contains(&r.key()))
            .filter(|r| selected(options, r.kind, r.parent.as_deref(), &r.name))
            .collect();
        // What could not come back, or is not adfdr's to remove, stays.
        let (never, extraneous): (Vec<&'a Resource>, Vec<&'a Resource>) = extraneous
            .into_iter()
            .partition(|r| never_deleted(r).is_some());
        let mut never_kept: Vec<Skipped> = never
            .iter()
            .map(|r| Skipped {
                label: r.label(),
                reason: format!(
                    "not in the snapshot, kept: {}",
                    never_deleted(r).unwrap_or_default()
                ),
            })
            .collect();
        if !self.options.delete_extraneous || extraneous.is_empty() {
            let kept = extraneous
                .iter()
                .map(|r| Skipped {
                    label: r.label(),
                    reason: "not in the snapshot; --delete-extraneous removes it".into(),
                })
                .chain(never_kept)
                .collect();
            return (Vec::new(), kept);
        }
        let mut blocked = self.blocked(&extraneous, expected);
        let keep = keep_closure(&extraneous, &mut blocked);
        let going: Vec<&Resource> = extraneous
            .iter()
            .copied()
            .filter(|r| !keep.contains(&r.key()))
            .collect();
        let delete = self.deletions(&going);
        let kept = extraneous
            .iter()
            .filter(|r| keep.contains(&r.key()))
            .map(|r| Skipped {
                label: r.label(),
                reason: format!(
                    "not in the snapshot, but {} still references it",
                    blocked
                        .get(&r.key())
                        .map_or("a resource that stays", String::as_str)
                ),
            })
            .collect::<Vec<_>>();
        let mut kept = kept;
        kept.append(&mut never_kept);
        (delete, kept)
    }

    /// Extraneous resources that something staying references, and who:
    /// final definitions are the restored ones where restored, the
    /// target's elsewhere.
    pub(super) fn blocked(
        &self,
        extraneous: &[&Resource],
        expected: &[Expected],
    ) -> HashMap<Key, String> {
        let doomed: HashSet<Key> = extraneous.iter().map(|r| r.key()).collect();
        let restored: HashMap<Key, &Value> = expected
            .iter()
            .map(|e| (e.key.clone(), &e.definition))
            .collect();
        let mut finals: Vec<Resource> = Vec::new();
        for r in self
            .target
            .resources
            .iter()
            .filter(|r| r.kind != ResourceKind::Factory && !doomed.contains(&r.key()))
        {
            let definition = restored.get(&r.key()).map_or(&r.definition, |d| *d).clone();
            finals.push(Resource {
                definition,
                ..r.clone()
            });
        }
        for e in expected
            .iter()
            .filter(|e| !self.in_target.contains_key(&e.key))
        {
            let r = self.children[self.graph.index(&e.key).expect("in graph")];
            finals.push(Resource {
                definition: e.definition.clone(),
                ..r.clone()
            });
        }
        let mut blocked: HashMap<Key, String> = HashMap::new();
        for r in &finals {
            for reference in crate::model::references(&r.definition) {
                if let Some((kind, name)) = reference.dependency() {
                    let k = key(kind, None, name);
                    if doomed.contains(&k) {
                        blocked.entry(k).or_insert_with(|| r.label());
                    }
                }
            }
        }
        blocked
    }

    /// Deletes of `going`, dependents first: the reverse of dependency order.
    pub(super) fn deletions(&mut self, going: &[&Resource]) -> Vec<Delete> {
        let g = Graph::build(going.iter().copied());
        let order: Vec<usize> = match g.waves() {
            Ok(w) => w.into_iter().rev().flatten().collect(),
            Err(c) => {
                self.warnings.push(format!(
                    "extraneous resources form a {c}; deleting them in name order"
                ));
                (0..going.len()).collect()
            }
        };
        let mut pos = vec![0usize; going.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        let dependents = g.dependents();
        order
            .iter()
            .map(|&i| {
                let r = going[i];
                Delete {
                    kind: r.kind,
                    parent: r.parent.clone(),
                    name: r.name.clone(),
                    label: r.label(),
                    after: dependents[i].iter().map(|&d| pos[d]).collect(),
                }
            })
            .collect()
    }
}

/// Why a target resource is never deleted, even with --delete-extraneous:
/// it could not come back, or it is not the factory's to remove. (The
/// factory's own identity is kept by the factory's plan: `identity`.)
pub fn never_deleted(r: &Resource) -> Option<&'static str> {
    match r.kind {
        ResourceKind::ManagedVirtualNetwork => Some(
            "a managed virtual network has no DELETE in the REST API; it goes only with its factory",
        ),
        ResourceKind::PrivateEndpointConnection => Some(
            "an inbound private endpoint connection, approved for someone else's endpoint; adfdr never removes it",
        ),
        ResourceKind::Lock => Some(
            "a management lock someone put on the target protects it; adfdr never removes one (az lock delete, if it must go)",
        ),
        ResourceKind::RoleAssignment | ResourceKind::AccessPolicy => {
            Some("access the target's identity holds; adfdr grants, it never takes access away")
        }
        _ => None,
    }
}

/// Whatever a kept extraneous resource needs is kept too (to a fixed point);
/// `blocked` learns who keeps each.
pub(super) fn keep_closure(all: &[&Resource], blocked: &mut HashMap<Key, String>) -> HashSet<Key> {
    let mut keep: HashSet<Key> = HashSet::new();
    let g = Graph::build(all.iter().copied());
    loop {
        let before = keep.len();
        for (i, r) in all.iter().enumerate() {
            if blocked.contains_key(&r.key()) || keep.contains(&r.key()) {
                keep.insert(r.key());
                for &d in &g.deps[i] {
                    if keep.insert(g.keys[d].clone()) {
                        blocked
                            .entry(g.keys[d].clone())
                            .or_insert_with(|| r.label());
                    }
                }
            }
        }
        if keep.len() == before {
            return keep;
        }
    }
}
