//! Evaluation over JSON values, with CEL's rules for the subset: `int` truncates doubles and
//! parses strings, numbers compare across int and double, `&&`/`||` short-circuit.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use super::parser::{BinaryOp, Expr};

/// Values of the free identifiers.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    values: BTreeMap<String, Value>,
}

impl Bindings {
    /// Adds (or replaces) one identifier.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.values.insert(name.to_owned(), value);
        self
    }
}

/// A runtime failure of a well-formed expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// An identifier nothing binds.
    #[error("undeclared reference to `{0}`")]
    Undeclared(String),
    /// A map key or field that is not there (for example an input not passed to the task).
    #[error("no such key: {0:?}")]
    NoSuchKey(String),
    /// An operator or function applied to values it does not take.
    #[error("no such overload: {0}")]
    NoOverload(String),
    /// A condition that is not a boolean.
    #[error("the condition evaluated to {0}, not a boolean")]
    NotBoolean(String),
}

pub(super) fn eval(expr: &Expr, b: &Bindings) -> Result<Value, EvalError> {
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::List(items) => items
            .iter()
            .map(|e| eval(e, b))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Expr::Ident(name) => b
            .values
            .get(name)
            .cloned()
            .ok_or_else(|| EvalError::Undeclared(name.clone())),
        Expr::Member(target, name) => match eval(target, b)? {
            Value::Object(mut m) => m
                .remove(name)
                .ok_or_else(|| EvalError::NoSuchKey(name.clone())),
            v => Err(EvalError::NoOverload(format!("field `{name}` of {v}"))),
        },
        Expr::Index(target, index) => {
            let (target, index) = (eval(target, b)?, eval(index, b)?);
            match (target, index) {
                (Value::Object(mut m), Value::String(k)) => {
                    m.remove(&k).ok_or(EvalError::NoSuchKey(k))
                }
                (Value::Array(items), Value::Number(n)) => n
                    .as_i64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| items.get(i).cloned())
                    .ok_or_else(|| EvalError::NoSuchKey(n.to_string())),
                (t, i) => Err(EvalError::NoOverload(format!("{t}[{i}]"))),
            }
        }
        Expr::Call(f, args) => call(f, eval(&args[0], b)?),
        Expr::Not(e) => match eval(e, b)? {
            Value::Bool(v) => Ok(Value::Bool(!v)),
            v => Err(EvalError::NoOverload(format!("!{v}"))),
        },
        Expr::Neg(e) => match eval(e, b)? {
            Value::Number(n) if n.is_i64() => Ok(Value::from(-n.as_i64().unwrap_or(0))),
            Value::Number(n) => Ok(Value::from(-n.as_f64().unwrap_or(0.0))),
            v => Err(EvalError::NoOverload(format!("-{v}"))),
        },
        Expr::Binary(BinaryOp::And, l, r) => logic(l, r, b, false),
        Expr::Binary(BinaryOp::Or, l, r) => logic(l, r, b, true),
        Expr::Binary(op, l, r) => compare(*op, &eval(l, b)?, &eval(r, b)?).map(Value::Bool),
    }
}

/// `&&` (`short` false) and `||` (`short` true): the left side decides when it equals `short`.
fn logic(l: &Expr, r: &Expr, b: &Bindings, short: bool) -> Result<Value, EvalError> {
    match eval(l, b)? {
        Value::Bool(v) if v == short => Ok(Value::Bool(v)),
        Value::Bool(_) => match eval(r, b)? {
            Value::Bool(v) => Ok(Value::Bool(v)),
            v => Err(EvalError::NoOverload(format!("logical operator on {v}"))),
        },
        v => Err(EvalError::NoOverload(format!("logical operator on {v}"))),
    }
}

fn call(f: &str, arg: Value) -> Result<Value, EvalError> {
    let fail = |arg: &Value| EvalError::NoOverload(format!("{f}({arg})"));
    match (f, &arg) {
        ("int", Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::from(i)),
            None => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(|x| Value::from(x.trunc() as i64))
                .ok_or_else(|| fail(&arg)),
        },
        ("int", Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| fail(&arg)),
        ("double", Value::Number(n)) => n.as_f64().map(Value::from).ok_or_else(|| fail(&arg)),
        ("double", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| fail(&arg)),
        ("string", Value::String(_)) => Ok(arg),
        ("string", Value::Number(_) | Value::Bool(_)) => Ok(Value::String(arg.to_string())),
        ("parseJson", Value::String(s)) => serde_json::from_str(s).map_err(|_| fail(&arg)),
        _ => Err(fail(&arg)),
    }
}

fn compare(op: BinaryOp, l: &Value, r: &Value) -> Result<bool, EvalError> {
    let ordering = match (l, r) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y)),
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ if matches!(op, BinaryOp::Eq | BinaryOp::Ne)
            && std::mem::discriminant(l) == std::mem::discriminant(r) =>
        {
            return Ok((l == r) == (op == BinaryOp::Eq));
        }
        _ => return Err(EvalError::NoOverload(format!("{l} {op:?} {r}"))),
    };
    let Some(o) = ordering else {
        return Ok(op == BinaryOp::Ne);
    };
    Ok(match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::Ne => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::Le => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::Ge => o != Ordering::Less,
        BinaryOp::And | BinaryOp::Or => unreachable!("handled by logic"),
    })
}
