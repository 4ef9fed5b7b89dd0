//! The Wyoming protocol (Home Assistant's voice services) on its own TCP port
//! (`--wyoming 127.0.0.1:10200`): Home Assistant's Wyoming integration adds this
//! server as a TTS engine with every installed voice.
//!
//! The wire: each event is a JSON header line (`type`, and `data_length` /
//! `payload_length` when bytes follow), then that many bytes of JSON data (merged
//! into the header's `data`), then the binary payload. Served events:
//! - `describe` -> `info`: one TTS program, Kokoro-82M, every installed voice in its
//!   language ([`kokoro_core::catalog::wyoming_info`]);
//! - `synthesize` -> `audio-start`, `audio-chunk`s of 16-bit mono PCM at 24 kHz as
//!   the pipeline makes them (the same streamed run, decoder windows included, as
//!   `POST /v1/audio/speech` with `stream`), `audio-stop`;
//! - `synthesize-start`, `synthesize-chunk`s, `synthesize-stop` (text as it is
//!   written): the text is cut where the stream-input socket cuts it
//!   ([`kokoro_core::intake`]) and each piece is spoken as soon as it is complete, in
//!   one `audio-start` .. `audio-stop`, then `synthesize-stopped`. A `synthesize`
//!   inside such a session is the client's fallback copy of the text and is ignored;
//! - `ping` -> `pong`; `select-program` of `kokoro` (another name is an error);
//!   other event types are dropped, as the protocol asks.
//!
//! A request that cannot be served gets an `error` event (`text` is the HTTP API's
//! message for the same mistake, `code` its code) and the connection stays usable.
//!
//! Bounds, as for HTTP: one admission permit while a connection has audio to make
//! (busy: `rate_limited`), the request budget (over a whole streamed session too),
//! at most `--max-stream-sessions` connections (shared with the WebSocket
//! sessions), an event no larger than a request body, the header time-out for the
//! rest of an event once its first byte came, the write deadline of every
//! connection, [`IDLE`] without an event while nothing is being said, and
//! [`STREAM_IDLE`] without text in a streamed session (then what waits is spoken
//! and the session ends). Wyoming has no authentication: with API keys set the
//! listener must be on loopback (checked at start).

use crate::engine::{EngineError, Event};
use crate::http::stream_input::{EAGER_BELOW_SECS, NEXT_WITHIN_SECS, SECS_PER_CHAR};
use crate::http::{AppState, Events, admit, spawn_run};
use kokoro_core::intake::{Cut, Intake};
use kokoro_core::{ApiError, ErrorKind, SAMPLE_RATE, SpeechRequest};
use kokoro_synth::budget::Cost;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// The protocol version this server speaks (the `wyoming` package's, 1.10).
pub const PROTOCOL_VERSION: &str = "1.10.2";
/// An idle connection (no event, nothing being said) is closed after this.
pub const IDLE: Duration = Duration::from_secs(120);
/// A streamed session that gets no text for this long speaks what waits and ends.
pub const STREAM_IDLE: Duration = Duration::from_secs(20);
/// Audio bytes per `audio-chunk` at most (2,048 samples, 85 ms).
pub const CHUNK_BYTES: usize = 4096;
/// `synthesize` / `synthesize-start` events waiting behind the one being said.
const MAX_QUEUED: usize = 4;
/// Runs at once in a streamed session: the one being sent and the next.
const MAX_RUNS: usize = 2;

/// One event as read off the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

/// Why an event could not be read.
#[derive(Debug)]
pub enum WireError {
    /// The connection closed inside an event.
    Truncated,
    /// A header line, data or payload over the size bound.
    TooLarge(&'static str),
    /// Not the protocol's shape.
    Malformed(&'static str),
    /// The rest of an event did not arrive within the header time-out.
    Timeout,
    Io(std::io::Error),
}

impl WireError {
    /// The error event for it (what the client is told before the close).
    fn to_api(&self, max: usize, rest: Duration) -> ApiError {
        match self {
            WireError::TooLarge(what) => ApiError::event_too_large(what, max),
            WireError::Malformed(why) => ApiError::malformed_event(why),
            WireError::Timeout => ApiError::event_timeout(rest.as_secs_f64()),
            WireError::Truncated | WireError::Io(_) => ApiError::internal(),
        }
    }
}

fn length(header: &Map<String, Value>, field: &str, max: usize) -> Result<usize, WireError> {
    match header.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or(WireError::Malformed("a length is not a whole number"))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > max {
                Err(WireError::TooLarge(if field == "data_length" {
                    "data"
                } else {
                    "payload"
                }))
            } else {
                Ok(n)
            }
        }
    }
}

/// Read one event: `Ok(None)` at a clean end of the stream (between events).
/// Waits as long as it takes for the first byte, then `rest` for the whole event;
/// every part is at most `max` bytes.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
    rest: Duration,
) -> Result<Option<Frame>, WireError> {
    if r.fill_buf().await.map_err(WireError::Io)?.is_empty() {
        return Ok(None);
    }
    tokio::time::timeout(rest, read_rest(r, max))
        .await
        .map_err(|_| WireError::Timeout)?
        .map(Some)
}

async fn read_rest<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<Frame, WireError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(WireError::Io)?;
        if buf.is_empty() {
            return Err(WireError::Truncated);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(WireError::TooLarge("header line"));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            break;
        }
    }
    let mut header = match serde_json::from_slice::<Value>(&line) {
        Ok(Value::Object(m)) => m,
        _ => return Err(WireError::Malformed("the header line is not a JSON object")),
    };
    let kind = match header.remove("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err(WireError::Malformed("the header has no type")),
    };
    let mut data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(WireError::Malformed("data is not a JSON object")),
    };
    let data_len = length(&header, "data_length", max)?;
    let payload_len = length(&header, "payload_length", max)?;
    if data_len > 0 {
        let mut bytes = vec![0; data_len];
        read_exact(r, &mut bytes).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => data.extend(m),
            _ => return Err(WireError::Malformed("data is not a JSON object")),
        }
    }
    let mut payload = vec![0; payload_len];
    read_exact(r, &mut payload).await?;
    Ok(Frame {
        kind,
        data,
        payload,
    })
}

async fn read_exact<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    r.read_exact(buf).await.map(|_| ()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Truncated
        } else {
            WireError::Io(e)
        }
    })
}

/// One event on the wire: the header line, the data as its own JSON (as the
/// `wyoming` package writes it), the payload.
pub fn encode(kind: &str, data: &Value, payload: &[u8]) -> Vec<u8> {
    let body = match data {
        Value::Object(m) if !m.is_empty() => Some(data.to_string()),
        _ => None,
    };
    let mut header = json!({"type": kind, "version": PROTOCOL_VERSION});
    if let Some(b) = &body {
        header["data_length"] = Value::from(b.len());
    }
    if !payload.is_empty() {
        header["payload_length"] = Value::from(payload.len());
    }
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    if let Some(b) = body {
        out.extend_from_slice(b.as_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// The `error` event for an API error: the HTTP API's message and code.
pub fn error_event(e: &ApiError) -> Vec<u8> {
    encode("error", &json!({"text": e.message, "code": e.code}), &[])
}

fn audio_format() -> Value {
    json!({"rate": SAMPLE_RATE, "width": 2, "channels": 1})
}

/// The voice an event's `voice` asks for: a name (a voice or a blend, as the HTTP
/// API takes it), else the first installed voice of a language, else the default.
fn voice_of(
    data: &Map<String, Value>,
    installed: &dyn Fn(&str) -> bool,
) -> Result<String, ApiError> {
    let voice = match data.get("voice") {
        None | Some(Value::Null) => return Ok(kokoro_core::voice::DEFAULT_VOICE.to_string()),
        Some(Value::Object(v)) => v,
        Some(_) => {
            return Err(ApiError::invalid(
                "voice",
                "invalid_type",
                "'voice' must be an object with a name or a language.",
            ));
        }
    };
    match (voice.get("name"), voice.get("language")) {
        (Some(Value::String(name)), _) => Ok(name.clone()),
        (Some(Value::Null) | None, Some(Value::String(lang))) => {
            let want = lang.replace('_', "-").to_ascii_lowercase();
            kokoro_core::voice::all_voices()
                .filter(|v| installed(v))
                .find(|v| {
                    kokoro_core::Lang::from_code(kokoro_core::voice::voice_lang(v)).is_some_and(
                        |l| {
                            let tag = l.bcp47().to_ascii_lowercase();
                            tag == want || tag.split('-').next() == Some(want.as_str())
                        },
                    )
                })
                .map(str::to_string)
                .ok_or_else(|| ApiError::no_voice_for_language(lang))
        }
        (None | Some(Value::Null), None | Some(Value::Null)) => {
            Ok(kokoro_core::voice::DEFAULT_VOICE.to_string())
        }
        _ => Err(ApiError::invalid(
            "voice",
            "invalid_type",
            "'voice.name' and 'voice.language' must be strings.",
        )),
    }
}

/// Plain text only: SSML is refused rather than read aloud tag by tag.
fn check_text_format(data: &Map<String, Value>) -> Result<(), ApiError> {
    match data.get("text_format") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(f)) if f == "text" => Ok(()),
        Some(_) => Err(ApiError::unsupported_text_format()),
    }
}

/// A speech request for `text` in `voice`: streamed 16-bit PCM.
fn request(text: &str, voice: &str) -> Result<SpeechRequest, ApiError> {
    SpeechRequest::from_value(&json!({
        "input": text,
        "voice": voice,
        "response_format": "pcm",
        "stream": true,
    }))
}

/// One piece in synthesis.
struct Run {
    events: Events,
    /// Seconds it is expected to speak for, and seconds of it sent.
    expected: f64,
    sent: f64,
}

/// What one `synthesize` or streamed session says: its runs in order.
struct Utterance {
    streamed: bool,
    voice: String,
    runs: VecDeque<Run>,
    /// Text still coming (streamed sessions until `synthesize-stop`).
    intake: Intake,
    open: bool,
    /// Cost of what was started, for the request budget.
    cost: Cost,
    samples: usize,
    asked: Instant,
    first_audio: Option<Instant>,
    last_text: Instant,
    /// The admission permit, while there are runs.
    permit: Option<Arc<OwnedSemaphorePermit>>,
}

impl Utterance {
    fn new(streamed: bool, voice: String) -> Self {
        let now = Instant::now();
        Self {
            streamed,
            voice,
            runs: VecDeque::new(),
            intake: Intake::new(),
            open: streamed,
            cost: Cost::default(),
            samples: 0,
            asked: now,
            first_audio: None,
            last_text: now,
            permit: None,
        }
    }

    fn done(&self) -> bool {
        !self.open && self.runs.is_empty() && !self.intake.has_text()
    }

    /// Seconds of audio the listener has ahead (as the stream-input socket counts).
    fn ahead(&self) -> f64 {
        let sent = self.samples as f64 / f64::from(SAMPLE_RATE);
        let played = self.first_audio.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let coming: f64 = self
            .runs
            .iter()
            .map(|r| (r.expected - r.sent).max(0.0))
            .sum();
        (sent - played).max(0.0) + coming
    }
}

/// One client connection.
struct Conn<W> {
    state: AppState,
    out: W,
    /// The utterance being said, and the requests waiting behind it.
    current: Option<Utterance>,
    queued: VecDeque<Frame>,
    last_event: Instant,
}

/// The client left or a write stalled: nothing more can be sent.
struct Gone;

impl<W: tokio::io::AsyncWrite + Unpin> Conn<W> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        let deadline = self.state.config.limits.write;
        match tokio::time::timeout(deadline, async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Gone),
            Err(_) => {
                self.state
                    .metrics
                    .connections
                    .slow_clients
                    .fetch_add(1, Ordering::Relaxed);
                Err(Gone)
            }
        }
    }

    async fn fail(&mut self, e: &ApiError) -> Result<(), Gone> {
        if e.kind == ErrorKind::Internal {
            tracing::error!(error = %e, "wyoming request failed");
        }
        self.send(&error_event(e)).await
    }

    fn installed(&self) -> impl Fn(&str) -> bool + '_ {
        let voices = self.state.engine.voices();
        move |v: &str| voices.contains(v)
    }

    /// Take one client event.
    async fn event(&mut self, f: Frame) -> Result<(), Gone> {
        self.last_event = Instant::now();
        let streaming = self.current.as_ref().is_some_and(|u| u.streamed && u.open);
        match f.kind.as_str() {
            "describe" => {
                let info =
                    kokoro_core::catalog::wyoming_info(self.installed(), env!("CARGO_PKG_VERSION"));
                self.send(&encode("info", &info, &[])).await
            }
            "ping" => {
                let text = f.data.get("text").cloned().unwrap_or(Value::Null);
                self.send(&encode("pong", &json!({"text": text}), &[]))
                    .await
            }
            "select-program" => match f.data.get("name").and_then(Value::as_str) {
                Some("kokoro") => Ok(()),
                name => {
                    let e = ApiError::no_such_program(name.unwrap_or_default());
                    self.fail(&e).await
                }
            },
            // The fallback copy of a streamed session's text.
            "synthesize" if streaming => Ok(()),
            "synthesize-chunk" if streaming => {
                let Some(text) = f.data.get("text").and_then(Value::as_str) else {
                    let e = ApiError::invalid(
                        "text",
                        "missing_parameter",
                        "'text' is required: a piece of the text.",
                    );
                    return self.abandon(&e).await;
                };
                let limit = self.state.engine.settings().budget.text_chars;
                let Some(u) = self.current.as_mut() else {
                    return Ok(());
                };
                let total = u.intake.total_chars() + text.chars().count();
                if total > limit {
                    let e = ApiError::over_budget(
                        "text",
                        &format!("{total} characters"),
                        &format!("{limit} characters"),
                    );
                    return self.abandon(&e).await;
                }
                u.intake.push(text);
                u.last_text = Instant::now();
                Ok(())
            }
            "synthesize-stop" if streaming => {
                if let Some(u) = self.current.as_mut() {
                    u.open = false;
                }
                Ok(())
            }
            "synthesize" | "synthesize-start" => {
                if self.current.is_some() {
                    if self.queued.len() >= MAX_QUEUED {
                        return self.fail(&ApiError::rate_limited()).await;
                    }
                    self.queued.push_back(f);
                    return Ok(());
                }
                self.begin(f).await
            }
            // Chunks and stops outside a session, and every other type: dropped.
            _ => Ok(()),
        }
    }

    /// Start a `synthesize` or a `synthesize-start`.
    async fn begin(&mut self, f: Frame) -> Result<(), Gone> {
        let streamed = f.kind == "synthesize-start";
        let started = self.plan(&f, streamed);
        match started {
            Ok(u) => {
                self.current = Some(u);
                self.send(&encode("audio-start", &audio_format(), &[]))
                    .await
            }
            Err(e) => {
                self.state.metrics.record_wyoming(streamed, false);
                self.fail(&e).await
            }
        }
    }

    fn plan(&mut self, f: &Frame, streamed: bool) -> Result<Utterance, ApiError> {
        check_text_format(&f.data)?;
        let voice = voice_of(&f.data, &self.installed())?;
        // The voice and its language, checked as speech checks them.
        self.state.engine.prepare(&request("x", &voice)?)?;
        let mut u = Utterance::new(streamed, voice);
        if !streamed {
            let text = match f.data.get("text") {
                Some(Value::String(t)) => t,
                _ => {
                    return Err(ApiError::invalid(
                        "text",
                        "missing_parameter",
                        "'text' is required: the text to speak.",
                    ));
                }
            };
            let req = request(text, &u.voice)?;
            let speech = self.state.engine.prepare(&req)?;
            let expected = f64::from(Cost::of(&speech.pieces).audio_secs(req.speed));
            let permit = Arc::new(admit(&self.state).map_err(|e| e.0)?);
            let events = spawn_run(&self.state, speech, Some(permit.clone()));
            u.permit = Some(permit);
            u.runs.push_back(Run {
                events,
                expected,
                sent: 0.0,
            });
        }
        Ok(u)
    }

    /// Drop the streamed session after an error in it.
    async fn abandon(&mut self, e: &ApiError) -> Result<(), Gone> {
        if let Some(u) = self.current.take() {
            self.state.metrics.record_wyoming(u.streamed, false);
        }
        self.fail(e).await
    }

    /// Start the complete pieces of a streamed session, up to [`MAX_RUNS`].
    fn start_runs(&mut self) -> Result<(), ApiError> {
        let state = self.state.clone();
        let Some(u) = self.current.as_mut() else {
            return Ok(());
        };
        if !u.streamed {
            return Ok(());
        }
        if u.open && u.last_text.elapsed() >= STREAM_IDLE {
            u.open = false;
        }
        while u.runs.len() < MAX_RUNS {
            if u.runs
                .front()
                .is_some_and(|r| r.expected - r.sent > NEXT_WITHIN_SECS)
            {
                return Ok(());
            }
            let eager = u.ahead() < EAGER_BELOW_SECS;
            let cut = match u.intake.take(eager) {
                Some(c) => Some(c),
                None if !u.open => u.intake.take_all(),
                None => None,
            };
            let Some(Cut { text, .. }) = cut else {
                return Ok(());
            };
            let req = request(&text, &u.voice)?;
            let speech = match state.engine.prepare(&req) {
                Ok(s) => s,
                Err(e) if e.code == "no_speakable_text" => continue,
                Err(e) => return Err(e),
            };
            let piece = Cost::of(&speech.pieces);
            u.cost.pause_secs += piece.pause_secs;
            u.cost.text_chars += piece.text_chars;
            state.engine.settings().budget.admit(&u.cost, req.speed)?;
            if u.permit.is_none() {
                u.permit = Some(Arc::new(admit(&state).map_err(|e| e.0)?));
            }
            let events = spawn_run(&state, speech, u.permit.clone());
            u.runs.push_back(Run {
                events,
                expected: f64::from(piece.audio_secs(req.speed))
                    .min(text.chars().count() as f64 * SECS_PER_CHAR),
                sent: 0.0,
            });
        }
        Ok(())
    }

    /// One event of the current utterance's front run.
    async fn audio(&mut self, ev: Option<Result<Event, EngineError>>) -> Result<(), Gone> {
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                if let EngineError::Synth(kokoro_synth::SynthError::Failed(d)) = &e {
                    tracing::error!(detail = %d, "engine failure");
                }
                return self.abandon(&e.to_api()).await;
            }
            None => return self.abandon(&ApiError::internal()).await,
        };
        let budget = self.state.engine.settings().budget;
        let Some(u) = self.current.as_mut() else {
            return Ok(());
        };
        let start = u.samples;
        let (bytes, end) = match ev {
            Event::Words(_) => return Ok(()),
            Event::Audio { samples, bytes } => {
                u.samples += samples;
                if let Some(r) = u.runs.front_mut() {
                    r.sent += samples as f64 / f64::from(SAMPLE_RATE);
                }
                (bytes, false)
            }
            Event::End { bytes, .. } => (bytes, true),
        };
        if end {
            u.runs.pop_front();
            if u.runs.is_empty() {
                // Idle until more text: the admission slot goes back.
                u.permit = None;
            }
        }
        if u.samples as f64 / f64::from(SAMPLE_RATE) > f64::from(budget.audio_secs) {
            let e = ApiError::over_budget(
                "audio",
                "more seconds",
                &format!("{:.0} s", budget.audio_secs),
            );
            return self.abandon(&e).await;
        }
        if !bytes.is_empty() && u.first_audio.is_none() {
            u.first_audio = Some(Instant::now());
            self.state
                .metrics
                .record_ttfa(u.asked.elapsed().as_secs_f64());
        }
        let mut out = Vec::with_capacity(bytes.len() + 128 * bytes.len().div_ceil(CHUNK_BYTES));
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            let at = (start + i * CHUNK_BYTES / 2) as u64 * 1000 / u64::from(SAMPLE_RATE);
            let mut data = audio_format();
            data["timestamp"] = Value::from(at);
            out.extend(encode("audio-chunk", &data, chunk));
        }
        if !out.is_empty() {
            self.send(&out).await?;
        }
        Ok(())
    }

    /// End the current utterance if it is done, and start what waits.
    async fn finish(&mut self) -> Result<(), Gone> {
        if !self.current.as_ref().is_some_and(Utterance::done) {
            return Ok(());
        }
        let Some(u) = self.current.take() else {
            return Ok(());
        };
        let ms = u.samples as u64 * 1000 / u64::from(SAMPLE_RATE);
        let mut out = encode("audio-stop", &json!({"timestamp": ms}), &[]);
        if u.streamed {
            out.extend(encode("synthesize-stopped", &json!({}), &[]));
        }
        self.state.metrics.record_wyoming(u.streamed, true);
        self.send(&out).await?;
        while self.current.is_none()
            && let Some(f) = self.queued.pop_front()
        {
            self.begin(f).await?;
        }
        Ok(())
    }

    async fn run(&mut self, mut events: mpsc::Receiver<Result<Frame, WireError>>) {
        let max = self.state.config.max_body_bytes;
        let rest = self.state.config.limits.header;
        let tick = Duration::from_millis(50);
        let mut reading = true;
        loop {
            if let Err(e) = self.start_runs()
                && self.abandon(&e).await.is_err()
            {
                return;
            }
            if self.finish().await.is_err() {
                return;
            }
            let current = self.current.as_ref();
            let busy = current.is_some_and(|u| !u.runs.is_empty());
            // A streamed session with no run: look again soon while text waits (the
            // cut may depend on time), else when its text time-out falls due.
            let wake = current.filter(|u| u.streamed).and_then(|u| {
                if u.intake.has_text() {
                    Some(Instant::now() + tick)
                } else {
                    u.open.then_some(u.last_text + STREAM_IDLE)
                }
            });
            if !reading && self.current.is_none() {
                return;
            }
            let idle_at = self.last_event + IDLE;
            let step = tokio::select! {
                f = events.recv(), if reading => match f {
                    Some(Ok(f)) => self.event(f).await,
                    // A broken stream cannot be resynchronized: say why and close.
                    Some(Err(e)) => {
                        if !matches!(e, WireError::Truncated | WireError::Io(_)) {
                            let _ = self.fail(&e.to_api(max, rest)).await;
                        }
                        Err(Gone)
                    }
                    // The client is done sending: what it asked for is still said.
                    None => {
                        reading = false;
                        Ok(())
                    }
                },
                ev = recv_front(&mut self.current), if busy => self.audio(ev).await,
                () = sleep_until(wake), if wake.is_some() && !busy => Ok(()),
                () = tokio::time::sleep_until(idle_at.into()), if !busy && wake.is_none() => Err(Gone),
            };
            if step.is_err() {
                return;
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// The next event of the current utterance's front run (pending when none).
async fn recv_front(u: &mut Option<Utterance>) -> Option<Result<Event, EngineError>> {
    match u.as_mut().and_then(|u| u.runs.front_mut()) {
        Some(r) => r.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Serve one connection until it closes.
async fn connection(state: AppState, stream: TcpStream) {
    let max = state.config.max_body_bytes;
    let rest = state.config.limits.header;
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let mut read = tokio::io::BufReader::new(read);
        loop {
            let f = read_frame(&mut read, max, rest).await;
            let stop = !matches!(f, Ok(Some(_)));
            let item = match f {
                Ok(Some(f)) => Ok(f),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let mut conn = Conn {
        state,
        out: tokio::io::BufWriter::new(write),
        current: None,
        queued: VecDeque::new(),
        last_event: Instant::now(),
    };
    conn.run(rx).await;
    if let Some(u) = conn.current.take() {
        // Dropping the runs' receivers cancels their jobs; the permit goes too.
        conn.state.metrics.record_wyoming(u.streamed, false);
    }
    reader.abort();
}

/// Accept Wyoming connections on `listener` for as long as the server runs.
pub async fn serve(listener: TcpListener, state: AppState) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "wyoming accept failed");
                state
                    .metrics
                    .connections
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = state.stream_sessions.clone().try_acquire_owned() else {
            let bytes = error_event(&ApiError::rate_limited());
            let write = state.config.limits.write;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(write, stream.write_all(&bytes)).await;
            });
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let gauge = state.metrics.clone();
            gauge.wyoming_connections.fetch_add(1, Ordering::Relaxed);
            connection(state, stream).await;
            gauge.wyoming_connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Frame>, WireError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_frame(&mut r, max, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn events_round_trip_with_data_and_payload() {
        let bytes = encode("audio-chunk", &json!({"rate": 24000}), b"\x01\x02\x03");
        let line = bytes.split(|&b| b == b'\n').next().unwrap();
        let header: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(header["type"], "audio-chunk");
        assert_eq!(header["version"], PROTOCOL_VERSION);
        let data = br#"{"rate":24000}"#;
        assert_eq!(header["data_length"], data.len());
        assert_eq!(header["payload_length"], 3);
        // Header line, then the data section, then the payload, nothing else.
        let rest = &bytes[line.len() + 1..];
        assert_eq!(&rest[..data.len()], data);
        assert_eq!(&rest[data.len()..], b"\x01\x02\x03");
        let f = read(&bytes, 1024).await.unwrap().unwrap();
        assert_eq!(f.kind, "audio-chunk");
        assert_eq!(f.data["rate"], 24000);
        assert_eq!(f.payload, b"\x01\x02\x03");
        // No data, no payload: the header line alone, no lengths.
        let bare = encode("describe", &json!({}), &[]);
        assert_eq!(
            String::from_utf8(bare.clone()).unwrap(),
            format!("{{\"type\":\"describe\",\"version\":\"{PROTOCOL_VERSION}\"}}\n")
        );
        assert_eq!(read(&bare, 1024).await.unwrap().unwrap().kind, "describe");
        assert!(read(b"", 1024).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn inline_data_merges_with_the_data_section() {
        let mut bytes =
            br#"{"type":"synthesize","data":{"text":"a","voice":{"name":"x"}},"data_length":12}"#
                .to_vec();
        bytes.extend_from_slice(b"\n{\"text\":\"b\"}");
        let f = read(&bytes, 1024).await.unwrap().unwrap();
        assert_eq!(f.data["text"], "b");
        assert_eq!(f.data["voice"]["name"], "x");
    }

    #[tokio::test]
    async fn bad_and_oversized_events_are_refused() {
        let too_long = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}\n", "a".repeat(100));
        assert!(matches!(
            read(too_long.as_bytes(), 64).await,
            Err(WireError::TooLarge("header line"))
        ));
        assert!(matches!(
            read(b"{\"type\":\"x\",\"data_length\":65}\n", 64).await,
            Err(WireError::TooLarge("data"))
        ));
        assert!(matches!(
            read(b"{\"type\":\"x\",\"payload_length\":1e9}\n", 64).await,
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            read(b"[1]\n", 64).await,
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            read(b"{\"data\":{}}\n", 64).await,
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            read(b"{\"type\":\"x\",\"payload_length\":4}\nab", 64).await,
            Err(WireError::Truncated)
        ));
        assert!(matches!(
            read(b"{\"type\":\"x\"", 64).await,
            Err(WireError::Truncated)
        ));
        let e = WireError::TooLarge("data").to_api(64, Duration::from_secs(1));
        assert_eq!((e.status(), e.code), (413, "payload_too_large"));
    }

    #[tokio::test]
    async fn a_slow_event_times_out_after_its_first_byte() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"{\"type\":").await.unwrap();
        let mut r = tokio::io::BufReader::new(server);
        let t = Instant::now();
        let got = read_frame(&mut r, 1024, Duration::from_millis(100)).await;
        assert!(matches!(got, Err(WireError::Timeout)));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn voices_by_name_language_or_default() {
        let installed = |v: &str| v == "af_heart" || v == "bf_emma" || v == "jf_alpha";
        let data = |v: Value| json!({ "voice": v }).as_object().unwrap().clone();
        assert_eq!(voice_of(&Map::new(), &installed).unwrap(), "af_heart");
        assert_eq!(
            voice_of(
                &data(json!({"name": "bf_emma", "speaker": null})),
                &installed
            )
            .unwrap(),
            "bf_emma"
        );
        assert_eq!(
            voice_of(&data(json!({"language": "en_GB"})), &installed).unwrap(),
            "bf_emma"
        );
        assert_eq!(
            voice_of(&data(json!({"language": "ja"})), &installed).unwrap(),
            "jf_alpha"
        );
        assert_eq!(
            voice_of(&data(json!({"language": "en"})), &installed).unwrap(),
            "af_heart"
        );
        let e = voice_of(&data(json!({"language": "fr-FR"})), &installed).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("voice.language"));
        assert_eq!(e.code, "voice_not_found");
        assert_eq!(voice_of(&data(json!({})), &installed).unwrap(), "af_heart");
        assert_eq!(
            voice_of(&data(json!("af_heart")), &installed)
                .unwrap_err()
                .code,
            "invalid_type"
        );
        assert_eq!(
            voice_of(&data(json!({"name": 3})), &installed)
                .unwrap_err()
                .code,
            "invalid_type"
        );
        let ssml = json!({"text_format": "ssml"}).as_object().unwrap().clone();
        assert_eq!(
            check_text_format(&ssml).unwrap_err().code,
            "unsupported_text_format"
        );
        let text = json!({"text_format": "text"}).as_object().unwrap().clone();
        assert!(check_text_format(&text).is_ok());
    }
}
