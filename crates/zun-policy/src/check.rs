//! oslo.policy's check-string language: tokenizer, the greedy shift-reduce
//! parser of `oslo_policy/_parser.py`, and the check tree of
//! `oslo_policy/_checks.py`.
//!
//! Parsing follows oslo.policy's "fail closed" rules:
//!
//! * the empty string is `@` (always);
//! * a string that does not reduce to a single expression (unbalanced
//!   parentheses, dangling operators, only whitespace, a bare quoted string)
//!   becomes `!` as a whole;
//! * an atom without a `:` (e.g. `foo`) becomes `!` in place, the rest of
//!   the expression still counts (so `foo or role:admin` admits admins, as
//!   upstream does); so do `role:` and `rule:` with nothing after the colon
//!   (upstream: a check that cannot pass).
//!
//! Unlike oslo.policy, which only logs, every such problem is also returned
//! as a [`ParseError`] so the caller can report it. A few inputs that Python
//! would only reject with an exception at enforcement time (a broken
//! `%`-format, a left-hand side that is not valid Python) make the whole rule
//! `!` here, and so do external `http:`/`https:` checks (unsupported) and
//! expressions nested deeper than [`MAX_NESTING`].

use std::fmt;

use serde_json::{Map, Value};

use crate::py::{self, KindEval, Template};

/// Deepest expression tree (parentheses, `not`, `and`/`or` levels) accepted
/// by the parser. Deeper rules are rejected (denied) so that neither
/// evaluation nor dropping a tree can exhaust the stack.
pub const MAX_NESTING: usize = 32;

/// Why (part of) a check string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The tokens do not reduce to one expression (oslo: "Could not parse
    /// rule"). The whole rule is denied.
    #[error("could not parse rule {rule:?}")]
    Syntax {
        /// The complete check string.
        rule: String,
    },
    /// An atom with no `kind:match` form, e.g. `foo` (oslo: "Failed to
    /// understand rule"). That atom is `!`.
    #[error(
        "failed to understand check {atom:?} in rule {rule:?}: expected kind:match, '@' or '!'"
    )]
    NotACheck {
        /// The complete check string.
        rule: String,
        /// The offending atom.
        atom: String,
    },
    /// `role:` or `rule:` with nothing after the colon. That atom is `!`.
    #[error("empty {kind:?} check {atom:?} in rule {rule:?}")]
    EmptyMatch {
        /// The complete check string.
        rule: String,
        /// The offending atom.
        atom: String,
        /// `role` or `rule`.
        kind: String,
    },
    /// `http:`/`https:` checks call out to a remote server; not supported.
    /// The whole rule is denied (so `not http:...` cannot grant anything).
    #[error("unsupported external check {atom:?} in rule {rule:?}")]
    External {
        /// The complete check string.
        rule: String,
        /// The offending atom.
        atom: String,
    },
    /// An atom Python would raise on when evaluating (bad `%`-format, a
    /// left-hand side that is a broken literal, an empty kind). The whole
    /// rule is denied.
    #[error("invalid check {atom:?} in rule {rule:?}: {reason}")]
    InvalidCheck {
        /// The complete check string.
        rule: String,
        /// The offending atom.
        atom: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Expression nesting deeper than [`MAX_NESTING`]. The whole rule is denied.
    #[error("rule {rule:?} nests deeper than {max} levels")]
    TooDeep {
        /// The complete check string.
        rule: String,
        /// The limit.
        max: usize,
    },
}

impl ParseError {
    /// Whether this error makes the whole rule `!` (otherwise only the
    /// offending atom is `!`, as in oslo.policy).
    pub fn denies_whole_rule(&self) -> bool {
        matches!(
            self,
            Self::Syntax { .. }
                | Self::InvalidCheck { .. }
                | Self::External { .. }
                | Self::TooDeep { .. }
        )
    }
}

/// Left-hand side of a generic `kind:match` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A Python literal (`True`, `'Member'`, `42`); holds `str(value)`.
    Literal(String),
    /// A dotted path into the credentials (`project_id`, `token.project.id`).
    Path(Vec<String>),
}

/// A `%`-substitution match string (the right-hand side of a check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    text: String,
    template: Template,
}

impl Match {
    fn compile(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_owned(),
            template: Template::compile(text)?,
        })
    }

    /// The match string as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Python's `match % target`; `None` when a substituted key is missing.
    pub(crate) fn render(&self, target: &Map<String, Value>) -> Option<String> {
        self.template.render(target)
    }
}

/// A parsed check tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `@`, or the empty rule: always passes.
    Always,
    /// `!`: never passes.
    Never,
    /// `not <check>`.
    Not(Box<Check>),
    /// `<check> and <check> ...`: all must pass (evaluated left to right).
    And(Vec<Check>),
    /// `<check> or <check> ...`: one must pass (evaluated left to right).
    Or(Vec<Check>),
    /// `rule:<name>`: evaluate another named rule; unknown names fail.
    Rule(String),
    /// `role:<match>`: the credentials' `roles` contain `match % target`,
    /// compared case-insensitively.
    Role(Match),
    /// `<kind>:<match>`: `str(kind literal or credential at kind path) ==
    /// match % target`.
    Generic {
        /// The left-hand side as written.
        kind: String,
        /// How the left-hand side is evaluated.
        subject: Subject,
        /// The right-hand side.
        matches: Match,
    },
}

impl fmt::Display for Check {
    /// oslo.policy's `str()` of a check tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("@"),
            Self::Never => f.write_str("!"),
            Self::Not(c) => write!(f, "not {c}"),
            Self::And(cs) | Self::Or(cs) => {
                let op = if matches!(self, Self::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
            Self::Rule(name) => write!(f, "rule:{name}"),
            Self::Role(m) => write!(f, "role:{}", m.as_str()),
            Self::Generic { kind, matches, .. } => write!(f, "{kind}:{}", matches.as_str()),
        }
    }
}

impl Check {
    /// Names referenced through `rule:` anywhere in this tree.
    pub fn referenced_rules(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(c) = stack.pop() {
            match c {
                Self::Rule(name) => out.push(name.as_str()),
                Self::Not(inner) => stack.push(inner),
                Self::And(cs) | Self::Or(cs) => stack.extend(cs.iter().rev()),
                _ => {}
            }
        }
        out
    }
}

/// A check string parsed the way oslo.policy would, plus every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    check: Check,
    errors: Vec<ParseError>,
}

impl Rule {
    /// Parses `text`; never fails (see the module docs for how errors deny).
    pub fn parse(text: &str) -> Self {
        let (check, errors) = parse_text(text);
        Self {
            text: text.to_owned(),
            check,
            errors,
        }
    }

    /// A rule that denies everything, for a value that is not a check string
    /// at all; `text` is kept for display.
    pub(crate) fn invalid(text: String, errors: Vec<ParseError>) -> Self {
        Self {
            text,
            check: Check::Never,
            errors,
        }
    }

    /// oslo.policy's legacy list syntax (`[["a", "b"], ["c"]]` = `(a and b)
    /// or c`); every inner string is a single atom.
    pub(crate) fn from_list(text: String, alternatives: &[Vec<String>]) -> Self {
        if alternatives.is_empty() {
            return Self {
                text,
                check: Check::Always,
                errors: Vec::new(),
            };
        }
        let mut errors = Vec::new();
        let mut ors = Vec::new();
        for inner in alternatives {
            if inner.is_empty() {
                continue;
            }
            let mut ands = Vec::new();
            for atom in inner {
                match parse_atom(&text, atom) {
                    Ok((check, err)) => {
                        errors.extend(err);
                        ands.push(check);
                    }
                    Err(err) => {
                        errors.push(err);
                        return Self {
                            text,
                            check: Check::Never,
                            errors,
                        };
                    }
                }
            }
            ors.push(if ands.len() == 1 {
                ands.remove(0)
            } else {
                Check::And(ands)
            });
        }
        let check = match ors.len() {
            0 => Check::Never,
            1 => ors.remove(0),
            _ => Check::Or(ors),
        };
        Self {
            text,
            check,
            errors,
        }
    }

    /// The check string as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The effective check tree (with failed parts replaced by `!`).
    pub fn check(&self) -> &Check {
        &self.check
    }

    /// Problems found while parsing; empty for a well-formed rule.
    pub fn errors(&self) -> &[ParseError] {
        &self.errors
    }

    /// Whether the rule parsed without any problem.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `text` strictly: any problem at all is an error.
pub fn parse_strict(text: &str) -> Result<Check, ParseError> {
    let (check, mut errors) = parse_text(text);
    if errors.is_empty() {
        Ok(check)
    } else {
        Err(errors.remove(0))
    }
}

// ---------------------------------------------------------------------------
// Tokenizer (`_parse_tokenize`)

#[derive(Debug)]
enum RawTok<'a> {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A fully quoted token: never reduces, so the rule fails to parse.
    Str,
    Atom(&'a str),
}

/// Python's `re.split(r'\s+', ...)` separators (`str.isspace()`).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn tokenize(rule: &str) -> Vec<RawTok<'_>> {
    let mut out = Vec::new();
    for tok in rule.split(is_py_space).filter(|t| !t.is_empty()) {
        let clean = tok.trim_start_matches('(');
        out.extend((0..tok.len() - clean.len()).map(|_| RawTok::LParen));
        if clean.is_empty() {
            continue;
        }
        let tok = clean;
        let clean = tok.trim_end_matches(')');
        let trail = tok.len() - clean.len();
        if clean.eq_ignore_ascii_case("and") {
            out.push(RawTok::And);
        } else if clean.eq_ignore_ascii_case("or") {
            out.push(RawTok::Or);
        } else if clean.eq_ignore_ascii_case("not") {
            out.push(RawTok::Not);
        } else if !clean.is_empty() {
            // oslo tests the token *with* its trailing parentheses here.
            let b = tok.as_bytes();
            let quoted =
                b.len() >= 2 && matches!((b[0], b[b.len() - 1]), (b'"', b'"') | (b'\'', b'\''));
            out.push(if quoted {
                RawTok::Str
            } else {
                RawTok::Atom(clean)
            });
        }
        out.extend((0..trail).map(|_| RawTok::RParen));
    }
    out
}

// ---------------------------------------------------------------------------
// Atoms (`_parse_check`)

/// Parses one atom. `Ok((check, Some(err)))`: oslo-style local failure (the
/// atom is `!`); `Err`: the whole rule must be denied.
fn parse_atom(rule: &str, atom: &str) -> Result<(Check, Option<ParseError>), ParseError> {
    match atom {
        "!" => return Ok((Check::Never, None)),
        "@" => return Ok((Check::Always, None)),
        _ => {}
    }
    let local = |err: ParseError| Ok((Check::Never, Some(err)));
    let Some((kind, rest)) = atom.split_once(':') else {
        return local(ParseError::NotACheck {
            rule: rule.to_owned(),
            atom: atom.to_owned(),
        });
    };
    let invalid = |reason: String| ParseError::InvalidCheck {
        rule: rule.to_owned(),
        atom: atom.to_owned(),
        reason,
    };
    match kind {
        "http" | "https" => Err(ParseError::External {
            rule: rule.to_owned(),
            atom: atom.to_owned(),
        }),
        "rule" | "role" if rest.is_empty() => local(ParseError::EmptyMatch {
            rule: rule.to_owned(),
            atom: atom.to_owned(),
            kind: kind.to_owned(),
        }),
        "rule" => Ok((Check::Rule(rest.to_owned()), None)),
        "role" => Ok((Check::Role(Match::compile(rest).map_err(invalid)?), None)),
        _ => {
            let subject = match py::literal_eval(kind).map_err(invalid)? {
                KindEval::Literal(s) => Subject::Literal(s),
                KindEval::NotLiteral => Subject::Path(kind.split('.').map(str::to_owned).collect()),
            };
            let matches = Match::compile(rest).map_err(invalid)?;
            Ok((
                Check::Generic {
                    kind: kind.to_owned(),
                    subject,
                    matches,
                },
                None,
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Shift-reduce parser (`ParseState`)

/// A check under construction, with its tree depth.
#[derive(Debug)]
struct Node {
    depth: usize,
    kind: NodeKind,
}

#[derive(Debug)]
enum NodeKind {
    Leaf(Check),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

impl Node {
    fn leaf(check: Check) -> Self {
        Self {
            depth: 1,
            kind: NodeKind::Leaf(check),
        }
    }

    fn not(inner: Node) -> Self {
        Self {
            depth: inner.depth + 1,
            kind: NodeKind::Not(Box::new(inner)),
        }
    }

    fn and(a: Node, b: Node) -> Self {
        Self {
            depth: a.depth.max(b.depth) + 1,
            kind: NodeKind::And(vec![a, b]),
        }
    }

    fn or(a: Node, b: Node) -> Self {
        Self {
            depth: a.depth.max(b.depth) + 1,
            kind: NodeKind::Or(vec![a, b]),
        }
    }

    /// `add_check` on an And/Or node.
    fn push(&mut self, child: Node) {
        self.depth = self.depth.max(child.depth + 1);
        if let NodeKind::And(v) | NodeKind::Or(v) = &mut self.kind {
            v.push(child);
        }
    }

    /// Recursion is bounded by [`MAX_NESTING`], checked on every construction.
    fn into_check(self) -> Check {
        match self.kind {
            NodeKind::Leaf(c) => c,
            NodeKind::Not(inner) => Check::Not(Box::new(inner.into_check())),
            NodeKind::And(v) => Check::And(v.into_iter().map(Node::into_check).collect()),
            NodeKind::Or(v) => Check::Or(v.into_iter().map(Node::into_check).collect()),
        }
    }
}

#[derive(Debug)]
enum Tok {
    Check(Node),
    AndExpr(Node),
    OrExpr(Node),
    And,
    Or,
    Not,
    LParen,
    RParen,
    Str,
}

impl Tok {
    fn is_expr(&self) -> bool {
        matches!(self, Self::Check(_) | Self::AndExpr(_) | Self::OrExpr(_))
    }
}

/// Marker: a node got deeper than [`MAX_NESTING`].
struct TooDeep;

fn checked(node: Node) -> Result<Node, TooDeep> {
    if node.depth > MAX_NESTING {
        Err(TooDeep)
    } else {
        Ok(node)
    }
}

fn pop3(stack: &mut Vec<Tok>) -> (Tok, Tok, Tok) {
    let c = stack.pop();
    let b = stack.pop();
    let a = stack.pop();
    match (a, b, c) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        // Callers check the length first.
        _ => (Tok::Str, Tok::Str, Tok::Str),
    }
}

/// Greedy reduction after each shift, as in `ParseState.reduce`.
fn reduce(stack: &mut Vec<Tok>) -> Result<(), TooDeep> {
    loop {
        let n = stack.len();
        if n >= 3 {
            let rule = match (&stack[n - 3], &stack[n - 2], &stack[n - 1]) {
                (Tok::LParen, mid, Tok::RParen) if mid.is_expr() => Some(0),
                (Tok::Check(_), Tok::And, Tok::Check(_)) => Some(1),
                (Tok::AndExpr(_), Tok::And, Tok::Check(_)) => Some(2),
                (Tok::OrExpr(_), Tok::And, Tok::Check(_)) => Some(3),
                (Tok::Check(_) | Tok::AndExpr(_), Tok::Or, Tok::Check(_)) => Some(4),
                (Tok::OrExpr(_), Tok::Or, Tok::Check(_)) => Some(5),
                _ => None,
            };
            if let Some(rule) = rule {
                let (a, b, c) = pop3(stack);
                let new = match (rule, a, b, c) {
                    // Parenthesized expression becomes a plain check.
                    (0, _, Tok::Check(x) | Tok::AndExpr(x) | Tok::OrExpr(x), _) => Tok::Check(x),
                    (1, Tok::Check(x), _, Tok::Check(y)) => Tok::AndExpr(checked(Node::and(x, y))?),
                    (2, Tok::AndExpr(mut x), _, Tok::Check(y)) => {
                        x.push(y);
                        Tok::AndExpr(checked(x)?)
                    }
                    // "A or B and C": `and` binds tighter, so it takes the
                    // last operand of the `or`.
                    (3, Tok::OrExpr(mut or), _, Tok::Check(y)) => {
                        let last = match &mut or.kind {
                            NodeKind::Or(v) => v.pop(),
                            _ => None,
                        };
                        let and = match last {
                            Some(
                                mut last @ Node {
                                    kind: NodeKind::And(_),
                                    ..
                                },
                            ) => {
                                last.push(y);
                                last
                            }
                            Some(last) => Node::and(last, y),
                            None => y,
                        };
                        or.push(checked(and)?);
                        Tok::OrExpr(checked(or)?)
                    }
                    (4, Tok::Check(x) | Tok::AndExpr(x), _, Tok::Check(y)) => {
                        Tok::OrExpr(checked(Node::or(x, y))?)
                    }
                    (5, Tok::OrExpr(mut x), _, Tok::Check(y)) => {
                        x.push(y);
                        Tok::OrExpr(checked(x)?)
                    }
                    // Unreachable: the patterns above were just matched.
                    _ => Tok::Str,
                };
                stack.push(new);
                continue;
            }
        }
        if n >= 2 && matches!((&stack[n - 2], &stack[n - 1]), (Tok::Not, Tok::Check(_))) {
            if let (Some(Tok::Check(x)), Some(_)) = (stack.pop(), stack.pop()) {
                stack.push(Tok::Check(checked(Node::not(x))?));
            }
            continue;
        }
        return Ok(());
    }
}

fn parse_text(text: &str) -> (Check, Vec<ParseError>) {
    if text.is_empty() {
        return (Check::Always, Vec::new());
    }
    let mut errors = Vec::new();
    let mut stack: Vec<Tok> = Vec::new();
    for raw in tokenize(text) {
        let tok = match raw {
            RawTok::LParen => Tok::LParen,
            RawTok::RParen => Tok::RParen,
            RawTok::And => Tok::And,
            RawTok::Or => Tok::Or,
            RawTok::Not => Tok::Not,
            RawTok::Str => Tok::Str,
            RawTok::Atom(atom) => match parse_atom(text, atom) {
                Ok((check, err)) => {
                    errors.extend(err);
                    Tok::Check(Node::leaf(check))
                }
                Err(err) => {
                    errors.push(err);
                    return (Check::Never, errors);
                }
            },
        };
        stack.push(tok);
        if reduce(&mut stack).is_err() {
            errors.push(ParseError::TooDeep {
                rule: text.to_owned(),
                max: MAX_NESTING,
            });
            return (Check::Never, errors);
        }
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(Tok::Check(n) | Tok::AndExpr(n) | Tok::OrExpr(n)), true) => (n.into_check(), errors),
        _ => {
            errors.push(ParseError::Syntax {
                rule: text.to_owned(),
            });
            (Check::Never, errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> String {
        let rule = Rule::parse(text);
        assert!(rule.is_valid(), "{text}: {:?}", rule.errors());
        rule.check().to_string()
    }

    #[test]
    fn precedence_matches_oslo_tree_shapes() {
        assert_eq!(shape("a:1 or b:2 and c:3"), "(a:1 or (b:2 and c:3))");
        assert_eq!(shape("a:1 and b:2 or c:3"), "((a:1 and b:2) or c:3)");
        assert_eq!(
            shape("a:1 and b:2 or c:3 and d:4"),
            "((a:1 and b:2) or (c:3 and d:4))"
        );
        assert_eq!(
            shape("a:1 or b:2 and c:3 and d:4"),
            "(a:1 or (b:2 and c:3 and d:4))"
        );
        assert_eq!(shape("not a:1 and b:2"), "(not a:1 and b:2)");
        assert_eq!(shape("a:1 and not b:2"), "(a:1 and not b:2)");
        assert_eq!(shape("not (a:1 or b:2)"), "not (a:1 or b:2)");
        assert_eq!(shape("not not a:1"), "not not a:1");
        assert_eq!(shape("(a:1 or b:2) and c:3"), "((a:1 or b:2) and c:3)");
        assert_eq!(
            shape("((a:1 or (b:2)) and ((c:3)))"),
            "((a:1 or b:2) and c:3)"
        );
        assert_eq!(
            shape("a:1 OR b:2 And NOT c:3"),
            "(a:1 or (b:2 and not c:3))"
        );
        assert_eq!(shape("@"), "@");
        assert_eq!(shape("!"), "!");
        assert_eq!(shape(""), "@");
        assert_eq!(shape("\trole:admin\n"), "role:admin");
    }

    #[test]
    fn atoms() {
        assert_eq!(parse_strict("rule:x"), Ok(Check::Rule("x".into())));
        assert!(matches!(parse_strict("role:Admin"), Ok(Check::Role(m)) if m.as_str() == "Admin"));
        match parse_strict("is_admin:True") {
            Ok(Check::Generic { subject, .. }) => {
                assert_eq!(subject, Subject::Path(vec!["is_admin".into()]));
            }
            other => panic!("{other:?}"),
        }
        match parse_strict("'Member':%(role.name)s") {
            Ok(Check::Generic { subject, .. }) => {
                assert_eq!(subject, Subject::Literal("Member".into()));
            }
            other => panic!("{other:?}"),
        }
        match parse_strict("token.project.id:x") {
            Ok(Check::Generic { subject, .. }) => {
                assert_eq!(
                    subject,
                    Subject::Path(vec!["token".into(), "project".into(), "id".into()])
                );
            }
            other => panic!("{other:?}"),
        }
        // Only the first colon splits.
        match parse_strict("role:compute:admin") {
            Ok(Check::Role(m)) => assert_eq!(m.as_str(), "compute:admin"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_rules_deny_and_report() {
        for text in [
            "(role:admin",
            "role:admin)",
            "role:admin or",
            "and",
            "or role:admin",
            "not",
            "role:admin role:member",
            "()",
            "   ",
            "'role:admin'",
            "role:admin and 'x'",
            "project_id:%(project_id)d",
            ":x",
            "007:x",
            "!x:y",
            "http://example.com/check",
            "not https://example.com/check",
        ] {
            let rule = Rule::parse(text);
            assert_eq!(rule.check(), &Check::Never, "{text:?}");
            assert!(!rule.is_valid(), "{text:?}");
            assert!(rule.errors()[0].denies_whole_rule(), "{text:?}");
            assert!(parse_strict(text).is_err(), "{text:?}");
        }
        // Atom-level failures stay local, as in oslo.policy.
        for (text, shape) in [
            ("foo", "!"),
            ("role:", "!"),
            ("rule:", "!"),
            ("foo or role:admin", "(! or role:admin)"),
        ] {
            let rule = Rule::parse(text);
            assert_eq!(rule.check().to_string(), shape, "{text:?}");
            assert!(!rule.is_valid(), "{text:?}");
            assert!(!rule.errors()[0].denies_whole_rule(), "{text:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}role:a{}", "(".repeat(1000), ")".repeat(1000));
        assert!(
            Rule::parse(&ok).is_valid(),
            "parentheses alone add no depth"
        );
        let deep = format!("{}role:a", "not ".repeat(MAX_NESTING));
        let rule = Rule::parse(&deep);
        assert_eq!(rule.check(), &Check::Never);
        assert!(matches!(rule.errors(), [ParseError::TooDeep { .. }]));
        let fine = format!("{}role:a", "not ".repeat(MAX_NESTING - 1));
        assert!(Rule::parse(&fine).is_valid());
        let nested = format!(
            "{}role:a{}",
            "(role:b and ".repeat(100_000),
            ")".repeat(100_000)
        );
        let rule = Rule::parse(&nested);
        assert_eq!(rule.check(), &Check::Never);
        // Long flat chains are fine.
        let long = vec!["role:a"; 10_000].join(" or ");
        assert!(Rule::parse(&long).is_valid());
    }

    #[test]
    fn legacy_list_syntax() {
        let r = Rule::from_list(
            "list".into(),
            &[
                vec!["role:a".into(), "role:b".into()],
                vec!["role:c".into()],
            ],
        );
        assert_eq!(r.check().to_string(), "((role:a and role:b) or role:c)");
        assert_eq!(Rule::from_list("x".into(), &[]).check(), &Check::Always);
        assert_eq!(
            Rule::from_list("x".into(), &[vec![]]).check(),
            &Check::Never
        );
    }

    #[test]
    fn referenced_rules_in_order() {
        let r = Rule::parse("rule:a or (rule:b and not rule:c)");
        assert_eq!(r.check().referenced_rules(), vec!["a", "b", "c"]);
    }
}
