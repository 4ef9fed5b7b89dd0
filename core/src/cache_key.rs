//! A stable cache key over everything that determines the audio bytes.

use crate::request::SpeechRequest;
use sha2::{Digest, Sha256};

/// Bump when the audio pipeline changes output for the same inputs.
pub const PIPELINE_VERSION: u32 = 1;

/// Hex SHA-256 over the normalized request. `normalized_text` is the text after
/// normalization (so spelling variants that normalize alike share an entry);
/// `model_version` names the model and asset set (e.g. the model's sha256).
pub fn cache_key(req: &SpeechRequest, normalized_text: &str, model_version: &str) -> String {
    key(req, model_version, |field| {
        field("text", normalized_text.as_bytes())
    })
}

/// A key over the request as sent (raw input plus normalization switches), for a
/// fast first lookup that skips normalization; it never equals a [`cache_key`].
pub fn raw_cache_key(req: &SpeechRequest, model_version: &str) -> String {
    key(req, model_version, |field| {
        field("normalization", &req.normalization.bits().to_le_bytes());
        field("input", req.input.as_bytes());
    })
}

fn key(
    req: &SpeechRequest,
    model_version: &str,
    text: impl FnOnce(&mut dyn FnMut(&str, &[u8])),
) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        // Length-prefixed fields: no two different requests share a byte stream.
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("pipeline", &PIPELINE_VERSION.to_le_bytes());
    field("model", model_version.as_bytes());
    field("voice", req.voice.canonical().as_bytes());
    field("speed", format!("{:.3}", req.speed).as_bytes());
    field("format", req.format.as_str().as_bytes());
    field("lang", req.lang.tag().as_bytes());
    field("stream", &[u8::from(req.stream), req.stream_format as u8]);
    // Timestamps name spans of the text as sent, so it keys them (absent
    // otherwise, which keeps every other key as it was).
    if req.timestamps {
        field("timestamps", req.input.as_bytes());
    }
    text(&mut field);
    let digest = h.finalize();
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(body: serde_json::Value) -> String {
        let r = SpeechRequest::from_value(&body).unwrap();
        let text = crate::normalize::normalize(&r.input, &r.normalization);
        cache_key(&r, &text, "m1")
    }

    #[test]
    fn keys_are_lowercase_hex_of_the_whole_digest() {
        // Both nibbles of every byte are spelled: over many keys each position sees
        // many different digits (a dropped or garbled nibble would pin it).
        let keys: Vec<String> = (0..64)
            .map(|i| key(json!({"input": format!("text {i}")})))
            .collect();
        for k in &keys {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{k}"
            );
        }
        for pos in [0, 1, 62, 63] {
            let mut seen: Vec<char> = keys.iter().map(|k| k.as_bytes()[pos] as char).collect();
            seen.sort_unstable();
            seen.dedup();
            assert!(seen.len() >= 10, "position {pos}: {seen:?}");
        }
    }

    #[test]
    fn equal_requests_share_keys_and_differences_split_them() {
        let base = key(json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(2)"}));
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            key(json!({"text": "Hi 5", "voice": "af_bella(4)+af_sky(2)", "model": "tts-1"}))
        );
        assert_eq!(
            base,
            key(json!({"input": "Hi five", "voice": "af_bella(2)+af_sky(1)"}))
        );
        for other in [
            json!({"input": "Hi 6", "voice": "af_sky(1)+af_bella(2)"}),
            json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(1)"}),
            json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(2)", "speed": 1.1}),
            json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(2)", "response_format": "wav"}),
            json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(2)", "stream": false}),
            json!({"input": "Hi 5", "voice": "af_sky(1)+af_bella(2)", "lang_code": "b"}),
        ] {
            assert_ne!(base, key(other.clone()), "{other}");
        }
        let r = SpeechRequest::from_value(&json!({"input": "x"})).unwrap();
        assert_ne!(cache_key(&r, "x", "m1"), cache_key(&r, "x", "m2"));
        // Raw keys live apart from normalized ones and track the normalization switches.
        assert_ne!(raw_cache_key(&r, "m1"), cache_key(&r, "x", "m1"));
        let off =
            SpeechRequest::from_value(&json!({"input": "x", "normalization": {"numbers": false}}))
                .unwrap();
        assert_ne!(raw_cache_key(&r, "m1"), raw_cache_key(&off, "m1"));
        assert_eq!(raw_cache_key(&r, "m1"), raw_cache_key(&r, "m1"));
        // With timestamps, inputs that normalize alike still differ (the spans do).
        let sse = json!({"input": "Hi 5", "stream_format": "sse", "timestamps": "word"});
        let spelled = json!({"input": "Hi five", "stream_format": "sse", "timestamps": "word"});
        assert_ne!(key(sse.clone()), key(spelled));
        assert_ne!(
            key(sse),
            key(json!({"input": "Hi 5", "stream_format": "sse"}))
        );
    }
}
