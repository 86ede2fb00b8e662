//! The body of every error Kiln answers over HTTP: `{"error": "..."}`, as KServe's model
//! servers write it. The predictor, the router and the admin API build it here, and the CLI
//! reads it back with the same type.

use serde::{Deserialize, Serialize};

/// `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, for a person.
    pub error: String,
}

impl ErrorBody {
    /// The body for `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
        }
    }

    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of one string always serialises")
    }

    /// `{"error": message}` as JSON text.
    pub fn json(message: &str) -> String {
        Self::new(message).to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_message_and_reads_back() {
        let text = ErrorBody::json("bad \"input\"\n");
        assert_eq!(text, r#"{"error":"bad \"input\"\n"}"#);
        let back: ErrorBody = serde_json::from_str(&text).unwrap();
        assert_eq!(back.error, "bad \"input\"\n");
    }
}
