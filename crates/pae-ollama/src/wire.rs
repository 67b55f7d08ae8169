//! The wire format of Ollama's `/api/chat`: requests built with ollama-rs's
//! types, replies read into pae's types.
//!
//! ollama-rs's request types give the field names and shapes; three things
//! they cannot express are added to the serialised body: `stream` (private
//! in ollama-rs), `tool_name` on tool results (Ollama's way of saying which
//! tool answered), and seeds beyond `i32`. Replies are read from JSON with
//! ollama-rs's `ChatMessage` for the message, and the token counts and
//! `done_reason` read directly, because ollama-rs drops `done_reason` and
//! loses every count when one of them is missing (Ollama leaves out
//! `prompt_eval_count` when the prompt was cached).

use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, MessageRole};
use ollama_rs::generation::parameters::FormatType;
use ollama_rs::generation::tools::{ToolCall as OllamaToolCall, ToolCallFunction, ToolInfo};
use ollama_rs::models::ModelOptions;
use pae_core::adapter::parse_arguments;
use pae_core::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, ProviderError, ResponseFormat,
    Role, TokenUsage, ToolCall, ToolCallDelta, ToolChoice,
};
use pae_http::invalid_response as invalid;
use serde_json::{Map, Value, json};

/// What to do with a request that asks for tools and a response format at
/// once. Ollama ignores the tools when `format` is set
/// ([ollama#8095](https://github.com/ollama/ollama/issues/8095)), so the two
/// are never sent together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ToolsWithFormat {
    /// Fail with [`ProviderError::Unsupported`] (the default): the caller
    /// learns at once instead of getting a reply that silently lacks one of
    /// the two.
    #[default]
    Reject,
    /// Send the tools and drop the format; the reply is unconstrained text
    /// or tool calls.
    DropFormat,
}

/// Builds the JSON body of an `/api/chat` request.
pub(crate) fn request_body(
    model: &str,
    request: &ChatRequest,
    stream: bool,
    tools_with_format: ToolsWithFormat,
) -> Result<Value, ProviderError> {
    request.validate()?;
    let messages = request.messages.iter().map(message).collect::<Vec<_>>();
    let mut chat = ChatMessageRequest::new(model.to_owned(), messages);

    let tools = tools(request)?;
    let mut format = request.response_format.as_ref();
    if !tools.is_empty() && format.is_some() {
        match tools_with_format {
            ToolsWithFormat::Reject => {
                return Err(ProviderError::Unsupported {
                    feature: "tools together with a response format (Ollama ignores the tools \
                              when a format is set, ollama#8095)"
                        .into(),
                });
            }
            ToolsWithFormat::DropFormat => format = None,
        }
    }
    if !tools.is_empty() {
        chat = chat.tools(tools);
    }
    if let Some(format) = format {
        chat = chat.format(match format {
            ResponseFormat::JsonObject => FormatType::Json,
            ResponseFormat::JsonSchema { schema, .. } => serde_json::from_value(schema.clone())
                .map_err(|error| ProviderError::Unsupported {
                    feature: format!("this JSON schema as an Ollama format ({error})"),
                })?,
        });
    }

    let sampling = request.sampling;
    let mut options = ModelOptions::default();
    let mut any_option = false;
    if let Some(temperature) = sampling.temperature {
        options = options.temperature(temperature);
        any_option = true;
    }
    if let Some(top_p) = sampling.top_p {
        options = options.top_p(top_p);
        any_option = true;
    }
    if let Some(max_tokens) = sampling.max_tokens {
        options = options.num_predict(i32::try_from(max_tokens).unwrap_or(i32::MAX));
        any_option = true;
    }
    if let Some(seed) = sampling.seed {
        // ollama-rs types the seed as i32; Ollama takes any integer.
        options = match i32::try_from(seed) {
            Ok(small) => options.seed(small),
            Err(_) => options.extra("seed", seed),
        };
        any_option = true;
    }
    if !request.stop.is_empty() {
        options = options.stop(request.stop.clone());
        any_option = true;
    }
    if any_option {
        chat = chat.options(options);
    }

    let mut body = serde_json::to_value(&chat).map_err(|error| ProviderError::Configuration {
        message: format!("the request could not be serialised: {error}"),
    })?;
    if let Some(object) = body.as_object_mut() {
        object.insert("stream".into(), Value::Bool(stream));
        if let Some(Value::Array(wire_messages)) = object.get_mut("messages") {
            for (wire, original) in wire_messages.iter_mut().zip(&request.messages) {
                if let (Role::Tool, Some(name), Some(wire)) =
                    (original.role, &original.name, wire.as_object_mut())
                {
                    wire.insert("tool_name".into(), Value::String(name.clone()));
                }
            }
        }
    }
    Ok(body)
}

fn message(message: &Message) -> ChatMessage {
    let role = match message.role {
        Role::System => MessageRole::System,
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
        Role::Tool => MessageRole::Tool,
    };
    let mut wire = ChatMessage::new(role, message.content.clone());
    wire.tool_calls = message
        .tool_calls
        .iter()
        .map(|call| OllamaToolCall {
            function: ToolCallFunction {
                name: call.name.clone(),
                arguments: arguments_object(&call.arguments),
            },
        })
        .collect();
    wire
}

/// Ollama wants tool-call arguments as an object. Arguments kept as raw
/// text (the model wrote invalid JSON) are sent as `{"raw": text}` so the
/// model still sees what it wrote.
fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::String(raw) => json!({ "raw": raw }),
        other => json!({ "raw": other.to_string() }),
    }
}

/// The tools to send: none when the choice is `None`, only the named one
/// when a tool is named (Ollama cannot force a call, so narrowing the list
/// is the closest it gets), all of them otherwise.
fn tools(request: &ChatRequest) -> Result<Vec<ToolInfo>, ProviderError> {
    let selected = request
        .tools
        .iter()
        .filter(|tool| match &request.tool_choice {
            Some(ToolChoice::None) => false,
            Some(ToolChoice::Tool(name)) => &tool.name == name,
            _ => true,
        });
    selected
        .map(|tool| {
            serde_json::from_value(json!({
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                }
            }))
            .map_err(|error| ProviderError::Unsupported {
                feature: format!("the parameters schema of tool {:?} ({error})", tool.name),
            })
        })
        .collect()
}

/// One line of a reply, streamed or not.
#[derive(Debug)]
pub(crate) struct Line {
    pub(crate) content: String,
    pub(crate) tool_calls: Vec<(Option<String>, String, Value)>,
    pub(crate) done: bool,
    pub(crate) done_reason: Option<String>,
    pub(crate) usage: Option<TokenUsage>,
    /// Whether the object had a `message` (a streamed line may not).
    pub(crate) has_message: bool,
}

/// Reads one JSON object of a reply. `{"error": …}` becomes `Err(message)`
/// in the outer result's `Ok`, so callers decide how a server-reported
/// error maps.
pub(crate) fn parse_line(bytes: &[u8]) -> Result<Result<Line, String>, ProviderError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| invalid(bytes, format!("not an Ollama chat reply: {error}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid(bytes, "not a JSON object"));
    };
    if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
        return Ok(Err(error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned)));
    }
    let message: ChatMessage = match object.get("message") {
        Some(message) => serde_json::from_value(message.clone())
            .map_err(|error| invalid(bytes, format!("the message is malformed: {error}")))?,
        None => ChatMessage::assistant(String::new()),
    };
    let raw_calls = object
        .get("message")
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    let tool_calls = message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let id = raw_calls
                .and_then(|calls| calls.get(i))
                .and_then(|c| c.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (id, call.function.name, call.function.arguments)
        })
        .collect();
    let done = object.get("done").and_then(Value::as_bool).unwrap_or(false);
    let count = |key: &str| object.get(key).and_then(Value::as_u64);
    let usage = match (count("prompt_eval_count"), count("eval_count")) {
        (None, None) => None,
        (prompt, completion) => Some(TokenUsage::new(
            prompt.unwrap_or(0),
            completion.unwrap_or(0),
        )),
    };
    Ok(Ok(Line {
        content: message.content,
        tool_calls,
        done,
        done_reason: object
            .get("done_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage,
        has_message: object.get("message").is_some(),
    }))
}

/// A stable id for a call that came without one: the same reply gives the
/// same ids, whether streamed or not.
pub(crate) fn call_id(index: usize, name: &str, arguments: &Value) -> String {
    // FNV-1a, 64 bits: tiny, deterministic across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name
        .bytes()
        .chain([0])
        .chain(arguments.to_string().into_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("call_{index}_{:08x}", hash >> 32)
}

fn tool_arguments(arguments: Value) -> Value {
    match arguments {
        Value::String(text) => parse_arguments(&text),
        Value::Null => Value::Object(Map::new()),
        other => other,
    }
}

pub(crate) fn finish_reason(reason: Option<&str>, called_tools: bool) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("stop") | None if called_tools => FinishReason::ToolCalls,
        Some("stop") | None => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// Reads a whole (non-streamed) reply.
pub(crate) fn parse_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let line = parse_line(body)?
        .map_err(|message| invalid(body, format!("the server reported an error: {message}")))?;
    // A whole reply always has its message; only streamed lines may omit it.
    if !line.has_message {
        return Err(invalid(body, "the reply has no message"));
    }
    let calls: Vec<ToolCall> = line
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(index, (id, name, arguments))| {
            let arguments = tool_arguments(arguments);
            let id = id.unwrap_or_else(|| call_id(index, &name, &arguments));
            ToolCall::new(id, name, arguments)
        })
        .collect();
    let finish = finish_reason(line.done_reason.as_deref(), !calls.is_empty());
    Ok(ChatResponse {
        message: Message::assistant_tool_calls(line.content, calls),
        usage: line.usage,
        finish_reason: finish,
    })
}

/// Turns one streamed line into a chunk; `next_call` numbers tool calls
/// across the stream (Ollama sends each call whole, in any line).
pub(crate) fn chunk(line: Line, next_call: &mut usize) -> ChatChunk {
    let called_before = *next_call > 0;
    let tool_calls: Vec<ToolCallDelta> = line
        .tool_calls
        .into_iter()
        .map(|(id, name, arguments)| {
            let index = *next_call;
            *next_call += 1;
            let arguments = tool_arguments(arguments);
            ToolCallDelta {
                index,
                id: Some(id.unwrap_or_else(|| call_id(index, &name, &arguments))),
                name: Some(name),
                arguments: arguments.to_string(),
            }
        })
        .collect();
    let called = called_before || !tool_calls.is_empty();
    ChatChunk {
        delta: line.content,
        tool_calls,
        usage: if line.done { line.usage } else { None },
        finish_reason: line
            .done
            .then(|| finish_reason(line.done_reason.as_deref(), called)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::{Sampling, ToolSpec};

    fn body(request: &ChatRequest) -> Value {
        request_body("qwen", request, false, ToolsWithFormat::Reject).unwrap()
    }

    fn calculator() -> ToolSpec {
        ToolSpec {
            name: "calculator".into(),
            description: "Does arithmetic.".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
        }
    }

    #[test]
    fn plain_request_with_options() {
        let request = ChatRequest::new(vec![Message::user("hi")])
            .with_stop(["\n"])
            .with_sampling(Sampling {
                temperature: Some(0.0),
                top_p: None,
                max_tokens: Some(32),
                seed: Some(7),
            });
        assert_eq!(
            body(&request),
            json!({
                "model": "qwen",
                "messages": [{"role": "user", "content": "hi", "tool_calls": [], "thinking": null}],
                "options": {"temperature": 0.0, "num_predict": 32, "seed": 7, "stop": ["\n"]},
                "stream": false
            })
        );
        let big = ChatRequest::new(vec![Message::user("hi")]).with_seed(u64::from(u32::MAX) + 5);
        assert_eq!(body(&big)["options"]["seed"], json!(4_294_967_300u64));
    }

    #[test]
    fn tool_history_and_tool_names() {
        let request = ChatRequest::new(vec![
            Message::assistant_tool_calls(
                "",
                vec![
                    ToolCall::new("a", "calculator", json!({"expression": "1+1"})),
                    ToolCall::new("b", "calculator", json!("{bad")),
                ],
            ),
            Message::tool("a", "calculator", "2"),
        ])
        .with_tools(vec![calculator()]);
        let value = body(&request);
        assert_eq!(
            value["messages"][0]["tool_calls"],
            json!([
                {"function": {"name": "calculator", "arguments": {"expression": "1+1"}}},
                {"function": {"name": "calculator", "arguments": {"raw": "{bad"}}}
            ])
        );
        assert_eq!(value["messages"][1]["role"], json!("tool"));
        assert_eq!(value["messages"][1]["tool_name"], json!("calculator"));
        assert_eq!(
            value["tools"],
            json!([{"type": "function", "function": {"name": "calculator",
                "description": "Does arithmetic.", "parameters": calculator().parameters}}])
        );
    }

    #[test]
    fn tool_choice_narrows_or_removes_tools() {
        let other = ToolSpec {
            name: "search".into(),
            ..calculator()
        };
        let request = ChatRequest::new(vec![Message::user("x")])
            .with_tools(vec![calculator(), other])
            .with_tool_choice(ToolChoice::Tool("search".into()));
        let names: Vec<_> = body(&request)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("search")]);
        let none = request.with_tool_choice(ToolChoice::None);
        assert!(body(&none).get("tools").is_none());
    }

    #[test]
    fn formats_and_the_tools_with_format_rule() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let request = ChatRequest::new(vec![Message::user("x")])
            .with_response_format(ResponseFormat::json_schema("a", schema.clone()));
        assert_eq!(body(&request)["format"], schema);
        let json_mode = ChatRequest::new(vec![Message::user("x")])
            .with_response_format(ResponseFormat::JsonObject);
        assert_eq!(body(&json_mode)["format"], json!("json"));

        let both = request.with_tools(vec![calculator()]);
        let error = request_body("m", &both, false, ToolsWithFormat::Reject).unwrap_err();
        assert!(
            matches!(error, ProviderError::Unsupported { .. }),
            "{error:?}"
        );
        let dropped = request_body("m", &both, false, ToolsWithFormat::DropFormat).unwrap();
        assert!(dropped.get("format").is_none());
        assert_eq!(dropped["tools"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn replies_with_tool_calls_get_stable_ids() {
        let reply = br#"{"model":"q","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"",
            "tool_calls":[{"function":{"name":"calculator","arguments":{"expression":"2*3"}}},
                          {"id":"given","function":{"name":"calculator","arguments":{"expression":"1"}}}]},
            "done":true,"done_reason":"stop","prompt_eval_count":30,"eval_count":12}"#;
        let first = parse_response(reply).unwrap();
        let second = parse_response(reply).unwrap();
        assert_eq!(first, second);
        let calls = &first.message.tool_calls;
        assert_eq!(
            calls[0].id,
            call_id(0, "calculator", &json!({"expression": "2*3"}))
        );
        assert!(calls[0].id.starts_with("call_0_"));
        assert_eq!(calls[1].id, "given");
        assert_eq!(first.finish_reason, FinishReason::ToolCalls);
        assert_eq!(first.usage, Some(TokenUsage::new(30, 12)));
    }

    #[test]
    fn missing_counts_and_errors() {
        let cached = br#"{"model":"q","created_at":"t","message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"length","eval_count":4}"#;
        let reply = parse_response(cached).unwrap();
        assert_eq!(reply.usage, Some(TokenUsage::new(0, 4)));
        assert_eq!(reply.finish_reason, FinishReason::Length);
        assert!(matches!(
            parse_response(br#"{"error":"model 'x' not found"}"#),
            Err(ProviderError::InvalidResponse { .. })
        ));
        assert!(matches!(
            parse_response(b"[1,2]"),
            Err(ProviderError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn streamed_calls_are_numbered_across_lines() {
        let mut next = 0;
        let line = |text: &str| parse_line(text.as_bytes()).unwrap().unwrap();
        let first = chunk(
            line(
                r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{}}}]},"done":false}"#,
            ),
            &mut next,
        );
        let last = chunk(
            line(
                r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
            ),
            &mut next,
        );
        assert_eq!(first.tool_calls[0].index, 0);
        assert_eq!(first.tool_calls[0].arguments, "{}");
        assert_eq!(last.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(last.usage, Some(TokenUsage::new(3, 2)));
    }

    #[test]
    fn whole_replies_need_their_message_and_null_errors_are_no_errors() {
        for body in [
            &br#"{}"#[..],
            br#"{"model":"m","done":true}"#,
            br#"{"message":null,"done":true}"#,
            br#"{"message":"text","done":true}"#,
        ] {
            assert!(
                matches!(
                    parse_response(body),
                    Err(ProviderError::InvalidResponse { .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let ok = parse_response(
            br#"{"error":null,"message":{"role":"assistant","content":"hi"},"done":true}"#,
        );
        assert_eq!(ok.unwrap().message.content, "hi");
        // Streamed lines may omit the message.
        assert!(matches!(parse_line(br#"{"done":true}"#), Ok(Ok(_))));
    }
}
