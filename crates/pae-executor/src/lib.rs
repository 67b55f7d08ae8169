//! Step executors for `pae`: the part of a plan-and-execute agent that
//! carries out one plan step.
//!
//! - [`AgentExecutor`] (made by [`load_agent_executor`] or
//!   [`AgentExecutor::builder`]): a tool-using agent. It speaks text-JSON
//!   actions (a fenced `{"action": ..., "action_input": ...}` blob with a
//!   Thought / Action / Observation scratchpad, for any model) or native
//!   tool calls (for models whose capabilities advertise them), with loop
//!   rules that keep a run going: an iteration limit and a wall-clock limit
//!   with "force" or "generate" early stopping, unknown tools and bad
//!   arguments explained to the model, tool errors observed or fatal,
//!   unparseable replies fed back within a retry budget.
//! - [`ActionExecutor`]: carries out steps whose planner wrote them as
//!   actions ([`pae_core::StepAction`], ReWOO / LLMCompiler style): a tool
//!   call with its input given runs without a model call, one with its
//!   input left open costs one call that writes the arguments, and the
//!   answer step is one solver call that sees the objective and every
//!   result; other steps go to an inner executor.
//! - [`ChainExecutor`]: runs any [`pae_core::Chain`] per step.
//! - [`parse_action`]: the tolerant text-JSON action parser.
//! - [`tools`]: [`tools::Calculator`], [`tools::CurrentTime`] and
//!   [`tools::FileReader`] (confined to a root directory), and
//!   [`tools::tool_fn`], a tool from an async function whose typed argument
//!   struct's JSON schema is derived with `schemars`.
//! - [`schema::validate`]: the small JSON-schema check applied to tool
//!   arguments.
//!
//! Depend on it to wire an agent together; it depends on `pae-core` and
//! `pae-schema` only (plus `serde`, `serde_json`, `schemars`, `thiserror`,
//! `async-trait`, `cap-std` and tokio's timer). The
//! previous steps reach the model as readable text (see
//! [`render_previous_steps`]); [`HistoryPolicy::Digest`] keeps every step
//! prompt bounded on long plans, so a whole run's prompts grow linearly.
//!
//! # Feature flags
//! None. Tests use `pae-core`'s `test-util` feature (`ScriptedModel`,
//! mocks) as a dev-dependency.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use pae_core::{Executor, StepInput, Tool};
//! use pae_core::test_util::ScriptedModel;
//! use pae_executor::{AgentExecutor, EarlyStopping, HistoryPolicy, tools::Calculator};
//!
//! let model = Arc::new(ScriptedModel::new([
//!     "Thought: I need the product.\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"12 * 7\"}}\n```",
//!     "Thought: I know it.\nAction:\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"12 * 7 = 84\"}\n```",
//! ]));
//! let executor = AgentExecutor::builder(model.clone())
//!     .with_tool(Arc::new(Calculator::new()))
//!     .with_max_iterations(5)
//!     .with_early_stopping(EarlyStopping::Generate)
//!     .with_history(HistoryPolicy::LastK(3))
//!     .build()
//!     .unwrap();
//!
//! let input = StepInput::new("How much do 12 boxes of 7 cost?", "Multiply 12 by 7");
//! let response = futures::executor::block_on(executor.step(&input)).unwrap();
//! assert_eq!(response.response, "12 * 7 = 84");
//! assert_eq!(response.tool_calls.len(), 1);
//! assert_eq!(response.tool_calls[0].observation, "84");
//! // Text actions stop at "Observation:", so the model cannot invent one.
//! assert_eq!(model.requests()[0].stop, ["Observation:"]);
//! ```

mod action;
mod actions;
mod agent;
mod chain_executor;
mod error;
mod history;
pub mod prompt;
pub mod schema;
pub mod tools;

pub use action::{Action, ActionParseError, FINAL_ANSWER, is_final_answer, parse_action};
pub use actions::{
    ARGUMENTS_SYSTEM_PROMPT, ActionExecutor, DEFAULT_MAX_ARGUMENT_ATTEMPTS,
    DEFAULT_MAX_RESULT_CHARS, SOLVER_JSON_SYSTEM_PROMPT, SOLVER_SYSTEM_PROMPT,
};
pub use agent::{
    ActionFormat, AgentExecutor, AgentExecutorBuilder, AgentSettings, DEFAULT_MAX_CALLS_PER_REPLY,
    DEFAULT_MAX_ITERATIONS, DEFAULT_MAX_OBSERVATION_CHARS, DEFAULT_MAX_PARSE_RETRIES,
    EarlyStopping, INVALID_REPLY, OBSERVATION_STOP, ToolErrorPolicy, load_agent_executor,
};
pub use chain_executor::ChainExecutor;
pub use error::ConfigError;
pub use history::{
    DigestLimits, HistoryPolicy, MAX_REFERENCED, NO_PREVIOUS_STEPS, render_history,
    render_previous_steps,
};
