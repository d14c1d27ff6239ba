//! Integration runtimes and CDCs started as they exist, and managed
//! private endpoints waited for until provisioned.

use super::*;

impl Applier<'_> {
    /// Starts each runtime named on `ready` at once, all in parallel, and
    /// follows every start to its end.
    pub(super) async fn start_runtimes(
        &self,
        mut ready: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> Vec<RuntimeStarted> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let mut running = FuturesUnordered::new();
        let mut open = true;
        let mut started = Vec::new();
        loop {
            tokio::select! {
                next = ready.recv(), if open => match next {
                    Some(name) => running.push(self.start_runtime(name)),
                    None => open = false,
                },
                Some(done) = running.next(), if !running.is_empty() => {
                    started.extend(done);
                }
                else => break,
            }
        }
        started
    }

    pub(super) async fn start_runtime(&self, name: String) -> Option<RuntimeStarted> {
        use azure_core::http::Method;
        let label = format!("integrationRuntime:{name}");
        self.progress.note(&format!("starting {label}"));
        let path = format!("{}/integrationRuntimes/{}/start", self.base, encode(&name));
        let call = Call {
            method: Method::Post,
            path: &path,
            body: None,
            retry_provisioning: true,
            limit: RUNTIME_LIMIT,
        };
        match write_call(self.arm, &self.throttle, call).await {
            Ok(status) => {
                let state = status
                    .pointer("/properties/state")
                    .and_then(Value::as_str)
                    .unwrap_or("Started")
                    .to_string();
                let ready_ms = crate::ops::millis(self.began.elapsed());
                self.progress.note(&format!("started {label} ({state})"));
                Some(RuntimeStarted {
                    name,
                    state,
                    ready_ms,
                })
            }
            Err(e) => {
                self.fail(format!("start {label}"), self.explain(&e));
                None
            }
        }
    }

    /// Waits (bounded) for each managed private endpoint of the restore to
    /// finish provisioning, and reads its approval.
    pub(super) async fn endpoints(&self, plan: &Plan) -> Vec<EndpointState> {
        let failed: Vec<String> = self
            .failures
            .lock()
            .expect("failures")
            .iter()
            .map(|f| f.what.clone())
            .collect();
        let waits = plan
            .expected
            .iter()
            .filter(|e| e.key.0 == ResourceKind::ManagedPrivateEndpoint)
            .filter(|e| !failed.contains(&e.label))
            .map(|e| self.endpoint(e));
        futures::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    pub(super) async fn endpoint(
        &self,
        e: &crate::plan::restore::Expected,
    ) -> Option<EndpointState> {
        use azure_core::http::Method;
        let path = resource_path(
            &self.base,
            ResourceKind::ManagedPrivateEndpoint,
            e.parent.as_deref(),
            &e.name,
        );
        let deadline = Instant::now() + ENDPOINT_LIMIT;
        let mut polls = 0;
        loop {
            let call = Call {
                method: Method::Get,
                path: &path,
                body: None,
                retry_provisioning: false,
                limit: OPERATION_LIMIT,
            };
            let body = match write_call(self.arm, &self.throttle, call).await {
                Ok(body) => body,
                Err(err) => {
                    self.fail(format!("read {}", e.label), self.explain(&err));
                    return None;
                }
            };
            let state = endpoint_state(&e.label, &body);
            let settled = matches!(
                state.provisioning.as_str(),
                "Succeeded" | "Failed" | "Canceled"
            );
            if settled || Instant::now() >= deadline {
                match state.blocker() {
                    None => self
                        .progress
                        .note(&format!("{} provisioned and approved", e.label)),
                    Some(why) => self.progress.note(&why),
                }
                return Some(state);
            }
            polls += 1;
            tokio::time::sleep(lro::next_wait(None, polls)).await;
        }
    }

    pub(super) async fn start_cdcs(&self, plan: &Plan) -> usize {
        self.act_on_each(
            &plan.start_cdcs,
            "adfcdcs",
            ("start", "started"),
            "changeDataCapture",
        )
        .await
    }
}

/// A managed private endpoint as the service answers it.
pub(super) fn endpoint_state(label: &str, body: &Value) -> EndpointState {
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
    EndpointState {
        endpoint: label.to_string(),
        provisioning: text("/properties/provisioningState").unwrap_or_else(|| "Unknown".into()),
        approval: text("/properties/connectionState/status").unwrap_or_else(|| "Unknown".into()),
        resource: text("/properties/privateLinkResourceId"),
        group: text("/properties/groupId"),
    }
}
