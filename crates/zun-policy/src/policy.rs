//! The rule set (defaults plus overrides) and enforcement.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::check::{Check, ParseError, Rule, Subject};
use crate::defaults::{DEFAULT_RULES, names};
use crate::py;

/// How many nested evaluations (check-tree levels plus `rule:` hops) one
/// enforcement may take before it is abandoned and denied.
pub const MAX_EVAL_DEPTH: usize = 256;

/// What oslo.context's `to_policy_values()` (plus Zun's `is_admin`) tells
/// the policy engine about the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Keystone user id (`X-User-Id`).
    pub user_id: String,
    /// Keystone project id (`X-Project-Id`).
    pub project_id: String,
    /// Role names (`X-Roles`).
    pub roles: Vec<String>,
    /// Zun sets this from the `context_is_admin` rule; see [`Policy::is_admin`].
    pub is_admin: bool,
    /// keystonemiddleware's `X-Is-Admin-Project` (oslo.context defaults to true).
    pub is_admin_project: bool,
    /// Domain id of a domain-scoped token.
    pub domain_id: Option<String>,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            user_id: String::new(),
            project_id: String::new(),
            roles: Vec::new(),
            is_admin: false,
            is_admin_project: true,
            domain_id: None,
        }
    }
}

impl Credentials {
    /// The credentials as the JSON object generic checks look paths up in:
    /// `{"user_id", "project_id", "roles", "is_admin", "is_admin_project",
    /// "domain_id"}` (`domain_id` is `null` when absent).
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("user_id".into(), Value::String(self.user_id.clone()));
        map.insert("project_id".into(), Value::String(self.project_id.clone()));
        map.insert(
            "roles".into(),
            Value::Array(self.roles.iter().cloned().map(Value::String).collect()),
        );
        map.insert("is_admin".into(), Value::Bool(self.is_admin));
        map.insert(
            "is_admin_project".into(),
            Value::Bool(self.is_admin_project),
        );
        map.insert(
            "domain_id".into(),
            self.domain_id.clone().map_or(Value::Null, Value::String),
        );
        Value::Object(map)
    }
}

impl From<&Credentials> for Value {
    fn from(creds: &Credentials) -> Self {
        creds.to_value()
    }
}

/// A refused authorization: Zun's `PolicyNotAuthorized` (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Policy doesn't allow {action} to be performed.")]
pub struct Denied {
    /// The policy name that was enforced.
    pub action: String,
}

impl Denied {
    /// HTTP status upstream answers with.
    pub const HTTP_STATUS: u16 = 403;
    /// Upstream's error code suffix (`errors[0].code`).
    pub const CODE: &'static str = "policy-not-authorized";
}

/// Why an evaluation was abandoned (always a denial).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// No rule with that name (oslo: `default_rule` is unset in Zun, so the
    /// lookup fails closed).
    #[error("no policy rule named {0:?}")]
    UnknownPolicy(String),
    /// A `rule:` chain came back to a rule it was already evaluating.
    #[error("policy rule {0:?} refers back to itself through rule: checks")]
    Cycle(String),
    /// Evaluation nested deeper than [`MAX_EVAL_DEPTH`].
    #[error("policy evaluation nested deeper than {MAX_EVAL_DEPTH} levels")]
    TooDeep,
    /// A credential path went through something that is not a mapping
    /// (Python raises `TypeError` here).
    #[error("credential path {0:?} goes through a value that is not a mapping")]
    NotAMapping(String),
}

/// A problem with the loaded rule set worth logging (oslo.policy logs these
/// as warnings; enforcement carries on, failing closed where affected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// A check string with a parse problem.
    Parse {
        /// Policy name.
        policy: String,
        /// The problem.
        error: ParseError,
    },
    /// A value in the overrides file that is not a check string.
    InvalidValue {
        /// Policy name.
        policy: String,
        /// The problem.
        reason: String,
    },
    /// `rule:<name>` refers to a rule that does not exist (evaluates false).
    UndefinedRule {
        /// Policy name.
        policy: String,
        /// The missing rule.
        missing: String,
    },
    /// The policy is part of, or leads into, a cycle of `rule:` references
    /// (evaluating it through the cycle denies).
    Cycle {
        /// Policy name.
        policy: String,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse { policy, error } => {
                let effect = if error.denies_whole_rule() {
                    "the policy denies everyone"
                } else {
                    "that check never passes"
                };
                write!(f, "policy {policy:?}: {error}; {effect}")
            }
            Self::InvalidValue { policy, reason } => {
                write!(f, "policy {policy:?}: {reason}")
            }
            Self::UndefinedRule { policy, missing } => write!(
                f,
                "policy {policy:?} references undefined rule {missing:?}, which never passes"
            ),
            Self::Cycle { policy } => {
                write!(f, "policy {policy:?} is part of a cyclical rule: reference")
            }
        }
    }
}

/// Failure to read or parse a policy overrides file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is neither YAML nor JSON.
    #[error("cannot parse policy file{}: {message}", path_suffix(.path.as_deref()))]
    Syntax {
        /// The file, when loading from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// The document is not a mapping of policy names to check strings.
    #[error("policy file{} must be a mapping of policy names to check strings", path_suffix(.path.as_deref()))]
    NotAMapping {
        /// The file, when loading from one.
        path: Option<PathBuf>,
    },
}

fn path_suffix(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |p| format!(" {}", p.display()))
}

impl LoadError {
    fn with_path(self, path: &Path) -> Self {
        match self {
            Self::Syntax { message, .. } => Self::Syntax {
                path: Some(path.to_owned()),
                message,
            },
            Self::NotAMapping { .. } => Self::NotAMapping {
                path: Some(path.to_owned()),
            },
            io => io,
        }
    }
}

/// A complete rule set: Zun's defaults, with any overrides applied.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Rule>,
    overridden: BTreeSet<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::from_defaults()
    }
}

impl Policy {
    /// Zun's registered defaults ([`DEFAULT_RULES`]).
    pub fn from_defaults() -> Self {
        let rules = DEFAULT_RULES
            .iter()
            .map(|d| (d.name.to_owned(), Rule::parse(d.check_str)))
            .collect();
        let mut policy = Self {
            rules,
            overridden: BTreeSet::new(),
            diagnostics: Vec::new(),
        };
        policy.analyse(Vec::new());
        policy
    }

    /// Defaults overridden by the rules in `path` (YAML or JSON mapping of
    /// name to check string). The file must exist.
    pub fn with_overrides_file(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_overrides_str(&text).map_err(|e| e.with_path(path))
    }

    /// oslo.policy's loading: `None` or a missing file mean the defaults
    /// alone; an existing file overrides them. Unreadable or unparseable
    /// files are errors.
    pub fn load(path: Option<&Path>) -> Result<Self, LoadError> {
        match path {
            None => Ok(Self::from_defaults()),
            Some(p) => match Self::with_overrides_file(p) {
                Err(LoadError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(Self::from_defaults())
                }
                other => other,
            },
        }
    }

    /// Defaults overridden by a policy document's text (YAML, or JSON).
    ///
    /// Values are check strings, or lists in oslo.policy's legacy
    /// list-of-lists syntax. Any other value makes that policy deny, with a
    /// [`Diagnostic`] — including YAML null (`name:` or an unquoted `!`),
    /// which oslo.policy would treat as "always".
    pub fn from_overrides_str(text: &str) -> Result<Self, LoadError> {
        let entries = parse_document(text)?;
        let mut policy = Self::from_defaults();
        let mut diagnostics = Vec::new();
        for (name, value) in entries {
            let rule = match value_to_rule(&value) {
                Ok(rule) => rule,
                Err(reason) => {
                    diagnostics.push(Diagnostic::InvalidValue {
                        policy: name.clone(),
                        reason,
                    });
                    Rule::invalid(
                        serde_norway::to_string(&value)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                        Vec::new(),
                    )
                }
            };
            policy.overridden.insert(name.clone());
            policy.rules.insert(name, rule);
        }
        policy.analyse(diagnostics);
        Ok(policy)
    }

    /// These rules (name → check string) on top of the current set, e.g. for
    /// tests or programmatic configuration.
    pub fn with_rules<I, K, V>(mut self, rules: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        let extra = std::mem::take(&mut self.diagnostics)
            .into_iter()
            .filter(|d| matches!(d, Diagnostic::InvalidValue { .. }))
            .collect();
        for (name, text) in rules {
            let name = name.into();
            self.overridden.insert(name.clone());
            self.rules.insert(name, Rule::parse(text.as_ref()));
        }
        self.analyse(extra);
        self
    }

    /// Recomputes diagnostics: parse errors, undefined references, cycles.
    fn analyse(&mut self, mut diagnostics: Vec<Diagnostic>) {
        let mut names: Vec<&String> = self.rules.keys().collect();
        names.sort();
        for name in &names {
            let rule = &self.rules[*name];
            diagnostics.extend(rule.errors().iter().map(|e| Diagnostic::Parse {
                policy: (*name).clone(),
                error: e.clone(),
            }));
            let mut seen = HashSet::new();
            for missing in rule.check().referenced_rules() {
                if !self.rules.contains_key(missing) && seen.insert(missing) {
                    diagnostics.push(Diagnostic::UndefinedRule {
                        policy: (*name).clone(),
                        missing: missing.to_owned(),
                    });
                }
            }
        }
        diagnostics.extend(
            self.cyclic_rules()
                .into_iter()
                .map(|policy| Diagnostic::Cycle { policy }),
        );
        self.diagnostics = diagnostics;
    }

    /// Rules that are on, or lead into, a `rule:` cycle (sorted). Iterative
    /// (Kahn's algorithm on the reference graph), so long chains are fine.
    fn cyclic_rules(&self) -> Vec<String> {
        let mut outgoing: HashMap<&str, usize> = HashMap::new();
        let mut incoming: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, rule) in &self.rules {
            let refs: HashSet<&str> = rule
                .check()
                .referenced_rules()
                .into_iter()
                .filter(|r| self.rules.contains_key(*r))
                .collect();
            outgoing.insert(name, refs.len());
            for r in refs {
                incoming.entry(r).or_default().push(name);
            }
        }
        let mut queue: VecDeque<&str> = outgoing
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| *k)
            .collect();
        while let Some(done) = queue.pop_front() {
            for user in incoming.get(done).into_iter().flatten() {
                if let Some(n) = outgoing.get_mut(user) {
                    *n -= 1;
                    if *n == 0 {
                        queue.push_back(user);
                    }
                }
            }
        }
        let mut cyclic: Vec<String> = outgoing
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, _)| k.to_owned())
            .collect();
        cyclic.sort();
        cyclic
    }

    /// The rule named `name`, if any.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    /// Whether a rule named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.rules.contains_key(name)
    }

    /// All rule names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `name` was set by an override (file or [`Policy::with_rules`]).
    pub fn is_overridden(&self, name: &str) -> bool {
        self.overridden.contains(name)
    }

    /// Problems worth logging, computed when the rule set was built.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Evaluates policy `name`. `target` should be a JSON object (the
    /// resource, or `{project_id, user_id}` of the caller for collection
    /// checks); anything else is treated as an empty object.
    pub fn evaluate(
        &self,
        name: &str,
        target: &Value,
        creds: &Credentials,
    ) -> Result<bool, EvalError> {
        self.evaluate_json(name, target, &creds.to_value())
    }

    /// [`Policy::evaluate`] with raw JSON credentials, for generic checks on
    /// values [`Credentials`] does not carry (dotted paths walk objects; a
    /// list on the way matches if any element does, as in oslo.policy).
    pub fn evaluate_json(
        &self,
        name: &str,
        target: &Value,
        creds: &Value,
    ) -> Result<bool, EvalError> {
        let rule = self
            .rules
            .get(name)
            .ok_or_else(|| EvalError::UnknownPolicy(name.to_owned()))?;
        let empty = Map::new();
        let mut ev = Evaluator {
            rules: &self.rules,
            target: target.as_object().unwrap_or(&empty),
            creds,
            active: vec![name],
            depth: 0,
        };
        ev.eval(rule.check())
    }

    /// Evaluates an ad-hoc check tree against this rule set.
    pub fn evaluate_check(
        &self,
        check: &Check,
        target: &Value,
        creds: &Value,
    ) -> Result<bool, EvalError> {
        let empty = Map::new();
        let mut ev = Evaluator {
            rules: &self.rules,
            target: target.as_object().unwrap_or(&empty),
            creds,
            active: Vec::new(),
            depth: 0,
        };
        ev.eval(check)
    }

    /// Whether policy `name` allows the action. Unknown policies, cycles and
    /// any evaluation error deny.
    pub fn enforce(&self, name: &str, target: &Value, creds: &Credentials) -> bool {
        self.evaluate(name, target, creds).unwrap_or(false)
    }

    /// [`Policy::enforce`] with raw JSON credentials.
    pub fn enforce_json(&self, name: &str, target: &Value, creds: &Value) -> bool {
        self.evaluate_json(name, target, creds).unwrap_or(false)
    }

    /// [`Policy::enforce`] as a `Result`, with upstream's refusal message.
    pub fn authorize(&self, name: &str, target: &Value, creds: &Credentials) -> Result<(), Denied> {
        if self.enforce(name, target, creds) {
            Ok(())
        } else {
            Err(Denied {
                action: name.to_owned(),
            })
        }
    }

    /// Upstream's `check_is_admin`: `context_is_admin` against an empty
    /// target (use it to fill [`Credentials::is_admin`]).
    pub fn is_admin(&self, creds: &Credentials) -> bool {
        self.enforce(names::CONTEXT_IS_ADMIN, &Value::Object(Map::new()), creds)
    }

    /// `creds` with `is_admin` set from [`Policy::is_admin`].
    pub fn resolve_is_admin(&self, mut creds: Credentials) -> Credentials {
        creds.is_admin = self.is_admin(&creds);
        creds
    }
}

/// Parses a policy document into (name, value) pairs in document order.
fn parse_document(text: &str) -> Result<Vec<(String, serde_norway::Value)>, LoadError> {
    let syntax = |message: String| LoadError::Syntax {
        path: None,
        message,
    };
    // JSON is (almost) YAML, but JSON allows tabs YAML may not; try JSON
    // first when the text looks like a JSON object.
    let json = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(text).ok()
    } else {
        None
    };
    if let Some(Value::Object(map)) = json {
        return Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = serde_norway::to_value(&v).unwrap_or(serde_norway::Value::Null);
                (k, v)
            })
            .collect());
    }
    let doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
    match doc {
        serde_norway::Value::Null => Ok(Vec::new()),
        serde_norway::Value::Mapping(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                let name = match k {
                    serde_norway::Value::String(s) => s,
                    serde_norway::Value::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                    serde_norway::Value::Number(n) => n.to_string(),
                    serde_norway::Value::Null => "None".to_owned(),
                    _ => return Err(LoadError::NotAMapping { path: None }),
                };
                out.push((name, v));
            }
            Ok(out)
        }
        _ => Err(LoadError::NotAMapping { path: None }),
    }
}

/// oslo.policy's `parse_rule` on a loaded value.
fn value_to_rule(value: &serde_norway::Value) -> Result<Rule, String> {
    use serde_norway::Value as Y;
    match value {
        Y::String(s) => Ok(Rule::parse(s)),
        // PyYAML also reads `! role:admin` (non-specific tag) as a string.
        Y::Tagged(t) if t.tag == "!" && matches!(t.value, Y::String(_)) => value_to_rule(&t.value),
        // oslo.policy's `parse_rule(None)` is "always" — and an unquoted
        // `!` is a YAML tag on an empty value, i.e. null, so upstream turns a
        // "never" someone forgot to quote into "everybody". Fail closed.
        Y::Null => Err(
            "empty value (null) is not a check string; oslo.policy would allow \
             everyone, this port denies everyone: write \"\" for always, \"!\" for never"
                .to_owned(),
        ),
        Y::Tagged(t) if t.tag == "!" && matches!(t.value, Y::Null) => Err(
            "unquoted `!` is a YAML tag, not the never-rule (oslo.policy would allow \
             everyone); the policy denies everyone: quote it as \"!\""
                .to_owned(),
        ),
        Y::Sequence(outer) => {
            let mut alternatives = Vec::with_capacity(outer.len());
            for inner in outer {
                match inner {
                    Y::String(s) => alternatives.push(vec![s.clone()]),
                    Y::Sequence(atoms) => {
                        let mut ands = Vec::with_capacity(atoms.len());
                        for atom in atoms {
                            match atom {
                                Y::String(s) => ands.push(s.clone()),
                                _ => {
                                    return Err("legacy list rule contains a non-string".to_owned());
                                }
                            }
                        }
                        alternatives.push(ands);
                    }
                    _ => return Err("legacy list rule contains a non-string".to_owned()),
                }
            }
            let text = serde_json::to_string(&alternatives).unwrap_or_default();
            Ok(Rule::from_list(text, &alternatives))
        }
        Y::Bool(_) | Y::Number(_) => Err(format!(
            "value {} is not a check string; the policy denies everyone",
            serde_norway::to_string(value).unwrap_or_default().trim()
        )),
        Y::Mapping(_) | Y::Tagged(_) => {
            Err("value is not a check string; the policy denies everyone".to_owned())
        }
    }
}

struct Evaluator<'a> {
    rules: &'a HashMap<String, Rule>,
    target: &'a Map<String, Value>,
    creds: &'a Value,
    /// Named rules currently being evaluated (cycle detection).
    active: Vec<&'a str>,
    depth: usize,
}

impl<'a> Evaluator<'a> {
    fn eval(&mut self, check: &'a Check) -> Result<bool, EvalError> {
        self.depth += 1;
        if self.depth > MAX_EVAL_DEPTH {
            return Err(EvalError::TooDeep);
        }
        let result = self.eval_inner(check);
        self.depth -= 1;
        result
    }

    fn eval_inner(&mut self, check: &'a Check) -> Result<bool, EvalError> {
        Ok(match check {
            Check::Always => true,
            Check::Never => false,
            Check::Not(inner) => !self.eval(inner)?,
            Check::And(checks) => {
                for c in checks {
                    if !self.eval(c)? {
                        return Ok(false);
                    }
                }
                true
            }
            Check::Or(checks) => {
                for c in checks {
                    if self.eval(c)? {
                        return Ok(true);
                    }
                }
                false
            }
            Check::Rule(name) => {
                let Some(rule) = self.rules.get(name) else {
                    return Ok(false);
                };
                if self.active.contains(&name.as_str()) {
                    return Err(EvalError::Cycle(name.clone()));
                }
                self.active.push(name);
                let result = self.eval(rule.check());
                self.active.pop();
                result?
            }
            Check::Role(m) => {
                let Some(wanted) = m.render(self.target) else {
                    return Ok(false);
                };
                let wanted = wanted.to_lowercase();
                match self.creds.get("roles") {
                    Some(Value::Array(roles)) => roles
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|r| r.to_lowercase() == wanted),
                    _ => false,
                }
            }
            Check::Generic {
                kind,
                subject,
                matches,
            } => {
                let Some(wanted) = matches.render(self.target) else {
                    return Ok(false);
                };
                match subject {
                    Subject::Literal(s) => *s == wanted,
                    Subject::Path(path) => find_in(self.creds, path, &wanted)
                        .map_err(|()| EvalError::NotAMapping(kind.clone()))?,
                }
            }
        })
    }
}

/// oslo.policy's `GenericCheck._find_in_dict`: walk `path`; a list on the
/// way matches if any element matches the rest of the path; a missing key
/// is no match; indexing into a non-mapping is an error (`TypeError`).
fn find_in(value: &Value, path: &[String], wanted: &str) -> Result<bool, ()> {
    let Some((key, rest)) = path.split_first() else {
        return Ok(py::py_str(value) == wanted);
    };
    let Value::Object(map) = value else {
        return Err(());
    };
    match map.get(key) {
        None => Ok(false),
        Some(Value::Array(items)) => {
            for item in items {
                if find_in(item, rest, wanted)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some(next) => find_in(next, rest, wanted),
    }
}
