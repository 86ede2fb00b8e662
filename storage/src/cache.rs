//! The on-disk cache: one folder per (URI, version), filled in a staging folder and renamed into
//! place in one step, with a marker file written last.
//!
//! ```text
//! <cache_dir>/
//!   <slug>-<hash>/            one fetched version of one URI (hash of URI + version)
//!     model/                  the model's files: what `LocalModel::dir` points at
//!     kiln-complete.json      written last, before the rename: what was fetched, from where
//!   .tmp/<key>.<pid>.<n>/     staging folders; renamed into place when complete
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// The file whose presence makes a cache entry complete.
pub(crate) const MARKER: &str = "kiln-complete.json";
/// The folder inside an entry that holds the model's files.
const MODEL: &str = "model";
/// Staging folders older than this are left over from a crash and removed.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A cache rooted at one folder.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: PathBuf,
}

/// Who put an entry in place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// Our staging folder became the entry.
    Won,
    /// Another fetch finished the same entry first; ours was discarded.
    Lost,
}

impl Cache {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The entry folder for a key.
    pub(crate) fn entry(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The model folder inside an entry (or a staging folder).
    pub(crate) fn model_dir(entry: &Path) -> PathBuf {
        entry.join(MODEL)
    }

    /// True when the entry for `key` was completely written.
    pub(crate) fn is_complete(&self, key: &str) -> bool {
        self.entry(key).join(MARKER).is_file()
    }

    /// A fresh staging folder for `key`, with its empty `model/` folder.
    pub(crate) fn staging(&self, key: &str) -> std::io::Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.root.join(".tmp");
        std::fs::create_dir_all(&tmp)?;
        remove_stale(&tmp);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tmp.join(format!("{key}.{}.{nanos}.{n}", std::process::id()));
        std::fs::create_dir_all(Self::model_dir(&dir))?;
        Ok(dir)
    }

    /// Writes the marker into `staging`, then renames it to the entry for `key`. Losing the race
    /// to another process that completed the same entry is fine: ours is removed.
    pub(crate) fn commit(
        &self,
        staging: &Path,
        key: &str,
        marker: &serde_json::Value,
    ) -> std::io::Result<Committed> {
        let text = serde_json::to_vec_pretty(marker).map_err(std::io::Error::other)?;
        write_synced(&staging.join(MARKER), &text)?;
        let entry = self.entry(key);
        for _ in 0..2 {
            match std::fs::rename(staging, &entry) {
                Ok(()) => return Ok(Committed::Won),
                Err(_) if self.is_complete(key) => {
                    let _ = std::fs::remove_dir_all(staging);
                    return Ok(Committed::Lost);
                }
                Err(e) if !entry.exists() => return Err(e),
                Err(_) => {
                    // An entry without a marker cannot come from a rename; someone else left
                    // it. Move it aside (atomically) and try once more.
                    let aside = self.staging(&format!("{key}.broken"))?;
                    std::fs::remove_dir_all(&aside)?;
                    if std::fs::rename(&entry, &aside).is_ok() {
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                }
            }
        }
        std::fs::rename(staging, &entry).map(|()| Committed::Won)
    }
}

/// The cache key of one version of one URI: a readable slug of the URI's last segment and a
/// hash of the URI and the version.
pub(crate) fn key(uri: &str, version: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(uri.as_bytes());
    hash.update([0]);
    hash.update(version.as_bytes());
    let hash = hex::encode(hash.finalize());
    let last = uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let slug: String = last
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .take(48)
        .collect();
    let slug = slug.trim_start_matches('.');
    match slug.is_empty() {
        true => hash[..32].to_string(),
        false => format!("{slug}-{}", &hash[..32]),
    }
}

/// Writes a file and flushes it to disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_version_and_is_readable() {
        let a = key("s3://b/models/resnet", "v1");
        let b = key("s3://b/models/resnet", "v2");
        assert_ne!(a, b);
        assert!(a.starts_with("resnet-"), "{a}");
        assert_eq!(a, key("s3://b/models/resnet", "v1"));
        assert!(!key("s3://b/", "v").starts_with('-'));
    }

    #[test]
    fn losing_the_race_keeps_the_winner() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let first = cache.staging("k").unwrap();
        let second = cache.staging("k").unwrap();
        std::fs::write(Cache::model_dir(&first).join("f"), "first").unwrap();
        std::fs::write(Cache::model_dir(&second).join("f"), "second").unwrap();
        let marker = serde_json::json!({});
        assert_eq!(cache.commit(&first, "k", &marker).unwrap(), Committed::Won);
        assert_eq!(
            cache.commit(&second, "k", &marker).unwrap(),
            Committed::Lost
        );
        let model = Cache::model_dir(&cache.entry("k"));
        assert_eq!(std::fs::read_to_string(model.join("f")).unwrap(), "first");
        assert!(!second.exists());
    }

    #[test]
    fn an_entry_without_marker_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        std::fs::create_dir_all(cache.entry("k").join("model")).unwrap();
        std::fs::write(cache.entry("k").join("model/junk"), "x").unwrap();
        assert!(!cache.is_complete("k"));
        let staging = cache.staging("k").unwrap();
        let marker = serde_json::json!({});
        assert_eq!(
            cache.commit(&staging, "k", &marker).unwrap(),
            Committed::Won
        );
        assert!(cache.is_complete("k"));
        assert!(!cache.entry("k").join("model/junk").exists());
    }
}
