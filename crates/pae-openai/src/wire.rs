//! The wire format: requests built with async-openai's types, responses read
//! leniently into pae's types.
//!
//! Requests use the SDK's `CreateChatCompletionRequest` so field names and
//! shapes follow the OpenAI API exactly. Responses are read with small
//! private structs instead of the SDK's, because OpenAI-compatible servers
//! differ in ways the SDK's strict types reject (finish reasons outside the
//! OpenAI enum, a missing `object` or `created`, tool calls without `type`,
//! arguments sent as an object); pae keeps such values
//! ([`FinishReason::Other`]) rather than failing the whole reply.

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest, FunctionCall,
    FunctionName, FunctionObject, ResponseFormat as SdkResponseFormat, ResponseFormatJsonSchema,
    StopConfiguration, ToolChoiceOptions,
};
use pae_core::adapter::parse_arguments;
use pae_core::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, ProviderError, ResponseFormat,
    Role, TokenUsage, ToolCall, ToolCallDelta, ToolChoice,
};
use pae_http::{ERROR_BODY_BYTES, body_excerpt, invalid_response};
use serde::Deserialize;
use serde_json::Value;

/// How a JSON-schema response format is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemaMode {
    /// The OpenAI form: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
    #[default]
    JsonSchema,
    /// `{"type": "json_object", "schema": …}`, the form llama-cpp-python's
    /// server enforces with a grammar (it answers HTTP 500 to the OpenAI
    /// form).
    JsonObjectWithSchema,
}

/// Which field carries the generation limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenLimitField {
    /// `max_tokens`: understood by OpenAI's non-reasoning models and by
    /// every compatible server.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models, not
    /// understood by most compatible servers.
    MaxCompletionTokens,
}

/// Settings that shape the request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WireOptions {
    pub(crate) schema_mode: SchemaMode,
    pub(crate) token_limit: TokenLimitField,
    pub(crate) stream_usage: bool,
}

/// Builds the JSON body of a chat-completions request.
pub(crate) fn request_body(
    model: &str,
    request: &ChatRequest,
    stream: bool,
    options: WireOptions,
) -> Result<Value, ProviderError> {
    request.validate()?;
    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = CreateChatCompletionRequest {
        model: model.to_owned(),
        messages,
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        ..CreateChatCompletionRequest::default()
    };
    // OpenAI marks `seed` deprecated, but compatible servers honour it.
    #[allow(deprecated)]
    {
        // The API's seed is signed: seeds above i64::MAX are halved to fit.
        body.seed = request
            .sampling
            .seed
            .map(|seed| i64::try_from(seed).unwrap_or((seed >> 1) as i64));
    }
    match options.token_limit {
        TokenLimitField::MaxTokens => {
            #[allow(deprecated)]
            {
                body.max_tokens = request.sampling.max_tokens;
            }
        }
        TokenLimitField::MaxCompletionTokens => {
            body.max_completion_tokens = request.sampling.max_tokens;
        }
    }
    if !request.stop.is_empty() {
        body.stop = Some(StopConfiguration::StringArray(request.stop.clone()));
    }
    if !request.tools.is_empty() {
        body.tools = Some(
            request
                .tools
                .iter()
                .map(|tool| {
                    ChatCompletionTools::Function(ChatCompletionTool {
                        function: FunctionObject {
                            name: tool.name.clone(),
                            description: Some(tool.description.clone()),
                            parameters: Some(tool.parameters.clone()),
                            strict: None,
                        },
                    })
                })
                .collect(),
        );
        body.tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::Auto => ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto),
            ToolChoice::None => ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::None),
            ToolChoice::Required => {
                ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required)
            }
            ToolChoice::Tool(name) => {
                ChatCompletionToolChoiceOption::Function(ChatCompletionNamedToolChoice {
                    function: FunctionName { name: name.clone() },
                })
            }
        });
    }
    let mut custom_format = None;
    match (&request.response_format, options.schema_mode) {
        (None, _) => {}
        (Some(ResponseFormat::JsonObject), _) => {
            body.response_format = Some(SdkResponseFormat::JsonObject);
        }
        (
            Some(ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            }),
            SchemaMode::JsonSchema,
        ) => {
            body.response_format = Some(SdkResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: name.clone(),
                    schema: schema.clone(),
                    strict: Some(*strict),
                },
            });
        }
        (Some(ResponseFormat::JsonSchema { schema, .. }), SchemaMode::JsonObjectWithSchema) => {
            custom_format = Some(serde_json::json!({"type": "json_object", "schema": schema}));
        }
    }
    if stream {
        body.stream = Some(true);
        if options.stream_usage {
            body.stream_options = Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        }
    }
    let mut value =
        serde_json::to_value(&body).map_err(|error| ProviderError::InvalidResponse {
            body: String::new(),
            reason: format!("the request could not be serialised: {error}"),
        })?;
    if let (Some(format), Some(object)) = (custom_format, value.as_object_mut()) {
        object.insert("response_format".into(), format);
    }
    Ok(value)
}

fn message(message: &Message) -> Result<ChatCompletionRequestMessage, ProviderError> {
    Ok(match message.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(message.content.clone()),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(message.content.clone()),
            name: None,
        }),
        Role::Assistant => {
            let tool_calls: Vec<_> = message
                .tool_calls
                .iter()
                .map(|call| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: call.id.clone(),
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: arguments_text(&call.arguments),
                        },
                    })
                })
                .collect();
            let content = (!message.content.is_empty() || tool_calls.is_empty()).then(|| {
                ChatCompletionRequestAssistantMessageContent::Text(message.content.clone())
            });
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..ChatCompletionRequestAssistantMessage::default()
            })
        }
        Role::Tool => {
            let Some(id) = &message.tool_call_id else {
                return Err(ProviderError::invalid_request(
                    "a tool message has no tool_call_id, which the OpenAI API requires",
                ));
            };
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(message.content.clone()),
                tool_call_id: id.clone(),
            })
        }
    })
}

/// Arguments as the JSON text the API expects; arguments kept as a string
/// (invalid JSON from the model) are sent back verbatim.
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

pub(crate) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn usage(usage: Option<WireUsage>) -> Option<TokenUsage> {
    usage.map(|u| TokenUsage::new(u.prompt_tokens, u.completion_tokens))
}

/// The error for an `error` object a server sent instead of a reply (with
/// status 200, or as a streamed event): [`ProviderError::Http`] with its
/// `code` (or `status`) when that is an HTTP error status, so that retry
/// policies see 429 and 5xx; otherwise `None`, and the caller reports the
/// message its own way.
pub(crate) fn coded_error(error: &Value, body: &[u8]) -> Option<ProviderError> {
    let code = ["code", "status"].iter().find_map(|key| {
        let value = error.get(key)?;
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
    })?;
    let status = u16::try_from(code)
        .ok()
        .filter(|s| (400..=599).contains(s))?;
    Some(ProviderError::Http {
        status,
        body: body_excerpt(body, ERROR_BODY_BYTES),
        retry_after: None,
    })
}

/// The message of a server's `error` value: its `message`, or the value
/// itself when it is a string, or its JSON.
pub(crate) fn error_message(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .map_or_else(|| error.to_string(), str::to_owned)
}

/// Reads a whole (non-streamed) chat-completions response.
pub(crate) fn parse_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|error| invalid_response(body, format!("not a chat completion: {error}")))?;
    let Some(choice) = wire.choices.into_iter().next() else {
        if let Some(error) = wire.error.filter(|e| !e.is_null()) {
            return Err(coded_error(&error, body).unwrap_or_else(|| {
                invalid_response(
                    body,
                    format!(
                        "the server reported an error instead of a reply: {}",
                        error_message(&error)
                    ),
                )
            }));
        }
        return Err(invalid_response(body, "the response has no choices"));
    };
    let Some(message) = choice.message else {
        return Err(invalid_response(
            body,
            "the response's first choice has no message",
        ));
    };
    let calls: Vec<ToolCall> = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, call)| {
            let function = call.function.unwrap_or(WireFunction {
                name: None,
                arguments: None,
            });
            ToolCall::new(
                call.id
                    .unwrap_or_else(|| format!("call_{}", call.index.unwrap_or(position))),
                function.name.unwrap_or_default(),
                match function.arguments {
                    Some(Value::String(text)) => parse_arguments(&text),
                    Some(Value::Null) | None => parse_arguments(""),
                    Some(other) => other,
                },
            )
        })
        .collect();
    let content = message.content.or(message.refusal).unwrap_or_default();
    let finish = match choice.finish_reason.as_deref() {
        Some(reason) => finish_reason(reason),
        None if !calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(ChatResponse {
        message: Message::assistant_tool_calls(content, calls),
        usage: usage(wire.usage),
        finish_reason: finish,
    })
}

/// The error for an error event in a stream: [`ProviderError::Http`] when
/// it carries an HTTP status as its code, else
/// [`ProviderError::StreamInterrupted`] with the server's message (the
/// caller fills in the partial text).
pub(crate) fn stream_error(error: &Value, data: &[u8]) -> ProviderError {
    coded_error(error, data).unwrap_or_else(|| ProviderError::StreamInterrupted {
        reason: format!(
            "the server reported an error in the stream: {}",
            error_message(error)
        ),
        partial: String::new(),
    })
}

/// Reads one streamed chunk (the data of one server-sent event).
pub(crate) fn parse_chunk(data: &str) -> Result<ChatChunk, ProviderError> {
    let wire: WireChunk = serde_json::from_str(data).map_err(|error| {
        invalid_response(
            data.as_bytes(),
            format!("not a chat completion chunk: {error}"),
        )
    })?;
    if let Some(error) = wire.error.filter(|e| !e.is_null()) {
        return Err(stream_error(&error, data.as_bytes()));
    }
    let mut chunk = ChatChunk {
        usage: usage(wire.usage),
        ..ChatChunk::default()
    };
    // pae asks for one choice; ignore others a server might add.
    if let Some(choice) = wire.choices.into_iter().find(|c| c.index == 0) {
        chunk.delta = choice
            .delta
            .content
            .or(choice.delta.refusal)
            .unwrap_or_default();
        chunk.finish_reason = choice.finish_reason.as_deref().map(finish_reason);
        chunk.tool_calls = choice
            .delta
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(position, call)| {
                let (name, arguments) = match call.function {
                    Some(function) => (
                        function.name,
                        match function.arguments {
                            Some(Value::String(text)) => text,
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        },
                    ),
                    None => (None, String::new()),
                };
                ToolCallDelta {
                    index: call.index.unwrap_or(position),
                    id: call.id,
                    name,
                    arguments,
                }
            })
            .collect();
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::{Sampling, ToolSpec};
    use serde_json::json;

    fn body(request: &ChatRequest) -> Value {
        request_body("m", request, false, WireOptions::default()).unwrap()
    }

    #[test]
    fn plain_request_has_only_what_was_asked() {
        let request = ChatRequest::new(vec![Message::system("be brief"), Message::user("hi")]);
        assert_eq!(
            body(&request),
            json!({"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"}
            ]})
        );
    }

    #[test]
    fn sampling_stop_and_stream_options() {
        let request = ChatRequest::new(vec![Message::user("hi")])
            .with_stop(["\nObservation:"])
            .with_sampling(Sampling {
                temperature: Some(0.0),
                top_p: Some(0.5),
                max_tokens: Some(16),
                seed: Some(u64::MAX),
            });
        let options = WireOptions {
            stream_usage: true,
            token_limit: TokenLimitField::MaxCompletionTokens,
            ..WireOptions::default()
        };
        let value = request_body("m", &request, true, options).unwrap();
        assert_eq!(value["stop"], json!(["\nObservation:"]));
        assert_eq!(value["temperature"], json!(0.0));
        assert_eq!(value["top_p"], json!(0.5));
        assert_eq!(value["max_completion_tokens"], json!(16));
        assert!(value.get("max_tokens").is_none());
        assert_eq!(value["seed"], json!(i64::MAX));
        assert_eq!(value["stream"], json!(true));
        assert_eq!(value["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn tool_history_round_trips_into_openai_shape() {
        let call = ToolCall::new("call_1", "calculator", json!({"expression": "2+2"}));
        let broken = ToolCall::new("call_2", "calculator", json!("{oops"));
        let request = ChatRequest::new(vec![
            Message::user("add"),
            Message::assistant_tool_calls("", vec![call, broken]),
            Message::tool("call_1", "calculator", "4"),
        ])
        .with_tools(vec![ToolSpec {
            name: "calculator".into(),
            description: "Evaluates arithmetic.".into(),
            parameters: json!({"type": "object"}),
        }])
        .with_tool_choice(ToolChoice::Tool("calculator".into()));
        let value = body(&request);
        assert_eq!(
            value["messages"][1],
            json!({"role": "assistant", "tool_calls": [
                {"type": "function", "id": "call_1", "function": {"name": "calculator", "arguments": "{\"expression\":\"2+2\"}"}},
                {"type": "function", "id": "call_2", "function": {"name": "calculator", "arguments": "{oops"}}
            ]})
        );
        assert_eq!(
            value["messages"][2],
            json!({"role": "tool", "content": "4", "tool_call_id": "call_1"})
        );
        assert_eq!(
            value["tools"],
            json!([{"type": "function", "function": {"name": "calculator",
                "description": "Evaluates arithmetic.", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            value["tool_choice"],
            json!({"type": "function", "function": {"name": "calculator"}})
        );
    }

    #[test]
    fn tool_choice_needs_tools_and_modes_are_strings() {
        let request =
            ChatRequest::new(vec![Message::user("x")]).with_tool_choice(ToolChoice::Required);
        assert!(matches!(
            request_body("m", &request, false, WireOptions::default()),
            Err(ProviderError::InvalidRequest { .. })
        ));
        let auto = request.clone().with_tool_choice(ToolChoice::Auto);
        assert!(
            body(&auto).get("tool_choice").is_none(),
            "no tools, no choice"
        );
        let request = request.with_tools(vec![ToolSpec {
            name: "t".into(),
            description: "d".into(),
            parameters: json!({}),
        }]);
        assert_eq!(body(&request)["tool_choice"], json!("required"));
    }

    #[test]
    fn tool_message_without_id_is_refused() {
        let mut message = Message::tool("x", "t", "out");
        message.tool_call_id = None;
        let error = request_body(
            "m",
            &ChatRequest::new(vec![message]),
            false,
            WireOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ProviderError::InvalidRequest { .. }));
    }

    #[test]
    fn schema_formats_in_both_modes() {
        let schema = json!({"type": "object", "properties": {"steps": {"type": "array"}}});
        let request = ChatRequest::new(vec![Message::user("plan")])
            .with_response_format(ResponseFormat::json_schema("plan", schema.clone()));
        assert_eq!(
            body(&request)["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": true}})
        );
        let options = WireOptions {
            schema_mode: SchemaMode::JsonObjectWithSchema,
            ..WireOptions::default()
        };
        assert_eq!(
            request_body("m", &request, false, options).unwrap()["response_format"],
            json!({"type": "json_object", "schema": schema})
        );
        let request = request.with_response_format(ResponseFormat::JsonObject);
        assert_eq!(
            body(&request)["response_format"],
            json!({"type": "json_object"})
        );
    }

    #[test]
    fn responses_are_read_leniently() {
        let response = parse_response(
            br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","function":{"name":"calc","arguments":"{\"x\":1}"}},
                {"function":{"name":"calc","arguments":{"x":2}}},
                {"id":"c3","type":"function","function":{"name":"calc","arguments":"{bad"}}
            ]},"finish_reason":"eos"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        )
        .unwrap();
        assert_eq!(
            response.message.tool_calls,
            vec![
                ToolCall::new("c1", "calc", json!({"x": 1})),
                ToolCall::new("call_1", "calc", json!({"x": 2})),
                ToolCall::new("c3", "calc", json!("{bad")),
            ]
        );
        assert_eq!(response.finish_reason, FinishReason::Other("eos".into()));
        assert_eq!(response.usage, Some(TokenUsage::new(7, 3)));
    }

    #[test]
    fn malformed_responses_keep_the_body() {
        for body in [&b"{not json"[..], br#"{"choices":[]}"#, b""] {
            match parse_response(body).unwrap_err() {
                ProviderError::InvalidResponse { body: kept, .. } => {
                    assert_eq!(kept.as_bytes(), body)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn error_objects_and_choices_without_a_message_are_errors() {
        let check = |body: &str, expect: &str| {
            let error = parse_response(body.as_bytes()).unwrap_err();
            assert_eq!(
                format!("{error:?}").split(' ').next(),
                Some(expect),
                "{body}"
            );
            assert!(
                format!("{error:?}").contains(&format!("{body:?}")),
                "{error:?}"
            );
        };
        check(
            r#"{"choices":[{"finish_reason":"stop"}]}"#,
            "InvalidResponse",
        );
        check(r#"{"choices":[{"message":null}]}"#, "InvalidResponse");
        check(
            r#"{"error":{"message":"no such model"}}"#,
            "InvalidResponse",
        );
        check(r#"{"error":{"code":"502","message":"upstream"}}"#, "Http");
        check(r#"{"error":{"status":429,"message":"slow"}}"#, "Http");
        let error = parse_response(br#"{"error":"flat text"}"#).unwrap_err();
        assert!(error.to_string().contains("flat text"), "{error}");
        // A code that is not an HTTP error status stays a message.
        let error = parse_response(br#"{"error":{"code":200,"message":"odd"}}"#).unwrap_err();
        assert!(matches!(error, ProviderError::InvalidResponse { .. }));
        // `"error": null` next to a reply is no error.
        let ok = parse_response(br#"{"error":null,"choices":[{"message":{"content":"hi"}}]}"#);
        assert_eq!(ok.unwrap().message.content, "hi");
    }

    #[test]
    fn chunks_carry_tool_call_fragments_usage_and_errors() {
        let chunk = parse_chunk(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","function":{"name":"calc","arguments":"{\"a"}}]},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            chunk.tool_calls,
            vec![ToolCallDelta {
                index: 1,
                id: Some("c".into()),
                name: Some("calc".into()),
                arguments: "{\"a".into()
            }]
        );
        let last =
            parse_chunk(r#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5}}"#)
                .unwrap();
        assert_eq!(last.usage, Some(TokenUsage::new(2, 5)));
        let error = parse_chunk(r#"{"error":{"message":"overloaded"}}"#).unwrap_err();
        assert!(error.to_string().contains("overloaded"), "{error}");
        assert!(matches!(
            parse_chunk("{\"choices\": ["),
            Err(ProviderError::InvalidResponse { .. })
        ));
    }
}
