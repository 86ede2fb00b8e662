//! Reading YAML, with one set of options for every Kiln input (manifests, the routes file,
//! `kiln up`'s config, pipeline specs): YAML 1.2's core schema for booleans, so `n`, `y`,
//! `on` and `off` stay strings (serde-saphyr reads them as YAML 1.1 booleans by default, and
//! an output named `n` or an annotation value `on` would turn into `false`/`true`).

use serde::de::DeserializeOwned;

pub use serde_saphyr::Error;

/// The options every Kiln input is read with.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// One YAML document (or JSON, a subset) as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Every document of a multi-document text as `T` (empty documents skipped).
pub fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, Error> {
    serde_saphyr::from_multiple_with_options(text, options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_and_false_are_booleans() {
        let value: serde_json::Value =
            from_str("a: n\nb: on\nc: yes\nd: true\ne: false\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "n", "b": "on", "c": "yes", "d": true, "e": false})
        );
    }
}
