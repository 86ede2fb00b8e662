//! Remote fetch: list (or HEAD) the URI, key the cache by the objects' versions, and download
//! what is missing into a staging folder, streaming each object to disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::cache::{self, Cache, Committed};
use crate::uri::Remote;
use crate::{LocalModel, StorageError, archive};

/// Longest wait for a response to start, or for the next chunk of a body.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest time listing a prefix (all pages) or reading one object's metadata may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// Objects downloaded at once.
const PARALLEL: usize = 4;

/// One object to fetch, and where it goes relative to the model folder.
#[derive(Debug)]
struct Item {
    meta: ObjectMeta,
    relative: PathBuf,
}

/// What the URI names in the store.
#[derive(Debug)]
enum Inventory {
    /// Every object under a prefix.
    Folder(Vec<Item>),
    /// One object (unpacked when its name is an archive's).
    File(Item),
}

/// Fetches a remote URI into the cache.
pub(crate) async fn fetch(
    uri: &str,
    remote: Remote,
    cache: &Cache,
) -> Result<LocalModel, StorageError> {
    let inventory = tokio::time::timeout(LIST_TIMEOUT, inventory(uri, &remote))
        .await
        .map_err(|_| StorageError::Remote {
            uri: uri.to_string(),
            detail: format!("listing did not finish within {}s", LIST_TIMEOUT.as_secs()),
        })??;
    let items = match &inventory {
        Inventory::Folder(items) => items.iter().collect::<Vec<_>>(),
        Inventory::File(item) => vec![item],
    };
    let version = version(&items);
    let key = cache::key(uri, &version);
    let entry = cache.entry(&key);
    if cache.is_complete(&key) {
        tracing::info!(uri, dir = %entry.display(), "model already cached");
        return Ok(LocalModel {
            dir: Cache::model_dir(&entry),
            downloaded_bytes: 0,
            cache_hit: true,
        });
    }

    let total: u64 = items.iter().map(|i| i.meta.size).sum();
    tracing::info!(
        uri,
        objects = items.len(),
        bytes = total,
        "downloading model"
    );
    let started = Instant::now();
    let staging = cache
        .staging(&key)
        .map_err(|e| StorageError::io(uri, cache.entry(".tmp"), e))?;
    let result = download_all(uri, &remote.store, &inventory, &staging).await;
    let downloaded = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(e);
        }
    };
    let marker = serde_json::json!({
        "uri": uri,
        "version": version,
        "objects": items.len(),
        "bytes": downloaded,
    });
    let committed = {
        let (cache, staging, key) = (cache.clone(), staging.clone(), key.clone());
        tokio::task::spawn_blocking(move || cache.commit(&staging, &key, &marker))
            .await
            .map_err(|e| StorageError::io(uri, &entry, std::io::Error::other(e)))?
            .map_err(|e| StorageError::io(uri, &entry, e))?
    };
    let ms = started.elapsed().as_millis() as u64;
    match committed {
        Committed::Won => {
            tracing::info!(uri, bytes = downloaded, ms, dir = %entry.display(), "model downloaded")
        }
        Committed::Lost => tracing::info!(
            uri,
            bytes = downloaded,
            ms,
            "model downloaded, but another fetch cached it first"
        ),
    }
    Ok(LocalModel {
        dir: Cache::model_dir(&entry),
        downloaded_bytes: downloaded,
        cache_hit: false,
    })
}

/// Lists the prefix; when it holds nothing, the key names one object (HEAD).
async fn inventory(uri: &str, remote: &Remote) -> Result<Inventory, StorageError> {
    let key = &remote.key;
    if remote.listable {
        let prefix = (!key.as_ref().is_empty()).then_some(key);
        let metas: Vec<ObjectMeta> = remote
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| StorageError::store(uri, "listing", e))?;
        let items = folder_items(uri, key, metas)?;
        if !items.is_empty() {
            return Ok(Inventory::Folder(items));
        }
        if key.as_ref().is_empty() {
            return Err(StorageError::NotFound {
                uri: uri.to_string(),
                detail: "the bucket holds no object".into(),
            });
        }
    }
    match remote.store.head(key).await {
        Ok(meta) => {
            let name = key.filename().unwrap_or("model").to_string();
            Ok(Inventory::File(Item {
                meta,
                relative: PathBuf::from(name),
            }))
        }
        Err(object_store::Error::NotFound { .. }) if remote.listable => {
            Err(StorageError::NotFound {
                uri: uri.to_string(),
                detail: "no object with this key and no object under this prefix".into(),
            })
        }
        Err(e) => Err(StorageError::store(uri, "reading object metadata", e)),
    }
}

/// Objects under `prefix`, with their paths relative to it; folder markers (empty objects whose
/// path is a folder of another object) are dropped.
fn folder_items(
    uri: &str,
    prefix: &ObjectPath,
    metas: Vec<ObjectMeta>,
) -> Result<Vec<Item>, StorageError> {
    let mut items = Vec::with_capacity(metas.len());
    for meta in metas {
        let Some(parts) = meta.location.prefix_match(prefix) else {
            continue;
        };
        let mut relative = PathBuf::new();
        for part in parts {
            let part = part.as_ref();
            if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\']) {
                return Err(StorageError::Remote {
                    uri: uri.to_string(),
                    detail: format!("object {:?} has an unsafe path", meta.location.as_ref()),
                });
            }
            relative.push(part);
        }
        if !relative.as_os_str().is_empty() {
            items.push(Item { meta, relative });
        }
    }
    items.sort_by(|a, b| a.relative.cmp(&b.relative));
    let folders: std::collections::HashSet<PathBuf> = items
        .iter()
        .flat_map(|i| i.relative.ancestors().skip(1).map(Path::to_path_buf))
        .collect();
    items.retain(|i| !(i.meta.size == 0 && folders.contains(&i.relative)));
    Ok(items)
}

/// A fingerprint of the objects' versions: path, size and ETag (or last-modified time).
fn version(items: &[&Item]) -> String {
    let mut hash = Sha256::new();
    for item in items {
        let stamp = match &item.meta.e_tag {
            Some(etag) => format!("etag:{etag}"),
            None => format!("mtime:{}", item.meta.last_modified.timestamp_millis()),
        };
        let line = format!(
            "{}\t{}\t{}\n",
            item.relative.display(),
            item.meta.size,
            stamp
        );
        hash.update(line.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// Downloads everything into `staging`'s model folder; returns the bytes downloaded.
async fn download_all(
    uri: &str,
    store: &std::sync::Arc<dyn ObjectStore>,
    inventory: &Inventory,
    staging: &Path,
) -> Result<u64, StorageError> {
    let model = Cache::model_dir(staging);
    match inventory {
        Inventory::Folder(items) => {
            let sizes: Vec<u64> = futures::stream::iter(items)
                .map(|item| download(uri, store, &item.meta, model.join(&item.relative)))
                .buffer_unordered(PARALLEL)
                .try_collect()
                .await?;
            Ok(sizes.into_iter().sum())
        }
        Inventory::File(item) => {
            let name = item.relative.to_string_lossy().into_owned();
            match archive::kind(&name) {
                None => download(uri, store, &item.meta, model.join(&item.relative)).await,
                Some(kind) => {
                    let file = staging.join(format!("archive-{name}"));
                    let bytes = download(uri, store, &item.meta, file.clone()).await?;
                    let dest = model.clone();
                    let unpacked = tokio::task::spawn_blocking(move || {
                        let result = archive::unpack(&file, kind, &dest);
                        let _ = std::fs::remove_file(&file);
                        result
                    })
                    .await
                    .map_err(|e| StorageError::io(uri, &model, std::io::Error::other(e)))?;
                    let files = unpacked.map_err(|detail| StorageError::Archive {
                        uri: uri.to_string(),
                        detail,
                    })?;
                    tracing::debug!(uri, files, "archive unpacked");
                    Ok(bytes)
                }
            }
        }
    }
}

/// Streams one object to `dest`, checking its length.
async fn download(
    uri: &str,
    store: &std::sync::Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
    dest: PathBuf,
) -> Result<u64, StorageError> {
    let what = meta.location.as_ref();
    let stalled = |phase: &str| StorageError::Remote {
        uri: uri.to_string(),
        detail: format!(
            "downloading {what:?}: no data for {}s while {phase}",
            IDLE_TIMEOUT.as_secs()
        ),
    };
    let result = tokio::time::timeout(IDLE_TIMEOUT, store.get(&meta.location))
        .await
        .map_err(|_| stalled("waiting for the response"))?
        .map_err(|e| StorageError::store(uri, &format!("downloading {what:?}"), e))?;
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StorageError::io(uri, parent, e))?;
    }
    let mut file = tokio::fs::File::create(&dest)
        .await
        .map_err(|e| StorageError::io(uri, &dest, e))?;
    let mut stream = result.into_stream();
    let mut written = 0u64;
    loop {
        let chunk = tokio::time::timeout(IDLE_TIMEOUT, stream.next())
            .await
            .map_err(|_| stalled("reading the body"))?;
        let Some(chunk) = chunk else { break };
        let chunk =
            chunk.map_err(|e| StorageError::store(uri, &format!("downloading {what:?}"), e))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| StorageError::io(uri, &dest, e))?;
        written += chunk.len() as u64;
    }
    file.sync_all()
        .await
        .map_err(|e| StorageError::io(uri, &dest, e))?;
    if written != meta.size {
        return Err(StorageError::Remote {
            uri: uri.to_string(),
            detail: format!(
                "downloading {what:?}: got {written} bytes, expected {}",
                meta.size
            ),
        });
    }
    Ok(written)
}
