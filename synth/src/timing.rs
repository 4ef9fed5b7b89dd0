//! Word timing: which phoneme ids each word's phonemes became, and the frames the
//! encoder's duration predictor gave those ids (`Features::durations`, 25 ms
//! each), placed on the output's timeline after edge trimming.

use kokoro_core::normalize::SpanMap;
use kokoro_core::vocab::Vocab;
use std::ops::Range;

/// A word's place in a synthesis's output, in samples from its first sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The word's index in the list given to [`crate::Synthesis::with_words`].
    pub word: usize,
    pub start: usize,
    pub end: usize,
}

/// For the words (byte ranges of the whole phoneme string) that lie in `piece`
/// (bytes `at` of that string): each word's index and the range of the piece's
/// padded ids its phonemes became (characters the vocabulary lacks get no id).
pub(crate) fn word_ids(
    vocab: &Vocab,
    piece: Range<usize>,
    phonemes: &str,
    words: &[Range<usize>],
) -> Vec<(usize, Range<usize>)> {
    // Ids (after the leading pad) before each byte offset of the piece.
    let text = &phonemes[piece.clone()];
    let mut before = vec![0usize; text.len() + 1];
    let mut n = 0;
    for (i, c) in text.char_indices() {
        before[i] = n;
        n += usize::from(vocab.contains(c));
        for b in &mut before[i + 1..i + c.len_utf8()] {
            *b = n;
        }
    }
    before[text.len()] = n;
    let id = |at: usize| 1 + before[at.clamp(piece.start, piece.end) - piece.start];
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.start < piece.end && w.end > piece.start && w.start < w.end)
        .map(|(i, w)| (i, id(w.start)..id(w.end)))
        .collect()
}

/// The frames of ids `ids` given frames per id (`durations`, pads included).
pub(crate) fn frames(durations: &[u32], ids: &Range<usize>) -> Range<usize> {
    let upto = |k: usize| -> usize {
        durations[..k.min(durations.len())]
            .iter()
            .map(|&d| d as usize)
            .sum()
    };
    upto(ids.start)..upto(ids.end)
}

/// A word of the input as sent, placed in the audio: seconds from the audio's
/// start, and its span of the input in chars (`char_end` exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub char_start: usize,
    pub char_end: usize,
}

/// Turns a request's word marks into [`Stamp`]s on its input, piece after piece:
/// spans in order and never overlapping, however the normalizer rewrote the text.
pub struct Stamper<'a> {
    input: &'a str,
    /// Char index of each byte offset of `input` (and of its end).
    chars: Vec<usize>,
    /// Bytes of `input` already stamped.
    done: usize,
}

impl<'a> Stamper<'a> {
    pub fn new(input: &'a str) -> Self {
        let mut chars = vec![0; input.len() + 1];
        let mut n = 0;
        for (i, c) in input.char_indices() {
            chars[i..i + c.len_utf8()].fill(n);
            n += 1;
        }
        chars[input.len()] = n;
        Self {
            input,
            chars,
            done: 0,
        }
    }

    /// The stamps of one text piece: `text` as planned, `map` from its bytes to
    /// the input's, its `words` with marks in samples from the piece's first
    /// sample, which lies `offset` samples into the audio. A word is found in
    /// `text` after the one before (one the G2P changed beyond finding is left
    /// out); words from one rewrite ("$12.99") join into one stamp.
    pub fn piece(
        &mut self,
        text: &str,
        map: &SpanMap,
        words: &[(crate::g2p::Word, Mark)],
        offset: usize,
    ) -> Vec<Stamp> {
        let secs = |s: usize| (offset + s) as f64 / f64::from(kokoro_core::SAMPLE_RATE);
        let mut out: Vec<(Range<usize>, f64, f64)> = Vec::new();
        let mut from = 0;
        for (w, m) in words {
            let Some(at) = text.get(from..).and_then(|t| t.find(w.text.as_str())) else {
                continue;
            };
            let found = from + at..from + at + w.text.len();
            from = found.end;
            let mut span = map.source(found);
            // Never before what is already stamped.
            span.start = span.start.max(self.done);
            span.end = span.end.max(span.start);
            match out.last_mut() {
                Some((prev, _, end)) if span.start < prev.end => {
                    prev.end = prev.end.max(span.end);
                    *end = end.max(secs(m.end));
                }
                _ => out.push((span, secs(m.start), secs(m.end))),
            }
        }
        if let Some((last, _, _)) = out.last() {
            self.done = last.end;
        }
        out.into_iter()
            .map(|(span, start, end)| Stamp {
                word: self.input[span.clone()].to_string(),
                start,
                end,
                char_start: self.chars[span.start],
                char_end: self.chars[span.end],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_find_their_ids_and_frames() {
        let vocab = Vocab::from_json(r#"{"vocab": {"h": 50, "ə": 83, " ": 16, "l": 54}}"#).unwrap();
        //                 0123 4  5 (ə is 2 bytes)
        let ps = "hə? lə hə";
        let words = [0..4, 5..8, 9..12];
        // The whole string: "h ə ␠ l ə ␠ h ə" are ids 1..=8 ("?" has no id).
        let all = word_ids(&vocab, 0..ps.len(), ps, &words);
        assert_eq!(all, vec![(0, 1..3), (1, 4..6), (2, 7..9)]);
        // A piece holding the last two words only.
        let tail = word_ids(&vocab, 5..ps.len(), ps, &words);
        assert_eq!(tail, vec![(1, 1..3), (2, 4..6)]);
        // Frames: pad 3, then 1, 2, 3, ... per id.
        let d = [3, 1, 2, 3, 4];
        assert_eq!(frames(&d, &(1..3)), 3..6);
        assert_eq!(frames(&d, &(0..0)), 0..0);
        assert_eq!(frames(&d, &(4..9)), 9..13);
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;
    use crate::g2p::{Source, Word};
    use kokoro_core::normalize::{NormalizeOptions, normalize_mapped};

    fn word(t: &str, start: usize, end: usize) -> (Word, Mark) {
        (
            Word {
                text: t.into(),
                phonemes: String::new(),
                source: Source::Lexicon,
                at: 0..0,
            },
            Mark {
                word: 0,
                start,
                end,
            },
        )
    }

    #[test]
    fn rewrites_become_one_stamp_on_the_text_as_sent() {
        let input = "Ça coûte $12.99, là.";
        let (text, map) = normalize_mapped(input, &NormalizeOptions::default());
        assert_eq!(text, "Ça coûte twelve dollars and ninety-nine cents, là.");
        let words: Vec<_> = [
            "Ça", "coûte", "twelve", "dollars", "and", "ninety", "nine", "cents", "là",
        ]
        .iter()
        .enumerate()
        .map(|(i, w)| word(w, i * 2400, i * 2400 + 2000))
        .collect();
        let mut st = Stamper::new(input);
        let s = st.piece(&text, &map, &words, 24_000);
        let names: Vec<&str> = s.iter().map(|s| s.word.as_str()).collect();
        assert_eq!(names, ["Ça", "coûte", "$12.99", "là"]);
        // Char spans (not bytes): "coûte" is chars 3..8.
        assert_eq!((s[1].char_start, s[1].char_end), (3, 8));
        assert_eq!((s[2].char_start, s[2].char_end), (9, 15));
        assert_eq!((s[3].char_start, s[3].char_end), (17, 19));
        // Times from the piece's offset: "$12.99" from "twelve" to "cents".
        assert_eq!(s[0].start, 1.0);
        assert!(
            (s[2].start - (1.0 + 0.2)).abs() < 1e-9
                && (s[2].end - (1.0 + (7.0 * 2400.0 + 2000.0) / 24_000.0)).abs() < 1e-9
        );
        // A later piece never goes back over what is stamped; a word not found is left out.
        let again = st.piece(&text, &map, &[word("coûte", 0, 10), word("zzz", 10, 20)], 0);
        assert_eq!(again.len(), 1);
        assert!(again[0].char_start >= 19 && again[0].char_end >= again[0].char_start);
    }
}
