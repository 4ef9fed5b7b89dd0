//! A stand-in for the Kokoro graph, for tests that must run without the model
//! assets (route and error contracts, format properties): it "speaks" a tone
//! whose length follows the ids and the speed, framed by the quiet edges a real
//! call has, and now and then ends on a non-finite sample as the real graph does.
//! Never used to serve requests.

use crate::Model;

/// Samples of silence the fake puts before and after its tone.
pub const EDGE: usize = 2400;

#[derive(Debug, Default, Clone, Copy)]
pub struct ToneModel;

impl Model for ToneModel {
    fn infer(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Vec<f32>, String> {
        if style.len() != kokoro_core::assets::STYLE_DIM {
            return Err(format!("style has {} values", style.len()));
        }
        if !(speed.is_finite() && speed > 0.0) {
            return Err(format!("speed {speed}"));
        }
        let sum: i64 = ids.iter().sum();
        let voiced = (ids.len() * 173 + (sum.unsigned_abs() as usize % 977)) as f32 / speed;
        let mut out = vec![0.0f32; EDGE];
        out.extend((0..voiced as usize).map(|i| 0.4 * (i as f32 * 0.07).sin()));
        out.extend(std::iter::repeat_n(0.0f32, EDGE));
        if sum % 3 == 0 {
            out.push(f32::NAN);
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
