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
pub mod voices;

use kokoro_core::chunk::{ChunkOptions, MAX_PHONEME_IDS, chunk_text, split_phonemes};
use kokoro_core::markup::{Segment, segments};
use kokoro_core::normalize::normalize;
use kokoro_core::vocab::Vocab;
use kokoro_core::voice::VoiceBlend;
use kokoro_core::{ApiError, Lang, SAMPLE_RATE, SpeechRequest};
use voices::VoiceStore;

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

/// The default chunk windows, shared by the backend and the wasi-nn edge.
///
/// Inference time grows with the audio a chunk makes (~0.34 s per second of speech
/// on the 2-core development machine, no fixed cost to speak of), so time to first
/// audio is set by the first chunk: 12 characters (about two words, ~0.8 s of
/// speech) gives ~455 ms, 16 gives ~540 ms, 24 gives ~600 ms for the same sentence.
pub const DEFAULT_CHUNK: ChunkOptions = ChunkOptions {
    first_max_chars: 12,
    max_chars: 240,
    min_chars: 10,
};

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

/// Anything that turns padded ids into audio: ONNX Runtime natively, wasi-nn in
/// the edge component, a fake in unit tests.
pub trait Model {
    fn infer(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Vec<f32>, String>;
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
}

/// Synthesize `phonemes` with `model`: split into calls of at most
/// [`ids_per_call`] ids, pick the style row per call, sanitize the output.
/// `cancelled` is polled before each call; `timed` gets each call's seconds.
pub fn synthesize(
    model: &mut dyn Model,
    phonemes: &str,
    voice: &VoiceBlend,
    speed: f32,
    tables: Tables<'_>,
    cancelled: &dyn Fn() -> bool,
    timed: &mut dyn FnMut(f64),
) -> Result<(Vec<f32>, SynthStats), SynthError> {
    let Tables { vocab, voices } = tables;
    if let Some(name) = voices.missing(voice) {
        return Err(SynthError::VoiceMissing(name.to_string()));
    }
    let mut audio = Vec::new();
    let mut stats = SynthStats::default();
    for piece in split_phonemes(phonemes, ids_per_call(speed)) {
        let (ids, _) = vocab.encode_padded(piece);
        if ids.len() <= 2 {
            continue;
        }
        if cancelled() {
            return Err(SynthError::Cancelled);
        }
        let style = voices
            .style(voice, ids.len() - 2)
            .map_err(SynthError::VoiceMissing)?;
        let t = std::time::Instant::now();
        let mut out = model
            .infer(&ids, &style, speed)
            .map_err(SynthError::Failed)?;
        timed(t.elapsed().as_secs_f64());
        stats.calls += 1;
        stats.ids += ids.len() - 2;
        // The Kokoro graph sometimes ends an utterance with NaN/inf samples (seen in
        // the last ~0.1 s for some lengths, int8 and float alike). Zero them: they
        // would crash LAME's assertions and poison loudness measurement.
        stats.nonfinite += sanitize(&mut out);
        // Each call pads its audio with silence; between two calls of one piece keep
        // only the pause that fits the cut (after punctuation, or a word gap), or a
        // slow piece split into many calls would pause every few words.
        let (lead, tail) = edge_silence(piece);
        trim_silence(&mut out, lead, tail);
        audio.extend(out);
    }
    let (lead, tail) = edge_silence(phonemes);
    trim_silence(&mut audio, lead, tail);
    Ok((audio, stats))
}

/// Raw model output quieter than this counts as silence.
const SILENCE: f32 = 0.01;

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
/// All-silent audio is left alone.
pub fn trim_silence(audio: &mut Vec<f32>, keep_lead: usize, keep_tail: usize) {
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

/// A planned piece of output.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Silence(usize),
}

/// Split a request into pieces: pauses, then normalized text in chunks. Only a
/// streamed request gets the small first window: a client that waits for the whole
/// body gains nothing from it, and every extra chunk costs an inference call.
pub fn plan(req: &SpeechRequest, chunk: &ChunkOptions) -> Result<Vec<Piece>, ApiError> {
    let mut pieces = Vec::new();
    let mut first = req.stream;
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
                    ChunkOptions {
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
        return Err(ApiError::no_speakable_text());
    }
    Ok(pieces)
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
        let opts = ChunkOptions {
            first_max_chars: 30,
            max_chars: 120,
            min_chars: 5,
        };
        let p = plan(&req(json!({"input": "It costs $5. [pause:0.5s] Then we go home and sleep for a long long while, friends."})), &opts).unwrap();
        assert_eq!(p[0], Piece::Text("It costs five dollars.".into()));
        assert_eq!(p[1], Piece::Silence(12_000));
        assert!(matches!(&p[2], Piece::Text(t) if t.starts_with("Then we go home")));
        let whole = plan(
            &req(
                json!({"input": "Your order has shipped today, my dear friends.", "stream": false}),
            ),
            &opts,
        )
        .unwrap();
        assert_eq!(
            whole,
            vec![Piece::Text(
                "Your order has shipped today, my dear friends.".into()
            )]
        );
        let long = "word ".repeat(100);
        let p = plan(&req(json!({"input": long})), &opts).unwrap();
        assert!(matches!(&p[0], Piece::Text(t) if t.chars().count() <= 30));
        assert!(p.len() > 3);
        let e = plan(&req(json!({"input": "... !!! [pause:1s]"})), &opts).unwrap_err();
        assert_eq!((e.status(), e.code), (422, "no_speakable_text"));
    }

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

    /// A fake model: one sample per id, valued by the speed; NaN at the end.
    struct Fake(usize);
    impl Model for Fake {
        fn infer(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Vec<f32>, String> {
            assert_eq!(style.len(), kokoro_core::assets::STYLE_DIM);
            self.0 += 1;
            let mut v = vec![speed; ids.len()];
            v.push(f32::NAN);
            Ok(v)
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
