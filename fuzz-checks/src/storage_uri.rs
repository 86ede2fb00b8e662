//! Storage URIs (`storageUri`, `--storage-uri`), parsed and turned into a configured store.

use std::collections::HashMap;
use std::sync::OnceLock;

use kiln_storage::fuzzing::{Resolved, resolve};

/// Variables that let every scheme reach its store builder (an S3 region, an Azure account).
fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        [
            ("AWS_REGION", "eu-west-1"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "account"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    })
}

/// A storage URI (UTF-8, as manifests and flags carry it). A remote key is relative: no
/// leading or trailing `/`.
pub fn check(data: &[u8]) {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Resolved::Remote { key, .. }) = resolve(uri, env()) {
        assert!(
            !key.starts_with('/') && !key.ends_with('/'),
            "key {key:?} of {uri:?} is not relative"
        );
    }
}
