//! `kokoro-synth`: the speech pipeline both serving paths share, so the native
//! backend and the wasi-nn edge component produce the same audio by construction.
//!
//! - [`g2p`]: text to phonemes (misaki-rs, then an out-of-vocabulary chain so no word
//!   is silent; espeak-ng behind a feature, native only).
//! - [`plan`]: a request into pauses and normalized text chunks.
//! - [`synthesize`]: phonemes into audio through any [`Model`] (ONNX Runtime in the
//!   backend, wasi-nn in the component), at most [`IDS_PER_CALL`] ids per call.
//! - [`voices`]: voice packs and style vectors; [`loudness`]: BS.1770 normalization
//!   and limiting; [`encode`]: wav, pcm and flac.
//! - [`pipeline`]: the steps above as one pipeline (check, plan, render, output),
//!   which both serving paths and the CLI run.
//!
//! No sockets, no threads; file reads only where a caller asks ([`voices::VoiceStore::load`],
//! [`g2p::load_fallback`]).

pub mod budget;
pub mod encode;
pub mod fake;
#[doc(hidden)]
pub mod fuzz;
pub mod g2p;
pub mod loudness;
pub mod pipeline;
pub mod timing;
pub mod voices;
pub mod windows;

use kokoro_core::chunk::{MAX_PHONEME_IDS, phoneme_ranges};
use kokoro_core::vocab::Vocab;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, Lang, SAMPLE_RATE};
use std::ops::Range;
use timing::Mark;
use voices::VoiceStore;
use windows::{Joiner, Trimmer, Window, Windows};

/// Phoneme ids per inference call. The model takes up to 510, but activation
/// memory grows with the audio length; 256 ids (~15 s of speech) keeps the
/// per-call arena bounded (see ARCHITECTURE.md, memory).
pub const IDS_PER_CALL: usize = 256;
const _: () = assert!(IDS_PER_CALL <= MAX_PHONEME_IDS);

/// Ids per inference call at `speed`: the model's activations grow with the audio
/// frames a call makes (ids / speed), so below speed 1 a call gets proportionally
/// fewer ids (64 at speed 0.25) and its memory stays what 256 ids take at speed 1.
pub fn ids_per_call(speed: f32) -> usize {
    ((IDS_PER_CALL as f32 * speed.min(1.0)) as usize).clamp(64, IDS_PER_CALL)
}

/// The assets directory as the environment names it (`KOKORO_ASSETS_DIR`, then the
/// XDG cache, then `~/.cache`): see [`kokoro_core::assets::default_dir`].
pub fn assets_dir_from_env() -> std::path::PathBuf {
    let env = |k: &str| std::env::var(k).ok();
    kokoro_core::assets::default_dir(
        env("KOKORO_ASSETS_DIR").as_deref(),
        env("XDG_CACHE_HOME").as_deref(),
        env("HOME").as_deref(),
    )
    .into()
}

/// Samples per frame of the model's duration predictor (25 ms at 24 kHz).
pub const SAMPLES_PER_FRAME: usize = 600;

/// What the encoder half hands the decoder for one call: the text features
/// aligned to frames and the predicted F0 and energy curves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Features {
    pub frames: usize,
    /// Channels x frames, row-major.
    pub asr: Vec<f32>,
    pub channels: usize,
    /// Two values per frame each.
    pub f0: Vec<f32>,
    pub energy: Vec<f32>,
    /// Predicted frames per token, the padding tokens included.
    pub durations: Vec<u32>,
}

impl Features {
    /// The encoder's outputs at the cut (see `kokoro_core::assets::CUT_*`): text
    /// features of `shape` [1, channels, frames], F0 and energy (2 per frame) and
    /// frames per token, checked to agree.
    pub fn from_cut(
        shape: &[usize],
        asr: Vec<f32>,
        f0: Vec<f32>,
        energy: Vec<f32>,
        durations: &[f32],
    ) -> Result<Self, String> {
        let [1, channels, frames] = shape[..] else {
            return Err(format!("features of shape {shape:?}"));
        };
        if asr.len() != channels * frames || f0.len() != 2 * frames || energy.len() != 2 * frames {
            return Err("the encoder's outputs disagree on the frame count".into());
        }
        Ok(Self {
            frames,
            asr,
            channels,
            f0,
            energy,
            durations: durations.iter().map(|&d| d.max(0.0) as u32).collect(),
        })
    }

    /// The same from a graph's named outputs: `get` returns an output's shape and
    /// values by name.
    pub fn from_outputs(
        mut get: impl FnMut(&str) -> Result<(Vec<usize>, Vec<f32>), String>,
    ) -> Result<Self, String> {
        use kokoro_core::assets::{CUT_DURATIONS, CUT_ENERGY, CUT_F0, CUT_FEATURES};
        let (shape, asr) = get(CUT_FEATURES)?;
        let (_, f0) = get(CUT_F0)?;
        let (_, energy) = get(CUT_ENERGY)?;
        let (_, durations) = get(CUT_DURATIONS)?;
        Self::from_cut(&shape, asr, f0, energy, &durations)
    }

    /// The decoder's inputs for frames `r`: (asr, f0, energy), copied out.
    pub fn window(&self, r: &Range<usize>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let n = r.end - r.start;
        let mut asr = Vec::with_capacity(self.channels * n);
        for c in 0..self.channels {
            let row = c * self.frames;
            asr.extend_from_slice(&self.asr[row + r.start..row + r.end]);
        }
        let two = 2 * r.start..2 * r.end;
        (
            asr,
            self.f0[two.clone()].to_vec(),
            self.energy[two].to_vec(),
        )
    }
}

/// The encoder's answer: features to decode, or (for a graph that is not split,
/// e.g. a custom export) the finished audio of the whole call.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoded {
    Features(Features),
    Audio(Vec<f32>),
}

/// Kokoro as two halves: ONNX Runtime natively, wasi-nn in the edge component,
/// fakes in unit tests. `encode` runs once per call (ids are padded); `decode`
/// once per window of its frames.
pub trait Model {
    fn encode(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Encoded, String>;

    /// Audio for `frames` of `features` (`style` as given to `encode`).
    fn decode(
        &mut self,
        features: &Features,
        frames: Range<usize>,
        style: &[f32],
    ) -> Result<Vec<f32>, String> {
        let _ = (features, frames, style);
        Err("this model has no decoder half".into())
    }
}

/// Why a chunk could not be synthesized.
#[derive(Debug, Clone, PartialEq)]
pub enum SynthError {
    /// The language needs a G2P this build does not have.
    Unsupported(Lang),
    VoiceMissing(String),
    Cancelled,
    /// Over the request's cost budget (see [`budget`]).
    OverBudget(ApiError),
    Failed(String),
}

/// The lookup tables a synthesis needs.
#[derive(Clone, Copy)]
pub struct Tables<'a> {
    pub vocab: &'a Vocab,
    pub voices: &'a VoiceStore,
}

/// What one [`synthesize`] call did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SynthStats {
    /// Inference calls (their durations go to the `timed` callback).
    pub calls: usize,
    /// Non-finite samples the model produced (zeroed).
    pub nonfinite: usize,
    /// Phoneme ids synthesized (padding excluded).
    pub ids: usize,
    /// The fastest decode so far of at least [`PACE_MIN_FRAMES`] frames, in
    /// microseconds per frame (0: none yet): the decoder's pace on this machine.
    pub best_frame_micros: u64,
}

/// Decodes shorter than this are not timed for the pace (fixed costs dominate).
pub const PACE_MIN_FRAMES: usize = 24;

/// One inference call of a [`Synthesis`]: padded ids and their style row.
struct Call {
    ids: Vec<i64>,
    style: Vec<f32>,
    /// Silence kept before and after the call's speech, in samples.
    edges: (usize, usize),
    /// The words in this call: index and padded-id range.
    words: Vec<(usize, Range<usize>)>,
}

/// The call being decoded: its features, windows and joins.
struct Decoding {
    features: Features,
    windows: Vec<Window>,
    next: usize,
    joiner: Joiner,
    /// Cross-fade half-width at joins, in frames.
    fade: usize,
    /// The call's words and their frames, placed once the trimmer has cut the
    /// lead (the first frame the joiner emits is `origin`).
    words: Vec<(usize, Range<usize>)>,
    origin: usize,
}

/// Phonemes into audio, pulled a part at a time: split into calls of at most
/// [`ids_per_call`] ids; each call is encoded once, then decoded whole or (with
/// [`Windows`]) window by window; every part comes out sanitized, with the
/// call's edge silence trimmed as it streams. `synthesize` collects all parts.
pub struct Synthesis {
    calls: std::vec::IntoIter<Call>,
    call: Option<(Call, Trimmer)>,
    decoding: Option<Decoding>,
    windows: Option<Windows>,
    speed: f32,
    stats: SynthStats,
    planned_ids: usize,
    /// Samples given out so far, and the word marks placed but not yet taken.
    emitted: usize,
    marks: Vec<Mark>,
}

impl Synthesis {
    /// Plan the calls; checks the voices. `windows` apply to the first call of
    /// the piece (later calls are synthesized while its audio plays).
    /// `words`: byte ranges of `phonemes` to time (see [`Synthesis::take_marks`]);
    /// empty for none.
    pub fn new(
        phonemes: &str,
        voice: &VoiceBlend,
        speed: f32,
        tables: Tables<'_>,
        windows: Option<Windows>,
        words: &[Range<usize>],
    ) -> Result<Self, SynthError> {
        let Tables { vocab, voices } = tables;
        if let Some(name) = voices.missing(voice) {
            return Err(SynthError::VoiceMissing(name.to_string()));
        }
        let mut calls = Vec::new();
        for range in phoneme_ranges(phonemes, ids_per_call(speed)) {
            let piece = &phonemes[range.clone()];
            let (ids, _) = vocab.encode_padded(piece);
            if ids.len() <= 2 {
                continue;
            }
            let style = voices
                .style(voice, ids.len() - 2)
                .map_err(SynthError::VoiceMissing)?;
            calls.push(Call {
                ids,
                style,
                edges: edge_silence(piece),
                words: timing::word_ids(vocab, range, phonemes, words),
            });
        }
        let planned_ids = calls.iter().map(|c| c.ids.len() - 2).sum();
        Ok(Self {
            planned_ids,
            calls: calls.into_iter(),
            call: None,
            decoding: None,
            windows,
            speed,
            stats: SynthStats::default(),
            emitted: 0,
            marks: Vec::new(),
        })
    }

    /// The word marks placed since the last call: each word of `words` (given to
    /// [`Synthesis::new`]) is placed when the first audio of its call comes out,
    /// so a mark is always taken before or with the audio it times.
    pub fn take_marks(&mut self) -> Vec<Mark> {
        std::mem::take(&mut self.marks)
    }

    /// What the calls so far did.
    pub fn stats(&self) -> SynthStats {
        self.stats
    }

    /// Phoneme ids this synthesis will run (padding excluded), known before any call.
    pub fn planned_ids(&self) -> usize {
        self.planned_ids
    }

    /// The next part of the audio (possibly empty while silence is held back),
    /// or `None` when all is out. `cancelled` is polled before each model call;
    /// `timed` gets each call's seconds.
    pub fn next(
        &mut self,
        model: &mut dyn Model,
        cancelled: &dyn Fn() -> bool,
        timed: &mut dyn FnMut(f64),
    ) -> Option<Result<Vec<f32>, SynthError>> {
        if (self.decoding.is_some() || self.calls.len() > 0) && cancelled() {
            return Some(Err(SynthError::Cancelled));
        }
        let part = self.advance(model, timed).transpose();
        if let Some(Ok(audio)) = &part {
            self.emitted += audio.len();
        }
        part
    }

    /// Place the decoding call's words once its lead has been cut (or the call
    /// is over): the call's audio starts at the samples given out so far.
    fn place(&mut self, done: bool) {
        let (Some(d), Some((_, trimmer))) = (&mut self.decoding, &self.call) else {
            return;
        };
        if d.words.is_empty() || !(trimmer.started() || done) {
            return;
        }
        let cut = d.origin * SAMPLES_PER_FRAME + trimmer.dropped();
        let at = |frame: usize| self.emitted + (frame * SAMPLES_PER_FRAME).saturating_sub(cut);
        for (word, frames) in d.words.drain(..) {
            self.marks.push(Mark {
                word,
                start: at(frames.start),
                end: at(frames.end),
            });
        }
    }

    /// One model call's worth of audio, trimmed; `Ok(None)` when nothing is left.
    fn advance(
        &mut self,
        model: &mut dyn Model,
        timed: &mut dyn FnMut(f64),
    ) -> Result<Option<Vec<f32>>, SynthError> {
        loop {
            if let Some(d) = &mut self.decoding {
                let (call, trimmer) = self.call.as_mut().expect("a decoding has its call");
                let win = d.windows[d.next].clone();
                d.next += 1;
                let t = std::time::Instant::now();
                let mut audio = model
                    .decode(&d.features, win.decode.clone(), &call.style)
                    .map_err(SynthError::Failed)?;
                let secs = t.elapsed().as_secs_f64();
                timed(secs);
                if win.decode.len() >= PACE_MIN_FRAMES {
                    let micros = (secs * 1e6 / win.decode.len() as f64).round().max(1.0) as u64;
                    let best = &mut self.stats.best_frame_micros;
                    if *best == 0 || micros < *best {
                        *best = micros;
                    }
                }
                // The graph sometimes ends an utterance with NaN/inf samples (seen in
                // the last ~0.1 s for some lengths): zero them before anything
                // measures or blends them (LAME aborts on them).
                self.stats.nonfinite += sanitize(&mut audio);
                let mut out = trimmer.push(&d.joiner.push(&win, &audio, d.fade));
                let last = d.next == d.windows.len();
                if last {
                    out.extend(trimmer.push(&d.joiner.finish()));
                }
                self.place(last);
                if last {
                    let (_, trimmer) = self.call.as_mut().expect("a decoding has its call");
                    out.extend(trimmer.finish());
                    self.decoding = None;
                    self.call = None;
                }
                return Ok(Some(out));
            }
            let Some(call) = self.calls.next() else {
                return Ok(None);
            };
            let t = std::time::Instant::now();
            let encoded = model
                .encode(&call.ids, &call.style, self.speed)
                .map_err(SynthError::Failed)?;
            timed(t.elapsed().as_secs_f64());
            self.stats.calls += 1;
            self.stats.ids += call.ids.len() - 2;
            // Each call pads its audio with silence; keep only the pause that fits
            // its cut (after punctuation, or a word gap), or a slow piece split
            // into many calls would pause every few words.
            let mut trimmer = Trimmer::new(call.edges.0, call.edges.1);
            match encoded {
                Encoded::Features(features) if features.frames > 0 => {
                    let lead_pad = features.durations.first().map_or(0, |&d| d as usize);
                    let windows = self.windows.take();
                    let schedule = windows::schedule(features.frames, lead_pad, windows);
                    let words = call
                        .words
                        .iter()
                        .map(|(w, ids)| {
                            let heard = timing::heard(&features.durations, &features.energy, ids);
                            (*w, heard)
                        })
                        .collect();
                    self.decoding = Some(Decoding {
                        origin: schedule.first().map_or(0, |w| w.emit.start),
                        windows: schedule,
                        fade: windows.map_or(0, |w| w.context / 4),
                        features,
                        next: 0,
                        joiner: Joiner::default(),
                        words,
                    });
                    self.call = Some((call, trimmer));
                }
                Encoded::Features(_) => {}
                Encoded::Audio(mut audio) => {
                    self.stats.nonfinite += sanitize(&mut audio);
                    let mut out = trimmer.push(&audio);
                    out.extend(trimmer.finish());
                    return Ok(Some(out));
                }
            }
        }
    }
}

/// Synthesize `phonemes` with `model`, whole (no windows): all of a
/// [`Synthesis`]'s parts joined.
pub fn synthesize(
    model: &mut dyn Model,
    phonemes: &str,
    voice: &VoiceBlend,
    speed: f32,
    tables: Tables<'_>,
    cancelled: &dyn Fn() -> bool,
    timed: &mut dyn FnMut(f64),
) -> Result<(Vec<f32>, SynthStats), SynthError> {
    let mut s = Synthesis::new(phonemes, voice, speed, tables, None, &[])?;
    let mut audio = Vec::new();
    while let Some(part) = s.next(model, cancelled, timed) {
        audio.extend(part?);
    }
    Ok((audio, s.stats()))
}

/// Raw model output quieter than this counts as silence.
pub(crate) const SILENCE: f32 = 0.01;

/// How much silence a chunk keeps before and after its speech, in samples: the model
/// pads every call with ~0.3-0.5 s of silence on each side, so two chunks of one
/// sentence would otherwise be ~0.9 s apart (measured: "Testing every | format, ...").
/// Kept: 60 ms before; after, a pause that fits the chunk's last punctuation.
pub fn edge_silence(phonemes: &str) -> (usize, usize) {
    let ms = |m: usize| m * SAMPLE_RATE as usize / 1000;
    let tail = match phonemes.trim_end().chars().last() {
        Some('.' | '!' | '?' | '…') => 300,
        Some(',' | ';' | ':' | '—' | '-') => 150,
        _ => 60,
    };
    (ms(60), ms(tail))
}

/// Cut leading and trailing silence down to `keep_lead` / `keep_tail` samples.
/// All-silent audio is left alone. The batch form of [`windows::Trimmer`], which
/// the pipeline uses; kept as the reference its tests compare against.
#[cfg(test)]
pub(crate) fn trim_silence(audio: &mut Vec<f32>, keep_lead: usize, keep_tail: usize) {
    let Some(first) = audio.iter().position(|s| s.abs() > SILENCE) else {
        return;
    };
    let last = audio
        .iter()
        .rposition(|s| s.abs() > SILENCE)
        .unwrap_or(first);
    audio.truncate((last + 1 + keep_tail).min(audio.len()));
    audio.drain(..first.saturating_sub(keep_lead));
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

// Planning (pauses, normalization, chunks) is pure: it lives in `kokoro_core::plan`
// so that the browser (the playground) plans exactly as the server does.
pub use kokoro_core::plan::{DEFAULT_CHUNK, Piece, plan, plan_mapped};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_edges_keep_a_pause_that_fits_the_punctuation() {
        let mut a = vec![0.0f32; 24_000];
        a.extend(vec![0.5f32; 100]);
        a.extend(vec![0.001f32; 24_000]);
        let (lead, tail) = edge_silence("hˈɛlOʊ,");
        assert_eq!((lead, tail), (1440, 3600));
        trim_silence(&mut a, lead, tail);
        assert_eq!(a.len(), 1440 + 100 + 3600);
        assert_eq!(a[1440], 0.5);
        assert_eq!(edge_silence("wˈɜɹld.").1, 7200);
        assert_eq!(edge_silence("ðə kwˈɪk").1, 1440);
        let mut quiet = vec![0.0f32; 100];
        trim_silence(&mut quiet, 10, 10);
        assert_eq!(quiet.len(), 100);
    }

    #[test]
    fn sanitize_zeroes_non_finite_audio() {
        let mut a = vec![0.1, f32::NAN, f32::INFINITY, -0.2];
        assert_eq!(sanitize(&mut a), 2);
        assert!(a.iter().all(|s| s.is_finite()));
    }

    /// A fake unsplit model: one sample per id, valued by the speed; NaN at the end.
    struct Fake(usize);
    impl Model for Fake {
        fn encode(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Encoded, String> {
            assert_eq!(style.len(), kokoro_core::assets::STYLE_DIM);
            self.0 += 1;
            let mut v = vec![speed; ids.len()];
            v.push(f32::NAN);
            Ok(Encoded::Audio(v))
        }
    }

    #[test]
    fn features_from_the_cut_are_checked() {
        let f = Features::from_cut(
            &[1, 2, 3],
            vec![0.0; 6],
            vec![0.0; 6],
            vec![0.0; 6],
            &[2.0, -1.0],
        )
        .unwrap();
        assert_eq!((f.channels, f.frames), (2, 3));
        assert_eq!(f.durations, vec![2, 0]);
        let (asr, f0, _) = Features {
            asr: (0..6).map(|i| i as f32).collect(),
            f0: (0..6).map(|i| i as f32).collect(),
            ..f.clone()
        }
        .window(&(1..3));
        assert_eq!(
            (asr, f0),
            (vec![1.0, 2.0, 4.0, 5.0], vec![2.0, 3.0, 4.0, 5.0])
        );
        assert!(
            Features::from_cut(&[1, 2, 3], vec![0.0; 5], vec![0.0; 6], vec![0.0; 6], &[]).is_err()
        );
        assert!(Features::from_cut(&[2, 3], vec![], vec![], vec![], &[]).is_err());
    }

    /// The fake model's tables, a voice, and eight sentences of phonemes.
    fn fake_sentence() -> (Vocab, VoiceStore, VoiceBlend, String) {
        let ps = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ. ".repeat(8);
        let voices = fake::voices(&["af_heart"]);
        (fake::vocab(), voices, VoiceBlend::single("af_heart"), ps)
    }

    /// Windows change nothing for a model whose audio does not depend on the
    /// window; parts stream out as each window is decoded.
    #[test]
    fn windowed_synthesis_streams_the_same_audio_in_parts() {
        let (vocab, voices, voice, ps) = fake_sentence();
        let t = Tables {
            vocab: &vocab,
            voices: &voices,
        };
        let (whole, st) = synthesize(
            &mut fake::ToneModel,
            &ps,
            &voice,
            0.25,
            t,
            &|| false,
            &mut |_| {},
        )
        .unwrap();
        let mut s =
            Synthesis::new(&ps, &voice, 0.25, t, Some(windows::DEFAULT_WINDOWS), &[]).unwrap();
        let (mut parts, mut calls) = (Vec::new(), 0);
        while let Some(p) = s.next(&mut fake::ToneModel, &|| false, &mut |_| calls += 1) {
            parts.push(p.unwrap());
        }
        assert!(parts.len() >= 3, "{} parts", parts.len());
        assert!(!parts[0].is_empty() && parts[0].len() < whole.len() / 4);
        assert_eq!(parts.concat(), whole);
        assert_eq!((s.stats().ids, s.stats().calls), (st.ids, st.calls));
        assert!(calls > 2 * st.calls, "{calls} model calls");
        // Windows of 24 frames or more are timed for the decoder's pace.
        assert!(s.stats().best_frame_micros >= 1);
        // Cancelled between windows.
        let mut s =
            Synthesis::new(&ps, &voice, 1.0, t, Some(windows::DEFAULT_WINDOWS), &[]).unwrap();
        assert!(
            s.next(&mut fake::ToneModel, &|| false, &mut |_| {})
                .unwrap()
                .is_ok()
        );
        let e = s.next(&mut fake::ToneModel, &|| true, &mut |_| {}).unwrap();
        assert_eq!(e.unwrap_err(), SynthError::Cancelled);
    }

    /// Word marks: in order, inside the audio, over the voiced samples, the same
    /// whether the call is decoded whole or in windows, and later calls' words
    /// after earlier ones'.
    #[test]
    fn words_are_marked_on_the_output_timeline() {
        let (vocab, voices, voice, ps) = fake_sentence();
        let t = Tables {
            vocab: &vocab,
            voices: &voices,
        };
        let mut words = Vec::new();
        let mut at = 0;
        for w in ps.split(' ') {
            if !w.is_empty() {
                words.push(at..at + w.len());
            }
            at += w.len() + 1;
        }
        let run = |windows, speed| {
            let mut s = Synthesis::new(&ps, &voice, speed, t, windows, &words).unwrap();
            let (mut audio, mut marks) = (Vec::new(), Vec::new());
            while let Some(p) = s.next(&mut fake::ToneModel, &|| false, &mut |_| {}) {
                let p = p.unwrap();
                let taken = s.take_marks();
                // A mark comes out before (or with) the audio it times.
                assert!(taken.iter().all(|m| m.start >= audio.len()), "{taken:?}");
                marks.extend(taken);
                audio.extend(p);
            }
            (audio, marks, s.stats().calls)
        };
        let (audio, marks, calls) = run(None, 0.25);
        assert!(calls >= 3, "{calls} calls");
        assert_eq!(marks.len(), words.len());
        let mut last = 0;
        for (i, m) in marks.iter().enumerate() {
            assert_eq!(m.word, i);
            assert!(
                m.start >= last && m.end > m.start && m.end <= audio.len(),
                "{m:?}"
            );
            // The fake's tone fills every voiced frame, where the durations put it
            // (the real model's audio leads them): a word is never silence.
            let lead = timing::AUDIO_LEAD_FRAMES * SAMPLES_PER_FRAME;
            let heard = &audio[m.start + lead..(m.end + lead).min(audio.len())];
            assert!(heard.iter().any(|x| x.abs() > 0.1), "{m:?}");
            last = m.end;
        }
        // The first word starts where the speech does (60 ms of lead kept).
        let onset = audio.iter().position(|x| x.abs() > SILENCE).unwrap();
        let lead = timing::AUDIO_LEAD_FRAMES * SAMPLES_PER_FRAME;
        assert!(
            (marks[0].start + lead).abs_diff(onset) <= SAMPLES_PER_FRAME,
            "{marks:?} {onset}"
        );
        let (streamed, streamed_marks, _) = run(Some(windows::DEFAULT_WINDOWS), 0.25);
        assert_eq!(streamed, audio);
        assert_eq!(streamed_marks, marks);
        // Without words, no marks.
        let mut s = Synthesis::new(&ps, &voice, 1.0, t, None, &[]).unwrap();
        while let Some(p) = s.next(&mut fake::ToneModel, &|| false, &mut |_| {}) {
            p.unwrap();
            assert!(s.take_marks().is_empty());
        }
    }

    #[test]
    fn synthesize_splits_long_input_and_checks_voices() {
        let vocab = Vocab::from_json(r#"{"vocab": {"a": 1, " ": 2, ".": 3}}"#).unwrap();
        let mut packs = std::collections::HashMap::new();
        packs.insert(
            "af_heart",
            vec![0.5f32; kokoro_core::assets::VOICE_BYTES / 4].into_boxed_slice(),
        );
        let voices = VoiceStore::from_packs(packs);
        let voice = VoiceBlend::single("af_heart");
        let t = Tables {
            vocab: &vocab,
            voices: &voices,
        };
        let long = "a ".repeat(300);
        let mut model = Fake(0);
        let mut times = 0;
        let (audio, stats) = synthesize(&mut model, &long, &voice, 0.5, t, &|| false, &mut |_| {
            times += 1
        })
        .unwrap();
        assert!(stats.calls >= 3 && model.0 == stats.calls && times == stats.calls);
        assert_eq!(stats.ids, long.chars().count());
        assert_eq!(stats.nonfinite, stats.calls);
        assert!(audio.iter().all(|s| s.is_finite()));
        // At speed 0.25 a call makes 4x the frames per id: it gets a quarter of the ids.
        let mut slow = Fake(0);
        let (_, st) =
            synthesize(&mut slow, &long, &voice, 0.25, t, &|| false, &mut |_| {}).unwrap();
        assert!(st.calls >= 600 / 64, "{} calls", st.calls);
        assert_eq!(
            (ids_per_call(0.25), ids_per_call(1.0), ids_per_call(3.0)),
            (64, 256, 256)
        );
        let cancelled = synthesize(&mut model, "a a", &voice, 1.0, t, &|| true, &mut |_| {});
        assert_eq!(cancelled.unwrap_err(), SynthError::Cancelled);
        let missing = synthesize(
            &mut model,
            "a",
            &VoiceBlend::single("am_adam"),
            1.0,
            t,
            &|| false,
            &mut |_| {},
        );
        assert!(matches!(missing, Err(SynthError::VoiceMissing(v)) if v == "am_adam"));
    }
}
