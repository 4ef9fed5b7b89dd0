//! Request id, authentication and metrics: one middleware each.

use super::AppState;
use super::error::error_response;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use kokoro_core::ApiError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use subtle::ConstantTimeEq;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

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
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
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

fn key_matches(keys: &[String], presented: &[u8]) -> bool {
    // Compare against every key without stopping early.
    keys.iter().fold(0u8, |acc, k| {
        acc | k.as_bytes().ct_eq(presented).unwrap_u8()
    }) == 1
}

/// API-key check (when keys are configured); `/health` and `/metrics` stay open.
pub async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let keys = &state.config.api_keys;
    let path = req.uri().path();
    if keys.is_empty() || path == "/health" || path == "/metrics" {
        return next.run(req).await;
    }
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let api_key = h
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let ok = [bearer, api_key]
        .into_iter()
        .flatten()
        .any(|k| key_matches(keys, k.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        error_response(&ApiError::unauthorized())
    }
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
    fn key_comparison() {
        let keys = vec!["alpha".to_string(), "beta-key".to_string()];
        assert!(key_matches(&keys, b"alpha"));
        assert!(key_matches(&keys, b"beta-key"));
        assert!(!key_matches(&keys, b"alph"));
        assert!(!key_matches(&keys, b""));
        assert!(!key_matches(&[], b"alpha"));
    }

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
