//! Recursive-descent parser for the CEL subset: `||`, `&&`, relations, `!` and unary `-`,
//! member access, indexing, the calls `int`, `double`, `string`, `parseJson`, literals and lists.

use serde_json::Value;

use super::lexer::{Tok, Token};

/// The functions of the subset.
const FUNCTIONS: [&str; 4] = ["int", "double", "string", "parseJson"];

/// A syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Value),
    /// A list literal.
    List(Vec<Expr>),
    /// A free identifier (`inputs`, `string_value`).
    Ident(String),
    /// `e.name`.
    Member(Box<Expr>, String),
    /// `e[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)`, `f` one of the subset's functions.
    Call(String, Vec<Expr>),
    /// `!e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `a op b`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

/// Binary operators of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

type Failure = (usize, String);

fn outside(what: impl std::fmt::Display) -> String {
    format!("{what} is outside the CEL subset Kiln evaluates")
}

/// Parses a whole token list; `len` is the source length, for errors at the end.
pub(super) fn parse(tokens: &[Token], len: usize) -> Result<Expr, Failure> {
    let mut p = Parser {
        tokens,
        pos: 0,
        len,
    };
    let expr = p.or()?;
    match p.peek() {
        None => Ok(expr),
        Some(t) => Err((t.at + 1, format!("unexpected {}", describe(&t.kind)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("number `{i}`"),
        Tok::Double(d) => format!("number `{d}`"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("identifier `{s}`"),
        Tok::Punct(p) => format!("`{p}`"),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    len: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Some(Token { kind: Tok::Punct(p), .. }) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &str) -> Result<(), Failure> {
        if self.eat(punct) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => (
                t.at + 1,
                format!("expected `{punct}`, found {}", describe(&t.kind)),
            ),
            None => (self.len + 1, format!("expected `{punct}` at the end")),
        })
    }

    fn or(&mut self) -> Result<Expr, Failure> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Expr::Binary(BinaryOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Failure> {
        let mut left = self.relation()?;
        while self.eat("&&") {
            let right = self.relation()?;
            left = Expr::Binary(BinaryOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Expr, Failure> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().map(|t| &t.kind) {
                Some(Tok::Punct("==")) => BinaryOp::Eq,
                Some(Tok::Punct("!=")) => BinaryOp::Ne,
                Some(Tok::Punct("<")) => BinaryOp::Lt,
                Some(Tok::Punct("<=")) => BinaryOp::Le,
                Some(Tok::Punct(">")) => BinaryOp::Gt,
                Some(Tok::Punct(">=")) => BinaryOp::Ge,
                Some(Tok::Ident(w)) if w == "in" => {
                    let at = self.peek().map_or(0, |t| t.at);
                    return Err((at + 1, outside("the operator `in`")));
                }
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, Failure> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, Failure> {
        let mut expr = self.primary()?;
        loop {
            if self.eat(".") {
                let (name, at) = match self.peek() {
                    Some(Token {
                        kind: Tok::Ident(n),
                        at,
                    }) => (n.clone(), *at),
                    Some(t) => {
                        return Err((
                            t.at + 1,
                            format!("unexpected {} after `.`", describe(&t.kind)),
                        ));
                    }
                    None => {
                        return Err((self.len + 1, "expected a field name at the end".to_owned()));
                    }
                };
                self.pos += 1;
                if matches!(
                    self.peek(),
                    Some(Token {
                        kind: Tok::Punct("("),
                        ..
                    })
                ) {
                    return Err((at + 1, outside(format!("method call `{name}`"))));
                }
                expr = Expr::Member(Box::new(expr), name);
            } else if self.eat("[") {
                let index = self.or()?;
                self.expect("]")?;
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, Failure> {
        let Some(token) = self.peek().cloned() else {
            return Err((self.len + 1, "unexpected end of expression".to_owned()));
        };
        self.pos += 1;
        match token.kind {
            Tok::Int(i) => Ok(Expr::Literal(Value::from(i))),
            Tok::Double(d) => Ok(Expr::Literal(Value::from(d))),
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::Ident(w) => match w.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                _ if self.eat("(") => {
                    if !FUNCTIONS.contains(&w.as_str()) {
                        return Err((token.at + 1, outside(format!("function `{w}`"))));
                    }
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    if args.len() != 1 {
                        return Err((
                            token.at + 1,
                            format!("`{w}` takes one argument, got {}", args.len()),
                        ));
                    }
                    Ok(Expr::Call(w, args))
                }
                _ => Ok(Expr::Ident(w)),
            },
            Tok::Punct("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Punct("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.or()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Expr::List(items))
            }
            Tok::Punct(p) => Err((token.at + 1, format!("unexpected `{p}`"))),
        }
    }
}
