//! The v1 (TensorFlow Serving style) protocol: `{"instances": [...]}` in,
//! `{"predictions": [...]}` out.
//!
//! With one model input, each instance is one row of that input. With several, each
//! instance is an object keyed by input name. Rows are stacked along a new first dimension.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::json_values::{FlatValues, JsonData, encode_scalars};
use super::{DataType, ProtocolError, Tensor, TensorMetadata};

#[derive(Deserialize)]
struct WireV1Request {
    instances: Vec<Value>,
}

/// Decodes a v1 `:predict` body into one tensor per model input, stacking instances
/// along the first dimension.
pub fn decode_predict_request(
    body: &[u8],
    inputs: &[TensorMetadata],
) -> Result<Vec<Tensor>, ProtocolError> {
    let wire: WireV1Request = serde_json::from_slice(body).map_err(|e| {
        ProtocolError::MalformedJson(format!("expected {{\"instances\": [...]}}: {e}"))
    })?;
    if wire.instances.is_empty() {
        return Err(ProtocolError::MalformedJson("instances is empty".into()));
    }
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let rows: Vec<&Value> = if inputs.len() == 1 {
            wire.instances.iter().collect()
        } else {
            wire.instances
                .iter()
                .map(|instance| {
                    instance.get(&input.name).ok_or_else(|| {
                        ProtocolError::MalformedJson(format!(
                            "each instance must be an object with the key '{}'",
                            input.name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        tensors.push(stack_rows(input, &rows)?);
    }
    Ok(tensors)
}

fn stack_rows(input: &TensorMetadata, rows: &[&Value]) -> Result<Tensor, ProtocolError> {
    let datatype: DataType = input.datatype.parse()?;
    let mut row_shape: Option<Vec<usize>> = None;
    let mut bytes = Vec::new();
    for row in rows {
        let flat: FlatValues = serde_json::from_value((*row).clone())
            .map_err(|e| ProtocolError::MalformedJson(format!("input '{}': {e}", input.name)))?;
        let shape = if row.is_array() {
            flat.nested_shape.clone()
        } else {
            Vec::new()
        };
        let expected: usize = shape.iter().product();
        if !flat.regular || flat.values.len() != expected {
            return Err(ProtocolError::MalformedJson(format!(
                "input '{}': instance is a ragged array",
                input.name
            )));
        }
        match &row_shape {
            None => row_shape = Some(shape),
            Some(first) if *first != shape => {
                return Err(ProtocolError::MalformedJson(format!(
                    "input '{}': instances differ in shape ({first:?} and {shape:?})",
                    input.name
                )));
            }
            Some(_) => {}
        }
        bytes.extend(encode_scalars(&input.name, datatype, &flat.values)?);
    }
    let mut shape = vec![rows.len() as i64];
    shape.extend(row_shape.unwrap_or_default().into_iter().map(|d| d as i64));
    Ok(Tensor {
        name: input.name.clone(),
        datatype,
        shape,
        data: bytes.into(),
    })
}

/// Encodes outputs as `{"predictions": [...]}`: one entry per row of the first dimension,
/// the row itself with one output, an object keyed by output name with several.
pub fn encode_predict_response(outputs: &[Tensor]) -> Result<Vec<u8>, ProtocolError> {
    let rows = outputs
        .first()
        .and_then(|t| t.shape.first())
        .copied()
        .unwrap_or(0)
        .max(0) as usize;
    let mut predictions = Vec::with_capacity(rows);
    let split: Vec<Vec<Value>> = outputs
        .iter()
        .map(|t| split_rows(t, rows))
        .collect::<Result<_, _>>()?;
    for r in 0..rows {
        if outputs.len() == 1 {
            predictions.push(split[0][r].clone());
        } else {
            let mut object = Map::new();
            for (t, rows_of_t) in outputs.iter().zip(&split) {
                object.insert(t.name.clone(), rows_of_t[r].clone());
            }
            predictions.push(Value::Object(object));
        }
    }
    Ok(
        serde_json::to_vec(&serde_json::json!({ "predictions": predictions }))
            .expect("serializing to memory cannot fail"),
    )
}

fn split_rows(t: &Tensor, rows: usize) -> Result<Vec<Value>, ProtocolError> {
    if t.shape.first().copied() != Some(rows as i64) || !t.datatype.has_json_form() {
        return Err(ProtocolError::Unsupported {
            name: t.name.clone(),
            datatype: t.datatype.to_string(),
            reason: "output cannot be returned as v1 predictions",
        });
    }
    let flat: Vec<Value> = serde_json::from_value(
        serde_json::to_value(JsonData {
            datatype: t.datatype,
            bytes: &t.data,
        })
        .expect("serializing to memory cannot fail"),
    )
    .expect("an array of numbers");
    let row_dims: Vec<usize> = t.shape[1..].iter().map(|&d| d.max(0) as usize).collect();
    let per_row: usize = row_dims.iter().product();
    Ok((0..rows)
        .map(|r| nest(&flat[r * per_row..(r + 1) * per_row], &row_dims))
        .collect())
}

fn nest(values: &[Value], dims: &[usize]) -> Value {
    match dims.split_first() {
        None => values.first().cloned().unwrap_or(Value::Null),
        Some((&n, rest)) => {
            let inner: usize = rest.iter().product();
            Value::Array(
                (0..n)
                    .map(|i| nest(&values[i * inner..(i + 1) * inner], rest))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn meta(name: &str, shape: Vec<i64>) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: "FP32".into(),
            shape,
        }
    }

    #[test]
    fn instances_of_one_input_stack_into_rows() {
        let t = decode_predict_request(
            br#"{"instances": [[1, 2], [3, 4], [5, 6]]}"#,
            &[meta("x", vec![-1, 2])],
        )
        .unwrap();
        assert_eq!(t[0].shape, vec![3, 2]);
        assert_eq!(t[0].data.len(), 24);
    }

    #[test]
    fn instances_of_several_inputs_are_keyed_by_name() {
        let t = decode_predict_request(
            br#"{"instances": [{"a": [1], "b": 2}, {"a": [3], "b": 4}]}"#,
            &[meta("a", vec![-1, 1]), meta("b", vec![-1])],
        )
        .unwrap();
        assert_eq!(t[0].shape, vec![2, 1]);
        assert_eq!(t[1].shape, vec![2]);
        let err = decode_predict_request(
            br#"{"instances": [{"a": [1]}]}"#,
            &[meta("a", vec![-1, 1]), meta("b", vec![-1])],
        )
        .unwrap_err();
        assert!(err.to_string().contains("'b'"), "{err}");
    }

    #[test]
    fn predictions_are_rows_of_the_output() {
        let out = Tensor {
            name: "y".into(),
            datatype: DataType::Fp32,
            shape: vec![2, 2],
            data: Bytes::from(
                [1f32, 2., 3., 4.]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
        };
        let body = encode_predict_response(&[out]).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"predictions":[[1.0,2.0],[3.0,4.0]]}"#
        );
    }
}
