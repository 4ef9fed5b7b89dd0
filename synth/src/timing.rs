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
    if words.is_empty() {
        return Vec::new();
    }
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
    // A word keeps the spaces after it (until the next word begins), as a
    // caption would: words then tile the speech between pauses.
    let spaces = |end: usize| {
        end + phonemes
            .get(end..piece.end.max(end))
            .map_or(0, |rest| rest.len() - rest.trim_start_matches(' ').len())
    };
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.start < piece.end && w.end > piece.start && w.start < w.end)
        .map(|(i, w)| (i, id(w.start)..id(spaces(w.end))))
        .collect()
}

/// How far the audio runs ahead of the durations that make it, in frames: a
/// word is heard this much earlier than its ids' frames say. Measured with
/// `tools/bench_timestamps.py` against PocketSphinx forced alignment (25
/// sentences, 404 word boundaries, 2-core machine): word starts were a median 86
/// ms late before this correction.
pub const AUDIO_LEAD_FRAMES: usize = 3;

/// Predicted energy (the encoder's curve, two values per frame) at or below
/// which a frame is silence: speech runs at 0 to 9, silence at about -9.5.
pub const QUIET_ENERGY: f32 = -3.0;

/// Where a word is heard, in frames of the audio: its ids' frames moved by
/// [`AUDIO_LEAD_FRAMES`], its end pulled back over the silence the durations give
/// a word before a pause (the closure of a final stop, the model's final
/// lengthening) by the energy curve, which runs about a frame behind the audio.
pub(crate) fn heard(durations: &[u32], energy: &[f32], ids: &Range<usize>) -> Range<usize> {
    let f = frames(durations, ids);
    let start = f.start.saturating_sub(AUDIO_LEAD_FRAMES);
    let end = f.end.saturating_sub(AUDIO_LEAD_FRAMES);
    let loud = |k: usize| {
        let e = energy.get(2 * k..2 * k + 2).unwrap_or(&[]);
        !e.is_empty() && e.iter().sum::<f32>() / e.len() as f32 > QUIET_ENERGY
    };
    let trimmed = (start..end)
        .rev()
        .find(|&k| loud(k))
        .map_or(end, |k| (k + 2).min(end));
    // At least a frame, never past the durations' end.
    start..trimmed.max((start + 1).min(end))
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
        // A word keeps the spaces after it ("hə? " and "lə " hold theirs, ids 3
        // and 6; "?" has no id).
        let all = word_ids(&vocab, 0..ps.len(), ps, &words);
        assert_eq!(all, vec![(0, 1..4), (1, 4..7), (2, 7..9)]);
        // A piece holding the last two words only.
        let tail = word_ids(&vocab, 5..ps.len(), ps, &words);
        assert_eq!(tail, vec![(1, 1..4), (2, 4..6)]);
        // Frames: pad 3, then 1, 2, 3, ... per id.
        let d = [3, 1, 2, 3, 4];
        assert_eq!(frames(&d, &(1..3)), 3..6);
        assert_eq!(frames(&d, &(0..0)), 0..0);
        assert_eq!(frames(&d, &(4..9)), 9..13);
        // Heard: 3 frames earlier, the end pulled back over quiet frames.
        let d = [10, 4, 4, 10, 3];
        let mut energy = vec![-9.5f32; 2 * 31];
        energy[2 * 7..2 * 20].fill(5.0);
        // Ids 1..3 are frames 10..18, heard 7..15: loud all through.
        assert_eq!(heard(&d, &energy, &(1..3)), 7..15);
        // Id 3 is frames 18..28, heard 15..25; loud only to frame 19: ends at 21.
        assert_eq!(heard(&d, &energy, &(3..4)), 15..21);
        // All quiet: the durations stand.
        assert_eq!(heard(&d, &[], &(3..4)), 15..25);
        // Never shorter than a frame.
        assert_eq!(heard(&d, &vec![-9.5; 62], &(3..4)), 15..25);
        energy[2 * 15..].fill(-9.5);
        energy[2 * 15] = 5.0;
        energy[2 * 15 + 1] = 5.0;
        assert_eq!(heard(&d, &energy, &(3..4)), 15..17);
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
