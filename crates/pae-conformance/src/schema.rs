//! A small JSON Schema checker and example-value maker, covering the subset
//! the suite's own schemas use: `type`, `enum`, `const`, `properties`,
//! `required`, `additionalProperties` and `items`.

use serde_json::{Map, Value};

/// Where `value` breaks `schema`, one line per violation; empty when it
/// matches. Keywords outside the subset are ignored.
pub(crate) fn violations(value: &Value, schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(value, schema, "$", &mut found);
    found
}

fn check(value: &Value, schema: &Value, path: &str, found: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            found.push(format!("{path}: no value is allowed here"));
            return;
        }
        Value::Object(schema) => schema,
        _ => return,
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| has_type(value, name)) {
            found.push(format!(
                "{path}: expected {}, found {}",
                names.join(" or "),
                type_name(value)
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        found.push(format!(
            "{path}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        found.push(format!("{path}: {value} is not {constant}"));
    }
    match value {
        Value::Object(object) => check_object(object, schema, path, found),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{index}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    object: &Map<String, Value>,
    schema: &Map<String, Value>,
    path: &str,
    found: &mut Vec<String>,
) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                found.push(format!("{path}: the required key {key:?} is missing"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (key, field) in object {
        let field_path = format!("{path}.{key}");
        match properties.and_then(|properties| properties.get(key)) {
            Some(field_schema) => check(field, field_schema, &field_path, found),
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    found.push(format!("{path}: the key {key:?} is not allowed"));
                }
                Some(extra @ Value::Object(_)) => check(field, extra, &field_path, found),
                _ => {}
            },
        }
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64()
                || value.is_u64()
                || value
                    .as_f64()
                    .is_some_and(|n| n.is_finite() && n.fract() == 0.0)
        }
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value that matches `schema` (within the subset): the first `enum`
/// value or the `const`, else a fixed value of the first `type`, with every
/// property of an object filled in.
pub(crate) fn example(schema: &Value) -> Value {
    let Some(schema) = schema.as_object() else {
        return Value::Null;
    };
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
    let kind = match schema.get("type") {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(Value::Array(names)) => names.iter().find_map(Value::as_str),
        _ => None,
    };
    match kind {
        Some("array") => Value::Array(
            schema
                .get("items")
                .map(|items| vec![example(items)])
                .unwrap_or_default(),
        ),
        Some("string") => Value::from("example"),
        Some("integer") => Value::from(1),
        Some("number") => Value::from(1.5),
        Some("boolean") => Value::from(true),
        Some("null") => Value::Null,
        Some("object") | None => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(key, field)| (key.clone(), example(field)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "answer": {"type": "string", "enum": ["yes", "no"]},
                "sure": {"type": "boolean"},
                "score": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["answer", "sure"],
            "additionalProperties": false
        })
    }

    /// Compares sorted, because object key order depends on serde_json's
    /// `preserve_order` feature, which another crate may turn on.
    fn check_value(value: Value, expected: &[&str]) {
        let mut found = violations(&value, &schema());
        found.sort();
        let mut expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
        expected.sort();
        assert_eq!(found, expected, "value {value}");
    }

    #[test]
    fn matching_values_have_no_violations() {
        check_value(json!({"answer": "yes", "sure": true}), &[]);
        check_value(
            json!({"answer": "no", "sure": false, "score": 3.0, "tags": ["a"]}),
            &[],
        );
    }

    #[test]
    fn each_kind_of_violation_is_reported_with_its_path() {
        check_value(json!([]), &["$: expected object, found array"]);
        check_value(
            json!({"answer": "maybe"}),
            &[
                "$: the required key \"sure\" is missing",
                "$.answer: \"maybe\" is not one of [\"yes\",\"no\"]",
            ],
        );
        check_value(
            json!({"answer": "yes", "sure": "yes", "extra": 1}),
            &[
                "$: the key \"extra\" is not allowed",
                "$.sure: expected boolean, found string",
            ],
        );
        check_value(
            json!({"answer": "yes", "sure": true, "score": 1.5, "tags": [1]}),
            &[
                "$.score: expected integer, found number",
                "$.tags[0]: expected string, found number",
            ],
        );
    }

    #[test]
    fn examples_match_their_schema() {
        let cases = [
            schema(),
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            json!({"type": ["null", "integer"]}),
            json!({"const": 7}),
            json!({"type": "array", "items": {"type": "number"}}),
        ];
        for schema in cases {
            let value = example(&schema);
            assert_eq!(violations(&value, &schema), Vec::<String>::new(), "{value}");
        }
        assert_eq!(
            example(&json!({"type": "object", "properties": {"city": {"type": "string"}}})),
            json!({"city": "example"})
        );
    }
}
