//! The outbound allow-list: the component may call only the configured
//! authorities (the backend by default); anything else is refused with
//! `HttpRequestDenied` before a connection is made.

use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime_wasi_http::WasiHttpHooks;

/// Outbound HTTP only to the allowed authorities (`host:port`).
pub struct AllowList {
    pub allowed: Arc<Vec<String>>,
}

pub fn authority_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next()?;
    (!auth.is_empty()).then(|| auth.to_ascii_lowercase())
}

impl WasiHttpHooks for AllowList {
    fn send_request(
        &mut self,
        request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<
            dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send,
        >,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    hyper::Response<wasmtime_wasi_http::WasiBody>,
                    Box<
                        dyn Future<
                                Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>,
                            > + Send,
                    >,
                )>,
            > + Send,
    > {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase());
        let ok = authority
            .as_ref()
            .is_some_and(|a| self.allowed.iter().any(|x| x == a));
        if !ok {
            tracing::warn!(?authority, "outbound request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            authority_of("http://127.0.0.1:8880").as_deref(),
            Some("127.0.0.1:8880")
        );
        assert_eq!(
            authority_of("http://Example.COM:80/x?y").as_deref(),
            Some("example.com:80")
        );
        assert_eq!(authority_of("http://"), None);
    }
}
