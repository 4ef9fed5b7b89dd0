//! `kokoro-core`: the pure logic both tiers of kokoro-edge share.
//!
//! - [`request::SpeechRequest`]: the contract's speech request, parsed and validated.
//! - [`error::ApiError`]: the one error type, its status table and JSON envelope,
//!   and a named constructor for every message either tier sends.
//! - [`boundary`]: the route table, the API-key rule, request ids, the JSON check.
//! - [`voice`]: the voice catalog and blend expressions (`af_bella(2)+af_sky(1)`).
//! - [`normalize`]: English text normalization (numbers, money, dates, ...).
//! - [`chunk`]: sentence-first chunking with a small first chunk; [`plan`]: a
//!   request as pauses and text chunks; [`intake`]: where
//!   text that arrives a few characters at a time can be cut.
//! - [`vocab::Vocab`]: phoneme ids; [`cache_key::cache_key`]: stable cache keys;
//!   [`cache_entry`]: the edge cache's entry format.
//!
//! This crate does no I/O and knows nothing of HTTP servers, async runtimes,
//! ONNX Runtime or Spin. It builds for native targets and for `wasm32-wasip2`.

pub mod assets;
pub mod boundary;
pub mod cache_entry;
pub mod cache_key;
pub mod catalog;
pub mod chunk;
pub mod error;
pub mod intake;
pub mod markup;
pub mod normalize;
pub mod numbers;
pub mod plan;
pub mod request;
pub mod vocab;
pub mod voice;

pub use error::{ApiError, ErrorKind};
pub use request::{AudioFormat, Lang, SpeechRequest, StreamFormat};

/// Output sample rate of Kokoro-82M.
pub const SAMPLE_RATE: u32 = 24_000;
