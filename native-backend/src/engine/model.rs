//! The acoustic model: phoneme ids + style vector + speed -> 24 kHz samples.
//!
//! [`OrtModel`] runs the real Kokoro-82M through ONNX Runtime. Input and output
//! names and dtypes are read from the session, since exports differ (`tokens` vs
//! `input_ids`, `audio` vs `waveform`, float vs int `speed`).

use crate::config::{Device, EngineConfig};
use kokoro_ort::ort;
use kokoro_ort::{SessionOptions, TensorInfo};
use ort::session::Session;
use ort::tensor::TensorElementType;
use ort::value::Tensor;

/// Anything that turns padded ids into audio (shared with the wasi-nn edge). The
/// real one here is [`OrtModel`].
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

pub struct OrtModel {
    session: Session,
    run_options: ort::session::RunOptions,
    tokens: String,
    style: String,
    speed: String,
    speed_kind: SpeedKind,
    output: String,
}

impl OrtModel {
    pub fn load(cfg: &EngineConfig) -> Result<Self, String> {
        init_ort(cfg)?;
        let opts = SessionOptions {
            device: match cfg.device {
                Device::Cpu => kokoro_ort::Device::Cpu,
                Device::Cuda => kokoro_ort::Device::Cuda,
            },
            intra_threads: cfg.intra_threads,
        };
        Self::from_session(kokoro_ort::load_session(&cfg.model, &opts)?)
    }

    fn from_session(session: Session) -> Result<Self, String> {
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
        let output = session
            .outputs
            .iter()
            .find(|o| o.name == "audio" || o.name == "waveform")
            .or_else(|| session.outputs.first())
            .map(|o| o.name.clone())
            .ok_or("model has no outputs")?;
        let (tokens, style, speed) = (tokens.name.clone(), style.name.clone(), speed.name.clone());
        Ok(Self {
            run_options: kokoro_ort::run_options()?,
            session,
            tokens,
            style,
            speed,
            speed_kind,
            output,
        })
    }
}

impl Model for OrtModel {
    fn infer(&mut self, ids: &[i64], style: &[f32], speed: f32) -> Result<Vec<f32>, String> {
        let e = |e: ort::Error| format!("inference: {e}");
        let tokens = Tensor::from_array((vec![1i64, ids.len() as i64], ids.to_vec())).map_err(e)?;
        let style_t =
            Tensor::from_array((vec![1i64, style.len() as i64], style.to_vec())).map_err(e)?;
        let speed_v: ort::value::DynValue = match self.speed_kind {
            SpeedKind::F32 => Tensor::from_array((vec![1i64], vec![speed]))
                .map_err(e)?
                .into_dyn(),
            SpeedKind::I32 => Tensor::from_array((vec![1i64], vec![speed.round() as i32]))
                .map_err(e)?
                .into_dyn(),
            SpeedKind::I64 => Tensor::from_array((vec![1i64], vec![speed.round() as i64]))
                .map_err(e)?
                .into_dyn(),
        };
        let outputs = self
            .session
            .run_with_options(
                ort::inputs![
                    self.tokens.as_str() => tokens,
                    self.style.as_str() => style_t,
                    self.speed.as_str() => speed_v,
                ],
                &self.run_options,
            )
            .map_err(e)?;
        let (_, audio) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        Ok(audio.to_vec())
    }
}
