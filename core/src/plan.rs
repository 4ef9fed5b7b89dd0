//! Planning a speech request: its pauses, then its normalized text cut into chunks,
//! each a separate synthesis. Pure, so that both tiers and the playground (this crate
//! in the browser) plan a request the same way; `kokoro-synth` phonemizes and renders
//! the pieces.

use crate::chunk::{ChunkOptions, chunk_text};
use crate::markup::{Segment, segments};
use crate::normalize::{SpanMap, normalize, normalize_mapped};
use crate::{ApiError, SAMPLE_RATE, SpeechRequest};

/// The default chunk windows, shared by the backend and the wasi-nn edge.
///
/// A streamed request's first piece is a sentence or clause of up to 100
/// characters: the encoder sees all of it (prosody, durations) and first audio
/// comes from the decoder's first window (see `kokoro_synth::windows`). Two-word fragments (12
/// characters) used to be the first chunk: the sentence came out up to 30% longer,
/// with a pause after the fragment (41 such pauses over 22 sentences, against 5
/// with windows), and first audio took ~423 ms against ~336 ms.
pub const DEFAULT_CHUNK: ChunkOptions = ChunkOptions {
    first_max_chars: 100,
    max_chars: 240,
    min_chars: 10,
};

/// A planned piece of output.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Silence(usize),
}

/// Split a request into pieces: pauses, then normalized text in chunks. Only a
/// streamed request gets the small first window: a client that waits for the whole
/// body gains nothing from it, and every extra chunk costs an inference call.
pub fn plan(req: &SpeechRequest, chunk: &ChunkOptions) -> Result<Vec<Piece>, ApiError> {
    plan_with(req, chunk, None)
}

/// [`plan`], and for each text piece (in order) where its bytes came from in
/// `req.input` (for word timestamps).
pub fn plan_mapped(
    req: &SpeechRequest,
    chunk: &ChunkOptions,
) -> Result<(Vec<Piece>, Vec<SpanMap>), ApiError> {
    let mut maps = Vec::new();
    let pieces = plan_with(req, chunk, Some(&mut maps))?;
    Ok((pieces, maps))
}

fn plan_with(
    req: &SpeechRequest,
    chunk: &ChunkOptions,
    mut maps: Option<&mut Vec<SpanMap>>,
) -> Result<Vec<Piece>, ApiError> {
    let mut pieces = Vec::new();
    let mut first = req.stream;
    for seg in segments(&req.input) {
        match seg {
            Segment::Pause(secs) => {
                pieces.push(Piece::Silence((secs * SAMPLE_RATE as f32) as usize));
            }
            Segment::Text(t) => {
                // `segments` gives slices of the input: this one starts here.
                let seg_at = t.as_ptr() as usize - req.input.as_ptr() as usize;
                let (text, map) = match maps {
                    Some(_) => {
                        let (text, map) = normalize_mapped(t, &req.normalization);
                        (std::borrow::Cow::Owned(text), Some(map))
                    }
                    None => (normalize(t, &req.normalization), None),
                };
                // Only the first text segment gets the small first window.
                let opts = if first {
                    *chunk
                } else {
                    ChunkOptions {
                        first_max_chars: chunk.max_chars,
                        ..*chunk
                    }
                };
                for r in chunk_text(&text, &opts) {
                    let c = text[r].trim();
                    if c.chars().any(char::is_alphanumeric) || c.contains('[') {
                        pieces.push(Piece::Text(c.to_string()));
                        first = false;
                        if let (Some(maps), Some(map)) = (maps.as_deref_mut(), &map) {
                            // `c` is a slice of `text`: its place in it.
                            let lead = c.as_ptr() as usize - text.as_ptr() as usize;
                            maps.push(map.slice(lead..lead + c.len(), seg_at));
                        }
                    }
                }
            }
        }
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Text(_))) {
        return Err(ApiError::no_speakable_text());
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: serde_json::Value) -> SpeechRequest {
        SpeechRequest::from_value(&body).unwrap()
    }

    #[test]
    fn plan_splits_pauses_normalizes_and_keeps_first_chunk_small() {
        let opts = ChunkOptions {
            first_max_chars: 30,
            max_chars: 120,
            min_chars: 5,
        };
        let p = plan(&req(json!({"input": "It costs $5. [pause:0.5s] Then we go home and sleep for a long long while, friends."})), &opts).unwrap();
        assert_eq!(p[0], Piece::Text("It costs five dollars.".into()));
        assert_eq!(p[1], Piece::Silence(12_000));
        assert!(matches!(&p[2], Piece::Text(t) if t.starts_with("Then we go home")));
        let whole = plan(
            &req(
                json!({"input": "Your order has shipped today, my dear friends.", "stream": false}),
            ),
            &opts,
        )
        .unwrap();
        assert_eq!(
            whole,
            vec![Piece::Text(
                "Your order has shipped today, my dear friends.".into()
            )]
        );
        let long = "word ".repeat(100);
        let p = plan(&req(json!({"input": long})), &opts).unwrap();
        assert!(matches!(&p[0], Piece::Text(t) if t.chars().count() <= 30));
        assert!(p.len() > 3);
        let e = plan(&req(json!({"input": "... !!! [pause:1s]"})), &opts).unwrap_err();
        assert_eq!((e.status(), e.code), (422, "no_speakable_text"));
    }
}
