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
        let store = Store {
            path: dir.join(file),
        };
        store.remove_stale_temporaries();
        Ok(store)
    }

    /// The temporary file a write by process `pid` goes through.
    fn temporary(&self, pid: u32) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(format!("{}{pid}.tmp", self.temporary_prefix()))
    }

    fn temporary_prefix(&self) -> String {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("state");
        format!(".{name}.")
    }

    /// Removes what writes cut short by a `kill -9` left behind: temporaries of processes
    /// that are gone (or of this one, from before it opened the store). A temporary of a
    /// live process is that process's write in progress and is left alone.
    fn remove_stale_temporaries(&self) {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = self.temporary_prefix();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
            if !alive {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "removed a write cut short")
                    }
                    Err(err) => {
                        tracing::warn!(file = %entry.path().display(), %err, "cannot remove a stale temporary file")
                    }
                }
            }
        }
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
        let tmp = self.temporary(std::process::id());
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
    fn opening_removes_writes_cut_short_but_not_a_live_process_s() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        // pid 0 is never a process; our parent is alive; our own pid is from before `open`.
        let parent = std::os::unix::process::parent_id();
        let me = std::process::id();
        for name in [
            ".state.json.0.tmp".to_owned(),
            format!(".state.json.{me}.tmp"),
            format!(".state.json.{parent}.tmp"),
            ".other.json.0.tmp".to_owned(),
            "state.json.0.tmp".to_owned(),
        ] {
            std::fs::write(file(&name), b"{").unwrap();
        }
        Store::open(dir.path(), "state.json").unwrap();
        assert!(!file(".state.json.0.tmp").exists());
        assert!(!file(&format!(".state.json.{me}.tmp")).exists());
        assert!(
            file(&format!(".state.json.{parent}.tmp")).exists(),
            "a live writer's"
        );
        assert!(file(".other.json.0.tmp").exists(), "another store's");
        assert!(file("state.json.0.tmp").exists(), "not a temporary");
    }

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
