//! `kokoro-backend`: the native Kokoro-82M speech server.
//!
//! - [`config`]: flags and the validated [`config::Config`].
//! - [`engine`]: worker threads owning ONNX sessions, the bounded queue, and the
//!   scheduling of one request over them ([`engine::run`]); the speech pipeline
//!   itself is `kokoro_synth::pipeline`.
//! - [`audio`]: the native encoders (mp3, opus, aac) beside the shared ones.
//! - [`client`]: `say --server`, the command against a running deployment.
//! - [`http`]: the axum router ([`http::app`]).
//! - [`metrics`]: Prometheus metrics.
//! - [`wyoming`]: the Wyoming protocol (Home Assistant) on its own port.

pub mod audio;
pub mod client;
pub mod config;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod wyoming;

use std::sync::Arc;

/// Tune glibc malloc for a server that makes large short-lived buffers (model
/// activations, audio): a fixed mmap threshold hands big blocks back to the OS
/// when freed, instead of growing the heap for good. Call first thing in `main`.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Return freed heap memory to the OS (after a burst of work).
#[allow(unsafe_code)]
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Start the engine with the real model for `cfg`.
pub fn start_engine(
    cfg: &config::EngineConfig,
    queue_capacity: usize,
    metrics: Arc<metrics::Metrics>,
) -> Result<Arc<engine::Engine>, String> {
    let vocab_text = std::fs::read_to_string(&cfg.vocab)
        .map_err(|e| format!("cannot read {}: {e}", cfg.vocab.display()))?;
    let vocab = kokoro_core::vocab::Vocab::from_json(&vocab_text)?;
    let voices = kokoro_synth::voices::VoiceStore::load(&cfg.voices_dir)?;
    engine::model::init_ort(cfg)?;
    let model_cfg = cfg.clone();
    let factory: engine::ModelFactory = Arc::new(move || {
        engine::model::OrtModel::load(&model_cfg)
            .map(|m| Box::new(m) as Box<dyn engine::model::Model + Send>)
    });
    engine::Engine::start(cfg.clone(), voices, vocab, metrics, queue_capacity, factory)
}
