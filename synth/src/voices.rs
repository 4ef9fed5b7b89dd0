//! Voice packs: 510 style rows of 256 floats per voice, blended on demand.

use kokoro_core::assets::{STYLE_DIM, VOICE_BYTES, VOICE_ROWS};
use kokoro_core::voice::VoiceBlend;
use std::collections::HashMap;
use std::path::Path;

/// All voice packs found in the voices directory, loaded once at start.
pub struct VoiceStore {
    packs: HashMap<&'static str, Box<[f32]>>,
}

impl VoiceStore {
    /// Load every catalog voice present in `dir` (names come from the catalog, never
    /// from requests).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut packs = HashMap::new();
        for name in kokoro_core::voice::all_voices() {
            let path = dir.join(format!("{name}.bin"));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            if bytes.len() != VOICE_BYTES {
                return Err(format!(
                    "voice pack {} has {} bytes, expected {VOICE_BYTES}; rerun `cargo xtask assets`",
                    path.display(),
                    bytes.len()
                ));
            }
            let floats: Box<[f32]> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            packs.insert(name, floats);
        }
        if packs.is_empty() {
            return Err(format!(
                "no voice packs in {}; run `cargo xtask assets`",
                dir.display()
            ));
        }
        Ok(Self { packs })
    }

    /// A store from in-memory packs (tests).
    pub fn from_packs(packs: HashMap<&'static str, Box<[f32]>>) -> Self {
        Self { packs }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.packs.contains_key(name)
    }

    /// The first voice of a blend this store does not have: the one "is it
    /// installed" rule of every path.
    pub fn missing(&self, blend: &VoiceBlend) -> Option<&'static str> {
        blend
            .terms()
            .iter()
            .map(|(v, _)| *v)
            .find(|v| !self.contains(v))
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.packs.keys().copied()
    }

    /// The style vector for a chunk of `n_ids` phoneme ids (without pads): row
    /// `n_ids - 1` of each pack, weighted by the blend.
    pub fn style(&self, blend: &VoiceBlend, n_ids: usize) -> Result<Vec<f32>, String> {
        let row = n_ids.clamp(1, VOICE_ROWS) - 1;
        let mut out = vec![0.0f32; STYLE_DIM];
        for (name, w) in blend.terms() {
            let pack = self
                .packs
                .get(name)
                .ok_or_else(|| format!("voice {name} is not installed"))?;
            let r = &pack[row * STYLE_DIM..(row + 1) * STYLE_DIM];
            for (o, v) in out.iter_mut().zip(r) {
                *o += w * v;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(fill: impl Fn(usize) -> f32) -> Box<[f32]> {
        (0..VOICE_ROWS * STYLE_DIM).map(fill).collect()
    }

    #[test]
    fn style_picks_row_and_blends() {
        let mut packs = HashMap::new();
        packs.insert("af_bella", pack(|i| (i / STYLE_DIM) as f32));
        packs.insert("af_sky", pack(|_| 100.0));
        let store = VoiceStore::from_packs(packs);
        let one = kokoro_core::voice::parse_voice("af_bella").unwrap();
        assert_eq!(store.style(&one, 5).unwrap()[0], 4.0);
        assert_eq!(store.style(&one, 0).unwrap()[0], 0.0);
        assert_eq!(store.style(&one, 10_000).unwrap()[0], 509.0);
        let blend = kokoro_core::voice::parse_voice("af_bella(3)+af_sky(1)").unwrap();
        let s = store.style(&blend, 11).unwrap();
        assert!((s[7] - (0.75 * 10.0 + 0.25 * 100.0)).abs() < 1e-4);
        let missing = kokoro_core::voice::parse_voice("am_adam").unwrap();
        assert!(store.style(&missing, 3).is_err());
    }
}
