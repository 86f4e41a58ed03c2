//! The body of `POST /v1/capsules` (reference §6.2): upstream's capsule
//! template, a Kubernetes-pod-like document, checked against upstream's
//! schema with its error texts and mapped onto Zun's container fields.
//!
//! Beyond upstream's schema this also rejects, with a 400 rather than
//! upstream's 500 or silence: an empty container list, init containers of
//! the wrong shape, a volume with both or neither of `volumeID` and `size`,
//! repeated volume names, mounts of undeclared volumes, unmounted volumes,
//! relative or repeated mount paths and ports above 65535.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::validation::{
    NAME_PATTERN, NAME_RE, additional_property, boolean, container_name, cpu, field_error,
    image_pull_policy, memory, object, optional_string, py_repr, rebuild_request, string_field,
    string_map, type_error,
};
use crate::volume::MAX_VOLUME_GIB;

/// A validated capsule template.
#[derive(Debug, Clone, PartialEq)]
pub struct CapsuleTemplate {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.restartPolicy` as a Zun policy name: `always`, `on-failure` or
    /// `no` (default `always`). The deprecated top-level `restartPolicy` is
    /// checked but ignored, as upstream does.
    pub restart_policy: String,
    pub availability_zone: Option<String>,
    /// The containers' cpu summed, then raised to any init container's.
    pub cpu: f64,
    /// MiB, by the same rule as `cpu`.
    pub memory: i64,
    pub init_containers: Vec<MemberTemplate>,
    pub containers: Vec<MemberTemplate>,
    pub volumes: Vec<TemplateVolume>,
}

/// One entry of `spec.containers` or `spec.initContainers`, in Zun's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberTemplate {
    /// The template's own name (the API generates the container's name).
    pub name: Option<String>,
    pub image: String,
    /// `command` with `args` appended (`args` alone become the command);
    /// `None` when both are absent or empty.
    pub command: Option<Vec<String>>,
    pub cpu: Option<f64>,
    /// MiB.
    pub memory: Option<i64>,
    /// `{"<containerPort>/<tcp|udp>": {}}`; `None` without ports.
    pub exposed_ports: Option<Value>,
    pub volume_mounts: Vec<VolumeMount>,
    /// `env`.
    pub environment: BTreeMap<String, String>,
    /// `workDir`.
    pub workdir: Option<String>,
    /// `imagePullPolicy` lower-cased, as given; the API decides whether the
    /// caller may set it.
    pub image_pull_policy: Option<String>,
    /// `stdin`.
    pub interactive: bool,
    pub tty: bool,
}

/// A `volumeMounts` entry: volume `name` of `spec.volumes` at `mount_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

/// A `spec.volumes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVolume {
    pub name: String,
    pub source: VolumeSource,
}

/// Where a template volume comes from (only Cinder is supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// `cinder.volumeID`: an existing volume.
    Existing(String),
    /// `cinder.size`: a new volume of that many GiB, deleted with the
    /// capsule when `auto_remove` (`cinder.autoRemove`).
    New { size_gib: i64, auto_remove: bool },
}

const TEMPLATE_KEYS: &[&str] = &[
    "kind",
    "capsuleVersion",
    "metadata",
    "restartPolicy",
    "spec",
    "availabilityZone",
];
const METADATA_KEYS: &[&str] = &["name", "labels", "annotations"];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "resources",
    "ports",
    "volumeMounts",
    "env",
    "workDir",
    "imagePullPolicy",
    "stdin",
    "tty",
];
const PORT_KEYS: &[&str] = &["name", "containerPort", "hostPort", "protocol"];
const MOUNT_KEYS: &[&str] = &["name", "mountPath", "readOnly"];
const CINDER_KEYS: &[&str] = &["volumeID", "size", "autoRemove"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const VOLUME_ID_LEN: usize = 36;
const MAX_PORT: i64 = 65535;

/// Validates a `POST /v1/capsules` body. Its only key is `template`: the
/// template as an object, or as a string holding one in JSON.
pub fn capsule_request(body: &Value) -> Result<CapsuleTemplate, ApiError> {
    let map = object(body)?;
    only_keys(map, &["template"])?;
    let Some(raw) = map.get("template") else {
        return Err(ApiError::schema("'template' is a required property"));
    };
    let parsed;
    let template = match raw {
        Value::Object(_) => raw,
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|err| {
                ApiError::invalid(format!("Failed to parse string to JSON: {err}"))
            })?;
            &parsed
        }
        other => return Err(type_error("template", other, "'object', 'string'")),
    };
    parse_template(template)
}

fn parse_template(template: &Value) -> Result<CapsuleTemplate, ApiError> {
    let map = as_object("template", template)?;
    only_keys(map, TEMPLATE_KEYS)?;
    let kind = required("template", template, map, "kind")?;
    let spec_value = required("template", template, map, "spec")?;
    let metadata = required("template", template, map, "metadata")?;

    one_of("kind", kind, &["capsule", "Capsule"])?;
    if let Some(version) = map.get("capsuleVersion") {
        one_of("capsuleVersion", version, &["beta", "Beta"])?;
    }
    // Deprecated and ignored, but still held to the schema.
    if let Some(policy) = map.get("restartPolicy") {
        one_of("restartPolicy", policy, RESTART_POLICIES)?;
    }
    let availability_zone = match map.get("availabilityZone") {
        None | Some(Value::Null) => None,
        Some(zone) => Some(string_field("availabilityZone", zone, 1, 255, None)?),
    };

    let metadata_map = as_object("metadata", metadata)?;
    only_keys(metadata_map, METADATA_KEYS)?;
    let null = Value::Null;
    let meta = |key: &str| metadata_map.get(key).unwrap_or(&null);
    let name = match meta("name") {
        Value::Null => None,
        value => Some(container_name("name", value)?),
    };
    let labels = string_map("labels", meta("labels"), true)?;
    let annotations = string_map("annotations", meta("annotations"), true)?;

    let spec = as_object("spec", spec_value)?;
    let restart_policy = match spec.get("restartPolicy") {
        None => "always",
        Some(policy) => match one_of("restartPolicy", policy, RESTART_POLICIES)? {
            "OnFailure" => "on-failure",
            "Never" => "no",
            _ => "always",
        },
    };
    let containers_value = required("spec", spec_value, spec, "containers")?;
    let containers = members("containers", containers_value)?;
    if containers.is_empty() {
        return Err(ApiError::invalid(
            "Invalid capsule template: spec.containers must list at least one container.",
        ));
    }
    let init_containers = match spec.get("initContainers") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => members("initContainers", value)?,
    };
    let volumes = match spec.get("volumes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(volume).collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(type_error("volumes", other, "'array', 'null'")),
    };
    check_volume_use(&volumes, containers.iter().chain(&init_containers))?;

    let mut cpu = containers.iter().filter_map(|c| c.cpu).sum::<f64>();
    let mut memory = containers.iter().filter_map(|c| c.memory).sum::<i64>();
    for init in &init_containers {
        cpu = init.cpu.map_or(cpu, |c| cpu.max(c));
        memory = init.memory.map_or(memory, |m| memory.max(m));
    }

    Ok(CapsuleTemplate {
        name,
        labels,
        annotations,
        restart_policy: restart_policy.to_owned(),
        availability_zone,
        cpu,
        memory,
        init_containers,
        containers,
        volumes,
    })
}

/// Volume names are unique, every mount names a declared volume and every
/// declared volume is mounted somewhere.
fn check_volume_use<'a>(
    volumes: &[TemplateVolume],
    members: impl Iterator<Item = &'a MemberTemplate>,
) -> Result<(), ApiError> {
    let mut declared = BTreeSet::new();
    for volume in volumes {
        if !declared.insert(volume.name.as_str()) {
            return Err(ApiError::invalid(format!(
                "Invalid capsule template: volume name {} is used more than once.",
                volume.name
            )));
        }
    }
    let mut mounted = BTreeSet::new();
    for member in members {
        for mount in &member.volume_mounts {
            if !declared.contains(mount.name.as_str()) {
                return Err(ApiError::invalid(format!(
                    "volume mount parameters is invalid. No volume named {} is declared in spec.volumes.",
                    mount.name
                )));
            }
            mounted.insert(mount.name.as_str());
        }
    }
    if let Some(unused) = volumes.iter().find(|v| !mounted.contains(v.name.as_str())) {
        return Err(ApiError::invalid(format!(
            "volume mount parameters is invalid. Volume {} is not mounted by any container.",
            unused.name
        )));
    }
    Ok(())
}

fn members(field: &str, value: &Value) -> Result<Vec<MemberTemplate>, ApiError> {
    let Value::Array(items) = value else {
        return Err(type_error(field, value, "'array'"));
    };
    items.iter().map(|item| member(field, item)).collect()
}

fn member(field: &str, item: &Value) -> Result<MemberTemplate, ApiError> {
    let map = as_object(field, item)?;
    only_keys(map, CONTAINER_KEYS)?;
    let image = required(field, item, map, "image")?;
    let image = match image {
        Value::String(text) => rebuild_request(Some(text), None)?.0.unwrap_or_default(),
        other => return Err(type_error("image", other, "'string'")),
    };
    let null = Value::Null;
    let get = |key: &str| map.get(key).unwrap_or(&null);

    let name = match get("name") {
        Value::Null => None,
        value => Some(container_name("name", value)?),
    };
    let mut command = map
        .get("command")
        .map(|v| strings("command", v))
        .transpose()?;
    if let Some(args) = map.get("args").map(|v| strings("args", v)).transpose()? {
        command.get_or_insert_with(Vec::new).extend(args);
    }
    let command = command.filter(|c| !c.is_empty());

    let (cpu, memory) = match map.get("resources") {
        None => (None, None),
        Some(resources) => requests(resources)?,
    };
    let exposed_ports = match map.get("ports") {
        None => None,
        Some(Value::Array(ports)) => {
            let mut exposed = Map::new();
            for port in ports {
                exposed.insert(port_key(port)?, Value::Object(Map::new()));
            }
            (!exposed.is_empty()).then_some(Value::Object(exposed))
        }
        Some(other) => return Err(type_error("ports", other, "'array'")),
    };
    let volume_mounts = match map.get("volumeMounts") {
        None => Vec::new(),
        Some(Value::Array(mounts)) => {
            let mounts = mounts
                .iter()
                .map(volume_mount)
                .collect::<Result<Vec<_>, _>>()?;
            let mut paths = BTreeSet::new();
            for mount in &mounts {
                if !paths.insert(mount.mount_path.trim_end_matches('/')) {
                    return Err(ApiError::invalid(format!(
                        "Invalid capsule template: mount path {} is used more than once in one container.",
                        mount.mount_path
                    )));
                }
            }
            mounts
        }
        Some(other) => return Err(type_error("volumeMounts", other, "'array'")),
    };
    let environment = string_map("env", get("env"), true)?;
    let workdir = optional_string("workDir", get("workDir"))?;
    let image_pull_policy = match get("imagePullPolicy") {
        Value::Null => None,
        value => Some(image_pull_policy(value).map_err(|_| pull_policy_error(value))?),
    };
    let interactive = map
        .get("stdin")
        .map(|v| boolean("stdin", v))
        .transpose()?
        .unwrap_or(false);
    let tty = map
        .get("tty")
        .map(|v| boolean("tty", v))
        .transpose()?
        .unwrap_or(false);

    Ok(MemberTemplate {
        name,
        image,
        command,
        cpu,
        memory,
        exposed_ports,
        volume_mounts,
        environment,
        workdir,
        image_pull_policy,
        interactive,
        tty,
    })
}

/// The pull-policy error under the template's own key.
fn pull_policy_error(value: &Value) -> ApiError {
    match value {
        Value::String(_) => field_error(
            "imagePullPolicy",
            value,
            format!(
                "{} is not one of ['never', 'always', 'ifnotpresent', 'Never', 'Always', 'IfNotPresent', None]",
                py_repr(value)
            ),
        ),
        other => type_error("imagePullPolicy", other, "'string', 'null'"),
    }
}

/// `resources`: only `requests`, which holds only `cpu` and `memory`.
fn requests(resources: &Value) -> Result<(Option<f64>, Option<i64>), ApiError> {
    let map = as_object("resources", resources)?;
    only_keys(map, &["requests"])?;
    let Some(requests) = map.get("requests") else {
        return Ok((None, None));
    };
    let map = as_object("requests", requests)?;
    only_keys(map, &["cpu", "memory"])?;
    let cpu = map.get("cpu").map(cpu).transpose()?.flatten();
    let memory = map.get("memory").map(memory).transpose()?.flatten();
    Ok((cpu, memory))
}

/// A `ports` entry as its exposed-ports key, `<containerPort>/<protocol>`.
fn port_key(port: &Value) -> Result<String, ApiError> {
    let map = as_object("ports", port)?;
    only_keys(map, PORT_KEYS)?;
    let number = port_number(
        "containerPort",
        required("ports", port, map, "containerPort")?,
    )?;
    if let Some(name) = map.get("name")
        && !name.is_null()
    {
        container_name("name", name)?;
    }
    if let Some(host_port) = map.get("hostPort") {
        port_number("hostPort", host_port)?;
    }
    let protocol = match map.get("protocol") {
        None => "tcp",
        Some(protocol) => match one_of("protocol", protocol, &["TCP", "UDP"])? {
            "UDP" => "udp",
            _ => "tcp",
        },
    };
    if !(1..=MAX_PORT).contains(&number) {
        return Err(ApiError::invalid(format!(
            "value {number} is an invalid port"
        )));
    }
    Ok(format!("{number}/{protocol}"))
}

/// Upstream's `non_negative_integer`: an integer or a string of digits,
/// at least 0.
fn port_number(field: &str, value: &Value) -> Result<i64, ApiError> {
    let number = match value {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i,
            (None, Some(_)) => i64::MAX,
            (None, None) => return Err(type_error(field, value, "'integer', 'string'")),
        },
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().unwrap_or(i64::MAX)
        }
        Value::String(_) => {
            return Err(field_error(
                field,
                value,
                format!("{} does not match '^[0-9]+$'", py_repr(value)),
            ));
        }
        other => return Err(type_error(field, other, "'integer', 'string'")),
    };
    if number < 0 {
        return Err(field_error(
            field,
            value,
            format!("{} is less than the minimum of 0", py_repr(value)),
        ));
    }
    Ok(number)
}

fn volume_mount(item: &Value) -> Result<VolumeMount, ApiError> {
    let map = as_object("volumeMounts", item)?;
    only_keys(map, MOUNT_KEYS)?;
    let name = volume_name(required("volumeMounts", item, map, "name")?)?;
    let mount_path = match required("volumeMounts", item, map, "mountPath")? {
        Value::String(path) => path.clone(),
        other => return Err(type_error("mountPath", other, "'string'")),
    };
    if !mount_path.starts_with('/') || mount_path.trim_end_matches('/').is_empty() {
        return Err(ApiError::invalid(format!(
            "Invalid capsule template: mount path {mount_path} of volume {name} must be an absolute path other than /."
        )));
    }
    let read_only = map
        .get("readOnly")
        .map(|v| boolean("readOnly", v))
        .transpose()?
        .unwrap_or(false);
    Ok(VolumeMount {
        name,
        mount_path,
        read_only,
    })
}

fn volume(item: &Value) -> Result<TemplateVolume, ApiError> {
    // Upstream lets a volume carry other keys; only `cinder` is read.
    let map = as_object("volumes", item)?;
    let name = volume_name(required("volumes", item, map, "name")?)?;
    let cinder_value = required("volumes", item, map, "cinder")?;
    let cinder = as_object("cinder", cinder_value)?;
    only_keys(cinder, CINDER_KEYS)?;
    let volume_id = cinder
        .get("volumeID")
        .map(|v| string_field("volumeID", v, VOLUME_ID_LEN, VOLUME_ID_LEN, None))
        .transpose()?;
    let size = cinder.get("size").map(volume_size).transpose()?;
    let auto_remove = cinder
        .get("autoRemove")
        .map(|v| boolean("autoRemove", v))
        .transpose()?
        .unwrap_or(false);
    let source = match (volume_id, size) {
        (Some(id), None) => VolumeSource::Existing(id),
        (None, Some(size_gib)) => VolumeSource::New {
            size_gib,
            auto_remove,
        },
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "Invalid capsule template: Volume size and uuid could not be set at the same time (volume {name}: give cinder.size for a new volume or cinder.volumeID for an existing one)."
            )));
        }
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "Invalid capsule template: Volume size is needed (volume {name}: give cinder.size for a new volume or cinder.volumeID for an existing one)."
            )));
        }
    };
    Ok(TemplateVolume { name, source })
}

/// `cinder.size`: a JSON number of whole GiB, 1 to [`MAX_VOLUME_GIB`].
fn volume_size(value: &Value) -> Result<i64, ApiError> {
    let Value::Number(n) = value else {
        return Err(type_error("size", value, "'number'"));
    };
    let size = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i,
        (None, Some(f)) if f.fract() == 0.0 && f.is_finite() => {
            if f < 1.0 {
                0
            } else if f > MAX_VOLUME_GIB as f64 {
                i64::MAX
            } else {
                // Whole and within 1..=MAX_VOLUME_GIB, so exact.
                f as i64
            }
        }
        _ => {
            return Err(field_error(
                "size",
                value,
                format!("{} is not a whole number of GiB", py_repr(value)),
            ));
        }
    };
    if size < 1 {
        return Err(field_error(
            "size",
            value,
            format!("{} is less than the minimum of 1", py_repr(value)),
        ));
    }
    if size > MAX_VOLUME_GIB {
        return Err(field_error(
            "size",
            value,
            format!(
                "{} is greater than the maximum of {MAX_VOLUME_GIB}",
                py_repr(value)
            ),
        ));
    }
    Ok(size)
}

/// Upstream's `volume_name`: 2 to 255 of `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
fn volume_name(value: &Value) -> Result<String, ApiError> {
    string_field("name", value, 2, 255, Some((&NAME_RE, NAME_PATTERN)))
}

/// `command` / `args`: an array of strings.
fn strings(field: &str, value: &Value) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = value else {
        return Err(type_error(field, value, "'array'"));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(type_error(field, other, "'string'")),
        })
        .collect()
}

/// A string enum: jsonschema's type error, then its enum error.
fn one_of<'a>(field: &str, value: &'a Value, allowed: &[&str]) -> Result<&'a str, ApiError> {
    let Value::String(s) = value else {
        return Err(type_error(field, value, "'string'"));
    };
    if allowed.contains(&s.as_str()) {
        return Ok(s);
    }
    let listed: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    Err(field_error(
        field,
        value,
        format!("{} is not one of [{}]", py_repr(value), listed.join(", ")),
    ))
}

fn as_object<'a>(field: &str, value: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| type_error(field, value, "'object'"))
}

/// jsonschema's `required` error, named after the object that lacks `key`.
fn required<'a>(
    field: &str,
    parent: &Value,
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Value, ApiError> {
    map.get(key)
        .ok_or_else(|| field_error(field, parent, format!("'{key}' is a required property")))
}

/// jsonschema's `additionalProperties: false` error, listing every
/// unexpected key.
fn only_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    let extra: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|key| !allowed.contains(key))
        .collect();
    match extra.as_slice() {
        [] => Ok(()),
        [one] => Err(additional_property(one)),
        many => {
            let listed: Vec<String> = many.iter().map(|k| format!("'{k}'")).collect();
            Err(ApiError::schema(format!(
                "Additional properties are not allowed ({} were unexpected)",
                listed.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VOLUME_ID: &str = "0b5e4f1c-7a1d-4c3e-9f52-5d2b3e1a9c77";

    /// A kubectl-style pod converted from YAML: two containers, an init
    /// container, a new volume mounted by all three and an existing one.
    fn template() -> Value {
        json!({
            "kind": "capsule",
            "capsuleVersion": "beta",
            "metadata": {
                "name": "web-pod",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"owner": "ops"}
            },
            "availabilityZone": "nova",
            "spec": {
                "restartPolicy": "OnFailure",
                "initContainers": [{
                    "name": "prepare",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo ready > /init/flag"],
                    "resources": {"requests": {"cpu": 2, "memory": 64}},
                    "volumeMounts": [{"name": "data", "mountPath": "/init"}]
                }],
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "command": ["nginx"],
                        "args": ["-g", "daemon off;"],
                        "resources": {"requests": {"cpu": "0.5", "memory": 256}},
                        "ports": [
                            {"name": "http", "containerPort": 80, "hostPort": 8080},
                            {"containerPort": "53", "protocol": "UDP"}
                        ],
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data", "readOnly": true}
                        ],
                        "env": {"MODE": "prod", "LEVEL": "3"},
                        "workDir": "/srv",
                        "imagePullPolicy": "IfNotPresent",
                        "stdin": true,
                        "tty": "true"
                    },
                    {
                        "image": "busybox",
                        "args": ["sleep", "3600"],
                        "resources": {"requests": {"cpu": 1, "memory": "128"}},
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/data"},
                            {"name": "db", "mountPath": "/db/"}
                        ]
                    }
                ],
                "volumes": [
                    {"name": "data", "cinder": {"size": 5, "autoRemove": true}},
                    {"name": "db", "cinder": {"volumeID": VOLUME_ID}}
                ]
            }
        })
    }

    fn body(template: Value) -> Value {
        json!({ "template": template })
    }

    /// The valid template changed by `edit`, which must then be refused
    /// with a 400.
    fn reject(edit: impl FnOnce(&mut Value)) -> ApiError {
        let mut t = template();
        edit(&mut t);
        let err = capsule_request(&body(t)).expect_err("template should be rejected");
        assert_eq!(err.status, 400, "{err}");
        err
    }

    fn spec(t: &mut Value) -> &mut Value {
        &mut t["spec"]
    }

    fn first(t: &mut Value) -> &mut Value {
        &mut t["spec"]["containers"][0]
    }

    #[test]
    fn full_template_maps_every_field() {
        let capsule = capsule_request(&body(template())).expect("valid");
        assert_eq!(capsule.name.as_deref(), Some("web-pod"));
        assert_eq!(
            capsule.labels,
            BTreeMap::from([
                ("app".to_owned(), "web".to_owned()),
                ("tier".to_owned(), "front".to_owned())
            ])
        );
        assert_eq!(
            capsule.annotations,
            BTreeMap::from([("owner".to_owned(), "ops".to_owned())])
        );
        assert_eq!(capsule.restart_policy, "on-failure");
        assert_eq!(capsule.availability_zone.as_deref(), Some("nova"));
        // cpu: 0.5 + 1 = 1.5, raised to the init container's 2.
        assert_eq!(capsule.cpu, 2.0);
        // memory: 256 + 128 = 384, above the init container's 64.
        assert_eq!(capsule.memory, 384);

        assert_eq!(capsule.containers.len(), 2);
        let nginx = &capsule.containers[0];
        assert_eq!(nginx.name.as_deref(), Some("nginx"));
        assert_eq!(nginx.image, "nginx:1.25");
        assert_eq!(
            nginx.command,
            Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()])
        );
        assert_eq!(nginx.cpu, Some(0.5));
        assert_eq!(nginx.memory, Some(256));
        assert_eq!(
            nginx.exposed_ports,
            Some(json!({"80/tcp": {}, "53/udp": {}}))
        );
        assert_eq!(
            nginx.volume_mounts,
            vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                read_only: true
            }]
        );
        assert_eq!(
            nginx.environment,
            BTreeMap::from([
                ("LEVEL".to_owned(), "3".to_owned()),
                ("MODE".to_owned(), "prod".to_owned())
            ])
        );
        assert_eq!(nginx.workdir.as_deref(), Some("/srv"));
        assert_eq!(nginx.image_pull_policy.as_deref(), Some("ifnotpresent"));
        assert!(nginx.interactive);
        assert!(nginx.tty);

        let sidecar = &capsule.containers[1];
        assert_eq!(sidecar.name, None);
        assert_eq!(sidecar.image, "busybox");
        assert_eq!(sidecar.command, Some(vec!["sleep".into(), "3600".into()]));
        assert_eq!(sidecar.cpu, Some(1.0));
        assert_eq!(sidecar.memory, Some(128));
        assert_eq!(sidecar.exposed_ports, None);
        assert_eq!(
            sidecar.volume_mounts,
            vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/var/data".into(),
                    read_only: false
                },
                VolumeMount {
                    name: "db".into(),
                    mount_path: "/db/".into(),
                    read_only: false
                }
            ]
        );
        assert!(sidecar.environment.is_empty());
        assert_eq!(sidecar.workdir, None);
        assert_eq!(sidecar.image_pull_policy, None);
        assert!(!sidecar.interactive);
        assert!(!sidecar.tty);

        assert_eq!(capsule.init_containers.len(), 1);
        let init = &capsule.init_containers[0];
        assert_eq!(init.name.as_deref(), Some("prepare"));
        assert_eq!(
            init.command,
            Some(vec![
                "sh".into(),
                "-c".into(),
                "echo ready > /init/flag".into()
            ])
        );
        assert_eq!(init.cpu, Some(2.0));
        assert_eq!(init.memory, Some(64));

        assert_eq!(
            capsule.volumes,
            vec![
                TemplateVolume {
                    name: "data".into(),
                    source: VolumeSource::New {
                        size_gib: 5,
                        auto_remove: true
                    }
                },
                TemplateVolume {
                    name: "db".into(),
                    source: VolumeSource::Existing(VOLUME_ID.into())
                }
            ]
        );
    }

    #[test]
    fn template_may_be_a_json_string() {
        let text = serde_json::to_string(&template()).expect("serializable");
        let from_string = capsule_request(&json!({ "template": text })).expect("valid");
        let from_object = capsule_request(&body(template())).expect("valid");
        assert_eq!(from_string, from_object);
    }

    #[test]
    fn minimal_template_has_defaults() {
        let capsule = capsule_request(&body(json!({
            "kind": "Capsule",
            "metadata": {},
            "spec": {"containers": [{"image": "busybox"}]}
        })))
        .expect("valid");
        assert_eq!(capsule.name, None);
        assert_eq!(capsule.restart_policy, "always");
        assert_eq!(capsule.cpu, 0.0);
        assert_eq!(capsule.memory, 0);
        assert!(capsule.init_containers.is_empty());
        assert!(capsule.volumes.is_empty());
        let member = &capsule.containers[0];
        assert_eq!(member.command, None);
        assert_eq!(member.cpu, None);
        assert_eq!(member.memory, None);
        assert_eq!(member.exposed_ports, None);
    }

    #[test]
    fn init_containers_raise_cpu_and_memory_only_as_a_maximum() {
        let mut t = template();
        t["spec"]["initContainers"][0]["resources"] =
            json!({"requests": {"cpu": 0.1, "memory": 1024}});
        let capsule = capsule_request(&body(t)).expect("valid");
        assert_eq!(capsule.cpu, 1.5);
        assert_eq!(capsule.memory, 1024);
    }

    #[test]
    fn restart_policies_map_to_zun_names() {
        for (given, expected) in [
            ("Always", "always"),
            ("OnFailure", "on-failure"),
            ("Never", "no"),
        ] {
            let mut t = template();
            t["spec"]["restartPolicy"] = json!(given);
            assert_eq!(
                capsule_request(&body(t)).expect("valid").restart_policy,
                expected
            );
        }
    }

    #[test]
    fn deprecated_top_level_restart_policy_is_checked_and_ignored() {
        let mut t = template();
        t["restartPolicy"] = json!("Never");
        assert_eq!(
            capsule_request(&body(t)).expect("valid").restart_policy,
            "on-failure"
        );
        let err = reject(|t| t["restartPolicy"] = json!("Sometimes"));
        assert_eq!(
            err.detail,
            "Invalid input for field 'restartPolicy'.Value: 'Sometimes'. 'Sometimes' is not one of ['Always', 'OnFailure', 'Never']"
        );
    }

    #[test]
    fn body_must_be_an_object() {
        let err = capsule_request(&json!([1])).expect_err("not an object");
        assert_eq!(err.status, 400);
        assert_eq!(err.detail, "[1] is not of type 'object'");
    }

    #[test]
    fn body_requires_template() {
        let err = capsule_request(&json!({})).expect_err("no template");
        assert_eq!(err.status, 400);
        assert_eq!(err.code, "schema-validation-error");
        assert_eq!(err.detail, "'template' is a required property");
    }

    #[test]
    fn body_allows_no_other_key() {
        let mut b = body(template());
        b["nets"] = json!([]);
        let err = capsule_request(&b).expect_err("extra key");
        assert_eq!(err.status, 400);
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('nets' was unexpected)"
        );
    }

    #[test]
    fn template_must_be_an_object_or_string() {
        let err = capsule_request(&json!({"template": 5})).expect_err("number");
        assert_eq!(err.status, 400);
        let err = capsule_request(&json!({"template": null})).expect_err("null");
        assert_eq!(err.status, 400);
    }

    #[test]
    fn template_string_must_be_json() {
        let err = capsule_request(&json!({"template": "kind: capsule"})).expect_err("yaml");
        assert_eq!(err.status, 400);
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail.starts_with("Failed to parse string to JSON: "),
            "{}",
            err.detail
        );
    }

    #[test]
    fn template_string_must_hold_an_object() {
        for text in ["[1, 2]", "\"capsule\"", "null", "3"] {
            let err = capsule_request(&json!({ "template": text })).expect_err(text);
            assert_eq!(err.status, 400, "{text}");
            assert_eq!(err.code, "schema-validation-error", "{text}");
        }
    }

    #[test]
    fn template_allows_no_other_key() {
        let err = reject(|t| {
            t["nets"] = json!([]);
            t["hosts"] = json!([]);
        });
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('hosts', 'nets' were unexpected)"
        );
    }

    #[test]
    fn template_requires_kind_spec_and_metadata() {
        for key in ["kind", "spec", "metadata"] {
            let err = reject(|t| {
                t.as_object_mut().map(|m| m.remove(key));
            });
            assert!(
                err.detail
                    .ends_with(&format!("'{key}' is a required property")),
                "{}",
                err.detail
            );
        }
    }

    #[test]
    fn kind_must_be_capsule() {
        let err = reject(|t| t["kind"] = json!("Pod"));
        assert_eq!(
            err.detail,
            "Invalid input for field 'kind'.Value: 'Pod'. 'Pod' is not one of ['capsule', 'Capsule']"
        );
        reject(|t| t["kind"] = json!(1));
    }

    #[test]
    fn capsule_version_must_be_beta() {
        reject(|t| t["capsuleVersion"] = json!("v1"));
        reject(|t| t["capsuleVersion"] = json!(null));
    }

    #[test]
    fn metadata_must_be_an_object() {
        reject(|t| t["metadata"] = json!("web"));
        reject(|t| t["metadata"] = json!(null));
    }

    #[test]
    fn metadata_allows_no_other_key() {
        reject(|t| t["metadata"]["namespace"] = json!("default"));
    }

    #[test]
    fn metadata_name_follows_container_name_rules() {
        let err = reject(|t| t["metadata"]["name"] = json!("-bad"));
        assert!(err.detail.contains("does not match"), "{}", err.detail);
        reject(|t| t["metadata"]["name"] = json!("a"));
        reject(|t| t["metadata"]["name"] = json!(7));
    }

    #[test]
    fn labels_and_annotations_are_objects_of_strings() {
        reject(|t| t["metadata"]["labels"] = json!({"replicas": 3}));
        reject(|t| t["metadata"]["labels"] = json!(["app"]));
        reject(|t| t["metadata"]["annotations"] = json!("x"));
        reject(|t| t["metadata"]["annotations"] = json!({"a": {"b": "c"}}));
    }

    #[test]
    fn availability_zone_is_a_string_of_1_to_255() {
        reject(|t| t["availabilityZone"] = json!(""));
        reject(|t| t["availabilityZone"] = json!("z".repeat(256)));
        reject(|t| t["availabilityZone"] = json!(3));
    }

    #[test]
    fn spec_must_be_an_object() {
        reject(|t| t["spec"] = json!([]));
    }

    #[test]
    fn spec_requires_containers() {
        let err = reject(|t| {
            spec(t).as_object_mut().map(|m| m.remove("containers"));
        });
        assert!(err.detail.ends_with("'containers' is a required property"));
    }

    #[test]
    fn spec_allows_other_keys() {
        let mut t = template();
        t["spec"]["hostNetwork"] = json!(true);
        assert!(capsule_request(&body(t)).is_ok());
    }

    #[test]
    fn spec_restart_policy_is_an_enum() {
        reject(|t| spec(t)["restartPolicy"] = json!("always"));
        reject(|t| spec(t)["restartPolicy"] = json!(null));
    }

    #[test]
    fn containers_must_be_an_array() {
        reject(|t| spec(t)["containers"] = json!({"image": "busybox"}));
    }

    #[test]
    fn containers_must_not_be_empty() {
        let err = reject(|t| {
            spec(t)["containers"] = json!([]);
            spec(t)["volumes"] = json!(null);
            spec(t)["initContainers"] = json!([]);
        });
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail.contains("at least one container"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn init_containers_are_validated_like_containers() {
        reject(|t| spec(t)["initContainers"] = json!({}));
        reject(|t| spec(t)["initContainers"][0]["privileged"] = json!(true));
        reject(|t| spec(t)["initContainers"][0]["resources"]["requests"]["cpu"] = json!(99));
        let err = reject(|t| spec(t)["initContainers"] = json!([{"command": ["true"]}]));
        assert!(err.detail.ends_with("'image' is a required property"));
    }

    #[test]
    fn container_must_be_an_object() {
        reject(|t| spec(t)["containers"] = json!(["busybox"]));
    }

    #[test]
    fn container_allows_no_other_key() {
        let err = reject(|t| first(t)["privileged"] = json!(true));
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('privileged' was unexpected)"
        );
    }

    #[test]
    fn container_requires_image() {
        let err = reject(|t| {
            first(t).as_object_mut().map(|m| m.remove("image"));
        });
        assert!(
            err.detail
                .starts_with("Invalid input for field 'containers'")
        );
        assert!(err.detail.ends_with("'image' is a required property"));
    }

    #[test]
    fn image_follows_create_rules() {
        let err = reject(|t| first(t)["image"] = json!("a"));
        assert_eq!(
            err.detail,
            "Invalid input for field 'image'.Value: 'a'. 'a' is too short"
        );
        reject(|t| first(t)["image"] = json!("!!!"));
        reject(|t| first(t)["image"] = json!(null));
        reject(|t| first(t)["image"] = json!(["nginx"]));
    }

    #[test]
    fn container_name_follows_container_name_rules() {
        reject(|t| first(t)["name"] = json!("x"));
        reject(|t| first(t)["name"] = json!("has space"));
    }

    #[test]
    fn command_and_args_are_arrays_of_strings() {
        reject(|t| first(t)["command"] = json!("nginx -g"));
        reject(|t| first(t)["command"] = json!(["nginx", 1]));
        reject(|t| first(t)["args"] = json!("-g"));
        reject(|t| first(t)["args"] = json!([null]));
    }

    #[test]
    fn resources_hold_only_requests_of_cpu_and_memory() {
        reject(|t| first(t)["resources"]["limits"] = json!({"cpu": 1}));
        reject(|t| first(t)["resources"]["requests"]["disk"] = json!(1));
        reject(|t| first(t)["resources"] = json!([]));
        reject(|t| first(t)["resources"]["requests"] = json!(1));
    }

    #[test]
    fn resources_cpu_and_memory_follow_create_rules() {
        let err = reject(|t| first(t)["resources"]["requests"]["cpu"] = json!(32));
        assert_eq!(
            err.detail,
            "Invalid input for field 'cpu'.Value: '32'. 32 is greater than the maximum of 16"
        );
        let err = reject(|t| first(t)["resources"]["requests"]["memory"] = json!("512Mi"));
        assert_eq!(
            err.detail,
            "Invalid input for field 'memory'.Value: '512Mi'. '512Mi' does not match '^[0-9]+$'"
        );
        reject(|t| first(t)["resources"]["requests"]["memory"] = json!(2));
    }

    #[test]
    fn ports_are_an_array_of_objects() {
        reject(|t| first(t)["ports"] = json!({"containerPort": 80}));
        reject(|t| first(t)["ports"] = json!([80]));
    }

    #[test]
    fn port_requires_container_port() {
        let err = reject(|t| first(t)["ports"] = json!([{"protocol": "TCP"}]));
        assert!(
            err.detail
                .ends_with("'containerPort' is a required property")
        );
    }

    #[test]
    fn container_port_is_a_non_negative_integer() {
        let err = reject(|t| first(t)["ports"] = json!([{"containerPort": -1}]));
        assert_eq!(
            err.detail,
            "Invalid input for field 'containerPort'.Value: '-1'. -1 is less than the minimum of 0"
        );
        reject(|t| first(t)["ports"] = json!([{"containerPort": 80.5}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": "http"}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": ""}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": null}]));
    }

    #[test]
    fn container_port_above_65535_is_rejected() {
        let err = reject(|t| first(t)["ports"] = json!([{"containerPort": 65536}]));
        assert_eq!(err.detail, "value 65536 is an invalid port");
        reject(|t| first(t)["ports"] = json!([{"containerPort": "99999999999999999999999"}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": u64::MAX}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": 0}]));
    }

    #[test]
    fn port_host_port_name_and_protocol_are_checked() {
        reject(|t| first(t)["ports"] = json!([{"containerPort": 80, "hostPort": -5}]));
        reject(|t| first(t)["ports"] = json!([{"containerPort": 80, "name": "!"}]));
        let err = reject(|t| first(t)["ports"] = json!([{"containerPort": 80, "protocol": "tcp"}]));
        assert_eq!(
            err.detail,
            "Invalid input for field 'protocol'.Value: 'tcp'. 'tcp' is not one of ['TCP', 'UDP']"
        );
        reject(|t| first(t)["ports"] = json!([{"containerPort": 80, "protocol": "SCTP"}]));
    }

    #[test]
    fn port_allows_no_other_key() {
        reject(|t| first(t)["ports"] = json!([{"containerPort": 80, "hostIP": "0.0.0.0"}]));
    }

    #[test]
    fn volume_mounts_are_an_array_of_objects() {
        reject(|t| first(t)["volumeMounts"] = json!({"name": "data"}));
        reject(|t| first(t)["volumeMounts"] = json!(["data"]));
    }

    #[test]
    fn volume_mount_requires_name_and_mount_path() {
        let err = reject(|t| first(t)["volumeMounts"] = json!([{"mountPath": "/data"}]));
        assert!(err.detail.ends_with("'name' is a required property"));
        let err = reject(|t| first(t)["volumeMounts"] = json!([{"name": "data"}]));
        assert!(err.detail.ends_with("'mountPath' is a required property"));
    }

    #[test]
    fn volume_mount_name_follows_the_volume_name_rule() {
        reject(|t| first(t)["volumeMounts"][0]["name"] = json!("d"));
        reject(|t| first(t)["volumeMounts"][0]["name"] = json!("_data"));
        reject(|t| first(t)["volumeMounts"][0]["name"] = json!(1));
    }

    #[test]
    fn mount_path_is_an_absolute_string() {
        let err = reject(|t| first(t)["volumeMounts"][0]["mountPath"] = json!("data"));
        assert_eq!(err.code, "invalid");
        assert!(err.detail.contains("absolute"), "{}", err.detail);
        reject(|t| first(t)["volumeMounts"][0]["mountPath"] = json!("/"));
        reject(|t| first(t)["volumeMounts"][0]["mountPath"] = json!(null));
    }

    #[test]
    fn read_only_is_a_boolean() {
        reject(|t| first(t)["volumeMounts"][0]["readOnly"] = json!("yes"));
        reject(|t| first(t)["volumeMounts"][0]["readOnly"] = json!(1));
    }

    #[test]
    fn volume_mount_allows_no_other_key() {
        reject(|t| first(t)["volumeMounts"][0]["subPath"] = json!("x"));
    }

    #[test]
    fn env_is_an_object_of_strings() {
        reject(|t| first(t)["env"] = json!({"LEVEL": 3}));
        reject(|t| first(t)["env"] = json!([{"name": "A", "value": "b"}]));
    }

    #[test]
    fn work_dir_is_a_string() {
        reject(|t| first(t)["workDir"] = json!(["/srv"]));
    }

    #[test]
    fn image_pull_policy_follows_create_rules() {
        let err = reject(|t| first(t)["imagePullPolicy"] = json!("Sometimes"));
        assert!(
            err.detail
                .starts_with("Invalid input for field 'imagePullPolicy'.Value: 'Sometimes'."),
            "{}",
            err.detail
        );
        reject(|t| first(t)["imagePullPolicy"] = json!(true));
    }

    #[test]
    fn stdin_and_tty_are_booleans() {
        reject(|t| first(t)["stdin"] = json!("maybe"));
        reject(|t| first(t)["tty"] = json!(0));
    }

    #[test]
    fn volumes_must_be_an_array() {
        reject(|t| spec(t)["volumes"] = json!({"name": "data"}));
        reject(|t| spec(t)["volumes"] = json!(["data"]));
    }

    #[test]
    fn volumes_may_be_null_when_nothing_is_mounted() {
        let capsule = capsule_request(&body(json!({
            "kind": "capsule",
            "metadata": {"name": "solo"},
            "spec": {"containers": [{"image": "busybox"}], "volumes": null}
        })))
        .expect("valid");
        assert!(capsule.volumes.is_empty());
    }

    #[test]
    fn volume_requires_name_and_cinder() {
        let err = reject(|t| spec(t)["volumes"][0] = json!({"cinder": {"size": 1}}));
        assert!(err.detail.ends_with("'name' is a required property"));
        let err = reject(|t| spec(t)["volumes"][0] = json!({"name": "data", "emptyDir": {}}));
        assert!(err.detail.ends_with("'cinder' is a required property"));
    }

    #[test]
    fn volume_name_follows_the_volume_name_rule() {
        reject(|t| spec(t)["volumes"][0]["name"] = json!("d"));
        reject(|t| spec(t)["volumes"][0]["name"] = json!(null));
    }

    #[test]
    fn cinder_allows_no_other_key() {
        reject(|t| spec(t)["volumes"][0]["cinder"]["fsType"] = json!("ext4"));
        reject(|t| spec(t)["volumes"][0]["cinder"] = json!("vol"));
    }

    #[test]
    fn volume_id_has_36_characters() {
        reject(|t| spec(t)["volumes"][1]["cinder"]["volumeID"] = json!("abc"));
        reject(|t| spec(t)["volumes"][1]["cinder"]["volumeID"] = json!(format!("{VOLUME_ID}0")));
        reject(|t| spec(t)["volumes"][1]["cinder"]["volumeID"] = json!(5));
    }

    #[test]
    fn size_is_a_whole_positive_number_of_gib() {
        let err = reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!("5"));
        assert_eq!(
            err.detail,
            "Invalid input for field 'size'.Value: '5'. '5' is not of type 'number'"
        );
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(1.5));
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(0));
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(-3));
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(MAX_VOLUME_GIB + 1));
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(1e300));
        reject(|t| spec(t)["volumes"][0]["cinder"]["size"] = json!(u64::MAX));
        let mut t = template();
        t["spec"]["volumes"][0]["cinder"]["size"] = json!(2.0);
        let capsule = capsule_request(&body(t)).expect("valid");
        assert_eq!(
            capsule.volumes[0].source,
            VolumeSource::New {
                size_gib: 2,
                auto_remove: true
            }
        );
    }

    #[test]
    fn volume_needs_a_size_or_an_id() {
        let err = reject(|t| spec(t)["volumes"][0]["cinder"] = json!({"autoRemove": true}));
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail.contains("Volume size is needed"),
            "{}",
            err.detail
        );
        assert!(err.detail.contains("data"), "{}", err.detail);
    }

    #[test]
    fn volume_takes_not_both_size_and_id() {
        let err = reject(|t| spec(t)["volumes"][0]["cinder"]["volumeID"] = json!(VOLUME_ID));
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail
                .contains("Volume size and uuid could not be set at the same time"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn auto_remove_is_a_boolean_and_defaults_to_false() {
        reject(|t| spec(t)["volumes"][0]["cinder"]["autoRemove"] = json!("soon"));
        let mut t = template();
        t["spec"]["volumes"][0]["cinder"] = json!({"size": 3});
        let capsule = capsule_request(&body(t)).expect("valid");
        assert_eq!(
            capsule.volumes[0].source,
            VolumeSource::New {
                size_gib: 3,
                auto_remove: false
            }
        );
    }

    #[test]
    fn volume_names_are_unique() {
        let err = reject(|t| spec(t)["volumes"][1]["name"] = json!("data"));
        assert_eq!(err.code, "invalid");
        assert!(err.detail.contains("more than once"), "{}", err.detail);
    }

    #[test]
    fn mounts_must_name_a_declared_volume() {
        let err = reject(|t| first(t)["volumeMounts"][0]["name"] = json!("cache"));
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail
                .starts_with("volume mount parameters is invalid."),
            "{}",
            err.detail
        );
        assert!(err.detail.contains("cache"), "{}", err.detail);
    }

    #[test]
    fn every_volume_must_be_mounted() {
        let err = reject(|t| {
            if let Some(volumes) = spec(t)["volumes"].as_array_mut() {
                volumes.push(json!({"name": "spare", "cinder": {"size": 1}}));
            }
        });
        assert_eq!(err.code, "invalid");
        assert!(
            err.detail
                .starts_with("volume mount parameters is invalid."),
            "{}",
            err.detail
        );
        assert!(err.detail.contains("spare"), "{}", err.detail);
    }

    #[test]
    fn a_volume_mounted_only_by_an_init_container_counts() {
        let mut t = template();
        t["spec"]["initContainers"][0]["volumeMounts"] =
            json!([{"name": "scratch", "mountPath": "/scratch"}]);
        if let Some(volumes) = t["spec"]["volumes"].as_array_mut() {
            volumes.push(json!({"name": "scratch", "cinder": {"size": 1}}));
        }
        assert!(capsule_request(&body(t)).is_ok());
    }

    #[test]
    fn a_container_may_not_reuse_a_mount_path() {
        let err = reject(|t| {
            first(t)["volumeMounts"] = json!([
                {"name": "data", "mountPath": "/data"},
                {"name": "db", "mountPath": "/data/"}
            ]);
        });
        assert_eq!(err.code, "invalid");
        assert!(err.detail.contains("/data"), "{}", err.detail);
        // Different containers may use the same path.
        let mut t = template();
        t["spec"]["containers"][1]["volumeMounts"][0]["mountPath"] = json!("/data");
        assert!(capsule_request(&body(t)).is_ok());
    }

    #[test]
    fn odd_inputs_never_panic() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let _ = capsule_request(&json!({ "template": deep }));
        for value in [
            json!(null),
            json!(true),
            json!(u64::MAX),
            json!(-1e308),
            json!(""),
            json!([]),
            json!({}),
            json!([[[]]]),
            json!({"": null}),
        ] {
            let _ = capsule_request(&value);
            let _ = capsule_request(&json!({ "template": value.clone() }));
            for path in [
                "/kind",
                "/metadata",
                "/spec",
                "/spec/containers",
                "/spec/containers/0",
                "/spec/containers/0/ports",
                "/spec/containers/0/ports/0",
                "/spec/containers/0/ports/0/containerPort",
                "/spec/containers/0/resources",
                "/spec/containers/0/resources/requests/cpu",
                "/spec/containers/0/resources/requests/memory",
                "/spec/containers/0/volumeMounts/0",
                "/spec/volumes",
                "/spec/volumes/0",
                "/spec/volumes/0/cinder",
                "/spec/volumes/0/cinder/size",
            ] {
                let mut t = template();
                if let Some(slot) = t.pointer_mut(path) {
                    *slot = value.clone();
                }
                let result = capsule_request(&body(t));
                if let Err(err) = result {
                    assert_eq!(err.status, 400, "{path} = {value}");
                }
            }
        }
    }
}
