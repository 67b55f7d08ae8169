//! Finding the JSON value in a planner's or replanner's reply, with the
//! pieces of [`pae_core::output`]: the whole reply, a JSON fence, or a value
//! after some prose, each also read as repaired near-JSON. A leaf module
//! (it uses only [`crate::noise`]).

// Mixed quotes (`{'id': '1', 'description': "it's"}`) are read: a plan is
// validated before anything runs.
use pae_core::output::{fenced_blocks, first_json_value, repair_near_json};
use serde_json::Value;

use crate::noise::strip_noise;

/// How many `{` / `[` positions are tried when the JSON is embedded in prose.
const MAX_EMBEDDED_STARTS: usize = 8;

/// Fence tags under which a block is read as JSON (also repaired).
const JSON_FENCE_TAGS: [&str; 7] = ["", "json", "json5", "jsonc", "javascript", "js", "text"];

/// Whether a fence's tag says JSON. Any other tag (`python`, `yaml`,
/// `JSON5`...) is not JSON we repair.
fn is_json_tag(tag: &str) -> bool {
    JSON_FENCE_TAGS.contains(&tag) || tag.eq_ignore_ascii_case("json")
}

/// The first JSON value in `text`: the whole text, the inside of a markdown
/// fence, or the first value that starts at a `{` or `[` after some prose.
/// A reasoning block and leaked chat-template tokens are dropped first. A
/// reply (or JSON fence) that starts with `{` or `[` is also read as
/// repaired near-JSON ([`repair_near_json`]); inside prose, only an object
/// is read repaired, so code (`headers['x']`) is not mistaken for a plan.
///
/// # Errors
/// Why no JSON could be read, in words a model can act on.
pub(crate) fn extract_json(text: &str) -> Result<Value, String> {
    let cleaned = strip_noise(text);
    let trimmed = cleaned.trim().trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err("the reply is empty; a JSON object was expected".into());
    }
    let first_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return Ok(value),
        Err(e) => e.to_string(),
    };
    let fenced = fenced_blocks(trimmed)
        .next()
        .filter(|block| is_json_tag(block.tag));
    for candidate in fenced
        .map(|block| block.body)
        .into_iter()
        .chain(std::iter::once(trimmed))
    {
        let candidate = candidate.trim();
        if candidate.starts_with(['{', '[']) {
            // The JSON is there, perhaps broken; a value inside it (one
            // step) is not the answer.
            match first_json_value(candidate).or_else(|error| {
                let value = first_json_value(&repair_near_json(candidate))?;
                repaired(&error);
                Ok::<_, String>(value)
            }) {
                Ok(value) => return Ok(value),
                Err(_) => continue,
            }
        }
        let starts = candidate
            .char_indices()
            .filter(|&(_, c)| c == '{' || c == '[')
            .map(|(i, _)| i)
            .take(MAX_EMBEDDED_STARTS);
        for start in starts {
            let rest = &candidate[start..];
            // Repaired, only an object: `headers['x']` in code is no plan.
            let repair = || {
                let value = first_json_value(&repair_near_json(rest))
                    .ok()
                    .filter(Value::is_object)?;
                repaired(&first_error);
                Some(value)
            };
            if let Some(value) = first_json_value(rest).ok().or_else(repair) {
                return Ok(value);
            }
        }
    }
    Err(format!("the reply is not valid JSON ({first_error})"))
}

/// Reports a plan read only after its near-JSON was repaired.
fn repaired(error: &str) {
    pae_core::telemetry::repaired(
        pae_core::RepairKind::NearJson,
        format!("the plan's JSON did not parse ({error}) and was read after repair"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_json_is_repaired() {
        let repaired = |s: &str| serde_json::from_str::<Value>(&repair_near_json(s)).unwrap();
        assert_eq!(
            repaired("{'a': 'it\\'s \"x\"', b: [1, 2,], 'c': None, d: True,} // done"),
            serde_json::json!({"a": "it's \"x\"", "b": [1, 2], "c": null, "d": true})
        );
        assert_eq!(
            repaired("[\"line\nbreak\", /* note */ 1e5]"),
            serde_json::json!(["line\nbreak", 1e5])
        );
        let valid = r#"{"steps": [{"id": "1", "description": "a, b // not a comment"}]}"#;
        assert_eq!(repair_near_json(valid), valid);
    }

    #[test]
    fn json_is_found_in_fences_and_after_prose() {
        let value = serde_json::json!({"steps": ["a"]});
        for text in [
            "{\"steps\": [\"a\"]}",
            "Plan:\n```json\n{'steps': ['a'],}\n```",
            "Here it is: {steps: ['a']} hope it helps",
            "<think>{\"steps\": []}</think>{\"steps\": [\"a\"]}",
        ] {
            assert_eq!(extract_json(text), Ok(value.clone()), "{text:?}");
        }
        // A fence tagged with another language is not repaired as JSON.
        assert!(extract_json("```python\nheaders['x']\n```").is_err());
    }
}
