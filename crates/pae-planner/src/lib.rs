//! LLM planners for `pae`: the chat planner of LangChain's plan-and-execute
//! agent with a parser that survives imperfect models, JSON plans with step
//! dependencies, and a replanner that revises a plan while it runs.
//!
//! - [`load_chat_planner`] / [`LlmPlanner`]: LangChain's `load_chat_planner`
//!   and `LLMPlanner`. A literal system message (ours, asking for a `Plan:`
//!   header, a numbered list, as few steps as needed, a last step that
//!   answers a question, and `<END_OF_PLAN>`), the objective as the human
//!   message, stop `["<END_OF_PLAN>"]`. [`LlmPlanner::builder`] takes a custom
//!   prompt, stop list, limits, sampling and a retry budget.
//! - [`PlanningOutputParser`]: the same steps as LangChain's parser for text
//!   in its format, and sensible steps for what models actually write (a
//!   step on the first line, `1)`, `Step 1:`, `**1.**`, bullets, sub-lists,
//!   a year at the start of a line, CRLF, a leaked end marker, trailing
//!   chatter). Its rules are listed on the type.
//! - [`StructuredPlanner`] / [`StructuredPlanParser`]: when the model
//!   enforces JSON schemas ([`pae_core::Capabilities::json_schema`]), asks
//!   for `{"steps": [{"id", "description", "depends_on"}]}`
//!   ([`prompts::plan_schema`]),
//!   retries with the error fed back, and falls back to the text planner for
//!   other models.
//! - [`LlmReplanner`] / [`ReplanOutputParser`]: a [`pae_core::Replanner`] for
//!   [`pae_core::PlanAndExecute::with_replanner`]; the model sees the
//!   objective, the plan, what was done with its results and why it is asked,
//!   and answers with a final answer or the revised remaining steps.
//! - [`ToolPlanner`] / [`ToolPlanParser`]: plan-and-solve plans (ReWOO,
//!   LLMCompiler): one call that sees the whole objective writes every step
//!   as a tool call with its arguments, under a JSON-schema grammar built
//!   from the tools, with `#E1` references to earlier results, and the plan
//!   ends with an answer step.
//! - [`AnswerStepPlanner`]: closes any planner's plans with an answer step,
//!   so the answer comes from a call that sees the objective and every
//!   result.
//! - [`prompts`]: the default prompts, the end marker and the JSON schemas,
//!   for a custom prompt that starts from ours.
//!
//! Every planner validates its plan ([`pae_core::Plan::validate`] with
//! [`pae_core::PlanLimits`]) before returning it, records the token usage of
//! each model call in the run's context, and never panics on model output
//! (property-tested, and fuzzed by the target in `fuzz/`).
//!
//! Depend on this crate when you wire a plan-and-execute agent and want
//! model-written plans; it depends only on `pae-core` and `serde_json`.
//!
//! # Feature flags
//! This crate has no feature flags.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use pae_core::{PlanAndExecute, PlanOutputParser, ReplanPolicy, StepResponse};
//! use pae_core::test_util::{MockExecutor, ScriptedModel};
//! use pae_planner::{LlmReplanner, PlanningOutputParser, load_chat_planner};
//!
//! // The parser alone, on output that LangChain's parser turns into nothing:
//! let plan = PlanningOutputParser::new().parse("1) **Search** the web\n2) Answer")?;
//! assert_eq!(plan.to_string(), "1. **Search** the web\n2. Answer");
//!
//! // A planner and a replanner in a run (a scripted model stands in for a real one).
//! let model = Arc::new(ScriptedModel::new([
//!     "Plan:\n1. Look up the price\n2. Answer the question\n<END_OF_PLAN>",
//!     "FINAL ANSWER: It costs 3 euros.",
//! ]));
//! let mut executor = MockExecutor::new();
//! executor.expect_step().returning(|_| Ok(StepResponse::new("3 euros")));
//! let agent = PlanAndExecute::new(Arc::new(load_chat_planner(model.clone())), Arc::new(executor))
//!     .with_replanner(Arc::new(LlmReplanner::new(model.clone())), ReplanPolicy::AfterEveryStep);
//! let result = futures::executor::block_on(agent.run("How much is a coffee?"))?;
//! assert_eq!(result.output, "It costs 3 euros.");
//! assert_eq!(result.steps.len(), 1);
//! assert_eq!(model.requests()[0].stop, ["<END_OF_PLAN>"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod answer_step;
mod json;
mod marker;
mod noise;
mod planner;
pub mod prompts;
mod replan_parser;
mod replanner;
mod retry;
mod structured;
mod text;
mod tool_plan;

pub use answer_step::{AnswerStepPlanner, with_answer_step};
pub use planner::{
    LlmPlanner, LlmPlannerBuilder, StructuredPlanner, load_chat_planner, load_structured_planner,
};
pub use replan_parser::ReplanOutputParser;
pub use replanner::LlmReplanner;
pub use structured::StructuredPlanParser;
pub use text::PlanningOutputParser;
pub use tool_plan::{DEFAULT_MAX_TOOL_STEPS, ToolPlanParser, ToolPlanner, tool_plan_schema};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<LlmPlanner>();
        assert_send_sync::<LlmPlannerBuilder>();
        assert_send_sync::<StructuredPlanner>();
        assert_send_sync::<LlmReplanner>();
        assert_send_sync::<PlanningOutputParser>();
        assert_send_sync::<StructuredPlanParser>();
        assert_send_sync::<ReplanOutputParser>();
        assert_send_sync::<ToolPlanner>();
        assert_send_sync::<AnswerStepPlanner>();
    }
}
