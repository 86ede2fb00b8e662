//! Triton's model-configuration extension: the model's configuration as JSON
//! (`GET /v2/models/{m}/config`) and as the `ModelConfig` gRPC message.
//!
//! When the model's first dimension is dynamic, `max_batch_size` is positive and `dims`
//! leave the batch dimension out, as Triton's tools expect.

use kiln_api::protocol::grpc;
use serde_json::{Value, json};

use crate::model::TensorSpec;
use crate::state::{LoadedModel, ServerState};

fn dims(spec: &TensorSpec, batched: bool) -> &[i64] {
    if batched {
        &spec.shape[1..]
    } else {
        &spec.shape
    }
}

fn backend(platform: &str) -> &'static str {
    match platform {
        "onnxruntime_onnx" => "onnxruntime",
        "pytorch_libtorch" => "pytorch",
        _ => "",
    }
}

/// The configuration as Triton's JSON.
pub(crate) fn json(state: &ServerState, model: &LoadedModel) -> Value {
    let max_batch_size = state.triton_max_batch_size(&model.signature);
    let batched = max_batch_size > 0;
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "data_type": s.datatype.triton_config_name(),
                    "dims": dims(s, batched),
                })
            })
            .collect()
    };
    let mut config = json!({
        "name": state.model_name,
        "platform": model.platform,
        "backend": backend(model.platform),
        "max_batch_size": max_batch_size,
        "input": tensors(&model.signature.inputs),
        "output": tensors(&model.signature.outputs),
    });
    if state.batch_policy.max_batch_size > 1 && batched {
        config["dynamic_batching"] = json!({
            "max_queue_delay_microseconds": state.batch_policy.max_batch_delay.as_micros() as u64,
        });
    }
    config
}

/// The configuration as Triton's `ModelConfig` message.
pub(crate) fn message(state: &ServerState, model: &LoadedModel) -> grpc::ModelConfig {
    let max_batch_size = state.triton_max_batch_size(&model.signature);
    let batched = max_batch_size > 0;
    grpc::ModelConfig {
        name: state.model_name.clone(),
        platform: model.platform.to_owned(),
        backend: backend(model.platform).to_owned(),
        max_batch_size,
        input: model
            .signature
            .inputs
            .iter()
            .map(|s| grpc::ModelInput {
                name: s.name.clone(),
                data_type: s.datatype.triton_config_enum(),
                dims: dims(s, batched).to_vec(),
                optional: false,
            })
            .collect(),
        output: model
            .signature
            .outputs
            .iter()
            .map(|s| grpc::ModelOutput {
                name: s.name.clone(),
                data_type: s.datatype.triton_config_enum(),
                dims: dims(s, batched).to_vec(),
            })
            .collect(),
        dynamic_batching: (state.batch_policy.max_batch_size > 1 && batched).then(|| {
            grpc::ModelDynamicBatching {
                preferred_batch_size: Vec::new(),
                max_queue_delay_microseconds: state.batch_policy.max_batch_delay.as_micros() as u64,
            }
        }),
    }
}
