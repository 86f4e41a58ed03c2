//! The check-string language, evaluated through a `Policy`.

use serde_json::{Value, json};
use zun_policy::{
    Check, Credentials, Diagnostic, EvalError, ParseError, Policy, Rule, parse_strict,
};

fn policy_with(rules: &[(&str, &str)]) -> Policy {
    Policy::from_defaults().with_rules(rules.iter().copied())
}

fn roles(list: &[&str]) -> Value {
    json!({"roles": list, "project_id": "p1", "user_id": "u1", "is_admin": false})
}

/// Evaluates `text` for every combination of roles a, b, c and compares with
/// `model(a, b, c)`.
fn truth_table(text: &str, model: impl Fn(bool, bool, bool) -> bool) {
    let policy = policy_with(&[("t", text)]);
    assert!(policy.rule("t").expect("rule").is_valid(), "{text}");
    for bits in 0..8u8 {
        let (a, b, c) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
        let mut held = Vec::new();
        for (on, name) in [(a, "a"), (b, "b"), (c, "c")] {
            if on {
                held.push(name);
            }
        }
        let got = policy.enforce_json("t", &json!({}), &roles(&held));
        assert_eq!(got, model(a, b, c), "{text} with roles {held:?}");
    }
}

#[test]
// The models spell out the grammar on purpose, not the minimal formula.
#[allow(clippy::nonminimal_bool)]
fn operator_precedence() {
    truth_table("role:a or role:b and role:c", |a, b, c| a || (b && c));
    truth_table("role:a and role:b or role:c", |a, b, c| (a && b) || c);
    truth_table("role:c or role:a and role:b", |a, b, c| c || (a && b));
    truth_table("not role:a and role:b", |a, b, _| !a && b);
    truth_table("not role:a or role:b", |a, b, _| !a || b);
    truth_table("role:a and not role:b or role:c", |a, b, c| (a && !b) || c);
    truth_table("role:a or not role:b and role:c", |a, b, c| a || (!b && c));
    truth_table("not (role:a or role:b) and role:c", |a, b, c| {
        !(a || b) && c
    });
    truth_table("not not role:a", |a, _, _| a);
    truth_table("(role:a or role:b) and role:c", |a, b, c| (a || b) && c);
    truth_table("role:a and (role:b or role:c)", |a, b, c| a && (b || c));
    truth_table("((role:a) or ((role:b and (role:c))))", |a, b, c| {
        a || (b && c)
    });
    truth_table("(((role:a or role:b)) and not ((role:c)))", |a, b, c| {
        (a || b) && !c
    });
    truth_table("role:a or role:b and role:c and not role:a", |a, b, c| {
        a || (b && c && !a)
    });
    truth_table("role:a AND role:b OR role:c", |a, b, c| (a && b) || c);
    truth_table("NOT role:a", |a, _, _| !a);
}

#[test]
fn always_never_and_empty() {
    let p = policy_with(&[
        ("at", "@"),
        ("bang", "!"),
        ("empty", ""),
        ("not_bang", "not !"),
    ]);
    let nobody = json!({});
    assert!(p.enforce_json("at", &json!({}), &nobody));
    assert!(!p.enforce_json("bang", &json!({}), &nobody));
    assert!(p.enforce_json("empty", &json!({}), &nobody));
    assert!(p.enforce_json("not_bang", &json!({}), &nobody));
    assert_eq!(parse_strict(""), Ok(Check::Always));
    assert_eq!(parse_strict("@"), Ok(Check::Always));
    assert_eq!(parse_strict("!"), Ok(Check::Never));
}

#[test]
fn rule_chains_and_unknown_references() {
    let p = policy_with(&[
        ("a", "rule:b"),
        ("b", "rule:c or role:b"),
        ("c", "role:c"),
        ("to_missing", "rule:nope"),
        ("not_missing", "not rule:nope"),
    ]);
    assert!(p.enforce_json("a", &json!({}), &roles(&["c"])));
    assert!(p.enforce_json("a", &json!({}), &roles(&["b"])));
    assert!(!p.enforce_json("a", &json!({}), &roles(&["a"])));
    assert!(!p.enforce_json("to_missing", &json!({}), &roles(&["admin"])));
    // oslo.policy: an unknown rule is a failed check, so its negation passes.
    assert!(p.enforce_json("not_missing", &json!({}), &roles(&[])));
    assert!(p.diagnostics().iter().any(|d| matches!(
        d,
        Diagnostic::UndefinedRule { policy, missing } if policy == "to_missing" && missing == "nope"
    )));
}

#[test]
fn cycles_deny_without_overflowing() {
    let p = policy_with(&[
        ("a", "rule:b"),
        ("b", "rule:a"),
        ("self", "rule:self"),
        ("neg", "not rule:neg"),
        ("or_at", "rule:or_at or @"),
        ("into_cycle", "rule:a"),
        ("fine", "role:x or rule:a"),
    ]);
    let anyone = roles(&["admin", "x"]);
    for name in ["a", "b", "self", "neg", "or_at", "into_cycle"] {
        assert!(!p.enforce_json(name, &json!({}), &anyone), "{name}");
        assert!(
            matches!(
                p.evaluate_json(name, &json!({}), &anyone),
                Err(EvalError::Cycle(_))
            ),
            "{name}"
        );
    }
    // Short-circuit evaluation never reaches the cycle.
    assert!(p.enforce_json("fine", &json!({}), &anyone));
    let cyclic: Vec<&str> = p
        .diagnostics()
        .iter()
        .filter_map(|d| match d {
            Diagnostic::Cycle { policy } => Some(policy.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cyclic,
        ["a", "b", "fine", "into_cycle", "neg", "or_at", "self"]
    );
}

#[test]
fn long_rule_chains_are_bounded() {
    let n = 20_000;
    let mut rules: Vec<(String, String)> = (0..n)
        .map(|i| (format!("r{i}"), format!("rule:r{}", i + 1)))
        .collect();
    rules.push((format!("r{n}"), "@".into()));
    let p = Policy::from_defaults().with_rules(rules);
    assert!(matches!(
        p.evaluate_json("r0", &json!({}), &json!({})),
        Err(EvalError::TooDeep)
    ));
    assert!(!p.enforce_json("r0", &json!({}), &json!({})));
    // A short chain near the end is fine.
    assert!(p.enforce_json(&format!("r{}", n - 10), &json!({}), &json!({})));
    assert!(
        !p.diagnostics()
            .iter()
            .any(|d| matches!(d, Diagnostic::Cycle { .. }))
    );
}

#[test]
fn substitution_from_target() {
    let p = policy_with(&[
        ("owner", "project_id:%(project_id)s"),
        ("user", "user_id:%(user_id)s"),
        ("not_owner", "not project_id:%(project_id)s"),
        ("role_from_target", "role:%(role)s"),
        ("flat_dotted", "project_id:%(target.project.id)s"),
        ("mixed", "project_id:p-%(suffix)s"),
    ]);
    let c = json!({"project_id": "p1", "user_id": "u1", "roles": ["Admin"]});
    assert!(p.enforce_json("owner", &json!({"project_id": "p1"}), &c));
    assert!(!p.enforce_json("owner", &json!({"project_id": "p2"}), &c));
    assert!(p.enforce_json("user", &json!({"user_id": "u1"}), &c));
    assert!(p.enforce_json("role_from_target", &json!({"role": "admin"}), &c));
    assert!(p.enforce_json(
        "mixed",
        &json!({"suffix": "1"}),
        &json!({"project_id": "p-1"})
    ));
    // Missing attributes: a failed check, not a panic (so `not` passes, as
    // in oslo.policy).
    for target in [
        json!({}),
        json!({"user_id": "u1"}),
        json!(null),
        json!("x"),
        json!([1]),
    ] {
        assert!(!p.enforce_json("owner", &target, &c), "{target}");
        assert!(!p.enforce_json("role_from_target", &target, &c), "{target}");
        assert!(p.enforce_json("not_owner", &target, &c), "{target}");
    }
    // Keys are looked up verbatim: oslo targets are flat.
    assert!(p.enforce_json("flat_dotted", &json!({"target.project.id": "p1"}), &c));
    assert!(!p.enforce_json(
        "flat_dotted",
        &json!({"target": {"project": {"id": "p1"}}}),
        &c
    ));
    // Non-string target values are compared as Python's str() of them.
    let p2 = policy_with(&[("n", "count:%(n)s"), ("b", "flag:%(b)s")]);
    assert!(p2.enforce_json("n", &json!({"n": 5}), &json!({"count": 5})));
    assert!(p2.enforce_json("b", &json!({"b": true}), &json!({"flag": true})));
    assert!(!p2.enforce_json("b", &json!({"b": "true"}), &json!({"flag": true})));
}

#[test]
fn literals_on_either_side() {
    let p = policy_with(&[
        ("admin_flag", "is_admin:True"),
        ("admin_flag_lower", "is_admin:true"),
        ("not_admin_flag", "is_admin:False"),
        ("quoted_kind", "'Member':%(role.name)s"),
        ("double_quoted_kind", "\"Member\":%(role.name)s"),
        ("true_kind", "True:%(user.enabled)s"),
        ("int_kind", "5:%(n)s"),
        ("quoted_match", "project_id:'p1'"),
    ]);
    let admin = Credentials {
        is_admin: true,
        ..Credentials::default()
    };
    let member = Credentials::default();
    let t = json!({});
    assert!(p.enforce("admin_flag", &t, &admin));
    assert!(!p.enforce("admin_flag", &t, &member));
    // Python compares str(True) == "true": case matters for generic checks.
    assert!(!p.enforce("admin_flag_lower", &t, &admin));
    assert!(p.enforce("not_admin_flag", &t, &member));
    assert!(!p.enforce("not_admin_flag", &t, &admin));
    assert!(p.enforce("quoted_kind", &json!({"role.name": "Member"}), &member));
    assert!(!p.enforce("quoted_kind", &json!({"role.name": "member"}), &member));
    assert!(p.enforce(
        "double_quoted_kind",
        &json!({"role.name": "Member"}),
        &member
    ));
    assert!(p.enforce("true_kind", &json!({"user.enabled": true}), &member));
    assert!(!p.enforce("true_kind", &json!({"user.enabled": false}), &member));
    assert!(p.enforce("int_kind", &json!({"n": 5}), &member));
    assert!(!p.enforce("int_kind", &json!({"n": 5.0}), &member));
    // The right-hand side is never unquoted: it is compared verbatim.
    let c = json!({"project_id": "p1"});
    assert!(!p.enforce_json("quoted_match", &t, &c));
    assert!(p.enforce_json("quoted_match", &t, &json!({"project_id": "'p1'"})));
}

#[test]
fn role_checks_ignore_case() {
    let p = policy_with(&[("upper", "role:ADMIN"), ("lower", "role:admin")]);
    for held in [["admin"], ["Admin"], ["ADMIN"]] {
        let c = roles(&held);
        assert!(p.enforce_json("upper", &json!({}), &c), "{held:?}");
        assert!(p.enforce_json("lower", &json!({}), &c), "{held:?}");
    }
    assert!(!p.enforce_json("lower", &json!({}), &roles(&["administrator"])));
    assert!(!p.enforce_json("lower", &json!({}), &json!({})));
    // The operator keywords are case-insensitive too; the check kind is not.
    let p = policy_with(&[("kind", "Role:admin")]);
    assert!(!p.enforce_json("kind", &json!({}), &roles(&["admin"])));
}

#[test]
fn dotted_credential_paths() {
    let p = policy_with(&[
        ("tok", "token.project.id:%(project_id)s"),
        ("groups", "groups.id:g2"),
        ("not_tok", "not token.project.id:x"),
        ("domain", "domain_id:None"),
    ]);
    let c = json!({
        "token": {"project": {"id": "p1"}},
        "groups": [{"id": "g1"}, {"id": "g2"}],
        "domain_id": null,
    });
    assert!(p.enforce_json("tok", &json!({"project_id": "p1"}), &c));
    assert!(!p.enforce_json("tok", &json!({"project_id": "p2"}), &c));
    assert!(p.enforce_json("groups", &json!({}), &c));
    assert!(!p.enforce_json("groups", &json!({}), &json!({"groups": [{"id": "g1"}]})));
    assert!(p.enforce_json("domain", &json!({}), &c));
    let creds = Credentials::default();
    assert!(p.enforce("domain", &json!({}), &creds));
    // Walking through a non-mapping is Python's TypeError: denied outright,
    // even under `not`.
    let bad = json!({"token": "opaque"});
    assert!(!p.enforce_json("not_tok", &json!({}), &bad));
    assert!(matches!(
        p.evaluate_json("not_tok", &json!({}), &bad),
        Err(EvalError::NotAMapping(_))
    ));
    // A missing key is an ordinary failed check.
    assert!(p.enforce_json("not_tok", &json!({}), &json!({})));
}

#[test]
fn malformed_rules_deny_and_are_reported() {
    let cases = [
        "(role:admin",
        "role:admin or",
        "and",
        "foo",
        "role:",
        "role:admin)",
        "or role:admin",
        "not",
        "   ",
        "'role:admin'",
        "role:admin role:admin",
    ];
    let rules: Vec<(String, &str)> = cases
        .iter()
        .enumerate()
        .map(|(i, text)| (format!("bad{i}"), *text))
        .collect();
    let p = Policy::from_defaults().with_rules(rules);
    let admin = p.resolve_is_admin(Credentials {
        roles: vec!["admin".into()],
        ..Credentials::default()
    });
    assert!(admin.is_admin);
    for (i, text) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        assert!(!p.enforce(&name, &json!({}), &admin), "{text:?} must deny");
        assert!(
            p.diagnostics()
                .iter()
                .any(|d| matches!(d, Diagnostic::Parse { policy, .. } if *policy == name)),
            "{text:?} must be reported"
        );
        let rule = Rule::parse(text);
        assert!(!rule.errors().is_empty(), "{text:?}");
        assert!(parse_strict(text).is_err(), "{text:?}");
    }
    // The reported error names the rule; Display is loggable.
    let rule = Rule::parse("(role:admin");
    assert_eq!(
        rule.errors(),
        [ParseError::Syntax {
            rule: "(role:admin".into()
        }]
    );
    let diag = p
        .diagnostics()
        .iter()
        .find(|d| matches!(d, Diagnostic::Parse { policy, .. } if policy == "bad0"))
        .expect("reported");
    assert_eq!(
        diag.to_string(),
        "policy \"bad0\": could not parse rule \"(role:admin\"; the policy denies everyone"
    );
}

#[test]
fn local_atom_failures_keep_oslo_semantics() {
    // oslo.policy turns an atom it cannot understand into `!` but keeps the
    // rest of the expression.
    let p = policy_with(&[("t", "foo or role:admin"), ("n", "not foo")]);
    assert!(p.enforce_json("t", &json!({}), &roles(&["admin"])));
    assert!(!p.enforce_json("t", &json!({}), &roles(&["member"])));
    assert!(p.enforce_json("n", &json!({}), &roles(&[])));
    assert_eq!(
        p.rule("t").expect("rule").check().to_string(),
        "(! or role:admin)"
    );
    assert!(!p.rule("t").expect("rule").is_valid());
}

#[test]
fn python_exceptions_deny_the_whole_rule() {
    for text in [
        "role:admin or project_id:%(project_id)d",
        "role:admin or !kind:x",
        "not http://policy.example/check",
        "role:admin or 50%:x",
    ] {
        let p = policy_with(&[("t", text)]);
        assert!(
            !p.enforce_json("t", &json!({}), &roles(&["admin"])),
            "{text}"
        );
        assert_eq!(p.rule("t").expect("rule").check(), &Check::Never, "{text}");
    }
}

#[test]
fn overrides_replace_defaults_and_add_rules() {
    let p =
        Policy::from_defaults().with_rules([("container:delete", "role:admin"), ("extra", "@")]);
    assert!(p.is_overridden("container:delete"));
    assert!(p.is_overridden("extra"));
    assert!(!p.is_overridden("container:create"));
    assert_eq!(p.len(), 83);
    assert_eq!(
        p.rule("container:delete").expect("rule").text(),
        "role:admin"
    );
}
