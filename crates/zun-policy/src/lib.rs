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
//! policy name is denied even if the file defines `default`).

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
pub use policy::{
    Credentials, Denied, Diagnostic, EvalError, LoadError, MAX_EVAL_DEPTH, Policy,
};
