//! Replanning and plan checks: asking the replanner how to go on, storing
//! its revision, and stopping for approval when the policy says so.

use pae_schema::{Plan, PlanValidationError, Step};

use crate::error::{ExecError, PlanError, RunError};
use crate::event::EventKind;
use crate::planner::{ReplanDecision, ReplanRequest, ReplanTrigger};
use crate::store::{
    ApprovalPolicy, CallScope, Commit, PlanRevision, PlanSource, RunStatus, now_ms,
};

use super::PlanAndExecute;
use super::state::{Revision, RunState};
use crate::context::Scoped;
use tracing::Instrument;

impl PlanAndExecute {
    /// Whether a failed step may be handed to the replanner.
    pub(super) fn can_replan(&self, run: &RunState) -> bool {
        self.replanner.is_some()
            && self.replan_policy != crate::ReplanPolicy::Never
            && run.plans.len() <= self.max_replans
    }

    /// Asks the replanner how to go on. `failure` is the error of a step that
    /// just failed: a run may not end on it. A revision is stored as a new
    /// plan revision before anything of it runs.
    pub(super) async fn replan(
        &self,
        run: &mut RunState,
        trigger: ReplanTrigger,
        remaining: Vec<Step>,
        failure: Option<ExecError>,
    ) -> Result<Revision, RunError> {
        let Some(replanner) = self.replanner.as_ref() else {
            return Ok(Revision::Continue(remaining));
        };
        let last_index = run.executed.saturating_sub(1);
        if run.plans.len() > self.max_replans {
            return match failure {
                // The failure was recorded, but nothing may revise the plan:
                // going on would build on a missing result.
                Some(source) => Err(run.unrecovered(last_index, source)),
                None => Ok(Revision::LimitReached),
            };
        }
        let request = ReplanRequest {
            objective: run.objective.clone(),
            plan: run.plans.last().cloned().unwrap_or_default(),
            completed: run.history.to_vec(),
            remaining,
            trigger: Some(trigger),
            context: run
                .context
                .scoped(CallScope::Replan {
                    revision: run.revision(),
                })
                .await?,
        };
        let cancel = run.context.cancel_token().clone();
        let span = tracing::info_span!(
            "replan",
            "pae.plan.revision" = run.revision(),
            "pae.replan.trigger" = match &request.trigger {
                Some(ReplanTrigger::StepCompleted) | None => "step_completed",
                Some(ReplanTrigger::StepStopped { .. }) => "step_stopped",
                Some(ReplanTrigger::StepFailed { .. }) => "step_failed",
            },
            "pae.replan.decision" = tracing::field::Empty,
        );
        let replanning = Scoped::new(request.context.clone(), replanner.replan(&request))
            .instrument(span.clone());
        let decision = match cancel.run_until_cancelled(replanning).await {
            Some(decision) => {
                if let Some(error) = run.halted() {
                    return Err(error);
                }
                decision.map_err(|source| RunError::Replan {
                    source,
                    partial: Box::new(run.partial()),
                })?
            }
            None => return Err(run.cancelled()),
        };
        span.record(
            "pae.replan.decision",
            match &decision {
                ReplanDecision::Finish { .. } => "finish",
                ReplanDecision::Continue { steps } if steps.is_empty() => "continue",
                ReplanDecision::Continue { .. } => "revise",
            },
        );
        match decision {
            ReplanDecision::Finish { answer } => Ok(Revision::Finish(answer)),
            ReplanDecision::Continue { steps } => {
                if let Some(source) = failure.filter(|_| steps.is_empty()) {
                    // Ending on a failed step would answer with an error.
                    return Err(run.unrecovered(last_index, source));
                }
                if steps.is_empty() {
                    return Ok(Revision::Continue(steps));
                }
                let revised: Plan = run
                    .history
                    .iter()
                    .map(|(s, _)| s.clone())
                    .chain(steps.iter().cloned())
                    .collect();
                self.check_plan(&revised).map_err(|err| match err {
                    RunError::InvalidPlan(e) => RunError::Replan {
                        source: PlanError::Invalid(e),
                        partial: Box::new(run.partial()),
                    },
                    other => other,
                })?;
                run.plans.push(revised.clone());
                let revision = run.revision();
                run.context.set_revision(revision);
                run.context.emit(EventKind::PlanRevised {
                    plan: revised.clone(),
                    revision: revision as usize,
                });
                let mut commit = Commit::new();
                commit.plan = Some(PlanRevision {
                    revision,
                    plan: revised,
                    source: PlanSource::Replanner,
                    approved: false,
                    created_at_ms: now_ms(),
                });
                run.context.flush(commit).await?;
                Ok(Revision::Continue(steps))
            }
        }
    }

    /// Whether the current revision needs a person's approval under the
    /// run's policy.
    pub(super) fn needs_approval(policy: ApprovalPolicy, revision: u32) -> bool {
        match policy {
            ApprovalPolicy::Never => false,
            ApprovalPolicy::BeforeExecution => revision == 0,
            ApprovalPolicy::OnEveryRevision => true,
        }
    }

    /// Stops the run for approval when its current revision needs it and
    /// has none: stores the status and returns the revision waiting.
    pub(super) async fn awaiting_approval(&self, run: &RunState) -> Result<Option<u32>, RunError> {
        let revision = run.revision();
        if !Self::needs_approval(run.approval, revision) || run.approved.contains(&revision) {
            return Ok(None);
        }
        run.context.emit(EventKind::ApprovalRequested { revision });
        let mut commit = Commit::new();
        commit.status = Some(RunStatus::AwaitingApproval);
        run.context.flush(commit).await?;
        Ok(Some(revision))
    }

    /// Checks a plan (or a revision) before anything of it runs.
    // The error is the run's own error type, returned as is by `run`.
    #[allow(clippy::result_large_err)]
    pub(super) fn check_plan(&self, plan: &Plan) -> Result<(), RunError> {
        if plan.is_empty() {
            return Err(RunError::EmptyPlan);
        }
        if plan.len() > self.max_steps {
            return Err(RunError::TooManySteps {
                steps: plan.len(),
                max: self.max_steps,
            });
        }
        match plan.validate(&self.plan_limits) {
            Ok(()) => Ok(()),
            Err(PlanValidationError::Empty) => Err(RunError::EmptyPlan),
            Err(e) => Err(RunError::InvalidPlan(e)),
        }
    }
}
