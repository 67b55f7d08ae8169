//! The tool contract: what an executor's agent can call.

use async_trait::async_trait;

use crate::cancel::CancelToken;
use crate::error::ToolError;
use crate::event::{EventKind, EventSink};
use crate::model::ToolSpec;
use crate::store::RunId;

/// What a tool is told about the call it serves: which run and step it
/// belongs to, an idempotency key, the run's cancellation token and its
/// event sink.
///
/// The idempotency key is the same every time this call is made again
/// after a crash and resume (`RUN/REVISION/STEP/CALL`), so a tool with side
/// effects (a payment, an e-mail) can pass it to an API that deduplicates,
/// or deduplicate itself.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub(crate) run_id: Option<RunId>,
    pub(crate) step_index: Option<usize>,
    pub(crate) call: u32,
    pub(crate) idempotency_key: String,
    pub(crate) cancel: CancelToken,
    pub(crate) events: EventSink,
}

impl Default for ToolContext {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolContext {
    /// A context for a call outside any run: no run id or step, a fresh
    /// unique idempotency key, a token nobody cancels, no event listener.
    pub fn new() -> Self {
        Self {
            run_id: None,
            step_index: None,
            call: 0,
            idempotency_key: format!("direct/{}", RunId::generate()),
            cancel: CancelToken::new(),
            events: EventSink::default(),
        }
    }

    /// The run the call belongs to, when it has an id.
    pub fn run_id(&self) -> Option<&RunId> {
        self.run_id.as_ref()
    }

    /// The step (0-based) the call belongs to.
    pub fn step_index(&self) -> Option<usize> {
        self.step_index
    }

    /// The call's number within its step (from 0).
    pub fn call(&self) -> u32 {
        self.call
    }

    /// A key that identifies this call across crashes and resumes.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// The run's cancellation token: a long tool should stop when it fires.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Reports progress of a long call as a
    /// [`ToolProgress`](EventKind::ToolProgress) event.
    pub fn progress(&self, message: impl Into<String>) {
        self.events.emit(EventKind::ToolProgress {
            step_index: self.step_index,
            call: self.call,
            message: message.into(),
        });
    }
}

/// A tool an agent can call: a name, a description and a JSON schema for the
/// model, and an async call from JSON input to text.
///
/// Object-safe: hold tools as `Arc<dyn Tool>`.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model uses to call the tool. Unique among an agent's
    /// tools.
    fn name(&self) -> &str;

    /// What the tool does and when to use it, for the model.
    fn description(&self) -> &str;

    /// A JSON schema of the input object. The default accepts any object.
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }

    /// Runs the tool.
    ///
    /// # Errors
    /// A [`ToolError`] whose message the executor shows to the model.
    async fn call(&self, input: serde_json::Value) -> Result<String, ToolError>;

    /// Runs the tool with what it is told about the call (run, step,
    /// idempotency key, cancellation, events). Executors call this one; the
    /// default ignores the context and calls [`call`](Self::call).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    async fn call_with_context(
        &self,
        input: serde_json::Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        let _ = context;
        self.call(input).await
    }

    /// Whether the tool only reads (no side effects). Read-only, idempotent
    /// tools may run concurrently and be retried.
    fn is_read_only(&self) -> bool {
        false
    }

    /// Whether calling the tool twice with the same input has the same effect
    /// as calling it once.
    fn is_idempotent(&self) -> bool {
        false
    }

    /// The specification sent to models with native tool calling.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.parameters(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;

    #[async_trait]
    impl Tool for Upper {
        fn name(&self) -> &str {
            "upper"
        }

        fn description(&self) -> &str {
            "Upper-cases {text}."
        }

        async fn call(&self, input: serde_json::Value) -> Result<String, ToolError> {
            input["text"]
                .as_str()
                .map(str::to_uppercase)
                .ok_or_else(|| ToolError::invalid_input("`text` must be a string"))
        }
    }

    #[test]
    fn default_spec_and_flags() {
        let spec = Upper.spec();
        assert_eq!(spec.name, "upper");
        assert_eq!(spec.description, "Upper-cases {text}.");
        assert_eq!(spec.parameters, serde_json::json!({"type": "object"}));
        assert!(!Upper.is_read_only());
        assert!(!Upper.is_idempotent());
    }

    #[test]
    fn mock_tools_can_be_scripted() {
        let mut tool = MockTool::new();
        tool.expect_name().return_const("calc".to_string());
        tool.expect_call()
            .withf(|input| input["expression"] == "1+1")
            .returning(|_| Ok("2".into()));
        let out = futures::executor::block_on(tool.call(serde_json::json!({"expression": "1+1"})));
        assert_eq!(tool.name(), "calc");
        assert_eq!(out, Ok("2".to_string()));
    }
}
