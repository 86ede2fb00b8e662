//! ONNX models on ONNX Runtime (crate `ort`, loaded dynamically at start-up).

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use kiln_api::protocol::{DataType, Tensor};
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, ValueType};

use super::{Device, LoadError, Runtime};
use crate::layout::{ModelFormat, ModelLayout};
use crate::model::{InferError, Model, Signature, TensorSpec};

/// Serves ONNX models. The ONNX Runtime library is found by [`crate::native`] unless given.
#[derive(Debug, Default)]
pub struct OnnxRuntime {
    /// The `libonnxruntime.so` to load; `None` finds it.
    pub library: Option<PathBuf>,
    /// Threads per inference (ONNX Runtime's intra-op threads); `None` uses the CPUs this
    /// process may run on.
    pub threads: Option<usize>,
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment(
    library: Option<PathBuf>,
) -> Result<&'static ort::environment::Environment, LoadError> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = match library {
                Some(p) => p,
                None => crate::native::onnxruntime_library()?,
            };
            ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("kiln")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| LoadError::Library(e.clone()))
}

impl Runtime for OnnxRuntime {
    fn format(&self) -> ModelFormat {
        ModelFormat::Onnx
    }

    fn load(&self, layout: &ModelLayout, device: Device) -> Result<Box<dyn Model>, LoadError> {
        let env = environment(self.library.clone())?;
        let file = layout.model_file.display().to_string();
        let model_err = |message: String| LoadError::Model {
            file: file.clone(),
            message,
        };
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut builder = Session::builder(env)
            .map_err(|e| model_err(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| model_err(e.to_string()))?;
        if let Device::Cuda(id) = device {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default()
                    .with_device_id(id as i32)
                    .build()
                    .error_on_failure()])
                .map_err(|e| {
                    LoadError::Device(format!(
                        "--device {device}: ONNX Runtime's CUDA execution provider is not available ({e}); \
                         this needs the GPU build of ONNX Runtime (onnxruntime-gpu) via ORT_DYLIB_PATH, and a GPU"
                    ))
                })?;
        }
        let session = builder
            .commit_from_file(&layout.model_file)
            .map_err(|e| model_err(e.to_string()))?;
        let signature = Signature {
            inputs: session
                .inputs()
                .iter()
                .map(|o| spec(o.name(), o.dtype()))
                .collect::<Result<_, _>>()?,
            outputs: session
                .outputs()
                .iter()
                .map(|o| spec(o.name(), o.dtype()))
                .collect::<Result<_, _>>()?,
        };
        Ok(Box::new(OnnxModel { session, signature }))
    }
}

fn spec(name: &str, dtype: &ValueType) -> Result<TensorSpec, LoadError> {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        return Err(LoadError::Signature(format!(
            "'{name}' is not a tensor ({dtype}); Kiln serves tensor inputs and outputs only"
        )));
    };
    let datatype = from_ort(*ty).ok_or_else(|| {
        LoadError::Signature(format!(
            "'{name}' has element type {ty:?}, which Kiln does not serve"
        ))
    })?;
    Ok(TensorSpec {
        name: name.to_owned(),
        datatype,
        shape: shape.iter().copied().collect(),
    })
}

fn from_ort(t: TensorElementType) -> Option<DataType> {
    Some(match t {
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Bool => DataType::Bool,
        _ => return None,
    })
}

struct OnnxModel {
    session: Session,
    signature: Signature,
}

fn to_ort(t: &Tensor) -> Result<SessionInputValue<'static>, ort::Error> {
    let shape: Vec<i64> = t.shape.clone();
    macro_rules! typed {
        ($ty:ty) => {{
            let values: Vec<$ty> = bytemuck::pod_collect_to_vec(&t.data);
            ort::value::Tensor::from_array((shape, values))?.into()
        }};
    }
    Ok(match t.datatype {
        DataType::Fp32 => typed!(f32),
        DataType::Fp64 => typed!(f64),
        DataType::Fp16 => typed!(half::f16),
        DataType::Bf16 => typed!(half::bf16),
        DataType::Int8 => typed!(i8),
        DataType::Int16 => typed!(i16),
        DataType::Int32 => typed!(i32),
        DataType::Int64 => typed!(i64),
        DataType::Uint8 => typed!(u8),
        DataType::Uint16 => typed!(u16),
        DataType::Uint32 => typed!(u32),
        DataType::Uint64 => typed!(u64),
        DataType::Bool => {
            let values: Vec<bool> = t.data.iter().map(|&b| b != 0).collect();
            ort::value::Tensor::from_array((shape, values))?.into()
        }
        DataType::Bytes => unreachable!("BYTES is refused before inference"),
    })
}

fn from_ort_value(
    name: &str,
    datatype: DataType,
    value: &ort::value::DynValue,
) -> Result<Tensor, ort::Error> {
    macro_rules! typed {
        ($ty:ty) => {{
            let (shape, values) = value.try_extract_tensor::<$ty>()?;
            (
                shape.iter().copied().collect::<Vec<i64>>(),
                Bytes::copy_from_slice(bytemuck::cast_slice(values)),
            )
        }};
    }
    let (shape, data) = match datatype {
        DataType::Fp32 => typed!(f32),
        DataType::Fp64 => typed!(f64),
        DataType::Fp16 => typed!(half::f16),
        DataType::Bf16 => typed!(half::bf16),
        DataType::Int8 => typed!(i8),
        DataType::Int16 => typed!(i16),
        DataType::Int32 => typed!(i32),
        DataType::Int64 => typed!(i64),
        DataType::Uint8 => typed!(u8),
        DataType::Uint16 => typed!(u16),
        DataType::Uint32 => typed!(u32),
        DataType::Uint64 => typed!(u64),
        DataType::Bool => {
            let (shape, values) = value.try_extract_tensor::<bool>()?;
            (
                shape.iter().copied().collect(),
                values
                    .iter()
                    .map(|&b| u8::from(b))
                    .collect::<Vec<u8>>()
                    .into(),
            )
        }
        DataType::Bytes => unreachable!("BYTES outputs are refused at load"),
    };
    Ok(Tensor {
        name: name.to_owned(),
        datatype,
        shape,
        data,
    })
}

impl Model for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn infer(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
        let err = |e: ort::Error| InferError(e.to_string());
        let values: Vec<(String, SessionInputValue<'static>)> = inputs
            .iter()
            .map(|t| Ok((t.name.clone(), to_ort(t)?)))
            .collect::<Result<_, ort::Error>>()
            .map_err(err)?;
        let outputs = self.session.run(values).map_err(err)?;
        self.signature
            .outputs
            .iter()
            .map(|spec| {
                let value = outputs.get(&spec.name).ok_or_else(|| {
                    InferError(format!("the model returned no output '{}'", spec.name))
                })?;
                from_ort_value(&spec.name, spec.datatype, value).map_err(err)
            })
            .collect()
    }
}
