//! The contract (`contracts/kokoro-tts-api.yaml`) and the Rust validation agree.
//!
//! Valid examples must be accepted; each `x-invalid-examples` entry must be rejected
//! with its status, code and param; enums, bounds and the error-code table must match.

use kokoro_core::error::ERROR_CODES;
use kokoro_core::normalize::normalization_fields;
use kokoro_core::request::{FIELDS, MAX_INPUT_CHARS, MAX_SPEED, MIN_SPEED, MODELS};
use kokoro_core::{AudioFormat, SpeechRequest};
use serde_json::Value;
use std::collections::BTreeMap;

fn contract() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contracts/kokoro-tts-api.yaml"
    );
    let text = std::fs::read_to_string(path).expect("contract file");
    serde_norway::from_str(&text).expect("contract is valid YAML")
}

fn speech_body(c: &Value) -> &Value {
    &c["paths"]["/v1/audio/speech"]["post"]["requestBody"]["content"]["application/json"]
}

fn schema<'a>(c: &'a Value, name: &str) -> &'a Value {
    &c["components"]["schemas"][name]
}

/// An optional enum field: null (meaning the default) plus these strings.
fn nullable_enum(v: &Value) -> Vec<String> {
    let all = v.as_array().expect("array");
    assert!(all.contains(&Value::Null), "optional enums accept null");
    strings(&Value::Array(
        all.iter().filter(|x| !x.is_null()).cloned().collect(),
    ))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn captioned_body(c: &Value) -> &Value {
    &c["paths"]["/dev/captioned_speech"]["post"]["requestBody"]["content"]["application/json"]
}

/// The speech route's parser and the captioned route's, with their bodies.
type Parser = fn(&Value) -> Result<SpeechRequest, kokoro_core::ApiError>;
fn bodies(c: &Value) -> [(&Value, Parser, usize); 2] {
    [
        (speech_body(c), SpeechRequest::from_value, 15),
        (captioned_body(c), SpeechRequest::from_captioned, 2),
    ]
}

#[test]
fn valid_examples_are_accepted() {
    let c = contract();
    for (body, parse, _) in bodies(&c) {
        let examples = body["examples"].as_object().expect("examples");
        assert!(examples.len() >= 2);
        for (name, ex) in examples {
            let r = parse(&ex["value"]);
            assert!(r.is_ok(), "example {name} rejected: {:?}", r.err());
        }
    }
    // A captioned request times its words unless it says not to.
    let body = captioned_body(&c)["examples"]["minimal"]["value"].clone();
    assert!(SpeechRequest::from_captioned(&body).unwrap().timestamps);
    let mut off = body;
    off["return_timestamps"] = Value::Bool(false);
    assert!(!SpeechRequest::from_captioned(&off).unwrap().timestamps);
}

#[test]
fn invalid_examples_are_rejected_alike() {
    let c = contract();
    for (body, parse, at_least) in bodies(&c) {
        rejected_alike(body, parse, at_least);
    }
}

fn rejected_alike(body: &Value, parse: Parser, at_least: usize) {
    let cases = body["x-invalid-examples"]
        .as_array()
        .expect("invalid examples");
    assert!(cases.len() >= at_least);
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let err = parse(&case["value"])
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted, contract says rejected"));
        assert_eq!(
            u64::from(err.status()),
            case["status"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(err.code, case["code"].as_str().unwrap(), "{name}");
        assert_eq!(err.param.as_deref(), case["param"].as_str(), "{name}");
        // The envelope validates against the contract's Error schema shape.
        let body: Value = serde_json::from_str(&err.to_json()).unwrap();
        let keys: Vec<_> = body["error"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["code", "message", "param", "type"], "{name}");
    }
}

#[test]
fn enums_and_bounds_match() {
    let c = contract();
    let req = schema(&c, "SpeechRequest");
    let props = req["properties"].as_object().unwrap();
    let mut fields: Vec<_> = props.keys().cloned().collect();
    let mut ours: Vec<_> = FIELDS.iter().map(|s| s.to_string()).collect();
    fields.sort();
    ours.sort();
    assert_eq!(fields, ours, "request fields");
    assert_eq!(nullable_enum(&props["model"]["enum"]), MODELS);
    let formats: Vec<_> = AudioFormat::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(nullable_enum(&props["response_format"]["enum"]), formats);
    assert_eq!(
        nullable_enum(&props["stream_format"]["enum"]),
        ["audio", "sse"]
    );
    assert_eq!(props["speed"]["minimum"].as_f64(), Some(MIN_SPEED));
    assert_eq!(props["speed"]["maximum"].as_f64(), Some(MAX_SPEED));
    assert_eq!(
        props["input"]["maxLength"].as_u64(),
        Some(MAX_INPUT_CHARS as u64)
    );
    assert_eq!(
        props["text"]["maxLength"].as_u64(),
        Some(MAX_INPUT_CHARS as u64)
    );
    assert_eq!(props["voice"]["default"], kokoro_core::voice::DEFAULT_VOICE);
    assert_eq!(req["additionalProperties"], false);
    let mut norm: Vec<_> = schema(&c, "NormalizationOptions")["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut ours: Vec<String> = normalization_fields().map(String::from).collect();
    norm.sort();
    ours.sort();
    assert_eq!(norm, ours);
    let types = strings(&schema(&c, "Error")["properties"]["error"]["properties"]["type"]["enum"]);
    for k in kokoro_core::ErrorKind::ALL {
        assert!(types.contains(&k.type_str().to_string()), "{:?}", k);
    }
}

#[test]
fn error_code_table_matches() {
    let c = contract();
    let theirs: BTreeMap<String, u64> = c["x-error-codes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let ours: BTreeMap<String, u64> = ERROR_CODES
        .iter()
        .map(|(k, kind)| (k.to_string(), u64::from(kind.status())))
        .collect();
    assert_eq!(theirs, ours);
    // Every status the contract documents on a route comes from the table.
    let statuses: std::collections::BTreeSet<u64> = ours.values().copied().collect();
    for (path, item) in c["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            for (code, _) in op["responses"].as_object().unwrap() {
                let code: u64 = code.parse().unwrap();
                // 101: the WebSocket route's handshake; 307: `/` to the playground.
                assert!(
                    code == 200 || code == 101 || code == 307 || statuses.contains(&code),
                    "{path}: {code}"
                );
            }
        }
    }
}

#[test]
fn route_table_is_the_contracts() {
    // Both tiers route with `boundary::ROUTES`: it must list exactly the
    // contract's operations (path and method).
    let c = contract();
    let theirs: std::collections::BTreeSet<(String, String)> = c["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (path.clone(), m.to_ascii_uppercase()))
        })
        .collect();
    let ours: std::collections::BTreeSet<(String, String)> = kokoro_core::boundary::ROUTES
        .iter()
        .map(|r| (r.path.to_string(), r.method.as_str().to_string()))
        .collect();
    assert_eq!(theirs, ours);
    // The open routes are the ones the contract gives no security requirement.
    for r in &kokoro_core::boundary::ROUTES {
        let op = &c["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        let open = op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.is_empty()
                    || s.iter()
                        .any(|x| x.as_object().is_some_and(|o| o.is_empty()))
            });
        assert_eq!(open, r.open, "{} security in the contract", r.path);
    }
}
