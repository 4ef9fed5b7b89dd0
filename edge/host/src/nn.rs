//! wasi-nn for the edge component: the `wasi:nn` interfaces come from
//! `wasmtime-wasi-nn` (its WIT plumbing), the ONNX backend behind them is ours.
//!
//! Why our own backend: `wasmtime-wasi-nn` 48's ONNX backend accepts only f32
//! input tensors (an i64 tensor such as Kokoro's `input_ids` reaches an
//! `unimplemented!` and panics the host), and its registry loads graphs per
//! process for `wasmtime serve`. Here:
//! - graphs are loaded once at start (`--nn-model`) into an [`Arc`]-shared
//!   registry and reused by every instance (`load-by-name`); guest-supplied
//!   model bytes (`load`) are refused: a request cannot make the host parse an
//!   arbitrary model;
//! - inputs may be f32, f64, i32, i64 or u8, checked against the session's own
//!   input types and ranks; outputs f32 or i64;
//! - ONNX Runtime is the same library, session options and run options as the
//!   native backend (`kokoro-ort`), on CPU or CUDA (`--nn-device`, failing loudly
//!   when CUDA is not available).

use anyhow::Result;
use kokoro_ort::ort;
use ort::session::Session;
use ort::tensor::TensorElementType;
use ort::value::{DynValue, Tensor as OrtTensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{Backend, ExecutionContext, Graph, GraphRegistry, Registry, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NnDevice {
    Cpu,
    Cuda,
}

/// Load the ONNX Runtime library (once per process).
pub fn init_ort(dylib: &Path) -> Result<()> {
    kokoro_ort::init(dylib).map_err(anyhow::Error::msg)
}

/// wasi-nn reports only "Failed while accessing backend" to the guest; the cause
/// goes to the host log.
fn backend_err(msg: impl std::fmt::Display) -> BackendError {
    tracing::warn!(error = %msg, "wasi-nn backend");
    BackendError::BackendAccess(wasmtime::format_err!("{msg}"))
}

/// One loaded ONNX graph, shared by every instance.
struct OrtGraph {
    session: Mutex<Session>,
    run_options: ort::session::RunOptions,
    /// Input name, element type, rank.
    inputs: Vec<(String, TensorElementType, usize)>,
    outputs: Vec<String>,
}

/// Load `model` into a session with the native backend's options.
fn load_graph(model: &Path, device: NnDevice, intra_threads: usize) -> Result<OrtGraph> {
    let opts = kokoro_ort::SessionOptions {
        device: match device {
            NnDevice::Cpu => kokoro_ort::Device::Cpu,
            NnDevice::Cuda => kokoro_ort::Device::Cuda,
        },
        intra_threads,
    };
    let session = kokoro_ort::load_session(model, &opts).map_err(anyhow::Error::msg)?;
    let inputs = kokoro_ort::tensors(&session, false)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|t| (t.name, t.ty, t.rank))
        .collect();
    let outputs = session.outputs.iter().map(|o| o.name.clone()).collect();
    Ok(OrtGraph {
        session: Mutex::new(session),
        run_options: kokoro_ort::run_options().map_err(anyhow::Error::msg)?,
        inputs,
        outputs,
    })
}

/// The handle every instance's `load-by-name` gets, with that store's copy limit.
struct SharedGraph {
    graph: Arc<OrtGraph>,
    limit: usize,
}

impl BackendGraph for SharedGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx: Box<dyn BackendExecutionContext> = Box::new(OrtContext {
            graph: self.graph.clone(),
            inputs: HashMap::new(),
            outputs: Vec::new(),
            limit: self.limit,
        });
        Ok(ctx.into())
    }
}

struct OrtContext {
    graph: Arc<OrtGraph>,
    inputs: HashMap<String, Tensor>,
    outputs: Vec<NamedTensor>,
    /// Bytes of tensors this context may hold on the host (inputs and outputs
    /// together): the store's memory limit, so a guest cannot make the host copy
    /// more than it may hold itself.
    limit: usize,
}

impl OrtContext {
    fn held(&self) -> usize {
        let ins: usize = self.inputs.values().map(|t| t.data.len()).sum();
        ins + self
            .outputs
            .iter()
            .map(|t| t.tensor.data.len())
            .sum::<usize>()
    }

    fn reserve(&self, more: usize, replacing: usize) -> Result<(), BackendError> {
        fits(self.held(), replacing, more, self.limit)
    }
}

/// Whether `more` bytes fit beside `held` (of which `replacing` go) under `limit`.
fn fits(held: usize, replacing: usize, more: usize, limit: usize) -> Result<(), BackendError> {
    let after = held.saturating_sub(replacing).saturating_add(more);
    if after > limit {
        return Err(backend_err(format!(
            "tensors of {after} bytes exceed the instance's limit of {limit} bytes"
        )));
    }
    Ok(())
}

fn elem_of(ty: TensorType) -> Option<TensorElementType> {
    Some(match ty {
        TensorType::Fp32 => TensorElementType::Float32,
        TensorType::Fp64 => TensorElementType::Float64,
        TensorType::I32 => TensorElementType::Int32,
        TensorType::I64 => TensorElementType::Int64,
        TensorType::U8 => TensorElementType::Uint8,
        TensorType::Fp16 | TensorType::Bf16 => return None,
    })
}

fn width(ty: TensorElementType) -> usize {
    match ty {
        TensorElementType::Float64 | TensorElementType::Int64 => 8,
        TensorElementType::Uint8 => 1,
        _ => 4,
    }
}

/// Check a guest tensor's type, rank and byte length against the model's input;
/// returns its ORT shape.
fn check(t: &Tensor, want: TensorElementType, rank: usize) -> Result<Vec<i64>, BackendError> {
    let ty = elem_of(t.ty).ok_or_else(|| backend_err(format!("unsupported type {:?}", t.ty)))?;
    if ty != want {
        return Err(backend_err(format!(
            "tensor type {ty:?} does not match the model's {want:?}"
        )));
    }
    if t.dimensions.len() != rank {
        return Err(backend_err(format!(
            "tensor rank {} does not match the model's {rank}",
            t.dimensions.len()
        )));
    }
    let need = t
        .dimensions
        .iter()
        .try_fold(width(ty), |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| backend_err("tensor too large"))?;
    if need != t.data.len() {
        return Err(backend_err(format!(
            "tensor data is {} bytes; dimensions {:?} of {ty:?} need {need}",
            t.data.len(),
            t.dimensions,
        )));
    }
    Ok(t.dimensions.iter().map(|&d| i64::from(d)).collect())
}

/// A checked guest tensor as an ORT value.
fn to_value(t: &Tensor, want: TensorElementType, rank: usize) -> Result<DynValue, BackendError> {
    let shape = check(t, want, rank)?;
    let d = &t.data;
    let e = |e: ort::Error| backend_err(e);
    Ok(match want {
        TensorElementType::Float32 => OrtTensor::from_array((shape, decode(d, f32::from_le_bytes)))
            .map_err(e)?
            .into_dyn(),
        TensorElementType::Float64 => OrtTensor::from_array((shape, decode(d, f64::from_le_bytes)))
            .map_err(e)?
            .into_dyn(),
        TensorElementType::Int32 => OrtTensor::from_array((shape, decode(d, i32::from_le_bytes)))
            .map_err(e)?
            .into_dyn(),
        TensorElementType::Int64 => OrtTensor::from_array((shape, decode(d, i64::from_le_bytes)))
            .map_err(e)?
            .into_dyn(),
        _ => OrtTensor::from_array((shape, d.clone()))
            .map_err(e)?
            .into_dyn(),
    })
}

/// Little-endian elements of `N` bytes (the length was checked by [`check`]).
fn decode<T, const N: usize>(d: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    d.chunks_exact(N)
        .map(|b| from(b.try_into().unwrap_or([0; N])))
        .collect()
}

impl OrtContext {
    fn name_of(&self, id: &Id) -> Result<String, BackendError> {
        match id {
            Id::Name(n) => Ok(n.clone()),
            Id::Index(i) => self
                .graph
                .inputs
                .get(*i as usize)
                .map(|(n, ..)| n.clone())
                .ok_or_else(|| backend_err(format!("no input {i}"))),
        }
    }

    fn run(&mut self) -> Result<(), BackendError> {
        let g = &self.graph;
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(g.inputs.len());
        for (name, ty, rank) in &g.inputs {
            let t = self
                .inputs
                .get(name)
                .ok_or_else(|| backend_err(format!("missing input tensor '{name}'")))?;
            values.push((name.clone(), to_value(t, *ty, *rank)?));
        }
        let mut session = g.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run_with_options(values, &g.run_options)
            .map_err(backend_err)?;
        self.outputs.clear();
        for name in &g.outputs {
            let v = &outputs[name.as_str()];
            let elems = v
                .shape()
                .iter()
                .try_fold(8usize, |acc, &d| acc.checked_mul(d.max(0) as usize))
                .unwrap_or(usize::MAX);
            self.reserve(elems, 0)?;
            let tensor = if let Ok((shape, data)) = v.try_extract_tensor::<f32>() {
                Tensor {
                    dimensions: shape.iter().map(|&d| d.max(0) as u32).collect(),
                    ty: TensorType::Fp32,
                    data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                }
            } else if let Ok((shape, data)) = v.try_extract_tensor::<i64>() {
                Tensor {
                    dimensions: shape.iter().map(|&d| d.max(0) as u32).collect(),
                    ty: TensorType::I64,
                    data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                }
            } else {
                return Err(backend_err(format!("output '{name}' is not f32 or i64")));
            };
            self.outputs.push(NamedTensor {
                name: name.clone(),
                tensor,
            });
        }
        Ok(())
    }
}

impl BackendExecutionContext for OrtContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = self.name_of(&id)?;
        if !self.graph.inputs.iter().any(|(n, ..)| *n == name) {
            return Err(backend_err(format!("unknown input '{name}'")));
        }
        let replacing = self.inputs.get(&name).map_or(0, |t| t.data.len());
        self.reserve(tensor.data.len(), replacing)?;
        self.inputs.insert(name, tensor.clone());
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Index(i) => self.outputs.get(*i as usize),
            Id::Name(n) => self.outputs.iter().find(|t| t.name == *n),
        };
        found
            .map(|t| t.tensor.clone())
            .ok_or_else(|| backend_err(format!("no output {id:?}; has compute run?")))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let named = inputs.is_some();
        if let Some(inputs) = inputs {
            self.inputs.clear();
            for t in inputs {
                self.set_input(Id::Name(t.name), &t.tensor)?;
            }
        }
        self.run()?;
        Ok(named.then(|| {
            self.outputs
                .iter()
                .map(|t| NamedTensor {
                    name: t.name.clone(),
                    tensor: t.tensor.clone(),
                })
                .collect()
        }))
    }
}

/// The ONNX backend: graphs only by name (preloaded); `load` from guest bytes is refused.
struct OnnxByName;

impl BackendInner for OnnxByName {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }
    fn load(&mut self, _: &[&[u8]], _: ExecutionTarget) -> Result<Graph, BackendError> {
        Err(backend_err(
            "this host serves preloaded graphs only: use load-by-name",
        ))
    }
    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// The graphs loaded at start, shared by every store.
#[derive(Clone, Default)]
pub struct Graphs(Arc<HashMap<String, Graph>>);

impl Graphs {
    /// Load `model` under `name`; an execution context may hold `limit` bytes of
    /// tensors on the host (the instances' memory limit). When the model's
    /// encoder and decoder halves lie beside it (`X.encoder.onnx`,
    /// `X.decoder.onnx`), those are loaded instead, as `name.encoder` and
    /// `name.decoder`, and the component decodes streamed speech in windows.
    pub fn load(
        name: &str,
        model: &Path,
        device: NnDevice,
        intra_threads: usize,
        limit: usize,
    ) -> Result<Self> {
        let shared = |path: &Path| -> Result<Graph> {
            let g: Box<dyn BackendGraph> = Box::new(SharedGraph {
                graph: Arc::new(load_graph(path, device, intra_threads)?),
                limit,
            });
            Ok(Graph::from(g))
        };
        let (enc, mut dec) = kokoro_core::assets::halves(&model.to_string_lossy());
        // On CPU the fused-Snake decoder, as the backend does (same audio).
        let fused = kokoro_core::assets::fused_decoder(&model.to_string_lossy());
        if matches!(device, NnDevice::Cpu) && Path::new(&fused).is_file() {
            dec = fused;
        }
        let (enc, dec) = (Path::new(&enc), Path::new(&dec));
        let mut map = HashMap::new();
        if enc.is_file() && dec.is_file() {
            map.insert(format!("{name}.encoder"), shared(enc)?);
            map.insert(format!("{name}.decoder"), shared(dec)?);
        } else {
            map.insert(name.to_string(), shared(model)?);
        }
        Ok(Self(Arc::new(map)))
    }

    /// The names graphs are offered under.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.0.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// A per-store wasi-nn context over the shared graphs.
    pub fn ctx(&self) -> wasmtime_wasi_nn::wit::WasiNnCtx {
        let backends: Vec<Backend> = vec![Backend::from(OnnxByName)];
        wasmtime_wasi_nn::wit::WasiNnCtx::new(backends, Registry::from(self.clone()))
    }
}

impl GraphRegistry for Graphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }
    fn get_mut(&mut self, _name: &str) -> Option<&mut Graph> {
        // Shared graphs are never handed out mutably.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_checked_before_they_reach_the_runtime() {
        let t = Tensor {
            dimensions: vec![1, 2],
            ty: TensorType::I64,
            data: vec![0; 16],
        };
        assert_eq!(check(&t, TensorElementType::Int64, 2).unwrap(), vec![1, 2]);
        let wrong_type = check(&t, TensorElementType::Float32, 2).unwrap_err();
        assert!(format!("{wrong_type}").contains("backend"));
        assert!(check(&t, TensorElementType::Int64, 3).is_err());
        let short = Tensor {
            data: vec![0; 15],
            ..t.clone()
        };
        assert!(check(&short, TensorElementType::Int64, 2).is_err());
        let half = Tensor {
            ty: TensorType::Fp16,
            ..t
        };
        assert!(check(&half, TensorElementType::Float16, 2).is_err());
        // Shapes whose byte count overflows are refused, not multiplied out.
        let huge = Tensor {
            dimensions: vec![1 << 31, 1 << 31],
            ty: TensorType::I64,
            data: vec![0; 16],
        };
        assert!(check(&huge, TensorElementType::Int64, 2).is_err());
        let huge = Tensor {
            dimensions: vec![u32::MAX, u32::MAX, u32::MAX],
            ..huge
        };
        assert!(check(&huge, TensorElementType::Int64, 3).is_err());
    }

    #[test]
    fn host_copies_are_bounded_by_the_instance_limit() {
        assert!(fits(0, 0, 100, 100).is_ok());
        assert!(fits(50, 0, 51, 100).is_err());
        // Replacing an input counts its new size, not both.
        assert!(fits(100, 100, 100, 100).is_ok());
        assert!(fits(usize::MAX - 1, 0, 10, usize::MAX - 1).is_err());
    }

    #[test]
    fn guest_bytes_are_refused_and_unknown_names_absent() {
        let mut b = OnnxByName;
        assert!(b.load(&[b"not a model"], ExecutionTarget::Cpu).is_err());
        assert!(Graphs::default().get("kokoro").is_none());
    }
}
