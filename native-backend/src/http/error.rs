//! The HTTP boundary's one error type: every failure becomes the contract's
//! envelope with the status from `kokoro-core`'s table.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kokoro_core::ApiError;

/// Seconds clients are told to wait on retryable errors (set once from config).
pub static RETRY_AFTER_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if e.kind.is_retryable() {
        let secs = RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed);
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
