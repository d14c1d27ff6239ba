//! Maps HTTP requests onto the emulated services: ARM (Data Factory), Entra
//! token endpoints, the App Service managed identity endpoint, Key Vault keys and
//! the emulator's own admin API under `/_emulator/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::Shared;
use crate::auth::{self, ARM_AUDIENCES, Access, Caller, VAULT_AUDIENCES};
use crate::control::{Mutation, Op, ScriptedFault, SettingsPatch};
use crate::error::{ApiError, ApiResult};
use crate::kinds::Kind;
use crate::state::factory_key;

pub const API_VERSION: &str = "2018-06-01";
/// Bigger bodies are refused before parsing (ADF's own per-object limits are far lower).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Returned instead of a response to make hyper close the connection unanswered.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

pub type HttpResponse = Response<Full<Bytes>>;

/// One parsed request.
struct Call {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> ApiResult<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                400,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }
}

enum Reply {
    Json(u16, Value),
    Empty(u16),
    Headers(u16, Value, Vec<(String, String)>),
}

fn respond(reply: Result<Reply, ApiError>, extra: &[(String, String)]) -> HttpResponse {
    let (status, body, mut headers) = match reply {
        Ok(Reply::Json(s, v)) => (s, Some(v), Vec::new()),
        Ok(Reply::Empty(s)) => (s, None, Vec::new()),
        Ok(Reply::Headers(s, v, h)) => (s, (!v.is_null()).then_some(v), h),
        Err(e) => (e.status, Some(e.body()), e.headers.clone()),
    };
    headers.extend_from_slice(extra);
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let request_id = uuid::Uuid::new_v4().to_string();
    builder = builder
        .header("x-ms-request-id", &request_id)
        .header("x-ms-correlation-request-id", &request_id)
        .header("X-Content-Type-Options", "nosniff")
        .header("Cache-Control", "no-cache");
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("Content-Type", "application/json; charset=utf-8");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Entry point for every connection's requests.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<HttpResponse, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(respond(
                Err(ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    format!("The request body is larger than {MAX_BODY} bytes."),
                )),
                &[],
            ));
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let call = Call {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
    };
    let response = route(&shared, &call).await;
    if let Ok(resp) = &response {
        let mut control = shared.control.lock().unwrap_or_else(|e| e.into_inner());
        control.counters.requests += 1;
        *control
            .counters
            .by_status
            .entry(resp.status().as_u16())
            .or_default() += 1;
    }
    if call.method != "GET" && response.as_ref().is_ok_and(|r| r.status().is_success()) {
        shared.mark_dirty();
    }
    response
}

async fn route(shared: &Arc<Shared>, call: &Call) -> Result<HttpResponse, DropConnection> {
    // Names travel percent-encoded (`Currency%20Converter`); rules apply to the decoded name.
    let decoded: Vec<String> = call
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if segments.first() == Some(&"_emulator") {
        return Ok(respond(admin(shared, call, &segments[1..]), &[]));
    }
    if segments.len() == 2 && segments[0] == "msi" && segments[1] == "token" {
        return Ok(respond(managed_identity_token(shared, call), &[]));
    }
    if let Some(reply) = entra(shared, call, &segments) {
        return Ok(respond(reply, &[]));
    }
    // The service answers `latency` ms after the request arrives, whatever our
    // own work costs: processing overlaps the wait instead of adding to it.
    let latency = shared.settings().latency_ms;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(latency);
    let out = service(shared, call, &segments).await;
    tokio::time::sleep_until(deadline).await;
    out
}

/// ARM and Key Vault, after the admin, identity and Entra endpoints.
async fn service(
    shared: &Arc<Shared>,
    call: &Call,
    segments: &[&str],
) -> Result<HttpResponse, DropConnection> {
    if let Some(resp) = random_fault(shared) {
        return resp;
    }
    let is_vault = segments
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("keys"));
    let audiences: &[&str] = if is_vault {
        &VAULT_AUDIENCES
    } else {
        &ARM_AUDIENCES
    };
    let caller = match shared
        .signer
        .verify(call.header("authorization"), audiences)
    {
        Ok(c) => c,
        Err(e) if is_vault => {
            // Key Vault's challenge: the client learns the scope from it and retries with a token.
            let challenge = format!(
                "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
                shared.urls.authority, shared.signer.tenant_id
            );
            let e = ApiError::new(401, "Unauthorized", format!("AKV10000: Request is missing a Bearer or PoP token. ({})", e.message))
                .with_body(json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}));
            return Ok(respond(Err(e), &[("WWW-Authenticate".into(), challenge)]));
        }
        Err(e) => return Ok(respond(Err(e), &[])),
    };
    if !is_vault && let Some(outage) = region_gate(shared, call) {
        // An outage asks to be retried later; a read-only vault does not.
        let retry = outage.status == 503;
        let headers = if retry {
            vec![("Retry-After".into(), "30".into())]
        } else {
            Vec::new()
        };
        return Ok(respond(Err(outage), &headers));
    }
    let op = Op::of_method(&call.method);
    let mut extra = Vec::new();
    if !is_vault {
        match throttle(shared, &caller, op, &call.path) {
            Ok(Some(remaining)) => extra.push((
                format!("x-ms-ratelimit-remaining-subscription-{}", op.as_str()),
                remaining.to_string(),
            )),
            Ok(None) => {}
            Err(e) => return Ok(respond(Err(e), &[])),
        }
    }
    if let Some(fault) = shared.control().take_fault(&call.method, &call.path) {
        return scripted_fault(fault);
    }
    let reply = if is_vault {
        vault(shared, call, &caller, &segments[1..])
    } else {
        arm(shared, call, &caller, segments)
    };
    if !is_vault && call.method != "GET" {
        publish(shared, call, &caller, &reply);
    }
    Ok(respond(reply, &extra))
}

/// Counts an ARM request by the region of what it addresses, and refuses
/// it as the service does in an outage when that region is down.
fn region_gate(shared: &Shared, call: &Call) -> Option<ApiError> {
    let regions = shared.control().regions.clone();
    let known = crate::regions::region_of(&shared.world(), &regions, &call.path);
    // A resource being created is where its body says.
    let region = known.or_else(|| {
        (call.method == "PUT")
            .then(|| serde_json::from_slice::<Value>(&call.body).ok())
            .flatten()
            .and_then(|b| {
                b.get("location")
                    .and_then(Value::as_str)
                    .map(crate::regions::normalize)
            })
    })?;
    *shared
        .control()
        .counters
        .by_region
        .entry(region.clone())
        .or_default() += 1;
    if !regions.is_down(&region) {
        return None;
    }
    // A vault in a lost region is failed over to its pair, read-only: reads
    // work, writes (its access policies among them) do not.
    if crate::regions::is_vault(&call.path) {
        return (call.method != "GET").then(|| {
            ApiError::new(
                409,
                "VaultReadOnly",
                format!(
                    "The vault is failed over from region '{region}' to its pair and is read-only: its properties and access policies cannot change until the region is back (adf-emulator)."
                ),
            )
        });
    }
    Some(ApiError::new(
        503,
        "ServiceUnavailable",
        format!(
            "The service is unavailable in region '{region}' (adf-emulator: the region is down). Retry the request later."
        ),
    ))
}

/// ARM's event for a write it accepted (2xx) on Microsoft.DataFactory.
fn publish(shared: &Shared, call: &Call, caller: &Caller, reply: &Result<Reply, ApiError>) {
    let status = match reply {
        Ok(Reply::Json(s, _) | Reply::Empty(s) | Reply::Headers(s, _, _)) => *s,
        Err(_) => return,
    };
    if !(200..300).contains(&status) {
        return;
    }
    let correlation = call
        .header("x-ms-correlation-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let time = crate::state::now_rfc3339();
    let request_id = call
        .header("x-ms-client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut url = format!("{}{}", shared.urls.arm, call.path);
    if let Some(v) = call.query.get("api-version") {
        url.push_str(&format!("?api-version={v}"));
    }
    if let Some(e) = crate::events::event(
        &call.method,
        &call.path,
        caller,
        &shared.signer.tenant_id,
        &correlation,
        &time,
        (&request_id, &url),
    ) {
        if let Some(tx) = &shared.events {
            let _ = tx.send(e.clone());
        }
        let mut world = shared.world();
        world.events.push_back(e);
        while world.events.len() > crate::events::KEPT {
            world.events.pop_front();
        }
    }
}

fn random_fault(shared: &Shared) -> Option<Result<HttpResponse, DropConnection>> {
    let rate = shared.settings().fault_rate;
    if rate <= 0.0 || rand::random::<f64>() >= rate {
        return None;
    }
    shared.control().counters.injected_faults += 1;
    Some(match rand::random_range(0..3u8) {
        0 => Ok(respond(
            Err(ApiError::new(
                500,
                "InternalServerError",
                "An internal server error occurred (adf-emulator fault injection).",
            )),
            &[],
        )),
        1 => Ok(respond(
            Err(ApiError::new(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable (adf-emulator fault injection).",
            )
            .with_header("Retry-After", "1")),
            &[],
        )),
        _ => Err(DropConnection),
    })
}

fn scripted_fault(fault: ScriptedFault) -> Result<HttpResponse, DropConnection> {
    if fault.drop {
        return Err(DropConnection);
    }
    let status = fault.status.unwrap_or(500);
    let code = fault.code.unwrap_or_else(|| match status {
        429 => "TooManyRequests".into(),
        503 => "ServiceUnavailable".into(),
        400 => "BadRequest".into(),
        _ => "InternalServerError".into(),
    });
    let message = fault
        .message
        .unwrap_or_else(|| format!("Injected failure {status} (adf-emulator fault script)."));
    let mut e = ApiError::new(status, &code, message);
    if let Some(secs) = fault.retry_after {
        e = e.with_header("Retry-After", secs.to_string());
    }
    Ok(respond(Err(e), &[]))
}

/// ARM's budget: per principal and per subscription (tenant-level calls
/// such as Resource Graph count apart).
fn throttle(shared: &Shared, caller: &Caller, op: Op, path: &str) -> ApiResult<Option<u64>> {
    let subscription = path
        .split("/subscriptions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("tenant")
        .to_ascii_lowercase();
    let actor = format!("{}|{subscription}", caller.object_id);
    let mut control = shared.control();
    *control
        .counters
        .by_op
        .entry(op.as_str().into())
        .or_default() += 1;
    let Some(rates) = control.settings.throttle else {
        return Ok(None);
    };
    match control.buckets.take(&actor, op, &rates, Instant::now()) {
        Ok(remaining) => Ok(Some(remaining)),
        Err(wait) => {
            control.counters.throttled += 1;
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            Err(ApiError::new(429, "SubscriptionRequestsThrottled", format!(
                "Number of '{}' requests for subscription actor '{}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                op.as_str().trim_end_matches('s'), caller.object_id
            ))
            .with_header("Retry-After", secs.to_string())
            .with_header(&format!("x-ms-ratelimit-remaining-subscription-{}", op.as_str()), "0"))
        }
    }
}

// ----- Entra ------------------------------------------------------------------------------

fn entra(shared: &Shared, call: &Call, segments: &[&str]) -> Option<Result<Reply, ApiError>> {
    match segments {
        [tenant, "oauth2", "v2.0", "token"] if call.method == "POST" => {
            Some(client_token(shared, call, tenant))
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            let base = format!("{}/{tenant}", shared.urls.authority);
            Some(Ok(Reply::Json(
                200,
                json!({
                    "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                    "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                    "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
                    "issuer": format!("{base}/v2.0"),
                    "jwks_uri": format!("{base}/discovery/v2.0/keys"),
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "tenant_region_scope": null,
                    "cloud_instance_name": "microsoftonline.com",
                }),
            )))
        }
        ["common", "discovery", "instance"] => Some(Ok(Reply::Json(
            200,
            json!({
                "tenant_discovery_endpoint": format!("{}/{}/v2.0/.well-known/openid-configuration", shared.urls.authority, shared.signer.tenant_id),
                "api-version": "1.1",
                "metadata": [],
            }),
        ))),
        _ => None,
    }
}

fn client_token(shared: &Shared, call: &Call, tenant: &str) -> Result<Reply, ApiError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Err(auth::oauth_error(
            400,
            "unsupported_grant_type",
            format!(
                "AADSTS70003: The app requested an unsupported grant type '{}'.",
                field("grant_type")
            ),
        ));
    }
    let client_id = field("client_id");
    let scope = field("scope")
        .split_whitespace()
        .find(|s| s.ends_with("/.default"))
        .unwrap_or_default();
    if scope.is_empty() {
        return Err(auth::oauth_error(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).".into()));
    }
    let world = shared.world();
    let object_id = if world.apps.is_empty() {
        auth::derived_guid(client_id)
    } else {
        let app = world.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(client_id)).ok_or_else(|| {
            auth::oauth_error(400, "unauthorized_client", format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant."))
        })?;
        match (form.get("client_secret"), form.get("client_assertion")) {
            (Some(secret), _) if app.secret.as_deref() == Some(secret.as_str()) => {}
            (Some(_), _) => return Err(auth::oauth_error(401, "invalid_client", format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."))),
            (None, Some(assertion)) if assertion.split('.').count() == 3 => {}
            _ => return Err(auth::oauth_error(401, "invalid_client", "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".into())),
        }
        app.object_id.clone()
    };
    drop(world);
    let lifetime = shared.settings().token_lifetime_secs;
    let audience = scope.trim_end_matches(".default");
    let (token, _) = shared
        .signer
        .mint(audience, &object_id, client_id, lifetime);
    shared.control().counters.tokens_issued += 1;
    Ok(Reply::Json(
        200,
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
    ))
}

fn managed_identity_token(shared: &Shared, call: &Call) -> Result<Reply, ApiError> {
    if call.header("x-identity-header") != Some(shared.identity_header.as_str()) {
        return Err(ApiError::new(
            401,
            "Unauthorized",
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
        ));
    }
    let resource = call.query.get("resource").cloned().unwrap_or_default();
    if resource.is_empty() {
        return Err(ApiError::bad_request(
            "The 'resource' query parameter is required.",
        ));
    }
    let client_id = call
        .query
        .get("client_id")
        .cloned()
        .unwrap_or_else(|| "system-assigned".into());
    let object_id = auth::derived_guid(&format!("mi:{client_id}"));
    let lifetime = shared.settings().token_lifetime_secs;
    let (token, exp) = shared
        .signer
        .mint(&resource, &object_id, &client_id, lifetime);
    shared.control().counters.tokens_issued += 1;
    Ok(Reply::Json(
        200,
        json!({
            "access_token": token, "expires_on": exp.to_string(), "resource": resource,
            "token_type": "Bearer", "client_id": client_id,
        }),
    ))
}

// ----- Key Vault ----------------------------------------------------------------------------

fn vault(shared: &Shared, call: &Call, caller: &Caller, rest: &[&str]) -> Result<Reply, ApiError> {
    let assignments = shared.world().role_assignments.clone();
    let (name, version, op) = match rest {
        [name, "create"] if call.method == "POST" => (*name, None, "create"),
        [name] if call.method == "GET" => (*name, None, "get"),
        [name, op @ ("wrapkey" | "unwrapkey")] if call.method == "POST" => (*name, None, *op),
        [name, version] if call.method == "GET" => (*name, Some(*version), "get"),
        [name, version, op @ ("wrapkey" | "unwrapkey")] if call.method == "POST" => {
            (*name, Some(*version), *op)
        }
        _ => {
            return Err(ApiError::new(
                400,
                "BadParameter",
                format!(
                    "{} {} is not a Key Vault key operation this emulator serves.",
                    call.method, call.path
                ),
            ));
        }
    };
    let (access, action) = match op {
        "create" => (
            Access::KeyManage,
            "Microsoft.KeyVault/vaults/keys/create/action",
        ),
        "get" => (Access::Read, "Microsoft.KeyVault/vaults/keys/read"),
        "wrapkey" => (Access::KeyUse, "Microsoft.KeyVault/vaults/keys/wrap/action"),
        _ => (
            Access::KeyUse,
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
        ),
    };
    let resource = format!("/keyvault/keys/{name}");
    if !auth::authorize(&assignments, caller, access, &resource) {
        return Err(auth::vault_forbidden(
            caller,
            action,
            &format!("{}/keys/{name}", shared.urls.vault),
        ));
    }
    let body = call.json()?;
    let mut world = shared.world();
    let url = shared.urls.vault.clone();
    let out = match op {
        "create" => world.vault.create(&url, name, &body)?,
        "get" => world.vault.get(&url, name, version)?,
        op => world
            .vault
            .wrap(&url, name, version, &body, op == "wrapkey")?,
    };
    Ok(Reply::Json(200, out))
}

// ----- ARM --------------------------------------------------------------------------------

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The providers other than Data Factory (Authorization, Insights, Storage,
/// Key Vault), with locks checked before any but role assignments and
/// definitions; None for a Data Factory path.
fn other_provider(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
) -> Option<Result<Reply, ApiError>> {
    if let Some(answer) = resource_graph(shared, call, caller, s) {
        return Some(answer);
    }
    if let Some(i) = (0..s.len().saturating_sub(2))
        .find(|&i| eq(s[i], "providers") && eq(s[i + 1], "Microsoft.Authorization"))
    {
        match s[i + 2] {
            t if eq(t, "roleAssignments") => {
                return Some(role_assignments(shared, call, caller, s, i));
            }
            t if eq(t, "roleDefinitions") => {
                return Some(role_definitions(shared, call, caller, s, i));
            }
            _ => {}
        }
    }
    if let [sb, sub, p, ns, e, m, v] = s
        && eq(sb, "subscriptions")
        && eq(p, "providers")
        && eq(ns, "Microsoft.Insights")
        && eq(e, "eventtypes")
        && eq(m, "management")
        && eq(v, "values")
        && call.method == "GET"
    {
        return Some(activity_log(shared, call, caller, sub));
    }
    if let [.., p, ns, c] = s
        && eq(p, "providers")
        && eq(ns, "Microsoft.Insights")
        && eq(c, "diagnosticSettingsCategories")
        && call.method == "GET"
    {
        let scope = format!("/{}", s[..s.len() - 3].join("/"));
        return Some(
            api_version(call, &["2021-05-01-preview"])
                .map(|()| Reply::Json(200, crate::extension::categories(&scope))),
        );
    }
    // Locks hold for everything below their scope, extension resources
    // (diagnostic settings, alerts) included; a lock's own path is exempt.
    if let Some(e) = crate::extension::locked(&shared.world().extensions, &call.method, &call.path)
    {
        return Some(Err(e));
    }
    if let Some(i) = (2..s.len().saturating_sub(2)).find(|&i| {
        eq(s[i], "providers") && crate::extension::Extension::of(s[i + 1], s[i + 2]).is_some()
    }) {
        return Some(extension(shared, call, caller, s, i));
    }
    if s.len() >= 8 && eq(s[4], "providers") && eq(s[5], "Microsoft.Storage") {
        return Some(storage(shared, call, caller, s));
    }
    if let Some(i) = (2..s.len().saturating_sub(1))
        .step_by(2)
        .find(|&i| eq(s[i], "providers") && eq(s[i + 1], "Microsoft.KeyVault"))
    {
        return Some(key_vaults(shared, call, caller, s, i));
    }
    None
}

/// The subscription's Activity Log (Microsoft.Insights eventtypes/management
/// values, api-version 2015-04-01), from the writes the emulator accepted:
/// each event with its caller, claims, correlation id, operation and
/// status. The service takes only a few `$filter` shapes, every one with an
/// `eventTimestamp ge` bound (Learn, "Activity Logs - List"): this one reads
/// `eventTimestamp ge/le` and one of `correlationId eq`, `resourceUri eq` or
/// `resourceGroupName eq`; anything else is refused as the service does.
fn activity_log(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    sub: &str,
) -> Result<Reply, ApiError> {
    api_version(call, &["2015-04-01"])?;
    let scope = format!("/subscriptions/{sub}");
    let assignments = shared.world().role_assignments.clone();
    let action = "Microsoft.Insights/eventtypes/values/read";
    if !auth::authorize_action(
        &assignments,
        caller,
        auth::Access::Read,
        &scope,
        Some(action),
    ) {
        return Err(auth::arm_forbidden(caller, action, &scope));
    }
    let filter = call.query.get("$filter").cloned().unwrap_or_default();
    let clause = |name: &str, op: &str| -> Option<String> {
        let lower = filter.to_ascii_lowercase();
        let at = lower.find(&format!("{} {op} '", name.to_ascii_lowercase()))?;
        let rest = &filter[at + name.len() + op.len() + 3..];
        rest.split('\'').next().map(str::to_string)
    };
    let bad = |why: &str| {
        Err(ApiError::new(
            400,
            "BadRequest",
            format!("The $filter is not valid: {why}."),
        ))
    };
    let Some(from) = clause("eventTimestamp", "ge").and_then(|t| crate::clock::parse_rfc3339(&t))
    else {
        return bad("it must bound eventTimestamp with ge");
    };
    let to = clause("eventTimestamp", "le").and_then(|t| crate::clock::parse_rfc3339(&t));
    let correlation = clause("correlationId", "eq");
    let uri = clause("resourceUri", "eq");
    let group = clause("resourceGroupName", "eq");
    let events = shared.world().events.clone();
    let value: Vec<Value> = events
        .iter()
        .filter(|e| {
            let at = e["eventTime"].as_str().and_then(crate::clock::parse_rfc3339);
            let uri_of = e["data"]["resourceUri"].as_str().unwrap_or("");
            at.is_some_and(|t| t >= from && to.is_none_or(|to| t <= to))
                && uri_of.to_ascii_lowercase().starts_with(&scope.to_ascii_lowercase())
                && correlation.as_deref().is_none_or(|c| e["data"]["correlationId"].as_str() == Some(c))
                && uri.as_deref().is_none_or(|u| uri_of.eq_ignore_ascii_case(u))
                && group.as_deref().is_none_or(|g| {
                    uri_of.to_ascii_lowercase().contains(&format!("/resourcegroups/{}/", g.to_ascii_lowercase()))
                })
        })
        .map(|e| {
            let d = &e["data"];
            let operation = d["operationName"].clone();
            json!({
                "authorization": {"action": operation, "scope": d["resourceUri"]},
                "caller": d["claims"]["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"]
                    .as_str().or(d["claims"]["appid"].as_str()).unwrap_or(""),
                "claims": d["claims"],
                "correlationId": d["correlationId"],
                "eventDataId": e["id"],
                "eventName": {"value": "EndRequest", "localizedValue": "End request"},
                "category": {"value": "Administrative", "localizedValue": "Administrative"},
                "eventTimestamp": e["eventTime"],
                "submissionTimestamp": e["eventTime"],
                "id": format!("{}/events/{}/ticks/0", d["resourceUri"].as_str().unwrap_or(""), e["id"].as_str().unwrap_or("")),
                "level": "Informational",
                "operationName": {"value": operation, "localizedValue": operation},
                "resourceId": d["resourceUri"],
                "resourceProviderName": {"value": "Microsoft.DataFactory", "localizedValue": "Microsoft.DataFactory"},
                "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
                "subStatus": {"value": "OK", "localizedValue": "OK (HTTP Status Code: 200)"},
                "subscriptionId": sub,
            })
        })
        .collect();
    Ok(Reply::Json(200, json!({"value": value})))
}

fn arm(shared: &Shared, call: &Call, caller: &Caller, s: &[&str]) -> Result<Reply, ApiError> {
    if let Some(answer) = other_provider(shared, call, caller, s) {
        return answer;
    }
    factory_api_version(call)?;
    if s.len() < 2 || !eq(s[0], "subscriptions") {
        return Err(ApiError::not_found(
            "InvalidResourceType",
            format!("No ARM route matches '{}'.", call.path),
        ));
    }
    let sub = s[1];
    let provider_at = |i: usize| {
        s.len() > i + 2
            && eq(s[i], "providers")
            && eq(s[i + 1], "Microsoft.DataFactory")
            && eq(s[i + 2], "factories")
    };
    // List by subscription.
    if s.len() == 5 && provider_at(2) {
        authorize(
            shared,
            caller,
            call,
            &format!("/subscriptions/{sub}"),
            "factories",
        )?;
        let items = shared
            .world()
            .list_factories(sub, None, &shared.signer.tenant_id);
        return Ok(page(shared, call, items));
    }
    if s.len() < 7 || !eq(s[2], "resourceGroups") || !provider_at(4) {
        return Err(ApiError::not_found(
            "InvalidResourceType",
            format!("No ARM route matches '{}'.", call.path),
        ));
    }
    let rg = s[3];
    let scope = call.path.clone();
    if s.len() == 7 {
        authorize(shared, caller, call, &scope, "factories")?;
        let items = shared
            .world()
            .list_factories(sub, Some(rg), &shared.signer.tenant_id);
        return Ok(page(shared, call, items));
    }
    let f = s[7];
    let rest = &s[8..];
    let what = rest
        .first()
        .and_then(|k| Kind::from_segment(k))
        .map_or("factories".to_string(), |k| {
            format!("factories/{}", k.segment())
        });
    authorize(shared, caller, call, &scope, &what)?;
    let ctx = FactoryCtx {
        shared,
        call,
        sub,
        rg,
        f,
    };
    match rest {
        [] => ctx.factory(),
        [segment] => ctx.collection(segment),
        [vnet_seg, vnet, mpe_seg]
            if eq(vnet_seg, "managedVirtualNetworks") && eq(mpe_seg, "managedPrivateEndpoints") =>
        {
            ctx.list(Kind::ManagedPrivateEndpoint, Some(vnet))
        }
        [vnet_seg, vnet, mpe_seg, name]
            if eq(vnet_seg, "managedVirtualNetworks") && eq(mpe_seg, "managedPrivateEndpoints") =>
        {
            ctx.child(Kind::ManagedPrivateEndpoint, Some(vnet), name)
        }
        [segment, name] if eq(segment, "pipelineruns") && call.method == "GET" => {
            Ok(Reply::Json(200, shared.world().get_run(sub, rg, f, name)?))
        }
        [segment, name] => match Kind::from_segment(segment) {
            Some(kind) => ctx.child(kind, None, name),
            None => Err(unknown_type(segment)),
        },
        [segment, name, action @ ..] => ctx.action(segment, name, action),
    }
}

/// Data Factory's one api-version, as the service insists on it.
fn factory_api_version(call: &Call) -> Result<(), ApiError> {
    match call.query.get("api-version").map(String::as_str) {
        None => {
            return Err(ApiError::new(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(ApiError::new(
                400,
                "InvalidResourceType",
                format!(
                    "The resource type could not be found in the namespace 'Microsoft.DataFactory' for api version '{other}'. The supported api-versions are '{API_VERSION}'."
                ),
            ));
        }
    }
    Ok(())
}

fn unknown_type(segment: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidResourceType",
        format!(
            "The resource type 'factories/{segment}' could not be found in the namespace 'Microsoft.DataFactory' for api version '{API_VERSION}'."
        ),
    )
}

/// The api-versions a provider other than Data Factory answers, refused as
/// ARM refuses any other.
fn api_version(call: &Call, supported: &[&str]) -> ApiResult<()> {
    match call.query.get("api-version").map(String::as_str) {
        Some(v) if supported.contains(&v) => Ok(()),
        other => Err(ApiError::new(
            400,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{}' is invalid. The supported versions are '{}'.",
                other.unwrap_or(""),
                supported.join(",")
            ),
        )),
    }
}

/// `{scope}/providers/Microsoft.Authorization/roleDefinitions[/ID]`: read
/// by whoever may read the scope; custom ones written by Owner or User
/// Access Administrator (`Microsoft.Authorization/roleDefinitions/write`).
fn role_definitions(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
    i: usize,
) -> Result<Reply, ApiError> {
    use crate::rbac;
    api_version(call, rbac::API_VERSIONS)?;
    let scope = format!("/{}", s[..i].join("/"));
    let mut world = shared.world();
    let (allowed, action) = if call.method == "GET" {
        let action = "Microsoft.Authorization/roleDefinitions/read";
        let ok = auth::authorize_action(
            &world.role_assignments,
            caller,
            Access::Read,
            &scope,
            Some(action),
        );
        (ok, action)
    } else {
        let ok = auth::holds_role(
            &world.role_assignments,
            caller,
            &scope,
            &["Owner", "User Access Administrator"],
        );
        (ok, "Microsoft.Authorization/roleDefinitions/write")
    };
    if !allowed {
        return Err(auth::arm_forbidden(caller, action, &scope));
    }
    match (call.method.as_str(), &s[i + 3..]) {
        ("GET", []) => {
            let filter = call.query.get("$filter").map(String::as_str);
            Ok(Reply::Json(
                200,
                json!({"value": rbac::definitions(&world.role_definitions, &scope, filter)}),
            ))
        }
        ("GET", [id]) => Ok(Reply::Json(
            200,
            rbac::definition(&world.role_definitions, &scope, id)?,
        )),
        ("PUT", [id]) => {
            let body = call.json()?;
            Ok(Reply::Json(
                201,
                rbac::put_definition(&mut world.role_definitions, &scope, id, &body)?,
            ))
        }
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{m} is not served on {}", call.path),
        )),
    }
}

/// `{scope}/providers/Microsoft.Authorization/roleAssignments[/NAME]`.
fn role_assignments(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
    i: usize,
) -> Result<Reply, ApiError> {
    use crate::rbac;
    api_version(call, rbac::API_VERSIONS)?;
    let scope = format!("/{}", s[..i].join("/"));
    let mut world = shared.world();
    // Writing or removing an assignment: Owner, User Access Administrator
    // or Role Based Access Control Administrator at the scope.
    let verb = match call.method.as_str() {
        "PUT" => Some("write"),
        "DELETE" => Some("delete"),
        _ => None,
    };
    if let Some(verb) = verb
        && !auth::holds_role(&world.role_assignments, caller, &scope, rbac::GRANTORS)
    {
        return Err(auth::arm_forbidden(
            caller,
            &format!("Microsoft.Authorization/roleAssignments/{verb}"),
            &scope,
        ));
    }
    match (call.method.as_str(), &s[i + 3..]) {
        ("GET", []) => {
            let action = "Microsoft.Authorization/roleAssignments/read";
            if !auth::authorize_action(
                &world.role_assignments,
                caller,
                Access::Read,
                &scope,
                Some(action),
            ) {
                return Err(auth::arm_forbidden(caller, action, &scope));
            }
            let filter = call.query.get("$filter").map(String::as_str);
            Ok(Reply::Json(
                200,
                json!({"value": rbac::list(&world.role_assignments, &scope, filter)}),
            ))
        }
        ("PUT", [name]) => {
            let (status, view) = {
                let w = &mut *world;
                rbac::put(
                    &mut w.role_assignments,
                    &w.role_definitions,
                    &scope,
                    name,
                    &call.json()?,
                )?
            };
            world.mark_factory_identities();
            Ok(Reply::Json(status, view))
        }
        ("GET", [name]) => Ok(Reply::Json(
            200,
            rbac::get(&world.role_assignments, &scope, name)?,
        )),
        ("DELETE", [name]) => Ok(
            match rbac::delete(&mut world.role_assignments, &scope, name) {
                Some(gone) => Reply::Json(200, gone),
                None => Reply::Empty(204),
            },
        ),
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{m} is not served on {}", call.path),
        )),
    }
}

/// `{scope}/providers/Microsoft.Insights/diagnosticSettings[/NAME]` and
/// `{scope}/providers/Microsoft.Authorization/locks[/NAME]`, on a factory or
/// a resource group.
fn extension(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
    i: usize,
) -> Result<Reply, ApiError> {
    use crate::extension::{self as ext, Extension};
    let kind = Extension::of(s[i + 1], s[i + 2]).expect("matched");
    api_version(call, kind.api_versions())?;
    let scope = format!("/{}", s[..i].join("/"));
    let name = match &s[i + 3..] {
        [] => None,
        [n] => Some(*n),
        _ => {
            return Err(ApiError::not_found(
                "InvalidResourceType",
                format!("No ARM route matches '{}'.", call.path),
            ));
        }
    };
    // A factory scope must exist.
    if s.len() > 7 && i == 8 && eq(s[5], "Microsoft.DataFactory") && eq(s[6], "factories") {
        shared.world().factory(s[1], s[3], s[7])?;
    }
    if call.method != "GET" {
        let (roles, action) = (kind.writers(), kind.action("write"));
        let assignments = shared.world().role_assignments.clone();
        if !auth::holds_role(&assignments, caller, &scope, roles) {
            return Err(auth::arm_forbidden(caller, &action, &scope));
        }
    } else {
        let assignments = shared.world().role_assignments.clone();
        let action = kind.action("read");
        if !auth::authorize_action(&assignments, caller, Access::Read, &scope, Some(&action)) {
            return Err(auth::arm_forbidden(caller, &action, &scope));
        }
    }
    if kind == Extension::DiagnosticSetting && call.method == "PUT" {
        let regions = shared.control().regions.clone();
        crate::regions::same_region_destinations(&shared.world(), &regions, &scope, &call.json()?)?;
    }
    let mut world = shared.world();
    let store = &mut world.extensions;
    match (call.method.as_str(), name) {
        ("GET", None) => Ok(Reply::Json(
            200,
            json!({"value": ext::list(store, &scope, kind)}),
        )),
        ("GET", Some(n)) => Ok(Reply::Json(200, ext::get(store, &scope, kind, n)?)),
        ("PUT", Some(n)) => {
            let (status, view) = ext::put(store, &scope, kind, n, call.json()?)?;
            Ok(Reply::Json(status, view))
        }
        ("DELETE", Some(n)) => Ok(if ext::delete(store, &scope, kind, n) {
            Reply::Empty(200)
        } else {
            Reply::Empty(204)
        }),
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{m} is not served on {}", call.path),
        )),
    }
}

/// `…/providers/Microsoft.KeyVault/vaults[/NAME[/accessPolicies/OP]]` at a
/// subscription or resource group: the vault as an ARM resource.
/// Resource Graph's query and the subscription list (discovery's reads).
fn resource_graph(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
) -> Option<Result<Reply, ApiError>> {
    match s {
        [p, ns, r]
            if eq(p, "providers") && eq(ns, "Microsoft.ResourceGraph") && eq(r, "resources") =>
        {
            Some((|| {
                if call.method != "POST" {
                    return Err(ApiError::new(
                        405,
                        "MethodNotAllowed",
                        "Resource Graph queries are POSTed.",
                    ));
                }
                api_version(call, &crate::graph::API_VERSIONS)?;
                let body = call.json()?;
                let world = shared.world();
                crate::graph::resources(&world, caller, &body, &shared.signer.tenant_id)
                    .map(|v| Reply::Json(200, v))
            })())
        }
        [sub] if eq(sub, "subscriptions") && call.method == "GET" => {
            Some(api_version(call, &["2020-01-01", "2022-12-01"]).map(|()| {
                Reply::Json(
                    200,
                    crate::graph::subscriptions(&shared.world(), caller, &shared.signer.tenant_id),
                )
            }))
        }
        _ => None,
    }
}

fn key_vaults(
    shared: &Shared,
    call: &Call,
    caller: &Caller,
    s: &[&str],
    i: usize,
) -> Result<Reply, ApiError> {
    use crate::vaults as kv;
    api_version(call, kv::API_VERSIONS)?;
    let scope = format!("/{}", s[..i].join("/"));
    let no_route = || {
        ApiError::not_found(
            "InvalidResourceType",
            format!("No ARM route matches '{}'.", call.path),
        )
    };
    if !eq(s.get(i + 2).copied().unwrap_or(""), "vaults") {
        return Err(no_route());
    }
    let (sub, rg) = match s[..i] {
        ["subscriptions", sub, rg_word, rg] if eq(rg_word, "resourceGroups") => (sub, Some(rg)),
        ["subscriptions", sub] => (sub, None),
        _ => return Err(no_route()),
    };
    let writes = call.method != "GET";
    let action = match &s[i + 3..] {
        [_, p, _] if eq(p, "accessPolicies") => "Microsoft.KeyVault/vaults/accessPolicies/write",
        _ if writes => "Microsoft.KeyVault/vaults/write",
        _ => "Microsoft.KeyVault/vaults/read",
    };
    let mut world = shared.world();
    let allowed = if writes {
        auth::holds_role(
            &world.role_assignments,
            caller,
            &call.path,
            kv::POLICY_WRITERS,
        )
    } else {
        auth::authorize_action(
            &world.role_assignments,
            caller,
            Access::Read,
            &call.path,
            Some(action),
        )
    };
    if !allowed {
        return Err(auth::arm_forbidden(caller, action, &scope));
    }
    match (call.method.as_str(), rg, &s[i + 3..]) {
        ("GET", _, []) => Ok(Reply::Json(200, kv::list(&world.key_vaults, &scope))),
        ("GET", Some(rg), [name]) => {
            Ok(Reply::Json(200, kv::get(&world.key_vaults, sub, rg, name)?))
        }
        ("PUT", Some(rg), [name]) => {
            let existed = kv::get(&world.key_vaults, sub, rg, name).is_ok();
            let out = kv::put(&mut world.key_vaults, sub, rg, name, &call.json()?)?;
            Ok(Reply::Json(if existed { 200 } else { 201 }, out))
        }
        ("PUT", Some(rg), [name, p, op]) if eq(p, "accessPolicies") => Ok(Reply::Json(
            200,
            kv::update_policies(&mut world.key_vaults, sub, rg, name, op, &call.json()?)?,
        )),
        _ => Err(no_route()),
    }
}

/// `/subscriptions/S/resourceGroups/R/providers/Microsoft.Storage/storageAccounts/A[/blobServices/default]`.
fn storage(shared: &Shared, call: &Call, caller: &Caller, s: &[&str]) -> Result<Reply, ApiError> {
    use crate::storage as st;
    api_version(call, st::API_VERSIONS)?;
    let (sub, rg) = (s[1], s[3]);
    if !eq(s[2], "resourceGroups") || !eq(s[6], "storageAccounts") {
        return Err(ApiError::not_found(
            "InvalidResourceType",
            format!("No ARM route matches '{}'.", call.path),
        ));
    }
    let name = s[7];
    let blob = match &s[8..] {
        [] => false,
        [b, d] if eq(b, "blobServices") && eq(d, "default") => true,
        _ => {
            return Err(ApiError::not_found(
                "InvalidResourceType",
                format!("No ARM route matches '{}'.", call.path),
            ));
        }
    };
    let verb = if call.method == "GET" {
        "read"
    } else {
        "write"
    };
    let action = if blob {
        format!("Microsoft.Storage/storageAccounts/blobServices/{verb}")
    } else {
        format!("Microsoft.Storage/storageAccounts/{verb}")
    };
    let access = if verb == "read" {
        Access::Read
    } else {
        Access::Write
    };
    let assignments = shared.world().role_assignments.clone();
    let scope = call.path.clone();
    if !auth::authorize_action(&assignments, caller, access, &scope, Some(&action)) {
        return Err(auth::arm_forbidden(caller, &action, &scope));
    }
    let body = || call.json();
    let mut world = shared.world();
    let accounts = &mut world.storage_accounts;
    let view = match (call.method.as_str(), blob) {
        ("GET", false) => st::get_account(accounts, sub, rg, name)?,
        ("PUT", false) => st::put_account(accounts, sub, rg, name, body()?)?,
        ("GET", true) => st::get_blob_service(accounts, sub, rg, name)?,
        ("PUT", true) => st::put_blob_service(accounts, sub, rg, name, body()?)?,
        (m, _) => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{m} is not served for storage accounts here"),
            ));
        }
    };
    Ok(Reply::Json(200, view))
}

fn authorize(
    shared: &Shared,
    caller: &Caller,
    call: &Call,
    scope: &str,
    what: &str,
) -> ApiResult<()> {
    let assignments = shared.world().role_assignments.clone();
    let (access, verb) = match call.method.as_str() {
        "GET" => (Access::Read, "read"),
        "PUT" | "PATCH" => (Access::Write, "write"),
        "DELETE" => (Access::Delete, "delete"),
        _ => (Access::Action, "action"),
    };
    let action = format!("Microsoft.DataFactory/{what}/{verb}");
    if auth::authorize_action(&assignments, caller, access, scope, Some(&action)) {
        Ok(())
    } else {
        Err(auth::arm_forbidden(caller, &action, scope))
    }
}

/// One page of a list, keyset-paginated on the sort key so inserts and deletes
/// between pages neither skip nor repeat surviving items.
fn skip_token(call: &Call) -> Option<String> {
    call.query.get("$skipToken").and_then(|t| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    })
}

fn page(shared: &Shared, call: &Call, mut items: Vec<(String, Value)>) -> Reply {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let after = skip_token(call);
    let size = shared.settings().page_size.max(1);
    let remaining: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let more = remaining.len() > size;
    let page: Vec<(String, Value)> = remaining.into_iter().take(size).collect();
    let next = if more {
        page.last().map(|(k, _)| {
            use base64::Engine;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k);
            format!(
                "{}{}?api-version={API_VERSION}&$skipToken={token}",
                shared.urls.arm, call.path
            )
        })
    } else {
        None
    };
    let mut body = json!({"value": page.into_iter().map(|(_, v)| v).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["nextLink"] = n.into();
    }
    Reply::Json(200, body)
}

struct FactoryCtx<'a> {
    shared: &'a Shared,
    call: &'a Call,
    sub: &'a str,
    rg: &'a str,
    f: &'a str,
}

/// An operation on one named resource: `POST .../triggers/{name}/start` is verb `start`, no rest.
struct Action<'a> {
    name: &'a str,
    /// The first segment after the name, lowercased.
    verb: &'a str,
    /// The segments after the verb (e.g. `operationresults/{id}`).
    rest: &'a [&'a str],
    method: &'a str,
}

impl FactoryCtx<'_> {
    /// An endpoint's target (`privateLinkResourceId`) is in a region that is down.
    fn target_region_down(&self, body: &Value) -> bool {
        let Some(target) = body
            .pointer("/properties/privateLinkResourceId")
            .and_then(Value::as_str)
        else {
            return false;
        };
        let regions = self.shared.control().regions.clone();
        crate::regions::region_of(&self.shared.world(), &regions, target)
            .is_some_and(|r| regions.is_down(&r))
    }

    fn tenant(&self) -> &str {
        &self.shared.signer.tenant_id
    }

    fn factory(&self) -> Result<Reply, ApiError> {
        let (sub, rg, f) = (self.sub, self.rg, self.f);
        match self.call.method.as_str() {
            "GET" => {
                let world = self.shared.world();
                let factory = world.factory(sub, rg, f)?;
                if not_modified(self.call, &factory.etag) {
                    return Ok(Reply::Empty(304));
                }
                Ok(Reply::Json(
                    200,
                    crate::state::factory_view(factory, self.tenant()),
                ))
            }
            "PUT" => {
                let body = self.call.json()?;
                let view = self.shared.world().put_factory(
                    sub,
                    rg,
                    f,
                    body,
                    self.call.header("if-match"),
                    self.tenant(),
                )?;
                Ok(Reply::Json(200, view))
            }
            "PATCH" => Ok(Reply::Json(
                200,
                self.shared
                    .world()
                    .patch_factory(sub, rg, f, self.call.json()?, self.tenant())?,
            )),
            "DELETE" => Ok(Reply::Empty(
                if self.shared.world().delete_factory(sub, rg, f) {
                    200
                } else {
                    204
                },
            )),
            _ => Err(method_not_allowed(self.call)),
        }
    }

    fn collection(&self, segment: &str) -> Result<Reply, ApiError> {
        let (sub, rg, f) = (self.sub, self.rg, self.f);
        let post = self.call.method == "POST";
        match segment.to_ascii_lowercase().as_str() {
            "querypipelineruns" if post => Ok(Reply::Json(
                200,
                self.shared
                    .world()
                    .query_runs(sub, rg, f, &self.call.json()?)?,
            )),
            "querytriggerruns" if post => {
                self.shared.world().factory(sub, rg, f)?;
                Ok(Reply::Json(
                    200,
                    json!({"value": [], "continuationToken": null}),
                ))
            }
            "querytriggers" if post => Ok(Reply::Json(
                200,
                self.shared
                    .world()
                    .query_triggers(sub, rg, f, &self.call.json()?)?,
            )),
            "getgithubaccesstoken"
            | "getdataplaneaccess"
            | "getfeaturevalue"
            | "queryfeaturesvalue"
            | "createdataflowdebugsession"
            | "querydataflowdebugsessions"
            | "adddataflowtodebugsession"
            | "deletedataflowdebugsession"
            | "executedataflowdebugcommand" => Err(ApiError::new(
                501,
                "NotImplemented",
                format!("adf-emulator does not implement '{segment}'; it serves what adfdr uses."),
            )),
            _ => match Kind::from_segment(segment) {
                Some(kind) if kind != Kind::ManagedPrivateEndpoint => self.list(kind, None),
                _ => Err(unknown_type(segment)),
            },
        }
    }

    fn list(&self, kind: Kind, parent: Option<&str>) -> Result<Reply, ApiError> {
        if self.call.method != "GET" {
            return Err(method_not_allowed(self.call));
        }
        let after = skip_token(self.call);
        let limit = self.shared.settings().page_size.max(1) + 1;
        let mut items = self.shared.world().list_children(
            self.sub,
            self.rg,
            self.f,
            kind,
            parent,
            crate::state::Window {
                after: after.as_deref(),
                limit,
            },
        )?;
        let mut control = self.shared.control();
        if !control.mutations.is_empty() {
            for (_, v) in items.iter_mut() {
                let name = v["name"].as_str().unwrap_or_default().to_string();
                control.mutate("get", kind.segment(), &name, v);
            }
        }
        *control
            .counters
            .by_route
            .entry(format!("LIST {}", kind.segment()))
            .or_default() += 1;
        drop(control);
        Ok(page(self.shared, self.call, items))
    }

    fn child(&self, kind: Kind, parent: Option<&str>, name: &str) -> Result<Reply, ApiError> {
        let (sub, rg, f) = (self.sub, self.rg, self.f);
        *self
            .shared
            .control()
            .counters
            .by_route
            .entry(format!("{} {}", self.call.method, kind.segment()))
            .or_default() += 1;
        match self.call.method.as_str() {
            "GET" => {
                let (mut view, etag) = self
                    .shared
                    .world()
                    .get_child(sub, rg, f, kind, parent, name)?;
                if kind.supports_not_modified() && not_modified(self.call, &etag) {
                    return Ok(Reply::Empty(304));
                }
                self.shared
                    .control()
                    .mutate("get", kind.segment(), name, &mut view);
                Ok(Reply::Json(200, view))
            }
            "PUT" => {
                let mut body = self.call.json()?;
                if !body.is_object() {
                    return Err(ApiError::new(
                        400,
                        "InvalidRequestContent",
                        "The request content was invalid and could not be deserialized: the body must be a JSON object.",
                    ));
                }
                self.shared
                    .control()
                    .mutate("put", kind.segment(), name, &mut body);
                let if_match = if kind == Kind::GlobalParameters {
                    None
                } else {
                    self.call.header("if-match")
                };
                let provisioning = self
                    .shared
                    .settings()
                    .scaled(std::time::Duration::from_secs(60));
                let target_lost =
                    kind == Kind::ManagedPrivateEndpoint && self.target_region_down(&body);
                let mut view = self.shared.world().put_child(
                    sub,
                    rg,
                    f,
                    kind,
                    parent,
                    name,
                    body,
                    if_match,
                    provisioning,
                )?;
                if target_lost {
                    // Its target's region is down: it never provisions.
                    let mut world = self.shared.world();
                    world.fail_provisioning(sub, rg, f, parent, name)?;
                    view = world.get_child(sub, rg, f, kind, parent, name)?.0;
                }
                Ok(Reply::Json(200, view))
            }
            // The REST spec has no DELETE for managed virtual networks
            // (adf-api.md A.1): a managed VNet goes only with its factory.
            "DELETE" if kind == Kind::ManagedVirtualNetwork => Err(method_not_allowed(self.call)),
            "DELETE" => {
                let existed = self
                    .shared
                    .world()
                    .delete_child(sub, rg, f, kind, parent, name)?;
                Ok(Reply::Empty(if existed { 200 } else { 204 }))
            }
            _ => Err(method_not_allowed(self.call)),
        }
    }

    fn action(&self, segment: &str, name: &str, action: &[&str]) -> Result<Reply, ApiError> {
        let kind = Kind::from_segment(segment);
        let verb = action
            .first()
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        let op = Action {
            name,
            verb: verb.as_str(),
            rest: &action[action.len().min(1)..],
            method: self.call.method.as_str(),
        };
        let reply = match kind {
            Some(Kind::Trigger) => self.trigger_action(&op)?,
            Some(Kind::IntegrationRuntime) => self.runtime_action(&op)?,
            Some(Kind::Pipeline) => self.pipeline_action(&op)?,
            Some(Kind::ChangeDataCapture) => self.cdc_action(&op)?,
            None if eq(segment, "pipelineruns") => self.run_action(&op)?,
            _ => None,
        };
        match reply {
            Some(reply) => Ok(reply),
            // A known collection, but not one of its operations.
            None if kind.is_some() || eq(segment, "pipelineruns") => Err(ApiError::new(
                400,
                "InvalidResourceType",
                format!(
                    "'{} {}' is not an operation of {segment} in Microsoft.DataFactory api version {API_VERSION}.",
                    op.method,
                    action.join("/")
                ),
            )),
            None => Err(unknown_type(segment)),
        }
    }

    fn trigger_action(&self, op: &Action) -> Result<Option<Reply>, ApiError> {
        let (sub, rg, f, name) = (self.sub, self.rg, self.f, op.name);
        let world = || self.shared.world();
        Ok(Some(match (op.verb, op.rest, op.method) {
            (v @ ("start" | "stop"), [], "POST") => {
                world().set_trigger_state(sub, rg, f, name, v == "start")?;
                Reply::Empty(200)
            }
            // Answered at once with the new status, as the service did in
            // TestBlobEventTriggerSubscriptions.json (200 {"triggerName", "status"}).
            (v @ ("subscribetoevents" | "unsubscribefromevents"), [], "POST") => Reply::Json(
                200,
                world().set_trigger_subscription(sub, rg, f, name, v == "subscribetoevents")?,
            ),
            ("geteventsubscriptionstatus", [], "POST" | "GET") => {
                Reply::Json(200, world().trigger_subscription_status(sub, rg, f, name)?)
            }
            _ => return Ok(None),
        }))
    }

    fn runtime_action(&self, op: &Action) -> Result<Option<Reply>, ApiError> {
        let (sub, rg, f, name) = (self.sub, self.rg, self.f, op.name);
        let world = || self.shared.world();
        let now = crate::clock::now_ms();
        Ok(Some(match (op.verb, op.rest, op.method) {
            // A long-running operation, as recorded from the service
            // (TestSsisAzureIntegrationRuntime.json): 202, no body, Location
            // (operationresults), Azure-AsyncOperation (operationstatuses)
            // and Retry-After 15.
            (v @ ("start" | "stop"), [], "POST") => {
                let settings = self.shared.settings();
                let id = world()
                    .set_ir_state(sub, rg, f, name, v == "start", now, |d| settings.scaled(d))?;
                let at = |what: &str| {
                    format!(
                        "{}{}/integrationRuntimes/{name}/{v}/{what}/{id}?api-version={API_VERSION}",
                        self.shared.urls.arm,
                        self.factory_path(),
                    )
                };
                Reply::Headers(
                    202,
                    Value::Null,
                    vec![
                        ("Location".into(), at("operationresults")),
                        ("Azure-AsyncOperation".into(), at("operationstatuses")),
                        ("Retry-After".into(), settings.retry_after()),
                    ],
                )
            }
            (v @ ("start" | "stop"), [what, id], "GET") if eq(what, "operationstatuses") => {
                let (done, status) = world().operation(sub, rg, f, name, v, id, now)?;
                Reply::Json(
                    200,
                    json!({
                        "status": if done { "Succeeded" } else { "InProgress" },
                        "name": id,
                        "properties": if done { status } else { Value::Null },
                        "error": null,
                    }),
                )
            }
            (v @ ("start" | "stop"), [what, id], "GET") if eq(what, "operationresults") => {
                let (done, status) = world().operation(sub, rg, f, name, v, id, now)?;
                if done {
                    Reply::Json(200, status)
                } else {
                    let location = format!(
                        "{}{}/integrationRuntimes/{name}/{v}/operationresults/{id}?api-version={API_VERSION}",
                        self.shared.urls.arm,
                        self.factory_path(),
                    );
                    Reply::Headers(
                        202,
                        Value::Null,
                        vec![
                            ("Location".into(), location),
                            ("Retry-After".into(), self.shared.settings().retry_after()),
                        ],
                    )
                }
            }
            ("getstatus", [], "POST") => Reply::Json(200, world().ir_status(sub, rg, f, name)?),
            ("listauthkeys" | "regenerateauthkey", [], "POST") => {
                world().ir_status(sub, rg, f, name)?;
                let key = |n: u8| {
                    format!(
                        "IR@{}@{f}@ServiceEndpoint=emulator@key{n}={}",
                        uuid::Uuid::new_v4(),
                        uuid::Uuid::new_v4().simple()
                    )
                };
                Reply::Json(200, json!({"authKey1": key(1), "authKey2": key(2)}))
            }
            _ => return Ok(None),
        }))
    }

    fn pipeline_action(&self, op: &Action) -> Result<Option<Reply>, ApiError> {
        if !(op.verb == "createrun" && op.rest.is_empty() && op.method == "POST") {
            return Ok(None);
        }
        let params = self.call.json()?;
        let duration = self.shared.settings().run_duration_ms;
        let run = self
            .shared
            .world()
            .create_run(self.sub, self.rg, self.f, op.name, params, duration)?;
        Ok(Some(Reply::Json(200, run)))
    }

    fn run_action(&self, op: &Action) -> Result<Option<Reply>, ApiError> {
        let (sub, rg, f, name) = (self.sub, self.rg, self.f, op.name);
        let world = || self.shared.world();
        Ok(Some(match (op.verb, op.rest, op.method) {
            ("cancel", [], "POST") => {
                world().cancel_run(sub, rg, f, name)?;
                Reply::Empty(200)
            }
            ("queryactivityruns", [], "POST") => {
                world().get_run(sub, rg, f, name)?;
                Reply::Json(200, json!({"value": [], "continuationToken": null}))
            }
            _ => return Ok(None),
        }))
    }

    fn cdc_action(&self, op: &Action) -> Result<Option<Reply>, ApiError> {
        let (sub, rg, f, name) = (self.sub, self.rg, self.f, op.name);
        let world = || self.shared.world();
        Ok(Some(match (op.verb, op.rest, op.method) {
            (v @ ("start" | "stop"), [], "POST") => {
                world().set_cdc_state(sub, rg, f, name, v == "start")?;
                Reply::Empty(200)
            }
            ("status", [], "GET" | "POST") => {
                Reply::Json(200, world().cdc_status(sub, rg, f, name)?)
            }
            _ => return Ok(None),
        }))
    }

    fn factory_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataFactory/factories/{}",
            self.sub, self.rg, self.f
        )
    }
}

fn not_modified(call: &Call, etag: &str) -> bool {
    call.header("if-none-match").is_some_and(|v| {
        let v = v.trim();
        v == "*" || v.trim_matches('"') == etag.trim_matches('"')
    })
}

fn method_not_allowed(call: &Call) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!(
            "The requested method '{}' is not allowed on '{}'.",
            call.method, call.path
        ),
    )
}

// ----- admin API ----------------------------------------------------------------------------

fn admin(shared: &Shared, call: &Call, s: &[&str]) -> Result<Reply, ApiError> {
    let body = call.json()?;
    let method = call.method.as_str();
    if let Some(reply) = admin_control(shared, method, s, body.clone())? {
        return Ok(reply);
    }
    if let Some(reply) = admin_identity(shared, method, s, body)? {
        return Ok(reply);
    }
    Err(ApiError::not_found(
        "NotFound",
        format!("No admin route {method} /_emulator/{}", s.join("/")),
    ))
}

fn bad_body(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("admin request body: {e}"))
}

/// Regions taken away and brought back, and resources declared in them
/// (emulator::regions); None: not a regions call.
fn admin_regions(
    shared: &Shared,
    method: &str,
    s: &[&str],
    body: &Value,
) -> Option<Result<Reply, ApiError>> {
    Some(match (method, s) {
        ("GET", ["regions"]) => Ok(Reply::Json(
            200,
            serde_json::to_value(&shared.control().regions).unwrap_or_default(),
        )),
        ("POST", ["regions", region]) => {
            let state = body.get("state").and_then(Value::as_str);
            match state {
                Some(s @ ("down" | "up")) => {
                    shared.control().regions.set(region, s == "down");
                    Ok(Reply::Json(
                        200,
                        json!({"region": crate::regions::normalize(region), "state": s}),
                    ))
                }
                _ => Err(ApiError::bad_request(
                    "give {\"state\": \"down\"} or {\"state\": \"up\"}",
                )),
            }
        }
        ("POST", ["resources"]) => {
            match serde_json::from_value::<Vec<crate::regions::Declared>>(body.clone()) {
                Ok(list) => {
                    shared.control().regions.declare(&list);
                    Ok(Reply::Json(200, json!({"declared": list.len()})))
                }
                Err(e) => Err(bad_body(e)),
            }
        }
        _ => return None,
    })
}

/// The emulator's own state: health, counters, settings, scripted faults and mutations.
fn admin_control(
    shared: &Shared,
    method: &str,
    s: &[&str],
    body: Value,
) -> Result<Option<Reply>, ApiError> {
    if let Some(reply) = admin_regions(shared, method, s, &body) {
        return reply.map(Some);
    }
    let bad = bad_body;
    let reply: Result<Reply, ApiError> = match (method, s) {
        ("GET", ["health"]) => Ok(Reply::Json(200, json!({"status": "ok"}))),
        ("GET", ["events"]) => Ok(Reply::Json(
            200,
            Value::Array(shared.world().events.iter().cloned().collect()),
        )),
        ("GET", ["counters"]) => Ok(Reply::Json(
            200,
            serde_json::to_value(&shared.control().counters).unwrap_or_default(),
        )),
        ("POST", ["reset"]) => {
            shared.control().reset();
            let mut world = shared.world();
            world.factories.clear();
            world.runs.clear();
            world.failing_pipelines.clear();
            world.events.clear();
            Ok(Reply::Json(200, json!({"reset": true})))
        }
        ("GET", ["settings"]) => Ok(Reply::Json(
            200,
            serde_json::to_value(&shared.control().settings).unwrap_or_default(),
        )),
        ("POST", ["settings"]) => {
            let patch: SettingsPatch = serde_json::from_value(body).map_err(bad)?;
            let mut control = shared.control();
            control
                .settings
                .apply(patch)
                .map_err(ApiError::bad_request)?;
            Ok(Reply::Json(
                200,
                serde_json::to_value(&control.settings).unwrap_or_default(),
            ))
        }
        ("POST", ["faults"]) => {
            let fault: ScriptedFault = serde_json::from_value(body).map_err(bad)?;
            shared.control().faults.push(fault);
            Ok(Reply::Empty(204))
        }
        ("DELETE", ["faults"]) => {
            let mut control = shared.control();
            control.faults.clear();
            control.mutations.clear();
            Ok(Reply::Empty(204))
        }
        ("POST", ["mutations"]) => {
            let m: Mutation = serde_json::from_value(body).map_err(bad)?;
            if !m.pointer.starts_with('/') {
                return Err(ApiError::bad_request(
                    "mutation pointer must be a JSON Pointer starting with '/'",
                ));
            }
            shared.control().mutations.push(m);
            Ok(Reply::Empty(204))
        }
        ("DELETE", ["pipeline-failures"]) => {
            shared.world().failing_pipelines.clear();
            Ok(Reply::Empty(204))
        }
        ("POST", ["pipeline-failures"]) => {
            let target = body["factory"].as_str().unwrap_or_default();
            let pipeline = body["pipeline"].as_str().unwrap_or_default();
            let parts: Vec<&str> = target.split('/').collect();
            let [sub, rg, f] = parts.as_slice() else {
                return Err(ApiError::bad_request(
                    "pipeline-failures needs {\"factory\": \"SUB/RG/FACTORY\", \"pipeline\": NAME}",
                ));
            };
            let key = format!(
                "{}/{}",
                factory_key(sub, rg, f),
                pipeline.to_ascii_lowercase()
            );
            shared.world().failing_pipelines.insert(key);
            Ok(Reply::Empty(204))
        }
        _ => return Ok(None),
    };
    reply.map(Some)
}

/// Who exists and may do what: apps, role assignments, seeded factories, minted tokens.
fn admin_identity(
    shared: &Shared,
    method: &str,
    s: &[&str],
    body: Value,
) -> Result<Option<Reply>, ApiError> {
    let bad = bad_body;
    let reply: Result<Reply, ApiError> = match (method, s) {
        ("POST", ["apps"]) => {
            let client_id = body["client_id"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request("apps needs client_id"))?
                .to_string();
            let app = auth::App {
                object_id: body["object_id"]
                    .as_str()
                    .map_or_else(|| auth::derived_guid(&client_id), str::to_string),
                secret: body["secret"].as_str().map(str::to_string),
                client_id,
            };
            let out = json!({"client_id": app.client_id, "object_id": app.object_id});
            shared.world().apps.push(app);
            Ok(Reply::Json(200, out))
        }
        ("POST", ["private-endpoints", "approve"]) => {
            // Stands in for the target resource's owner approving (or
            // rejecting) the managed private endpoint's connection.
            let target = body["factory"].as_str().unwrap_or_default();
            let parts: Vec<&str> = target.split('/').collect();
            let ([sub, rg, f], Some(vnet), Some(name)) = (
                parts.as_slice(),
                body["vnet"].as_str(),
                body["name"].as_str(),
            ) else {
                return Err(ApiError::bad_request(
                    "private-endpoints/approve needs {\"factory\": \"SUB/RG/FACTORY\", \"vnet\": NAME, \"name\": NAME}",
                ));
            };
            let status = body["status"].as_str().unwrap_or("Approved");
            let state = shared
                .world()
                .set_endpoint_approval(sub, rg, f, vnet, name, status)?;
            Ok(Reply::Json(200, state))
        }
        ("POST", ["role-assignments"]) => {
            let a: auth::RoleAssignment = serde_json::from_value(body).map_err(bad)?;
            shared.world().add_role_assignment(a);
            Ok(Reply::Empty(204))
        }
        ("DELETE", ["role-assignments"]) => {
            // Back to the open sandbox; what factories' identities hold stays.
            shared
                .world()
                .role_assignments
                .retain(|a| a.factory_identity);
            Ok(Reply::Empty(204))
        }
        ("POST", ["seed"]) => {
            let target = body["target"].as_str().unwrap_or_default();
            let dir = body["dir"].as_str().unwrap_or_default();
            let warnings = shared
                .seed(target, std::path::Path::new(dir))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Reply::Json(200, json!({"warnings": warnings})))
        }
        ("POST", ["token"]) => {
            let audience = body["audience"].as_str().unwrap_or(ARM_AUDIENCES[0]);
            let object_id = body["object_id"]
                .as_str()
                .map_or_else(|| auth::derived_guid("admin"), str::to_string);
            let lifetime = body["lifetime_secs"]
                .as_i64()
                .unwrap_or_else(|| shared.settings().token_lifetime_secs);
            let (token, exp) = shared.signer.mint(
                audience,
                &object_id,
                body["client_id"].as_str().unwrap_or("adf-emulator-admin"),
                lifetime,
            );
            Ok(Reply::Json(
                200,
                json!({"access_token": token, "expires_on": exp}),
            ))
        }
        _ => return Ok(None),
    };
    reply.map(Some)
}
