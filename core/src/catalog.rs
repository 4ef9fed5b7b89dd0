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
}
