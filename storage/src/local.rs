//! Local paths: a folder is served in place; a single file is presented as a cache folder holding
//! a hard link to it (a copy across file systems), so that `dir` looks the same as for a remote
//! single-file URI; a local archive is unpacked into the cache.

use std::path::Path;

use crate::cache::{self, Cache, Committed};
use crate::{LocalModel, StorageError, archive};

/// Resolves a local file or folder.
pub(crate) async fn fetch(
    uri: &str,
    path: &Path,
    cache: &Cache,
) -> Result<LocalModel, StorageError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound {
                uri: uri.to_string(),
                detail: format!("no file or folder at {}", path.display()),
            },
            _ => StorageError::io(uri, path, e),
        })?;
    let canonical = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| StorageError::io(uri, path, e))?;
    if meta.is_dir() {
        let mut entries = tokio::fs::read_dir(&canonical)
            .await
            .map_err(|e| StorageError::io(uri, &canonical, e))?;
        let first = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io(uri, &canonical, e))?;
        if first.is_none() {
            return Err(StorageError::NotFound {
                uri: uri.to_string(),
                detail: format!("the folder {} is empty", canonical.display()),
            });
        }
        tracing::info!(uri, dir = %canonical.display(), "serving local model folder in place");
        return Ok(LocalModel {
            dir: canonical,
            downloaded_bytes: 0,
            cache_hit: false,
        });
    }

    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let version = format!("local:{}:{modified}", meta.len());
    let key = cache::key(&format!("file://{}", canonical.display()), &version);
    let entry = cache.entry(&key);
    let dir = Cache::model_dir(&entry);
    if cache.is_complete(&key) {
        return Ok(LocalModel {
            dir,
            downloaded_bytes: 0,
            cache_hit: false,
        });
    }
    let (uri_owned, cache_owned) = (uri.to_string(), cache.clone());
    tokio::task::spawn_blocking(move || {
        prepare(&uri_owned, &canonical, &name, &key, &version, &cache_owned)
    })
    .await
    .map_err(|e| StorageError::io(uri, &entry, std::io::Error::other(e)))??;
    tracing::info!(uri, dir = %dir.display(), "local model file prepared");
    Ok(LocalModel {
        dir,
        downloaded_bytes: 0,
        cache_hit: false,
    })
}

/// Links (or unpacks) the file into a staging folder and commits it (blocking).
fn prepare(
    uri: &str,
    file: &Path,
    name: &str,
    key: &str,
    version: &str,
    cache: &Cache,
) -> Result<(), StorageError> {
    let staging = cache
        .staging(key)
        .map_err(|e| StorageError::io(uri, cache.entry(".tmp"), e))?;
    let model = Cache::model_dir(&staging);
    let result = match archive::kind(name) {
        Some(kind) => archive::unpack(file, kind, &model)
            .map(drop)
            .map_err(|detail| StorageError::Archive {
                uri: uri.to_string(),
                detail,
            }),
        None => {
            let target = model.join(name);
            std::fs::hard_link(file, &target)
                .or_else(|_| std::fs::copy(file, &target).map(drop))
                .map_err(|e| StorageError::io(uri, &target, e))
        }
    };
    let marker = serde_json::json!({ "uri": uri, "version": version, "local": true });
    let committed = result.and_then(|()| {
        cache
            .commit(&staging, key, &marker)
            .map_err(|e| StorageError::io(uri, cache.entry(key), e))
    });
    match committed {
        Ok(Committed::Won | Committed::Lost) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}
