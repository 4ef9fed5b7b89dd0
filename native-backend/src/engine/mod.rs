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
use kokoro_synth::timing::{Mark, Stamp, Stamper};
use kokoro_synth::voices::VoiceStore;
use kokoro_synth::windows::Windows;
use kokoro_synth::{Model, Piece, SynthError, SynthStats, Synthesis, Tables, g2p};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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

/// One inference job: one step of a text piece (G2P, the encoder and the first
/// decoder window when it starts, then one window per job), so the jobs of
/// concurrent requests interleave window by window.
struct Job {
    /// Taken by the worker that runs it.
    work: Option<Work>,
    reply: oneshot::Sender<Result<Step, EngineError>>,
}

enum Work {
    Start {
        input: Input,
        lang: Lang,
        voice: VoiceBlend,
        speed: f32,
        windows: Option<Windows>,
        /// Mark the piece's words (word timestamps).
        words: bool,
    },
    Continue(Box<Synthesis>),
}

/// What one job made: audio, and the synthesis to continue (`None` when the piece
/// is done, with its stats). The first step of a piece carries its phonemes (and,
/// when marked, its words); `marks` place words on the piece's timeline before
/// or with this step's audio.
pub struct Step {
    pub audio: Vec<f32>,
    next: Option<Box<Synthesis>>,
    pub phonemes: Option<String>,
    pub words: Vec<g2p::Word>,
    pub marks: Vec<Mark>,
    pub stats: SynthStats,
}

/// A piece being synthesized: the receiver of its current job.
pub type Pending = oneshot::Receiver<Result<Step, EngineError>>;

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
        let planned_pace = cfg.windows.map(kokoro_synth::windows::safe_pace);
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
                        Ok(mut m) if i == 0 => {
                            log_pace(m.as_mut(), &voices, &vocab, planned_pace, &metrics);
                            m
                        }
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

    /// Queue the first step of a text piece.
    pub fn submit(
        &self,
        input: Input,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
        windows: Option<Windows>,
        words: bool,
    ) -> Result<Pending, EngineError> {
        self.queue(Work::Start {
            input,
            lang,
            voice: voice.clone(),
            speed,
            windows,
            words,
        })
    }

    /// Queue the next step of `step`'s piece; `None` when the piece is done.
    pub fn resume(&self, step: &mut Step) -> Option<Result<Pending, EngineError>> {
        step.next.take().map(|s| self.queue(Work::Continue(s)))
    }

    fn queue(&self, work: Work) -> Result<Pending, EngineError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job {
            work: Some(work),
            reply,
        }) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(EngineError::NoWorkers),
        }
    }

    /// Synthesize one piece whole and wait for it.
    pub async fn synthesize(
        &self,
        input: Input,
        lang: Lang,
        voice: &VoiceBlend,
        speed: f32,
    ) -> Result<Rendered, EngineError> {
        let mut pending = self.submit(input, lang, voice, speed, None, false)?;
        let (mut audio, mut phonemes) = (Vec::new(), String::new());
        loop {
            let mut step = pending
                .await
                .unwrap_or_else(|_| Err(EngineError::failed("worker dropped the job")))?;
            audio.append(&mut step.audio);
            if let Some(p) = step.phonemes.take() {
                phonemes = p;
            }
            match self.resume(&mut step) {
                Some(p) => pending = p?,
                None => {
                    return Ok(Rendered {
                        audio,
                        phonemes,
                        stats: step.stats,
                        words: Vec::new(),
                    });
                }
            }
        }
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
    warm_decode(model, voices, vocab).map(|_| ())
}

/// Encode and decode a short sentence; the decode's seconds and frames.
fn warm_decode(
    model: &mut dyn Model,
    voices: &VoiceStore,
    vocab: &Vocab,
) -> Result<Option<(f64, usize)>, String> {
    let ps = g2p::phonemize("Ready.", Lang::EnUs).map_err(|e| format!("{e:?}"))?;
    let (ids, _) = vocab.encode_padded(&ps);
    let voice = voices
        .names()
        .next()
        .map(VoiceBlend::single)
        .ok_or("no voices installed")?;
    let style = voices.style(&voice, ids.len() - 2)?;
    match model.encode(&ids, &style, 1.0)? {
        kokoro_synth::Encoded::Features(f) => {
            let t = std::time::Instant::now();
            model.decode(&f, 0..f.frames, &style)?;
            Ok(Some((t.elapsed().as_secs_f64(), f.frames)))
        }
        kokoro_synth::Encoded::Audio(_) => Ok(None),
    }
}

/// Log the decoder's pace (a warm decode's time per frame, in percent of the
/// 25 ms a frame plays for) beside the slowest pace the streamed windows keep a
/// player fed at: a slower decoder makes players wait between windows. The
/// gauge starts here and then follows every request's fastest decode (a start
/// beside another busy process measures slow).
fn log_pace(
    model: &mut dyn Model,
    voices: &VoiceStore,
    vocab: &Vocab,
    safe: Option<f64>,
    metrics: &Metrics,
) {
    let Ok(Some((secs, frames))) = warm_decode(model, voices, vocab) else {
        return;
    };
    let frame_secs = kokoro_synth::SAMPLES_PER_FRAME as f64 / kokoro_core::SAMPLE_RATE as f64;
    let per_frame = secs / frames.max(1) as f64;
    metrics.record_decoder_pace((per_frame * 1e6).round() as u64);
    metrics.windows_safe_pace_milli.store(
        safe.map_or(0, |s| (s * 1000.0).round() as u64),
        Ordering::Relaxed,
    );
    let pace = 100.0 * per_frame / frame_secs;
    let safe = safe.map(|s| 100.0 * s);
    match safe {
        Some(s) if pace > s => tracing::warn!(
            pace = format!("{pace:.0}%"),
            windows_keep_up_to = format!("{s:.0}%"),
            "the warm decode at start was slower than the streamed windows are sized for \
             (or the machine was busy): players may wait between windows (a longer \
             --first-window-frames or fewer workers help); kokoro_decoder_pace_ratio \
             follows the fastest decode from here on"
        ),
        Some(s) => tracing::info!(
            pace = format!("{pace:.0}%"),
            windows_keep_up_to = format!("{s:.0}%"),
            frames,
            "decoder pace"
        ),
        None => tracing::info!(pace = format!("{pace:.0}%"), frames, "decoder pace"),
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
            let mut job = {
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
                run_job(model.as_mut(), &mut job, self.voices, self.vocab, metrics)
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
            let _ = job.reply.send(result);
            if metrics.queue_depth.load(Ordering::Relaxed) == 0 {
                // Idle: give the activation memory of that job back to the OS.
                crate::release_memory();
            }
        }
    }
}

/// Run one step: start the piece (G2P, plan) if needed, then one model step.
fn run_job(
    model: &mut dyn Model,
    job: &mut Job,
    voices: &VoiceStore,
    vocab: &Vocab,
    metrics: &Metrics,
) -> Result<Step, EngineError> {
    let tables = Tables { vocab, voices };
    let work = job
        .work
        .take()
        .ok_or_else(|| EngineError::failed("a job ran twice"))?;
    let (mut synth, phonemes, words) = match work {
        Work::Start {
            input,
            lang,
            voice,
            speed,
            windows,
            words,
        } => {
            let (s, p, w) =
                pipeline::start_timed(&input, lang, &voice, speed, tables, windows, words)
                    .map_err(EngineError::Synth)?;
            (Box::new(s), Some(p), w)
        }
        Work::Continue(s) => (s, None, Vec::new()),
    };
    let reply = &job.reply;
    let part = synth.next(model, &|| reply.is_closed(), &mut |secs| {
        metrics.record_inference(secs);
    });
    let marks = synth.take_marks();
    metrics.record_decoder_pace(synth.stats().best_frame_micros);
    match part {
        Some(audio) => Ok(Step {
            audio: audio.map_err(EngineError::Synth)?,
            next: Some(synth),
            phonemes,
            words,
            marks,
            stats: SynthStats::default(),
        }),
        None => {
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
            Ok(Step {
                audio: Vec::new(),
                next: None,
                phonemes,
                words,
                marks,
                stats,
            })
        }
    }
}

/// What [`run`] yields, in order.
pub enum Event {
    /// One piece: its sample count and its encoded bytes (empty while a whole
    /// answer is buffered).
    Audio { samples: usize, bytes: Vec<u8> },
    /// The encoder's tail (or the whole encoded answer) and the phonemes spoken.
    End { bytes: Vec<u8>, phonemes: usize },
    /// Word timestamps, sent before the audio that carries the words.
    Words(Vec<Stamp>),
}

/// Run a prepared request, sending events to `tx` as audio is made. Stops early
/// when `tx` closes (client gone). Each job is one model step (the encoder and a
/// first window, or a window), and the next one is queued before the part it
/// made is post-processed and sent, so the worker keeps going; a request has one
/// job queued at a time and concurrent requests take turns window by window.
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
        samples: 0,
    };
    // Word timestamps: the stamper, each text piece's words and where it began.
    let mut stamper = speech.stamping.as_ref().map(|s| Stamper::new(&s.input));
    let timed = stamper.is_some();
    let mut text_index = 0usize;
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
            timed,
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
                let (piece_at, mut words) = (out.samples, Vec::new());
                let piece_text = match piece {
                    Piece::Text(t) => t.as_str(),
                    Piece::Silence(_) => "",
                };
                let mut current = match pending.take() {
                    Some(Ok(rx)) => Some(rx),
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    None => return,
                };
                while let Some(rx) = current.take() {
                    // Stop at once when the client leaves: dropping `rx` cancels the
                    // job (skipped if not started, stopped before its model call if
                    // it is) and frees the admission permit.
                    let result = tokio::select! {
                        r = rx => r.unwrap_or_else(|_| Err(EngineError::failed("worker dropped the job"))),
                        () = tx.closed() => {
                            engine.metrics.client_disconnects.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let mut step = match result {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    // Queue what comes next before post-processing this part: the
                    // piece's next window, or the next piece.
                    let more = engine.resume(&mut step);
                    let done = more.is_none();
                    match more {
                        Some(Ok(p)) => current = Some(p),
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        None => {
                            pending_idx = next_text(i + 1);
                            pending = pending_idx.map(|j| submit(j, speech.windows));
                        }
                    }
                    if let Some(p) = &step.phonemes {
                        phonemes += p.chars().count();
                    }
                    if !step.words.is_empty() {
                        words = std::mem::take(&mut step.words);
                    }
                    if let (Some(st), Some(map), false) = (
                        stamper.as_mut(),
                        speech
                            .stamping
                            .as_ref()
                            .and_then(|s| s.maps.get(text_index)),
                        step.marks.is_empty(),
                    ) {
                        let marked: Vec<_> = step
                            .marks
                            .iter()
                            .filter_map(|m| Some((words.get(m.word)?.clone(), m.clone())))
                            .collect();
                        let stamps = st.piece(piece_text, map, &marked, piece_at);
                        if !stamps.is_empty() && tx.send(Ok(Event::Words(stamps))).await.is_err() {
                            return;
                        }
                    }
                    if !step.audio.is_empty()
                        && out.emit(std::mem::take(&mut step.audio)).await.is_err()
                    {
                        return;
                    }
                    if done {
                        if let Err(e) = out.meter.add_ids(step.stats.ids) {
                            let _ = tx
                                .send(Err(EngineError::Synth(SynthError::OverBudget(e))))
                                .await;
                            return;
                        }
                        break;
                    }
                }
                text_index += 1;
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
    /// Samples sent so far (the timeline word timestamps are placed on).
    samples: usize,
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
        self.samples += samples;
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
