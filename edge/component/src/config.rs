//! Component configuration, read per request (components are instantiated per request).

pub struct Config {
    pub backend_url: String,
    pub backend_api_key: Option<String>,
    pub api_keys: Vec<String>,
    pub max_body_bytes: usize,
    pub cache_max_entry_bytes: usize,
    pub cache_ttl_secs: u64,
    pub model_version: String,
    /// Forward the backend's `/dev/*` routes (`KOKORO_DEV_ROUTES`); off: 404.
    pub dev_routes: bool,
    /// wasi-nn graph name (`load-by-name`); empty: inference is not done here.
    #[cfg(feature = "wasi-nn")]
    pub nn_graph: String,
    /// Preopened directory with `vocab.json` and `voices/`.
    #[cfg(feature = "wasi-nn")]
    pub nn_assets: String,
    /// Forward what cannot be synthesized here (mp3/opus/aac, SSE) to the backend.
    #[cfg(feature = "wasi-nn")]
    pub nn_forward: bool,
}

fn var(name: &str) -> Option<String> {
    #[cfg(feature = "spin")]
    if let Ok(v) = spin_sdk::variables::get(&name.to_ascii_lowercase())
        && !v.is_empty()
    {
        return Some(v);
    }
    std::env::var(name.to_ascii_uppercase())
        .ok()
        .filter(|v| !v.is_empty())
}

fn number(name: &str, default: u64) -> u64 {
    var(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Config {
    pub fn load() -> Self {
        Self {
            backend_url: var("kokoro_backend_url")
                .unwrap_or_else(|| "http://127.0.0.1:8880".into()),
            backend_api_key: var("kokoro_backend_api_key"),
            api_keys: var("kokoro_api_keys")
                .map(|v| kokoro_core::boundary::parse_keys(&v))
                .unwrap_or_default(),
            max_body_bytes: number("kokoro_max_body_bytes", 64 * 1024) as usize,
            cache_max_entry_bytes: number("kokoro_cache_max_bytes", 8 * 1024 * 1024) as usize,
            cache_ttl_secs: number("kokoro_cache_ttl_secs", 86_400),
            model_version: var("kokoro_model_version")
                .unwrap_or_else(kokoro_core::assets::default_model_version),
            dev_routes: var("kokoro_dev_routes").is_some_and(|v| v == "1" || v == "true"),
            #[cfg(feature = "wasi-nn")]
            nn_graph: var("kokoro_nn_graph").unwrap_or_default(),
            #[cfg(feature = "wasi-nn")]
            nn_assets: var("kokoro_nn_assets").unwrap_or_else(|| "/assets".into()),
            #[cfg(feature = "wasi-nn")]
            nn_forward: var("kokoro_nn_forward").is_some_and(|v| v == "1" || v == "true"),
        }
    }
}
