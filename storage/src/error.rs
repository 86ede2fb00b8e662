//! The one error type of this crate: every failure names the URI and its cause on one line.

use std::path::PathBuf;

/// Why a model could not be fetched. `Display` is one line naming the URI and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The URI is malformed or names a scheme this crate does not serve.
    #[error("storage URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The environment does not allow reaching the store (for example a plain-HTTP endpoint
    /// without `AWS_ALLOW_HTTP=true`, or a missing account name).
    #[error("{uri}: {reason}")]
    Config {
        /// The URI being fetched.
        uri: String,
        /// What to change.
        reason: String,
    },
    /// The object, bucket or folder does not exist, or the prefix holds no object.
    #[error("{uri}: not found: {detail}")]
    NotFound {
        /// The URI being fetched.
        uri: String,
        /// What was missing.
        detail: String,
    },
    /// The store refused the credentials.
    #[error("{uri}: access denied, check the credentials: {detail}")]
    Denied {
        /// The URI being fetched.
        uri: String,
        /// The store's answer.
        detail: String,
    },
    /// The store could not be reached or answered with an error.
    #[error("{uri}: {detail}")]
    Remote {
        /// The URI being fetched.
        uri: String,
        /// The operation and the cause.
        detail: String,
    },
    /// Reading or writing local files failed.
    #[error("{uri}: {}: {error}", path.display())]
    Io {
        /// The URI being fetched.
        uri: String,
        /// The local file or folder involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// An archive could not be unpacked (corrupt, or an entry that would escape its folder).
    #[error("{uri}: archive {detail}")]
    Archive {
        /// The URI being fetched.
        uri: String,
        /// What is wrong with the archive.
        detail: String,
    },
}

impl StorageError {
    /// The URI this error is about.
    pub fn uri(&self) -> &str {
        match self {
            Self::InvalidUri { uri, .. }
            | Self::Config { uri, .. }
            | Self::NotFound { uri, .. }
            | Self::Denied { uri, .. }
            | Self::Remote { uri, .. }
            | Self::Io { uri, .. }
            | Self::Archive { uri, .. } => uri,
        }
    }

    /// True when the named object, bucket or folder does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub(crate) fn io(uri: &str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            uri: uri.to_string(),
            path: path.into(),
            error,
        }
    }

    /// Classifies an `object_store` error raised while doing `op` (e.g. "listing").
    pub(crate) fn store(uri: &str, op: &str, error: object_store::Error) -> Self {
        let allow_http = allow_http_variable(uri);
        let uri = uri.to_string();
        let message = tidy(&one_line(&error));
        let status = |code: &str| message.contains(&format!("status code: {code}"));
        match error {
            object_store::Error::NotFound { .. } => Self::NotFound {
                uri,
                detail: format!("{op}: {message}"),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Self::Denied {
                uri,
                detail: format!("{op}: {message}"),
            },
            _ if status("401") || status("403") => Self::Denied {
                uri,
                detail: format!("{op}: {message}"),
            },
            _ if status("404") => Self::NotFound {
                uri,
                detail: format!("{op}: {message}"),
            },
            _ if message.contains("builder error") && message.contains("http://") => Self::Config {
                uri,
                reason: format!(
                    "{op}: plain-HTTP endpoint refused; set {}=true to allow it, or use an \
                     https endpoint ({message})",
                    allow_http
                ),
            },
            _ => Self::Remote {
                uri,
                detail: format!("{op} failed: {message}"),
            },
        }
    }
}

/// The variable that allows plain HTTP for the store a URI names.
fn allow_http_variable(uri: &str) -> &'static str {
    match uri.split_once("://").map(|(scheme, _)| scheme) {
        Some("gs") => "GOOGLE_ALLOW_HTTP",
        Some("az" | "azure") => "AZURE_ALLOW_HTTP",
        Some("http" | "https") if uri.contains(".blob.core.windows.net") => "AZURE_ALLOW_HTTP",
        _ => "AWS_ALLOW_HTTP",
    }
}

pub(crate) use kiln_api::error_chain::one_line;

/// Shortens a store's XML error body (`<Error><Code>..</Code><Message>..</Message>..`) to
/// `Code: Message`.
fn tidy(message: &str) -> String {
    let Some(start) = message.find("<?xml").or_else(|| message.find("<Error")) else {
        return message.to_string();
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = message[start..].find(&open)? + start + open.len();
        let to = message[from..].find("</")? + from;
        Some(message[from..to].to_string())
    };
    let body = match (tag("Code"), tag("Message")) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(code), None) => code,
        (None, Some(text)) => text,
        (None, None) => return message.to_string(),
    };
    format!("{}{body}", &message[..start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_error_bodies_are_shortened() {
        let raw = "GET http://h/b failed: 404 Not Found: <?xml version=\"1.0\"?> <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><RequestId>x</RequestId></Error>";
        assert_eq!(
            tidy(raw),
            "GET http://h/b failed: 404 Not Found: NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(tidy("plain"), "plain");
    }
}
