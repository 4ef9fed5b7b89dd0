//! The inference engine: worker threads that own the model sessions, fed by a
//! bounded queue; and the per-request pipeline that plans chunks, keeps one chunk
//! of look-ahead in the queue, normalizes loudness and encodes.
//!
//! Inference never runs on the async runtime: each worker is a plain OS thread.
//! A request holds one admission permit for its whole life and has at most one
//! job queued at a time, so the queue can never overflow while permits are bounded.
//! A job whose requester has gone (client disconnected) is skipped by the worker.

pub mod model;
pub use kokoro_synth::voices;

use crate::audio::encode;
use crate::config::EngineConfig;
use crate::g2p;
use crate::metrics::Metrics;
use kokoro_core::vocab::Vocab;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, ErrorKind, Lang};
pub use kokoro_synth::{IDS_PER_CALL, Piece, plan, sanitize};
use kokoro_synth::{SynthError, Tables};
use model::Model;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use voices::VoiceStore;

/// What a worker synthesizes.
#[derive(Debug, Clone)]
pub enum JobInput {
    /// Normalized text, phonemized by the worker.
    Text(String),
    /// Phonemes given directly.
    Phonemes(String),
}

/// Engine failures, mapped to API errors at the HTTP boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    Unsupported(Lang),
    Overloaded,
    VoiceMissing(String),
    Failed(String),
}

impl EngineError {
    pub fn to_api(&self) -> ApiError {
        match self {
            EngineError::Unsupported(l) => ApiError::new(
                ErrorKind::Unprocessable,
                "unsupported_language",
                format!(
                    "Language '{}' needs the espeak-ng G2P, which this server was built without.",
                    l.tag()
                ),
            )
            .with_param("lang_code"),
            EngineError::Overloaded => ApiError::rate_limited(),
            EngineError::VoiceMissing(v) => ApiError::invalid(
                "voice",
                "voice_not_found",
                format!("Voice '{v}' is not installed on this server."),
            ),
            EngineError::Failed(_) => ApiError::internal(),
        }
    }
}

/// One inference job: a chunk of one request.
struct Job {
    input: JobInput,
    lang: Lang,
    voice: VoiceBlend,
    speed: f32,
    reply: oneshot::Sender<Result<Synth, EngineError>>,
}

/// A synthesized chunk.
#[derive(Debug)]
pub struct Synth {
    pub audio: Vec<f32>,
    pub phonemes: String,
}

pub struct Engine {
    cfg: EngineConfig,
    tx: SyncSender<Job>,
    voices: Arc<VoiceStore>,
    vocab: Arc<Vocab>,
    metrics: Arc<Metrics>,
    /// Device actually used ("cpu", "cuda").
    pub device: &'static str,
}

/// Builds one model per worker, on that worker's thread.
pub type ModelFactory = Arc<dyn Fn() -> Result<Box<dyn Model + Send>, String> + Send + Sync>;

impl Engine {
    /// Start the workers; returns once every worker has loaded its model and run a
    /// warm-up inference (so the first request pays no lazy initialization).
    pub fn start(
        cfg: EngineConfig,
        voices: VoiceStore,
        vocab: Vocab,
        metrics: Arc<Metrics>,
        queue_capacity: usize,
        factory: ModelFactory,
    ) -> Result<Arc<Self>, String> {
        let voices = Arc::new(voices);
        let vocab = Arc::new(vocab);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue_capacity + cfg.workers);
        let rx = Arc::new(Mutex::new(rx));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        g2p::warm_up();
        for i in 0..cfg.workers {
            let (rx, voices, vocab, metrics, factory, ready) = (
                rx.clone(),
                voices.clone(),
                vocab.clone(),
                metrics.clone(),
                factory.clone(),
                ready_tx.clone(),
            );
            std::thread::Builder::new()
                .name(format!("kokoro-worker-{i}"))
                .spawn(move || {
                    let mut model = match factory() {
                        Ok(m) => m,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let warm = warm_up(model.as_mut(), &voices, &vocab);
                    let _ = ready.send(warm);
                    worker_loop(model.as_mut(), &rx, &voices, &vocab, &metrics);
                })
                .map_err(|e| format!("cannot spawn worker: {e}"))?;
        }
        drop(ready_tx);
        for _ in 0..cfg.workers {
            ready_rx
                .recv()
                .map_err(|_| "a worker exited during start-up".to_string())??;
        }
        let device = cfg.device.as_str();
        Ok(Arc::new(Self {
            cfg,
            tx,
            voices,
            vocab,
            metrics,
            device,
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn voices(&self) -> &VoiceStore {
        &self.voices
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Queue one job; the answer arrives on the returned receiver.
    pub fn submit(
        &self,
        input: JobInput,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
    ) -> Result<oneshot::Receiver<Result<Synth, EngineError>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            input,
            lang,
            voice: voice.clone(),
            speed,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                Err(EngineError::Failed("workers stopped".into()))
            }
        }
    }

    /// Synthesize one job and wait for it.
    pub async fn synthesize(
        &self,
        input: JobInput,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
    ) -> Result<Synth, EngineError> {
        let rx = self.submit(input, lang, voice, speed)?;
        rx.await
            .unwrap_or_else(|_| Err(EngineError::Failed("worker dropped the job".into())))
    }
}

fn warm_up(model: &mut dyn Model, voices: &VoiceStore, vocab: &Vocab) -> Result<(), String> {
    let ps = g2p::phonemize("Ready.", Lang::EnUs).map_err(|e| format!("{e:?}"))?;
    let (ids, _) = vocab.encode_padded(&ps);
    let voice = voices
        .names()
        .next()
        .map(VoiceBlend::single)
        .ok_or("no voices installed")?;
    let style = voices.style(&voice, ids.len() - 2)?;
    model.infer(&ids, &style, 1.0).map(|_| ())
}

fn worker_loop(
    model: &mut dyn Model,
    rx: &Mutex<Receiver<Job>>,
    voices: &VoiceStore,
    vocab: &Vocab,
    metrics: &Metrics,
) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        if job.reply.is_closed() {
            metrics.cancelled_jobs.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let result = run_job(model, &job, voices, vocab, metrics);
        let _ = job.reply.send(result);
        if metrics.queue_depth.load(Ordering::Relaxed) == 0 {
            // Idle: give the activation memory of that job back to the OS.
            crate::release_memory();
        }
    }
}

fn run_job(
    model: &mut dyn Model,
    job: &Job,
    voices: &VoiceStore,
    vocab: &Vocab,
    metrics: &Metrics,
) -> Result<Synth, EngineError> {
    let phonemes = match &job.input {
        JobInput::Phonemes(p) => p.clone(),
        JobInput::Text(t) => g2p::phonemize(t, job.lang).map_err(|e| match e {
            g2p::G2pError::Unsupported(l) => EngineError::Unsupported(l),
            g2p::G2pError::Failed(m) => EngineError::Failed(m),
        })?,
    };
    let tables = Tables { vocab, voices };
    let cancelled = || job.reply.is_closed();
    let (audio, stats) = kokoro_synth::synthesize(
        model,
        &phonemes,
        &job.voice,
        job.speed,
        tables,
        &cancelled,
        &mut |secs| metrics.record_inference(secs),
    )
    .map_err(|e| match e {
        SynthError::VoiceMissing(v) => EngineError::VoiceMissing(v),
        SynthError::Cancelled => EngineError::Failed("cancelled".into()),
        SynthError::Failed(m) => EngineError::Failed(m),
    })?;
    if stats.nonfinite > 0 {
        metrics
            .nonfinite_samples
            .fetch_add(stats.nonfinite as u64, Ordering::Relaxed);
        tracing::debug!(
            bad = stats.nonfinite,
            "model produced non-finite samples; zeroed"
        );
    }
    metrics.chunks.fetch_add(1, Ordering::Relaxed);
    Ok(Synth { audio, phonemes })
}

/// Per-request post-processing state (loudness, encoder), moved to a blocking
/// thread for each chunk.
pub type Post = kokoro_synth::Post;

/// Post-processing for `format` (`None`: normalize only) with the engine's loudness target.
pub fn post(cfg: &EngineConfig, format: Option<kokoro_core::AudioFormat>) -> Result<Post, String> {
    Post::new(
        cfg.target_lufs,
        cfg.true_peak_dbtp,
        format.map(|f| encode::encoder(f, None)).transpose()?,
    )
}

/// What the pipeline yields, in order.
pub enum Event {
    /// Post-processed audio (samples) and its encoding (empty without encoder).
    Audio { samples: Vec<f32>, bytes: Vec<u8> },
    /// The encoder's tail.
    End { bytes: Vec<u8>, phonemes: usize },
}

/// Run a planned request, sending events to `tx` as chunks complete. Stops early
/// when `tx` closes (client gone). One job of look-ahead stays queued so the
/// worker synthesizes chunk k+1 while chunk k is encoded and sent.
pub async fn run(
    engine: Arc<Engine>,
    pieces: Vec<Piece>,
    lang: Lang,
    voice: VoiceBlend,
    speed: f32,
    mut post: Post,
    tx: tokio::sync::mpsc::Sender<Result<Event, EngineError>>,
) {
    let submit = |i: usize| -> Option<Result<oneshot::Receiver<_>, EngineError>> {
        pieces
            .iter()
            .enumerate()
            .skip(i)
            .find_map(|(j, p)| match p {
                Piece::Text(t) => Some((j, t)),
                Piece::Silence(_) => None,
            })
            .map(|(_, t)| engine.submit(JobInput::Text(t.clone()), lang, &voice, speed))
    };
    let next_text = |i: usize| {
        pieces
            .iter()
            .skip(i)
            .position(|p| matches!(p, Piece::Text(_)))
            .map(|k| k + i)
    };
    let mut pending = submit(0);
    let mut pending_idx = next_text(0);
    let mut phonemes = 0usize;
    for (i, piece) in pieces.iter().enumerate() {
        let mut audio = match piece {
            Piece::Silence(n) => vec![0.0f32; *n],
            Piece::Text(_) => {
                debug_assert_eq!(pending_idx, Some(i));
                let rx = match pending.take() {
                    Some(Ok(rx)) => rx,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    None => return,
                };
                // Stop at once when the client leaves: dropping `rx` cancels the job
                // if no worker has started it yet, and frees the admission permit.
                let result = tokio::select! {
                    r = rx => r.unwrap_or_else(|_| Err(EngineError::Failed("worker dropped the job".into()))),
                    () = tx.closed() => {
                        engine.metrics.client_disconnects.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                // Queue the next chunk before post-processing this one.
                pending_idx = next_text(i + 1);
                pending = pending_idx.and_then(submit);
                match result {
                    Ok(s) => {
                        phonemes += s.phonemes.chars().count();
                        s.audio
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        };
        if tx.is_closed() {
            engine
                .metrics
                .client_disconnects
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let joined = tokio::task::spawn_blocking(move || {
            let r = post.chunk(&mut audio);
            (post, audio, r)
        })
        .await;
        let Ok((p, samples, bytes)) = joined else {
            let _ = tx
                .send(Err(EngineError::Failed("post-processing panicked".into())))
                .await;
            return;
        };
        post = p;
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(EngineError::Failed(e))).await;
                return;
            }
        };
        engine.metrics.add_audio_samples(samples.len());
        if tx.send(Ok(Event::Audio { samples, bytes })).await.is_err() {
            engine
                .metrics
                .client_disconnects
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let tail = post.finish().map_err(EngineError::Failed);
    let _ = tx
        .send(tail.map(|bytes| Event::End { bytes, phonemes }))
        .await;
}
