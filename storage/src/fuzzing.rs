//! A thin wrapper over the storage URI parser, which is crate-private, for the fuzz targets
//! (`fuzz/`) and their corpus replay test (`fuzz-checks/`) only. Not part of the crate's API.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::StorageError;
use crate::uri::{self, Target};

/// Where a storage URI points, as the parser resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A local file or folder.
    Local(PathBuf),
    /// A key (object or prefix) in a store that was configured for it.
    Remote {
        /// The key.
        key: String,
        /// Whether the store can list a prefix (false for plain HTTP).
        listable: bool,
    },
}

/// Parses `uri` and builds its store from `env`, as a fetch does before any I/O.
pub fn resolve(uri: &str, env: &HashMap<String, String>) -> Result<Resolved, StorageError> {
    Ok(match uri::resolve(uri, env)? {
        Target::Local(path) => Resolved::Local(path),
        Target::Remote(remote) => Resolved::Remote {
            key: remote.key.as_ref().to_owned(),
            listable: remote.listable,
        },
    })
}
