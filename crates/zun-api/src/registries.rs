//! `/v1/registries` (reference §7.7): credentials of private registries,
//! owned by a project. Passwords are sealed with the service's key before
//! they reach the store and are never returned (`***`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};
use zun_store::{REGISTRY_FILTER_KEYS, REGISTRY_SORT_KEYS, RegistryListQuery, Store, StoreError};
use zun_types::ApiError;
use zun_types::image::{self, Registry, RegistryFields};

use crate::containers::body_bytes;
use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, Params};
use crate::{ApiState, created};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/registries", get(list).post(create))
        .route(
            "/v1/registries/{ident}",
            get(show).patch(update).delete(delete),
        )
}

pub(crate) fn not_found(ident: &str) -> ApiError {
    ApiError::new(
        404,
        "registry-not-found",
        format!("Registry {ident} could not be found."),
    )
}

fn target(r: &Registry) -> Value {
    json!({"project_id": r.project_id, "user_id": r.user_id})
}

/// Upstream's `get_registry`: a uuid or a name, in the caller's project
/// unless the caller is an admin.
pub(crate) async fn find(store: &dyn Store, ctx: &Ctx, ident: &str) -> Result<Registry> {
    let project = (!ctx.is_admin()).then_some(ctx.identity.project_id.as_str());
    if uuid::Uuid::try_parse(ident).is_ok() {
        return match store.get_registry(ident).await? {
            Some(r) if project.is_none_or(|p| r.project_id == p) => Ok(r),
            _ => Err(Error(not_found(ident))),
        };
    }
    let mut matches = store.find_registries_by_name(ident, project).await?;
    match matches.len() {
        0 => Err(Error(not_found(ident))),
        1 => Ok(matches.remove(0)),
        _ => Err(Error(ApiError::conflict(
            "Multiple registries exist with same name. Please use the registry uuid instead.",
        ))),
    }
}

fn item(r: &Registry, ctx: &Ctx) -> Value {
    json!({ "registry": image::registry_view(r, Some(&ctx.host_url)) })
}

/// Applies the fields of a create or update body, sealing the password for
/// this registry's uuid.
fn apply(state: &ApiState, r: &mut Registry, fields: RegistryFields) -> Result<()> {
    if let Some(name) = fields.name {
        r.name = Some(name);
    }
    if let Some(domain) = fields.domain {
        r.domain = domain;
    }
    if let Some(username) = fields.username {
        r.username = Some(username);
    }
    if let Some(password) = fields.password {
        let sealed = state.secrets.seal(&password, &r.uuid).map_err(|e| {
            Error(ApiError::invalid(format!(
                "The password cannot be stored: {e}"
            )))
        })?;
        r.password_sealed = Some(sealed);
    }
    Ok(())
}

async fn create(
    State(state): Shared,
    ctx: Ctx,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let fields = image::registry_create(&value)?;
    ctx.authorize("registry:create", &ctx.own_target())?;
    let mut registry = Registry {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: None,
        domain: String::new(),
        username: None,
        password_sealed: None,
        project_id: ctx.identity.project_id.clone(),
        user_id: ctx.identity.user_id.clone(),
        created_at: Utc::now(),
        updated_at: None,
    };
    apply(&state, &mut registry, fields)?;
    state.store.insert_registry(&registry).await?;
    tracing::info!(uuid = %registry.uuid, domain = %registry.domain, "registry created");
    Ok(created(
        StatusCode::CREATED,
        item(&registry, &ctx),
        &ctx.host_url,
        "registries",
        &registry.uuid,
    ))
}

const LIST_KEYS: &[&str] = &["limit", "marker", "sort_key", "sort_dir", "all_projects"];

async fn list(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    ctx.authorize("registry:get_all", &ctx.own_target())?;
    let all_projects = params.bool("all_projects", false)?;
    if all_projects {
        ctx.authorize("registry:get_all_all_projects", &ctx.own_target())?;
    }
    let allowed: Vec<&str> = LIST_KEYS
        .iter()
        .chain(REGISTRY_FILTER_KEYS)
        .copied()
        .collect();
    params.reject_unknown(&allowed)?;
    let page = params.page(REGISTRY_SORT_KEYS)?;
    let filters = REGISTRY_FILTER_KEYS
        .iter()
        .filter_map(|key| params.get(key).map(|v| ((*key).to_owned(), v.to_owned())))
        .collect();
    let query = RegistryListQuery {
        project_id: (!(all_projects && ctx.is_admin())).then(|| ctx.identity.project_id.clone()),
        filters,
        limit: page.limit,
        marker: page.marker.clone(),
        sort_key: page.sort_key.clone(),
        sort_dir: page.sort_dir,
    };
    let rows = match state.store.list_registries(&query).await {
        Err(StoreError::MarkerNotFound(marker)) => return Err(Error(not_found(&marker))),
        other => other?,
    };
    let next = params::next_link(
        &ctx.host_url,
        "registries",
        &page,
        rows.len(),
        rows.last().map(|r| r.uuid.as_str()),
    );
    let items: Vec<Value> = rows.iter().map(|r| image::registry_view(r, None)).collect();
    Ok(Json(json!({ "registries": items, "next": next })).into_response())
}

async fn show(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let registry = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("registry:get_one", &target(&registry))?;
    Ok(Json(item(&registry, &ctx)).into_response())
}

async fn update(
    State(state): Shared,
    ctx: Ctx,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let fields = image::registry_update(&value)?;
    let mut registry = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("registry:update", &target(&registry))?;
    apply(&state, &mut registry, fields)?;
    registry.updated_at = Some(Utc::now());
    if !state.store.update_registry(&registry).await? {
        return Err(Error(not_found(&ident)));
    }
    Ok(Json(item(&registry, &ctx)).into_response())
}

async fn delete(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let registry = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("registry:delete", &target(&registry))?;
    if !state.store.delete_registry(&registry.uuid).await? {
        return Err(Error(not_found(&ident)));
    }
    tracing::info!(uuid = %registry.uuid, "registry deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
