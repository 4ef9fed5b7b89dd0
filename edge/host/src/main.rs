//! `kokoro-edge`: serve the kokoro-edge component on loopback the way `spin up`
//! would, on wasmtime + wasmtime-wasi + wasmtime-wasi-http.
//!
//! - One compiled component, pre-instantiated once (`ProxyPre`); each request gets
//!   a fresh store (isolation) with a memory limit and a time-out for its response head.
//! - Outbound HTTP only to the allow-listed authorities (the backend by default);
//!   anything else is refused with `HttpRequestDenied`.
//! - Configuration reaches the component as environment variables (`KOKORO_*`).
//!
//! - Spin's key-value store (`default` label: a directory, or memory) and Spin
//!   variables, so the component's `spin` build (with the response cache) runs here
//!   unchanged; the wasi-only build runs too.

mod nn;
mod spin;

use anyhow::{Context, Result};
use clap::Parser;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use kokoro_core::{ApiError, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

#[derive(Parser, Debug)]
#[command(
    name = "kokoro-edge",
    version,
    about = "Serve the kokoro-edge component locally"
)]
struct Args {
    /// Listen address (the same default as `spin up`).
    #[arg(long, env = "KOKORO_EDGE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The component (`make wasm` builds target/edge-spin.wasm and target/edge-wasi.wasm).
    #[arg(
        long,
        env = "KOKORO_EDGE_COMPONENT",
        default_value = "target/edge-spin.wasm"
    )]
    component: PathBuf,
    /// Directory of the key-value store behind the cache.
    #[arg(long, env = "KOKORO_EDGE_KV_DIR", default_value = "target/edge-kv")]
    kv_dir: PathBuf,
    /// Keep the key-value store in memory instead.
    #[arg(long, env = "KOKORO_EDGE_KV_MEMORY")]
    kv_memory: bool,
    /// Cache entry time-to-live, seconds.
    #[arg(long, env = "KOKORO_CACHE_TTL_SECS", default_value_t = 86_400)]
    cache_ttl_secs: u64,
    /// Largest cached response, bytes.
    #[arg(long, env = "KOKORO_CACHE_MAX_BYTES", default_value_t = 8 << 20)]
    cache_max_bytes: u64,
    /// Backend base URL, passed to the component and allow-listed for outbound HTTP.
    #[arg(
        long,
        env = "KOKORO_BACKEND_URL",
        default_value = "http://127.0.0.1:8880"
    )]
    backend_url: String,
    /// API keys the edge requires (comma-separated; empty: none).
    #[arg(
        long,
        env = "KOKORO_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    api_keys: String,
    /// Key the edge presents to the backend.
    #[arg(
        long,
        env = "KOKORO_BACKEND_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    backend_api_key: String,
    /// Authorities (`host:port`) the component may call; default: the backend's.
    #[arg(long = "allow", env = "KOKORO_EDGE_ALLOW", value_delimiter = ',')]
    allow: Vec<String>,
    /// Linear-memory limit per instance, in MiB.
    #[arg(long, env = "KOKORO_EDGE_MAX_MEMORY_MIB", default_value_t = 128)]
    max_memory_mib: usize,
    /// Seconds to wait for the component's response head.
    #[arg(long, env = "KOKORO_EDGE_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// wasi-nn mode: load this ONNX model once and offer it to the component as the
    /// graph `--nn-graph` (serve the component's `wasi-nn` build, target/edge-nn.wasm).
    #[arg(long, env = "KOKORO_EDGE_NN_MODEL")]
    nn_model: Option<PathBuf>,
    /// Name the component loads the graph by.
    #[arg(long, env = "KOKORO_EDGE_NN_GRAPH", default_value = "kokoro")]
    nn_graph: String,
    /// Execution provider for the graph.
    #[arg(long, env = "KOKORO_EDGE_NN_DEVICE", value_enum, default_value = "cpu")]
    nn_device: nn::NnDevice,
    /// Assets directory (ONNX Runtime library, vocab.json, voices/); default: the
    /// `cargo xtask assets` cache. Preopened read-only as /assets in wasi-nn mode.
    #[arg(long, env = "KOKORO_ASSETS_DIR")]
    assets_dir: Option<PathBuf>,
    /// Warm instances in wasi-nn mode (each keeps its G2P dictionaries loaded and
    /// serves one request at a time).
    #[arg(long, env = "KOKORO_EDGE_NN_INSTANCES", default_value_t = 1)]
    nn_instances: usize,
    /// Requests waiting for a warm instance before new ones get 429.
    #[arg(long, env = "KOKORO_EDGE_NN_QUEUE", default_value_t = 16)]
    nn_queue: usize,
    /// ONNX Runtime intra-op threads (0: one per CPU).
    #[arg(long, env = "KOKORO_EDGE_NN_INTRA_THREADS", default_value_t = 0)]
    nn_intra_threads: usize,
    /// Linear-memory limit per instance in wasi-nn mode, MiB (G2P dictionaries and
    /// voice packs live there).
    #[arg(long, env = "KOKORO_EDGE_NN_MAX_MEMORY_MIB", default_value_t = 1024)]
    nn_max_memory_mib: usize,
    /// In wasi-nn mode, forward what the component cannot synthesize (mp3, opus,
    /// aac, SSE) to --backend-url instead of refusing it.
    #[arg(long, env = "KOKORO_EDGE_NN_FORWARD")]
    nn_forward: bool,
}

/// Per-request host state.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: AllowList,
    limits: StoreLimits,
    spin: spin::SpinCtx,
    nn: wasmtime_wasi_nn::wit::WasiNnCtx,
}

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

/// Outbound HTTP only to the allowed authorities (`host:port`).
struct AllowList {
    allowed: Arc<Vec<String>>,
}

fn authority_of(url: &str) -> Option<String> {
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

/// A request handed to a warm wasi-nn instance, and where its response goes.
struct Job {
    req: hyper::Request<hyper::body::Incoming>,
    reply: tokio::sync::oneshot::Sender<
        Result<
            hyper::Response<HyperOutgoingBody>,
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
        >,
    >,
}

struct Server {
    pre: ProxyPre<State>,
    /// wasi-nn mode: the warm instances' queue.
    warm: Option<tokio::sync::mpsc::Sender<Job>>,
    graphs: nn::Graphs,
    preopen: Option<PathBuf>,
    env: Vec<(String, String)>,
    kv: Arc<spin::Kv>,
    variables: Arc<std::collections::HashMap<String, String>>,
    allowed: Arc<Vec<String>>,
    max_memory: usize,
    timeout: Duration,
}

/// The contract's error envelope (from `kokoro-core`, as everywhere else); Retry-After
/// only on retryable kinds.
fn error_response(e: &ApiError) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(hyper::body::Bytes::from(e.to_json()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(e.status()).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if e.kind.is_retryable() {
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    resp
}

/// wasmtime 48 has its own error type; bring it into anyhow at the boundary.
fn w<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:?}"))
}

impl Server {
    /// A store with the host state for one instance.
    fn new_store(&self) -> Result<Store<State>> {
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
            },
        );
        store.limiter(|s| &mut s.limits);
        Ok(store)
    }

    /// One warm instance on its own thread and single-threaded runtime: inference
    /// blocks that thread, never the server's runtime. The instance serves requests
    /// one after another (its G2P dictionaries and voice packs stay loaded); a trap
    /// replaces it with a fresh one.
    fn warm_worker(
        self: Arc<Self>,
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
                    let mut store = self.new_store()?;
                    let proxy = w(self.pre.instantiate_async(&mut store).await)?;
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

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        if let Some(warm) = &self.warm {
            if warm.try_send(Job { req, reply: sender }).is_err() {
                return Ok(error_response(&ApiError::rate_limited()));
            }
            return Ok(self.await_head(receiver, None).await);
        }
        let mut store = self.new_store()?;
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
        Ok(self.await_head(receiver, Some(task)).await)
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
    ) -> hyper::Response<HyperOutgoingBody> {
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(Ok(resp))) => resp,
            Ok(Ok(Err(e))) => {
                tracing::error!(error = ?e, "component returned an error");
                error_response(&ApiError::new(
                    ErrorKind::BadGateway,
                    "upstream_error",
                    "The edge component failed.",
                ))
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
                if let Some(task) = task {
                    task.abort();
                }
                error_response(&ApiError::new(
                    ErrorKind::GatewayTimeout,
                    "upstream_timeout",
                    "The edge did not answer in time.",
                ))
            }
        }
    }
}

/// POST a one-word synthesis to ourselves and read the answer to the end.
async fn warm_up(addr: SocketAddr) {
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

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOKORO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // Pooling allocator: instance memories come from a reused pool instead of a
    // fresh mapping per request (the component is instantiated for every request).
    let mut config = Config::new();
    let nn_mode = args.nn_model.is_some();
    if !nn_mode {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_memories(256)
            .total_tables(256)
            .max_memory_size(args.max_memory_mib << 20);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    // wasi-nn mode: a few long-lived instances (on-demand allocation), the graph
    // loaded once here and shared by all of them.
    let assets_dir = args.assets_dir.clone().unwrap_or_else(|| {
        let var = |k: &str| std::env::var(k).ok();
        PathBuf::from(kokoro_core::assets::default_dir(
            None,
            var("XDG_CACHE_HOME").as_deref(),
            var("HOME").as_deref(),
        ))
    });
    let graphs = match &args.nn_model {
        Some(model) => {
            nn::init_ort(&assets_dir.join(kokoro_core::assets::ORT_DYLIB))?;
            let t = std::time::Instant::now();
            let g = nn::Graphs::load(&args.nn_graph, model, args.nn_device, args.nn_intra_threads)?;
            tracing::info!(model = %model.display(), device = ?args.nn_device, load_ms = t.elapsed().as_millis() as u64, "wasi-nn graph loaded");
            g
        }
        None => nn::Graphs::default(),
    };
    let engine = w(Engine::new(&config))?;
    let t = std::time::Instant::now();
    let component = w(Component::from_file(&engine, &args.component)).with_context(|| {
        format!(
            "cannot load component {} (run `make wasm`)",
            args.component.display()
        )
    })?;
    let mut linker = Linker::new(&engine);
    w(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    w(spin::add_to_linker(&mut linker))?;
    w(wasmtime_wasi_nn::wit::add_to_linker(
        &mut linker,
        |s: &mut State| wasmtime_wasi_nn::wit::WasiNnView::new(&mut s.table, &mut s.nn),
    ))?;
    w(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
        &mut linker,
    ))?;
    let pre = w(ProxyPre::new(w(linker.instantiate_pre(&component))?))?;
    let backend = authority_of(&args.backend_url).context("--backend-url has no host")?;
    let mut env = vec![
        ("KOKORO_BACKEND_URL".to_string(), args.backend_url.clone()),
        ("KOKORO_API_KEYS".to_string(), args.api_keys.clone()),
        (
            "KOKORO_BACKEND_API_KEY".to_string(),
            args.backend_api_key.clone(),
        ),
        (
            "KOKORO_CACHE_TTL_SECS".to_string(),
            args.cache_ttl_secs.to_string(),
        ),
        (
            "KOKORO_CACHE_MAX_BYTES".to_string(),
            args.cache_max_bytes.to_string(),
        ),
    ];
    if nn_mode {
        env.push(("KOKORO_NN_GRAPH".to_string(), args.nn_graph.clone()));
        env.push(("KOKORO_NN_ASSETS".to_string(), "/assets".to_string()));
        env.push((
            "KOKORO_NN_FORWARD".to_string(),
            if args.nn_forward { "1" } else { "0" }.to_string(),
        ));
    }
    // The same settings as environment (wasi-only build) and as Spin variables.
    let variables = env
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let kv = if args.kv_memory {
        spin::Kv::Memory(Default::default())
    } else {
        spin::Kv::Dir(args.kv_dir.clone())
    };
    let (warm_tx, warm_rx) = tokio::sync::mpsc::channel(args.nn_queue.max(1));
    let server = Arc::new(Server {
        pre,
        warm: nn_mode.then_some(warm_tx),
        graphs,
        preopen: nn_mode.then(|| assets_dir.clone()),
        kv: Arc::new(kv),
        variables: Arc::new(variables),
        env,
        allowed: Arc::new(if args.allow.is_empty() {
            vec![backend]
        } else {
            args.allow.iter().map(|a| a.to_ascii_lowercase()).collect()
        }),
        max_memory: if nn_mode {
            args.nn_max_memory_mib
        } else {
            args.max_memory_mib
        } << 20,
        timeout: Duration::from_secs(args.timeout_secs),
    });
    if nn_mode {
        let rx = Arc::new(tokio::sync::Mutex::new(warm_rx));
        for i in 0..args.nn_instances.max(1) {
            let (server, rx) = (server.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("edge-nn-{i}"))
                .spawn(move || server.warm_worker(rx, i))
                .context("cannot spawn a wasi-nn worker")?;
        }
    } else {
        drop(warm_rx);
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if nn_mode {
        // One short synthesis per warm instance, so the first client does not pay
        // for the G2P dictionaries and voice packs.
        for _ in 0..args.nn_instances.max(1) {
            tokio::spawn(warm_up(args.listen));
        }
    }
    tracing::info!(component = %args.component.display(), compile_ms = t.elapsed().as_millis() as u64, "component ready");
    println!("kokoro-edge serving http://{}", args.listen);
    loop {
        let (client, _) = listener.accept().await?;
        let server = server.clone();
        tokio::task::spawn(async move {
            let svc = hyper::service::service_fn(move |req| server.clone().handle(req));
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), svc)
                .await
            {
                tracing::debug!(error = ?e, "connection ended with an error");
            }
        });
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
