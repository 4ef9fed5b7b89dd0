//! Word timing: which phoneme ids each word's phonemes became, and the frames the
//! encoder's duration predictor gave those ids (`Features::durations`, 25 ms
//! each), placed on the output's timeline after edge trimming.

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
