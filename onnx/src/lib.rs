//! `kokoro-ort`: the one ONNX Runtime layer, shared by the native backend's
//! inference workers and the edge host's wasi-nn backend, so both load the
//! library, build sessions and run them the same way.
//!
//! - [`init`]: load `libonnxruntime` once per process, with a clear error.
//! - [`load_session`]: the session options both use (level-3 optimization, one
//!   inter-op thread, initializers outside the arena) on a [`Device`]; CUDA is
//!   refused loudly when the provider is missing, never silently replaced by CPU.
//! - [`run_options`]: arena shrinkage after every run (steady memory stays near
//!   the session's own size after a long chunk).
//! - [`snake`]: the decoder's fused Snake activation, a custom operator every
//!   session registers.
//! - [`tensors`]: the names, element types and ranks of a session's inputs or
//!   outputs, for callers that discover them (exports differ).
//!
//! `ort` is re-exported so no crate depends on it with other features.

pub use ort;

pub mod snake;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::tensor::TensorElementType;
use ort::value::ValueType;
use std::path::Path;
use std::sync::OnceLock;

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    pub const fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

static INIT: OnceLock<Result<String, String>> = OnceLock::new();

/// Load ONNX Runtime from `dylib`, once per process; later calls return the
/// first call's outcome (a process has one ONNX Runtime).
pub fn init(dylib: &Path) -> Result<(), String> {
    let path = dylib.display().to_string();
    let first = INIT.get_or_init(|| {
        if !dylib.is_file() {
            return Err(format!(
                "ONNX Runtime library not found at {path} (run `cargo xtask assets`)"
            ));
        }
        ort::init_from(path.clone())
            .with_name("kokoro")
            .commit()
            .map(|_| path.clone())
            .map_err(|e| format!("cannot load ONNX Runtime from {path}: {e}"))
    });
    first.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// How to build a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads (the inter-op pool is one thread: Kokoro is one chain).
    pub intra_threads: usize,
}

/// The refusal when CUDA is asked for and cannot be had.
pub const CUDA_MISSING: &str = "CUDA was requested, but the CUDA execution provider is not \
     available in this ONNX Runtime build or on this machine; refusing to fall back to CPU";

/// Build a session for `model` ([`init`] must have succeeded).
pub fn load_session(model: &Path, opts: &SessionOptions) -> Result<Session, String> {
    let err = |e: ort::Error| format!("ONNX session: {e}");
    let mut builder = Session::builder()
        .map_err(err)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(err)?
        .with_intra_threads(opts.intra_threads)
        .map_err(err)?
        .with_inter_threads(1)
        .map_err(err)?
        // Initializers outside the arena: ~40 MB less resident, same speed.
        .with_config_entry("session.use_device_allocator_for_initializers", "1")
        .map_err(err)?
        // The fused Snake of the CPU decoder (a graph without it ignores the domain).
        .with_operators(snake::domain().map_err(err)?)
        .map_err(err)?;
    if opts.device == Device::Cuda {
        use ort::execution_providers::{CUDAExecutionProvider, ExecutionProvider};
        let cuda = CUDAExecutionProvider::default();
        if !cuda.is_available().unwrap_or(false) {
            return Err(CUDA_MISSING.into());
        }
        builder = builder
            .with_execution_providers([cuda.build().error_on_failure()])
            .map_err(err)?;
    }
    builder
        .commit_from_file(model)
        .map_err(|e| format!("cannot load model {}: {e}", model.display()))
}

/// Run options that give arena growth back after each run.
pub fn run_options() -> Result<RunOptions, String> {
    let mut r = RunOptions::new().map_err(|e| format!("run options: {e}"))?;
    r.add_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        .map_err(|e| format!("run options: {e}"))?;
    Ok(r)
}

/// One input or output of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: TensorElementType,
    pub rank: usize,
}

/// The inputs (`outputs = false`) or outputs of a session; every one must be a tensor.
pub fn tensors(session: &Session, outputs: bool) -> Result<Vec<TensorInfo>, String> {
    let list: Vec<(&str, &ValueType)> = if outputs {
        session
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), &o.output_type))
            .collect()
    } else {
        session
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), &i.input_type))
            .collect()
    };
    list.into_iter()
        .map(|(name, t)| match t {
            ValueType::Tensor { ty, shape, .. } => Ok(TensorInfo {
                name: name.to_string(),
                ty: *ty,
                rank: shape.len(),
            }),
            _ => Err(format!("{name} is not a tensor")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        // Runs before any successful init in this test binary.
        let e = init(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(e.contains("not found at /nonexistent"), "{e}");
        assert_eq!(Device::Cuda.as_str(), "cuda");
    }
}
