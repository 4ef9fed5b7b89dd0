//! The bodies of the informational routes (`/v1/models`, `/v1/models/{id}`,
//! `/v1/audio/voices`), built in one place so every tier that serves them (the
//! backend, the wasi-nn edge) answers byte for byte the same.

use serde_json::{Value, json};

/// A fixed date for the model list (2025-01-01).
const CREATED: u64 = 1_735_689_600;

/// One model object, or `None` for an unknown id.
pub fn model(id: &str) -> Option<Value> {
    crate::request::MODELS.contains(&id).then(
        || json!({"id": id, "object": "model", "created": CREATED, "owned_by": "kokoro-edge"}),
    )
}

/// `GET /v1/models`.
pub fn models() -> Value {
    let data: Vec<Value> = crate::request::MODELS
        .iter()
        .filter_map(|m| model(m))
        .collect();
    json!({"object": "list", "data": data})
}

/// `GET /v1/audio/voices`: the catalog voices for which `installed` holds, and the
/// OpenAI aliases.
pub fn voices(installed: impl Fn(&str) -> bool) -> Value {
    let voices: Vec<Value> = crate::voice::all_voices()
        .filter(|v| installed(v))
        .map(|v| {
            let lang =
                crate::Lang::from_code(crate::voice::voice_lang(v)).map_or("unknown", |l| l.tag());
            json!({"id": v, "language": lang})
        })
        .collect();
    let aliases: serde_json::Map<String, Value> = crate::voice::OPENAI_VOICE_MAP
        .iter()
        .map(|(a, k)| ((*a).to_string(), Value::from(*k)))
        .collect();
    json!({"voices": voices, "aliases": aliases})
}

/// Who made the model, as the Wyoming `info` attributes it.
const ATTRIBUTION: (&str, &str) = ("hexgrad", "https://huggingface.co/hexgrad/Kokoro-82M");

/// A voice's name for people: `af_heart` is "Heart (American English, female)".
pub fn voice_description(id: &str) -> String {
    let lang = crate::Lang::from_code(crate::voice::voice_lang(id))
        .map_or("unknown language", |l| l.english_name());
    let gender = match id.chars().nth(1) {
        Some('f') => ", female",
        Some('m') => ", male",
        _ => "",
    };
    let name = id.split_once('_').map_or(id, |(_, n)| n);
    let mut chars = name.chars();
    let title: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    format!("{title} ({lang}{gender})")
}

/// The Wyoming `info` event's data (the answer to `describe`): one TTS program,
/// Kokoro-82M, with the catalog voices for which `installed` holds, each in its
/// language; `version` is the server's. Streaming text in is supported.
pub fn wyoming_info(installed: impl Fn(&str) -> bool, version: &str) -> Value {
    let attribution = json!({"name": ATTRIBUTION.0, "url": ATTRIBUTION.1});
    let voices: Vec<Value> = crate::voice::all_voices()
        .filter(|v| installed(v))
        .map(|v| {
            let lang =
                crate::Lang::from_code(crate::voice::voice_lang(v)).map_or("und", |l| l.bcp47());
            json!({
                "name": v,
                "attribution": attribution,
                "installed": true,
                "description": voice_description(v),
                "version": null,
                "languages": [lang],
                "speakers": null,
            })
        })
        .collect();
    let program = json!({
        "name": "kokoro",
        "attribution": attribution,
        "installed": true,
        "description": "Kokoro-82M (kokoro-edge)",
        "version": version,
        "voices": voices,
        "supports_synthesize_streaming": true,
    });
    json!({"asr": [], "tts": [program], "handle": [], "intent": [], "wake": [], "mic": [], "snd": []})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_bodies() {
        assert_eq!(
            models()["data"].as_array().unwrap().len(),
            crate::request::MODELS.len()
        );
        assert!(model("tts-1").is_some() && model("gpt-5").is_none());
        let v = voices(|n| n == "af_heart");
        assert_eq!(v["voices"].as_array().unwrap().len(), 1);
        assert_eq!(v["voices"][0]["language"], "en-us");
        assert!(v["aliases"].as_object().unwrap().contains_key("alloy"));
    }

    #[test]
    fn wyoming_info_lists_the_installed_voices_by_language() {
        let info = wyoming_info(
            |n| n == "af_heart" || n == "bm_george" || n == "jf_alpha",
            "9.9",
        );
        let tts = &info["tts"][0];
        assert_eq!(tts["name"], "kokoro");
        assert_eq!(tts["version"], "9.9");
        assert_eq!(tts["supports_synthesize_streaming"], true);
        let voices = tts["voices"].as_array().unwrap();
        assert_eq!(voices.len(), 3);
        assert_eq!(voices[0]["name"], "af_heart");
        assert_eq!(voices[0]["languages"], json!(["en-US"]));
        assert_eq!(voices[0]["description"], "Heart (American English, female)");
        assert_eq!(voices[1]["languages"], json!(["en-GB"]));
        assert_eq!(voices[1]["description"], "George (British English, male)");
        assert_eq!(voices[2]["languages"], json!(["ja"]));
        assert!(info["asr"].as_array().unwrap().is_empty());
        assert_eq!(wyoming_info(|_| false, "1")["tts"][0]["voices"], json!([]));
    }
}
