//! kiln-storage: turn a KServe `storageUri` into a local folder of model files.
//!
//! [`fetch`] accepts `s3://bucket/key`, `gs://bucket/key`, `az://container/path`,
//! `https://ACCOUNT.blob.core.windows.net/container/path`, `http(s)://host/file` (one file or
//! a `.tar.gz`/`.tgz`/`.tar`/`.zip` archive, unpacked), `file:///path` and plain paths.
//! A URI may name one object or a folder (prefix): every object under the prefix is
//! downloaded, keeping its relative path.
//!
//! Remote models are cached under a folder keyed by the URI and the objects' versions (ETag,
//! else last-modified time, and size): a second fetch of an unchanged model lists the store and
//! downloads nothing. Downloads stream to disk into a staging folder that is renamed into
//! place once complete, so a partial download is never taken for a cached one and concurrent
//! fetches of the same URI do not corrupt each other.
//!
//! ```no_run
//! # async fn run() -> Result<(), kiln_storage::StorageError> {
//! let model = kiln_storage::fetch("s3://models/resnet", &kiln_storage::default_cache_dir()).await?;
//! println!("{} ({} bytes downloaded)", model.dir.display(), model.downloaded_bytes);
//! # Ok(()) }
//! ```

mod archive;
mod cache;
mod error;
mod fetch;
/// For the fuzz targets and their corpus replay test only (see the module docs).
#[doc(hidden)]
pub mod fuzzing;
mod local;
mod uri;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::StorageError;

/// Where a fetched model lies on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// Folder holding the model's files: the object or folder the URI names; for a single-file
    /// URI, a folder containing that one file under its own name; an archive, unpacked. A local
    /// folder is served in place (this is that folder).
    pub dir: PathBuf,
    /// Bytes downloaded this time (0 on a cache hit or a local path).
    pub downloaded_bytes: u64,
    /// True when nothing was downloaded because the cache already held this version.
    pub cache_hit: bool,
}

/// Fetches the model `uri` names into `cache_dir` (or serves it in place for a local folder),
/// configured from the process environment (see [`fetch_with_env`] for the variables).
pub async fn fetch(uri: &str, cache_dir: &Path) -> Result<LocalModel, StorageError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    fetch_with_env(uri, cache_dir, &env).await
}

/// [`fetch`], reading configuration from `env` instead of the process environment.
///
/// Variables read: S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`, the other `AWS_*` keys `object_store` knows (web identity, container
/// credentials, ...), and KServe's `S3_ENDPOINT`, `S3_USE_HTTPS`, `S3_VERIFY_SSL`.
/// GCS: `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT*`, `STORAGE_EMULATOR_HOST`.
/// Azure: `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
/// `AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_USE_EMULATOR`, `AZURE_STORAGE_ENDPOINT`,
/// and the other `AZURE_*` keys `object_store` knows.
pub async fn fetch_with_env(
    uri: &str,
    cache_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<LocalModel, StorageError> {
    let cache = cache::Cache::new(cache_dir);
    match uri::resolve(uri, env)? {
        uri::Target::Local(path) => local::fetch(uri, &path, &cache).await,
        uri::Target::Remote(remote) => fetch::fetch(uri, remote, &cache).await,
    }
}

/// The default cache folder: `kiln/models` under the user's cache folder (`$XDG_CACHE_HOME`,
/// `~/.cache` on Linux), or `./.kiln-models` when there is none.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .map(|d| d.join("kiln").join("models"))
        .unwrap_or_else(|| PathBuf::from(".kiln-models"))
}
