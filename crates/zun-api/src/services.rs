//! `/v1/services`, `/v1/hosts` and `/v1/availability_zones` (reference
//! §7.2-7.4): the compute services, their nodes and their zones.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};
use zun_store::{HostView, ServiceChange, ServiceRecord, SortDir};
use zun_types::ApiError;
use zun_types::microversion::Version;
use zun_types::validation;
use zun_types::view::{action_time, links};

use crate::containers::body_bytes;
use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, Params};
use crate::{ApiState, null_response};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/services", get(list_services).delete(delete_service))
        .route("/v1/services/enable", put(enable))
        .route("/v1/services/disable", put(disable))
        .route("/v1/services/force_down", put(force_down))
        .route("/v1/hosts", get(list_hosts))
        .route("/v1/hosts/{ident}", get(show_host))
        .route("/v1/availability_zones", get(list_zones))
}

fn service_not_found(host: &str, binary: &str) -> ApiError {
    ApiError::new(
        404,
        "zun-service-not-found",
        format!("Zun service {binary} on host {host} could not be found."),
    )
}

fn zone_of(state: &ApiState, service: &ServiceRecord) -> String {
    service
        .availability_zone
        .clone()
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| state.scheduler.policy.default_availability_zone.clone())
}

fn service_view(state: &ApiState, s: &ServiceRecord) -> Value {
    let up = s.is_up(Utc::now(), state.scheduler.down_after);
    json!({
        "id": s.id,
        "host": s.host,
        "binary": s.binary,
        "state": if up { "up" } else { "down" },
        "disabled": s.disabled,
        "disabled_reason": s.disabled_reason,
        "forced_down": s.forced_down,
        "report_count": s.report_count,
        "availability_zone": zone_of(state, s),
        "last_seen_up": s.last_seen_up.as_ref().map(action_time),
        "created_at": action_time(&s.created_at),
        "updated_at": s.updated_at.as_ref().map(action_time),
    })
}

async fn list_services(State(state): Shared, ctx: Ctx) -> Result<Response> {
    ctx.authorize("zun-service:get_all", &ctx.own_target())?;
    let services = state.store.list_services().await?;
    let items: Vec<Value> = services.iter().map(|s| service_view(&state, s)).collect();
    Ok(Json(json!({ "services": items })).into_response())
}

async fn delete_service(
    State(state): Shared,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    ctx.authorize("zun-service:delete", &ctx.own_target())?;
    let params = Params::from_query(query.as_deref());
    let (host, binary) = validation::service_ident(params.get("host"), params.get("binary"))?;
    if !state.store.delete_service(host, binary).await? {
        return Err(Error(service_not_found(host, binary)));
    }
    tracing::info!(%host, %binary, "service deleted");
    Ok(null_response(StatusCode::OK))
}

/// The parameters of enable/disable/force_down: the query string and a
/// JSON object body, with nothing beyond `allowed`.
fn update_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    allowed: &[&str],
) -> Result<Params> {
    let mut params = Params::from_query(query);
    params.merge_body(headers, body)?;
    params.reject_unknown(allowed)?;
    Ok(params)
}

async fn change_service(
    state: &ApiState,
    host: &str,
    binary: &str,
    change: ServiceChange,
) -> Result<ServiceRecord> {
    state
        .store
        .update_service(host, binary, &change)
        .await?
        .ok_or_else(|| Error(service_not_found(host, binary)))
}

async fn enable(
    State(state): Shared,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let params = update_params(query.as_deref(), &headers, &body, &["host", "binary"])?;
    ctx.authorize("zun-service:enable", &ctx.own_target())?;
    let (host, binary) = validation::service_ident(params.get("host"), params.get("binary"))?;
    let change = ServiceChange {
        disabled: Some((false, None)),
        forced_down: None,
    };
    change_service(&state, host, binary, change).await?;
    Ok(Json(json!({"service": {
        "host": host, "binary": binary, "disabled": false, "disabled_reason": null,
    }}))
    .into_response())
}

async fn disable(
    State(state): Shared,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let params = update_params(
        query.as_deref(),
        &headers,
        &body,
        &["host", "binary", "disabled_reason"],
    )?;
    ctx.authorize("zun-service:disable", &ctx.own_target())?;
    let (host, binary) = validation::service_ident(params.get("host"), params.get("binary"))?;
    let reason = params.get("disabled_reason").map(str::to_owned);
    if let Some(r) = &reason {
        validation::service_text("disabled_reason", r)?;
    }
    let change = ServiceChange {
        disabled: Some((true, reason.clone())),
        forced_down: None,
    };
    change_service(&state, host, binary, change).await?;
    tracing::info!(%host, %binary, reason = ?reason, "service disabled");
    Ok(Json(json!({"service": {
        "host": host, "binary": binary, "disabled": true, "disabled_reason": reason,
    }}))
    .into_response())
}

async fn force_down(
    State(state): Shared,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let params = update_params(
        query.as_deref(),
        &headers,
        &body,
        &["host", "binary", "forced_down"],
    )?;
    ctx.authorize("zun-service:force_down", &ctx.own_target())?;
    let (host, binary) = validation::service_ident(params.get("host"), params.get("binary"))?;
    let raw = validation::required("forced_down", params.get("forced_down"))?;
    let forced_down = validation::query_bool("forced_down", raw)?;
    let change = ServiceChange {
        disabled: None,
        forced_down: Some(forced_down),
    };
    change_service(&state, host, binary, change).await?;
    Ok(Json(json!({"service": {
        "host": host, "binary": binary, "forced_down": forced_down,
    }}))
    .into_response())
}

// ---- hosts -----------------------------------------------------------------

const HOST_SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "hostname",
    "mem_total",
    "mem_used",
    "cpus",
    "cpu_used",
    "disk_total",
    "disk_used",
    "total_containers",
];

/// Hosts are a 1.4 resource: before it, upstream's 406 for a versioned route.
fn require_hosts_version(ctx: &Ctx) -> Result<()> {
    if ctx.version < Version::new(1, 4) {
        return Err(Error(ctx.version.unsupported_route()));
    }
    Ok(())
}

fn host_view(h: &HostView, host_url: Option<&str>) -> Value {
    let mut view = json!({
        "uuid": h.node.uuid,
        "hostname": h.node.hostname,
        "mem_total": h.node.mem_total,
        "mem_used": h.usage.mem_used,
        "cpus": h.node.cpus,
        "cpu_used": h.usage.cpu_used,
        "disk_total": h.node.disk_total,
        "disk_used": h.usage.disk_used,
        "disk_quota_supported": h.node.disk_quota_supported,
        "total_containers": h.usage.total_containers,
        "architecture": h.node.architecture,
        "os_type": h.node.os_type,
        "os": h.node.os,
        "kernel_version": h.node.kernel_version,
        "labels": h.node.labels,
        "runtimes": h.node.runtimes,
        "enable_cpu_pinning": h.node.enable_cpu_pinning,
    });
    if let (Some(url), Value::Object(map)) = (host_url, &mut view) {
        map.insert("links".into(), links(url, "hosts", &h.node.uuid));
    }
    view
}

/// The sort value of `key` on a host view, for the in-memory sort.
fn host_sort_value(view: &Value, key: &str) -> Value {
    match key {
        "id" => view["hostname"].clone(),
        other => view[other].clone(),
    }
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.as_str().unwrap_or("").cmp(b.as_str().unwrap_or("")),
    }
}

async fn list_hosts(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    require_hosts_version(&ctx)?;
    ctx.authorize("host:get_all", &ctx.own_target())?;
    let params = Params::from_query(query.as_deref());
    params.reject_unknown(&["limit", "marker", "sort_key", "sort_dir"])?;
    let mut page = params.page(HOST_SORT_KEYS)?;
    if params.get("sort_key").is_none() {
        page.sort_key = "hostname".into();
    }
    // Hosts are few (one per compute node): sorted and paged in memory.
    let mut views: Vec<Value> = state
        .store
        .list_hosts()
        .await?
        .iter()
        .map(|h| host_view(h, None))
        .collect();
    views.sort_by(|a, b| {
        let order = compare_values(
            &host_sort_value(a, &page.sort_key),
            &host_sort_value(b, &page.sort_key),
        )
        .then_with(|| compare_values(&a["hostname"], &b["hostname"]));
        match page.sort_dir {
            SortDir::Asc => order,
            SortDir::Desc => order.reverse(),
        }
    });
    if let Some(marker) = &page.marker {
        let Some(at) = views.iter().position(|v| v["uuid"] == *marker) else {
            return Err(Error(ApiError::new(
                404,
                "compute-node-not-found",
                format!("Compute node {marker} could not be found."),
            )));
        };
        views.drain(..=at);
    }
    views.truncate(page.limit as usize);
    let next = params::next_link(
        &ctx.host_url,
        "hosts",
        &page,
        views.len(),
        views.last().and_then(|v| v["uuid"].as_str()),
    );
    Ok(Json(json!({ "hosts": views, "next": next })).into_response())
}

async fn show_host(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    require_hosts_version(&ctx)?;
    ctx.authorize("host:get", &ctx.own_target())?;
    let Some(host) = state.store.get_host(&ident).await? else {
        return Err(Error(ApiError::new(
            404,
            "compute-node-not-found",
            format!("Compute node {ident} could not be found."),
        )));
    };
    Ok(Json(host_view(&host, Some(&ctx.host_url))).into_response())
}

// ---- availability zones ------------------------------------------------------

async fn list_zones(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    ctx.authorize("availability_zones:get_all", &ctx.own_target())?;
    let params = Params::from_query(query.as_deref());
    params.reject_unknown(&["limit", "marker", "sort_key", "sort_dir"])?;
    let page = params.page(&["id", "availability_zone"])?;
    let mut zones: Vec<String> = state
        .store
        .list_services()
        .await?
        .iter()
        .map(|s| zone_of(&state, s))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if page.sort_dir == SortDir::Desc {
        zones.reverse();
    }
    if let Some(marker) = &page.marker
        && let Some(at) = zones.iter().position(|z| z == marker)
    {
        zones.drain(..=at);
    }
    zones.truncate(page.limit as usize);
    let items: Vec<Value> = zones
        .iter()
        .map(|z| json!({ "availability_zone": z }))
        .collect();
    // Upstream's `next` for zones crashes (§12.8); zones are few, so there
    // is never a next page here.
    Ok(Json(json!({ "availability_zones": items, "next": null })).into_response())
}
