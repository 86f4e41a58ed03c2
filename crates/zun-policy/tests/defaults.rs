//! Every default rule upstream ships, evaluated for an admin, a member of the
//! owning project and a member of another project.

use serde_json::{Value, json};
use zun_policy::{Credentials, DEFAULT_RULES, Denied, Policy, names};

/// Who a default admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `is_admin:True or project_id:%(project_id)s`: admins and the owner.
    Owner,
    /// `rule:context_is_admin`: admins (as defined by `context_is_admin`).
    Admin,
    /// `role:admin` written directly: the admin role, whatever
    /// `context_is_admin` says.
    RoleAdmin,
    /// `!` / `rule:deny_everybody`.
    Nobody,
}
use Expect::*;

/// Upstream `zun/common/policies/*.py` (HEAD 023280e4), written out by hand
/// independently of `DEFAULT_RULES`, in upstream's order.
const EXPECTED: &[(&str, Expect)] = &[
    ("context_is_admin", RoleAdmin),
    ("admin_or_owner", Owner),
    ("admin_api", Admin),
    ("deny_everybody", Nobody),
    ("container:create", Owner),
    ("container:create:runtime", Admin),
    ("container:create:privileged", Nobody),
    ("container:create:requested_destination", Admin),
    ("container:create:image_pull_policy", Admin),
    ("container:delete", Owner),
    ("container:delete_all_projects", Admin),
    ("container:delete_force", Admin),
    ("container:get_one", Owner),
    ("container:get_one:host", Admin),
    ("container:get_one:image_pull_policy", Admin),
    ("container:get_one:privileged", Admin),
    ("container:get_one:runtime", Admin),
    ("container:get_one_all_projects", Admin),
    ("container:get_all", Owner),
    ("container:get_all_all_projects", Admin),
    ("container:update", Owner),
    ("container:start", Owner),
    ("container:stop", Owner),
    ("container:reboot", Owner),
    ("container:pause", Owner),
    ("container:unpause", Owner),
    ("container:logs", Owner),
    ("container:execute", Owner),
    ("container:execute_resize", Owner),
    ("container:kill", Owner),
    ("container:rename", Owner),
    ("container:attach", Owner),
    ("container:resize", Owner),
    ("container:top", Owner),
    ("container:get_archive", Owner),
    ("container:put_archive", Owner),
    ("container:stats", Owner),
    ("container:commit", Owner),
    ("container:add_security_group", Owner),
    ("container:network_detach", Owner),
    ("container:network_attach", Owner),
    ("container:remove_security_group", Owner),
    ("container:rebuild", Owner),
    ("container:resize_container", Owner),
    ("image:pull", Admin),
    ("image:get_all", Admin),
    ("image:get_one", Admin),
    ("image:search", Owner),
    ("image:delete", Admin),
    ("zun-service:delete", Admin),
    ("zun-service:disable", Admin),
    ("zun-service:enable", Admin),
    ("zun-service:force_down", Admin),
    ("zun-service:get_all", Admin),
    ("host:get_all", Admin),
    ("host:get", Admin),
    ("capsule:create", Owner),
    ("capsule:delete", Owner),
    ("capsule:delete_all_projects", Admin),
    ("capsule:get", Owner),
    ("capsule:get:host", Admin),
    ("capsule:get_one_all_projects", Admin),
    ("capsule:get_all", Owner),
    ("capsule:get_all_all_projects", Admin),
    ("network:attach_external_network", RoleAdmin),
    ("network:create", RoleAdmin),
    ("network:delete", RoleAdmin),
    ("container:actions", Owner),
    ("container:action:events", Admin),
    ("availability_zones:get_all", Owner),
    ("quota:update", Admin),
    ("quota:delete", Admin),
    ("quota:get", Owner),
    ("quota:get_default", Owner),
    ("quota_class:update", Admin),
    ("quota_class:get", Admin),
    ("registry:create", Owner),
    ("registry:delete", Owner),
    ("registry:get_one", Owner),
    ("registry:get_all", Owner),
    ("registry:get_all_all_projects", Admin),
    ("registry:update", Owner),
];

const OWNER_PROJECT: &str = "p-owner";

fn target() -> Value {
    json!({"project_id": OWNER_PROJECT, "user_id": "u-owner"})
}

fn creds(user: &str, project: &str, roles: &[&str]) -> Credentials {
    Credentials {
        user_id: user.into(),
        project_id: project.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..Credentials::default()
    }
}

/// (label, credentials with `is_admin` resolved like upstream's context does).
fn personas(policy: &Policy) -> [(&'static str, Credentials); 3] {
    [
        (
            "admin",
            policy.resolve_is_admin(creds("u-admin", "p-admin", &["admin", "member"])),
        ),
        (
            "owner member",
            policy.resolve_is_admin(creds("u-owner", OWNER_PROJECT, &["member", "reader"])),
        ),
        (
            "other-project member",
            policy.resolve_is_admin(creds("u-other", "p-other", &["member"])),
        ),
    ]
}

fn allowed(expect: Expect) -> [bool; 3] {
    match expect {
        Owner => [true, true, false],
        Admin | RoleAdmin => [true, false, false],
        Nobody => [false, false, false],
    }
}

#[test]
fn default_table_matches_upstream_names_and_count() {
    assert_eq!(DEFAULT_RULES.len(), 82);
    assert_eq!(EXPECTED.len(), DEFAULT_RULES.len());
    for (d, (name, _)) in DEFAULT_RULES.iter().zip(EXPECTED) {
        assert_eq!(d.name, *name, "order/name mismatch");
    }
    let policy = Policy::from_defaults();
    assert_eq!(policy.len(), 82);
    assert!(
        policy.diagnostics().is_empty(),
        "{:?}",
        policy.diagnostics()
    );
    for d in DEFAULT_RULES {
        let rule = policy.rule(d.name).expect("present");
        assert!(rule.is_valid(), "{}: {:?}", d.name, rule.errors());
        assert!(!policy.is_overridden(d.name));
    }
}

#[test]
fn every_default_for_admin_owner_and_other_project() {
    let policy = Policy::from_defaults();
    let people = personas(&policy);
    assert!(people[0].1.is_admin, "admin role makes is_admin");
    assert!(!people[1].1.is_admin);
    assert!(!people[2].1.is_admin);
    let target = target();
    let mut failures = Vec::new();
    for (name, expect) in EXPECTED {
        for ((label, who), want) in people.iter().zip(allowed(*expect)) {
            let got = policy.enforce(name, &target, who);
            if got != want {
                failures.push(format!("{name} for {label}: got {got}, want {want}"));
            }
            assert_eq!(policy.authorize(name, &target, who).is_ok(), got);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn admin_and_role_admin_classes_differ_when_context_is_admin_changes() {
    // Redefine who counts as admin: rule:context_is_admin policies follow,
    // the role:admin network policies (and is_admin:True owner checks via the
    // resolved flag) behave as upstream's strings say.
    let policy = Policy::from_defaults().with_rules([("context_is_admin", "role:cloud_admin")]);
    let target = target();
    let cloud = policy.resolve_is_admin(creds("u", "p-x", &["cloud_admin"]));
    let plain = policy.resolve_is_admin(creds("u", "p-x", &["admin"]));
    assert!(cloud.is_admin && !plain.is_admin);
    for (name, expect) in EXPECTED {
        if *name == names::CONTEXT_IS_ADMIN {
            continue;
        }
        let (want_cloud, want_plain) = match expect {
            Owner | Admin => (true, false),
            RoleAdmin => (false, true),
            Nobody => (false, false),
        };
        assert_eq!(
            policy.enforce(name, &target, &cloud),
            want_cloud,
            "{name} cloud_admin"
        );
        assert_eq!(
            policy.enforce(name, &target, &plain),
            want_plain,
            "{name} admin"
        );
    }
}

#[test]
fn owner_check_needs_resolved_is_admin() {
    let policy = Policy::from_defaults();
    // An admin whose is_admin was never computed is just another project.
    let unresolved = creds("u-admin", "p-admin", &["admin"]);
    assert!(!policy.enforce(names::CONTAINER_DELETE, &target(), &unresolved));
    assert!(policy.is_admin(&unresolved));
    let resolved = policy.resolve_is_admin(unresolved);
    assert!(policy.enforce(names::CONTAINER_DELETE, &target(), &resolved));
}

#[test]
fn collection_target_is_callers_own_project() {
    // Upstream passes {project_id, user_id} of the caller for list checks.
    let policy = Policy::from_defaults();
    let member = creds("u1", "p1", &["member"]);
    let own = json!({"project_id": "p1", "user_id": "u1"});
    assert!(policy.enforce(names::CONTAINER_GET_ALL, &own, &member));
    assert!(!policy.enforce(names::CONTAINER_GET_ALL_ALL_PROJECTS, &own, &member));
    // Quota checks target the project in the path.
    assert!(policy.enforce(names::QUOTA_GET, &json!({"project_id": "p1"}), &member));
    assert!(!policy.enforce(names::QUOTA_GET, &json!({"project_id": "p2"}), &member));
}

#[test]
fn denied_message_matches_upstream() {
    let policy = Policy::from_defaults();
    let other = creds("u", "p-other", &["member"]);
    let err = policy
        .authorize(names::CONTAINER_DELETE, &target(), &other)
        .expect_err("denied");
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow container:delete to be performed."
    );
    assert_eq!(
        err,
        Denied {
            action: "container:delete".into()
        }
    );
    assert_eq!(Denied::HTTP_STATUS, 403);
    assert_eq!(Denied::CODE, "policy-not-authorized");
}

#[test]
fn unknown_policy_names_deny_everyone() {
    let policy = Policy::from_defaults();
    let admin = policy.resolve_is_admin(creds("u", "p", &["admin"]));
    assert!(!policy.enforce("container:no_such_action", &target(), &admin));
    assert!(matches!(
        policy.evaluate("container:no_such_action", &target(), &admin),
        Err(zun_policy::EvalError::UnknownPolicy(_))
    ));
    // Even a `default` rule in the overrides is not used as a fallback.
    let policy = policy.with_rules([("default", "@")]);
    assert!(!policy.enforce("container:no_such_action", &target(), &admin));
}

#[test]
fn credentials_json_shape() {
    let c = Credentials {
        user_id: "u".into(),
        project_id: "p".into(),
        roles: vec!["admin".into()],
        is_admin: true,
        is_admin_project: true,
        domain_id: None,
    };
    assert_eq!(
        c.to_value(),
        json!({"user_id": "u", "project_id": "p", "roles": ["admin"], "is_admin": true,
               "is_admin_project": true, "domain_id": null})
    );
    assert_eq!(Value::from(&c), c.to_value());
    assert!(Credentials::default().is_admin_project);
}

#[test]
fn shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<zun_policy::PolicyFile>();
    assert_send_sync::<Denied>();
}
