//! The acoustic model: phoneme ids + style vector + speed -> 24 kHz samples.
//!
//! [`OrtModel`] runs the real Kokoro-82M through ONNX Runtime. Input and output
//! names and dtypes are read from the session, since exports differ (`tokens` vs
//! `input_ids`, `audio` vs `waveform`, float vs int `speed`).

use crate::config::{Device, EngineConfig};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::tensor::TensorElementType;
use ort::value::{Tensor, ValueType};
use std::sync::OnceLock;

/// Anything that turns padded ids into audio (shared with the wasi-nn edge). The
/// real one here is [`OrtModel`].
pub use kokoro_synth::Model;

static ORT_INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// Load the ONNX Runtime library once per process.
pub fn init_ort(cfg: &EngineConfig) -> Result<(), String> {
    ORT_INIT
        .get_or_init(|| {
            let path = cfg.ort_dylib.display().to_string();
            if !cfg.ort_dylib.is_file() {
                return Err(format!("ONNX Runtime library not found at {path}"));
            }
            ort::init_from(path.clone())
                .with_name("kokoro")
                .commit()
                .map(|_| ())
                .map_err(|e| format!("cannot load ONNX Runtime from {path}: {e}"))
        })
        .clone()
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

fn elem(t: &ValueType) -> Option<TensorElementType> {
    match t {
        ValueType::Tensor { ty, .. } => Some(*ty),
        _ => None,
    }
}

impl OrtModel {
    pub fn load(cfg: &EngineConfig) -> Result<Self, String> {
        init_ort(cfg)?;
        let err = |e: ort::Error| format!("ONNX session: {e}");
        let mut builder = Session::builder()
            .map_err(err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(err)?
            .with_intra_threads(cfg.intra_threads)
            .map_err(err)?
            .with_inter_threads(1)
            .map_err(err)?
            // Initializers outside the arena: ~40 MB less resident, same speed.
            .with_config_entry("session.use_device_allocator_for_initializers", "1")
            .map_err(err)?;
        if cfg.device == Device::Cuda {
            use ort::execution_providers::{CUDAExecutionProvider, ExecutionProvider};
            let cuda = CUDAExecutionProvider::default();
            if !cuda.is_available().unwrap_or(false) {
                return Err(
                    "--device cuda: the CUDA execution provider is not available in this ONNX \
                     Runtime build or on this machine; refusing to fall back to CPU"
                        .into(),
                );
            }
            builder = builder
                .with_execution_providers([cuda.build().error_on_failure()])
                .map_err(err)?;
        }
        let session = builder
            .commit_from_file(&cfg.model)
            .map_err(|e| format!("cannot load model {}: {e}", cfg.model.display()))?;
        Self::from_session(session)
    }

    fn from_session(session: Session) -> Result<Self, String> {
        let find = |cands: &[&str]| -> Option<String> {
            session
                .inputs
                .iter()
                .find(|i| cands.contains(&i.name.as_str()))
                .map(|i| i.name.clone())
        };
        let tokens = find(&["tokens", "input_ids"]).ok_or("model has no tokens/input_ids input")?;
        let style = find(&["style", "ref_s"]).ok_or("model has no style input")?;
        let speed = find(&["speed"]).ok_or("model has no speed input")?;
        let speed_kind = session
            .inputs
            .iter()
            .find(|i| i.name == speed)
            .and_then(|i| elem(&i.input_type))
            .map(|t| match t {
                TensorElementType::Int32 => SpeedKind::I32,
                TensorElementType::Int64 => SpeedKind::I64,
                _ => SpeedKind::F32,
            })
            .unwrap_or(SpeedKind::F32);
        let output = session
            .outputs
            .iter()
            .find(|o| o.name == "audio" || o.name == "waveform")
            .or_else(|| session.outputs.first())
            .map(|o| o.name.clone())
            .ok_or("model has no outputs")?;
        // Give arena growth from a long chunk back after each run, so steady memory
        // stays near the session's own size.
        let mut run_options =
            ort::session::RunOptions::new().map_err(|e| format!("run options: {e}"))?;
        run_options
            .add_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(|e| format!("run options: {e}"))?;
        Ok(Self {
            session,
            run_options,
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
