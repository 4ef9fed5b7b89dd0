//! `GET /v1/text-to-speech/{voice_id}/stream-input`: text in as an LLM writes it,
//! audio out as soon as a piece is complete, over one WebSocket, in the message
//! shapes of ElevenLabs' input-streaming socket.
//!
//! A session is one utterance. The client sends `{"text": "..."}` pieces (the
//! first message may carry `voice_settings` and a key), `{"flush": true}` to have
//! what is buffered spoken now, and `{"text": ""}` to end; the server answers
//! `{"audio", "isFinal": false, "alignment", "normalizedAlignment"}` messages, then
//! `{"isFinal": true}`, and closes. [`kokoro_core::intake`] decides where the text
//! is cut: at sentence ends, and at clause marks only while the listener is about
//! to run out of audio ([`EAGER_BELOW_SECS`]), so speech sounds like the sentence
//! sent whole wherever the text keeps ahead. Each piece is an ordinary streamed
//! speech run (windows, loudness, timestamps), two at most at a time: the one
//! being sent and the next.
//!
//! Bounds, as for speech: the API key (at the handshake, or in the first message
//! within the head time-out), one admission permit while the session has work
//! (given back when it idles), the request budget over the whole utterance, the
//! write deadline of every connection, at most `--max-stream-sessions` sessions,
//! messages no larger than a request body, reading paused while
//! [`MAX_PENDING_CHARS`] wait, and `inactivity_timeout` seconds without a message
//! while idle (then what waits is spoken and the session ends). A client that
//! leaves stops everything at once: dropping the runs' receivers cancels their jobs
//! and gives the permit back.

use super::error::AppError;
use super::{AppState, Events, admit, spawn_run};
use crate::engine::{EngineError, Event};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kokoro_core::intake::{Cut, Intake};
use kokoro_core::{ApiError, AudioFormat, ErrorKind, SAMPLE_RATE, SpeechRequest};
use kokoro_synth::budget::Cost;
use kokoro_synth::timing::Stamp;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Below this many seconds of audio ahead of the listener, a clause mark ends a
/// piece; above it the sentence goes on.
pub const EAGER_BELOW_SECS: f64 = 1.0;
/// Characters waiting to be cut at most; reading pauses beyond (TCP back-pressure).
pub const MAX_PENDING_CHARS: usize = kokoro_core::request::MAX_INPUT_CHARS;
/// Runs at once per session: the one being sent and the next.
const MAX_RUNS: usize = 2;
/// The next piece starts once the one being sent is expected to have less than
/// this many seconds left to make: sooner, the two would share the worker and the
/// one being heard would slow down (measured: 3.2 s of stalls against 0.2-1.1 s).
pub const NEXT_WITHIN_SECS: f64 = 1.0;
/// Seconds a character of text is expected to speak for at speed 1 (the budget's
/// estimate: [`kokoro_synth::budget::SECS_PER_ID`] per id, about one id a char).
pub const SECS_PER_CHAR: f64 = kokoro_synth::budget::SECS_PER_ID as f64;
/// Longest `inactivity_timeout` (ElevenLabs' limit), seconds.
const MAX_INACTIVITY_SECS: u64 = 180;

/// What the handshake settles.
struct Settings {
    /// A speech request every piece is made from (its `input` replaced), and it
    /// parsed (the handshake's checks).
    template: Map<String, Value>,
    request: SpeechRequest,
    speed: f32,
    inactivity: Duration,
    /// The key must come in the first message (none at the handshake).
    key_pending: bool,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(param, "invalid_value", message)
}

/// ElevenLabs' `output_format` to ours: the formats whose streams join by
/// concatenation (each piece is its own encoder run).
fn output_format(name: &str) -> Result<AudioFormat, ApiError> {
    match name {
        "pcm_24000" => Ok(AudioFormat::Pcm),
        _ if name.starts_with("mp3_") => Ok(AudioFormat::Mp3),
        _ => Err(ApiError::new(
            ErrorKind::Unprocessable,
            "unsupported_format",
            format!(
                "output_format '{}' is not served: use pcm_24000 (16-bit PCM at 24 kHz, the \
                 model's rate) or mp3_* (MP3 at 24 kHz).",
                kokoro_core::error::shown(name)
            ),
        )
        .with_param("output_format")),
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(name, format!("'{name}' must be true or false."))),
    }
}

/// The handshake's query and path, checked before the upgrade so a bad one is an
/// HTTP error in the contract's shape.
fn settings(voice: &str, q: &HashMap<String, String>) -> Result<Settings, ApiError> {
    let format = output_format(
        q.get("output_format")
            .map_or("mp3_44100_128", String::as_str),
    )?;
    if let Some(m) = q.get("model_id")
        && !m.starts_with("eleven_")
        && !kokoro_core::request::MODELS.contains(&m.as_str())
    {
        return Err(ApiError::invalid(
            "model_id",
            "model_not_found",
            format!(
                "Model '{}' does not exist. Use one of: kokoro, tts-1, tts-1-hd, gpt-4o-mini-tts (ElevenLabs' eleven_* names select Kokoro too).",
                kokoro_core::error::shown(m)
            ),
        ));
    }
    let inactivity = match q.get("inactivity_timeout") {
        None => 20,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_INACTIVITY_SECS).contains(s))
            .ok_or_else(|| {
                invalid(
                    "inactivity_timeout",
                    "'inactivity_timeout' must be a whole number of seconds from 1 to 180.",
                )
            })?,
    };
    for name in [
        "sync_alignment",
        "auto_mode",
        "enable_logging",
        "enable_ssml_parsing",
    ] {
        flag(q, name)?;
    }
    let mut template = Map::new();
    template.insert("input".into(), Value::from("x"));
    template.insert("voice".into(), Value::from(voice));
    template.insert("response_format".into(), Value::from(format.as_str()));
    template.insert("stream".into(), Value::from(true));
    template.insert("stream_format".into(), Value::from("sse"));
    template.insert("timestamps".into(), Value::from("word"));
    match q.get("apply_text_normalization").map(String::as_str) {
        None | Some("auto" | "on") => {}
        Some("off") => {
            template.insert("normalization".into(), json!({"enabled": false}));
        }
        Some(_) => {
            return Err(invalid(
                "apply_text_normalization",
                "'apply_text_normalization' must be auto, on or off.",
            ));
        }
    }
    if let Some(lang) = q.get("language_code") {
        template.insert("lang_code".into(), Value::from(lang.as_str()));
    }
    let req = SpeechRequest::from_value(&Value::Object(template.clone()))?;
    Ok(Settings {
        speed: req.speed,
        request: req,
        template,
        inactivity: Duration::from_secs(inactivity),
        key_pending: false,
    })
}

/// Set by the auth middleware on this route when the handshake carried no valid
/// key: the first message must.
#[derive(Clone, Copy, Debug)]
pub struct KeyPending;

pub async fn stream_input(
    State(state): State<AppState>,
    voice: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    pending: Option<axum::Extension<KeyPending>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let Ok(Path(voice)) = voice else {
        return Err(invalid("voice_id", "The path's voice cannot be read.").into());
    };
    let Ok(Query(q)) = query else {
        return Err(invalid("query", "The query string cannot be read.").into());
    };
    let mut settings = settings(&voice, &q)?;
    settings.key_pending = pending.is_some();
    // Language and installed voices, as speech checks them.
    state.engine.prepare(&settings.request)?;
    // Checked first, so that a bad parameter is its own error either way.
    let Ok(ws) = ws else {
        let mut resp = AppError(ApiError::websocket_required()).into_response();
        resp.headers_mut().insert(
            axum::http::header::UPGRADE,
            axum::http::HeaderValue::from_static("websocket"),
        );
        return Ok(resp);
    };
    let slot = state
        .stream_sessions
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError(ApiError::rate_limited()))?;
    let limit = state.config.max_body_bytes;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let mut session = Session::new(state, settings, socket);
            session.run().await;
            drop(slot);
        }))
}

/// One piece in synthesis.
struct Run {
    events: Events,
    /// Characters of the utterance before the piece, and its end.
    char_start: usize,
    char_end: usize,
    /// Seconds the piece is expected to speak for, and seconds of it sent.
    expected: f64,
    sent: f64,
}

struct Session {
    state: AppState,
    settings: Settings,
    socket: WebSocket,
    intake: Intake,
    /// Every character received (alignment reports them).
    text: Vec<char>,
    runs: VecDeque<Run>,
    /// Samples sent in all, and where the front run's audio began.
    samples: usize,
    front_base: usize,
    first_audio: Option<Instant>,
    /// Word stamps on the utterance's timeline, waiting for the audio they time.
    words: VecDeque<Stamp>,
    /// Characters already reported in an alignment.
    covered: usize,
    cost: Cost,
    permit: Option<Arc<OwnedSemaphorePermit>>,
    flush: bool,
    closing: bool,
    last_message: Instant,
}

fn close_code_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::RateLimited | ErrorKind::Unavailable => close_code::AGAIN,
        ErrorKind::Internal | ErrorKind::BadGateway | ErrorKind::GatewayTimeout => {
            close_code::ERROR
        }
        _ => close_code::POLICY,
    }
}

impl Session {
    fn new(state: AppState, settings: Settings, socket: WebSocket) -> Self {
        Self {
            state,
            settings,
            socket,
            intake: Intake::new(),
            text: Vec::new(),
            runs: VecDeque::new(),
            samples: 0,
            front_base: 0,
            first_audio: None,
            words: VecDeque::new(),
            covered: 0,
            cost: Cost::default(),
            permit: None,
            flush: false,
            closing: false,
            last_message: Instant::now(),
        }
    }

    async fn run(&mut self) {
        match self.serve().await {
            Ok(true) => {
                let _ = self
                    .socket
                    .send(Message::Text(
                        json!({"audio": null, "isFinal": true, "alignment": null, "normalizedAlignment": null})
                            .to_string()
                            .into(),
                    ))
                    .await;
                self.close(close_code::NORMAL, "").await;
            }
            Ok(false) => {}
            Err(e) => {
                if e.kind == ErrorKind::Internal {
                    tracing::error!(error = %e, "stream-input session failed");
                }
                let _ = self.socket.send(Message::Text(e.to_json().into())).await;
                self.close(close_code_of(e.kind), e.code).await;
            }
        }
        // Dropping the runs' receivers stops their jobs; the permit goes with them.
        self.runs.clear();
        self.permit = None;
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }

    /// Seconds of audio the listener has ahead: sent and not yet played (played
    /// in real time from the first audio), plus what the runs are expected to add.
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

    /// The session's loop: `Ok(true)` when the utterance ended (final message
    /// due), `Ok(false)` when the client left.
    async fn serve(&mut self) -> Result<bool, ApiError> {
        let mut first = true;
        if self.settings.key_pending {
            let deadline = self.state.config.limits.header;
            match tokio::time::timeout(deadline, self.socket.recv()).await {
                Ok(Some(Ok(msg))) => {
                    let m = self.parse(msg)?;
                    let Some(m) = m else { return Ok(false) };
                    let key = m
                        .get("xi_api_key")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let auth = m.get("authorization").and_then(Value::as_str);
                    if !kokoro_core::boundary::authorized(
                        &self.state.config.api_keys,
                        auth,
                        key.as_deref(),
                    ) {
                        return Err(ApiError::unauthorized());
                    }
                    self.settings.key_pending = false;
                    self.apply(m, true)?;
                    first = false;
                }
                Ok(_) => return Ok(false),
                Err(_) => return Err(ApiError::unauthorized()),
            }
        }
        let tick = Duration::from_millis(50);
        loop {
            self.start_runs()?;
            if self.closing && self.runs.is_empty() && !self.intake.has_text() {
                return Ok(true);
            }
            if self.runs.is_empty() {
                // Idle: the admission slot goes back until there is work again.
                self.permit = None;
            }
            let reading = !self.closing && self.intake.pending_chars() < MAX_PENDING_CHARS;
            let idle = self.runs.is_empty();
            let waiting = self.intake.has_text() && self.runs.len() < MAX_RUNS;
            let inactive_at = self.last_message + self.settings.inactivity;
            tokio::select! {
                msg = self.socket.recv(), if reading => {
                    let Some(Ok(msg)) = msg else { return Ok(false) };
                    let Some(m) = self.parse(msg)? else { return Ok(false) };
                    // Pings neither count as the first message nor keep an idle
                    // session open.
                    if !m.is_empty() {
                        self.last_message = Instant::now();
                        self.apply(m, first)?;
                        first = false;
                    }
                }
                ev = recv_front(&mut self.runs), if !idle => {
                    if !self.event(ev).await? {
                        return Ok(false);
                    }
                }
                () = tokio::time::sleep(tick), if waiting => {}
                () = tokio::time::sleep_until(inactive_at.into()), if idle && !self.closing => {
                    // No text for the time-out: speak what waits, then end.
                    self.closing = true;
                }
            }
        }
    }

    /// A client message as a JSON object; `None` for a close frame.
    fn parse(&self, msg: Message) -> Result<Option<Map<String, Value>>, ApiError> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Ok(None),
            Message::Ping(_) | Message::Pong(_) => return Ok(Some(Map::new())),
            Message::Binary(_) => {
                return Err(ApiError::invalid(
                    "text",
                    "invalid_type",
                    "Messages are JSON text, such as {\"text\": \"Hello \"}.",
                ));
            }
        };
        match serde_json::from_str::<Value>(text.as_str()) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "invalid_json",
                "Each message must be a JSON object, such as {\"text\": \"Hello \"}.",
            )),
        }
    }

    /// Take one client message: settings (first message only), text, flush, end.
    fn apply(&mut self, m: Map<String, Value>, first: bool) -> Result<(), ApiError> {
        if m.is_empty() {
            return Ok(());
        }
        if first && let Some(vs) = m.get("voice_settings") {
            let Some(vs) = vs.as_object() else {
                return Err(ApiError::invalid(
                    "voice_settings",
                    "invalid_type",
                    "'voice_settings' must be an object.",
                ));
            };
            if let Some(speed) = vs.get("speed") {
                let mut t = self.settings.template.clone();
                t.insert("speed".into(), speed.clone());
                let req = SpeechRequest::from_value(&Value::Object(t.clone()))
                    .map_err(|e| e.with_param("voice_settings.speed"))?;
                self.settings.speed = req.speed;
                self.settings.template = t;
            }
        }
        let flush = match m.get("flush") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    "flush",
                    "invalid_type",
                    "'flush' must be a boolean.",
                ));
            }
        };
        match m.get("text") {
            Some(Value::String(s)) if s.is_empty() => self.closing = true,
            Some(Value::String(s)) => {
                // What is kept for alignment is bounded too, even for text that
                // is never spoken (punctuation alone).
                let limit = self.state.engine.settings().budget.text_chars;
                let total = self.text.len() + s.chars().count();
                if total > limit {
                    return Err(ApiError::over_budget(
                        "text",
                        &format!("{total} characters"),
                        &format!("{limit} characters"),
                    ));
                }
                self.intake.push(s);
                self.text.extend(s.chars());
            }
            None | Some(Value::Null) if flush || first => {}
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(
                    "text",
                    "missing_parameter",
                    "'text' is required: a piece of text, or \"\" to end.",
                ));
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "text",
                    "invalid_type",
                    "'text' must be a string.",
                ));
            }
        }
        self.flush |= flush;
        Ok(())
    }

    /// Start the pieces that are complete, up to [`MAX_RUNS`].
    fn start_runs(&mut self) -> Result<(), ApiError> {
        while self.runs.len() < MAX_RUNS {
            if self
                .runs
                .front()
                .is_some_and(|r| r.expected - r.sent > NEXT_WITHIN_SECS)
            {
                return Ok(());
            }
            let eager = self.ahead() < EAGER_BELOW_SECS;
            let all =
                self.flush || self.closing || self.intake.pending_chars() >= MAX_PENDING_CHARS;
            let cut = match self.intake.take(eager) {
                Some(c) => Some(c),
                None if all => self.intake.take_all(),
                None => None,
            };
            let Some(cut) = cut else {
                self.flush = false;
                return Ok(());
            };
            self.start(cut)?;
        }
        Ok(())
    }

    fn start(&mut self, cut: Cut) -> Result<(), ApiError> {
        let mut t = self.settings.template.clone();
        t.insert("input".into(), Value::from(cut.text.as_str()));
        let req = SpeechRequest::from_value(&Value::Object(t))?;
        let speech = match self.state.engine.prepare(&req) {
            Ok(s) => s,
            // Punctuation alone ("..."): nothing to say, nothing lost.
            Err(e) if e.code == "no_speakable_text" => return Ok(()),
            Err(e) => return Err(e),
        };
        let piece = Cost::of(&speech.pieces);
        self.cost.pause_secs += piece.pause_secs;
        self.cost.text_chars += piece.text_chars;
        let budget = &self.state.engine.settings().budget;
        budget.admit(&self.cost, self.settings.speed)?;
        if self.permit.is_none() {
            self.permit = Some(Arc::new(admit(&self.state).map_err(|e| e.0)?));
        }
        let guard = self.permit.clone();
        let events = spawn_run(&self.state, speech, guard);
        let chars = cut.text.chars().count();
        self.runs.push_back(Run {
            events,
            char_start: cut.char_start,
            char_end: cut.char_start + chars,
            expected: f64::from(piece.audio_secs(self.settings.speed))
                .min(chars as f64 * SECS_PER_CHAR),
            sent: 0.0,
        });
        Ok(())
    }

    /// One event of the front run: `Ok(false)` when the client is gone.
    async fn event(&mut self, ev: Option<Result<Event, EngineError>>) -> Result<bool, ApiError> {
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => return Err(e.to_api()),
            None => return Err(ApiError::internal()),
        };
        let base = self.front_base as f64 / f64::from(SAMPLE_RATE);
        let (bytes, samples, end) = match ev {
            Event::Words(stamps) => {
                let front = &self.runs[0];
                for s in stamps {
                    self.words.push_back(Stamp {
                        start: s.start + base,
                        end: s.end + base,
                        char_start: s.char_start + front.char_start,
                        char_end: (s.char_end + front.char_start).min(front.char_end),
                        word: s.word,
                    });
                }
                return Ok(true);
            }
            Event::Audio { samples, bytes } => (bytes, samples, false),
            Event::End { bytes, .. } => (bytes, 0, true),
        };
        let chunk_start = self.samples as f64 / f64::from(SAMPLE_RATE);
        self.samples += samples;
        let secs = samples as f64 / f64::from(SAMPLE_RATE);
        self.runs[0].sent += secs;
        let budget = self.state.engine.settings().budget;
        if self.samples as f64 / f64::from(SAMPLE_RATE) > f64::from(budget.audio_secs) {
            return Err(ApiError::over_budget(
                "audio",
                "more seconds",
                &format!("{:.0} s", budget.audio_secs),
            ));
        }
        let upto = if end {
            f64::INFINITY
        } else {
            self.samples as f64 / f64::from(SAMPLE_RATE)
        };
        let char_end = self.runs[0].char_end;
        let alignment = self.alignment(chunk_start, upto, end.then_some(char_end));
        if end {
            self.runs.pop_front();
            self.front_base = self.samples;
        }
        if bytes.is_empty() && alignment.is_none() {
            return Ok(true);
        }
        if self.first_audio.is_none() && !bytes.is_empty() {
            self.first_audio = Some(Instant::now());
        }
        let audio =
            (!bytes.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&bytes));
        let msg = json!({
            "audio": audio,
            "isFinal": false,
            "alignment": alignment,
            "normalizedAlignment": alignment,
        });
        Ok(self
            .socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .is_ok())
    }

    /// The characters of the words that begin before `upto` (seconds of the
    /// utterance), in ElevenLabs' shape, times in ms from `chunk_start`; each word's
    /// letters share its time evenly, the characters between words (spaces,
    /// punctuation, markup) start where the next word does and last 0 ms. At the
    /// end of a piece, `through` reports its characters up to its end.
    fn alignment(&mut self, chunk_start: f64, upto: f64, through: Option<usize>) -> Option<Value> {
        let (mut chars, mut starts, mut durs) = (Vec::new(), Vec::new(), Vec::new());
        let ms = |t: f64| ((t - chunk_start) * 1000.0).round().max(0.0) as i64;
        let mut last_end = chunk_start;
        while self.words.front().is_some_and(|w| w.start < upto) {
            let Some(w) = self.words.pop_front() else {
                break;
            };
            let (cs, ce) = (
                w.char_start.max(self.covered),
                w.char_end.min(self.text.len()),
            );
            for c in self.covered..cs.min(self.text.len()) {
                chars.push(self.text[c].to_string());
                starts.push(ms(w.start));
                durs.push(0);
            }
            let n = ce.saturating_sub(cs).max(1);
            let step = (w.end - w.start).max(0.0) / n as f64;
            for (k, c) in (cs..ce).enumerate() {
                let t0 = w.start + step * k as f64;
                chars.push(self.text[c].to_string());
                starts.push(ms(t0));
                durs.push(ms(t0 + step) - ms(t0));
            }
            self.covered = self.covered.max(ce);
            last_end = w.end;
        }
        if let Some(end) = through {
            for c in self.covered..end.min(self.text.len()) {
                chars.push(self.text[c].to_string());
                starts.push(ms(last_end));
                durs.push(0);
            }
            self.covered = self.covered.max(end);
        }
        (!chars.is_empty())
            .then(|| json!({"chars": chars, "charStartTimesMs": starts, "charDurationsMs": durs}))
    }
}

/// The next event of the front run (pending forever when there is none).
async fn recv_front(runs: &mut VecDeque<Run>) -> Option<Result<Event, EngineError>> {
    match runs.front_mut() {
        Some(r) => r.events.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn handshake_settings() {
        let s = settings("af_heart", &q(&[])).expect("the case's outcome");
        assert_eq!(s.template["response_format"], "mp3");
        assert_eq!(s.inactivity, Duration::from_secs(20));
        let s = settings(
            "af_heart",
            &q(&[
                ("output_format", "pcm_24000"),
                ("model_id", "eleven_flash_v2_5"),
                ("inactivity_timeout", "180"),
                ("apply_text_normalization", "off"),
            ]),
        )
        .expect("the case's outcome");
        assert_eq!(s.template["response_format"], "pcm");
        assert_eq!(s.template["normalization"], json!({"enabled": false}));
        let err = |pairs: &[(&str, &str)]| {
            settings("af_heart", &q(pairs))
                .err()
                .expect("the case's outcome")
        };
        assert_eq!(
            err(&[("output_format", "pcm_16000")]).code,
            "unsupported_format"
        );
        assert_eq!(err(&[("output_format", "ulaw_8000")]).status(), 422);
        assert_eq!(err(&[("model_id", "whisper")]).code, "model_not_found");
        assert_eq!(
            err(&[("inactivity_timeout", "0")]).param.as_deref(),
            Some("inactivity_timeout")
        );
        assert_eq!(err(&[("inactivity_timeout", "181")]).code, "invalid_value");
        assert_eq!(
            err(&[("auto_mode", "yes")]).param.as_deref(),
            Some("auto_mode")
        );
        assert_eq!(
            settings("nobody", &q(&[]))
                .err()
                .expect("the case's outcome")
                .param
                .as_deref(),
            Some("voice")
        );
    }
}
