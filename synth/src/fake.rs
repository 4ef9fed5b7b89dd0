//! A stand-in for the Kokoro graph, for tests that must run without the model
//! assets (route and error contracts, format properties): it "speaks" a tone
//! whose length follows the ids and the speed, framed by the quiet edges a real
//! call has, and now and then ends on a non-finite sample as the real graph does.
//! Never used to serve requests.

use crate::{Encoded, Features, Model, SAMPLES_PER_FRAME};
use std::ops::Range;

/// Frames of silence the fake puts before and after its tone.
pub const EDGE_FRAMES: usize = 4;
/// The same in samples.
pub const EDGE: usize = EDGE_FRAMES * SAMPLES_PER_FRAME;

/// Split like the real graph: `encode` gives frames (quiet edge frames, then
/// voiced ones), `decode` a tone over the voiced frames of any window, the same
/// samples whichever window asks (so joins are exact).
#[derive(Debug, Default, Clone, Copy)]
pub struct ToneModel;

impl Model for ToneModel {
    fn encode(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Encoded, String> {
        if style.len() != kokoro_core::assets::STYLE_DIM {
            return Err(format!("style has {} values", style.len()));
        }
        if !(speed.is_finite() && speed > 0.0) {
            return Err(format!("speed {speed}"));
        }
        let sum: i64 = ids.iter().sum();
        let voiced = (ids.len() * 173 + (sum.unsigned_abs() as usize % 977)) as f32 / speed;
        let voiced_frames = (voiced as usize).div_ceil(SAMPLES_PER_FRAME).max(1);
        let frames = voiced_frames + 2 * EDGE_FRAMES;
        let mut asr = vec![0.0f32; frames];
        asr[EDGE_FRAMES..EDGE_FRAMES + voiced_frames].fill(1.0);
        // A NaN at the very end now and then, as the real graph does.
        let nan = if sum % 3 == 0 { f32::NAN } else { 0.0 };
        // Frames per id that add up: the pads get the edges, the ids between
        // share the voiced frames.
        let mut durations = vec![0u32; ids.len()];
        let inner = ids.len().saturating_sub(2).max(1);
        for (k, d) in durations.iter_mut().enumerate().skip(1).take(inner) {
            *d = (voiced_frames * k / inner - voiced_frames * (k - 1) / inner) as u32;
        }
        durations[0] = EDGE_FRAMES as u32;
        if let Some(last) = durations.last_mut().filter(|_| ids.len() > 1) {
            *last = EDGE_FRAMES as u32;
        }
        Ok(Encoded::Features(Features {
            frames,
            asr,
            channels: 1,
            f0: vec![nan; 2 * frames],
            energy: vec![0.0; 2 * frames],
            durations,
        }))
    }

    fn decode(&mut self, f: &Features, r: Range<usize>, style: &[f32]) -> Result<Vec<f32>, String> {
        if style.len() != kokoro_core::assets::STYLE_DIM || r.end > f.frames || r.start > r.end {
            return Err(format!("bad window {r:?} of {} frames", f.frames));
        }
        let mut out = Vec::with_capacity((r.end - r.start) * SAMPLES_PER_FRAME);
        for frame in r.clone() {
            let voiced = f.asr[frame] > 0.0;
            out.extend((0..SAMPLES_PER_FRAME).map(|k| {
                let i = ((frame - EDGE_FRAMES.min(frame)) * SAMPLES_PER_FRAME + k) as f32;
                if voiced { 0.4 * (i * 0.07).sin() } else { 0.0 }
            }));
        }
        if r.end == f.frames
            && f.f0[0].is_nan()
            && let Some(last) = out.last_mut()
        {
            *last = f32::NAN;
        }
        Ok(out)
    }
}

/// A vocabulary that gives every character misaki emits for English an id.
pub fn vocab() -> kokoro_core::vocab::Vocab {
    const SYMBOLS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.!?;:-—…'\"()ˈˌːæɑɐɒɔəɚɛɜɝɪʊʌθðŋʃʒʤʧɡɹɾʔᵊᵻ";
    let map: Vec<String> = SYMBOLS
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let key = if c == '"' || c == '\\' {
                format!("\\{c}")
            } else {
                c.to_string()
            };
            format!("\"{key}\": {}", i + 1)
        })
        .collect();
    kokoro_core::vocab::Vocab::from_json(&format!("{{{}}}", map.join(", ")))
        .unwrap_or_else(|e| unreachable!("the fake vocabulary is valid JSON: {e}"))
}

/// A voice store holding only the given catalog voices, with flat style rows.
pub fn voices(names: &[&'static str]) -> crate::voices::VoiceStore {
    let packs = names
        .iter()
        .map(|n| {
            let pack = vec![0.1f32; kokoro_core::assets::VOICE_BYTES / 4].into_boxed_slice();
            (*n, pack)
        })
        .collect();
    crate::voices::VoiceStore::from_packs(packs)
}
