//! The one place where errors become HTTP responses with upstream's body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use zun_store::StoreError;
use zun_types::ApiError;

/// A handler error; renders as upstream's `{"errors": [...]}` body.
#[derive(Debug)]
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(err: ApiError) -> Self {
        Error(err)
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(ident) => Error(ApiError::container_not_found(&ident)),
            StoreError::MarkerNotFound(marker) => Error(ApiError::container_not_found(&marker)),
            StoreError::Rejected(api) => Error(api),
            other => {
                let correlation = uuid::Uuid::new_v4().to_string();
                tracing::error!(%correlation, error = %other, "store failure");
                Error(ApiError::internal(&correlation))
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.0.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
