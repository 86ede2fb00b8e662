//! Finds the model file in a fetched folder and tells its format.
//!
//! Accepted layouts (KServe's and Triton's):
//! - a single file: `model.onnx`, `model.pt` (any `*.onnx`, `*.pt`, `*.pth`, `*.torchscript`);
//! - a Triton model repository: `<name>/config.pbtxt` and `<name>/<version>/model.onnx|model.pt`
//!   (the highest numeric version is served; with several models, the one named like the
//!   served model, or the only one).
//!
//! TorchServe `.mar` archives, which KServe's `pytorch` format can also mean, are refused.

use std::path::{Path, PathBuf};

/// A model file format Kiln can serve: the one enum manifests and the controller use.
pub use kiln_api::ModelFormat;

/// The model file found in a folder, with the files that describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLayout {
    /// The format, from the file's extension.
    pub format: ModelFormat,
    /// The model file.
    pub model_file: PathBuf,
    /// Triton's `config.pbtxt` for it, if present.
    pub triton_config: Option<PathBuf>,
    /// Kiln's `signature.json` for it, if present.
    pub signature_file: Option<PathBuf>,
    /// The Triton version folder's name, if served from a model repository.
    pub version: Option<String>,
}

/// Why no model could be found.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LayoutError {
    /// Nothing servable in the folder.
    #[error("no model file ({expected}) found in {dir}")]
    NotFound {
        /// The folder searched.
        dir: String,
        /// What was looked for.
        expected: &'static str,
    },
    /// A TorchServe archive.
    #[error(
        "{file} is a TorchServe .mar archive, which Kiln does not serve: export the model with torch.jit.save as model.pt (the layout KServe's Triton runtime serves)"
    )]
    TorchServeArchive {
        /// The archive.
        file: String,
    },
    /// More than one candidate and no way to choose.
    #[error("several models found in {dir} ({names}): name the one to serve with --model-name")]
    Ambiguous {
        /// The folder searched.
        dir: String,
        /// The candidates.
        names: String,
    },
}

fn format_of(path: &Path) -> Option<ModelFormat> {
    match path.extension()?.to_str()? {
        "onnx" => Some(ModelFormat::Onnx),
        "pt" | "pth" | "torchscript" => Some(ModelFormat::PyTorch),
        _ => None,
    }
}

fn files_under(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if depth > 0 {
                files_under(&path, depth - 1, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Finds the model to serve in `dir` (a folder, or a single file). `format` restricts the
/// search; `model_name` picks among several models of a Triton repository.
pub fn find_model(
    dir: &Path,
    model_name: &str,
    format: Option<ModelFormat>,
) -> Result<ModelLayout, LayoutError> {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        files_under(dir, 3, &mut files);
    }
    let candidates: Vec<&PathBuf> = files
        .iter()
        .filter(|f| format_of(f).is_some_and(|f| format.is_none_or(|want| want == f)))
        .collect();
    if candidates.is_empty() {
        if let Some(mar) = files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "mar"))
        {
            return Err(LayoutError::TorchServeArchive {
                file: mar.display().to_string(),
            });
        }
        return Err(LayoutError::NotFound {
            dir: dir.display().to_string(),
            expected: match format {
                Some(ModelFormat::Onnx) => "*.onnx",
                Some(ModelFormat::PyTorch) => "*.pt, *.pth or *.torchscript",
                None => "*.onnx, *.pt, *.pth or *.torchscript",
            },
        });
    }
    // Group candidates by Triton model folder: <model>/<version>/<file> has a numeric parent.
    let version_of = |f: &Path| -> Option<(u64, String)> {
        let v = f.parent()?.file_name()?.to_str()?;
        Some((v.parse().ok()?, v.to_owned()))
    };
    let model_dir_of = |f: &Path| -> PathBuf {
        match version_of(f) {
            Some(_) => f
                .parent()
                .and_then(Path::parent)
                .unwrap_or(dir)
                .to_path_buf(),
            None => f.parent().unwrap_or(dir).to_path_buf(),
        }
    };
    let mut model_dirs: Vec<PathBuf> = candidates.iter().map(|f| model_dir_of(f)).collect();
    model_dirs.dedup();
    let chosen_dir = if model_dirs.len() == 1 {
        model_dirs[0].clone()
    } else if let Some(named) = model_dirs
        .iter()
        .find(|d| d.file_name().is_some_and(|n| n == model_name))
    {
        named.clone()
    } else {
        return Err(LayoutError::Ambiguous {
            dir: dir.display().to_string(),
            names: candidates
                .iter()
                .map(|c| c.strip_prefix(dir).unwrap_or(c).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let in_dir: Vec<&PathBuf> = candidates
        .into_iter()
        .filter(|f| model_dir_of(f) == chosen_dir)
        .collect();
    // Highest version first, then the conventional file name.
    let best = in_dir
        .iter()
        .max_by_key(|f| {
            let version = version_of(f).map(|(v, _)| v);
            let conventional = f.file_stem().is_some_and(|s| s == "model");
            (version, conventional)
        })
        .expect("at least one candidate");
    let sibling = |name: &str| -> Option<PathBuf> {
        [best.parent(), Some(chosen_dir.as_path())]
            .into_iter()
            .flatten()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    Ok(ModelLayout {
        format: format_of(best).expect("filtered by format"),
        model_file: (*best).clone(),
        triton_config: sibling("config.pbtxt"),
        signature_file: sibling("signature.json"),
        version: version_of(best).map(|(_, v)| v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn a_single_model_file_is_found_with_its_format() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "model.onnx");
        let l = find_model(d.path(), "m", None).unwrap();
        assert_eq!(l.format, ModelFormat::Onnx);
        assert_eq!(l.triton_config, None);
    }

    #[test]
    fn a_triton_repository_serves_the_highest_version_with_its_config() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "mlp/config.pbtxt");
        touch(d.path(), "mlp/1/model.pt");
        touch(d.path(), "mlp/3/model.pt");
        touch(d.path(), "other/1/model.onnx");
        let l = find_model(d.path(), "mlp", None).unwrap();
        assert_eq!(l.format, ModelFormat::PyTorch);
        assert!(l.model_file.ends_with("mlp/3/model.pt"));
        assert!(l.triton_config.unwrap().ends_with("mlp/config.pbtxt"));
        assert_eq!(l.version.as_deref(), Some("3"));
        let err = find_model(d.path(), "nothing", None).unwrap_err();
        assert!(matches!(err, LayoutError::Ambiguous { .. }), "{err}");
    }

    #[test]
    fn torchserve_archives_are_refused_with_a_reason() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "model.mar");
        let err = find_model(d.path(), "m", Some(ModelFormat::PyTorch)).unwrap_err();
        assert!(err.to_string().contains("TorchServe"), "{err}");
    }

    #[test]
    fn an_explicit_format_filters_the_files() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "model.onnx");
        let err = find_model(d.path(), "m", Some(ModelFormat::PyTorch)).unwrap_err();
        assert!(matches!(err, LayoutError::NotFound { .. }));
    }
}
