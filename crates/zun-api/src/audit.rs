//! The audit log (`[api] audit_log`): one JSON line per state-changing
//! request (POST, PUT, PATCH, DELETE), written once its answer is known:
//! when, the request id, the caller's project and user, the method and
//! path, the action and its target, the status and the outcome.
//!
//! Nothing the caller sent beyond the path is written: no query string (an
//! `execute` carries its command there), no body (registry passwords,
//! environment), no header (tokens).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::ApiState;
use crate::identity::Identity;

/// Where audit lines go.
pub trait AuditSink: Send + Sync {
    /// Writes one line (without its newline). Failing to write is logged,
    /// never the caller's problem.
    fn write_line(&self, line: &str);
}

/// Lines appended to a file, or to standard output.
pub struct AuditLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl AuditLog {
    /// Appends to `path`, or writes to standard output when `path` is `-`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        Ok(Self {
            out: Mutex::new(out),
        })
    }
}

impl AuditSink for AuditLog {
    fn write_line(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // One write per line, so lines of concurrent requests never mix
        // (an append is atomic for a write of this size).
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        if let Err(err) = out.write_all(&buffer).and_then(|()| out.flush()) {
            tracing::error!(error = %err, "writing the audit log failed");
        }
    }
}

/// One audit line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    pub time: String,
    pub request_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    /// `<collection>:<verb>`, e.g. `containers:create`, `containers:stop`.
    pub action: String,
    /// The id or name in the path the request acts on, if any.
    pub target: Option<&'a str>,
    pub status: u16,
    /// `success` for a 2xx answer (for an asynchronous action: accepted),
    /// else `failure`.
    pub outcome: &'static str,
}

/// What a state-changing request does, read from its path: the action and
/// its target. `/v1/containers` + POST is `containers:create`;
/// `/v1/containers/<id>/stop` is `containers:stop` on `<id>`.
pub fn action_of<'a>(method: &Method, path: &'a str) -> (String, Option<&'a str>) {
    let mut segments = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty());
    let first = segments.next();
    let collection = match first {
        Some("v1") => segments.next().unwrap_or("v1"),
        Some(other) => other,
        None => "",
    };
    let target = segments.next();
    let verb = match (segments.next(), method.as_str()) {
        (Some(action), _) => action.to_owned(),
        (None, "POST") => "create".into(),
        (None, "DELETE") => "delete".into(),
        (None, _) => "update".into(),
    };
    (format!("{collection}:{verb}"), target)
}

fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The middleware: outside authentication, so refused callers are
/// recorded too (without a project or user); the identity and the request
/// id come back on the response (see `context`).
pub async fn record(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let Some(sink) = state.audit.clone() else {
        return next.run(request).await;
    };
    if !changes_state(request.method()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let identity = response.extensions().get::<Identity>();
    let request_id = response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok());
    let (action, target) = action_of(&method, &path);
    let status = response.status();
    let record = AuditRecord {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        request_id,
        project_id: identity.map(|i| i.project_id.as_str()),
        user_id: identity.map(|i| i.user_id.as_str()),
        method: method.as_str(),
        path: &path,
        action,
        target,
        status: status.as_u16(),
        outcome: if status.is_success() {
            "success"
        } else {
            "failure"
        },
    };
    match serde_json::to_string(&record) {
        Ok(line) => sink.write_line(&line),
        Err(err) => tracing::error!(error = %err, "encoding an audit line failed"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_targets_come_from_method_and_path() {
        let cases = [
            (Method::POST, "/v1/containers", "containers:create", None),
            (
                Method::DELETE,
                "/v1/containers/c1",
                "containers:delete",
                Some("c1"),
            ),
            (
                Method::PATCH,
                "/v1/containers/c1",
                "containers:update",
                Some("c1"),
            ),
            (
                Method::POST,
                "/v1/containers/c1/stop",
                "containers:stop",
                Some("c1"),
            ),
            (
                Method::POST,
                "/v1/containers/c1/network_attach",
                "containers:network_attach",
                Some("c1"),
            ),
            (Method::PUT, "/v1/quotas/p1", "quotas:update", Some("p1")),
            (Method::POST, "/v1/capsules", "capsules:create", None),
            (Method::POST, "/v1", "v1:create", None),
            (Method::POST, "/", ":create", None),
        ];
        for (method, path, action, target) in cases {
            assert_eq!(
                action_of(&method, path),
                (action.to_owned(), target),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn only_state_changing_methods_are_recorded() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&method));
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!changes_state(&method));
        }
    }
}
