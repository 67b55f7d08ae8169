//! The agent's prompt wording: the system message for each action format,
//! the step (human) message template, and the texts the loop feeds back to
//! the model (observations for unknown tools, bad arguments, unparseable
//! replies, early stopping).
//!
//! Everything that comes from tools or earlier answers is inserted verbatim
//! in one pass, so braces in a tool description or a step's response never
//! break formatting.

use std::fmt::Write as _;

use serde_json::Value;

use crate::action::FINAL_ANSWER;
use crate::schema::SchemaViolation;

/// The default first paragraph of the system message.
pub const DEFAULT_PREAMBLE: &str = "You are carrying out one step of a plan made to reach a larger objective. \
Do the current step, and only that step, as accurately as you can.";

/// The default step message. `{agent_scratchpad}` is the work done on the
/// step so far (empty at first); trailing whitespace of the formatted
/// message is removed.
pub const DEFAULT_STEP_TEMPLATE: &str =
    "Previous steps:\n{previous_steps}\n\nCurrent step: {current_step}\n\n{agent_scratchpad}";

/// The default step message when the objective is shown.
pub const DEFAULT_STEP_TEMPLATE_WITH_OBJECTIVE: &str = "Overall objective: {objective}\n\n\
Previous steps:\n{previous_steps}\n\nCurrent step: {current_step}\n\n{agent_scratchpad}";

/// The heading of the scratchpad once the step has some work in it.
pub const SCRATCHPAD_HEADING: &str =
    "Your work on the current step so far (only your final answer will be kept):";

/// Opens a tool's output of several lines in the text-JSON scratchpad
/// (after `Observation:`); the same text in tool output is escaped.
pub const OBSERVATION_OPEN: &str = "<observation>";

/// Closes a tool's output opened by [`OBSERVATION_OPEN`].
pub const OBSERVATION_CLOSE: &str = "</observation>";

/// A tool as the system prompt lists it.
#[derive(Debug, Clone)]
pub(crate) struct ToolLine<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) parameters: &'a Value,
}

/// The system message for text-JSON actions.
pub(crate) fn text_system_prompt(preamble: &str, tools: &[ToolLine<'_>]) -> String {
    let mut out = String::new();
    out.push_str(preamble.trim_end());
    out.push_str("\n\n");
    if tools.is_empty() {
        out.push_str("You have no tools for this step.\n\n");
    } else {
        out.push_str("You can use these tools:\n\n");
        for tool in tools {
            let _ = writeln!(out, "- {}: {}", tool.name, tool.description.trim());
            let _ = writeln!(out, "  Arguments (JSON schema): {}", tool.parameters);
        }
        out.push('\n');
    }
    let names: Vec<String> = std::iter::once(FINAL_ANSWER)
        .chain(tools.iter().map(|t| t.name))
        .map(|n| format!("{n:?}"))
        .collect();
    let _ = write!(
        out,
        "To act, write a short thought, then exactly one action: a JSON object in a fenced code \
block, with the key \"action\" (the name of a tool, or \"{FINAL_ANSWER}\") and the key \
\"action_input\" (the tool's arguments as a JSON object matching its schema, or your answer \
for \"{FINAL_ANSWER}\").\nValid \"action\" values: {}.\n\n",
        names.join(", ")
    );
    out.push_str("Repeat this as often as needed:\n\nThought: what you know and what to do next\nAction:\n```json\n");
    match tools.first() {
        Some(tool) => {
            let _ = write!(
                out,
                "{{\"action\": {:?}, \"action_input\": {}}}",
                tool.name,
                example_arguments(tool.parameters)
            );
        }
        None => out.push_str("{\"action\": \"<tool name>\", \"action_input\": {}}"),
    }
    out.push_str(
        "\n```\nObservation: the tool's result (it is given to you; never write it yourself)\n\n\
When you can answer the current step:\n\nThought: I can answer now\nAction:\n```json\n",
    );
    let _ = write!(
        out,
        "{{\"action\": \"{FINAL_ANSWER}\", \"action_input\": \"your answer for the current step\"}}"
    );
    out.push_str(
        "\n```\n\nWrite one action per reply and stop right after its closing fence. \
Always answer with \"Final Answer\" once you know the answer.",
    );
    out
}

/// The system message for native tool calling.
pub(crate) fn native_system_prompt(preamble: &str, has_tools: bool) -> String {
    let mut out = String::from(preamble.trim_end());
    out.push_str("\n\n");
    if has_tools {
        out.push_str(
            "Call the tools you are given when they help. When you can answer the current step, \
reply with the answer as plain text, without calling a tool.",
        );
    } else {
        out.push_str("Reply with the answer for the current step as plain text.");
    }
    out
}

/// An example arguments object for a schema: its properties (required ones
/// first, at most three) with a placeholder for each type.
fn example_arguments(schema: &Value) -> String {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return String::from("{}");
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The order of `required` is the schema author's; map order may vary.
    let mut names: Vec<&str> = required
        .into_iter()
        .filter(|name| properties.contains_key(*name))
        .collect();
    if names.is_empty() {
        names = properties.keys().map(String::as_str).take(1).collect();
    }
    let fields: Vec<String> = names
        .into_iter()
        .take(3)
        .map(|name| {
            let placeholder = match properties
                .get(name)
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
            {
                Some("integer" | "number") => String::from("1"),
                Some("boolean") => String::from("true"),
                Some("array") => String::from("[]"),
                Some("object") => String::from("{}"),
                _ => format!("\"<{name}>\""),
            };
            format!("{name:?}: {placeholder}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// The observation for an action naming no known tool.
pub(crate) fn unknown_tool(name: &str, valid: &[&str]) -> String {
    if valid.is_empty() {
        return format!(
            "{name:?} is not an available tool. There are no tools for this step: use \"{FINAL_ANSWER}\" to answer."
        );
    }
    let names: Vec<String> = valid.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "{name:?} is not an available tool. Valid tools: {}. Use one of them, or \"{FINAL_ANSWER}\" to answer.",
        names.join(", ")
    )
}

/// The observation for arguments that fail the tool's schema.
pub(crate) fn invalid_arguments(
    tool: &str,
    violations: &[SchemaViolation],
    schema: &Value,
) -> String {
    let problems: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!(
        "The arguments for {tool:?} are invalid: {}. Expected arguments (JSON schema): {schema}",
        problems.join("; ")
    )
}

/// The observation for native tool-call arguments that are not JSON.
pub(crate) fn arguments_not_json(tool: &str, error: &str) -> String {
    format!(
        "The arguments for {tool:?} are not a JSON object ({error}). Send a JSON object matching the tool's schema."
    )
}

/// Added to the observation of a call the model already made with the same
/// input.
pub(crate) fn repeated_call(tool: &str, native: bool) -> String {
    let how = if native {
        "reply with the answer as plain text"
    } else {
        "give it as your Final Answer"
    };
    format!(
        "\n(You already called {tool:?} with this input and got this result. If it answers the current step, {how} now.)"
    )
}

/// The feedback for a native-mode reply that tried to write a tool call
/// as text and produced invalid JSON.
pub(crate) fn unparseable_native_call(error: &str) -> String {
    format!(
        "Your reply looks like a tool call written as text, but it is not valid JSON ({error}). \
Call the tool through tool calling with a short JSON object of arguments, or reply with the \
answer as plain text."
    )
}

/// The note after the results of a reply with more tool calls than are
/// run from one reply.
pub(crate) fn calls_over_limit(total: usize, limit: usize) -> String {
    format!(
        "Only the first {limit} of the {total} tool calls in your reply were run; the rest were \
not. Make at most {limit} tool calls per reply, and call again any you still need."
    )
}

/// The observation for a tool that failed.
pub(crate) fn tool_failed(tool: &str, error: &str) -> String {
    format!("The tool {tool:?} failed: {error}")
}

/// The observation for a reply that held no usable action.
pub(crate) fn unparseable_reply(error: &str) -> String {
    format!(
        "Your reply could not be used: {error}. Reply with a short thought and exactly one action: \
a JSON object in a fenced code block, with the keys \"action\" and \"action_input\"."
    )
}

/// The message for an empty native reply.
pub(crate) const EMPTY_NATIVE_REPLY: &str = "Your reply was empty. Call a tool, or reply with the answer for the current step as plain text.";

/// The result sent back for a native "final answer" call made next to
/// other tool calls.
pub(crate) const FINAL_CALL_WITH_TOOLS: &str = "Not taken as your answer: you called other tools in the same reply. Read their results, then reply with the answer as plain text.";

/// The result sent back for a native "final answer" call with no answer in
/// it.
pub(crate) const EMPTY_FINAL_CALL: &str =
    "Your final answer was empty. Reply with the answer for the current step as plain text.";

/// The observation recorded when the time limit cancels a running tool.
pub(crate) const TOOL_CANCELLED: &str = "The time limit was reached before the tool returned.";

/// The step's response under the "force" early-stopping policy.
pub fn stopped_response(reason: &str) -> String {
    format!("Stopped before finishing this step: the {reason} was reached.")
}

/// The last request's instruction under the "generate" early-stopping
/// policy, for text-JSON actions.
pub(crate) fn generate_text(reason: &str) -> String {
    format!(
        "You have reached the {reason} for this step. Do not call any more tools. Reply now with \
your best answer for the current step, as a \"{FINAL_ANSWER}\" action."
    )
}

/// The same instruction for native tool calling.
pub(crate) fn generate_native(reason: &str) -> String {
    format!(
        "You have reached the {reason} for this step. Do not call any more tools. Reply now with \
your best answer for the current step, as plain text."
    )
}

/// Cuts an observation to `max` characters, saying how long it was.
pub(crate) fn truncate_observation(text: String, max: Option<usize>) -> String {
    let Some(max) = max else { return text };
    let total = text.chars().count();
    if total <= max {
        return text;
    }
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    format!(
        "{}\n[... cut: the result has {total} characters, {max} are shown]",
        &text[..end]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn braces_in_descriptions_are_verbatim() {
        let params =
            json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]});
        let prompt = text_system_prompt(
            "Pre {not a var}.",
            &[ToolLine {
                name: "search",
                description: "Finds {things} in }} the {{index",
                parameters: &params,
            }],
        );
        assert!(prompt.starts_with("Pre {not a var}.\n\n"));
        assert!(prompt.contains("- search: Finds {things} in }} the {{index\n"));
        assert!(prompt.contains(&format!("  Arguments (JSON schema): {params}\n")));
        assert!(prompt.contains("Valid \"action\" values: \"Final Answer\", \"search\"."));
        assert!(prompt.contains("{\"action\": \"search\", \"action_input\": {\"q\": \"<q>\"}}"));
    }

    #[test]
    fn no_tools_prompt_still_explains_the_answer_format() {
        let prompt = text_system_prompt(DEFAULT_PREAMBLE, &[]);
        assert!(prompt.contains("You have no tools for this step."));
        assert!(prompt.contains("Valid \"action\" values: \"Final Answer\"."));
    }

    #[test]
    fn example_arguments_by_type() {
        let schema = json!({"properties": {"n": {"type": "integer"}, "b": {"type": "boolean"},
                                          "s": {"type": "string"}}, "required": ["n", "b"]});
        assert_eq!(example_arguments(&schema), "{\"n\": 1, \"b\": true}");
        assert_eq!(example_arguments(&json!({"type": "object"})), "{}");
    }

    #[test]
    fn feedback_texts() {
        assert_eq!(
            unknown_tool("calc", &["calculator", "current_time"]),
            "\"calc\" is not an available tool. Valid tools: \"calculator\", \"current_time\". Use one of them, or \"Final Answer\" to answer."
        );
        assert!(unknown_tool("x", &[]).contains("There are no tools"));
        assert_eq!(
            truncate_observation("héllo".into(), Some(2)),
            "hé\n[... cut: the result has 5 characters, 2 are shown]"
        );
        assert_eq!(truncate_observation("hi".into(), Some(2)), "hi");
    }
}
