//! The server: a store per request (or a warm instance in wasi-nn mode), the
//! response-head time-out, host errors in the contract's shape, and the accept
//! loop.

use crate::allow::AllowList;
use crate::pool::Job;
use crate::{nn, spin};
use anyhow::{Context, Result};
use http_body_util::BodyExt;
use kokoro_core::ApiError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A request body the host has read whole.
pub type Whole = http_body_util::combinators::MapErr<
    http_body_util::Full<hyper::body::Bytes>,
    fn(std::convert::Infallible) -> hyper::Error,
>;

fn never(n: std::convert::Infallible) -> hyper::Error {
    match n {}
}

/// Per-request host state.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub table: ResourceTable,
    hooks: AllowList,
    limits: StoreLimits,
    spin: spin::SpinCtx,
    pub nn: wasmtime_wasi_nn::wit::WasiNnCtx,
    /// Set when the request is abandoned (response-head time-out, the longest run
    /// passed): the next epoch tick traps the guest.
    pub guard: Arc<Guard>,
}

/// A request's stop switch, checked on every epoch tick while its guest runs:
/// cancelled (a 504), or past its longest run.
#[derive(Debug, Default)]
pub struct Guard {
    pub cancel: std::sync::atomic::AtomicBool,
    deadline: Option<std::time::Instant>,
}

impl Guard {
    /// A guard whose guest is stopped at `deadline` at the latest.
    pub fn until(deadline: std::time::Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    pub fn cancel(&self) {
        self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// What a store does at each epoch tick: trap once cancelled or past the
    /// deadline, else yield and go on for another tick.
    pub fn on_epoch(&self) -> wasmtime::UpdateDeadline {
        if self.cancel.load(std::sync::atomic::Ordering::SeqCst)
            || self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
        {
            wasmtime::UpdateDeadline::Interrupt
        } else {
            wasmtime::UpdateDeadline::Yield(1)
        }
    }
}

/// How often the engine's epoch advances: the finest time-out granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

impl spin::HasSpin for State {
    fn spin(&mut self) -> spin::SpinView<'_> {
        spin::SpinView {
            ctx: &self.spin,
            table: &mut self.table,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

pub struct Server {
    pub pre: ProxyPre<State>,
    /// wasi-nn mode: the warm instances' queue.
    pub warm: Option<tokio::sync::mpsc::Sender<Job>>,
    pub graphs: nn::Graphs,
    pub preopen: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub kv: Arc<spin::Kv>,
    pub variables: Arc<std::collections::HashMap<String, String>>,
    pub allowed: Arc<Vec<String>>,
    pub max_memory: usize,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// Longest a request's guest may run in all (a stream included).
    pub max_run: Duration,
    /// The WebSocket route, served by the host itself (`socket.rs`).
    pub socket: crate::socket::Passthrough,
}

/// The contract's error envelope and headers (from `kokoro-core`, as everywhere else).
pub fn error_response(e: &ApiError) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(hyper::body::Bytes::from(e.to_json()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(e.status()).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (name, value) in e.headers() {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            h.insert(hyper::header::HeaderName::from_static(name), v);
        }
    }
    resp
}

/// wasmtime 48 has its own error type; bring it into anyhow at the boundary.
pub fn w<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:?}"))
}

impl Server {
    /// A store with the host state for one instance.
    pub fn new_store(&self) -> Result<Store<State>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr().envs(&self.env);
        if let Some(dir) = &self.preopen {
            w(wasi.preopened_dir(dir, "/assets", wasmtime_wasi::FsPerms::ReadOnly))
                .with_context(|| format!("cannot preopen {}", dir.display()))?;
        }
        let mut store = Store::new(
            self.pre.engine(),
            State {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: AllowList {
                    allowed: self.allowed.clone(),
                },
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.max_memory)
                    .instances(4)
                    .build(),
                spin: spin::SpinCtx {
                    kv: self.kv.clone(),
                    variables: self.variables.clone(),
                },
                nn: self.graphs.ctx(),
                guard: Arc::new(Guard::default()),
            },
        );
        store.limiter(|s| &mut s.limits);
        // Every tick the guest runs, check its switch; yield so a busy guest never
        // holds a runtime thread for more than a tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().guard.on_epoch()));
        Ok(store)
    }

    /// Read the request body before any instance runs, within the body time-out and
    /// the size limit (a trickled body holds no store, no warm instance).
    async fn read_body(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Request<Whole>, ApiError> {
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        let bytes = match tokio::time::timeout(self.body_timeout, limited.collect()).await {
            Err(_) => return Err(ApiError::body_timeout(self.body_timeout.as_secs_f64())),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::payload_too_large(self.max_body_bytes));
            }
            Ok(Err(_)) => return Err(ApiError::unreadable_body()),
            Ok(Ok(c)) => c.to_bytes(),
        };
        let body = http_body_util::Full::new(bytes).map_err(never as fn(_) -> _);
        Ok(hyper::Request::from_parts(parts, body))
    }

    pub async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        if crate::socket::wants(&req) {
            return Ok(crate::socket::pass(&self.socket, req).await);
        }
        let req = match self.read_body(req).await {
            Ok(r) => r,
            Err(e) => {
                // The rest of the body is never read: the connection closes.
                let mut resp = error_response(&e);
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                return Ok(resp);
            }
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let guard = Arc::new(Guard::until(std::time::Instant::now() + self.max_run));
        if let Some(warm) = &self.warm {
            let job = Job {
                req,
                reply: sender,
                guard: guard.clone(),
            };
            if warm.try_send(job).is_err() {
                return Ok(error_response(&ApiError::rate_limited()));
            }
            return Ok(self.await_head(receiver, None, &guard).await);
        }
        let mut store = self.new_store()?;
        store.data_mut().guard = guard.clone();
        let req = w(store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req))?;
        let out = w(store.data_mut().http().new_response_outparam(sender))?;
        let pre = self.pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(store, req, out)
                .await
        });
        Ok(self.await_head(receiver, Some(task), &guard).await)
    }

    /// Wait for the response head (with the time-out); errors in the contract's shape.
    async fn await_head(
        &self,
        receiver: tokio::sync::oneshot::Receiver<
            Result<
                hyper::Response<HyperOutgoingBody>,
                wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
            >,
        >,
        task: Option<tokio::task::JoinHandle<wasmtime::Result<()>>>,
        guard: &Guard,
    ) -> hyper::Response<HyperOutgoingBody> {
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(Ok(resp))) => resp,
            Ok(Ok(Err(e))) => {
                tracing::error!(error = ?e, "component returned an error");
                error_response(&ApiError::component_failed())
            }
            Ok(Err(_)) => {
                let detail = match task {
                    None => "the warm instance dropped the request (see its log)".to_string(),
                    Some(task) => match task.await {
                        Ok(Ok(())) => "component never set a response".to_string(),
                        Ok(Err(e)) => format!("{e:?}"),
                        Err(e) => format!("{e:?}"),
                    },
                };
                tracing::error!(detail, "component trapped");
                error_response(&ApiError::internal())
            }
            Err(_) => {
                // Stop the guest too: a warm instance would otherwise go on working
                // for a client that has its 504.
                guard.cancel();
                if let Some(task) = task {
                    task.abort();
                }
                error_response(&ApiError::edge_timeout())
            }
        }
    }
}

/// Serve until the process ends, with the connection loop the backend runs too
/// (`kokoro-serve`: head and write time-outs, the connection cap, accept errors
/// logged and survived).
pub async fn serve(server: Arc<Server>, listener: TcpListener, limits: kokoro_serve::Limits) {
    let svc = hyper::service::service_fn(move |req| server.clone().handle(req));
    let stats = Arc::new(kokoro_serve::Stats::default());
    kokoro_serve::serve(listener, limits, stats, svc, std::future::pending()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(module (func (export "spin") (loop br 0)))`, encoded by hand.
    const SPIN: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // function 0 of type 0
        0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export "spin"
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
    ];

    #[tokio::test]
    async fn a_spinning_guest_is_stopped_when_its_request_is_cancelled() {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&cfg).unwrap();
        let module = wasmtime::Module::new(&engine, SPIN).unwrap();
        let guard = Arc::new(Guard::default());
        let mut store = wasmtime::Store::new(&engine, guard.clone());
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().on_epoch()));
        let ticker = engine.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                std::thread::sleep(EPOCH_TICK);
                ticker.increment_epoch();
            }
        });
        let instance = wasmtime::Instance::new_async(&mut store, &module, &[])
            .await
            .unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let g = guard.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            g.cancel();
        });
        let t = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), spin.call_async(&mut store, ()))
            .await
            .expect("the guest was stopped");
        assert!(r.is_err(), "the spin loop ended by a trap");
        assert!(t.elapsed() >= Duration::from_millis(300));
        // The longest run ends a guest without a cancel.
        let past = Guard::until(std::time::Instant::now());
        assert!(matches!(
            past.on_epoch(),
            wasmtime::UpdateDeadline::Interrupt
        ));
        let later = Guard::until(std::time::Instant::now() + Duration::from_secs(60));
        assert!(matches!(
            later.on_epoch(),
            wasmtime::UpdateDeadline::Yield(1)
        ));
    }
}
