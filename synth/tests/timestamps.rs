//! Word timestamps over open-ended input: planning with maps and stamping never
//! panic, and stamps stay in order on the text as sent.

use kokoro_core::SpeechRequest;
use kokoro_synth::g2p::{Source, Word};
use kokoro_synth::timing::{Mark, Stamper};
use kokoro_synth::{DEFAULT_CHUNK, Piece, plan, plan_mapped};
use proptest::prelude::*;

fn request(text: &str, stream: bool) -> Option<SpeechRequest> {
    let body = serde_json::json!({"input": text, "stream": stream});
    SpeechRequest::from_value(&body).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn stamps_stay_in_order_on_the_input(
        text in "([a-zA-Z]{1,8}|[0-9]{1,5}|\\$[0-9]{1,3}\\.[0-9]{2}|\\[pause:0\\.[0-9]s\\]|[.,!?]|é|日本| ){1,40}",
        stream in any::<bool>(),
    ) {
        let Some(req) = request(&text, stream) else { return Ok(()) };
        let Ok((pieces, maps)) = plan_mapped(&req, &DEFAULT_CHUNK) else { return Ok(()) };
        // The same pieces as without maps.
        prop_assert_eq!(&pieces, &plan(&req, &DEFAULT_CHUNK).unwrap());
        let texts: Vec<&str> = pieces.iter().filter_map(|p| match p { Piece::Text(t) => Some(t.as_str()), Piece::Silence(_) => None }).collect();
        prop_assert_eq!(texts.len(), maps.len());
        let mut st = Stamper::new(&req.input);
        let (mut last_char, mut at) = (0, 0usize);
        for (t, map) in texts.iter().zip(&maps) {
            prop_assert_eq!(map.len(), t.len());
            // Every whitespace-separated word of the piece, 100 samples each.
            let words: Vec<(Word, Mark)> = t.split_whitespace().enumerate().map(|(i, w)| (
                Word { text: w.to_string(), phonemes: String::new(), source: Source::Lexicon, at: 0..0 },
                Mark { word: i, start: i * 100, end: i * 100 + 90 },
            )).collect();
            for s in st.piece(t, map, &words, at) {
                prop_assert!(s.char_start >= last_char && s.char_end >= s.char_start, "{:?}", s);
                let chars: String = req.input.chars().skip(s.char_start).take(s.char_end - s.char_start).collect();
                prop_assert_eq!(&chars, &s.word);
                prop_assert!(s.end >= s.start);
                last_char = s.char_end;
            }
            at += 100 * words.len();
        }
    }
}
