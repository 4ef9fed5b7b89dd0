//! `kokoro-core` for the browser: the playground calls [`preview`] as the user types,
//! with the body it would send, and shows what the server will do with it. The
//! answer comes from the same code the servers run (`SpeechRequest::from_json`,
//! `plan::plan`), so an error is the server's error, byte for byte.
//!
//! Built for `wasm32-unknown-unknown` and bound with the wasm-bindgen CLI
//! (`make wasm` writes `target/web-core/`, which `kokoro-web` serves).

use kokoro_core::plan::{DEFAULT_CHUNK, Piece, plan};
use kokoro_core::request::MAX_INPUT_CHARS;
use kokoro_core::{SAMPLE_RATE, SpeechRequest};
use serde_json::{Value, json};
use wasm_bindgen::prelude::wasm_bindgen;

/// What the server does with a speech request body, as JSON:
/// `{"ok": true, "chars", "limit", "pieces": [{"text"} | {"pause_secs"}]}` or
/// `{"ok": false, "status", "error"}` where `error` is the exact body the server
/// answers. What needs the server's state (installed voices, the cost budget) is
/// left to the server.
#[wasm_bindgen]
pub fn preview(body: &str) -> String {
    preview_value(body.as_bytes()).to_string()
}

fn preview_value(body: &[u8]) -> Value {
    let req = match SpeechRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    match plan(&req, &DEFAULT_CHUNK) {
        Ok(pieces) => json!({
            "ok": true,
            "chars": req.input.chars().count(),
            "limit": MAX_INPUT_CHARS,
            "pieces": pieces.iter().map(|p| match p {
                Piece::Text(t) => json!({"text": t}),
                Piece::Silence(n) => json!({"pause_secs": *n as f64 / f64::from(SAMPLE_RATE)}),
            }).collect::<Vec<_>>(),
        }),
        Err(e) => failure(&e),
    }
}

fn failure(e: &kokoro_core::ApiError) -> Value {
    json!({"ok": false, "status": e.status(), "error": e.to_json()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_like_the_server_and_fails_in_its_words() {
        let v = preview_value(br#"{"input": "It costs $5. [pause:0.5s] Bye.", "stream": true}"#);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["pieces"][0]["text"], "It costs five dollars.");
        assert_eq!(v["pieces"][1]["pause_secs"], 0.5);
        assert_eq!(v["limit"], 4096);
        let v = preview_value(br#"{"input": "a", "speed": 9}"#);
        assert_eq!(
            (v["ok"].clone(), v["status"].clone()),
            (json!(false), json!(400))
        );
        let server = SpeechRequest::from_json(br#"{"input": "a", "speed": 9}"#).unwrap_err();
        assert_eq!(v["error"], server.to_json());
        let v = preview_value(br#"{"input": "... !!!"}"#);
        assert_eq!(v["status"], 422);
        assert!(v["error"].as_str().unwrap().contains("no_speakable_text"));
        assert_eq!(preview_value(b"{").get("status"), Some(&json!(400)));
    }
}
