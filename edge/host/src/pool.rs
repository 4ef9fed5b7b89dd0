//! wasi-nn mode's warm instances: each lives on its own thread with a
//! single-threaded runtime (inference blocks that thread, never the server's),
//! serves queued requests one after another (G2P dictionaries and voice packs
//! stay loaded), and is replaced when it traps.

use crate::server::{Server, w};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A request handed to a warm wasi-nn instance, and where its response goes.
pub struct Job {
    pub req: hyper::Request<crate::server::Whole>,
    pub reply: tokio::sync::oneshot::Sender<
        Result<
            hyper::Response<HyperOutgoingBody>,
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
        >,
    >,
    /// The request's stop switch (installed in the instance's store for the job).
    pub guard: Arc<crate::server::Guard>,
}

/// One warm instance on its own thread and single-threaded runtime: inference
/// blocks that thread, never the server's runtime. The instance serves requests
/// one after another (its G2P dictionaries and voice packs stay loaded); a trap
/// replaces it with a fresh one.
pub fn warm_worker(
    server: Arc<Server>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Job>>>,
    i: usize,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = ?e, "cannot start a wasi-nn worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        loop {
            let started = std::time::Instant::now();
            let instance = async {
                let mut store = server.new_store()?;
                let proxy = w(server.pre.instantiate_async(&mut store).await)?;
                anyhow::Ok((store, proxy))
            };
            let (mut store, proxy) = match instance.await {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = ?e, "cannot instantiate the component");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(
                worker = i,
                ms = started.elapsed().as_millis() as u64,
                "warm instance ready"
            );
            loop {
                let Some(job) = rx.lock().await.recv().await else {
                    return;
                };
                store.data_mut().guard = job.guard;
                let served = async {
                    let req = w(store
                        .data_mut()
                        .http()
                        .new_incoming_request(Scheme::Http, job.req))?;
                    let out = w(store.data_mut().http().new_response_outparam(job.reply))?;
                    w(proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await)
                };
                if let Err(e) = served.await {
                    tracing::error!(error = ?e, "component trapped; replacing the instance");
                    break;
                }
            }
        }
    });
}

/// POST a one-word synthesis to ourselves and read the answer to the end.
pub async fn warm_up(addr: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = std::time::Instant::now();
    let body = r#"{"input":"Ready.","voice":"af_heart","response_format":"pcm","stream":false}"#;
    let req = format!(
        "POST /v1/audio/speech HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let result = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        std::io::Result::Ok(out)
    }
    .await;
    match result {
        Ok(out) if out.starts_with(b"HTTP/1.1 200") => {
            tracing::info!(
                ms = t.elapsed().as_millis() as u64,
                "warm-up synthesis done"
            );
        }
        Ok(out) => {
            let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
            tracing::warn!(head, "warm-up synthesis failed");
        }
        Err(e) => tracing::warn!(error = %e, "warm-up request failed"),
    }
}
