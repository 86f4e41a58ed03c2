//! Per-request context: the negotiated microversion and who is asking.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use zun_types::microversion::{self, Version};

use crate::ApiState;
use crate::error::Error;
use crate::identity::{AuthError, Identity};
use serde_json::{Value, json};
use zun_policy::{Credentials, Policy};
use zun_types::ApiError;

/// Everything a handler needs to know about the request itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub version: Version,
    pub identity: Identity,
    /// The caller as the policy engine sees it (`is_admin` from
    /// `context_is_admin`).
    pub creds: Credentials,
    /// The policy in force for this request.
    pub policy: Arc<Policy>,
    /// Scheme, host and port the client used, for links.
    pub host_url: String,
    pub request_id: String,
}

impl Ctx {
    /// The `context_is_admin` rule (default `role:admin`) holds for the caller.
    pub fn is_admin(&self) -> bool {
        self.creds.is_admin
    }

    /// Upstream's target for collection-level checks: the caller's own ids.
    pub fn own_target(&self) -> Value {
        json!({"project_id": self.identity.project_id, "user_id": self.identity.user_id})
    }

    pub fn can(&self, rule: &str, target: &Value) -> bool {
        self.policy.enforce(rule, target, &self.creds)
    }

    /// 403 `policy-not-authorized` unless `rule` allows the caller on `target`.
    pub fn authorize(&self, rule: &str, target: &Value) -> Result<(), ApiError> {
        self.policy
            .authorize(rule, target, &self.creds)
            .map_err(|denied| ApiError::new(403, "policy-not-authorized", denied.to_string()))
    }
}

fn version_headers(response: &mut Response, version: Version) {
    let headers = response.headers_mut();
    // Lower-case spellings of microversion::{MIN_HEADER, MAX_HEADER, HEADER}.
    let pairs = [
        ("openstack-api-minimum-version", Version::MIN),
        ("openstack-api-maximum-version", Version::MAX),
        ("openstack-api-version", version),
    ];
    for (name, v) in pairs {
        if let Ok(value) = HeaderValue::from_str(&format!("{} {v}", microversion::SERVICE_TYPE)) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
}

/// The request id of upstream's `x-openstack-request-id` header, also
/// recorded on container actions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Negotiates the microversion of every `/v1` request and adds the version
/// headers to its response, errors included.
pub async fn negotiate_version(mut request: Request, next: Next) -> Response {
    let raw = request
        .headers()
        .get(microversion::HEADER)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let mut response = match Version::negotiate(raw.as_deref()) {
        Ok(version) => {
            request.extensions_mut().insert(version);
            let mut response = next.run(request).await;
            version_headers(&mut response, version);
            response
        }
        Err(err) => {
            let mut response = Error(err).into_response();
            version_headers(&mut response, Version::MIN);
            response
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}

/// keystonemiddleware's 401: its own body, and a challenge naming where
/// tokens come from.
fn unauthorized(challenge: &str) -> Response {
    let body = serde_json::json!({"error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }});
    let mut response = (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Paths anyone may read without a token, as upstream's
/// `acl_public_routes` (after path normalisation).
/// The discovery documents, and the websocket endpoint (which checks its
/// own single-use token instead: the reference client sends no X-Auth-Token
/// there).
fn is_public(path: &str) -> bool {
    path == "/" || path == "/v1" || path == crate::streams::WEBSOCKET_PATH
}

/// Authenticates every request except the public discovery documents,
/// before routing, as keystonemiddleware sits in front of upstream's app: an
/// unknown path without a token is a 401, not a 404.
pub async fn authenticate(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    match state.auth.authenticate(token).await {
        Ok(identity) => {
            request.extensions_mut().insert(identity.clone());
            let mut response = next.run(request).await;
            // For the audit log, which sits outside.
            response.extensions_mut().insert(identity);
            response
        }
        Err(AuthError::Missing | AuthError::Invalid) => unauthorized(&state.auth.challenge()),
        Err(AuthError::Unavailable(reason)) => {
            tracing::warn!(%reason, "identity service unavailable");
            Error(ApiError::service_unavailable(
                "The identity service is unavailable; try again later.",
            ))
            .into_response()
        }
    }
}

impl FromRequestParts<Arc<ApiState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let version = parts
            .extensions
            .get::<Version>()
            .copied()
            .unwrap_or(Version::MIN);
        let Some(identity) = parts.extensions.get::<Identity>().cloned() else {
            // Only reachable if a route escaped `authenticate`; refuse.
            return Err(unauthorized(&state.auth.challenge()));
        };
        let policy = state.policy.current();
        let mut creds = Credentials {
            user_id: identity.user_id.clone(),
            project_id: identity.project_id.clone(),
            roles: identity.roles.clone(),
            is_admin: false,
            is_admin_project: identity.is_admin_project,
            domain_id: identity.domain_id.clone(),
        };
        creds.is_admin = policy.is_admin(&creds);
        Ok(Ctx {
            version,
            identity,
            creds,
            policy,
            host_url: crate::host_url(&parts.headers),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4())),
        })
    }
}
