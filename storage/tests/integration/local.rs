//! `file://` URIs and plain paths: folders served in place, single files and archives through
//! the cache.

use crate::common;

use std::collections::HashMap;

use common::{one_line_naming, tree};
use kiln_storage::{StorageError, fetch_with_env};

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

#[tokio::test]
async fn a_local_folder_is_served_in_place() {
    let models = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(models.path().join("triton/m/1")).unwrap();
    std::fs::write(models.path().join("triton/m/1/model.onnx"), "x").unwrap();
    std::fs::write(models.path().join("triton/m/config.pbtxt"), "c").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let folder = models.path().join("triton");
    let canonical = std::fs::canonicalize(&folder).unwrap();

    let uris = [
        folder.display().to_string(),
        format!("file://{}", folder.display()),
    ];
    for uri in uris {
        let model = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
        assert_eq!(model.dir, canonical, "{uri}");
        assert_eq!(model.downloaded_bytes, 0);
        assert!(!model.cache_hit);
    }
    // Nothing was copied.
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn a_local_file_becomes_a_folder_holding_just_that_file() {
    let models = tempfile::tempdir().unwrap();
    std::fs::write(models.path().join("model.onnx"), "weights").unwrap();
    std::fs::write(models.path().join("other.txt"), "not me").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let uri = format!("file://{}", models.path().join("model.onnx").display());

    let model = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
    assert_eq!(tree(&model.dir), ["model.onnx"]);
    assert_eq!(
        std::fs::read_to_string(model.dir.join("model.onnx")).unwrap(),
        "weights"
    );
    assert_eq!(model.downloaded_bytes, 0);
    let again = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
    assert_eq!(again.dir, model.dir);
}

#[tokio::test]
async fn a_local_archive_is_unpacked() {
    let models = tempfile::tempdir().unwrap();
    let archive = models.path().join("model.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "m/1/model.onnx", &b"ab"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let model = fetch_with_env(archive.to_str().unwrap(), cache.path(), &no_env())
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["m/1/model.onnx"]);
}

#[tokio::test]
async fn a_missing_path_is_a_not_found_error() {
    let cache = tempfile::tempdir().unwrap();
    let uri = "/definitely/not/here/model.onnx";
    let err = fetch_with_env(uri, cache.path(), &no_env())
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    one_line_naming(&err, uri);
}

#[tokio::test]
async fn unknown_schemes_and_empty_uris_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    for uri in ["ftp://host/model.onnx", "", "s3:///key-without-bucket"] {
        let err = fetch_with_env(uri, cache.path(), &no_env())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidUri { .. }),
            "{uri}: {err:?}"
        );
        one_line_naming(&err, uri);
    }
}

#[test]
fn the_default_cache_folder_is_under_the_user_cache() {
    let dir = kiln_storage::default_cache_dir();
    assert!(
        dir.ends_with("kiln/models") || dir.ends_with(".kiln-models"),
        "{dir:?}"
    );
}
