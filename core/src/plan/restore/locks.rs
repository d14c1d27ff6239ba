//! Management locks already on the target: refused before any write.

use super::*;

/// A lock already on the target blocks the restore's writes (ReadOnly) or
/// deletes (CanNotDelete): refused before anything is written.
pub(super) fn target_locks(
    target: &TargetState,
    steps: &[Step],
    delete: &[Delete],
    options: &PlanOptions,
) -> Result<(), PlanError> {
    let writes = steps.iter().any(|s| s.kind != ResourceKind::Lock);
    let deletes = match &options.undo {
        Some(set) => format!(
            "the deletes undoing change set {set} needs ({})",
            delete
                .iter()
                .map(|d| d.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "the deletes --delete-extraneous asks for".to_string(),
    };
    let (rg, factory) = options
        .target_path
        .clone()
        .unwrap_or_else(|| ("RG".into(), "FACTORY".into()));
    for lock in target
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Lock)
    {
        let level = lock
            .definition
            .pointer("/properties/level")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let what = match level {
            "ReadOnly" if writes || !delete.is_empty() => "every write".to_string(),
            "CanNotDelete" if !delete.is_empty() => deletes.clone(),
            _ => continue,
        };
        let from = lock
            .definition
            .pointer("/properties/inheritedFrom")
            .and_then(Value::as_str);
        let remove = match from {
            Some(scope) => format!(
                "az lock delete --ids {scope}/providers/Microsoft.Authorization/locks/{}",
                lock.name
            ),
            None => format!(
                "az lock delete --name {} --resource-group {rg} --resource-type Microsoft.DataFactory/factories --resource {factory}",
                lock.name
            ),
        };
        return Err(PlanError::Locked {
            lock: match from {
                Some(scope) => format!("'{}' on {scope}", lock.name),
                None => format!("'{}'", lock.name),
            },
            level: level.to_string(),
            what: format!("{what}; remove it ({remove})"),
        });
    }
    Ok(())
}
