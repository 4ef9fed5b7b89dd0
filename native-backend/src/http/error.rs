//! The HTTP boundary's one error type: every failure becomes the contract's
//! envelope with the status from `kokoro-core`'s table and the headers the error
//! carries (`ApiError::headers`).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kokoro_core::ApiError;

pub struct AppError(pub ApiError);

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

pub fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, e.to_json()).into_response();
    let h = resp.headers_mut();
    for (name, value) in e.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    resp
}
