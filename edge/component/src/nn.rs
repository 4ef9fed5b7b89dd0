//! Speech synthesized inside the component (feature `wasi-nn`): the pipeline is
//! `kokoro_synth::pipeline` (the same checks, plan, G2P, synthesis, loudness and
//! encoders the native backend runs); this module is only the wasi-nn glue
//! ([`NnModel`]: `load-by-name`, then `compute` with named tensors) and the
//! response: the head leaves with the first audio, then one body write per piece.
//!
//! Voice packs, the vocabulary and the G2P fallback's data (`g2p/`) come from a
//! read-only preopened directory (`KOKORO_NN_ASSETS`, default `/assets`), read
//! once per instance: hosts that keep
//! instances warm (the local host does, in wasi-nn mode) pay it once.
//!
//! Formats that need native encoders (mp3, opus, aac) and SSE framing are forwarded
//! to the backend when `KOKORO_NN_FORWARD=1`, otherwise refused with
//! `unsupported_format`: never silently changed.

use crate::config::Config;
use futures::SinkExt;
use kokoro_core::assets as layout;
use kokoro_core::vocab::Vocab;
use kokoro_core::{ApiError, AudioFormat, ErrorKind, SAMPLE_RATE, SpeechRequest, StreamFormat};
use kokoro_synth::pipeline::{self, PureEncoders, Run, Settings};
use kokoro_synth::voices::VoiceStore;
use kokoro_synth::{Encoded, Features, Model, SynthError, Tables};
use spin_sdk::http::{Fields, OutgoingResponse, ResponseOutparam};
use std::ops::Range;
use std::sync::OnceLock;
use std::time::Instant;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/deps/wasi-nn@0.2.0-rc-2024-10-28",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::{graph, inference, tensor};

/// The backend's default settings: chunk windows (small first chunk: fast first
/// audio) and loudness target.
fn settings() -> Settings {
    Settings::default()
}

struct Assets {
    vocab: Vocab,
    voices: VoiceStore,
}

static ASSETS: OnceLock<Result<Assets, String>> = OnceLock::new();

fn assets(dir: &str) -> Result<&'static Assets, String> {
    ASSETS
        .get_or_init(|| {
            let dir = std::path::Path::new(dir);
            let vocab_path = dir.join(kokoro_core::assets::VOCAB_FILE);
            let text = std::fs::read_to_string(&vocab_path)
                .map_err(|e| format!("cannot read {}: {e}", vocab_path.display()))?;
            // The G2P fallback's dictionary and learned model (same files as the
            // backend's); without them unknown words are split and spelled.
            if let Err(e) = kokoro_synth::g2p::load_fallback(dir) {
                eprintln!("kokoro-edge: G2P fallback data not loaded: {e}");
            }
            Ok(Assets {
                vocab: Vocab::from_json(&text)?,
                voices: VoiceStore::load(&dir.join(kokoro_core::assets::VOICES_DIR))?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether this request is answered here (the rest goes to the backend or is refused).
pub fn handles(req: &SpeechRequest) -> bool {
    matches!(
        req.format,
        AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Flac
    ) && req.stream_format == StreamFormat::Audio
}

pub fn unsupported(req: &SpeechRequest) -> ApiError {
    let (param, what) = if req.stream_format == StreamFormat::Sse {
        ("stream_format", "stream_format 'sse'".to_string())
    } else {
        ("response_format", format!("'{}'", req.format.as_str()))
    };
    ApiError::new(
        ErrorKind::Unprocessable,
        "unsupported_format",
        format!(
            "This edge synthesizes wav, pcm and flac audio streams itself; {what} needs the native backend, which it is not configured to use."
        ),
    )
    .with_param(param)
}

/// The informational routes, answered here as the backend would (same bodies):
/// `None` for routes this edge does not serve itself.
pub fn info(cfg: &Config, path: &str) -> Option<Result<serde_json::Value, ApiError>> {
    if path == "/v1/models" {
        return Some(Ok(kokoro_core::catalog::models()));
    }
    if let Some(id) = path.strip_prefix("/v1/models/") {
        return Some(
            kokoro_core::catalog::model(id)
                .ok_or_else(|| ApiError::not_found("No such model.").with_param("id")),
        );
    }
    if path == "/v1/audio/voices" {
        return Some(match assets(&cfg.nn_assets) {
            Ok(a) => Ok(kokoro_core::catalog::voices(|v| a.voices.contains(v))),
            Err(_) => Err(ApiError::unavailable(
                "not_ready",
                "The edge's model assets are not available.",
            )),
        });
    }
    None
}

/// Kokoro through wasi-nn: one execution context per graph per request. The
/// host offers the encoder and decoder halves as `NAME.encoder` and
/// `NAME.decoder` (streamed speech is then decoded in windows), or the whole
/// graph as `NAME`.
struct NnModel {
    encoder: inference::GraphExecutionContext,
    decoder: Option<inference::GraphExecutionContext>,
}

fn nn_error(e: &bindings::wasi::nn::errors::Error) -> String {
    format!("wasi-nn {:?}: {}", e.code(), e.data())
}

fn context(name: &str) -> Result<inference::GraphExecutionContext, String> {
    let g = graph::load_by_name(name).map_err(|e| nn_error(&e))?;
    g.init_execution_context().map_err(|e| nn_error(&e))
}

impl NnModel {
    fn new(graph_name: &str) -> Result<Self, String> {
        let halves = (
            context(&format!("{graph_name}.encoder")),
            context(&format!("{graph_name}.decoder")),
        );
        if let (Ok(encoder), Ok(decoder)) = halves {
            return Ok(Self {
                encoder,
                decoder: Some(decoder),
            });
        }
        Ok(Self {
            encoder: context(graph_name)?,
            decoder: None,
        })
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_tensor(dims: &[u32], v: &[f32]) -> tensor::Tensor {
    tensor::Tensor::new(dims, tensor::TensorType::Fp32, &f32_bytes(v))
}

fn dim(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| "tensor too large".to_string())
}

/// An f32 output's dimensions and values.
fn f32_output(t: &tensor::Tensor) -> Result<(Vec<u32>, Vec<f32>), String> {
    if t.ty() != tensor::TensorType::Fp32 {
        return Err(format!("unexpected output type {:?}", t.ty()));
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((t.dimensions(), v))
}

impl Model for NnModel {
    fn encode(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Encoded, String> {
        let ids_bytes: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
        let inputs = vec![
            (
                "tokens".to_string(),
                tensor::Tensor::new(&[1, dim(ids.len())?], tensor::TensorType::I64, &ids_bytes),
            ),
            (
                "style".to_string(),
                f32_tensor(&[1, dim(style.len())?], style),
            ),
            ("speed".to_string(), f32_tensor(&[1], &[speed])),
        ];
        let outputs = self.encoder.compute(inputs).map_err(|e| nn_error(&e))?;
        if self.decoder.is_none() {
            let (_, audio) = outputs
                .into_iter()
                .next()
                .ok_or_else(|| "the graph returned no output".to_string())?;
            return Ok(Encoded::Audio(f32_output(&audio)?.1));
        }
        Features::from_outputs(|name| {
            let t = outputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| format!("the encoder returned no {name}"))?;
            let (dims, v) = f32_output(t)?;
            Ok((dims.iter().map(|&d| d as usize).collect(), v))
        })
        .map(Encoded::Features)
    }

    fn decode(
        &mut self,
        f: &Features,
        frames: Range<usize>,
        style: &[f32],
    ) -> Result<Vec<f32>, String> {
        let Some(decoder) = &self.decoder else {
            return Err("this graph has no decoder half".into());
        };
        let n = dim(frames.end - frames.start)?;
        let (asr, f0, energy) = f.window(&frames);
        let inputs = vec![
            (
                layout::CUT_FEATURES.to_string(),
                f32_tensor(&[1, dim(f.channels)?, n], &asr),
            ),
            (layout::CUT_F0.to_string(), f32_tensor(&[1, 2 * n], &f0)),
            (
                layout::CUT_ENERGY.to_string(),
                f32_tensor(&[1, 2 * n], &energy),
            ),
            (
                "style".to_string(),
                f32_tensor(&[1, dim(style.len())?], style),
            ),
        ];
        let outputs = decoder.compute(inputs).map_err(|e| nn_error(&e))?;
        let (_, audio) = outputs
            .into_iter()
            .next()
            .ok_or_else(|| "the decoder returned no output".to_string())?;
        Ok(f32_output(&audio)?.1)
    }
}

fn synth_error(e: &SynthError) -> ApiError {
    if let SynthError::Failed(m) = e {
        eprintln!("kokoro-edge: synthesis failed: {m}");
    }
    e.to_api()
}

fn head(status: u16, headers: &[(&str, String)]) -> OutgoingResponse {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone().into_bytes()))
        .collect();
    let resp = OutgoingResponse::new(Fields::from_list(&list).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(status);
    resp
}

fn assets_unavailable(e: &str) -> ApiError {
    eprintln!("kokoro-edge: assets: {e}");
    ApiError::unavailable("not_ready", "The edge's model assets are not available.")
}

/// Answer a validated speech request with audio synthesized here.
pub async fn speech(cfg: &Config, req: SpeechRequest, out: ResponseOutparam, rid: &str) {
    let start = Instant::now();
    // The language first: a build that cannot phonemize it says so before asking
    // for assets.
    if !kokoro_synth::g2p::supports(req.lang) {
        let e = ApiError::unsupported_language(req.lang.tag());
        return crate::respond_error(out, &e, rid).await;
    }
    let assets = match assets(&cfg.nn_assets) {
        Ok(a) => a,
        Err(e) => return crate::respond_error(out, &assets_unavailable(&e), rid).await,
    };
    let settings = settings();
    let speech = match pipeline::prepare(&req, &assets.voices, &settings) {
        Ok(s) => s,
        Err(e) => return crate::respond_error(out, &e, rid).await,
    };
    let mut model = match NnModel::new(&cfg.nn_graph) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kokoro-edge: {e}");
            let e = ApiError::unavailable(
                "not_ready",
                "The edge's inference graph is not loaded in this host.",
            );
            return crate::respond_error(out, &e, rid).await;
        }
    };
    let tables = Tables {
        vocab: &assets.vocab,
        voices: &assets.voices,
    };
    let mut run = match Run::new(&speech, tables, &settings, &PureEncoders) {
        Ok(r) => r,
        Err(e) => return crate::respond_error(out, &synth_error(&e), rid).await,
    };
    let ctype = req.format.content_type().to_string();
    if !req.stream {
        let mut body = Vec::new();
        while let Some(step) = run.step(&mut model) {
            match step {
                Ok(c) => body.extend(c.bytes),
                Err(e) => return crate::respond_error(out, &synth_error(&e), rid).await,
            }
        }
        let ms = run.samples() as u64 * 1000 / u64::from(SAMPLE_RATE);
        return crate::respond(
            out,
            200,
            &[
                ("content-type", ctype),
                ("x-audio-duration-ms", ms.to_string()),
                ("x-synthesis-ms", start.elapsed().as_millis().to_string()),
                ("x-request-id", rid.to_string()),
                ("x-edge-inference", "wasi-nn".into()),
            ],
            body,
        )
        .await;
    }
    // Streaming: the head leaves with the first audio (so errors before it keep
    // their status), then one body write per piece.
    let mut sink = None;
    let mut out = Some(out);
    while let Some(step) = run.step(&mut model) {
        let chunk = match step {
            Ok(c) => c,
            Err(e) => {
                if let Some(o) = out.take() {
                    return crate::respond_error(o, &synth_error(&e), rid).await;
                }
                // Mid-stream: the status is gone; end the body short (the client
                // sees a truncated transfer).
                let _ = synth_error(&e);
                return;
            }
        };
        if let Some(o) = out.take() {
            let resp = head(
                200,
                &[
                    ("content-type", ctype.clone()),
                    (
                        "x-time-to-first-audio-ms",
                        start.elapsed().as_millis().to_string(),
                    ),
                    ("x-request-id", rid.to_string()),
                    ("x-edge-inference", "wasi-nn".into()),
                ],
            );
            sink = Some(resp.take_body());
            o.set(resp);
        }
        if chunk.bytes.is_empty() {
            continue;
        }
        if let Some(s) = &mut sink
            && s.send(chunk.bytes).await.is_err()
        {
            // Client gone: stop synthesizing.
            return;
        }
    }
}
