//! Typed parameter values. The spec stores numbers as protobuf doubles (`defaultValue: 3.0`
//! for an `int`, `[1.0, 2.0]` for a list of ints); KFP's backend prints them through protojson,
//! where an integral double reads `3`. Kiln does the same at every boundary, so an integer
//! stays an integer through defaults, outputs, loops and fan-in.

use serde::Deserialize;
use serde_json::{Number, Value};

/// The six parameter types, plus the status an exit handler receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    /// `str`.
    String,
    /// `int`.
    NumberInteger,
    /// `float`.
    NumberDouble,
    /// `bool`.
    Boolean,
    /// `list`, `List[...]`.
    List,
    /// `dict`, `Dict[...]`.
    Struct,
    /// `dsl.PipelineTaskFinalStatus`.
    TaskFinalStatus,
}

impl ParameterType {
    /// The name KFP uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::NumberInteger => "NUMBER_INTEGER",
            Self::NumberDouble => "NUMBER_DOUBLE",
            Self::Boolean => "BOOLEAN",
            Self::List => "LIST",
            Self::Struct => "STRUCT",
            Self::TaskFinalStatus => "TASK_FINAL_STATUS",
        }
    }
}

/// A value that does not fit its declared type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct TypeError {
    /// The declared type.
    pub expected: &'static str,
    /// What came instead (shortened).
    pub got: String,
}

fn mismatch(ty: ParameterType, got: &Value) -> TypeError {
    let mut got = got.to_string();
    if got.len() > 80 {
        got.truncate(77);
        got.push_str("...");
    }
    TypeError {
        expected: ty.as_str(),
        got,
    }
}

/// Brings `value` to the JSON form of `ty`: integral doubles become integers (everywhere for
/// `NUMBER_INTEGER`, and inside lists and structs as protojson prints them).
pub fn coerce(ty: ParameterType, value: Value) -> Result<Value, TypeError> {
    match (ty, value) {
        (ParameterType::String, v @ Value::String(_)) => Ok(v),
        (ParameterType::NumberInteger, Value::Number(n)) => integer(&n)
            .map(Value::from)
            .ok_or_else(|| mismatch(ty, &Value::Number(n))),
        (ParameterType::NumberDouble, Value::Number(n)) => Ok(Value::Number(n)),
        (ParameterType::Boolean, v @ Value::Bool(_)) => Ok(v),
        (ParameterType::List, v @ Value::Array(_)) => Ok(normalize(v)),
        (ParameterType::Struct | ParameterType::TaskFinalStatus, v @ Value::Object(_)) => {
            Ok(normalize(v))
        }
        (ty, v) => Err(mismatch(ty, &v)),
    }
}

fn integer(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Integral doubles inside lists and structs become integers, as protojson prints them.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match integer(&n) {
            Some(i) => Value::from(i),
            None => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        v => v,
    }
}

/// Reads a value written as text: `--param k=v` and output parameter files. A `STRING` is the
/// text itself; the other types are JSON (`true`, `3`, `[1, 2]`, `{"a": 1}`).
pub fn parse_text(ty: ParameterType, text: &str) -> Result<Value, TypeError> {
    if ty == ParameterType::String {
        return Ok(Value::String(text.to_owned()));
    }
    let parsed: Value = serde_json::from_str(text.trim()).map_err(|_| TypeError {
        expected: ty.as_str(),
        got: text.chars().take(80).collect(),
    })?;
    coerce(ty, parsed)
}

/// The text a value becomes on a command line: a string as itself, anything else as JSON.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_integer_written_as_a_double_becomes_an_integer() {
        assert_eq!(
            coerce(ParameterType::NumberInteger, json!(3.0)),
            Ok(json!(3))
        );
        assert!(coerce(ParameterType::NumberInteger, json!(3.5)).is_err());
    }

    #[test]
    fn lists_and_structs_print_integral_doubles_as_integers() {
        assert_eq!(
            coerce(ParameterType::List, json!([1.0, 2.5, {"k": 1.0}])),
            Ok(json!([1, 2.5, {"k": 1}]))
        );
    }

    #[test]
    fn a_double_stays_a_double() {
        assert_eq!(
            coerce(ParameterType::NumberDouble, json!(1.5)),
            Ok(json!(1.5))
        );
    }

    #[test]
    fn text_is_read_by_type() {
        assert_eq!(parse_text(ParameterType::String, "3"), Ok(json!("3")));
        assert_eq!(
            parse_text(ParameterType::NumberInteger, "3\n"),
            Ok(json!(3))
        );
        assert_eq!(parse_text(ParameterType::Boolean, "true"), Ok(json!(true)));
        assert_eq!(
            parse_text(ParameterType::Struct, r#"{"a":1}"#),
            Ok(json!({"a": 1}))
        );
        assert!(parse_text(ParameterType::NumberInteger, "three").is_err());
        assert!(parse_text(ParameterType::Boolean, "1").is_err());
    }

    #[test]
    fn command_lines_get_strings_bare_and_the_rest_as_json() {
        assert_eq!(to_text(&json!("a b")), "a b");
        assert_eq!(to_text(&json!(3)), "3");
        assert_eq!(to_text(&json!([1, 2])), "[1,2]");
    }
}
