//! The small pieces of Python behaviour that oslo.policy's checks lean on:
//! `str()` / `repr()` of JSON-shaped values, `'...%(key)s...' % target`, and
//! `ast.literal_eval` of a generic check's left-hand side.

use serde_json::{Map, Value};

/// Python's `str(value)` for a JSON value (`True`, `None`, `1.0`, `['a']`, ...).
pub(crate) fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(value)` for a JSON value.
pub(crate) fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                n.to_string()
            } else {
                n.as_f64().map_or_else(|| n.to_string(), float_repr)
            }
        }
        Value::String(s) => str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation
/// when the decimal exponent is below -4 or at least 16, always a `.0` or an
/// exponent so it reads back as a float.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip mantissa, e.g. "-1.25e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            format!("{sign}0.{zeros}{digits}")
        } else if point >= k {
            let zeros = "0".repeat(usize::try_from(point - k).unwrap_or(0));
            format!("{sign}{digits}{zeros}.0")
        } else {
            let at = usize::try_from(point).unwrap_or(0);
            format!("{sign}{}.{}", &digits[..at], &digits[at..])
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// One piece of a compiled `%`-format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `%(key)s` (`repr == false`) or `%(key)r` (`repr == true`).
    Key {
        key: String,
        repr: bool,
    },
}

/// A match string compiled as Python's `match % target` would read it.
///
/// Supported: literal text, `%%`, `%(key)s` and `%(key)r`. `key` is looked up
/// verbatim in the (flat) target mapping, so `%(target.project.id)s` reads
/// the key `"target.project.id"`, exactly like oslo.policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Compiles `text`; `Err` carries the reason Python would raise
    /// (`ValueError`/`TypeError`) when formatting it against a mapping.
    pub(crate) fn compile(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '%')) => lit.push('%'),
                Some((start, '(')) => {
                    // Python counts nested parentheses inside the key.
                    let mut depth = 1usize;
                    let mut end = None;
                    for (i, k) in chars.by_ref() {
                        match k {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(i);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(end) = end else {
                        return Err("incomplete format key".to_owned());
                    };
                    let key = text[start + 1..end].to_owned();
                    let repr = match chars.next() {
                        Some((_, 's')) => false,
                        Some((_, 'r')) => true,
                        Some((_, other)) => {
                            return Err(format!("unsupported format conversion '%({key}){other}'"));
                        }
                        None => return Err("incomplete format".to_owned()),
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Key { key, repr });
                }
                Some((_, other)) => {
                    return Err(format!(
                        "unsupported format '%{other}' (only %(key)s substitutions are allowed)"
                    ));
                }
                None => return Err("incomplete format".to_owned()),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self { pieces })
    }

    /// `match % target`; `None` when a key is missing (Python's `KeyError`,
    /// which oslo.policy turns into a failed check).
    pub(crate) fn render(&self, target: &Map<String, Value>) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Key { key, repr } => {
                    let v = target.get(key)?;
                    out.push_str(&if *repr { py_repr(v) } else { py_str(v) });
                }
            }
        }
        Some(out)
    }
}

/// How `ast.literal_eval(kind)` treats a generic check's left-hand side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KindEval {
    /// A Python literal; holds `str(value)`.
    Literal(String),
    /// Not a literal (a name or dotted path): look it up in the credentials.
    NotLiteral,
}

/// A reduced `ast.literal_eval`: `True`, `False`, `None`, integers, floats and
/// plain, `u` or `r` prefixed single-line strings. Everything else that is not
/// obviously a broken literal is treated as a credential path (Python's
/// `ValueError` branch). `Err` marks text Python would reject with a
/// `SyntaxError` (or that this port does not evaluate), which oslo.policy
/// would let escape as an exception at enforcement time.
pub(crate) fn literal_eval(kind: &str) -> Result<KindEval, String> {
    match kind {
        "" => return Err("empty check kind".to_owned()),
        "True" | "False" | "None" => return Ok(KindEval::Literal(kind.to_owned())),
        _ => {}
    }
    let first = kind.chars().next().unwrap_or(' ');
    if first == '\'' || first == '"' {
        return string_literal(kind, false).map(KindEval::Literal);
    }
    if let Some(rest) = kind
        .strip_prefix(['u', 'U'])
        .filter(|r| r.starts_with(['\'', '"']))
    {
        return string_literal(rest, false).map(KindEval::Literal);
    }
    if let Some(rest) = kind
        .strip_prefix(['r', 'R'])
        .filter(|r| r.starts_with(['\'', '"']))
    {
        return string_literal(rest, true).map(KindEval::Literal);
    }
    if kind.len() > 1
        && kind.starts_with(['b', 'B', 'f', 'F'])
        && kind[1..].starts_with(['\'', '"', 'r', 'R', 'b', 'B'])
    {
        return Err(format!("unsupported literal {kind}"));
    }
    let (sign, unsigned) = match kind.as_bytes()[0] {
        b'-' => ("-", &kind[1..]),
        b'+' => ("", &kind[1..]),
        _ => ("", kind),
    };
    if unsigned.starts_with(|c: char| c.is_ascii_digit())
        || (unsigned.starts_with('.') && unsigned[1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        return number_literal(sign, unsigned).map(KindEval::Literal);
    }
    if is_name_expression(kind) {
        Ok(KindEval::NotLiteral)
    } else {
        Err(format!(
            "{kind:?} is neither a Python literal nor a (dotted) name"
        ))
    }
}

const PY_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Text Python parses as a non-literal expression made of names: dotted
/// names whose parts may be joined by `-` (`token.project.id`, `os-roles`).
/// `literal_eval` rejects those with `ValueError`, which oslo.policy takes to
/// mean "look the path up in the credentials". Anything else would be a
/// `SyntaxError` (or an expression this port does not model), so it is
/// refused.
fn is_name_expression(kind: &str) -> bool {
    kind.split('.').all(|segment| {
        segment
            .split('-')
            .all(|p| is_identifier(p) && !PY_KEYWORDS.contains(&p))
    })
}

fn number_literal(sign: &str, text: &str) -> Result<String, String> {
    let bad = || Err(format!("invalid numeric literal {sign}{text}"));
    if !underscores_ok(text) {
        return bad();
    }
    let lower = text.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            let digits = digits.strip_prefix('_').unwrap_or(digits);
            let clean: String = digits.chars().filter(|c| *c != '_').collect();
            return match u128::from_str_radix(&clean, radix) {
                Ok(0) => Ok("0".to_owned()),
                Ok(v) => Ok(format!("{sign}{v}")),
                Err(_) => bad(),
            };
        }
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if clean.chars().all(|c| c.is_ascii_digit()) {
        let trimmed = clean.trim_start_matches('0');
        if trimmed.is_empty() {
            return Ok("0".to_owned());
        }
        if trimmed.len() != clean.len() {
            // Python 3 rejects leading zeros in a non-zero decimal literal.
            return bad();
        }
        return Ok(format!("{sign}{trimmed}"));
    }
    // Float: digits, at most one '.', optional exponent. Checked by hand so
    // that Rust-only spellings ("inf", "NaN") are not accepted.
    let (mant, exp) = match clean.find(['e', 'E']) {
        Some(i) => (&clean[..i], Some(&clean[i + 1..])),
        None => (&clean[..], None),
    };
    let mant_ok = mant.chars().filter(|c| *c == '.').count() <= 1
        && mant.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mant.chars().any(|c| c.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !mant_ok || !exp_ok {
        return bad();
    }
    match format!("{sign}{clean}").parse::<f64>() {
        Ok(v) => Ok(float_repr(v)),
        Err(_) => bad(),
    }
}

/// Python allows single underscores between digits only.
fn underscores_ok(text: &str) -> bool {
    let b = text.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'_' {
            let prev = i.checked_sub(1).and_then(|p| b.get(p));
            let next = b.get(i + 1);
            let ok_prev = prev.is_some_and(|p| p.is_ascii_alphanumeric());
            let ok_next = next.is_some_and(|n| n.is_ascii_alphanumeric());
            if !ok_prev || !ok_next {
                return false;
            }
        }
    }
    true
}

fn string_literal(text: &str, raw: bool) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid string literal {text}: {why}"));
    let mut chars = text.chars();
    let Some(quote) = chars.next() else {
        return bad("empty");
    };
    let body: Vec<char> = chars.collect();
    if body.len() >= 2 && body[0] == quote && body[1] == quote {
        return bad("triple-quoted strings are not supported");
    }
    let mut out = String::new();
    let mut i = 0;
    let mut closed = false;
    while i < body.len() {
        let c = body[i];
        if c == quote {
            if i + 1 != body.len() {
                return bad("text after the closing quote");
            }
            closed = true;
            break;
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = body.get(i + 1) else {
            return bad("unterminated escape");
        };
        if raw {
            out.push('\\');
            out.push(e);
            i += 2;
            continue;
        }
        i += 2;
        match e {
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3 {
                    match body.get(i).and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                match char::from_u32(v) {
                    Some(ch) => out.push(ch),
                    None => return bad("invalid octal escape"),
                }
            }
            'x' | 'u' | 'U' => {
                let len = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = body.iter().skip(i).take(len).collect();
                if hex.chars().count() != len || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    return bad("truncated escape");
                }
                i += len;
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return bad("invalid escape"),
                }
            }
            'N' => return bad("\\N{...} escapes are not supported"),
            other => {
                // Python keeps unknown escapes verbatim (with a warning).
                out.push('\\');
                out.push(other);
            }
        }
    }
    if !closed {
        return bad("missing closing quote");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn str_of_json_values_matches_python() {
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(false)), "False");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(5)), "5");
        assert_eq!(py_str(&json!(-5)), "-5");
        assert_eq!(py_str(&json!("abc")), "abc");
        assert_eq!(py_str(&json!(["a", 1, true])), "['a', 1, True]");
        assert_eq!(py_str(&json!({"k": null})), "{'k': None}");
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
        assert_eq!(py_repr(&json!("a\nb")), "'a\\nb'");
    }

    #[test]
    fn float_repr_matches_python() {
        for (x, want) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123.456, "123.456"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
        ] {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn template_substitution() {
        let t = Template::compile("%(project_id)s").expect("compiles");
        let target = json!({"project_id": "p1", "n": 3, "b": true});
        let map = target.as_object().expect("object");
        assert_eq!(t.render(map).as_deref(), Some("p1"));
        let t = Template::compile("x-%(n)s-%(b)s-%%-%(project_id)r").expect("compiles");
        assert_eq!(t.render(map).as_deref(), Some("x-3-True-%-'p1'"));
        let t = Template::compile("%(missing)s").expect("compiles");
        assert_eq!(t.render(map), None);
        let t = Template::compile("%(a(b)c)s").expect("nested parens");
        let target = json!({"a(b)c": "v"});
        assert_eq!(
            t.render(target.as_object().expect("object")).as_deref(),
            Some("v")
        );
        let t = Template::compile("plain").expect("compiles");
        assert_eq!(t.render(&Map::new()).as_deref(), Some("plain"));
        for bad in ["%(x", "%(x)", "%(x)d", "50%", "%s", "%d"] {
            assert!(Template::compile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_eval_subset() {
        let lit = |s: &str| literal_eval(s).expect("evaluates");
        assert_eq!(lit("True"), KindEval::Literal("True".into()));
        assert_eq!(lit("None"), KindEval::Literal("None".into()));
        assert_eq!(lit("'Member'"), KindEval::Literal("Member".into()));
        assert_eq!(lit("\"it's\""), KindEval::Literal("it's".into()));
        assert_eq!(lit("u'x'"), KindEval::Literal("x".into()));
        assert_eq!(lit(r"'a\tb'"), KindEval::Literal("a\tb".into()));
        assert_eq!(lit(r"r'a\tb'"), KindEval::Literal(r"a\tb".into()));
        assert_eq!(lit(r"'\x41\101'"), KindEval::Literal("AA".into()));
        assert_eq!(lit("12"), KindEval::Literal("12".into()));
        assert_eq!(lit("-12"), KindEval::Literal("-12".into()));
        assert_eq!(lit("+1_000"), KindEval::Literal("1000".into()));
        assert_eq!(lit("0x1F"), KindEval::Literal("31".into()));
        assert_eq!(lit("000"), KindEval::Literal("0".into()));
        assert_eq!(lit("1.50"), KindEval::Literal("1.5".into()));
        assert_eq!(lit("1e3"), KindEval::Literal("1000.0".into()));
        assert_eq!(lit(".5"), KindEval::Literal("0.5".into()));
        for path in [
            "is_admin",
            "token.project.id",
            "zun-service",
            "os-roles.x-y",
            "inf",
            "true",
            "True.x",
        ] {
            assert_eq!(lit(path), KindEval::NotLiteral, "{path}");
        }
        for bad in [
            "", "'open", "'a'b", "007", "1abc", "1__0", "'''x'''", "b'x'", "1e", "!x", "a..b",
            "a.", "not", "x.class", "a[0]", "-foo", "a b",
        ] {
            assert!(literal_eval(bad).is_err(), "{bad}");
        }
    }
}
