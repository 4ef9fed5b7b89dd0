//! The HTTP contract without model assets: the real router and engine over
//! `kokoro_synth::fake::ToneModel`, so every status, error code and header is
//! checked in milliseconds. What needs the real model (intelligibility, loudness,
//! the int8 regressions) is in `api.rs`.

use axum::body::Body;
use axum::http::{Request, header};
use kokoro_backend::config::{Config, Device, EngineConfig};
use kokoro_backend::engine::{Engine, ModelFactory};
use kokoro_backend::http::{AppState, app};
use kokoro_backend::metrics::Metrics;
use kokoro_synth::fake::{self, ToneModel};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

mod common;
use common::{assert_error, post_json, send};

/// Voices the fake server has: a few of the catalog, not all.
const INSTALLED: [&str; 3] = ["af_heart", "af_bella", "af_sky"];

fn engine_config() -> EngineConfig {
    EngineConfig {
        model: "fake.onnx".into(),
        model_version: "fake-1".into(),
        ort_dylib: "none".into(),
        vocab: "none".into(),
        voices_dir: "none".into(),
        g2p_dir: "none".into(),
        espeak_english: false,
        device: Device::Cpu,
        workers: 1,
        intra_threads: 1,
        chunk: kokoro_synth::DEFAULT_CHUNK,
        target_lufs: -16.0,
        true_peak_dbtp: -1.0,
    }
}

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let factory: ModelFactory =
                Arc::new(|| Ok(Box::new(ToneModel) as Box<dyn kokoro_synth::Model + Send>));
            Engine::start(
                engine_config(),
                fake::voices(&INSTALLED),
                fake::vocab(),
                Arc::new(Metrics::default()),
                64,
                factory,
            )
            .expect("the fake engine starts")
        })
        .clone()
}

struct Opts {
    keys: &'static [&'static str],
    max_body: usize,
    capacity: usize,
    retry_after: u64,
}

const DEFAULT: Opts = Opts {
    keys: &[],
    max_body: 65_536,
    capacity: 16,
    retry_after: 1,
};

fn state(o: Opts) -> AppState {
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: o.keys.iter().map(|k| k.to_string()).collect(),
        queue_capacity: o.capacity,
        max_body_bytes: o.max_body,
        retry_after_secs: o.retry_after,
        engine: engine_config(),
    };
    AppState::new(engine(), cfg)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_speech_mistake_gets_its_contract_error() {
    let s = state(DEFAULT);
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({"input": ""}), 400, "empty_input", Some("input")),
        (
            json!({"input": "a".repeat(4097)}),
            400,
            "input_too_long",
            Some("input"),
        ),
        (
            json!({"input": "hi", "voice": "zz_nobody"}),
            400,
            "voice_not_found",
            Some("voice"),
        ),
        // In the catalog, not installed here: the pipeline's check, before admission.
        (
            json!({"input": "hi", "voice": "bf_emma"}),
            400,
            "voice_not_found",
            Some("voice"),
        ),
        (
            json!({"input": "hi", "voice": "af_bella(2)+am_adam(1)"}),
            400,
            "voice_not_found",
            Some("voice"),
        ),
        (
            json!({"input": "hi", "voice": "af_bella(-2)"}),
            400,
            "invalid_voice",
            Some("voice"),
        ),
        (
            json!({"input": "hi", "speed": 9}),
            400,
            "invalid_value",
            Some("speed"),
        ),
        (json!({"input": 12}), 400, "invalid_type", Some("input")),
        (json!({"input": null}), 400, "invalid_type", Some("input")),
        (
            json!({"input": "hi", "stream": "no"}),
            400,
            "invalid_type",
            Some("stream"),
        ),
        (
            json!({"input": "hi", "bogus": 1}),
            400,
            "unknown_parameter",
            Some("bogus"),
        ),
        (
            json!({"input": "hi", "lang_code": "es"}),
            422,
            "unsupported_language",
            Some("lang_code"),
        ),
        (
            json!({"input": "!!! ... ???"}),
            422,
            "no_speakable_text",
            Some("input"),
        ),
    ];
    for (body, status, code, param) in cases {
        let (st, h, b) = send(&s, post_json("/v1/audio/speech", body.to_string())).await;
        assert_error(st, &b, status, code, param);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert!(h.get(header::RETRY_AFTER).is_none());
    }
    let (st, _, b) = send(
        &s,
        post_json("/v1/audio/speech", &b"{\"input\": \"\xff\xfe\"}"[..]),
    )
    .await;
    assert_error(st, &b, 400, "invalid_json", None);
    let (st, _, b) = send(&s, post_json("/v1/audio/speech", "{not json")).await;
    assert_error(st, &b, 400, "invalid_json", None);
    let small = state(Opts {
        max_body: 4096,
        ..DEFAULT
    });
    let big = json!({"input": "a".repeat(4000), "instructions": "b".repeat(1000)}).to_string();
    let (st, _, b) = send(&small, post_json("/v1/audio/speech", big)).await;
    assert_error(st, &b, 413, "payload_too_large", None);
    for ct in ["text/plain", "application/jsonx", "multipart/form-data"] {
        let req = Request::post("/v1/audio/speech")
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from("{}"))
            .unwrap();
        let (st, _, b) = send(&s, req).await;
        assert_error(st, &b, 415, "unsupported_media_type", None);
    }
    let req = Request::post("/v1/audio/speech")
        .header(
            header::CONTENT_TYPE,
            "Application/Problem+JSON; charset=utf-8",
        )
        .body(Body::from(json!({"input": "Hi."}).to_string()))
        .unwrap();
    assert_eq!(send(&s, req).await.0, 200);
}

#[tokio::test]
async fn routes_methods_and_ids() {
    let s = state(DEFAULT);
    let (st, _, b) = send(&s, get("/nope")).await;
    assert_error(st, &b, 404, "not_found", None);
    let (st, _, b) = send(&s, get("/v1/audio/speech")).await;
    assert_error(st, &b, 405, "method_not_allowed", None);
    let (st, _, b) = send(&s, post_json("/health", "{}")).await;
    assert_error(st, &b, 405, "method_not_allowed", None);
    let (st, _, b) = send(&s, get("/v1/models/whisper-1")).await;
    assert_error(st, &b, 404, "not_found", Some("id"));
    // Every route of the table answers its method.
    for r in &kokoro_core::boundary::ROUTES {
        let path = r.path.replace("{id}", "tts-1");
        let req = match r.method {
            kokoro_core::boundary::Method::Get => get(&path),
            kokoro_core::boundary::Method::Post => post_json(&path, "{}"),
        };
        let (st, _, _) = send(&s, req).await;
        assert!(st != 404 && st != 405, "{} {path}: {st}", r.method.as_str());
    }
    // A sane client id is echoed; an odd one is replaced.
    let req = Request::get("/health")
        .header("x-request-id", "trace-me-1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&s, req).await.1["x-request-id"], "trace-me-1");
    let req = Request::get("/health")
        .header("x-request-id", "has space")
        .body(Body::empty())
        .unwrap();
    let h = send(&s, req).await.1;
    assert!(h["x-request-id"].to_str().unwrap().starts_with("req-"));
    let (st, _, b) = send(&s, get("/v1/audio/voices")).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(v.to_string().contains("af_heart"));
    let (_, _, b) = send(&s, get("/status")).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["queue"]["capacity"], 16);
}

#[tokio::test]
async fn one_api_key_rule() {
    let s = state(Opts {
        keys: &["k1", "k2"],
        ..DEFAULT
    });
    let with = |h: &str, v: &str| {
        Request::get("/v1/models")
            .header(h, v)
            .body(Body::empty())
            .unwrap()
    };
    let (st, _, b) = send(&s, get("/v1/models")).await;
    assert_error(st, &b, 401, "invalid_api_key", None);
    for (h, v) in [
        ("authorization", "Bearer k1"),
        ("authorization", "bearer k2"),
        ("authorization", "BEARER  k1 "),
        ("x-api-key", "k2"),
    ] {
        assert_eq!(send(&s, with(h, v)).await.0, 200, "{h}: {v}");
    }
    for (h, v) in [
        ("authorization", "Bearer k3"),
        ("authorization", "k1"),
        ("authorization", "Basic k1"),
        ("x-api-key", "k"),
    ] {
        assert_eq!(send(&s, with(h, v)).await.0, 401, "{h}: {v}");
    }
    assert_eq!(send(&s, get("/health")).await.0, 200);
    assert_eq!(send(&s, get("/metrics")).await.0, 200);
    let (st, _, b) = send(&s, get("/nope")).await;
    assert_error(st, &b, 401, "invalid_api_key", None);
}

#[tokio::test]
async fn every_format_answers_with_its_type_streamed_and_whole() {
    let s = state(DEFAULT);
    for f in kokoro_core::AudioFormat::ALL {
        for stream in [true, false] {
            let body = json!({"input": "Hello there, this is a test.", "response_format": f.as_str(), "stream": stream});
            let (st, h, b) = send(&s, post_json("/v1/audio/speech", body.to_string())).await;
            assert_eq!(st, 200, "{f:?} {stream}: {}", String::from_utf8_lossy(&b));
            assert_eq!(h[header::CONTENT_TYPE], f.content_type());
            assert!(b.len() > 100, "{f:?} {stream}: {} bytes", b.len());
            assert_eq!(h.contains_key("x-audio-duration-ms"), !stream);
            assert_eq!(h.contains_key("x-time-to-first-audio-ms"), stream);
        }
    }
    let body = json!({"input": "Hello there.", "stream_format": "sse"});
    let (st, h, b) = send(&s, post_json("/v1/audio/speech", body.to_string())).await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "text/event-stream");
    let text = String::from_utf8(b).unwrap();
    assert!(text.contains("speech.audio.delta") && text.ends_with("\n\n"));
    assert!(text.contains("\"type\":\"speech.audio.done\""));
}

#[tokio::test]
async fn a_full_queue_says_when_to_retry() {
    let s = state(Opts {
        capacity: 1,
        retry_after: 7,
        ..DEFAULT
    });
    // A long streamed request whose body nobody reads holds the one permit: its
    // pipeline waits on the full channel.
    let long = json!({"input": "Words and more words. ".repeat(180), "response_format": "pcm"});
    let held = app(s.clone())
        .oneshot(post_json("/v1/audio/speech", long.to_string()))
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let (st, h, b) = send(
        &s,
        post_json("/v1/audio/speech", json!({"input": "Hi."}).to_string()),
    )
    .await;
    assert_error(st, &b, 429, "queue_full", None);
    assert_eq!(h[header::RETRY_AFTER], "7");
    drop(held);
}

#[tokio::test]
async fn phonemes_routes_without_the_model() {
    let s = state(DEFAULT);
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/phonemize",
            json!({"text": "Hello world."}).to_string(),
        ),
    )
    .await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(v["phonemes"].as_str().unwrap().contains("wˈɜɹld"), "{v}");
    assert!(v["tokens"].as_array().is_some_and(|t| !t.is_empty()));
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/phonemize",
            json!({"text": "hola", "language": "es"}).to_string(),
        ),
    )
    .await;
    assert_error(st, &b, 422, "unsupported_language", Some("lang_code"));
    let (st, _, b) = send(&s, post_json("/dev/phonemize", "[1]")).await;
    assert_error(st, &b, 400, "invalid_json", None);
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/phonemize",
            json!({"text": "x", "nope": 1}).to_string(),
        ),
    )
    .await;
    assert_error(st, &b, 400, "unknown_parameter", Some("nope"));
    let (st, h, b) = send(
        &s,
        post_json(
            "/dev/generate_from_phonemes",
            json!({"phonemes": "həlˈO", "voice": "af_sky"}).to_string(),
        ),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "audio/wav");
    assert_eq!(&b[..4], b"RIFF");
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/generate_from_phonemes",
            json!({"phonemes": "həlˈO", "voice": "bf_emma"}).to_string(),
        ),
    )
    .await;
    assert_error(st, &b, 400, "voice_not_found", Some("voice"));
}
