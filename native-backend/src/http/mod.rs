//! HTTP layer: the contract's routes on axum.
//!
//! [`app`] builds the router from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` without a socket. All errors go through
//! [`error::AppError`]; malformed bodies are caught by [`JsonBody`].

pub mod error;
pub mod middleware;
pub mod stream_input;

use crate::engine::{self, Engine, EngineError, Event};
use crate::metrics::Metrics;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use error::AppError;
use futures_util::StreamExt;
use kokoro_core::boundary::{self, Route};
use kokoro_core::{ApiError, SpeechRequest, StreamFormat};
use kokoro_synth::pipeline::Input;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<crate::config::Config>,
    pub admission: Arc<Semaphore>,
    /// WebSocket sessions open at once (`--max-stream-sessions`).
    pub stream_sessions: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: crate::config::Config) -> Self {
        Self {
            metrics: engine.metrics().clone(),
            admission: Arc::new(Semaphore::new(config.queue_capacity)),
            stream_sessions: Arc::new(Semaphore::new(config.max_stream_sessions)),
            config: Arc::new(config),
            engine,
        }
    }
}

/// The router: every route of `kokoro_core::boundary::ROUTES`, and the layers.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let mut router = Router::new();
    for r in &boundary::ROUTES {
        let method = match r.route {
            Route::Speech => post(speech),
            Route::Models => get(models),
            Route::Model => get(model),
            Route::Voices => get(voices),
            Route::Health => get(health),
            Route::Status => get(status),
            Route::Metrics => get(metrics),
            Route::Phonemize | Route::GenerateFromPhonemes if !state.config.dev_routes => {
                continue;
            }
            Route::Phonemize => post(phonemize),
            Route::GenerateFromPhonemes => post(generate_from_phonemes),
            Route::CaptionedSpeech => post(captioned_speech),
            Route::StreamInput => get(stream_input::stream_input),
            Route::Root => get(web_root),
            Route::Web => get(web_page),
            Route::WebAsset => get(web_asset),
        };
        router = router.route(r.path, method);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::retry_after,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::metrics,
        ))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .layer(axum::middleware::from_fn(
            middleware::close_after_error_with_body,
        ))
        .with_state(state)
}

/// `/`: the playground.
async fn web_root() -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, kokoro_web::PAGE)],
    )
        .into_response()
}

fn web_file(asset: kokoro_web::Asset) -> Response {
    let mut resp = Response::new(Body::from(asset.body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    for (name, value) in kokoro_web::HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// `/web`: the playground's page.
async fn web_page() -> Response {
    web_file(kokoro_web::index())
}

/// `/web/{file}`: the page's script and style sheet; any other name is a 404.
async fn web_asset(Path(file): Path<String>) -> Result<Response, AppError> {
    kokoro_web::asset(&file)
        .map(web_file)
        .ok_or_else(|| ApiError::no_such_route().into())
}

async fn not_found() -> AppError {
    ApiError::no_such_route().into()
}

async fn method_not_allowed() -> AppError {
    ApiError::method_not_allowed().into()
}

/// A JSON body: `application/json` required (415), size limited (413), parsed by
/// `kokoro-core` (400/422) so every mistake gets the contract's envelope.
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !boundary::is_json(content_type) {
            return Err(ApiError::unsupported_media_type().into());
        }
        let limit = state.config.max_body_bytes;
        let deadline = state.config.limits.body;
        let read = tokio::time::timeout(deadline, Bytes::from_request(req, state))
            .await
            .map_err(|_| AppError(ApiError::body_timeout(deadline.as_secs_f64())))?;
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError(ApiError::payload_too_large(limit))
            } else {
                AppError(ApiError::unreadable_body())
            }
        })?;
        Ok(Self(bytes))
    }
}

pub(crate) fn admit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
    state.admission.clone().try_acquire_owned().map_err(|_| {
        state
            .metrics
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        AppError(ApiError::rate_limited())
    })
}

fn ms_header(v: u128) -> HeaderValue {
    HeaderValue::from(u64::try_from(v).unwrap_or(u64::MAX))
}

pub(crate) type Events = tokio::sync::mpsc::Receiver<Result<Event, EngineError>>;

/// Plan a validated request, take an admission permit and start its run; the
/// permit goes when the run ends (or its client does).
fn start_run(state: &AppState, req: &SpeechRequest) -> Result<Events, AppError> {
    let speech = state.engine.prepare(req)?;
    let permit = admit(state)?;
    Ok(spawn_run(state, speech, permit))
}

/// Run a prepared speech on the engine; `guard` (an admission permit) is dropped
/// when the run ends, which it does at once when the receiver goes.
pub(crate) fn spawn_run(
    state: &AppState,
    speech: kokoro_synth::pipeline::Speech,
    guard: impl Send + 'static,
) -> Events {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let metrics = state.metrics.clone();
    metrics
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let engine = state.engine.clone();
    tokio::spawn(async move {
        engine::run(engine, speech, tx).await;
        metrics
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(guard);
    });
    rx
}

async fn speech(State(state): State<AppState>, body: JsonBody) -> Result<Response, AppError> {
    let start = Instant::now();
    let req = SpeechRequest::from_json(&body.0)?;
    let mut rx = start_run(&state, &req)?;
    let sse = req.stream_format == StreamFormat::Sse;

    if !req.stream {
        // The pipeline encodes a whole answer at its end (exact WAV sizes).
        let (mut bytes, mut n) = (Vec::new(), 0usize);
        while let Some(ev) = rx.recv().await {
            match ev.map_err(|e| engine_error(&e))? {
                Event::Audio { samples, bytes: b } => {
                    n += samples;
                    bytes.extend(b);
                }
                Event::End { bytes: b, .. } => {
                    bytes.extend(b);
                    break;
                }
                Event::Words(_) => {}
            }
        }
        let format = req.format;
        let mut resp = Response::new(Body::from(bytes));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        h.insert(
            "x-audio-duration-ms",
            ms_header(n as u128 * 1000 / kokoro_core::SAMPLE_RATE as u128),
        );
        h.insert("x-synthesis-ms", ms_header(start.elapsed().as_millis()));
        return Ok(resp);
    }

    // Streaming: the response head leaves only with the first real audio (word
    // timestamps made just before it go out with it).
    let mut head = Vec::new();
    loop {
        match rx.recv().await {
            Some(Ok(ev)) => {
                let words = matches!(ev, Event::Words(_));
                head.push(Ok(ev));
                if !words {
                    break;
                }
            }
            Some(Err(e)) => return Err(engine_error(&e)),
            None => return Err(internal("pipeline ended without audio")),
        }
    }
    let ttfa = start.elapsed();
    state.metrics.record_ttfa(ttfa.as_secs_f64());
    let mut total_phonemes = 0usize;
    let rest =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
        );
    let format = req.format;
    let items = futures_util::stream::iter(head).chain(rest).map(
        move |ev| -> Result<Bytes, std::io::Error> {
            match ev {
                Ok(Event::Audio { bytes, .. }) => Ok(if sse {
                    sse_delta(&bytes)
                } else {
                    Bytes::from(bytes)
                }),
                Ok(Event::Words(words)) => Ok(if sse {
                    Bytes::from(sse_event(&json!({
                        "type": "speech.audio.timestamps",
                        "words": words.iter().map(stamp_json).collect::<Vec<_>>(),
                    })))
                } else {
                    Bytes::new()
                }),
                Ok(Event::End { bytes, phonemes }) => {
                    total_phonemes += phonemes;
                    if sse {
                        let mut out = if bytes.is_empty() {
                            Vec::new()
                        } else {
                            sse_delta(&bytes).to_vec()
                        };
                        out.extend_from_slice(sse_done(total_phonemes).as_bytes());
                        Ok(Bytes::from(out))
                    } else {
                        Ok(Bytes::from(bytes))
                    }
                }
                // Mid-stream failure: the status is already sent; end the body with an
                // error so the client sees a truncated transfer, and log it.
                Err(e) => {
                    tracing::error!(error = ?e, "synthesis failed mid-stream");
                    Err(std::io::Error::other("synthesis failed"))
                }
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(items));
    let h = resp.headers_mut();
    if sse {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
    }
    h.insert("x-time-to-first-audio-ms", ms_header(ttfa.as_millis()));
    Ok(resp)
}

fn sse_event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// Seconds to the millisecond.
fn secs(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

fn stamp_json(s: &kokoro_synth::timing::Stamp) -> Value {
    json!({"word": s.word, "start": secs(s.start), "end": secs(s.end),
           "char_start": s.char_start, "char_end": s.char_end})
}

/// Kokoro-FastAPI's shape of a timestamp, with the span added.
fn caption_json(s: &kokoro_synth::timing::Stamp) -> Value {
    json!({"word": s.word, "start_time": secs(s.start), "end_time": secs(s.end),
           "char_start": s.char_start, "char_end": s.char_end})
}

/// `POST /dev/captioned_speech`: speech and word timestamps as JSON (Kokoro-FastAPI's
/// shape), streamed as newline-delimited JSON, one object per piece of audio with
/// the words that begin in it.
async fn captioned_speech(
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, AppError> {
    let value: Value = serde_json::from_slice(&body.0).map_err(|_| {
        ApiError::new(
            kokoro_core::ErrorKind::InvalidRequest,
            "invalid_json",
            "Request body is not valid JSON.",
        )
    })?;
    let req = SpeechRequest::from_captioned(&value)?;
    let mut rx = start_run(&state, &req)?;
    let format = req.format.as_str();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if !req.stream {
        let (mut bytes, mut stamps) = (Vec::new(), Vec::new());
        while let Some(ev) = rx.recv().await {
            match ev.map_err(|e| engine_error(&e))? {
                Event::Audio { bytes: b, .. } => bytes.extend(b),
                Event::Words(w) => stamps.extend(w.iter().map(caption_json)),
                Event::End { bytes: b, .. } => {
                    bytes.extend(b);
                    break;
                }
            }
        }
        let body = json!({"audio": b64(&bytes), "audio_format": format, "timestamps": stamps});
        return Ok(Json(body).into_response());
    }
    let first = match rx.recv().await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => return Err(engine_error(&e)),
        None => return Err(internal("pipeline ended without audio")),
    };
    let rest =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
        );
    // Stamps come ahead of their audio; each line carries those that begin in
    // the audio sent so far (the last line, all that remain).
    let mut words = std::collections::VecDeque::new();
    let mut sent = 0usize;
    let lines = futures_util::stream::iter([Ok(first)]).chain(rest).map(
        move |ev| -> Result<Bytes, std::io::Error> {
            let (bytes, upto) = match ev {
                Ok(Event::Words(w)) => {
                    words.extend(w);
                    return Ok(Bytes::new());
                }
                Ok(Event::Audio { bytes, samples }) => {
                    sent += samples;
                    (bytes, sent as f64 / f64::from(kokoro_core::SAMPLE_RATE))
                }
                Ok(Event::End { bytes, .. }) => (bytes, f64::INFINITY),
                Err(e) => {
                    tracing::error!(error = ?e, "synthesis failed mid-stream");
                    return Err(std::io::Error::other("synthesis failed"));
                }
            };
            let mut these = Vec::new();
            while words
                .front()
                .is_some_and(|w: &kokoro_synth::timing::Stamp| w.start < upto)
            {
                these.extend(words.pop_front().as_ref().map(caption_json));
            }
            if bytes.is_empty() && these.is_empty() {
                return Ok(Bytes::new());
            }
            let line = json!({"audio": b64(&bytes), "audio_format": format, "timestamps": these});
            Ok(Bytes::from(format!("{line}\n")))
        },
    );
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

fn sse_delta(bytes: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Bytes::from(format!(
        "data: {{\"type\":\"speech.audio.delta\",\"audio\":\"{b64}\"}}\n\n"
    ))
}

fn sse_done(tokens: usize) -> String {
    format!(
        "data: {{\"type\":\"speech.audio.done\",\"usage\":{{\"input_tokens\":{tokens},\"output_tokens\":0,\"total_tokens\":{tokens}}}}}\n\n"
    )
}

fn internal(detail: &str) -> AppError {
    tracing::error!(detail, "internal error");
    AppError(ApiError::internal())
}

fn engine_error(e: &EngineError) -> AppError {
    if let EngineError::Synth(kokoro_synth::SynthError::Failed(detail)) = e {
        tracing::error!(detail = %detail, "engine failure");
    }
    AppError(e.to_api())
}

async fn models() -> Json<Value> {
    Json(kokoro_core::catalog::models())
}

async fn model(Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    kokoro_core::catalog::model(&id).map(Json).ok_or_else(|| {
        ApiError::not_found("No such model.")
            .with_param("id")
            .into()
    })
}

async fn voices(State(state): State<AppState>) -> Json<Value> {
    let installed = state.engine.voices();
    Json(kokoro_core::catalog::voices(|v| installed.contains(v)))
}

/// The engine is started (model loaded and warmed) before the server listens; after
/// that it is healthy while at least one inference worker runs.
async fn health(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let alive = state.engine.workers_alive();
    if alive == 0 {
        return Err(ApiError::no_workers().into());
    }
    Ok(Json(json!({"status": "ok", "workers": alive})))
}

async fn status(State(state): State<AppState>) -> Json<Value> {
    let cfg = state.engine.config();
    let queued = state
        .metrics
        .queue_depth
        .load(std::sync::atomic::Ordering::Relaxed);
    let admitted = state.config.queue_capacity - state.admission.available_permits();
    Json(json!({
        "status": "ok",
        // The file name only: an absolute path tells a client about the host.
        "model": {
            "file": cfg.model.file_name().map(|f| f.to_string_lossy()),
            "version": cfg.model_version,
        },
        "device": state.engine.device,
        "workers": cfg.workers,
        "workers_alive": state.engine.workers_alive(),
        "intra_threads": cfg.intra_threads,
        "g2p_fallback": {
            "dictionary_and_model": kokoro_synth::g2p::fallback_data().is_some(),
            "espeak_english": cfg.espeak_english,
        },
        "queue": {"depth": queued, "admitted": admitted, "capacity": state.config.queue_capacity},
    }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    (h, state.metrics.render())
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, AppError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::not_an_object().into()),
    }
}

fn check_fields(m: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), AppError> {
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        let shown = kokoro_core::error::shown(k);
        return Err(ApiError::invalid(
            &shown,
            "unknown_parameter",
            format!("Unrecognized request argument supplied: {shown}"),
        )
        .into());
    }
    Ok(())
}

fn required_text<'a>(
    m: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, AppError> {
    match m.get(field) {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.chars().count() <= kokoro_core::request::MAX_INPUT_CHARS =>
        {
            Ok(s)
        }
        Some(Value::String(_)) => Err(ApiError::invalid(
            field,
            "invalid_value",
            format!("'{field}' must be 1 to 4096 characters."),
        )
        .into()),
        Some(_) => Err(ApiError::invalid(
            field,
            "invalid_type",
            format!("'{field}' must be a string."),
        )
        .into()),
        None => Err(ApiError::invalid(
            field,
            "missing_parameter",
            format!("'{field}' is required."),
        )
        .into()),
    }
}

async fn phonemize(State(state): State<AppState>, body: JsonBody) -> Result<Json<Value>, AppError> {
    let m = object(&body.0)?;
    check_fields(&m, &["text", "language", "normalization"])?;
    let text = required_text(&m, "text")?;
    let lang = match m.get("language") {
        None | Some(Value::Null) => kokoro_core::Lang::EnUs,
        Some(Value::String(s)) => kokoro_core::Lang::parse(s)
            .ok_or_else(|| ApiError::invalid("language", "invalid_value", "Unknown language."))?,
        Some(_) => {
            return Err(ApiError::invalid(
                "language",
                "invalid_type",
                "'language' must be a string.",
            )
            .into());
        }
    };
    let opts = match m.get("normalization") {
        None | Some(Value::Null) => Default::default(),
        Some(v) => kokoro_core::normalize::NormalizeOptions::from_value(v)?,
    };
    let normalized = kokoro_core::normalize::normalize(text, &opts).into_owned();
    let budget = &state.engine.settings().budget;
    let cost = kokoro_synth::budget::Cost {
        pause_secs: 0.0,
        text_chars: normalized.chars().count(),
    };
    budget.admit(&cost, 1.0)?;
    let permit = admit(&state)?;
    let (ps, words) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        kokoro_synth::g2p::phonemize_words(&normalized, lang, true)
    })
    .await
    .map_err(|e| internal(&e.to_string()))?
    .map_err(|e| match e {
        kokoro_synth::g2p::G2pError::Unsupported(l) => {
            AppError(ApiError::unsupported_language(l.tag()))
        }
        kokoro_synth::g2p::G2pError::Failed(m) => internal(&m),
    })?;
    let (ids, _) = state.engine.vocab().encode_padded(&ps);
    let words: Vec<Value> = words
        .iter()
        .map(|w| json!({"text": w.text, "phonemes": w.phonemes, "source": w.source.as_str()}))
        .collect();
    Ok(Json(
        json!({"phonemes": ps, "tokens": ids[1..ids.len() - 1], "words": words}),
    ))
}

async fn generate_from_phonemes(
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, AppError> {
    let m = object(&body.0)?;
    check_fields(&m, &["phonemes", "voice", "speed"])?;
    let phonemes = required_text(&m, "phonemes")?.to_string();
    // Reuse the speech validation for voice and speed.
    let mut probe = serde_json::Map::new();
    probe.insert("input".into(), Value::from("x"));
    for k in ["voice", "speed"] {
        if let Some(v) = m.get(k) {
            probe.insert(k.into(), v.clone());
        }
    }
    let req = SpeechRequest::from_value(&Value::Object(probe))?;
    let permit = admit(&state)?;
    let rendered = state
        .engine
        .synthesize(Input::Phonemes(phonemes), req.lang, &req.voice, req.speed)
        .await
        .map_err(|e| engine_error(&e))?;
    drop(permit);
    let engine = state.engine.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut audio = rendered.audio;
        let mut output = engine.output(kokoro_core::AudioFormat::Wav, false)?;
        output.push(&mut audio)?;
        output.finish(&crate::audio::encode::NativeEncoders)
    })
    .await
    .map_err(|e| internal(&e.to_string()))?
    .map_err(|e| internal(&e))?;
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    Ok(resp)
}
