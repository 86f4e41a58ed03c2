//! `/v1/networks` (reference §7.8). Upstream wraps a Neutron network in a
//! Docker network for kuryr; with the built-in driver a network is the
//! project's own segment, so `POST` makes a new network of the caller's
//! project (`name`; `neutron_net_id` has nothing to name here and is
//! refused), answered 200 with upstream's keys, and `DELETE` (1.27)
//! removes one no container is on. `GET` (list and show) is this
//! service's addition, for users to find the networks `--net` can name.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use zun_store::{NetworkRecord, Store};
use zun_types::ApiError;
use zun_types::microversion::Version;

use crate::containers::body_bytes;
use crate::context::Ctx;
use crate::error::Error;
use crate::{ApiState, null_response, params};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/networks", get(list).post(create))
        .route("/v1/networks/{ident}", delete(remove).get(show))
}

fn view(n: &NetworkRecord, user_id: Option<&str>) -> Value {
    json!({
        "uuid": n.uuid,
        "name": n.name,
        "project_id": n.project_id,
        "user_id": user_id,
        "network_id": n.uuid,
        "neutron_net_id": n.uuid,
        "subnet_id": n.subnet_uuid,
        "cidr": n.cidr.to_string(),
        "gateway": n.gateway.to_string(),
    })
}

/// The network `ident` (uuid or name) of the caller's project; an admin
/// may name any network by uuid.
async fn find(store: &dyn Store, ctx: &Ctx, ident: &str) -> Result<NetworkRecord> {
    if ctx.is_admin()
        && let Some(network) = store.get_network(ident).await?
    {
        return Ok(network);
    }
    store
        .find_network(&ctx.identity.project_id, ident)
        .await?
        .ok_or_else(|| Error(ApiError::network_not_found(ident)))
}

async fn create(
    State(state): Shared,
    ctx: Ctx,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    ctx.authorize("network:create", &ctx.own_target())?;
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let Some(map) = value.as_object() else {
        return Err(Error(ApiError::schema(format!(
            "{value} is not of type 'object'"
        ))));
    };
    for key in map.keys() {
        if key != "name" && key != "neutron_net_id" {
            return Err(Error(ApiError::schema(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            ))));
        }
    }
    let name = match map.get("name") {
        Some(Value::String(name)) if (2..=255).contains(&name.chars().count()) => name.clone(),
        Some(other) => {
            return Err(Error(ApiError::schema(format!(
                "Invalid input for field 'name'.Value: '{other}'. it must be a string of 2 to 255 characters"
            ))));
        }
        None => return Err(Error(ApiError::schema("'name' is a required property"))),
    };
    if map.contains_key("neutron_net_id") {
        return Err(Error(ApiError::invalid(
            "neutron_net_id cannot be used: this deployment's networks are its own (built-in driver), not Neutron's.",
        )));
    }
    let Some((pool, prefix)) = state.network_pool else {
        return Err(Error(ApiError::invalid(
            "Networks cannot be created: no network driver is configured in this deployment.",
        )));
    };
    let project = ctx.identity.project_id.clone();
    if state
        .store
        .list_networks(Some(&project))
        .await?
        .iter()
        .any(|n| n.name == name)
    {
        return Err(Error(ApiError::conflict(format!(
            "A network named {name} already exists in project {project}."
        ))));
    }
    let network = state
        .store
        .ensure_network(&project, &name, pool, prefix)
        .await
        .map_err(|e| match e {
            zun_store::StoreError::Exhausted(text) => Error(ApiError::conflict(text)),
            other => Error::from(other),
        })?;
    Ok(Json(view(&network, Some(&ctx.identity.user_id))).into_response())
}

async fn list(State(state): Shared, ctx: Ctx) -> Result<Response> {
    let networks = state
        .store
        .list_networks(Some(&ctx.identity.project_id))
        .await?;
    let views: Vec<Value> = networks.iter().map(|n| view(n, None)).collect();
    Ok(Json(json!({ "networks": views })).into_response())
}

async fn show(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let network = find(state.store.as_ref(), &ctx, &ident).await?;
    Ok(Json(view(&network, None)).into_response())
}

async fn remove(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    if ctx.version < Version::new(1, 27) {
        return Err(Error(ctx.version.unsupported_route()));
    }
    ctx.authorize("network:delete", &ctx.own_target())?;
    let network = find(state.store.as_ref(), &ctx, &ident).await?;
    state.store.delete_network(&network.uuid).await?;
    Ok(null_response(StatusCode::NO_CONTENT))
}
