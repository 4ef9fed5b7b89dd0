//! The inference engine: worker threads that own the model sessions, fed by a
//! bounded queue, and [`run`], which schedules one request's pieces over them.
//!
//! The speech itself (checks, plan, G2P, synthesis, loudness, encoding) is
//! `kokoro_synth::pipeline`, the same code the wasi-nn edge runs; this module only
//! decides where each step runs: [`pipeline::render`] on a worker thread,
//! [`Output::push`] and [`Output::finish`] on a blocking thread, one piece of
//! look-ahead, and cancellation when the client leaves.
//!
//! Inference never runs on the async runtime: each worker is a plain OS thread.
//! A request holds one admission permit for its whole life and has at most one
//! job queued at a time, so the queue can never overflow while permits are bounded.
//! A job whose requester has gone (client disconnected) is skipped by the worker.

pub mod model;

use crate::audio::encode::NativeEncoders;
use crate::config::EngineConfig;
use crate::metrics::Metrics;
use kokoro_core::vocab::Vocab;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, AudioFormat, Lang, SpeechRequest};
use kokoro_synth::pipeline::{self, Input, Output, Rendered, Settings, Speech};
use kokoro_synth::voices::VoiceStore;
use kokoro_synth::windows::Windows;
use kokoro_synth::{Model, Piece, SynthError, SynthStats, Tables, g2p};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Engine failures, mapped to API errors at the HTTP boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    Overloaded,
    /// No worker is left to run the job.
    NoWorkers,
    Synth(SynthError),
}

impl EngineError {
    pub fn to_api(&self) -> ApiError {
        match self {
            EngineError::Overloaded => ApiError::rate_limited(),
            EngineError::NoWorkers => ApiError::no_workers(),
            EngineError::Synth(e) => e.to_api(),
        }
    }

    fn failed(detail: impl Into<String>) -> Self {
        EngineError::Synth(SynthError::Failed(detail.into()))
    }
}

/// One inference job: a text piece of one request, decoded whole or in windows.
struct Job {
    input: Input,
    lang: Lang,
    voice: VoiceBlend,
    speed: f32,
    windows: Option<Windows>,
    reply: mpsc::UnboundedSender<Result<Part, EngineError>>,
}

/// What a job sends back, in order: audio parts as each decoder window is done,
/// then the piece's phonemes and stats. The parts of one piece are bounded by
/// the piece (at most one call's worth of ids), so the channel needs no bound.
#[derive(Debug)]
pub enum Part {
    Audio(Vec<f32>),
    Done { phonemes: String, stats: SynthStats },
}

pub struct Engine {
    cfg: EngineConfig,
    settings: Settings,
    tx: SyncSender<Job>,
    voices: Arc<VoiceStore>,
    vocab: Arc<Vocab>,
    metrics: Arc<Metrics>,
    /// Workers running (each one that panics is replaced; one whose model cannot be
    /// rebuilt exits).
    alive: Arc<AtomicUsize>,
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
        // Without the fallback's data every word is still spoken (split, spelled);
        // `EngineArgs::validate` makes the real server refuse to start without it.
        if let Err(e) = g2p::load_fallback(&cfg.g2p_dir) {
            tracing::warn!("G2P fallback data not loaded: {e}");
        }
        #[cfg(feature = "espeak")]
        g2p::set_espeak_for_english(cfg.espeak_english);
        g2p::warm_up();
        let alive = Arc::new(AtomicUsize::new(0));
        for i in 0..cfg.workers {
            let (rx, voices, vocab, metrics, factory, ready, alive) = (
                rx.clone(),
                voices.clone(),
                vocab.clone(),
                metrics.clone(),
                factory.clone(),
                ready_tx.clone(),
                alive.clone(),
            );
            std::thread::Builder::new()
                .name(format!("kokoro-worker-{i}"))
                .spawn(move || {
                    let model = match build(&factory, &voices, &vocab) {
                        Ok(m) => m,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    alive.fetch_add(1, Ordering::SeqCst);
                    let _ = ready.send(Ok(()));
                    let w = Worker {
                        rx: &rx,
                        voices: &voices,
                        vocab: &vocab,
                        metrics: &metrics,
                        factory: &factory,
                    };
                    w.run(model);
                    alive.fetch_sub(1, Ordering::SeqCst);
                    tracing::error!(worker = i, "inference worker stopped");
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
        let settings = Settings {
            chunk: cfg.chunk,
            windows: cfg.windows,
            target_lufs: cfg.target_lufs,
            true_peak_dbtp: cfg.true_peak_dbtp,
            budget: cfg.budget,
        };
        Ok(Arc::new(Self {
            cfg,
            settings,
            tx,
            voices,
            vocab,
            metrics,
            alive,
            device,
        }))
    }

    /// Inference workers running now.
    pub fn workers_alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
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

    /// The pipeline settings (chunk windows, loudness target).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Check a validated request against this server (language, installed voices)
    /// and plan it.
    pub fn prepare(&self, req: &SpeechRequest) -> Result<Speech, ApiError> {
        pipeline::prepare(req, &self.voices, &self.settings)
    }

    /// The output stage for `format`, with every encoder this server has.
    pub fn output(&self, format: AudioFormat, stream: bool) -> Result<Output, String> {
        Output::new(&self.settings, format, stream, &NativeEncoders)
    }

    /// Queue one job; its parts arrive on the returned receiver.
    pub fn submit(
        &self,
        input: Input,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
        windows: Option<Windows>,
    ) -> Result<mpsc::UnboundedReceiver<Result<Part, EngineError>>, EngineError> {
        let (reply, rx) = mpsc::unbounded_channel();
        let job = Job {
            input,
            lang,
            voice: voice.clone(),
            speed,
            windows,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(EngineError::NoWorkers),
        }
    }

    /// Synthesize one job whole and wait for it.
    pub async fn synthesize(
        &self,
        input: Input,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
    ) -> Result<Rendered, EngineError> {
        let mut rx = self.submit(input, lang, voice, speed, None)?;
        let mut audio = Vec::new();
        while let Some(part) = rx.recv().await {
            match part? {
                Part::Audio(a) => audio.extend(a),
                Part::Done { phonemes, stats } => {
                    return Ok(Rendered {
                        audio,
                        phonemes,
                        stats,
                    });
                }
            }
        }
        Err(EngineError::failed("worker dropped the job"))
    }
}

/// A worker's model, built and warmed (at start, and after a panic).
fn build(
    factory: &ModelFactory,
    voices: &VoiceStore,
    vocab: &Vocab,
) -> Result<Box<dyn Model + Send>, String> {
    let mut m = factory()?;
    warm_up(m.as_mut(), voices, vocab)?;
    Ok(m)
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
    match model.encode(&ids, &style, 1.0)? {
        kokoro_synth::Encoded::Features(f) => model.decode(&f, 0..f.frames, &style).map(|_| ()),
        kokoro_synth::Encoded::Audio(_) => Ok(()),
    }
}

/// What a worker thread needs besides its model.
struct Worker<'a> {
    rx: &'a Mutex<Receiver<Job>>,
    voices: &'a VoiceStore,
    vocab: &'a Vocab,
    metrics: &'a Metrics,
    factory: &'a ModelFactory,
}

impl Worker<'_> {
    /// Serve jobs until the queue closes. A job that panics gets a 500, is counted,
    /// and the model (whose state the panic may have left half-written) is rebuilt
    /// and warmed; if that fails the worker stops (and `/health` says so once none
    /// is left).
    fn run(&self, mut model: Box<dyn Model + Send>) {
        let metrics = self.metrics;
        loop {
            let job = {
                let guard = self.rx.lock().unwrap_or_else(|p| p.into_inner());
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
            let result = catch_unwind(AssertUnwindSafe(|| {
                run_job(model.as_mut(), &job, self.voices, self.vocab, metrics)
            }));
            let Ok(result) = result else {
                metrics.worker_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!("inference worker panicked; replacing its model");
                let _ = job
                    .reply
                    .send(Err(EngineError::failed("inference worker panicked")));
                match build(self.factory, self.voices, self.vocab) {
                    Ok(m) => model = m,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot rebuild the model");
                        return;
                    }
                }
                continue;
            };
            if let Err(e) = result {
                let _ = job.reply.send(Err(e));
            }
            if metrics.queue_depth.load(Ordering::Relaxed) == 0 {
                // Idle: give the activation memory of that job back to the OS.
                crate::release_memory();
            }
        }
    }
}

/// Run one job, sending its parts as they are made; a failure is sent as the
/// last message.
fn run_job(
    model: &mut dyn Model,
    job: &Job,
    voices: &VoiceStore,
    vocab: &Vocab,
    metrics: &Metrics,
) -> Result<(), EngineError> {
    let tables = Tables { vocab, voices };
    let cancelled = || job.reply.is_closed();
    let (mut synth, phonemes) = pipeline::start(
        &job.input,
        job.lang,
        &job.voice,
        job.speed,
        tables,
        job.windows,
    )
    .map_err(EngineError::Synth)?;
    while let Some(part) = synth.next(model, &cancelled, &mut |secs| {
        metrics.record_inference(secs);
    }) {
        let audio = part.map_err(EngineError::Synth)?;
        if !audio.is_empty() && job.reply.send(Ok(Part::Audio(audio))).is_err() {
            return Err(EngineError::Synth(SynthError::Cancelled));
        }
    }
    let stats = synth.stats();
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
    let _ = job.reply.send(Ok(Part::Done { phonemes, stats }));
    Ok(())
}

/// What [`run`] yields, in order.
pub enum Event {
    /// One piece: its sample count and its encoded bytes (empty while a whole
    /// answer is buffered).
    Audio { samples: usize, bytes: Vec<u8> },
    /// The encoder's tail (or the whole encoded answer) and the phonemes spoken.
    End { bytes: Vec<u8>, phonemes: usize },
}

/// Run a prepared request, sending events to `tx` as audio is made. Stops early
/// when `tx` closes (client gone). The next text piece is queued as soon as the
/// current one is taken, so a worker starts it the moment the current one is
/// done, while its last parts are post-processed and sent. The first text piece
/// of a streamed request is decoded in windows, each sent as it is done.
pub async fn run(
    engine: Arc<Engine>,
    speech: Speech,
    tx: tokio::sync::mpsc::Sender<Result<Event, EngineError>>,
) {
    let output = match engine.output(speech.format, speech.stream) {
        Ok(o) => o,
        Err(e) => {
            let _ = tx.send(Err(EngineError::failed(e))).await;
            return;
        }
    };
    let mut out = Emitter {
        engine: &engine,
        output: Some(output),
        meter: speech.budget.meter(),
        tx: &tx,
    };
    let pieces = &speech.pieces;
    let next_text = |i: usize| {
        pieces
            .iter()
            .skip(i)
            .position(|p| matches!(p, Piece::Text(_)))
            .map(|k| k + i)
    };
    let submit = |j: usize, windows: Option<Windows>| {
        let Piece::Text(t) = &pieces[j] else {
            unreachable!("next_text returns text pieces")
        };
        engine.submit(
            Input::Text(t.clone()),
            speech.lang,
            &speech.voice,
            speech.speed,
            windows,
        )
    };
    let mut pending_idx = next_text(0);
    let mut pending = pending_idx.map(|j| submit(j, speech.windows));
    let mut phonemes = 0usize;
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Silence(n) => {
                if out.emit(vec![0.0f32; *n]).await.is_err() {
                    return;
                }
            }
            Piece::Text(_) => {
                debug_assert_eq!(pending_idx, Some(i));
                let mut rx = match pending.take() {
                    Some(Ok(rx)) => rx,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    None => return,
                };
                pending_idx = next_text(i + 1);
                pending = pending_idx.map(|j| submit(j, None));
                loop {
                    // Stop at once when the client leaves: dropping `rx` cancels the
                    // job (skipped if not started, stopped between windows if it is)
                    // and frees the admission permit.
                    let part = tokio::select! {
                        p = rx.recv() => p,
                        () = tx.closed() => {
                            engine.metrics.client_disconnects.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let done = match part {
                        Some(Ok(Part::Audio(a))) => {
                            if out.emit(a).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Some(Ok(Part::Done { phonemes: p, stats })) => out
                            .meter
                            .add_ids(stats.ids)
                            .map(|()| p.chars().count())
                            .map_err(|e| EngineError::Synth(SynthError::OverBudget(e))),
                        Some(Err(e)) => Err(e),
                        None => Err(EngineError::failed("worker dropped the job")),
                    };
                    match done {
                        Ok(n) => {
                            phonemes += n;
                            break;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
    // The tail; for a whole answer this is the encoding of all of it.
    let Some(mut output) = out.output.take() else {
        return;
    };
    let tail = tokio::task::spawn_blocking(move || output.finish(&NativeEncoders))
        .await
        .unwrap_or_else(|_| Err("encoding panicked".into()))
        .map_err(EngineError::failed);
    let _ = tx
        .send(tail.map(|bytes| Event::End { bytes, phonemes }))
        .await;
}

/// The post-processing side of [`run`]: meters samples, normalizes and encodes
/// on a blocking thread, sends the bytes.
struct Emitter<'a> {
    engine: &'a Engine,
    output: Option<Output>,
    meter: kokoro_synth::budget::Meter,
    tx: &'a tokio::sync::mpsc::Sender<Result<Event, EngineError>>,
}

impl Emitter<'_> {
    /// `Err` when the run must stop (the reason is already sent or the client is gone).
    async fn emit(&mut self, mut audio: Vec<f32>) -> Result<(), ()> {
        if let Err(e) = self.meter.add_samples(audio.len()) {
            let _ = self
                .tx
                .send(Err(EngineError::Synth(SynthError::OverBudget(e))))
                .await;
            return Err(());
        }
        let disconnected = || {
            self.engine
                .metrics
                .client_disconnects
                .fetch_add(1, Ordering::Relaxed);
        };
        if self.tx.is_closed() {
            disconnected();
            return Err(());
        }
        let Some(mut output) = self.output.take() else {
            return Err(());
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = output.push(&mut audio);
            (output, audio.len(), r)
        })
        .await;
        let Ok((o, samples, bytes)) = joined else {
            let _ = self
                .tx
                .send(Err(EngineError::failed("post-processing panicked")))
                .await;
            return Err(());
        };
        self.output = Some(o);
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                let _ = self.tx.send(Err(EngineError::failed(e))).await;
                return Err(());
            }
        };
        self.engine.metrics.add_audio_samples(samples);
        if self
            .tx
            .send(Ok(Event::Audio { samples, bytes }))
            .await
            .is_err()
        {
            disconnected();
            return Err(());
        }
        Ok(())
    }
}
