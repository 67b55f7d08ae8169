//! The planner and replanner contracts (LangChain's `BasePlanner`).

use async_trait::async_trait;
use pae_schema::{Plan, Step, StepResponse};
use serde::{Deserialize, Serialize};

use crate::chain::Inputs;
use crate::context::RunContext;
use crate::error::PlanError;

/// What a planner is asked to plan.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PlanRequest {
    /// The user's objective.
    pub objective: String,
    /// Every input of the run, the objective included as `"input"` and
    /// `"objective"`.
    pub inputs: Inputs,
    /// The run's context (events, token counter).
    pub context: RunContext,
}

impl PlanRequest {
    /// A request for `objective` with no other input and a fresh context.
    pub fn new(objective: impl Into<String>) -> Self {
        let objective = objective.into();
        Self {
            inputs: crate::chain::inputs([
                ("input", objective.as_str()),
                ("objective", objective.as_str()),
            ]),
            objective,
            context: RunContext::default(),
        }
    }
}

/// Writes a plan for an objective.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Planner: Send + Sync {
    /// Plans.
    ///
    /// # Errors
    /// A [`PlanError`] when no plan could be made.
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError>;
}

/// Why the orchestrator asks for a revised plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ReplanTrigger {
    /// A step completed (the after-every-step policy).
    StepCompleted,
    /// A step hit a limit and stopped early.
    StepStopped {
        /// Which limit, in words.
        reason: String,
    },
    /// A step failed.
    StepFailed {
        /// The error, in words.
        error: String,
    },
}

/// What a replanner sees.
#[derive(Debug, Clone, Default)]
pub struct ReplanRequest {
    /// The user's objective.
    pub objective: String,
    /// The current plan.
    pub plan: Plan,
    /// The steps done so far with their responses (failed ones included).
    pub completed: Vec<(Step, StepResponse)>,
    /// The steps of the current plan not yet run.
    pub remaining: Vec<Step>,
    /// Why replanning was asked for; `None` when called directly.
    pub trigger: Option<ReplanTrigger>,
    /// The run's context.
    pub context: RunContext,
}

/// A replanner's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReplanDecision {
    /// The objective is met: this is the final answer.
    Finish {
        /// The answer.
        answer: String,
    },
    /// Go on with these steps instead of the remaining ones. An empty list
    /// ends the run with the last step's response.
    Continue {
        /// The revised remaining steps.
        steps: Vec<Step>,
    },
}

/// Revises a plan after steps ran (LangGraph's replanner).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Replanner: Send + Sync {
    /// Decides how the run goes on.
    ///
    /// # Errors
    /// A [`PlanError`] when no decision could be made.
    async fn replan(&self, request: &ReplanRequest) -> Result<ReplanDecision, PlanError>;
}
