//! `/v1/images` (reference §7.1): images pulled onto a host through the
//! API (the host's agent pulls and deletes them), and search, which asks the
//! caller's configured registries (their catalog and tag lists), not a
//! public hub.

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
use zun_store::{IMAGE_SORT_KEYS, ImageListQuery, RegistryListQuery, SortDir, StoreError};
use zun_types::ApiError;
use zun_types::image::{self, Image, ImageRef, ImageTask, Registry};

use crate::containers::body_bytes;
use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, MAX_LIMIT, Params};
use crate::registry_client::{RegistryError, Target};
use crate::{ApiState, created, null_response};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

/// Repositories listed per registry in one search answer.
const MAX_MATCHES_PER_REGISTRY: usize = 25;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/images", get(list).post(pull))
        // An image name in a search path may itself contain `/`
        // (`127.0.0.1:5000/team/app/search`), so one wildcard route serves
        // both `{uuid}` and `{image}/search`.
        .route("/v1/images/{*rest}", get(show_or_search).delete(delete))
}

/// Upstream's ImageNotFound is an Invalid: 400.
fn not_found(ident: &str) -> ApiError {
    ApiError::new(
        400,
        "image-not-found",
        format!("Image {ident} could not be found."),
    )
}

async fn find(state: &ApiState, ident: &str) -> Result<Image> {
    // A name is no image id here: upstream fails with a 500 (§12.5); a
    // clear "not found" is what it meant.
    if uuid::Uuid::try_parse(ident).is_err() {
        return Err(Error(not_found(ident)));
    }
    state
        .store
        .get_image(ident)
        .await?
        .ok_or_else(|| Error(not_found(ident)))
}

async fn pull(
    State(state): Shared,
    ctx: Ctx,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let req = image::image_pull(&value)?;
    ctx.authorize("image:pull", &ctx.own_target())?;
    // A compute node's uuid or hostname, as upstream accepts.
    let Some(host) = state.store.get_host(&req.host).await? else {
        return Err(Error(ApiError::invalid_value(format!(
            "The host {} does not exist.",
            req.host
        ))));
    };
    let reference = ImageRef::parse(&req.repo).map_err(ApiError::invalid_value)?;
    if reference.digest.is_some() {
        return Err(Error(ApiError::invalid_value(
            "Images are pulled by repository and tag; a digest cannot be pulled here.",
        )));
    }
    let image = Image {
        uuid: uuid::Uuid::new_v4().to_string(),
        image_id: None,
        repo: reference.repository(),
        tag: reference.tag_or_latest().to_owned(),
        size: None,
        host: host.node.hostname,
        project_id: ctx.identity.project_id.clone(),
        user_id: ctx.identity.user_id.clone(),
        task: Some(ImageTask::Pulling),
        created_at: Utc::now(),
        updated_at: None,
    };
    state.store.insert_image(&image).await?;
    tracing::info!(uuid = %image.uuid, repo = %image.repo, tag = %image.tag, "image pull accepted");
    Ok(created(
        StatusCode::ACCEPTED,
        image::image_view(&image, &ctx.host_url),
        &ctx.host_url,
        "images",
        &image.uuid,
    ))
}

async fn list(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    ctx.authorize("image:get_all", &ctx.own_target())?;
    params.reject_unknown(&["limit", "marker", "sort_key", "sort_dir"])?;
    let page = params.page(IMAGE_SORT_KEYS)?;
    let query = ImageListQuery {
        limit: page.limit,
        marker: page.marker.clone(),
        sort_key: page.sort_key.clone(),
        sort_dir: page.sort_dir,
    };
    let rows = match state.store.list_images(&query).await {
        Err(StoreError::MarkerNotFound(marker)) => return Err(Error(not_found(&marker))),
        other => other?,
    };
    let next = params::next_link(
        &ctx.host_url,
        "images",
        &page,
        rows.len(),
        rows.last().map(|i| i.uuid.as_str()),
    );
    let items: Vec<Value> = rows
        .iter()
        .map(|i| image::image_view(i, &ctx.host_url))
        .collect();
    Ok(Json(json!({ "images": items, "next": next })).into_response())
}

async fn show_or_search(
    State(state): Shared,
    ctx: Ctx,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    if let Some(term) = rest.strip_suffix("/search") {
        return search(&state, &ctx, term, query.as_deref()).await;
    }
    let image = find(&state, &rest).await?;
    ctx.authorize(
        "image:get_one",
        &json!({"project_id": image.project_id, "user_id": image.user_id}),
    )?;
    Ok(Json(image::image_view(&image, &ctx.host_url)).into_response())
}

async fn delete(State(state): Shared, ctx: Ctx, Path(rest): Path<String>) -> Result<Response> {
    ctx.authorize("image:delete", &ctx.own_target())?;
    let image = find(&state, &rest).await?;
    if image.task != Some(ImageTask::Deleting) {
        let mut deleting = image.clone();
        deleting.task = Some(ImageTask::Deleting);
        deleting.updated_at = Some(Utc::now());
        // Lost only to a concurrent change of the task; the caller may retry.
        if !state.store.update_image_if(&deleting, image.task).await? {
            return Err(Error(ApiError::conflict(format!(
                "Image {} changed while it was being deleted; try again.",
                image.uuid
            ))));
        }
    }
    tracing::info!(uuid = %image.uuid, "image delete accepted");
    Ok(null_response(StatusCode::OK))
}

/// `GET /v1/images/{image}/search`.
async fn search(state: &ApiState, ctx: &Ctx, term: &str, query: Option<&str>) -> Result<Response> {
    ctx.authorize("image:search", &ctx.own_target())?;
    let params = Params::from_query(query);
    params.reject_unknown(&["image_driver", "exact_match"])?;
    match params.get("image_driver") {
        None | Some("docker" | "None" | "") => {}
        Some("glance") => {
            return Err(Error(ApiError::invalid(
                "Image driver glance is not configured in this deployment.",
            )));
        }
        Some(other) => {
            return Err(Error(zun_types::validation::query_error(
                "image_driver",
                other,
                format!("'{other}' is not one of ['glance', 'docker', None]"),
            )));
        }
    }
    let exact = params.bool("exact_match", false)?;
    let wanted = ImageRef::parse(term).map_err(ApiError::invalid_value)?;
    let registries = state
        .store
        .list_registries(&RegistryListQuery {
            project_id: Some(ctx.identity.project_id.clone()),
            filters: Vec::new(),
            limit: MAX_LIMIT,
            marker: None,
            sort_key: "id".into(),
            sort_dir: SortDir::Asc,
        })
        .await?;
    let mut targets: Vec<(Option<&Registry>, Target)> = Vec::new();
    for registry in &registries {
        if wanted
            .domain
            .as_ref()
            .is_some_and(|d| *d != registry.domain)
            || targets.iter().any(|(_, t)| t.domain == registry.domain)
        {
            continue;
        }
        targets.push((Some(registry), target_of(state, registry)?));
    }
    if targets.is_empty() {
        match &wanted.domain {
            // A registry named in the image but not configured: ask it
            // without credentials.
            Some(domain) => targets.push((
                None,
                Target {
                    domain: domain.clone(),
                    credentials: None,
                },
            )),
            None => {
                return Err(Error(ApiError::invalid(
                    "There is no registry to search: create one (openstack appcontainer registry create) or name the registry's domain in the image.",
                )));
            }
        }
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    let mut answered = 0;
    for (registry, target) in &targets {
        match search_one(state, target, &wanted, exact).await {
            Ok(mut items) => {
                answered += 1;
                for item in &mut items {
                    if let Some(r) = registry {
                        item["metadata"]["registry"] =
                            json!(r.name.clone().unwrap_or(r.uuid.clone()));
                    }
                }
                found.extend(items);
            }
            Err(err) => {
                tracing::warn!(domain = %target.domain, error = %err, "registry search failed");
                failures.push((target.domain.clone(), err));
            }
        }
    }
    // Registries that did not answer are logged; the search fails only
    // when none answered.
    if answered == 0
        && let Some((domain, err)) = failures.into_iter().next()
    {
        let message = format!("Searching registry {domain} failed: {err}");
        return Err(Error(match err {
            RegistryError::Unreachable(_) => ApiError::service_unavailable(message),
            _ => ApiError::invalid(message),
        }));
    }
    Ok(Json(Value::Array(found)).into_response())
}

/// The registry with its password opened.
fn target_of(state: &ApiState, registry: &Registry) -> Result<Target> {
    let credentials = match (&registry.username, &registry.password_sealed) {
        (Some(user), Some(sealed)) => {
            let password = state.secrets.open(sealed, &registry.uuid).map_err(|e| {
                Error(ApiError::invalid(format!(
                    "The password of registry {} cannot be opened: {e}",
                    registry.uuid
                )))
            })?;
            Some((user.clone(), password))
        }
        _ => None,
    };
    Ok(Target {
        domain: registry.domain.clone(),
        credentials,
    })
}

/// Repositories of one registry matching `wanted` (by substring, or exactly),
/// with their tags; with a tag in `wanted`, only repositories that have it.
async fn search_one(
    state: &ApiState,
    target: &Target,
    wanted: &ImageRef,
    exact: bool,
) -> std::result::Result<Vec<Value>, RegistryError> {
    let client = &state.registry_client;
    let repositories = client.repositories(target).await?;
    let matches = repositories.into_iter().filter(|repo| {
        if exact {
            *repo == wanted.path
        } else {
            repo.contains(&wanted.path)
        }
    });
    let mut items = Vec::new();
    for repository in matches.take(MAX_MATCHES_PER_REGISTRY) {
        let tags = client.tags(target, &repository).await?;
        if wanted.tag.as_ref().is_some_and(|t| !tags.contains(t)) {
            continue;
        }
        items.push(json!({
            "name": format!("{}/{repository}", target.domain),
            "tags": tags,
            "description": "",
            "is_automated": false,
            "metadata": {"is_official": false, "star_count": 0},
        }));
    }
    Ok(items)
}
