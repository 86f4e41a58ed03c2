//! The `mounts` of a create, resolved against the caller's volumes: an
//! existing volume by uuid or name (the local driver makes a named volume
//! on first use, as Docker does), a new one of `size` GiB removed with its
//! container, or an injected file. The store claims the volumes in the
//! create's transaction; this only finds them and says where their data is.
//!
//! Upstream left volumes to Cinder; the local driver's named volumes
//! outlive their containers, so `/v1/volumes` (list, show, delete, in the
//! caller's project) is how a tenant sees and removes them. A deleted
//! volume's data is removed by its host's agent at its next resync.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use zun_types::view::{links, resource_time};
use zun_types::volume::VolumeRecord;

use zun_store::Store;
use zun_types::ApiError;
use zun_types::volume::{
    DEFAULT_NAMED_VOLUME_GIB, Mount, MountRequest, VolumeRef, volume_in_use, volume_not_found,
};

use crate::ApiState;
use crate::context::Ctx;
use crate::error::Error;

type Shared = State<Arc<ApiState>>;

type Result<T> = std::result::Result<T, Error>;

/// A create's mounts as the container records them, and the host holding
/// the data of the existing volumes among them (the container must go there).
pub(crate) struct ResolvedMounts {
    pub mounts: Vec<Mount>,
    pub host: Option<String>,
}

pub(crate) async fn resolve(
    store: &dyn Store,
    ctx: &Ctx,
    requests: Vec<MountRequest>,
) -> Result<ResolvedMounts> {
    let project_id = &ctx.identity.project_id;
    let mut mounts = Vec::with_capacity(requests.len());
    let mut hosts = BTreeSet::new();
    let mut named = BTreeSet::new();
    for request in requests {
        let mount = match request {
            MountRequest::File {
                contents,
                destination,
            } => Mount::Bind {
                destination,
                contents,
            },
            MountRequest::NewVolume {
                size_gib,
                destination,
            } => Mount::Volume {
                destination,
                volume: VolumeRef {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    name: None,
                    size_gib,
                    auto_remove: true,
                    new: true,
                },
            },
            MountRequest::Volume {
                source,
                destination,
            } => {
                let existing = if crate::containers::looks_like_uuid(&source) {
                    match store.get_volume(&source).await? {
                        Some(v) if &v.project_id == project_id => Some(v),
                        // Upstream's Cinder check of an admin's look at
                        // another project's volume.
                        Some(v) if ctx.is_admin() => {
                            return Err(Error(ApiError::invalid(format!(
                                "Volume {} not usable for the container.",
                                v.uuid
                            ))));
                        }
                        _ => return Err(Error(volume_not_found(&source))),
                    }
                } else {
                    store.find_volume(project_id, &source).await?
                };
                let volume = match existing {
                    Some(v) => {
                        if v.container_uuid.is_some() {
                            return Err(Error(volume_in_use(&v.uuid)));
                        }
                        if let Some(host) = &v.host {
                            hosts.insert(host.clone());
                        }
                        v.reference()
                    }
                    None => VolumeRef {
                        uuid: uuid::Uuid::new_v4().to_string(),
                        name: Some(source.clone()),
                        size_gib: DEFAULT_NAMED_VOLUME_GIB,
                        auto_remove: false,
                        new: true,
                    },
                };
                if !named.insert(volume.uuid.clone())
                    || volume
                        .name
                        .as_ref()
                        .is_some_and(|n| !named.insert(n.clone()))
                {
                    return Err(Error(ApiError::invalid(format!(
                        "Volume {source} is mounted more than once."
                    ))));
                }
                Mount::Volume {
                    destination,
                    volume,
                }
            }
        };
        mounts.push(mount);
    }
    if hosts.len() > 1 {
        let hosts: Vec<String> = hosts.into_iter().collect();
        return Err(Error(ApiError::invalid(format!(
            "The volumes are on different hosts ({}); a container can only mount volumes of one host.",
            hosts.join(", ")
        ))));
    }
    Ok(ResolvedMounts {
        mounts,
        host: hosts.into_iter().next(),
    })
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/volumes", get(list))
        .route("/v1/volumes/{ident}", get(show).delete(remove))
}

fn view(ctx: &Ctx, v: &VolumeRecord) -> Value {
    let mut view = json!({
        "uuid": v.uuid,
        "links": links(&ctx.host_url, "volumes", &v.uuid),
        "name": v.name,
        "project_id": v.project_id,
        "user_id": v.user_id,
        "driver": v.driver,
        "size": v.size_gib,
        "auto_remove": v.auto_remove,
        "container_uuid": v.container_uuid,
        "created_at": resource_time(&v.created_at),
    });
    // Host names are for admins, as in the container view.
    if ctx.is_admin() {
        view["host"] = json!(v.host);
    }
    view
}

/// The caller's volume `ident` (uuid or name), else upstream's 404.
async fn find(store: &dyn Store, ctx: &Ctx, ident: &str) -> Result<VolumeRecord> {
    let project_id = &ctx.identity.project_id;
    let found = if crate::containers::looks_like_uuid(ident) {
        store.get_volume(ident).await?
    } else {
        store.find_volume(project_id, ident).await?
    };
    found
        .filter(|v| &v.project_id == project_id)
        .ok_or_else(|| Error(volume_not_found(ident)))
}

async fn list(State(state): Shared, ctx: Ctx) -> Result<Response> {
    let volumes = state.store.list_volumes(&ctx.identity.project_id).await?;
    let views: Vec<Value> = volumes.iter().map(|v| view(&ctx, v)).collect();
    Ok(Json(json!({ "volumes": views })).into_response())
}

async fn show(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let volume = find(state.store.as_ref(), &ctx, &ident).await?;
    Ok(Json(view(&ctx, &volume)).into_response())
}

async fn remove(State(state): Shared, ctx: Ctx, Path(ident): Path<String>) -> Result<Response> {
    let volume = find(state.store.as_ref(), &ctx, &ident).await?;
    if !state.store.delete_volume(&volume.uuid).await? {
        return Err(Error(volume_not_found(&ident)));
    }
    tracing::info!(uuid = %volume.uuid, host = ?volume.host, "volume deleted; its host removes its data");
    Ok(StatusCode::NO_CONTENT.into_response())
}
