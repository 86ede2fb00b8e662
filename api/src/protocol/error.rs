//! What can be wrong with a request, before any model sees it.

/// A request that does not follow the protocol. Every variant is the client's fault
/// (HTTP 400, gRPC `INVALID_ARGUMENT`); the message names the offending part.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    /// The body is not valid JSON for the protocol.
    #[error("malformed request body: {0}")]
    MalformedJson(String),
    /// A tensor names a type the protocol does not define.
    #[error("unknown datatype '{0}'")]
    UnknownDatatype(String),
    /// A shape has a negative dimension or overflows.
    #[error("input '{name}': invalid shape {shape:?}")]
    InvalidShape {
        /// The tensor's name.
        name: String,
        /// The shape as sent.
        shape: Vec<i64>,
    },
    /// The number of values or bytes does not match the shape.
    #[error("input '{name}': shape {shape:?} of {datatype} needs {expected} {unit}, got {got}")]
    DataLength {
        /// The tensor's name.
        name: String,
        /// The shape as sent.
        shape: Vec<i64>,
        /// The datatype as sent.
        datatype: String,
        /// Elements (JSON) or bytes (binary) the shape needs.
        expected: usize,
        /// Elements or bytes received.
        got: usize,
        /// `"values"` or `"bytes"`.
        unit: &'static str,
    },
    /// A JSON value does not fit the tensor's datatype.
    #[error("input '{name}': value {value} is not a valid {datatype}")]
    BadValue {
        /// The tensor's name.
        name: String,
        /// The datatype as sent.
        datatype: String,
        /// The offending value, as text.
        value: String,
    },
    /// A datatype that cannot travel in the chosen encoding (FP16 as JSON numbers, ...).
    #[error("input '{name}': {datatype} {reason}")]
    Unsupported {
        /// The tensor's name.
        name: String,
        /// The datatype as sent.
        datatype: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Binary framing (Triton's binary tensor extension, gRPC raw contents) is wrong.
    #[error("malformed binary data: {0}")]
    Framing(String),
}
