//! Building the agent a run uses from its settings: tools, planner,
//! executor, replanner, budget.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pae_core::store::{Budget, ModelPrice};
use pae_core::{
    ChatModel, ExecError, Executor, Plan, PlanAndExecute, PlanError, PlanRequest, Planner,
    ReplanPolicy, Replanner, StepInput, StepResponse, Tool,
};
use pae_executor::{AgentExecutor, DigestLimits, EarlyStopping, HistoryPolicy, tools};
use pae_planner::{LlmPlanner, LlmReplanner, StructuredPlanner};

use crate::cli::{
    AgentArgs, BudgetArgs, EarlyStop, History, Objective, PlannerMode, Replan, ToolName,
};
use crate::exit::{Failure, FailureKind};

/// The tools the settings enable.
pub(crate) fn tools_for(args: &AgentArgs) -> Result<Vec<Arc<dyn Tool>>, Failure> {
    let mut list: Vec<Arc<dyn Tool>> = Vec::new();
    let mut seen = Vec::new();
    for tool in &args.tools {
        if seen.contains(tool) {
            continue;
        }
        seen.push(*tool);
        match tool {
            ToolName::Calculator => list.push(Arc::new(tools::Calculator::new())),
            ToolName::Time => {
                let clock = crate::clock::time_tool(args.now.as_deref())
                    .map_err(|err| Failure::new(FailureKind::Usage, format!("--now: {err}")))?;
                list.push(Arc::new(clock));
            }
            ToolName::Files => {
                let root = args.files_root.as_ref().ok_or_else(|| {
                    Failure::new(FailureKind::Usage, "--tools files needs --files-root DIR")
                })?;
                let reader = tools::FileReader::new(root).map_err(|err| {
                    Failure::new(
                        FailureKind::Usage,
                        format!("--files-root {}: {err}", root.display()),
                    )
                })?;
                list.push(Arc::new(reader));
            }
            ToolName::Record => list.push(Arc::new(
                crate::record::RecordTool::from_env()
                    .map_err(|why| Failure::new(FailureKind::Usage, why))?,
            )),
        }
    }
    Ok(list)
}

fn planner_for(model: &Arc<dyn ChatModel>, mode: PlannerMode) -> Arc<dyn Planner> {
    match mode {
        PlannerMode::Text => Arc::new(LlmPlanner::builder(Arc::clone(model)).build()),
        // A small model that cannot write a consistent JSON plan still gets
        // a run: a plain numbered plan is asked for instead.
        PlannerMode::Structured => {
            Arc::new(StructuredPlanner::new(Arc::clone(model)).with_fallback_on_failure(true))
        }
    }
}

fn replanner_for(model: &Arc<dyn ChatModel>, mode: PlannerMode) -> Arc<dyn Replanner> {
    Arc::new(LlmReplanner::new(Arc::clone(model)).with_json(mode == PlannerMode::Structured))
}

fn executor_for(
    model: &Arc<dyn ChatModel>,
    args: &AgentArgs,
    tools: Vec<Arc<dyn Tool>>,
) -> Result<Arc<dyn Executor>, Failure> {
    let history = match args.history {
        History::All => HistoryPolicy::All,
        History::LastK(k) => HistoryPolicy::LastK(k),
        History::Digest(None) => HistoryPolicy::digest(),
        History::Digest(Some(k)) => HistoryPolicy::Digest(DigestLimits::DEFAULT.with_recent(k)),
    };
    let mut builder = AgentExecutor::builder(Arc::clone(model));
    if args.max_repeated_calls > 0 {
        builder = builder.with_max_repeated_calls(args.max_repeated_calls as usize);
    }
    let executor = builder
        .with_tools(tools)
        .with_max_iterations(args.max_iterations as usize)
        .with_early_stopping(match args.early_stopping {
            EarlyStop::Force => EarlyStopping::Force,
            EarlyStop::Generate => EarlyStopping::Generate,
        })
        .with_history(history)
        .with_task_in_prompt(args.objective_in_steps == Objective::Show)
        // Small models keep calling a tool whose result already answers
        // the step: pass that result on rather than a "stopped" text.
        .with_last_result_on_stop(true)
        .build()
        .map_err(|err| {
            Failure::new(
                FailureKind::Usage,
                format!("cannot build the executor: {err}"),
            )
        })?;
    Ok(Arc::new(executor))
}

/// The agent for these settings, over `model`.
pub(crate) fn agent_for(
    model: &Arc<dyn ChatModel>,
    args: &AgentArgs,
) -> Result<PlanAndExecute, Failure> {
    let tools = tools_for(args)?;
    let agent_loop = executor_for(model, args, tools.clone())?;
    let executor = crate::strategy::executor(model, tools.clone(), agent_loop);
    let planner = crate::strategy::planner(model, args, &tools, planner_for(model, args.planner));
    let mut agent = PlanAndExecute::new(planner, executor)
        .with_max_steps(args.max_steps as usize)
        .with_max_replans(args.max_replans as usize)
        .with_max_concurrency(args.max_concurrency as usize);
    let policy = match args.replan {
        Replan::Never => None,
        Replan::EveryStep => Some(ReplanPolicy::AfterEveryStep),
        Replan::OnFailure => Some(ReplanPolicy::OnFailure),
    };
    if let Some(policy) = policy {
        agent = agent.with_replanner(replanner_for(model, args.planner), policy);
    }
    Ok(agent)
}

/// The budget the flags set.
pub(crate) fn budget_for(args: &BudgetArgs) -> Result<Budget, Failure> {
    let mut budget = Budget::unlimited();
    if let Some(tokens) = args.budget_tokens {
        budget = budget.with_max_tokens(tokens);
    }
    if let Some(calls) = args.budget_tool_calls {
        budget = budget.with_max_tool_calls(calls);
    }
    if let Some(seconds) = args.budget_seconds {
        let wall = Duration::try_from_secs_f64(seconds).map_err(|_| {
            Failure::new(
                FailureKind::Usage,
                format!("--budget-seconds {seconds} is not a duration"),
            )
        })?;
        budget = budget.with_max_wall_time(wall);
    }
    if let Some(cost) = args.budget_cost {
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(Failure::new(
                FailureKind::Usage,
                format!("--budget-cost {cost} is not an amount"),
            ));
        }
        budget = budget.with_max_cost(cost);
    }
    let mut prices = BTreeMap::new();
    for price in &args.price {
        let (name, amounts) = price.split_once('=').ok_or_else(|| bad_price(price))?;
        let (input, output) = amounts.split_once(':').ok_or_else(|| bad_price(price))?;
        let parse = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad_price(price))
        };
        prices.insert(
            name.trim().to_owned(),
            ModelPrice {
                input_per_million: parse(input)?,
                output_per_million: parse(output)?,
            },
        );
    }
    if args.budget_cost.is_some() && prices.is_empty() {
        return Err(Failure::new(
            FailureKind::Usage,
            "--budget-cost needs --price NAME=IN:OUT for the model",
        ));
    }
    for (name, price) in prices {
        budget = budget.with_price(name, price);
    }
    Ok(budget)
}

fn bad_price(text: &str) -> Failure {
    Failure::new(
        FailureKind::Usage,
        format!("--price {text:?}: expected NAME=INPUT:OUTPUT, prices per million tokens"),
    )
}

/// A planner for agents that only decide on stored runs (never called).
pub(crate) struct NoPlanner;

#[async_trait]
impl Planner for NoPlanner {
    async fn plan(&self, _request: &PlanRequest) -> Result<Plan, PlanError> {
        Err(PlanError::Custom("deciding on a run plans nothing".into()))
    }
}

/// An executor for agents that only decide on stored runs (never called).
pub(crate) struct NoExecutor;

#[async_trait]
impl Executor for NoExecutor {
    async fn step(&self, _input: &StepInput) -> Result<StepResponse, ExecError> {
        Err(ExecError::Custom(
            "deciding on a run executes nothing".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        let args = BudgetArgs {
            budget_tokens: Some(100),
            budget_seconds: Some(1.5),
            budget_cost: Some(0.2),
            price: vec!["m=1.5:2".into()],
            ..BudgetArgs::default()
        };
        let budget = budget_for(&args).unwrap();
        assert_eq!(budget.max_tokens, Some(100));
        assert_eq!(budget.max_wall_ms, Some(1500));
        assert_eq!(budget.prices["m"].output_per_million, 2.0);
        for bad in ["m", "m=1", "m=x:1", "m=-1:1"] {
            let args = BudgetArgs {
                price: vec![bad.into()],
                ..BudgetArgs::default()
            };
            assert_eq!(
                budget_for(&args).unwrap_err().kind,
                FailureKind::Usage,
                "{bad}"
            );
        }
        let no_price = BudgetArgs {
            budget_cost: Some(1.0),
            ..BudgetArgs::default()
        };
        assert!(budget_for(&no_price).is_err());
    }
}
