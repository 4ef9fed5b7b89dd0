//! The speech pipeline, once: check a validated request, plan it, and for each
//! piece phonemize, synthesize (sanitized, edge silence trimmed), normalize
//! loudness and encode.
//!
//! The steps are separate functions so a caller can schedule them as it likes:
//! the native backend runs [`render`] on its inference workers (one piece of
//! look-ahead) and [`Output::push`] on a blocking thread; the wasi-nn edge and the
//! CLI pull pieces one after another through [`Run`]. Either way every step is
//! this code, so both paths make the same bytes for the same request.
//!
//! Encoders come from an [`Encoders`] factory: [`PureEncoders`] here (wav, pcm,
//! flac), the backend's adds mp3, opus and aac.

use crate::budget::{Budget, Cost, Meter};
use crate::encode::{Encoder, pure_encoder};
use crate::g2p::{self, G2pError};
use crate::loudness::Loudness;
use crate::timing::Mark;
use crate::voices::VoiceStore;
use crate::windows::{DEFAULT_WINDOWS, Windows};
use crate::{
    DEFAULT_CHUNK, Model, Piece, SynthError, SynthStats, Synthesis, Tables, plan, plan_mapped,
};
use kokoro_core::chunk::ChunkOptions;
use kokoro_core::normalize::SpanMap;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, AudioFormat, Lang, SpeechRequest};

/// Makes an encoder for a format; `total_samples` is known when the whole
/// answer is encoded at once (WAV then carries exact sizes).
pub trait Encoders: Send + Sync {
    fn encoder(
        &self,
        format: AudioFormat,
        total_samples: Option<usize>,
    ) -> Result<Box<dyn Encoder>, String>;
}

/// The pure-Rust encoders: wav, pcm, flac.
pub struct PureEncoders;

impl Encoders for PureEncoders {
    fn encoder(
        &self,
        format: AudioFormat,
        total_samples: Option<usize>,
    ) -> Result<Box<dyn Encoder>, String> {
        pure_encoder(format, total_samples)
            .ok_or_else(|| format!("no pure-Rust encoder for {}", format.as_str()))
    }
}

/// The knobs a deployment sets: chunk windows, decoder windows for streamed
/// requests, the loudness target and the cost budget of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub chunk: ChunkOptions,
    /// How the text pieces of a streamed request are decoded (`None`: whole).
    pub windows: Option<Windows>,
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
    pub budget: Budget,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            chunk: DEFAULT_CHUNK,
            windows: Some(DEFAULT_WINDOWS),
            target_lufs: -16.0,
            true_peak_dbtp: -1.0,
            budget: Budget::default(),
        }
    }
}

/// What one inference job synthesizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Normalized text, phonemized first.
    Text(String),
    /// Phonemes given directly (`/dev/generate_from_phonemes`).
    Phonemes(String),
}

/// A request that passed every check and is planned into pieces.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    pub pieces: Vec<Piece>,
    pub lang: Lang,
    pub voice: VoiceBlend,
    pub speed: f32,
    pub format: AudioFormat,
    pub stream: bool,
    /// What the request may make; each run meters itself against it.
    pub budget: Budget,
    /// Decoder windows for the text pieces (streamed requests only).
    pub windows: Option<Windows>,
    /// With word timestamps: the input as sent, and for each text piece (in
    /// order) where its bytes came from in it.
    pub stamping: Option<Stamping>,
}

/// What word timestamps need beyond the pieces.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamping {
    pub input: String,
    pub maps: Vec<SpanMap>,
}

/// The checks every request passes before any work: a language this build can
/// phonemize, then every voice of the blend installed.
pub fn check(lang: Lang, voice: &VoiceBlend, voices: &VoiceStore) -> Result<(), ApiError> {
    if !g2p::supports(lang) {
        return Err(ApiError::unsupported_language(lang.tag()));
    }
    if let Some(missing) = voices.missing(voice) {
        return Err(ApiError::voice_not_installed(missing));
    }
    Ok(())
}

/// Check and plan a validated request, and check its cost against the budget.
pub fn prepare(
    req: &SpeechRequest,
    voices: &VoiceStore,
    settings: &Settings,
) -> Result<Speech, ApiError> {
    check(req.lang, &req.voice, voices)?;
    let (pieces, stamping) = if req.timestamps {
        let (pieces, maps) = plan_mapped(req, &settings.chunk)?;
        let input = req.input.clone();
        (pieces, Some(Stamping { input, maps }))
    } else {
        (plan(req, &settings.chunk)?, None)
    };
    settings.budget.admit(&Cost::of(&pieces), req.speed)?;
    Ok(Speech {
        pieces,
        budget: settings.budget,
        lang: req.lang,
        voice: req.voice.clone(),
        speed: req.speed,
        format: req.format,
        stream: req.stream,
        windows: settings.windows.filter(|_| req.stream),
        stamping,
    })
}

impl SynthError {
    /// The API error a client sees; failures keep their detail for the logs.
    pub fn to_api(&self) -> ApiError {
        match self {
            SynthError::Unsupported(l) => ApiError::unsupported_language(l.tag()),
            SynthError::VoiceMissing(v) => ApiError::voice_not_installed(v),
            SynthError::OverBudget(e) => e.clone(),
            SynthError::Cancelled | SynthError::Failed(_) => ApiError::internal(),
        }
    }
}

/// One synthesized text piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub audio: Vec<f32>,
    pub phonemes: String,
    pub stats: SynthStats,
    /// With `words`: each word of the text (English G2P) and where it lies in `audio`.
    pub words: Vec<(g2p::Word, Mark)>,
}

/// Phonemize (for text) one piece of input and plan its synthesis; returns the
/// [`Synthesis`] to pull audio from and the phonemes.
pub fn start(
    input: &Input,
    lang: Lang,
    voice: &VoiceBlend,
    speed: f32,
    tables: Tables<'_>,
    windows: Option<Windows>,
) -> Result<(Synthesis, String), SynthError> {
    start_timed(input, lang, voice, speed, tables, windows, false).map(|(s, p, _)| (s, p))
}

/// [`start`], and with `words` the text's words, which the synthesis then marks
/// on its timeline ([`Synthesis::take_marks`]; a mark's `word` indexes them).
pub fn start_timed(
    input: &Input,
    lang: Lang,
    voice: &VoiceBlend,
    speed: f32,
    tables: Tables<'_>,
    windows: Option<Windows>,
    words: bool,
) -> Result<(Synthesis, String, Vec<g2p::Word>), SynthError> {
    let (phonemes, list) = match input {
        Input::Phonemes(p) => (p.clone(), Vec::new()),
        Input::Text(t) => g2p::phonemize_words(t, lang, words).map_err(|e| match e {
            G2pError::Unsupported(l) => SynthError::Unsupported(l),
            G2pError::Failed(m) => SynthError::Failed(m),
        })?,
    };
    let at: Vec<_> = list.iter().map(|w| w.at.clone()).collect();
    let s = Synthesis::new(&phonemes, voice, speed, tables, windows, &at)?;
    Ok((s, phonemes, list))
}

/// Phonemize (for text) and synthesize one piece of input with `model`, whole;
/// with `words`, each word's place in the audio. `cancelled` is polled before
/// each model call; `timed` gets each call's seconds.
#[allow(clippy::too_many_arguments)]
pub fn render(
    model: &mut dyn Model,
    input: &Input,
    lang: Lang,
    voice: &VoiceBlend,
    speed: f32,
    tables: Tables<'_>,
    words: bool,
    cancelled: &dyn Fn() -> bool,
    timed: &mut dyn FnMut(f64),
) -> Result<Rendered, SynthError> {
    let (mut s, phonemes, list) = start_timed(input, lang, voice, speed, tables, None, words)?;
    let mut audio = Vec::new();
    let mut marks = Vec::new();
    while let Some(part) = s.next(model, cancelled, timed) {
        audio.extend(part?);
        marks.extend(s.take_marks());
    }
    // A word's end never lies past the audio (the last call's tail is trimmed).
    let len = audio.len();
    let words = marks
        .into_iter()
        .filter_map(|m| {
            let w = list.get(m.word)?.clone();
            Some((
                w,
                Mark {
                    start: m.start.min(len),
                    end: m.end.min(len),
                    ..m
                },
            ))
        })
        .collect();
    Ok(Rendered {
        audio,
        phonemes,
        stats: s.stats(),
        words,
    })
}

/// A request's output stage: loudness normalization, then the encoder. A streamed
/// answer is encoded piece by piece; a whole one is buffered and encoded once at
/// [`Output::finish`], when its length is known.
pub struct Output {
    loudness: Loudness,
    encoder: Option<Box<dyn Encoder>>,
    format: AudioFormat,
    /// Normalized samples of a whole (not streamed) answer.
    whole: Option<Vec<f32>>,
    samples: usize,
}

impl Output {
    pub fn new(
        settings: &Settings,
        format: AudioFormat,
        stream: bool,
        encoders: &dyn Encoders,
    ) -> Result<Self, String> {
        Ok(Self {
            loudness: Loudness::new(settings.target_lufs, settings.true_peak_dbtp)?,
            encoder: if stream {
                Some(encoders.encoder(format, None)?)
            } else {
                None
            },
            format,
            whole: (!stream).then(Vec::new),
            samples: 0,
        })
    }

    /// Normalize one piece's samples in place and return the bytes ready to send
    /// (none while a whole answer is being buffered).
    pub fn push(&mut self, audio: &mut [f32]) -> Result<Vec<u8>, String> {
        self.loudness.process(audio);
        self.samples += audio.len();
        let mut out = Vec::new();
        if let Some(w) = &mut self.whole {
            w.extend_from_slice(audio);
        } else if let Some(e) = &mut self.encoder {
            e.encode(audio, &mut out)?;
        }
        Ok(out)
    }

    /// The rest of the answer: the encoder's tail, or the whole encoded answer.
    pub fn finish(&mut self, encoders: &dyn Encoders) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        if let Some(w) = self.whole.take() {
            let mut e = encoders.encoder(self.format, Some(w.len()))?;
            out.reserve(w.len() / 2);
            e.encode(&w, &mut out)?;
            e.finish(&mut out)?;
        } else if let Some(e) = &mut self.encoder {
            e.finish(&mut out)?;
        }
        Ok(out)
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

/// One step of a [`Run`].
#[derive(Debug)]
pub struct Chunk {
    /// Bytes to send (may be empty while a whole answer is buffered).
    pub bytes: Vec<u8>,
    /// Whether this was the last step (the encoder's tail is in `bytes`).
    pub last: bool,
}

/// The whole pipeline in one thread, pulled a part at a time: for callers that
/// own their model (the wasi-nn edge, tests). Each [`Run::step`] makes one part
/// (a decoder window, a whole call or a pause) and post-processes it; after the
/// last one more step returns the encoder's tail.
pub struct Run<'a> {
    speech: &'a Speech,
    meter: Meter,
    tables: Tables<'a>,
    encoders: &'a dyn Encoders,
    output: Output,
    next: usize,
    current: Option<Synthesis>,
    /// Decoder windows for every text piece (streamed requests).
    windows: Option<Windows>,
    done: bool,
}

impl<'a> Run<'a> {
    pub fn new(
        speech: &'a Speech,
        tables: Tables<'a>,
        settings: &Settings,
        encoders: &'a dyn Encoders,
    ) -> Result<Self, SynthError> {
        let output = Output::new(settings, speech.format, speech.stream, encoders)
            .map_err(SynthError::Failed)?;
        Ok(Self {
            speech,
            meter: speech.budget.meter(),
            tables,
            encoders,
            output,
            next: 0,
            current: None,
            windows: speech.windows,
            done: false,
        })
    }

    fn fail(&mut self, e: SynthError) -> Option<Result<Chunk, SynthError>> {
        self.done = true;
        Some(Err(e))
    }

    /// The next chunk, or `None` once the tail has been returned.
    pub fn step(&mut self, model: &mut dyn Model) -> Option<Result<Chunk, SynthError>> {
        if self.done {
            return None;
        }
        let mut audio = loop {
            if let Some(s) = &mut self.current {
                match s.next(model, &|| false, &mut |_| {}) {
                    Some(Ok(a)) => break a,
                    Some(Err(e)) => return self.fail(e),
                    None => self.current = None,
                }
            }
            let Some(piece) = self.speech.pieces.get(self.next) else {
                self.done = true;
                return Some(
                    self.output
                        .finish(self.encoders)
                        .map(|bytes| Chunk { bytes, last: true })
                        .map_err(SynthError::Failed),
                );
            };
            self.next += 1;
            match piece {
                Piece::Silence(n) => break vec![0.0f32; *n],
                Piece::Text(t) => {
                    let sp = self.speech;
                    let windows = self.windows;
                    let started = start(
                        &Input::Text(t.clone()),
                        sp.lang,
                        &sp.voice,
                        sp.speed,
                        self.tables,
                        windows,
                    );
                    match started {
                        Ok((s, _)) => match self.meter.add_ids(s.planned_ids()) {
                            Ok(()) => self.current = Some(s),
                            Err(e) => return self.fail(SynthError::OverBudget(e)),
                        },
                        Err(e) => return self.fail(e),
                    }
                }
            }
        };
        if let Err(e) = self.meter.add_samples(audio.len()) {
            return self.fail(SynthError::OverBudget(e));
        }
        Some(
            self.output
                .push(&mut audio)
                .map(|bytes| Chunk { bytes, last: false })
                .map_err(SynthError::Failed),
        )
    }

    /// Samples produced so far.
    pub fn samples(&self) -> usize {
        self.output.samples()
    }
}
