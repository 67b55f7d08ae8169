//! One session of a run: open it (create a new run, or load a stored one
//! and take its lease), drive it (plan unless a plan is stored, approval,
//! execution), close it (store how it ended, give the lease back). Also
//! [`PlanAndExecute::decide`], a person's approval decision.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use pae_schema::{Plan, StepResponse};

use crate::context::RunContext;
use crate::error::{PartialRun, RunError};
use crate::event::{EventKind, EventSink};
use crate::executor::StepHistory;
use crate::planner::{PlanRequest, ReplanTrigger};
use crate::store::{
    ApprovalPolicy, CallScope, Commit, Interruption, Lease, PlanRevision, PlanSource, RunEnding,
    RunId, RunRecord, RunStatus, RunStore, StepRecord, StoreError, Takeover, is_dead_local_owner,
    now_ms,
};

use super::state::{Revision, RunState, halt_error, trigger_for};
use super::{
    Decision, PlanAndExecute, ReplanPolicy, RunOutcome, RunRequest, RunResult, Scheduling,
};
use crate::context::Scoped;
use crate::telemetry;
use tracing::Instrument;

/// A run opened for this session.
struct Opened {
    context: RunContext,
    objective: String,
    inputs: crate::chain::Inputs,
    approval: ApprovalPolicy,
    /// What earlier sessions stored (empty for a new run).
    plans: Vec<PlanRevision>,
    steps: Vec<StepRecord>,
    status: RunStatus,
}

impl PlanAndExecute {
    /// Opens, drives and closes one session of a run.
    pub(super) async fn execute(
        &self,
        request: RunRequest,
        sink: EventSink,
    ) -> Result<RunResult, RunError> {
        let span = telemetry::run_span(request.resume.is_some());
        let mut planning_usage = Default::default();
        let result = self
            .execute_in(request, sink, &span, &mut planning_usage)
            .instrument(span.clone())
            .await;
        telemetry::record_run(&span, &result, planning_usage);
        result
    }

    async fn execute_in(
        &self,
        request: RunRequest,
        sink: EventSink,
        span: &tracing::Span,
        planning_usage: &mut pae_schema::TokenUsage,
    ) -> Result<RunResult, RunError> {
        let opened = match self.open(request, sink.clone()).await {
            Ok(opened) => opened,
            Err(error) => {
                sink.emit(EventKind::RunFailed {
                    error: super::error_chain(&error),
                    usage: Default::default(),
                });
                return Err(error);
            }
        };
        let context = opened.context.clone();
        if let Some(id) = context.run_id() {
            span.record("gen_ai.conversation.id", id.as_str());
            span.record("pae.run.id", id.as_str());
        }
        let result = if context.store().is_some() {
            let drive = std::pin::pin!(self.drive(opened));
            let heartbeat = std::pin::pin!(self.heartbeat(&context));
            match futures::future::select(drive, heartbeat).await {
                futures::future::Either::Left((result, _)) => result,
                futures::future::Either::Right(((), drive)) => drive.await,
            }
        } else {
            self.drive(opened).await
        };
        self.close(&context, &result).await;
        *planning_usage = context.usage();
        result
    }

    /// Renews the lease every third of its time until the run ends; never
    /// completes unless the lease is lost (the run then halts at its next
    /// call or commit).
    async fn heartbeat(&self, context: &RunContext) {
        let every = self.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            if context.renew_lease(self.lease_ttl).await.is_err() {
                return;
            }
        }
    }

    /// Creates the run or loads the stored one, and takes its lease.
    async fn open(&self, request: RunRequest, sink: EventSink) -> Result<Opened, RunError> {
        let RunRequest {
            objective,
            resume,
            run_id,
            inputs: extra,
            settings,
            cancel,
            callbacks: _,
            budget,
        } = request;
        let mut context = RunContext::new(sink)
            .with_cancel_token(cancel.unwrap_or_default())
            .with_message_content(self.message_content);
        let Some(id) = resume else {
            let mut inputs = extra;
            inputs.insert("input".into(), objective.clone());
            inputs.insert("objective".into(), objective.clone());
            let budget = budget.unwrap_or_else(|| self.budget.clone());
            context = context.with_budget(budget.clone());
            let Some(store) = &self.store else {
                if self.approval != ApprovalPolicy::Never {
                    return Err(RunError::NoStore);
                }
                if let Some(id) = run_id {
                    context = context.with_run_id(id);
                }
                return Ok(Opened {
                    context,
                    objective,
                    inputs,
                    approval: self.approval,
                    plans: Vec::new(),
                    steps: Vec::new(),
                    status: RunStatus::Planning,
                });
            };
            let id = run_id.unwrap_or_else(RunId::generate);
            let mut record = RunRecord::new(id.clone(), objective.clone());
            record.inputs = inputs.clone();
            record.settings = settings;
            record.approval = self.approval;
            record.budget = budget;
            record.spent.sessions = 1;
            store.create(&record).await?;
            let lease = self.acquire(store.as_ref(), &id).await?;
            let mut spent = record.spent.clone();
            spent.sessions = 1;
            context =
                context
                    .with_run_id(id)
                    .with_spent(spent)
                    .with_store(store.clone(), lease, false);
            return Ok(Opened {
                context,
                objective,
                inputs: record.inputs,
                approval: record.approval,
                plans: Vec::new(),
                steps: Vec::new(),
                status: RunStatus::Planning,
            });
        };
        let store = self.store.as_ref().ok_or(RunError::NoStore)?;
        let record = store.run(&id).await?;
        if record.status.is_final() {
            return Err(RunError::NotResumable {
                id: id.to_string(),
                status: record.status,
            });
        }
        let plans = store.plans(&id).await?;
        if record.status == RunStatus::AwaitingApproval {
            // Nothing to do until a person decides; no lease is taken.
            return Ok(Opened {
                context: context.with_run_id(id),
                objective: record.objective,
                inputs: record.inputs,
                approval: record.approval,
                plans,
                steps: Vec::new(),
                status: record.status,
            });
        }
        let lease = self.acquire(store.as_ref(), &id).await?;
        let steps = store.steps(&id).await?;
        let mut spent = record.spent.clone();
        spent.sessions += 1;
        let budget = budget.unwrap_or(record.budget.clone());
        // Resuming a run stopped by a call in doubt is the person's word
        // that the call may be made again (with the same key).
        let retry = match &record.ending.interruption {
            Some(Interruption::ToolCallInDoubt {
                idempotency_key, ..
            }) => Some(idempotency_key.clone()),
            _ => None,
        };
        context = context
            .with_retry_in_doubt(retry)
            .with_run_id(id)
            .with_budget(budget.clone())
            .with_spent(spent.clone())
            .with_store(store.clone(), lease, true);
        context.emit(EventKind::RunResumed {
            session: spent.sessions,
            committed_steps: steps.len(),
        });
        let mut commit = Commit::new();
        commit.status = Some(if plans.is_empty() {
            RunStatus::Planning
        } else {
            RunStatus::Running
        });
        commit.ending = Some(RunEnding::default());
        if budget != record.budget {
            commit.budget = Some(budget);
        }
        context.flush(commit).await?;
        Ok(Opened {
            context,
            objective: record.objective,
            inputs: record.inputs,
            approval: record.approval,
            plans,
            steps,
            status: record.status,
        })
    }

    /// Takes the run's lease; a lease held by a process of this machine
    /// that is gone is taken at once instead of after it expires.
    async fn acquire(&self, store: &dyn RunStore, id: &RunId) -> Result<Lease, RunError> {
        match store
            .acquire(id, &self.owner, self.lease_ttl, Takeover::IfExpired)
            .await
        {
            Err(StoreError::Busy { owner, .. }) if is_dead_local_owner(&owner) => {
                let record = store.run(id).await?;
                let epoch = record.lease.map_or(0, |lease| lease.epoch);
                Ok(store
                    .acquire(id, &self.owner, self.lease_ttl, Takeover::IfEpoch(epoch))
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Plans (unless a plan is stored), stops for approval when needed, and
    /// executes.
    async fn drive(&self, opened: Opened) -> Result<RunResult, RunError> {
        let Opened {
            context,
            objective,
            inputs,
            approval,
            plans,
            steps,
            status,
        } = opened;
        let approved: BTreeSet<u32> = plans
            .iter()
            .filter(|p| p.approved)
            .map(|p| p.revision)
            .collect();
        let mut run = RunState {
            plans: plans.iter().map(|p| p.plan.clone()).collect(),
            container: self.container.as_ref().map(|make| make()),
            history: StepHistory::new(),
            executed: 0,
            context,
            objective,
            inputs,
            committed: BTreeMap::new(),
            approval,
            approved,
        };
        if status == RunStatus::AwaitingApproval {
            return Ok(self.result(
                &run,
                RunOutcome::AwaitingApproval {
                    revision: run.revision(),
                },
                String::new(),
            ));
        }
        if run.plans.is_empty() {
            let plan = self.make_plan(&run).await?;
            run.plans.push(plan);
        }
        run.context.set_revision(run.revision());
        if let Some(revision) = self.awaiting_approval(&run).await? {
            return Ok(self.result(
                &run,
                RunOutcome::AwaitingApproval { revision },
                String::new(),
            ));
        }
        let graph = match self.scheduling {
            Scheduling::Auto => run.plans.last().is_some_and(Plan::has_dependencies),
            Scheduling::Graph => true,
            Scheduling::Sequential => false,
        };
        let mut committed: BTreeMap<usize, StepRecord> =
            steps.into_iter().map(|s| (s.index, s)).collect();
        let (outcome, answer) = if graph {
            run.committed = committed
                .into_iter()
                .map(|(index, record)| (index, record.response))
                .collect();
            self.execute_graph(&mut run).await?
        } else {
            // A sequential run commits steps in order: the stored steps are
            // the plan's first ones.
            let mut last_finished = None;
            while let Some(record) = committed.remove(&run.executed) {
                last_finished = Some(record.finished_at_ms);
                run.store(record.step, record.response);
            }
            // The steps to run, copied once (each is moved into the history
            // as it finishes); the plan itself is not copied.
            let mut remaining: VecDeque<_> = run
                .plans
                .last()
                .map(|plan| plan.steps.iter().skip(run.executed).cloned().collect())
                .unwrap_or_default();
            if let Some(finished) = last_finished
                && let Some(revision) = self.replan_missed(&mut run, &plans, finished).await?
            {
                match revision {
                    Revision::Finish(answer) => {
                        return self.finish(
                            &mut run,
                            RunOutcome::AnsweredByReplanner,
                            Some(answer),
                        );
                    }
                    Revision::Continue(steps) => {
                        if let Some(revision) = self.awaiting_approval(&run).await? {
                            return Ok(self.result(
                                &run,
                                RunOutcome::AwaitingApproval { revision },
                                String::new(),
                            ));
                        }
                        remaining = steps.into();
                    }
                    Revision::LimitReached => {}
                }
            }
            run.history.reserve(remaining.len());
            self.execute_sequential(&mut run, remaining).await?
        };
        if let RunOutcome::AwaitingApproval { .. } = outcome {
            return Ok(self.result(&run, outcome, String::new()));
        }
        self.finish(&mut run, outcome, answer)
    }

    /// Asks the planner for the first plan, checks it and stores it.
    async fn make_plan(&self, run: &RunState) -> Result<Plan, RunError> {
        let request = PlanRequest {
            objective: run.objective.clone(),
            inputs: run.inputs.clone(),
            context: run.context.scoped(CallScope::Plan).await?,
        };
        let cancel = run.context.cancel_token().clone();
        let span = tracing::info_span!(
            "plan",
            "pae.plan.revision" = 0u32,
            "pae.plan.steps" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        let planning = Scoped::new(request.context.clone(), self.planner.plan(&request))
            .instrument(span.clone());
        let plan = match cancel.run_until_cancelled(planning).await {
            Some(plan) => {
                if let Some(error) = halt_error(&run.context, PartialRun::default) {
                    return Err(error);
                }
                plan.inspect_err(|_| {
                    span.record("error.type", "plan");
                })
                .map_err(RunError::Plan)?
            }
            None => return Err(run.cancelled()),
        };
        span.record("pae.plan.steps", plan.len());
        self.check_plan(&plan)?;
        run.context
            .emit(EventKind::PlanCreated { plan: plan.clone() });
        let mut commit = Commit::new();
        commit.plan = Some(PlanRevision {
            revision: 0,
            plan: plan.clone(),
            source: PlanSource::Planner,
            approved: false,
            created_at_ms: now_ms(),
        });
        commit.status = Some(RunStatus::Running);
        run.context.flush(commit).await?;
        Ok(plan)
    }

    /// On resume of a sequential run: the replanning that the policy asked
    /// for after the last committed step, if the process died before it
    /// stored its revision.
    async fn replan_missed(
        &self,
        run: &mut RunState,
        plans: &[PlanRevision],
        last_finished_ms: u64,
    ) -> Result<Option<Revision>, RunError> {
        if self.replanner.is_none() || run.history.is_empty() {
            return Ok(None);
        }
        let Some((_, last)) = run.history.last() else {
            return Ok(None);
        };
        let trigger = trigger_for(&last.status);
        let wants = match self.replan_policy {
            ReplanPolicy::Never => false,
            ReplanPolicy::AfterEveryStep => true,
            ReplanPolicy::OnFailure => trigger != ReplanTrigger::StepCompleted,
        };
        let revised_after = plans
            .last()
            .is_some_and(|p| p.created_at_ms >= last_finished_ms);
        if !wants || revised_after {
            return Ok(None);
        }
        let remaining = run
            .plans
            .last()
            .map(|p| p.steps.iter().skip(run.executed).cloned().collect())
            .unwrap_or_default();
        Ok(Some(self.replan(run, trigger, remaining, None).await?))
    }

    /// The run's answer and result, with `RunFinished` emitted.
    // The error is the run's own error type, returned as is by `run`.
    #[allow(clippy::result_large_err)]
    fn finish(
        &self,
        run: &mut RunState,
        outcome: RunOutcome,
        answer: Option<String>,
    ) -> Result<RunResult, RunError> {
        let from_steps = answer.is_none();
        let output = match answer {
            Some(answer) => answer,
            None => run
                .final_response()
                .map(|r: &StepResponse| r.response.clone())
                .ok_or(RunError::EmptyPlan)?,
        };
        // An answer that is no answer must not pass as a completed run.
        let outcome = match outcome {
            RunOutcome::Completed if from_steps => {
                match super::answer_problems(run.steps(), &output)
                    .into_iter()
                    .find(super::AnswerProblem::is_about_the_answer)
                {
                    Some(problem) => RunOutcome::Degraded { problem },
                    None => outcome,
                }
            }
            other => other,
        };
        let usage = run.usage();
        run.context.emit(EventKind::RunFinished {
            output: output.clone(),
            usage,
        });
        let mut result = self.result_without_steps(run, outcome, output);
        // The run ends here: its plans and steps move into the result
        // rather than being copied.
        result.plans = std::mem::take(&mut run.plans);
        result.steps = take_steps(run);
        Ok(result)
    }

    fn result(&self, run: &RunState, outcome: RunOutcome, output: String) -> RunResult {
        let mut result = self.result_without_steps(run, outcome, output);
        result.plans = run.plans.clone();
        result.steps = run.steps().to_vec();
        result
    }

    /// The result without its plans and steps.
    fn result_without_steps(
        &self,
        run: &RunState,
        outcome: RunOutcome,
        output: String,
    ) -> RunResult {
        RunResult {
            run_id: run.context.run_id().cloned(),
            output,
            steps: Vec::new(),
            plans: Vec::new(),
            outcome,
            usage: run.usage(),
            spent: run.context.spent(),
            elapsed: run.context.events().elapsed(),
        }
    }

    /// Stores how the session ended and gives the lease back. Emits
    /// `RunFailed` for errors.
    async fn close(&self, context: &RunContext, result: &Result<RunResult, RunError>) {
        if let Err(error) = result {
            // Tokens spent before the failure: the partial run's, or (when
            // it failed before any step) what planning recorded.
            let usage = super::state::more_tokens(
                error
                    .partial()
                    .map_or_else(|| context.usage(), |partial| partial.usage),
                context.spent().usage,
            );
            if let Some(reason) = interruption(error) {
                context.emit(EventKind::RunInterrupted {
                    reason: reason.to_string(),
                });
            }
            context.emit(EventKind::RunFailed {
                error: super::error_chain(error),
                usage,
            });
        }
        let Some(lease) = context.lease() else {
            return;
        };
        let mut commit = Commit::new();
        match result {
            Ok(result) if result.is_awaiting_approval() => {}
            Ok(result) => {
                commit.status = Some(RunStatus::Succeeded);
                commit.ending = Some(RunEnding {
                    output: Some(result.output.clone()),
                    outcome: Some(result.outcome),
                    ..RunEnding::default()
                });
            }
            // Another process owns the run now, or the store is gone:
            // nothing may be written.
            Err(RunError::Store(_)) => return,
            Err(error) => match interruption(error) {
                Some(reason) => {
                    commit.status = Some(RunStatus::Interrupted);
                    commit.ending = Some(RunEnding {
                        interruption: Some(reason),
                        error: Some(super::error_chain(error)),
                        ..RunEnding::default()
                    });
                }
                None => {
                    commit.status = Some(RunStatus::Failed);
                    commit.ending = Some(RunEnding {
                        error: Some(super::error_chain(error)),
                        ..RunEnding::default()
                    });
                }
            },
        }
        if context.flush(commit).await.is_ok()
            && let Some(store) = context.store()
        {
            // A lease that cannot be released expires on its own.
            let _ = store.release(&lease).await;
        }
    }

    /// A person's decision on a run waiting for approval: approve it, edit
    /// its plan (a new revision, still waiting) or reject it. Costs no model
    /// call; any process with the store may decide.
    ///
    /// # Errors
    /// [`RunError::NoStore`], [`RunError::NotAwaitingApproval`], an edited
    /// plan that does not validate ([`RunError::InvalidPlan`],
    /// [`RunError::EmptyPlan`], [`RunError::TooManySteps`] or
    /// [`RunError::InvalidEdit`]), or a store error. Nothing changes on
    /// error.
    pub async fn decide(&self, id: &RunId, decision: Decision) -> Result<RunRecord, RunError> {
        let store = self.store.as_ref().ok_or(RunError::NoStore)?;
        let record = store.run(id).await?;
        // An interrupted run may be rejected (cancelled for good) too.
        let rejectable =
            matches!(decision, Decision::Reject { .. }) && record.status == RunStatus::Interrupted;
        if record.status != RunStatus::AwaitingApproval && !rejectable {
            return Err(RunError::NotAwaitingApproval {
                id: id.to_string(),
                status: record.status,
            });
        }
        let plans = store.plans(id).await?;
        let revision = plans.last().map_or(0, |p| p.revision);
        let stamp = EventSink::default();
        let mut commit = Commit::new();
        match decision {
            Decision::Approve => {
                commit.approve = Some(revision);
                commit.status = Some(RunStatus::Running);
                commit
                    .events
                    .push(stamp.event(EventKind::PlanApproved { revision }));
            }
            Decision::Edit(plan) => {
                self.check_plan(&plan)?;
                let done = store.steps(id).await?;
                check_edit(&plan, &done)?;
                let revision = revision + 1;
                commit.plan = Some(PlanRevision {
                    revision,
                    plan: plan.clone(),
                    source: PlanSource::Human,
                    approved: false,
                    created_at_ms: now_ms(),
                });
                commit
                    .events
                    .push(stamp.event(EventKind::PlanEdited { revision, plan }));
            }
            Decision::Reject { reason } => {
                commit.status = Some(RunStatus::Cancelled);
                commit.ending = Some(RunEnding {
                    error: Some(match reason {
                        Some(reason) => format!("the plan was rejected: {reason}"),
                        None => "the plan was rejected".to_owned(),
                    }),
                    ..RunEnding::default()
                });
                commit
                    .events
                    .push(stamp.event(EventKind::PlanRejected { revision }));
            }
        }
        let lease = self.acquire(store.as_ref(), id).await?;
        // Another process may have decided between the read and the lease.
        let current = store.run(id).await?;
        if current.status != record.status {
            let _ = store.release(&lease).await;
            return Err(RunError::NotAwaitingApproval {
                id: id.to_string(),
                status: current.status,
            });
        }
        let committed = store.commit(&lease, commit).await;
        let _ = store.release(&lease).await;
        committed?;
        Ok(store.run(id).await?)
    }
}

/// The steps of a finished run, for its result: moved out of the history
/// when it holds what the container holds (it is the container, for the
/// default one), so a long run's steps are not copied once more at the
/// end; else copied from the container.
fn take_steps(run: &mut RunState) -> Vec<(pae_schema::Step, StepResponse)> {
    if run.container.is_none() || *run.history == *run.steps() {
        return std::mem::take(&mut run.history).into_vec();
    }
    run.steps().to_vec()
}

/// The interruption an error stands for, when the run is left resumable.
fn interruption(error: &RunError) -> Option<Interruption> {
    match error {
        RunError::Cancelled { .. } => Some(Interruption::Cancelled),
        RunError::BudgetExceeded {
            budget,
            limit,
            spent,
            ..
        } => Some(Interruption::BudgetExceeded {
            budget: *budget,
            limit: *limit,
            spent: *spent,
        }),
        RunError::Interrupted { reason, .. } => Some(reason.clone()),
        _ => None,
    }
}

/// An edited plan must keep the steps that already ran, first and
/// unchanged.
#[allow(clippy::result_large_err)]
fn check_edit(plan: &Plan, done: &[StepRecord]) -> Result<(), RunError> {
    for record in done {
        match plan.steps.get(record.index) {
            Some(step) if step.value == record.step.value => {}
            _ => {
                return Err(RunError::InvalidEdit {
                    reason: format!(
                        "step {} ({:?}) already ran and must stay step {} of the plan",
                        record.index + 1,
                        record.step.value,
                        record.index + 1
                    ),
                });
            }
        }
    }
    Ok(())
}
