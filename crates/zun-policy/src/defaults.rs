//! Zun's registered default policies (`zun/common/policies/*.py`, upstream
//! HEAD 023280e4, 2025-06-28): 82 rules, names and check strings verbatim.
//!
//! Upstream writes the owner check inline (`is_admin:True or
//! project_id:%(project_id)s`) rather than `rule:admin_or_owner`; admin-only
//! policies are `rule:context_is_admin`; the network policies use
//! `role:admin` directly (so they ignore an `is_admin` computed from an
//! overridden `context_is_admin`).

/// `role:admin` (`base.ROLE_ADMIN`).
pub const ROLE_ADMIN: &str = "role:admin";
/// `is_admin:True or project_id:%(project_id)s` (`base.RULE_ADMIN_OR_OWNER`).
pub const RULE_ADMIN_OR_OWNER: &str = "is_admin:True or project_id:%(project_id)s";
/// `rule:context_is_admin` (`base.RULE_ADMIN_API`).
pub const RULE_ADMIN_API: &str = "rule:context_is_admin";
/// `rule:deny_everybody` (`base.RULE_DENY_EVERYBODY`).
pub const RULE_DENY_EVERYBODY: &str = "rule:deny_everybody";

/// One registered default: a policy name and its check string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRule {
    /// Policy name, e.g. `container:create`.
    pub name: &'static str,
    /// oslo.policy check string.
    pub check_str: &'static str,
}

impl DefaultRule {
    const fn new(name: &'static str, check_str: &'static str) -> Self {
        Self { name, check_str }
    }
}

/// Policy names, one constant per upstream default (same order as upstream's `list_rules()`).
pub mod names {
    /// `context_is_admin`
    pub const CONTEXT_IS_ADMIN: &str = "context_is_admin";
    /// `admin_or_owner`
    pub const ADMIN_OR_OWNER: &str = "admin_or_owner";
    /// `admin_api`
    pub const ADMIN_API: &str = "admin_api";
    /// `deny_everybody`
    pub const DENY_EVERYBODY: &str = "deny_everybody";
    /// `container:create`
    pub const CONTAINER_CREATE: &str = "container:create";
    /// `container:create:runtime`
    pub const CONTAINER_CREATE_RUNTIME: &str = "container:create:runtime";
    /// `container:create:privileged`
    pub const CONTAINER_CREATE_PRIVILEGED: &str = "container:create:privileged";
    /// `container:create:requested_destination`
    pub const CONTAINER_CREATE_REQUESTED_DESTINATION: &str =
        "container:create:requested_destination";
    /// `container:create:image_pull_policy`
    pub const CONTAINER_CREATE_IMAGE_PULL_POLICY: &str = "container:create:image_pull_policy";
    /// `container:delete`
    pub const CONTAINER_DELETE: &str = "container:delete";
    /// `container:delete_all_projects`
    pub const CONTAINER_DELETE_ALL_PROJECTS: &str = "container:delete_all_projects";
    /// `container:delete_force`
    pub const CONTAINER_DELETE_FORCE: &str = "container:delete_force";
    /// `container:get_one`
    pub const CONTAINER_GET_ONE: &str = "container:get_one";
    /// `container:get_one:host`
    pub const CONTAINER_GET_ONE_HOST: &str = "container:get_one:host";
    /// `container:get_one:image_pull_policy`
    pub const CONTAINER_GET_ONE_IMAGE_PULL_POLICY: &str = "container:get_one:image_pull_policy";
    /// `container:get_one:privileged`
    pub const CONTAINER_GET_ONE_PRIVILEGED: &str = "container:get_one:privileged";
    /// `container:get_one:runtime`
    pub const CONTAINER_GET_ONE_RUNTIME: &str = "container:get_one:runtime";
    /// `container:get_one_all_projects`
    pub const CONTAINER_GET_ONE_ALL_PROJECTS: &str = "container:get_one_all_projects";
    /// `container:get_all`
    pub const CONTAINER_GET_ALL: &str = "container:get_all";
    /// `container:get_all_all_projects`
    pub const CONTAINER_GET_ALL_ALL_PROJECTS: &str = "container:get_all_all_projects";
    /// `container:update`
    pub const CONTAINER_UPDATE: &str = "container:update";
    /// `container:start`
    pub const CONTAINER_START: &str = "container:start";
    /// `container:stop`
    pub const CONTAINER_STOP: &str = "container:stop";
    /// `container:reboot`
    pub const CONTAINER_REBOOT: &str = "container:reboot";
    /// `container:pause`
    pub const CONTAINER_PAUSE: &str = "container:pause";
    /// `container:unpause`
    pub const CONTAINER_UNPAUSE: &str = "container:unpause";
    /// `container:logs`
    pub const CONTAINER_LOGS: &str = "container:logs";
    /// `container:execute`
    pub const CONTAINER_EXECUTE: &str = "container:execute";
    /// `container:execute_resize`
    pub const CONTAINER_EXECUTE_RESIZE: &str = "container:execute_resize";
    /// `container:kill`
    pub const CONTAINER_KILL: &str = "container:kill";
    /// `container:rename`
    pub const CONTAINER_RENAME: &str = "container:rename";
    /// `container:attach`
    pub const CONTAINER_ATTACH: &str = "container:attach";
    /// `container:resize`
    pub const CONTAINER_RESIZE: &str = "container:resize";
    /// `container:top`
    pub const CONTAINER_TOP: &str = "container:top";
    /// `container:get_archive`
    pub const CONTAINER_GET_ARCHIVE: &str = "container:get_archive";
    /// `container:put_archive`
    pub const CONTAINER_PUT_ARCHIVE: &str = "container:put_archive";
    /// `container:stats`
    pub const CONTAINER_STATS: &str = "container:stats";
    /// `container:commit`
    pub const CONTAINER_COMMIT: &str = "container:commit";
    /// `container:add_security_group`
    pub const CONTAINER_ADD_SECURITY_GROUP: &str = "container:add_security_group";
    /// `container:network_detach`
    pub const CONTAINER_NETWORK_DETACH: &str = "container:network_detach";
    /// `container:network_attach`
    pub const CONTAINER_NETWORK_ATTACH: &str = "container:network_attach";
    /// `container:remove_security_group`
    pub const CONTAINER_REMOVE_SECURITY_GROUP: &str = "container:remove_security_group";
    /// `container:rebuild`
    pub const CONTAINER_REBUILD: &str = "container:rebuild";
    /// `container:resize_container`
    pub const CONTAINER_RESIZE_CONTAINER: &str = "container:resize_container";
    /// `image:pull`
    pub const IMAGE_PULL: &str = "image:pull";
    /// `image:get_all`
    pub const IMAGE_GET_ALL: &str = "image:get_all";
    /// `image:get_one`
    pub const IMAGE_GET_ONE: &str = "image:get_one";
    /// `image:search`
    pub const IMAGE_SEARCH: &str = "image:search";
    /// `image:delete`
    pub const IMAGE_DELETE: &str = "image:delete";
    /// `zun-service:delete`
    pub const ZUN_SERVICE_DELETE: &str = "zun-service:delete";
    /// `zun-service:disable`
    pub const ZUN_SERVICE_DISABLE: &str = "zun-service:disable";
    /// `zun-service:enable`
    pub const ZUN_SERVICE_ENABLE: &str = "zun-service:enable";
    /// `zun-service:force_down`
    pub const ZUN_SERVICE_FORCE_DOWN: &str = "zun-service:force_down";
    /// `zun-service:get_all`
    pub const ZUN_SERVICE_GET_ALL: &str = "zun-service:get_all";
    /// `host:get_all`
    pub const HOST_GET_ALL: &str = "host:get_all";
    /// `host:get`
    pub const HOST_GET: &str = "host:get";
    /// `capsule:create`
    pub const CAPSULE_CREATE: &str = "capsule:create";
    /// `capsule:delete`
    pub const CAPSULE_DELETE: &str = "capsule:delete";
    /// `capsule:delete_all_projects`
    pub const CAPSULE_DELETE_ALL_PROJECTS: &str = "capsule:delete_all_projects";
    /// `capsule:get`
    pub const CAPSULE_GET: &str = "capsule:get";
    /// `capsule:get:host`
    pub const CAPSULE_GET_HOST: &str = "capsule:get:host";
    /// `capsule:get_one_all_projects`
    pub const CAPSULE_GET_ONE_ALL_PROJECTS: &str = "capsule:get_one_all_projects";
    /// `capsule:get_all`
    pub const CAPSULE_GET_ALL: &str = "capsule:get_all";
    /// `capsule:get_all_all_projects`
    pub const CAPSULE_GET_ALL_ALL_PROJECTS: &str = "capsule:get_all_all_projects";
    /// `network:attach_external_network`
    pub const NETWORK_ATTACH_EXTERNAL_NETWORK: &str = "network:attach_external_network";
    /// `network:create`
    pub const NETWORK_CREATE: &str = "network:create";
    /// `network:delete`
    pub const NETWORK_DELETE: &str = "network:delete";
    /// `container:actions`
    pub const CONTAINER_ACTIONS: &str = "container:actions";
    /// `container:action:events`
    pub const CONTAINER_ACTION_EVENTS: &str = "container:action:events";
    /// `availability_zones:get_all`
    pub const AVAILABILITY_ZONES_GET_ALL: &str = "availability_zones:get_all";
    /// `quota:update`
    pub const QUOTA_UPDATE: &str = "quota:update";
    /// `quota:delete`
    pub const QUOTA_DELETE: &str = "quota:delete";
    /// `quota:get`
    pub const QUOTA_GET: &str = "quota:get";
    /// `quota:get_default`
    pub const QUOTA_GET_DEFAULT: &str = "quota:get_default";
    /// `quota_class:update`
    pub const QUOTA_CLASS_UPDATE: &str = "quota_class:update";
    /// `quota_class:get`
    pub const QUOTA_CLASS_GET: &str = "quota_class:get";
    /// `registry:create`
    pub const REGISTRY_CREATE: &str = "registry:create";
    /// `registry:delete`
    pub const REGISTRY_DELETE: &str = "registry:delete";
    /// `registry:get_one`
    pub const REGISTRY_GET_ONE: &str = "registry:get_one";
    /// `registry:get_all`
    pub const REGISTRY_GET_ALL: &str = "registry:get_all";
    /// `registry:get_all_all_projects`
    pub const REGISTRY_GET_ALL_ALL_PROJECTS: &str = "registry:get_all_all_projects";
    /// `registry:update`
    pub const REGISTRY_UPDATE: &str = "registry:update";
}

/// Every default rule Zun registers, in upstream's `list_rules()` order.
pub const DEFAULT_RULES: &[DefaultRule] = &[
    DefaultRule::new(names::CONTEXT_IS_ADMIN, ROLE_ADMIN),
    DefaultRule::new(names::ADMIN_OR_OWNER, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::ADMIN_API, RULE_ADMIN_API),
    DefaultRule::new(names::DENY_EVERYBODY, "!"),
    DefaultRule::new(names::CONTAINER_CREATE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_CREATE_RUNTIME, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_CREATE_PRIVILEGED, RULE_DENY_EVERYBODY),
    DefaultRule::new(
        names::CONTAINER_CREATE_REQUESTED_DESTINATION,
        RULE_ADMIN_API,
    ),
    DefaultRule::new(names::CONTAINER_CREATE_IMAGE_PULL_POLICY, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_DELETE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_DELETE_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_DELETE_FORCE, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ONE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_GET_ONE_HOST, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ONE_IMAGE_PULL_POLICY, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ONE_PRIVILEGED, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ONE_RUNTIME, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ONE_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_GET_ALL, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_GET_ALL_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::CONTAINER_UPDATE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_START, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_STOP, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_REBOOT, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_PAUSE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_UNPAUSE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_LOGS, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_EXECUTE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_EXECUTE_RESIZE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_KILL, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_RENAME, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_ATTACH, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_RESIZE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_TOP, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_GET_ARCHIVE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_PUT_ARCHIVE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_STATS, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_COMMIT, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_ADD_SECURITY_GROUP, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_NETWORK_DETACH, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_NETWORK_ATTACH, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_REMOVE_SECURITY_GROUP, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_REBUILD, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_RESIZE_CONTAINER, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::IMAGE_PULL, RULE_ADMIN_API),
    DefaultRule::new(names::IMAGE_GET_ALL, RULE_ADMIN_API),
    DefaultRule::new(names::IMAGE_GET_ONE, RULE_ADMIN_API),
    DefaultRule::new(names::IMAGE_SEARCH, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::IMAGE_DELETE, RULE_ADMIN_API),
    DefaultRule::new(names::ZUN_SERVICE_DELETE, RULE_ADMIN_API),
    DefaultRule::new(names::ZUN_SERVICE_DISABLE, RULE_ADMIN_API),
    DefaultRule::new(names::ZUN_SERVICE_ENABLE, RULE_ADMIN_API),
    DefaultRule::new(names::ZUN_SERVICE_FORCE_DOWN, RULE_ADMIN_API),
    DefaultRule::new(names::ZUN_SERVICE_GET_ALL, RULE_ADMIN_API),
    DefaultRule::new(names::HOST_GET_ALL, RULE_ADMIN_API),
    DefaultRule::new(names::HOST_GET, RULE_ADMIN_API),
    DefaultRule::new(names::CAPSULE_CREATE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CAPSULE_DELETE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CAPSULE_DELETE_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::CAPSULE_GET, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CAPSULE_GET_HOST, RULE_ADMIN_API),
    DefaultRule::new(names::CAPSULE_GET_ONE_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::CAPSULE_GET_ALL, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CAPSULE_GET_ALL_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::NETWORK_ATTACH_EXTERNAL_NETWORK, ROLE_ADMIN),
    DefaultRule::new(names::NETWORK_CREATE, ROLE_ADMIN),
    DefaultRule::new(names::NETWORK_DELETE, ROLE_ADMIN),
    DefaultRule::new(names::CONTAINER_ACTIONS, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::CONTAINER_ACTION_EVENTS, RULE_ADMIN_API),
    DefaultRule::new(names::AVAILABILITY_ZONES_GET_ALL, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::QUOTA_UPDATE, RULE_ADMIN_API),
    DefaultRule::new(names::QUOTA_DELETE, RULE_ADMIN_API),
    DefaultRule::new(names::QUOTA_GET, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::QUOTA_GET_DEFAULT, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::QUOTA_CLASS_UPDATE, RULE_ADMIN_API),
    DefaultRule::new(names::QUOTA_CLASS_GET, RULE_ADMIN_API),
    DefaultRule::new(names::REGISTRY_CREATE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::REGISTRY_DELETE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::REGISTRY_GET_ONE, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::REGISTRY_GET_ALL, RULE_ADMIN_OR_OWNER),
    DefaultRule::new(names::REGISTRY_GET_ALL_ALL_PROJECTS, RULE_ADMIN_API),
    DefaultRule::new(names::REGISTRY_UPDATE, RULE_ADMIN_OR_OWNER),
];
