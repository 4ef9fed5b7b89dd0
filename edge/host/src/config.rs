//! The host's flags (`Args`, each with an environment variable) and the
//! validated [`HostConfig`] the server is built from, as the backend's
//! `config.rs` does: every check happens here, before anything starts.

use crate::allow::authority_of;
use crate::nn::NnDevice;
use crate::spin::{Backing, Kv};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "kokoro-edge",
    version,
    about = "Serve the kokoro-edge component locally"
)]
pub struct Args {
    /// Listen address (the same default as `spin up`).
    #[arg(long, env = "KOKORO_EDGE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The component (`make wasm` builds target/edge-spin.wasm and target/edge-wasi.wasm).
    #[arg(
        long,
        env = "KOKORO_EDGE_COMPONENT",
        default_value = "target/edge-spin.wasm"
    )]
    component: PathBuf,
    /// Directory of the key-value store behind the cache.
    #[arg(long, env = "KOKORO_EDGE_KV_DIR", default_value = "target/edge-kv")]
    kv_dir: PathBuf,
    /// Keep the key-value store in memory instead.
    #[arg(long, env = "KOKORO_EDGE_KV_MEMORY")]
    kv_memory: bool,
    /// Total size of the key-value store (directory or memory), MiB; the least
    /// recently used entries go first.
    #[arg(long, env = "KOKORO_EDGE_KV_MAX_MIB", default_value_t = 256)]
    kv_max_mib: usize,
    /// Cache entry time-to-live, seconds.
    #[arg(long, env = "KOKORO_CACHE_TTL_SECS", default_value_t = 86_400)]
    cache_ttl_secs: u64,
    /// Largest cached response, bytes.
    #[arg(long, env = "KOKORO_CACHE_MAX_BYTES", default_value_t = 8 << 20)]
    cache_max_bytes: u64,
    /// Backend base URL, passed to the component and allow-listed for outbound HTTP.
    #[arg(
        long,
        env = "KOKORO_BACKEND_URL",
        default_value = "http://127.0.0.1:8880"
    )]
    backend_url: String,
    /// API keys the edge requires (comma-separated; empty: none).
    #[arg(
        long,
        env = "KOKORO_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    api_keys: String,
    /// Key the edge presents to the backend.
    #[arg(
        long,
        env = "KOKORO_BACKEND_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    backend_api_key: String,
    /// Authorities (`host:port`) the component may call; default: the backend's.
    #[arg(long = "allow", env = "KOKORO_EDGE_ALLOW", value_delimiter = ',')]
    allow: Vec<String>,
    /// Linear-memory limit per instance, in MiB.
    #[arg(long, env = "KOKORO_EDGE_MAX_MEMORY_MIB", default_value_t = 128)]
    max_memory_mib: usize,
    /// Seconds to wait for the component's response head.
    #[arg(long, env = "KOKORO_EDGE_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Longest a request's component may run in all, a stream included, seconds
    /// (then it is stopped at the next epoch tick).
    #[arg(long, env = "KOKORO_EDGE_MAX_RUN_SECS", default_value_t = 600)]
    max_run_secs: u64,
    /// Forward the backend's `/dev/*` routes (off by default; the backend must
    /// serve them too, `--dev-routes` there).
    #[arg(long, env = "KOKORO_DEV_ROUTES")]
    dev_routes: bool,
    /// Largest request body in bytes (read by the host before the component runs).
    #[arg(long, env = "KOKORO_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    max_body_bytes: usize,
    #[command(flatten)]
    pub connections: kokoro_serve::Flags,
    /// wasi-nn mode: load this ONNX model once and offer it to the component as the
    /// graph `--nn-graph` (serve the component's `wasi-nn` build, target/edge-nn.wasm).
    #[arg(long, env = "KOKORO_EDGE_NN_MODEL")]
    nn_model: Option<PathBuf>,
    /// Name the component loads the graph by.
    #[arg(long, env = "KOKORO_EDGE_NN_GRAPH", default_value = "kokoro")]
    nn_graph: String,
    /// Execution provider for the graph.
    #[arg(long, env = "KOKORO_EDGE_NN_DEVICE", value_enum, default_value = "cpu")]
    nn_device: NnDevice,
    /// Assets directory (ONNX Runtime library, vocab.json, voices/); default: the
    /// `cargo xtask assets` cache. Preopened read-only as /assets in wasi-nn mode.
    #[arg(long, env = "KOKORO_ASSETS_DIR")]
    assets_dir: Option<PathBuf>,
    /// Warm instances in wasi-nn mode (each keeps its G2P dictionaries loaded and
    /// serves one request at a time).
    #[arg(long, env = "KOKORO_EDGE_NN_INSTANCES", default_value_t = 1)]
    nn_instances: usize,
    /// Requests waiting for a warm instance before new ones get 429.
    #[arg(long, env = "KOKORO_EDGE_NN_QUEUE", default_value_t = 16)]
    nn_queue: usize,
    /// ONNX Runtime intra-op threads (0: one per CPU).
    #[arg(long, env = "KOKORO_EDGE_NN_INTRA_THREADS", default_value_t = 0)]
    nn_intra_threads: usize,
    /// Linear-memory limit per instance in wasi-nn mode, MiB (G2P dictionaries and
    /// voice packs live there).
    #[arg(long, env = "KOKORO_EDGE_NN_MAX_MEMORY_MIB", default_value_t = 1024)]
    nn_max_memory_mib: usize,
    /// In wasi-nn mode, forward what the component cannot synthesize (mp3, opus,
    /// aac, SSE) to --backend-url instead of refusing it.
    #[arg(long, env = "KOKORO_EDGE_NN_FORWARD")]
    nn_forward: bool,
}

/// wasi-nn mode: the graph the host loads and offers, and the warm instances.
#[derive(Debug, Clone, PartialEq)]
pub struct NnConfig {
    pub model: PathBuf,
    pub graph: String,
    pub device: NnDevice,
    pub intra_threads: usize,
    /// The ONNX Runtime library.
    pub ort_dylib: PathBuf,
    /// Preopened read-only as `/assets` (vocab.json, voices/).
    pub assets_dir: PathBuf,
    pub instances: usize,
    pub queue: usize,
}

/// Validated host configuration.
#[derive(Debug)]
pub struct HostConfig {
    pub listen: SocketAddr,
    pub component: PathBuf,
    pub kv: Kv,
    /// What the component reads as environment variables (and as Spin variables,
    /// in lower case).
    pub env: Vec<(String, String)>,
    /// Authorities (`host:port`, lower case) the component may call.
    pub allowed: Vec<String>,
    /// Linear-memory limit per instance, bytes.
    pub max_memory: usize,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    pub max_run: Duration,
    /// Time-outs and the connection cap.
    pub limits: kokoro_serve::Limits,
    pub nn: Option<NnConfig>,
    /// The WebSocket route's passthrough to the backend.
    pub socket: crate::socket::Passthrough,
}

fn in_range(what: &str, v: usize, lo: usize, hi: usize) -> Result<usize, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} must be between {lo} and {hi} (got {v})"))
    }
}

/// The path of a base URL, without its trailing `/` ("" for none).
fn base_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').to_string()
}

impl Args {
    pub fn validate(&self) -> Result<HostConfig, String> {
        let backend = authority_of(&self.backend_url)
            .ok_or_else(|| format!("--backend-url {:?} has no host", self.backend_url))?;
        let backend_authority = backend.clone();
        let allowed = if self.allow.is_empty() {
            vec![backend]
        } else {
            self.allow
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect()
        };
        if let Some(bad) = allowed.iter().find(|a| a.is_empty() || a.contains('/')) {
            return Err(format!("--allow takes host:port authorities, not {bad:?}"));
        }
        if self.timeout_secs == 0 {
            return Err("--timeout-secs must be at least 1".into());
        }
        let limits = self.connections.limits()?;
        let max_body_bytes = in_range("--max-body-bytes", self.max_body_bytes, 1024, 16 << 20)?;
        let mut env = vec![
            ("KOKORO_BACKEND_URL".to_string(), self.backend_url.clone()),
            ("KOKORO_API_KEYS".to_string(), self.api_keys.clone()),
            (
                "KOKORO_BACKEND_API_KEY".to_string(),
                self.backend_api_key.clone(),
            ),
            (
                "KOKORO_CACHE_TTL_SECS".to_string(),
                self.cache_ttl_secs.to_string(),
            ),
            (
                "KOKORO_CACHE_MAX_BYTES".to_string(),
                self.cache_max_bytes.to_string(),
            ),
            (
                "KOKORO_MAX_BODY_BYTES".to_string(),
                max_body_bytes.to_string(),
            ),
            (
                "KOKORO_DEV_ROUTES".to_string(),
                if self.dev_routes { "1" } else { "0" }.to_string(),
            ),
        ];
        let nn = match &self.nn_model {
            None => None,
            Some(model) => {
                let assets_dir = self.assets_dir.clone().unwrap_or_else(|| {
                    let var = |k: &str| std::env::var(k).ok();
                    PathBuf::from(kokoro_core::assets::default_dir(
                        None,
                        var("XDG_CACHE_HOME").as_deref(),
                        var("HOME").as_deref(),
                    ))
                });
                if !model.is_file() {
                    return Err(format!(
                        "--nn-model {} not found (run `cargo xtask assets`)",
                        model.display()
                    ));
                }
                env.push(("KOKORO_NN_GRAPH".to_string(), self.nn_graph.clone()));
                env.push(("KOKORO_NN_ASSETS".to_string(), "/assets".to_string()));
                env.push((
                    "KOKORO_NN_FORWARD".to_string(),
                    if self.nn_forward { "1" } else { "0" }.to_string(),
                ));
                Some(NnConfig {
                    model: model.clone(),
                    graph: self.nn_graph.clone(),
                    device: self.nn_device,
                    intra_threads: self.nn_intra_threads,
                    ort_dylib: assets_dir.join(kokoro_core::assets::ORT_DYLIB),
                    assets_dir,
                    instances: in_range("--nn-instances", self.nn_instances, 1, 64)?,
                    queue: in_range("--nn-queue", self.nn_queue, 1, 4096)?,
                })
            }
        };
        let mib = if nn.is_some() {
            self.nn_max_memory_mib
        } else {
            self.max_memory_mib
        };
        let max_memory = in_range("the memory limit (MiB)", mib, 16, 16 << 10)? << 20;
        Ok(HostConfig {
            listen: self.listen,
            component: self.component.clone(),
            kv: Kv::new(
                if self.kv_memory {
                    Backing::Memory(Default::default())
                } else {
                    Backing::Dir(self.kv_dir.clone())
                },
                in_range("--kv-max-mib", self.kv_max_mib, 1, 1 << 20)? << 20,
            ),
            env,
            allowed,
            max_memory,
            timeout: Duration::from_secs(self.timeout_secs),
            max_body_bytes,
            max_run: Duration::from_secs(self.max_run_secs.max(self.timeout_secs)),
            limits,
            nn,
            socket: crate::socket::Passthrough {
                backend: backend_authority,
                base_path: base_path(&self.backend_url),
                api_keys: kokoro_core::boundary::parse_keys(&self.api_keys),
                backend_api_key: self.backend_api_key.clone(),
                timeout: Duration::from_secs(self.timeout_secs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<HostConfig, String> {
        let mut argv = vec!["kokoro-edge"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).unwrap().validate()
    }

    #[test]
    fn defaults_allow_only_the_backend() {
        let c = parse(&["--backend-url", "http://Backend.Local:8880/x"]).unwrap();
        assert_eq!(c.allowed, vec!["backend.local:8880".to_string()]);
        assert!(c.nn.is_none());
        assert_eq!(c.max_memory, 128 << 20);
        assert!(
            c.env
                .iter()
                .any(|(k, v)| k == "KOKORO_BACKEND_URL" && v.ends_with("/x"))
        );
        assert_eq!(c.socket.backend, "backend.local:8880");
        assert_eq!(c.socket.base_path, "/x");
        assert_eq!(base_path("http://a:1/"), "");
        assert_eq!(base_path("http://a:1"), "");
    }

    #[test]
    fn bad_values_are_refused_before_start() {
        assert!(
            parse(&["--backend-url", "http://"])
                .unwrap_err()
                .contains("no host")
        );
        assert!(
            parse(&["--allow", "a:1/b"])
                .unwrap_err()
                .contains("authorities")
        );
        assert!(parse(&["--timeout-secs", "0"]).is_err());
        assert!(
            parse(&["--max-memory-mib", "1"])
                .unwrap_err()
                .contains("memory")
        );
        let missing = parse(&["--nn-model", "/nonexistent/model.onnx"]).unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
    }
}
