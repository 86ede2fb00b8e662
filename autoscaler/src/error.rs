//! The one error type of this crate: a setting that cannot be used.

use thiserror::Error;

/// A setting that could not be parsed or lies outside Knative's allowed range.
///
/// Every variant names the key as the user wrote it (a `config-autoscaler` key such as
/// `stable-window`, an annotation such as `autoscaling.knative.dev/min-scale`, or a KServe
/// predictor field such as `minReplicas`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The value is not of the expected shape (a duration, a number, a boolean...).
    #[error("{key}: cannot parse {value:?}: expected {expected}")]
    Parse {
        /// The key as written.
        key: String,
        /// The value as written.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// The value parsed but lies outside the allowed range.
    #[error("{key} = {value} is out of range: must be {allowed}")]
    OutOfRange {
        /// The key as written.
        key: String,
        /// The value as written (or as resolved, when it came from a combination of keys).
        value: String,
        /// The allowed range, e.g. `in [6s, 1h]`.
        allowed: String,
    },
    /// The key is not one this autoscaler knows.
    #[error("unknown key {key:?}: {hint}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Which keys are accepted.
        hint: &'static str,
    },
}

impl ConfigError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Parse { key, .. }
            | Self::OutOfRange { key, .. }
            | Self::UnknownKey { key, .. } => key,
        }
    }

    pub(crate) fn parse(key: &str, value: &str, expected: &'static str) -> Self {
        Self::Parse {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }

    pub(crate) fn range(key: &str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self::OutOfRange {
            key: key.to_owned(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}
