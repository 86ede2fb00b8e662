//! `az://` and `https://ACCOUNT.blob.core.windows.net/...` against Azurite (npm `azurite`,
//! installed by `scripts/setup.sh` with `@azure/storage-blob`, used here to create containers).

use crate::common;

use std::collections::HashMap;
use std::process::Command;

use common::{Server, free_port, one_line_naming, tool, tree};
use kiln_storage::{StorageError, fetch_with_env};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Azurite's well-known development account.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite {
    server: Server,
}

impl Azurite {
    fn start() -> Option<Self> {
        let bin = tool("npm/node_modules/.bin/azurite-blob")?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(bin);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--silent", "--skipApiVersionCheck"]);
        Some(Azurite {
            server: Server::start(command, port, Some(dir)),
        })
    }

    fn endpoint(&self) -> String {
        format!("{}/{ACCOUNT}", self.server.url())
    }

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// Creates `container` (with the Azure SDK for JavaScript) and returns a client for it.
    fn container(&self, container: &str) -> impl ObjectStore {
        let modules = tool("npm/node_modules").unwrap();
        let script = "const { BlobServiceClient } = require('@azure/storage-blob');\
            BlobServiceClient.fromConnectionString(process.argv[1])\
            .getContainerClient(process.argv[2]).create()\
            .then(() => process.exit(0), e => { console.error(e.message); process.exit(1); });";
        let out = Command::new("node")
            .env("NODE_PATH", modules)
            .args(["-e", script, &self.connection_string(), container])
            .output()
            .unwrap();
        assert!(out.status.success(), "create container: {out:?}");
        MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(KEY)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .unwrap()
    }

    fn env_connection_string(&self) -> HashMap<String, String> {
        HashMap::from([(
            "AZURE_STORAGE_CONNECTION_STRING".to_string(),
            self.connection_string(),
        )])
    }

    fn env_account(&self, key: &str) -> HashMap<String, String> {
        [
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", key.to_string()),
            ("AZURE_STORAGE_ENDPOINT", self.endpoint()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

async fn put(store: &impl ObjectStore, key: &str, body: &str) {
    store
        .put(&ObjectPath::from(key), PutPayload::from(body.to_string()))
        .await
        .unwrap();
}

#[tokio::test]
async fn az_prefix_with_a_connection_string_is_downloaded_and_cached() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let store = azurite.container("models");
    put(&store, "repo/m/config.pbtxt", "name: \"m\"").await;
    put(&store, "repo/m/1/model.onnx", "weights").await;
    put(&store, "other/model.onnx", "not me").await;
    let cache = tempfile::tempdir().unwrap();
    let env = azurite.env_connection_string();

    let first = fetch_with_env("az://models/repo", cache.path(), &env)
        .await
        .unwrap();
    assert_eq!(tree(&first.dir), ["m/1/model.onnx", "m/config.pbtxt"]);
    assert_eq!(first.downloaded_bytes, 16);
    let second = fetch_with_env("az://models/repo", cache.path(), &env)
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.dir, first.dir);

    put(&store, "repo/m/1/model.onnx", "new weights").await;
    let third = fetch_with_env("az://models/repo", cache.path(), &env)
        .await
        .unwrap();
    assert!(!third.cache_hit);
    assert_ne!(third.dir, first.dir);
}

#[tokio::test]
async fn blob_url_with_account_variables_fetches_one_file() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let store = azurite.container("kserve");
    put(&store, "sklearn/model.joblib", "joblib").await;
    let cache = tempfile::tempdir().unwrap();

    let uri = format!("https://{ACCOUNT}.blob.core.windows.net/kserve/sklearn/model.joblib");
    let model = fetch_with_env(&uri, cache.path(), &azurite.env_account(KEY))
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["model.joblib"]);

    let model = fetch_with_env(
        "az://kserve/sklearn",
        cache.path(),
        &azurite.env_account(KEY),
    )
    .await
    .unwrap();
    assert_eq!(tree(&model.dir), ["model.joblib"]);
}

#[tokio::test]
async fn missing_blob_and_wrong_key_are_one_line_errors() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let store = azurite.container("models");
    put(&store, "present/model.onnx", "x").await;
    let cache = tempfile::tempdir().unwrap();

    let uri = "az://models/absent";
    let err = fetch_with_env(uri, cache.path(), &azurite.env_connection_string())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    one_line_naming(&err, uri);

    let wrong_key = KEY.replace("Eby8", "AAAA");
    let uri = "az://models/present";
    let err = fetch_with_env(uri, cache.path(), &azurite.env_account(&wrong_key))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Denied { .. }), "{err:?}");
    one_line_naming(&err, uri);
}

#[tokio::test]
async fn az_without_an_account_says_what_to_set() {
    let cache = tempfile::tempdir().unwrap();
    let uri = "az://models/m";
    let err = fetch_with_env(uri, cache.path(), &HashMap::new())
        .await
        .unwrap_err();
    let text = one_line_naming(&err, uri);
    assert!(text.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{text}");
}
