//! The web playground: a page, its script and its style sheet, compiled into both
//! tiers so that `/web` works wherever the API does (the backend, the edge, the
//! wasi-nn edge with no backend). No build step and no external requests: the page
//! talks to the API of the origin that served it.
//!
//! Both tiers answer `/` with a redirect to [`PAGE`], `/web` with the page and
//! `/web/{file}` with [`asset`]; every answer carries [`HEADERS`].

/// Where `/` sends a browser.
pub const PAGE: &str = "/web";

/// One static file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_bytes!("../static/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// The files under `/web/`, by name.
const FILES: [(&str, Asset); 4] = [
    // kokoro-core in the browser (see build.rs): empty when it was not built.
    (
        "core.js",
        Asset {
            body: include_bytes!(concat!(env!("OUT_DIR"), "/core.js")),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "core.wasm",
        Asset {
            body: include_bytes!(concat!(env!("OUT_DIR"), "/core.wasm")),
            content_type: "application/wasm",
        },
    ),
    (
        "app.js",
        Asset {
            body: include_bytes!("../static/app.js"),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "style.css",
        Asset {
            body: include_bytes!("../static/style.css"),
            content_type: "text/css; charset=utf-8",
        },
    ),
];

/// The page itself (`/web`).
pub const fn index() -> Asset {
    INDEX
}

/// A file of the page (`/web/{file}`), or `None` for any other name (and for the
/// browser core when this build does not have it).
pub fn asset(file: &str) -> Option<Asset> {
    FILES
        .iter()
        .find(|(n, a)| *n == file && !a.body.is_empty())
        .map(|(_, a)| *a)
}

/// Whether this build serves kokoro-core to the browser (`make wasm` built it).
pub const HAS_CORE: bool = cfg!(kokoro_web_core);

/// Headers for every playground answer: revalidated on each load (the files change
/// with the build), never sniffed, and a policy that lets the page reach only its
/// own origin (the API), so nothing is fetched from anywhere else.
pub const HEADERS: [(&str, &str); 4] = [
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_and_files_are_served_by_name_only() {
        let page = std::str::from_utf8(index().body).unwrap();
        assert!(page.starts_with("<!doctype html>"));
        // Every file the page links to is one this crate serves, and nothing else.
        for name in ["app.js", "style.css"] {
            assert!(page.contains(&format!("/web/{name}")), "{name} not linked");
            assert!(asset(name).is_some());
        }
        assert!(asset("index.html").is_none() && asset("../Cargo.toml").is_none());
        assert!(asset("").is_none() && asset("APP.JS").is_none());
        // The browser core is served exactly when it was built in.
        assert_eq!(asset("core.wasm").is_some(), HAS_CORE);
        assert_eq!(asset("core.js").is_some(), HAS_CORE);
        if let Some(wasm) = asset("core.wasm") {
            assert_eq!(&wasm.body[..4], b"\0asm");
        }
    }

    #[test]
    fn nothing_is_fetched_from_another_origin() {
        for body in [index().body, asset("app.js").unwrap().body] {
            let text = std::str::from_utf8(body).unwrap();
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn") && !text.contains("src=\"//"));
        }
    }
}
