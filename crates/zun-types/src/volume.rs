//! Volumes and the `mounts` of a create (microversion 1.11; `type` 1.23):
//! the request's validation with upstream's texts, what a container
//! records of its mounts, the volume record, and the view's `mounts`.
//!
//! A mount is either a volume (an existing one named by `source`, or a new
//! one of `size` GiB that goes with its container) or, with `type: bind`,
//! a file injected at `destination` whose content is `source` in base64
//! (upstream's meaning of `bind`: never a path of the host).

use std::collections::BTreeSet;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ApiError;
use crate::validation::{additional_property, field_error, py_repr, type_error};

/// The largest volume a mount may ask for, in GiB (Cinder's default
/// per-volume limit is 1,000 GiB; a local volume is a sparse file, so this
/// bounds what a typo can promise rather than what is used).
pub const MAX_VOLUME_GIB: i64 = 1000;

/// The size of a volume made for a `source` name the project does not have
/// yet (the local driver makes named volumes on first use, as Docker does).
pub const DEFAULT_NAMED_VOLUME_GIB: i64 = 1;

/// The largest file a `bind` mount may inject, decoded (Kubernetes bounds a
/// ConfigMap the same way): the content travels in the container's record.
pub const MAX_INJECTED_FILE_BYTES: usize = 1024 * 1024;

/// One entry of a create's `mounts`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// An existing volume of the caller's project, by uuid or name.
    Volume { source: String, destination: String },
    /// A new volume of `size_gib`, removed with its container.
    NewVolume { size_gib: i64, destination: String },
    /// A file injected at `destination`; `contents` is the base64 text sent.
    File {
        contents: String,
        destination: String,
    },
}

impl MountRequest {
    pub fn destination(&self) -> &str {
        match self {
            MountRequest::Volume { destination, .. }
            | MountRequest::NewVolume { destination, .. }
            | MountRequest::File { destination, .. } => destination,
        }
    }
}

/// What a container records of one mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    Volume {
        destination: String,
        volume: VolumeRef,
        /// A capsule's `volumeMounts[].readOnly`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        read_only: bool,
    },
    /// An injected file; `contents` is base64.
    Bind {
        destination: String,
        contents: String,
    },
}

/// The volume a container mounts, as the container records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRef {
    pub uuid: String,
    pub name: Option<String>,
    /// GiB.
    pub size_gib: i64,
    /// Made for this container and removed with it (a `size` mount).
    pub auto_remove: bool,
    /// Made by this container's create: the store inserts its row in the
    /// create's transaction instead of claiming an existing one.
    #[serde(default)]
    pub new: bool,
    /// The driver holding its data (`local`, `cinder`).
    #[serde(default = "local_driver")]
    pub driver: String,
}

fn local_driver() -> String {
    LOCAL_DRIVER.to_owned()
}

/// The embedded volume driver's name.
pub const LOCAL_DRIVER: &str = "local";
/// The Cinder volume driver's name.
pub const CINDER_DRIVER: &str = "cinder";

/// A volume as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: String,
    pub user_id: String,
    /// The volume driver that holds its data (`local`).
    pub driver: String,
    /// The host holding a local volume's data; containers using it go there.
    pub host: Option<String>,
    /// GiB.
    pub size_gib: i64,
    pub auto_remove: bool,
    /// The container using it now, if any: a volume serves one at a time.
    pub container_uuid: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl VolumeRecord {
    /// The record a create's mount of `volume` makes, for `container`.
    pub fn made_for(volume: &VolumeRef, container: &crate::Container) -> Self {
        Self {
            uuid: volume.uuid.clone(),
            name: volume.name.clone(),
            project_id: container.project_id.clone(),
            user_id: container.user_id.clone(),
            driver: volume.driver.clone(),
            // A Cinder volume's data is reachable from any host.
            host: if volume.driver == LOCAL_DRIVER {
                container.host.clone()
            } else {
                None
            },
            size_gib: volume.size_gib,
            auto_remove: volume.auto_remove,
            container_uuid: Some(container.uuid.clone()),
            created_at: container.created_at,
        }
    }

    /// A reference to this existing volume, for a container's mounts.
    pub fn reference(&self) -> VolumeRef {
        VolumeRef {
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            size_gib: self.size_gib,
            auto_remove: self.auto_remove,
            new: false,
            driver: self.driver.clone(),
        }
    }
}

/// Upstream's `VolumeNotFound`.
pub fn volume_not_found(ident: &str) -> ApiError {
    ApiError::new(
        404,
        "volume-not-found",
        format!("Volume {ident} could not be found."),
    )
}

/// Upstream's `VolumeInUse` (an `Invalid`, so 400).
pub fn volume_in_use(uuid: &str) -> ApiError {
    ApiError::bad_request("volume-in-use", format!("Volume {uuid} is still in use."))
}

/// Validates a create's `mounts` items (upstream's schema: each an object
/// of `type`, `source`, `destination`, `size`, with `destination` and one
/// of `source`/`size`), and what upstream only found out later: the type
/// is `volume` or `bind`, a volume takes a source or a size but not both,
/// sizes are 1 to [`MAX_VOLUME_GIB`], bind content is base64, destinations
/// are absolute and distinct.
pub fn mount_requests(items: &[Value]) -> Result<Vec<MountRequest>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    let mut destinations = BTreeSet::new();
    for item in items {
        let request = mount_request(item)?;
        let destination = request.destination();
        if !destination.starts_with('/') || destination.trim_end_matches('/').is_empty() {
            return Err(ApiError::invalid(format!(
                "Mount destination {destination} must be an absolute path other than /."
            )));
        }
        if !destinations.insert(destination.trim_end_matches('/').to_owned()) {
            return Err(ApiError::invalid(format!(
                "Mount destination {destination} is used more than once."
            )));
        }
        out.push(request);
    }
    Ok(out)
}

fn mount_request(item: &Value) -> Result<MountRequest, ApiError> {
    let Value::Object(map) = item else {
        return Err(field_error(
            "mounts",
            item,
            format!("{} is not of type 'object'", py_repr(item)),
        ));
    };
    let mut kind = None;
    let mut source = None;
    let mut destination = None;
    let mut size = None;
    for (key, value) in map {
        let text = || match value {
            Value::String(s) => Ok(s.clone()),
            other => Err(type_error(key, other, "'string'")),
        };
        match key.as_str() {
            "type" => kind = Some(text()?),
            "source" => source = Some(text()?),
            "destination" => destination = Some(text()?),
            "size" => size = Some(value),
            other => return Err(additional_property(other)),
        }
    }
    let Some(destination) = destination.filter(|_| source.is_some() || size.is_some()) else {
        return Err(field_error(
            "mounts",
            item,
            format!(
                "{} is not valid under any of the given schemas",
                py_repr(item)
            ),
        ));
    };
    match kind.as_deref().unwrap_or("volume") {
        "volume" => match (source, size) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "A volume mount takes either source (an existing volume) or size (a new volume of that many GiB), not both.",
            )),
            (Some(source), None) if source.is_empty() => Err(field_error(
                "source",
                &Value::String(source),
                "'' is too short",
            )),
            (Some(source), None) => Ok(MountRequest::Volume {
                source,
                destination,
            }),
            (None, Some(size)) => Ok(MountRequest::NewVolume {
                size_gib: volume_size(size)?,
                destination,
            }),
            (None, None) => unreachable_shape(item),
        },
        "bind" => {
            if size.is_some() {
                return Err(ApiError::invalid(
                    "A bind mount injects a file: give its content in base64 as source, not a size.",
                ));
            }
            let Some(contents) = source else {
                return unreachable_shape(item);
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(contents.as_bytes())
                .map_err(|_| {
                    ApiError::bad_request("base-64-exception", "Invalid Base 64 file data")
                })?;
            if decoded.len() > MAX_INJECTED_FILE_BYTES {
                return Err(ApiError::invalid(format!(
                    "The file to inject at {destination} is {} bytes; at most {MAX_INJECTED_FILE_BYTES} are allowed.",
                    decoded.len()
                )));
            }
            Ok(MountRequest::File {
                contents,
                destination,
            })
        }
        other => Err(field_error(
            "type",
            &Value::String(other.to_owned()),
            format!("'{other}' is not one of ['volume', 'bind']"),
        )),
    }
}

/// The schema's anyOf failure, for shapes the match above cannot reach.
fn unreachable_shape<T>(item: &Value) -> Result<T, ApiError> {
    Err(field_error(
        "mounts",
        item,
        format!(
            "{} is not valid under any of the given schemas",
            py_repr(item)
        ),
    ))
}

/// A `size`: an integer or a string of digits, 1 to [`MAX_VOLUME_GIB`].
fn volume_size(value: &Value) -> Result<i64, ApiError> {
    let size = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Value::String(_) => {
            return Err(field_error(
                "size",
                value,
                format!("{} does not match '^[0-9]+$'", py_repr(value)),
            ));
        }
        other => return Err(type_error("size", other, "'string', 'integer'")),
    };
    match size {
        Some(n) if n < 1 => Err(field_error(
            "size",
            value,
            format!("{n} is less than the minimum of 1"),
        )),
        Some(n) if n <= MAX_VOLUME_GIB => Ok(n),
        _ => Err(field_error(
            "size",
            value,
            format!(
                "{} is greater than the maximum of {MAX_VOLUME_GIB}",
                py_repr(value)
            ),
        )),
    }
}

/// The view's `mounts`: what is mounted where (an injected file's content
/// is not echoed).
pub fn mounts_view(mounts: &[Mount]) -> Value {
    Value::Array(
        mounts
            .iter()
            .map(|m| match m {
                Mount::Volume {
                    destination,
                    volume,
                    ..
                } => json!({
                    "type": "volume",
                    "source": volume.name.clone().unwrap_or_else(|| volume.uuid.clone()),
                    "volume_id": volume.uuid,
                    "destination": destination,
                    "size": volume.size_gib,
                    "auto_remove": volume.auto_remove,
                }),
                Mount::Bind { destination, .. } => json!({
                    "type": "bind",
                    "destination": destination,
                }),
            })
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(item: Value) -> Result<MountRequest, ApiError> {
        mount_requests(&[item]).map(|mut v| v.remove(0))
    }

    fn message(err: ApiError) -> String {
        err.detail
    }

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            one(json!({"source": "data", "destination": "/data"})).unwrap(),
            MountRequest::Volume {
                source: "data".into(),
                destination: "/data".into()
            }
        );
        assert_eq!(
            one(json!({"type": "volume", "size": "2", "destination": "/d"})).unwrap(),
            MountRequest::NewVolume {
                size_gib: 2,
                destination: "/d".into()
            }
        );
        assert_eq!(
            one(json!({"size": 1, "destination": "/d"})).unwrap(),
            MountRequest::NewVolume {
                size_gib: 1,
                destination: "/d".into()
            }
        );
        assert_eq!(
            one(json!({"type": "bind", "source": "aGVsbG8=", "destination": "/etc/a.conf"}))
                .unwrap(),
            MountRequest::File {
                contents: "aGVsbG8=".into(),
                destination: "/etc/a.conf".into()
            }
        );
    }

    #[test]
    fn bad_mounts_are_400_with_upstreams_texts() {
        let cases = [
            (
                json!({"source": "v"}),
                400,
                "is not valid under any of the given schemas",
            ),
            (
                json!({"destination": "/d"}),
                400,
                "is not valid under any of the given schemas",
            ),
            (json!("x"), 400, "is not of type 'object'"),
            (
                json!({"source": "v", "destination": "/d", "x": 1}),
                400,
                "('x' was unexpected)",
            ),
            (
                json!({"source": 1, "destination": "/d"}),
                400,
                "1 is not of type 'string'",
            ),
            (
                json!({"source": "v", "size": 1, "destination": "/d"}),
                400,
                "not both",
            ),
            (
                json!({"size": 0, "destination": "/d"}),
                400,
                "0 is less than the minimum of 1",
            ),
            (
                json!({"size": "0", "destination": "/d"}),
                400,
                "0 is less than the minimum of 1",
            ),
            (
                json!({"size": 1001, "destination": "/d"}),
                400,
                "greater than the maximum of 1000",
            ),
            (
                json!({"size": "1G", "destination": "/d"}),
                400,
                "does not match",
            ),
            (
                json!({"size": 1.5, "destination": "/d"}),
                400,
                "greater than the maximum",
            ),
            (
                json!({"size": true, "destination": "/d"}),
                400,
                "is not of type 'string', 'integer'",
            ),
            (
                json!({"type": "bind", "source": "!!!", "destination": "/f"}),
                400,
                "Invalid Base 64 file data",
            ),
            (
                json!({"type": "bind", "size": 1, "destination": "/f"}),
                400,
                "not a size",
            ),
            (
                json!({"type": "tmpfs", "source": "v", "destination": "/f"}),
                400,
                "is not one of ['volume', 'bind']",
            ),
            (
                json!({"source": "v", "destination": "data"}),
                400,
                "must be an absolute path",
            ),
            (
                json!({"source": "v", "destination": "/"}),
                400,
                "must be an absolute path",
            ),
            (
                json!({"source": "", "destination": "/d"}),
                400,
                "is too short",
            ),
        ];
        for (item, status, text) in cases {
            let err = one(item.clone()).expect_err(&item.to_string());
            assert_eq!(err.status, status, "{item}");
            assert!(
                message(err.clone()).contains(text),
                "{item}: {}",
                message(err)
            );
        }
        let base64 = one(json!({"type": "bind", "source": "%%", "destination": "/f"})).unwrap_err();
        assert_eq!(base64.code, "base-64-exception");
    }

    #[test]
    fn a_destination_serves_one_mount() {
        let err = mount_requests(&[
            json!({"source": "a", "destination": "/data"}),
            json!({"size": 1, "destination": "/data/"}),
        ])
        .unwrap_err();
        assert!(message(err).contains("used more than once"));
    }

    #[test]
    fn injected_files_are_bounded() {
        let big = base64::engine::general_purpose::STANDARD
            .encode(vec![0u8; MAX_INJECTED_FILE_BYTES + 1]);
        let err = one(json!({"type": "bind", "source": big, "destination": "/f"})).unwrap_err();
        assert!(message(err).contains("at most 1048576"));
    }

    #[test]
    fn the_view_names_volumes_and_hides_file_content() {
        let mounts = vec![
            Mount::Volume {
                destination: "/data".into(),
                read_only: false,
                volume: VolumeRef {
                    uuid: "u1".into(),
                    name: Some("data".into()),
                    size_gib: 1,
                    auto_remove: false,
                    new: true,
                    driver: LOCAL_DRIVER.into(),
                },
            },
            Mount::Bind {
                destination: "/etc/a.conf".into(),
                contents: "c2VjcmV0".into(),
            },
        ];
        let view = mounts_view(&mounts);
        assert_eq!(view[0]["source"], "data");
        assert_eq!(view[0]["volume_id"], "u1");
        assert_eq!(
            view[1],
            json!({"type": "bind", "destination": "/etc/a.conf"})
        );
        let stored: Vec<Mount> =
            serde_json::from_value(serde_json::to_value(&mounts).unwrap()).unwrap();
        assert_eq!(stored, mounts);
    }
}
