//! The TinyChat API's JSON bodies, and their translation to and from pae's
//! types. Nothing here is public: the adapter's users see only pae types.

use pae_core::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, ProviderError, ResponseFormat,
    Role, TokenUsage, ToolCall, ToolCallDelta, ToolChoice,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /generate`.
#[derive(Debug, Serialize)]
pub(crate) struct GenerateRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    force_tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<Value>,
    stream: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage {
    role: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    calls: Vec<WireCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireCall {
    id: String,
    tool: String,
    #[serde(default)]
    input: Value,
}

#[derive(Debug, Serialize)]
struct WireTool {
    name: String,
    description: String,
    input_schema: Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct WireTokens {
    #[serde(rename = "in")]
    input: u64,
    out: u64,
}

/// The body of a non-streamed reply.
#[derive(Debug, Deserialize)]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    text: String,
    #[serde(default)]
    calls: Vec<WireCall>,
    end: String,
    tokens: Option<WireTokens>,
}

/// One NDJSON line of a streamed reply; the last one carries `end`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamEvent {
    #[serde(default)]
    text: String,
    #[serde(default)]
    calls: Vec<WireCall>,
    end: Option<String>,
    tokens: Option<WireTokens>,
}

impl GenerateRequest {
    /// Translates a pae request. The API has no "call some tool" switch, so
    /// [`ToolChoice::Required`] works only when a single tool is offered.
    ///
    /// # Errors
    /// [`ProviderError::InvalidRequest`] for requests no provider can answer,
    /// [`ProviderError::Unsupported`] for a `Required` choice among several
    /// tools.
    pub(crate) fn new(
        model: &str,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<Self, ProviderError> {
        request.validate()?;
        let (tools, force_tool) = match &request.tool_choice {
            Some(ToolChoice::None) => (Vec::new(), None),
            Some(ToolChoice::Tool(name)) => (request.tools.clone(), Some(name.clone())),
            Some(ToolChoice::Required) => match request.tools.as_slice() {
                [only] => (request.tools.clone(), Some(only.name.clone())),
                _ => {
                    return Err(ProviderError::Unsupported {
                        feature: "requiring a call among several tools".into(),
                    });
                }
            },
            Some(ToolChoice::Auto) | None => (request.tools.clone(), None),
        };
        let schema = request.response_format.as_ref().map(|format| match format {
            ResponseFormat::JsonObject => serde_json::json!({"type": "object"}),
            ResponseFormat::JsonSchema { schema, .. } => schema.clone(),
        });
        Ok(Self {
            model: model.to_owned(),
            messages: request.messages.iter().map(WireMessage::from).collect(),
            stop: request.stop.clone(),
            limit: request.sampling.max_tokens,
            temperature: request.sampling.temperature,
            seed: request.sampling.seed,
            tools: tools
                .into_iter()
                .map(|tool| WireTool {
                    name: tool.name,
                    description: tool.description,
                    input_schema: tool.parameters,
                })
                .collect(),
            force_tool,
            schema,
            stream,
        })
    }
}

impl From<&Message> for WireMessage {
    fn from(message: &Message) -> Self {
        Self {
            role: match message.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            },
            text: message.content.clone(),
            calls: message
                .tool_calls
                .iter()
                .map(|call| WireCall {
                    id: call.id.clone(),
                    tool: call.name.clone(),
                    input: call.arguments.clone(),
                })
                .collect(),
            call_id: message.tool_call_id.clone(),
            tool: message.name.clone(),
        }
    }
}

fn finish_reason(end: &str) -> FinishReason {
    match end {
        "done" => FinishReason::Stop,
        "limit" => FinishReason::Length,
        "calls" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn usage(tokens: WireTokens) -> TokenUsage {
    TokenUsage::new(tokens.input, tokens.out)
}

impl From<WireCall> for ToolCall {
    fn from(call: WireCall) -> Self {
        Self::new(call.id, call.tool, call.input)
    }
}

impl From<GenerateResponse> for ChatResponse {
    fn from(reply: GenerateResponse) -> Self {
        Self {
            message: Message::assistant_tool_calls(
                reply.text,
                reply.calls.into_iter().map(ToolCall::from).collect(),
            ),
            usage: reply.tokens.map(usage),
            finish_reason: finish_reason(&reply.end),
        }
    }
}

impl From<StreamEvent> for ChatChunk {
    fn from(event: StreamEvent) -> Self {
        Self {
            delta: event.text,
            tool_calls: event
                .calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| ToolCallDelta {
                    index,
                    id: Some(call.id),
                    name: Some(call.tool),
                    arguments: call.input.to_string(),
                })
                .collect(),
            usage: event.tokens.map(usage),
            finish_reason: event.end.as_deref().map(finish_reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::ToolSpec;
    use serde_json::json;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        }
    }

    #[test]
    fn request_carries_every_setting_in_the_api_names() {
        let request = ChatRequest::new(vec![
            Message::user("hi"),
            Message::assistant_tool_calls("", vec![ToolCall::new("c1", "t", json!({"a": 1}))]),
            Message::tool("c1", "t", "done"),
        ])
        .with_stop(["END"])
        .with_max_tokens(7)
        .with_temperature(0.0)
        .with_seed(3)
        .with_tools(vec![spec("t")])
        .with_tool_choice(ToolChoice::Tool("t".into()))
        .with_response_format(ResponseFormat::JsonObject);
        let body =
            serde_json::to_value(GenerateRequest::new("m", &request, true).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "user", "text": "hi"},
                    {"role": "assistant", "text": "", "calls": [{"id": "c1", "tool": "t", "input": {"a": 1}}]},
                    {"role": "tool", "text": "done", "call_id": "c1", "tool": "t"}
                ],
                "stop": ["END"],
                "limit": 7,
                "temperature": 0.0,
                "seed": 3,
                "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
                "force_tool": "t",
                "schema": {"type": "object"},
                "stream": true
            })
        );
    }

    #[test]
    fn tool_choices_map_to_what_the_api_can_express() {
        let base = ChatRequest::new(vec![Message::user("hi")]);
        let none = base
            .clone()
            .with_tools(vec![spec("a")])
            .with_tool_choice(ToolChoice::None);
        let body = serde_json::to_value(GenerateRequest::new("m", &none, false).unwrap()).unwrap();
        assert!(body.get("tools").is_none() && body.get("force_tool").is_none());

        let required = base
            .clone()
            .with_tools(vec![spec("a")])
            .with_tool_choice(ToolChoice::Required);
        let body =
            serde_json::to_value(GenerateRequest::new("m", &required, false).unwrap()).unwrap();
        assert_eq!(body["force_tool"], "a");

        let ambiguous = base
            .with_tools(vec![spec("a"), spec("b")])
            .with_tool_choice(ToolChoice::Required);
        assert!(matches!(
            GenerateRequest::new("m", &ambiguous, false),
            Err(ProviderError::Unsupported { .. })
        ));
        assert!(matches!(
            GenerateRequest::new("m", &ChatRequest::new(Vec::new()), false),
            Err(ProviderError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn replies_and_events_become_pae_types() {
        let reply: GenerateResponse = serde_json::from_value(json!({
            "text": "", "calls": [{"id": "x", "tool": "t", "input": {"q": 1}}],
            "end": "calls", "tokens": {"in": 5, "out": 2}
        }))
        .unwrap();
        let reply = ChatResponse::from(reply);
        assert_eq!(
            reply.message.tool_calls,
            [ToolCall::new("x", "t", json!({"q": 1}))]
        );
        assert_eq!(reply.usage, Some(TokenUsage::new(5, 2)));
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls);

        let event: StreamEvent =
            serde_json::from_value(json!({"end": "limit", "tokens": {"in": 1, "out": 4}})).unwrap();
        let chunk = ChatChunk::from(event);
        assert_eq!(chunk.finish_reason, Some(FinishReason::Length));
        assert_eq!(chunk.usage, Some(TokenUsage::new(1, 4)));
        assert_eq!(
            finish_reason("melted"),
            FinishReason::Other("melted".into())
        );
    }
}
