//! The text-JSON action parser: reads one action (a tool call or the final
//! answer) out of a model's free-text reply.
//!
//! The agent asks for exactly one fenced JSON object per turn,
//! `{"action": <tool name or "Final Answer">, "action_input": <arguments>}`,
//! but small models drift from that. Reasoning models' thoughts
//! (`<think>...</think>`, also when the opening tag was in the prompt or
//! the reply was cut inside them) are dropped first, as drafts of actions
//! in there are not actions. Then the parser accepts, in this order:
//!
//! 1. **Fenced blocks** (```` ``` ```` or longer runs, with or without a
//!    language tag in any case: `json`, `JSON`, none; the tag may touch the
//!    brace). The first block that holds a valid action wins; a block that
//!    is not JSON (a Python snippet, prose) is skipped. An unclosed fence
//!    runs to the end of the reply, so truncated JSON is an error rather
//!    than silently ignored; a closed block one or two closing brackets
//!    short gets them.
//! 2. **Unfenced JSON**: the first `{` or `[` from which a JSON value that is
//!    an action parses (`<tool_call>` tags, `[TOOL_CALLS]` and other
//!    wrappers around it are thus skipped). Trailing prose after it is
//!    ignored.
//! 3. **ReAct lines**: `Action: <tool>` with an optional `Action Input: ...`
//!    (or `action_input:`, on the next non-blank line; JSON may span lines
//!    or sit in a fence), `Action: tool[input]`, or a `Final Answer: ...`
//!    line. After a JSON candidate failed, only an explicit one counts (a
//!    `Final Answer:` line, or an action with its input).
//!
//! Inside JSON the parser is a real JSON parser, so braces and escaped quotes
//! in strings are safe. Near-JSON that models write is repaired before
//! giving up: raw newlines and tabs in strings, trailing commas, `//` and
//! `/* */` comments, bare keys, single or typographic quotes, Python's
//! `True`/`False`/`None`, and backslashes that escape nothing (`C:\Users`).
//! A list of actions yields its first element. The action name
//! `Final Answer` is matched ignoring case, spaces, `_`, `-` and a trailing
//! colon (`final answer`, `final_answer`, `FINAL ANSWER`). A tool action
//! without `action_input` gets `{}`; a final answer without one is an
//! error. Besides `action`/`action_input` (and `tool`/`tool_input`), the
//! OpenAI-style `{"name": ..., "arguments": ...}` shape that models trained
//! on native tool calls write as text is accepted, with `arguments` as an
//! object or as JSON text, also inside `{"function": ...}` or
//! `{"tool_calls": [...]}`; a call to a `final_answer` function with one
//! argument answers with that argument. `{"final_answer": ...}` is an
//! answer too.
//!
//! **Plain text without any JSON is not an action**: the parser returns
//! [`ActionParseError::NoAction`] and the agent feeds that back to the model
//! (unless it is configured to take plain text as the answer; see
//! `AgentExecutorBuilder::with_plain_text_answers`). A reply that states
//! its answer with an explicit `Final Answer:` line is an answer.
//!
//! Work is bounded: at most [`MAX_CANDIDATES`] fenced blocks, and the first
//! [`MAX_CANDIDATES`] JSON start positions plus at most as many more found
//! next to action-like keys, are tried, so a hostile reply costs linear
//! time while a long reply full of braces still has its action found.

use pae_core::output::{
    QuotePolicy, close_json_brackets, fenced_blocks, first_json_value, repair_near_json_with,
};
use serde_json::{Map, Value};

/// The action name that ends a step, as the prompt spells it.
pub const FINAL_ANSWER: &str = "Final Answer";

/// How many fenced blocks the parser tries at most; also how many unfenced
/// JSON start positions it tries from the reply's start, and how many more
/// next to action-like keys further on.
pub(crate) const MAX_CANDIDATES: usize = 32;

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
/// whitespace, `_` and `-`, and a trailing `:` or `.` (`Final Answer:`).
pub fn is_final_answer(name: &str) -> bool {
    const WORDS: &[u8] = b"finalanswer";
    let name = name.trim().trim_end_matches([':', '.']);
    if name.is_ascii() {
        // Every action name is checked: no Unicode lowercasing for ASCII.
        let mut letters = name
            .bytes()
            .filter(|&b| !char::from(b).is_whitespace() && b != b'_' && b != b'-')
            .map(|b| b.to_ascii_lowercase());
        return WORDS.iter().all(|&c| letters.next() == Some(c)) && letters.next().is_none();
    }
    let mut normalized = name
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase);
    WORDS
        .iter()
        .all(|&c| normalized.next() == Some(char::from(c)))
        && normalized.next().is_none()
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
    let visible = strip_reasoning(text);
    let text = visible.as_ref();
    if text.trim().is_empty() {
        return Err(ActionParseError::Empty);
    }
    let mut first_error: Option<ActionParseError> = None;

    for block in fenced_blocks(text).take(MAX_CANDIDATES) {
        let body = block.body.trim();
        let looks_like_json = body.starts_with('{')
            || body.starts_with('[')
            || block.tag.eq_ignore_ascii_case("json");
        if !looks_like_json || body.is_empty() {
            continue;
        }
        if let Some(action) = canonical_action(body) {
            return Ok(action);
        }
        let parsed = parse_json_prefix(body).or_else(|error| {
            // A closed block is the whole value: a missing closing brace or
            // two (small models miscount them) can be supplied.
            let value = block
                .closed
                .then(|| close_json_brackets(&repair_json(body)))
                .flatten()
                .and_then(|closed| first_json_value(&closed).ok())
                .ok_or(error)?;
            pae_core::telemetry::repaired(
                pae_core::RepairKind::NearJson,
                "an action missing closing brackets was read after they were supplied",
            );
            Ok(value)
        });
        match parsed {
            Ok(value) => match action_from_value(value, 0) {
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

    for start in candidate_starts(text) {
        let candidate = &text[start..];
        // Only candidates that mention an action count as attempts: prose
        // may contain braces ("the set {1, 2}") without meaning anything.
        if let Some(action) = canonical_action(candidate) {
            return Ok(action);
        }
        let attempted = mentions_action(candidate);
        match parse_json_prefix(candidate) {
            Ok(value) => match action_from_value(value, 0) {
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

    // ReAct lines. After a failed JSON attempt only an explicit one counts
    // (a `Final Answer:` line, or `Action:` with its input): a bare
    // `Action: tool` line next to broken JSON is the same broken action.
    match react_action(text) {
        Some(Ok(found)) if found.explicit || first_error.is_none() => Ok(found.action),
        Some(Err(e)) if first_error.is_none() => Err(e),
        _ => Err(first_error.unwrap_or(ActionParseError::NoAction)),
    }
}

/// The reply without reasoning models' thoughts: drafts of actions in
/// there are not actions (see [`pae_core::output::strip_reasoning`]).
pub(crate) use pae_core::output::strip_reasoning;

/// Keys whose presence near a brace makes it worth parsing from there.
const ACTION_KEYS: &[&str] = &[
    "\"action",
    "'action",
    "\u{201c}action",
    "\"name\"",
    "\"tool",
];

/// Where unfenced JSON may start: the first [`MAX_CANDIDATES`] braces and
/// brackets, plus, so a long reply full of braces (LaTeX, code) still has
/// its action found, the last `{` before each of the first
/// [`MAX_CANDIDATES`] action-like keys. In order, without repeats.
fn candidate_starts(text: &str) -> Vec<usize> {
    let mut starts: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .map(|(i, _)| i)
        .take(MAX_CANDIDATES)
        .collect();
    let last_scanned = starts.last().copied().unwrap_or(0);
    if starts.len() == MAX_CANDIDATES {
        let lower = text.to_ascii_lowercase();
        let mut keys: Vec<usize> = ACTION_KEYS
            .iter()
            .flat_map(|key| lower.match_indices(key).map(|(i, _)| i))
            .filter(|i| *i > last_scanned)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys.into_iter().take(MAX_CANDIDATES) {
            let from = key.saturating_sub(400);
            let from = (from..=key)
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(key);
            if let Some(brace) = text[from..key].rfind('{') {
                starts.push(from + brace);
            }
        }
        starts.sort_unstable();
        starts.dedup();
    }
    starts
}

/// Whether the text (from a candidate start) names an action key within its
/// first few hundred bytes.
fn mentions_action(candidate: &str) -> bool {
    let end = floor_char_boundary(candidate, 400);
    let head = candidate[..end].to_ascii_lowercase();
    head.contains("\"action\"")
        || head.contains("'action'")
        || (head.contains("\"name\"") && head.contains("\"arguments\""))
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
/// it. Near-JSON (see [`repair_json`]) is repaired within the value and the
/// parse retried ([`pae_core::output::parse_json_prefix`]); the original
/// error is reported if that fails too.
fn parse_json_prefix(text: &str) -> Result<Value, String> {
    pae_core::output::parse_json_prefix(text, QuotePolicy::Uniform)
}

/// Repairs common near-JSON (see [`repair_near_json_with`]), reading
/// single-quoted or typographic-quoted (`“...”`) strings only when the text
/// has no straight double quote at all.
///
/// The planner reads mixed quotes (`{'a': "it's"}`); the executor does not
/// guess at them ([`QuotePolicy::Uniform`]): an action is run, so a reply
/// whose quoting is ambiguous goes back to the model as invalid JSON rather
/// than being read one way, and an apostrophe in a reply that uses `"`
/// never opens a string.
fn repair_json(text: &str) -> String {
    repair_near_json_with(text, QuotePolicy::Uniform)
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

/// How deep wrappers (`{"function": {...}}`, `{"tool_calls": [...]}`) are
/// unwrapped.
const MAX_WRAPPERS: usize = 3;

/// Reads an action out of a decoded JSON value.
fn action_from_value(value: Value, depth: usize) -> Result<Action, ActionParseError> {
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
    let Value::Object(mut object) = value else {
        return Err(ActionParseError::NotAnAction {
            message: String::from(
                "expected a JSON object with the keys \"action\" and \"action_input\"",
            ),
        });
    };
    let action_key = key_of(&object, &["action", "tool", "tool_name"]);
    // {"name": ..., "arguments": ...}: a native tool call written as text.
    let call_key =
        key_of(&object, &["arguments", "parameters"]).and_then(|_| key_of(&object, &["name"]));
    let is_call = action_key.is_none() && call_key.is_some();
    let Some(name_key) = action_key.or(call_key) else {
        return unwrapped_action(&object, depth);
    };
    let name_text = match object.get(name_key.as_str()) {
        Some(Value::String(name)) => name.trim().to_owned(),
        Some(other) => {
            return Err(ActionParseError::NotAnAction {
                message: format!("\"action\" must be a string naming a tool, not {other}"),
            });
        }
        None => String::new(),
    };
    let name = name_text.as_str();
    // The input is moved out of the object, not copied.
    let mut input = key_of(&object, INPUT_KEYS).and_then(|key| object.remove(key.as_str()));
    if is_call {
        // OpenAI's wire format sends the arguments as JSON text.
        if let Some(Value::String(text)) = &input
            && let Ok(decoded @ Value::Object(_)) = serde_json::from_str::<Value>(text)
        {
            input = Some(decoded);
        }
        // A call to a "final_answer" function carries the answer as its
        // only argument.
        if is_final_answer(name)
            && let Some(Value::Object(arguments)) = &input
            && arguments.len() == 1
        {
            input = arguments.values().next().cloned();
        }
    }
    named_action(name_text, input)
}

/// The action named `name` (trimmed) with its input, if it has one.
fn named_action(name: String, input: Option<Value>) -> Result<Action, ActionParseError> {
    if is_final_answer(&name) {
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
        name,
        input: input.unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// An action written exactly as the prompt asks: a JSON object with the
/// keys `action` (a string) and `action_input`, each once, and no other.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Canonical {
    action: String,
    action_input: Value,
}

/// The action at the start of `text` when it is written exactly as the
/// prompt asks ([`Canonical`]) and is valid: what [`action_from_value`]
/// makes of such an object, read straight into its parts rather than
/// through a map that is then searched for every spelling of every key.
/// `None` for anything else (an invalid action included), which the
/// general path reads and reports.
fn canonical_action(text: &str) -> Option<Action> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Canonical>();
    let Canonical {
        action,
        action_input,
    } = values.next()?.ok()?;
    let trimmed = action.trim();
    let name = if trimmed.len() == action.len() {
        action
    } else {
        trimmed.to_owned()
    };
    named_action(name, Some(action_input)).ok()
}

/// A key found in an object: one of the names asked for, or the object's
/// own spelling of one (another case).
enum Key<'n> {
    Named(&'n str),
    Spelled(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::Spelled(key) => key,
        }
    }
}

/// The key under which [`get_key`] finds a value.
fn key_of<'n>(object: &Map<String, Value>, names: &[&'n str]) -> Option<Key<'n>> {
    if let Some(name) = names.iter().find(|name| object.contains_key(**name)) {
        return Some(Key::Named(name));
    }
    object
        .keys()
        .find(|k| names.iter().any(|name| k.eq_ignore_ascii_case(name)))
        .map(|k| Key::Spelled(k.clone()))
}

/// An object without an action key: `{"final_answer": ...}`, or a wrapper
/// around a call (`{"function": {...}}`, `{"tool_calls": [...]}`).
fn unwrapped_action(object: &Map<String, Value>, depth: usize) -> Result<Action, ActionParseError> {
    let no_action = || ActionParseError::NotAnAction {
        message: String::from("the JSON object has no \"action\" key"),
    };
    if let Some((_, answer)) = object.iter().find(|(key, _)| is_final_answer(key)) {
        return Ok(Action::Final {
            answer: answer.clone(),
        });
    }
    if depth >= MAX_WRAPPERS {
        return Err(no_action());
    }
    for key in ["function", "function_call", "tool_call", "tool_calls"] {
        if let Some(inner @ (Value::Object(_) | Value::Array(_))) = get_key(object, &[key]) {
            return action_from_value(inner.clone(), depth + 1).map_err(|_| no_action());
        }
    }
    Err(no_action())
}

/// The byte offset, within `line`, of what follows `label:` at the line's
/// start (markdown emphasis and heading marks around the label allowed).
fn label_end(line: &str, label: &str) -> Option<usize> {
    let start = line.len()
        - line
            .trim_start()
            .trim_start_matches(['*', '_', '#', ' '])
            .len();
    let head = line.get(start..start + label.len())?;
    if !head.eq_ignore_ascii_case(label) {
        return None;
    }
    let rest = &line[start + label.len()..];
    let rest = rest.trim_start_matches(['*', '_']);
    let rest = rest.strip_prefix(':')?;
    let rest = rest.trim_start_matches(['*', '_']);
    Some(line.len() - rest.len())
}

/// Where an `Action Input:` (or YAML-style `action_input:`) label ends.
fn input_label_end(line: &str) -> Option<usize> {
    label_end(line, "action input").or_else(|| label_end(line, "action_input"))
}

/// What follows `label:` on the line, trimmed.
fn line_label<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    label_end(line, label).map(|end| line[end..].trim())
}

/// An action read from ReAct lines, and whether it was explicit (a `Final
/// Answer:` line, or an `Action:` line with its input).
struct ReactAction {
    action: Action,
    explicit: bool,
}

/// The ReAct convention: `Action: tool` (+ `Action Input: ...`, possibly on
/// the following lines, or `Action: tool[input]`) or `Final Answer: ...`,
/// whichever comes first. `None` when neither is present.
fn react_action(text: &str) -> Option<Result<ReactAction, ActionParseError>> {
    let mut offset = 0;
    let lines: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .map(|line| {
            let at = offset;
            offset += line.len();
            (at, line.trim_end_matches(['\n', '\r']))
        })
        .collect();
    for (index, &(at, line)) in lines.iter().enumerate() {
        if let Some(end) = label_end(line, "final answer") {
            // The answer runs to the end of the reply.
            let answer = text[at + end..].trim();
            if answer.is_empty() {
                return Some(Err(ActionParseError::NotAnAction {
                    message: String::from("\"Final Answer:\" is followed by no answer"),
                }));
            }
            return Some(Ok(ReactAction {
                action: Action::Final {
                    answer: Value::String(answer.to_owned()),
                },
                explicit: true,
            }));
        }
        if input_label_end(line).is_some() {
            continue;
        }
        let Some(name) = line_label(line, "action") else {
            continue;
        };
        let name = name.trim_matches(['`', '"', '\'']).trim();
        if name.is_empty() || name.starts_with('{') || name.starts_with('[') {
            continue;
        }
        let input_line = lines[index + 1..]
            .iter()
            .find(|(_, next)| !next.trim().is_empty())
            .and_then(|&(next_at, next)| input_label_end(next).map(|e| next_at + e));
        let final_answer = is_final_answer(name);
        let (name, input, explicit) = match input_line {
            Some(start) => match react_input(&text[start..], final_answer) {
                Ok(input) => (name, input, true),
                Err(e) => return Some(Err(e)),
            },
            None => match bracketed_input(name) {
                Some((tool, input)) => (tool, Value::String(input.to_owned()), true),
                None => (name, Value::Object(Map::new()), false),
            },
        };
        if final_answer {
            if !explicit {
                return Some(Err(ActionParseError::NotAnAction {
                    message: String::from(
                        "a \"Final Answer\" action needs the answer in \"Action Input:\"",
                    ),
                }));
            }
            return Some(Ok(ReactAction {
                action: Action::Final { answer: input },
                explicit,
            }));
        }
        return Some(Ok(ReactAction {
            action: Action::Tool {
                name: name.to_owned(),
                input,
            },
            explicit,
        }));
    }
    None
}

/// `tool[input]`, the original ReAct paper's form, split in two.
fn bracketed_input(name: &str) -> Option<(&str, &str)> {
    let inner = name.strip_suffix(']')?;
    let (tool, input) = inner.split_once('[')?;
    let tool = tool.trim();
    (!tool.is_empty() && !tool.contains(char::is_whitespace)).then_some((tool, input.trim()))
}

/// The value of an `Action Input:` that starts at `text`: JSON (on this
/// line or the next ones, fenced or not) or a bare string. A final answer's
/// bare string runs to the end of the reply; a tool's is one line.
fn react_input(text: &str, final_answer: bool) -> Result<Value, ActionParseError> {
    let trimmed = text.trim_start();
    let json_text = if trimmed.starts_with("```") {
        fenced_blocks(trimmed).next().map(|block| block.body.trim())
    } else {
        Some(trimmed)
    };
    if let Some(json_text) = json_text
        && (json_text.starts_with('{') || json_text.starts_with('['))
    {
        return parse_json_prefix(json_text)
            .map_err(|message| ActionParseError::InvalidJson { message });
    }
    let raw = match json_text {
        Some(body) if trimmed.starts_with("```") => body,
        _ if final_answer => trimmed.trim_end(),
        _ => trimmed.lines().next().unwrap_or("").trim(),
    };
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| raw.strip_prefix('`').and_then(|r| r.strip_suffix('`')))
        .unwrap_or(raw);
    if final_answer && raw.trim().is_empty() {
        return Err(ActionParseError::NotAnAction {
            message: String::from("\"Action Input:\" of the \"Final Answer\" is empty"),
        });
    }
    Ok(Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_canonical_shortcut_reads_what_the_general_path_reads() {
        for text in [
            r#"{"action": "calculator", "action_input": {"expression": "6 * 7"}}"#,
            r#"{"action": " calculator ", "action_input": "6*7"} trailing prose"#,
            r#"{"action": "Final Answer", "action_input": {"total": 42}}"#,
            r#"{"action": "final_answer", "action_input": null}"#,
        ] {
            let general = first_json_value(text)
                .map_err(|message| ActionParseError::InvalidJson { message })
                .and_then(|value| action_from_value(value, 0));
            assert_eq!(
                canonical_action(text).ok_or(()),
                general.map_err(|_| ()),
                "{text}"
            );
        }
        // Anything else is left to the general path.
        for text in [
            r#"{"action": "", "action_input": {}}"#,
            r#"{"action": "calculator"}"#,
            r#"{"Action": "calculator", "action_input": {}}"#,
            r#"{"action": "calculator", "action_input": {}, "thought": "x"}"#,
            r#"{"action": "a", "action": "b", "action_input": {}}"#,
            r#"{"action": 3, "action_input": {}}"#,
            r#"[{"action": "calculator", "action_input": {}}]"#,
            r#"{'action': 'calculator', 'action_input': {}}"#,
        ] {
            assert_eq!(canonical_action(text), None, "{text}");
        }
        assert_eq!(
            parse_action(
                r#"```json
{"action": "a", "action": "b", "action_input": {}}
```"#
            ),
            Ok(Action::Tool {
                name: "b".into(),
                input: json!({})
            })
        );
    }

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
        // The ASCII path and the Unicode one agree: a vertical tab is
        // whitespace to both, and a non-ASCII spelling still counts.
        assert!(is_final_answer("final\u{b}answer:"));
        assert!(is_final_answer("Final\u{a0}Answer"));
        assert!(!is_final_answer("final answer é"));
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
    fn comments_bare_keys_and_stray_backslashes_are_repaired() {
        assert_eq!(
            repair_json("{a: 1, // one\n /* two */ b_2: [1,], \"c\": \"x\\y\\\"\"}"),
            "{\"a\": 1, \n  \"b_2\": [1], \"c\": \"x\\\\y\\\"\"}"
        );
        // Inside strings nothing changes but the escapes.
        assert_eq!(
            repair_json("{\"u\": \"http://x/*y*/\"}"),
            "{\"u\": \"http://x/*y*/\"}"
        );
        assert_eq!(
            parse_json_prefix("{'a': 'it\\'s'} tail \"").unwrap(),
            json!({"a": "it's"})
        );
    }

    #[test]
    fn reasoning_is_stripped() {
        assert_eq!(strip_reasoning("no tags"), "no tags");
        assert_eq!(strip_reasoning("<think>a</think>b<think>c</think>d"), "bd");
        assert_eq!(strip_reasoning("draft</think> answer"), " answer");
        // Cut off inside the thoughts: they are dropped all the same.
        assert_eq!(strip_reasoning("x<thinking>y</thinking>z<think>open"), "xz");
        assert_eq!(strip_reasoning("a </think> b </think> c"), " b </think> c");
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
