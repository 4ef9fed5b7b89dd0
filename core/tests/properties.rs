//! Property tests over open-ended input: text, voice expressions, request bodies.

use kokoro_core::SpeechRequest;
use kokoro_core::chunk::{ChunkOptions, chunk_text, split_phonemes};
use kokoro_core::normalize::{NormalizeOptions, SpanMap, normalize, normalize_mapped};
use kokoro_core::voice::parse_voice;
use proptest::prelude::*;

fn texty() -> impl Strategy<Value = String> {
    // Mix of words, digits, punctuation, symbols and arbitrary unicode.
    prop_oneof![
        "[a-zA-Z0-9 .,;:!?$£€%°/@&()\"'\\-+]{0,200}",
        any::<String>(),
        "([0-9]{1,25}[ .,:/%-]?){0,20}",
        proptest::collection::vec(
            proptest::sample::select(vec![
                "Dr.",
                "Smith",
                "example.com",
                "a.b@c.io",
                "$5.25",
                "3:30 pm",
                "&",
                "www.x.dev/y",
                "etc.",
                "1st",
                "2024-01-15",
                "50%",
                "5 km",
                "in 1990",
                "(555) 123-4567",
                "e.g.",
                "vs.",
                "Henry",
                "VIII",
                "War",
                "I",
                "II.",
                "X",
                "St.",
                "pages",
                "10-20",
                "1/2",
                "2 3/4",
                "minutes",
            ]),
            0..12,
        )
        .prop_map(|v| v.join(" ")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn normalization_never_panics_and_removes_ascii_digits(s in texty()) {
        let out = normalize(&s, &NormalizeOptions::default());
        prop_assert!(!out.chars().any(|c| c.is_ascii_digit()), "{:?} -> {:?}", s, out);
    }

    #[test]
    fn prefilter_never_changes_the_result(s in texty()) {
        let o = NormalizeOptions::default();
        prop_assert_eq!(normalize(&s, &o), kokoro_core::normalize::run_passes(&s, &o));
    }

    #[test]
    fn the_span_map_follows_every_rewrite(s in texty()) {
        let o = NormalizeOptions::default();
        let (out, map) = normalize_mapped(&s, &o);
        prop_assert_eq!(out.as_str(), normalize(&s, &o));
        prop_assert_eq!(map.len(), out.len());
        // Sources stay inside the input, on char boundaries, and in order.
        let mut last = 0..0;
        for (i, c) in out.char_indices() {
            let src = map.source(i..i + c.len_utf8());
            prop_assert!(src.end <= s.len() && src.start <= src.end);
            prop_assert!(s.is_char_boundary(src.start) && s.is_char_boundary(src.end));
            prop_assert!(src.start >= last.start && src.end >= last.end, "{:?}: {:?} then {:?}", s, last, src);
            last = src;
        }
        let off = { let mut o = o; o.enabled = false; o };
        let (same, map) = normalize_mapped(&s, &off);
        prop_assert_eq!(&same, &s);
        prop_assert_eq!(map, SpanMap::identity(s.len()));
    }

    #[test]
    fn disabled_normalization_is_identity(s in texty()) {
        let o = { let mut o = NormalizeOptions::default(); o.enabled = false; o };
        prop_assert_eq!(normalize(&s, &o), s.as_str());
    }

    #[test]
    fn chunks_tile_the_input(s in texty(), first in 1usize..80, max in 1usize..400) {
        let opts = ChunkOptions { first_max_chars: first, max_chars: max, min_chars: 8 };
        let ranges = chunk_text(&s, &opts);
        let mut pos = 0;
        for r in &ranges {
            prop_assert_eq!(r.start, pos);
            prop_assert!(r.end > r.start);
            prop_assert!(s[r.clone()].chars().count() <= max.max(first));
            pos = r.end;
        }
        prop_assert_eq!(pos, s.len());
        prop_assert!(ranges.first().is_none_or(|r| s[r.clone()].chars().count() <= first.min(max).max(1)));
    }

    #[test]
    fn phoneme_pieces_fit(s in any::<String>(), max in 1usize..520) {
        let parts = split_phonemes(&s, max);
        prop_assert!(parts.iter().all(|p| p.chars().count() <= max));
        prop_assert_eq!(parts.concat(), s);
    }

    #[test]
    fn voice_parser_never_panics(s in "[a-z_()+0-9. ]{0,80}|\\PC{0,40}") {
        if let Ok(b) = parse_voice(&s) {
            let total: f32 = b.terms().iter().map(|t| t.1).sum();
            prop_assert!((total - 1.0).abs() < 1e-4);
            prop_assert!(b.terms().iter().all(|t| t.1 > 0.0));
        }
    }

    #[test]
    fn request_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = SpeechRequest::from_json(&body) {
            prop_assert!(e.status() == 400 || e.status() == 422);
        }
    }

    #[test]
    fn request_fields_any_json(input in any::<String>(), speed in -10.0f64..10.0, voice in "[a-z_]{0,10}") {
        let body = serde_json::json!({"input": input, "speed": speed, "voice": voice});
        match SpeechRequest::from_value(&body) {
            Ok(r) => {
                prop_assert!((0.25..=4.0).contains(&r.speed));
                prop_assert!(!r.input.trim().is_empty());
            }
            Err(e) => prop_assert!(e.param.is_some()),
        }
    }
}
