//! Helpers both HTTP test binaries use: one request through the router, and the
//! contract's error-envelope check.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kokoro_backend::http::{AppState, app};
use serde_json::Value;
use tower::ServiceExt;

/// Send one request through a fresh router over `s`; (status, headers, body).
pub async fn send(
    s: &AppState,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app(s.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

pub fn post_json(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

#[track_caller]
pub fn assert_error(status: StatusCode, body: &[u8], want: u16, code: &str, param: Option<&str>) {
    assert_eq!(status.as_u16(), want, "{}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).expect("JSON error body");
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert_eq!(e["param"].as_str(), param, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(e["type"].is_string());
}
