//! `kokoro-edge`: serve the kokoro-edge component on loopback the way `spin up`
//! would, on wasmtime + wasmtime-wasi + wasmtime-wasi-http.
//!
//! - [`config`]: flags and the validated `HostConfig`.
//! - [`server`]: one compiled component, pre-instantiated once (`ProxyPre`); each
//!   request gets a fresh store (isolation) with a memory limit and a time-out for
//!   its response head; host errors in the contract's shape.
//! - [`allow`]: outbound HTTP only to the allow-listed authorities (the backend by
//!   default); anything else is refused with `HttpRequestDenied`.
//! - [`pool`]: wasi-nn mode's warm instances, each on its own thread.
//! - [`spin`]: Spin's key-value store (`default` label: a directory, or memory)
//!   and variables, so the component's `spin` build (with the response cache)
//!   runs here unchanged; the wasi-only build runs too.
//! - [`nn`]: wasi-nn over our ONNX backend (`kokoro-ort`).
//!
//! Configuration reaches the component as environment variables (`KOKORO_*`) and
//! as Spin variables.

mod allow;
mod config;
mod nn;
mod pool;
mod server;
mod socket;
mod spin;

use anyhow::{Context, Result};
use clap::Parser;
use server::{Server, State, w};
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOKORO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = config::Args::parse()
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let mut wasmtime_cfg = Config::new();
    // Epoch interruption: a guest that spins is stopped at its time-out (see
    // `server::Guard`); one thread advances the epoch.
    wasmtime_cfg.epoch_interruption(true);
    if cfg.nn.is_none() {
        // Pooling allocator: instance memories come from a reused pool instead of a
        // fresh mapping per request (the component is instantiated for every request).
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_memories(256)
            .total_tables(256)
            .max_memory_size(cfg.max_memory);
        wasmtime_cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    // wasi-nn mode: a few long-lived instances (on-demand allocation), the graph
    // loaded once here and shared by all of them.
    let graphs = match &cfg.nn {
        Some(nn_cfg) => {
            nn::init_ort(&nn_cfg.ort_dylib)?;
            let t = std::time::Instant::now();
            let g = nn::Graphs::load(
                &nn_cfg.graph,
                &nn_cfg.model,
                nn_cfg.device,
                nn_cfg.intra_threads,
                cfg.max_memory,
            )?;
            tracing::info!(model = %nn_cfg.model.display(), graphs = ?g.names(), device = ?nn_cfg.device, load_ms = t.elapsed().as_millis() as u64, "wasi-nn graphs loaded");
            g
        }
        None => nn::Graphs::default(),
    };
    let engine = w(Engine::new(&wasmtime_cfg))?;
    let ticker = engine.clone();
    std::thread::Builder::new()
        .name("epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(server::EPOCH_TICK);
                ticker.increment_epoch();
            }
        })
        .context("cannot start the epoch thread")?;
    let t = std::time::Instant::now();
    let component = w(Component::from_file(&engine, &cfg.component)).with_context(|| {
        format!(
            "cannot load component {} (run `make wasm`)",
            cfg.component.display()
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
    // The same settings as environment (wasi-only build) and as Spin variables.
    let variables = cfg
        .env
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let instances = cfg.nn.as_ref().map_or(0, |n| n.instances);
    let (warm_tx, warm_rx) = tokio::sync::mpsc::channel(cfg.nn.as_ref().map_or(1, |n| n.queue));
    let server = Arc::new(Server {
        pre,
        warm: cfg.nn.is_some().then_some(warm_tx),
        graphs,
        preopen: cfg.nn.as_ref().map(|n| n.assets_dir.clone()),
        kv: {
            tracing::info!(bytes = cfg.kv.total_bytes(), "key-value store indexed");
            Arc::new(cfg.kv)
        },
        variables: Arc::new(variables),
        env: cfg.env,
        allowed: Arc::new(cfg.allowed),
        max_memory: cfg.max_memory,
        timeout: cfg.timeout,
        max_body_bytes: cfg.max_body_bytes,
        body_timeout: cfg.limits.body,
        max_run: cfg.max_run,
        socket: cfg.socket,
    });
    let rx = Arc::new(tokio::sync::Mutex::new(warm_rx));
    for i in 0..instances {
        let (server, rx) = (server.clone(), rx.clone());
        std::thread::Builder::new()
            .name(format!("edge-nn-{i}"))
            .spawn(move || pool::warm_worker(server, rx, i))
            .context("cannot spawn a wasi-nn worker")?;
    }
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    // One short synthesis per warm instance, so the first client does not pay
    // for the G2P dictionaries and voice packs.
    for _ in 0..instances {
        tokio::spawn(pool::warm_up(cfg.listen));
    }
    tracing::info!(component = %cfg.component.display(), compile_ms = t.elapsed().as_millis() as u64, "component ready");
    println!("kokoro-edge serving http://{}", cfg.listen);
    server::serve(server, listener, cfg.limits).await;
    Ok(())
}
