//! The JSON-schema check applied to tool arguments, so a model's bad
//! arguments are explained to it before the tool runs. It lives in
//! [`pae_schema::json_schema`] (shared with the conformance suite) and is
//! re-exported here; see there for the supported keywords.
//!
//! ```
//! use pae_executor::schema::{MAX_VIOLATIONS, validate};
//! use serde_json::json;
//!
//! let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
//!                     "required": ["n"], "additionalProperties": false});
//! assert!(validate(&schema, &json!({"n": 3})).is_empty());
//! let problems = validate(&schema, &json!({"n": 0.5, "x": 1}));
//! assert_eq!(problems.len(), 2);
//! assert_eq!(problems[0].to_string(), "$.n: expected an integer, got the number 0.5");
//! assert!(problems.len() <= MAX_VIOLATIONS);
//! ```

pub use pae_schema::json_schema::{MAX_VIOLATIONS, SchemaViolation, validate};
