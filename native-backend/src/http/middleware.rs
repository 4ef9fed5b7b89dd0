//! Request id, authentication, Retry-After and metrics: one middleware each.

use super::AppState;
use super::error::error_response;
use super::stream_input::KeyPending;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use kokoro_core::ApiError;
use kokoro_core::boundary::{self, REQUEST_ID};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// The request id, available to handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    format!("req-{t:x}-{n:x}")
}

fn acceptable_id(v: &HeaderValue) -> Option<String> {
    boundary::accept_request_id(v.to_str().ok()?).map(str::to_string)
}

/// Echo the client's X-Request-ID (when sane) or make one; log the request with it.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(acceptable_id)
        .unwrap_or_else(new_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The API-key rule of `kokoro_core::boundary` (when keys are configured);
/// `/health` and `/metrics` stay open. The WebSocket route also takes ElevenLabs'
/// `xi-api-key` header and `authorization` query parameter, and a handshake
/// without a key goes on marked [`KeyPending`]: its first message must carry one.
pub async fn auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let keys = &state.config.api_keys;
    let path = req.uri().path();
    if keys.is_empty() || boundary::is_open(path) {
        return next.run(req).await;
    }
    let socket = boundary::is_stream_input(path);
    let h = req.headers();
    let value = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let authorization = value(header::AUTHORIZATION.as_str());
    let mut ok = boundary::authorized(keys, authorization, value("x-api-key"));
    if socket && !ok {
        let query = query_value(req.uri(), "authorization");
        ok = boundary::authorized(keys, query.as_deref(), value("xi-api-key"));
    }
    if ok {
        next.run(req).await
    } else if socket && authorization.is_none() && value("xi-api-key").is_none() {
        req.extensions_mut().insert(KeyPending);
        next.run(req).await
    } else {
        error_response(&ApiError::unauthorized())
    }
}

/// A query parameter's value, percent-decoded.
fn query_value(uri: &axum::http::Uri, name: &str) -> Option<String> {
    let axum::extract::Query(mut q) =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(uri)
            .ok()?;
    q.remove(name)
}

/// The configured `--retry-after-secs` on every retryable error (the error
/// itself carries the default).
pub async fn retry_after(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Some(v) = resp.headers_mut().get_mut(header::RETRY_AFTER) {
        *v = HeaderValue::from(state.config.retry_after_secs);
    }
    resp
}

/// An error may be answered before the request body is read (413, 404, 401); hyper
/// then closes the connection rather than read the rest, and a client that sent its
/// next request on it meanwhile gets a reset (seen in the soak: 0.3% of abusive
/// requests). Saying `Connection: close` on such answers tells the client first.
pub async fn close_after_error_with_body(req: Request, next: Next) -> Response {
    let h = req.headers();
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut resp = next.run(req).await;
    if has_body && resp.status().as_u16() >= 400 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Count every request by method, matched route and status; time to response head.
pub async fn metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    state
        .metrics
        .record_request(&method, &route, status, start.elapsed().as_secs_f64());
    if status >= 500 {
        tracing::warn!(%route, status, "request failed");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert_eq!(
            acceptable_id(&HeaderValue::from_static("abc-1")),
            Some("abc-1".into())
        );
        assert_eq!(acceptable_id(&HeaderValue::from_static("has space")), None);
        assert!(new_id() != new_id());
    }
}
