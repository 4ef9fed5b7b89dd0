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
use kokoro_core::boundary::{self, Match, REQUEST_ID, Route};
use kokoro_core::{ApiError, SpeechRequest};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingResponse, Request, ResponseOutparam,
};

/// The method as sent, for the route table.
fn method_str(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(s) => s,
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
    let mut headers = e.headers();
    headers.push((REQUEST_ID, request_id.to_string()));
    respond(out, e.status(), &headers, e.to_json().into_bytes()).await;
}

fn request_id(req: &IncomingRequest) -> String {
    header(&req.headers(), REQUEST_ID)
        .filter(|s| boundary::accept_request_id(s).is_some())
        .unwrap_or_else(|| format!("edge-{:016x}", clock_id()))
}

/// Request ids for requests that bring none: wall-clock nanoseconds (unique enough for
/// log correlation; no randomness is needed).
fn clock_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The API-key rule both tiers share (`kokoro_core::boundary::authorized`).
fn authorized(cfg: &Config, req: &IncomingRequest) -> bool {
    let h = req.headers();
    boundary::authorized(
        &cfg.api_keys,
        header(&h, "authorization").as_deref(),
        header(&h, "x-api-key").as_deref(),
    )
}

/// Read a request body, refusing more than `limit` bytes.
async fn read_body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = req.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_json(req: &IncomingRequest) -> bool {
    boundary::is_json(header(&req.headers(), "content-type").as_deref())
}

/// One of the playground's files, with its content type and headers.
async fn respond_web(out: ResponseOutparam, asset: kokoro_web::Asset, rid: String) {
    let mut headers: Vec<(&str, String)> = kokoro_web::HEADERS
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect();
    headers.push(("content-type", asset.content_type.to_string()));
    headers.push((REQUEST_ID, rid));
    respond(out, 200, &headers, asset.body.to_vec()).await
}

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let cfg = Config::load();
    let rid = request_id(&req);
    let full = req.path_with_query().unwrap_or_default();
    let path = full.split('?').next().unwrap_or("").to_string();
    let method = req.method();
    if !boundary::is_open(&path) && !authorized(&cfg, &req) {
        return respond_error(out, &ApiError::unauthorized(), &rid).await;
    }
    let route = match boundary::match_route(method_str(&method), &path) {
        Match::Found(spec) => spec.route,
        Match::NotFound => return respond_error(out, &ApiError::no_such_route(), &rid).await,
        Match::MethodNotAllowed(allow) => {
            let e = ApiError::method_not_allowed();
            let mut headers = e.headers();
            headers.push((REQUEST_ID, rid));
            headers.push(("allow", allow.to_string()));
            return respond(out, e.status(), &headers, e.to_json().into_bytes()).await;
        }
    };
    match route {
        Route::Phonemize | Route::GenerateFromPhonemes if !cfg.dev_routes => {
            respond_error(out, &ApiError::no_such_route(), &rid).await
        }
        // wasi:http has no upgrade: the kokoro-edge host serves the WebSocket itself
        // (passed through to the backend) before any component runs, and under
        // `spin up` clients connect to the backend for it. A plain request is told so.
        Route::StreamInput => {
            let e = ApiError::websocket_required();
            let mut headers = e.headers();
            headers.push((REQUEST_ID, rid));
            // (No `Upgrade` header: wasi:http forbids it, and a field list
            // with it is refused whole.)
            respond(out, e.status(), &headers, e.to_json().into_bytes()).await
        }
        // The playground is compiled in: it works with or without a backend.
        Route::Root => {
            let headers = [
                ("location", kokoro_web::PAGE.to_string()),
                (REQUEST_ID, rid),
            ];
            respond(out, 307, &headers, Vec::new()).await
        }
        Route::Web => respond_web(out, kokoro_web::index(), rid).await,
        Route::WebAsset => match path.strip_prefix("/web/").and_then(kokoro_web::asset) {
            Some(asset) => respond_web(out, asset, rid).await,
            None => respond_error(out, &ApiError::no_such_route(), &rid).await,
        },
        Route::Health => {
            respond(
                out,
                200,
                &[
                    ("content-type", "application/json".into()),
                    (REQUEST_ID, rid),
                ],
                br#"{"status":"ok","tier":"edge"}"#.to_vec(),
            )
            .await
        }
        // Everything else is the backend's to answer (the wasi-nn build answers the
        // informational routes itself).
        Route::Models
        | Route::Model
        | Route::Voices
        | Route::Status
        | Route::Metrics
        | Route::Phonemize
        | Route::GenerateFromPhonemes
        | Route::CaptionedSpeech => {
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
            let mut fill = None;
            let mut hit = cache::get(&raw_key);
            if hit.is_none() && cache::enabled() {
                let normalized =
                    kokoro_core::normalize::normalize(&speech.input, &speech.normalization);
                let key =
                    kokoro_core::cache_key::cache_key(&speech, &normalized, &cfg.model_version);
                hit = cache::get(&key);
                if hit.is_some() {
                    cache::put_alias(&raw_key, &key, cfg.cache_ttl_secs);
                }
                fill = Some(CacheFill { raw_key, key });
            }
            if let Some(hit) = hit {
                return respond(
                    out,
                    200,
                    &[
                        ("content-type", hit.content_type),
                        ("x-cache", "hit".into()),
                        ("cache-control", cache_control(&cfg)),
                        ("x-request-id", rid),
                    ],
                    hit.body,
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
            let store = fill.filter(|_| cache::enabled());
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

/// Where a response goes in the cache: under its normalized key, with the key of
/// the request as sent as an alias.
struct CacheFill {
    raw_key: String,
    key: String,
}

/// A cached answer is the same for every client with the same request, but behind
/// API keys a shared cache must not keep it (`private`).
fn cache_control(cfg: &Config) -> String {
    let scope = if cfg.api_keys.is_empty() {
        "public"
    } else {
        "private"
    };
    format!("{scope}, max-age={}", cfg.cache_ttl_secs)
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
    cache_keys: Option<CacheFill>,
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
            let _ = e; // details stay inside the host's logs
            return respond_error(out, &ApiError::upstream_unavailable(), rid).await;
        }
    };
    let status = resp.status();
    if status >= 500 && status != 503 {
        return respond_error(out, &ApiError::upstream_error(), rid).await;
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
    if complete && let Some((fill, buf)) = tee {
        let content_type = upstream
            .get("content-type")
            .into_iter()
            .next()
            .and_then(|v| String::from_utf8(v).ok())
            .unwrap_or_else(|| "application/octet-stream".into());
        cache::put(&fill.key, &content_type, &buf, cfg.cache_ttl_secs);
        cache::put_alias(&fill.raw_key, &fill.key, cfg.cache_ttl_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_reach_the_route_table_as_sent() {
        assert_eq!(method_str(&Method::Post), "POST");
        assert_eq!(method_str(&Method::Other("get".into())), "get");
        let r = |m: &Method, p| boundary::match_route(method_str(m), p);
        assert!(matches!(
            r(&Method::Post, "/v1/audio/speech"),
            Match::Found(_)
        ));
        assert_eq!(
            r(&Method::Get, "/v1/audio/speech"),
            Match::MethodNotAllowed("POST")
        );
        assert_eq!(
            r(&Method::Other("get".into()), "/health"),
            Match::MethodNotAllowed("GET")
        );
    }
}
