//! `POST /v1/audio/speech` request: parsing and validation against the contract.
//!
//! Bodies are parsed field by field from a JSON object, so every mistake names its
//! field (`param`) and gets a stable `code`. [`SpeechRequest::from_json`] is the one
//! entry point both tiers use.

use crate::error::{ApiError, ErrorKind};
use crate::normalize::NormalizeOptions;
use crate::voice::{self, VoiceBlend};
use serde_json::{Map, Value};

/// Longest `input`, in Unicode scalar values (OpenAI's limit).
pub const MAX_INPUT_CHARS: usize = 4096;
/// Longest `instructions`, in Unicode scalar values.
pub const MAX_INSTRUCTIONS_CHARS: usize = 4096;
pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 4.0;
/// Model names accepted in `model`; all select the one Kokoro-82M model.
pub const MODELS: [&str; 4] = ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// The fields a speech request may carry.
pub const FIELDS: [&str; 12] = [
    "model",
    "input",
    "text",
    "voice",
    "response_format",
    "speed",
    "stream_format",
    "stream",
    "instructions",
    "lang_code",
    "normalization",
    "timestamps",
];

/// Output container/codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    Pcm,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 6] = [
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Aac,
        AudioFormat::Flac,
        AudioFormat::Wav,
        AudioFormat::Pcm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Aac => "aac",
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg; codecs=opus",
            AudioFormat::Aac => "audio/aac",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm; rate=24000; channels=1; encoding=s16le",
        }
    }
}

/// How a streamed response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamFormat {
    /// Raw audio bytes, chunked.
    Audio,
    /// Server-sent events `speech.audio.delta` / `speech.audio.done` with base64 audio.
    Sse,
}

/// Languages the model was trained on, by Kokoro's one-letter codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    EnUs,
    EnGb,
    Es,
    Fr,
    Hi,
    It,
    Ja,
    PtBr,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 9] = [
        Lang::EnUs,
        Lang::EnGb,
        Lang::Es,
        Lang::Fr,
        Lang::Hi,
        Lang::It,
        Lang::Ja,
        Lang::PtBr,
        Lang::Zh,
    ];

    /// Kokoro's one-letter code.
    pub fn code(self) -> char {
        match self {
            Lang::EnUs => 'a',
            Lang::EnGb => 'b',
            Lang::Es => 'e',
            Lang::Fr => 'f',
            Lang::Hi => 'h',
            Lang::It => 'i',
            Lang::Ja => 'j',
            Lang::PtBr => 'p',
            Lang::Zh => 'z',
        }
    }

    /// BCP-47-ish tag (the espeak-ng voice name for the non-English ones).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::EnUs => "en-us",
            Lang::EnGb => "en-gb",
            Lang::Es => "es",
            Lang::Fr => "fr-fr",
            Lang::Hi => "hi",
            Lang::It => "it",
            Lang::Ja => "ja",
            Lang::PtBr => "pt-br",
            Lang::Zh => "cmn",
        }
    }

    /// The BCP 47 tag with its region in capitals (`en-US`), as Home Assistant's
    /// language matching takes it (the Wyoming voice list).
    pub fn bcp47(self) -> &'static str {
        match self {
            Lang::EnUs => "en-US",
            Lang::EnGb => "en-GB",
            Lang::Es => "es",
            Lang::Fr => "fr-FR",
            Lang::Hi => "hi",
            Lang::It => "it",
            Lang::Ja => "ja",
            Lang::PtBr => "pt-BR",
            Lang::Zh => "zh",
        }
    }

    /// The language's name in English.
    pub fn english_name(self) -> &'static str {
        match self {
            Lang::EnUs => "American English",
            Lang::EnGb => "British English",
            Lang::Es => "Spanish",
            Lang::Fr => "French",
            Lang::Hi => "Hindi",
            Lang::It => "Italian",
            Lang::Ja => "Japanese",
            Lang::PtBr => "Brazilian Portuguese",
            Lang::Zh => "Mandarin Chinese",
        }
    }

    /// Accepts the one-letter code or the tag, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| {
            s.len() == 1 && s.starts_with(l.code())
                || s == l.tag()
                || (s == "en" && *l == Lang::EnUs)
                || (s == "fr" && *l == Lang::Fr)
                || (s == "pt" && *l == Lang::PtBr)
                || (s == "zh" && *l == Lang::Zh)
        })
    }

    pub fn from_code(c: char) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == c)
    }

    pub fn is_english(self) -> bool {
        matches!(self, Lang::EnUs | Lang::EnGb)
    }
}

/// A validated speech request.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// The model name as the client sent it (all select Kokoro-82M).
    pub model: String,
    /// The text as sent (before normalization).
    pub input: String,
    /// The voice expression as sent.
    pub voice_expr: String,
    pub voice: VoiceBlend,
    pub format: AudioFormat,
    pub speed: f32,
    pub stream_format: StreamFormat,
    /// Whether audio is sent as it is produced (default) or once complete.
    pub stream: bool,
    pub lang: Lang,
    pub normalization: NormalizeOptions,
    /// Word timestamps (`"timestamps": "word"`, SSE only): each word's place in
    /// the audio and its span of `input`.
    pub timestamps: bool,
}

fn type_err(field: &str, want: &str) -> ApiError {
    ApiError::invalid(field, "invalid_type", format!("'{field}' must be {want}."))
}

fn get_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_err(field, "a string")),
    }
}

impl SpeechRequest {
    /// Parse and validate a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let what = if std::str::from_utf8(body).is_err() {
                "Request body is not valid UTF-8.".to_string()
            } else {
                format!(
                    "Request body is not valid JSON (line {}, column {}).",
                    e.line(),
                    e.column()
                )
            };
            ApiError::new(ErrorKind::InvalidRequest, "invalid_json", what)
        })?;
        Self::from_value(&value)
    }

    /// A `/dev/captioned_speech` body (Kokoro-FastAPI's shape): a speech request
    /// without `stream_format` and `timestamps`, plus `return_timestamps` (default
    /// true), which becomes `timestamps`.
    pub fn from_captioned(value: &Value) -> Result<Self, ApiError> {
        let mut obj = match value {
            Value::Object(o) => o.clone(),
            _ => return Self::from_value(value),
        };
        let stamps = match obj.remove("return_timestamps") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(type_err("return_timestamps", "a boolean")),
        };
        for field in ["stream_format", "timestamps"] {
            if obj.contains_key(field) {
                return Err(ApiError::invalid(
                    field,
                    "unknown_parameter",
                    format!("Unrecognized request argument supplied: {field}"),
                ));
            }
        }
        let mut req = Self::from_value(&Value::Object(obj))?;
        req.timestamps = stamps;
        Ok(req)
    }

    /// Validate an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ApiError> {
        let Value::Object(obj) = value else {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "invalid_json",
                "Request body must be a JSON object.",
            ));
        };
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let shown = crate::error::shown(unknown);
            return Err(ApiError::invalid(
                &shown,
                "unknown_parameter",
                format!("Unrecognized request argument supplied: {shown}"),
            ));
        }

        let model = get_str(obj, "model")?.unwrap_or("kokoro");
        if !MODELS.contains(&model) {
            return Err(ApiError::invalid(
                "model",
                "model_not_found",
                format!("Unknown model. Use one of: {}.", MODELS.join(", ")),
            ));
        }

        // The text is the one field that may not be null.
        for field in ["input", "text"] {
            if obj.get(field) == Some(&Value::Null) {
                return Err(type_err(field, "a string"));
            }
        }
        let input = match (get_str(obj, "input")?, get_str(obj, "text")?) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "text",
                    "conflicting_parameters",
                    "Send the text in 'input' or in 'text', not both.",
                ));
            }
            (Some(s), None) => s,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(ApiError::invalid(
                    "input",
                    "missing_parameter",
                    "'input' is required.",
                ));
            }
        };
        let input_param = if obj.contains_key("input") {
            "input"
        } else {
            "text"
        };
        if input.trim().is_empty() {
            return Err(ApiError::invalid(
                input_param,
                "empty_input",
                "'input' must contain text.",
            ));
        }
        let n_chars = input.chars().count();
        if n_chars > MAX_INPUT_CHARS {
            return Err(ApiError::invalid(
                input_param,
                "input_too_long",
                format!("'input' is {n_chars} characters; the limit is {MAX_INPUT_CHARS}."),
            ));
        }

        let voice_expr = get_str(obj, "voice")?.unwrap_or(voice::DEFAULT_VOICE);
        let voice = voice::parse_voice(voice_expr)?;

        let format = match get_str(obj, "response_format")? {
            None => AudioFormat::Mp3,
            Some(s) => AudioFormat::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "response_format",
                    "invalid_value",
                    "'response_format' must be one of mp3, opus, aac, flac, wav, pcm.",
                )
            })?,
        };

        let speed = match obj.get("speed") {
            None | Some(Value::Null) => 1.0,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err(type_err("speed", "a number")),
        };
        if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
            return Err(ApiError::invalid(
                "speed",
                "invalid_value",
                format!("'speed' must be between {MIN_SPEED} and {MAX_SPEED}."),
            ));
        }

        let stream_format = match get_str(obj, "stream_format")? {
            None | Some("audio") => StreamFormat::Audio,
            Some("sse") => StreamFormat::Sse,
            Some(_) => {
                return Err(ApiError::invalid(
                    "stream_format",
                    "invalid_value",
                    "'stream_format' must be 'audio' or 'sse'.",
                ));
            }
        };

        let stream = match obj.get("stream") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(type_err("stream", "a boolean")),
        };
        if stream_format == StreamFormat::Sse && !stream {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                "unsupported_combination",
                "'stream_format: sse' needs 'stream' to be true.",
            )
            .with_param("stream"));
        }

        let timestamps = match get_str(obj, "timestamps")? {
            None | Some("none") => false,
            Some("word") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "timestamps",
                    "invalid_value",
                    "'timestamps' must be 'word' or 'none'.",
                ));
            }
        };
        if timestamps && stream_format != StreamFormat::Sse {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                "unsupported_combination",
                "'timestamps' needs 'stream_format: sse' (or POST /dev/captioned_speech).",
            )
            .with_param("timestamps"));
        }

        if let Some(instr) = get_str(obj, "instructions")?
            && instr.chars().count() > MAX_INSTRUCTIONS_CHARS
        {
            return Err(ApiError::invalid(
                "instructions",
                "instructions_too_long",
                format!("'instructions' is limited to {MAX_INSTRUCTIONS_CHARS} characters."),
            ));
        }

        let lang = match get_str(obj, "lang_code")? {
            Some(s) => Lang::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "lang_code",
                    "invalid_value",
                    "'lang_code' must be one of a, b, e, f, h, i, j, p, z (or en-us, en-gb, ...).",
                )
            })?,
            None => Lang::from_code(voice::voice_lang(voice.primary())).unwrap_or(Lang::EnUs),
        };

        let normalization = match obj.get("normalization") {
            None | Some(Value::Null) => NormalizeOptions::default(),
            Some(v) => NormalizeOptions::from_value(v)?,
        };

        Ok(SpeechRequest {
            model: model.to_string(),
            input: input.to_string(),
            voice_expr: voice_expr.to_string(),
            voice,
            format,
            speed: speed as f32,
            stream_format,
            stream,
            lang,
            normalization,
            timestamps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn reject(body: Value, status: u16, code: &str, param: Option<&str>) {
        let e = SpeechRequest::from_value(&body).expect_err(&body.to_string());
        assert_eq!(
            (e.status(), e.code, e.param.as_deref()),
            (status, code, param),
            "{body}"
        );
    }

    #[test]
    fn defaults() {
        let r = SpeechRequest::from_value(&json!({"input": "Hello"})).unwrap();
        assert_eq!(r.model, "kokoro");
        assert_eq!(r.format, AudioFormat::Mp3);
        assert_eq!(r.speed, 1.0);
        assert!(r.stream);
        assert_eq!(r.stream_format, StreamFormat::Audio);
        assert_eq!(r.lang, Lang::EnUs);
        assert_eq!(r.voice.primary(), "af_heart");
    }

    #[test]
    fn full_request() {
        let r = SpeechRequest::from_value(&json!({
            "model": "tts-1-hd", "text": "Hi", "voice": "bf_emma(1)+af_sky(1)",
            "response_format": "flac", "speed": 1.5, "stream": false,
            "instructions": "cheerful", "normalization": {"urls": false}
        }))
        .unwrap();
        assert_eq!(r.input, "Hi");
        assert_eq!(r.format, AudioFormat::Flac);
        assert_eq!(r.speed, 1.5);
        assert!(!r.stream);
        assert!(!r.normalization.is_on(crate::normalize::Group::URLS));
        assert!(r.normalization.is_on(crate::normalize::Group::NUMBERS));
        // Equal weights: the alphabetically first voice decides (af_sky -> en-us).
        assert_eq!(r.lang, Lang::EnUs);
        let r = SpeechRequest::from_value(&json!({"input": "x", "voice": "bm_george"})).unwrap();
        assert_eq!(r.lang, Lang::EnGb);
        let r = SpeechRequest::from_value(&json!({"input": "x", "lang_code": "en-GB"})).unwrap();
        assert_eq!(r.lang, Lang::EnGb);
    }

    #[test]
    fn rejections() {
        reject(json!([]), 400, "invalid_json", None);
        reject(json!({}), 400, "missing_parameter", Some("input"));
        reject(json!({"input": ""}), 400, "empty_input", Some("input"));
        reject(json!({"text": " \n"}), 400, "empty_input", Some("text"));
        reject(json!({"input": 5}), 400, "invalid_type", Some("input"));
        reject(
            json!({"input": "a", "text": "b"}),
            400,
            "conflicting_parameters",
            Some("text"),
        );
        reject(
            json!({"input": "a".repeat(4097)}),
            400,
            "input_too_long",
            Some("input"),
        );
        reject(
            json!({"input": "a", "model": "whisper-1"}),
            400,
            "model_not_found",
            Some("model"),
        );
        reject(
            json!({"input": "a", "voice": "zz_top"}),
            400,
            "voice_not_found",
            Some("voice"),
        );
        reject(
            json!({"input": "a", "voice": 3}),
            400,
            "invalid_type",
            Some("voice"),
        );
        reject(
            json!({"input": "a", "response_format": "ogg"}),
            400,
            "invalid_value",
            Some("response_format"),
        );
        reject(
            json!({"input": "a", "speed": 0.1}),
            400,
            "invalid_value",
            Some("speed"),
        );
        reject(
            json!({"input": "a", "speed": 4.01}),
            400,
            "invalid_value",
            Some("speed"),
        );
        reject(
            json!({"input": "a", "speed": "1"}),
            400,
            "invalid_type",
            Some("speed"),
        );
        reject(
            json!({"input": "a", "stream": "yes"}),
            400,
            "invalid_type",
            Some("stream"),
        );
        reject(
            json!({"input": "a", "stream_format": "ws"}),
            400,
            "invalid_value",
            Some("stream_format"),
        );
        reject(
            json!({"input": "a", "stream_format": "sse", "stream": false}),
            422,
            "unsupported_combination",
            Some("stream"),
        );
        reject(
            json!({"input": "a", "lang_code": "xx"}),
            400,
            "invalid_value",
            Some("lang_code"),
        );
        reject(
            json!({"input": "a", "sped": 2}),
            400,
            "unknown_parameter",
            Some("sped"),
        );
        reject(
            json!({"input": "a", "normalization": {"numbrs": true}}),
            400,
            "unknown_parameter",
            Some("normalization.numbrs"),
        );
        reject(
            json!({"input": "a", "normalization": 1}),
            400,
            "invalid_type",
            Some("normalization"),
        );
    }

    #[test]
    fn input_limit_counts_characters_not_bytes() {
        assert!(SpeechRequest::from_value(&json!({"input": "é".repeat(4096)})).is_ok());
    }

    #[test]
    fn instructions_limit_is_inclusive() {
        let at = json!({"input": "a", "instructions": "x".repeat(4096)});
        assert!(SpeechRequest::from_value(&at).is_ok());
        let over = json!({"input": "a", "instructions": "x".repeat(4097)});
        assert_eq!(
            SpeechRequest::from_value(&over).unwrap_err().code,
            "instructions_too_long"
        );
    }

    #[test]
    fn language_aliases() {
        for (s, l) in [
            ("en", Lang::EnUs),
            (" EN-GB ", Lang::EnGb),
            ("fr", Lang::Fr),
            ("pt", Lang::PtBr),
            ("zh", Lang::Zh),
            ("B", Lang::EnGb),
        ] {
            assert_eq!(Lang::parse(s), Some(l), "{s}");
        }
        for s in ["", "x", "english", "ab", "de"] {
            assert_eq!(Lang::parse(s), None, "{s}");
        }
        assert!(Lang::EnGb.is_english() && !Lang::Fr.is_english() && !Lang::Zh.is_english());
    }

    #[test]
    fn malformed_bytes() {
        let e = SpeechRequest::from_json(b"{\"input\": \"\xff\xfe\"}").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        assert!(e.message.contains("UTF-8"));
        let e = SpeechRequest::from_json(b"{\"input\": ").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        assert!(e.message.contains("line 1"));
    }

    #[test]
    fn format_and_lang_tables_round_trip() {
        for f in AudioFormat::ALL {
            assert_eq!(AudioFormat::parse(f.as_str()), Some(f));
            assert!(f.content_type().starts_with("audio/"));
        }
        for l in Lang::ALL {
            assert_eq!(Lang::parse(&l.code().to_string()), Some(l));
            assert_eq!(Lang::parse(l.tag()), Some(l));
            assert_eq!(Lang::from_code(l.code()), Some(l));
        }
    }
}
