//! `kokoro-backend serve | say`: the binary over the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kokoro_backend::config::{EngineArgs, ServeArgs};
use kokoro_backend::engine::{self, Event};
use kokoro_backend::http::{AppState, app};
use kokoro_backend::metrics::Metrics;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "kokoro-backend",
    version,
    about = "Kokoro-82M speech server (OpenAI-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Synthesize text to a file.
    Say(SayArgs),
}

#[derive(clap::Args)]
struct SayArgs {
    /// Text to speak (or use --file).
    text: Option<String>,
    /// Read the text from a file ("-" for stdin).
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Output file; the extension picks the format (mp3, opus, aac, flac, wav, pcm).
    #[arg(long, short = 'o', default_value = "out.mp3")]
    output: PathBuf,
    /// Voice or blend, e.g. af_heart or "af_bella(2)+af_sky(1)".
    #[arg(long, default_value = kokoro_core::voice::DEFAULT_VOICE)]
    voice: String,
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    /// Synthesize on a running server (this backend or the edge, e.g.
    /// http://127.0.0.1:8880) instead of loading the model here; the API key is
    /// read from KOKORO_API_KEY (or OPENAI_API_KEY).
    #[arg(long, env = "KOKORO_SERVER")]
    server: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn main() -> Result<()> {
    kokoro_backend::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOKORO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(args) => serve(args).await,
        Cmd::Say(args) => say(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = args
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let metrics = Arc::new(Metrics::default());
    let t = std::time::Instant::now();
    let cfg = config.engine.clone();
    let cap = config.queue_capacity;
    let m = metrics.clone();
    let engine = tokio::task::spawn_blocking(move || kokoro_backend::start_engine(&cfg, cap, m))
        .await?
        .map_err(anyhow::Error::msg)
        .context("cannot start the engine")?;
    tracing::info!(
        model = %config.engine.model.display(),
        device = engine.device,
        workers = config.engine.workers,
        intra_threads = config.engine.intra_threads,
        startup_ms = t.elapsed().as_millis() as u64,
        "engine ready"
    );
    let (listen, limits, wyoming) = (config.listen, config.limits, config.wyoming);
    let state = AppState::new(engine, config);
    if let Some(addr) = wyoming {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for Wyoming on {addr}"))?;
        tracing::info!("wyoming on tcp://{addr}");
        tokio::spawn(kokoro_backend::wyoming::serve(listener, state.clone()));
    }
    let connections = state.metrics.connections.clone();
    let router = app(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("listening on http://{listen}");
    let service = kokoro_serve::TowerToHyperService::new(router);
    kokoro_serve::serve(listener, limits, connections, service, shutdown_signal()).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

async fn say(args: SayArgs) -> Result<()> {
    let text = match (&args.text, &args.file) {
        (Some(t), None) => t.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
        (None, Some(p)) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        _ => bail!("give the text as an argument or with --file, not both"),
    };
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("mp3")
        .to_ascii_lowercase();
    let body = serde_json::json!({"input": text, "voice": args.voice, "speed": args.speed, "response_format": ext});
    if let Some(server) = &args.server {
        let t = std::time::Instant::now();
        let n = kokoro_backend::client::say(
            server,
            body,
            &args.output,
            kokoro_backend::client::key_from_env().as_deref(),
        )
        .await?;
        eprintln!(
            "\nwrote {} ({n} bytes from {server} in {:.1} s)",
            args.output.display(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let req = kokoro_core::SpeechRequest::from_value(&body)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let cfg = args.engine.validate().map_err(anyhow::Error::msg)?;
    let metrics = Arc::new(Metrics::default());
    let c = cfg.clone();
    let engine = tokio::task::spawn_blocking(move || kokoro_backend::start_engine(&c, 4, metrics))
        .await?
        .map_err(anyhow::Error::msg)?;
    let speech = engine
        .prepare(&req)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let total = speech.pieces.len();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(engine::run(engine, speech, tx));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?,
    );
    let (mut done, mut samples) = (0usize, 0usize);
    let t = std::time::Instant::now();
    while let Some(ev) = rx.recv().await {
        match ev.map_err(|e| anyhow::anyhow!("synthesis failed: {}", e.to_api().message))? {
            Event::Audio { samples: s, bytes } => {
                out.write_all(&bytes)?;
                done += 1;
                samples += s;
                let pct = done * 100 / total.max(1);
                eprint!(
                    "\r[{:<30}] {pct:>3}% ({done}/{total} chunks)",
                    "#".repeat(pct * 30 / 100)
                );
            }
            Event::End { bytes, .. } => out.write_all(&bytes)?,
            // `say` asks for none.
            Event::Words(_) => {}
        }
    }
    out.flush()?;
    let audio_s = samples as f64 / f64::from(kokoro_core::SAMPLE_RATE);
    eprintln!(
        "\nwrote {} ({audio_s:.1} s of audio in {:.1} s)",
        args.output.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
