//! The subset of CEL the kfp SDK writes: `triggerPolicy.condition` for `dsl.If/Elif/Else`
//! (`int(inputs.parameter_values['p']) > 2`, `!(...) && ...`, `double(..)`, string and boolean
//! literals) and `parameterExpressionSelector` for loop items (`parseJson(string_value)["a"]`).
//! Anything else is refused at parse time with the construct and its column, so a spec that
//! would need more of CEL fails before a task runs.

mod eval;
mod lexer;
mod parser;

pub use eval::{Bindings, EvalError};
pub use parser::{BinaryOp, Expr};

/// A CEL expression outside the subset, or not CEL at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("CEL expression {expression:?}: {message} at column {column}")]
pub struct SyntaxError {
    /// The whole expression.
    pub expression: String,
    /// 1-based column of the offending construct.
    pub column: usize,
    /// What was found.
    pub message: String,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    source: String,
    expr: Expr,
}

impl Program {
    /// Parses `source`, refusing anything outside the subset.
    pub fn parse(source: &str) -> Result<Self, SyntaxError> {
        let error = |column: usize, message: String| SyntaxError {
            expression: source.to_owned(),
            column,
            message,
        };
        let tokens = lexer::tokenize(source).map_err(|(c, m)| error(c, m))?;
        let expr = parser::parse(&tokens, source.len()).map_err(|(c, m)| error(c, m))?;
        Ok(Self {
            source: source.to_owned(),
            expr,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Evaluates with `bindings` for the free identifiers.
    pub fn eval(&self, bindings: &Bindings) -> Result<serde_json::Value, EvalError> {
        eval::eval(&self.expr, bindings)
    }

    /// Evaluates a condition: the result must be a boolean.
    pub fn eval_bool(&self, bindings: &Bindings) -> Result<bool, EvalError> {
        match self.eval(bindings)? {
            serde_json::Value::Bool(b) => Ok(b),
            other => Err(EvalError::NotBoolean(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(values: serde_json::Value) -> Bindings {
        Bindings::default().with("inputs", json!({ "parameter_values": values }))
    }

    #[test]
    fn conditions_the_sdk_writes_for_if_elif_else() {
        let b = params(json!({"pipelinechannel--use-Output": 2}));
        let when = |s: &str| Program::parse(s).unwrap().eval_bool(&b).unwrap();
        assert!(!when(
            "int(inputs.parameter_values['pipelinechannel--use-Output']) > 2"
        ));
        assert!(when(
            "!(int(inputs.parameter_values['pipelinechannel--use-Output']) > 2) && \
             int(inputs.parameter_values['pipelinechannel--use-Output']) == 2"
        ));
        assert!(!when(
            "!(int(inputs.parameter_values['pipelinechannel--use-Output']) > 2) && \
             !(int(inputs.parameter_values['pipelinechannel--use-Output']) == 2)"
        ));
    }

    #[test]
    fn strings_booleans_doubles_and_mixed_numbers() {
        let b = params(json!({"s": "heads", "f": 0.5, "t": true, "i": 3}));
        let when = |s: &str| Program::parse(s).unwrap().eval_bool(&b).unwrap();
        assert!(when("inputs.parameter_values['s'] == 'heads'"));
        assert!(when("inputs.parameter_values['s'] != \"tails\""));
        assert!(when("inputs.parameter_values['f'] >= 0.5 || false"));
        assert!(when("inputs.parameter_values['t'] == true"));
        assert!(when("double(int(inputs.parameter_values['i'])) < 3.5"));
        assert!(when("inputs.parameter_values['f'] < 1e3"));
        assert!(when("-1 < 0"));
    }

    #[test]
    fn the_loop_item_selector_reads_a_field_of_a_json_item() {
        let b = Bindings::default().with("string_value", json!(r#"{"a": 1, "b": "x"}"#));
        let p = Program::parse(r#"parseJson(string_value)["a"]"#).unwrap();
        assert_eq!(p.eval(&b).unwrap(), json!(1));
    }

    #[test]
    fn constructs_outside_the_subset_are_named_with_their_column() {
        for (source, construct, column) in [
            (
                "size(inputs.parameter_values['l']) > 2",
                "function `size`",
                1,
            ),
            ("inputs.parameter_values['a'] + 1 > 2", "`+`", 30),
            ("true ? 1 : 2", "`?`", 6),
            (
                "inputs.parameter_values.exists(x, x)",
                "method call `exists`",
                25,
            ),
            ("1u == 1", "unsigned integer literal", 1),
        ] {
            let err = Program::parse(source).unwrap_err();
            assert!(err.message.contains(construct), "{source}: {err}");
            assert_eq!(err.column, column, "{source}: {err}");
        }
    }

    #[test]
    fn a_missing_parameter_and_a_non_boolean_condition_are_errors() {
        let b = params(json!({}));
        let p = Program::parse("int(inputs.parameter_values['x']) > 1").unwrap();
        assert!(matches!(p.eval_bool(&b), Err(EvalError::NoSuchKey(k)) if k == "x"));
        let p = Program::parse("1").unwrap();
        assert!(matches!(p.eval_bool(&b), Err(EvalError::NotBoolean(_))));
    }
}
