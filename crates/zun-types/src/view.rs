//! The container view (reference §4.3): which keys a response carries and
//! how values are rendered.

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value, json};

use crate::container::Container;

/// Fields only admins see (`container:get_one:<field>` defaults to admin).
pub const ADMIN_FIELDS: &[&str] = &["host", "image_pull_policy", "privileged", "runtime"];

/// Upstream renders naive datetimes with `str()`: space separator,
/// microseconds only when non-zero, no zone.
pub fn resource_time(t: &DateTime<Utc>) -> String {
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// Services and container actions use `%Y-%m-%dT%H:%M:%S.%f`.
pub fn action_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// `[{self}, {bookmark}]` links for a resource.
pub fn links(host_url: &str, resource: &str, id: &str) -> Value {
    json!([
        {"href": format!("{host_url}/v1/{resource}/{id}"), "rel": "self"},
        {"href": format!("{host_url}/{resource}/{id}"), "rel": "bookmark"},
    ])
}

/// Renders a container. `host_url` adds `links` (single-resource responses);
/// `shown_admin_fields` are the [`ADMIN_FIELDS`] the caller may see.
pub fn container(c: &Container, host_url: Option<&str>, shown_admin_fields: &[&str]) -> Value {
    let mut m = Map::new();
    m.insert("uuid".into(), json!(c.uuid));
    if let Some(url) = host_url {
        m.insert("links".into(), links(url, "containers", &c.uuid));
    }
    m.insert("name".into(), json!(c.name));
    m.insert("image".into(), json!(c.image));
    m.insert("command".into(), json!(c.command));
    m.insert("entrypoint".into(), json!(c.entrypoint));
    m.insert("status".into(), json!(c.status.as_str()));
    m.insert("status_reason".into(), json!(c.status_reason));
    m.insert("status_detail".into(), json!(c.status_detail));
    m.insert("task_state".into(), json!(c.task_state.map(|t| t.as_str())));
    m.insert("cpu".into(), json!(c.cpu));
    m.insert("cpu_policy".into(), json!(c.cpu_policy));
    m.insert("memory".into(), json!(c.memory));
    m.insert("disk".into(), json!(c.disk));
    m.insert("environment".into(), json!(c.environment));
    m.insert("labels".into(), json!(c.labels));
    m.insert("workdir".into(), json!(c.workdir));
    m.insert("ports".into(), json!(c.ports));
    m.insert("hostname".into(), json!(c.hostname));
    m.insert(
        "addresses".into(),
        c.addresses.clone().unwrap_or_else(|| json!({})),
    );
    m.insert("mounts".into(), crate::volume::mounts_view(&c.mounts));
    m.insert("restart_policy".into(), json!(c.restart_policy));
    m.insert("interactive".into(), json!(c.interactive));
    m.insert("tty".into(), json!(c.tty));
    m.insert("auto_remove".into(), json!(c.auto_remove));
    m.insert("auto_heal".into(), json!(c.auto_heal));
    m.insert("image_driver".into(), json!(c.image_driver));
    m.insert("security_groups".into(), json!(c.security_groups));
    m.insert("healthcheck".into(), json!(c.healthcheck));
    m.insert("registry_id".into(), json!(c.registry_id));
    m.insert("user_id".into(), json!(c.user_id));
    m.insert("project_id".into(), json!(c.project_id));
    m.insert("created_at".into(), json!(resource_time(&c.created_at)));
    m.insert(
        "updated_at".into(),
        json!(c.updated_at.as_ref().map(resource_time)),
    );
    for field in shown_admin_fields {
        let value = match *field {
            "host" => json!(c.host),
            "image_pull_policy" => json!(c.image_pull_policy),
            "privileged" => json!(c.privileged),
            "runtime" => json!(c.runtime),
            _ => continue,
        };
        m.insert((*field).into(), value);
    }
    Value::Object(m)
}

/// Renders a capsule (reference §6.3) with its members, each in the
/// container view without links (`member_admin_fields` as for
/// [`container`]). `legacy`: the view of microversions up to 1.31.
/// `show_host`: the caller may see `host` (`capsule:get:host`).
pub fn capsule(
    c: &Container,
    members: &[Container],
    host_url: &str,
    legacy: bool,
    show_host: bool,
    member_admin_fields: &[&str],
) -> Value {
    let of = |init: bool| -> Vec<Value> {
        members
            .iter()
            .filter(|m| m.capsule.as_ref().is_some_and(|link| link.init == init))
            .map(|m| container(m, None, member_admin_fields))
            .collect()
    };
    let mut m = Map::new();
    m.insert("uuid".into(), json!(c.uuid));
    m.insert("links".into(), links(host_url, "capsules", &c.uuid));
    m.insert("user_id".into(), json!(c.user_id));
    m.insert("project_id".into(), json!(c.project_id));
    m.insert("created_at".into(), json!(resource_time(&c.created_at)));
    m.insert(
        "updated_at".into(),
        json!(c.updated_at.as_ref().map(resource_time)),
    );
    m.insert(
        "addresses".into(),
        c.addresses.clone().unwrap_or_else(|| json!({})),
    );
    m.insert("status".into(), json!(c.status.as_str()));
    m.insert("status_reason".into(), json!(c.status_reason));
    m.insert("annotations".into(), json!(c.annotations));
    m.insert("memory".into(), json!(c.memory));
    m.insert("cpu".into(), json!(c.cpu));
    m.insert("containers".into(), Value::Array(of(false)));
    m.insert("init_containers".into(), Value::Array(of(true)));
    if show_host {
        m.insert("host".into(), json!(c.host));
    }
    if legacy {
        m.insert("meta_name".into(), json!(c.name));
        m.insert("meta_labels".into(), json!(c.labels));
        m.insert(
            "restart_policy".into(),
            json!(c.restart_policy.as_ref().map(|p| p.name.clone())),
        );
        m.insert("volumes_info".into(), json!({}));
        m.insert("containers_uuids".into(), json!([]));
        m.insert("init_containers_uuids".into(), json!([]));
        m.insert("capsule_version".into(), json!(""));
    } else {
        m.insert("name".into(), json!(c.name));
        m.insert("labels".into(), json!(c.labels));
        m.insert("restart_policy".into(), json!(c.restart_policy));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn resource_time_drops_zero_microseconds() {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid time");
        assert_eq!(resource_time(&t), "2026-01-02 03:04:05");
        let t = t + chrono::Duration::microseconds(42);
        assert_eq!(resource_time(&t), "2026-01-02 03:04:05.000042");
        assert_eq!(action_time(&t), "2026-01-02T03:04:05.000042");
    }
}
