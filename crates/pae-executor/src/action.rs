//! The text-JSON action parser: reads one action (a tool call or the final
//! answer) out of a model's free-text reply.
//!
//! The agent asks for exactly one fenced JSON object per turn,
//! `{"action": <tool name or "Final Answer">, "action_input": <arguments>}`,
//! but small models drift from that, so the parser accepts, in this order:
//!
//! 1. **Fenced blocks** (```` ``` ````, with or without a language tag in any
//!    case: `json`, `JSON`, none; the tag may touch the brace). The first
//!    block that holds a valid action wins; a block that is not JSON (a
//!    Python snippet, prose) is skipped. An unclosed fence runs to the end of
//!    the reply, so truncated JSON is an error rather than silently ignored.
//! 2. **Unfenced JSON**: the first `{` or `[` from which a JSON value that is
//!    an action parses. Trailing prose after it is ignored.
//! 3. **ReAct lines**: `Action: <tool>` with an optional `Action Input: ...`
//!    line, or a `Final Answer: ...` line.
//!
//! Inside JSON the parser is a real JSON parser, so braces and escaped quotes
//! in strings are safe. Raw newlines and tabs inside strings, which models
//! often write, are accepted. A list of actions yields its first element. The
//! action name `Final Answer` is matched ignoring case, spaces, `_` and `-`
//! (`final answer`, `final_answer`). A tool action without `action_input`
//! gets `{}`; a final answer without one is an error. Besides
//! `action`/`action_input`, the OpenAI-style `{"name": ..., "arguments": ...}`
//! shape that models trained on native tool calls write as text is accepted.
//!
//! **Plain text without any JSON is not an action**: the parser returns
//! [`ActionParseError::NoAction`] and the agent feeds that back to the model
//! (unless it is configured to take plain text as the answer; see
//! `AgentExecutorBuilder::with_plain_text_answers`). A reply that states
//! its answer with an explicit `Final Answer:` line is an answer.
//!
//! Work is bounded: at most [`MAX_CANDIDATES`] fenced blocks and as many JSON
//! start positions are tried, so a hostile reply costs linear time.

use serde_json::{Map, Value};

/// The action name that ends a step, as the prompt spells it.
pub const FINAL_ANSWER: &str = "Final Answer";

/// How many fenced blocks, and separately how many unfenced JSON start
/// positions, the parser tries at most.
pub const MAX_CANDIDATES: usize = 32;

/// What a model's reply asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call a tool.
    Tool {
        /// The tool's name, as the model wrote it (trimmed).
        name: String,
        /// The arguments (`{}` when the model gave none).
        input: Value,
    },
    /// End the step with this answer (any JSON value).
    Final {
        /// The answer.
        answer: Value,
    },
}

/// Why a reply holds no usable action. The message is written to be shown
/// to the model so it can correct itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionParseError {
    /// The reply is empty or only whitespace.
    #[error("the reply is empty")]
    Empty,
    /// The reply has no JSON action, no `Action:` line and no `Final
    /// Answer:` line: plain text.
    #[error("the reply contains no action (no JSON blob with an \"action\" key)")]
    NoAction,
    /// Something that looks like the action is not valid JSON (for example
    /// it is cut off).
    #[error("the action is not valid JSON: {message}")]
    InvalidJson {
        /// The JSON parser's message.
        message: String,
    },
    /// Valid JSON that is not an action (no `action` key, an empty list, a
    /// final answer without `action_input`, ...).
    #[error("the JSON is not a valid action: {message}")]
    NotAnAction {
        /// What is missing or wrong.
        message: String,
    },
}

/// Whether `name` means the final answer: `Final Answer` ignoring case,
/// whitespace, `_` and `-`.
pub fn is_final_answer(name: &str) -> bool {
    let mut normalized = name
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase);
    "finalanswer".chars().all(|c| normalized.next() == Some(c)) && normalized.next().is_none()
}

/// Parses one action out of a model's reply.
///
/// # Errors
/// An [`ActionParseError`] saying why the reply holds no usable action; when
/// several candidates failed, the error of the first one that looked like an
/// attempted action.
///
/// # Example
/// ```
/// use pae_executor::{parse_action, Action};
/// use serde_json::json;
///
/// let reply = "Thought: add them\nAction:\n```JSON\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"2+2\"}}\n```";
/// assert_eq!(parse_action(reply).unwrap(), Action::Tool {
///     name: "calculator".into(),
///     input: json!({"expression": "2+2"}),
/// });
/// ```
pub fn parse_action(text: &str) -> Result<Action, ActionParseError> {
    if text.trim().is_empty() {
        return Err(ActionParseError::Empty);
    }
    let mut first_error: Option<ActionParseError> = None;

    for (tag, block) in fenced_blocks(text).take(MAX_CANDIDATES) {
        let body = block.trim();
        let looks_like_json =
            body.starts_with('{') || body.starts_with('[') || tag.eq_ignore_ascii_case("json");
        if !looks_like_json || body.is_empty() {
            continue;
        }
        match parse_json_prefix(body) {
            Ok(value) => match action_from_value(value) {
                Ok(action) => return Ok(action),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            },
            Err(message) => {
                first_error.get_or_insert(ActionParseError::InvalidJson { message });
            }
        }
    }

    let starts = text
        .char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .map(|(i, _)| i)
        .take(MAX_CANDIDATES);
    for start in starts {
        let candidate = &text[start..];
        // Only candidates that mention an action count as attempts: prose
        // may contain braces ("the set {1, 2}") without meaning anything.
        let attempted = mentions_action(candidate);
        match parse_json_prefix(candidate) {
            Ok(value) => match action_from_value(value) {
                Ok(action) => return Ok(action),
                Err(e) if attempted => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {}
            },
            Err(message) if attempted => {
                first_error.get_or_insert(ActionParseError::InvalidJson { message });
            }
            Err(_) => {}
        }
    }

    if let Some(error) = first_error {
        return Err(error);
    }
    react_action(text).unwrap_or(Err(ActionParseError::NoAction))
}

/// The language tags and bodies of fenced blocks, in order: the text
/// between an opening ```` ``` ```` (minus its tag) and the next
/// ```` ``` ````, or the end of the text when the fence is never closed.
fn fenced_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = rest.find("```")?;
        let after = &rest[open + 3..];
        let (inner, next) = match after.find("```") {
            Some(close) => (&after[..close], &after[close + 3..]),
            None => (after, ""),
        };
        rest = next;
        Some(strip_fence_tag(inner))
    })
}

/// Splits a leading language tag (`json`, `JSON`, `json5`, ...) from a
/// fenced block's inner text. The tag may be followed by a newline, spaces
/// or the JSON itself (```` ```json{...}``` ````).
fn strip_fence_tag(inner: &str) -> (&str, &str) {
    let trimmed = inner.trim_start_matches([' ', '\t']);
    let tag_len = trimmed
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.')))
        .map_or(trimmed.len(), |(i, _)| i);
    trimmed.split_at(tag_len)
}

/// Whether the text (from a candidate start) names an action key within its
/// first few hundred bytes.
fn mentions_action(candidate: &str) -> bool {
    let end = floor_char_boundary(candidate, 400);
    let head = candidate[..end].to_ascii_lowercase();
    head.contains("\"action\"") || (head.contains("\"name\"") && head.contains("\"arguments\""))
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Parses the JSON value at the start of `text`, ignoring whatever follows
/// it. Raw control characters inside strings are escaped and the parse is
/// retried, as models often put literal newlines in strings.
fn parse_json_prefix(text: &str) -> Result<Value, String> {
    match first_value(text) {
        Ok(value) => Ok(value),
        Err(error) => {
            // Small models' usual slips: raw newlines in strings, trailing
            // commas, Python literals and single quotes. Repair them and try
            // once more; report the original error if that fails too.
            let repaired = repair_json(text);
            if repaired != text
                && let Ok(value) = first_value(&repaired)
            {
                return Ok(value);
            }
            Err(error)
        }
    }
}

fn first_value(text: &str) -> Result<Value, String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match values.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(String::from("no JSON value")),
    }
}

/// Repairs common near-JSON: escapes raw control characters inside
/// strings, drops trailing commas before `}` and `]`, turns Python's
/// `True`/`False`/`None` into JSON literals, and, when the text has no
/// double quote at all, reads single-quoted strings as JSON strings.
fn repair_json(text: &str) -> String {
    let single_quoted = !text.contains('"') && text.contains('\'');
    let mut out = String::with_capacity(text.len() + 16);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                c if c == q => {
                    quote = None;
                    out.push('"');
                }
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c => out.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quote = Some('"');
                out.push('"');
            }
            '\'' if single_quoted => {
                quote = Some('\'');
                out.push('"');
            }
            ',' => {
                let rest = text[i + 1..].trim_start();
                if !(rest.starts_with('}') || rest.starts_with(']')) {
                    out.push(',');
                }
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(match &text[start..end] {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    word => word,
                });
            }
            c => out.push(c),
        }
    }
    out
}

/// Looks a key up exactly, then ignoring ASCII case.
fn get_key<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    for name in names {
        if let Some(v) = object.get(*name) {
            return Some(v);
        }
    }
    object.iter().find_map(|(k, v)| {
        names
            .iter()
            .any(|name| k.eq_ignore_ascii_case(name))
            .then_some(v)
    })
}

const INPUT_KEYS: &[&str] = &[
    "action_input",
    "actionInput",
    "action input",
    "action-input",
    "input",
    "arguments",
    "args",
    "tool_input",
    "parameters",
];

/// Reads an action out of a decoded JSON value.
fn action_from_value(value: Value) -> Result<Action, ActionParseError> {
    let value = match value {
        Value::Array(items) => match items.into_iter().next() {
            Some(first) => first,
            None => {
                return Err(ActionParseError::NotAnAction {
                    message: String::from("the list of actions is empty"),
                });
            }
        },
        other => other,
    };
    let Value::Object(object) = value else {
        return Err(ActionParseError::NotAnAction {
            message: String::from(
                "expected a JSON object with the keys \"action\" and \"action_input\"",
            ),
        });
    };
    let name_value = get_key(&object, &["action", "tool", "tool_name"]).or_else(|| {
        // {"name": ..., "arguments": ...}: a native tool call written as text.
        get_key(&object, &["arguments", "parameters"]).and_then(|_| get_key(&object, &["name"]))
    });
    let Some(name_value) = name_value else {
        return Err(ActionParseError::NotAnAction {
            message: String::from("the JSON object has no \"action\" key"),
        });
    };
    let Value::String(name) = name_value else {
        return Err(ActionParseError::NotAnAction {
            message: format!("\"action\" must be a string naming a tool, not {name_value}"),
        });
    };
    let name = name.trim();
    let input = get_key(&object, INPUT_KEYS).cloned();
    if is_final_answer(name) {
        return match input {
            Some(answer) => Ok(Action::Final { answer }),
            None => Err(ActionParseError::NotAnAction {
                message: String::from(
                    "a \"Final Answer\" action needs the answer in \"action_input\"",
                ),
            }),
        };
    }
    if name.is_empty() {
        return Err(ActionParseError::NotAnAction {
            message: String::from("\"action\" is empty"),
        });
    }
    Ok(Action::Tool {
        name: name.to_owned(),
        input: input.unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// Strips markdown emphasis and whitespace around a line's label.
fn line_label<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let line = line.trim_start().trim_start_matches(['*', '_', '#', ' ']);
    let head = line.get(..label.len())?;
    if !head.eq_ignore_ascii_case(label) {
        return None;
    }
    let rest = &line[label.len()..];
    let rest = rest.trim_start_matches(['*', '_']);
    rest.strip_prefix(':')
        .map(|r| r.trim_start_matches(['*', '_']).trim())
}

/// The ReAct convention: `Action: tool` (+ `Action Input: ...`) or `Final
/// Answer: ...`, whichever comes first. `None` when neither is present.
fn react_action(text: &str) -> Option<Result<Action, ActionParseError>> {
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        if let Some(answer) = line_label(line, "final answer") {
            // The answer runs to the end of the reply.
            let rest: Vec<&str> = text.lines().skip(index + 1).collect();
            let mut answer = answer.to_owned();
            if !rest.is_empty() {
                if !answer.is_empty() {
                    answer.push('\n');
                }
                answer.push_str(&rest.join("\n"));
            }
            let answer = answer.trim();
            if answer.is_empty() {
                return Some(Err(ActionParseError::NotAnAction {
                    message: String::from("\"Final Answer:\" is followed by no answer"),
                }));
            }
            return Some(Ok(Action::Final {
                answer: Value::String(answer.to_owned()),
            }));
        }
        if line_label(line, "action input").is_some() {
            continue;
        }
        let Some(name) = line_label(line, "action") else {
            continue;
        };
        let name = name.trim_matches(['`', '"', '\'']).trim();
        if name.is_empty() || name.starts_with('{') || name.starts_with('[') {
            continue;
        }
        let input = lines
            .next()
            .and_then(|(_, next)| line_label(next, "action input"))
            .map(str::to_owned);
        let input = match input {
            None => Value::Object(Map::new()),
            Some(raw) if raw.starts_with('{') || raw.starts_with('[') => {
                match parse_json_prefix(&raw) {
                    Ok(value) => value,
                    Err(message) => return Some(Err(ActionParseError::InvalidJson { message })),
                }
            }
            Some(raw) => Value::String(raw.trim_matches('"').to_owned()),
        };
        if is_final_answer(name) {
            return Some(Ok(Action::Final { answer: input }));
        }
        return Some(Ok(Action::Tool {
            name: name.to_owned(),
            input,
        }));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn final_answer_names() {
        for yes in [
            "Final Answer",
            "final answer",
            "FINAL_ANSWER",
            "final-answer",
            " Final  Answer ",
        ] {
            assert!(is_final_answer(yes), "{yes:?}");
        }
        for no in ["Final", "answer", "final answers", "", "calculator"] {
            assert!(!is_final_answer(no), "{no:?}");
        }
    }

    #[test]
    fn control_characters_are_escaped_only_inside_strings() {
        let raw = "{\"a\": \"line1\nline2\t\u{1}\",\n\"b\": 1}";
        let escaped = repair_json(raw);
        assert_eq!(escaped, "{\"a\": \"line1\\nline2\\t\\u0001\",\n\"b\": 1}");
        assert_eq!(
            parse_json_prefix(raw).unwrap(),
            json!({"a": "line1\nline2\t\u{1}", "b": 1})
        );
    }

    #[test]
    fn near_json_is_repaired() {
        let cases = [
            (
                "{\"a\": [1, 2,], \"b\": {\"c\": 3,},}",
                json!({"a": [1, 2], "b": {"c": 3}}),
            ),
            (
                "{'action': 'calculator', 'action_input': {'x': 'it is \"ok\"'}}",
                json!(null),
            ),
            (
                "{'action': 'calculator', 'action_input': {'expression': '1+1'}}",
                json!({"action": "calculator", "action_input": {"expression": "1+1"}}),
            ),
            (
                "{\"ok\": True, \"no\": False, \"none\": None, \"s\": \"True, None,\"}",
                json!({"ok": true, "no": false, "none": null, "s": "True, None,"}),
            ),
        ];
        for (text, expected) in cases {
            match parse_json_prefix(text) {
                Ok(value) => assert_eq!(value, expected, "{text}"),
                // Mixed quotes are not guessed at.
                Err(_) => assert!(expected.is_null(), "{text}"),
            }
        }
        // Commas inside strings and words that merely contain a literal stay.
        assert_eq!(
            repair_json("{\"a\": \",}\", \"Nonesuch\": 1}"),
            "{\"a\": \",}\", \"Nonesuch\": 1}"
        );
    }

    #[test]
    fn fence_tags_are_stripped() {
        assert_eq!(strip_fence_tag("json\n{}"), ("json", "\n{}"));
        assert_eq!(strip_fence_tag("JSON{}"), ("JSON", "{}"));
        assert_eq!(strip_fence_tag(" json {}"), ("json", " {}"));
        assert_eq!(strip_fence_tag("\n{}"), ("", "\n{}"));
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        let blocks: Vec<(&str, &str)> =
            fenced_blocks("a ```json\n{\"x\": 1} ``` b ```\n[1").collect();
        assert_eq!(blocks, vec![("json", "\n{\"x\": 1} "), ("", "\n[1")]);
    }

    #[test]
    fn react_lines() {
        assert_eq!(
            parse_action("Thought: x\nAction: calculator\nAction Input: {\"expression\": \"1+1\"}"),
            Ok(Action::Tool {
                name: "calculator".into(),
                input: json!({"expression": "1+1"})
            })
        );
        assert_eq!(
            parse_action("**Final Answer:** 42\nbecause"),
            Ok(Action::Final {
                answer: json!("42\nbecause")
            })
        );
    }
}
