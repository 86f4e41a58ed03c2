//! oslo.policy's rule language and OpenStack Zun's default API policies.
//!
//! * [`Rule::parse`] / [`parse_strict`]: check strings such as
//!   `is_admin:True or project_id:%(project_id)s`, with oslo.policy's
//!   precedence (`not` > `and` > `or`), `@`, `!`, `rule:`, `role:`
//!   (case-insensitive) and generic `kind:match` checks.
//! * [`DEFAULT_RULES`] / [`names`]: every policy Zun registers.
//! * [`Policy`]: defaults plus `policy.yaml` overrides; [`Policy::enforce`],
//!   [`Policy::authorize`] (upstream's "Policy doesn't allow … to be
//!   performed."), [`Policy::is_admin`].
//! * [`PolicyFile`]: the overrides file, reloaded when it changes.
//!
//! Everything fails closed: malformed rules, unknown policies, `rule:`
//! references to missing rules, reference cycles and evaluation errors deny.
//! Problems are reported through [`Rule::errors`] and
//! [`Policy::diagnostics`] rather than logged; this crate does no IO besides
//! reading the policy file.
//!
//! Divergences from oslo.policy, all failing closed where Python would raise
//! an exception mid-request: a bad `%`-format or a left-hand side that is not
//! a Python literal or name denies the whole rule; `rule:` cycles and
//! evaluation deeper than [`MAX_EVAL_DEPTH`] deny; parse trees deeper than
//! [`MAX_NESTING`] deny; `http:`/`https:` external checks are unsupported
//! (never pass); oslo's `default_rule` fallback is not applied (an unknown
//! policy name is denied even if the file defines `default`); a YAML null
//! value (`name:` or an unquoted `!`) denies instead of allowing everyone.
//!
//! ```
//! use serde_json::json;
//! use zun_policy::{Credentials, Policy, names};
//!
//! let policy = Policy::from_defaults();
//! let caller = policy.resolve_is_admin(Credentials {
//!     user_id: "u1".into(),
//!     project_id: "p1".into(),
//!     roles: vec!["member".into()],
//!     ..Credentials::default()
//! });
//! let container = json!({"project_id": "p1", "user_id": "u1"});
//! assert!(policy.enforce(names::CONTAINER_DELETE, &container, &caller));
//! let err = policy
//!     .authorize(names::CONTAINER_DELETE_FORCE, &container, &caller)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "Policy doesn't allow container:delete_force to be performed.");
//! ```

mod check;
mod defaults;
mod file;
mod policy;
mod py;

pub use check::{Check, MAX_NESTING, Match, ParseError, Rule, Subject, parse_strict};
pub use defaults::{
    DEFAULT_RULES, DefaultRule, ROLE_ADMIN, RULE_ADMIN_API, RULE_ADMIN_OR_OWNER,
    RULE_DENY_EVERYBODY, names,
};
pub use file::{PolicyFile, Refresh};
pub use policy::{Credentials, Denied, Diagnostic, EvalError, LoadError, MAX_EVAL_DEPTH, Policy};
