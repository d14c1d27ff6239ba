//! Trigger stops before the writes, and starts after them (dependencies
//! first; an event trigger subscribes first).

use super::*;

impl Applier<'_> {
    pub(super) async fn stop_triggers(&self, plan: &Plan) -> usize {
        self.act_on_each(
            &plan.stop_triggers,
            "triggers",
            ("stop", "stopped"),
            "trigger",
        )
        .await
    }

    pub(super) async fn start_triggers(&self, plan: &Plan) -> usize {
        use azure_core::http::Method;
        let types: HashMap<String, String> = plan
            .expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::Trigger)
            .map(|e| {
                let kind = e
                    .definition
                    .pointer("/properties/type")
                    .and_then(Value::as_str);
                (e.key.2.clone(), kind.unwrap_or_default().to_string())
            })
            .collect();
        let failed_now: Vec<String> = self
            .failures
            .lock()
            .expect("failures")
            .iter()
            .map(|f| f.what.to_lowercase())
            .collect();
        let mut started = 0;
        for name in &plan.start_triggers {
            if failed_now.contains(&format!("trigger:{}", name.to_lowercase())) {
                continue;
            }
            let kind = types
                .get(&name.to_lowercase())
                .map(String::as_str)
                .unwrap_or("");
            let trigger = format!("{}/triggers/{}", self.base, encode(name));
            if matches!(kind, "BlobEventsTrigger" | "CustomEventsTrigger")
                && let Err(e) = subscribe(self.arm, &self.throttle, &trigger).await
            {
                self.fail(format!("subscribe trigger:{name} to events"), e);
                continue;
            }
            let start = format!("{trigger}/start");
            match write(self.arm, &self.throttle, Method::Post, &start, None, true).await {
                Ok(_) => {
                    started += 1;
                    self.progress.wrote(&format!("started trigger:{name}"));
                }
                Err(e) => self.fail(format!("start trigger:{name}"), self.explain(&e)),
            }
        }
        started
    }
}

/// subscribeToEvents, then poll getEventSubscriptionStatus until Enabled.
pub(super) async fn subscribe(
    arm: &dyn FactoryApi,
    throttle: &Throttle,
    trigger: &str,
) -> Result<(), String> {
    use azure_core::http::Method;
    let subscribed = write(
        arm,
        throttle,
        Method::Post,
        &format!("{trigger}/subscribeToEvents"),
        None,
        true,
    )
    .await
    .map_err(|e| e.to_string())
    .map(|answer| answer.get("status").and_then(Value::as_str) == Some("Enabled"))?;
    // The service answers the new status at once (recorded); one that is
    // still Provisioning is polled.
    if subscribed {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut delay = Duration::from_millis(200);
    loop {
        let status = write(
            arm,
            throttle,
            Method::Post,
            &format!("{trigger}/getEventSubscriptionStatus"),
            None,
            true,
        )
        .await
        .map_err(|e| e.to_string())?;
        match status.get("status").and_then(Value::as_str) {
            Some("Enabled") => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "event subscription did not become Enabled within 5 minutes ({status}); check that the Microsoft.EventGrid resource provider is registered in the subscription of the trigger's storage account, then run the restore again"
                ));
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
