//! Azure Resource Manager's events, as Event Grid delivers them from a
//! subscription's system topic: one per write the emulator accepts on
//! Microsoft.DataFactory (ResourceWriteSuccess, ResourceDeleteSuccess, and
//! ResourceActionSuccess for actions such as a trigger's start), in the
//! Event Grid schema of Microsoft's samples
//! (event-schema-resource-groups.Resource*Success.json): the resource, the
//! operation, the caller's claims and a correlation id, no body. Kept in
//! the world for `GET /_emulator/events`, and with `--events-queue`
//! delivered to a Storage Queue as an Event Grid subscription would: one
//! message per event, its text the event's JSON, authenticated with a token
//! from the emulator's own Entra endpoint, retried until the queue takes it.

use serde_json::{Value, json};

use crate::auth::Caller;

/// The most events kept (oldest dropped first).
pub const KEPT: usize = 10_000;

/// `Microsoft.DataFactory/factories/pipelines/write` for a PUT of
/// `…/providers/Microsoft.DataFactory/factories/F/pipelines/P`;
/// `…/triggers/start/action` for a POST of `…/triggers/T/start`. With the
/// event type, and the resource it is on (`…/triggers/T` for that POST).
pub fn operation(method: &str, path: &str) -> Option<(String, &'static str, String)> {
    let path = path.trim_end_matches('/');
    let i = path.find("/providers/")?;
    let parts: Vec<&str> = path[i + "/providers/".len()..].split('/').collect();
    let (namespace, rest) = parts.split_first()?;
    if !namespace.eq_ignore_ascii_case("Microsoft.DataFactory") || rest.iter().any(|p| p.is_empty())
    {
        return None;
    }
    // Resource types are the even positions (factories, pipelines, …);
    // a trailing odd one out is an action (start, stop).
    let mut types: Vec<&str> = rest.iter().step_by(2).copied().collect();
    let action = (rest.len() % 2 == 1).then(|| types.pop()).flatten();
    let base = format!("{namespace}/{}", types.join("/"));
    let resource = match action {
        Some(_) => path.rsplit_once('/').map_or(path, |(r, _)| r),
        None => path,
    }
    .to_string();
    let (name, event_type) = match (method, action) {
        ("POST", Some(a)) => (
            format!("{base}/{a}/action"),
            "Microsoft.Resources.ResourceActionSuccess",
        ),
        ("POST", None) => (
            format!("{base}/action"),
            "Microsoft.Resources.ResourceActionSuccess",
        ),
        ("DELETE", _) => (
            format!("{base}/delete"),
            "Microsoft.Resources.ResourceDeleteSuccess",
        ),
        _ => (
            format!("{base}/write"),
            "Microsoft.Resources.ResourceWriteSuccess",
        ),
    };
    Some((name, event_type, resource))
}

/// The event for an accepted `method` on `path` by `caller`.
/// `request` is the request's (client request id, URL); deletes and
/// actions carry it as `httpRequest`, as the samples show.
pub fn event(
    method: &str,
    path: &str,
    caller: &Caller,
    tenant: &str,
    correlation: &str,
    time: &str,
    request: (&str, &str),
) -> Option<Value> {
    let (action, event_type, resource) = operation(method, path)?;
    let resource = resource.as_str();
    let subscription = resource.split('/').nth(2).unwrap_or_default();
    let group = resource.split('/').nth(4).unwrap_or_default();
    let mut out = json!({
        "subject": resource,
        "eventType": event_type,
        "eventTime": time,
        "id": uuid::Uuid::new_v4().to_string(),
        "data": {
            "authorization": {"scope": resource, "action": action, "evidence": {"role": "Data Factory Contributor"}},
            "claims": {
                "aud": caller.audience,
                "appid": caller.app_id,
                "http://schemas.microsoft.com/identity/claims/objectidentifier": caller.object_id,
                "http://schemas.microsoft.com/identity/claims/tenantid": tenant,
                "ver": "1.0"
            },
            "correlationId": correlation,
            "resourceProvider": "Microsoft.DataFactory",
            "resourceUri": resource,
            "operationName": action,
            "status": "Succeeded",
            "subscriptionId": subscription,
            "tenantId": tenant
        },
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": format!("/subscriptions/{subscription}/resourceGroups/{group}")
    });
    if !event_type.ends_with("WriteSuccess") {
        out["data"]["httpRequest"] = json!({
            "clientRequestId": request.0, "clientIpAddress": "127.0.0.1", "method": method, "url": request.1
        });
    }
    Some(out)
}

/// A Storage Queue message for `event` (Put Message's body): the event's
/// JSON as the message text, as Event Grid writes it.
pub fn queue_message(event: &Value) -> String {
    let text = event
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>")
}

/// Delivers each event to `queue` (…/ACCOUNT/QUEUE), retrying a refusal
/// or an outage with backoff; an event is never dropped for the queue being
/// down. With `at_least_once`, as Event Grid does (it promises neither
/// order nor a single delivery), every fourth event is delivered twice and
/// every seventh is held back until the next one has gone (or half a
/// second has passed): a reader must cope with both.
pub(crate) async fn deliver(
    shared: std::sync::Arc<crate::Shared>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    queue: url::Url,
    ca: Option<std::path::PathBuf>,
    at_least_once: bool,
) {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
    if let Some(pem) = ca.and_then(|p| std::fs::read(p).ok())
        && let Ok(cert) = reqwest::Certificate::from_pem(&pem)
    {
        builder = builder.add_root_certificate(cert);
    }
    let Ok(client) = builder.build() else {
        tracing::error!("events: no HTTP client; events are kept, not delivered");
        return;
    };
    let url = format!("{}/messages", queue.as_str().trim_end_matches('/'));
    let mut n = 0u64;
    let mut held: Option<Value> = None;
    loop {
        let next = match &held {
            Some(_) => {
                match tokio::time::timeout(std::time::Duration::from_millis(500), events.recv())
                    .await
                {
                    Ok(e) => e,
                    Err(_) => {
                        if let Some(h) = held.take() {
                            put(&shared, &client, &url, &h).await;
                        }
                        continue;
                    }
                }
            }
            None => events.recv().await,
        };
        let Some(event) = next else {
            if let Some(h) = held.take() {
                put(&shared, &client, &url, &h).await;
            }
            return;
        };
        n += 1;
        if at_least_once && n.is_multiple_of(7) && held.is_none() {
            held = Some(event);
            continue;
        }
        put(&shared, &client, &url, &event).await;
        if at_least_once && n.is_multiple_of(4) {
            put(&shared, &client, &url, &event).await;
        }
        if let Some(h) = held.take() {
            put(&shared, &client, &url, &h).await;
        }
    }
}

/// Whether Event Grid gives an event up after this answer from an Azure
/// resource destination (a Storage Queue) instead of retrying it: 400, 403
/// and 413 are not retried and, without a dead-letter destination, the
/// event is dropped (Microsoft Learn, "Event Grid message delivery and
/// retry", the table of endpoint types and error codes). Anything else
/// (a queue not there yet, 5xx, no answer) is retried.
pub fn gives_up(status: u16) -> bool {
    matches!(status, 400 | 403 | 413)
}

/// Puts one event on the queue, retrying until it is taken, or dropping it
/// where Event Grid would.
async fn put(shared: &crate::Shared, client: &reqwest::Client, url: &str, event: &Value) {
    let body = queue_message(event);
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        let (token, _) = shared.signer.mint(
            "https://storage.azure.com/",
            "adf-emulator-eventgrid",
            "eventgrid",
            3600,
        );
        let sent = client
            .post(url)
            .bearer_auth(token)
            .header("x-ms-version", "2021-08-06")
            .header("content-type", "application/xml")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if gives_up(r.status().as_u16()) => {
                tracing::warn!(status = %r.status(), "events: the queue refused an event; dropped, as Event Grid drops it without a dead-letter destination");
                return;
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "events: the queue refused an event; retrying")
            }
            Err(e) => tracing::warn!(error = %e, "events: the queue is unreachable; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event Grid's table for Azure resource destinations (Microsoft Learn,
    /// "Event Grid message delivery and retry"): 400, 403 and 413 are not
    /// retried; a missing queue (404), throttling and server errors are.
    #[test]
    fn the_emulator_gives_an_event_up_where_event_grid_does() {
        for s in [400, 403, 413] {
            assert!(gives_up(s), "{s}");
        }
        for s in [404, 408, 429, 500, 503] {
            assert!(!gives_up(s), "{s}");
        }
    }

    #[test]
    fn writes_deletes_and_actions_are_named_as_arm_names_them() {
        let f = "/subscriptions/s/resourceGroups/r/providers/Microsoft.DataFactory/factories/f";
        assert_eq!(
            operation("PUT", &format!("{f}/pipelines/p")).map(|o| (o.0, o.1)),
            Some((
                "Microsoft.DataFactory/factories/pipelines/write".into(),
                "Microsoft.Resources.ResourceWriteSuccess"
            ))
        );
        assert_eq!(
            operation("DELETE", &format!("{f}/datasets/d")).map(|o| (o.0, o.1)),
            Some((
                "Microsoft.DataFactory/factories/datasets/delete".into(),
                "Microsoft.Resources.ResourceDeleteSuccess"
            ))
        );
        assert_eq!(
            operation("POST", &format!("{f}/triggers/t/start")).map(|o| (o.0, o.1)),
            Some((
                "Microsoft.DataFactory/factories/triggers/start/action".into(),
                "Microsoft.Resources.ResourceActionSuccess"
            ))
        );
        assert_eq!(
            operation("PUT", f).map(|o| o.0),
            Some("Microsoft.DataFactory/factories/write".into())
        );
        assert_eq!(
            operation(
                "PUT",
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a"
            ),
            None
        );
        let caller = Caller {
            object_id: "oid".into(),
            app_id: "app".into(),
            audience: "https://management.azure.com/".into(),
        };
        let e = event(
            "POST",
            &format!("{f}/triggers/t/start"),
            &caller,
            "tid",
            "corr",
            "2026-12-01T00:00:00Z",
            ("rid", "https://arm/x"),
        )
        .expect("event");
        assert_eq!(e["data"]["httpRequest"]["method"], "POST");
        assert_eq!(e["subject"], format!("{f}/triggers/t"));
        assert_eq!(e["data"]["claims"]["appid"], "app");
        assert_eq!(e["topic"], "/subscriptions/s/resourceGroups/r");
    }
}
