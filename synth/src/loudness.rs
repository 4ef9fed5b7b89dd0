//! Loudness normalization that works while streaming.
//!
//! Method: an ITU-R BS.1770 meter (`ebur128`, gated integrated loudness) measures
//! the raw model output cumulatively. Before each chunk is sent, the gain that
//! brings the loudness of everything so far to the target is computed and reached
//! by a short linear ramp (no steps, no clicks); a look-ahead peak limiter then keeps
//! the sample peak under a ceiling set 0.5 dB below the true-peak limit, which
//! leaves room for inter-sample peaks. The first chunk's gain uses that chunk alone;
//! later chunks converge on the integrated loudness of the whole utterance. A short
//! fade at each chunk edge keeps the joins free of discontinuities.

use ebur128::{EbuR128, Mode};
use kokoro_core::SAMPLE_RATE;

/// Ramp between gains: 20 ms.
const RAMP: usize = SAMPLE_RATE as usize / 50;
/// Limiter attack (look-ahead) 2 ms and release 60 ms.
const ATTACK: usize = SAMPLE_RATE as usize / 500;
const RELEASE: usize = SAMPLE_RATE as usize * 6 / 100;
/// Fade at chunk edges: 4 ms.
const FADE: usize = SAMPLE_RATE as usize / 250;
/// Never boost or cut by more than this.
const MAX_GAIN_DB: f64 = 30.0;

fn db_to_lin(db: f64) -> f32 {
    10f64.powf(db / 20.0) as f32
}

pub struct Loudness {
    meter: EbuR128,
    target_lufs: f64,
    ceiling: f32,
    gain: Option<f32>,
    /// Limiter gain carried across chunks.
    limiter: f32,
}

impl Loudness {
    pub fn new(target_lufs: f64, true_peak_dbtp: f64) -> Result<Self, String> {
        let meter = EbuR128::new(1, SAMPLE_RATE, Mode::I).map_err(|e| format!("ebur128: {e}"))?;
        Ok(Self {
            meter,
            target_lufs,
            ceiling: db_to_lin(true_peak_dbtp - 0.5),
            gain: None,
            limiter: 1.0,
        })
    }

    /// Normalize one chunk in place.
    pub fn process(&mut self, x: &mut [f32]) {
        if x.is_empty() {
            return;
        }
        fade_edges(x);
        let _ = self.meter.add_frames_f32(x);
        let measured = self
            .meter
            .loudness_global()
            .ok()
            .filter(|l| l.is_finite())
            .or_else(|| approx_lufs(x));
        let target = match measured {
            Some(l) => db_to_lin((self.target_lufs - l).clamp(-MAX_GAIN_DB, MAX_GAIN_DB)),
            None => self.gain.unwrap_or(1.0),
        };
        let start = self.gain.unwrap_or(target);
        let ramp = RAMP.min(x.len());
        for (i, s) in x.iter_mut().enumerate() {
            let g = if i < ramp {
                start + (target - start) * (i as f32 / ramp as f32)
            } else {
                target
            };
            *s *= g;
        }
        self.gain = Some(target);
        self.limit(x);
    }

    /// Look-ahead limiter: the gain falls linearly over ATTACK samples before a peak
    /// and recovers over RELEASE samples after it, never exceeding what each sample needs.
    fn limit(&mut self, x: &mut [f32]) {
        let n = x.len();
        let mut g: Vec<f32> = x
            .iter()
            .map(|s| {
                if s.abs() > self.ceiling {
                    self.ceiling / s.abs()
                } else {
                    1.0
                }
            })
            .collect();
        if g.iter().all(|&v| v >= 1.0) && self.limiter >= 1.0 {
            return;
        }
        let attack = 1.0 / ATTACK as f32;
        for i in (0..n.saturating_sub(1)).rev() {
            g[i] = g[i].min(g[i + 1] + attack);
        }
        let release = 1.0 / RELEASE as f32;
        let mut prev = self.limiter;
        for gi in g.iter_mut() {
            *gi = gi.min(prev + release).min(1.0);
            prev = *gi;
        }
        self.limiter = prev;
        for (s, gi) in x.iter_mut().zip(&g) {
            *s *= gi;
        }
    }
}

/// Loudness estimate for audio too short for gated measurement (< 400 ms).
fn approx_lufs(x: &[f32]) -> Option<f64> {
    let ms = x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64;
    (ms > 1e-10).then(|| -0.691 + 10.0 * ms.log10())
}

fn fade_edges(x: &mut [f32]) {
    let n = FADE.min(x.len() / 2);
    for i in 0..n {
        let g = i as f32 / n as f32;
        x[i] *= g;
        let j = x.len() - 1 - i;
        x[j] *= g;
    }
}

/// Integrated loudness (LUFS) and true peak (dBTP) of a buffer, for tests and metrics.
pub fn measure(x: &[f32]) -> Result<(f64, f64), String> {
    let mut m =
        EbuR128::new(1, SAMPLE_RATE, Mode::I | Mode::TRUE_PEAK).map_err(|e| e.to_string())?;
    m.add_frames_f32(x).map_err(|e| e.to_string())?;
    let lufs = m.loudness_global().map_err(|e| e.to_string())?;
    let tp = m.true_peak(0).map_err(|e| e.to_string())?;
    Ok((lufs, 20.0 * tp.log10()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like test signal: bursts of a harmonic tone with pauses.
    fn speechy(seconds: f32, amp: f32) -> Vec<f32> {
        let n = (seconds * SAMPLE_RATE as f32) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let env = if (t * 3.0).fract() < 0.7 { 1.0 } else { 0.05 };
                amp * env
                    * ((t * 180.0 * std::f32::consts::TAU).sin()
                        + 0.5 * (t * 1200.0 * std::f32::consts::TAU).sin())
            })
            .collect()
    }

    #[test]
    fn converges_to_target_with_true_peak_under_ceiling() {
        for amp in [0.02f32, 0.3, 0.9] {
            let mut l = Loudness::new(-16.0, -1.0).unwrap();
            let mut out = Vec::new();
            for (i, secs) in [1.2f32, 2.5, 4.0, 4.0].into_iter().enumerate() {
                let mut c = speechy(secs, amp * if i == 2 { 1.5 } else { 1.0 });
                l.process(&mut c);
                out.extend(c);
            }
            let (lufs, tp) = measure(&out).unwrap();
            assert!((lufs + 16.0).abs() <= 1.0, "amp {amp}: {lufs} LUFS");
            assert!(tp <= -1.0, "amp {amp}: {tp} dBTP");
        }
    }

    #[test]
    fn silence_and_tiny_chunks_are_safe() {
        let mut l = Loudness::new(-16.0, -1.0).unwrap();
        let mut z = vec![0.0f32; 1000];
        l.process(&mut z);
        assert!(z.iter().all(|&s| s == 0.0));
        let mut one = vec![0.5f32];
        l.process(&mut one);
        assert!(one[0].is_finite());
        l.process(&mut []);
    }
}
