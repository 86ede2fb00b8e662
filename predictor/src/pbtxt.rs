//! A small reader for protobuf text format, enough for Triton's `config.pbtxt`.
//!
//! It yields a tree of fields; [`crate::signature`] picks the fields it needs from it.

/// A value in a text-format document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A number, identifier (enum value) or string, without quotes.
    Scalar(String),
    /// A nested message.
    Message(Vec<(String, Value)>),
    /// A `[ ... ]` list of values.
    List(Vec<Value>),
}

impl Value {
    /// Fields named `key`, flattening lists (`input [ {..}, {..} ]` and repeated `input {..}`).
    pub(crate) fn all<'a>(fields: &'a [(String, Value)], key: &str) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for (k, v) in fields {
            if k == key {
                match v {
                    Value::List(items) => out.extend(items.iter()),
                    other => out.push(other),
                }
            }
        }
        out
    }

    /// The first scalar named `key`.
    pub(crate) fn scalar<'a>(fields: &'a [(String, Value)], key: &str) -> Option<&'a str> {
        Value::all(fields, key).into_iter().find_map(|v| match v {
            Value::Scalar(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// A syntax error, with the byte offset where it was found.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("config.pbtxt: {message} at byte {offset}")]
pub(crate) struct ParseError {
    message: String,
    offset: usize,
}

/// Parses a whole document into its top-level fields.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, Value)>, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let fields = p.fields(None)?;
    Ok(fields)
}

/// Most messages and lists open at once: protobuf's own text parser stops at 100 too. Each
/// level is a call frame, so without a bound a few kilobytes of `[[[[` overflow the stack.
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Messages and lists open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            offset: self.i,
        }
    }

    fn skip_space(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' => self.i += 1,
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.s.get(self.i).copied()
    }

    fn fields(&mut self, close: Option<u8>) -> Result<Vec<(String, Value)>, ParseError> {
        let mut fields = Vec::new();
        loop {
            match self.peek() {
                None if close.is_none() => return Ok(fields),
                None => return Err(self.err("unexpected end of input")),
                Some(c) if Some(c) == close => {
                    self.i += 1;
                    return Ok(fields);
                }
                Some(_) => {
                    let key = self.ident()?;
                    let has_colon = self.peek() == Some(b':');
                    if has_colon {
                        self.i += 1;
                    }
                    let value = self.value(has_colon)?;
                    fields.push((key, value));
                }
            }
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || matches!(self.s[self.i], b'_' | b'.' | b'-' | b'+'))
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a field name or value"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self, after_colon: bool) -> Result<Value, ParseError> {
        if matches!(self.peek(), Some(b'{' | b'<' | b'[')) {
            if self.depth == MAX_DEPTH {
                return Err(self.err(format!("more than {MAX_DEPTH} nested messages or lists")));
            }
            self.depth += 1;
            let value = self.nested_value();
            self.depth -= 1;
            return value;
        }
        self.scalar_value(after_colon)
    }

    /// A message or a list, at the current position.
    fn nested_value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') | Some(b'<') => {
                let close = if self.s[self.i] == b'{' { b'}' } else { b'>' };
                self.i += 1;
                Ok(Value::Message(self.fields(Some(close))?))
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err(self.err("unterminated list")),
                        Some(_) => items.push(self.value(true)?),
                    }
                }
            }
            _ => Err(self.err("expected a message or a list")),
        }
    }

    /// A quoted string or a bare scalar (only after a `:`), at the current position.
    fn scalar_value(&mut self, after_colon: bool) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => {
                let quote = self.s[self.i];
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != quote {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err(self.err("unterminated string"));
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Value::Scalar(text))
            }
            Some(_) if after_colon => Ok(Value::Scalar(self.ident()?)),
            _ => Err(self.err("expected ':' or '{'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_triton_model_config() {
        let doc = parse(
            r#"
            name: "mlp"   # a comment
            platform: "pytorch_libtorch"
            max_batch_size: 8
            input [
              { name: "INPUT__0", data_type: TYPE_FP32, dims: [ 784 ] }
            ]
            output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] }
            dynamic_batching { max_queue_delay_microseconds: 100 }
            "#,
        )
        .unwrap();
        assert_eq!(Value::scalar(&doc, "platform"), Some("pytorch_libtorch"));
        assert_eq!(Value::scalar(&doc, "max_batch_size"), Some("8"));
        let inputs = Value::all(&doc, "input");
        assert_eq!(inputs.len(), 1);
        let Value::Message(input) = inputs[0] else {
            panic!()
        };
        assert_eq!(Value::scalar(input, "data_type"), Some("TYPE_FP32"));
        let dims: Vec<_> = Value::all(input, "dims");
        assert_eq!(dims, vec![&Value::Scalar("784".into())]);
        assert_eq!(Value::all(&doc, "output").len(), 1);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let nested = |levels: usize| format!("a: {}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let err = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        // A few kilobytes of brackets used to recurse once per byte until the stack overflowed.
        assert!(parse(&format!("a: {}", "[".repeat(1_000_000))).is_err());
        assert!(parse(&"a {".repeat(1_000_000)).is_err());
        assert!(parse(&"a <".repeat(1_000_000)).is_err());
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse("input [ { name: \"x\" ").unwrap_err();
        assert!(err.to_string().contains("config.pbtxt"), "{err}");
    }
}
