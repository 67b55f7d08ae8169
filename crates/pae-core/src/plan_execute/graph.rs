//! Dependency-plan execution: a step starts once every step it depends on
//! has finished, up to `max_concurrency` at a time, and sees only its
//! dependencies' results.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use pae_schema::{Plan, StepResponse, StepStatus, substitute_references};

use crate::context::Scoped;
use crate::error::{ExecError, RunError};
use crate::event::EventKind;
use crate::executor::StepHistory;
use crate::store::now_ms;
use crate::telemetry;
use tracing::Instrument;

use super::state::{Revision, RunState, failed_response, trigger_for};
use super::{FailurePolicy, PlanAndExecute, ReplanPolicy, RunOutcome, error_chain};
use crate::planner::ReplanTrigger;

/// The steps to skip because a dependency did not complete: every step not
/// yet started whose dependencies include a failed or skipped step, found
/// transitively. Returns `(step, dependency)` pairs in the order found.
pub(super) fn steps_to_skip(
    deps: &[Vec<usize>],
    started: &[bool],
    results: &[Option<StepResponse>],
    first: usize,
) -> Vec<(usize, usize)> {
    let broken = |r: &Option<StepResponse>| {
        r.as_ref().is_some_and(|r| {
            matches!(
                r.status,
                StepStatus::Failed { .. } | StepStatus::Skipped { .. }
            )
        })
    };
    let mut skipped: Vec<(usize, usize)> = Vec::new();
    let mut is_broken: Vec<bool> = results.iter().map(broken).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in first..deps.len() {
            if started[i] || is_broken[i] {
                continue;
            }
            if let Some(&d) = deps[i].iter().find(|&&d| is_broken[d]) {
                is_broken[i] = true;
                skipped.push((i, d));
                changed = true;
            }
        }
    }
    skipped
}

/// The response recorded for a step skipped because `dependency` did not
/// complete.
fn skipped_response(dependency: usize) -> StepResponse {
    let reason = format!("step {} did not complete", dependency + 1);
    StepResponse::new(format!("Skipped: {reason}")).with_status(StepStatus::Skipped { reason })
}

impl PlanAndExecute {
    /// Runs a plan with dependencies: a step starts once every step it
    /// depends on has finished, at most `max_concurrency` at a time, and sees
    /// only the results of its dependencies. Results are recorded in plan
    /// order. The replanner, per policy, may act after each round.
    pub(super) async fn execute_graph(
        &self,
        run: &mut RunState,
    ) -> Result<(RunOutcome, Option<String>), RunError> {
        let mut outcome = RunOutcome::Completed;
        let mut first_failure: Option<(usize, ExecError)> = None;
        loop {
            let plan = run.plans.last().cloned().unwrap_or_default();
            let round_start = run.executed;
            let round = self.graph_round(run, &plan).await?;
            let this_round = &run.history[round_start.min(run.history.len())..];
            let failed = round.is_some();
            if let Some(failure) = round {
                first_failure.get_or_insert(failure);
            }
            let wants_replan = match self.replan_policy {
                ReplanPolicy::Never => false,
                ReplanPolicy::AfterEveryStep => true,
                ReplanPolicy::OnFailure => {
                    failed || this_round.iter().any(|(_, r)| !r.status.is_completed())
                }
            };
            if !wants_replan || self.replanner.is_none() {
                break;
            }
            let trigger = match (
                &first_failure,
                this_round
                    .iter()
                    .rev()
                    .find(|(_, r)| !r.status.is_completed()),
            ) {
                (Some((_, error)), _) => ReplanTrigger::StepFailed {
                    error: error_chain(error),
                },
                (None, Some((_, response))) => trigger_for(&response.status),
                (None, None) => ReplanTrigger::StepCompleted,
            };
            let failure = first_failure.take().map(|(_, e)| e);
            // The steps that did not complete are what is left to do.
            let remaining = this_round
                .iter()
                .filter(|(_, r)| matches!(r.status, StepStatus::Skipped { .. }))
                .map(|(s, _)| s.clone())
                .collect();
            match self.replan(run, trigger, remaining, failure).await? {
                Revision::Finish(answer) => {
                    return Ok((RunOutcome::AnsweredByReplanner, Some(answer)));
                }
                // No new step: the run ends with what it has.
                Revision::Continue(steps) if steps.is_empty() => break,
                Revision::Continue(_) => {
                    if let Some(revision) = self.awaiting_approval(run).await? {
                        return Ok((RunOutcome::AwaitingApproval { revision }, None));
                    }
                }
                Revision::LimitReached => {
                    outcome = RunOutcome::ReplanLimitReached {
                        max_replans: self.max_replans,
                    };
                    break;
                }
            }
        }
        // The answer is the last step's; a last step that failed or was
        // skipped leaves no answer, so the run reports the first failure.
        let last_ok = run
            .history
            .last()
            .is_some_and(|(_, r)| r.status.is_completed());
        if !last_ok && let Some((index, source)) = first_failure {
            let step = run
                .plans
                .last()
                .and_then(|p| p.steps.get(index))
                .cloned()
                .unwrap_or_default();
            return Err(RunError::Step {
                index,
                step,
                source,
                partial: Box::new(run.partial()),
            });
        }
        Ok((outcome, None))
    }

    /// Runs the steps of `plan` from `run.executed` on. Returns the first
    /// step error when the failure policy let the round go on. Steps
    /// committed in an earlier session count as finished and do not run.
    async fn graph_round(
        &self,
        run: &mut RunState,
        plan: &Plan,
    ) -> Result<Option<(usize, ExecError)>, RunError> {
        let deps = plan.dependency_indices().map_err(RunError::InvalidPlan)?;
        let first = run.executed;
        let n = plan.len();
        if n > self.max_steps {
            return Err(RunError::TooManySteps {
                steps: n,
                max: self.max_steps,
            });
        }
        // Results by plan position; earlier rounds' results come from the
        // history, which is in plan order, and earlier sessions' from the
        // committed steps.
        let mut results: Vec<Option<StepResponse>> = run
            .history
            .iter()
            .map(|(_, r)| Some(r.clone()))
            .chain(std::iter::repeat_n(None, n.saturating_sub(first)))
            .collect();
        let mut started = vec![false; n];
        started[..first.min(n)].fill(true);
        for (index, response) in std::mem::take(&mut run.committed) {
            if index < n && index >= first {
                results[index] = Some(response);
                started[index] = true;
            }
        }
        let mut in_flight = FuturesUnordered::new();
        let mut first_failure: Option<(usize, ExecError)> = None;
        let cancel = run.context.cancel_token().clone();
        let limit = self.max_concurrency.max(1);

        loop {
            for (i, dependency) in steps_to_skip(&deps, &started, &results, first) {
                let response = skipped_response(dependency);
                started[i] = true;
                run.commit_step(i, &plan.steps[i], &response, now_ms())
                    .await?;
                results[i] = Some(response);
            }
            // Start ready steps in plan order, up to the limit.
            if run.halted().is_none() {
                for i in first..n {
                    if in_flight.len() >= limit {
                        break;
                    }
                    if started[i] || !deps[i].iter().all(|&d| results[d].is_some()) {
                        continue;
                    }
                    started[i] = true;
                    let step = plan.steps[i].clone();
                    run.context.emit(EventKind::StepStarted {
                        step_index: i,
                        step: step.clone(),
                    });
                    let previous: StepHistory = deps[i]
                        .iter()
                        .map(|&d| {
                            (
                                plan.steps[d].clone(),
                                results[d].clone().unwrap_or_default(),
                            )
                        })
                        .collect();
                    let mut shown = step.clone();
                    shown.value = substitute_references(&step.value, |id| {
                        plan.resolve_reference(id)
                            .filter(|d| deps[i].contains(d))
                            .and_then(|d| results[d].as_ref())
                            .map(|r| r.response.as_str())
                    });
                    let input = run.step_input(i, shown, previous).await?;
                    let executor = self.executor.clone();
                    let started_at = now_ms();
                    let span = telemetry::step_span(i, run.revision());
                    in_flight.push(async move {
                        let context = input.context.clone();
                        let result = Scoped::new(context, executor.step(&input))
                            .instrument(span.clone())
                            .await;
                        telemetry::record_step(&span, &result);
                        (i, result, started_at)
                    });
                }
            }
            // Record finished steps in plan order.
            while run.executed < n {
                let i = run.executed;
                let Some(response) = results[i].clone() else {
                    break;
                };
                run.store(plan.steps[i].clone(), response);
            }
            if in_flight.is_empty() {
                break;
            }
            let Some(next) = cancel.run_until_cancelled(in_flight.next()).await else {
                return Err(run.cancelled());
            };
            let Some((i, result, started_at)) = next else {
                break;
            };
            if run.halted().is_some() {
                // A step cut short by a halt is not committed; siblings still
                // in flight may finish and commit.
                continue;
            }
            let response = match result {
                Ok(response) => response,
                Err(source) => {
                    if self.failure_policy == FailurePolicy::Abort {
                        return Err(RunError::Step {
                            index: i,
                            step: plan.steps[i].clone(),
                            source,
                            partial: Box::new(run.partial()),
                        });
                    }
                    let response = failed_response(&source);
                    if first_failure.is_none() {
                        first_failure = Some((i, source));
                    }
                    response
                }
            };
            run.commit_step(i, &plan.steps[i], &response, started_at)
                .await?;
            results[i] = Some(response);
        }
        if let Some(error) = run.halted() {
            return Err(error);
        }
        Ok(first_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> Option<StepResponse> {
        Some(StepResponse::new("ok"))
    }

    fn failed() -> Option<StepResponse> {
        Some(StepResponse::new("x").with_status(StepStatus::Failed { error: "x".into() }))
    }

    #[test]
    fn dependents_of_a_failed_step_are_skipped_transitively() {
        // 0 fails; 1 depends on 0; 2 depends on 1; 3 is independent.
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        let started = vec![true, false, false, false];
        let results = vec![failed(), None, None, None];
        assert_eq!(
            steps_to_skip(&deps, &started, &results, 0),
            vec![(1, 0), (2, 1)]
        );
    }

    #[test]
    fn started_steps_and_steps_with_healthy_dependencies_are_not_skipped() {
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let started = vec![true, true, false, false];
        let results = vec![done(), failed(), None, None];
        // 2 depends only on 0 (done); 3 depends on 1 (failed).
        assert_eq!(steps_to_skip(&deps, &started, &results, 0), vec![(3, 1)]);
    }

    #[test]
    fn skipped_steps_propagate_and_earlier_rounds_are_left_alone() {
        let skipped =
            Some(StepResponse::new("s").with_status(StepStatus::Skipped { reason: "r".into() }));
        let deps = vec![vec![], vec![0], vec![1]];
        let started = vec![true, true, false];
        // Step 1 was skipped in an earlier pass; its dependent follows.
        assert_eq!(
            steps_to_skip(&deps, &started, &[done(), skipped.clone(), None], 0),
            vec![(2, 1)]
        );
        // Steps before `first` belong to an earlier round.
        let started = vec![false, true, false];
        assert_eq!(
            steps_to_skip(&deps, &started, &[failed(), None, None], 2),
            vec![]
        );
        assert_eq!(
            skipped_response(4).status,
            StepStatus::Skipped {
                reason: "step 5 did not complete".into()
            }
        );
    }
}
