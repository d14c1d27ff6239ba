//! Which resources the restore takes: the selection and the dependencies it
//! needs, each definition prepared (overrides, masked secrets, encrypted
//! credentials), skips propagated to what depends on them, staged as
//! creates and updates, and ordered in dependency waves.

use super::*;

impl<'a> Planner<'a> {
    /// The selection, then the dependencies the selection needs (unless the
    /// target has them); an excluded dependency the target lacks refuses.
    pub(super) fn select(&self) -> Result<Vec<bool>, PlanError> {
        let (children, graph, options) = (&self.children, &self.graph, self.options);
        let mut chosen: Vec<bool> = children
            .iter()
            .map(|r| selected(options, r.kind, r.parent.as_deref(), &r.name))
            .collect();
        let mut queue: Vec<usize> = (0..children.len()).filter(|&i| chosen[i]).collect();
        while let Some(i) = queue.pop() {
            for &d in &graph.deps[i] {
                if chosen[d] || self.in_target.contains_key(&graph.keys[d]) {
                    continue;
                }
                let dep = children[d];
                if options
                    .exclude
                    .iter()
                    .any(|s| s.matches(dep.kind, dep.parent.as_deref(), &dep.name))
                {
                    return Err(PlanError::MissingDependency {
                        resource: graph.labels[i].clone(),
                        needs: graph.labels[d].clone(),
                        why: "excluded and not in the target factory".into(),
                    });
                }
                chosen[d] = true;
                queue.push(d);
            }
        }
        Ok(chosen)
    }

    /// Each chosen resource's definition after overrides and placeholders;
    /// skips for what PUT cannot make and for masked secrets nobody fills;
    /// override rules that matched nothing.
    pub(super) fn prepare(&mut self, chosen: &[bool]) -> Preparation {
        let n = self.children.len();
        let mut out = Preparation {
            skip: vec![None; n],
            definitions: vec![None; n],
            secrets: Vec::new(),
        };
        let mut rule_used: HashSet<usize> = HashSet::new();
        for i in (0..n).filter(|&i| chosen[i]) {
            let r = self.children[i];
            if !restorable(r.kind) {
                // An inbound connection: the endpoint is someone else's.
                let endpoint = r
                    .definition
                    .pointer("/properties/privateEndpoint/id")
                    .and_then(Value::as_str)
                    .unwrap_or("its private endpoint");
                out.skip[i] = Some(format!(
                    "an inbound private endpoint connection cannot be re-created from here: the owner of {endpoint} connects it to the target factory again (a new private endpoint, or a new connection on theirs), and it is approved on the target"
                ));
                continue;
            }
            if r.kind.in_resource_group() && !self.options.alerts {
                out.skip[i] = Some(
                    "a drill creates no alerts: they would page people about a scratch factory"
                        .into(),
                );
                continue;
            }
            if r.kind == ResourceKind::Lock && r.parent.is_some() {
                let from = r
                    .definition
                    .pointer("/properties/inheritedFrom")
                    .and_then(Value::as_str)
                    .unwrap_or("the source's resource group");
                out.skip[i] = Some(format!(
                    "inherited from {from}: kept as context, not put on the target (its resource group and subscription have their own locks)"
                ));
                continue;
            }
            let others = r.kind == ResourceKind::RoleAssignment
                && r.definition
                    .pointer("/properties/principal")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !crate::model::kind::own_identity(p));
            if others && !self.options.others_access {
                out.skip[i] = Some(
                    "a drill grants nobody but the factory's identity access to its scratch factory"
                        .into(),
                );
                continue;
            }
            if r.kind == ResourceKind::Lock && !self.options.locks {
                out.skip[i] = Some(
                    "a drill puts no locks on its scratch factory: they would block its cleanup"
                        .into(),
                );
                continue;
            }
            let (definition, changes, filled, skip) =
                self.prepare_one(i, &mut rule_used, &mut out.secrets);
            out.skip[i] = skip;
            out.definitions[i] = Some((definition, changes, filled));
        }
        self.unused_rules(&rule_used);
        out
    }

    /// One resource: overrides, secrets filled or placeholders, and the skip
    /// reason when a masked secret stays unfilled.
    pub(super) fn prepare_one(
        &mut self,
        i: usize,
        rule_used: &mut HashSet<usize>,
        secrets: &mut Vec<SecretNeed>,
    ) -> (Value, Vec<String>, Vec<String>, Option<String>) {
        let r = self.children[i];
        let label = self.graph.labels[i].clone();
        let mut definition = r.definition.clone();
        // Older ADF git exports store a managed VNet without `properties`;
        // the service refuses a PUT without it (400) and serves `{}` plus
        // its read-only fields, so that is what is sent and compared.
        if let Some(map) = definition.as_object_mut()
            && !map.get("properties").is_some_and(Value::is_object)
        {
            map.insert("properties".into(), Value::Object(Default::default()));
        }
        let (mut changes, mut filled) = (Vec::new(), Vec::new());
        self.map_region(i, &label, &mut definition, &mut changes);
        if let Some(o) = self.overrides {
            for rule in &o.rules {
                if Overrides::rule_matches(rule, r.kind, r.parent.as_deref(), &r.name) {
                    rule_used.insert(rule.number);
                }
            }
            let applied = o.apply(r.kind, r.parent.as_deref(), &r.name, &mut definition);
            for miss in applied.misses {
                self.warn_or_refuse(format!("{label}: {miss} matches nothing"));
            }
            changes = applied.changes;
            filled = applied.filled;
        }
        let need = |pointer: &str, filled: bool| SecretNeed {
            resource: label.clone(),
            pointer: pointer.to_string(),
            filled,
        };
        secrets.extend(filled.iter().map(|p| need(p, true)));
        let mut masked = masked_pointers(&definition);
        if self.options.placeholder_secrets {
            for pointer in masked.drain(..) {
                set_pointer(
                    &mut definition,
                    &pointer,
                    Value::String(PLACEHOLDER_SECRET.into()),
                );
                secrets.push(need(&pointer, true));
                filled.push(pointer);
            }
        }
        let credential = self.encrypted_credential(r, &mut definition, &changes, &filled);
        if let Some(filled_by) = credential {
            secrets.push(need(ENCRYPTED_CREDENTIAL, filled_by));
        }
        // The target already holds this definition (its secret included, as
        // far as anyone can tell through the mask): nothing to write.
        let same_in_target = self.in_target.get(&r.key()).is_some_and(|t| {
            let mut view = definition.clone();
            for pointer in &filled {
                set_pointer(&mut view, pointer, Value::String(MASK.into()));
            }
            canon(&t.definition) == canon(&view)
        });
        let mut skip = None;
        if credential == Some(false) && !same_in_target {
            let reason = format!(
                "its encryptedCredential was made for the source factory's credential store and works in no other; supply the linked service's credentials with an override (a [[rule]] that sets or fills {}/...), which replaces it",
                "/properties/typeProperties"
            );
            if self.options.strict {
                self.strict.push(format!("{label}: {reason}"));
            }
            skip = Some(reason);
        }
        if !masked.is_empty() && !same_in_target && skip.is_none() {
            secrets.extend(masked.iter().map(|p| need(p, false)));
            let reason = format!(
                "secret {} came back masked at backup and no override fills it; add a [[rule]] with fill = {{ \"{}\" = {{ env = \"VAR\" }} }} to --overrides",
                masked.join(", "),
                masked[0]
            );
            if self.options.strict {
                self.strict.push(format!("{label}: {reason}"));
            }
            skip = Some(reason);
        }
        (definition, changes, filled, skip)
    }

    /// The region map on resource `i`: every region-bound place it says
    /// nothing of is named with the line that would (--strict refuses),
    /// and each rewrite it makes is a change the plan shows.
    pub(super) fn map_region(
        &mut self,
        i: usize,
        label: &str,
        definition: &mut Value,
        changes: &mut Vec<String>,
    ) {
        let kind = self.children[i].kind;
        let Some(map) = &self.options.region_map else {
            return;
        };
        // Every region-bound place the map says nothing of, with the
        // line that would (--strict refuses).
        for b in crate::plan::region_map::bound(kind, definition) {
            if !map.covers(&b) {
                let line = crate::plan::region_map::RegionMap::line_for(&b);
                self.warn_or_refuse(format!(
                    "{label}: region-bound {} at {} is not in the region map: add {line} (map it to itself to keep it)",
                    b.value, b.pointer
                ));
            }
        }
        for m in map.apply(kind, definition) {
            changes.push(format!("region map: {} {} -> {}", m.pointer, m.from, m.to));
        }
    }

    /// A linked service's encryptedCredential, restored anywhere but its own
    /// factory: dropped when an override supplies the credentials (or a drill
    /// uses placeholders); None when there is none or the target is the source.
    /// Some(true): replaced; Some(false): still needed.
    pub(super) fn encrypted_credential(
        &self,
        r: &Resource,
        definition: &mut Value,
        changes: &[String],
        filled: &[String],
    ) -> Option<bool> {
        let present = definition
            .pointer(ENCRYPTED_CREDENTIAL)
            .is_some_and(Value::is_string);
        if r.kind != ResourceKind::LinkedService || !present || self.target.is_source {
            return None;
        }
        let supplied = changes.iter().chain(filled).any(|c| {
            c.contains("/properties/typeProperties/") && !c.contains("encryptedCredential")
        });
        if !(supplied || self.options.placeholder_secrets) {
            return Some(false);
        }
        if let Some(props) = definition
            .pointer_mut("/properties/typeProperties")
            .and_then(Value::as_object_mut)
        {
            props.shift_remove("encryptedCredential");
        }
        Some(true)
    }

    pub(super) fn unused_rules(&mut self, used: &HashSet<usize>) {
        let Some(o) = self.overrides else { return };
        for rule in &o.rules {
            if !used.contains(&rule.number) {
                self.warn_or_refuse(format!(
                    "{}: rule {} ({}) matches no resource being restored",
                    o.source, rule.number, rule.what
                ));
            }
        }
    }

    /// References to what exists neither in the snapshot nor in the target.
    pub(super) fn skip_dangling(&mut self, chosen: &[bool], skip: &mut [Option<String>]) {
        for e in &self.graph.external {
            if chosen[e.from] && skip[e.from].is_none() && !self.in_target.contains_key(&e.to) {
                let reason = format!(
                    "references {} (at {}), which is neither in the snapshot nor in the target factory",
                    e.label, e.pointer
                );
                if self.options.strict {
                    self.strict
                        .push(format!("{}: {reason}", self.graph.labels[e.from]));
                }
                skip[e.from] = Some(reason);
            }
        }
    }

    /// Whatever needs a skipped resource the target does not have is
    /// skipped too, in dependency order (a cycle is reported later, on the
    /// resources actually written).
    pub(super) fn propagate_skips(&self, chosen: &[bool], skip: &mut [Option<String>]) {
        let graph = &self.graph;
        let order: Vec<usize> = match graph.waves() {
            Ok(w) => w.into_iter().flatten().collect(),
            Err(_) => (0..self.children.len()).collect(),
        };
        // One pass in dependency order suffices; the loop only matters when
        // a cycle leaves the order arbitrary.
        loop {
            let mut changed = false;
            for &i in &order {
                if !chosen[i] || skip[i].is_some() {
                    continue;
                }
                if let Some(&d) = graph.deps[i]
                    .iter()
                    .find(|&&d| skip[d].is_some() && !self.in_target.contains_key(&graph.keys[d]))
                {
                    skip[i] = Some(format!("needs {}, which is skipped", graph.labels[d]));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Create, update or unchanged, and what each must read back as.
    pub(super) fn stage(&self, chosen: &[bool], prepared: &mut Preparation) -> Staged {
        let graph = &self.graph;
        let mut staged = Staged {
            writes: Vec::new(),
            unchanged: Vec::new(),
            skipped: Vec::new(),
            expected: Vec::new(),
        };
        for i in (0..self.children.len()).filter(|&i| chosen[i]) {
            if let Some(reason) = &prepared.skip[i] {
                staged.skipped.push(Skipped {
                    label: graph.labels[i].clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            let (definition, changes, filled) = prepared.definitions[i]
                .take()
                .expect("chosen and not skipped");
            let mut masked = definition.clone();
            for pointer in &filled {
                set_pointer(&mut masked, pointer, Value::String(MASK.into()));
            }
            staged.expected.push(self.expected(i, masked.clone()));
            let action = match self.in_target.get(&graph.keys[i]) {
                None => Action::Create,
                Some(t) if canon(&t.definition) == canon(&masked) => {
                    staged.unchanged.push(graph.labels[i].clone());
                    continue;
                }
                Some(_) => Action::Update,
            };
            staged.writes.push((i, action, definition, changes));
        }
        staged
    }

    /// What resource `i` must read back as. A grant whose scope the region
    /// map moved is another grant in the target, under the name its new
    /// scope gives (model::kind::grant_name, as export names it).
    fn expected(&self, i: usize, definition: Value) -> Expected {
        let r = self.children[i];
        let moved = crate::model::kind::grant_name(r.kind, &definition)
            .filter(|n| self.options.region_map.is_some() && !n.eq_ignore_ascii_case(&r.name));
        match moved {
            Some(name) => Expected {
                key: key(r.kind, r.parent.as_deref(), &name),
                label: crate::model::resource::label(r.kind, r.parent.as_deref(), &name),
                parent: r.parent.clone(),
                name,
                definition,
            },
            None => Expected {
                key: self.graph.keys[i].clone(),
                label: self.graph.labels[i].clone(),
                parent: r.parent.clone(),
                name: r.name.clone(),
                definition,
            },
        }
    }

    /// The writes in dependency order, each with the positions of the writes
    /// it needs: their own graph, so a cycle is reported on what is written.
    pub(super) fn order(&self, writes: &[Write]) -> Result<(Vec<Step>, usize), PlanError> {
        let write_graph = Graph::build(writes.iter().map(|(i, ..)| self.children[*i]));
        let waves = write_graph.waves()?;
        let depth = waves.len();
        let mut position = vec![0usize; writes.len()];
        let order: Vec<usize> = waves.into_iter().flatten().collect();
        for (pos, &s) in order.iter().enumerate() {
            position[s] = pos;
        }
        let steps = order
            .iter()
            .map(|&s| {
                let (i, action, definition, changes) = &writes[s];
                let r = self.children[*i];
                Step {
                    kind: r.kind,
                    parent: r.parent.clone(),
                    name: r.name.clone(),
                    label: self.graph.labels[*i].clone(),
                    action: *action,
                    definition: definition.clone(),
                    deps: write_graph.deps[s].iter().map(|&d| position[d]).collect(),
                    changes: changes.clone(),
                }
            })
            .collect();
        Ok((steps, depth))
    }
}
