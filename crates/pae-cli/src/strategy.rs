//! The two ways `pae run` works through an objective (`--mode`): the
//! planner each uses, and the executor both share, which carries out
//! planned tool calls and writes the answer from the objective and every
//! step's result.

use std::sync::Arc;

use pae_core::{ChatModel, Executor, Planner, Tool, ToolSpec};
use pae_executor::ActionExecutor;
use pae_executor::tools::CurrentTime;
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
            if let Some(clock) = tools.iter().find(|t| t.name() == CurrentTime::NAME) {
                planner = planner.with_tool_note(
                    Arc::clone(clock),
                    json!({ "format": TODAY_FORMAT }),
                    |date| format!("Today is {date}."),
                );
            }
            Arc::new(planner)
        }
    }
}

/// The layout of today's date for the planner: the weekday, then the ISO
/// date. When the run has the time tool, the planner first asks it for
/// the date (`Today is Saturday, 2026-03-14.`, on the system clock or
/// `--now`), as a call of the run that events and the transcript show:
/// without the date small models plan date questions in the year their
/// training data ended.
const TODAY_FORMAT: &str = "%A, %Y-%m-%d";

/// The executor of both modes: planned tool calls and the answer step
/// directly, other steps with `agent`.
pub(crate) fn executor(
    model: &Arc<dyn ChatModel>,
    tools: Vec<Arc<dyn Tool>>,
    agent: Arc<dyn Executor>,
) -> Arc<dyn Executor> {
    Arc::new(ActionExecutor::new(Arc::clone(model), tools, agent))
}

/// Worked examples for the tool planner: how later steps use earlier
/// results (`#E1`) and how the last step combines them, and how values
/// are taken from a file: a table's column read as a list the calculator
/// takes as it is (no model call writes the expression). Small models copy the
/// surface of an example (an example about days until a holiday made
/// them count days from today for any question with "days" in it), so
/// there are few, each as plain as its point; the time tool's own
/// description says how to count days to a date.
fn examples(tools: &[ToolName]) -> Vec<(&'static str, serde_json::Value)> {
    let mut out = Vec::new();
    if tools.contains(&ToolName::Calculator) {
        out.push((
            "A crate holds 12 bottles and a pack holds 6. How many bottles are in 7 crates and 3 packs, once 5 of them break?",
            json!({"steps": [
                {"step": "Bottles in 7 crates", "tool": "calculator", "with": {"expression": "12 * 7"}},
                {"step": "Bottles in 3 packs", "tool": "calculator", "with": {"expression": "6 * 3"}},
                {"step": "All bottles, less the 5 broken ones", "tool": "calculator", "with": {"expression": "#E1 + #E2 - 5"}}
            ]}),
        ));
        // A fact everyone knows goes into the expression as a number,
        // rather than a step of its own with whatever tool looks closest.
        out.push((
            "How many seconds are there in 2 hours and 15 minutes?",
            json!({"steps": [
                {"step": "Seconds in 2 hours and 15 minutes", "tool": "calculator", "with": {"expression": "2 * 60 * 60 + 15 * 60"}}
            ]}),
        ));
        // The whole request in one expression, the part that is combined
        // first in parentheses, down to the last operation it asks for.
        out.push((
            "Four friends share a 72 dollar order and a 9 dollar delivery fee equally. How much does each of them pay?",
            json!({"steps": [
                {"step": "Each friend's share of the order and the fee", "tool": "calculator", "with": {"expression": "(72 + 9) / 4"}}
            ]}),
        ));
    }
    if tools.contains(&ToolName::Files) && tools.contains(&ToolName::Calculator) {
        out.push((
            "What do the bills in bills.csv add up to?",
            json!({"steps": [
                {"step": "Read the amounts of the bills", "tool": "read_file", "with": {"path": "bills.csv", "column": "amount"}},
                {"step": "Add up the amounts", "tool": "calculator", "with": {"expression": "sum(#E1)"}}
            ]}),
        ));
    }
    out
}
