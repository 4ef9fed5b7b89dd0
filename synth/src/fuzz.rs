//! The fuzz targets' bodies, one function per target: `fuzz/` (cargo-fuzz,
//! nightly, `make fuzz`) calls them with generated inputs, and
//! `synth/tests/fuzz_corpus.rs` replays the committed corpus through them in every
//! `make test`. Each one feeds arbitrary bytes to one stage of the request path and
//! checks the stage's own promises, so a finding is a panic or a broken promise.

use crate::budget::{Budget, Cost};
use crate::{DEFAULT_CHUNK, plan};
use kokoro_core::chunk::{ChunkOptions, chunk_text, split_phonemes};
use kokoro_core::markup::{Segment, segments};
use kokoro_core::normalize::{NormalizeOptions, normalize};
use kokoro_core::voice::parse_voice;
use kokoro_core::{Lang, SpeechRequest, error};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: [(&str, Target); 6] = [
    ("request", request),
    ("normalize", normalize_text),
    ("markup", markup),
    ("voice", voice),
    ("chunk", chunk),
    ("g2p", g2p),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Request JSON through validation, planning and the budget: an error is one of
/// the contract's codes; an accepted request plans (or is unspeakable) within the
/// budget's arithmetic.
pub fn request(data: &[u8]) {
    match SpeechRequest::from_json(data) {
        Err(e) => {
            assert!(
                error::ERROR_CODES.contains(&(e.code, e.kind)),
                "unlisted code {}",
                e.code
            );
            assert!(e.to_json().starts_with(r#"{"error":{"message":"#));
            assert!(e.param.as_ref().is_none_or(|p| p.chars().count() <= 80));
        }
        Ok(req) => {
            assert!((0.25..=4.0).contains(&req.speed), "speed {}", req.speed);
            let n = req.input.chars().count();
            assert!(n > 0 && n <= kokoro_core::request::MAX_INPUT_CHARS);
            if let Ok(pieces) = plan(&req, &DEFAULT_CHUNK) {
                let cost = Cost::of(&pieces);
                assert!(cost.pause_secs >= 0.0 && cost.audio_secs(req.speed).is_finite());
                let _ = Budget::default().admit(&cost, req.speed);
            }
        }
    }
}

/// Normalization with every group on and with the defaults: no panic, and the
/// text grows by a bounded factor (what the budget's estimate relies on).
pub fn normalize_text(data: &[u8]) {
    let t = text(data);
    let n = t.chars().count();
    for opts in [NormalizeOptions::default(), NormalizeOptions::all(true)] {
        let out = normalize(&t, &opts);
        let m = out.chars().count();
        assert!(m <= 24 * n + 64, "{n} chars became {m}");
    }
    assert_eq!(normalize(&t, &NormalizeOptions::all(false)), t);
}

/// Pause markup: pauses within their cap, text segments taken from the input.
pub fn markup(data: &[u8]) {
    let t = text(data);
    for s in segments(&t) {
        match s {
            Segment::Pause(p) => {
                assert!(
                    (0.0..=kokoro_core::markup::MAX_PAUSE_SECS).contains(&p),
                    "{p}"
                )
            }
            Segment::Text(x) => assert!(t.contains(x) && !x.trim().is_empty()),
        }
    }
}

/// Voice expressions: what parses has a canonical form that parses to itself.
pub fn voice(data: &[u8]) {
    let t = text(data);
    if let Ok(v) = parse_voice(&t) {
        let c = v.canonical();
        let again = parse_voice(&c).expect("a canonical blend parses");
        assert_eq!(again.canonical(), c);
        let sum: f32 = v.terms().iter().map(|(_, w)| w).sum();
        assert!((sum - 1.0).abs() < 1e-3, "weights sum to {sum}");
    }
}

/// Chunking: the chunks tile the text and respect their windows.
pub fn chunk(data: &[u8]) {
    let (head, rest) = data.split_at(data.len().min(3));
    let b = |i: usize| head.get(i).copied().unwrap_or(0) as usize;
    let opts = ChunkOptions {
        first_max_chars: 1 + b(0),
        max_chars: 1 + b(0) + b(1),
        min_chars: b(2) % 64,
    };
    let t = text(rest);
    let ranges = chunk_text(&t, &opts);
    let mut at = 0;
    for r in &ranges {
        assert_eq!(r.start, at, "chunks tile the text");
        assert!(r.end > r.start);
        assert!(t[r.clone()].chars().count() <= opts.max_chars);
        at = r.end;
    }
    assert_eq!(at, t.len());
    let pieces = split_phonemes(&t, opts.max_chars);
    assert_eq!(pieces.concat(), t);
}

/// The G2P chain: every word spoken (no unknown marker), bounded input.
pub fn g2p(data: &[u8]) {
    let t = text(&data[..data.len().min(600)]);
    for lang in [Lang::EnUs, Lang::EnGb] {
        let (ps, words) = crate::g2p::phonemize_words(&t, lang, true).expect("English");
        assert!(!ps.contains('❓'), "unknown marker in {ps:?}");
        assert!(words.iter().all(|w| !w.phonemes.contains('❓')));
    }
}
