//! A storage URI, parsed, and the object store that serves it, configured from an environment
//! map (the process environment in production, an explicit map in tests).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::StorageError;

/// Environment variables, by name.
pub(crate) type Env = HashMap<String, String>;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a storage URI points.
#[derive(Debug)]
pub(crate) enum Target {
    /// A local file or folder, served in place.
    Local(PathBuf),
    /// An object or prefix in a store.
    Remote(Remote),
}

/// An object store and the key (object or prefix) the URI names in it.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) key: ObjectPath,
    /// False for plain HTTP, which cannot list a folder: the URI names one file.
    pub(crate) listable: bool,
}

/// Parses `uri` and builds the store that serves it from the variables in `env`.
pub(crate) fn resolve(uri: &str, env: &Env) -> Result<Target, StorageError> {
    let invalid = |reason: String| StorageError::InvalidUri {
        uri: uri.to_string(),
        reason,
    };
    if uri.trim().is_empty() {
        return Err(invalid("empty URI".into()));
    }
    if !uri.contains("://") {
        return Ok(Target::Local(PathBuf::from(uri)));
    }
    let url = Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
    let key = || object_key(uri, &url);
    match url.scheme() {
        "file" => url
            .to_file_path()
            .map(Target::Local)
            .map_err(|()| invalid("not a local file path".into())),
        "s3" => Ok(remote(s3(uri, bucket(uri, &url)?, env)?, key()?, true)),
        "gs" => Ok(remote(gcs(uri, bucket(uri, &url)?, env)?, key()?, true)),
        "az" | "azure" => Ok(remote(
            azure(uri, None, bucket(uri, &url)?, env)?,
            key()?,
            true,
        )),
        "http" | "https" => {
            if url.query().is_some() {
                return Err(invalid(
                    "query strings (e.g. presigned URLs) are not supported".into(),
                ));
            }
            let host = url.host_str().unwrap_or_default();
            if let Some(account) = host.strip_suffix(".blob.core.windows.net") {
                // https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH
                let full = object_key(uri, &url)?;
                let mut parts = full.parts();
                let container = parts
                    .next()
                    .ok_or_else(|| invalid("no container in the Azure Blob URL".into()))?;
                let key: ObjectPath = parts.collect();
                let store = azure(uri, Some(account), container.as_ref(), env)?;
                return Ok(remote(store, key, true));
            }
            let key = key()?;
            if key.as_ref().is_empty() {
                return Err(invalid(
                    "an http(s) URI must name a file or an archive".into(),
                ));
            }
            let base = format!("{}://{}", url.scheme(), url.authority());
            let store = HttpBuilder::new()
                .with_url(base)
                .with_client_options(client_options(url.scheme() == "http"))
                .with_retry(retry())
                .build()
                .map_err(|e| StorageError::store(uri, "configuring HTTP", e))?;
            Ok(remote(Arc::new(store), key, false))
        }
        other => Err(invalid(format!(
            "unsupported scheme {other:?} (use s3, gs, az, http, https, file or a path)"
        ))),
    }
}

fn remote(store: Arc<dyn ObjectStore>, key: ObjectPath, listable: bool) -> Target {
    Target::Remote(Remote {
        store,
        key,
        listable,
    })
}

fn bucket<'u>(uri: &str, url: &'u Url) -> Result<&'u str, StorageError> {
    match url.host_str() {
        Some(b) if !b.is_empty() => Ok(b),
        _ => Err(StorageError::InvalidUri {
            uri: uri.to_string(),
            reason: "no bucket or container name".into(),
        }),
    }
}

/// The URL's path as an object key (percent-decoded, no leading or trailing slash).
fn object_key(uri: &str, url: &Url) -> Result<ObjectPath, StorageError> {
    let path = url.path().trim_matches('/');
    ObjectPath::from_url_path(path).map_err(|e| StorageError::InvalidUri {
        uri: uri.to_string(),
        reason: format!("bad object path: {}", crate::error::one_line(&e)),
    })
}

/// Client settings shared by every store: bounded connect time, no whole-request timeout
/// (model files can be large; a stalled body is caught by the fetcher's idle timeout).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout_disabled()
        .with_allow_http(allow_http)
}

/// A few quick retries, so that an unreachable endpoint fails within seconds.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

fn get<'e>(env: &'e Env, name: &str) -> Option<&'e str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn truthy(value: Option<&str>) -> bool {
    matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

/// The S3 endpoint (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, `AWS_ENDPOINT`, then
/// KServe's `S3_ENDPOINT` host with `S3_USE_HTTPS`), and whether plain HTTP is allowed
/// (`AWS_ALLOW_HTTP=true`, or KServe's `S3_USE_HTTPS=0`).
fn s3_endpoint(env: &Env) -> (Option<String>, bool) {
    let kserve_http = get(env, "S3_USE_HTTPS") == Some("0");
    let endpoint = get(env, "AWS_ENDPOINT_URL_S3")
        .or_else(|| get(env, "AWS_ENDPOINT_URL"))
        .or_else(|| get(env, "AWS_ENDPOINT"))
        .map(str::to_string)
        .or_else(|| {
            get(env, "S3_ENDPOINT").map(|host| match host.contains("://") {
                true => host.to_string(),
                false if kserve_http => format!("http://{host}"),
                false => format!("https://{host}"),
            })
        });
    let allow_http = truthy(get(env, "AWS_ALLOW_HTTP")) || kserve_http;
    (
        endpoint.map(|e| e.trim_end_matches('/').to_string()),
        allow_http,
    )
}

/// S3 from the standard AWS variables, plus KServe's `S3_ENDPOINT`, `S3_USE_HTTPS` and
/// `S3_VERIFY_SSL`.
fn s3(uri: &str, bucket: &str, env: &Env) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let (endpoint, allow_http) = s3_endpoint(env);
    if let Some(endpoint) = &endpoint
        && endpoint.starts_with("http://")
        && !allow_http
    {
        return Err(StorageError::Config {
            uri: uri.to_string(),
            reason: format!(
                "the S3 endpoint {endpoint} is plain HTTP; set AWS_ALLOW_HTTP=true to allow it"
            ),
        });
    }
    let region = get(env, "AWS_REGION")
        .or_else(|| get(env, "AWS_DEFAULT_REGION"))
        .unwrap_or("us-east-1");

    let mut options = client_options(allow_http);
    if get(env, "S3_VERIFY_SSL") == Some("0") {
        options = options.with_allow_invalid_certificates(true);
    }
    let mut builder = AmazonS3Builder::new()
        .with_client_options(options)
        .with_retry(retry());
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("AWS_") else {
            continue;
        };
        if rest.starts_with("ENDPOINT") || rest == "REGION" || rest == "DEFAULT_REGION" {
            continue; // resolved above, with a fixed precedence
        }
        if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value.trim());
        }
    }
    builder = builder.with_bucket_name(bucket).with_region(region);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let store = builder
        .build()
        .map_err(|e| StorageError::store(uri, "configuring S3", e))?;
    Ok(Arc::new(store))
}

/// Google Cloud Storage from `GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT*`;
/// `STORAGE_EMULATOR_HOST` points it at an emulator (no credentials, plain HTTP allowed).
fn gcs(uri: &str, bucket: &str, env: &Env) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let emulator = get(env, "STORAGE_EMULATOR_HOST").map(|host| match host.contains("://") {
        true => host.trim_end_matches('/').to_string(),
        false => format!("http://{}", host.trim_end_matches('/')),
    });
    let mut builder = GoogleCloudStorageBuilder::new()
        .with_client_options(client_options(emulator.is_some()))
        .with_retry(retry());
    for (name, value) in env {
        if name.starts_with("GOOGLE_")
            && let Ok(key) = name.to_ascii_lowercase().parse::<GoogleConfigKey>()
        {
            builder = builder.with_config(key, value.trim());
        }
    }
    if let Some(base) = &emulator {
        builder = builder.with_base_url(base).with_skip_signature(true);
    }
    let store = builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| StorageError::store(uri, "configuring GCS", e))?;
    Ok(Arc::new(store))
}

/// Azure Blob Storage from `AZURE_STORAGE_*` variables, `AZURE_STORAGE_CONNECTION_STRING`, or
/// the emulator (`AZURE_STORAGE_USE_EMULATOR=true`, Azurite's well-known account).
fn azure(
    uri: &str,
    account: Option<&str>,
    container: &str,
    env: &Env,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let mut builder = MicrosoftAzureBuilder::new()
        .with_client_options(client_options(false))
        .with_retry(retry());
    let mut endpoint_http = false;
    if let Some(conn) = get(env, "AZURE_STORAGE_CONNECTION_STRING") {
        for (key, value) in conn
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
        {
            match key {
                "AccountName" => builder = builder.with_account(value),
                "AccountKey" => builder = builder.with_access_key(value),
                "BlobEndpoint" => {
                    endpoint_http = value.starts_with("http://");
                    builder = builder.with_endpoint(value.trim_end_matches('/').to_string());
                }
                "SharedAccessSignature" => {
                    builder = builder.with_config(AzureConfigKey::SasKey, value);
                }
                "UseDevelopmentStorage" if value.eq_ignore_ascii_case("true") => {
                    builder = builder.with_use_emulator(true);
                }
                _ => {}
            }
        }
    }
    for (name, value) in env {
        if name.starts_with("AZURE_")
            && name != "AZURE_STORAGE_CONNECTION_STRING"
            && let Ok(key) = name.to_ascii_lowercase().parse::<AzureConfigKey>()
        {
            if key == AzureConfigKey::Endpoint {
                endpoint_http = value.trim().starts_with("http://");
            }
            builder = builder.with_config(key, value.trim());
        }
    }
    if endpoint_http {
        builder = builder.with_allow_http(true);
    }
    if let Some(account) = account {
        builder = builder.with_account(account);
    }
    let store = builder
        .with_container_name(container)
        .build()
        .map_err(|e| match e {
            object_store::Error::Generic { source, .. }
                if source.to_string().contains("Account must be specified") =>
            {
                StorageError::Config {
                    uri: uri.to_string(),
                    reason: "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME (and \
                             AZURE_STORAGE_ACCOUNT_KEY) or AZURE_STORAGE_CONNECTION_STRING, or use \
                             an https://ACCOUNT.blob.core.windows.net/ URI"
                        .into(),
                }
            }
            e => StorageError::store(uri, "configuring Azure", e),
        })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_s3_specific_endpoint_wins() {
        let e = env(&[
            ("AWS_ENDPOINT_URL", "https://generic"),
            ("AWS_ENDPOINT_URL_S3", "https://s3-only/"),
            ("S3_ENDPOINT", "kserve:9000"),
        ]);
        assert_eq!(s3_endpoint(&e), (Some("https://s3-only".into()), false));
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://minio:9000"),
            ("AWS_ALLOW_HTTP", "TRUE"),
        ]);
        assert_eq!(s3_endpoint(&e), (Some("http://minio:9000".into()), true));
        assert_eq!(s3_endpoint(&env(&[])), (None, false));
    }

    #[test]
    fn kserve_s3_variables_give_the_scheme() {
        let e = env(&[("S3_ENDPOINT", "minio:9000"), ("S3_USE_HTTPS", "0")]);
        assert_eq!(s3_endpoint(&e), (Some("http://minio:9000".into()), true));
        let e = env(&[("S3_ENDPOINT", "minio:9000")]);
        assert_eq!(s3_endpoint(&e), (Some("https://minio:9000".into()), false));
    }

    #[test]
    fn uris_name_their_store_and_key() {
        let e = env(&[("AWS_REGION", "eu-west-1")]);
        let Target::Remote(r) = resolve("s3://bucket/a/b%20c/", &e).unwrap() else {
            panic!("not remote")
        };
        assert_eq!(r.key.as_ref(), "a/b c");
        assert!(r.listable);
        let Target::Remote(r) = resolve("https://host:8443/dir/model.tar.gz", &e).unwrap() else {
            panic!("not remote")
        };
        assert_eq!(r.key.as_ref(), "dir/model.tar.gz");
        assert!(!r.listable);
        let e = env(&[("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")]);
        let Target::Remote(r) =
            resolve("https://acct.blob.core.windows.net/container/m/v1", &e).unwrap()
        else {
            panic!("not remote")
        };
        assert_eq!(r.key.as_ref(), "m/v1");
        assert!(matches!(
            resolve("relative/dir", &e).unwrap(),
            Target::Local(_)
        ));
        assert!(matches!(
            resolve("file:///models/m", &e).unwrap(),
            Target::Local(p) if p == std::path::Path::new("/models/m")
        ));
    }
}
