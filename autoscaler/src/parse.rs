//! Reading one setting's text into a typed value, with an error that names the key.

use std::time::Duration;

use crate::error::ConfigError;
use kiln_api::duration::parse_duration;

pub(crate) fn float(key: &str, text: &str) -> Result<f64, ConfigError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ConfigError::parse(key, text, "a number"))
}

pub(crate) fn count(key: &str, text: &str) -> Result<u32, ConfigError> {
    let trimmed = text.trim();
    match trimmed.parse::<i64>() {
        Ok(v) if v < 0 => Err(ConfigError::range(key, v, "at least 0")),
        Ok(v) => u32::try_from(v).map_err(|_| ConfigError::range(key, v, "at most 4294967295")),
        Err(_) => Err(ConfigError::parse(key, text, "a whole number")),
    }
}

pub(crate) fn boolean(key: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(true),
        "false" | "f" | "0" => Ok(false),
        _ => Err(ConfigError::parse(key, text, "true or false")),
    }
}

pub(crate) fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text.trim())
        .map_err(|_| ConfigError::parse(key, text, "a duration such as 60s, 1m or 500ms"))
}
