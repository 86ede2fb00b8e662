//! Durable controller state: one JSON document in the state dir, replaced atomically.
//!
//! A write goes to a temporary file in the same folder, is flushed to disk, then renamed over
//! the previous document and the folder is synced; a crash at any point leaves either the old
//! or the new document, never a torn one. That is what lets `kiln up` come back after a
//! `kill -9` with the same services, revisions and traffic.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failure to read or write the state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The document does not parse.
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// A JSON document persisted atomically at `path`.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// A store for `file` inside `dir` (the folder is created).
    pub fn open(dir: &Path, file: &str) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            path: dir.join(file),
        })
    }

    /// The document's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the document; `None` when it was never written.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    /// Replaces the document atomically and durably.
    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("state"),
            std::process::id()
        ));
        let json = serde_json::to_vec_pretty(value).expect("controller state serializes");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "state.json").unwrap();
        assert_eq!(store.load::<Vec<u32>>().unwrap(), None);
        store.save(&vec![1u32, 2]).unwrap();
        store.save(&vec![3u32]).unwrap();
        assert_eq!(store.load::<Vec<u32>>().unwrap(), Some(vec![3]));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    }

    #[test]
    fn a_corrupt_document_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), b"{torn").unwrap();
        let store = Store::open(dir.path(), "state.json").unwrap();
        let err = store.load::<Vec<u32>>().unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
