//! Configuration: clap flags (each with an env var), validated into one [`Config`].

use clap::{Args, ValueEnum};
use kokoro_core::assets as layout;
use kokoro_synth::budget::Budget;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// Engine flags shared by `serve` and `say`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Assets directory filled by `cargo xtask assets`.
    #[arg(long, env = "KOKORO_ASSETS_DIR")]
    pub assets_dir: Option<PathBuf>,
    /// ONNX model file (default: the int8 model with float convolutions, in the
    /// assets dir). The plain int8 file and fp32/fp16 exports work too.
    #[arg(long, env = "KOKORO_MODEL")]
    pub model: Option<PathBuf>,
    /// ONNX Runtime shared library (default: the one in the assets dir).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// Execution device; `cuda` fails at start-up when CUDA is unavailable.
    #[arg(long, env = "KOKORO_DEVICE", value_enum, default_value = "cpu")]
    pub device: Device,
    /// Inference worker threads (each owns one ONNX session).
    #[arg(long, env = "KOKORO_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Intra-op threads per session (0 = number of CPUs / workers).
    #[arg(long, env = "KOKORO_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,
    /// First chunk window in characters: a streamed request's first piece (a
    /// sentence or clause; first audio comes from its first decoder window).
    #[arg(long, env = "KOKORO_FIRST_CHUNK_CHARS", default_value_t = kokoro_synth::DEFAULT_CHUNK.first_max_chars)]
    pub first_chunk_chars: usize,
    /// Decode streamed requests in windows of frames (25 ms): this many speech
    /// frames first, the second window as long, then doubling. 0 decodes whole
    /// chunks (first audio then waits for the whole first chunk).
    #[arg(long, env = "KOKORO_FIRST_WINDOW_FRAMES", default_value_t = kokoro_synth::windows::DEFAULT_WINDOWS.first)]
    pub first_window_frames: usize,
    /// Frames decoded beyond each side of a decoder window (for the cross-fade).
    #[arg(long, env = "KOKORO_WINDOW_CONTEXT_FRAMES", default_value_t = kokoro_synth::windows::DEFAULT_WINDOWS.context)]
    pub window_context_frames: usize,
    /// Frames of a streamed call's leading padding token decoded with its first
    /// window (the model gives that token 9-18 frames of silence).
    #[arg(long, env = "KOKORO_WINDOW_LEAD_FRAMES", default_value_t = kokoro_synth::windows::DEFAULT_WINDOWS.lead)]
    pub window_lead_frames: usize,
    /// Largest chunk window in characters.
    #[arg(long, env = "KOKORO_MAX_CHUNK_CHARS", default_value_t = kokoro_synth::DEFAULT_CHUNK.max_chars)]
    pub max_chunk_chars: usize,
    /// Loudness target in LUFS (integrated, ITU-R BS.1770).
    #[arg(long, env = "KOKORO_TARGET_LUFS", default_value_t = -16.0, allow_negative_numbers = true)]
    pub target_lufs: f64,
    /// True-peak ceiling in dBTP.
    #[arg(long, env = "KOKORO_TRUE_PEAK_DBTP", default_value_t = -1.0, allow_negative_numbers = true)]
    pub true_peak_dbtp: f64,
    /// Most seconds of `[pause:..]` markup in one request.
    #[arg(long, env = "KOKORO_MAX_PAUSE_SECS", default_value_t = Budget::default().pause_secs)]
    pub max_pause_secs: f32,
    /// Most characters of text after normalization in one request.
    #[arg(long, env = "KOKORO_MAX_TEXT_CHARS", default_value_t = Budget::default().text_chars)]
    pub max_text_chars: usize,
    /// Most phoneme ids one request may synthesize.
    #[arg(long, env = "KOKORO_MAX_PHONEME_IDS", default_value_t = Budget::default().phoneme_ids)]
    pub max_phoneme_ids: usize,
    /// Most seconds of audio (pauses included) one request may make; the estimate
    /// at the requested speed is checked before admission, the real audio while it runs.
    #[arg(long, env = "KOKORO_MAX_AUDIO_SECS", default_value_t = Budget::default().audio_secs)]
    pub max_audio_secs: f32,
    /// Try espeak-ng (GPL-3.0) for English words misaki does not know, before the
    /// pronouncing dictionary and the learned G2P (build feature `espeak` only).
    #[cfg(feature = "espeak")]
    #[arg(long, env = "KOKORO_ESPEAK_ENGLISH")]
    pub espeak_english: bool,
}

/// Server flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, env = "KOKORO_LISTEN", default_value = "127.0.0.1:8880")]
    pub listen: SocketAddr,
    /// Comma-separated API keys; empty disables authentication.
    #[arg(
        long,
        env = "KOKORO_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub api_keys: String,
    /// Requests admitted at once (in synthesis or waiting); more get 429.
    #[arg(long, env = "KOKORO_QUEUE_CAPACITY", default_value_t = 16)]
    pub queue_capacity: usize,
    /// Largest request body in bytes.
    #[arg(long, env = "KOKORO_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a client is told to wait in Retry-After.
    #[arg(long, env = "KOKORO_RETRY_AFTER_SECS", default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Serve the `/dev/*` routes (phonemize, generate from phonemes); off by default.
    /// When on they take an admission permit like speech.
    #[arg(long, env = "KOKORO_DEV_ROUTES")]
    pub dev_routes: bool,
    /// WebSocket text-in sessions (`stream-input`) open at once; more get 429.
    #[arg(long, env = "KOKORO_MAX_STREAM_SESSIONS", default_value_t = 64)]
    pub max_stream_sessions: usize,
    /// Also serve the Wyoming protocol (Home Assistant) on this address, e.g.
    /// 127.0.0.1:10200. It has no authentication: with API keys set it must be a
    /// loopback address. Its connections count against --max-stream-sessions.
    #[arg(long, env = "KOKORO_WYOMING")]
    pub wyoming: Option<SocketAddr>,
    #[command(flatten)]
    pub connections: kokoro_serve::Flags,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Validated engine configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model: PathBuf,
    /// Run the model's encoder and decoder halves where they lie beside it.
    pub split: bool,
    pub model_version: String,
    pub ort_dylib: PathBuf,
    pub vocab: PathBuf,
    pub voices_dir: PathBuf,
    /// The assets directory: the G2P fallback's data is read from it.
    pub g2p_dir: PathBuf,
    /// espeak-ng first for unknown English words (feature `espeak`).
    pub espeak_english: bool,
    pub device: Device,
    pub workers: usize,
    pub intra_threads: usize,
    pub chunk: kokoro_core::chunk::ChunkOptions,
    /// Decoder windows for streamed requests (`None`: whole pieces).
    pub windows: Option<kokoro_synth::windows::Windows>,
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
    /// What one request may cost.
    pub budget: Budget,
}

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub api_keys: Vec<String>,
    pub queue_capacity: usize,
    pub max_body_bytes: usize,
    pub retry_after_secs: u64,
    pub dev_routes: bool,
    pub max_stream_sessions: usize,
    /// Where the Wyoming protocol is served, if anywhere.
    pub wyoming: Option<SocketAddr>,
    /// Time-outs and the connection cap.
    pub limits: kokoro_serve::Limits,
    pub engine: EngineConfig,
}

fn must_exist(what: &str, p: PathBuf) -> Result<PathBuf, String> {
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{what} not found at {}. Run `cargo xtask assets` (or `make setup`) to fetch the \
             model assets, or point the flag at an existing file.",
            p.display()
        ))
    }
}

impl EngineArgs {
    pub fn validate(&self) -> Result<EngineConfig, String> {
        let dir = self.assets_dir.clone().unwrap_or_else(|| {
            let env = |k: &str| std::env::var(k).ok();
            PathBuf::from(layout::default_dir(
                None,
                env("XDG_CACHE_HOME").as_deref(),
                env("HOME").as_deref(),
            ))
        });
        let model = must_exist(
            "model",
            self.model
                .clone()
                .unwrap_or_else(|| dir.join(layout::FCONV_MODEL_FILE)),
        )?;
        let ort_dylib = must_exist(
            "ONNX Runtime library (ORT_DYLIB_PATH)",
            self.ort_dylib
                .clone()
                .unwrap_or_else(|| dir.join(layout::ORT_DYLIB)),
        )?;
        let vocab = must_exist("vocab.json", dir.join(layout::VOCAB_FILE))?;
        let voices_dir = must_exist("voices directory", dir.join(layout::VOICES_DIR))?;
        must_exist("pronouncing dictionary", dir.join(layout::CMUDICT_FILE))?;
        must_exist("learned G2P model", dir.join(layout::G2P_EN_FILE))?;
        if self.workers == 0 || self.workers > 64 {
            return Err("--workers must be between 1 and 64".into());
        }
        if self.first_chunk_chars < 8 || self.max_chunk_chars < self.first_chunk_chars {
            return Err("chunk windows: need 8 <= --first-chunk-chars <= --max-chunk-chars".into());
        }
        if self.window_context_frames > 64
            || self.window_lead_frames > 64
            || self.first_window_frames > 400
        {
            return Err(
                "decoder windows: need --window-context-frames and --window-lead-frames <= 64, \
                 and --first-window-frames <= 400"
                    .into(),
            );
        }
        if self.max_chunk_chars > 400 {
            return Err(
                "--max-chunk-chars above 400 risks exceeding the model's 510 phoneme ids".into(),
            );
        }
        if !(-40.0..=-5.0).contains(&self.target_lufs)
            || !(-10.0..=0.0).contains(&self.true_peak_dbtp)
        {
            return Err(
                "loudness: --target-lufs in [-40, -5], --true-peak-dbtp in [-10, 0]".into(),
            );
        }
        let budget = Budget {
            pause_secs: self.max_pause_secs,
            text_chars: self.max_text_chars,
            phoneme_ids: self.max_phoneme_ids,
            audio_secs: self.max_audio_secs,
        };
        if !(budget.pause_secs >= 0.0 && budget.audio_secs >= 1.0 && budget.audio_secs <= 86_400.0)
            || budget.text_chars == 0
            || budget.phoneme_ids == 0
        {
            return Err(
                "budget: --max-audio-secs in [1, 86400], --max-pause-secs >= 0, \
                 --max-text-chars and --max-phoneme-ids >= 1"
                    .into(),
            );
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let intra_threads = if self.intra_threads == 0 {
            (cpus / self.workers).max(1)
        } else {
            self.intra_threads
        };
        let model_version = if self.model.is_none() {
            layout::default_model_version()
        } else {
            // A user-supplied model: version by file name and size (hashing 300 MB at
            // start is slow; the path is the host's business, not a client's).
            let len = std::fs::metadata(&model).map(|m| m.len()).unwrap_or(0);
            let name = model.file_name().map(|f| f.to_string_lossy().into_owned());
            format!("custom:{}:{len}", name.unwrap_or_default())
        };
        Ok(EngineConfig {
            model,
            split: true,
            model_version,
            ort_dylib,
            vocab,
            voices_dir,
            g2p_dir: dir,
            #[cfg(feature = "espeak")]
            espeak_english: self.espeak_english,
            #[cfg(not(feature = "espeak"))]
            espeak_english: false,
            device: self.device,
            workers: self.workers,
            intra_threads,
            chunk: kokoro_core::chunk::ChunkOptions {
                first_max_chars: self.first_chunk_chars,
                max_chars: self.max_chunk_chars,
                min_chars: kokoro_synth::DEFAULT_CHUNK.min_chars,
            },
            windows: (self.first_window_frames > 0).then_some(kokoro_synth::windows::Windows {
                first: self.first_window_frames,
                context: self.window_context_frames,
                lead: self.window_lead_frames,
                ..kokoro_synth::windows::DEFAULT_WINDOWS
            }),
            target_lufs: self.target_lufs,
            true_peak_dbtp: self.true_peak_dbtp,
            budget,
        })
    }
}

impl ServeArgs {
    pub fn validate(&self) -> Result<Config, String> {
        if self.queue_capacity == 0 {
            return Err("--queue-capacity must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("--max-body-bytes must be at least 1024".into());
        }
        let limits = self.connections.limits()?;
        if self.max_stream_sessions == 0 {
            return Err("--max-stream-sessions must be at least 1".into());
        }
        let api_keys = kokoro_core::boundary::parse_keys(&self.api_keys);
        if let Some(w) = self.wyoming
            && !api_keys.is_empty()
            && !w.ip().is_loopback()
        {
            return Err(format!(
                "--wyoming {w}: the Wyoming protocol has no authentication, so with API keys \
                 set it listens on a loopback address only (127.0.0.1:10200); reach it from \
                 other hosts through a tunnel or a proxy that authenticates"
            ));
        }
        if self.wyoming.is_some_and(|w| w == self.listen) {
            return Err("--wyoming must not be the HTTP --listen address".into());
        }
        Ok(Config {
            listen: self.listen,
            api_keys,
            queue_capacity: self.queue_capacity,
            max_body_bytes: self.max_body_bytes,
            retry_after_secs: self.retry_after_secs.max(1),
            dev_routes: self.dev_routes,
            max_stream_sessions: self.max_stream_sessions,
            wyoming: self.wyoming,
            limits,
            engine: self.engine.validate()?,
        })
    }
}
