//! The one error type that reaches the wire, carrying upstream's error body
//! fields (reference §3). Libraries produce their own typed errors; the API
//! crate maps them into this.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct ApiError {
    pub status: u16,
    /// Suffix after `container.`, e.g. `invalid-state-exception`; empty for
    /// framework errors (404 route, 405, 406, 415, 5xx).
    pub code: &'static str,
    pub title: String,
    pub detail: String,
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    request_id: &'a str,
    code: String,
    status: u16,
    title: &'a str,
    detail: &'a str,
    links: [(); 0],
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorItem<'a>; 1],
}

impl ApiError {
    /// An error whose title and detail are both the message, as upstream's
    /// `ZunException` renders them.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            code,
            title: message.clone(),
            detail: message,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid", message)
    }

    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(400, "invalid-value", message)
    }

    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(400, "schema-validation-error", message)
    }

    pub fn container_not_found(ident: &str) -> Self {
        Self::new(
            404,
            "container-not-found",
            format!("Container {ident} could not be found."),
        )
    }

    /// Upstream's `OverQuota`: 403 naming the exceeded resources as a
    /// Python list, e.g. `Quota exceeded for resources: ['containers']`.
    pub fn over_quota(resources: &[&str]) -> Self {
        let list: Vec<String> = resources.iter().map(|r| format!("'{r}'")).collect();
        Self::new(
            403,
            "over-quota",
            format!("Quota exceeded for resources: [{}]", list.join(", ")),
        )
    }

    /// Upstream's `NetworkNotFound` (its text names Neutron whatever the
    /// driver, and clients match on it).
    pub fn network_not_found(ident: &str) -> Self {
        Self::new(
            404,
            "network-not-found",
            format!("Neutron network {ident} could not be found."),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    pub fn not_acceptable(detail: String) -> Self {
        Self {
            status: 406,
            code: "",
            title: "Not Acceptable".into(),
            detail,
        }
    }

    pub fn not_found_route() -> Self {
        Self {
            status: 404,
            code: "",
            title: "Not Found".into(),
            detail: "The resource could not be found.".into(),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            status: 405,
            code: "",
            title: "Method Not Allowed".into(),
            detail: "The method is not allowed for this resource.".into(),
        }
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self {
            status: 415,
            code: "",
            title: "Unsupported Media Type".into(),
            detail: format!(
                "Unexpected content type: {got}. Expected content types are: ['application/json']"
            ),
        }
    }

    pub fn payload_too_large() -> Self {
        Self {
            status: 413,
            code: "",
            title: "Request Entity Too Large".into(),
            detail: "The request body is larger than this service accepts.".into(),
        }
    }

    /// A 500 that hides internals behind a correlation id, as upstream does;
    /// the cause is logged with the same id.
    pub fn internal(correlation_id: &str) -> Self {
        Self {
            status: 500,
            code: "",
            title: "Internal Server Error".into(),
            detail: format!(
                "Your request could not be handled because of a problem in the server. Error Correlation id is: {correlation_id}"
            ),
        }
    }

    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Self {
            status: 503,
            code: "",
            title: "Service Unavailable".into(),
            detail: detail.into(),
        }
    }

    /// Upstream's `{"errors": [...]}` body.
    pub fn body(&self) -> serde_json::Value {
        let body = ErrorBody {
            errors: [ErrorItem {
                request_id: "",
                code: format!("container.{}", self.code),
                status: self.status,
                title: &self.title,
                detail: &self.detail,
                links: [],
            }],
        };
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_quota_lists_resources_as_python() {
        let err = ApiError::over_quota(&["containers", "cpu"]);
        assert_eq!(err.status, 403);
        assert_eq!(err.code, "over-quota");
        assert_eq!(
            err.detail,
            "Quota exceeded for resources: ['containers', 'cpu']"
        );
        assert_eq!(err.title, err.detail);
    }

    #[test]
    fn body_has_upstream_shape() {
        let body = ApiError::container_not_found("abc").body();
        assert_eq!(
            body,
            serde_json::json!({"errors": [{
                "request_id": "", "code": "container.container-not-found", "status": 404,
                "title": "Container abc could not be found.",
                "detail": "Container abc could not be found.", "links": []
            }]})
        );
    }
}
