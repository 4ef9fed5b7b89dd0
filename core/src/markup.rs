//! Inline markup in `input`: pauses `[pause:1.5s]` (inline phonemes
//! `[word](/IPA/)` pass through to the G2P, which honours them).

use regex::Regex;
use std::sync::LazyLock;

/// Longest single pause, in seconds.
pub const MAX_PAUSE_SECS: f32 = 10.0;

static PAUSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[pause:\s*([0-9]{1,3}(?:\.[0-9]{1,3})?)\s*(ms|s)?\]")
        .unwrap_or_else(|e| panic!("pause pattern: {e}"))
});

/// A piece of input: text to speak, or silence.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment<'a> {
    Text(&'a str),
    Pause(f32),
}

/// Split `input` at pause markers. Text segments that are only whitespace are dropped;
/// pauses are clamped to [`MAX_PAUSE_SECS`].
pub fn segments(input: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut last = 0;
    for c in PAUSE.captures_iter(input) {
        let Some(m) = c.get(0) else { continue };
        let text = &input[last..m.start()];
        if !text.trim().is_empty() {
            out.push(Segment::Text(text));
        }
        let v: f32 = c[1].parse().unwrap_or(0.0);
        let secs = match c.get(2).map(|u| u.as_str().to_ascii_lowercase()) {
            Some(u) if u == "ms" => v / 1000.0,
            _ => v,
        };
        out.push(Segment::Pause(secs.clamp(0.0, MAX_PAUSE_SECS)));
        last = m.end();
    }
    let tail = &input[last..];
    if !tail.trim().is_empty() {
        out.push(Segment::Text(tail));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_split_text() {
        assert_eq!(
            segments("Hi.[pause:1.5s] There [PAUSE: 200ms]x [pause:99s]"),
            vec![
                Segment::Text("Hi."),
                Segment::Pause(1.5),
                Segment::Text(" There "),
                Segment::Pause(0.2),
                Segment::Text("x "),
                Segment::Pause(10.0),
            ]
        );
        assert_eq!(
            segments("plain [Kokoro](/kˈOkəɹO/)"),
            vec![Segment::Text("plain [Kokoro](/kˈOkəɹO/)")]
        );
        assert_eq!(segments("[pause:x]"), vec![Segment::Text("[pause:x]")]);
        assert!(segments("  ").is_empty());
    }
}
