//! Tokens of the CEL subset.

/// One token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub(super) kind: Tok,
    pub(super) at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Int(i64),
    Double(f64),
    Str(String),
    Ident(String),
    /// Punctuation and operators: `( ) [ ] . , ! - && || == != < <= > >=`.
    Punct(&'static str),
}

const PUNCT: [&str; 16] = [
    "&&", "||", "==", "!=", "<=", ">=", "(", ")", "[", "]", ".", ",", "!", "-", "<", ">",
];

/// Splits `source` into tokens; an error is (1-based column, message).
pub(super) fn tokenize(source: &str) -> Result<Vec<Token>, (usize, String)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let (s, end) = string(source, i)?;
            out.push(Token {
                kind: Tok::Str(s),
                at: i,
            });
            i = end;
        } else if c.is_ascii_digit() {
            let (kind, end) = number(source, i)?;
            out.push(Token { kind, at: i });
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = source[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(source.len(), |n| i + n);
            let word = &source[i..end];
            if end < bytes.len() && (bytes[end] == b'\'' || bytes[end] == b'"') {
                return Err((
                    i + 1,
                    format!("string prefix `{word}` (raw or bytes literal)"),
                ));
            }
            out.push(Token {
                kind: Tok::Ident(word.to_owned()),
                at: i,
            });
            i = end;
        } else if let Some(p) = PUNCT.iter().find(|p| source[i..].starts_with(**p)) {
            out.push(Token {
                kind: Tok::Punct(p),
                at: i,
            });
            i += p.len();
        } else {
            let ch = source[i..].chars().next().unwrap_or('?');
            return Err((i + 1, format!("`{ch}`")));
        }
    }
    Ok(out)
}

fn string(source: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let quote = source.as_bytes()[start] as char;
    if source[start..].starts_with(&quote.to_string().repeat(3)) {
        return Err((start + 1, "triple-quoted string".to_owned()));
    }
    let mut out = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((n, ch)) = chars.next() {
        match ch {
            c if c == quote => return Ok((out, start + 1 + n + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, c @ ('\\' | '\'' | '"'))) => out.push(c),
                Some((m, c)) => {
                    return Err((start + 1 + m + 1, format!("string escape `\\{c}`")));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err((start + 1, "unterminated string".to_owned()))
}

fn number(source: &str, start: usize) -> Result<(Tok, usize), (usize, String)> {
    let bytes = source.as_bytes();
    let mut end = start;
    let mut is_double = false;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
        is_double = true;
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
        let mut e = end + 1;
        if e < bytes.len() && (bytes[e] == b'+' || bytes[e] == b'-') {
            e += 1;
        }
        if e < bytes.len() && bytes[e].is_ascii_digit() {
            is_double = true;
            end = e;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
        }
    }
    if end < bytes.len() && (bytes[end] == b'u' || bytes[end] == b'U') {
        return Err((start + 1, "unsigned integer literal".to_owned()));
    }
    if end < bytes.len() && (bytes[end] == b'x' || bytes[end] == b'X') {
        return Err((start + 1, "hexadecimal literal".to_owned()));
    }
    let text = &source[start..end];
    let kind = if is_double {
        Tok::Double(
            text.parse()
                .map_err(|_| (start + 1, format!("number `{text}`")))?,
        )
    } else {
        Tok::Int(
            text.parse()
                .map_err(|_| (start + 1, format!("integer `{text}` out of range")))?,
        )
    };
    Ok((kind, end))
}
