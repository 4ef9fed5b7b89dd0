//! Chunking: split text into pieces the model can take, small first.
//!
//! The cascade looks for a cut at the best level available inside the window:
//! sentence end, clause mark, comma, whitespace, and only then a hard cut at a
//! character boundary. Chunks are byte ranges that tile the input: nothing is
//! dropped or reordered. The first chunk is small (fast first audio) and later
//! windows grow geometrically so synthesis stays ahead of playback.

use std::ops::Range;

/// The model takes at most this many phoneme ids per call (without the two pads).
pub const MAX_PHONEME_IDS: usize = 510;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Window of the first chunk, in characters.
    pub first_max_chars: usize,
    /// Largest window, in characters (keeps phoneme ids under [`MAX_PHONEME_IDS`]).
    pub max_chars: usize,
    /// Soft cuts (clause, comma) closer than this to the chunk start are skipped.
    pub min_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            first_max_chars: 60,
            max_chars: 300,
            min_chars: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Word,
    Comma,
    Clause,
    Sentence,
}

fn level_after(prev: char) -> Option<Level> {
    match prev {
        '.' | '!' | '?' | '…' | '。' | '！' | '？' => Some(Level::Sentence),
        ';' | ':' | '—' | '–' => Some(Level::Clause),
        ',' | '、' | '，' => Some(Level::Comma),
        _ => None,
    }
}

/// Best cut (byte offset relative to `window`) in `window`, a prefix of the rest of
/// the text; `first` prefers the earliest sentence end, later chunks the latest.
fn best_cut(window: &str, min_chars: usize, first: bool) -> Option<usize> {
    let mut best: Option<(Level, usize)> = None;
    let mut prev: Option<char> = None;
    let mut last_word_char: Option<char> = None;
    for (n, (i, c)) in window.char_indices().enumerate() {
        if !c.is_whitespace() && prev.is_some_and(char::is_whitespace) {
            // A cut here: before the first char of a new word (after the spaces).
            // Closing quotes/brackets after a mark keep the mark's level.
            let level = last_word_char.and_then(level_after).unwrap_or(Level::Word);
            let far_enough = n >= min_chars || level == Level::Sentence;
            if far_enough {
                let better = match best {
                    None => true,
                    Some((l, _)) => level > l || (level == l && !(first && l == Level::Sentence)),
                };
                if better {
                    best = Some((level, i));
                }
            }
        }
        if !c.is_whitespace() && !"\"')]}”’»".contains(c) {
            last_word_char = Some(c);
        }
        prev = Some(c);
    }
    best.map(|(_, i)| i)
}

/// Byte index after the first `n` chars of `s` (or `s.len()`).
fn byte_after_chars(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// Split `text` into chunk ranges that tile it exactly.
pub fn chunk_text(text: &str, opts: &ChunkOptions) -> Vec<Range<usize>> {
    let max = opts.max_chars.max(1);
    let mut limit = opts.first_max_chars.clamp(1, max);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let window_end = byte_after_chars(rest, limit);
        if window_end == rest.len() {
            out.push(pos..text.len());
            break;
        }
        // Include the char right after the window so a cut exactly at the limit counts.
        let probe_end = byte_after_chars(rest, limit + 1);
        let cut = best_cut(&rest[..probe_end], opts.min_chars, out.is_empty())
            .filter(|&c| c > 0 && c <= window_end)
            .unwrap_or(window_end);
        out.push(pos..pos + cut);
        pos += cut;
        limit = (limit * 2).min(max);
    }
    out
}

/// Split a phoneme string into pieces of at most `max` chars (each char is one id),
/// cutting after punctuation or at spaces when possible. Pieces tile the input.
pub fn split_phonemes(ps: &str, max: usize) -> Vec<&str> {
    phoneme_ranges(ps, max)
        .into_iter()
        .map(|r| &ps[r])
        .collect()
}

/// Where [`split_phonemes`] cuts, as byte ranges of `ps`.
pub fn phoneme_ranges(ps: &str, max: usize) -> Vec<Range<usize>> {
    let opts = ChunkOptions {
        first_max_chars: max,
        max_chars: max,
        min_chars: 0,
    };
    chunk_text(ps, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces<'a>(text: &'a str, opts: &ChunkOptions) -> Vec<&'a str> {
        chunk_text(text, opts)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    const SMALL: ChunkOptions = ChunkOptions {
        first_max_chars: 20,
        max_chars: 40,
        min_chars: 5,
    };

    #[test]
    fn cascade_levels() {
        let cases: &[(&str, &[&str])] = &[
            ("Short one.", &["Short one."]),
            (
                "Hello there. This is a test of the chunker.",
                &["Hello there. ", "This is a test of the chunker."],
            ),
            (
                "One, two, three, four, five, six, seven, eight.",
                &["One, two, three, ", "four, five, six, seven, eight."],
            ),
            (
                "Alpha beta gamma delta epsilon zeta eta theta.",
                &["Alpha beta gamma ", "delta epsilon zeta eta theta."],
            ),
            (
                "Wait; then go on and on and on and on.",
                &["Wait; ", "then go on and on and on and on."],
            ),
            (
                "\"Hi.\" She left the room and then the house.",
                &["\"Hi.\" ", "She left the room and then the house."],
            ),
            (
                "abcdefghijklmnopqrstuvwxyz",
                &["abcdefghijklmnopqrst", "uvwxyz"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&pieces(text, &SMALL), want, "{text}");
        }
    }

    #[test]
    fn later_windows_grow_and_prefer_latest_sentence() {
        let text = "A b. C d e f g h i j k. L m n. O p q r s t u v w x y z a b c d e f.";
        let p = pieces(text, &SMALL);
        assert_eq!(p[0], "A b. ");
        assert_eq!(p.concat(), text);
        assert!(p.iter().all(|c| c.chars().count() <= 40));
    }

    #[test]
    fn phoneme_split_respects_bound() {
        let ps = "hˈɛloʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst.".repeat(40);
        let parts = split_phonemes(&ps, 100);
        assert!(parts.iter().all(|p| p.chars().count() <= 100));
        assert_eq!(parts.concat(), ps);
    }
}
