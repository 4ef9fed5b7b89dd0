//! The HTTP contract without model assets: the real router and engine over
//! `kokoro_synth::fake::ToneModel`, so every status, error code and header is
//! checked in milliseconds. What needs the real model (intelligibility, loudness,
//! the int8 regressions) is in `api.rs`.

use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine as _;
use kokoro_backend::config::{Config, Device, EngineConfig};
use kokoro_backend::engine::{Engine, ModelFactory};
use kokoro_backend::http::{AppState, app};
use kokoro_backend::metrics::Metrics;
use kokoro_synth::fake::{self, ToneModel};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

mod common;
use common::{assert_error, post_json, send};

/// Voices the fake server has: a few of the catalog, not all.
const INSTALLED: [&str; 3] = ["af_heart", "af_bella", "af_sky"];

fn engine_config() -> EngineConfig {
    EngineConfig {
        split: true,
        model: "/srv/private/models/fake.onnx".into(),
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
        windows: Some(kokoro_synth::windows::DEFAULT_WINDOWS),
        target_lufs: -16.0,
        true_peak_dbtp: -1.0,
        budget: kokoro_synth::budget::Budget::default(),
    }
}

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let factory: ModelFactory =
                Arc::new(|| Ok(Box::new(ToneModel) as Box<dyn kokoro_synth::Model + Send>));
            start(engine_config(), factory)
        })
        .clone()
}

fn start(cfg: EngineConfig, factory: ModelFactory) -> Arc<Engine> {
    Engine::start(
        cfg,
        fake::voices(&INSTALLED),
        fake::vocab(),
        Arc::new(Metrics::default()),
        64,
        factory,
    )
    .expect("the fake engine starts")
}

struct Opts {
    keys: &'static [&'static str],
    max_body: usize,
    capacity: usize,
    retry_after: u64,
    dev_routes: bool,
    body_timeout: Duration,
}

const DEFAULT: Opts = Opts {
    keys: &[],
    max_body: 65_536,
    capacity: 16,
    retry_after: 1,
    dev_routes: true,
    body_timeout: Duration::from_secs(30),
};

fn state(o: Opts) -> AppState {
    state_on(engine(), o)
}

fn state_on(engine: Arc<Engine>, o: Opts) -> AppState {
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: o.keys.iter().map(|k| k.to_string()).collect(),
        queue_capacity: o.capacity,
        max_body_bytes: o.max_body,
        retry_after_secs: o.retry_after,
        dev_routes: o.dev_routes,
        max_stream_sessions: 4,
        wyoming: None,
        limits: kokoro_serve::Limits {
            body: o.body_timeout,
            ..Default::default()
        },
        engine: engine.config().clone(),
    };
    AppState::new(engine, cfg)
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
    let (st, h, b) = send(&s, get("/nope")).await;
    assert_error(st, &b, 404, "not_found", None);
    assert!(
        h.get(header::CONNECTION).is_none(),
        "no body, the connection stays"
    );
    // An error before the body is read: the client is told the connection closes.
    let with_length = Request::post("/nope")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "8")
        .body(Body::from("{\"a\": 1}"))
        .unwrap();
    let (st, h, _) = send(&s, with_length).await;
    assert_eq!(
        (st.as_u16(), h[header::CONNECTION].to_str().unwrap()),
        (404, "close")
    );
    let (st, h, _) = send(&s, speech(json!({"input": "Fine."}))).await;
    assert!(st == 200 && h.get(header::CONNECTION).is_none());
    let (st, _, b) = send(&s, get("/v1/audio/speech")).await;
    assert_error(st, &b, 405, "method_not_allowed", None);
    let (st, _, b) = send(&s, post_json("/health", "{}")).await;
    assert_error(st, &b, 405, "method_not_allowed", None);
    let (st, _, b) = send(&s, get("/v1/models/whisper-1")).await;
    assert_error(st, &b, 404, "not_found", Some("id"));
    // Every route of the table answers its method.
    for r in &kokoro_core::boundary::ROUTES {
        let path = r.path.replace("{id}", "tts-1").replace("{file}", "app.js");
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
async fn the_playground_is_served_open_and_self_contained() {
    // Keys configured: the page loads without one (the API calls it makes need it).
    let s = state(Opts {
        keys: &["k1"],
        ..DEFAULT
    });
    let (st, h, _) = send(&s, get("/")).await;
    assert_eq!(st, 307);
    assert_eq!(h[header::LOCATION], "/web");
    let (st, h, b) = send(&s, get("/web")).await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(String::from_utf8_lossy(&b).contains("/web/app.js"));
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let (st, h, b) = send(&s, get(&format!("/web/{file}"))).await;
        assert_eq!(st, 200, "{file}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        assert_eq!(b.len(), kokoro_web::asset(file).unwrap().body.len());
    }
    // Only the page's files: no directory walk, no file outside the list, no key leak.
    for path in ["/web/nope.js", "/web/..%2FCargo.toml", "/web/index.html"] {
        let (st, _, b) = send(&s, get(path)).await;
        assert_error(st, &b, 404, "not_found", None);
    }
    let (st, _, b) = send(&s, get("/web/a/b")).await;
    assert_error(st, &b, 401, "invalid_api_key", None);
    let (st, _, b) = send(&s, post_json("/web", "{}")).await;
    assert_error(st, &b, 405, "method_not_allowed", None);
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

/// The SSE events of a body, as JSON.
fn sse_events(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Word timestamps on the SSE stream: before the audio they time, every word of
/// the input (a rewrite as one word on the text as sent), spans in order and
/// never overlapping, times rising; pauses move the words after them.
#[tokio::test]
async fn sse_timestamps_name_the_words_of_the_input() {
    let s = state(DEFAULT);
    let input = "It costs $12.99 [pause:1s] today, café.";
    let body = json!({"input": input, "stream_format": "sse", "timestamps": "word", "response_format": "pcm"});
    let (st, _, b) = send(&s, post_json("/v1/audio/speech", body.to_string())).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let events = sse_events(&b);
    assert_eq!(events[0]["type"], "speech.audio.timestamps", "{events:?}");
    let words: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "speech.audio.timestamps")
        .flat_map(|e| e["words"].as_array().unwrap())
        .collect();
    let names: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert_eq!(names, ["It", "costs", "$12.99", "today", "café"]);
    let chars: Vec<char> = input.chars().collect();
    let (mut last_char, mut last_end) = (0, 0.0);
    for w in &words {
        let (a, z) = (
            w["char_start"].as_u64().unwrap() as usize,
            w["char_end"].as_u64().unwrap() as usize,
        );
        assert!(a >= last_char && z > a, "{w}");
        assert_eq!(chars[a..z].iter().collect::<String>(), w["word"], "{w}");
        let (t0, t1) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(t0 >= last_end - 1e-9 && t1 > t0, "{w}");
        (last_char, last_end) = (z, t1);
    }
    // The pause: "today" starts at least a second after "$12.99" ends.
    assert!(words[3]["start"].as_f64().unwrap() - words[2]["end"].as_f64().unwrap() >= 1.0);
    // All within the audio.
    let audio: usize = events
        .iter()
        .filter(|e| e["type"] == "speech.audio.delta")
        .map(|e| {
            base64::engine::general_purpose::STANDARD
                .decode(e["audio"].as_str().unwrap())
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        last_end <= (audio / 2) as f64 / 24_000.0 + 1e-3,
        "{last_end} s of {audio} bytes"
    );
    // Without the field, no timestamp events.
    let body = json!({"input": input, "stream_format": "sse"});
    let (_, _, b) = send(&s, post_json("/v1/audio/speech", body.to_string())).await;
    assert!(
        sse_events(&b)
            .iter()
            .all(|e| e["type"] != "speech.audio.timestamps")
    );
}

/// `/dev/captioned_speech` in Kokoro-FastAPI's shape: one JSON object whole, or
/// newline-delimited JSON streamed, the same words either way.
#[tokio::test]
async fn captioned_speech_answers_as_kokoro_fastapi_does() {
    let s = state(Opts {
        dev_routes: false,
        ..DEFAULT
    });
    let input = "Hello world, this is Kokoro on 2024-03-05.";
    let body = json!({"input": input, "stream": false, "response_format": "wav"});
    let (st, h, b) = send(&s, post_json("/dev/captioned_speech", body.to_string())).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["audio_format"], "wav");
    let wav = base64::engine::general_purpose::STANDARD
        .decode(v["audio"].as_str().unwrap())
        .unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    let whole: Vec<String> = v["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            // (The fake gives some ids no frames: a word may be 0 s long here.)
            assert!(
                t["end_time"].as_f64().unwrap() >= t["start_time"].as_f64().unwrap(),
                "{t}"
            );
            t["word"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        whole,
        ["Hello", "world", "this", "is", "Kokoro", "on", "2024-03-05"]
    );
    let body = json!({"input": input, "response_format": "pcm"});
    let (st, h, b) = send(&s, post_json("/dev/captioned_speech", body.to_string())).await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8(b)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    // Each line's words begin in the audio sent up to and with that line.
    let mut sent = 0usize;
    for (i, l) in lines.iter().enumerate() {
        let pcm = l["audio"].as_str().unwrap();
        sent += base64::engine::general_purpose::STANDARD
            .decode(pcm)
            .unwrap()
            .len()
            / 2;
        for t in l["timestamps"].as_array().unwrap() {
            let start = t["start_time"].as_f64().unwrap();
            assert!(
                start * 24_000.0 < sent as f64 + 24.0 || i + 1 == lines.len(),
                "{t} at {sent}"
            );
        }
    }
    let streamed: Vec<String> = lines
        .iter()
        .flat_map(|l| l["timestamps"].as_array().unwrap().clone())
        .map(|t| t["word"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, whole);
    // Opting out, and the errors.
    let body = json!({"input": input, "stream": false, "return_timestamps": false});
    let (_, _, b) = send(&s, post_json("/dev/captioned_speech", body.to_string())).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["timestamps"], json!([]));
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/captioned_speech",
            json!({"input": "a", "stream_format": "sse"}).to_string(),
        ),
    )
    .await;
    assert_error(st, &b, 400, "unknown_parameter", Some("stream_format"));
    let (st, _, b) = send(&s, post_json("/dev/captioned_speech", "{".to_string())).await;
    assert_error(st, &b, 400, "invalid_json", None);
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

fn speech(body: Value) -> Request<Body> {
    post_json("/v1/audio/speech", body.to_string())
}

#[tokio::test]
async fn a_request_is_bounded_by_what_it_costs() {
    let s = state(DEFAULT);
    // 372 ten-second pauses in 4,096 characters: an hour of silence.
    let pauses = format!("Hi. {}", "[pause:10s]".repeat(372));
    assert!(pauses.len() <= 4096);
    let (st, _, b) = send(&s, speech(json!({"input": pauses, "stream": false}))).await;
    assert_error(st, &b, 413, "request_too_costly", Some("input"));
    assert!(String::from_utf8_lossy(&b).contains("pauses"));
    // 4,096 characters of digits normalize to ~10x the text.
    let digits = "1234567890 ".repeat(372);
    let (st, _, b) = send(&s, speech(json!({"input": digits}))).await;
    assert_error(st, &b, 413, "request_too_costly", Some("input"));
    let money = "$9,999,999.99 ".repeat(290);
    let (st, _, b) = send(&s, speech(json!({"input": money}))).await;
    assert_error(st, &b, 413, "request_too_costly", Some("input"));
    // A 4,096-character paragraph of prose fits at the slowest speed, whole.
    let prose = "The river ran past the old mill, and the children watched it. ".repeat(70);
    let prose = &prose[..4090];
    let (st, h, b) = send(
        &s,
        speech(json!({"input": prose, "speed": 0.25, "stream": false, "response_format": "pcm"})),
    )
    .await;
    assert_eq!(
        st,
        200,
        "{}",
        String::from_utf8_lossy(&b[..b.len().min(300)])
    );
    let ms: u64 = h["x-audio-duration-ms"].to_str().unwrap().parse().unwrap();
    assert!(ms > 60_000 && ms <= 1_200_000, "{ms}");
}

#[tokio::test]
async fn the_phoneme_and_audio_budgets_hold_while_the_request_runs() {
    let cfg = EngineConfig {
        budget: kokoro_synth::budget::Budget {
            phoneme_ids: 60,
            ..Default::default()
        },
        ..engine_config()
    };
    let factory: ModelFactory =
        Arc::new(|| Ok(Box::new(ToneModel) as Box<dyn kokoro_synth::Model + Send>));
    let s = state_on(start(cfg, factory), DEFAULT);
    let text = "Seven plain words make one short line. ".repeat(6);
    let (st, _, b) = send(&s, speech(json!({"input": text, "stream": false}))).await;
    assert_error(st, &b, 413, "request_too_costly", Some("input"));
    assert!(String::from_utf8_lossy(&b).contains("phoneme ids"));
    // Streamed, the head has gone with the first chunk: the body ends in an error.
    let resp = app(s.clone())
        .oneshot(speech(json!({"input": text, "response_format": "pcm"})))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .is_err()
    );
    let (st, _, _) = send(&s, speech(json!({"input": "Short.", "stream": false}))).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn dev_routes_are_off_unless_enabled_and_take_admission_when_on() {
    let off = state(Opts {
        dev_routes: false,
        ..DEFAULT
    });
    for path in ["/dev/phonemize", "/dev/generate_from_phonemes"] {
        let (st, _, b) = send(&off, post_json(path, json!({"text": "hi"}).to_string())).await;
        assert_error(st, &b, 404, "not_found", None);
    }
    let on = state(Opts {
        capacity: 1,
        ..DEFAULT
    });
    let _held = on.admission.clone().try_acquire_owned().unwrap();
    let (st, _, b) = send(
        &on,
        post_json("/dev/phonemize", json!({"text": "hi"}).to_string()),
    )
    .await;
    assert_error(st, &b, 429, "queue_full", None);
}

#[tokio::test]
async fn long_text_on_phonemize_is_cut_into_bounded_calls() {
    let s = state(DEFAULT);
    // One "word" of 4,000 characters: misaki's regexes took 89 s on it in one call.
    let t = std::time::Instant::now();
    let (st, _, b) = send(
        &s,
        post_json(
            "/dev/phonemize",
            json!({"text": "aA".repeat(2000)}).to_string(),
        ),
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[tokio::test]
async fn metrics_labels_status_and_echoed_names_stay_bounded() {
    let s = state(DEFAULT);
    for i in 0..5 {
        let method = format!("{}{i}", "X".repeat(8192));
        let req = Request::builder()
            .method(method.as_str())
            .uri("/health")
            .body(Body::empty())
            .unwrap();
        let _ = send(&s, req).await;
    }
    let (_, _, after) = send(&s, get("/metrics")).await;
    let after = String::from_utf8_lossy(&after);
    assert!(
        !after.contains("XXXXXXXX") && after.len() < 32_768,
        "{after}"
    );
    assert!(after.contains("method=\"other\""));
    let (_, _, b) = send(&s, get("/status")).await;
    let text = String::from_utf8_lossy(&b);
    assert!(!text.contains("/srv/private"), "{text}");
    assert!(text.contains("fake.onnx"), "{text}");
    let long = "k".repeat(10_000);
    for path in ["/v1/audio/speech", "/dev/phonemize"] {
        let mut body = serde_json::Map::new();
        body.insert("input".into(), json!("hi"));
        body.insert("text".into(), json!("hi"));
        body.insert(long.clone(), json!(1));
        let (st, _, b) = send(&s, post_json(path, Value::Object(body).to_string())).await;
        assert_eq!(st, 400);
        assert!(b.len() < 600, "{path}: {} bytes", b.len());
    }
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let s = state(Opts {
        body_timeout: Duration::from_millis(200),
        ..DEFAULT
    });
    let stream = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let req = Request::post("/v1/audio/speech")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let (st, _, b) = send(&s, req).await;
    assert_error(st, &b, 408, "request_timeout", None);
}

/// Panics on every call at speed 4 (the test's trigger); fine otherwise.
struct Fragile;
impl kokoro_synth::Model for Fragile {
    fn encode(
        &mut self,
        ids: &[i64],
        style: &[f32],
        speed: f32,
    ) -> Result<kokoro_synth::Encoded, String> {
        assert!(speed < 3.9, "a bug in the model glue");
        ToneModel.encode(ids, style, speed)
    }
    fn decode(
        &mut self,
        f: &kokoro_synth::Features,
        frames: std::ops::Range<usize>,
        style: &[f32],
    ) -> Result<Vec<f32>, String> {
        ToneModel.decode(f, frames, style)
    }
}

#[tokio::test]
async fn a_panicking_worker_is_replaced_and_health_tells_when_none_is_left() {
    let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = built.clone();
    // The first two models build (start, one replacement); later ones fail.
    let factory: ModelFactory = Arc::new(move || {
        if b.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Ok(Box::new(Fragile) as Box<dyn kokoro_synth::Model + Send>)
        } else {
            Err("no model".into())
        }
    });
    let s = state_on(start(engine_config(), factory), DEFAULT);
    let fast = json!({"input": "Hello there.", "speed": 4.0, "stream": false});
    let (st, _, b) = send(&s, speech(fast.clone())).await;
    assert_error(st, &b, 500, "internal_error", None);
    let (st, _, _) = send(
        &s,
        speech(json!({"input": "Hello there.", "stream": false})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(send(&s, get("/health")).await.0, 200);
    let (_, _, m) = send(&s, get("/metrics")).await;
    assert!(String::from_utf8_lossy(&m).contains("kokoro_worker_panics_total 1"));
    let (st, _, b) = send(&s, speech(fast)).await;
    assert_error(st, &b, 500, "internal_error", None);
    // The replacement could not be built: no worker is left.
    for _ in 0..50 {
        if s.engine.workers_alive() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, _, b) = send(&s, get("/health")).await;
    assert_error(st, &b, 503, "not_ready", None);
    let (st, _, b) = send(&s, speech(json!({"input": "Hi.", "stream": false}))).await;
    assert_error(st, &b, 503, "not_ready", None);
}

// ---- stream-input: the WebSocket, over a real socket and the fake model ----

mod socket {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// The router on a real listener (the connection loop both servers run).
    async fn serve(s: AppState) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = kokoro_serve::TowerToHyperService::new(app(s));
        let stats = Arc::new(kokoro_serve::Stats::default());
        tokio::spawn(kokoro_serve::serve(
            listener,
            kokoro_serve::Limits::default(),
            stats,
            svc,
            std::future::pending(),
        ));
        addr
    }

    async fn connect(
        addr: std::net::SocketAddr,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{addr}/v1/text-to-speech/af_heart/stream-input?{query}");
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| ws)
    }

    async fn send_json(ws: &mut Ws, v: Value) {
        ws.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    /// Every message until the server closes: (JSON messages, close code).
    async fn drain(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
        let mut out = Vec::new();
        while let Some(m) = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server answers")
        {
            match m {
                Ok(Message::Text(t)) => out.push(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(f)) => return (out, f.map(|f| u16::from(f.code))),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (out, None)
    }

    fn audio_bytes(msgs: &[Value]) -> usize {
        msgs.iter()
            .filter_map(|m| m["audio"].as_str())
            .map(|a| {
                base64::engine::general_purpose::STANDARD
                    .decode(a)
                    .unwrap()
                    .len()
            })
            .sum()
    }

    fn aligned_text(msgs: &[Value]) -> String {
        msgs.iter()
            .filter_map(|m| m["alignment"]["chars"].as_array())
            .flatten()
            .map(|c| c.as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_utterance_streams_in_and_out_with_every_character_aligned() {
        let addr = serve(state(DEFAULT)).await;
        let mut ws = connect(
            addr,
            "model_id=eleven_flash_v2_5&output_format=pcm_24000",
            &[],
        )
        .await
        .unwrap();
        send_json(
            &mut ws,
            json!({"text": " ", "voice_settings": {"speed": 1.2, "stability": 0.5},
            "generation_config": {"chunk_length_schedule": [120, 160]}}),
        )
        .await;
        let text = "Hello there, my friend. It costs $12.99 today! Is that fine? Yes";
        for piece in text.as_bytes().chunks(3) {
            let p = std::str::from_utf8(piece).unwrap();
            send_json(&mut ws, json!({"text": p, "try_trigger_generation": true})).await;
        }
        send_json(&mut ws, json!({"text": ""})).await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1000));
        let last = msgs.last().unwrap();
        assert_eq!(last["isFinal"], true, "{last}");
        let audio = &msgs[..msgs.len() - 1];
        assert!(audio.iter().all(|m| m["isFinal"] == false));
        let bytes = audio_bytes(audio);
        assert!(bytes > 24_000, "{bytes} bytes of PCM");
        assert_eq!(bytes % 2, 0);
        // Every character sent (the first message's space too), in order, once.
        assert_eq!(aligned_text(audio), format!(" {text}"));
        for m in audio.iter().filter(|m| m["alignment"].is_object()) {
            let a = &m["alignment"];
            let n = a["chars"].as_array().unwrap().len();
            assert_eq!(a["charStartTimesMs"].as_array().unwrap().len(), n);
            assert_eq!(a["charDurationsMs"].as_array().unwrap().len(), n);
            assert_eq!(m["normalizedAlignment"], *a);
        }
    }

    #[tokio::test]
    async fn flush_speaks_what_waits_without_a_sentence_end() {
        let addr = serve(state(DEFAULT)).await;
        let mut ws = connect(addr, "output_format=pcm_24000", &[]).await.unwrap();
        send_json(&mut ws, json!({"text": "Hello there my friend "})).await;
        send_json(&mut ws, json!({"text": "", "flush": true})).await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1000));
        assert!(audio_bytes(&msgs) > 0);
        // A flush alone, the socket still open: audio comes without the end.
        let mut ws = connect(addr, "output_format=mp3_44100_128", &[])
            .await
            .unwrap();
        send_json(&mut ws, json!({"text": "No punctuation here "})).await;
        send_json(&mut ws, json!({"flush": true})).await;
        let first = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        assert!(v["audio"].is_string(), "{v}");
        let mp3 = base64::engine::general_purpose::STANDARD
            .decode(v["audio"].as_str().unwrap())
            .unwrap();
        assert!(mp3.len() > 100);
    }

    #[tokio::test]
    async fn an_idle_session_speaks_what_waits_and_ends_after_its_inactivity_timeout() {
        let addr = serve(state(DEFAULT)).await;
        let mut ws = connect(addr, "inactivity_timeout=1&output_format=pcm_24000", &[])
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        send_json(&mut ws, json!({"text": "Words without an end"})).await;
        // A ping does not keep it open.
        ws.send(Message::Ping(vec![1].into())).await.unwrap();
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1000));
        assert!(t0.elapsed() >= Duration::from_secs(1));
        assert!(audio_bytes(&msgs) > 0, "what waited was spoken");
        assert_eq!(aligned_text(&msgs), "Words without an end");
        assert_eq!(msgs.last().unwrap()["isFinal"], true);
    }

    #[tokio::test]
    async fn handshake_mistakes_are_http_errors_and_message_mistakes_close_the_socket() {
        let s = state(DEFAULT);
        // A plain GET: 400 upgrade_required with the contract's envelope.
        let (st, h, b) = send(&s, get("/v1/text-to-speech/af_heart/stream-input")).await;
        assert_error(st, &b, 400, "upgrade_required", None);
        assert_eq!(h["upgrade"], "websocket");
        let addr = serve(s).await;
        for (query, status) in [
            ("output_format=ulaw_8000", 422),
            ("model_id=whisper-1", 400),
            ("inactivity_timeout=0", 400),
        ] {
            match connect(addr, query, &[]).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status().as_u16(), status, "{query}");
                    let body: Value = serde_json::from_slice(r.body().as_ref().unwrap()).unwrap();
                    assert!(body["error"]["code"].is_string());
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        for (bad, code) in [
            (Message::Text("not json".into()), "invalid_json"),
            (Message::Text("{\"text\": 5}".into()), "invalid_type"),
            (Message::Binary(vec![1, 2, 3].into()), "invalid_type"),
            (
                Message::Text(json!({"voice_settings": {"speed": 9}}).to_string().into()),
                "invalid_value",
            ),
        ] {
            let mut ws = connect(addr, "", &[]).await.unwrap();
            ws.send(bad).await.unwrap();
            let (msgs, close) = drain(&mut ws).await;
            assert_eq!(close, Some(1008), "{code}");
            assert_eq!(msgs.last().unwrap()["error"]["code"], code, "{msgs:?}");
        }
    }

    #[tokio::test]
    async fn keys_come_with_the_handshake_or_the_first_message() {
        let s = state(Opts {
            keys: &["sekrit"],
            ..DEFAULT
        });
        let addr = serve(s).await;
        let speak = |ws: Ws| async move {
            let mut ws = ws;
            send_json(&mut ws, json!({"text": "Hi there. "})).await;
            send_json(&mut ws, json!({"text": ""})).await;
            drain(&mut ws).await
        };
        for headers in [
            vec![("authorization", "Bearer sekrit")],
            vec![("xi-api-key", "sekrit")],
        ] {
            let (msgs, code) = speak(connect(addr, "", &headers).await.unwrap()).await;
            assert_eq!(code, Some(1000), "{headers:?} {msgs:?}");
        }
        let ws = connect(addr, "authorization=Bearer%20sekrit", &[])
            .await
            .unwrap();
        assert_eq!(speak(ws).await.1, Some(1000));
        // A wrong header is refused at the handshake.
        match connect(addr, "", &[("xi-api-key", "nope")]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("{other:?}"),
        }
        // No key at the handshake: the first message must carry it.
        let mut ws = connect(addr, "", &[]).await.unwrap();
        send_json(&mut ws, json!({"text": " ", "xi_api_key": "sekrit"})).await;
        assert_eq!(speak(ws).await.1, Some(1000));
        let mut ws = connect(addr, "", &[]).await.unwrap();
        send_json(&mut ws, json!({"text": "Hello. "})).await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1008));
        assert_eq!(msgs.last().unwrap()["error"]["code"], "invalid_api_key");
        assert!(audio_bytes(&msgs) == 0);
    }

    /// A client that leaves mid-utterance, or a session over budget, frees its
    /// admission permit and its runs at once.
    #[tokio::test]
    async fn a_client_that_leaves_frees_everything() {
        // Its own engine: the shared one's in-flight count is other tests' too.
        let factory: ModelFactory =
            Arc::new(|| Ok(Box::new(ToneModel) as Box<dyn kokoro_synth::Model + Send>));
        let s = state_on(start(engine_config(), factory), DEFAULT);
        let addr = serve(s.clone()).await;
        let free = || s.admission.available_permits() == 16;
        let long =
            "This sentence is one of many that keep the server busy for a while. ".repeat(12);
        for abrupt in [true, false] {
            let mut ws = connect(addr, "output_format=pcm_24000", &[]).await.unwrap();
            send_json(&mut ws, json!({"text": long})).await;
            // First audio: the session holds a permit and has runs.
            let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap();
            assert!(m.is_some());
            assert!(!free());
            if abrupt {
                drop(ws); // no close frame: the TCP connection just goes
            } else {
                ws.close(None).await.unwrap();
            }
            let mut freed = false;
            for _ in 0..100 {
                if free()
                    && s.metrics
                        .in_flight
                        .load(std::sync::atomic::Ordering::Relaxed)
                        == 0
                {
                    freed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(freed, "abrupt={abrupt}: permits and runs are freed");
        }
        // Over the budget across pieces: refused with the budget's error.
        let tight = {
            let mut cfg = engine_config();
            cfg.budget.text_chars = 60;
            let factory: ModelFactory =
                Arc::new(|| Ok(Box::new(ToneModel) as Box<dyn kokoro_synth::Model + Send>));
            state_on(start(cfg, factory), DEFAULT)
        };
        let addr = serve(tight).await;
        let mut ws = connect(addr, "", &[]).await.unwrap();
        for _ in 0..4 {
            send_json(
                &mut ws,
                json!({"text": "Each of these sentences is short. "}),
            )
            .await;
        }
        send_json(&mut ws, json!({"text": ""})).await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1008));
        assert_eq!(msgs.last().unwrap()["error"]["code"], "request_too_costly");
        assert!(
            audio_bytes(&msgs) > 0,
            "the pieces within the budget were spoken"
        );
        // Text that is never spoken still counts: the raw characters are bounded.
        let mut ws = connect(addr, "", &[]).await.unwrap();
        for _ in 0..8 {
            send_json(&mut ws, json!({"text": "... ... ... "})).await;
        }
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(code, Some(1008));
        assert_eq!(msgs.last().unwrap()["error"]["code"], "request_too_costly");
    }
}

/// The Wyoming protocol on a real socket over the fake model.
mod wyoming_protocol {
    use super::*;
    use kokoro_backend::wyoming::{self, Frame};
    use tokio::io::{AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    struct Client {
        read: BufReader<tokio::net::tcp::OwnedReadHalf>,
        write: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn send(&mut self, kind: &str, data: Value) {
            self.send_raw(&wyoming::encode(kind, &data, &[])).await;
        }

        async fn send_raw(&mut self, bytes: &[u8]) {
            self.write.write_all(bytes).await.unwrap();
        }

        /// The next event, or `None` when the server closed.
        async fn next(&mut self) -> Option<Frame> {
            tokio::time::timeout(
                Duration::from_secs(20),
                wyoming::read_frame(&mut self.read, 1 << 20, Duration::from_secs(5)),
            )
            .await
            .expect("the server answers")
            .ok()
            .flatten()
        }

        /// Events up to and including the first of type `last`.
        async fn until(&mut self, last: &str) -> Vec<Frame> {
            let mut out = Vec::new();
            while let Some(f) = self.next().await {
                let done = f.kind == last;
                out.push(f);
                if done {
                    return out;
                }
            }
            panic!(
                "closed before {last}: {:?}",
                out.iter().map(|f| &f.kind).collect::<Vec<_>>()
            );
        }
    }

    async fn server(s: AppState) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(wyoming::serve(listener, s));
        addr
    }

    async fn client(addr: std::net::SocketAddr) -> Client {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            read: BufReader::new(read),
            write,
        }
    }

    fn kinds(frames: &[Frame]) -> Vec<&str> {
        let mut k: Vec<&str> = frames.iter().map(|f| f.kind.as_str()).collect();
        k.dedup();
        k
    }

    /// A Wyoming request counter (the engine, and so its metrics, is shared by
    /// the tests running at once: only lower bounds hold).
    fn count(m: &Metrics, mode: &str, outcome: &str) -> u64 {
        let line =
            format!("kokoro_wyoming_requests_total{{mode=\"{mode}\",outcome=\"{outcome}\"}} ");
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()).map(|n| n.parse().unwrap()))
            .unwrap()
    }

    fn pcm_samples(frames: &[Frame]) -> usize {
        frames
            .iter()
            .filter(|f| f.kind == "audio-chunk")
            .map(|f| f.payload.len() / 2)
            .sum()
    }

    #[tokio::test]
    async fn describe_synthesize_and_ping_on_one_connection() {
        let s = state(DEFAULT);
        let metrics = s.metrics.clone();
        let mut c = client(server(s).await).await;
        c.send("describe", json!({})).await;
        let info = c.next().await.unwrap();
        assert_eq!(info.kind, "info");
        let voices = info.data["tts"][0]["voices"].as_array().unwrap();
        let names: Vec<&str> = voices.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["af_bella", "af_heart", "af_sky"]);
        assert_eq!(voices[0]["languages"], json!(["en-US"]));

        c.send(
            "synthesize",
            json!({"text": "Hello there. How are you today?", "voice": {"name": "af_bella"}}),
        )
        .await;
        let got = c.until("audio-stop").await;
        assert_eq!(kinds(&got), ["audio-start", "audio-chunk", "audio-stop"]);
        assert_eq!(
            got[0].data,
            json!({"rate": 24000, "width": 2, "channels": 1})
                .as_object()
                .unwrap()
                .clone()
        );
        let n = pcm_samples(&got);
        assert!(n > 2_400, "{n} samples");
        assert!(got.iter().all(|f| f.payload.len() <= wyoming::CHUNK_BYTES));
        // Each chunk's timestamp is where it starts; the stop's, the end.
        let mut at = 0;
        for f in got.iter().filter(|f| f.kind == "audio-chunk") {
            assert_eq!(f.data["timestamp"], (at as u64 * 1000 / 24_000));
            at += f.payload.len() / 2;
        }
        assert_eq!(
            got.last().unwrap().data["timestamp"],
            n as u64 * 1000 / 24_000
        );

        c.send("ping", json!({"text": "still there?"})).await;
        let pong = c.next().await.unwrap();
        assert_eq!(
            (pong.kind.as_str(), &pong.data["text"]),
            ("pong", &json!("still there?"))
        );
        // Unknown event types are dropped, not answered.
        c.send("transcribe", json!({})).await;
        c.send("ping", json!({})).await;
        assert_eq!(c.next().await.unwrap().kind, "pong");
        assert!(count(&metrics, "synthesize", "ok") >= 1);
    }

    #[tokio::test]
    async fn streamed_text_is_one_utterance_and_the_fallback_copy_is_ignored() {
        let s = state(DEFAULT);
        let mut c = client(server(s).await).await;
        let text = "The train leaves at nine. Bring an umbrella, it may rain. ";
        let mut said = Vec::new();
        for fallback in [false, true] {
            c.send("synthesize-start", json!({"voice": {"name": "af_heart"}}))
                .await;
            for piece in [
                "The train leaves ",
                "at nine. Bring an ",
                "umbrella, it may rain. ",
            ] {
                c.send("synthesize-chunk", json!({"text": piece})).await;
            }
            if fallback {
                c.send("synthesize", json!({"text": text})).await;
            }
            c.send("synthesize-stop", json!({})).await;
            let got = c.until("synthesize-stopped").await;
            assert_eq!(
                kinds(&got),
                [
                    "audio-start",
                    "audio-chunk",
                    "audio-stop",
                    "synthesize-stopped"
                ]
            );
            said.push(pcm_samples(&got));
        }
        // The fallback copy is not said too.
        assert_eq!(said[0], said[1]);
        assert!(said[0] > 24_000 / 4, "{said:?}");
        c.send("ping", json!({})).await;
        assert_eq!(c.next().await.unwrap().kind, "pong");
    }

    #[tokio::test]
    async fn mistakes_get_error_events_and_the_connection_goes_on() {
        let s = state(DEFAULT);
        let metrics = s.metrics.clone();
        let mut c = client(server(s).await).await;
        let err = |f: Frame| {
            assert_eq!(f.kind, "error", "{f:?}");
            (
                f.data["code"].as_str().unwrap().to_string(),
                f.data["text"].as_str().unwrap().to_string(),
            )
        };
        c.send(
            "synthesize",
            json!({"text": "Hi.", "voice": {"name": "bf_emma"}}),
        )
        .await;
        let (code, text) = err(c.next().await.unwrap());
        assert_eq!(code, "voice_not_found");
        assert!(text.contains("bf_emma"), "{text}");
        c.send(
            "synthesize",
            json!({"text": "Hi.", "voice": {"language": "ja"}}),
        )
        .await;
        assert_eq!(err(c.next().await.unwrap()).0, "voice_not_found");
        c.send(
            "synthesize",
            json!({"text": "<speak>Hi</speak>", "text_format": "ssml"}),
        )
        .await;
        assert_eq!(err(c.next().await.unwrap()).0, "unsupported_text_format");
        c.send("synthesize", json!({"voice": {"name": "af_heart"}}))
            .await;
        assert_eq!(err(c.next().await.unwrap()).0, "missing_parameter");
        c.send("synthesize", json!({"text": "..."})).await;
        assert_eq!(err(c.next().await.unwrap()).0, "no_speakable_text");
        c.send("select-program", json!({"name": "piper"})).await;
        assert_eq!(err(c.next().await.unwrap()).0, "model_not_found");
        c.send("select-program", json!({"name": "kokoro"})).await;
        // A streamed session over the text budget ends with an error; the next works.
        c.send("synthesize-start", json!({})).await;
        assert_eq!(c.next().await.unwrap().kind, "audio-start");
        let big = "word ".repeat(2000);
        c.send("synthesize-chunk", json!({"text": big})).await;
        assert_eq!(err(c.next().await.unwrap()).0, "request_too_costly");
        c.send("synthesize", json!({"text": "Fine."})).await;
        assert_eq!(
            kinds(&c.until("audio-stop").await),
            ["audio-start", "audio-chunk", "audio-stop"]
        );
        assert!(count(&metrics, "stream", "error") >= 1);
    }

    #[tokio::test]
    async fn a_broken_or_oversized_event_closes_the_connection_with_its_reason() {
        let s = state(DEFAULT);
        let addr = server(s).await;
        let mut c = client(addr).await;
        c.send_raw(b"{\"type\":\"synthesize\",\"data_length\":999999999}\n")
            .await;
        let f = c.next().await.unwrap();
        assert_eq!(
            (f.kind.as_str(), &f.data["code"]),
            ("error", &json!("payload_too_large"))
        );
        assert!(c.next().await.is_none());
        let mut c = client(addr).await;
        c.send_raw(b"not json\n").await;
        assert_eq!(c.next().await.unwrap().data["code"], "invalid_json");
        assert!(c.next().await.is_none());
    }

    #[tokio::test]
    async fn a_busy_server_says_so_and_the_client_leaving_frees_its_permit() {
        let s = state(Opts {
            capacity: 1,
            ..DEFAULT
        });
        let admission = s.admission.clone();
        let addr = server(s).await;
        let long = "This sentence goes on for quite a while, and then some more. ".repeat(20);
        let mut a = client(addr).await;
        a.send("synthesize", json!({"text": long})).await;
        assert_eq!(a.next().await.unwrap().kind, "audio-start");
        assert_eq!(a.next().await.unwrap().kind, "audio-chunk");
        let mut b = client(addr).await;
        b.send("synthesize", json!({"text": "Me too."})).await;
        assert_eq!(b.next().await.unwrap().data["code"], "queue_full");
        drop(a);
        for _ in 0..200 {
            if admission.available_permits() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(admission.available_permits(), 1);
        b.send("synthesize", json!({"text": "Me too."})).await;
        assert_eq!(
            kinds(&b.until("audio-stop").await),
            ["audio-start", "audio-chunk", "audio-stop"]
        );
    }
}

/// `say --server` against the router on a real socket (keys, errors, the file).
mod say_client {
    use super::*;
    use kokoro_backend::client;

    async fn serve(s: AppState) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = kokoro_serve::TowerToHyperService::new(app(s));
        tokio::spawn(kokoro_serve::serve(
            listener,
            kokoro_serve::Limits::default(),
            Arc::new(kokoro_serve::Stats::default()),
            svc,
            std::future::pending(),
        ));
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn streams_the_file_with_the_key_and_shows_the_apis_errors() {
        let url = serve(state(Opts {
            keys: &["sesame"],
            ..DEFAULT
        }))
        .await;
        let dir = std::env::temp_dir().join(format!("say-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("hello.wav");
        let body = json!({"input": "Hello there. How are you?", "voice": "af_heart", "response_format": "wav"});
        let n = client::say(&url, body.clone(), &out, Some("sesame"))
            .await
            .unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, n);
        assert_eq!(&bytes[..4], b"RIFF");
        assert!(n > 44 + 4800, "{n} bytes");

        let e = client::say(&url, body.clone(), &out, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("(401)"), "{e}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            bytes,
            "an error keeps the file that was there"
        );
        assert!(!dir.join("hello.wav.part").exists());
        let bad = json!({"input": "Hi.", "voice": "af_nobody"});
        let e = client::say(&url, bad, &out, Some("sesame"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("af_nobody") && e.contains("(400)"), "{e}");
        let e = client::say("http://127.0.0.1:9", body, &out, None)
            .await
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot reach http://127.0.0.1:9"),
            "{e:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_stream_cut_short_is_an_error_and_leaves_no_file() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 65536];
            let _ = c.read(&mut buf).await;
            let delta = format!(
                "data: {{\"type\":\"speech.audio.delta\",\"audio\":\"{}\"}}\n\n",
                base64::engine::general_purpose::STANDARD.encode(b"RIFFxxxx")
            );
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            c.write_all(format!("{head}{delta}").as_bytes())
                .await
                .unwrap();
        });
        let out = std::env::temp_dir().join(format!("say-cut-{}.wav", std::process::id()));
        let e = client::say(&url, json!({"input": "Hi."}), &out, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("ended the stream"), "{e:#}");
        assert!(!out.exists());
    }
}
