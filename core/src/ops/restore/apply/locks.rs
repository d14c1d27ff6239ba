//! Management locks put back on the restored factory.

use super::*;

impl Applier<'_> {
    /// Management locks, after everything else: a ReadOnly lock refuses
    /// every later write (trigger starts included), a CanNotDelete one every
    /// delete. Not when anything failed: a rerun must be able to write.
    pub(super) async fn locks(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let locks: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.kind == ResourceKind::Lock)
            .collect();
        if locks.is_empty() {
            return 0;
        }
        if !self.failures.lock().expect("failures").is_empty() {
            for step in locks {
                self.fail(
                    step.label.clone(),
                    "not put on: the restore had failures, and a lock would block the rerun that fixes them; run the restore again".into(),
                );
            }
            return 0;
        }
        let mut written = 0;
        for step in locks {
            let path = resource_path(&self.base, step.kind, None, &step.name);
            match write(
                self.arm,
                &self.throttle,
                Method::Put,
                &path,
                Some(&step.definition),
                false,
            )
            .await
            {
                Ok(_) => {
                    written += 1;
                    self.progress.wrote_news(&format!("locked: {}", step.label));
                }
                Err(e) => self.fail(step.label.clone(), self.explain(&e)),
            }
        }
        written
    }
}
