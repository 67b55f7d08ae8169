//! The JSON-schema checker through the public API: each kind of violation
//! with its path, and examples that match their schema (the cases the
//! conformance suite's own checker had).

use pae_schema::json_schema::{example, validate};
use serde_json::{Value, json};

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
    let mut found: Vec<String> = validate(&schema(), &value)
        .iter()
        .map(ToString::to_string)
        .collect();
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
    check_value(
        json!([]),
        &["$: expected an object, got an array of 0 items"],
    );
    check_value(
        json!({"answer": "maybe"}),
        &[
            "$: the required property \"sure\" is missing",
            "$.answer: must be one of \"yes\", \"no\", got the string \"maybe\"",
        ],
    );
    check_value(
        json!({"answer": "yes", "sure": "yes", "extra": 1}),
        &[
            "$.extra: unexpected property (allowed properties: \"answer\", \"score\", \"sure\", \"tags\")",
            "$.sure: expected a boolean, got the string \"yes\"",
        ],
    );
    check_value(
        json!({"answer": "yes", "sure": true, "score": 1.5, "tags": [1]}),
        &[
            "$.score: expected an integer, got the number 1.5",
            "$.tags[0]: expected a string, got the number 1",
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
        // Keywords only the executor's checker had.
        json!({"type": "integer", "minimum": 5, "maximum": 9}),
        json!({"type": "integer", "exclusiveMinimum": 1.5}),
        json!({"type": "number", "exclusiveMaximum": 0}),
        json!({"type": "string", "minLength": 10}),
        json!({"type": "string", "maxLength": 3}),
        json!({"type": "array", "items": {"type": "boolean"}, "minItems": 3}),
        json!({"type": "array", "items": {"type": "boolean"}, "maxItems": 0}),
        json!({"anyOf": [{"type": "string", "minLength": 8}, {"type": "integer"}]}),
        json!({"oneOf": [{"type": "object", "properties": {"n": {"type": "number"}}}]}),
    ];
    for schema in cases {
        let value = example(&schema);
        assert_eq!(
            validate(&schema, &value),
            Vec::new(),
            "{value} for {schema}"
        );
    }
    assert_eq!(
        example(&json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        json!({"city": "example"})
    );
    assert_eq!(
        example(&json!({"type": "array", "items": {"type": "integer"}, "minItems": 2})),
        json!([1, 1])
    );
}

#[test]
fn hostile_schemas_give_bounded_examples() {
    // Nested arrays each asking for a million items.
    let mut schema = json!({"type": "integer"});
    for _ in 0..10 {
        schema = json!({"type": "array", "items": schema, "minItems": 1_000_000});
    }
    let value = example(&schema);
    assert!(value.to_string().len() < 100_000);
    let long = example(&json!({"type": "string", "minLength": u64::MAX}));
    assert!(long.as_str().is_some_and(|s| s.len() <= 4096));
    // Deeper than the checker looks: no stack overflow.
    let mut deep = json!({"type": "string"});
    for _ in 0..200 {
        deep = json!({"type": "object", "properties": {"a": deep}});
    }
    let _ = example(&deep);
}
