//! [`Calculator`]: arithmetic expressions evaluated by a parser, never by
//! running code.

use async_trait::async_trait;
use pae_core::{Tool, ToolError};
use serde_json::{Value, json};

use super::calendar::{Date, is_weekday_name};

/// The longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 2000;

/// The most numbers one `range(...)` may stand for.
const MAX_RANGE_ITEMS: i64 = 100_000;

/// Parentheses and function calls nested deeper than this are refused.
const MAX_DEPTH: usize = 64;

/// Evaluates arithmetic expressions: `+ - * / % ^` (also `**`, and `//`
/// for floor division), parentheses, unary minus, decimals and exponents
/// (`1.5e3`), postfix `!` (factorial), the constants `pi` and `e`, and the
/// functions `sqrt`, `cbrt`, `abs`, `round` (optionally to n decimals),
/// `floor`, `ceil`, `trunc`, `ln`, `log` (base 10, or the base given as a
/// second argument), `log10`, `log2`, `exp`, `sin`, `cos`, `tan`, `asin`,
/// `acos`, `atan` (radians), `min`, `max`, `sum`, `avg`, `count` (how many
/// arguments), `pow` and
/// `factorial`; `range(start, stop)` (or `range(stop)`, or with a step) as
/// an argument of `sum`, `count`, `avg`, `min` or `max` stands for its
/// numbers, `stop` excluded as in Python (`sum(range(1, 51))` is 1275).
///
/// It also reads what models write: `×`, `·`, `x` between numbers (`12 x
/// 7`) and `÷` as operators, `−` and `–` as minus, `√16`, `2²`, thousands
/// separators (`1,000,000`, outside function calls, where a comma separates
/// arguments), a currency sign before a number (`$12`), a leading or
/// trailing `=` (`= 5+5`, `5+5 =`), and quotes or backticks around the
/// whole expression. `%` after a number followed by another number is the
/// remainder (`7 % 4` is 3); otherwise it is percent (`50 * 10%` is 5,
/// `10% of 50` is 5). `100 + 10%` is refused as ambiguous (is it 100.1 or
/// 110?) with a message saying how to write either.
///
/// ISO dates (`2026-12-25`) count as days: one date less another is the
/// number of days between them (`2026-12-25 - 2026-03-14` is 286), a date
/// plus or minus days is a date (`2026-03-14 + 30` is `2026-04-13`); other
/// arithmetic on dates is refused rather than read as `2026 - 12 - 25`.
/// Dates may be quoted and may carry a time of day and a weekday as other
/// tools write them (`'2026-12-25'`, `2026-03-14 10:00:00 Saturday`): dates
/// count as whole days, so the time is passed over.
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
/// assert_eq!(Calculator::evaluate("12 x 7").unwrap(), 84.0);
/// assert_eq!(Calculator::evaluate("15% of 1,200").unwrap(), 180.0);
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
        match calculate(expression)? {
            Answer::Number(value) => Ok(value),
            Answer::Date(date) => Err(ToolError::invalid_input(format!(
                "the result is the date {}, not a number",
                iso(date)
            ))),
        }
    }

    /// Evaluates an expression and writes the result as the tool returns
    /// it: a number as [`format_number`](Self::format_number) writes it, a
    /// date as `2026-12-25`.
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub fn calculate(expression: &str) -> Result<String, ToolError> {
        Ok(match calculate(expression)? {
            Answer::Number(value) => Self::format_number(value),
            Answer::Date(date) => iso(date),
        })
    }

    /// Formats a result: integers without a decimal point, others with at
    /// most 12 significant digits, very large or small magnitudes in
    /// exponent form.
    pub fn format_number(value: f64) -> String {
        if value == 0.0 {
            return String::from("0");
        }
        // Whole numbers of at most 12 digits are already what rounding to
        // 12 significant digits gives (the common case, and much cheaper).
        if value.fract() == 0.0 && value.abs() < 1e12 {
            return (value as i64).to_string();
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
floor, ceil, ln, log, exp, min, max, pow, and sum, avg, count of a list of numbers."
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
            // Found by comparing keys: a one-key object is the usual input,
            // and a map lookup would hash the key first.
            other => other
                .as_object()
                .and_then(|object| {
                    object
                        .iter()
                        .find_map(|(key, value)| (key == "expression").then_some(value))
                })
                .and_then(Value::as_str)
                .ok_or_else(|| ToolError::invalid_input("expected {\"expression\": \"...\"}"))?,
        };
        Self::calculate(expression)
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn is_idempotent(&self) -> bool {
        true
    }
}

/// What an expression comes to.
enum Answer {
    Number(f64),
    Date(Date),
}

/// Day numbers put in place of dates are offset by this, so the earliest
/// four-digit date (0001-01-01) is day 1: never a minus sign in the text.
const DAY_OFFSET: i64 = 719_163;

/// How far the dates are moved to find how the result depends on them.
const DATE_SHIFT: i64 = 1_000_000;

/// Evaluates `expression`, where ISO dates (`2026-12-25`) count as days:
/// one date less another is the number of days between them, a date plus
/// or minus days is a date. The dates are put in as day numbers and the
/// expression is evaluated three times with them moved by 0, 1 and 2
/// [`DATE_SHIFT`]s: a result that does not move is a number (the dates
/// cancel out), one that moves with them is a date, anything else (a date
/// times two, two dates added) is refused.
fn calculate(expression: &str) -> Result<Answer, ToolError> {
    // No more bytes than the limit: no more characters either.
    if expression.len() > MAX_EXPRESSION_CHARS && expression.chars().count() > MAX_EXPRESSION_CHARS
    {
        return Err(ToolError::invalid_input(format!(
            "the expression is longer than {MAX_EXPRESSION_CHARS} characters"
        )));
    }
    // Sized by bytes (at least the characters): collecting by the chars'
    // size hint would start too small and grow.
    let mut chars: Vec<char> = Vec::with_capacity(expression.len());
    chars.extend(expression.chars());
    blank_decorations(&mut chars);
    let dates = find_dates(&chars);
    for &(at, _) in &dates {
        blank_date_decorations(&mut chars, at);
    }
    if dates.is_empty() {
        return evaluate_chars(&chars).map(Answer::Number);
    }
    let moved = |shift: i64| {
        let mut text = chars.clone();
        for &(at, date) in &dates {
            // Ten characters, like the date: error positions stay right.
            let number = format!("{:<10}", date.days() + DAY_OFFSET + shift);
            text.splice(at..at + 10, number.chars());
        }
        evaluate_chars(&text)
    };
    let base = moved(0)?;
    let once = moved(DATE_SHIFT)?;
    let twice = moved(2 * DATE_SHIFT)?;
    let slope = (once - base) / DATE_SHIFT as f64;
    let linear = ((twice - once) / DATE_SHIFT as f64 - slope).abs() < 1e-9;
    let refused = || {
        ToolError::invalid_input(
            "dates can only be subtracted from each other (giving the days between them) or \
             have days added or subtracted (giving a date)",
        )
    };
    if !linear {
        return Err(refused());
    }
    if slope.abs() < 1e-9 {
        return Ok(Answer::Number(base));
    }
    if (slope - 1.0).abs() > 1e-9 {
        return Err(refused());
    }
    if base.fract() != 0.0 {
        return Err(ToolError::invalid_input(
            "a date can only have whole days added or subtracted",
        ));
    }
    // 0001-01-01 is day 1 here, 9999-12-31 day 3_652_059.
    if !(1.0..=3_652_059.0).contains(&base) {
        return Err(ToolError::invalid_input(
            "the resulting date is outside the years 1 to 9999",
        ));
    }
    Ok(Answer::Date(Date::from_days(base as i64 - DAY_OFFSET)))
}

/// Where ISO dates stand in `chars`: four, two and two digits joined by
/// `-`, not part of a longer number, a real calendar date.
fn find_dates(chars: &[char]) -> Vec<(usize, Date)> {
    let mut dates = Vec::new();
    let mut at = 0;
    while at + 10 <= chars.len() {
        let before = at.checked_sub(1).and_then(|i| chars.get(i));
        let joined = before.is_some_and(|c| c.is_ascii_digit() || *c == '.');
        let after = chars
            .get(at + 10)
            .is_some_and(|c| c.is_ascii_digit() || *c == '.');
        match Date::iso_prefix(&chars[at..]) {
            Some(date) if !joined && !after => {
                dates.push((at, date));
                at += 10;
            }
            _ => at += 1,
        }
    }
    dates
}

/// Blanks what stands around the date at `at` as other tools write dates:
/// quotes around it (`'2026-12-25'`), and a time of day and a weekday
/// after it (`2026-03-14 10:00:00 Saturday`, `2026-03-14T10:00`). Dates
/// count as whole days, so the time does not change a result.
fn blank_date_decorations(chars: &mut [char], at: usize) {
    let end = at + 10;
    if let (Some(i), Some(&close)) = (at.checked_sub(1), chars.get(end))
        && matches!(chars[i], '"' | '\'' | '`')
        && close == chars[i]
    {
        chars[i] = ' ';
        chars[end] = ' ';
    }
    let mut from = end;
    // A time: `T` or spaces, then hh:mm or hh:mm:ss (a fraction of a
    // second and a `Z` may follow).
    let mut i = from;
    if chars.get(i) == Some(&'T') {
        i += 1;
    } else {
        while chars.get(i).is_some_and(|c| *c == ' ') {
            i += 1;
        }
    }
    let digits = |chars: &[char], at: usize| {
        chars.get(at).is_some_and(char::is_ascii_digit)
            && chars.get(at + 1).is_some_and(char::is_ascii_digit)
    };
    if i > from && digits(chars, i) && chars.get(i + 2) == Some(&':') && digits(chars, i + 3) {
        let mut stop = i + 5;
        if chars.get(stop) == Some(&':') && digits(chars, stop + 1) {
            stop += 3;
            if chars.get(stop) == Some(&'.') {
                stop += 1;
                while chars.get(stop).is_some_and(char::is_ascii_digit) {
                    stop += 1;
                }
            }
        }
        if chars.get(stop) == Some(&'Z') {
            stop += 1;
        }
        if !chars.get(stop).is_some_and(char::is_ascii_alphanumeric) {
            chars[from..stop].fill(' ');
            from = stop;
        }
    }
    // A weekday's name, whole or cut to three letters.
    let mut i = from;
    while chars.get(i).is_some_and(|c| *c == ' ') {
        i += 1;
    }
    let word_end = i + chars[i.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if word_end > i {
        let word: String = chars[i..word_end].iter().collect();
        if is_weekday_name(&word) {
            chars[from..word_end].fill(' ');
        }
    }
}

fn iso(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// Evaluates an expression whose decorations are blanked out.
fn evaluate_chars(chars: &[char]) -> Result<f64, ToolError> {
    let tokens = tokenize(chars)?;
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

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Number(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    SlashSlash,
    Percent,
    Caret,
    Bang,
    Root,
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
            Self::SlashSlash => String::from("'//'"),
            Self::Percent => String::from("'%'"),
            Self::Caret => String::from("'^'"),
            Self::Bang => String::from("'!'"),
            Self::Root => String::from("'\u{221a}'"),
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
    /// Whether whitespace comes right before it.
    spaced: bool,
}

/// Blanks out what surrounds an expression without being part of it:
/// quotes or backticks around the whole of it, a leading `=`, a trailing
/// `=` (or `= ?`). Positions in messages stay those of the input.
fn blank_decorations(chars: &mut [char]) {
    let first = |chars: &[char]| chars.iter().position(|c| !c.is_whitespace());
    let last = |chars: &[char]| chars.iter().rposition(|c| !c.is_whitespace());
    if let (Some(a), Some(b)) = (first(chars), last(chars))
        && a < b
        && chars[a] == chars[b]
        && matches!(chars[a], '"' | '\'' | '`')
    {
        chars[a] = ' ';
        chars[b] = ' ';
    }
    if let Some(a) = first(chars)
        && chars[a] == '='
    {
        chars[a] = ' ';
    }
    if let Some(b) = last(chars)
        && chars[b] == '?'
        && let Some(before) = last(&chars[..b])
        && chars[before] == '='
    {
        chars[b] = ' ';
        chars[before] = ' ';
    } else if let Some(b) = last(chars)
        && chars[b] == '='
    {
        chars[b] = ' ';
    }
}

/// The first character at or after `from` that is not whitespace.
fn next_non_space(chars: &[char], from: usize) -> Option<char> {
    chars
        .get(from..)?
        .iter()
        .copied()
        .find(|c| !c.is_whitespace())
}

/// A number literal's characters; its text is without the `_` and `,`
/// separators.
struct Literal<'a>(&'a [char]);

impl Literal<'_> {
    fn text(&self) -> impl Iterator<Item = char> + '_ {
        self.0.iter().copied().filter(|c| *c != '_' && *c != ',')
    }

    /// The literal's value, read from its text on the stack (every number
    /// of every expression goes through here), or `None` when it is not a
    /// number.
    fn value(&self) -> Option<f64> {
        let mut buffer = [0u8; 64];
        let mut len = 0;
        for c in self.text() {
            match (u8::try_from(c), buffer.get_mut(len)) {
                (Ok(byte), Some(slot)) if byte.is_ascii() => {
                    *slot = byte;
                    len += 1;
                }
                // Longer than any number, or not ASCII: the slow way.
                _ => return self.to_string().parse().ok(),
            }
        }
        std::str::from_utf8(&buffer[..len]).ok()?.parse().ok()
    }
}

impl std::fmt::Display for Literal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        self.text().try_for_each(|c| f.write_char(c))
    }
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, ToolError> {
    let mut tokens: Vec<Token> = Vec::new();
    // For each open parenthesis, whether it opens a function call (whose
    // commas separate arguments, so they are not thousands separators).
    let mut parens: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i;
        let after_operand = matches!(
            tokens.last().map(|t| &t.kind),
            Some(Kind::Number(_) | Kind::RParen | Kind::Bang | Kind::Percent)
        );
        let simple = match c {
            '+' => Some(Kind::Plus),
            '-' | '\u{2212}' | '\u{2013}' => Some(Kind::Minus),
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Some(Kind::Caret)
            }
            '*' | '\u{d7}' | '\u{22c5}' | '\u{b7}' | '\u{2217}' | '\u{2715}' => Some(Kind::Star),
            // "12 x 7": an x between two operands is a times sign.
            'x' | 'X'
                if after_operand
                    && !is_hex_prefix(chars, i)
                    && next_non_space(chars, i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || n == '.' || n == '(') =>
            {
                Some(Kind::Star)
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                i += 1;
                Some(Kind::SlashSlash)
            }
            '/' | '\u{f7}' => Some(Kind::Slash),
            '%' => Some(Kind::Percent),
            '^' => Some(Kind::Caret),
            '!' => Some(Kind::Bang),
            '\u{221a}' => Some(Kind::Root),
            '(' => {
                parens.push(matches!(
                    tokens.last().map(|t| &t.kind),
                    Some(Kind::Ident(_))
                ));
                Some(Kind::LParen)
            }
            ')' => {
                parens.pop();
                Some(Kind::RParen)
            }
            ',' => Some(Kind::Comma),
            _ => None,
        };
        if let Some(kind) = simple {
            tokens.push(Token {
                kind,
                at,
                spaced: false,
            });
            i += 1;
            continue;
        }
        if let Some(power) = match c {
            '\u{b2}' => Some(2.0),
            '\u{b3}' => Some(3.0),
            _ => None,
        } {
            tokens.push(Token {
                kind: Kind::Caret,
                at,
                spaced: false,
            });
            tokens.push(Token {
                kind: Kind::Number(power),
                at,
                spaced: false,
            });
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // "$12": a currency sign before a number says nothing about it.
        if matches!(c, '$' | '\u{20ac}' | '\u{a3}' | '\u{a5}')
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
        {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            // 1,000,000: a first group of one to three digits, then groups
            // of exactly three.
            if !parens.contains(&true) && (1..=3).contains(&(i - start)) && c.is_ascii_digit() {
                while chars.get(i) == Some(&',') && is_thousands_group(chars, i + 1) {
                    i += 4;
                }
            }
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
            let literal = Literal(&chars[start..i]);
            let value = literal.value().ok_or_else(|| {
                ToolError::invalid_input(format!(
                    "{:?} at position {} is not a number",
                    literal.to_string(),
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
                spaced: false,
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
                spaced: false,
            });
            continue;
        }
        if c == '=' {
            return Err(ToolError::invalid_input(format!(
                "unexpected '=' at position {}: write only the expression to evaluate",
                at + 1
            )));
        }
        return Err(ToolError::invalid_input(format!(
            "unexpected character {c:?} at position {} (only numbers, + - * / % ^, parentheses and functions are allowed)",
            at + 1
        )));
    }
    for token in &mut tokens {
        token.spaced = token
            .at
            .checked_sub(1)
            .is_some_and(|before| chars[before].is_whitespace());
    }
    Ok(tokens)
}

/// Whether the `x` at `at` is the `x` of a `0x` hexadecimal prefix, which
/// is refused rather than read as "0 times".
fn is_hex_prefix(chars: &[char], at: usize) -> bool {
    at.checked_sub(1).is_some_and(|zero| {
        chars[zero] == '0'
            && zero
                .checked_sub(1)
                .is_none_or(|before| !(chars[before].is_ascii_digit() || chars[before] == '.'))
    })
}

/// Whether a thousands group starts at `from`: exactly three digits, not
/// followed by another digit.
fn is_thousands_group(chars: &[char], from: usize) -> bool {
    chars
        .get(from..from + 3)
        .is_some_and(|group| group.iter().all(char::is_ascii_digit))
        && !chars.get(from + 3).is_some_and(char::is_ascii_digit)
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
        let (mut value, _) = self.term()?;
        loop {
            let add = if self.eat(&Kind::Plus) {
                true
            } else if self.eat(&Kind::Minus) {
                false
            } else {
                break;
            };
            let sign_at = self.tokens.get(self.pos - 1).map_or(0, |t| t.at);
            let (operand, percent) = self.term()?;
            // "100 + 10%": calculators say 110, arithmetic says 100.1. The
            // two agree only when the left side is 1 (or the percent is 0).
            if let Some(percent) = percent
                && value != 1.0
                && percent != 0.0
            {
                return Err(ambiguous_percent(value, percent, add, sign_at));
            }
            value = if add {
                checked(value + operand, "the sum")?
            } else {
                checked(value - operand, "the difference")?
            };
        }
        self.depth -= 1;
        Ok(value)
    }

    /// term := unary (('*' | '/' | '//' | '%') unary | '%' | '%' 'of' unary)*
    ///
    /// Also says, when the term is exactly `p%`, what `p` is.
    fn term(&mut self) -> Result<(f64, Option<f64>), ToolError> {
        let mut value = self.unary()?;
        let mut operations = 0;
        let mut last_percent = None;
        loop {
            let mut this_percent = None;
            if self.eat(&Kind::Star) {
                value = checked(value * self.unary()?, "the product")?;
            } else if self.eat(&Kind::Slash) {
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err(ToolError::failed("division by zero"));
                }
                value = checked(value / divisor, "the quotient")?;
            } else if self.eat(&Kind::SlashSlash) {
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err(ToolError::failed("division by zero (in //)"));
                }
                value = checked((value / divisor).floor(), "the quotient")?;
            } else if let Some(sign) = self.peek().filter(|t| t.kind == Kind::Percent).cloned() {
                self.pos += 1;
                // A spaced "%" before a sign is the remainder ("10 % -3");
                // one attached to its number is a percent sign ("10%-3").
                let signed_divisor = sign.spaced
                    && matches!(self.peek().map(|t| &t.kind), Some(Kind::Minus | Kind::Plus));
                if matches!(self.peek().map(|t| &t.kind), Some(Kind::Ident(w)) if w == "of") {
                    // "15% of 80"
                    self.pos += 1;
                    value = checked(value / 100.0 * self.unary()?, "the percentage")?;
                } else if self.operand_follows() || signed_divisor {
                    let divisor = self.unary()?;
                    if divisor == 0.0 {
                        return Err(ToolError::failed("division by zero (in %)"));
                    }
                    value = checked(value % divisor, "the remainder")?;
                } else {
                    // A percent sign: "50 * 10%".
                    this_percent = Some(value);
                    value /= 100.0;
                }
            } else {
                break;
            }
            last_percent = this_percent;
            operations += 1;
        }
        let percent = if operations == 1 { last_percent } else { None };
        Ok((value, percent))
    }

    /// Whether the next token can start an operand (so a `%` before it is
    /// the remainder operator, not a percent sign).
    fn operand_follows(&self) -> bool {
        matches!(
            self.peek().map(|t| &t.kind),
            Some(Kind::Number(_) | Kind::Ident(_) | Kind::LParen | Kind::Root)
        )
    }

    /// unary := ('-' | '+' | '√') unary | power
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
        if self.eat(&Kind::Root) {
            self.enter()?;
            let value = self.unary()?;
            self.depth -= 1;
            return apply("sqrt", &[value]);
        }
        self.power()
    }

    /// power := postfix ('^' unary)?   (right-associative)
    fn power(&mut self) -> Result<f64, ToolError> {
        let base = self.postfix()?;
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

    /// postfix := primary '!'*
    fn postfix(&mut self) -> Result<f64, ToolError> {
        let mut value = self.primary()?;
        while self.eat(&Kind::Bang) {
            value = apply("factorial", &[value])?;
        }
        Ok(value)
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

    /// `range(stop)`, `range(start, stop)` or `range(start, stop, step)`
    /// as an argument of a function of a list (`sum(range(1, 51))`, as
    /// models write it from Python): its numbers, `stop` excluded. `None`
    /// when the next argument is not a range.
    fn range_here(&mut self, function: &str) -> Result<Option<Vec<f64>>, ToolError> {
        let is_range = matches!(self.peek(), Some(Token { kind: Kind::Ident(name), .. }) if name == "range")
            && self
                .tokens
                .get(self.pos + 1)
                .is_some_and(|t| t.kind == Kind::LParen);
        if !is_range {
            return Ok(None);
        }
        let at = self.peek().map_or(0, |t| t.at);
        if !matches!(function, "sum" | "count" | "avg" | "mean" | "min" | "max") {
            return Err(ToolError::invalid_input(format!(
                "range at position {} can only be an argument of sum, count, avg, min or max",
                at + 1
            )));
        }
        self.pos += 2;
        let bounds = self.arguments("range", at)?;
        let whole = |v: f64| (v.fract() == 0.0 && v.abs() < 1e15).then_some(v as i64);
        let ints: Option<Vec<i64>> = bounds.iter().map(|&v| whole(v)).collect();
        let (start, stop, step) = match ints.as_deref() {
            Some(&[stop]) => (0, stop, 1),
            Some(&[start, stop]) => (start, stop, 1),
            Some(&[start, stop, step]) if step != 0 => (start, stop, step),
            _ => {
                return Err(ToolError::invalid_input(format!(
                    "range at position {} takes one to three whole numbers (start, stop, step), \
                     the step not 0",
                    at + 1
                )));
            }
        };
        let count = if step > 0 {
            (stop - start + step - 1).max(0) / step
        } else {
            (start - stop - step - 1).max(0) / -step
        };
        if count > MAX_RANGE_ITEMS {
            return Err(ToolError::invalid_input(format!(
                "range at position {} has more than {MAX_RANGE_ITEMS} numbers",
                at + 1
            )));
        }
        let items = (0..count).map(|i| (start + i * step) as f64).collect();
        if !matches!(
            self.peek(),
            Some(Token {
                kind: Kind::Comma | Kind::RParen,
                ..
            })
        ) {
            return Err(ToolError::invalid_input(format!(
                "range at position {} can only stand as a whole argument, as in sum(range(1, 51))",
                at + 1
            )));
        }
        Ok(Some(items))
    }

    fn arguments(&mut self, name: &str, at: usize) -> Result<Vec<f64>, ToolError> {
        let mut args = Vec::new();
        if self.eat(&Kind::RParen) {
            return Ok(args);
        }
        loop {
            match self.range_here(name)? {
                Some(items) => args.extend(items),
                None => args.push(self.expression()?),
            }
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

/// The error for `a + p%` / `a - p%`, saying how to write either reading.
fn ambiguous_percent(left: f64, percent: f64, add: bool, at: usize) -> ToolError {
    let (sign, verb) = if add { ('+', "add") } else { ('-', "subtract") };
    let a = Calculator::format_number(left);
    let p = Calculator::format_number(percent);
    ToolError::invalid_input(format!(
        "\"{sign} {p}%\" at position {} is ambiguous: write {a} * (1 {sign} {p}/100) to {verb} {p} percent of {a}, or {a} {sign} {p}/100 to {verb} the number {}",
        at + 1,
        Calculator::format_number(percent / 100.0)
    ))
}

/// The functions, as error messages list them.
const KNOWN_FUNCTIONS: &str = "sqrt, cbrt, abs, round, floor, ceil, trunc, ln, log, log10, log2, exp, \
sin, cos, tan, asin, acos, atan, min, max, sum, avg, count, pow, factorial";

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
        "cbrt" => one()?.cbrt(),
        "abs" => one()?.abs(),
        "floor" => one()?.floor(),
        "ceil" => one()?.ceil(),
        "trunc" => one()?.trunc(),
        "exp" => one()?.exp(),
        "sin" => one()?.sin(),
        "cos" => one()?.cos(),
        "tan" => one()?.tan(),
        "asin" | "acos" => {
            let x = one()?;
            if !(-1.0..=1.0).contains(&x) {
                return Err(ToolError::failed(format!(
                    "{name} is only defined from -1 to 1"
                )));
            }
            if name == "asin" { x.asin() } else { x.acos() }
        }
        "atan" => one()?.atan(),
        "log10" | "log2" => {
            let x = one()?;
            if x <= 0.0 {
                return Err(ToolError::failed(format!(
                    "{name} is only defined for positive numbers"
                )));
            }
            if name == "log10" { x.log10() } else { x.log2() }
        }
        "factorial" => {
            let n = one()?;
            if n.fract() != 0.0 || !(0.0..=170.0).contains(&n) {
                return Err(ToolError::failed(format!(
                    "factorial is defined for whole numbers from 0 to 170, not {}",
                    Calculator::format_number(n)
                )));
            }
            (2..=n as u32).fold(1.0, |product, k| product * f64::from(k))
        }
        "sum" => args.iter().sum(),
        "count" => args.len() as f64,
        "avg" | "mean" => {
            if args.is_empty() {
                return Err(arity("at least one argument"));
            }
            args.iter().sum::<f64>() / args.len() as f64
        }
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
                "unknown function {name:?} (known: {KNOWN_FUNCTIONS})"
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
        assert_eq!(eval("sum(78, 85, 92, 88) / count(78, 85, 92, 88)"), 85.75);
        assert_eq!(eval("count()"), 0.0);
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
    fn number_literals_long_and_malformed() {
        // Read on the stack up to 64 characters, beyond that as a string.
        let long = format!("0.{}5", "0".repeat(80));
        assert_eq!(eval(&long), long.parse::<f64>().unwrap_or_default());
        assert_eq!(eval("1,000,000 + 1"), 1_000_001.0);
        let message = |expression: &str| match Calculator::evaluate(expression) {
            Ok(value) => panic!("{expression} gave {value}"),
            Err(error) => error.to_string(),
        };
        assert!(
            message("1_0.2.3 + 1").contains("\"10.2.3\" at position 1 is not a number"),
            "{}",
            message("1_0.2.3 + 1")
        );
        assert!(message(&format!("1{}", "0".repeat(400))).contains("is too large"));
    }

    #[test]
    fn ranges_in_list_functions() {
        assert_eq!(eval("sum(range(1, 51))"), 1275.0);
        assert_eq!(eval("count(range(10))"), 10.0);
        assert_eq!(eval("avg(range(2, 11, 2))"), 6.0);
        assert_eq!(eval("sum(range(10, 0, -3), 100)"), 122.0);
        assert_eq!(eval("sum(range(5, 5))"), 0.0);
        assert_eq!(eval("2 * sum(range(1, 4)) + 1"), 13.0);
        for refused in [
            "range(1, 5)",
            "sqrt(range(1, 5))",
            "sum(range(1, 5) + 1)",
            "sum(range(1, 5, 0))",
            "sum(range(1.5, 5))",
            "sum(range(1, 2, 3, 4))",
            "sum(range(0, 1e9))",
            "sum(range(1, 5)",
        ] {
            assert!(Calculator::evaluate(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn dates_count_as_days() {
        let calc = |text: &str| Calculator::calculate(text);
        assert_eq!(calc("2026-12-25 - 2026-03-14").unwrap(), "286");
        assert_eq!(calc("2026-03-14 - 2026-12-25").unwrap(), "-286");
        assert_eq!(
            calc("(2027-01-01 - 2026-03-14) / 7").unwrap(),
            "41.8571428571"
        );
        assert_eq!(calc("2026-03-14 + 30").unwrap(), "2026-04-13");
        assert_eq!(calc("2026-03-14 - 1").unwrap(), "2026-03-13");
        assert_eq!(calc("10 + 2024-12-31").unwrap(), "2025-01-10");
        assert_eq!(calc("min(2026-05-01, 2026-04-01)").unwrap(), "2026-04-01");
        assert_eq!(calc("abs(2024-01-01 - 2025-01-01)").unwrap(), "366");
        assert_eq!(
            Calculator::evaluate("2026-12-25 - 2026-12-24").unwrap(),
            1.0
        );
        assert!(Calculator::evaluate("2026-12-25 + 1").is_err());
        assert!(calc("2026-12-25 + 1e10").is_err());
        assert!(calc("2026-12-25 - 1e7").is_err());
        assert_eq!(calc("9999-12-31 - 0001-01-01").unwrap(), "3652058");
        for refused in [
            "2026-12-25 + 2026-12-24",
            "2026-12-25 * 2",
            "2026-12-25 * 2026-12-24",
            "2026-12-25 + 0.5",
        ] {
            assert!(calc(refused).is_err(), "{refused}");
        }
        // Dates as the time tool and people write them: quoted, with a
        // time of day or a weekday after them.
        assert_eq!(
            calc("2026-03-14 10:00:00 Saturday - '2026-12-25'").unwrap(),
            "-286"
        );
        assert_eq!(calc("\"2026-12-25\" - 2026-03-14T09:30").unwrap(), "286");
        assert_eq!(calc("2026-12-25 Fri - 2026-03-14 10:00").unwrap(), "286");
        assert_eq!(calc("2026-03-14 23:59:59.5Z + 1").unwrap(), "2026-03-15");
        assert_eq!(
            calc("(2026-12-25 - 2026-03-14 Sat) / 7").unwrap(),
            "40.8571428571"
        );
        // Not a time or a weekday: left for the parser, which refuses it.
        assert!(calc("2026-03-14 10:00x - 2026-03-13").is_err());
        assert!(calc("2026-03-14 Someday - 2026-03-13").is_err());
        assert!(calc("'2026-03-14 - 2026-03-13").is_err());
        // Not dates: other shapes, invalid days, part of a longer number.
        assert_eq!(calc("2026-13-01").unwrap(), "2012");
        assert_eq!(calc("2026-1-1").unwrap(), "2024");
        assert_eq!(calc("12026-12-25").unwrap(), "11989");
        // Positions in errors are those of the expression as written.
        let error = calc("2026-12-25 - 2026-03-14 $ 1").unwrap_err().to_string();
        assert!(error.contains("position 25"), "{error}");
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
