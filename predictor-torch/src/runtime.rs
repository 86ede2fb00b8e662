//! TorchScript models on libtorch (crate `tch`). Only the `kiln-predictor-torch` binary
//! carries this runtime: it lives in this crate, not in `kiln-predictor`, so that no build of
//! `kiln` can link libtorch (cargo would unify a feature across the workspace).
//!
//! TorchScript files carry no signature: it comes from Triton's `config.pbtxt` beside the
//! model (so Triton model repositories work unchanged) or from Kiln's `signature.json`
//! (see [`kiln_predictor::signature`]). Inputs are passed positionally in signature order; the
//! module may return a tensor, or a tuple or list of tensors in output order.

use bytes::Bytes;
use kiln_api::protocol::{DataType, Tensor};
use tch::{CModule, IValue, Kind};

use kiln_predictor::layout::{ModelFormat, ModelLayout};
use kiln_predictor::model::{InferError, Model, Signature};
use kiln_predictor::runtime::{Device, LoadError, Runtime};
use kiln_predictor::signature;

/// Serves TorchScript models.
#[derive(Debug, Default)]
pub(crate) struct TorchRuntime;

fn kind(datatype: DataType) -> Option<Kind> {
    Some(match datatype {
        DataType::Fp32 => Kind::Float,
        DataType::Fp64 => Kind::Double,
        DataType::Fp16 => Kind::Half,
        DataType::Bf16 => Kind::BFloat16,
        DataType::Int8 => Kind::Int8,
        DataType::Int16 => Kind::Int16,
        DataType::Int32 => Kind::Int,
        DataType::Int64 => Kind::Int64,
        DataType::Uint8 => Kind::Uint8,
        DataType::Bool => Kind::Bool,
        DataType::Uint16 | DataType::Uint32 | DataType::Uint64 | DataType::Bytes => return None,
    })
}

impl Runtime for TorchRuntime {
    fn format(&self) -> ModelFormat {
        ModelFormat::PyTorch
    }

    fn load(&self, layout: &ModelLayout, device: Device) -> Result<Box<dyn Model>, LoadError> {
        let signature = match (&layout.triton_config, &layout.signature_file) {
            (Some(config), _) => signature::from_triton_config(config),
            (None, Some(file)) => signature::from_signature_json(file),
            (None, None) => {
                return Err(LoadError::Signature(format!(
                    "{} has no signature: put Triton's config.pbtxt or Kiln's signature.json beside it",
                    layout.model_file.display()
                )));
            }
        }
        .map_err(|e| LoadError::Signature(e.to_string()))?;
        for spec in signature.inputs.iter().chain(&signature.outputs) {
            if kind(spec.datatype).is_none() {
                return Err(LoadError::Signature(format!(
                    "'{}' is {}, which libtorch does not support",
                    spec.name, spec.datatype
                )));
            }
        }
        let device = match device {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(n) => {
                if !tch::Cuda::is_available() {
                    return Err(LoadError::Device(format!(
                        "--device {device}: no CUDA device is usable by libtorch (no GPU, no driver, or a CPU-only \
                         build of kiln-predictor-torch; the CUDA build is kiln-predictor-torch-cuda)"
                    )));
                }
                let count = tch::Cuda::device_count();
                if i64::from(n) >= count {
                    return Err(LoadError::Device(format!(
                        "--device {device}: only {count} CUDA device(s) present"
                    )));
                }
                tch::Device::Cuda(n as usize)
            }
        };
        let mut module =
            CModule::load_on_device(&layout.model_file, device).map_err(|e| LoadError::Model {
                file: layout.model_file.display().to_string(),
                message: e.to_string(),
            })?;
        module.set_eval();
        Ok(Box::new(TorchModel {
            module,
            signature,
            device,
        }))
    }
}

struct TorchModel {
    module: CModule,
    signature: Signature,
    device: tch::Device,
}

fn to_tensor(t: &Tensor, device: tch::Device) -> Result<tch::Tensor, InferError> {
    let kind =
        kind(t.datatype).ok_or_else(|| InferError(format!("{} is not supported", t.datatype)))?;
    tch::Tensor::f_from_data_size(&t.data, &t.shape, kind)
        .and_then(|x| x.f_to_device(device))
        .map_err(|e| InferError(e.to_string()))
}

fn from_tensor(name: &str, datatype: DataType, t: &tch::Tensor) -> Result<Tensor, InferError> {
    let err = |e: tch::TchError| InferError(e.to_string());
    let want = kind(datatype).expect("checked at load");
    let t = t
        .f_to_device(tch::Device::Cpu)
        .and_then(|t| t.f_to_kind(want))
        .and_then(|t| t.f_contiguous())
        .map_err(err)?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * datatype.size().expect("fixed-size type")];
    t.f_copy_data_u8(&mut data, numel).map_err(err)?;
    Ok(Tensor {
        name: name.to_owned(),
        datatype,
        shape: t.size(),
        data: Bytes::from(data),
    })
}

impl Model for TorchModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn platform(&self) -> &'static str {
        "pytorch_libtorch"
    }

    fn infer(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
        tch::no_grad(|| {
            let args: Vec<IValue> = inputs
                .iter()
                .map(|t| to_tensor(t, self.device).map(IValue::Tensor))
                .collect::<Result<_, _>>()?;
            let result = self
                .module
                .forward_is(&args)
                .map_err(|e| InferError(e.to_string()))?;
            let tensors: Vec<tch::Tensor> = match result {
                IValue::Tensor(t) => vec![t],
                IValue::Tuple(items) | IValue::GenericList(items) => items
                    .into_iter()
                    .map(|v| match v {
                        IValue::Tensor(t) => Ok(t),
                        other => Err(InferError(format!(
                            "the module returned a non-tensor item: {other:?}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                IValue::TensorList(items) => items,
                other => {
                    return Err(InferError(format!(
                        "the module returned {other:?}, not tensors"
                    )));
                }
            };
            if tensors.len() != self.signature.outputs.len() {
                return Err(InferError(format!(
                    "the module returned {} tensors; the signature names {} outputs",
                    tensors.len(),
                    self.signature.outputs.len()
                )));
            }
            self.signature
                .outputs
                .iter()
                .zip(&tensors)
                .map(|(spec, t)| from_tensor(&spec.name, spec.datatype, t))
                .collect()
        })
    }
}
