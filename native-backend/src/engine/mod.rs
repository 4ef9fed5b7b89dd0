//! The inference engine: worker threads that own the model sessions, fed by a
//! bounded queue; and the per-request pipeline that plans chunks, keeps one chunk
//! of look-ahead in the queue, normalizes loudness and encodes.
//!
//! Inference never runs on the async runtime: each worker is a plain OS thread.
//! A request holds one admission permit for its whole life and has at most one
//! job queued at a time, so the queue can never overflow while permits are bounded.
//! A job whose requester has gone (client disconnected) is skipped by the worker.

pub mod model;
pub mod voices;

use crate::audio::{encode, loudness::Loudness};
use crate::config::EngineConfig;
use crate::g2p;
use crate::metrics::Metrics;
use kokoro_core::chunk::{MAX_PHONEME_IDS, chunk_text, split_phonemes};

/// Phoneme ids per inference call. The model takes up to 510, but activation
/// memory grows with the audio length; 256 ids (~15 s of speech) keeps the
/// per-call arena bounded (see ARCHITECTURE.md, memory).
pub const IDS_PER_CALL: usize = 256;
const _: () = assert!(IDS_PER_CALL <= MAX_PHONEME_IDS);
use kokoro_core::markup::{Segment, segments};
use kokoro_core::normalize::normalize;
use kokoro_core::vocab::Vocab;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, ErrorKind, Lang, SAMPLE_RATE, SpeechRequest};
use model::Model;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
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
pub type ModelFactory = Arc<dyn Fn() -> Result<Box<dyn Model>, String> + Send + Sync>;

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
    for (name, _) in job.voice.terms() {
        if !voices.contains(name) {
            return Err(EngineError::VoiceMissing((*name).to_string()));
        }
    }
    let mut audio = Vec::new();
    for piece in split_phonemes(&phonemes, IDS_PER_CALL) {
        let (ids, _) = vocab.encode_padded(piece);
        if ids.len() <= 2 {
            continue;
        }
        if job.reply.is_closed() {
            return Err(EngineError::Failed("cancelled".into()));
        }
        let style = voices
            .style(&job.voice, ids.len() - 2)
            .map_err(EngineError::VoiceMissing)?;
        let t = Instant::now();
        let mut out = model
            .infer(&ids, &style, job.speed)
            .map_err(EngineError::Failed)?;
        metrics.record_inference(t.elapsed().as_secs_f64());
        // The Kokoro graph sometimes ends an utterance with NaN/inf samples (seen in
        // the last ~0.1 s for some lengths, int8 and float alike). Zero them: they
        // would crash LAME's assertions and poison loudness measurement.
        let bad = sanitize(&mut out);
        if bad > 0 {
            metrics
                .nonfinite_samples
                .fetch_add(bad as u64, Ordering::Relaxed);
            tracing::debug!(bad, "model produced non-finite samples; zeroed");
        }
        audio.extend(out);
    }
    metrics.chunks.fetch_add(1, Ordering::Relaxed);
    Ok(Synth { audio, phonemes })
}

/// Replace non-finite samples with silence; returns how many there were.
pub fn sanitize(audio: &mut [f32]) -> usize {
    let mut bad = 0;
    for s in audio.iter_mut().filter(|s| !s.is_finite()) {
        *s = 0.0;
        bad += 1;
    }
    bad
}

/// A planned piece of output.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Silence(usize),
}

/// Split a request into pieces: pauses, then normalized text in chunks.
pub fn plan(
    req: &SpeechRequest,
    chunk: &kokoro_core::chunk::ChunkOptions,
) -> Result<Vec<Piece>, ApiError> {
    let mut pieces = Vec::new();
    let mut first = true;
    for seg in segments(&req.input) {
        match seg {
            Segment::Pause(secs) => {
                pieces.push(Piece::Silence((secs * SAMPLE_RATE as f32) as usize));
            }
            Segment::Text(t) => {
                let text = normalize(t, &req.normalization);
                // Only the first text segment gets the small first window.
                let opts = if first {
                    *chunk
                } else {
                    kokoro_core::chunk::ChunkOptions {
                        first_max_chars: chunk.max_chars,
                        ..*chunk
                    }
                };
                for r in chunk_text(&text, &opts) {
                    let c = text[r].trim();
                    if c.chars().any(char::is_alphanumeric) || c.contains('[') {
                        pieces.push(Piece::Text(c.to_string()));
                        first = false;
                    }
                }
            }
        }
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Text(_))) {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            "no_speakable_text",
            "'input' contains nothing that can be spoken.",
        )
        .with_param("input"));
    }
    Ok(pieces)
}

/// Per-request post-processing state: loudness and encoder, moved to a blocking
/// thread for each chunk.
pub struct Post {
    loudness: Loudness,
    encoder: Option<Box<dyn encode::Encoder>>,
}

impl Post {
    pub fn new(
        cfg: &EngineConfig,
        format: Option<kokoro_core::AudioFormat>,
    ) -> Result<Self, String> {
        Ok(Self {
            loudness: Loudness::new(cfg.target_lufs, cfg.true_peak_dbtp)?,
            encoder: format.map(|f| encode::encoder(f, None)).transpose()?,
        })
    }

    /// Normalize `audio`; with an encoder, return its encoded bytes.
    pub fn chunk(&mut self, audio: &mut [f32]) -> Result<Vec<u8>, String> {
        sanitize(audio);
        self.loudness.process(audio);
        let mut out = Vec::new();
        if let Some(e) = &mut self.encoder {
            e.encode(audio, &mut out)?;
        }
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        if let Some(e) = &mut self.encoder {
            e.finish(&mut out)?;
        }
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: serde_json::Value) -> SpeechRequest {
        SpeechRequest::from_value(&body).unwrap()
    }

    #[test]
    fn plan_splits_pauses_normalizes_and_keeps_first_chunk_small() {
        let opts = kokoro_core::chunk::ChunkOptions {
            first_max_chars: 30,
            max_chars: 120,
            min_chars: 5,
        };
        let p = plan(&req(json!({"input": "It costs $5. [pause:0.5s] Then we go home and sleep for a long long while, friends."})), &opts).unwrap();
        assert_eq!(p[0], Piece::Text("It costs five dollars.".into()));
        assert_eq!(p[1], Piece::Silence(12_000));
        assert!(matches!(&p[2], Piece::Text(t) if t.starts_with("Then we go home")));
        let long = "word ".repeat(100);
        let p = plan(&req(json!({"input": long})), &opts).unwrap();
        assert!(matches!(&p[0], Piece::Text(t) if t.chars().count() <= 30));
        assert!(p.len() > 3);
        let e = plan(&req(json!({"input": "... !!! [pause:1s]"})), &opts).unwrap_err();
        assert_eq!((e.status(), e.code), (422, "no_speakable_text"));
    }

    #[test]
    fn sanitize_and_post_survive_non_finite_audio() {
        let mut a = vec![0.1, f32::NAN, f32::INFINITY, -0.2];
        assert_eq!(sanitize(&mut a), 2);
        assert!(a.iter().all(|s| s.is_finite()));
        let cfg_lufs = Loudness::new(-16.0, -1.0).is_ok();
        assert!(cfg_lufs);
    }
}
