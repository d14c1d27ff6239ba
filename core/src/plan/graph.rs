//! One dependency graph over all kinds of a factory. Edges come from the
//! references found anywhere in a definition (`model::references`) and from
//! the URL nesting of managed private endpoints under their virtual network.
//! Ordering is topological; a cycle is reported with its path, never looped on.

use std::collections::HashMap;

use crate::model::resource::{Resource, key, label};
use crate::model::{ResourceKind, references};

pub type Key = (ResourceKind, String, String);

/// A reference from a node to something outside the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    pub from: usize,
    pub to: Key,
    /// `linkedService:LS_Sql`
    pub label: String,
    pub pointer: String,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub keys: Vec<Key>,
    pub labels: Vec<String>,
    /// `deps[i]`: the nodes `i` needs to exist first (no duplicates).
    pub deps: Vec<Vec<usize>>,
    /// References to resources not in the graph.
    pub external: Vec<External>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle: {}", path.join(" -> "))]
pub struct Cycle {
    /// Labels along the cycle, the first repeated at the end.
    pub path: Vec<String>,
}

impl Graph {
    /// The graph of `resources` (the factory itself is not a node: it comes
    /// before everything).
    pub fn build<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Graph {
        let resources: Vec<&Resource> = resources
            .into_iter()
            .filter(|r| r.kind != ResourceKind::Factory)
            .collect();
        let keys: Vec<Key> = resources.iter().map(|r| r.key()).collect();
        let index: HashMap<&Key, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut deps = vec![Vec::new(); keys.len()];
        let mut external = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            let mut wanted: Vec<(Key, String, String)> = Vec::new();
            if let (ResourceKind::ManagedPrivateEndpoint, Some(vnet)) = (r.kind, &r.parent) {
                wanted.push((
                    key(ResourceKind::ManagedVirtualNetwork, None, vnet),
                    label(ResourceKind::ManagedVirtualNetwork, None, vnet),
                    String::new(),
                ));
            }
            for reference in references(&r.definition) {
                if let Some((kind, name)) = reference.dependency() {
                    wanted.push((
                        key(kind, None, name),
                        label(kind, None, name),
                        reference.pointer.clone(),
                    ));
                } else if reference.kind == Some(ResourceKind::IntegrationRuntime)
                    && !reference.dynamic
                {
                    // AutoResolveIntegrationRuntime exists implicitly, except in
                    // a managed-VNet factory, where it is a resource of its own
                    // and must exist before what runs on it.
                    let k = key(ResourceKind::IntegrationRuntime, None, &reference.name);
                    if let Some(&j) = index.get(&k)
                        && j != i
                        && !deps[i].contains(&j)
                    {
                        deps[i].push(j);
                    }
                }
            }
            for (to, label, pointer) in wanted {
                match index.get(&to) {
                    Some(&j) if !deps[i].contains(&j) => deps[i].push(j),
                    Some(_) => {}
                    None => {
                        if !external
                            .iter()
                            .any(|e: &External| e.from == i && e.to == to)
                        {
                            external.push(External {
                                from: i,
                                to,
                                label,
                                pointer,
                            });
                        }
                    }
                }
            }
        }
        Graph {
            labels: resources.iter().map(|r| r.label()).collect(),
            keys,
            deps,
            external,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn index(&self, key: &Key) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The nodes that depend on each node.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.len()];
        for (i, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                out[d].push(i);
            }
        }
        out
    }

    /// Waves: every node after all its dependencies; wave `n` holds the nodes
    /// whose longest dependency chain is `n` long. A cycle is an error.
    pub fn waves(&self) -> Result<Vec<Vec<usize>>, Cycle> {
        let mut level = vec![usize::MAX; self.len()];
        let mut remaining: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let dependents = self.dependents();
        let mut current: Vec<usize> = (0..self.len()).filter(|&i| remaining[i] == 0).collect();
        let mut waves = Vec::new();
        let mut placed = 0;
        while !current.is_empty() {
            let mut next = Vec::new();
            for &i in &current {
                level[i] = waves.len();
                for &d in &dependents[i] {
                    remaining[d] -= 1;
                    if remaining[d] == 0 {
                        next.push(d);
                    }
                }
            }
            placed += current.len();
            current.sort_by(|a, b| self.keys[*a].cmp(&self.keys[*b]));
            waves.push(std::mem::replace(&mut current, next));
        }
        if placed < self.len() {
            let stuck: Vec<usize> = (0..self.len())
                .filter(|&i| level[i] == usize::MAX)
                .collect();
            return Err(self.cycle_among(&stuck));
        }
        Ok(waves)
    }

    /// A cycle among nodes that Kahn's algorithm could not place (each of
    /// them has an unplaced dependency, so walking dependencies must repeat).
    fn cycle_among(&self, stuck: &[usize]) -> Cycle {
        let stuck_set: std::collections::HashSet<usize> = stuck.iter().copied().collect();
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let mut path = Vec::new();
        let mut at = *stuck
            .iter()
            .min_by(|a, b| self.keys[**a].cmp(&self.keys[**b]))
            .expect("stuck");
        loop {
            if let Some(&start) = seen.get(&at) {
                let mut labels: Vec<String> = path[start..]
                    .iter()
                    .map(|&i: &usize| self.labels[i].clone())
                    .collect();
                labels.push(self.labels[at].clone());
                return Cycle { path: labels };
            }
            seen.insert(at, path.len());
            path.push(at);
            at = *self.deps[at]
                .iter()
                .find(|d| stuck_set.contains(d))
                .expect("an unplaced node has an unplaced dependency");
        }
    }

    /// Longest dependency chain (in nodes) through the graph: the lower bound
    /// of sequential round trips when everything else runs in parallel.
    pub fn depth(&self) -> Result<usize, Cycle> {
        Ok(self.waves()?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(kind: ResourceKind, name: &str, definition: serde_json::Value) -> Resource {
        Resource {
            kind,
            parent: None,
            name: name.into(),
            definition,
        }
    }

    fn exec(child: &str) -> serde_json::Value {
        json!({"properties": {"activities": [{"name": "x", "type": "ExecutePipeline",
            "typeProperties": {"pipeline": {"referenceName": child, "type": "PipelineReference"}}}]}})
    }

    #[test]
    fn waves_put_dependencies_first_across_kinds() {
        let resources = vec![
            r(
                ResourceKind::Trigger,
                "TR",
                json!({"properties": {"pipelines": [{"pipelineReference": {"referenceName": "PL_Parent", "type": "PipelineReference"}}]}}),
            ),
            r(ResourceKind::Pipeline, "PL_Parent", exec("pl_child")),
            r(
                ResourceKind::Pipeline,
                "PL_Child",
                json!({"properties": {"activities": [{"name": "c", "type": "Copy",
                "inputs": [{"referenceName": "DS", "type": "DatasetReference"}]}]}}),
            ),
            r(
                ResourceKind::Dataset,
                "DS",
                json!({"properties": {"linkedServiceName": {"referenceName": "LS", "type": "LinkedServiceReference"}}}),
            ),
            r(
                ResourceKind::LinkedService,
                "LS",
                json!({"properties": {"typeProperties": {"password": {"type": "AzureKeyVaultSecret",
                "store": {"referenceName": "LS_KV", "type": "LinkedServiceReference"}}}}}),
            ),
            r(
                ResourceKind::LinkedService,
                "LS_KV",
                json!({"properties": {"connectVia": {"referenceName": "AutoResolveIntegrationRuntime", "type": "IntegrationRuntimeReference"}}}),
            ),
        ];
        let g = Graph::build(&resources);
        let waves = g.waves().expect("acyclic");
        let labels: Vec<Vec<&str>> = waves
            .iter()
            .map(|w| w.iter().map(|&i| g.labels[i].as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                vec!["linkedService:LS_KV"],
                vec!["linkedService:LS"],
                vec!["dataset:DS"],
                vec!["pipeline:PL_Child"],
                vec!["pipeline:PL_Parent"],
                vec!["trigger:TR"],
            ],
            "names resolve case-insensitively; AutoResolve is implicit"
        );
        assert!(g.external.is_empty(), "{:?}", g.external);
        assert_eq!(g.depth(), Ok(6));
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        let resources = vec![
            r(ResourceKind::Pipeline, "A", exec("B")),
            r(ResourceKind::Pipeline, "B", exec("C")),
            r(ResourceKind::Pipeline, "C", exec("A")),
            r(ResourceKind::Pipeline, "D", exec("A")),
            r(ResourceKind::Pipeline, "E", json!({})),
        ];
        let err = Graph::build(&resources).waves().expect_err("cycle");
        assert_eq!(
            err.path,
            ["pipeline:A", "pipeline:B", "pipeline:C", "pipeline:A"]
        );
        assert_eq!(
            err.to_string(),
            "dependency cycle: pipeline:A -> pipeline:B -> pipeline:C -> pipeline:A"
        );
        let selfish = vec![r(ResourceKind::Pipeline, "S", exec("s"))];
        assert_eq!(
            Graph::build(&selfish).waves().expect_err("self").path,
            ["pipeline:S", "pipeline:S"]
        );
    }

    #[test]
    fn private_endpoints_need_their_network_and_outside_references_are_listed() {
        let resources = vec![
            Resource {
                kind: ResourceKind::ManagedPrivateEndpoint,
                parent: Some("default".into()),
                name: "mpe".into(),
                definition: json!({"properties": {"privateLinkResourceId": "/x"}}),
            },
            r(
                ResourceKind::ManagedVirtualNetwork,
                "default",
                json!({"properties": {}}),
            ),
            r(
                ResourceKind::Dataset,
                "DS",
                json!({"properties": {"linkedServiceName": {"referenceName": "LS_Gone", "type": "LinkedServiceReference"}}}),
            ),
        ];
        let g = Graph::build(&resources);
        let waves = g.waves().expect("acyclic");
        assert_eq!(g.labels[waves[0][0]], "managedVirtualNetwork:default");
        assert_eq!(g.external.len(), 1);
        assert_eq!(g.external[0].label, "linkedService:LS_Gone");
        assert_eq!(g.external[0].pointer, "/properties/linkedServiceName");
        // In a managed-VNet factory AutoResolve is a resource: it goes first.
        let vnet = vec![
            r(
                ResourceKind::LinkedService,
                "LS",
                json!({"properties": {"connectVia": {"referenceName": "AutoResolveIntegrationRuntime", "type": "IntegrationRuntimeReference"}}}),
            ),
            r(
                ResourceKind::IntegrationRuntime,
                "AutoResolveIntegrationRuntime",
                json!({"properties": {"type": "Managed",
                "managedVirtualNetwork": {"referenceName": "default", "type": "ManagedVirtualNetworkReference"}}}),
            ),
        ];
        let g = Graph::build(&vnet);
        assert_eq!(g.deps[0], [1]);
        assert!(
            g.external
                .iter()
                .all(|e| e.label != "integrationRuntime:AutoResolveIntegrationRuntime")
        );
    }
}
