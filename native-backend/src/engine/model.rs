//! The acoustic model: phoneme ids + style vector + speed -> 24 kHz samples.
//!
//! [`OrtModel`] runs the real Kokoro-82M through ONNX Runtime. Input and output
//! names and dtypes are read from the session, since exports differ (`tokens` vs
//! `input_ids`, `audio` vs `waveform`, float vs int `speed`).

use crate::config::{Device, EngineConfig};
use kokoro_core::assets as layout;
use kokoro_ort::ort;
use kokoro_ort::{SessionOptions, TensorInfo};
use kokoro_synth::{Encoded, Features};
use ort::session::Session;
use ort::tensor::TensorElementType;
use ort::value::Tensor;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Kokoro as encoder and decoder halves (shared with the wasi-nn edge). The real
/// one here is [`OrtModel`].
pub use kokoro_synth::Model;

/// Load the ONNX Runtime library once per process.
pub fn init_ort(cfg: &EngineConfig) -> Result<(), String> {
    kokoro_ort::init(&cfg.ort_dylib)
}

#[derive(Debug, Clone, Copy)]
enum SpeedKind {
    F32,
    I32,
    I64,
}

/// The first half (or the whole graph, for a model that has no halves beside it).
struct Encoder {
    session: Session,
    tokens: String,
    style: String,
    speed: String,
    speed_kind: SpeedKind,
    /// The whole graph's audio output, when not split.
    audio: Option<String>,
}

pub struct OrtModel {
    encoder: Encoder,
    decoder: Option<Session>,
    run_options: ort::session::RunOptions,
}

impl OrtModel {
    /// Load the model: its encoder and decoder halves when they lie beside it
    /// (`X.encoder.onnx`, `X.decoder.onnx`; `cargo xtask assets` derives them
    /// for the default model), else the whole graph (no windowed streaming). On
    /// CPU the decoder is `X.decoder.fused.onnx` where it exists (fused Snake).
    pub fn load(cfg: &EngineConfig) -> Result<Self, String> {
        Self::load_with_decoder(cfg, None)
    }

    /// [`OrtModel::load`] with the decoder half `decoder` instead of the one it
    /// would pick (benchmarks and tests compare decoders side by side).
    pub fn load_with_decoder(cfg: &EngineConfig, decoder: Option<&Path>) -> Result<Self, String> {
        init_ort(cfg)?;
        let opts = SessionOptions {
            device: match cfg.device {
                Device::Cpu => kokoro_ort::Device::Cpu,
                Device::Cuda => kokoro_ort::Device::Cuda,
            },
            intra_threads: cfg.intra_threads,
        };
        let (enc, mut dec) = halves(&cfg.model);
        let fused = PathBuf::from(kokoro_core::assets::fused_decoder(
            &cfg.model.to_string_lossy(),
        ));
        if opts.device == kokoro_ort::Device::Cpu && fused.is_file() {
            dec = fused;
        }
        if let Some(d) = decoder {
            dec = d.to_path_buf();
        }
        if cfg.split && enc.is_file() && dec.is_file() {
            let encoder = Encoder::new(kokoro_ort::load_session(&enc, &opts)?, true)?;
            let decoder = kokoro_ort::load_session(&dec, &opts)?;
            Ok(Self {
                encoder,
                decoder: Some(decoder),
                run_options: kokoro_ort::run_options()?,
            })
        } else {
            Ok(Self {
                encoder: Encoder::new(kokoro_ort::load_session(&cfg.model, &opts)?, false)?,
                decoder: None,
                run_options: kokoro_ort::run_options()?,
            })
        }
    }

    /// The whole graph in one session, even where halves exist (benchmarks).
    pub fn load_unsplit(cfg: &EngineConfig) -> Result<Self, String> {
        let mut c = cfg.clone();
        c.split = false;
        Self::load(&c)
    }

    /// Whether the model runs as two halves (windowed streaming possible).
    pub fn is_split(&self) -> bool {
        self.decoder.is_some()
    }

    /// All of a call's audio: encoder, then the decoder over every frame.
    pub fn infer(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Vec<f32>, String> {
        match self.encode(ids, style, speed)? {
            Encoded::Audio(a) => Ok(a),
            Encoded::Features(f) => self.decode(&f, 0..f.frames, style),
        }
    }
}

/// The halves' paths for `model`.
pub fn halves(model: &Path) -> (PathBuf, PathBuf) {
    let (e, d) = kokoro_core::assets::halves(&model.to_string_lossy());
    (PathBuf::from(e), PathBuf::from(d))
}

impl Encoder {
    fn new(session: Session, split: bool) -> Result<Self, String> {
        let inputs = kokoro_ort::tensors(&session, false)?;
        let find = |cands: &[&str]| -> Option<&TensorInfo> {
            inputs.iter().find(|i| cands.contains(&i.name.as_str()))
        };
        let tokens = find(&["tokens", "input_ids"]).ok_or("model has no tokens/input_ids input")?;
        let style = find(&["style", "ref_s"]).ok_or("model has no style input")?;
        let speed = find(&["speed"]).ok_or("model has no speed input")?;
        let speed_kind = match speed.ty {
            TensorElementType::Int32 => SpeedKind::I32,
            TensorElementType::Int64 => SpeedKind::I64,
            _ => SpeedKind::F32,
        };
        let audio = if split {
            None
        } else {
            Some(
                session
                    .outputs
                    .iter()
                    .find(|o| o.name == "audio" || o.name == "waveform")
                    .or_else(|| session.outputs.first())
                    .map(|o| o.name.clone())
                    .ok_or("model has no outputs")?,
            )
        };
        let (tokens, style, speed) = (tokens.name.clone(), style.name.clone(), speed.name.clone());
        Ok(Self {
            session,
            tokens,
            style,
            speed,
            speed_kind,
            audio,
        })
    }
}

fn e(e: ort::Error) -> String {
    format!("inference: {e}")
}

fn tensor_f32(shape: Vec<i64>, data: Vec<f32>) -> Result<ort::value::DynValue, String> {
    Ok(Tensor::from_array((shape, data)).map_err(e)?.into_dyn())
}

impl Model for OrtModel {
    fn encode(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Encoded, String> {
        let enc = &mut self.encoder;
        let tokens = Tensor::from_array((vec![1i64, ids.len() as i64], ids.to_vec())).map_err(e)?;
        let style_t = tensor_f32(vec![1, style.len() as i64], style.to_vec())?;
        let speed_v: ort::value::DynValue = match enc.speed_kind {
            SpeedKind::F32 => tensor_f32(vec![1], vec![speed])?,
            SpeedKind::I32 => Tensor::from_array((vec![1i64], vec![speed.round() as i32]))
                .map_err(e)?
                .into_dyn(),
            SpeedKind::I64 => Tensor::from_array((vec![1i64], vec![speed.round() as i64]))
                .map_err(e)?
                .into_dyn(),
        };
        let outputs = enc
            .session
            .run_with_options(
                ort::inputs![
                    enc.tokens.as_str() => tokens,
                    enc.style.as_str() => style_t,
                    enc.speed.as_str() => speed_v,
                ],
                &self.run_options,
            )
            .map_err(e)?;
        if let Some(name) = &enc.audio {
            let (_, audio) = outputs[name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(e)?;
            return Ok(Encoded::Audio(audio.to_vec()));
        }
        Features::from_outputs(|name| {
            let (shape, v) = outputs[name].try_extract_tensor::<f32>().map_err(e)?;
            Ok((
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                v.to_vec(),
            ))
        })
        .map(Encoded::Features)
    }

    fn decode(
        &mut self,
        f: &Features,
        frames: Range<usize>,
        style: &[f32],
    ) -> Result<Vec<f32>, String> {
        let Some(decoder) = &mut self.decoder else {
            return Err("this model has no decoder half".into());
        };
        let n = (frames.end - frames.start) as i64;
        let (asr, f0, energy) = f.window(&frames);
        let outputs = decoder
            .run_with_options(
                ort::inputs![
                    layout::CUT_FEATURES => tensor_f32(vec![1, f.channels as i64, n], asr)?,
                    layout::CUT_F0 => tensor_f32(vec![1, 2 * n], f0)?,
                    layout::CUT_ENERGY => tensor_f32(vec![1, 2 * n], energy)?,
                    "style" => tensor_f32(vec![1, style.len() as i64], style.to_vec())?,
                ],
                &self.run_options,
            )
            .map_err(e)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(e)?;
        Ok(audio.to_vec())
    }
}
