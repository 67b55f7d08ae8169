//! A small JSON-schema checker: the subset of JSON Schema that tool
//! parameters and structured-output schemas use in practice. Executors
//! check a model's tool arguments with [`validate`] and explain the
//! violations to the model before the tool runs; the conformance suite
//! checks structured replies with it and answers with [`example`].
//!
//! Supported keywords: `type` (a name or a list; `integer` is a number with
//! no fractional part), `properties`, `required`, `additionalProperties`
//! (`false` or a schema), `enum`, `const`, `items` (one schema),
//! `minItems`/`maxItems`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum` (numeric form),
//! `minLength`/`maxLength` (in characters), and `anyOf`/`oneOf` (the value
//! must match at least one branch). Other keywords (`pattern`, `format`,
//! `$ref`, ...) are ignored, so a schema using them validates less, never
//! wrongly rejects. Nothing here panics, whatever the schema or value.

use std::fmt;

use serde_json::{Map, Value};

/// The most violations reported for one value; the rest are summarised.
pub const MAX_VIOLATIONS: usize = 10;

/// Nesting deeper than this is not checked (protects against hostile
/// schemas or values).
const MAX_DEPTH: usize = 64;

/// One way a value fails its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// Where, as a JSON-pointer-like path (`$` is the root, `$.a[0]`).
    pub path: String,
    /// What is wrong, in words a model can act on.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks `value` against `schema`; returns every violation found (at most
/// [`MAX_VIOLATIONS`]). An empty list means the value is valid.
///
/// ```
/// use pae_schema::json_schema::validate;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
///                     "required": ["n"], "additionalProperties": false});
/// assert!(validate(&schema, &json!({"n": 3})).is_empty());
/// let problems = validate(&schema, &json!({"n": 0.5, "x": 1}));
/// assert_eq!(problems.len(), 2);
/// assert_eq!(problems[0].to_string(), "$.n: expected an integer, got the number 0.5");
/// ```
pub fn validate(schema: &Value, value: &Value) -> Vec<SchemaViolation> {
    let mut out = Vec::new();
    // Room for the paths of most arguments: no copy as they are pushed.
    let mut path = String::with_capacity(64);
    path.push('$');
    check(schema, value, &mut path, 0, &mut out);
    out.truncate(MAX_VIOLATIONS);
    out
}

fn push(out: &mut Vec<SchemaViolation>, path: &str, message: String) {
    if out.len() <= MAX_VIOLATIONS {
        out.push(SchemaViolation {
            path: path.to_owned(),
            message,
        });
    }
}

/// A short description of a value for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => String::from("null"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(40).collect();
            let more = if s.chars().count() > 40 { "..." } else { "" };
            format!("the string {:?}", format!("{shown}{more}"))
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => String::from("an object"),
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        // An unknown type name constrains nothing.
        _ => true,
    }
}

fn article(name: &str) -> &'static str {
    match name {
        "integer" | "object" | "array" => "an",
        _ => "a",
    }
}

/// `map[key]`. Schemas and arguments are small objects: up to a few
/// entries, comparing keys beats hashing the key (serde_json's maps hash
/// with SipHash), and a check asks for a dozen keywords per level.
fn keyword<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= 8 {
        return map.iter().find_map(|(k, v)| (k == key).then_some(v));
    }
    map.get(key)
}

fn check(
    schema: &Value,
    value: &Value,
    path: &mut String,
    depth: usize,
    out: &mut Vec<SchemaViolation>,
) {
    if depth > MAX_DEPTH || out.len() > MAX_VIOLATIONS {
        return;
    }
    let Value::Object(schema) = schema else {
        // `true`, `{}` and anything that is not an object accept everything
        // (`false` rejects everything).
        if schema == &Value::Bool(false) {
            push(out, path, String::from("no value is allowed here"));
        }
        return;
    };

    if let Some(types) = keyword(schema, "type") {
        // `"type": "x"` or `"type": ["x", "y"]`, read without collecting
        // (every tool call checks its arguments).
        let listed = match types {
            Value::Array(list) => list.as_slice(),
            _ => &[],
        };
        let names = types
            .as_str()
            .into_iter()
            .chain(listed.iter().filter_map(Value::as_str));
        let mut named = false;
        let mut matched = false;
        for name in names.clone() {
            named = true;
            if type_matches(name, value) {
                matched = true;
                break;
            }
        }
        if named && !matched {
            let expected = names
                .map(|n| format!("{} {n}", article(n)))
                .collect::<Vec<_>>()
                .join(" or ");
            push(
                out,
                path,
                format!("expected {expected}, got {}", describe(value)),
            );
            // Further keywords would only repeat the type mismatch.
            return;
        }
    }

    if let Some(Value::Array(allowed)) = keyword(schema, "enum")
        && !allowed.contains(value)
    {
        let list = allowed
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        push(
            out,
            path,
            format!("must be one of {list}, got {}", describe(value)),
        );
    }
    if let Some(expected) = keyword(schema, "const")
        && expected != value
    {
        push(
            out,
            path,
            format!("must be {expected}, got {}", describe(value)),
        );
    }

    for name in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = keyword(schema, name) {
            let matches_one = branches.iter().any(|branch| {
                let mut scratch = Vec::new();
                check(branch, value, &mut path.clone(), depth + 1, &mut scratch);
                scratch.is_empty()
            });
            if !branches.is_empty() && !matches_one {
                push(
                    out,
                    path,
                    format!("matches none of the {} allowed forms", branches.len()),
                );
            }
        }
    }

    match value {
        Value::Number(n) => check_number(schema, n.as_f64(), path, out),
        Value::String(s) => check_string(schema, s, path, out),
        Value::Array(items) => check_array(schema, items, path, depth, out),
        Value::Object(object) => check_object(schema, object, path, depth, out),
        Value::Null | Value::Bool(_) => {}
    }
}

fn check_number(
    schema: &Map<String, Value>,
    n: Option<f64>,
    path: &str,
    out: &mut Vec<SchemaViolation>,
) {
    let Some(n) = n else { return };
    let bound = |key: &str| keyword(schema, key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && n < min
    {
        push(out, path, format!("must be at least {min}, got {n}"));
    }
    if let Some(max) = bound("maximum")
        && n > max
    {
        push(out, path, format!("must be at most {max}, got {n}"));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && n <= min
    {
        push(out, path, format!("must be greater than {min}, got {n}"));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && n >= max
    {
        push(out, path, format!("must be less than {max}, got {n}"));
    }
}

fn check_string(schema: &Map<String, Value>, s: &str, path: &str, out: &mut Vec<SchemaViolation>) {
    let len = s.chars().count() as u64;
    if let Some(min) = keyword(schema, "minLength").and_then(Value::as_u64)
        && len < min
    {
        push(
            out,
            path,
            format!("must be at least {min} characters long, got {len}"),
        );
    }
    if let Some(max) = keyword(schema, "maxLength").and_then(Value::as_u64)
        && len > max
    {
        push(
            out,
            path,
            format!("must be at most {max} characters long, got {len}"),
        );
    }
}

fn check_array(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &mut String,
    depth: usize,
    out: &mut Vec<SchemaViolation>,
) {
    let len = items.len() as u64;
    if let Some(min) = keyword(schema, "minItems").and_then(Value::as_u64)
        && len < min
    {
        push(
            out,
            path,
            format!("must have at least {min} items, got {len}"),
        );
    }
    if let Some(max) = keyword(schema, "maxItems").and_then(Value::as_u64)
        && len > max
    {
        push(
            out,
            path,
            format!("must have at most {max} items, got {len}"),
        );
    }
    if let Some(item_schema) = keyword(schema, "items") {
        for (i, item) in items.iter().enumerate() {
            let mark = path.len();
            path.push_str(&format!("[{i}]"));
            check(item_schema, item, path, depth + 1, out);
            path.truncate(mark);
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    object: &Map<String, Value>,
    path: &mut String,
    depth: usize,
    out: &mut Vec<SchemaViolation>,
) {
    let properties = keyword(schema, "properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = keyword(schema, "required") {
        for name in required.iter().filter_map(Value::as_str) {
            if keyword(object, name).is_none() {
                push(
                    out,
                    path,
                    format!("the required property {name:?} is missing"),
                );
            }
        }
    }
    // Sorted, so messages do not depend on serde_json's map order (which a
    // feature elsewhere in a build can switch to insertion order).
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, item) in entries {
        let mark = path.len();
        push_key(path, key);
        match properties.and_then(|p| keyword(p, key)) {
            Some(property_schema) => check(property_schema, item, path, depth + 1, out),
            None => match keyword(schema, "additionalProperties") {
                Some(Value::Bool(false)) => {
                    let known = properties
                        .map(|p| {
                            let mut names: Vec<String> =
                                p.keys().map(|k| format!("{k:?}")).collect();
                            names.sort_unstable();
                            names.join(", ")
                        })
                        .unwrap_or_default();
                    let hint = if known.is_empty() {
                        String::from("no properties are allowed")
                    } else {
                        format!("allowed properties: {known}")
                    };
                    push(out, path, format!("unexpected property ({hint})"));
                }
                Some(extra @ Value::Object(_)) => check(extra, item, path, depth + 1, out),
                _ => {}
            },
        }
        path.truncate(mark);
    }
}

fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str(&format!("[{key:?}]"));
    }
}

/// A value that matches `schema`, for stand-in replies and tool arguments:
/// the `const` or the first `enum` value, else the first branch of
/// `anyOf`/`oneOf`, else a fixed value of the first `type` within its
/// bounds (`minimum`, `minLength`, `minItems`, ...), with every property of
/// an object filled in. Schemas outside the supported subset may give a
/// value that does not match.
///
/// ```
/// use pae_schema::json_schema::{example, validate};
/// use serde_json::json;
///
/// let schema = json!({"type": "object",
///                     "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
///                     "required": ["city"]});
/// assert_eq!(example(&schema), json!({"city": "example", "days": 3}));
/// assert!(validate(&schema, &example(&schema)).is_empty());
/// ```
pub fn example(schema: &Value) -> Value {
    let mut extra_items = MAX_EXTRA_ITEMS;
    example_at(schema, 0, &mut extra_items)
}

/// Items beyond the first that one [`example`] adds to its arrays in all
/// (for `minItems`), so that nested arrays cannot multiply without bound.
const MAX_EXTRA_ITEMS: u64 = 256;

fn example_at(schema: &Value, depth: usize, extra_items: &mut u64) -> Value {
    let Some(schema) = schema.as_object() else {
        return Value::Null;
    };
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = ["anyOf", "oneOf"].iter().find_map(|keyword| {
        schema
            .get(*keyword)
            .and_then(Value::as_array)
            .and_then(|branches| branches.first())
    }) {
        return example_at(first, depth + 1, extra_items);
    }
    let kind = match schema.get("type") {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(Value::Array(names)) => names.iter().find_map(Value::as_str),
        _ => None,
    };
    match kind {
        Some("array") => example_array(schema, depth, extra_items),
        Some("string") => example_string(schema),
        Some("integer") => example_number(schema, true),
        Some("number") => example_number(schema, false),
        Some("boolean") => Value::from(true),
        Some("null") => Value::Null,
        Some("object") | None => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(key, field)| {
                            (key.clone(), example_at(field, depth + 1, extra_items))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some(_) => Value::Null,
    }
}

/// One item, or `minItems` items while the budget lasts, and at most
/// `maxItems`; no items when the schema has no `items`.
fn example_array(schema: &Map<String, Value>, depth: usize, extra_items: &mut u64) -> Value {
    let Some(items) = schema.get("items") else {
        return Value::Array(Vec::new());
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    let wanted = bound("minItems").unwrap_or(1).max(1);
    let wanted = bound("maxItems").map_or(wanted, |max| wanted.min(max));
    let extra = wanted.saturating_sub(1).min(*extra_items);
    *extra_items -= extra;
    let count = wanted.min(1) + extra;
    Value::Array(
        (0..count)
            .map(|_| example_at(items, depth + 1, extra_items))
            .collect(),
    )
}

/// `"example"`, cut to `maxLength` or padded to `minLength` characters.
fn example_string(schema: &Map<String, Value>) -> Value {
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .map(|n| n.min(MAX_EXAMPLE_CHARS) as usize)
    };
    let mut text = String::from("example");
    if let Some(min) = bound("minLength") {
        while text.chars().count() < min {
            text.push('x');
        }
    }
    if let Some(max) = bound("maxLength") {
        text = text.chars().take(max).collect();
    }
    Value::from(text)
}

/// Characters an [`example`] string holds at most.
const MAX_EXAMPLE_CHARS: u64 = 4096;

/// `1` (`1.5` for a number), moved into the bounds when it is outside.
fn example_number(schema: &Map<String, Value>, integer: bool) -> Value {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let mut n: f64 = if integer { 1.0 } else { 1.5 };
    if let Some(min) = bound("minimum")
        && n < min
    {
        n = if integer { min.ceil() } else { min };
    }
    if let Some(min) = bound("exclusiveMinimum")
        && n <= min
    {
        n = if integer {
            min.floor() + 1.0
        } else {
            min + 1.0
        };
    }
    if let Some(max) = bound("maximum")
        && n > max
    {
        n = if integer { max.floor() } else { max };
    }
    if let Some(max) = bound("exclusiveMaximum")
        && n >= max
    {
        n = if integer { max.ceil() - 1.0 } else { max - 1.0 };
    }
    if integer && n.is_finite() && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: Value, value: Value) -> Vec<String> {
        validate(&schema, &value)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn types_including_integer_and_lists() {
        assert!(messages(json!({"type": "integer"}), json!(3)).is_empty());
        assert!(messages(json!({"type": "integer"}), json!(3.0)).is_empty());
        assert_eq!(
            messages(json!({"type": "integer"}), json!(3.5)),
            ["$: expected an integer, got the number 3.5"]
        );
        assert!(messages(json!({"type": "number"}), json!(-1)).is_empty());
        assert_eq!(
            messages(json!({"type": ["string", "null"]}), json!(1)),
            ["$: expected a string or a null, got the number 1"]
        );
        assert!(messages(json!({"type": ["string", "null"]}), json!(null)).is_empty());
        assert_eq!(
            messages(json!({"type": "object"}), json!("x")),
            ["$: expected an object, got the string \"x\""]
        );
    }

    #[test]
    fn objects() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}},
            "required": ["a"],
            "additionalProperties": false
        });
        assert!(messages(schema.clone(), json!({"a": "x"})).is_empty());
        assert_eq!(
            messages(schema.clone(), json!({"b": 1, "c d": 2})),
            [
                "$: the required property \"a\" is missing",
                "$.b: expected a boolean, got the number 1",
                "$[\"c d\"]: unexpected property (allowed properties: \"a\", \"b\")",
            ]
        );
        let typed_extra = json!({"type": "object", "additionalProperties": {"type": "number"}});
        assert_eq!(
            messages(typed_extra, json!({"k": "v"})),
            ["$.k: expected a number, got the string \"v\""]
        );
    }

    #[test]
    fn numbers_strings_arrays_enums() {
        let schema = json!({"type": "number", "minimum": 0, "maximum": 10, "exclusiveMaximum": 10});
        assert_eq!(
            messages(schema.clone(), json!(-1)),
            ["$: must be at least 0, got -1"]
        );
        assert_eq!(
            messages(schema, json!(10)),
            ["$: must be less than 10, got 10"]
        );
        let s = json!({"type": "string", "minLength": 2, "maxLength": 3});
        assert_eq!(
            messages(s.clone(), json!("é")),
            ["$: must be at least 2 characters long, got 1"]
        );
        assert!(messages(s, json!("éé")).is_empty());
        let arr = json!({"type": "array", "items": {"type": "integer"}, "maxItems": 2});
        assert_eq!(
            messages(arr, json!([1, "x", 3])),
            [
                "$: must have at most 2 items, got 3",
                "$[1]: expected an integer, got the string \"x\""
            ]
        );
        let e = json!({"enum": ["utc", "local"]});
        assert_eq!(
            messages(e, json!("mars")),
            ["$: must be one of \"utc\", \"local\", got the string \"mars\""]
        );
    }

    #[test]
    fn any_of_and_booleans() {
        let schema = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(messages(schema.clone(), json!(1)).is_empty());
        assert_eq!(
            messages(schema, json!(true)),
            ["$: matches none of the 2 allowed forms"]
        );
        assert!(messages(json!(true), json!(1)).is_empty());
        assert_eq!(
            messages(json!(false), json!(1)),
            ["$: no value is allowed here"]
        );
    }

    #[test]
    fn violations_are_capped() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        let value = Value::Array((0..100).map(|i| json!(i)).collect());
        assert_eq!(validate(&schema, &value).len(), MAX_VIOLATIONS);
    }

    #[test]
    fn deep_values_do_not_overflow() {
        let mut schema = json!({"type": "array"});
        let mut value = json!(1);
        for _ in 0..200 {
            schema = json!({"type": "array", "items": schema});
            value = json!([value]);
        }
        // Only the first MAX_DEPTH levels are checked; no stack overflow.
        let _ = validate(&schema, &value);
    }
}
