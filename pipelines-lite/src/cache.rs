//! The step cache. The key is SHA-256 over the executor spec as written (image, command, args,
//! env; placeholders unexpanded), the component's output definitions, the input parameter
//! values and the content digests of the input artifacts: never a path that differs per run.
//! An entry keeps the output parameters and a copy of the output artifacts. For each task the
//! parts of its last key are kept too, so a miss can say which input changed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::{copy_tree, sha256_hex};
use crate::executor_input::RuntimeArtifact;

/// What goes into a key, part by part (each part already a digest or a canonical JSON text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    /// Digest of the executor spec as written.
    pub executor: String,
    /// Digest of the output definitions.
    pub outputs: String,
    /// Input parameter values as canonical JSON.
    pub parameters: BTreeMap<String, String>,
    /// Content digests of input artifacts, in list order.
    pub artifacts: BTreeMap<String, Vec<String>>,
}

impl KeyParts {
    /// The cache key.
    pub fn key(&self) -> String {
        sha256_hex(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Why `self` (now) differs from `before`, in words.
    pub fn changes_since(&self, before: &KeyParts) -> Vec<String> {
        let mut out = Vec::new();
        if self.executor != before.executor {
            out.push("the executor spec changed".to_owned());
        }
        if self.outputs != before.outputs {
            out.push("the output definitions changed".to_owned());
        }
        diff(
            &self.parameters,
            &before.parameters,
            "input parameter",
            &mut out,
        );
        diff(
            &self.artifacts,
            &before.artifacts,
            "input artifact",
            &mut out,
        );
        out
    }
}

fn diff<V: PartialEq>(
    now: &BTreeMap<String, V>,
    before: &BTreeMap<String, V>,
    what: &str,
    out: &mut Vec<String>,
) {
    for (k, v) in now {
        match before.get(k) {
            None => out.push(format!("{what} `{k}` is new")),
            Some(b) if b != v => out.push(format!("{what} `{k}` changed")),
            Some(_) => {}
        }
    }
    for k in before.keys().filter(|k| !now.contains_key(*k)) {
        out.push(format!("{what} `{k}` is gone"));
    }
}

/// A stored result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    parameters: BTreeMap<String, Value>,
    artifacts: BTreeMap<String, Vec<StoredArtifact>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredArtifact {
    artifact: RuntimeArtifact,
    /// Whether content was copied (an output the step never wrote has none).
    has_content: bool,
}

/// Outputs of a hit, with artifacts copied to the URIs this run chose.
#[derive(Debug, Clone, Default)]
pub struct CachedOutputs {
    /// Output parameters.
    pub parameters: BTreeMap<String, Value>,
    /// Output artifacts.
    pub artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
}

/// The cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir` (made when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join("entries").join(key)
    }

    fn task_file(&self, task_identity: &str) -> PathBuf {
        self.dir
            .join("tasks")
            .join(format!("{}.json", sha256_hex(task_identity.as_bytes())))
    }

    /// The entry for `key`, its artifacts copied to `targets` (output name -> local paths in
    /// list order), or `None` on a miss.
    pub fn lookup(
        &self,
        key: &str,
        targets: &BTreeMap<String, Vec<PathBuf>>,
    ) -> io::Result<Option<CachedOutputs>> {
        let dir = self.entry_dir(key);
        let Ok(text) = std::fs::read_to_string(dir.join("entry.json")) else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_str::<Entry>(&text) else {
            return Ok(None);
        };
        let mut out = CachedOutputs {
            parameters: entry.parameters,
            ..Default::default()
        };
        for (name, stored) in entry.artifacts {
            let mut list = Vec::new();
            for (i, s) in stored.into_iter().enumerate() {
                let mut artifact = s.artifact;
                if let Some(target) = targets.get(&name).and_then(|t| t.get(i)) {
                    if s.has_content {
                        copy_tree(
                            &dir.join("artifacts").join(&name).join(i.to_string()),
                            target,
                        )?;
                    }
                    artifact.uri = target.to_string_lossy().into_owned();
                }
                list.push(artifact);
            }
            out.artifacts.insert(name, list);
        }
        Ok(Some(out))
    }

    /// Stores a successful step's outputs under `key`.
    pub fn store(
        &self,
        key: &str,
        parameters: &BTreeMap<String, Value>,
        artifacts: &BTreeMap<String, Vec<RuntimeArtifact>>,
    ) -> io::Result<()> {
        let final_dir = self.entry_dir(key);
        let tmp = self
            .dir
            .join("entries")
            .join(format!(".{key}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let mut stored = BTreeMap::new();
        for (name, list) in artifacts {
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let source = Path::new(&a.uri);
                let has_content = source.exists();
                if has_content {
                    copy_tree(
                        source,
                        &tmp.join("artifacts").join(name).join(i.to_string()),
                    )?;
                }
                out.push(StoredArtifact {
                    artifact: a.clone(),
                    has_content,
                });
            }
            stored.insert(name.clone(), out);
        }
        let entry = Entry {
            parameters: parameters.clone(),
            artifacts: stored,
        };
        std::fs::write(
            tmp.join("entry.json"),
            serde_json::to_vec(&entry).map_err(io::Error::other)?,
        )?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir)
    }

    /// The key parts recorded for a task the last time it ran.
    pub fn last_parts(&self, task_identity: &str) -> Option<KeyParts> {
        let text = std::fs::read_to_string(self.task_file(task_identity)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records the key parts a task ran with.
    pub fn remember_parts(&self, task_identity: &str, parts: &KeyParts) -> io::Result<()> {
        let file = self.task_file(task_identity);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, serde_json::to_vec(parts).map_err(io::Error::other)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_names_the_input_that_changed() {
        let mut before = KeyParts {
            executor: "e".into(),
            outputs: "o".into(),
            ..Default::default()
        };
        before.parameters.insert("n".into(), "3".into());
        before
            .artifacts
            .insert("data".into(), vec!["sha256:a".into()]);
        let mut now = before.clone();
        assert_eq!(now.key(), before.key());
        now.artifacts.insert("data".into(), vec!["sha256:b".into()]);
        assert_ne!(now.key(), before.key());
        assert_eq!(
            now.changes_since(&before),
            ["input artifact `data` changed"]
        );
        now.parameters.insert("m".into(), "1".into());
        assert_eq!(
            now.changes_since(&before),
            [
                "input parameter `m` is new",
                "input artifact `data` changed"
            ]
        );
    }

    #[test]
    fn a_stored_entry_copies_its_artifacts_to_the_new_uris() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let produced = dir.path().join("run1/out");
        std::fs::create_dir_all(produced.parent().unwrap()).unwrap();
        std::fs::write(&produced, b"model").unwrap();
        let artifact = RuntimeArtifact {
            name: "out".into(),
            type_schema: None,
            uri: produced.to_string_lossy().into_owned(),
            metadata: Default::default(),
        };
        let params = BTreeMap::from([("n".to_owned(), serde_json::json!(3))]);
        let arts = BTreeMap::from([("out".to_owned(), vec![artifact])]);
        cache.store("k", &params, &arts).unwrap();
        let target = dir.path().join("run2/out");
        let targets = BTreeMap::from([("out".to_owned(), vec![target.clone()])]);
        let hit = cache.lookup("k", &targets).unwrap().unwrap();
        assert_eq!(hit.parameters, params);
        assert_eq!(std::fs::read(&target).unwrap(), b"model");
        assert_eq!(hit.artifacts["out"][0].uri, target.to_string_lossy());
        assert!(cache.lookup("other", &targets).unwrap().is_none());
    }
}
