//! Reading manifests: YAML (or JSON) text, multi-document files, and folders of them.
//!
//! Each document is parsed (by `serde-saphyr`) into a [`serde_json::Value`] first and walked
//! against the fields
//! KServe defines, so that nothing is dropped silently:
//! - a field Kiln reads is deserialised into [`InferenceService`];
//! - a KServe field Kiln cannot honour (`spec.predictor.sklearn`, `containers`, `image`,
//!   `storage` keys, `metadata.generateName`, ...) is an error naming it;
//! - a KServe field that does not change what Kiln serves (`serviceAccountName`, `logger`,
//!   `runtimeVersion`, probes, ...) and any field KServe does not define either is a
//!   [`Warning`] naming it.
//!
//! Documents of another kind (a `Secret`, a `ServiceAccount` next to the service, as in
//! KServe's S3 examples) are skipped with a warning; empty documents are skipped. Every problem
//! in every file is collected, and one [`ManifestErrors`] reports them all.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::spec::{API_VERSION, InferenceService, KIND};

/// Where a document came from: the file (none for text given directly), the document's index
/// in it (0-based; none for a problem with the whole file) and, where known, the 1-based line
/// it starts on (for a YAML syntax error: the line of the error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DocumentRef {
    /// The file, or `None` for text passed to [`parse_str`] without one.
    pub file: Option<PathBuf>,
    /// The document's 0-based index within the file (`None`: the file as a whole).
    pub index: Option<usize>,
    /// The 1-based line the document starts on, or of the syntax error.
    pub line: Option<usize>,
}

impl fmt::Display for DocumentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<input>")?,
        }
        if let Some(index) = self.index {
            write!(f, ", document {}", index + 1)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// A field Kiln ignores, with why. The manifest is still served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The document.
    pub document: DocumentRef,
    /// The field's path, e.g. `spec.predictor.foo` (empty for the document as a whole).
    pub field: String,
    /// What Kiln does about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.document,
            field_message(&self.field, &self.message)
        )
    }
}

/// One problem that stops a manifest from being served: the document, the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{document}: {}", field_message(.field, .message))]
pub struct ManifestError {
    /// The document.
    pub document: DocumentRef,
    /// The field's path, e.g. `spec.predictor.minReplicas` (empty for the document or file as
    /// a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in one apply, with the warnings, so that all are reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.errors))]
pub struct ManifestErrors {
    /// The problems, in file and document order; never empty.
    pub errors: Vec<ManifestError>,
    /// The warnings found along the way.
    pub warnings: Vec<Warning>,
}

impl ManifestErrors {
    /// Whether some error concerns `field` (exactly).
    pub fn has_field(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

fn field_message(field: &str, message: &str) -> String {
    if field.is_empty() {
        message.to_owned()
    } else {
        format!("{field}: {message}")
    }
}

fn render(errors: &[ManifestError]) -> String {
    let mut out = match errors.len() {
        1 => "1 problem in the manifests:".to_owned(),
        n => format!("{n} problems in the manifests:"),
    };
    for error in errors {
        out.push_str("\n  ");
        out.push_str(&error.to_string());
    }
    out
}

/// One `InferenceService` read from a manifest, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedService {
    /// Where it came from.
    pub document: DocumentRef,
    /// The object.
    pub service: InferenceService,
}

/// What a successful parse found: the services, in file and document order, and the warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The `InferenceService` documents.
    pub services: Vec<ParsedService>,
    /// Fields and documents Kiln ignores.
    pub warnings: Vec<Warning>,
}

/// Parses YAML (or JSON) text holding one or more documents. `file` only names the source in
/// messages.
pub fn parse_str(text: &str, file: Option<&Path>) -> Result<Parsed, ManifestErrors> {
    let mut collector = Collector::default();
    collector.text(text, file);
    collector.finish()
}

/// Parses a manifest file, or every `*.yaml`, `*.yml` and `*.json` file directly in a folder
/// (in name order, hidden files skipped, not recursing, like `kubectl apply -f DIR`).
pub fn parse_path(path: &Path) -> Result<Parsed, ManifestErrors> {
    let mut collector = Collector::default();
    collector.path(path);
    collector.finish()
}

/// Gathers services, warnings and errors across files.
#[derive(Debug, Default)]
pub(super) struct Collector {
    pub(super) parsed: Parsed,
    pub(super) errors: Vec<ManifestError>,
}

impl Collector {
    /// Every error and warning, or the parse.
    pub(super) fn finish(self) -> Result<Parsed, ManifestErrors> {
        if self.errors.is_empty() {
            Ok(self.parsed)
        } else {
            Err(ManifestErrors {
                errors: self.errors,
                warnings: self.parsed.warnings,
            })
        }
    }

    fn file_error(&mut self, file: &Path, message: String) {
        self.errors.push(ManifestError {
            document: DocumentRef {
                file: Some(file.to_owned()),
                index: None,
                line: None,
            },
            field: String::new(),
            message,
        });
    }

    /// Reads a file or a folder of them.
    pub(super) fn path(&mut self, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return self.file_error(path, format!("cannot read: {e}")),
        };
        if !meta.is_dir() {
            return self.file(path);
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return self.file_error(path, format!("cannot read the folder: {e}")),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| is_manifest_file(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return self.file_error(path, "no .yaml, .yml or .json file in the folder".into());
        }
        for file in files {
            self.file(&file);
        }
    }

    fn file(&mut self, file: &Path) {
        match std::fs::read_to_string(file) {
            Ok(text) => self.text(&text, Some(file)),
            Err(e) => self.file_error(file, format!("cannot read: {e}")),
        }
    }

    /// Parses the documents of one text.
    pub(super) fn text(&mut self, text: &str, file: Option<&Path>) {
        let mut values = Vec::new();
        for (index, document) in split_documents(text).into_iter().enumerate() {
            if document.is_blank() {
                values.push((document.first_line, Value::Null));
                continue;
            }
            match crate::yaml::from_str::<Value>(document.text) {
                Ok(value) => values.push((document.first_line, value)),
                Err(e) => {
                    let line = e
                        .location()
                        .map(|l| document.marker_line + l.line() as usize - 1);
                    self.errors.push(ManifestError {
                        document: DocumentRef {
                            file: file.map(Path::to_owned),
                            index: Some(index),
                            line,
                        },
                        field: String::new(),
                        message: format!("malformed YAML: {}", first_line_of(&e.to_string())),
                    });
                    // Later documents may depend on this one's anchors: stop here.
                    return;
                }
            }
        }
        for (index, (line, value)) in values.into_iter().enumerate() {
            let document = DocumentRef {
                file: file.map(Path::to_owned),
                index: Some(index),
                line: Some(line),
            };
            self.document(document, value);
        }
    }

    fn document(&mut self, document: DocumentRef, value: Value) {
        let mut report = Report {
            document: &document,
            warnings: &mut self.parsed.warnings,
            errors: &mut self.errors,
        };
        let map = match value {
            Value::Null => return,
            Value::Object(map) => map,
            _ => return report.error("", "a manifest document must be a mapping".into()),
        };
        let kind = map.get("kind").and_then(Value::as_str);
        let api_version = map.get("apiVersion").and_then(Value::as_str);
        match kind {
            None => return report.error("kind", "required (InferenceService)".into()),
            Some(KIND) => {}
            Some(other) => {
                return report.warn(
                    "kind",
                    format!(
                        "{other} ({}) is not an InferenceService: document skipped",
                        api_version.unwrap_or("no apiVersion")
                    ),
                );
            }
        }
        match api_version {
            Some(API_VERSION) => {}
            Some(other) => report.error(
                "apiVersion",
                format!("{other} is not served: Kiln reads {API_VERSION}"),
            ),
            None => report.error("apiVersion", format!("required ({API_VERSION})")),
        }
        let value = Value::Object(map);
        walk(&value, "", TOP, &mut report);
        match serde_path_to_error::deserialize::<_, InferenceService>(value) {
            Ok(service) => {
                if service.metadata.name.as_deref().unwrap_or("").is_empty() {
                    report.error("metadata.name", "required".into());
                }
                self.parsed
                    .services
                    .push(ParsedService { document, service });
            }
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                report.error(&field, e.into_inner().to_string());
            }
        }
    }
}

fn is_manifest_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str());
    path.is_file() && !hidden && matches!(ext, Some("yaml" | "yml" | "json"))
}

/// One document of a multi-document text.
#[derive(Debug, PartialEq, Eq)]
struct DocumentText<'a> {
    /// The document's text, its `---` marker included.
    text: &'a str,
    /// The 1-based line of the text's first line (the marker's, if any).
    marker_line: usize,
    /// The 1-based line its content starts on: the marker's when content follows it on the
    /// same line, else the next.
    first_line: usize,
}

impl DocumentText<'_> {
    /// Nothing but the marker, blank lines and comments: YAML's empty (null) document.
    fn is_blank(&self) -> bool {
        self.text.lines().enumerate().all(|(i, line)| {
            let line = if i == 0 {
                marker_rest(line).unwrap_or(line)
            } else {
                line
            };
            let trimmed = line.trim();
            trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('%')
        })
    }
}

/// What follows a `---` document marker on its line, or `None` if the line is not one.
fn marker_rest(line: &str) -> Option<&str> {
    line.strip_prefix("---")
        .filter(|r| r.is_empty() || r.starts_with([' ', '\t']))
}

/// Splits a text into its documents by YAML's rules for `---` at the start of a line (a
/// marker that YAML forbids inside any scalar, so splitting there is exact): content before
/// the first marker is a document of its own, and each marker starts one (empty or not).
fn split_documents(text: &str) -> Vec<DocumentText<'_>> {
    let mut documents = Vec::new();
    let mut start: Option<(usize, usize, usize)> = None; // (byte offset, marker line, first line)
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let number = i + 1;
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = marker_rest(content) {
            if let Some((from, marker_line, first_line)) = start.take() {
                documents.push(DocumentText {
                    text: &text[from..offset],
                    marker_line,
                    first_line,
                });
            }
            let inline = !rest.trim().is_empty() && !rest.trim().starts_with('#');
            start = Some((offset, number, if inline { number } else { number + 1 }));
        } else if start.is_none() && documents.is_empty() {
            let trimmed = content.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%') {
                start = Some((0, 1, number));
            }
        }
        offset += line.len();
    }
    if let Some((from, marker_line, first_line)) = start {
        documents.push(DocumentText {
            text: &text[from..],
            marker_line,
            first_line,
        });
    }
    documents
}

/// The first line of a (possibly multi-line, snippet-decorated) parser message.
fn first_line_of(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

/// Collects one document's findings.
struct Report<'a> {
    document: &'a DocumentRef,
    warnings: &'a mut Vec<Warning>,
    errors: &'a mut Vec<ManifestError>,
}

impl Report<'_> {
    fn warn(&mut self, field: &str, message: String) {
        self.warnings.push(Warning {
            document: self.document.clone(),
            field: field.to_owned(),
            message,
        });
    }

    fn error(&mut self, field: &str, message: String) {
        self.errors.push(ManifestError {
            document: self.document.clone(),
            field: field.to_owned(),
            message,
        });
    }
}

/// What Kiln does with a field KServe defines.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Read; its contents are free-form or checked by serde and validation.
    Take,
    /// Set by the API server; ignored without a word.
    Silent,
    /// An object with these fields.
    Object(&'static [(&'static str, Rule)]),
    /// A list of objects with these fields.
    List(&'static [(&'static str, Rule)]),
    /// Ignored, with this warning.
    Ignore(&'static str),
    /// Cannot be honoured: an error, with this reason.
    Refuse(&'static str),
}

use Rule::{Ignore, List, Object, Refuse, Silent, Take};

const TOP: &[(&str, Rule)] = &[
    ("apiVersion", Take),
    ("kind", Take),
    ("metadata", Object(METADATA)),
    ("spec", Object(SPEC)),
    ("status", Silent),
];

const METADATA: &[(&str, Rule)] = &[
    ("name", Take),
    ("namespace", Take),
    ("labels", Take),
    ("annotations", Take),
    ("generation", Take),
    (
        "generateName",
        Refuse("not supported: Kiln needs metadata.name"),
    ),
    ("uid", Silent),
    ("resourceVersion", Silent),
    ("creationTimestamp", Silent),
    ("deletionTimestamp", Silent),
    ("deletionGracePeriodSeconds", Silent),
    ("managedFields", Silent),
    ("selfLink", Silent),
    ("finalizers", Silent),
    ("ownerReferences", Silent),
];

const SPEC: &[(&str, Rule)] = &[
    ("predictor", Object(PREDICTOR)),
    // Typed, so that validation refuses them for objects from the API server too.
    ("transformer", Take),
    ("explainer", Take),
];

const UNSERVED_FORMAT: &str =
    "model format not served by Kiln (it serves onnx, and pytorch as TorchScript)";
const SCHEDULING: &str = "ignored: placement is up to Kiln's backend";

const PREDICTOR: &[(&str, Rule)] = &[
    ("model", Object(MODEL)),
    ("onnx", Object(FRAMEWORK)),
    ("pytorch", Object(FRAMEWORK)),
    ("minReplicas", Take),
    ("maxReplicas", Take),
    ("scaleTarget", Take),
    ("scaleMetric", Take),
    ("containerConcurrency", Take),
    ("timeout", Take),
    ("canaryTrafficPercent", Take),
    ("resources", Object(RESOURCES)),
    ("env", List(ENV)),
    ("labels", Take),
    ("annotations", Take),
    ("sklearn", Refuse(UNSERVED_FORMAT)),
    ("xgboost", Refuse(UNSERVED_FORMAT)),
    ("lightgbm", Refuse(UNSERVED_FORMAT)),
    ("tensorflow", Refuse(UNSERVED_FORMAT)),
    ("pmml", Refuse(UNSERVED_FORMAT)),
    ("paddle", Refuse(UNSERVED_FORMAT)),
    ("huggingface", Refuse(UNSERVED_FORMAT)),
    (
        "triton",
        Refuse(
            "the triton shorthand does not say the model's format: use spec.predictor.model \
             with modelFormat.name onnx or pytorch",
        ),
    ),
    (
        "containers",
        Refuse("custom containers are not supported: Kiln runs its own model server"),
    ),
    ("workerSpec", Refuse("multi-node serving is not supported")),
    (
        "autoScaling",
        Refuse("not supported: use scaleMetric and scaleTarget (concurrency or rps)"),
    ),
    ("logger", Ignore("ignored: Kiln does not log payloads")),
    (
        "batcher",
        Ignore("ignored: Kiln's predictor batches with its own settings"),
    ),
    (
        "serviceAccountName",
        Ignore("ignored: Kiln reads storage credentials from its own environment"),
    ),
    (
        "deploymentStrategy",
        Ignore("ignored: Kiln rolls out by revision and traffic"),
    ),
    ("nodeSelector", Ignore(SCHEDULING)),
    ("affinity", Ignore(SCHEDULING)),
    ("tolerations", Ignore(SCHEDULING)),
    ("priorityClassName", Ignore(SCHEDULING)),
    ("imagePullSecrets", Ignore("ignored: Kiln runs no images")),
];

const MODEL: &[(&str, Rule)] = &[
    ("modelFormat", Object(MODEL_FORMAT)),
    ("runtime", Take),
    ("storageUri", Take),
    ("protocolVersion", Take),
    (
        "runtimeVersion",
        Ignore("ignored: Kiln serves with its own runtime"),
    ),
    ("name", Take),
    ("resources", Object(RESOURCES)),
    ("env", List(ENV)),
    CONTAINER_IMAGE,
    CONTAINER_COMMAND,
    CONTAINER_ARGS,
    STORAGE,
    ENV_FROM,
    (
        "ports",
        Ignore("ignored: Kiln chooses the model server's ports"),
    ),
    PROBE_READINESS,
    PROBE_LIVENESS,
    PROBE_STARTUP,
];

const FRAMEWORK: &[(&str, Rule)] = &[
    ("storageUri", Take),
    ("protocolVersion", Take),
    (
        "runtimeVersion",
        Ignore("ignored: Kiln serves with its own runtime"),
    ),
    ("name", Take),
    ("resources", Object(RESOURCES)),
    ("env", List(ENV)),
    CONTAINER_IMAGE,
    CONTAINER_COMMAND,
    CONTAINER_ARGS,
    STORAGE,
    ENV_FROM,
    (
        "ports",
        Ignore("ignored: Kiln chooses the model server's ports"),
    ),
    PROBE_READINESS,
    PROBE_LIVENESS,
    PROBE_STARTUP,
];

const CONTAINER_IMAGE: (&str, Rule) = (
    "image",
    Refuse("custom images are not supported: Kiln runs its own model server"),
);
const CONTAINER_COMMAND: (&str, Rule) = (
    "command",
    Refuse("custom commands are not supported: Kiln runs its own model server"),
);
const CONTAINER_ARGS: (&str, Rule) = (
    "args",
    Ignore("ignored: runtime arguments are not passed to Kiln's model server"),
);
const STORAGE: (&str, Rule) = (
    "storage",
    Refuse(
        "storage keys (KServe's storage-config secret) are not supported: give storageUri, \
         with credentials in Kiln's environment",
    ),
);
const ENV_FROM: (&str, Rule) = (
    "envFrom",
    Refuse("not supported: list the variables under env with their values"),
);
const PROBE: &str = "ignored: Kiln checks its model server's readiness itself";
const PROBE_READINESS: (&str, Rule) = ("readinessProbe", Ignore(PROBE));
const PROBE_LIVENESS: (&str, Rule) = ("livenessProbe", Ignore(PROBE));
const PROBE_STARTUP: (&str, Rule) = ("startupProbe", Ignore(PROBE));

const MODEL_FORMAT: &[(&str, Rule)] = &[("name", Take), ("version", Take)];

const RESOURCES: &[(&str, Rule)] = &[
    ("limits", Take),
    ("requests", Take),
    (
        "claims",
        Refuse("dynamic resource claims are not supported"),
    ),
];

const ENV: &[(&str, Rule)] = &[("name", Take), ("value", Take), ("valueFrom", Take)];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks `value` (an object with `fields`) and reports what is ignored or refused. Values of
/// the wrong type are left to serde, which names them too.
fn walk(value: &Value, path: &str, fields: &[(&str, Rule)], report: &mut Report<'_>) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, child) in map {
        let field = join(path, key);
        let Some((_, rule)) = fields.iter().find(|(name, _)| name == key) else {
            report.warn(&field, "unknown field, ignored".into());
            continue;
        };
        match *rule {
            Take | Silent => {}
            Object(inner) => walk(child, &field, inner, report),
            List(inner) => {
                if let Value::Array(items) = child {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &format!("{field}[{i}]"), inner, report);
                    }
                }
            }
            Ignore(why) => report.warn(&field, why.to_owned()),
            Refuse(why) => report.error(&field, why.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_lines(text: &str) -> Vec<usize> {
        split_documents(text).iter().map(|d| d.first_line).collect()
    }

    #[test]
    fn documents_start_where_their_markers_say() {
        assert_eq!(first_lines("a: 1\n"), vec![1]);
        assert_eq!(first_lines("# c\n\na: 1\n---\nb: 2\n"), vec![3, 5]);
        assert_eq!(first_lines("---\na: 1\n---\nb: 2\n"), vec![2, 4]);
        assert_eq!(first_lines("--- {a: 1}\n"), vec![1]);
        assert_eq!(first_lines(""), Vec::<usize>::new());
        assert_eq!(first_lines("a: 1\n---\n"), vec![1, 3]);
        assert_eq!(first_lines("# only a comment\n---\na: 1\n"), vec![3]);
        assert_eq!(first_lines("---\n---\na: 1\n"), vec![2, 3]);
        // A line that merely starts with dashes is content.
        assert_eq!(first_lines("a: |\n  ----\n----\n"), vec![1]);
    }

    #[test]
    fn each_document_parses_on_its_own_and_blank_ones_are_null() {
        let documents = split_documents("a: 1\n---\n# nothing\n--- {b: 2}\nc: 3\n");
        let texts: Vec<&str> = documents.iter().map(|d| d.text).collect();
        assert_eq!(texts, ["a: 1\n", "---\n# nothing\n", "--- {b: 2}\nc: 3\n"]);
        assert!(!documents[0].is_blank());
        assert!(documents[1].is_blank());
        assert!(!documents[2].is_blank());
        let first: Value = serde_saphyr::from_str(documents[0].text).unwrap();
        assert_eq!(first, serde_json::json!({"a": 1}));
    }

    #[test]
    fn display_names_file_document_and_line() {
        let document = DocumentRef {
            file: Some(PathBuf::from("m.yaml")),
            index: Some(1),
            line: Some(7),
        };
        let error = ManifestError {
            document,
            field: "spec.predictor.minReplicas".into(),
            message: "at least 0".into(),
        };
        assert_eq!(
            error.to_string(),
            "m.yaml, document 2 (line 7): spec.predictor.minReplicas: at least 0"
        );
    }
}
