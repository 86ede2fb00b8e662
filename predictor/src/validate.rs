//! Checks a decoded request against the model's signature before it is queued.

use kiln_api::protocol::{InferRequest, Tensor};

use crate::error::ServeError;
use crate::model::{Signature, TensorSpec};

fn shape_matches(spec: &[i64], got: &[i64]) -> bool {
    spec.len() == got.len() && spec.iter().zip(got).all(|(&s, &g)| s < 0 || s == g)
}

/// Checks names, datatypes and shapes, and puts the inputs in the model's order. Requested
/// outputs must exist.
pub fn check_request(signature: &Signature, request: &mut InferRequest) -> Result<(), ServeError> {
    let inputs = check_inputs(signature, std::mem::take(&mut request.inputs))?;
    request.inputs = inputs;
    for wanted in &request.outputs {
        if !signature.outputs.iter().any(|o| o.name == wanted.name) {
            return Err(ServeError::BadRequest(format!(
                "unknown output '{}'; the model's outputs are: {}",
                wanted.name,
                names(&signature.outputs)
            )));
        }
    }
    Ok(())
}

/// Checks inputs against the signature and returns them in the model's order.
pub fn check_inputs(
    signature: &Signature,
    mut inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, ServeError> {
    if let Some(unknown) = inputs
        .iter()
        .find(|t| !signature.inputs.iter().any(|s| s.name == t.name))
    {
        return Err(ServeError::BadRequest(format!(
            "unknown input '{}'; the model's inputs are: {}",
            unknown.name,
            names(&signature.inputs)
        )));
    }
    let mut ordered = Vec::with_capacity(signature.inputs.len());
    for spec in &signature.inputs {
        let position = inputs
            .iter()
            .position(|t| t.name == spec.name)
            .ok_or_else(|| {
                ServeError::BadRequest(format!(
                    "missing input '{}' ({} {:?})",
                    spec.name, spec.datatype, spec.shape
                ))
            })?;
        let tensor = inputs.swap_remove(position);
        if tensor.datatype != spec.datatype || !shape_matches(&spec.shape, &tensor.shape) {
            return Err(ServeError::BadRequest(format!(
                "input '{}': expected {} with shape {:?} (-1 = any), got {} with shape {:?}",
                spec.name, spec.datatype, spec.shape, tensor.datatype, tensor.shape
            )));
        }
        ordered.push(tensor);
    }
    if !inputs.is_empty() {
        return Err(ServeError::BadRequest(format!(
            "input '{}' is given more than once",
            inputs[0].name
        )));
    }
    Ok(ordered)
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kiln_api::protocol::DataType;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec {
                    name: "a".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, 2],
                },
                TensorSpec {
                    name: "b".into(),
                    datatype: DataType::Int64,
                    shape: vec![-1],
                },
            ],
            outputs: vec![TensorSpec {
                name: "y".into(),
                datatype: DataType::Fp32,
                shape: vec![-1],
            }],
        }
    }

    fn t(name: &str, datatype: DataType, shape: Vec<i64>) -> Tensor {
        Tensor {
            name: name.into(),
            datatype,
            shape,
            data: Bytes::new(),
        }
    }

    #[test]
    fn inputs_come_back_in_model_order() {
        let out = check_inputs(
            &sig(),
            vec![
                t("b", DataType::Int64, vec![3]),
                t("a", DataType::Fp32, vec![3, 2]),
            ],
        )
        .unwrap();
        assert_eq!(out[0].name, "a");
    }

    #[test]
    fn mismatches_name_the_input_and_what_was_expected() {
        let err = check_inputs(
            &sig(),
            vec![
                t("a", DataType::Fp64, vec![1, 2]),
                t("b", DataType::Int64, vec![1]),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("input 'a': expected FP32 with shape [-1, 2]"),
            "{err}"
        );
        let err = check_inputs(
            &sig(),
            vec![
                t("a", DataType::Fp32, vec![1, 3]),
                t("b", DataType::Int64, vec![1]),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("got FP32 with shape [1, 3]"),
            "{err}"
        );
        let err = check_inputs(&sig(), vec![t("a", DataType::Fp32, vec![1, 2])]).unwrap_err();
        assert!(err.to_string().contains("missing input 'b'"), "{err}");
        let err = check_inputs(&sig(), vec![t("zz", DataType::Fp32, vec![1, 2])]).unwrap_err();
        assert!(err.to_string().contains("unknown input 'zz'"), "{err}");
    }
}
