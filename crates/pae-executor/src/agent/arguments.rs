//! Argument fitting: turns what the model sent for a tool into the
//! arguments the tool receives, the way a LangChain user expects (a bare
//! value for a one-argument tool, JSON text of an object, `null` for none).

use serde_json::{Map, Value};

use crate::schema;

/// Where a tool's arguments came from: the model's text or a native call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgumentSource {
    Text,
    Native,
}

/// Makes the arguments the tool receives from what the model sent.
///
/// - Nothing (`null`, `""`) is `{}`.
/// - Native arguments that arrived as a string are JSON text: an object (or
///   JSON text of one, when double-encoded) is used; anything that does
///   not parse is an error the model is told about.
/// - A text action's string that is JSON text of an object is decoded when
///   the object fits the tool (LangChain users write
///   `"action_input": "{\"a\": 1}"`).
/// - A bare value for a tool with one argument becomes that argument, as
///   LangChain passes a string input to a single-input tool
///   (`"action_input": "2+2"` for the calculator); a number given for a
///   string argument is written as text, a numeric string given for a
///   number argument is read as a number.
/// - An object with one key that is not the tool's only argument, for a
///   tool that requires it, is renamed to it (`{"input": "2+2"}`).
pub(crate) fn prepare_arguments(
    args: Value,
    schema: &Value,
    source: ArgumentSource,
) -> Result<Value, String> {
    let args = match args {
        Value::Null => return Ok(Value::Object(Map::new())),
        Value::String(text) if text.trim().is_empty() => return Ok(Value::Object(Map::new())),
        Value::String(raw) if source == ArgumentSource::Native => {
            match serde_json::from_str::<Value>(raw.trim()) {
                Ok(Value::Null) => return Ok(Value::Object(Map::new())),
                Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => Value::String(inner),
                },
                Ok(value) => value,
                Err(e) => return Err(e.to_string()),
            }
        }
        Value::String(text) => match decoded_object(&text, schema) {
            Some(object) => object,
            None => Value::String(text),
        },
        other => other,
    };
    let args = fit_to_single_argument(args, schema);
    match (args, source) {
        (value @ Value::Object(_), _) | (value, ArgumentSource::Text) => Ok(value),
        (other, ArgumentSource::Native) => Err(format!("got {other}")),
    }
}

/// `text` decoded, when it is JSON text of an object that fits the schema:
/// valid (once a misnamed only key is renamed), or at least naming only
/// the schema's properties (then the schema check explains what is wrong).
fn decoded_object(text: &str, schema: &Value) -> Option<Value> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    let value @ Value::Object(_) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    let fitted = fit_to_single_argument(value.clone(), schema);
    if schema::validate(schema, &fitted).is_empty() {
        return Some(fitted);
    }
    let properties = field(schema, "properties").and_then(Value::as_object)?;
    let object = value.as_object()?;
    (!object.is_empty() && object.keys().all(|k| properties.contains_key(k))).then_some(value)
}

/// Maps a bare value, or an object with one misnamed key, onto a tool's
/// only argument (see [`prepare_arguments`]).
fn fit_to_single_argument(args: Value, schema: &Value) -> Value {
    let Some((name, property)) = single_argument(schema) else {
        return args;
    };
    let expected = field(property, "type").and_then(Value::as_str);
    let wrap = |value: Value| Value::Object(Map::from_iter([(name.to_owned(), value)]));
    match args {
        Value::String(text) => match expected {
            None | Some("string") => wrap(Value::String(text)),
            Some("number" | "integer") => match serde_json::from_str::<Value>(text.trim()) {
                Ok(number @ Value::Number(_)) => wrap(number),
                _ => Value::String(text),
            },
            _ => Value::String(text),
        },
        Value::Number(number) => match expected {
            None | Some("number") => wrap(Value::Number(number)),
            Some("integer") if number.is_i64() || number.is_u64() => wrap(Value::Number(number)),
            Some("string") => wrap(Value::String(number.to_string())),
            _ => Value::Number(number),
        },
        Value::Bool(flag) => match expected {
            None | Some("boolean") => wrap(Value::Bool(flag)),
            Some("string") => wrap(Value::String(flag.to_string())),
            _ => Value::Bool(flag),
        },
        Value::Object(mut object) => {
            let required = field(schema, "required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)));
            let properties = field(schema, "properties").and_then(Value::as_object);
            let misnamed = object.len() == 1
                && required
                && properties.is_some_and(|p| p.len() == 1)
                && !object.keys().any(|key| key == name);
            if misnamed
                && let Some(key) = object.keys().next().cloned()
                && let Some(value) = object.remove(&key)
            {
                if schema::validate(property, &value).is_empty() {
                    return wrap(value);
                }
                object.insert(key, value);
            }
            Value::Object(object)
        }
        other => other,
    }
}

/// `value[key]` for an object. Schemas are small objects: comparing a few
/// keys beats hashing the key (serde_json's maps hash with SipHash), and
/// every tool call asks for several.
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    if object.len() <= 8 {
        return object.iter().find_map(|(k, v)| (k == key).then_some(v));
    }
    object.get(key)
}

/// The tool's one argument, if it has exactly one: its only property, or
/// its only required property.
fn single_argument(schema: &Value) -> Option<(&str, &Value)> {
    let properties = field(schema, "properties")?.as_object()?;
    if properties.len() == 1 {
        return properties.iter().next().map(|(k, v)| (k.as_str(), v));
    }
    let required: Vec<&str> = field(schema, "required")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match required.as_slice() {
        [only] => properties.get(*only).map(|p| (*only, p)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_strings_are_wrapped_for_single_string_tools() {
        let one = json!({"type": "object", "properties": {"expression": {"type": "string"}}});
        assert_eq!(
            prepare_arguments(json!("1+1"), &one, ArgumentSource::Text),
            Ok(json!({"expression": "1+1"}))
        );
        let required = json!({"type": "object", "properties": {"path": {"type": "string"},
            "limit": {"type": "integer"}}, "required": ["path"]});
        assert_eq!(
            prepare_arguments(json!("a.txt"), &required, ArgumentSource::Text),
            Ok(json!({"path": "a.txt"}))
        );
        let two = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        assert_eq!(
            prepare_arguments(json!("x"), &two, ArgumentSource::Text),
            Ok(json!("x"))
        );
        assert_eq!(
            prepare_arguments(Value::Null, &two, ArgumentSource::Text),
            Ok(json!({}))
        );
    }

    #[test]
    fn values_are_fitted_to_a_single_argument() {
        let calc = json!({"type": "object", "properties": {"expression": {"type": "string"}},
            "required": ["expression"], "additionalProperties": false});
        let count =
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let text = ArgumentSource::Text;
        for (args, schema, expected) in [
            (json!(42), &calc, json!({"expression": "42"})),
            (json!(true), &calc, json!({"expression": "true"})),
            (
                json!("{\"expression\": \"1\"}"),
                &calc,
                json!({"expression": "1"}),
            ),
            (json!("{\"x\": \"1\"}"), &calc, json!({"expression": "1"})),
            (
                json!("{\"x\": 1, \"y\": 2}"),
                &calc,
                json!({"expression": "{\"x\": 1, \"y\": 2}"}),
            ),
            (json!({"query": "1+1"}), &calc, json!({"expression": "1+1"})),
            (json!({"query": 5}), &calc, json!({"query": 5})),
            (json!("  "), &calc, json!({})),
            (json!(" 7 "), &count, json!({"n": 7})),
            (json!(7.5), &count, json!(7.5)),
            (json!("seven"), &count, json!("seven")),
        ] {
            assert_eq!(
                prepare_arguments(args.clone(), schema, text),
                Ok(expected),
                "{args}"
            );
        }
    }

    #[test]
    fn native_string_arguments_must_be_json_objects() {
        let schema = json!({"type": "object"});
        assert_eq!(
            prepare_arguments(json!("{\"a\": 1}"), &schema, ArgumentSource::Native),
            Ok(json!({"a": 1}))
        );
        assert!(prepare_arguments(json!("{oops"), &schema, ArgumentSource::Native).is_err());
        assert_eq!(
            prepare_arguments(json!("[1]"), &schema, ArgumentSource::Native),
            Err("got [1]".into())
        );
    }
}
