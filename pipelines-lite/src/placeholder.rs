//! Placeholders in a container's `command`, `args` and `env`: every form kfp 2.17's
//! `kfp/dsl/placeholders.py` writes, inline (`--x={{$.inputs.parameters['x']}}`) or as the
//! JSON structures `{"Concat": [...]}` and `{"IfPresent": {...}}` that fill a whole argument.

use serde_json::Value;

use crate::executor_input::{ArtifactList, ExecutorInput};
use crate::value::to_text;

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `{{$}}`: the whole ExecutorInput as JSON.
    ExecutorInput,
    /// `{{$.inputs.parameters['n']}}`.
    InputParameter(String),
    /// `{{$.inputs.artifacts['n']}}` (a list of artifacts).
    InputArtifacts(String),
    /// `{{$.inputs.artifacts['n'].<field>}}`.
    InputArtifact(String, ArtifactField),
    /// `{{$.outputs.parameters['n'].output_file}}`.
    OutputParameterFile(String),
    /// `{{$.outputs.artifacts['n']}}`.
    OutputArtifacts(String),
    /// `{{$.outputs.artifacts['n'].<field>}}`.
    OutputArtifact(String, ArtifactField),
    /// `{{$.outputs.output_file}}`.
    ExecutorOutputFile,
    /// `{{$.pipeline_job_name}}`.
    JobName,
    /// `{{$.pipeline_job_resource_name}}`.
    JobResourceName,
    /// `{{$.pipeline_job_uuid}}`.
    JobUuid,
    /// `{{$.pipeline_task_name}}`.
    TaskName,
    /// `{{$.pipeline_task_uuid}}`.
    TaskUuid,
    /// `{{$.pipeline_root}}`.
    PipelineRoot,
    /// `{{$.pipeline_job_create_time_utc}}`.
    JobCreateTime,
}

/// A field of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactField {
    /// `.path`.
    Path,
    /// `.uri`.
    Uri,
    /// `.metadata`, as JSON.
    Metadata,
    /// `.metadata['k']`.
    MetadataKey(String),
}

/// A placeholder Kiln cannot fill.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaceholderError {
    /// Not one of the forms the SDK writes (or one Kiln cannot honour, such as
    /// `{{$.workspace_path}}`).
    #[error("unknown placeholder {0:?}")]
    Unknown(String),
    /// A `{"Concat"...}`/`{"IfPresent"...}` structure that is not well formed.
    #[error("malformed {0} placeholder: {1}")]
    Malformed(&'static str, String),
    /// A reference to an input or output the step does not have.
    #[error("placeholder {0:?} names no input or output of this step")]
    Missing(String),
}

/// The values that are not in the ExecutorInput.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// The pipeline's name.
    pub job_name: String,
    /// The run's id (KFP's resource name).
    pub job_resource_name: String,
    /// The run's id.
    pub job_uuid: String,
    /// The task's name.
    pub task_name: String,
    /// The task's id.
    pub task_uuid: String,
    /// The pipeline root.
    pub pipeline_root: String,
    /// RFC 3339 time the run was created.
    pub create_time_utc: String,
}

/// Reads the reference inside `{{` `}}`.
pub fn parse_reference(inner: &str) -> Result<Reference, PlaceholderError> {
    let unknown = || PlaceholderError::Unknown(format!("{{{{{inner}}}}}"));
    let simple = match inner {
        "$" => Some(Reference::ExecutorInput),
        "$.outputs.output_file" => Some(Reference::ExecutorOutputFile),
        "$.pipeline_job_name" => Some(Reference::JobName),
        "$.pipeline_job_resource_name" => Some(Reference::JobResourceName),
        "$.pipeline_job_uuid" => Some(Reference::JobUuid),
        "$.pipeline_task_name" => Some(Reference::TaskName),
        "$.pipeline_task_uuid" => Some(Reference::TaskUuid),
        "$.pipeline_root" => Some(Reference::PipelineRoot),
        "$.pipeline_job_create_time_utc" => Some(Reference::JobCreateTime),
        _ => None,
    };
    if let Some(r) = simple {
        return Ok(r);
    }
    let (kind, rest) = [
        ("$.inputs.parameters[", 0),
        ("$.inputs.artifacts[", 1),
        ("$.outputs.parameters[", 2),
        ("$.outputs.artifacts[", 3),
    ]
    .into_iter()
    .find_map(|(p, k)| inner.strip_prefix(p).map(|r| (k, r)))
    .ok_or_else(unknown)?;
    let (name, rest) = quoted_key(rest).ok_or_else(unknown)?;
    let field = match rest {
        "" | ".output_file" => None,
        ".path" => Some(ArtifactField::Path),
        ".uri" => Some(ArtifactField::Uri),
        ".metadata" => Some(ArtifactField::Metadata),
        r => match r.strip_prefix(".metadata[").and_then(quoted_key) {
            Some((key, "")) => Some(ArtifactField::MetadataKey(key)),
            _ => return Err(unknown()),
        },
    };
    Ok(match (kind, field, rest) {
        (0, None, "") => Reference::InputParameter(name),
        (1, None, "") => Reference::InputArtifacts(name),
        (1, Some(f), _) => Reference::InputArtifact(name, f),
        (2, None, ".output_file") => Reference::OutputParameterFile(name),
        (3, None, "") => Reference::OutputArtifacts(name),
        (3, Some(f), _) => Reference::OutputArtifact(name, f),
        _ => return Err(unknown()),
    })
}

/// `'name']rest` -> (`name`, `rest`).
fn quoted_key(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(q)?;
    let rest = body[end + 1..].strip_prefix(']')?;
    Some((body[..end].to_owned(), rest))
}

/// Every reference in one command-line element (inline and inside structures), for validation
/// before the run.
pub fn references(arg: &str) -> Result<Vec<Reference>, PlaceholderError> {
    let mut out = Vec::new();
    match structure(arg)? {
        Some(v) => collect_structured(&v, &mut out)?,
        None => collect_inline(arg, &mut out)?,
    }
    Ok(out)
}

fn collect_inline(s: &str, out: &mut Vec<Reference>) -> Result<(), PlaceholderError> {
    for inner in inline_spans(s).into_iter().map(|(_, _, i)| i) {
        out.push(parse_reference(inner)?);
    }
    Ok(())
}

fn collect_structured(v: &Value, out: &mut Vec<Reference>) -> Result<(), PlaceholderError> {
    match v {
        Value::String(s) => match structure(s)? {
            Some(inner) => collect_structured(&inner, out),
            None => collect_inline(s, out),
        },
        Value::Array(items) => items.iter().try_for_each(|i| collect_structured(i, out)),
        Value::Object(m) => {
            if let Some(items) = m.get("Concat") {
                return collect_structured(items, out);
            }
            let spec = if_present(v)?;
            for part in [spec.then, spec.otherwise].into_iter().flatten() {
                collect_structured(part, out)?;
            }
            Ok(())
        }
        other => Err(PlaceholderError::Malformed("Concat", other.to_string())),
    }
}

/// `(start, end, inner)` of each `{{...}}` in `s`.
fn inline_spans(s: &str) -> Vec<(usize, usize, &str)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(start) = s[from..].find("{{$").map(|i| from + i) {
        let Some(end) = s[start..].find("}}").map(|i| start + i + 2) else {
            break;
        };
        spans.push((start, end, &s[start + 2..end - 2]));
        from = end;
    }
    spans
}

/// A whole-argument structure, when `arg` is one.
fn structure(arg: &str) -> Result<Option<Value>, PlaceholderError> {
    let t = arg.trim_start();
    let kind = if t.starts_with("{\"Concat\"") {
        "Concat"
    } else if t.starts_with("{\"IfPresent\"") {
        "IfPresent"
    } else {
        return Ok(None);
    };
    serde_json::from_str(arg)
        .map(Some)
        .map_err(|e| PlaceholderError::Malformed(kind, e.to_string()))
}

struct IfPresent<'a> {
    input: &'a str,
    then: Option<&'a Value>,
    otherwise: Option<&'a Value>,
}

fn if_present(v: &Value) -> Result<IfPresent<'_>, PlaceholderError> {
    let bad = || PlaceholderError::Malformed("IfPresent", v.to_string());
    let spec = v
        .get("IfPresent")
        .and_then(Value::as_object)
        .ok_or_else(bad)?;
    if spec
        .keys()
        .any(|k| !matches!(k.as_str(), "InputName" | "Then" | "Else"))
    {
        return Err(bad());
    }
    Ok(IfPresent {
        input: spec
            .get("InputName")
            .and_then(Value::as_str)
            .ok_or_else(bad)?,
        then: spec.get("Then"),
        otherwise: spec.get("Else"),
    })
}

/// Fills placeholders for one step.
pub struct Expander<'a> {
    input: &'a ExecutorInput,
    input_json: String,
    run: &'a RunContext,
}

impl<'a> Expander<'a> {
    /// An expander for a step with this ExecutorInput.
    pub fn new(input: &'a ExecutorInput, run: &'a RunContext) -> Self {
        let input_json = serde_json::to_string(input).unwrap_or_default();
        Self {
            input,
            input_json,
            run,
        }
    }

    /// One command-line element: zero or more arguments (an `IfPresent` may add several or none).
    pub fn expand_arg(&self, arg: &str) -> Result<Vec<String>, PlaceholderError> {
        match structure(arg)? {
            Some(v) => self.structured(&v),
            None => Ok(vec![self.inline(arg)?]),
        }
    }

    /// A string with inline placeholders (an env value).
    pub fn inline(&self, s: &str) -> Result<String, PlaceholderError> {
        let mut out = String::new();
        let mut last = 0;
        for (start, end, inner) in inline_spans(s) {
            out.push_str(&s[last..start]);
            out.push_str(&self.resolve(&parse_reference(inner)?, inner)?);
            last = end;
        }
        out.push_str(&s[last..]);
        Ok(out)
    }

    fn structured(&self, v: &Value) -> Result<Vec<String>, PlaceholderError> {
        match v {
            Value::String(s) => self.expand_arg(s),
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(self.structured(item)?);
                }
                Ok(out)
            }
            Value::Object(m) if m.contains_key("Concat") => {
                let items = m
                    .get("Concat")
                    .and_then(Value::as_array)
                    .filter(|_| m.len() == 1)
                    .ok_or_else(|| PlaceholderError::Malformed("Concat", v.to_string()))?;
                let mut joined = String::new();
                for item in items {
                    joined.push_str(&self.structured(item)?.concat());
                }
                Ok(vec![joined])
            }
            Value::Object(_) => {
                let spec = if_present(v)?;
                let present = self.input.inputs.parameter_values.contains_key(spec.input)
                    || self.input.inputs.artifacts.contains_key(spec.input);
                match if present { spec.then } else { spec.otherwise } {
                    Some(part) => self.structured(part),
                    None => Ok(Vec::new()),
                }
            }
            other => Err(PlaceholderError::Malformed("Concat", other.to_string())),
        }
    }

    fn resolve(&self, r: &Reference, inner: &str) -> Result<String, PlaceholderError> {
        let missing = || PlaceholderError::Missing(format!("{{{{{inner}}}}}"));
        let artifacts = |list: Option<&ArtifactList>| -> Result<String, PlaceholderError> {
            let list = list.ok_or_else(missing)?;
            Ok(serde_json::to_string(&list.artifacts).unwrap_or_default())
        };
        let one = |list: Option<&ArtifactList>,
                   f: &ArtifactField|
         -> Result<String, PlaceholderError> {
            let a = list.and_then(|l| l.artifacts.first()).ok_or_else(missing)?;
            Ok(match f {
                ArtifactField::Path | ArtifactField::Uri => a.uri.clone(),
                ArtifactField::Metadata => Value::Object(a.metadata.clone()).to_string(),
                ArtifactField::MetadataKey(k) => a.metadata.get(k).map(to_text).unwrap_or_default(),
            })
        };
        let (inputs, outputs) = (&self.input.inputs, &self.input.outputs);
        Ok(match r {
            Reference::ExecutorInput => self.input_json.clone(),
            Reference::InputParameter(n) => inputs
                .parameter_values
                .get(n)
                .map(to_text)
                .ok_or_else(missing)?,
            Reference::InputArtifacts(n) => artifacts(inputs.artifacts.get(n))?,
            Reference::InputArtifact(n, f) => one(inputs.artifacts.get(n), f)?,
            Reference::OutputParameterFile(n) => outputs
                .parameters
                .get(n)
                .map(|p| p.output_file.clone())
                .ok_or_else(missing)?,
            Reference::OutputArtifacts(n) => artifacts(outputs.artifacts.get(n))?,
            Reference::OutputArtifact(n, f) => one(outputs.artifacts.get(n), f)?,
            Reference::ExecutorOutputFile => outputs.output_file.clone(),
            Reference::JobName => self.run.job_name.clone(),
            Reference::JobResourceName => self.run.job_resource_name.clone(),
            Reference::JobUuid => self.run.job_uuid.clone(),
            Reference::TaskName => self.run.task_name.clone(),
            Reference::TaskUuid => self.run.task_uuid.clone(),
            Reference::PipelineRoot => self.run.pipeline_root.clone(),
            Reference::JobCreateTime => self.run.create_time_utc.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor_input::{OutputParameterFile, RuntimeArtifact};
    use serde_json::json;

    fn input() -> ExecutorInput {
        let mut input = ExecutorInput::default();
        input
            .inputs
            .parameter_values
            .insert("msg".into(), json!("hi there"));
        input.inputs.parameter_values.insert("n".into(), json!(3));
        let mut metadata = serde_json::Map::new();
        metadata.insert("rows".into(), json!(7));
        input.inputs.artifacts.insert(
            "a".into(),
            ArtifactList {
                artifacts: vec![RuntimeArtifact {
                    name: "a".into(),
                    type_schema: None,
                    uri: "/root/make/a".into(),
                    metadata,
                }],
            },
        );
        input.outputs.parameters.insert(
            "out".into(),
            OutputParameterFile {
                output_file: "/tmp/t/out".into(),
            },
        );
        input.outputs.output_file = "/tmp/t/executor_output.json".into();
        input
    }

    fn run() -> RunContext {
        RunContext {
            job_name: "p".into(),
            task_name: "cont".into(),
            pipeline_root: "/root".into(),
            ..RunContext::default()
        }
    }

    #[test]
    fn inline_placeholders_are_filled_inside_larger_strings() {
        let (input, run) = (input(), run());
        let x = Expander::new(&input, &run);
        assert_eq!(
            x.expand_arg("--n={{$.inputs.parameters['n']}}").unwrap(),
            ["--n=3"]
        );
        assert_eq!(
            x.expand_arg("{{$.inputs.artifacts['a'].path}}").unwrap(),
            ["/root/make/a"]
        );
        assert_eq!(
            x.expand_arg("{{$.inputs.artifacts['a'].metadata}}")
                .unwrap(),
            [r#"{"rows":7}"#]
        );
        assert_eq!(
            x.expand_arg("{{$.inputs.artifacts['a'].metadata['rows']}}")
                .unwrap(),
            ["7"]
        );
        assert_eq!(
            x.expand_arg("{{$.pipeline_job_name}}/{{$.pipeline_task_name}}")
                .unwrap(),
            ["p/cont"]
        );
        assert_eq!(
            x.expand_arg("{{$.outputs.output_file}}").unwrap(),
            ["/tmp/t/executor_output.json"]
        );
        let whole: serde_json::Value =
            serde_json::from_str(&x.expand_arg("{{$}}").unwrap()[0]).unwrap();
        assert_eq!(whole["inputs"]["parameterValues"]["n"], json!(3));
    }

    #[test]
    fn concat_and_if_present_as_the_sdk_writes_them() {
        let (input, run) = (input(), run());
        let x = Expander::new(&input, &run);
        let concat = r#"{"Concat": ["echo ", "{{$.inputs.parameters['msg']}}", " > ", "{{$.outputs.parameters['out'].output_file}}"]}"#;
        assert_eq!(
            x.expand_arg(concat).unwrap(),
            ["echo hi there > /tmp/t/out"]
        );
        let present = r#"{"IfPresent": {"InputName": "msg", "Then": ["--m", "{{$.inputs.parameters['msg']}}"]}}"#;
        assert_eq!(x.expand_arg(present).unwrap(), ["--m", "hi there"]);
        let absent = r#"{"IfPresent": {"InputName": "nope", "Then": ["--m"], "Else": "none"}}"#;
        assert_eq!(x.expand_arg(absent).unwrap(), ["none"]);
        let absent = r#"{"IfPresent": {"InputName": "nope", "Then": ["--m"]}}"#;
        assert!(x.expand_arg(absent).unwrap().is_empty());
        let nested = r#"{"Concat": ["a", {"IfPresent": {"InputName": "n", "Then": "{{$.inputs.parameters['n']}}"}}, "b"]}"#;
        assert_eq!(x.expand_arg(nested).unwrap(), ["a3b"]);
    }

    #[test]
    fn unknown_and_missing_placeholders_are_errors() {
        let (input, run) = (input(), run());
        let x = Expander::new(&input, &run);
        assert!(matches!(
            x.expand_arg("{{$.workspace_path}}"),
            Err(PlaceholderError::Unknown(_))
        ));
        assert!(matches!(
            x.expand_arg("{{$.inputs.parameters['nope']}}"),
            Err(PlaceholderError::Missing(_))
        ));
        assert_eq!(
            references(r#"{"Concat": ["{{$.inputs.parameters['a']}}", "{{$.pipeline_root}}"]}"#)
                .unwrap(),
            [
                Reference::InputParameter("a".into()),
                Reference::PipelineRoot
            ]
        );
    }
}
