//! What one request may cost, bounded by the work it makes rather than by its size:
//! a 4 KiB body can ask for an hour of pauses or, in digits, ten times the phonemes
//! of the same length of prose.
//!
//! [`Budget::admit`] runs before admission on the planned pieces (total pause
//! seconds, normalized text length, and the audio seconds those imply at the
//! requested speed); a [`Meter`] then enforces the phoneme ids and audio samples
//! actually made while the request runs, so an estimate that was too kind still
//! cannot make more than the limit. Over budget is `413 request_too_costly`.

use crate::Piece;
use kokoro_core::{ApiError, SAMPLE_RATE};

/// Audio seconds per phoneme id at speed 1 that the estimate assumes. Measured on
/// prose with the v1.0 model: 0.057 s/id (speed 1) and 0.058 s/id (speed 0.25),
/// with about 0.98 ids per normalized character; rounded up so that the estimate
/// errs towards the real figure, which the [`Meter`] then bounds.
pub const SECS_PER_ID: f32 = 0.06;

/// Limits per request. The defaults fit a 4,096-character paragraph of prose at any
/// allowed speed (about 4,000 ids, 980 s of audio at speed 0.25); an input stuffed
/// with pauses or digits does not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Total seconds of `[pause:..]` markup.
    pub pause_secs: f32,
    /// Characters of text after normalization ("1,000,000" is 11 characters in,
    /// "one million" out).
    pub text_chars: usize,
    /// Phoneme ids synthesized.
    pub phoneme_ids: usize,
    /// Seconds of audio, pauses included (also what a whole answer buffers).
    pub audio_secs: f32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            pause_secs: 60.0,
            text_chars: 8192,
            phoneme_ids: 8192,
            audio_secs: 1200.0,
        }
    }
}

/// What a planned request asks for, known before any G2P or inference.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    pub pause_secs: f32,
    pub text_chars: usize,
}

impl Cost {
    pub fn of(pieces: &[Piece]) -> Self {
        let mut c = Cost::default();
        for p in pieces {
            match p {
                Piece::Silence(n) => c.pause_secs += *n as f32 / SAMPLE_RATE as f32,
                Piece::Text(t) => c.text_chars += t.chars().count(),
            }
        }
        c
    }

    /// Seconds of audio this is expected to make at `speed`.
    pub fn audio_secs(&self, speed: f32) -> f32 {
        self.pause_secs + self.text_chars as f32 * SECS_PER_ID / speed.max(0.01)
    }
}

fn secs(s: f32) -> String {
    format!("{s:.0} s")
}

impl Budget {
    /// The check before admission.
    pub fn admit(&self, cost: &Cost, speed: f32) -> Result<(), ApiError> {
        if cost.pause_secs > self.pause_secs {
            return Err(ApiError::over_budget(
                "pauses",
                &secs(cost.pause_secs),
                &secs(self.pause_secs),
            ));
        }
        if cost.text_chars > self.text_chars {
            return Err(ApiError::over_budget(
                "text after normalization",
                &format!("{} characters", cost.text_chars),
                &format!("{} characters", self.text_chars),
            ));
        }
        let audio = cost.audio_secs(speed);
        if audio > self.audio_secs {
            return Err(ApiError::over_budget(
                "audio at this speed",
                &format!("about {}", secs(audio)),
                &secs(self.audio_secs),
            ));
        }
        Ok(())
    }

    /// A meter for one request's run.
    pub fn meter(&self) -> Meter {
        Meter {
            budget: *self,
            ids: 0,
            samples: 0,
        }
    }

    /// The most samples a request may make (and a whole answer may buffer).
    pub fn max_samples(&self) -> usize {
        (self.audio_secs * SAMPLE_RATE as f32) as usize
    }
}

/// Counts what a running request has made; each `add` fails once over the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    budget: Budget,
    ids: usize,
    samples: usize,
}

impl Meter {
    pub fn add_ids(&mut self, n: usize) -> Result<(), ApiError> {
        self.ids += n;
        if self.ids > self.budget.phoneme_ids {
            return Err(ApiError::over_budget(
                "phoneme ids",
                &format!("more than {}", self.budget.phoneme_ids),
                &self.budget.phoneme_ids.to_string(),
            ));
        }
        Ok(())
    }

    pub fn add_samples(&mut self, n: usize) -> Result<(), ApiError> {
        self.samples += n;
        if self.samples > self.budget.max_samples() {
            return Err(ApiError::over_budget(
                "audio",
                &format!("more than {}", secs(self.budget.audio_secs)),
                &secs(self.budget.audio_secs),
            ));
        }
        Ok(())
    }

    pub fn ids(&self) -> usize {
        self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admit_checks_pauses_text_and_audio_at_the_speed() {
        let b = Budget::default();
        let para = Cost {
            pause_secs: 2.0,
            text_chars: 4096,
        };
        assert!(b.admit(&para, 0.25).is_ok());
        assert!(b.admit(&para, 4.0).is_ok());
        let pauses = Cost {
            pause_secs: 3720.0,
            text_chars: 4,
        };
        let e = b.admit(&pauses, 1.0).unwrap_err();
        assert_eq!((e.status(), e.code), (413, "request_too_costly"));
        assert!(e.message.contains("pauses"), "{}", e.message);
        let digits = Cost {
            pause_secs: 0.0,
            text_chars: 40_000,
        };
        assert!(b.admit(&digits, 1.0).unwrap_err().message.contains("text"));
        let tight = Budget {
            audio_secs: 300.0,
            ..b
        };
        assert!(tight.admit(&para, 1.0).is_ok());
        let e = tight.admit(&para, 0.5).unwrap_err();
        assert!(e.message.contains("audio"), "{}", e.message);
    }

    #[test]
    fn cost_counts_pause_seconds_and_characters() {
        let c = Cost::of(&[
            Piece::Text("héllo".into()),
            Piece::Silence(SAMPLE_RATE as usize * 3 / 2),
            Piece::Text("ab".into()),
        ]);
        assert_eq!(c.text_chars, 7);
        assert!((c.pause_secs - 1.5).abs() < 1e-6);
        assert!((c.audio_secs(0.5) - (1.5 + 7.0 * SECS_PER_ID * 2.0)).abs() < 1e-4);
    }

    #[test]
    fn meter_fails_just_past_each_limit() {
        let b = Budget {
            phoneme_ids: 10,
            audio_secs: 1.0,
            ..Budget::default()
        };
        let mut m = b.meter();
        assert!(m.add_ids(10).is_ok());
        assert!(m.add_ids(1).is_err());
        let mut m = b.meter();
        assert!(m.add_samples(SAMPLE_RATE as usize).is_ok());
        assert_eq!(m.add_samples(1).unwrap_err().code, "request_too_costly");
    }
}
