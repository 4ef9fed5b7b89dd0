//! The one error type of the API and its status table.
//!
//! Every error that leaves the service, from the edge or from the backend, is an
//! [`ApiError`] rendered by [`ApiError::to_json`] into the OpenAI-style envelope
//! `{"error":{"message","type","param","code"}}`. The status and the `type` string
//! are functions of the [`ErrorKind`] alone, so both tiers answer the same mistake
//! with byte-identical bodies.

use serde::Serialize;
use std::fmt;

/// What went wrong, at the granularity of an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: malformed or invalid request.
    InvalidRequest,
    /// 401: missing or wrong API key.
    Unauthorized,
    /// 404: unknown route, model or voice resource.
    NotFound,
    /// 405: route exists, method does not.
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 413: body larger than the configured limit, or a request over the cost budget.
    PayloadTooLarge,
    /// 415: body is not `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed request that cannot be processed (e.g. nothing speakable).
    Unprocessable,
    /// 429: queue full; carries a Retry-After.
    RateLimited,
    /// 500: a bug or an unexpected failure; details go to logs only.
    Internal,
    /// 502: the upstream (backend) answered badly.
    BadGateway,
    /// 503: not ready, overloaded beyond the queue, or upstream unreachable.
    Unavailable,
    /// 504: upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorKind {
    /// Every kind, for table-driven tests and the contract check.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::RequestTimeout,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Unprocessable,
        ErrorKind::RateLimited,
        ErrorKind::Internal,
        ErrorKind::BadGateway,
        ErrorKind::Unavailable,
        ErrorKind::GatewayTimeout,
    ];

    /// The HTTP status of this kind: the single status table of the project.
    pub const fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::GatewayTimeout => 504,
        }
    }

    /// The envelope's `type` string (OpenAI's vocabulary).
    pub const fn type_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Internal
            | ErrorKind::BadGateway
            | ErrorKind::Unavailable
            | ErrorKind::GatewayTimeout => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// Whether a client should retry later (the response carries `Retry-After`).
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Unavailable
                | ErrorKind::BadGateway
                | ErrorKind::GatewayTimeout
        )
    }
}

/// User text as error messages and `param` echo it: control characters dropped,
/// at most 64 characters (a 64 KiB field name is not sent back).
pub fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Every machine `code` either tier may emit, with its kind. The contract's
/// `x-error-codes` table must equal this one (checked by `tests/contract.rs`).
pub const ERROR_CODES: [(&str, ErrorKind); 32] = [
    ("invalid_json", ErrorKind::InvalidRequest),
    ("invalid_type", ErrorKind::InvalidRequest),
    ("invalid_value", ErrorKind::InvalidRequest),
    ("missing_parameter", ErrorKind::InvalidRequest),
    ("unknown_parameter", ErrorKind::InvalidRequest),
    ("conflicting_parameters", ErrorKind::InvalidRequest),
    ("empty_input", ErrorKind::InvalidRequest),
    ("input_too_long", ErrorKind::InvalidRequest),
    ("instructions_too_long", ErrorKind::InvalidRequest),
    ("model_not_found", ErrorKind::InvalidRequest),
    ("invalid_voice", ErrorKind::InvalidRequest),
    ("voice_not_found", ErrorKind::InvalidRequest),
    ("invalid_api_key", ErrorKind::Unauthorized),
    ("not_found", ErrorKind::NotFound),
    ("method_not_allowed", ErrorKind::MethodNotAllowed),
    ("request_timeout", ErrorKind::RequestTimeout),
    ("payload_too_large", ErrorKind::PayloadTooLarge),
    ("request_too_costly", ErrorKind::PayloadTooLarge),
    ("unsupported_media_type", ErrorKind::UnsupportedMediaType),
    ("unsupported_combination", ErrorKind::Unprocessable),
    ("no_speakable_text", ErrorKind::Unprocessable),
    ("unsupported_language", ErrorKind::Unprocessable),
    ("unsupported_format", ErrorKind::Unprocessable),
    ("unsupported_text_format", ErrorKind::Unprocessable),
    ("upgrade_required", ErrorKind::InvalidRequest),
    ("queue_full", ErrorKind::RateLimited),
    ("internal_error", ErrorKind::Internal),
    ("upstream_error", ErrorKind::BadGateway),
    ("not_ready", ErrorKind::Unavailable),
    ("upstream_unavailable", ErrorKind::Unavailable),
    ("not_implemented", ErrorKind::Unavailable),
    ("upstream_timeout", ErrorKind::GatewayTimeout),
];

/// Seconds a retryable error tells the client to wait unless the server is
/// configured otherwise (`--retry-after-secs`).
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// An API error: kind (status), stable machine `code`, optional `param`, human
/// message, and for retryable kinds the `Retry-After` seconds.
///
/// Every message either tier emits is written once, in a named constructor here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub param: Option<String>,
    pub message: String,
    /// `Some` exactly when the kind is retryable.
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: &'static str,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            ERROR_CODES.contains(&(code, kind)),
            "error code {code} with {kind:?} is not in ERROR_CODES"
        );
        Self {
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after_secs: kind.is_retryable().then_some(DEFAULT_RETRY_AFTER_SECS),
        }
    }

    /// Set the `Retry-After` seconds (no effect on errors that are not retryable).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if self.retry_after_secs.is_some() {
            self.retry_after_secs = Some(secs);
        }
        self
    }

    /// The response headers an error carries besides the request id: the JSON
    /// content type and, when retryable, `retry-after`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_string())];
        if let Some(s) = self.retry_after_secs {
            h.push(("retry-after", s.to_string()));
        }
        h
    }

    /// Attach the offending request field.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A 400 about one field.
    pub fn invalid(param: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, code, message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            "Method not allowed for this route.",
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "invalid_api_key",
            "Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'X-API-Key'.",
        )
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            "payload_too_large",
            format!("Request body exceeds the limit of {limit_bytes} bytes."),
        )
    }

    /// A Wyoming event whose header line, data or payload (`what`) is over the
    /// limit; the connection closes after it.
    pub fn event_too_large(what: &str, limit_bytes: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            "payload_too_large",
            format!("An event's {what} exceeds the limit of {limit_bytes} bytes."),
        )
    }

    /// Bytes that are not a Wyoming event (`why`); the connection closes after it.
    pub fn malformed_event(why: &str) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            format!(
                "Not a Wyoming event: {why}. Each event is a JSON header line, then \
                 data_length bytes of JSON data and payload_length bytes of payload."
            ),
        )
    }

    /// The rest of a Wyoming event did not come within `secs` of its first byte.
    pub fn event_timeout(secs: f64) -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            "request_timeout",
            format!("The rest of an event did not arrive within {secs} s."),
        )
    }

    /// A Wyoming `text_format` other than plain text (SSML is not read).
    pub fn unsupported_text_format() -> Self {
        Self::new(
            ErrorKind::Unprocessable,
            "unsupported_text_format",
            "Only text_format 'text' is served (no SSML): send plain text, with \
             [pause:1.5s] markup for pauses.",
        )
        .with_param("text_format")
    }

    /// A Wyoming `select-program` of a program this server does not have.
    pub fn no_such_program(name: &str) -> Self {
        Self::invalid(
            "name",
            "model_not_found",
            format!(
                "Program '{}' does not exist: this server has one, 'kokoro'.",
                shown(name)
            ),
        )
    }

    /// A Wyoming voice asked for by language, where no installed voice speaks it.
    pub fn no_voice_for_language(lang: &str) -> Self {
        Self::invalid(
            "voice.language",
            "voice_not_found",
            format!("No installed voice speaks '{}'.", shown(lang)),
        )
    }

    /// A request over this server's cost budget: `what` it needs too much of
    /// (pauses, text after normalization, phoneme ids, audio), how much, and the limit.
    pub fn over_budget(what: &str, amount: &str, limit: &str) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            "request_too_costly",
            format!(
                "This request needs {amount} of {what}; the limit per request is {limit}. \
                 Split the text into several requests."
            ),
        )
        .with_param("input")
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_media_type",
            "Request body must be JSON with 'Content-Type: application/json'.",
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            ErrorKind::RateLimited,
            "queue_full",
            "The synthesis queue is full. Retry after the time given in Retry-After.",
        )
    }

    /// A 500 whose message never carries internal detail (that goes to the logs).
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal_error",
            "The server failed to process the request. See the server logs with the request id.",
        )
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// A WebSocket endpoint asked for by a plain HTTP request.
    pub fn websocket_required() -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            "upgrade_required",
            "This endpoint is a WebSocket: connect with a WebSocket client (GET with 'Upgrade: websocket').",
        )
    }

    /// A path no route serves.
    pub fn no_such_route() -> Self {
        Self::not_found("No such route. See the API contract for the routes.")
    }

    /// A body that did not arrive within the server's body time-out.
    pub fn body_timeout(secs: f64) -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            "request_timeout",
            format!("The request body did not arrive within {secs} s."),
        )
    }

    /// No inference worker is running (each one failed and could not be replaced).
    pub fn no_workers() -> Self {
        Self::unavailable(
            "not_ready",
            "No inference worker is running. Retry after the time given in Retry-After.",
        )
    }

    /// A body that could not be read off the connection.
    pub fn unreadable_body() -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            "Could not read the request body.",
        )
    }

    /// A body that is JSON but not an object.
    pub fn not_an_object() -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            "Request body must be a JSON object.",
        )
    }

    /// A language this build cannot phonemize.
    pub fn unsupported_language(tag: &str) -> Self {
        Self::new(
            ErrorKind::Unprocessable,
            "unsupported_language",
            format!(
                "Language '{tag}' needs the espeak-ng G2P, which this server was built without."
            ),
        )
        .with_param("lang_code")
    }

    /// A catalog voice whose pack this server does not have.
    pub fn voice_not_installed(voice: &str) -> Self {
        Self::invalid(
            "voice",
            "voice_not_found",
            format!("Voice '{voice}' is not installed on this server."),
        )
    }

    /// Text that normalizes to nothing speakable.
    pub fn no_speakable_text() -> Self {
        Self::new(
            ErrorKind::Unprocessable,
            "no_speakable_text",
            "'input' contains nothing that can be spoken.",
        )
        .with_param("input")
    }

    /// The edge cannot reach the backend.
    pub fn upstream_unavailable() -> Self {
        Self::unavailable(
            "upstream_unavailable",
            "The speech backend is unreachable. Retry after the time given in Retry-After.",
        )
    }

    /// The edge component itself failed (the edge host's answer).
    pub fn component_failed() -> Self {
        Self::new(
            ErrorKind::BadGateway,
            "upstream_error",
            "The edge component failed.",
        )
    }

    /// The edge component did not start its answer in time (the edge host's answer).
    pub fn edge_timeout() -> Self {
        Self::new(
            ErrorKind::GatewayTimeout,
            "upstream_timeout",
            "The edge did not answer in time.",
        )
    }

    /// The backend answered with a server error.
    pub fn upstream_error() -> Self {
        Self::new(
            ErrorKind::BadGateway,
            "upstream_error",
            "The speech backend failed.",
        )
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The contract's error envelope as JSON text.
    pub fn to_json(&self) -> String {
        let env = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind.type_str(),
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        // Serializing plain strings into a String cannot fail.
        serde_json::to_string(&env).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_follow_openai() {
        assert_eq!(ErrorKind::RateLimited.type_str(), "rate_limit_error");
        assert_eq!(ErrorKind::Unauthorized.type_str(), "authentication_error");
        assert_eq!(ErrorKind::Unavailable.type_str(), "server_error");
        assert_eq!(
            ErrorKind::InvalidRequest.type_str(),
            "invalid_request_error"
        );
    }

    #[test]
    fn envelope_shape_is_stable() {
        let e = ApiError::invalid("speed", "invalid_value", "bad \"speed\"");
        assert_eq!(
            e.to_json(),
            r#"{"error":{"message":"bad \"speed\"","type":"invalid_request_error","param":"speed","code":"invalid_value"}}"#
        );
        let e = ApiError::internal();
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert!(v["error"]["param"].is_null());
        assert_eq!(v["error"]["type"], "server_error");
    }

    #[test]
    fn retry_after_rides_on_retryable_errors_only() {
        let e = ApiError::rate_limited();
        assert_eq!(e.retry_after_secs, Some(DEFAULT_RETRY_AFTER_SECS));
        assert_eq!(
            e.clone().with_retry_after(7).headers(),
            vec![
                ("content-type", "application/json".to_string()),
                ("retry-after", "7".to_string())
            ]
        );
        let e = ApiError::no_such_route().with_retry_after(7);
        assert_eq!(e.retry_after_secs, None);
        assert_eq!(e.headers().len(), 1);
        assert_eq!(ApiError::upstream_unavailable().status(), 503);
        assert_eq!(ApiError::upstream_error().retry_after_secs, Some(1));
    }

    #[test]
    fn statuses_are_distinct_and_retryability_matches() {
        let mut seen = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            assert!(seen.insert(k.status()), "duplicate status {}", k.status());
            assert_eq!(
                k.is_retryable(),
                matches!(k.status(), 429 | 502 | 503 | 504)
            );
            assert_eq!(k.type_str() == "server_error", k.status() >= 500);
        }
    }
}
