//! The loop settings of an [`AgentExecutor`](super::AgentExecutor), their
//! defaults and the small enums they use. They are set with the builder's
//! `with_*` methods and read back with
//! [`AgentExecutor::settings`](super::AgentExecutor::settings).

use std::time::Duration;

use pae_core::Sampling;

use crate::history::HistoryPolicy;

/// The default iteration limit per step (LangChain's).
pub const DEFAULT_MAX_ITERATIONS: usize = 15;

/// The default number of unparseable replies fed back before giving up.
pub const DEFAULT_MAX_PARSE_RETRIES: usize = 2;

/// The default limit on the tool calls run from one reply.
pub const DEFAULT_MAX_CALLS_PER_REPLY: usize = 32;

/// The default limit on an observation's length, in characters (about
/// 4,000 tokens): a tool's output longer than this is cut before it
/// reaches the prompt.
pub const DEFAULT_MAX_OBSERVATION_CHARS: usize = 16_000;

/// The stop sequence of text-JSON requests: the model must not write the
/// observation itself.
pub const OBSERVATION_STOP: &str = "Observation:";

/// The `tool` of the [`ToolInvocation`](pae_core::ToolInvocation) recorded
/// for a reply that held no usable action (its `input` is the reply, its
/// `observation` the feedback the model got).
pub const INVALID_REPLY: &str = "_invalid_reply";

/// What the step returns when a limit is hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EarlyStopping {
    /// A fixed response saying the agent stopped (LangChain's default); no
    /// further model call.
    #[default]
    Force,
    /// One last model call asking for the best final answer from the work
    /// so far. That call is not bounded by the wall-clock limit (which has
    /// passed); bound the model itself if it must be.
    Generate,
}

/// What a tool's error does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ToolErrorPolicy {
    /// The error message becomes the observation and the loop goes on.
    #[default]
    Observe,
    /// The step fails with [`ExecError::Tool`](pae_core::ExecError::Tool).
    Abort,
}

/// How the model expresses actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionFormat {
    /// Native tool calls when the model's capabilities advertise them,
    /// text-JSON otherwise.
    #[default]
    Auto,
    /// A fenced JSON action in the reply text, with a Thought / Action /
    /// Observation scratchpad; works with any model.
    TextJson,
    /// Tool specifications in the request, tool calls in the reply, results
    /// as tool messages with the call id.
    Native,
}

/// The loop settings an [`AgentExecutor`](super::AgentExecutor) was built
/// with, as [`AgentExecutor::settings`](super::AgentExecutor::settings)
/// shows them. They are set with the `with_*` methods of
/// [`AgentExecutorBuilder`](super::AgentExecutorBuilder), the one way to
/// configure an executor; each field's method says what it does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentSettings {
    /// Model calls per step before early stopping (0: stop at once).
    pub max_iterations: usize,
    /// Wall-clock limit per step; `None` for none.
    pub max_execution_time: Option<Duration>,
    /// What a limit produces.
    pub early_stopping: EarlyStopping,
    /// What a tool error does.
    pub tool_errors: ToolErrorPolicy,
    /// Unparseable replies in a row fed back to the model before the step
    /// fails.
    pub max_parse_retries: usize,
    /// How actions are expressed.
    pub action_format: ActionFormat,
    /// Which previous steps are shown in full.
    pub history: HistoryPolicy,
    /// Whether the step prompt shows the overall objective.
    pub include_task_in_prompt: bool,
    /// Whether a text reply with no action at all is taken as the answer.
    pub plain_text_answers: bool,
    /// Whether a step stopped at a limit without an answer answers with its
    /// last successful tool result instead of the fixed stopped text.
    pub last_result_on_stop: bool,
    /// Repeats of an identical successful call after which the step stops;
    /// `None` for no limit.
    pub max_repeated_calls: Option<usize>,
    /// Observations longer than this many characters are cut.
    pub max_observation_chars: usize,
    /// Tool calls run from one reply; the model is told about the rest.
    pub max_calls_per_reply: usize,
    /// Sampling settings of every request.
    pub sampling: Sampling,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_execution_time: None,
            early_stopping: EarlyStopping::Force,
            tool_errors: ToolErrorPolicy::Observe,
            max_parse_retries: DEFAULT_MAX_PARSE_RETRIES,
            action_format: ActionFormat::Auto,
            history: HistoryPolicy::All,
            include_task_in_prompt: false,
            plain_text_answers: false,
            last_result_on_stop: false,
            max_repeated_calls: None,
            max_observation_chars: DEFAULT_MAX_OBSERVATION_CHARS,
            max_calls_per_reply: DEFAULT_MAX_CALLS_PER_REPLY,
            sampling: Sampling::default(),
        }
    }
}
