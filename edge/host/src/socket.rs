//! The WebSocket route (`/v1/text-to-speech/{voice_id}/stream-input`) passed
//! through to the backend natively: wasi:http has no upgrade, so no component can
//! serve it. The host checks the client's key by the edge's rule (the same keys
//! as the component; here the key must come with the handshake, as a header or
//! the `authorization` query parameter, since the host does not read messages),
//! makes the backend's handshake with the edge's own backend key, answers the
//! client with the backend's `101`, and then copies bytes both ways until either
//! side closes. The backend bounds the session (budgets, admission, inactivity);
//! the connection loop's write deadline stays on the client's side.

use crate::server::error_response;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use kokoro_core::ApiError;
use kokoro_core::boundary;
use std::time::Duration;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// What the passthrough needs of the host's configuration.
#[derive(Debug, Clone, Default)]
pub struct Passthrough {
    /// The backend's `host:port` and its base path (without a trailing `/`).
    pub backend: String,
    pub base_path: String,
    /// Keys clients must present (empty: none), and the key the edge presents.
    pub api_keys: Vec<String>,
    pub backend_api_key: String,
    /// For the backend's handshake (connect and response head).
    pub timeout: Duration,
}

/// Whether a request asks for this route's upgrade.
pub fn wants(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    boundary::is_stream_input(req.uri().path())
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query without the client's `authorization` parameter (the edge's key is
/// not the backend's).
fn forwarded_query(query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("authorization="))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// Hop-by-hop or credential headers not copied to the backend's handshake.
const DROPPED: [&str; 6] = [
    "host",
    "authorization",
    "x-api-key",
    "xi-api-key",
    "content-length",
    "transfer-encoding",
];

fn plain(e: &ApiError) -> hyper::Response<HyperOutgoingBody> {
    error_response(e)
}

/// Serve one upgrade request: the backend's answer, and on `101` the splice.
pub async fn pass(
    cfg: &Passthrough,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    let h = req.headers();
    let value = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let query = req.uri().query().unwrap_or("");
    let query_key = query_param(query, "authorization");
    let ok = boundary::authorized(
        &cfg.api_keys,
        value("authorization"),
        value("x-api-key").or(value("xi-api-key")),
    ) || boundary::authorized(&cfg.api_keys, query_key.as_deref(), None);
    if !ok {
        return plain(&ApiError::unauthorized());
    }
    let target = format!(
        "{}{}{}",
        cfg.base_path,
        req.uri().path(),
        forwarded_query(req.uri().query())
    );
    let mut up = hyper::Request::builder()
        .method(hyper::Method::GET)
        .uri(&target);
    for (name, v) in req.headers() {
        if !DROPPED.contains(&name.as_str()) {
            up = up.header(name, v);
        }
    }
    up = up.header(header::HOST, &cfg.backend);
    if !cfg.backend_api_key.is_empty() {
        up = up.header(
            header::AUTHORIZATION,
            format!("Bearer {}", cfg.backend_api_key),
        );
    }
    let Ok(up) = up.body(http_body_util::Empty::<hyper::body::Bytes>::new()) else {
        return plain(&ApiError::invalid(
            "path",
            "invalid_value",
            "The request's path or headers cannot be forwarded.",
        ));
    };
    let handshake = async {
        let stream = tokio::net::TcpStream::connect(&cfg.backend).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend socket ended with an error");
            }
        });
        sender.send_request(up).await.ok()
    };
    let mut resp = match tokio::time::timeout(cfg.timeout, handshake).await {
        Ok(Some(r)) => r,
        Ok(None) => return plain(&ApiError::upstream_unavailable()),
        Err(_) => return plain(&ApiError::edge_timeout()),
    };
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        // The backend's refusal (a 4xx in the contract's shape) goes back as it is.
        let (parts, body) = resp.into_parts();
        let bytes = match tokio::time::timeout(cfg.timeout, body.collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            _ => return plain(&ApiError::upstream_error()),
        };
        let body = http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync();
        return hyper::Response::from_parts(parts, body);
    }
    let mut answer = hyper::Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *answer.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    for (name, v) in resp.headers() {
        answer.headers_mut().append(name, v.clone());
    }
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let client = hyper::upgrade::on(&mut req);
    let backend = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(backend)) = (client.await, backend.await) else {
            tracing::debug!("a side of the socket did not upgrade");
            return;
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(backend));
        // Either side closing (or failing its write deadline) ends both.
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_key_stays_at_the_edge() {
        assert_eq!(
            forwarded_query(Some(
                "model_id=x&authorization=Bearer%20k&output_format=pcm_24000"
            )),
            "?model_id=x&output_format=pcm_24000"
        );
        assert_eq!(forwarded_query(Some("authorization=k")), "");
        assert_eq!(forwarded_query(None), "");
        assert_eq!(
            query_param("a=1&authorization=Bearer%20k%2B1+x", "authorization").as_deref(),
            Some("Bearer k+1 x")
        );
        assert_eq!(query_param("a=1", "authorization"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
