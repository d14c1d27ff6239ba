//! References between resources: any object with a `referenceName` and a
//! `type` ending in `Reference`, wherever it sits in a definition (activities,
//! data flow sources, trigger dependencies, SSIS entity references, Key Vault
//! secret stores...). Walking generically, rather than per known property,
//! keeps up with properties the spec does not list.

use serde_json::Value;

use super::kind::ResourceKind;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The `type` as written (`LinkedServiceReference`, ...).
    pub reference_type: String,
    /// The kind it names, when adfdr knows the type.
    pub kind: Option<ResourceKind>,
    /// The referenced name; for a dynamic reference, the expression text.
    pub name: String,
    /// The name is an expression, resolved only at run time: no static dependency.
    pub dynamic: bool,
    /// JSON Pointer of the reference object inside the definition.
    pub pointer: String,
}

impl Reference {
    /// A static reference to a resource of a known kind: a restore dependency.
    /// `AutoResolveIntegrationRuntime` exists implicitly outside managed VNets.
    pub fn dependency(&self) -> Option<(ResourceKind, &str)> {
        let kind = self.kind?;
        let implicit = kind == ResourceKind::IntegrationRuntime
            && self
                .name
                .eq_ignore_ascii_case("AutoResolveIntegrationRuntime");
        (!self.dynamic && !implicit).then_some((kind, self.name.as_str()))
    }
}

/// Every reference inside `definition`, in document order.
pub fn references(definition: &Value) -> Vec<Reference> {
    let mut found = Vec::new();
    walk(definition, &mut String::new(), &mut found);
    found
}

fn walk(value: &Value, pointer: &mut String, found: &mut Vec<Reference>) {
    match value {
        Value::Object(map) => {
            if let (Some(name), Some(Value::String(ty))) =
                (map.get("referenceName"), map.get("type"))
                && ty.ends_with("Reference")
            {
                let (name, dynamic) = match name {
                    Value::String(s) => (s.clone(), s.starts_with('@')),
                    // {"value": "@...", "type": "Expression"}
                    other => (
                        other
                            .get("value")
                            .and_then(Value::as_str)
                            .map_or_else(|| other.to_string(), str::to_string),
                        true,
                    ),
                };
                found.push(Reference {
                    reference_type: ty.clone(),
                    kind: ResourceKind::from_reference_type(ty),
                    name,
                    dynamic,
                    pointer: pointer.clone(),
                });
            }
            for (key, child) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(child, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(child, pointer, found);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references_anywhere_with_their_pointers() {
        let pipeline = json!({"properties": {"activities": [
            {"name": "child", "type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "PL_Child", "type": "PipelineReference"}}},
            {"name": "flow", "type": "ExecuteDataFlow", "typeProperties": {
                "dataflow": {"referenceName": "DF_1", "type": "DataFlowReference"},
                "integrationRuntime": {"referenceName": "AutoResolveIntegrationRuntime", "type": "IntegrationRuntimeReference"}}},
            {"name": "copy", "type": "Copy", "inputs": [{"referenceName": {"value": "@pipeline().parameters.ds", "type": "Expression"}, "type": "DatasetReference"}]}
        ]}});
        let refs = references(&pipeline);
        assert_eq!(refs.len(), 4);
        assert_eq!(
            refs[0].pointer,
            "/properties/activities/0/typeProperties/pipeline"
        );
        assert_eq!(
            refs[0].dependency(),
            Some((ResourceKind::Pipeline, "PL_Child"))
        );
        assert_eq!(refs[1].dependency(), Some((ResourceKind::DataFlow, "DF_1")));
        assert_eq!(refs[2].dependency(), None, "AutoResolve is implicit");
        assert!(refs[3].dynamic);
        assert_eq!(refs[3].name, "@pipeline().parameters.ds");
        assert_eq!(refs[3].dependency(), None);
    }

    #[test]
    fn tumbling_window_dependencies_and_unknown_reference_types() {
        let trigger = json!({"properties": {"typeProperties": {"dependsOn": [
            {"type": "TumblingWindowTriggerDependencyReference", "referenceTrigger": {"referenceName": "TR_Up", "type": "TriggerReference"}, "offset": "00:00:00"},
            {"type": "SelfDependencyTumblingWindowTriggerReference", "offset": "-01:00:00"}]},
            "future": {"referenceName": "X", "type": "SomethingNewReference"}}});
        let refs = references(&trigger);
        let deps: Vec<_> = refs.iter().filter_map(Reference::dependency).collect();
        assert_eq!(deps, [(ResourceKind::Trigger, "TR_Up")]);
        assert!(
            refs.iter()
                .any(|r| r.reference_type == "SomethingNewReference" && r.kind.is_none()),
            "unknown reference types are still reported"
        );
    }

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        let v = json!({"a/b": {"c~d": {"referenceName": "n", "type": "LinkedServiceReference"}}});
        assert_eq!(references(&v)[0].pointer, "/a~1b/c~0d");
        assert!(v.pointer(&references(&v)[0].pointer).is_some());
    }
}
