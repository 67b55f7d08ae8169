//! Sequential execution: one step at a time in plan order, each seeing
//! every earlier step (LangChain's behaviour).

use std::collections::VecDeque;

use pae_schema::Step;

use crate::context::Scoped;
use crate::error::{ExecError, RunError};
use crate::event::EventKind;
use crate::planner::ReplanTrigger;
use crate::store::now_ms;
use crate::telemetry;
use tracing::Instrument;

use super::state::{Revision, RunState, failed_response, trigger_for};
use super::{PlanAndExecute, ReplanPolicy, RunOutcome};

impl PlanAndExecute {
    /// Runs steps one at a time in plan order; each sees every earlier step.
    /// The replanner, per policy, may act after any step. Returns the
    /// outcome and the replanner's answer, if it gave one, or a revision
    /// waiting for approval.
    pub(super) async fn execute_sequential(
        &self,
        run: &mut RunState,
        mut remaining: VecDeque<Step>,
    ) -> Result<(RunOutcome, Option<String>), RunError> {
        let mut outcome = RunOutcome::Completed;
        while let Some(step) = remaining.pop_front() {
            let index = run.executed;
            if index >= self.max_steps {
                return Err(RunError::TooManySteps {
                    steps: index + 1 + remaining.len(),
                    max: self.max_steps,
                });
            }
            if let Some(error) = run.halted() {
                return Err(error);
            }
            if run.context.is_observed() {
                run.context.emit(EventKind::StepStarted {
                    step_index: index,
                    step: step.clone(),
                });
            }
            // Only a commit records when the step started.
            let started_at = if run.context.store().is_some() {
                now_ms()
            } else {
                0
            };
            let input = run.step_input(index, step, run.history.clone()).await?;
            let span = telemetry::step_span(index, run.revision());
            let executing = Scoped::new(input.context.clone(), self.executor.step(&input))
                .instrument(span.clone());
            let result = run
                .context
                .cancel_token()
                .clone()
                .run_until_cancelled(executing)
                .await;
            if let Some(result) = &result {
                telemetry::record_step(&span, result);
            }
            // Release this step's handle on the history before recording, so
            // appending does not copy it.
            let step = input.into_step();
            let Some(result) = result else {
                return Err(run.cancelled());
            };
            // A step cut short by a halt (budget, call in doubt, lost lease)
            // is not committed: it runs again on resume.
            if let Some(error) = run.halted() {
                return Err(error);
            }
            let mut failure: Option<ExecError> = None;
            let trigger = match result {
                Ok(response) => {
                    let trigger = trigger_for(&response.status);
                    run.finish_step(index, step, response, started_at).await?;
                    trigger
                }
                Err(source) => {
                    if !self.can_replan(run) {
                        let response = failed_response(&source);
                        run.commit_step(index, &step, &response, started_at).await?;
                        return Err(RunError::Step {
                            index,
                            step,
                            source,
                            partial: Box::new(run.partial()),
                        });
                    }
                    let response = failed_response(&source);
                    let trigger = trigger_for(&response.status);
                    run.finish_step(index, step, response, started_at).await?;
                    failure = Some(source);
                    trigger
                }
            };
            let wants_replan = match self.replan_policy {
                ReplanPolicy::Never => false,
                ReplanPolicy::AfterEveryStep => true,
                ReplanPolicy::OnFailure => trigger != ReplanTrigger::StepCompleted,
            };
            if !wants_replan || self.replanner.is_none() {
                continue;
            }
            match self
                .replan(run, trigger, remaining.iter().cloned().collect(), failure)
                .await?
            {
                Revision::Finish(answer) => {
                    return Ok((RunOutcome::AnsweredByReplanner, Some(answer)));
                }
                Revision::Continue(steps) => {
                    if let Some(revision) = self.awaiting_approval(run).await? {
                        return Ok((RunOutcome::AwaitingApproval { revision }, None));
                    }
                    remaining = steps.into();
                }
                Revision::LimitReached => {
                    outcome = RunOutcome::ReplanLimitReached {
                        max_replans: self.max_replans,
                    };
                }
            }
        }
        Ok((outcome, None))
    }
}
