//! Input validation with upstream's rules and error texts (reference §4.2,
//! §4.4, §3.2). Each check names the field and value the way upstream's
//! jsonschema errors do, so clients show the same messages.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::container::RestartPolicy;
use crate::error::ApiError;
use crate::microversion::Version;

pub const MIN_CPU: f64 = 0.1;
pub const MAX_CPU: f64 = 16.0;
pub const MIN_MEMORY: i64 = 4;
pub const MAX_MEMORY: i64 = 8192;
pub const MIN_DISK: i64 = 1;
pub const MAX_DISK: i64 = 160;
pub const DEFAULT_CPU: f64 = 1.0;
pub const DEFAULT_MEMORY: i64 = 512;

pub const NAME_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$";
const HOSTNAME_PATTERN: &str = "^[a-zA-Z0-9-._]*$";
const DIGITS_PATTERN: &str = "^[0-9]+$";
const CPU_PATTERN: &str = r"^[0-9]*(\.([0-9]+))?$";

pub(crate) static NAME_RE: LazyLock<Regex> = LazyLock::new(|| compile(NAME_PATTERN));
static HOSTNAME_RE: LazyLock<Regex> = LazyLock::new(|| compile(HOSTNAME_PATTERN));
static DIGITS_RE: LazyLock<Regex> = LazyLock::new(|| compile(DIGITS_PATTERN));
static CPU_RE: LazyLock<Regex> = LazyLock::new(|| compile(CPU_PATTERN));
static IMAGE_RE: LazyLock<Regex> = LazyLock::new(|| compile("[a-zA-Z0-9][a-zA-Z0-9_.-]"));

pub(crate) fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module, checked by its tests.
    Regex::new(pattern).unwrap_or_else(|err| panic!("bad built-in pattern {pattern}: {err}"))
}

/// Renders a JSON value as Python's `repr` would in upstream's messages.
pub(crate) fn py_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

pub(crate) fn field_error(field: &str, value: &Value, message: impl AsRef<str>) -> ApiError {
    ApiError::schema(format!(
        "Invalid input for field '{field}'.Value: '{}'. {}",
        value_text(value),
        message.as_ref()
    ))
}

/// Query-parameter variant of [`field_error`].
pub fn query_error(field: &str, value: &str, message: impl AsRef<str>) -> ApiError {
    ApiError::schema(format!(
        "Invalid input for query parameters '{field}'. Value: '{value}'. {}",
        message.as_ref()
    ))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

pub(crate) fn type_error(field: &str, value: &Value, types: &str) -> ApiError {
    field_error(
        field,
        value,
        format!("{} is not of type {types}", py_repr(value)),
    )
}

pub(crate) fn string_field(
    field: &str,
    value: &Value,
    min: usize,
    max: usize,
    pattern: Option<(&Regex, &str)>,
) -> Result<String, ApiError> {
    let Value::String(s) = value else {
        return Err(type_error(field, value, "'string'"));
    };
    let len = s.chars().count();
    if len < min {
        return Err(field_error(
            field,
            value,
            format!("{} is too short", py_repr(value)),
        ));
    }
    if len > max {
        return Err(field_error(
            field,
            value,
            format!("{} is too long", py_repr(value)),
        ));
    }
    if let Some((re, text)) = pattern
        && !re.is_match(s)
    {
        return Err(field_error(
            field,
            value,
            format!("{} does not match '{text}'", py_repr(value)),
        ));
    }
    Ok(s.clone())
}

/// Container names: 2–255 characters, `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn container_name(field: &str, value: &Value) -> Result<String, ApiError> {
    string_field(field, value, 2, 255, Some((&NAME_RE, NAME_PATTERN)))
}

fn bounded_number(
    field: &str,
    value: &Value,
    number: f64,
    min: f64,
    max: f64,
) -> Result<(), ApiError> {
    let shown = py_repr(value);
    if number < min {
        return Err(field_error(
            field,
            value,
            format!("{shown} is less than the minimum of {min}"),
        ));
    }
    if number > max {
        return Err(field_error(
            field,
            value,
            format!("{shown} is greater than the maximum of {max}"),
        ));
    }
    Ok(())
}

/// `cpu`: number or numeric string, 0.1 to 16.
pub fn cpu(value: &Value) -> Result<Option<f64>, ApiError> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| type_error("cpu", value, "'number'"))?,
        Value::String(s) => {
            if s.is_empty() || !CPU_RE.is_match(s) {
                return Err(field_error(
                    "cpu",
                    value,
                    format!("{} does not match '{CPU_PATTERN}'", py_repr(value)),
                ));
            }
            s.parse::<f64>()
                .map_err(|_| type_error("cpu", value, "'number'"))?
        }
        _ => return Err(type_error("cpu", value, "'number', 'string', 'null'")),
    };
    bounded_number("cpu", value, number, MIN_CPU, MAX_CPU)?;
    Ok(Some(number))
}

fn integer_like(field: &str, value: &Value, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => return Err(type_error(field, value, "'integer', 'string', 'null'")),
        },
        Value::String(s) => {
            if !DIGITS_RE.is_match(s) {
                return Err(field_error(
                    field,
                    value,
                    format!("{} does not match '{DIGITS_PATTERN}'", py_repr(value)),
                ));
            }
            s.parse::<i64>().map_err(|_| {
                field_error(
                    field,
                    value,
                    format!("{} is greater than the maximum of {max}", py_repr(value)),
                )
            })?
        }
        _ => return Err(type_error(field, value, "'integer', 'string', 'null'")),
    };
    bounded_number(field, value, number as f64, min as f64, max as f64)?;
    Ok(Some(number))
}

/// `memory`: MiB as an integer or a digits-only string, 4 to 8192.
pub fn memory(value: &Value) -> Result<Option<i64>, ApiError> {
    integer_like("memory", value, MIN_MEMORY, MAX_MEMORY)
}

fn disk(value: &Value) -> Result<Option<i64>, ApiError> {
    integer_like("disk", value, MIN_DISK, MAX_DISK)
}

pub(crate) fn boolean(field: &str, value: &Value) -> Result<bool, ApiError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "True" || s == "true" => Ok(true),
        Value::String(s) if s == "False" || s == "false" => Ok(false),
        _ => Err(field_error(
            field,
            value,
            format!(
                "{} is not one of [True, False, 'True', 'TRUE', 'False', 'FALSE', 'true', 'false']",
                py_repr(value)
            ),
        )),
    }
}

/// Upstream's `boolean_extended` strings for query parameters.
pub fn query_bool(field: &str, raw: &str) -> Result<bool, ApiError> {
    match raw {
        "true" | "True" | "TRUE" | "1" | "ON" | "On" | "on" | "YES" | "Yes" | "yes" => Ok(true),
        "false" | "False" | "FALSE" | "0" | "OFF" | "Off" | "off" | "NO" | "No" | "no" => Ok(false),
        _ => Err(query_error(
            field,
            raw,
            format!("'{raw}' is not a valid boolean"),
        )),
    }
}

fn string_list(field: &str, value: &Value) -> Result<Option<Vec<String>>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                // Upstream's command items are untyped and end up as str().
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(if *b { "True".into() } else { "False".into() }),
                other => Err(type_error(field, other, "'string'")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(type_error(field, value, "'array', 'null'")),
    }
}

pub(crate) fn string_map(
    field: &str,
    value: &Value,
    strict_values: bool,
) -> Result<BTreeMap<String, String>, ApiError> {
    match value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other if !strict_values => Ok((k.clone(), value_text(other))),
                // Upstream names the innermost key of a nested error.
                other => Err(type_error(k, other, "'string'")),
            })
            .collect(),
        _ => Err(type_error(field, value, "'object', 'null'")),
    }
}

fn optional_object(field: &str, value: &Value) -> Result<Option<Value>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(_) => Ok(Some(value.clone())),
        _ => Err(type_error(field, value, "'object', 'null'")),
    }
}

pub(crate) fn optional_string(field: &str, value: &Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(type_error(field, value, "'string', 'null'")),
    }
}

/// `restart_policy` with upstream's retry-count rules.
pub fn restart_policy(value: &Value) -> Result<Option<RestartPolicy>, ApiError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(type_error("restart_policy", value, "'object', 'null'")),
    };
    for key in map.keys() {
        if key != "Name" && key != "MaximumRetryCount" {
            return Err(field_error(
                "restart_policy",
                value,
                format!("Additional properties are not allowed ('{key}' was unexpected)"),
            ));
        }
    }
    let name = match map.get("Name") {
        Some(Value::String(name))
            if ["no", "always", "on-failure", "unless-stopped"].contains(&name.as_str()) =>
        {
            name.clone()
        }
        Some(other) => {
            return Err(field_error(
                "Name",
                other,
                format!(
                    "{} is not one of ['no', 'always', 'on-failure', 'unless-stopped']",
                    py_repr(other)
                ),
            ));
        }
        None => {
            return Err(field_error(
                "restart_policy",
                value,
                "'Name' is a required property",
            ));
        }
    };
    let count = match map.get("MaximumRetryCount") {
        None | Some(Value::Null) => 0,
        Some(count @ Value::Number(n)) => match n.as_i64() {
            Some(i) if i >= 0 => i,
            _ => {
                return Err(field_error(
                    "MaximumRetryCount",
                    count,
                    format!("{} is less than the minimum of 0", py_repr(count)),
                ));
            }
        },
        Some(count @ Value::String(s)) if DIGITS_RE.is_match(s) => s.parse().map_err(|_| {
            field_error(
                "MaximumRetryCount",
                count,
                format!("{} is too large", py_repr(count)),
            )
        })?,
        // Upstream names the innermost key of a nested error.
        Some(other) => {
            return Err(field_error(
                "MaximumRetryCount",
                other,
                format!("{} does not match '{DIGITS_PATTERN}'", py_repr(other)),
            ));
        }
    };
    if (name == "always" || name == "unless-stopped") && count != 0 {
        return Err(ApiError::invalid_value(format!(
            "maximum retry count not valid with restart policy of {name}"
        )));
    }
    let count = if name == "no" { 0 } else { count };
    Ok(Some(RestartPolicy {
        name,
        maximum_retry_count: count.to_string(),
    }))
}

/// A validated create request; `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub cpu_policy: Option<String>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
    pub workdir: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub image_pull_policy: Option<String>,
    pub image_driver: Option<String>,
    pub restart_policy: Option<RestartPolicy>,
    pub interactive: Option<bool>,
    pub tty: Option<bool>,
    pub security_groups: Option<Vec<String>>,
    pub hints: Option<Value>,
    pub nets: Option<Vec<crate::network::RequestedNetwork>>,
    pub mounts: Vec<crate::volume::MountRequest>,
    pub runtime: Option<String>,
    pub hostname: Option<String>,
    pub auto_remove: Option<bool>,
    pub auto_heal: Option<bool>,
    pub privileged: Option<bool>,
    pub healthcheck: Option<Value>,
    pub exposed_ports: Option<Value>,
    pub availability_zone: Option<String>,
    pub registry: Option<String>,
    pub host: Option<String>,
}

/// Keys every create schema accepts (the legacy and current schemas share
/// them; fields introduced later are refused by version checks instead).
const CREATE_KEYS: &[&str] = &[
    "image",
    "name",
    "command",
    "cpu",
    "cpu_policy",
    "memory",
    "disk",
    "workdir",
    "environment",
    "labels",
    "image_pull_policy",
    "image_driver",
    "restart_policy",
    "interactive",
    "tty",
    "security_groups",
    "hints",
    "nets",
    "mounts",
    "runtime",
    "hostname",
    "auto_remove",
    "auto_heal",
    "privileged",
    "healthcheck",
    "exposed_ports",
    "availability_zone",
    "registry",
];

/// Fields checked by upstream's `version_check` (present below → 400).
const VERSIONED_FIELDS: &[(&str, Version)] = &[
    ("auto_remove", Version::new(1, 3)),
    ("runtime", Version::new(1, 5)),
    ("hostname", Version::new(1, 9)),
    ("mounts", Version::new(1, 11)),
    ("privileged", Version::new(1, 21)),
    ("healthcheck", Version::new(1, 22)),
    ("exposed_ports", Version::new(1, 24)),
    ("registry", Version::new(1, 31)),
];

/// Upstream's `version_check` error: `param` needs microversion `min`.
pub fn invalid_param_in_version(param: &str, version: Version, min: Version) -> ApiError {
    ApiError::bad_request(
        "invalid-param-in-version",
        format!(
            "Invalid param {param} because current request version is {version}. {param} is only supported from version {min}"
        ),
    )
}

pub(crate) fn additional_property(key: &str) -> ApiError {
    ApiError::schema(format!(
        "Additional properties are not allowed ('{key}' was unexpected)"
    ))
}

/// Validates a `POST /v1/containers` body at `version`.
/// `rebuild`'s optional `image` and `image_driver` (upstream gives the route
/// no schema; the image follows create's rules, the driver must be one it
/// knows).
pub fn rebuild_request(
    image: Option<&str>,
    image_driver: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let image = image
        .map(|i| {
            string_field(
                "image",
                &Value::String(i.to_owned()),
                2,
                255,
                Some((&IMAGE_RE, "[a-zA-Z0-9][a-zA-Z0-9_.-]")),
            )
        })
        .transpose()?;
    let driver = match image_driver {
        None | Some("None") => None,
        Some(d @ ("docker" | "glance")) => Some(d.to_owned()),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid input for field/attribute image_driver. Value: {other}. \
                 '{other}' is not one of ['glance', 'docker']"
            )));
        }
    };
    Ok((image, driver))
}

/// The items of `nets` by upstream's schema: objects without other keys,
/// exactly one of `network` and `port` (1 to 255 characters), and fixed
/// addresses of their version.
pub fn requested_networks(
    items: &[Value],
) -> Result<Vec<crate::network::RequestedNetwork>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return Err(field_error(
                "nets",
                item,
                format!("{} is not of type 'object'", py_repr(item)),
            ));
        };
        let mut net = crate::network::RequestedNetwork::default();
        for (key, value) in map {
            match key.as_str() {
                "network" => net.network = Some(string_field("network", value, 1, 255, None)?),
                "port" => net.port = Some(string_field("port", value, 1, 255, None)?),
                "v4-fixed-ip" => {
                    let text = string_field("v4-fixed-ip", value, 1, 255, None)?;
                    net.v4_fixed_ip = Some(text.parse().map_err(|_| {
                        field_error("v4-fixed-ip", value, format!("'{text}' is not a 'ipv4'"))
                    })?);
                }
                "v6-fixed-ip" => {
                    let text = string_field("v6-fixed-ip", value, 1, 255, None)?;
                    net.v6_fixed_ip = Some(text.parse().map_err(|_| {
                        field_error("v6-fixed-ip", value, format!("'{text}' is not a 'ipv6'"))
                    })?);
                }
                other => return Err(additional_property(other)),
            }
        }
        if net.network.is_some() == net.port.is_some() {
            // jsonschema's oneOf texts.
            let message = if net.network.is_some() {
                format!(
                    "{} is valid under each of {{'required': ['network']}}, {{'required': ['port']}}",
                    py_repr(item)
                )
            } else {
                format!(
                    "{} is not valid under any of the given schemas",
                    py_repr(item)
                )
            };
            return Err(field_error("nets", item, message));
        }
        out.push(net);
    }
    Ok(out)
}

pub fn create_request(body: &Value, version: Version) -> Result<CreateRequest, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::schema(format!(
            "{} is not of type 'object'",
            py_repr(body)
        )));
    };
    for key in map.keys() {
        let known = CREATE_KEYS.contains(&key.as_str())
            || (key == "host" && version >= Version::new(1, 39))
            || (key == "entrypoint" && version >= Version::new(1, 40));
        if !known {
            return Err(additional_property(key));
        }
    }
    let Some(image) = map.get("image") else {
        return Err(ApiError::schema("'image' is a required property"));
    };
    let image = string_field(
        "image",
        image,
        2,
        255,
        Some((&IMAGE_RE, "[a-zA-Z0-9][a-zA-Z0-9_.-]")),
    )?;

    if version >= Version::new(1, 20)
        && map.contains_key("security_groups")
        && map.contains_key("exposed_ports")
    {
        return Err(ApiError::schema(
            "'security_groups' and 'exposed_ports' may not be given together",
        ));
    }
    for (field, min) in VERSIONED_FIELDS {
        if let Some(value) = map.get(*field) {
            let empty_mounts =
                *field == "mounts" && matches!(value, Value::Array(a) if a.is_empty());
            if version < *min && !empty_mounts {
                return Err(invalid_param_in_version(field, version, *min));
            }
        }
    }

    let mut req = CreateRequest {
        image,
        ..CreateRequest::default()
    };
    let null = Value::Null;
    let get = |key: &str| map.get(key).unwrap_or(&null);

    if let Some(v) = map.get("name")
        && !v.is_null()
    {
        req.name = Some(container_name("name", v)?);
    }
    req.command = match map.get("command") {
        None | Some(Value::Null) => None,
        Some(v) if version < Version::new(1, 20) => {
            let Value::String(s) = v else {
                return Err(type_error("command", v, "'string', 'null'"));
            };
            Some(
                shlex::split(s)
                    .ok_or_else(|| ApiError::invalid(format!("Invalid command: {s}")))?,
            )
        }
        Some(v) => string_list("command", v)?,
    };
    req.entrypoint = string_list("entrypoint", get("entrypoint"))?;
    req.cpu = cpu(get("cpu"))?;
    if let Some(v) = map.get("cpu_policy") {
        match v {
            Value::String(s) if s == "dedicated" || s == "shared" => {
                req.cpu_policy = Some(s.clone())
            }
            _ => {
                return Err(field_error(
                    "cpu_policy",
                    v,
                    format!("{} is not one of ['dedicated', 'shared']", py_repr(v)),
                ));
            }
        }
    }
    req.memory = memory(get("memory"))?;
    req.disk = disk(get("disk"))?;
    req.workdir = optional_string("workdir", get("workdir"))?;
    req.environment = string_map("environment", get("environment"), true)?;
    req.labels = string_map("labels", get("labels"), false)?;
    req.image_pull_policy = match get("image_pull_policy") {
        Value::Null => None,
        v => Some(image_pull_policy(v)?),
    };
    req.image_driver = match get("image_driver") {
        Value::Null => None,
        Value::String(s) if s == "None" => None,
        Value::String(s) if s == "docker" || s == "glance" => Some(s.clone()),
        v => {
            return Err(field_error(
                "image_driver",
                v,
                format!(
                    "{} is not one of ['glance', 'docker', None, 'None']",
                    py_repr(v)
                ),
            ));
        }
    };
    req.restart_policy = restart_policy(get("restart_policy"))?;
    if let Some(v) = map.get("interactive") {
        req.interactive = Some(boolean("interactive", v)?);
    }
    if let Some(v) = map.get("tty") {
        req.tty = Some(boolean("tty", v)?);
    }
    // 1.20 to 1.35 copy `interactive` onto `tty` (reference §1.3, 1.36).
    if version >= Version::new(1, 20) && version < Version::new(1, 36) && req.interactive.is_some()
    {
        req.tty = req.interactive;
    }
    if let Some(v) = map.get("security_groups") {
        req.security_groups = string_list("security_groups", v)?;
        if let Some(groups) = &mut req.security_groups {
            let mut seen = std::collections::BTreeSet::new();
            groups.retain(|g| seen.insert(g.clone()));
        }
    }
    req.hints = optional_object("hints", get("hints"))?;
    req.nets = match get("nets") {
        Value::Null => None,
        Value::Array(items) => Some(requested_networks(items)?),
        v => return Err(type_error("nets", v, "'array', 'null'")),
    };
    req.mounts = match get("mounts") {
        Value::Null => Vec::new(),
        Value::Array(items) => crate::volume::mount_requests(items)?,
        v => return Err(type_error("mounts", v, "'array', 'null'")),
    };
    req.runtime = optional_string("runtime", get("runtime"))?;
    if let Some(v) = map.get("hostname") {
        req.hostname = Some(string_field(
            "hostname",
            v,
            1,
            255,
            Some((&HOSTNAME_RE, HOSTNAME_PATTERN)),
        )?);
    }
    req.auto_remove = match get("auto_remove") {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        v => return Err(type_error("auto_remove", v, "'boolean', 'null'")),
    };
    if let Some(v) = map.get("auto_heal") {
        req.auto_heal = Some(boolean("auto_heal", v)?);
    }
    if let Some(v) = map.get("privileged") {
        req.privileged = Some(boolean("privileged", v)?);
    }
    req.healthcheck = optional_object("healthcheck", get("healthcheck"))?;
    req.exposed_ports = exposed_ports(get("exposed_ports"))?;
    req.availability_zone = match get("availability_zone") {
        Value::Null => None,
        v => Some(string_field("availability_zone", v, 1, 255, None)?),
    };
    if let Some(v) = map.get("registry") {
        req.registry = Some(string_field(
            "registry",
            v,
            2,
            255,
            Some((&NAME_RE, NAME_PATTERN)),
        )?);
    }
    if let Some(v) = map.get("host") {
        req.host = Some(string_field(
            "host",
            v,
            1,
            255,
            Some((&HOSTNAME_RE, HOSTNAME_PATTERN)),
        )?);
    }
    Ok(req)
}

/// A service's `host` and `binary` query parameters (reference §7.3):
/// `host` 1–255 of `[a-zA-Z0-9-._]`, `binary` 1–255.
pub fn service_ident<'a>(
    host: Option<&'a str>,
    binary: Option<&'a str>,
) -> Result<(&'a str, &'a str), ApiError> {
    let host = required("host", host)?;
    let binary = required("binary", binary)?;
    service_text("host", host)?;
    if !HOSTNAME_RE.is_match(host) {
        return Err(query_error(
            "host",
            host,
            format!("'{host}' does not match '{HOSTNAME_PATTERN}'"),
        ));
    }
    service_text("binary", binary)?;
    Ok((host, binary))
}

/// A services query parameter's length: 1 to 255 characters (`host`,
/// `binary`, `disabled_reason`).
pub fn service_text(field: &str, raw: &str) -> Result<(), ApiError> {
    let len = raw.chars().count();
    if len == 0 {
        Err(query_error(field, raw, format!("'{raw}' is too short")))
    } else if len > 255 {
        Err(query_error(field, raw, format!("'{raw}' is too long")))
    } else {
        Ok(())
    }
}

/// `image_pull_policy`: one of upstream's spellings, lower-cased.
pub fn image_pull_policy(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => match s.as_str() {
            "never" | "always" | "ifnotpresent" | "Never" | "Always" | "IfNotPresent" => {
                Ok(s.to_ascii_lowercase())
            }
            _ => Err(field_error(
                "image_pull_policy",
                v,
                format!(
                    "{} is not one of ['never', 'always', 'ifnotpresent', 'Never', 'Always', 'IfNotPresent', None]",
                    py_repr(v)
                ),
            )),
        },
        v => Err(type_error("image_pull_policy", v, "'string', 'null'")),
    }
}

fn exposed_ports(value: &Value) -> Result<Option<Value>, ApiError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(type_error("exposed_ports", value, "'object', 'null'")),
    };
    for key in map.keys() {
        let (port, protocol) = match key.split_once('/') {
            Some((port, protocol)) => (port, Some(protocol)),
            None => (key.as_str(), None),
        };
        if let Some(protocol) = protocol
            && protocol != "tcp"
            && protocol != "udp"
        {
            return Err(ApiError::invalid(format!(
                "value {protocol} is an invalid protocol"
            )));
        }
        match port.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => {}
            _ => {
                return Err(ApiError::invalid(format!(
                    "value {port} is an invalid port"
                )));
            }
        }
    }
    Ok(Some(Value::Object(map.clone())))
}

/// A validated `PATCH /v1/containers/{id}` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateRequest {
    pub cpu: Option<f64>,
    pub memory: Option<i64>,
    pub name: Option<String>,
    pub auto_heal: Option<bool>,
}

pub fn update_request(body: &Value) -> Result<UpdateRequest, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::schema(format!(
            "{} is not of type 'object'",
            py_repr(body)
        )));
    };
    let mut req = UpdateRequest::default();
    for (key, value) in map {
        match key.as_str() {
            "cpu" => req.cpu = cpu(value)?,
            "memory" => req.memory = memory(value)?,
            "name" => req.name = Some(container_name("name", value)?),
            "auto_heal" => req.auto_heal = Some(boolean("auto_heal", value)?),
            other => return Err(additional_property(other)),
        }
    }
    Ok(req)
}

/// Checks a JSON body is an object; used where the body is optional.
pub fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::schema(format!("{} is not of type 'object'", py_repr(body))))
}

/// Every Linux signal name, for `kill` (reference §4.5).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGIOT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPOLL", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
    ("SIGRTMIN", 34),
    ("SIGRTMAX", 64),
];

/// Validates a kill signal and returns it in the engine's `SIGNAME` form;
/// `None` (or `"None"`) means the engine default, SIGKILL.
pub fn signal(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw == "None" {
        return Ok(None);
    }
    let upper = raw.to_ascii_uppercase();
    let found = SIGNALS
        .iter()
        .find(|(name, number)| *name == upper || name[3..] == upper || number.to_string() == raw);
    match found {
        Some((name, _))
            if raw == upper
                || raw.to_ascii_lowercase() == raw
                || raw.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(Some((*name).to_string()))
        }
        _ => Err(query_error(
            "signal",
            raw,
            format!("'{raw}' is not one of the valid signals"),
        )),
    }
}

/// `timeout` for stop/reboot: a non-negative integer.
pub fn timeout(raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    match raw {
        None => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| query_error("timeout", s, format!("'{s}' does not match '^[0-9]+$'"))),
    }
}

/// A required query parameter; missing → 400 (upstream answered 500,
/// reference §12.10).
pub fn required<'a>(field: &str, raw: Option<&'a str>) -> Result<&'a str, ApiError> {
    raw.ok_or_else(|| ApiError::schema(format!("'{field}' is a required property")))
}

/// `h` or `w` of a tty resize: a positive integer that fits a terminal.
pub fn tty_dimension(field: &str, raw: Option<&str>) -> Result<u16, ApiError> {
    let raw = required(field, raw)?;
    match raw.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(query_error(
            field,
            raw,
            format!("'{raw}' is not a positive integer of at most 65535"),
        )),
    }
}

/// An exec instance id: 64 lowercase hex digits, as the engine makes them.
pub fn exec_id(raw: Option<&str>) -> Result<&str, ApiError> {
    let raw = required("exec_id", raw)?;
    if raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(raw)
    } else {
        Err(query_error(
            "exec_id",
            raw,
            format!("'{raw}' does not match '^[a-f0-9]{{64}}$'"),
        ))
    }
}

/// The `command` of an `execute`, split into words as a shell would (and
/// as upstream's Docker client does).
pub fn exec_command(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let raw = required("command", raw)?;
    let words = shlex::split(raw).unwrap_or_default();
    if words.is_empty() {
        return Err(query_error(
            "command",
            raw,
            "is not a command (empty, or unbalanced quotes)",
        ));
    }
    Ok(words)
}

/// The quota resources, in upstream's schema order (reference §7.5, §10).
pub const QUOTA_RESOURCES: [&str; 4] = ["containers", "memory", "cpu", "disk"];
const QUOTA_PATTERN: &str = "^-?[0-9]+$";
static QUOTA_RE: LazyLock<Regex> = LazyLock::new(|| compile(QUOTA_PATTERN));

/// Upstream's `common_quota`: an integer or a string matching `^-?[0-9]+$`,
/// at least -1 (-1 = unlimited). `fail` words the error for where the value
/// came from (body field or query parameter).
fn quota_number(value: &Value, fail: &dyn Fn(String) -> ApiError) -> Result<i64, ApiError> {
    let number = match value {
        Value::Number(n) => match (n.as_i64(), n.is_u64()) {
            (Some(i), _) => i,
            (None, true) => {
                return Err(fail(format!(
                    "{n} is greater than the maximum of {}",
                    i64::MAX
                )));
            }
            (None, false) => {
                return Err(fail(format!(
                    "{} is not of type 'integer', 'string'",
                    py_repr(value)
                )));
            }
        },
        Value::String(s) => {
            if !QUOTA_RE.is_match(s) {
                return Err(fail(format!(
                    "{} does not match '{QUOTA_PATTERN}'",
                    py_repr(value)
                )));
            }
            match s.parse::<i64>() {
                Ok(i) => i,
                Err(_) if s.starts_with('-') => {
                    return Err(fail(format!("{s} is less than the minimum of -1")));
                }
                Err(_) => {
                    return Err(fail(format!(
                        "{s} is greater than the maximum of {}",
                        i64::MAX
                    )));
                }
            }
        }
        other => {
            return Err(fail(format!(
                "{} is not of type 'integer', 'string'",
                py_repr(other)
            )));
        }
    };
    if number < -1 {
        // Upstream's `minimum` coerces numeric strings first, so the
        // message shows the number.
        return Err(fail(format!("{number} is less than the minimum of -1")));
    }
    Ok(number)
}

/// One quota limit from a JSON body field.
pub fn quota_value(field: &str, value: &Value) -> Result<i64, ApiError> {
    quota_number(value, &|message| field_error(field, value, message))
}

/// One quota limit from a query parameter.
pub fn quota_query_value(field: &str, raw: &str) -> Result<i64, ApiError> {
    quota_number(&Value::String(raw.to_string()), &|message| {
        query_error(field, raw, message)
    })
}

fn additional_properties<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), ApiError> {
    let mut extra: Vec<&str> = keys.filter(|k| !QUOTA_RESOURCES.contains(k)).collect();
    extra.dedup();
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

/// A quota update body (`PUT /v1/quotas/{project_id}`,
/// `PUT /v1/quota_classes/{class_name}`): a subset of
/// [`QUOTA_RESOURCES`], nothing else. Returns (resource, limit) pairs in
/// schema order; errors come in the order upstream's jsonschema finds them
/// (the resources in schema order, then unknown keys).
pub fn quota_update(body: &Value) -> Result<Vec<(&'static str, i64)>, ApiError> {
    let map = object(body)?;
    let mut values = Vec::new();
    for resource in QUOTA_RESOURCES {
        if let Some(value) = map.get(resource) {
            values.push((resource, quota_value(resource, value)?));
        }
    }
    additional_properties(map.keys().map(String::as_str))?;
    Ok(values)
}

/// The query-string flavour of [`quota_update`] (upstream validates the
/// query against the same schema, and merges it into the update).
pub fn quota_update_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<(&'static str, i64)>, ApiError> {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let mut values = Vec::new();
    for resource in QUOTA_RESOURCES {
        let given: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == resource)
            .map(|(_, v)| *v)
            .collect();
        match given.as_slice() {
            [] => {}
            [one] => values.push((resource, quota_query_value(resource, one)?)),
            // A repeated key reaches upstream's schema as a list.
            many => {
                let list: Vec<String> = many.iter().map(|v| format!("'{v}'")).collect();
                let shown = format!("[{}]", list.join(", "));
                return Err(query_error(
                    resource,
                    &shown,
                    format!("{shown} is not of type 'integer', 'string'"),
                ));
            }
        }
    }
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    additional_properties(keys.into_iter())?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const V40: Version = Version::MAX;

    fn err_of(body: Value, version: Version) -> ApiError {
        create_request(&body, version).expect_err("must be rejected")
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn stream_parameters() {
        assert_eq!(tty_dimension("h", Some("24")).unwrap(), 24);
        for bad in ["0", "-1", "abc", "70000", ""] {
            assert_eq!(
                tty_dimension("h", Some(bad)).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        assert_eq!(tty_dimension("w", None).unwrap_err().status, 400);

        let id = "a".repeat(64);
        assert_eq!(exec_id(Some(&id)).unwrap(), id);
        assert_eq!(exec_id(Some(&"A".repeat(64))).unwrap_err().status, 400);
        assert_eq!(exec_id(Some("abc")).unwrap_err().status, 400);
        assert_eq!(exec_id(None).unwrap_err().status, 400);

        assert_eq!(
            exec_command(Some("sh -c 'echo a b'")).unwrap(),
            ["sh", "-c", "echo a b"]
        );
        assert_eq!(exec_command(Some("")).unwrap_err().status, 400);
        assert_eq!(exec_command(Some("echo 'open")).unwrap_err().status, 400);
        assert_eq!(exec_command(None).unwrap_err().status, 400);
    }

    #[test]
    fn built_in_patterns_compile() {
        for p in [
            NAME_PATTERN,
            HOSTNAME_PATTERN,
            DIGITS_PATTERN,
            CPU_PATTERN,
            QUOTA_PATTERN,
        ] {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn image_is_required() {
        let err = err_of(json!({"name": "ab"}), V40);
        assert_eq!(err.detail, "'image' is a required property");
        assert_eq!(err.code, "schema-validation-error");
    }

    #[test]
    fn bad_names_are_400() {
        for name in ["a", "-bad", "bad name", "bäd", ""] {
            let err = err_of(json!({"image": "busybox", "name": name}), V40);
            assert_eq!(err.status, 400, "{name}");
        }
        assert!(create_request(&json!({"image": "busybox", "name": "ok-name_1.2"}), V40).is_ok());
    }

    #[test]
    fn memory_rules() {
        for bad in [
            json!("512M"),
            json!("abc"),
            json!(-1),
            json!(3),
            json!(8193),
            json!(1.5),
            json!(true),
        ] {
            let err = err_of(json!({"image": "busybox", "memory": bad}), V40);
            assert_eq!(err.status, 400, "{bad}");
        }
        let ok = create_request(&json!({"image": "busybox", "memory": "512"}), V40).expect("valid");
        assert_eq!(ok.memory, Some(512));
    }

    #[test]
    fn cpu_rules() {
        for bad in [
            json!(0),
            json!(-1),
            json!(16.5),
            json!("abc"),
            json!("1e3"),
            json!([]),
        ] {
            let err = err_of(json!({"image": "busybox", "cpu": bad}), V40);
            assert_eq!(err.status, 400, "{bad}");
        }
        let ok = create_request(&json!({"image": "busybox", "cpu": "0.5"}), V40).expect("valid");
        assert_eq!(ok.cpu, Some(0.5));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = err_of(json!({"image": "busybox", "colour": "red"}), V40);
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('colour' was unexpected)"
        );
    }

    #[test]
    fn restart_policy_rules() {
        for bad in [
            json!({"Name": "sometimes"}),
            json!({"Name": "always", "MaximumRetryCount": 3}),
            json!({"Name": "on-failure", "MaximumRetryCount": -1}),
            json!({"Name": "no", "Extra": 1}),
            json!({"MaximumRetryCount": 1}),
            json!("always"),
        ] {
            let err = err_of(json!({"image": "busybox", "restart_policy": bad}), V40);
            assert_eq!(err.status, 400, "{bad}");
        }
        let ok = create_request(
            &json!({"image": "busybox", "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "3"}}),
            V40,
        )
        .expect("valid");
        assert_eq!(
            ok.restart_policy,
            Some(RestartPolicy {
                name: "on-failure".into(),
                maximum_retry_count: "3".into()
            })
        );
        let no = create_request(
            &json!({"image": "busybox", "restart_policy": {"Name": "no", "MaximumRetryCount": 5}}),
            V40,
        )
        .expect("valid");
        assert_eq!(
            no.restart_policy.map(|p| p.maximum_retry_count),
            Some("0".into())
        );
    }

    #[test]
    fn version_gated_fields() {
        let err = err_of(
            json!({"image": "busybox", "auto_remove": true}),
            Version::new(1, 2),
        );
        assert_eq!(err.code, "invalid-param-in-version");
        assert_eq!(
            err.detail,
            "Invalid param auto_remove because current request version is 1.2. auto_remove is only supported from version 1.3"
        );
        assert!(
            create_request(
                &json!({"image": "busybox", "auto_remove": true}),
                Version::new(1, 3)
            )
            .is_ok()
        );
        let err = err_of(
            json!({"image": "busybox", "hostname": "h"}),
            Version::new(1, 8),
        );
        assert_eq!(err.code, "invalid-param-in-version");
        let err = err_of(
            json!({"image": "busybox", "host": "h"}),
            Version::new(1, 38),
        );
        assert_eq!(err.code, "schema-validation-error");
        let err = err_of(
            json!({"image": "busybox", "entrypoint": ["sh"]}),
            Version::new(1, 39),
        );
        assert_eq!(err.code, "schema-validation-error");
        assert!(create_request(&json!({"image": "busybox", "entrypoint": ["sh"]}), V40).is_ok());
    }

    #[test]
    fn command_is_a_string_before_1_20() {
        let ok = create_request(
            &json!({"image": "busybox", "command": "sh -c 'echo hi'"}),
            Version::new(1, 19),
        )
        .expect("valid");
        assert_eq!(
            ok.command,
            Some(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            err_of(
                json!({"image": "busybox", "command": ["sh"]}),
                Version::new(1, 19)
            )
            .status,
            400
        );
        assert_eq!(
            err_of(
                json!({"image": "busybox", "command": "sh"}),
                Version::new(1, 20)
            )
            .status,
            400
        );
    }

    #[test]
    fn interactive_sets_tty_between_1_20_and_1_35() {
        let body = json!({"image": "busybox", "interactive": true, "tty": false});
        assert_eq!(
            create_request(&body, Version::new(1, 30))
                .expect("valid")
                .tty,
            Some(true)
        );
        assert_eq!(
            create_request(&body, Version::new(1, 36))
                .expect("valid")
                .tty,
            Some(false)
        );
    }

    #[test]
    fn non_object_body_is_400() {
        assert_eq!(err_of(json!([1, 2]), V40).status, 400);
        assert_eq!(err_of(json!("x"), V40).status, 400);
    }

    #[test]
    fn signals() {
        for ok in [
            "SIGKILL", "KILL", "sigkill", "kill", "9", "SIGTERM", "15", "None",
        ] {
            assert!(signal(Some(ok)).is_ok(), "{ok}");
        }
        assert_eq!(signal(Some("kill")).ok().flatten(), Some("SIGKILL".into()));
        for bad in ["SIGNOPE", "Kill", "99", ""] {
            assert!(signal(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn exposed_ports_rules() {
        assert!(create_request(&json!({"image": "busybox", "exposed_ports": {"80/tcp": {}, "53/udp": {}, "8080": {}}}), V40).is_ok());
        assert_eq!(
            err_of(
                json!({"image": "busybox", "exposed_ports": {"80/sctp": {}}}),
                V40
            )
            .status,
            400
        );
        assert_eq!(
            err_of(
                json!({"image": "busybox", "exposed_ports": {"http": {}}}),
                V40
            )
            .status,
            400
        );
    }

    #[test]
    fn quota_values() {
        assert_eq!(quota_value("containers", &json!(3)), Ok(3));
        assert_eq!(quota_value("containers", &json!("-1")), Ok(-1));
        assert_eq!(quota_value("cpu", &json!("007")), Ok(7));
        assert_eq!(quota_value("cpu", &json!(-1)), Ok(-1));
        let detail = |v: Value| quota_value("memory", &v).expect_err("rejected").detail;
        assert_eq!(
            detail(json!(-2)),
            "Invalid input for field 'memory'.Value: '-2'. -2 is less than the minimum of -1"
        );
        assert_eq!(
            detail(json!("-5")),
            "Invalid input for field 'memory'.Value: '-5'. -5 is less than the minimum of -1"
        );
        assert_eq!(
            detail(json!("abc")),
            "Invalid input for field 'memory'.Value: 'abc'. 'abc' does not match '^-?[0-9]+$'"
        );
        assert_eq!(
            detail(json!("1.5")),
            "Invalid input for field 'memory'.Value: '1.5'. '1.5' does not match '^-?[0-9]+$'"
        );
        assert_eq!(
            detail(json!(1.5)),
            "Invalid input for field 'memory'.Value: '1.5'. 1.5 is not of type 'integer', 'string'"
        );
        assert_eq!(
            detail(json!(true)),
            "Invalid input for field 'memory'.Value: 'True'. True is not of type 'integer', 'string'"
        );
        assert_eq!(
            detail(json!(null)),
            "Invalid input for field 'memory'.Value: 'None'. None is not of type 'integer', 'string'"
        );
        assert!(detail(json!("99999999999999999999")).contains("greater than the maximum"));
        assert!(detail(json!(u64::MAX)).contains("greater than the maximum"));
        assert_eq!(
            quota_query_value("disk", "x").expect_err("rejected").detail,
            "Invalid input for query parameters 'disk'. Value: 'x'. 'x' does not match '^-?[0-9]+$'"
        );
    }

    #[test]
    fn quota_update_bodies() {
        assert_eq!(
            quota_update(&json!({"disk": "5", "containers": 3})),
            Ok(vec![("containers", 3), ("disk", 5)])
        );
        assert_eq!(quota_update(&json!({})), Ok(vec![]));
        let err = quota_update(&json!({"containers": 1, "volumes": 2})).expect_err("extra");
        assert_eq!(err.status, 400);
        assert_eq!(err.code, "schema-validation-error");
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('volumes' was unexpected)"
        );
        let err = quota_update(&json!({"b": 1, "a": 2})).expect_err("extras");
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('a', 'b' were unexpected)"
        );
        // Resource errors come before unknown keys.
        let err = quota_update(&json!({"a": 1, "cpu": "x"})).expect_err("bad cpu");
        assert!(err.detail.starts_with("Invalid input for field 'cpu'"));
        let err = quota_update(&json!([1])).expect_err("not an object");
        assert_eq!(err.detail, "[1] is not of type 'object'");
    }

    #[test]
    fn quota_update_queries() {
        assert_eq!(
            quota_update_query([("cpu", "4"), ("memory", "-1")]),
            Ok(vec![("memory", -1), ("cpu", 4)])
        );
        let err = quota_update_query([("x", "1")]).expect_err("extra");
        assert_eq!(
            err.detail,
            "Additional properties are not allowed ('x' was unexpected)"
        );
        let err = quota_update_query([("cpu", "1"), ("cpu", "2")]).expect_err("repeated");
        assert!(err.detail.contains("is not of type 'integer', 'string'"));
    }

    #[test]
    fn service_parameters_follow_the_schema() {
        assert_eq!(
            service_ident(Some("node-1"), Some("zun-compute")),
            Ok(("node-1", "zun-compute"))
        );
        let detail = |host: Option<&str>, binary: Option<&str>| {
            service_ident(host, binary).expect_err("invalid").detail
        };
        assert_eq!(detail(None, Some("b")), "'host' is a required property");
        assert!(detail(Some(""), Some("b")).contains("is too short"));
        assert!(detail(Some("a b"), Some("b")).contains("does not match"));
        assert!(detail(Some("h"), Some(&"x".repeat(256))).contains("is too long"));
        assert!(service_text("disabled_reason", "maintenance").is_ok());
        assert!(service_text("disabled_reason", "").is_err());
    }
}
