//! Azure Resource Graph, the subset adfdr's discovery sends: `POST
//! /providers/Microsoft.ResourceGraph/resources` with `subscriptions`, a KQL
//! query over the `Resources` table (`where` with `=~`, `==`, `!=`, `!~` on
//! `type`, `name`, `resourceGroup`, `subscriptionId`, `location` and
//! `tags['k']`, joined by `and`; `project`), and `options` (`$top`, `$skip`,
//! `$skipToken`), answered as ResourcesFirstPageQuery.json and
//! ResourcesNextPageQuery.json show. Like the service, it returns only what
//! the caller may read, and a query outside the subset is refused, never
//! half-answered. And `GET /subscriptions`, the subscriptions the caller can
//! see.

use serde_json::{Value, json};

use crate::auth::{Access, Caller, RoleAssignment, authorize_action};
use crate::error::{ApiError, ApiResult};
use crate::state::World;

pub const API_VERSIONS: [&str; 3] = ["2021-03-01", "2022-10-01", "2024-04-01"];

/// What the service says for a query it cannot run.
fn invalid(detail: &str) -> ApiError {
    ApiError::new(
        400,
        "BadRequest",
        format!(
            "Please provide below info when asking for support: ... Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying. ({detail})"
        ),
    )
}

/// One test of a `where`: field, operator, value.
#[derive(Debug, PartialEq)]
struct Test {
    field: String,
    op: String,
    value: String,
}

#[derive(Debug, Default, PartialEq)]
struct Query {
    tests: Vec<Test>,
    project: Option<Vec<String>>,
}

fn quoted(text: &str) -> Option<String> {
    let t = text.trim();
    let q = t.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    t.strip_prefix(q)?.strip_suffix(q).map(str::to_string)
}

fn field(text: &str) -> Option<String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("tags[") {
        return Some(format!("tags.{}", quoted(rest.strip_suffix(']')?)?));
    }
    if let Some(rest) = t.strip_prefix("tags.") {
        return Some(format!("tags.{rest}"));
    }
    [
        "type",
        "name",
        "resourceGroup",
        "subscriptionId",
        "location",
        "id",
        "kind",
        "tags",
        "tenantId",
    ]
    .iter()
    .find(|f| f.eq_ignore_ascii_case(t))
    .map(|f| f.to_string())
}

fn parse(query: &str) -> ApiResult<Query> {
    let mut parts = query.split('|').map(str::trim);
    let table = parts.next().unwrap_or_default();
    if !table.eq_ignore_ascii_case("resources") {
        return Err(invalid(&format!(
            "table '{table}' is not served by adf-emulator; use Resources"
        )));
    }
    let mut out = Query::default();
    for part in parts {
        if let Some(rest) = part.strip_prefix("where ") {
            for test in rest.split(" and ") {
                let op = ["=~", "!~", "==", "!="]
                    .into_iter()
                    .find(|op| test.contains(op))
                    .ok_or_else(|| invalid(&format!("'{test}': only =~ !~ == != tests")))?;
                let (l, r) = test.split_once(op).expect("op found");
                out.tests.push(Test {
                    field: field(l)
                        .ok_or_else(|| invalid(&format!("unknown column '{}'", l.trim())))?,
                    op: op.to_string(),
                    value: quoted(r).ok_or_else(|| {
                        invalid(&format!("'{}' is not a string literal", r.trim()))
                    })?,
                });
            }
        } else if let Some(rest) = part.strip_prefix("project ") {
            let cols: Option<Vec<String>> = rest.split(',').map(field).collect();
            out.project =
                Some(cols.ok_or_else(|| invalid(&format!("project {rest}: unknown column")))?);
        } else {
            return Err(invalid(&format!(
                "operator '{part}' is not served by adf-emulator"
            )));
        }
    }
    Ok(out)
}

fn value_of<'a>(row: &'a Value, field: &str) -> Option<&'a str> {
    match field.strip_prefix("tags.") {
        Some(tag) => row["tags"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(tag))
            .and_then(|(_, v)| v.as_str()),
        None => row[field].as_str(),
    }
}

fn passes(row: &Value, t: &Test) -> bool {
    let v = value_of(row, &t.field);
    match t.op.as_str() {
        "=~" => v.is_some_and(|v| v.eq_ignore_ascii_case(&t.value)),
        "!~" => !v.is_some_and(|v| v.eq_ignore_ascii_case(&t.value)),
        "==" => v == Some(t.value.as_str()),
        _ => v != Some(t.value.as_str()),
    }
}

/// The factories as Resource Graph rows.
fn rows(
    world: &World,
    assignments: &[RoleAssignment],
    caller: &Caller,
    subs: &[String],
    tenant: &str,
) -> Vec<Value> {
    let mut out: Vec<Value> = world
        .factories
        .values()
        .filter(|f| subs.iter().any(|s| s.eq_ignore_ascii_case(&f.subscription)))
        .map(|f| {
            let id = crate::state::factory_id(&f.subscription, &f.resource_group, &f.name);
            json!({
                "id": id,
                "name": f.name,
                "type": "microsoft.datafactory/factories",
                "tenantId": tenant,
                "kind": "",
                "location": f.body.get("location").cloned().unwrap_or(Value::Null),
                "resourceGroup": f.resource_group.to_ascii_lowercase(),
                "subscriptionId": f.subscription,
                "tags": f.body.get("tags").cloned().unwrap_or_else(|| json!({})),
            })
        })
        // Only what the caller may read, as the service filters by RBAC.
        .filter(|r| {
            authorize_action(
                assignments,
                caller,
                Access::Read,
                r["id"].as_str().unwrap_or_default(),
                Some("Microsoft.DataFactory/factories/read"),
            )
        })
        .collect();
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

/// A `POST /providers/Microsoft.ResourceGraph/resources` body, answered.
pub fn resources(world: &World, caller: &Caller, body: &Value, tenant: &str) -> ApiResult<Value> {
    let subs: Vec<String> = match body.get("subscriptions") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(invalid(
                "subscriptions must be an array of subscription ids",
            ));
        }
        None => visible_subscriptions(world, caller),
    };
    let text = body["query"]
        .as_str()
        .ok_or_else(|| invalid("query is required"))?;
    let q = parse(text)?;
    let all: Vec<Value> = rows(world, &world.role_assignments, caller, &subs, tenant)
        .into_iter()
        .filter(|r| q.tests.iter().all(|t| passes(r, t)))
        .collect();
    let options = &body["options"];
    let top = options["$top"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
    let start = match options["$skipToken"].as_str() {
        Some(token) => {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(token)
                .map_err(|_| invalid("$skipToken is not one this service issued"))?;
            String::from_utf8_lossy(&raw)
                .strip_prefix("offset:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| invalid("$skipToken is not one this service issued"))?
        }
        None => options["$skip"].as_u64().unwrap_or(0) as usize,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(top)
        .map(|r| match &q.project {
            None => r.clone(),
            Some(cols) => {
                let mut o = serde_json::Map::new();
                for c in cols {
                    let key = c
                        .strip_prefix("tags.")
                        .map_or(c.clone(), |t| format!("tags_{t}"));
                    let v = match c.strip_prefix("tags.") {
                        Some(_) => value_of(r, c).map_or(Value::Null, |s| s.into()),
                        None => r[c.as_str()].clone(),
                    };
                    o.insert(key, v);
                }
                Value::Object(o)
            }
        })
        .collect();
    let mut out = json!({
        "totalRecords": all.len(),
        "count": page.len(),
        "resultTruncated": "false",
        "facets": [],
        "data": page,
    });
    if start + top < all.len() {
        use base64::Engine;
        out["$skipToken"] = base64::engine::general_purpose::STANDARD
            .encode(format!("offset:{}", start + top))
            .into();
    }
    Ok(out)
}

/// The subscriptions where the caller holds any role (at the subscription,
/// below it, or above at the root), as `GET /subscriptions` lists them.
pub fn visible_subscriptions(world: &World, caller: &Caller) -> Vec<String> {
    let mut subs: Vec<String> = world
        .factories
        .values()
        .map(|f| f.subscription.clone())
        .chain(world.role_assignments.iter().filter_map(|a| {
            a.scope
                .strip_prefix("/subscriptions/")
                .map(|r| r.split('/').next().unwrap_or(r).to_string())
        }))
        .collect();
    subs.sort_by_key(|s| s.to_ascii_lowercase());
    subs.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    // With no role assignments the emulator is an open sandbox: all of them.
    let open = crate::auth::open(&world.role_assignments);
    subs.into_iter()
        .filter(|s| {
            if open {
                return true;
            }
            let scope = format!("/subscriptions/{s}").to_ascii_lowercase();
            world.role_assignments.iter().any(|a| {
                a.principal_id.eq_ignore_ascii_case(&caller.object_id) && {
                    let at = a.scope.trim_end_matches('/').to_ascii_lowercase();
                    at == "/" || at.is_empty() || at.starts_with(&scope) || scope.starts_with(&at)
                }
            })
        })
        .collect()
}

/// `GET /subscriptions`: `{"value": [{id, subscriptionId, displayName, state, tenantId}]}`.
pub fn subscriptions(world: &World, caller: &Caller, tenant: &str) -> Value {
    let value: Vec<Value> = visible_subscriptions(world, caller)
        .into_iter()
        .map(|s| {
            json!({"id": format!("/subscriptions/{s}"), "subscriptionId": s, "displayName": format!("subscription {s}"),
                   "state": "Enabled", "tenantId": tenant, "authorizationSource": "RoleBased"})
        })
        .collect();
    json!({"value": value})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kql_subset_parses_and_anything_else_is_refused() {
        let q = parse("Resources | where type =~ 'microsoft.datafactory/factories' and tags['adfdr-exclude'] != 'true' | project id, name, tags").expect("parse");
        assert_eq!(q.tests.len(), 2);
        assert_eq!(q.tests[1].field, "tags.adfdr-exclude");
        assert_eq!(q.project.as_ref().map(Vec::len), Some(3));
        assert!(parse("Resources | summarize count()").is_err());
        assert!(parse("ResourceContainers").is_err());
        assert!(parse("Resources | where name contains 'x'").is_err());
    }
}
