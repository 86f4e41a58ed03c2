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
    CINDER_DRIVER, DEFAULT_NAMED_VOLUME_GIB, LOCAL_DRIVER, Mount, MountRequest, VolumeRef,
    volume_in_use, volume_not_found,
};
use zun_volume::cinder::{Cinder, CinderError, Scope};

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

/// The caller's way to Cinder, when volumes are Cinder's: the API looks
/// volumes up and makes them with the caller's own token, in the caller's
/// project, as upstream does.
pub(crate) struct CinderCaller<'a> {
    pub cinder: &'a Cinder,
    pub scope: Scope,
}

impl<'a> CinderCaller<'a> {
    /// The caller of this request, when volumes are Cinder's.
    pub(crate) fn of(
        state: &'a ApiState,
        ctx: &Ctx,
        headers: &axum::http::HeaderMap,
    ) -> Option<Self> {
        state.cinder.as_ref().map(|cinder| CinderCaller {
            cinder,
            scope: Scope {
                token: headers
                    .get("x-auth-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                project_id: ctx.identity.project_id.clone(),
            },
        })
    }
}

fn cinder_failed(err: CinderError) -> Error {
    match err {
        CinderError::Refused { status, message } if status < 500 => Error(ApiError::invalid(
            format!("Volume Creation failed: {message}"),
        )),
        other => Error(ApiError::service_unavailable(other.to_string())),
    }
}

/// A `source` mount's Cinder volume, by uuid or name, in the caller's
/// project and usable (upstream's `search_volume` and `ensure_volume_usable`).
async fn cinder_volume(
    store: &dyn Store,
    caller: &CinderCaller<'_>,
    ctx: &Ctx,
    source: &str,
) -> Result<VolumeRef> {
    let found = if crate::containers::looks_like_uuid(source) {
        caller
            .cinder
            .volume(&caller.scope, source)
            .await
            .map_err(cinder_failed)?
    } else {
        let mut named = caller
            .cinder
            .volumes_named(&caller.scope, source)
            .await
            .map_err(cinder_failed)?;
        if named.len() > 1 {
            return Err(Error(ApiError::conflict(
                "Multiple cinder volumes exist with same name. Please use the uuid instead.",
            )));
        }
        named.pop()
    };
    let Some(volume) = found else {
        return Err(Error(volume_not_found(source)));
    };
    if volume
        .tenant_id
        .as_ref()
        .is_some_and(|t| t != &ctx.identity.project_id)
    {
        return Err(Error(ApiError::invalid(format!(
            "Volume {} not usable for the container.",
            volume.id
        ))));
    }
    if !volume.attachments.is_empty() && !volume.multiattach {
        return Err(Error(volume_in_use(&volume.id)));
    }
    Ok(match store.get_volume(&volume.id).await? {
        Some(known) if known.container_uuid.is_some() => {
            return Err(Error(volume_in_use(&volume.id)));
        }
        Some(known) => known.reference(),
        None => VolumeRef {
            uuid: volume.id,
            name: volume.name.filter(|n| !n.is_empty()),
            size_gib: volume.size,
            auto_remove: false,
            new: true,
            driver: CINDER_DRIVER.into(),
        },
    })
}

/// Deletes the Cinder volumes a failed or unplaced create made (best
/// effort: upstream left them behind).
pub(crate) async fn discard_made(caller: Option<&CinderCaller<'_>>, mounts: &[Mount]) {
    let Some(caller) = caller else {
        return;
    };
    for mount in mounts {
        if let Mount::Volume { volume, .. } = mount
            && volume.new
            && volume.driver == CINDER_DRIVER
            && let Err(err) = caller
                .cinder
                .delete_volume(&caller.scope, &volume.uuid)
                .await
        {
            tracing::warn!(uuid = %volume.uuid, error = %err, "deleting a Cinder volume no container uses failed");
        }
    }
}

/// An existing local volume of the caller's project by uuid or name, or a
/// new named one; records the host holding an existing one's data.
async fn local_volume(
    store: &dyn Store,
    ctx: &Ctx,
    source: &str,
    hosts: &mut BTreeSet<String>,
) -> Result<VolumeRef> {
    let project_id = &ctx.identity.project_id;
    let existing = if crate::containers::looks_like_uuid(source) {
        match store.get_volume(source).await? {
            Some(v) if &v.project_id == project_id => Some(v),
            // Upstream's Cinder check of an admin's look at another
            // project's volume.
            Some(v) if ctx.is_admin() => {
                return Err(Error(ApiError::invalid(format!(
                    "Volume {} not usable for the container.",
                    v.uuid
                ))));
            }
            _ => return Err(Error(volume_not_found(source))),
        }
    } else {
        store.find_volume(project_id, source).await?
    };
    Ok(match existing {
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
            name: Some(source.to_owned()),
            size_gib: DEFAULT_NAMED_VOLUME_GIB,
            auto_remove: false,
            new: true,
            driver: LOCAL_DRIVER.into(),
        },
    })
}

/// A new volume of `size_gib`, removed with its container: made in Cinder
/// now (in the caller's project), or by the host's agent.
async fn new_volume(cinder: Option<&CinderCaller<'_>>, size_gib: i64) -> Result<VolumeRef> {
    let (uuid, driver) = match cinder {
        Some(caller) => {
            let made = caller
                .cinder
                .create_volume(&caller.scope, size_gib)
                .await
                .map_err(cinder_failed)?;
            (made.id, CINDER_DRIVER)
        }
        None => (uuid::Uuid::new_v4().to_string(), LOCAL_DRIVER),
    };
    Ok(VolumeRef {
        uuid,
        name: None,
        size_gib,
        auto_remove: true,
        new: true,
        driver: driver.into(),
    })
}

pub(crate) async fn resolve(
    store: &dyn Store,
    ctx: &Ctx,
    cinder: Option<&CinderCaller<'_>>,
    requests: Vec<MountRequest>,
) -> Result<ResolvedMounts> {
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
                volume: new_volume(cinder, size_gib).await?,
                read_only: false,
            },
            MountRequest::Volume {
                source,
                destination,
            } => {
                let volume = match cinder {
                    Some(caller) => cinder_volume(store, caller, ctx, &source).await?,
                    None => local_volume(store, ctx, &source, &mut hosts).await?,
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
                    read_only: false,
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
