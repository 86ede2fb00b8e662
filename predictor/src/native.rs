//! Finds the native libraries that `scripts/setup.sh` fetched into `.kiln-cache/native`.
//!
//! An explicit environment variable always wins (`ORT_DYLIB_PATH`, `LIBTORCH`); then
//! `$KILN_CACHE/native`; then the cache of the checkout this binary was built from; then a
//! `.kiln-cache` found above the running executable.

use std::path::{Path, PathBuf};

/// The repository's cache folder as seen at build time.
const BUILD_CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.kiln-cache");

fn cache_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("KILN_CACHE") {
        roots.push(PathBuf::from(dir));
    }
    roots.push(PathBuf::from(BUILD_CACHE));
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(|d| d.join(".kiln-cache")));
    }
    roots
}

/// The ONNX Runtime shared library to load, or a message saying how to get one.
pub fn onnxruntime_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(path));
    }
    find_in_caches(Path::new("native/onnxruntime/libonnxruntime.so")).ok_or_else(|| {
        "ONNX Runtime not found: run scripts/setup.sh, or set ORT_DYLIB_PATH to libonnxruntime.so".to_owned()
    })
}

/// The libtorch folder (holding `lib/`), for the CPU or the CUDA build.
pub fn libtorch_dir(cuda: bool) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LIBTORCH") {
        return Ok(PathBuf::from(path));
    }
    let rel = if cuda {
        "native/libtorch-cuda"
    } else {
        "native/libtorch"
    };
    find_in_caches(Path::new(rel)).ok_or_else(|| {
        "libtorch not found: run scripts/setup.sh, or set LIBTORCH to a libtorch folder".to_owned()
    })
}

fn find_in_caches(rel: &Path) -> Option<PathBuf> {
    cache_roots()
        .into_iter()
        .map(|root| root.join(rel))
        .find(|p| p.exists())
}
