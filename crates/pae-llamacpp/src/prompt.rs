//! Turning a [`ChatRequest`] into the role/content pairs fed to the model's
//! chat template: tool descriptions go into the system message, earlier tool
//! calls are written the way the model is asked to write them, and tool
//! results become user turns (llama.cpp's built-in templates know only
//! system, user and assistant turns everywhere).

use pae_core::{ChatRequest, Message, Role, ToolChoice, ToolSpec};

/// The tools a request lets the model call, after `tool_choice`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolMode<'a> {
    /// No tools: plain text (or the response format).
    Off,
    /// The request has tools but `tool_choice` is `None`: the tools are
    /// left out and the reply may not be a call.
    Disabled,
    /// The model may call one of these tools or answer in text.
    Auto(Vec<&'a ToolSpec>),
    /// The model must call one of these tools.
    Required(Vec<&'a ToolSpec>),
}

impl<'a> ToolMode<'a> {
    /// The tool mode of a request.
    ///
    /// Returns the reason when `tool_choice` names a tool the request does
    /// not offer, or requires a tool while offering none.
    pub(crate) fn of(request: &'a ChatRequest) -> Result<Self, String> {
        let all: Vec<&ToolSpec> = request.tools.iter().collect();
        match request.tool_choice.as_ref().unwrap_or(&ToolChoice::Auto) {
            ToolChoice::None if all.is_empty() => Ok(Self::Off),
            ToolChoice::None => Ok(Self::Disabled),
            ToolChoice::Auto if all.is_empty() => Ok(Self::Off),
            ToolChoice::Auto => Ok(Self::Auto(all)),
            ToolChoice::Required if all.is_empty() => {
                Err("tool_choice requires a tool call but the request has no tools".into())
            }
            ToolChoice::Required => Ok(Self::Required(all)),
            ToolChoice::Tool(name) => match all.into_iter().find(|t| &t.name == name) {
                Some(tool) => Ok(Self::Required(vec![tool])),
                None => Err(format!(
                    "tool_choice names the tool {name:?}, which is not among the request's tools"
                )),
            },
        }
    }

    /// The tools the model may call.
    pub(crate) fn tools(&self) -> &[&'a ToolSpec] {
        match self {
            Self::Off | Self::Disabled => &[],
            Self::Auto(tools) | Self::Required(tools) => tools,
        }
    }
}

/// One turn for the chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Turn {
    pub(crate) role: &'static str,
    pub(crate) content: String,
}

/// Ends every turn of tool results. Without it small models tend to call
/// the same tool again instead of answering (measured with
/// Qwen2.5-Coder-0.5B: it repeated the call until the iteration limit).
pub(crate) const TOOL_RESULT_NUDGE: &str =
    "\nIf this result answers the task, reply with the answer in plain text now.";

/// How a tool call is written in the model's output and in the history.
/// The name comes first, as the grammar makes the model write it.
pub(crate) fn tool_call_text(name: &str, arguments: &serde_json::Value) -> String {
    format!(
        "{{\"name\": {}, \"arguments\": {}}}",
        serde_json::Value::String(name.to_owned()),
        arguments
    )
}

/// Tool instructions in the wording Qwen2.5 and Hermes-style models are
/// trained on (with small models this picks the right tool far more often
/// than other wordings), asking for the bare JSON object the grammar
/// enforces.
fn tools_instructions(mode: &ToolMode<'_>) -> Option<String> {
    let tools = mode.tools();
    if tools.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
    );
    for tool in tools {
        let line = format!(
            "{{\"type\": \"function\", \"function\": {{\"name\": {}, \"description\": {}, \"parameters\": {}}}}}",
            serde_json::Value::String(tool.name.clone()),
            serde_json::Value::String(tool.description.clone()),
            tool.parameters
        );
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(
        "</tools>\n\nFor a function call, return only a json object with the function name \
         and arguments:\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n\
         The result comes back in the next message.",
    );
    match mode {
        ToolMode::Required(tools) if tools.len() == 1 => {
            text.push_str(&format!(" Call the function {:?} now.", tools[0].name));
        }
        ToolMode::Required(_) => text.push_str(" Call one of the functions now."),
        _ => text.push_str(" When no function is needed, answer in plain text."),
    }
    Some(text)
}

/// The turns for a request, with tool instructions for `mode`.
pub(crate) fn turns(request: &ChatRequest, mode: &ToolMode<'_>) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::with_capacity(request.messages.len() + 1);
    let instructions = tools_instructions(mode);
    let has_system = request
        .messages
        .first()
        .is_some_and(|m| m.role == Role::System);
    if let (Some(text), false) = (&instructions, has_system) {
        turns.push(Turn {
            role: "system",
            content: text.clone(),
        });
    }
    for (i, message) in request.messages.iter().enumerate() {
        let turn = match message.role {
            Role::System => {
                let mut content = message.content.clone();
                if let (Some(text), 0) = (&instructions, i) {
                    if !content.is_empty() {
                        content.push_str("\n\n");
                    }
                    content.push_str(text);
                }
                Turn {
                    role: "system",
                    content,
                }
            }
            Role::User => Turn {
                role: "user",
                content: message.content.clone(),
            },
            Role::Assistant => Turn {
                role: "assistant",
                content: assistant_text(message),
            },
            Role::Tool => Turn {
                role: "user",
                content: tool_result_text(message) + TOOL_RESULT_NUDGE,
            },
        };
        // Consecutive tool results read best as one user turn, with one
        // nudge at its end.
        match turns.last_mut() {
            Some(last)
                if message.role == Role::Tool
                    && i > 0
                    && request.messages[i - 1].role == Role::Tool =>
            {
                if let Some(results) = last.content.strip_suffix(TOOL_RESULT_NUDGE) {
                    last.content.truncate(results.len());
                }
                last.content.push('\n');
                last.content.push_str(&turn.content);
            }
            _ => turns.push(turn),
        }
    }
    turns
}

fn assistant_text(message: &Message) -> String {
    let mut text = message.content.clone();
    for call in &message.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&tool_call_text(&call.name, &call.arguments));
    }
    text
}

fn tool_result_text(message: &Message) -> String {
    let name = message.name.as_deref().unwrap_or("tool");
    format!(
        "<tool_response name={:?}>\n{}\n</tool_response>",
        name, message.content
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::ToolCall;
    use serde_json::json;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: format!("the {name} tool"),
            parameters: json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        }
    }

    #[test]
    fn tool_choice_selects_the_tools() {
        let base = ChatRequest::new(vec![Message::user("hi")])
            .with_tools(vec![spec("calculator"), spec("time")]);
        assert_eq!(ToolMode::of(&base).unwrap().tools().len(), 2);
        let forced = base
            .clone()
            .with_tool_choice(ToolChoice::Tool("time".into()));
        match ToolMode::of(&forced).unwrap() {
            ToolMode::Required(tools) => assert_eq!(tools[0].name, "time"),
            other => panic!("unexpected {other:?}"),
        }
        let none = base.clone().with_tool_choice(ToolChoice::None);
        assert_eq!(ToolMode::of(&none).unwrap(), ToolMode::Disabled);
        assert!(ToolMode::of(&none).unwrap().tools().is_empty());
        let unknown = base.with_tool_choice(ToolChoice::Tool("nope".into()));
        assert!(ToolMode::of(&unknown).unwrap_err().contains("nope"));
        let required_without_tools =
            ChatRequest::new(vec![Message::user("hi")]).with_tool_choice(ToolChoice::Required);
        assert!(ToolMode::of(&required_without_tools).is_err());
    }

    #[test]
    fn tools_go_into_the_existing_system_message() {
        let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("2+2?")])
            .with_tools(vec![spec("calculator")]);
        let mode = ToolMode::of(&request).unwrap();
        let turns = turns(&request, &mode);
        assert_eq!(turns.len(), 2);
        assert!(turns[0].content.starts_with("Be brief.\n\n# Tools"));
        assert!(turns[0].content.contains("\"name\": \"calculator\""));
        assert!(turns[0].content.contains("answer in plain text"));
        assert!(turns[0].content.contains("\"type\": \"function\""));
    }

    #[test]
    fn tools_without_system_message_get_one() {
        let request =
            ChatRequest::new(vec![Message::user("2+2?")]).with_tools(vec![spec("calculator")]);
        let mode = ToolMode::of(&request).unwrap();
        let turns = turns(&request, &mode);
        assert_eq!(turns[0].role, "system");
        assert_eq!(turns[1].content, "2+2?");
    }

    #[test]
    fn history_renders_calls_and_results() {
        let call = ToolCall::new("call_1", "calculator", json!({"x": "2+2"}));
        let request = ChatRequest::new(vec![
            Message::user("2+2?"),
            Message::assistant_tool_calls("", vec![call.clone()]),
            Message::tool("call_1", "calculator", "4"),
            Message::tool("call_2", "time", "noon"),
        ]);
        let turns = turns(&request, &ToolMode::Off);
        assert_eq!(turns.len(), 3);
        assert_eq!(
            turns[1],
            Turn {
                role: "assistant",
                content: r#"{"name": "calculator", "arguments": {"x":"2+2"}}"#.into()
            }
        );
        assert_eq!(turns[2].role, "user");
        assert_eq!(
            turns[2].content,
            format!(
                "<tool_response name=\"calculator\">\n4\n</tool_response>\n\
                 <tool_response name=\"time\">\nnoon\n</tool_response>{TOOL_RESULT_NUDGE}"
            )
        );
    }
}
