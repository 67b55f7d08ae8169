//! Test helpers (feature `test-util`): mockall mocks of the core traits and
//! [`ScriptedModel`], a chat model that plays back canned replies.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::adapter::cut_at_stop;
pub use crate::chain::MockChain;
pub use crate::executor::MockExecutor;
pub use crate::model::MockChatModel;
use crate::model::{
    Capabilities, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason,
    ToolCall, ToolCallDelta,
};
pub use crate::planner::{MockPlanner, MockReplanner};
pub use crate::tool::MockTool;
use crate::{ProviderError, TokenUsage};

/// One canned reply of a [`ScriptedModel`].
#[derive(Debug)]
pub enum ScriptedReply {
    /// Assistant text; cut at the request's earliest stop sequence.
    Text(String),
    /// Native tool calls.
    ToolCalls(Vec<ToolCall>),
    /// A whole response, used as given apart from stop-sequence cutting.
    Response(ChatResponse),
    /// A provider error.
    Error(ProviderError),
}

impl From<&str> for ScriptedReply {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for ScriptedReply {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<ChatResponse> for ScriptedReply {
    fn from(response: ChatResponse) -> Self {
        Self::Response(response)
    }
}

impl From<ProviderError> for ScriptedReply {
    fn from(error: ProviderError) -> Self {
        Self::Error(error)
    }
}

type Responder = Box<dyn Fn(&ChatRequest) -> ScriptedReply + Send + Sync>;

enum Script {
    Queue(VecDeque<ScriptedReply>),
    Responder(Responder),
}

/// How a [`ScriptedModel`] reports token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UsageMode {
    None,
    Fixed(TokenUsage),
    Estimated,
}

/// A chat model that plays back canned replies (LangChain's
/// `FakeListChatModel`).
///
/// Every request is recorded for assertions. Text replies are cut at the
/// earliest stop sequence of the request, as a real provider does. When the
/// queue is empty the model fails with [`ProviderError::Exhausted`].
///
/// ```
/// use pae_core::{ChatModel, ChatRequest, Message};
/// use pae_core::test_util::ScriptedModel;
///
/// let model = ScriptedModel::new(["Plan:\n1. a\n<END_OF_PLAN> chatter"]);
/// let request = ChatRequest::new(vec![Message::user("go")]).with_stop(["<END_OF_PLAN>"]);
/// let reply = futures::executor::block_on(model.chat(request)).unwrap();
/// assert_eq!(reply.content(), "Plan:\n1. a\n");
/// assert_eq!(model.requests()[0].stop, ["<END_OF_PLAN>"]);
/// ```
pub struct ScriptedModel {
    script: Mutex<Script>,
    requests: Mutex<Vec<ChatRequest>>,
    answered: std::sync::atomic::AtomicUsize,
    record: bool,
    usage: UsageMode,
    latency: Option<Duration>,
    capabilities: Capabilities,
    name: String,
}

impl fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// A model that answers with these replies, in order.
    pub fn new<I, R>(replies: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<ScriptedReply>,
    {
        Self::with_script(Script::Queue(replies.into_iter().map(Into::into).collect()))
    }

    /// A model that computes each reply from the request; it never runs out.
    pub fn from_fn(
        responder: impl Fn(&ChatRequest) -> ScriptedReply + Send + Sync + 'static,
    ) -> Self {
        Self::with_script(Script::Responder(Box::new(responder)))
    }

    fn with_script(script: Script) -> Self {
        Self {
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            answered: std::sync::atomic::AtomicUsize::new(0),
            record: true,
            usage: UsageMode::None,
            latency: None,
            capabilities: Capabilities {
                native_tools: false,
                json_schema: false,
                streaming: true,
            },
            name: String::from("scripted"),
        }
    }

    /// Reports this usage with every reply.
    #[must_use]
    pub fn with_usage(mut self, usage: TokenUsage) -> Self {
        self.usage = UsageMode::Fixed(usage);
        self
    }

    /// Reports usage estimated from the text: one token per four characters
    /// of prompt and of reply, rounded up.
    #[must_use]
    pub fn with_estimated_usage(mut self) -> Self {
        self.usage = UsageMode::Estimated;
        self
    }

    /// Waits this long (on tokio's clock) before every reply.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Claims these capabilities. Claiming native tools or JSON schema only
    /// changes what callers choose; the replies stay as scripted.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Sets the model name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Stops recording requests (for long benchmarks).
    #[must_use]
    pub fn without_recording(mut self) -> Self {
        self.record = false;
        self
    }

    /// Appends replies to the queue (no effect on a `from_fn` model).
    pub fn push<R: Into<ScriptedReply>>(&self, reply: R) {
        if let Script::Queue(queue) = &mut *lock(&self.script) {
            queue.push_back(reply.into());
        }
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }

    /// The number of requests answered (errors included).
    pub fn calls(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Canned replies not yet used (0 for a `from_fn` model).
    pub fn remaining(&self) -> usize {
        match &*lock(&self.script) {
            Script::Queue(queue) => queue.len(),
            Script::Responder(_) => 0,
        }
    }

    fn next_reply(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let answered = self
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.record {
            lock(&self.requests).push(request.clone());
        }
        let reply = match &mut *lock(&self.script) {
            Script::Queue(queue) => queue
                .pop_front()
                .ok_or(ProviderError::Exhausted { requests: answered })?,
            Script::Responder(responder) => responder(request),
        };
        let mut response = match reply {
            ScriptedReply::Text(text) => ChatResponse::text(text),
            ScriptedReply::ToolCalls(calls) => ChatResponse::tool_calls(calls),
            ScriptedReply::Response(response) => response,
            ScriptedReply::Error(error) => return Err(error),
        };
        let cut = cut_at_stop(&response.message.content, &request.stop).len();
        if cut < response.message.content.len() {
            response.message.content.truncate(cut);
            response.finish_reason = FinishReason::Stop;
        }
        if response.usage.is_none() {
            response.usage = match self.usage {
                UsageMode::None => None,
                UsageMode::Fixed(usage) => Some(usage),
                UsageMode::Estimated => Some(TokenUsage::new(
                    request.prompt_chars().div_ceil(4) as u64,
                    response.message.content.chars().count().div_ceil(4) as u64,
                )),
            };
        }
        Ok(response)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl ChatModel for ScriptedModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
        self.next_reply(&request)
    }

    /// Streams the reply a word at a time, tool calls in the last chunk.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let response = self.chat(request).await?;
        let mut chunks: Vec<Result<ChatChunk, ProviderError>> = response
            .message
            .content
            .split_inclusive(' ')
            .map(|piece| {
                Ok(ChatChunk {
                    delta: piece.to_owned(),
                    ..ChatChunk::default()
                })
            })
            .collect();
        chunks.push(Ok(ChatChunk {
            tool_calls: response
                .message
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, call)| ToolCallDelta {
                    index,
                    id: Some(call.id.clone()),
                    name: Some(call.name.clone()),
                    arguments: call.arguments.to_string(),
                })
                .collect(),
            usage: response.usage,
            finish_reason: Some(response.finish_reason),
            ..ChatChunk::default()
        }));
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn model_name(&self) -> String {
        self.name.clone()
    }
}

/// A shared [`ScriptedModel`], for handing to components while keeping a
/// handle to inspect requests.
pub fn shared<I, R>(replies: I) -> Arc<ScriptedModel>
where
    I: IntoIterator<Item = R>,
    R: Into<ScriptedReply>,
{
    Arc::new(ScriptedModel::new(replies))
}
