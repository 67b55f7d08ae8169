//! The chat model contract: messages, requests, responses, streaming chunks
//! and the [`ChatModel`] trait every provider adapter implements.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::ProviderError;
use pae_schema::TokenUsage;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user (LangChain's "human").
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering an assistant's tool call.
    Tool,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        })
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ToolCall {
    /// The provider's id for the call; tool results refer to it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments. When a provider sent arguments that are not valid JSON,
    /// adapters keep the raw text as a JSON string so nothing is lost and the
    /// executor can explain the problem to the model.
    pub arguments: serde_json::Value,
}

impl ToolCall {
    /// A tool call.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: serde_json::Value,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text (may be empty for an assistant message that only calls tools).
    #[serde(default)]
    pub content: String,
    /// Tool calls, on assistant messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The id of the call answered, on tool messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tool's name, on tool messages (some providers want it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn with_role(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::with_role(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::with_role(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::with_role(Role::Assistant, content)
    }

    /// An assistant message that calls tools.
    pub fn assistant_tool_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::with_role(Role::Assistant, content)
        }
    }

    /// A tool result answering the call `tool_call_id` of tool `name`.
    pub fn tool(
        tool_call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            name: Some(name.into()),
            ..Self::with_role(Role::Tool, content)
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.role, self.content)?;
        for call in &self.tool_calls {
            write!(
                f,
                "\n[tool call {} {}({})]",
                call.id, call.name, call.arguments
            )?;
        }
        Ok(())
    }
}

/// What a tool looks like to a model: its name, description and JSON schema
/// of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// A JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call the named tool.
    Tool(String),
}

/// The shape the model's text must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ResponseFormat {
    /// Any JSON value.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema (OpenAI requires one).
        name: String,
        /// The JSON schema.
        schema: serde_json::Value,
        /// Ask the provider for strict schema adherence, where supported.
        #[serde(default)]
        strict: bool,
    },
}

impl ResponseFormat {
    /// A JSON-schema format with the given name and schema, strict.
    pub fn json_schema(name: impl Into<String>, schema: serde_json::Value) -> Self {
        Self::JsonSchema {
            name: name.into(),
            schema,
            strict: true,
        }
    }
}

/// Sampling settings; `None` leaves the provider's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Sampling {
    /// Temperature (0 is greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Seed for reproducible sampling, where supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One call to a chat model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Text at which generation stops; the stop text itself is not returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Tools the model may call natively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Whether and which tool to call, when tools are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The shape of the reply, when constrained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling settings.
    #[serde(default)]
    pub sampling: Sampling,
}

impl ChatRequest {
    /// A request with these messages and default settings.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// Sets the stop sequences.
    #[must_use]
    pub fn with_stop<I, S>(mut self, stop: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the tools.
    #[must_use]
    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the response format.
    #[must_use]
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Sets the sampling settings.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets the temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.sampling.temperature = Some(temperature);
        self
    }

    /// Sets the generation limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.sampling.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.sampling.seed = Some(seed);
        self
    }

    /// The total number of characters in the messages' text, a cheap measure
    /// of prompt size.
    pub fn prompt_chars(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum()
    }

    /// Checks what no provider can answer, so adapters can reject it before
    /// any network call: a request without messages, a
    /// [`ToolChoice::Tool`] naming a tool that is not in
    /// [`tools`](Self::tools), or [`ToolChoice::Required`] without tools.
    ///
    /// # Errors
    /// [`ProviderError::InvalidRequest`] saying what is wrong.
    pub fn validate(&self) -> Result<(), ProviderError> {
        if self.messages.is_empty() {
            return Err(ProviderError::invalid_request(
                "the request has no messages",
            ));
        }
        match &self.tool_choice {
            Some(ToolChoice::Tool(name)) if !self.tools.iter().any(|t| &t.name == name) => {
                Err(ProviderError::invalid_request(format!(
                    "the tool choice names {name:?}, which is not among the request's tools"
                )))
            }
            Some(ToolChoice::Required) if self.tools.is_empty() => Err(
                ProviderError::invalid_request("a tool call is required but no tool is given"),
            ),
            _ => Ok(()),
        }
    }
}

/// Why the model stopped generating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
    /// A reason the provider named that maps to none of the above.
    Other(String),
}

impl FinishReason {
    /// The reason's name: `stop`, `length`, `tool_calls`, `content_filter`,
    /// or the provider's own word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other(other) => other,
        }
    }
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ChatResponse {
    /// The assistant message: text and/or tool calls.
    pub message: Message,
    /// Tokens used, when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Why generation stopped.
    #[serde(default)]
    pub finish_reason: FinishReason,
}

impl ChatResponse {
    /// A text reply that stopped naturally.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            message: Message::assistant(content),
            usage: None,
            finish_reason: FinishReason::Stop,
        }
    }

    /// A reply that calls tools.
    pub fn tool_calls(calls: Vec<ToolCall>) -> Self {
        Self {
            message: Message::assistant_tool_calls("", calls),
            usage: None,
            finish_reason: FinishReason::ToolCalls,
        }
    }

    /// Sets the usage.
    #[must_use]
    pub fn with_usage(mut self, usage: TokenUsage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The reply's text.
    pub fn content(&self) -> &str {
        &self.message.content
    }
}

/// A fragment of a tool call in a stream. Fragments with the same `index`
/// belong to the same call; `arguments` fragments concatenate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ToolCallDelta {
    /// Which call of the reply this fragment belongs to.
    pub index: usize,
    /// The call's id, usually on the first fragment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name, usually on the first fragment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments text.
    #[serde(default)]
    pub arguments: String,
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ChatChunk {
    /// New text.
    #[serde(default)]
    pub delta: String,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// Usage, usually on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Why generation stopped, on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

/// A stream of reply chunks.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// Folds streamed chunks into a [`ChatResponse`]: text concatenated, tool-call
/// fragments joined by index, the last usage and finish reason kept.
#[derive(Debug, Clone, Default)]
pub struct StreamAccumulator {
    text: String,
    calls: Vec<ToolCallDelta>,
    /// Where each call index sits in `calls`, so that a fragment finds its
    /// call in one lookup however many calls the reply has (a search of
    /// `calls` made replies with many calls cost quadratic time).
    slots: HashMap<usize, usize>,
    usage: Option<TokenUsage>,
    finish_reason: Option<FinishReason>,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        self.text.push_str(&chunk.delta);
        for delta in &chunk.tool_calls {
            let next = self.calls.len();
            let position = *self.slots.entry(delta.index).or_insert(next);
            if position == next {
                self.calls.push(ToolCallDelta {
                    index: delta.index,
                    ..ToolCallDelta::default()
                });
            }
            let slot = &mut self.calls[position];
            if delta.id.is_some() {
                slot.id.clone_from(&delta.id);
            }
            if let Some(name) = &delta.name {
                match &mut slot.name {
                    // llama-cpp-python repeats the whole name on every fragment.
                    Some(known) if known == name => {}
                    Some(known) => known.push_str(name),
                    None => slot.name = Some(name.clone()),
                }
            }
            slot.arguments.push_str(&delta.arguments);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason.clone_from(&chunk.finish_reason);
        }
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The complete response. Tool-call arguments that are not valid JSON are
    /// kept as a JSON string; a call without an id gets `call_<index>`.
    pub fn finish(mut self) -> ChatResponse {
        self.calls.sort_by_key(|c| c.index);
        let calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id.unwrap_or_else(|| format!("call_{}", c.index)),
                name: c.name.unwrap_or_default(),
                arguments: parse_arguments(&c.arguments),
            })
            .collect();
        let finish_reason = self.finish_reason.unwrap_or(if calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        ChatResponse {
            message: Message::assistant_tool_calls(self.text, calls),
            usage: self.usage,
            finish_reason,
        }
    }
}

/// Parses tool-call arguments text; empty text is `{}` and invalid JSON is
/// kept verbatim as a JSON string.
pub fn parse_arguments(text: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// What a model can do beyond plain chat. Callers pick strategies from it
/// (native tool calls or text actions, structured or text plans), so adapters
/// must claim only what works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Capabilities {
    /// Tool specifications are honoured and tool calls come back structured.
    pub native_tools: bool,
    /// A JSON-schema response format is enforced.
    pub json_schema: bool,
    /// `stream` yields chunks as they are generated.
    pub streaming: bool,
}

/// A chat model: one request in, one reply out.
///
/// Object-safe, so models can be held as `Arc<dyn ChatModel>` and swapped at
/// run time. Only [`chat`](Self::chat) is required; [`stream`](Self::stream)
/// defaults to one chunk built from the full reply and
/// [`capabilities`](Self::capabilities) to none.
///
/// Implementations must honour `stop` (cut the text before the earliest stop
/// sequence) and should report usage.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Sends the request and waits for the whole reply.
    ///
    /// # Errors
    /// A [`ProviderError`] describing what failed; see
    /// [`ProviderError::is_retryable`].
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// Sends the request and returns the reply as a stream of chunks.
    ///
    /// # Errors
    /// A [`ProviderError`] if the request could not be started; errors in
    /// the middle of the stream come as stream items.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let response = self.chat(request).await?;
        Ok(Box::pin(futures::stream::once(async move {
            Ok(chunk_from_response(response))
        })))
    }

    /// What this model supports.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// A short name for logs and transcripts (for example the model id).
    fn model_name(&self) -> String {
        String::from("unnamed")
    }
}

/// One chunk that carries a whole response.
pub fn chunk_from_response(response: ChatResponse) -> ChatChunk {
    ChatChunk {
        delta: response.message.content,
        tool_calls: response
            .message
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(index, call)| ToolCallDelta {
                index,
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments.to_string(),
            })
            .collect(),
        usage: response.usage,
        finish_reason: Some(response.finish_reason),
    }
}

/// What `async_trait` methods return.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// The async methods are written out as `async_trait` expands them, to hand
// back the inner future instead of boxing another around it on every call.
impl<M: ChatModel + ?Sized> ChatModel for std::sync::Arc<M> {
    fn chat<'life0, 'async_trait>(
        &'life0 self,
        request: ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatResponse, ProviderError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).chat(request)
    }

    fn stream<'life0, 'async_trait>(
        &'life0 self,
        request: ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatStream, ProviderError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).stream(request)
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn model_name(&self) -> String {
        (**self).model_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn accumulator_joins_tool_call_fragments() {
        let mut acc = StreamAccumulator::new();
        acc.push(&ChatChunk {
            delta: "Hel".into(),
            ..ChatChunk::default()
        });
        acc.push(&ChatChunk {
            delta: "lo".into(),
            tool_calls: vec![ToolCallDelta {
                index: 0,
                id: Some("c1".into()),
                name: Some("calc".into()),
                arguments: "{\"expr".into(),
            }],
            ..ChatChunk::default()
        });
        acc.push(&ChatChunk {
            tool_calls: vec![ToolCallDelta {
                index: 0,
                arguments: "ession\":\"1+1\"}".into(),
                ..ToolCallDelta::default()
            }],
            usage: Some(TokenUsage::new(5, 2)),
            finish_reason: Some(FinishReason::ToolCalls),
            ..ChatChunk::default()
        });
        let response = acc.finish();
        assert_eq!(response.content(), "Hello");
        assert_eq!(
            response.message.tool_calls,
            vec![ToolCall::new(
                "c1",
                "calc",
                serde_json::json!({"expression": "1+1"})
            )]
        );
        assert_eq!(response.usage, Some(TokenUsage::new(5, 2)));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn validate_rejects_what_no_provider_can_answer() {
        let spec = ToolSpec {
            name: "calc".into(),
            description: "math".into(),
            parameters: serde_json::json!({"type": "object"}),
        };
        let ok = ChatRequest::new(vec![Message::user("hi")]);
        assert!(ok.validate().is_ok());
        assert!(
            ok.clone()
                .with_tools(vec![spec.clone()])
                .with_tool_choice(ToolChoice::Tool("calc".into()))
                .validate()
                .is_ok()
        );
        let invalid = [
            ChatRequest::new(Vec::new()),
            ok.clone()
                .with_tools(vec![spec])
                .with_tool_choice(ToolChoice::Tool("other".into())),
            ok.with_tool_choice(ToolChoice::Required),
        ];
        for request in invalid {
            let err = request.validate().unwrap_err();
            assert!(matches!(err, ProviderError::InvalidRequest { .. }), "{err}");
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn accumulator_finds_each_call_through_its_index_map_however_many_calls() {
        // Issue 17: a reply with many tool calls cost quadratic time, each
        // fragment searching every call before it. 20,000 calls in three
        // fragments each, the later fragments arriving after every first
        // one (no "same as the last call" shortcut helps).
        const CALLS: usize = 20_000;
        let mut acc = StreamAccumulator::new();
        let fragment = |index: usize, part: &str, first: bool| ChatChunk {
            tool_calls: vec![ToolCallDelta {
                index,
                id: first.then(|| format!("c{index}")),
                name: first.then(|| "calc".to_owned()),
                arguments: part.to_owned(),
            }],
            ..ChatChunk::default()
        };
        for index in (0..CALLS).rev() {
            acc.push(&fragment(index, "{\"n\":", true));
        }
        for part in ["1", "}"] {
            for index in 0..CALLS {
                acc.push(&fragment(index, part, false));
            }
        }
        // The structure that keeps merging linear: every call is found
        // through the index map, not by a search.
        assert_eq!(acc.slots.len(), CALLS);
        assert!(
            acc.slots
                .iter()
                .all(|(&index, &at)| acc.calls[at].index == index)
        );
        let calls = acc.finish().message.tool_calls;
        assert_eq!(calls.len(), CALLS);
        assert!(
            calls
                .iter()
                .enumerate()
                .all(|(index, call)| call.id == format!("c{index}")
                    && call.arguments == serde_json::json!({"n": 1}))
        );
    }

    #[test]
    fn accumulator_keeps_a_name_repeated_on_every_fragment_once() {
        let mut acc = StreamAccumulator::new();
        for arguments in ["{\"city\"", ":\"Paris\"}"] {
            acc.push(&ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index: 0,
                    id: Some("c1".into()),
                    name: Some("get_weather".into()),
                    arguments: arguments.into(),
                }],
                ..ChatChunk::default()
            });
        }
        assert_eq!(
            acc.finish().message.tool_calls,
            vec![ToolCall::new(
                "c1",
                "get_weather",
                serde_json::json!({"city": "Paris"})
            )]
        );
    }

    struct Echo;

    #[async_trait]
    impl ChatModel for Echo {
        async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
            let last = request
                .messages
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            Ok(ChatResponse::text(last))
        }
    }

    #[test]
    fn default_stream_is_one_chunk_of_the_full_reply() {
        let chunks: Vec<_> = futures::executor::block_on(async {
            Echo.stream(ChatRequest::new(vec![Message::user("hi")]))
                .await
                .unwrap()
                .collect::<Vec<_>>()
                .await
        });
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].as_ref().unwrap().delta, "hi");
        assert_eq!(Echo.capabilities(), Capabilities::default());
    }
}
