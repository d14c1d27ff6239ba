//! Entra ID stand-in: app registrations, managed identities, JWT-shaped tokens
//! and role assignments.
//!
//! Tokens are signed with HMAC-SHA256 under a per-emulator secret so the
//! emulator can tell its own tokens from forged ones. Azurite's `--oauth basic`
//! does not check signatures, so the same storage tokens work there.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
];
pub const VAULT_AUDIENCES: [&str; 2] = ["https://vault.azure.net", "https://vault.azure.net/"];

/// An app registration (client secret or federated credential).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    /// None: any client assertion (workload identity) is accepted, secrets are refused.
    pub secret: Option<String>,
    pub object_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub principal_id: String,
    pub role: String,
    /// An ARM scope prefix (`/subscriptions/x/resourceGroups/y`), `/` for everything,
    /// or `/keyvault` for the emulated vault.
    pub scope: String,
    /// A custom role: the built-in role's actions minus these (ARM's
    /// `notActions`, e.g. `Microsoft.DataFactory/factories/adfcdcs/read`;
    /// a trailing `*` matches any rest).
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Its name (a GUID) when made over REST.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub principal_type: String,
    /// Held by a factory's managed identity: what its pipelines may reach.
    /// Such a principal never calls the emulator, so its assignments do not
    /// end the open sandbox (see `open`).
    #[serde(default)]
    pub factory_identity: bool,
}

/// With no assignment held by a caller (only factories' identities hold
/// any, or none exist), everyone may do everything: an open sandbox.
pub fn open(assignments: &[RoleAssignment]) -> bool {
    assignments.iter().all(|a| a.factory_identity)
}

/// What a verified token says about its caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub object_id: String,
    pub app_id: String,
    pub audience: String,
}

/// Deterministic GUID-shaped id derived from a string (stable object ids for client ids).
pub fn derived_guid(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub struct TokenSigner {
    key: Vec<u8>,
    pub tenant_id: String,
}

impl TokenSigner {
    pub fn new(key: Vec<u8>, tenant_id: String) -> Self {
        TokenSigner { key, tenant_id }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    /// Mints a token. `lifetime_secs` may be negative to mint an expired one (tests).
    pub fn mint(
        &self,
        audience: &str,
        object_id: &str,
        app_id: &str,
        lifetime_secs: i64,
    ) -> (String, i64) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let exp = now + lifetime_secs;
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "adf-emulator"});
        let claims = json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": now.min(exp) - 60,
            "nbf": now.min(exp) - 60,
            "exp": exp,
            "appid": app_id,
            "oid": object_id,
            "sub": object_id,
            "tid": self.tenant_id,
            "ver": "1.0",
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{sig}"), exp)
    }

    /// Checks a bearer token for one of `audiences`, answering as ARM does when it fails.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        audiences: &[&str],
    ) -> Result<Caller, ApiError> {
        let invalid = |msg: &str| {
            ApiError::new(401, "InvalidAuthenticationToken", msg.to_string())
                .with_header("WWW-Authenticate", format!("Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\", error_description=\"{msg}\"", self.tenant_id))
        };
        let Some(header) = authorization else {
            return Err(ApiError::new(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
                .with_header("WWW-Authenticate", format!("Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"", self.tenant_id)));
        };
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        else {
            return Err(ApiError::new(
                401,
                "InvalidAuthenticationToken",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            ));
        };
        let mut parts = token.trim().splitn(3, '.');
        let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("The access token is invalid."));
        };
        let mut mac = self.mac();
        mac.update(format!("{h}.{c}").as_bytes());
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("The access token is invalid."))?;
        mac.verify_slice(&sig)
            .map_err(|_| invalid("The access token signature is invalid."))?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("The access token is invalid."))?;
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if exp <= now {
            let fmt = |t: i64| {
                time::OffsetDateTime::from_unix_timestamp(t)
                    .map(crate::clock::rfc3339)
                    .unwrap_or_default()
            };
            return Err(ApiError::new(401, "ExpiredAuthenticationToken", format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.", fmt(exp), fmt(now)
            )).with_header("WWW-Authenticate", format!("Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\", error_description=\"The access token has expired.\"", self.tenant_id)));
        }
        let audience = claims["aud"].as_str().unwrap_or_default().to_string();
        if !audiences.contains(&audience.as_str()) {
            return Err(ApiError::new(
                401,
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences '{}'.",
                    audiences.join("','")
                ),
            ));
        }
        Ok(Caller {
            object_id: claims["oid"].as_str().unwrap_or_default().to_string(),
            app_id: claims["appid"].as_str().unwrap_or_default().to_string(),
            audience,
        })
    }
}

/// What a role lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Delete,
    Action,
    KeyUse,
    KeyManage,
}

fn role_grants(role: &str, access: Access) -> bool {
    let role = role.to_ascii_lowercase();
    match role.as_str() {
        "owner" | "contributor" | "data factory contributor" => {
            !matches!(access, Access::KeyUse | Access::KeyManage)
        }
        "reader" => access == Access::Read,
        "key vault administrator" | "key vault crypto officer" => {
            matches!(access, Access::KeyUse | Access::KeyManage | Access::Read)
        }
        "key vault crypto user" | "key vault crypto service encryption user" => {
            matches!(access, Access::KeyUse | Access::Read)
        }
        _ => false,
    }
}

/// Whether the caller holds one of `roles` at a scope covering `resource`
/// (or no role assignments exist at all: everyone may do everything).
/// Built-in roles by what they carry: locks need Owner or User Access
/// Administrator (`Microsoft.Authorization/locks/write`), diagnostic
/// settings Owner, Contributor or Monitoring Contributor.
pub fn holds_role(
    assignments: &[RoleAssignment],
    caller: &Caller,
    resource: &str,
    roles: &[&str],
) -> bool {
    open(assignments)
        || assignments.iter().any(|a| {
            a.principal_id.eq_ignore_ascii_case(&caller.object_id)
                && scope_covers(&a.scope, resource)
                && roles.iter().any(|r| r.eq_ignore_ascii_case(&a.role))
        })
}

fn scope_covers(scope: &str, resource: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    scope.is_empty() || resource.to_ascii_lowercase().starts_with(&scope)
}

/// With no assignments at all, everyone may do everything (an open sandbox);
/// once any exist, every caller needs one that covers the request.
pub fn authorize(
    assignments: &[RoleAssignment],
    caller: &Caller,
    access: Access,
    resource: &str,
) -> bool {
    authorize_action(assignments, caller, access, resource, None)
}

/// `authorize`, also honouring the assignments' `notActions` for `action`.
pub fn authorize_action(
    assignments: &[RoleAssignment],
    caller: &Caller,
    access: Access,
    resource: &str,
    action: Option<&str>,
) -> bool {
    let excluded = |a: &RoleAssignment| {
        action.is_some_and(|action| {
            a.not_actions.iter().any(|n| match n.strip_suffix('*') {
                Some(prefix) => action
                    .to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase()),
                None => n.eq_ignore_ascii_case(action),
            })
        })
    };
    open(assignments)
        || assignments.iter().any(|a| {
            a.principal_id.eq_ignore_ascii_case(&caller.object_id)
                && scope_covers(&a.scope, resource)
                && role_grants(&a.role, access)
                && !excluded(a)
        })
}

/// ARM's 403 for a missing role assignment.
pub fn arm_forbidden(caller: &Caller, action: &str, scope: &str) -> ApiError {
    ApiError::new(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            caller.app_id, caller.object_id
        ),
    )
}

/// Key Vault's 403 for a missing data-plane role.
pub fn vault_forbidden(caller: &Caller, action: &str, resource: &str) -> ApiError {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={}\r\nAction: '{action}'\r\nResource: '{resource}'\r\nAssignment: (not found)\r\n",
        caller.app_id, caller.object_id
    );
    ApiError::new(403, "Forbidden", message.clone()).with_body(json!({
        "error": {"code": "Forbidden", "message": message, "innererror": {"code": "ForbiddenByRbac"}}
    }))
}

/// OAuth's error shape, as Entra answers a token request it refuses.
pub fn oauth_error(status: u16, error: &str, description: String) -> ApiError {
    ApiError::new(status, error, description.clone()).with_body(json!({
        "error": error,
        "error_description": description,
        "error_codes": [],
        "timestamp": crate::clock::now_rfc3339(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"k".to_vec(), "t".into())
    }

    #[test]
    fn minted_tokens_verify_and_forgeries_do_not() {
        let s = signer();
        let (tok, _) = s.mint("https://management.azure.com/", "oid1", "app1", 3600);
        let caller = s
            .verify(Some(&format!("Bearer {tok}")), &ARM_AUDIENCES)
            .expect("valid");
        assert_eq!(caller.object_id, "oid1");
        let other = TokenSigner::new(b"other".to_vec(), "t".into());
        let (forged, _) = other.mint("https://management.azure.com/", "oid1", "app1", 3600);
        assert_eq!(
            s.verify(Some(&format!("Bearer {forged}")), &ARM_AUDIENCES)
                .unwrap_err()
                .code,
            "InvalidAuthenticationToken"
        );
    }

    #[test]
    fn expired_wrong_audience_and_missing_tokens_are_refused() {
        let s = signer();
        let (expired, _) = s.mint("https://management.azure.com/", "o", "a", -10);
        assert_eq!(
            s.verify(Some(&format!("Bearer {expired}")), &ARM_AUDIENCES)
                .unwrap_err()
                .code,
            "ExpiredAuthenticationToken"
        );
        let (storage, _) = s.mint("https://storage.azure.com/", "o", "a", 600);
        assert_eq!(
            s.verify(Some(&format!("Bearer {storage}")), &ARM_AUDIENCES)
                .unwrap_err()
                .code,
            "InvalidAuthenticationTokenAudience"
        );
        assert_eq!(s.verify(None, &ARM_AUDIENCES).unwrap_err().status, 401);
    }

    #[test]
    fn roles_grant_what_azure_grants() {
        let caller = Caller {
            object_id: "p".into(),
            app_id: "a".into(),
            audience: String::new(),
        };
        let reader = vec![RoleAssignment {
            principal_id: "p".into(),
            role: "Reader".into(),
            scope: "/subscriptions/s".into(),
            not_actions: Vec::new(),
            ..Default::default()
        }];
        assert!(authorize(
            &reader,
            &caller,
            Access::Read,
            "/subscriptions/s/resourceGroups/r"
        ));
        assert!(!authorize(
            &reader,
            &caller,
            Access::Write,
            "/subscriptions/s/resourceGroups/r"
        ));
        assert!(!authorize(
            &reader,
            &caller,
            Access::Read,
            "/subscriptions/other"
        ));
        assert!(authorize(&[], &caller, Access::Delete, "/x"));
        // A custom role: Data Factory Contributor without reading CDCs.
        let custom = vec![RoleAssignment {
            principal_id: "p".into(),
            role: "Data Factory Contributor".into(),
            scope: "/subscriptions/s".into(),
            not_actions: vec!["Microsoft.DataFactory/factories/adfcdcs/*".into()],
            ..Default::default()
        }];
        let (r, path) = (Access::Read, "/subscriptions/s/resourceGroups/r");
        let may = |action: &str| authorize_action(&custom, &caller, r, path, Some(action));
        assert!(may("Microsoft.DataFactory/factories/pipelines/read"));
        assert!(!may("Microsoft.DataFactory/factories/adfcdcs/read"));
        let crypto = vec![RoleAssignment {
            principal_id: "p".into(),
            role: "Key Vault Crypto User".into(),
            scope: "/keyvault".into(),
            not_actions: Vec::new(),
            ..Default::default()
        }];
        assert!(authorize(
            &crypto,
            &caller,
            Access::KeyUse,
            "/keyvault/keys/k"
        ));
        assert!(!authorize(
            &crypto,
            &caller,
            Access::KeyManage,
            "/keyvault/keys/k"
        ));
    }
}
