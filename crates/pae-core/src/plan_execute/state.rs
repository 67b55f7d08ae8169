//! The state of one run while it executes, and the small helpers the loops
//! share.

use pae_schema::{Plan, Step, StepContainer, StepResponse, StepStatus, TokenUsage};

use crate::chain::Inputs;
use crate::context::{Halt, RunContext};
use crate::error::{ExecError, PartialRun, RunError};
use crate::event::EventKind;
use crate::executor::{StepHistory, StepInput};
use crate::planner::ReplanTrigger;
use crate::store::{CallScope, Commit, Interruption, StepRecord, StoreError, now_ms};

use super::result::error_chain;

/// What the replanner decided, as the loops need it.
pub(super) enum Revision {
    Finish(String),
    Continue(Vec<Step>),
    LimitReached,
}

/// The replan trigger a step's status stands for.
pub(super) fn trigger_for(status: &StepStatus) -> ReplanTrigger {
    match status {
        StepStatus::Completed => ReplanTrigger::StepCompleted,
        StepStatus::Stopped { reason } => ReplanTrigger::StepStopped {
            reason: reason.clone(),
        },
        StepStatus::Failed { error } => ReplanTrigger::StepFailed {
            error: error.clone(),
        },
        StepStatus::Skipped { reason } => ReplanTrigger::StepFailed {
            error: reason.clone(),
        },
    }
}

/// The response recorded for a step whose executor failed.
pub(super) fn failed_response(source: &ExecError) -> StepResponse {
    let error = error_chain(source);
    StepResponse::new(format!("Error: {error}")).with_status(StepStatus::Failed { error })
}

/// The state of one run.
pub(super) struct RunState {
    pub(super) plans: Vec<Plan>,
    /// The container `with_container` asked for; `None` for the default
    /// list, which would hold exactly what the history holds: the history
    /// is then the container, and each step is kept once.
    pub(super) container: Option<Box<dyn StepContainer>>,
    /// The same pairs as the container, shared cheaply with each step.
    pub(super) history: StepHistory,
    pub(super) executed: usize,
    pub(super) context: RunContext,
    pub(super) objective: String,
    pub(super) inputs: Inputs,
    /// Steps committed in an earlier session that are not yet in the
    /// history (a dependency plan commits steps out of order), by index.
    pub(super) committed: std::collections::BTreeMap<usize, StepResponse>,
    /// When plans need approval.
    pub(super) approval: crate::store::ApprovalPolicy,
    /// Revisions a person approved.
    pub(super) approved: std::collections::BTreeSet<u32>,
}

impl RunState {
    /// The input of step `index`, with a context scoped to the step.
    pub(super) async fn step_input(
        &self,
        index: usize,
        step: Step,
        previous: StepHistory,
    ) -> Result<StepInput, RunError> {
        let scope = CallScope::Step {
            revision: self.revision(),
            index,
        };
        Ok(StepInput {
            objective: self.objective.clone(),
            current_step: step,
            index,
            previous_steps: previous,
            inputs: self.inputs.clone(),
            context: self.context.scoped(scope).await?,
        })
    }

    /// The current plan revision.
    pub(super) fn revision(&self) -> u32 {
        u32::try_from(self.plans.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Emits `StepFinished`, commits the step and records it.
    pub(super) async fn finish_step(
        &mut self,
        index: usize,
        step: Step,
        response: StepResponse,
        started_at_ms: u64,
    ) -> Result<(), RunError> {
        self.commit_step(index, &step, &response, started_at_ms)
            .await?;
        self.store(step, response);
        Ok(())
    }

    /// Emits `StepFinished` and commits the step to the run store (for
    /// durable runs): from here on it never runs again.
    pub(super) async fn commit_step(
        &self,
        index: usize,
        step: &Step,
        response: &StepResponse,
        started_at_ms: u64,
    ) -> Result<(), RunError> {
        if self.context.is_observed() {
            self.context.emit(EventKind::StepFinished {
                step_index: index,
                step: step.clone(),
                response: response.clone(),
            });
        }
        if self.context.store().is_none() {
            // Nothing to commit to: no copies of the step either.
            return Ok(());
        }
        // Boxed: only durable runs commit, and inline the commit's state
        // made every step's future larger (and copied) for all runs.
        Box::pin(self.commit_to_store(index, step, response, started_at_ms)).await
    }

    async fn commit_to_store(
        &self,
        index: usize,
        step: &Step,
        response: &StepResponse,
        started_at_ms: u64,
    ) -> Result<(), RunError> {
        let mut commit = Commit::new();
        commit.steps.push(StepRecord {
            index,
            revision: self.revision(),
            step: step.clone(),
            response: response.clone(),
            attempt: 1,
            started_at_ms,
            finished_at_ms: now_ms(),
        });
        self.context
            .flush(commit)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Records a step in the container and the history.
    pub(super) fn store(&mut self, step: Step, response: StepResponse) {
        match &mut self.container {
            Some(container) => {
                self.history.push(step.clone(), response.clone());
                container.add_step(step, response);
            }
            None => self.history.push(step, response),
        }
        self.executed += 1;
    }

    /// The container's steps (the history's, for the default container).
    pub(super) fn steps(&self) -> &[(Step, StepResponse)] {
        match &self.container {
            Some(container) => container.steps(),
            None => &self.history,
        }
    }

    /// The container's final response (the last step's, for the default
    /// container).
    pub(super) fn final_response(&self) -> Option<&StepResponse> {
        match &self.container {
            Some(container) => container.final_response(),
            None => self.history.last().map(|(_, response)| response),
        }
    }

    /// Tokens of every model call the run made: what the components
    /// reported (planning, steps), or what the run context measured at its
    /// one door for model calls when that is more — it also counts calls of
    /// steps that failed, of retries and of earlier sessions.
    pub(super) fn usage(&self) -> TokenUsage {
        let reported = self.context.usage() + self.steps().iter().map(|(_, r)| r.usage).sum();
        more_tokens(reported, self.context.spent().usage)
    }

    /// The error for a failed step (the last recorded) nothing could recover.
    pub(super) fn unrecovered(&self, index: usize, source: ExecError) -> RunError {
        let step = self
            .steps()
            .last()
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        RunError::Step {
            index,
            step,
            source,
            partial: Box::new(self.partial()),
        }
    }

    pub(super) fn partial(&self) -> PartialRun {
        PartialRun {
            plans: self.plans.clone(),
            steps: self.steps().to_vec(),
            usage: self.usage(),
        }
    }

    pub(super) fn cancelled(&self) -> RunError {
        RunError::Cancelled {
            partial: Box::new(self.partial()),
        }
    }

    /// A store error, as the run reports it: the halt it caused when there
    /// is one (a lost lease), else the error itself.
    pub(super) fn store_error(&self, error: StoreError) -> RunError {
        RunError::Store(error)
    }

    /// The run's error when a call found the run must stop (a budget, a
    /// tool call in doubt, a lost lease, a store failure), if one did.
    pub(super) fn halted(&self) -> Option<RunError> {
        halt_error(&self.context, || self.partial())
    }
}

/// The larger of two token counts (by total).
pub(super) fn more_tokens(a: TokenUsage, b: TokenUsage) -> TokenUsage {
    if b.total_tokens() > a.total_tokens() {
        b
    } else {
        a
    }
}

/// The error a halt stands for.
pub(super) fn halt_error(
    context: &RunContext,
    partial: impl FnOnce() -> PartialRun,
) -> Option<RunError> {
    let Some(halt) = context.halt() else {
        // A step that ended with an error because the run was cancelled
        // under it is a cancelled run, not a failed step.
        return context
            .cancel_token()
            .is_cancelled()
            .then(|| RunError::Cancelled {
                partial: Box::new(partial()),
            });
    };
    let partial = Box::new(partial());
    Some(match halt {
        Halt::Interrupted(Interruption::BudgetExceeded {
            budget,
            limit,
            spent,
        }) => RunError::BudgetExceeded {
            budget,
            limit,
            spent,
            partial,
        },
        Halt::Interrupted(Interruption::Cancelled) => RunError::Cancelled { partial },
        Halt::Interrupted(reason) => RunError::Interrupted { reason, partial },
        Halt::LeaseLost { id, epoch } => RunError::Store(StoreError::LeaseLost { id, epoch }),
        Halt::Store(reason) => RunError::Store(StoreError::Backend {
            message: reason,
            source: None,
            transient: false,
        }),
    })
}
