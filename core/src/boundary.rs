//! The HTTP boundary's rules, written once for both tiers: the route table, the
//! API-key rule, request-id acceptance and the JSON content-type check.
//!
//! The backend builds its router from [`ROUTES`], the edge component routes with
//! [`match_route`], and the contract test checks [`ROUTES`] against the contract's
//! paths, so a route cannot exist in one place only.

/// What a route does; the tiers map each to a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Speech,
    Models,
    Model,
    Voices,
    Health,
    Status,
    Metrics,
    Phonemize,
    GenerateFromPhonemes,
    /// Speech with word timestamps in Kokoro-FastAPI's shape.
    CaptionedSpeech,
    /// Text in as it is written, audio out: a WebSocket (ElevenLabs' `stream-input`).
    StreamInput,
    /// `/`: a redirect to the playground.
    Root,
    /// The playground's page (`/web`).
    Web,
    /// One of the playground's files (`/web/{file}`: script, style sheet, wasm).
    WebAsset,
}

/// The one method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The contract's path template (`{id}` is one path segment).
    pub path: &'static str,
    pub method: Method,
    pub route: Route,
    /// Served without an API key (probes and scrapers).
    pub open: bool,
}

const fn spec(path: &'static str, method: Method, route: Route, open: bool) -> RouteSpec {
    RouteSpec {
        path,
        method,
        route,
        open,
    }
}

/// Every route of the API, in the contract's order.
pub const ROUTES: [RouteSpec; 14] = [
    spec("/v1/audio/speech", Method::Post, Route::Speech, false),
    spec("/v1/models", Method::Get, Route::Models, false),
    spec("/v1/models/{id}", Method::Get, Route::Model, false),
    spec("/v1/audio/voices", Method::Get, Route::Voices, false),
    spec("/health", Method::Get, Route::Health, true),
    spec("/status", Method::Get, Route::Status, false),
    spec("/metrics", Method::Get, Route::Metrics, true),
    spec("/dev/phonemize", Method::Post, Route::Phonemize, false),
    spec(
        "/dev/generate_from_phonemes",
        Method::Post,
        Route::GenerateFromPhonemes,
        false,
    ),
    spec(
        "/dev/captioned_speech",
        Method::Post,
        Route::CaptionedSpeech,
        false,
    ),
    spec(STREAM_INPUT, Method::Get, Route::StreamInput, false),
    // The playground is static and open; the API calls it makes need the key.
    spec("/", Method::Get, Route::Root, true),
    spec("/web", Method::Get, Route::Web, true),
    spec("/web/{file}", Method::Get, Route::WebAsset, true),
];

/// The WebSocket route's template. The edge host serves it natively (wasi:http has
/// no upgrade), so it needs the path outside the table too.
pub const STREAM_INPUT: &str = "/v1/text-to-speech/{voice_id}/stream-input";

/// Whether a path is the WebSocket route.
pub fn is_stream_input(path: &str) -> bool {
    path_matches(STREAM_INPUT, path)
}

/// What a method and path resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Found(&'static RouteSpec),
    /// The path exists with another method: the `Allow` header's value (RFC 9110).
    MethodNotAllowed(&'static str),
    NotFound,
}

fn path_matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') => {
                if ps.is_empty() {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// Resolve a request's method (as sent) and path (without the query).
pub fn match_route(method: &str, path: &str) -> Match {
    let mut allow = None;
    for r in &ROUTES {
        if path_matches(r.path, path) {
            if method == r.method.as_str() {
                return Match::Found(r);
            }
            allow = Some(r.method.as_str());
        }
    }
    allow.map_or(Match::NotFound, Match::MethodNotAllowed)
}

/// Whether a path is served without an API key (`/health`, `/metrics`, the
/// playground's static files). Every other
/// path, unknown ones included, needs the key when keys are configured, so an
/// unauthenticated client learns nothing about the routes.
pub fn is_open(path: &str) -> bool {
    ROUTES.iter().any(|r| r.open && path_matches(r.path, path))
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 section 11.1); surrounding spaces are ignored.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let v = authorization.trim_start();
    let (scheme, rest) = v.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Compare in time that depends only on the lengths, not on where bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a presented key equals one of `keys`; every key is compared, without
/// stopping at the first match.
pub fn key_matches(keys: &[String], presented: &str) -> bool {
    keys.iter().fold(false, |acc, k| {
        acc | ct_eq(k.as_bytes(), presented.as_bytes())
    })
}

/// The API-key rule of both tiers: no keys configured lets everything through;
/// otherwise `Authorization: Bearer <key>` or `X-API-Key: <key>` must carry one
/// (ElevenLabs' `xi-api-key` is read as `X-API-Key` where both tiers take it).
pub fn authorized(keys: &[String], authorization: Option<&str>, x_api_key: Option<&str>) -> bool {
    if keys.is_empty() {
        return true;
    }
    [
        authorization.and_then(bearer_token),
        x_api_key.map(str::trim),
    ]
    .into_iter()
    .flatten()
    .any(|k| key_matches(keys, k))
}

/// The keys of a comma-separated setting (`--api-keys`), trimmed, empty ones dropped:
/// the one parser every tier's configuration uses.
pub fn parse_keys(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

/// The request-id header both tiers echo.
pub const REQUEST_ID: &str = "x-request-id";

/// A client's request id is kept when it is 1-128 visible ASCII characters.
pub fn accept_request_id(v: &str) -> Option<&str> {
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then_some(v)
}

/// Whether a `Content-Type` value names JSON (`application/json` or `*/*+json`,
/// parameters ignored, case-insensitive).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_allow_for_the_wrong_method() {
        let found = |m, p| match match_route(m, p) {
            Match::Found(r) => Some(r.route),
            _ => None,
        };
        assert_eq!(found("POST", "/v1/audio/speech"), Some(Route::Speech));
        assert_eq!(found("GET", "/v1/models/tts-1"), Some(Route::Model));
        assert_eq!(found("GET", "/v1/models"), Some(Route::Models));
        assert_eq!(found("GET", "/health"), Some(Route::Health));
        assert_eq!(found("POST", "/dev/phonemize"), Some(Route::Phonemize));
        assert_eq!(
            found("GET", "/v1/text-to-speech/af_heart/stream-input"),
            Some(Route::StreamInput)
        );
        assert!(is_stream_input("/v1/text-to-speech/af_heart/stream-input"));
        assert!(!is_stream_input("/v1/text-to-speech//stream-input"));
        assert!(!is_stream_input("/v1/audio/speech"));
        assert_eq!(
            match_route("GET", "/v1/audio/speech"),
            Match::MethodNotAllowed("POST")
        );
        assert_eq!(
            match_route("POST", "/health"),
            Match::MethodNotAllowed("GET")
        );
        assert_eq!(
            match_route("get", "/health"),
            Match::MethodNotAllowed("GET")
        );
        assert_eq!(match_route("GET", "/v1/models/"), Match::NotFound);
        assert_eq!(match_route("GET", "/v1/models/a/b"), Match::NotFound);
        assert_eq!(match_route("GET", "/nope"), Match::NotFound);
        assert_eq!(match_route("GET", "/health/"), Match::NotFound);
    }

    #[test]
    fn only_probes_are_open() {
        assert!(is_open("/health") && is_open("/metrics"));
        assert!(!is_open("/status") && !is_open("/nope") && !is_open("/v1/audio/speech"));
        // The playground's static files are open; nothing past them is.
        assert!(is_open("/") && is_open("/web") && is_open("/web/app.js"));
        assert!(!is_open("/web/") && !is_open("/web/a/b") && !is_open("/v1/models/x"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer\tabc"), Some("abc"));
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bear"), None);
    }

    #[test]
    fn keys() {
        let keys = vec!["alpha".to_string(), "beta-key".to_string()];
        assert!(key_matches(&keys, "alpha") && key_matches(&keys, "beta-key"));
        assert!(!key_matches(&keys, "alph") && !key_matches(&keys, ""));
        assert!(!key_matches(&[], "alpha"));
        assert!(authorized(&[], None, None));
        assert!(authorized(&keys, Some("bearer alpha"), None));
        assert!(authorized(&keys, None, Some(" beta-key ")));
        assert!(authorized(&keys, Some("Bearer wrong"), Some("alpha")));
        assert!(!authorized(&keys, Some("Bearer wrong"), None));
        assert!(!authorized(&keys, Some("alpha"), None));
        assert!(!authorized(&keys, None, None));
        assert_eq!(parse_keys(" alpha, ,beta-key,"), keys);
        assert!(parse_keys("").is_empty());
    }

    #[test]
    fn request_ids_and_content_types() {
        assert_eq!(accept_request_id("abc-1"), Some("abc-1"));
        assert_eq!(accept_request_id("has space"), None);
        assert_eq!(accept_request_id(""), None);
        assert_eq!(accept_request_id(&"x".repeat(129)), None);
        assert!(accept_request_id(&"x".repeat(128)).is_some());
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/vnd.api+json")));
        assert!(!is_json(Some("text/plain")) && !is_json(None));
    }
}
