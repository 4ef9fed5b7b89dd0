//! The kokoro-edge HTTP component (Spin / any `wasi:http` 0.2 host).
//!
//! One handler: route, authenticate, validate with `kokoro-core` (same rules and
//! byte-identical error bodies as the backend), compute the cache key over the
//! normalized request, answer from the cache when it can (feature `spin`), and
//! otherwise forward to the native backend, streaming the body through and
//! teeing complete responses into the cache.
//!
//! With the `wasi-nn` feature and `KOKORO_NN_GRAPH` set, speech in wav/pcm/flac is
//! synthesized in the component itself through `wasi:nn` (see [`nn`]).
//!
//! Configuration: environment variables (`KOKORO_BACKEND_URL`, `KOKORO_API_KEYS`,
//! `KOKORO_BACKEND_API_KEY`, `KOKORO_CACHE_MAX_BYTES`, `KOKORO_MAX_BODY_BYTES`); with
//! the `spin` feature, Spin variables of the same names in lower case take precedence.

// The `http_component` macro expands to the unsafe canonical-ABI export glue;
// this crate has no other unsafe code.
#![allow(unsafe_code)]

mod cache;
mod config;
#[cfg(feature = "wasi-nn")]
mod nn;

use config::Config;
use futures::{SinkExt, StreamExt};
use kokoro_core::{ApiError, ErrorKind, SpeechRequest};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingResponse, Request, ResponseOutparam,
};

const FORWARDED_ROUTES: [&str; 4] = ["/v1/models", "/v1/audio/voices", "/status", "/metrics"];

#[derive(Debug, PartialEq)]
enum Route {
    Speech,
    Health,
    /// Passed through to the backend (GET or the given method).
    Forward,
    NotFound,
    /// With the methods the path allows (the `Allow` header, RFC 9110).
    MethodNotAllowed(&'static str),
}

fn route(method: &Method, path: &str) -> Route {
    let is_get = matches!(method, Method::Get);
    let is_post = matches!(method, Method::Post);
    match path {
        "/v1/audio/speech" if is_post => Route::Speech,
        "/v1/audio/speech" => Route::MethodNotAllowed("POST"),
        "/health" if is_get => Route::Health,
        "/dev/phonemize" | "/dev/generate_from_phonemes" if is_post => Route::Forward,
        "/dev/phonemize" | "/dev/generate_from_phonemes" => Route::MethodNotAllowed("POST"),
        p if (FORWARDED_ROUTES.contains(&p) || p.starts_with("/v1/models/")) && is_get => {
            Route::Forward
        }
        p if FORWARDED_ROUTES.contains(&p) || p.starts_with("/v1/models/") || p == "/health" => {
            Route::MethodNotAllowed("GET")
        }
        _ => Route::NotFound,
    }
}

fn header(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

async fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, String)], body: Vec<u8>) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone().into_bytes()))
        .collect();
    let fields = Fields::from_list(&list).unwrap_or_else(|_| Fields::new());
    let resp = OutgoingResponse::new(fields);
    let _ = resp.set_status_code(status);
    let mut sink = resp.take_body();
    out.set(resp);
    let _ = sink.send(body).await;
}

async fn respond_error(out: ResponseOutparam, e: &ApiError, request_id: &str) {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-request-id", request_id.to_string()),
    ];
    if e.kind.is_retryable() {
        headers.push(("retry-after", "1".to_string()));
    }
    respond(out, e.status(), &headers, e.to_json().into_bytes()).await;
}

fn request_id(req: &IncomingRequest) -> String {
    header(&req.headers(), "x-request-id")
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| format!("edge-{:016x}", clock_id()))
}

/// Request ids for requests that bring none: wall-clock nanoseconds (unique enough for
/// log correlation; no randomness is needed).
fn clock_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Constant-time check of the presented key against every configured key.
fn authorized(cfg: &Config, req: &IncomingRequest) -> bool {
    if cfg.api_keys.is_empty() {
        return true;
    }
    let h = req.headers();
    let bearer =
        header(&h, "authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    let key = header(&h, "x-api-key");
    [bearer, key].into_iter().flatten().any(|presented| {
        cfg.api_keys.iter().fold(false, |acc, k| {
            acc | ct_eq(k.as_bytes(), presented.trim().as_bytes())
        })
    })
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Read a request body, refusing more than `limit` bytes.
async fn read_body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = req.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "invalid_json",
                "Could not read the request body.",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_json(req: &IncomingRequest) -> bool {
    header(&req.headers(), "content-type")
        .and_then(|v| v.split(';').next().map(|m| m.trim().to_ascii_lowercase()))
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let cfg = Config::load();
    let rid = request_id(&req);
    let full = req.path_with_query().unwrap_or_default();
    let path = full.split('?').next().unwrap_or("").to_string();
    let method = req.method();
    let r = route(&method, &path);
    if !matches!(r, Route::Health | Route::NotFound)
        && path != "/metrics"
        && !authorized(&cfg, &req)
    {
        return respond_error(out, &ApiError::unauthorized(), &rid).await;
    }
    match r {
        Route::Health => {
            respond(
                out,
                200,
                &[
                    ("content-type", "application/json".into()),
                    ("x-request-id", rid),
                ],
                br#"{"status":"ok","tier":"edge"}"#.to_vec(),
            )
            .await
        }
        Route::NotFound => {
            respond_error(
                out,
                &ApiError::not_found("No such route. See the API contract for the routes."),
                &rid,
            )
            .await
        }
        Route::MethodNotAllowed(allow) => {
            let e = ApiError::method_not_allowed();
            let headers = [
                ("content-type", "application/json".to_string()),
                ("x-request-id", rid),
                ("allow", allow.to_string()),
            ];
            respond(out, e.status(), &headers, e.to_json().into_bytes()).await;
        }
        Route::Forward => {
            #[cfg(feature = "wasi-nn")]
            if !cfg.nn_graph.is_empty()
                && let Some(resp) = nn::info(&cfg, &path)
            {
                let (status, body) = match resp {
                    Ok(v) => (200, v.to_string()),
                    Err(e) => (e.status(), e.to_json()),
                };
                let headers = [
                    ("content-type", "application/json".to_string()),
                    ("x-request-id", rid),
                ];
                return respond(out, status, &headers, body.into_bytes()).await;
            }
            let body = if matches!(method, Method::Post) {
                if !is_json(&req) {
                    return respond_error(out, &ApiError::unsupported_media_type(), &rid).await;
                }
                match read_body(req, cfg.max_body_bytes).await {
                    Ok(b) => Some(b),
                    Err(e) => return respond_error(out, &e, &rid).await,
                }
            } else {
                None
            };
            forward(&cfg, method, &full, body, out, &rid, None).await;
        }
        Route::Speech => {
            if !is_json(&req) {
                return respond_error(out, &ApiError::unsupported_media_type(), &rid).await;
            }
            let body = match read_body(req, cfg.max_body_bytes).await {
                Ok(b) => b,
                Err(e) => return respond_error(out, &e, &rid).await,
            };
            let speech = match SpeechRequest::from_json(&body) {
                Ok(s) => s,
                Err(e) => return respond_error(out, &e, &rid).await,
            };
            // Two keys: the request as sent (a repeat skips normalization, whose regexes
            // would be compiled afresh in every instance), then the normalized request
            // ("5" and "five" share an entry). Fills go under both.
            let raw_key = kokoro_core::cache_key::raw_cache_key(&speech, &cfg.model_version);
            let mut keys = vec![raw_key.clone()];
            let mut hit = cache::get(&raw_key);
            if hit.is_none() && cache::enabled() {
                let normalized =
                    kokoro_core::normalize::normalize(&speech.input, &speech.normalization);
                let key =
                    kokoro_core::cache_key::cache_key(&speech, &normalized, &cfg.model_version);
                hit = cache::get(&key);
                if let Some(h) = &hit {
                    cache::put(&raw_key, h, cfg.cache_ttl_secs);
                }
                keys.push(key);
            }
            if let Some(hit) = hit {
                return respond(
                    out,
                    200,
                    &[
                        ("content-type", speech.format.content_type().to_string()),
                        ("x-cache", "hit".into()),
                        (
                            "cache-control",
                            format!("public, max-age={}", cfg.cache_ttl_secs),
                        ),
                        ("x-request-id", rid),
                    ],
                    hit,
                )
                .await;
            }
            #[cfg(feature = "wasi-nn")]
            if !cfg.nn_graph.is_empty() {
                if nn::handles(&speech) {
                    return nn::speech(&cfg, speech, out, &rid).await;
                }
                if !cfg.nn_forward {
                    return respond_error(out, &nn::unsupported(&speech), &rid).await;
                }
            }
            let store = cache::enabled().then_some(keys);
            forward(
                &cfg,
                Method::Post,
                "/v1/audio/speech",
                Some(body),
                out,
                &rid,
                store,
            )
            .await;
        }
    }
}

/// Forward to the backend and stream its answer back; with `cache_keys`, tee a
/// complete 200 body into the cache (up to the configured size).
async fn forward(
    cfg: &Config,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    out: ResponseOutparam,
    rid: &str,
    cache_keys: Option<Vec<String>>,
) {
    let url = format!(
        "{}{}",
        cfg.backend_url.trim_end_matches('/'),
        path_and_query
    );
    let mut builder = Request::builder();
    builder.method(method).uri(url).header("x-request-id", rid);
    if let Some(k) = &cfg.backend_api_key {
        builder.header("authorization", format!("Bearer {k}"));
    }
    if let Some(b) = body {
        builder.header("content-type", "application/json").body(b);
    }
    let resp: IncomingResponse = match spin_sdk::http::send(builder.build()).await {
        Ok(r) => r,
        Err(e) => {
            let err = ApiError::unavailable(
                "upstream_unavailable",
                "The speech backend is unreachable. Retry after the time given in Retry-After.",
            );
            let _ = e; // details stay inside the host's logs
            return respond_error(out, &err, rid).await;
        }
    };
    let status = resp.status();
    if status >= 500 && status != 503 {
        return respond_error(
            out,
            &ApiError::new(
                ErrorKind::BadGateway,
                "upstream_error",
                "The speech backend failed.",
            ),
            rid,
        )
        .await;
    }
    let upstream = resp.headers();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for name in [
        "content-type",
        "retry-after",
        "x-audio-duration-ms",
        "x-synthesis-ms",
        "x-time-to-first-audio-ms",
        "cache-control",
    ] {
        for v in upstream.get(name) {
            headers.push((name.to_string(), v));
        }
    }
    headers.push(("x-request-id".into(), rid.as_bytes().to_vec()));
    if path_and_query == "/v1/audio/speech" {
        headers.push(("x-cache".into(), b"miss".to_vec()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(status);
    let mut sink = outgoing.take_body();
    out.set(outgoing);
    let mut stream = resp.take_body_stream();
    let mut tee = (status == 200)
        .then(|| cache_keys.map(|k| (k, Vec::new())))
        .flatten();
    let mut complete = true;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            complete = false;
            break;
        };
        if let Some((_, buf)) = &mut tee {
            if buf.len() + chunk.len() <= cfg.cache_max_entry_bytes {
                buf.extend_from_slice(&chunk);
            } else {
                tee = None;
            }
        }
        if sink.send(chunk).await.is_err() {
            complete = false;
            break;
        }
    }
    if complete && let Some((keys, buf)) = tee {
        for k in &keys {
            cache::put(k, &buf, cfg.cache_ttl_secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::Post, "/v1/audio/speech"), Route::Speech);
        assert_eq!(
            route(&Method::Get, "/v1/audio/speech"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route(&Method::Get, "/v1/models/tts-1"), Route::Forward);
        assert_eq!(route(&Method::Get, "/health"), Route::Health);
        assert_eq!(
            route(&Method::Post, "/health"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            route(&Method::Get, "/dev/phonemize"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route(&Method::Get, "/nope"), Route::NotFound);
        assert_eq!(route(&Method::Post, "/dev/phonemize"), Route::Forward);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
