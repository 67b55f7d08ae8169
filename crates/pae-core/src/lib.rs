//! The contracts and the orchestrator of `pae`, a plan-and-execute agent
//! library.
//!
//! A plan-and-execute agent lets one model write a numbered plan for an
//! objective, then has an executor (usually a tool-using agent) carry out
//! each step; every step's response is collected and the last one answers
//! the objective. This crate holds:
//!
//! - the contracts everything else implements: [`ChatModel`] (provider
//!   adapters), [`Tool`], [`Planner`], [`Replanner`], [`Executor`] and
//!   [`Chain`];
//! - prompt templates ([`PromptTemplate`], [`ChatPromptTemplate`]) and
//!   [`LlmChain`];
//! - [`PlanAndExecute`], the orchestrator, with replanning policies, step
//!   limits, token accounting and events (a callback or a `Stream`);
//! - middleware over any model ([`Retry`], [`Timeout`],
//!   [`SamplingDefaults`], through [`ChatModelExt`]);
//! - [`output`]: reading what models write around an answer (reasoning
//!   blocks, JSON in fences or prose, near-JSON), shared by the planners
//!   and executors;
//! - [`adapter`]: helpers for adapter authors (cutting at stop sequences,
//!   reading tool-call arguments);
//! - behind the `test-util` feature, mocks of every trait and
//!   [`test_util::ScriptedModel`].
//!
//! Depend on it when you write a provider adapter, a tool, a planner or an
//! executor, or when you wire an agent together. Strategies live in
//! `pae-planner` and `pae-executor`, providers in the adapter crates (what
//! HTTP adapters share in `pae-http`: this crate has no HTTP code); the
//! plain data types come from `pae-schema` and are re-exported here.
//!
//! # Feature flags
//! - `test-util`: `MockChatModel`, `MockTool`, `MockPlanner`,
//!   `MockReplanner`, `MockExecutor`, `MockChain` (mockall) and
//!   `ScriptedModel` in [`test_util`]. Off by default; enable it in
//!   `[dev-dependencies]`.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use pae_core::{Executor, ExecError, Plan, PlanAndExecute, PlanError, PlanRequest, Planner,
//!     StepInput, StepResponse};
//!
//! struct TwoSteps;
//! #[async_trait]
//! impl Planner for TwoSteps {
//!     async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
//!         Ok(Plan::new([format!("think about {}", request.objective), "answer".into()]))
//!     }
//! }
//!
//! struct Echo;
//! #[async_trait]
//! impl Executor for Echo {
//!     async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
//!         Ok(StepResponse::new(format!("{} (after {} steps)",
//!             input.current_step.value, input.previous_steps.len())))
//!     }
//! }
//!
//! let agent = PlanAndExecute::new(Arc::new(TwoSteps), Arc::new(Echo));
//! let result = futures::executor::block_on(agent.run("tea")).unwrap();
//! assert_eq!(result.output, "answer (after 1 steps)");
//! assert_eq!(result.plans[0].to_string(), "1. think about tea\n2. answer");
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
mod arc;
mod cancel;
mod chain;
mod context;
mod error;
mod event;
mod executor;
mod middleware;
mod model;
pub mod output;
mod plan_execute;
mod planner;
mod prompt;
pub mod store;
pub mod telemetry;
mod tool;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use cancel::CancelToken;
pub use chain::{Chain, Inputs, LlmChain, inputs, run_chain};
pub use context::RunContext;
pub use error::{
    BoxError, ChainError, ExecError, PartialRun, PlanError, ProviderError, ProviderErrorKind,
    RunError, TemplateError, ToolError,
};
pub use event::{Event, EventCallback, EventKind, EventSink, RepairKind, RequestSummary};
pub use executor::{Executor, StepHistory, StepInput};
pub use middleware::{ChatModelExt, Retry, RetryPolicy, SamplingDefaults, Timeout};
pub use model::{
    Capabilities, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason,
    Message, ResponseFormat, Role, Sampling, StreamAccumulator, ToolCall, ToolCallDelta,
    ToolChoice, ToolSpec,
};
pub use plan_execute::{
    AnswerProblem, DEFAULT_LEASE_TTL, DEFAULT_MAX_REPLANS, DEFAULT_MAX_STEPS, Decision,
    FailurePolicy, PlanAndExecute, ReplanPolicy, RunOutcome, RunRequest, RunResult, RunUpdate,
    Scheduling, answer_problems, error_chain,
};
pub use planner::{PlanRequest, Planner, ReplanDecision, ReplanRequest, ReplanTrigger, Replanner};
pub use prompt::{ChatPromptTemplate, PromptTemplate, PromptValues};
pub use store::{ApprovalPolicy, Budget, MemoryStore, RunId, RunStatus, RunStore, StoreError};
pub use tool::{Tool, ToolContext};

pub use pae_schema::{
    ContainerError, ListStepContainer, Plan, PlanLimits, PlanOutputParser, PlanParseError,
    PlanValidationError, Step, StepAction, StepContainer, StepResponse, StepStatus, TokenUsage,
    ToolInvocation,
};
