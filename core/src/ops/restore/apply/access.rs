//! Access the restored factory needs: role assignments for its identity
//! (never another principal's), Key Vault access policies (or the command
//! that gives one), custom roles found by name.

use super::*;

impl Applier<'_> {
    /// Each role the snapshot's identity held, granted to the restored
    /// factory's system-assigned identity at the same scope (the factory's
    /// own id where it was the source's), and each Key Vault access policy
    /// it had, given to the new identity on the same vault. A grant the
    /// restoring identity may not make fails with the exact command for
    /// someone who may.
    pub(super) async fn grants(&self, plan: &Plan) -> usize {
        let grants: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| ResourceKind::GRANTS.contains(&s.kind))
            .collect();
        if grants.is_empty() {
            return 0;
        }
        let identity = match self.arm.get(&self.base).await {
            Ok(f) => f.get("identity").cloned(),
            Err(_) => None,
        };
        let tenant = identity
            .as_ref()
            .and_then(|i| i.get("tenantId"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut granted = 0;
        for step in grants {
            let principal = match own_principal(identity.as_ref(), &step.definition) {
                Ok(p) => p,
                Err(missing) => {
                    self.fail(step.label.clone(), missing);
                    continue;
                }
            };
            let (answer, command) = if step.kind == ResourceKind::AccessPolicy {
                self.give_policy(step, &principal, &tenant).await
            } else {
                self.grant_role(step, &principal).await
            };
            match answer {
                Ok(()) => {
                    granted += 1;
                    self.progress.wrote_news(&format!("granted {}", step.label));
                }
                Err(e) if e.code() == Some("RoleAssignmentExists") => {
                    granted += 1;
                    self.progress
                        .wrote_news(&format!("already held: {}", step.label));
                }
                // A vault that refuses changes (failed over read-only in a
                // regional outage) is a grant to give later, not a write
                // that failed: reported with the command, as a refusal is.
                Err(e) if step.kind == ResourceKind::AccessPolicy && e.status() == Some(409) => {
                    self.ungranted.lock().expect("grants").push(Failure {
                        what: step.label.clone(),
                        error: format!(
                            "{e}; the vault takes no changes now (failed over read-only?): once it does, {command}; or map it to a vault in the new region (--map)"
                        ),
                    })
                }
                Err(e) if matches!(e.status(), Some(401 | 403)) => {
                    self.ungranted.lock().expect("grants").push(Failure {
                        what: step.label.clone(),
                        error: format!("{e}; {command}"),
                    })
                }
                Err(e) => self.fail(
                    step.label.clone(),
                    format!("{}; {command}", self.explain(&e)),
                ),
            }
        }
        granted
    }

    /// A role for the new principal; the command for someone who may grant.
    pub(super) async fn grant_role(
        &self,
        step: &crate::plan::restore::Step,
        principal: &str,
    ) -> (Result<(), ArmError>, String) {
        use azure_core::http::Method;
        let scope = match text_at(&step.definition, "/properties/scope") {
            s if s == crate::model::kind::FACTORY_ID => self.base.clone(),
            s => s,
        };
        // The factory's own identity is the new one; anyone else who held a
        // role on the factory holds it on the restored one.
        let (principal, kind) = match text_at(&step.definition, "/properties/principal") {
            p if crate::model::kind::own_identity(&p) => {
                (principal.to_string(), "ServicePrincipal".to_string())
            }
            p => (
                p,
                match text_at(&step.definition, "/properties/principalType") {
                    t if t.is_empty() => "ServicePrincipal".to_string(),
                    t => t,
                },
            ),
        };
        let principal = principal.as_str();
        // A custom role is known by its name: its GUID is its tenant's.
        let role = if text_at(&step.definition, "/properties/roleType") == "CustomRole" {
            let custom = text_at(&step.definition, "/properties/roleName");
            match self.custom_role(&scope, &custom).await {
                Some(guid) => guid,
                None => {
                    let missing = ArmError::Status {
                        method: "GET".into(),
                        url: format!("{scope}/providers/Microsoft.Authorization/roleDefinitions"),
                        status: 404,
                        code: "RoleDefinitionDoesNotExist".into(),
                        message: format!("no custom role named '{custom}' is visible at {scope}"),
                    };
                    return (
                        Err(missing),
                        format!(
                            "create the custom role '{custom}' where the target is (az role definition create), then run the restore again"
                        ),
                    );
                }
            }
        } else {
            text_at(&step.definition, "/properties/roleDefinitionId")
        };
        let command = format!(
            "someone with Owner, User Access Administrator or Role Based Access Control Administrator there runs: az role assignment create --assignee-object-id {principal} --assignee-principal-type {kind} --role {role} --scope {scope}"
        );
        // Granted only where missing: a user-assigned identity outlives
        // the factory and keeps what it held (and reading needs no right
        // to grant).
        if self.holds(&scope, principal, &role).await {
            let held = ArmError::Status {
                method: "GET".into(),
                url: format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
                status: 409,
                code: "RoleAssignmentExists".into(),
                message: "already held".into(),
            };
            return (Err(held), command);
        }
        let name = grant_name(principal, &role, &scope);
        let path = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={}",
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let body = serde_json::json!({"properties": {
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal, "principalType": kind}});
        let answer = write(
            self.arm,
            &self.throttle,
            Method::Put,
            &path,
            Some(&body),
            false,
        )
        .await;
        (answer.map(|_| ()), command)
    }

    /// Whether `principal` already holds `role` at exactly `scope` (an
    /// answer that cannot be read counts as no: the grant is tried).
    pub(super) async fn holds(&self, scope: &str, principal: &str, role: &str) -> bool {
        let url = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments?$filter=assignedTo('{principal}')&api-version={}",
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let Ok(listed) = self.arm.get(&url).await else {
            return false;
        };
        let scope = scope.trim_end_matches('/');
        listed["value"].as_array().into_iter().flatten().any(|a| {
            let text = |p: &str| a.pointer(p).and_then(Value::as_str).unwrap_or_default();
            text("/properties/scope")
                .trim_end_matches('/')
                .eq_ignore_ascii_case(scope)
                && text("/properties/principalId").eq_ignore_ascii_case(principal)
                && text("/properties/roleDefinitionId")
                    .rsplit('/')
                    .next()
                    .is_some_and(|g| g.eq_ignore_ascii_case(role))
        })
    }

    /// The GUID of the custom role named `name` visible at `scope`.
    pub(super) async fn custom_role(&self, scope: &str, name: &str) -> Option<String> {
        let url = format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq '{}'&api-version={}",
            name.replace('\'', "''"),
            crate::model::kind::ROLE_ASSIGNMENTS_API
        );
        let listed = self.arm.get(&url).await.ok()?;
        listed
            .pointer("/value/0/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The old identity's permissions on a vault, added for the new one
    /// (`accessPolicies/add` merges; nothing of anyone else's changes).
    pub(super) async fn give_policy(
        &self,
        step: &crate::plan::restore::Step,
        principal: &str,
        tenant: &str,
    ) -> (Result<(), ArmError>, String) {
        use azure_core::http::Method;
        let vault = text_at(&step.definition, "/properties/vault");
        let permissions = step
            .definition
            .pointer("/properties/permissions")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let path = format!(
            "{vault}/accessPolicies/add?api-version={}",
            crate::model::kind::KEY_VAULT_API
        );
        let body = serde_json::json!({"properties": {"accessPolicies": [
            {"tenantId": tenant, "objectId": principal, "permissions": permissions}]}});
        let answer = write(
            self.arm,
            &self.throttle,
            Method::Put,
            &path,
            Some(&body),
            false,
        )
        .await;
        let command = format!(
            "someone with Owner, Contributor or Key Vault Contributor on the vault runs: {}",
            set_policy_command(&vault, principal, &permissions)
        );
        (answer.map(|_| ()), command)
    }
}

/// A string field of a definition ("" when absent).
pub(super) fn text_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `az keyvault set-policy` for `permissions` (keys, secrets, certificates,
/// storage) on the vault with id `vault`.
pub fn set_policy_command(vault: &str, principal: &str, permissions: &Value) -> String {
    let part = |i: usize| vault.split('/').nth(i).unwrap_or_default().to_string();
    let mut command = format!(
        "az keyvault set-policy --subscription {} --resource-group {} --name {} --object-id {principal}",
        part(2),
        part(4),
        part(8)
    );
    for group in ["keys", "secrets", "certificates", "storage"] {
        let granted: Vec<&str> = permissions
            .get(group)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !granted.is_empty() {
            let flag = group.trim_end_matches('s');
            command.push_str(&format!(" --{flag}-permissions {}", granted.join(" ")));
        }
    }
    command
}

/// The principal of the restored factory's identity a grant was held by
/// (`properties.principal`: the system-assigned one, or a user-assigned one
/// it has attached); a person's or group's own id is theirs (`Ok("")`: the
/// grant names it). Why not, for the report.
pub(super) fn own_principal(identity: Option<&Value>, grant: &Value) -> Result<String, String> {
    use crate::model::kind::{SYSTEM_ASSIGNED, USER_ASSIGNED};
    let held_by = text_at(grant, "/properties/principal");
    if !crate::model::kind::own_identity(&held_by) {
        return Ok(String::new());
    }
    if held_by.is_empty() || held_by == SYSTEM_ASSIGNED {
        return identity
            .and_then(|i| i.get("principalId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                "the restored factory has no system-assigned identity to grant it to".to_string()
            });
    }
    let uami = &held_by[USER_ASSIGNED.len()..];
    identity
        .and_then(|i| i.get("userAssignedIdentities"))
        .and_then(Value::as_object)
        .and_then(|all| all.iter().find(|(id, _)| id.eq_ignore_ascii_case(uami)))
        .and_then(|(_, u)| u.get("principalId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the restored factory does not have the user-assigned identity {uami} attached (or it no longer exists): attach it (identity.userAssignedIdentities of the factory), or make it again, then run the restore again"
            )
        })
}

/// The same grant always gets the same assignment name (a name-based
/// GUID of principal, role and scope): a rerun finds it, never doubles it.
pub(super) fn grant_name(principal: &str, role: &str, scope: &str) -> uuid::Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!("{principal}|{role}|{}", scope.to_ascii_lowercase()).as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
}
