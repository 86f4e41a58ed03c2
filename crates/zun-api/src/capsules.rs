//! `/v1/capsules` (reference §6): Zun's pods. A capsule is one row of the
//! containers table (`kind` capsule) that is placed, holds the network
//! address, the exposed ports' group and the volumes, and has no engine
//! container of its own; its containers and init containers are member
//! rows on the same host, reachable through `/v1/containers/{uuid}` for
//! reading, logs, exec and the other streams. Capsules are not
//! quota-checked and their members count as no containers, as upstream.

use std::collections::BTreeMap;
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
use zun_store::{ListQuery, QuotaLimits, Store};
use zun_types::capsule::{CapsuleTemplate, MemberTemplate, TemplateVolume, VolumeSource};
use zun_types::container::{CapsuleMember, DesiredState, RecordKind};
use zun_types::microversion::Version;
use zun_types::volume::{Mount, MountRequest};
use zun_types::{Container, ContainerStatus, RestartPolicy, view};

use crate::containers::{
    body_bytes, find_record, generated_name, new_action, record_delete, shown_fields, target,
};
use crate::context::Ctx;
use crate::error::Error;
use crate::params::{self, Params};
use crate::{ApiState, created};

type Shared = State<Arc<ApiState>>;
type Result<T> = std::result::Result<T, Error>;

/// The view changed at 1.32 (reference §6.3).
const CURRENT_VIEW: Version = Version::new(1, 32);

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/capsules", get(list).post(create))
        .route("/v1/capsules/{ident}", get(show).delete(remove))
}

async fn find(store: &dyn Store, ctx: &Ctx, ident: &str) -> Result<Container> {
    find_record(store, ctx, ident, |kind| kind == RecordKind::Capsule).await
}

fn render(ctx: &Ctx, capsule: &Container, members: &[Container]) -> Value {
    let owner = target(capsule);
    view::capsule(
        capsule,
        members,
        &ctx.host_url,
        ctx.version < CURRENT_VIEW,
        ctx.can("capsule:get:host", &owner),
        &shown_fields(ctx, capsule),
    )
}

/// A Kubernetes-style name reused as every member's hostname, when it is a
/// valid one.
fn hostname_of(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !name.starts_with(['-', '.']);
    valid.then(|| name.to_owned())
}

/// The capsule's own record: what is placed and holds the network.
fn capsule_record(template: &CapsuleTemplate, ctx: &Ctx, uuid: &str) -> Container {
    let name = template
        .name
        .clone()
        .unwrap_or_else(|| format!("capsule-{}", &uuid[..8]));
    // Every port any member exposes is the capsule's: they share an address.
    let mut exposed = serde_json::Map::new();
    for member in template.init_containers.iter().chain(&template.containers) {
        if let Some(Value::Object(ports)) = &member.exposed_ports {
            exposed.extend(ports.clone());
        }
    }
    Container {
        kind: RecordKind::Capsule,
        image_driver: Some("docker".into()),
        cpu: Some(template.cpu),
        memory: Some(template.memory.to_string()),
        labels: template.labels.clone(),
        annotations: template.annotations.clone(),
        restart_policy: Some(RestartPolicy {
            name: template.restart_policy.clone(),
            maximum_retry_count: "0".into(),
        }),
        availability_zone: template.availability_zone.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(Value::Object(exposed)),
        desired_state: DesiredState::Running,
        created_at: Utc::now(),
        ..Container::new(
            uuid,
            name,
            ctx.identity.project_id.clone(),
            ctx.identity.user_id.clone(),
            "",
        )
    }
}

/// One member's record. Init containers run once: a failing one fails the
/// capsule, so the engine never restarts them.
fn member_record(
    capsule: &Container,
    spec: &MemberTemplate,
    init: bool,
    index: usize,
    may_pull_policy: bool,
    volumes: &BTreeMap<String, zun_types::volume::VolumeRef>,
) -> Container {
    let suffix = spec.name.clone().unwrap_or_else(generated_name);
    let restart_policy = if init {
        RestartPolicy {
            name: "no".into(),
            maximum_retry_count: "0".into(),
        }
    } else {
        capsule.restart_policy.clone().unwrap_or(RestartPolicy {
            name: "always".into(),
            maximum_retry_count: "0".into(),
        })
    };
    let mounts = spec
        .volume_mounts
        .iter()
        .filter_map(|m| {
            volumes.get(&m.name).map(|volume| Mount::Volume {
                destination: m.mount_path.clone(),
                volume: volume.clone(),
                read_only: m.read_only,
            })
        })
        .collect();
    Container {
        kind: RecordKind::Member,
        capsule: Some(CapsuleMember {
            capsule_uuid: capsule.uuid.clone(),
            init,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            template_name: spec.name.clone(),
        }),
        image_driver: Some("docker".into()),
        image_pull_policy: Some(
            spec.image_pull_policy
                .clone()
                .filter(|_| may_pull_policy)
                .unwrap_or_else(|| "always".into()),
        ),
        command: spec.command.clone(),
        cpu: spec.cpu,
        memory: spec.memory.map(|m| m.to_string()),
        workdir: spec.workdir.clone(),
        environment: spec.environment.clone(),
        hostname: hostname_of(&capsule.name),
        restart_policy: Some(restart_policy),
        interactive: spec.interactive,
        tty: spec.tty,
        exposed_ports: spec.exposed_ports.clone(),
        mounts,
        desired_state: if init {
            DesiredState::Stopped
        } else {
            DesiredState::Running
        },
        ..Container::new(
            uuid::Uuid::new_v4().to_string(),
            format!("capsule-{}-{suffix}", capsule.name),
            capsule.project_id.clone(),
            capsule.user_id.clone(),
            spec.image.clone(),
        )
    }
}

/// The template's volumes as mount requests, each at the first path that
/// mounts it (the capsule claims them; members bind them where they say).
fn volume_requests(template: &CapsuleTemplate) -> Vec<(String, MountRequest, bool)> {
    let first_path = |volume: &TemplateVolume| {
        template
            .init_containers
            .iter()
            .chain(&template.containers)
            .flat_map(|m| &m.volume_mounts)
            .find(|m| m.name == volume.name)
            .map(|m| m.mount_path.clone())
            .unwrap_or_else(|| format!("/{}", volume.name))
    };
    template
        .volumes
        .iter()
        .map(|volume| {
            let destination = first_path(volume);
            match &volume.source {
                VolumeSource::Existing(source) => (
                    volume.name.clone(),
                    MountRequest::Volume {
                        source: source.clone(),
                        destination,
                    },
                    false,
                ),
                VolumeSource::New {
                    size_gib,
                    auto_remove,
                } => (
                    volume.name.clone(),
                    MountRequest::NewVolume {
                        size_gib: *size_gib,
                        destination,
                    },
                    *auto_remove,
                ),
            }
        })
        .collect()
}

async fn create(
    State(state): Shared,
    ctx: Ctx,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body_bytes(body)?;
    let value = params::json_body(&headers, &body)?;
    let template = zun_types::capsule::capsule_request(&value)?;
    ctx.authorize("capsule:create", &ctx.own_target())?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut capsule = capsule_record(&template, &ctx, &uuid);

    let requests = volume_requests(&template);
    let cinder = crate::volumes::CinderCaller::of(&state, &ctx, &headers);
    let resolved = crate::volumes::resolve(
        state.store.as_ref(),
        &ctx,
        cinder.as_ref(),
        requests.iter().map(|(_, r, _)| r.clone()).collect(),
    )
    .await?;
    let mut by_name = BTreeMap::new();
    let mut mounts = resolved.mounts;
    for ((name, _, auto_remove), mount) in requests.iter().zip(mounts.iter_mut()) {
        if let Mount::Volume { volume, .. } = mount {
            // A capsule's new volume stays unless the template says
            // `autoRemove` (upstream's rule; a container's `size` mount
            // always goes with it).
            if volume.new {
                volume.auto_remove = *auto_remove;
            }
            by_name.insert(name.clone(), volume.clone());
        }
    }
    capsule.mounts = mounts.clone();

    let may_pull_policy = ctx.can("container:create:image_pull_policy", &ctx.own_target());
    let mut members: Vec<Container> =
        template
            .init_containers
            .iter()
            .enumerate()
            .map(|(i, spec)| member_record(&capsule, spec, true, i, may_pull_policy, &by_name))
            .chain(template.containers.iter().enumerate().map(|(i, spec)| {
                member_record(&capsule, spec, false, i, may_pull_policy, &by_name)
            }))
            .collect();

    let placed = async {
        let exposed_group = crate::security_groups::exposed_group(&state, &capsule).await?;
        if let Some(group) = &exposed_group {
            capsule.security_groups = Some(vec![group.clone()]);
        }
        let action = new_action(&ctx, &capsule, "create", json!({ "run": true }));
        let placed = crate::placement::place_and_insert(
            &state,
            &mut capsule,
            &mut members,
            crate::placement::Pins {
                requested_host: None,
                volume_host: resolved.host.as_deref(),
            },
            action,
            &QuotaLimits::UNLIMITED,
        )
        .await;
        if let Err(err) = placed {
            if let Some(group) = &exposed_group {
                state.store.delete_security_group(group).await?;
            }
            return Err(err);
        }
        Ok(())
    }
    .await;
    if placed.is_err() || capsule.host.is_none() {
        crate::volumes::discard_made(cinder.as_ref(), &mounts).await;
    }
    placed?;
    tracing::info!(uuid = %capsule.uuid, name = %capsule.name, host = ?capsule.host, members = members.len(), "capsule create accepted");
    Ok(created(
        StatusCode::ACCEPTED,
        render(&ctx, &capsule, &members),
        &ctx.host_url,
        "capsules",
        &capsule.uuid,
    ))
}

const LIST_KEYS: &[&str] = &["limit", "marker", "sort_key", "sort_dir", "all_projects"];

async fn list(State(state): Shared, ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    params.reject_unknown(LIST_KEYS)?;
    let page = params.page(zun_store::SORT_KEYS)?;
    // Upstream checks no policy on `all_projects` here; only admins' lists
    // widen (reference §12).
    let all_projects = params.bool("all_projects", false)?;
    ctx.authorize("capsule:get_all", &ctx.own_target())?;
    let query = ListQuery {
        project_id: (!(all_projects && ctx.is_admin())).then(|| ctx.identity.project_id.clone()),
        filters: Vec::new(),
        limit: page.limit,
        marker: page.marker.clone(),
        sort_key: page.sort_key.clone(),
        sort_dir: page.sort_dir,
        kind: RecordKind::Capsule,
    };
    let rows = state.store.list_containers(&query).await?;
    let mut items = Vec::with_capacity(rows.len());
    for capsule in &rows {
        let members = state.store.capsule_members(&capsule.uuid).await?;
        items.push(render(&ctx, capsule, &members));
    }
    let next = params::next_link(
        &ctx.host_url,
        "capsules",
        &page,
        rows.len(),
        rows.last().map(|c| c.uuid.as_str()),
    );
    Ok(Json(json!({ "capsules": items, "next": next })).into_response())
}

async fn show(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let capsule = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("capsule:get", &target(&capsule))?;
    let members = state.store.capsule_members(&capsule.uuid).await?;
    Ok(Json(render(&ctx, &capsule, &members)).into_response())
}

/// Asynchronous: the capsule shows `Deleting` until its host's agent has
/// removed its containers, network and volumes; one never placed goes now.
async fn remove(
    State(state): Shared,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = Params::from_query(query.as_deref());
    if params.bool("all_projects", false)? {
        ctx.authorize("capsule:delete_all_projects", &ctx.own_target())?;
    }
    let capsule = find(state.store.as_ref(), &ctx, &ident).await?;
    ctx.authorize("capsule:delete", &target(&capsule))?;
    if capsule.status == ContainerStatus::Deleting {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let action = new_action(&ctx, &capsule, "delete", json!({ "stop": true }));
    // Nothing to wait for when no host holds it, or its host is down: a
    // returning host removes what the store no longer knows.
    let host_down = match &capsule.host {
        None => true,
        Some(host) => {
            !crate::placement::host_is_up(state.store.as_ref(), &state.scheduler, host).await?
        }
    };
    record_delete(&state, &capsule.uuid, None, action, host_down).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_hostnames_are_reused() {
        assert_eq!(hostname_of("web-1").as_deref(), Some("web-1"));
        assert_eq!(hostname_of("my_pod"), None);
        assert_eq!(hostname_of("-x"), None);
        assert_eq!(hostname_of(&"a".repeat(64)), None);
    }
}
