//! `/v1/containers` (reference §4): validation, policy, state checks, and the
//! desired-state writes the agents act on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDateTime, Utc};
use serde_json::{Value, json};
use zun_store::{ListQuery, NewAction, Store};
use zun_types::container::{DesiredState, RecordKind};
use zun_types::host::LogOptions;
use zun_types::microversion::Version;
use zun_types::network::{DEFAULT_NETWORK_NAME, RequestedNetwork};
use zun_types::state::Action;
use zun_types::validation::{self, CreateRequest};
use zun_types::{ApiError, Container, ContainerStatus, TaskState, view};

use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, Params};
use crate::{ApiState, created, null_response, streams};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/containers", get(list).post(create))
        .route(
            "/v1/containers/{ident}",
            get(show).patch(update).delete(delete),
        )
        .route(
            "/v1/containers/{ident}/container_actions",
            get(list_actions),
        )
        .route(
            "/v1/containers/{ident}/container_actions/{request_id}",
            get(show_action),
        )
        .route("/v1/containers/{ident}/{action}", get(action).post(action))
}

/// Upstream's target for checks on one container: its owner.
pub(crate) fn target(c: &Container) -> Value {
    json!({"project_id": c.project_id, "user_id": c.user_id})
}

/// The admin-only view fields the caller may see on `c`
/// (`container:get_one:<field>`).
pub(crate) fn shown_fields(ctx: &Ctx, c: &Container) -> Vec<&'static str> {
    let target = target(c);
    view::ADMIN_FIELDS
        .iter()
        .copied()
        .filter(|field| ctx.can(&format!("container:get_one:{field}"), &target))
        .collect()
}

pub(crate) fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error(ApiError::payload_too_large())
        } else {
            Error(ApiError::invalid(format!(
                "Could not read the request body: {rejection}"
            )))
        }
    })
}

/// Reads a streamed body of at most `limit` bytes (413 beyond).
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            Error(ApiError::payload_too_large())
        } else {
            Error(ApiError::invalid(format!(
                "Could not read the request body: {error}"
            )))
        }
    })
}

pub(crate) fn looks_like_uuid(ident: &str) -> bool {
    uuid::Uuid::try_parse(ident).is_ok()
}

/// Upstream's `get_resource`: a uuid or a name, scoped to the caller's
/// project unless the caller is an admin. The container API reaches
/// containers and the members of capsules, not capsules themselves.
async fn find(store: &dyn Store, ctx: &Ctx, ident: &str) -> Result<Container> {
    find_record(store, ctx, ident, |kind| kind != RecordKind::Capsule).await
}

/// [`find`] among the rows whose kind `wanted` accepts.
pub(crate) async fn find_record(
    store: &dyn Store,
    ctx: &Ctx,
    ident: &str,
    wanted: impl Fn(RecordKind) -> bool,
) -> Result<Container> {
    let project = if ctx.is_admin() {
        None
    } else {
        Some(ctx.identity.project_id.as_str())
    };
    if looks_like_uuid(ident) {
        let found = store.get_container(ident).await?;
        return match found {
            Some(c) if project.is_none_or(|p| c.project_id == p) && wanted(c.kind) => Ok(c),
            _ => Err(Error(ApiError::container_not_found(ident))),
        };
    }
    let mut matches = store.find_containers_by_name(ident, project).await?;
    matches.retain(|c| wanted(c.kind));
    match matches.len() {
        0 => Err(Error(ApiError::container_not_found(ident))),
        1 => Ok(matches.remove(0)),
        _ => Err(Error(ApiError::conflict(
            "Multiple containers exist with same name. Please use the container uuid instead.",
        ))),
    }
}

/// A capsule's member lives and changes only with its capsule: the actions
/// that would change its life (or its network) are refused; reading it,
/// its logs, exec and the other streams work.
fn refuse_member(container: &Container, action: &str) -> Result<()> {
    match &container.capsule {
        Some(member) => Err(Error(ApiError::new(
            409,
            "invalid-state-exception",
            format!(
                "Cannot {action} container {}: it belongs to capsule {}; act on the capsule instead.",
                container.uuid, member.capsule_uuid
            ),
        ))),
        None => Ok(()),
    }
}

pub(crate) fn new_action(
    ctx: &Ctx,
    container: &Container,
    action: &str,
    params: Value,
) -> NewAction {
    NewAction {
        request_id: ctx.request_id.clone(),
        action: action.to_string(),
        user_id: ctx.identity.user_id.clone(),
        project_id: container.project_id.clone(),
        host: container.host.clone(),
        params,
    }
}

fn view_one(ctx: &Ctx, c: &Container) -> Value {
    view::container(c, Some(&ctx.host_url), &shown_fields(ctx, c))
}

const GREEK: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// Upstream's default name, `<greek>-<1..24>-container`.
pub(crate) fn generated_name() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let letter = GREEK[usize::from(bytes[0]) % GREEK.len()];
    let number = usize::from(bytes[1]) % 24 + 1;
    format!("{letter}-{number}-container")
}

/// Rejects create options this deployment cannot honour yet with a clear
/// 4xx instead of silently ignoring them.
fn check_unsupported(req: &CreateRequest, ctx: &Ctx) -> Result<()> {
    let own = ctx.own_target();
    if req.privileged == Some(true) {
        // `container:create:privileged` defaults to deny_everybody.
        ctx.authorize("container:create:privileged", &own)?;
    }
    if req.runtime.is_some() {
        ctx.authorize("container:create:runtime", &own)?;
    }
    if req.image_pull_policy.is_some() {
        ctx.authorize("container:create:image_pull_policy", &own)?;
    }
    if req.host.is_some() {
        ctx.authorize("container:create:requested_destination", &own)?;
    }
    if req.image_driver.as_deref() == Some("glance") {
        return Err(Error(ApiError::invalid(
            "Image driver glance is not configured in this deployment.",
        )));
    }
    Ok(())
}

/// A network request as the built-in driver can meet it: a network of the
/// caller's project (by uuid or name; the default network before it
/// exists), with an IPv4 address inside its subnet. The network is
/// recorded by uuid when it exists.
async fn resolve_network(
    store: &dyn Store,
    project_id: &str,
    mut requested: RequestedNetwork,
) -> Result<RequestedNetwork> {
    if let Some(port) = &requested.port {
        return Err(Error(ApiError::invalid(format!(
            "Port {port} cannot be used: the built-in network driver makes the container's ports itself; name a network instead."
        ))));
    }
    if requested.v6_fixed_ip.is_some() {
        return Err(Error(ApiError::invalid(
            "IPv6 addresses are not supported by the built-in network driver.",
        )));
    }
    let name = requested.network.clone().unwrap_or_default();
    let found = store.find_network(project_id, &name).await?;
    match found {
        Some(network) => {
            if let Some(ip) = requested.v4_fixed_ip
                && !network.cidr.is_assignable(ip)
            {
                return Err(Error(ApiError::invalid(format!(
                    "IP address {ip} is not a valid IP for the subnet {} of network {}.",
                    network.cidr, network.uuid
                ))));
            }
            requested.network = Some(network.uuid);
        }
        // The default network is made by the first container on it.
        None if name == DEFAULT_NETWORK_NAME => {}
        None => return Err(Error(ApiError::network_not_found(&name))),
    }
    Ok(requested)
}

fn build_container(req: CreateRequest, ctx: &Ctx, run: bool) -> Container {
    let healthcheck = req.healthcheck.map(|mut hc| {
        // Upstream stores `cmd` as `test`.
        if let Some(obj) = hc.as_object_mut()
            && let Some(cmd) = obj.remove("cmd")
        {
            obj.insert("test".into(), cmd);
        }
        hc
    });
    Container {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: req.name.unwrap_or_else(generated_name),
        project_id: ctx.identity.project_id.clone(),
        user_id: ctx.identity.user_id.clone(),
        image: req.image,
        image_driver: Some(req.image_driver.unwrap_or_else(|| "docker".into())),
        image_pull_policy: req.image_pull_policy,
        command: req.command,
        entrypoint: req.entrypoint,
        cpu: Some(req.cpu.unwrap_or(validation::DEFAULT_CPU)),
        cpu_policy: req.cpu_policy,
        memory: Some(req.memory.unwrap_or(validation::DEFAULT_MEMORY).to_string()),
        disk: req.disk.unwrap_or(0),
        workdir: req.workdir,
        environment: req.environment,
        labels: req.labels,
        hostname: req.hostname,
        restart_policy: req.restart_policy,
        interactive: req.interactive.unwrap_or(false),
        tty: req.tty.unwrap_or(false),
        auto_remove: req.auto_remove.unwrap_or(false),
        auto_heal: req.auto_heal.unwrap_or(false),
        privileged: false,
        runtime: req.runtime,
        healthcheck,
        security_groups: req.security_groups.filter(|g| !g.is_empty()),
        nets: Vec::new(),
        mounts: Vec::new(),
        exposed_ports: req.exposed_ports,
        hints: req.hints,
        availability_zone: req.availability_zone,
        registry_id: None,
        host: None,
        status: ContainerStatus::Creating,
        status_reason: None,
        status_detail: None,
        task_state: None,
        desired_state: if run {
            DesiredState::Running
        } else {
            DesiredState::Created
        },
        container_id: None,
        ports: None,
        addresses: None,
        created_at: Utc::now(),
        updated_at: None,
        kind: RecordKind::Container,
        capsule: None,
        annotations: Default::default(),
    }
}

async fn create(
    State(state): Shared,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let query = Params::from_query(query.as_deref());
    query.reject_unknown(&["run"])?;
    let run = query.bool("run", false)?;
    let value = params::json_body(&headers, &body)?;
    let mut req = validation::create_request(&value, ctx.version)?;
    ctx.authorize("container:create", &ctx.own_target())?;
    check_unsupported(&req, &ctx)?;
    if let Some(host) = &req.host {
        crate::placement::check_requested_host(state.store.as_ref(), host).await?;
    }
    let requested_host = req.host.clone();
    // The registry (1.31) is named by uuid or name, in the caller's project.
    let registry_id = match &req.registry {
        Some(ident) => Some(
            crate::registries::find(state.store.as_ref(), &ctx, ident)
                .await?
                .uuid,
        ),
        None => None,
    };
    let mut nets = Vec::new();
    for requested in req.nets.clone().unwrap_or_default() {
        let resolved =
            resolve_network(state.store.as_ref(), &ctx.identity.project_id, requested).await?;
        if nets
            .iter()
            .any(|n: &RequestedNetwork| n.network == resolved.network)
        {
            return Err(Error(ApiError::invalid(format!(
                "Network {} is requested more than once.",
                resolved.network.unwrap_or_default()
            ))));
        }
        nets.push(resolved);
    }
    let groups = match req.security_groups.as_deref() {
        Some(names) if !names.is_empty() => {
            Some(crate::security_groups::resolve(&state, &ctx.identity.project_id, names).await?)
        }
        _ => None,
    };
    // Cinder is asked with the caller's own token, in the caller's project.
    let cinder = crate::volumes::CinderCaller::of(&state, &ctx, &headers);
    let mounts = crate::volumes::resolve(
        state.store.as_ref(),
        &ctx,
        cinder.as_ref(),
        std::mem::take(&mut req.mounts),
    )
    .await?;
    let made = mounts.mounts.clone();
    let mut container = build_container(req, &ctx, run);
    container.mounts = mounts.mounts;
    container.registry_id = registry_id;
    container.nets = nets;
    container.security_groups = groups;
    let placed = async {
        let exposed_group = crate::security_groups::exposed_group(&state, &container).await?;
        if let Some(group) = &exposed_group {
            container.security_groups = Some(vec![group.clone()]);
        }
        let action = new_action(&ctx, &container, "create", json!({ "run": run }));
        let limits = crate::quotas::project_limits(&state, &container.project_id).await?;
        let placed = crate::placement::place_and_insert(
            &state,
            &mut container,
            &mut [],
            crate::placement::Pins {
                requested_host: requested_host.as_deref(),
                volume_host: mounts.host.as_deref(),
            },
            action,
            &limits,
        )
        .await;
        if let Err(err) = placed {
            // Nothing names the exposed ports' group now.
            if let Some(group) = &exposed_group {
                state.store.delete_security_group(group).await?;
            }
            return Err(err);
        }
        Ok(())
    }
    .await;
    // A Cinder volume made for a container that will never run goes now.
    if placed.is_err() || container.host.is_none() {
        crate::volumes::discard_made(cinder.as_ref(), &made).await;
    }
    placed?;
    tracing::info!(uuid = %container.uuid, name = %container.name, host = ?container.host, run, "container create accepted");
    Ok(created(
        StatusCode::ACCEPTED,
        view_one(&ctx, &container),
        &ctx.host_url,
        "containers",
        &container.uuid,
    ))
}

const LIST_KEYS: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "all_projects",
    "expand",
    "resource_url",
];

async fn list(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    let allowed: Vec<&str> = LIST_KEYS
        .iter()
        .chain(zun_store::FILTER_KEYS.iter())
        .copied()
        .collect();
    params.reject_unknown(&allowed)?;
    let page = params.page(zun_store::SORT_KEYS)?;
    let all_projects = params.bool("all_projects", false)?;
    ctx.authorize("container:get_all", &ctx.own_target())?;
    if all_projects {
        ctx.authorize("container:get_all_all_projects", &ctx.own_target())?;
    }
    let mut filters = Vec::new();
    for key in zun_store::FILTER_KEYS {
        if let Some(value) = params.get(key) {
            if view::ADMIN_FIELDS.contains(key) {
                ctx.authorize(&format!("container:get_one:{key}"), &ctx.own_target())?;
            }
            filters.push(((*key).to_string(), value.to_string()));
        }
    }
    let query = ListQuery {
        project_id: (!(all_projects && ctx.is_admin())).then(|| ctx.identity.project_id.clone()),
        filters,
        limit: page.limit,
        marker: page.marker.clone(),
        sort_key: page.sort_key.clone(),
        sort_dir: page.sort_dir,
        kind: RecordKind::Container,
    };
    let rows = state.store.list_containers(&query).await?;
    let next = params::next_link(
        &ctx.host_url,
        "containers",
        &page,
        rows.len(),
        rows.last().map(|c| c.uuid.as_str()),
    );
    let items: Vec<Value> = rows
        .iter()
        .map(|c| view::container(c, None, &shown_fields(&ctx, c)))
        .collect();
    Ok(Json(json!({ "containers": items, "next": next })).into_response())
}

async fn show(
    State(state): Shared,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    if params.bool("all_projects", false)? {
        ctx.authorize("container:get_one_all_projects", &ctx.own_target())?;
    }
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("container:get_one", &target(&container))?;
    Ok(Json(view_one(&ctx, &container)).into_response())
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
    let req = validation::update_request(&value)?;
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("container:update", &target(&container))?;
    refuse_member(&container, "update")?;
    let updated = apply_update(&state, &ctx, &container, req, Action::Update).await?;
    Ok(Json(view_one(&ctx, &updated)).into_response())
}

/// A PATCH-style change (name, auto_heal, cpu, memory) under `check`'s
/// state rule; cpu and memory go to the agent and count against quota.
async fn apply_update(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    req: validation::UpdateRequest,
    check: Action,
) -> Result<Container> {
    let resources_change = req.cpu.is_some() || req.memory.is_some();
    let action = resources_change.then(|| {
        new_action(
            ctx,
            container,
            "update",
            json!({ "cpu": req.cpu, "memory": req.memory }),
        )
    });
    let uuid = container.uuid.clone();
    let mutate = move |c: &mut Container| {
        check.check(&c.uuid, c.status)?;
        if let Some(name) = &req.name {
            c.name = name.clone();
        }
        if let Some(auto_heal) = req.auto_heal {
            c.auto_heal = auto_heal;
        }
        if let Some(cpu) = req.cpu {
            c.cpu = Some(cpu);
        }
        if let Some(memory) = req.memory {
            c.memory = Some(memory.to_string());
        }
        Ok(())
    };
    // A cpu/memory change is checked against the project's quota in the
    // same transaction as the write.
    let limits = if resources_change {
        Some(crate::quotas::project_limits(state, &container.project_id).await?)
    } else {
        None
    };
    let (updated, _) = state
        .store
        .update_container_checked(&uuid, &mutate, action.as_ref(), limits.as_ref())
        .await?;
    Ok(updated)
}

async fn delete(
    State(state): Shared,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    let force = params.bool("force", false)?;
    let stop = params.bool("stop", false)?;
    let all_projects = params.bool("all_projects", false)?;
    if force && ctx.version < Version::new(1, 7) {
        return Err(Error(validation::invalid_param_in_version(
            "force",
            ctx.version,
            Version::new(1, 7),
        )));
    }
    if stop && ctx.version < Version::new(1, 12) {
        return Err(Error(validation::invalid_param_in_version(
            "stop",
            ctx.version,
            Version::new(1, 12),
        )));
    }
    if all_projects {
        ctx.authorize("container:delete_all_projects", &ctx.own_target())?;
    }
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    let owner = target(&container);
    ctx.authorize("container:delete", &owner)?;
    refuse_member(&container, "delete")?;
    let check = if stop {
        if container.status == ContainerStatus::Running {
            ctx.authorize("container:stop", &owner)?;
        }
        Action::DeleteAfterStop
    } else if force {
        ctx.authorize("container:delete_force", &owner)?;
        Action::DeleteForce
    } else {
        Action::Delete
    };
    let action = new_action(
        &ctx,
        &container,
        "delete",
        json!({ "force": force, "stop": stop }),
    );
    // Nothing to wait for when no host holds the container (it was never
    // placed), or when an admin forces the delete of one on a host that is
    // down: the row goes now, and a returning host removes its engine
    // container, which the store no longer knows.
    let host_down = match &container.host {
        None => true,
        Some(host) => {
            force
                && !crate::placement::host_is_up(state.store.as_ref(), &state.scheduler, host)
                    .await?
        }
    };
    record_delete(&state, &container.uuid, Some(check), action, host_down).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Marks a container (or capsule) `Deleting` with its delete `action`
/// (under `check`'s state rule); when no host will act on it
/// (`host_down`), removes its rows at once.
pub(crate) async fn record_delete(
    state: &ApiState,
    uuid: &str,
    check: Option<Action>,
    action: NewAction,
    host_down: bool,
) -> Result<()> {
    let mutate = move |c: &mut Container| {
        if let Some(check) = check {
            check.check(&c.uuid, c.status)?;
        }
        c.status = ContainerStatus::Deleting;
        c.task_state = Some(TaskState::ContainerDeleting);
        c.desired_state = DesiredState::Deleted;
        Ok(())
    };
    let (_, record) = state
        .store
        .update_container(uuid, &mutate, Some(&action))
        .await?;
    if host_down {
        state.store.delete_container(uuid).await?;
        if let Some(record) = record {
            state.store.finish_action(record.id, None).await?;
        }
        tracing::info!(%uuid, "removed without its host");
    }
    Ok(())
}

/// Range of microversions a container sub-route exists in.
fn route_versions(action: &str) -> Option<(Version, Version)> {
    let all = (Version::MIN, Version::MAX);
    Some(match action {
        "rename" => (Version::MIN, Version::new(1, 13)),
        "add_security_group" | "remove_security_group" => (Version::MIN, Version::new(1, 14)),
        "network_detach" => (Version::new(1, 6), Version::MAX),
        "network_attach" => (Version::new(1, 8), Version::MAX),
        "network_list" => (Version::new(1, 13), Version::MAX),
        "resize_container" => (Version::new(1, 19), Version::MAX),
        "start" | "stop" | "reboot" | "rebuild" | "pause" | "unpause" | "kill" | "execute"
        | "execute_resize" | "logs" | "attach" | "resize" | "top" | "get_archive"
        | "put_archive" | "stats" | "commit" => all,
        _ => return None,
    })
}

fn route_method(action: &str) -> Method {
    match action {
        "logs" | "attach" | "top" | "get_archive" | "stats" | "network_list" => Method::GET,
        _ => Method::POST,
    }
}

/// `POST|GET /v1/containers/{ident}/{action}`.
async fn action(
    State(state): Shared,
    ctx: Ctx,
    method: Method,
    Path((ident, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let Some((min, max)) = route_versions(&action) else {
        return Err(Error(ApiError::not_found_route()));
    };
    if method != route_method(&action) {
        return Err(Error(ApiError::method_not_allowed()));
    }
    if ctx.version < min || ctx.version > max {
        return Err(Error(ctx.version.unsupported_route()));
    }
    // Only put_archive carries a file; every other action gets the usual cap.
    let limit = if action == "put_archive" {
        streams::MAX_PUT_ARCHIVE_BODY_BYTES
    } else {
        crate::MAX_BODY_BYTES
    };
    let body = read_body(body, limit).await?;
    let mut params = Params::from_query(query.as_deref());
    params.merge_body(&headers, &body)?;
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    // Upstream checks no policy on network_list (reference §8).
    if action != "network_list" {
        ctx.authorize(&format!("container:{action}"), &target(&container))?;
    }
    if let Some(response) = streams::handle(&state, &ctx, &action, &container, &params).await {
        return response;
    }
    if !matches!(action.as_str(), "network_list" | "logs") {
        refuse_member(&container, &action)?;
    }
    let store = state.store.as_ref();
    // Asynchronous actions: the state check, the task state (and desired
    // state) the API records, and the arguments the agent needs.
    let (check, args, task, desired) = match action.as_str() {
        "start" => (
            Action::Start,
            json!({}),
            TaskState::ContainerStarting,
            Some(DesiredState::Running),
        ),
        "stop" => (
            Action::Stop,
            json!({ "timeout": validation::timeout(params.get("timeout"))? }),
            TaskState::ContainerStopping,
            Some(DesiredState::Stopped),
        ),
        "reboot" => (
            Action::Reboot,
            json!({ "timeout": validation::timeout(params.get("timeout"))? }),
            TaskState::ContainerRebooting,
            Some(DesiredState::Running),
        ),
        "pause" => (
            Action::Pause,
            json!({}),
            TaskState::ContainerPausing,
            Some(DesiredState::Paused),
        ),
        "unpause" => (
            Action::Unpause,
            json!({}),
            TaskState::ContainerUnpausing,
            Some(DesiredState::Running),
        ),
        "kill" => (
            Action::Kill,
            json!({ "signal": validation::signal(params.get("signal"))? }),
            TaskState::ContainerKilling,
            None,
        ),
        "rename" => return rename(store, &ctx, &container, &params).await,
        "resize_container" => return resize_container(&state, &ctx, &container, &params).await,
        "rebuild" => {
            let (image, driver) =
                validation::rebuild_request(params.get("image"), params.get("image_driver"))?;
            if driver.as_deref() == Some("glance") {
                return Err(Error(ApiError::invalid(
                    "Image driver glance is not configured in this deployment.",
                )));
            }
            let args = json!({ "image": image });
            let was_running = container.status == ContainerStatus::Running;
            return transition(store, &ctx, &container, Action::Rebuild, args, move |c| {
                c.status = ContainerStatus::Rebuilding;
                c.task_state = Some(TaskState::ContainerRebuilding);
                if let Some(image) = &image {
                    c.image.clone_from(image);
                }
                // Upstream: back to Running only if it was running.
                c.desired_state = if was_running {
                    DesiredState::Running
                } else {
                    DesiredState::Created
                };
            })
            .await;
        }
        "network_attach" => return network_attach(&state, &ctx, &container, &params).await,
        "add_security_group" | "remove_security_group" => {
            let add = action == "add_security_group";
            let name = params.get("name");
            return crate::security_groups::change(&state, &ctx, &container, name, add).await;
        }
        "network_detach" => {
            return network_detach(&state, &ctx, &container, query.as_deref()).await;
        }
        "network_list" => {
            // One entry per port from 1.18, one per address before.
            let per_port = ctx.version >= Version::new(1, 18);
            let list = zun_types::network::network_list(container.addresses.as_ref(), per_port);
            return Ok(Json(list).into_response());
        }
        "logs" => return logs(&state, &container, &params).await,
        other => {
            return Err(Error(ApiError::new(
                501,
                "",
                format!("The {other} action is not available in this deployment yet."),
            )));
        }
    };
    transition(store, &ctx, &container, check, args, move |c| {
        if check == Action::Reboot {
            c.status = ContainerStatus::Restarting;
        }
        c.task_state = Some(task);
        if let Some(desired) = desired {
            c.desired_state = desired;
        }
    })
    .await
}

/// How long `network_attach` waits for the host to plug the network in
/// (upstream answers once compute has).
const NETWORK_ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `POST .../network_attach` (1.8): `network` or `port`, optional
/// `fixed_ip`; answered 200 once the container's host has connected it.
async fn network_attach(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    let (network, port) = (params.get("network"), params.get("port"));
    if network.is_some() == port.is_some() {
        return Err(Error(ApiError::schema(
            "Exactly one of network and port must be given.",
        )));
    }
    let fixed = match params.get("fixed_ip") {
        None | Some("") => None,
        Some(text) => Some(text.parse::<std::net::Ipv4Addr>().map_err(|_| {
            ApiError::schema(format!(
                "Invalid input for field/attribute fixed_ip. Value: {text}. '{text}' is not a 'ipv4'"
            ))
        })?),
    };
    let requested = RequestedNetwork {
        network: network.map(str::to_owned),
        port: port.map(str::to_owned),
        v4_fixed_ip: fixed,
        v6_fixed_ip: None,
    };
    let requested = resolve_network(state.store.as_ref(), &container.project_id, requested).await?;
    let attached = container
        .addresses
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|nets| {
            requested
                .network
                .as_ref()
                .is_some_and(|n| nets.contains_key(n))
        });
    if attached {
        return Err(Error(ApiError::invalid(format!(
            "Container {} is already connected to network {}.",
            container.uuid,
            requested.network.unwrap_or_default()
        ))));
    }
    let params = serde_json::to_value(&requested).unwrap_or(Value::Null);
    let action = new_action(ctx, container, "network_attach", params);
    let (_, record) = state
        .store
        .update_container(&container.uuid, &|_: &mut Container| Ok(()), Some(&action))
        .await?;
    if let Some(record) = record {
        wait_for_action(
            state,
            &container.uuid,
            &record.request_id,
            NETWORK_ATTACH_WAIT,
        )
        .await?;
    }
    Ok(null_response(StatusCode::OK))
}

/// `POST .../network_detach` (1.6): `network` xor `port` in the query
/// string; answered 202, the host disconnects it.
async fn network_detach(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    query: Option<&str>,
) -> Result<Response> {
    let query = Params::from_query(query);
    let (network, port) = (query.get("network"), query.get("port"));
    if network.is_some() == port.is_some() {
        return Err(Error(ApiError::schema(
            "Exactly one of network and port must be given in the query string.",
        )));
    }
    let connected = container
        .addresses
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // The network the container is on, by the network's or the port's id,
    // or by the network's name.
    let by_port = port.and_then(|p| {
        connected.iter().find_map(|(net, entries)| {
            entries
                .as_array()?
                .iter()
                .any(|e| e.get("port").and_then(Value::as_str) == Some(p))
                .then(|| net.clone())
        })
    });
    let by_network = match network {
        Some(ident) => state
            .store
            .find_network(&container.project_id, ident)
            .await?
            .map(|n| n.uuid)
            .filter(|uuid| connected.contains_key(uuid)),
        None => None,
    };
    let Some(network_uuid) = by_port.or(by_network) else {
        return Err(Error(ApiError::invalid(format!(
            "Container {} is not connected to {} {}.",
            container.uuid,
            if port.is_some() { "port" } else { "network" },
            port.or(network).unwrap_or_default()
        ))));
    };
    let action = new_action(
        ctx,
        container,
        "network_detach",
        json!({ "network": network_uuid }),
    );
    state
        .store
        .update_container(&container.uuid, &|_: &mut Container| Ok(()), Some(&action))
        .await?;
    Ok(null_response(StatusCode::ACCEPTED))
}

/// Waits until the host has finished the action `request_id` of the
/// container; its failure comes back as a 400 with the host's reason.
async fn wait_for_action(
    state: &ApiState,
    container_uuid: &str,
    request_id: &str,
    limit: std::time::Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some((action, events)) = state.store.get_action(container_uuid, request_id).await?
            && action.finish_time.is_some()
        {
            if action.message.is_some() {
                let reason = events
                    .iter()
                    .find_map(|e| e.traceback.clone())
                    .unwrap_or_else(|| "the host could not do it".into());
                return Err(Error(ApiError::invalid(reason)));
            }
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error(ApiError::new(
                504,
                "",
                format!(
                    "The host did not answer within {} s; the action stays recorded.",
                    limit.as_secs()
                ),
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// `POST .../resize_container` (1.19): a cpu/memory change as PATCH makes it,
/// answered 202 with the container as it was (upstream's answer).
async fn resize_container(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    let mut body = serde_json::Map::new();
    for (key, value) in params.pairs() {
        let value = match key {
            "auto_heal" => Value::Bool(params.bool(key, false)?),
            _ => Value::String(value.to_owned()),
        };
        body.insert(key.to_owned(), value);
    }
    let req = validation::update_request(&Value::Object(body))?;
    apply_update(state, ctx, container, req, Action::ResizeContainer).await?;
    Ok((StatusCode::ACCEPTED, Json(view_one(ctx, container))).into_response())
}

/// Checks the state, applies the API-side status change and records the
/// action for the agent, atomically. Answers upstream's `202 null`.
async fn transition(
    store: &dyn Store,
    ctx: &Ctx,
    container: &Container,
    action: Action,
    params: Value,
    apply: impl Fn(&mut Container) + Send + Sync,
) -> Result<Response> {
    let record = new_action(ctx, container, action.key(), params);
    let mutate = move |c: &mut Container| {
        action.check(&c.uuid, c.status)?;
        apply(c);
        Ok(())
    };
    store
        .update_container(&container.uuid, &mutate, Some(&record))
        .await?;
    Ok(null_response(StatusCode::ACCEPTED))
}

async fn rename(
    store: &dyn Store,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    let Some(raw) = params.get("name") else {
        return Err(Error(ApiError::schema("'name' is a required property")));
    };
    let name = validation::container_name("name", &Value::String(raw.to_string()))?;
    let mutate = move |c: &mut Container| {
        if c.name == name {
            return Err(ApiError::conflict(
                "The new name for the container is the same as the old name.",
            ));
        }
        c.name = name.clone();
        Ok(())
    };
    let (renamed, _) = store
        .update_container(&container.uuid, &mutate, None)
        .await?;
    Ok(Json(view_one(ctx, &renamed)).into_response())
}

fn parse_since(raw: &str) -> Option<i64> {
    if let Ok(epoch) = raw.parse::<i64>() {
        return Some(epoch);
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S,%3f")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

async fn logs(state: &ApiState, container: &Container, params: &Params) -> Result<Response> {
    Action::Logs.check(&container.uuid, container.status)?;
    let since = match params.get("since") {
        None => None,
        Some(raw) => Some(parse_since(raw).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid since value {raw}: use seconds since the epoch or YYYY-MM-DD HH:MM:SS,mmm"
            ))
        })?),
    };
    let options = LogOptions {
        stdout: params.bool("stdout", true)?,
        stderr: params.bool("stderr", true)?,
        timestamps: params.bool("timestamps", false)?,
        // Upstream treats a tail that is not an integer as "all".
        tail: params.get("tail").and_then(|t| t.parse::<u64>().ok()),
        since,
    };
    let text = state.host_link.logs(container, &options).await?;
    Ok(Json(Value::String(text)).into_response())
}

fn action_view(a: &zun_store::ActionRecord) -> Value {
    json!({
        "action": a.action,
        "container_uuid": a.container_uuid,
        "request_id": a.request_id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "start_time": view::action_time(&a.start_time),
        "finish_time": a.finish_time.as_ref().map(view::action_time),
        "message": a.message,
    })
}

async fn list_actions(
    State(state): Shared,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Response> {
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("container:actions", &target(&container))?;
    let actions = state.store.list_actions(&container.uuid).await?;
    let items: Vec<Value> = actions.iter().map(action_view).collect();
    Ok(Json(json!({ "containerActions": items })).into_response())
}

async fn show_action(
    State(state): Shared,
    ctx: Ctx,
    Path((ident, request_id)): Path<(String, String)>,
) -> Result<Response> {
    let container = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("container:actions", &target(&container))?;
    let Some((action, events)) = state.store.get_action(&container.uuid, &request_id).await? else {
        return Err(Error(ApiError::new(
            404,
            "resource-not-found",
            format!("The Action resource {request_id} could not be found."),
        )));
    };
    let show_traceback = ctx.can("container:action:events", &target(&container));
    let mut body = action_view(&action);
    body["events"] = events
        .iter()
        .map(|e| {
            json!({
                "event": e.event,
                "start_time": view::action_time(&e.start_time),
                "finish_time": e.finish_time.as_ref().map(view::action_time),
                "result": e.result,
                "traceback": if show_traceback { e.traceback.clone() } else { None },
            })
        })
        .collect();
    Ok(Json(body).into_response())
}
