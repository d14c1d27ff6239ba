//! The factory's own body: identity, encryption, git, region and the
//! staging back-reference.

use super::*;

impl<'a> Planner<'a> {
    /// The factory's body: the snapshot's, without its git link on a DR
    /// copy (the target's own kept), in the target's region (or the one
    /// asked, or the snapshot's), its staging back-reference set only once
    /// that linked service exists.
    pub(super) fn factory(
        &mut self,
        source: &Resource,
        snapshot_region: Option<&str>,
    ) -> Result<Factory, PlanError> {
        let mut notes = Vec::new();
        let mut body = source.definition.clone();
        let current = self.target.factory.as_ref();
        if !self.options.with_git {
            self.git(&mut body, current, &mut notes);
        }
        let region = self.region(&body, current, snapshot_region)?;
        if let Some(map) = body.as_object_mut() {
            map.insert("location".into(), Value::String(region.clone()));
        }
        identity(&mut body, current, &mut notes);
        self.identity_credentials(&body);
        self.encryption(&body, current, &mut notes)?;
        let (first_body, mut final_body) = self.staging(&body, &mut notes);
        let action = match current {
            None => Action::Create,
            Some(c) if canon(c) == canon(&body) => Action::Unchanged,
            Some(_) => Action::Update,
        };
        if action == Action::Unchanged {
            final_body = None;
        }
        Ok(Factory {
            plan: FactoryPlan {
                action,
                region,
                body: first_body,
                second_write: final_body.is_some(),
                final_body,
                notes,
            },
            expected: body,
        })
    }

    /// A customer-managed key goes on with the factory's first PUT, before
    /// any child, with the user-assigned identity it uses in the same body
    /// (attached as the key is set). The service refuses it on a factory
    /// that has resources or a managed virtual network ("Encrypt Azure Data
    /// Factory with customer-managed keys"), so such a plan is refused here,
    /// before anything is written.
    pub(super) fn encryption(
        &self,
        body: &Value,
        current: Option<&Value>,
        notes: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let Some(encryption) = body
            .pointer("/properties/encryption")
            .filter(|e| e.is_object())
        else {
            return Ok(());
        };
        let text = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let key = format!(
            "{}keys/{}",
            text(encryption, "/vaultBaseUrl")
                .trim_end_matches('/')
                .to_string()
                + "/",
            text(encryption, "/keyName")
        );
        let same = current
            .and_then(|c| c.pointer("/properties/encryption"))
            .is_some_and(|c| canon(c) == canon(encryption));
        if !same {
            let vnet = self
                .target
                .resources
                .iter()
                .any(|r| r.kind == ResourceKind::ManagedVirtualNetwork);
            let why = if vnet {
                Some("the target factory has a managed virtual network, with which the service does not enable a customer-managed key".to_string())
            } else if !self.target.resources.is_empty() {
                Some(format!(
                    "the service sets a customer-managed key only on an empty factory, and the target has {} resource(s)",
                    self.target.resources.len()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(PlanError::CustomerManagedKey { key, why });
            }
        }
        let uami = text(encryption, "/identity/userAssignedIdentity");
        if !uami.is_empty() {
            let attached = body
                .pointer("/identity/userAssignedIdentities")
                .and_then(Value::as_object)
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(&uami)));
            if !attached {
                return Err(PlanError::CustomerManagedKey {
                    key,
                    why: format!(
                        "it uses the user-assigned identity {uami}, which the factory's definition does not attach"
                    ),
                });
            }
        }
        if !same {
            notes.push(format!(
                "customer-managed key {key} set with the factory's first write, before any resource{}; the identity needs get, wrapKey and unwrapKey on the key",
                if uami.is_empty() {
                    String::new()
                } else {
                    format!(", with {uami} attached")
                }
            ));
        }
        Ok(())
    }

    /// Credentials of kind ManagedIdentity name a user-assigned identity;
    /// the restored factory must have it attached, or they cannot work.
    pub(super) fn identity_credentials(&mut self, factory: &Value) {
        let attached: Vec<String> = factory
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        for r in self
            .children
            .iter()
            .filter(|r| r.kind == ResourceKind::Credential)
        {
            let uses = r
                .definition
                .pointer("/properties/typeProperties/resourceId")
                .and_then(Value::as_str);
            let managed = r
                .definition
                .pointer("/properties/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("ManagedIdentity"));
            if let (true, Some(id)) = (managed, uses)
                && !attached.contains(&id.to_ascii_lowercase())
            {
                self.warnings.push(format!(
                    "{} uses the user-assigned identity {id}, which the restored factory does not have attached: attach it (identity.userAssignedIdentities of the factory) or point the credential at one it has",
                    r.label()
                ));
            }
        }
    }

    /// A DR copy gets no git link of the source; a PUT replaces the whole
    /// factory, so the target's own git link is carried over.
    pub(super) fn git(&self, body: &mut Value, current: Option<&Value>, notes: &mut Vec<String>) {
        let had = body
            .pointer_mut("/properties")
            .and_then(Value::as_object_mut)
            .and_then(|p| p.shift_remove("repoConfiguration"))
            .is_some();
        if had {
            notes.push("git configuration not restored (DR copy); --with-git restores it".into());
        }
        if let Some(repo) = current.and_then(|c| c.pointer("/properties/repoConfiguration"))
            && let Some(props) = body
                .pointer_mut("/properties")
                .and_then(Value::as_object_mut)
        {
            props.insert("repoConfiguration".into(), repo.clone());
            notes.push("the target's own git configuration is kept".into());
        }
    }

    /// An existing factory's location is fixed; a new one takes --region,
    /// else the snapshot's region.
    pub(super) fn region(
        &mut self,
        body: &Value,
        current: Option<&Value>,
        snapshot_region: Option<&str>,
    ) -> Result<String, PlanError> {
        match current
            .and_then(|c| c.get("location"))
            .and_then(Value::as_str)
        {
            Some(existing) => {
                if let Some(asked) = &self.options.region
                    && !asked.eq_ignore_ascii_case(existing)
                {
                    self.warnings.push(format!(
                        "--region {asked} ignored: the target factory exists in {existing} (location is fixed at creation)"
                    ));
                }
                Ok(existing.to_string())
            }
            None => self
                .options
                .region
                .clone()
                .or_else(|| {
                    // The snapshot's region, or what the region map puts
                    // in its place.
                    snapshot_region.map(|r| {
                        let map = self.options.region_map.as_ref();
                        map.and_then(|m| m.region_for(r)).unwrap_or(r).to_string()
                    })
                })
                .or_else(|| {
                    body.get("location")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .ok_or(PlanError::NoRegion),
        }
    }

    /// The first body (without the staging back-reference when its linked
    /// service is not there yet) and the body written after it exists.
    pub(super) fn staging(&self, body: &Value, notes: &mut Vec<String>) -> (Value, Option<Value>) {
        let mut first = body.clone();
        let Some(ls) = body
            .pointer("/properties/globalConfigurations/factoryStagingLSReferenceName")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
        else {
            return (first, None);
        };
        if self
            .in_target
            .contains_key(&key(ResourceKind::LinkedService, None, &ls))
        {
            return (first, None);
        }
        if let Some(gc) = first
            .pointer_mut("/properties/globalConfigurations")
            .and_then(Value::as_object_mut)
        {
            for k in STAGING {
                gc.shift_remove(*k);
            }
        }
        notes.push(format!(
            "default staging linked service {ls} is set after it is restored"
        ));
        (first, Some(body.clone()))
    }
}

/// The factory's identity in the PUT: the snapshot's, plus whatever the
/// target already has (a factory PUT replaces the identity, and a removed
/// system-assigned identity never comes back: a new one is a new principal
/// without the old one's access). User-assigned identities go without their
/// read-only `clientId`/`principalId`.
pub(super) fn identity(body: &mut Value, current: Option<&Value>, notes: &mut Vec<String>) {
    let types = |v: Option<&Value>| -> (bool, bool) {
        let t = v
            .and_then(|v| v.pointer("/identity/type"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        (t.contains("systemassigned"), t.contains("userassigned"))
    };
    let (snap_system, snap_user) = types(Some(body));
    let (target_system, target_user) = types(current);
    let mut uamis = serde_json::Map::new();
    for source in [current, Some(&*body)].into_iter().flatten() {
        if let Some(map) = source
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
        {
            for id in map.keys() {
                if !uamis.keys().any(|k| k.eq_ignore_ascii_case(id)) {
                    uamis.insert(id.clone(), Value::Object(Default::default()));
                }
            }
        }
    }
    let system = snap_system || target_system;
    let user = snap_user || target_user || !uamis.is_empty();
    if target_system && !snap_system {
        notes.push("the target's system-assigned identity is kept: removing it would lose its principal and every role granted to it".into());
    }
    let kept_uamis = current
        .and_then(|c| c.pointer("/identity/userAssignedIdentities"))
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| {
                    !body
                        .pointer("/identity/userAssignedIdentities")
                        .and_then(Value::as_object)
                        .is_some_and(|b| b.keys().any(|x| x.eq_ignore_ascii_case(k)))
                })
                .count()
        })
        .unwrap_or(0);
    if kept_uamis > 0 {
        notes.push(format!(
            "{kept_uamis} user-assigned identit{} the target has attached stay attached",
            if kept_uamis == 1 { "y" } else { "ies" }
        ));
    }
    if current.is_none() && system {
        notes.push("a new factory gets a new system-assigned principal: the backed-up roles and Key Vault access policies are granted to it after the writes; access given any other way (database users, file ACLs) must be given again by hand".into());
    }
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let ty = match (system, user) {
        (true, true) => "SystemAssigned,UserAssigned",
        (true, false) => "SystemAssigned",
        (false, true) => "UserAssigned",
        (false, false) => return,
    };
    let mut identity = map
        .get("identity")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    identity.insert("type".into(), Value::String(ty.into()));
    if uamis.is_empty() {
        identity.shift_remove("userAssignedIdentities");
    } else {
        identity.insert("userAssignedIdentities".into(), Value::Object(uamis));
    }
    map.insert("identity".into(), Value::Object(identity));
}
