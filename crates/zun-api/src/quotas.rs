//! `/v1/quotas` and `/v1/quota_classes` (reference §7.5, §7.6, §10).
//!
//! Limits resolve per resource: the project's row, else the row of quota
//! class `default`, else the configured default. Enforcement happens in the
//! store, in the same transaction as the container write (see
//! [`project_limits`] and its callers in `containers.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use zun_store::{DEFAULT_QUOTA_CLASS, QuotaLimits, QuotaUsage};
use zun_types::ApiError;
use zun_types::validation;

use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, Params};
use crate::{ApiState, null_response};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(
            "/v1/quotas/{project_id}",
            get(show).put(update).delete(delete),
        )
        .route("/v1/quotas/{project_id}/defaults", get(defaults))
        .route(
            "/v1/quota_classes/{class_name}",
            get(show_class).put(update_class),
        )
}

/// The limits of every project without its own rows: class `default` over
/// the configured defaults.
pub(crate) async fn default_limits(state: &ApiState) -> Result<QuotaLimits> {
    let class = state.store.quota_class(DEFAULT_QUOTA_CLASS).await?;
    Ok(state.quota_defaults.overridden_by(&class))
}

/// The limits in force for `project_id`.
pub(crate) async fn project_limits(state: &ApiState, project_id: &str) -> Result<QuotaLimits> {
    let rows = state.store.project_quotas(project_id).await?;
    Ok(default_limits(state).await?.overridden_by(&rows))
}

fn limits_view(limits: &QuotaLimits) -> Value {
    json!({
        "containers": limits.containers,
        "memory": limits.memory,
        "cpu": limits.cpu,
        "disk": limits.disk,
    })
}

fn usages_view(limits: &QuotaLimits, usage: &QuotaUsage) -> Value {
    json!({
        "containers": {"limit": limits.containers, "in_use": usage.containers},
        "memory": {"limit": limits.memory, "in_use": usage.memory},
        "cpu": {"limit": limits.cpu, "in_use": usage.cpu},
        "disk": {"limit": limits.disk, "in_use": usage.disk},
    })
}

fn project_target(project_id: &str) -> Value {
    json!({ "project_id": project_id })
}

/// The limits a `PUT` sets: query parameters (validated first, as upstream
/// does) merged with a JSON object body, the body winning.
fn requested_limits(
    query: Option<&str>,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Vec<(&'static str, i64)>> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error(ApiError::payload_too_large())
        } else {
            Error(ApiError::invalid(format!(
                "Could not read the request body: {rejection}"
            )))
        }
    })?;
    let query = Params::from_query(query);
    let mut limits = validation::quota_update_query(query.pairs())?;
    if !body.is_empty() {
        let value = params::json_body(headers, &body)?;
        for (resource, limit) in validation::quota_update(&value)? {
            limits.retain(|(r, _)| *r != resource);
            limits.push((resource, limit));
        }
    }
    Ok(limits)
}

/// `PUT /v1/quotas/{project_id}`: 200 with the project's limits in force.
async fn update(
    State(state): Shared,
    ctx: Ctx,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let limits = requested_limits(query.as_deref(), &headers, body)?;
    ctx.authorize("quota:update", &project_target(&project_id))?;
    for (resource, limit) in limits {
        state
            .store
            .set_project_quota(&project_id, resource, limit)
            .await?;
    }
    tracing::info!(%project_id, "project quota updated");
    let limits = project_limits(&state, &project_id).await?;
    Ok(Json(limits_view(&limits)).into_response())
}

/// `GET /v1/quotas/{project_id}[?usages=<bool>]`. Upstream treats any
/// non-empty `usages` as true (reference §12.6); it is a boolean here.
async fn show(
    State(state): Shared,
    ctx: Ctx,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    ctx.authorize("quota:get", &project_target(&project_id))?;
    let params = Params::from_query(query.as_deref());
    let usages = match params.get("usages") {
        None | Some("") => false,
        Some(raw) => validation::query_bool("usages", raw)?,
    };
    let limits = project_limits(&state, &project_id).await?;
    let body = if usages {
        let usage = state.store.usage(&project_id).await?;
        usages_view(&limits, &usage)
    } else {
        limits_view(&limits)
    };
    Ok(Json(body).into_response())
}

/// `GET /v1/quotas/{project_id}/defaults`: the limits of a project without
/// rows of its own.
async fn defaults(
    State(state): Shared,
    ctx: Ctx,
    Path(project_id): Path<String>,
) -> Result<Response> {
    ctx.authorize("quota:get_default", &project_target(&project_id))?;
    Ok(Json(limits_view(&default_limits(&state).await?)).into_response())
}

/// `DELETE /v1/quotas/{project_id}`: back to the defaults; upstream's
/// `200 null`.
async fn delete(
    State(state): Shared,
    ctx: Ctx,
    Path(project_id): Path<String>,
) -> Result<Response> {
    ctx.authorize("quota:delete", &project_target(&project_id))?;
    state.store.delete_project_quotas(&project_id).await?;
    tracing::info!(%project_id, "project quota reverted to defaults");
    Ok(null_response(StatusCode::OK))
}

/// The limits of class `class_name`, missing resources from the
/// configuration (upstream's `get_class_quotas`).
async fn class_limits(state: &ApiState, class_name: &str) -> Result<QuotaLimits> {
    let rows = state.store.quota_class(class_name).await?;
    Ok(state.quota_defaults.overridden_by(&rows))
}

/// `PUT /v1/quota_classes/{class_name}`.
async fn update_class(
    State(state): Shared,
    ctx: Ctx,
    Path(class_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let limits = requested_limits(query.as_deref(), &headers, body)?;
    ctx.authorize("quota_class:update", &ctx.own_target())?;
    for (resource, limit) in limits {
        state
            .store
            .set_quota_class(&class_name, resource, limit)
            .await?;
    }
    tracing::info!(%class_name, "quota class updated");
    Ok(Json(limits_view(&class_limits(&state, &class_name).await?)).into_response())
}

/// `GET /v1/quota_classes/{class_name}`.
async fn show_class(
    State(state): Shared,
    ctx: Ctx,
    Path(class_name): Path<String>,
) -> Result<Response> {
    ctx.authorize("quota_class:get", &ctx.own_target())?;
    Ok(Json(limits_view(&class_limits(&state, &class_name).await?)).into_response())
}
