//! The two ways `pae run` works through an objective (`--mode`): the
//! planner each uses, and the executor both share, which carries out
//! planned tool calls and writes the answer from the objective and every
//! step's result.

use std::sync::Arc;

use pae_core::{ChatModel, Executor, Planner, Tool, ToolSpec};
use pae_executor::ActionExecutor;
use pae_planner::{AnswerStepPlanner, ToolPlanner};
use serde_json::json;

use crate::cli::{AgentArgs, Mode, ToolName};

/// The planner for the mode: plan-and-solve's tool planner, or the
/// plan-and-execute planner (`text_planner`) closed by an answer step.
pub(crate) fn planner(
    model: &Arc<dyn ChatModel>,
    args: &AgentArgs,
    tools: &[Arc<dyn Tool>],
    text_planner: Arc<dyn Planner>,
) -> Arc<dyn Planner> {
    match args.mode {
        Mode::PlanAndExecute => Arc::new(AnswerStepPlanner::new(text_planner)),
        Mode::PlanAndSolve => {
            let specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec()).collect();
            let mut planner = ToolPlanner::new(Arc::clone(model), specs)
                .with_max_tool_steps(args.max_steps.saturating_sub(1).max(1) as usize);
            for (request, plan) in examples(&args.tools) {
                planner = planner.with_example(request, &plan);
            }
            Arc::new(planner)
        }
    }
}

/// The executor of both modes: planned tool calls and the answer step
/// directly, other steps with `agent`.
pub(crate) fn executor(
    model: &Arc<dyn ChatModel>,
    tools: Vec<Arc<dyn Tool>>,
    agent: Arc<dyn Executor>,
) -> Arc<dyn Executor> {
    Arc::new(ActionExecutor::new(Arc::clone(model), tools, agent))
}

/// One worked example per enabled tool, for the tool planner: each shows
/// how a later step uses an earlier result (`#E1`), and the last two how a
/// calculation on values still to be read is written (the executor has the
/// model fill it in once the values are there).
fn examples(tools: &[ToolName]) -> Vec<(&'static str, serde_json::Value)> {
    let mut out = Vec::new();
    if tools.contains(&ToolName::Calculator) {
        out.push((
            "A crate holds 12 bottles. How many bottles are in 7 crates once 5 of them break?",
            json!({"steps": [
                {"step": "Bottles in 7 crates", "tool": "calculator", "with": {"expression": "12 * 7"}},
                {"step": "Take away the 5 broken bottles", "tool": "calculator", "with": {"expression": "#E1 - 5"}}
            ]}),
        ));
    }
    if tools.contains(&ToolName::Time) && tools.contains(&ToolName::Calculator) {
        out.push((
            "How many weeks are left until Halloween?",
            json!({"steps": [
                {"step": "Days from today to 31 October", "tool": "current_time", "with": {"until": "10-31"}},
                {"step": "Turn the days into weeks", "tool": "calculator", "with": {"expression": "days in #E1 / 7"}}
            ]}),
        ));
    }
    if tools.contains(&ToolName::Files) && tools.contains(&ToolName::Calculator) {
        out.push((
            "What do the bills in bills.csv add up to?",
            json!({"steps": [
                {"step": "Read the bills", "tool": "read_file", "with": {"path": "bills.csv"}},
                {"step": "Add up the amounts", "tool": "calculator", "with": {"expression": "sum of the amounts in #E1"}}
            ]}),
        ));
    }
    out
}
