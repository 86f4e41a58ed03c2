//! policy.yaml overrides and reloading.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use zun_policy::{Credentials, Diagnostic, LoadError, Policy, PolicyFile, Refresh};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zun-policy-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` and stamps an mtime `tick` seconds after a fixed base, so
/// every write is visible to the mtime cache whatever the clock granularity.
fn write(path: &Path, text: &str, tick: u64) {
    std::fs::write(path, text).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + tick))
        .expect("set mtime");
}

fn owner() -> Credentials {
    Credentials {
        user_id: "u1".into(),
        project_id: "p1".into(),
        roles: vec!["member".into()],
        ..Credentials::default()
    }
}

fn admin(policy: &Policy) -> Credentials {
    policy.resolve_is_admin(Credentials {
        user_id: "u0".into(),
        project_id: "p0".into(),
        roles: vec!["admin".into()],
        ..Credentials::default()
    })
}

fn target() -> Value {
    json!({"project_id": "p1", "user_id": "u1"})
}

#[test]
fn yaml_override_then_removal_restores_default() {
    let dir = Scratch::new();
    let path = dir.path("policy.yaml");
    write(
        &path,
        "# operator overrides\n\"container:delete\": \"role:admin\"\n",
        1,
    );
    let file = PolicyFile::new(Some(path.clone())).expect("loads");
    let p = file.current();
    assert!(p.is_overridden("container:delete"));
    assert!(!p.enforce("container:delete", &target(), &owner()));
    assert!(p.enforce("container:delete", &target(), &admin(&p)));
    // Other policies keep their defaults.
    assert!(p.enforce("container:stop", &target(), &owner()));

    // Unchanged file: same Arc, no reload.
    assert!(matches!(file.refresh(), Refresh::Unchanged(_)));
    assert!(std::sync::Arc::ptr_eq(&p, &file.current()));

    // Remove the override (the file now overrides something else).
    write(&path, "container:stop: role:admin\n", 2);
    assert!(matches!(file.refresh(), Refresh::Reloaded(_)));
    let p = file.current();
    assert!(!p.is_overridden("container:delete"));
    assert!(p.enforce("container:delete", &target(), &owner()));
    assert!(!p.enforce("container:stop", &target(), &owner()));

    // Deleting the file means the defaults.
    std::fs::remove_file(&path).expect("rm");
    assert!(matches!(file.refresh(), Refresh::Reloaded(_)));
    let p = file.current();
    assert!(p.enforce("container:stop", &target(), &owner()));
    assert!(matches!(file.refresh(), Refresh::Unchanged(_)));

    // And it comes back when the file does.
    write(&path, "{\"container:delete\": \"role:admin\"}", 3);
    assert!(
        !file
            .current()
            .enforce("container:delete", &target(), &owner())
    );
}

#[test]
fn broken_file_keeps_previous_policy_until_fixed() {
    let dir = Scratch::new();
    let path = dir.path("policy.yaml");
    write(&path, "\"container:delete\": \"role:admin\"\n", 1);
    let file = PolicyFile::new(Some(path.clone())).expect("loads");

    write(&path, "container:delete: [unclosed\n", 2);
    match file.refresh() {
        Refresh::Failed { error, policy } => {
            assert!(matches!(*error, LoadError::Syntax { .. }), "{error}");
            assert!(error.to_string().contains("policy.yaml"), "{error}");
            assert!(!policy.enforce("container:delete", &target(), &owner()));
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert!(file.last_error().is_some());
    // Not retried (nor reported again) until the file changes.
    assert!(matches!(file.refresh(), Refresh::Unchanged(_)));
    assert!(
        !file
            .current()
            .enforce("container:delete", &target(), &owner())
    );

    write(&path, "\"container:delete\": \"\"\n", 3);
    assert!(matches!(file.refresh(), Refresh::Reloaded(_)));
    assert!(file.last_error().is_none());
    let stranger = Credentials {
        project_id: "elsewhere".into(),
        ..owner()
    };
    assert!(
        file.current()
            .enforce("container:delete", &target(), &stranger)
    );
}

#[test]
fn startup_errors_and_missing_files() {
    let dir = Scratch::new();
    let missing = dir.path("absent.yaml");
    assert!(matches!(
        Policy::with_overrides_file(&missing),
        Err(LoadError::Io { .. })
    ));
    let p = Policy::load(Some(&missing)).expect("missing file = defaults");
    assert_eq!(p.len(), 82);
    assert_eq!(Policy::load(None).expect("defaults").len(), 82);
    let file = PolicyFile::new(Some(missing)).expect("defaults");
    assert!(
        file.current()
            .enforce("container:delete", &target(), &owner())
    );
    assert_eq!(PolicyFile::defaults().current().len(), 82);

    let bad = dir.path("bad.yaml");
    write(&bad, "- just\n- a list\n", 1);
    assert!(matches!(
        PolicyFile::new(Some(bad.clone())),
        Err(LoadError::NotAMapping { .. })
    ));
    write(&bad, "key: [", 2);
    assert!(matches!(
        Policy::with_overrides_file(&bad),
        Err(LoadError::Syntax { .. })
    ));
    // An empty file overrides nothing.
    write(&bad, "", 3);
    let p = Policy::with_overrides_file(&bad).expect("empty");
    assert_eq!(p.len(), 82);
    assert!(p.diagnostics().is_empty());
}

#[test]
fn document_formats_and_odd_values() {
    // JSON (tabs allowed), as in the old policy.json.
    let p =
        Policy::from_overrides_str("{\n\t\"container:delete\":\t\"role:admin\"\n}").expect("json");
    assert!(!p.enforce("container:delete", &target(), &owner()));

    let p = Policy::from_overrides_str(
        r#"
"container:create": "!"
"container:start": ! role:member
"container:stop":
"container:kill": !
"container:pause": true
"container:unpause": [["role:member", "project_id:%(project_id)s"], ["role:admin"]]
"container:logs": []
"container:top": "(role:admin"
"custom_rule": "role:auditor"
"container:stats": "rule:custom_rule"
"#,
    )
    .expect("yaml");
    let o = owner();
    let t = target();
    assert!(!p.enforce("container:create", &t, &o));
    // PyYAML reads `! text` as the string "text".
    assert!(p.enforce("container:start", &t, &o));
    // Null and an unquoted `!` (a YAML tag on null): oslo.policy would allow
    // everyone; this port denies and says why.
    assert!(!p.enforce("container:stop", &t, &o));
    assert!(!p.enforce("container:kill", &t, &o));
    assert!(!p.enforce("container:pause", &t, &o));
    for name in ["container:stop", "container:kill", "container:pause"] {
        assert!(
            p.diagnostics()
                .iter()
                .any(|d| matches!(d, Diagnostic::InvalidValue { policy, .. } if policy == name)),
            "{name}"
        );
    }
    // Legacy list-of-lists: (member and owner) or admin.
    assert!(p.enforce("container:unpause", &t, &o));
    let other = Credentials {
        project_id: "p9".into(),
        ..owner()
    };
    assert!(!p.enforce("container:unpause", &t, &other));
    // An empty list is "always" in oslo.policy's list syntax.
    assert!(p.enforce("container:logs", &t, &other));
    // Malformed string: denied and reported.
    assert!(!p.enforce("container:top", &t, &admin(&p)));
    assert!(
        p.diagnostics()
            .iter()
            .any(|d| matches!(d, Diagnostic::Parse { policy, .. } if policy == "container:top"))
    );
    // Custom helper rules can be referenced.
    let auditor = Credentials {
        roles: vec!["Auditor".into()],
        ..other
    };
    assert!(p.enforce("container:stats", &t, &auditor));
    assert!(!p.enforce("container:stats", &t, &o));
}

#[test]
fn forced_reload_sees_same_stamp_edits() {
    let dir = Scratch::new();
    let path = dir.path("policy.yaml");
    write(&path, "\"container:delete\": \"role:aaaaa\"\n", 1);
    let file = PolicyFile::new(Some(path.clone())).expect("loads");
    // Same size, same mtime: invisible to the cache...
    write(&path, "\"container:delete\": \"role:bbbbb\"\n", 1);
    assert_eq!(
        file.current()
            .rule("container:delete")
            .expect("rule")
            .text(),
        "role:aaaaa"
    );
    // ...until a forced reload.
    assert!(matches!(file.reload(), Refresh::Reloaded(_)));
    assert_eq!(
        file.current()
            .rule("container:delete")
            .expect("rule")
            .text(),
        "role:bbbbb"
    );
}
