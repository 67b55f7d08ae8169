//! [`Calculator`]: arithmetic expressions evaluated by a parser, never by
//! running code.

use async_trait::async_trait;
use pae_core::{Tool, ToolError};
use serde_json::{Value, json};

/// The longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 2000;

/// Parentheses and function calls nested deeper than this are refused.
const MAX_DEPTH: usize = 64;

/// Evaluates arithmetic expressions: `+ - * / % ^` (also `**`), parentheses,
/// unary minus, decimals and exponents (`1.5e3`), the constants `pi` and
/// `e`, and the functions `sqrt`, `abs`, `round` (optionally to n decimals),
/// `floor`, `ceil`, `ln`, `log` (base 10, or the base given as a second
/// argument), `exp`, `min`, `max` and `pow`.
///
/// `^` binds tighter than unary minus and is right-associative, so `-2^2`
/// is -4 and `2^3^2` is 512. Bad input, division by zero, results that
/// overflow and domain errors (`sqrt(-1)`) are errors with a clear message.
/// Results are printed with at most 12 significant digits (`0.1 + 0.2` is
/// `0.3`), integers without a decimal point.
///
/// ```
/// use pae_executor::tools::Calculator;
///
/// assert_eq!(Calculator::evaluate("2 * (3 + 4) ^ 2 - 1").unwrap(), 97.0);
/// assert_eq!(Calculator::format_number(0.1 + 0.2), "0.3");
/// assert!(Calculator::evaluate("1 / 0").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Calculator;

impl Calculator {
    /// The calculator.
    pub fn new() -> Self {
        Self
    }

    /// Evaluates an expression.
    ///
    /// # Errors
    /// [`ToolError::InvalidInput`] for malformed expressions,
    /// [`ToolError::Failed`] for division by zero, overflow and domain
    /// errors.
    pub fn evaluate(expression: &str) -> Result<f64, ToolError> {
        if expression.chars().count() > MAX_EXPRESSION_CHARS {
            return Err(ToolError::invalid_input(format!(
                "the expression is longer than {MAX_EXPRESSION_CHARS} characters"
            )));
        }
        let tokens = tokenize(expression)?;
        if tokens.is_empty() {
            return Err(ToolError::invalid_input("the expression is empty"));
        }
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            depth: 0,
        };
        let value = parser.expression()?;
        if let Some(token) = parser.peek() {
            return Err(ToolError::invalid_input(format!(
                "unexpected {} at position {}",
                token.kind.describe(),
                token.at + 1
            )));
        }
        Ok(value)
    }

    /// Formats a result: integers without a decimal point, others with at
    /// most 12 significant digits, very large or small magnitudes in
    /// exponent form.
    pub fn format_number(value: f64) -> String {
        if value == 0.0 {
            return String::from("0");
        }
        // Round to 12 significant digits, then print the shortest form.
        let rounded: f64 = format!("{value:.11e}").parse().unwrap_or(value);
        let magnitude = rounded.abs();
        if !(1e-6..1e15).contains(&magnitude) {
            return format!("{rounded:e}");
        }
        if rounded.fract() == 0.0 {
            return format!("{rounded:.0}");
        }
        format!("{rounded}")
    }
}

#[async_trait]
impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression written with the numbers of the current step and \
returns the result. Supports + - * / % ^, parentheses, decimals, pi, e, and sqrt, abs, round, \
floor, ceil, ln, log, exp, min, max, pow."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The arithmetic expression to evaluate, built from the step's own numbers.",
                    "minLength": 1
                }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    async fn call(&self, input: Value) -> Result<String, ToolError> {
        let expression = match &input {
            Value::String(s) => s.as_str(),
            other => other
                .get("expression")
                .and_then(Value::as_str)
                .ok_or_else(|| ToolError::invalid_input("expected {\"expression\": \"...\"}"))?,
        };
        Self::evaluate(expression).map(Self::format_number)
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn is_idempotent(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Number(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    LParen,
    RParen,
    Comma,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Self::Number(n) => format!("number {n}"),
            Self::Ident(name) => format!("name {name:?}"),
            Self::Plus => String::from("'+'"),
            Self::Minus => String::from("'-'"),
            Self::Star => String::from("'*'"),
            Self::Slash => String::from("'/'"),
            Self::Percent => String::from("'%'"),
            Self::Caret => String::from("'^'"),
            Self::LParen => String::from("'('"),
            Self::RParen => String::from("')'"),
            Self::Comma => String::from("','"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: Kind,
    /// 0-based character position.
    at: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ToolError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i;
        let simple = match c {
            '+' => Some(Kind::Plus),
            '-' | '\u{2212}' => Some(Kind::Minus),
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Some(Kind::Caret)
            }
            '*' | '\u{d7}' | '\u{22c5}' => Some(Kind::Star),
            '/' | '\u{f7}' => Some(Kind::Slash),
            '%' => Some(Kind::Percent),
            '^' => Some(Kind::Caret),
            '(' => Some(Kind::LParen),
            ')' => Some(Kind::RParen),
            ',' => Some(Kind::Comma),
            _ => None,
        };
        if let Some(kind) = simple {
            tokens.push(Token { kind, at });
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            // An exponent: e or E, an optional sign, digits.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let literal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let value: f64 = literal.parse().map_err(|_| {
                ToolError::invalid_input(format!(
                    "{literal:?} at position {} is not a number",
                    start + 1
                ))
            })?;
            // A literal beyond f64's range parses as infinity.
            if !value.is_finite() {
                return Err(ToolError::failed(format!(
                    "the number {literal} at position {} is too large",
                    start + 1
                )));
            }
            tokens.push(Token {
                kind: Kind::Number(value),
                at: start,
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == 'π' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == 'π')
            {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect::<String>().to_lowercase();
            tokens.push(Token {
                kind: Kind::Ident(name),
                at: start,
            });
            continue;
        }
        return Err(ToolError::invalid_input(format!(
            "unexpected character {c:?} at position {} (only numbers, + - * / % ^, parentheses and functions are allowed)",
            at + 1
        )));
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

fn checked(value: f64, what: &str) -> Result<f64, ToolError> {
    if value.is_finite() {
        Ok(value)
    } else if value.is_nan() {
        Err(ToolError::failed(format!("{what} is undefined")))
    } else {
        Err(ToolError::failed(format!(
            "{what} overflows (the result is too large)"
        )))
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        if self.peek().is_some_and(|t| &t.kind == kind) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn end_position(&self) -> usize {
        self.tokens.last().map_or(1, |t| t.at + 2)
    }

    fn enter(&mut self) -> Result<(), ToolError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ToolError::invalid_input(format!(
                "the expression is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    /// expression := term (('+' | '-') term)*
    fn expression(&mut self) -> Result<f64, ToolError> {
        self.enter()?;
        let mut value = self.term()?;
        loop {
            if self.eat(&Kind::Plus) {
                value = checked(value + self.term()?, "the sum")?;
            } else if self.eat(&Kind::Minus) {
                value = checked(value - self.term()?, "the difference")?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(value)
    }

    /// term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, ToolError> {
        let mut value = self.unary()?;
        loop {
            if self.eat(&Kind::Star) {
                value = checked(value * self.unary()?, "the product")?;
            } else if self.eat(&Kind::Slash) {
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err(ToolError::failed("division by zero"));
                }
                value = checked(value / divisor, "the quotient")?;
            } else if self.eat(&Kind::Percent) {
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err(ToolError::failed("division by zero (in %)"));
                }
                value = checked(value % divisor, "the remainder")?;
            } else {
                break;
            }
        }
        Ok(value)
    }

    /// unary := ('-' | '+') unary | power
    fn unary(&mut self) -> Result<f64, ToolError> {
        if self.eat(&Kind::Minus) {
            self.enter()?;
            let value = -self.unary()?;
            self.depth -= 1;
            return Ok(value);
        }
        if self.eat(&Kind::Plus) {
            self.enter()?;
            let value = self.unary()?;
            self.depth -= 1;
            return Ok(value);
        }
        self.power()
    }

    /// power := primary ('^' unary)?   (right-associative)
    fn power(&mut self) -> Result<f64, ToolError> {
        let base = self.primary()?;
        if self.eat(&Kind::Caret) {
            self.enter()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            if base == 0.0 && exponent < 0.0 {
                return Err(ToolError::failed(
                    "division by zero (0 to a negative power)",
                ));
            }
            return checked(base.powf(exponent), "the power");
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, ToolError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ToolError::invalid_input(format!(
                "the expression ends too early (at position {})",
                self.end_position()
            )));
        };
        self.pos += 1;
        match token.kind {
            Kind::Number(n) => Ok(n),
            Kind::LParen => {
                let value = self.expression()?;
                if !self.eat(&Kind::RParen) {
                    return Err(ToolError::invalid_input(format!(
                        "the '(' at position {} is never closed",
                        token.at + 1
                    )));
                }
                Ok(value)
            }
            Kind::Ident(name) => {
                if self.eat(&Kind::LParen) {
                    let args = self.arguments(&name, token.at)?;
                    apply(&name, &args)
                } else {
                    match name.as_str() {
                        "pi" | "π" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        _ => Err(ToolError::invalid_input(format!(
                            "unknown name {name:?} at position {} (known constants: pi, e)",
                            token.at + 1
                        ))),
                    }
                }
            }
            other => Err(ToolError::invalid_input(format!(
                "unexpected {} at position {}",
                other.describe(),
                token.at + 1
            ))),
        }
    }

    fn arguments(&mut self, name: &str, at: usize) -> Result<Vec<f64>, ToolError> {
        let mut args = Vec::new();
        if self.eat(&Kind::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            if self.eat(&Kind::Comma) {
                continue;
            }
            if self.eat(&Kind::RParen) {
                return Ok(args);
            }
            return Err(ToolError::invalid_input(format!(
                "the call to {name} at position {} is missing its ')'",
                at + 1
            )));
        }
    }
}

fn apply(name: &str, args: &[f64]) -> Result<f64, ToolError> {
    let arity = |expected: &str| {
        ToolError::invalid_input(format!(
            "{name} takes {expected}, got {} argument(s)",
            args.len()
        ))
    };
    let one = || match args {
        [x] => Ok(*x),
        _ => Err(arity("one argument")),
    };
    let value = match name {
        "sqrt" => {
            let x = one()?;
            if x < 0.0 {
                return Err(ToolError::failed(format!(
                    "sqrt of a negative number ({})",
                    Calculator::format_number(x)
                )));
            }
            x.sqrt()
        }
        "abs" => one()?.abs(),
        "floor" => one()?.floor(),
        "ceil" => one()?.ceil(),
        "exp" => one()?.exp(),
        "ln" => {
            let x = one()?;
            if x <= 0.0 {
                return Err(ToolError::failed("ln is only defined for positive numbers"));
            }
            x.ln()
        }
        "log" => match args {
            [x] | [x, _] if *x <= 0.0 => {
                return Err(ToolError::failed(
                    "log is only defined for positive numbers",
                ));
            }
            [x] => x.log10(),
            [x, base] => {
                if *base <= 0.0 || *base == 1.0 {
                    return Err(ToolError::failed(
                        "the base of log must be positive and not 1",
                    ));
                }
                x.log(*base)
            }
            _ => return Err(arity("one or two arguments")),
        },
        "round" => match args {
            [x] => x.round(),
            [x, digits] => {
                if digits.fract() != 0.0 || !(-15.0..=15.0).contains(digits) {
                    return Err(ToolError::invalid_input(
                        "round's second argument must be a whole number from -15 to 15",
                    ));
                }
                let factor = 10f64.powf(*digits);
                (x * factor).round() / factor
            }
            _ => return Err(arity("one or two arguments")),
        },
        "min" | "max" => {
            if args.is_empty() {
                return Err(arity("at least one argument"));
            }
            let pick = if name == "min" { f64::min } else { f64::max };
            args.iter().copied().fold(args[0], pick)
        }
        "pow" => match args {
            [base, exponent] => {
                if *base == 0.0 && *exponent < 0.0 {
                    return Err(ToolError::failed(
                        "division by zero (0 to a negative power)",
                    ));
                }
                base.powf(*exponent)
            }
            _ => return Err(arity("two arguments")),
        },
        _ => {
            return Err(ToolError::invalid_input(format!(
                "unknown function {name:?} (known: sqrt, abs, round, floor, ceil, ln, log, exp, min, max, pow)"
            )));
        }
    };
    checked(value, &format!("the result of {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expression: &str) -> f64 {
        Calculator::evaluate(expression).unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(eval("1 + 2 * 3"), 7.0);
        assert_eq!(eval("(1 + 2) * 3"), 9.0);
        assert_eq!(eval("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(eval("-2 ^ 2"), -4.0);
        assert_eq!(eval("2 ^ -1"), 0.5);
        assert_eq!(eval("10 - 4 - 3"), 3.0);
        assert_eq!(eval("100 / 10 / 5"), 2.0);
        assert_eq!(eval("7 % 4"), 3.0);
        assert_eq!(eval("--3"), 3.0);
        assert_eq!(eval("2 ** 10"), 1024.0);
        assert_eq!(eval("3 × 4 ÷ 2 − 1"), 5.0);
    }

    #[test]
    fn numbers_functions_constants() {
        assert_eq!(eval(".5 + 1.25e2"), 125.5);
        assert_eq!(eval("1_000 * 2"), 2000.0);
        assert_eq!(eval("sqrt(16) + abs(-3)"), 7.0);
        assert_eq!(eval("max(1, 5, 3) - min(4, 2)"), 3.0);
        assert_eq!(eval("round(2.345, 2)"), 2.35);
        assert_eq!(eval("round(2.5)"), 3.0);
        assert_eq!(eval("floor(-1.5) + ceil(1.2)"), 0.0);
        assert_eq!(eval("log(1000)"), 3.0);
        assert_eq!(eval("log(8, 2)"), 3.0);
        assert_eq!(eval("pow(2, 8)"), 256.0);
        assert!((eval("PI") - std::f64::consts::PI).abs() < 1e-12);
        assert!((eval("ln(e)") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn formatting() {
        assert_eq!(Calculator::format_number(42.0), "42");
        assert_eq!(Calculator::format_number(-0.5), "-0.5");
        assert_eq!(Calculator::format_number(0.1 + 0.2), "0.3");
        assert_eq!(Calculator::format_number(1.0 / 3.0), "0.333333333333");
        assert_eq!(Calculator::format_number(1e20), "1e20");
        assert_eq!(Calculator::format_number(2.5e-9), "2.5e-9");
        assert_eq!(Calculator::format_number(123_456_789_012.0), "123456789012");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(matches!(
            Calculator::evaluate(&deep),
            Err(ToolError::InvalidInput { .. })
        ));
        let minus = format!("{}1", "-".repeat(1000));
        assert!(Calculator::evaluate(&minus).is_err());
    }
}
