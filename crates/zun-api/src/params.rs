//! Query-string and body helpers. Like upstream (pecan), action parameters
//! may come in the query string or in a JSON object body.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde_json::Value;
use zun_store::SortDir;
use zun_types::ApiError;

/// Upstream's `[api] max_limit`.
pub const MAX_LIMIT: u32 = 1000;

/// One page of a collection: `limit`, `marker`, `sort_key`, `sort_dir`.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: u32,
    pub marker: Option<String>,
    pub sort_key: String,
    pub sort_dir: SortDir,
}

/// Upstream's `next` link: present when the page is full.
pub fn next_link(
    host_url: &str,
    collection: &str,
    page: &Page,
    rows: usize,
    last_uuid: Option<&str>,
) -> Value {
    match last_uuid {
        Some(last) if rows == page.limit as usize => Value::String(format!(
            "{host_url}/v1/{collection}?sort_key={}&sort_dir={}&limit={}&marker={last}",
            page.sort_key,
            match page.sort_dir {
                SortDir::Asc => "asc",
                SortDir::Desc => "desc",
            },
            page.limit,
        )),
        _ => Value::Null,
    }
}

fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(MAX_LIMIT),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n > 0 => Ok(u32::try_from(n.min(i64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT)),
            _ => Err(ApiError::invalid_value("Limit must be positive integer")),
        },
    }
}

/// Parameters of one request: query pairs, then JSON body keys.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// How many of `pairs` came from the query string (they come first).
    from_query: usize,
}

impl Params {
    pub fn from_query(query: Option<&str>) -> Self {
        let pairs = query.map(url_pairs).unwrap_or_default();
        Params {
            from_query: pairs.len(),
            pairs,
        }
    }

    /// Adds the keys of a JSON object body (scalars only), after the query.
    pub fn merge_body(&mut self, headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
        if body.is_empty() || !is_json(headers) {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(body).map_err(|_| malformed_body())?;
        if let Value::Object(map) = value {
            for (key, value) in map {
                let text = match value {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                self.pairs.push((key, text));
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be in the query string (a body key of that name
    /// does not count, as upstream's query schemas require).
    pub fn query(&self, key: &str) -> Option<&str> {
        self.pairs[..self.from_query]
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every (key, value), in order; repeated keys appear repeatedly.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// 400 "Unknown parameters: a, b" for keys outside `allowed`.
    pub fn reject_unknown(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let mut unknown: Vec<&str> = self.keys().filter(|k| !allowed.contains(k)).collect();
        unknown.sort_unstable();
        unknown.dedup();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_value(format!(
                "Unknown parameters: {}",
                unknown.join(", ")
            )))
        }
    }

    /// The paging parameters, with upstream's defaults (`id`, `asc`, the
    /// maximum limit); `sort_key` must be one of `sort_keys`.
    pub fn page(&self, sort_keys: &[&str]) -> Result<Page, ApiError> {
        let limit = parse_limit(self.get("limit"))?;
        let sort_key = self.get("sort_key").unwrap_or("id").to_string();
        if !sort_keys.contains(&sort_key.as_str()) {
            return Err(ApiError::bad_request(
                "invalid-parameter-value",
                format!("The sort_key value \"{sort_key}\" is an invalid field for sorting"),
            ));
        }
        let sort_dir = match self.get("sort_dir").unwrap_or("asc") {
            "asc" => SortDir::Asc,
            "desc" => SortDir::Desc,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
                )));
            }
        };
        Ok(Page {
            limit,
            marker: self.get("marker").map(str::to_string),
            sort_key,
            sort_dir,
        })
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => zun_types::validation::query_bool(key, raw),
        }
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers)
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn malformed_body() -> ApiError {
    ApiError::invalid("Malformed request body: the body is not valid JSON.")
}

/// The JSON body of a create/update request: 415 unless JSON, 400 unless it
/// parses.
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type(content_type(headers)));
    }
    serde_json::from_slice(body).map_err(|_| malformed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_pairs() {
        let p = Params::from_query(Some("name=a%20b&run=true&x=1+2&bad=%zz&t=%4"));
        assert_eq!(p.get("name"), Some("a b"));
        assert_eq!(p.get("run"), Some("true"));
        assert_eq!(p.get("x"), Some("1 2"));
        assert_eq!(p.get("bad"), Some("%zz"));
        assert_eq!(p.get("t"), Some("%4"));
    }

    #[test]
    fn unknown_keys_are_listed_sorted() {
        let p = Params::from_query(Some("b=1&a=2&limit=3"));
        let err = p.reject_unknown(&["limit"]).expect_err("unknown keys");
        assert_eq!(err.detail, "Unknown parameters: a, b");
    }
}
