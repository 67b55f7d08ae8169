//! [`AnswerStepPlanner`]: any planner's plan, closed by an answer step, so
//! the run's answer always comes from a call that sees the objective and
//! every step's result — never from whatever the last step happened to
//! return.

use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{Plan, PlanError, PlanRequest, Planner, Step, StepAction};

use crate::prompts::ANSWER_STEP;

/// Wraps a planner and adds an answer step ([`StepAction::Answer`], text
/// [`ANSWER_STEP`]) to the end of each of its plans, unless the plan
/// already ends with one. In a plan with dependencies the answer step
/// depends on every step, so it sees every result.
///
/// Run it with an executor that carries out answer steps
/// (`pae_executor::ActionExecutor`): a stopped step's leftovers (a tool's
/// raw output, a "stopped" text, a reply that gave up) then never become
/// the answer.
///
/// ```
/// use std::sync::Arc;
/// use pae_core::test_util::ScriptedModel;
/// use pae_core::{PlanRequest, Planner, StepAction};
/// use pae_planner::{AnswerStepPlanner, load_chat_planner};
///
/// let model = Arc::new(ScriptedModel::new(["Plan:\n1. Multiply 17 by 23\n2. Add 366\n<END_OF_PLAN>"]));
/// let planner = AnswerStepPlanner::new(Arc::new(load_chat_planner(model)));
/// let plan = futures::executor::block_on(planner.plan(&PlanRequest::new("What is 17*23+366?")))?;
/// assert_eq!(plan.len(), 3);
/// assert_eq!(plan.steps[2].action, Some(StepAction::Answer));
/// # Ok::<(), pae_core::PlanError>(())
/// ```
#[derive(Clone)]
pub struct AnswerStepPlanner {
    inner: Arc<dyn Planner>,
}

impl std::fmt::Debug for AnswerStepPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStepPlanner").finish_non_exhaustive()
    }
}

impl AnswerStepPlanner {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Planner>) -> Self {
        Self { inner }
    }
}

/// `plan` ending with an answer step (added unless it has one).
pub fn with_answer_step(mut plan: Plan) -> Plan {
    if plan
        .steps
        .last()
        .is_some_and(|s| s.action == Some(StepAction::Answer))
    {
        return plan;
    }
    let mut step = Step::new(ANSWER_STEP).with_action(StepAction::Answer);
    if plan.has_dependencies() {
        let keys: Vec<String> = (0..plan.len()).filter_map(|i| plan.step_key(i)).collect();
        // Its own id must not collide with a step's.
        let mut n = plan.len() + 1;
        while keys.contains(&n.to_string()) {
            n += 1;
        }
        step = step.with_id(n.to_string()).with_depends_on(keys);
    }
    plan.steps.push(step);
    plan
}

#[async_trait]
impl Planner for AnswerStepPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        self.inner.plan(request).await.map(with_answer_step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::PlanLimits;

    #[test]
    fn dependency_plans_get_an_answer_step_that_sees_everything() {
        let plan = Plan::new([
            Step::new("a").with_id("1"),
            Step::new("b").with_id("2").with_depends_on(["1"]),
        ]);
        let plan = with_answer_step(plan);
        assert_eq!(plan.steps[2].depends_on, ["1", "2"]);
        assert_eq!(plan.steps[2].id.as_deref(), Some("3"));
        assert!(plan.validate(&PlanLimits::default()).is_ok());
        // Added once.
        assert_eq!(with_answer_step(plan.clone()), plan);
        let plain = with_answer_step(Plan::new(["x"]));
        assert_eq!(plain.steps[1].id, None);
        assert!(plain.steps[1].depends_on.is_empty());
    }
}
