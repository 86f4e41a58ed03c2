//! Security groups of the built-in networks. Upstream keeps groups in
//! Neutron and names them in `security_groups` on create and in
//! `add/remove_security_group` (1.1-1.14); with the built-in driver the
//! groups are this service's own, so it offers the minimum a user needs to
//! make them: `/v1/security_groups` (list, show, create with rules in
//! Neutron's shape, delete), scoped to the caller's project. A project's
//! `default` group is made on first use; a container's `exposed_ports`
//! make a group `zun-<uuid>` that goes with the container, as upstream.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use zun_store::{SecurityGroupRecord, Store};
use zun_types::security_group::{DEFAULT_GROUP_NAME, RuleRequest, exposed_group_name};
use zun_types::{ApiError, Container};

use crate::containers::body_bytes;
use crate::context::Ctx;
use crate::error::Error;
use crate::{ApiState, null_response, params};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/security_groups", get(list).post(create))
        .route("/v1/security_groups/{ident}", get(show).delete(remove))
}

fn view(g: &SecurityGroupRecord) -> Value {
    let rules: Vec<Value> = g
        .rules
        .iter()
        .map(|r| {
            let mut v = json!(r);
            v["security_group_id"] = json!(g.uuid);
            v
        })
        .collect();
    json!({
        "id": g.uuid,
        "name": g.name,
        "description": g.description,
        "project_id": g.project_id,
        "security_group_rules": rules,
    })
}

fn not_found(ident: &str) -> Error {
    Error(ApiError::invalid(format!(
        "Security group {ident} not found."
    )))
}

fn networks_enabled(state: &ApiState) -> Result<()> {
    if state.network_pool.is_none() {
        return Err(Error(ApiError::invalid(
            "Security groups cannot be used: no network driver is configured in this deployment.",
        )));
    }
    Ok(())
}

/// The project's group `ident` (uuid or name); `default` is made on first
/// use.
pub async fn find(store: &dyn Store, project_id: &str, ident: &str) -> Result<SecurityGroupRecord> {
    if ident == DEFAULT_GROUP_NAME {
        return Ok(store
            .ensure_security_group(&SecurityGroupRecord::project_default(project_id))
            .await?);
    }
    store
        .find_security_group(project_id, ident)
        .await?
        .ok_or_else(|| not_found(ident))
}

/// The groups a create names, as ids (de-duplicated, in order).
pub async fn resolve(state: &ApiState, project_id: &str, names: &[String]) -> Result<Vec<String>> {
    networks_enabled(state)?;
    let mut ids: Vec<String> = Vec::new();
    for name in names {
        let group = find(state.store.as_ref(), project_id, name).await?;
        if !ids.contains(&group.uuid) {
            ids.push(group.uuid);
        }
    }
    Ok(ids)
}

/// The group opening a new container's `exposed_ports` to everyone (as
/// upstream's), stored before the container, which names it.
pub async fn exposed_group(state: &ApiState, container: &Container) -> Result<Option<String>> {
    let ports = zun_types::security_group::exposed_ports(container.exposed_ports.as_ref());
    if ports.is_empty() || state.network_pool.is_none() {
        return Ok(None);
    }
    let mut group = SecurityGroupRecord::new(
        &container.project_id,
        &exposed_group_name(&container.uuid),
        "The exposed ports of a container",
        Vec::new(),
        Some(&container.uuid),
    );
    group.rules =
        zun_types::security_group::exposed_rules(&ports, || uuid::Uuid::new_v4().to_string());
    state.store.insert_security_group(&group).await?;
    Ok(Some(group.uuid))
}

/// `add_security_group` / `remove_security_group` (1.1-1.14): `name` is
/// a group of the caller's project; the container's groups are written
/// with the action, and its host applies them.
pub async fn change(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    name: Option<&str>,
    add: bool,
) -> Result<Response> {
    networks_enabled(state)?;
    let Some(name) = name.filter(|n| (1..=255).contains(&n.chars().count())) else {
        return Err(Error(ApiError::schema("'name' is a required property")));
    };
    let group = find(state.store.as_ref(), &container.project_id, name).await?;
    let default = find(
        state.store.as_ref(),
        &container.project_id,
        DEFAULT_GROUP_NAME,
    )
    .await?;
    let default_id = default.uuid;
    let check = if add {
        zun_types::state::Action::AddSecurityGroup
    } else {
        zun_types::state::Action::RemoveSecurityGroup
    };
    let record =
        crate::containers::new_action(ctx, container, check.key(), json!({ "name": name }));
    let group_id = group.uuid.clone();
    let mutate = move |c: &mut Container| {
        check.check(&c.uuid, c.status)?;
        // A container that never named a group is in the default group.
        let mut groups = match c.security_groups.clone() {
            Some(groups) => groups,
            None => vec![default_id.clone()],
        };
        let present = groups.contains(&group_id);
        if add {
            if present {
                return Err(ApiError::invalid(format!(
                    "Security group {name} has already been added to container {}.",
                    c.uuid
                )));
            }
            groups.push(group_id.clone());
        } else {
            if !present {
                return Err(ApiError::invalid(format!(
                    "Security group {name} is not added to container {}.",
                    c.uuid
                )));
            }
            groups.retain(|g| *g != group_id);
        }
        c.security_groups = Some(groups);
        Ok(())
    };
    state
        .store
        .update_container(&container.uuid, &mutate, Some(&record))
        .await?;
    Ok(null_response(StatusCode::ACCEPTED))
}

async fn list(State(state): Shared, ctx: Ctx) -> Result<Response> {
    let project = &ctx.identity.project_id;
    let mut groups = state.store.list_security_groups(Some(project)).await?;
    if state.network_pool.is_some() && !groups.iter().any(|g| g.name == DEFAULT_GROUP_NAME) {
        groups.insert(
            0,
            find(state.store.as_ref(), project, DEFAULT_GROUP_NAME).await?,
        );
    }
    let views: Vec<Value> = groups.iter().map(view).collect();
    Ok(Json(json!({ "security_groups": views })).into_response())
}

async fn show(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let group = find(state.store.as_ref(), &ctx.identity.project_id, &ident)
        .await
        .map_err(|_| {
            Error(ApiError::new(
                404,
                "",
                format!("Security group {ident} not found."),
            ))
        })?;
    Ok(Json(view(&group)).into_response())
}

async fn create(
    State(state): Shared,
    ctx: Ctx,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    networks_enabled(&state)?;
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let Some(map) = value.as_object() else {
        return Err(Error(ApiError::schema(format!(
            "{value} is not of type 'object'"
        ))));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["name", "description", "rules"].contains(&k.as_str()))
    {
        return Err(Error(ApiError::schema(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        ))));
    }
    let name = match map.get("name") {
        Some(Value::String(name)) if (1..=255).contains(&name.chars().count()) => name.clone(),
        Some(other) => {
            return Err(Error(ApiError::schema(format!(
                "Invalid input for field 'name'. Value: '{other}'. it must be a string of 1 to 255 characters"
            ))));
        }
        None => return Err(Error(ApiError::schema("'name' is a required property"))),
    };
    if name == DEFAULT_GROUP_NAME {
        return Err(Error(ApiError::conflict(
            "The default security group is made by the service.",
        )));
    }
    let description = match map.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(Error(ApiError::schema(format!(
                "{other} is not of type 'string'"
            ))));
        }
    };
    let project = ctx.identity.project_id.clone();
    let raw_rules = match map.get("rules") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(rules)) => rules.as_slice(),
        Some(_) => return Err(Error(ApiError::schema("'rules' is not of type 'array'"))),
    };
    let mut rules = Vec::new();
    for raw in raw_rules {
        let mut rule = RuleRequest::parse(raw).map_err(|e| Error(ApiError::invalid(e.0)))?;
        // A remote group is one of the project's, by name or id; the new
        // group's own name is resolved once it has an id, below.
        if let Some(remote) = rule.remote_group_id.as_deref()
            && remote != name
        {
            rule.remote_group_id = Some(find(state.store.as_ref(), &project, remote).await?.uuid);
        }
        rules.push(rule);
    }
    let mut group = SecurityGroupRecord::new(&project, &name, &description, rules, None);
    // A rule naming the new group itself (by name) refers to its members.
    for rule in &mut group.rules {
        if rule.remote_group_id.as_deref() == Some(name.as_str()) {
            rule.remote_group_id = Some(group.uuid.clone());
        }
    }
    state.store.insert_security_group(&group).await?;
    Ok((StatusCode::CREATED, Json(view(&group))).into_response())
}

async fn remove(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let project = ctx.identity.project_id.clone();
    let group = state
        .store
        .find_security_group(&project, &ident)
        .await?
        .ok_or_else(|| {
            Error(ApiError::new(
                404,
                "",
                format!("Security group {ident} not found."),
            ))
        })?;
    if group.name == DEFAULT_GROUP_NAME || group.container_uuid.is_some() {
        return Err(Error(ApiError::conflict(format!(
            "Security group {ident} is managed by the service and cannot be deleted."
        ))));
    }
    let query = zun_store::ListQuery::whole_project(&project);
    let in_use = state.store.list_containers(&query).await?.iter().any(|c| {
        c.security_groups
            .as_ref()
            .is_some_and(|g| g.contains(&group.uuid))
    });
    if in_use {
        return Err(Error(ApiError::conflict(format!(
            "Security group {ident} is in use."
        ))));
    }
    state.store.delete_security_group(&group.uuid).await?;
    Ok(null_response(StatusCode::NO_CONTENT))
}
