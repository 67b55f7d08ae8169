//! [`PlanAndExecute`]: plan once, execute every step, optionally revise the
//! plan as steps finish, and answer from the step container.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use pae_schema::{
    ListStepContainer, Plan, PlanLimits, PlanValidationError, Step, StepContainer, StepResponse,
    StepStatus, TokenUsage, substitute_references,
};
use serde::Serialize;

use crate::cancel::CancelToken;
use crate::chain::Inputs;
use crate::error::{ExecError, PartialRun, PlanError, RunError};
use crate::event::{Event, EventCallback, EventKind, EventSink, RunContext};
use crate::executor::{Executor, StepHistory, StepInput};
use crate::planner::{
    PlanRequest, Planner, ReplanDecision, ReplanRequest, ReplanTrigger, Replanner,
};

/// When the replanner is consulted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplanPolicy {
    /// Never: the first plan is final (LangChain's behaviour).
    #[default]
    Never,
    /// After every step, the last one included (LangGraph's behaviour).
    AfterEveryStep,
    /// When a step fails or stops at a limit.
    OnFailure,
}

/// How steps are scheduled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// By dependencies when the plan declares any, one after another
    /// otherwise.
    #[default]
    Auto,
    /// Always one after another in plan order; every step sees every earlier
    /// step (LangChain's behaviour). Dependencies are still validated.
    Sequential,
    /// Always by dependencies: a step without dependencies is independent
    /// and may run at once.
    Graph,
}

/// What happens to the rest of a dependency plan when a step fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Skip the steps that depend on it (recorded with the reason) and go on
    /// with the independent ones.
    #[default]
    SkipDependents,
    /// Stop the run at once, cancelling the steps in flight.
    Abort,
}

/// How a successful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum RunOutcome {
    /// Every step of the (last) plan ran; the answer is the last step's
    /// response.
    Completed,
    /// The replanner declared the objective met and gave the answer.
    AnsweredByReplanner,
    /// The replan cap was reached while the policy asked for another
    /// revision; the run went on with the plan it had.
    ReplanLimitReached {
        /// The cap.
        max_replans: usize,
    },
}

/// What a successful run returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    /// The final answer.
    pub output: String,
    /// Every step that ran, with its response, in execution order.
    pub steps: Vec<(Step, StepResponse)>,
    /// Every plan revision: the first plan, then each revision.
    pub plans: Vec<Plan>,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Tokens spent: planning, replanning and every step.
    pub usage: TokenUsage,
    /// Wall time of the run.
    #[serde(serialize_with = "as_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl RunResult {
    /// The plan the run finished with.
    pub fn final_plan(&self) -> Option<&Plan> {
        self.plans.last()
    }

    /// The number of plan revisions made.
    pub fn replans(&self) -> usize {
        self.plans.len().saturating_sub(1)
    }
}

/// An item of a streamed run: events as they happen, then the result.
#[derive(Debug)]
pub enum RunUpdate {
    /// Something happened.
    Event(Event),
    /// The run ended; always the last item.
    Finished(Result<RunResult, RunError>),
}

type ContainerFactory = Arc<dyn Fn() -> Box<dyn StepContainer> + Send + Sync>;

/// The plan-and-execute agent (LangChain's `PlanAndExecute`).
///
/// A planner writes a plan for the objective; the executor carries out each
/// step with the objective, the step and the previous steps with their
/// responses; each (step, response) pair goes into a step container made
/// fresh for the run; the answer is the container's final response.
///
/// Unlike LangChain, no state is kept between runs: `run` takes `&self`, so
/// one instance serves any number of concurrent runs.
///
/// # Example
/// ```
/// # #[cfg(feature = "test-util")] {
/// use std::sync::Arc;
/// use pae_core::{PlanAndExecute, Plan, StepResponse};
/// use pae_core::test_util::{MockExecutor, MockPlanner};
///
/// let mut planner = MockPlanner::new();
/// planner.expect_plan().returning(|_| Ok(Plan::new(["add 2 and 2", "answer"])));
/// let mut executor = MockExecutor::new();
/// executor.expect_step().returning(|input| {
///     Ok(StepResponse::new(format!("did: {}", input.current_step.value)))
/// });
/// let agent = PlanAndExecute::new(Arc::new(planner), Arc::new(executor));
/// let result = futures::executor::block_on(agent.run("What is 2 + 2?")).unwrap();
/// assert_eq!(result.output, "did: answer");
/// assert_eq!(result.steps.len(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct PlanAndExecute {
    planner: Arc<dyn Planner>,
    executor: Arc<dyn Executor>,
    replanner: Option<Arc<dyn Replanner>>,
    replan_policy: ReplanPolicy,
    max_replans: usize,
    max_steps: usize,
    plan_limits: PlanLimits,
    callbacks: Vec<EventCallback>,
    container: ContainerFactory,
    max_concurrency: usize,
    scheduling: Scheduling,
    failure_policy: FailurePolicy,
}

impl fmt::Debug for PlanAndExecute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanAndExecute")
            .field("replan_policy", &self.replan_policy)
            .field("max_replans", &self.max_replans)
            .field("max_steps", &self.max_steps)
            .field("plan_limits", &self.plan_limits)
            .field("callbacks", &self.callbacks.len())
            .field("max_concurrency", &self.max_concurrency)
            .field("scheduling", &self.scheduling)
            .field("failure_policy", &self.failure_policy)
            .finish_non_exhaustive()
    }
}

/// Default cap on the number of steps one run executes.
pub const DEFAULT_MAX_STEPS: usize = 100;
/// Default cap on the number of plan revisions in one run.
pub const DEFAULT_MAX_REPLANS: usize = 10;

impl PlanAndExecute {
    /// An agent with this planner and executor, no replanning, at most
    /// [`DEFAULT_MAX_STEPS`] steps and a [`ListStepContainer`] per run.
    pub fn new(planner: Arc<dyn Planner>, executor: Arc<dyn Executor>) -> Self {
        Self {
            planner,
            executor,
            replanner: None,
            replan_policy: ReplanPolicy::Never,
            max_replans: DEFAULT_MAX_REPLANS,
            max_steps: DEFAULT_MAX_STEPS,
            plan_limits: PlanLimits {
                min_steps: 1,
                max_steps: DEFAULT_MAX_STEPS,
            },
            callbacks: Vec::new(),
            container: Arc::new(|| Box::new(ListStepContainer::new())),
            max_concurrency: 1,
            scheduling: Scheduling::Auto,
            failure_policy: FailurePolicy::SkipDependents,
        }
    }

    /// Sets the replanner and when it is consulted.
    #[must_use]
    pub fn with_replanner(mut self, replanner: Arc<dyn Replanner>, policy: ReplanPolicy) -> Self {
        self.replanner = Some(replanner);
        self.replan_policy = policy;
        self
    }

    /// Caps the number of plan revisions per run.
    #[must_use]
    pub fn with_max_replans(mut self, max_replans: usize) -> Self {
        self.max_replans = max_replans;
        self
    }

    /// Caps the number of steps one run executes, across revisions. Plans
    /// longer than this are rejected before anything runs.
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self.plan_limits.max_steps = max_steps;
        self
    }

    /// Sets the bounds every plan (and revision) is validated against. The
    /// upper bound never exceeds the max-steps limit.
    #[must_use]
    pub fn with_plan_limits(mut self, limits: PlanLimits) -> Self {
        self.plan_limits = PlanLimits {
            min_steps: limits.min_steps.max(1),
            max_steps: limits.max_steps.min(self.max_steps),
        };
        self
    }

    /// Adds a callback that receives every event of every run.
    #[must_use]
    pub fn with_callback(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Sets how each run's step container is made.
    #[must_use]
    pub fn with_container(
        mut self,
        factory: impl Fn() -> Box<dyn StepContainer> + Send + Sync + 'static,
    ) -> Self {
        self.container = Arc::new(factory);
        self
    }

    /// Runs up to `n` independent steps of a dependency plan at once
    /// (default 1: one step at a time, in an order that respects the
    /// dependencies). Has no effect on sequential runs.
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Sets how steps are scheduled (default [`Scheduling::Auto`]).
    #[must_use]
    pub fn with_scheduling(mut self, scheduling: Scheduling) -> Self {
        self.scheduling = scheduling;
        self
    }

    /// Sets what a failed step of a dependency plan does to the rest
    /// (default [`FailurePolicy::SkipDependents`]). Sequential runs stop at
    /// a failed step unless the replanner recovers it.
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Runs the agent on an objective.
    ///
    /// # Errors
    /// A [`RunError`]; errors raised after execution started carry a
    /// [`PartialRun`] with everything done so far.
    pub async fn run(&self, objective: impl Into<String>) -> Result<RunResult, RunError> {
        self.run_with_inputs(objective, Inputs::new()).await
    }

    /// Runs the agent with extra named inputs, which reach the planner and
    /// every step (the objective is added as `"input"` and `"objective"`).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_with_inputs(
        &self,
        objective: impl Into<String>,
        extra: Inputs,
    ) -> Result<RunResult, RunError> {
        let sink = EventSink::new(self.callbacks.clone());
        self.execute(objective.into(), extra, RunContext::new(sink))
            .await
    }

    /// Runs the agent until it finishes or `cancel` is cancelled; a
    /// cancelled run returns [`RunError::Cancelled`] with what it had done.
    ///
    /// # Errors
    /// As [`run`](Self::run), plus [`RunError::Cancelled`].
    pub async fn run_with_cancel(
        &self,
        objective: impl Into<String>,
        cancel: &CancelToken,
    ) -> Result<RunResult, RunError> {
        let sink = EventSink::new(self.callbacks.clone());
        let context = RunContext::new(sink).with_cancel_token(cancel.clone());
        self.execute(objective.into(), Inputs::new(), context).await
    }

    /// Runs the agent and yields its events as they happen, then the result.
    pub fn stream(
        &self,
        objective: impl Into<String>,
    ) -> impl Stream<Item = RunUpdate> + Send + '_ {
        let objective = objective.into();
        let (tx, rx) = mpsc::unbounded::<RunUpdate>();
        let mut callbacks = self.callbacks.clone();
        let events_tx = tx.clone();
        callbacks.push(Arc::new(move |event: &Event| {
            // The receiver is gone only when the stream was dropped.
            let _ = events_tx.unbounded_send(RunUpdate::Event(event.clone()));
        }));
        let context = RunContext::new(EventSink::new(callbacks));
        let run = async move {
            let result = self.execute(objective, Inputs::new(), context).await;
            let _ = tx.unbounded_send(RunUpdate::Finished(result));
        };
        // The run's own future yields nothing; it drives the channel, which
        // yields events in order and then the result. The stream ends with
        // the result rather than when the channel closes: an executor may
        // keep a clone of the run context (and so a sender) alive.
        let driver = futures::stream::once(run).filter_map(|()| async { None });
        let merged = Box::pin(futures::stream::select(rx, driver));
        futures::stream::unfold((merged, false), |(mut merged, finished)| async move {
            if finished {
                return None;
            }
            let update = merged.next().await?;
            let finished = matches!(update, RunUpdate::Finished(_));
            Some((update, (merged, finished)))
        })
    }

    async fn execute(
        &self,
        objective: String,
        extra: Inputs,
        context: RunContext,
    ) -> Result<RunResult, RunError> {
        let result = self.execute_inner(objective, extra, context.clone()).await;
        if let Err(error) = &result {
            // Tokens spent before the failure: the partial run's, or (when
            // it failed before any step) what planning recorded.
            let usage = error
                .partial()
                .map_or_else(|| context.usage(), |partial| partial.usage);
            context.emit(EventKind::RunFailed {
                error: error_chain(error),
                usage,
            });
        }
        result
    }

    async fn execute_inner(
        &self,
        objective: String,
        extra: Inputs,
        context: RunContext,
    ) -> Result<RunResult, RunError> {
        let mut inputs = extra;
        inputs.insert("input".into(), objective.clone());
        inputs.insert("objective".into(), objective.clone());

        let request = PlanRequest {
            objective: objective.clone(),
            inputs: inputs.clone(),
            context: context.clone(),
        };
        let cancel = context.cancel_token().clone();
        let plan = match cancel
            .run_until_cancelled(self.planner.plan(&request))
            .await
        {
            Some(plan) => plan.map_err(RunError::Plan)?,
            None => {
                return Err(RunError::Cancelled {
                    partial: Box::new(PartialRun {
                        usage: context.usage(),
                        ..PartialRun::default()
                    }),
                });
            }
        };
        self.check_plan(&plan)?;
        context.emit(EventKind::PlanCreated { plan: plan.clone() });

        let mut run = RunState {
            plans: vec![plan.clone()],
            container: (self.container)(),
            history: StepHistory::new(),
            executed: 0,
            context,
            objective,
            inputs,
        };
        let graph = match self.scheduling {
            Scheduling::Auto => plan.has_dependencies(),
            Scheduling::Graph => true,
            Scheduling::Sequential => false,
        };
        let (outcome, answer) = if graph {
            self.execute_graph(&mut run).await?
        } else {
            self.execute_sequential(&mut run, plan.steps.into()).await?
        };

        let output = match answer {
            Some(answer) => answer,
            None => run
                .container
                .final_response()
                .map(|r| r.response.clone())
                .ok_or(RunError::EmptyPlan)?,
        };
        let usage = run.usage();
        run.context.emit(EventKind::RunFinished {
            output: output.clone(),
            usage,
        });
        let elapsed = run.context.events().elapsed();
        Ok(RunResult {
            output,
            steps: run.container.steps().to_vec(),
            plans: run.plans,
            outcome,
            usage,
            elapsed,
        })
    }

    /// Runs steps one at a time in plan order; each sees every earlier step.
    /// The replanner, per policy, may act after any step.
    async fn execute_sequential(
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
            run.context.emit(EventKind::StepStarted {
                index,
                step: step.clone(),
            });
            let input = run.step_input(index, step.clone(), run.history.clone());
            let result = run
                .context
                .cancel_token()
                .clone()
                .run_until_cancelled(self.executor.step(&input))
                .await;
            // Release this step's handle on the history before recording, so
            // appending does not copy it.
            drop(input);
            let Some(result) = result else {
                return Err(RunError::Cancelled {
                    partial: Box::new(run.partial()),
                });
            };
            let mut failure: Option<ExecError> = None;
            let trigger = match result {
                Ok(response) => {
                    let trigger = trigger_for(&response.status);
                    run.finish_step(index, step, response);
                    trigger
                }
                Err(source) => {
                    if !self.can_replan(run) {
                        return Err(RunError::Step {
                            index,
                            step,
                            source,
                            partial: Box::new(run.partial()),
                        });
                    }
                    let response = failed_response(&source);
                    let trigger = trigger_for(&response.status);
                    run.finish_step(index, step, response);
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
                Revision::Continue(steps) => remaining = steps.into(),
                Revision::LimitReached => {
                    outcome = RunOutcome::ReplanLimitReached {
                        max_replans: self.max_replans,
                    };
                }
            }
        }
        Ok((outcome, None))
    }

    /// Runs a plan with dependencies: a step starts once every step it
    /// depends on has finished, at most `max_concurrency` at a time, and sees
    /// only the results of its dependencies. Results are recorded in plan
    /// order. The replanner, per policy, may act after each round.
    async fn execute_graph(
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
            let remaining: Vec<Step> = this_round
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
                Revision::Continue(_) => {}
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
    /// step error when the failure policy let the round go on.
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
        // history, which is in plan order.
        let mut results: Vec<Option<StepResponse>> = run
            .history
            .iter()
            .map(|(_, r)| Some(r.clone()))
            .chain(std::iter::repeat_n(None, n.saturating_sub(first)))
            .collect();
        let mut started = vec![false; n];
        started[..first].fill(true);
        let mut in_flight = FuturesUnordered::new();
        let mut first_failure: Option<(usize, ExecError)> = None;
        let cancel = run.context.cancel_token().clone();
        let limit = self.max_concurrency.max(1);

        loop {
            // Skip steps whose dependencies did not complete.
            let mut changed = true;
            while changed {
                changed = false;
                for i in first..n {
                    if started[i] {
                        continue;
                    }
                    let broken = deps[i].iter().find(|&&d| {
                        results[d].as_ref().is_some_and(|r| {
                            matches!(
                                r.status,
                                StepStatus::Failed { .. } | StepStatus::Skipped { .. }
                            )
                        })
                    });
                    if let Some(&d) = broken {
                        let reason = format!("step {} did not complete", d + 1);
                        let response = StepResponse::new(format!("Skipped: {reason}"))
                            .with_status(StepStatus::Skipped { reason });
                        started[i] = true;
                        run.context.emit(EventKind::StepFinished {
                            index: i,
                            step: plan.steps[i].clone(),
                            response: response.clone(),
                        });
                        results[i] = Some(response);
                        changed = true;
                    }
                }
            }
            // Start ready steps in plan order, up to the limit.
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
                    index: i,
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
                let input = run.step_input(i, shown, previous);
                let executor = self.executor.clone();
                in_flight.push(async move {
                    let result = executor.step(&input).await;
                    (i, result)
                });
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
                return Err(RunError::Cancelled {
                    partial: Box::new(run.partial()),
                });
            };
            let Some((i, result)) = next else { break };
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
            run.context.emit(EventKind::StepFinished {
                index: i,
                step: plan.steps[i].clone(),
                response: response.clone(),
            });
            results[i] = Some(response);
        }
        Ok(first_failure)
    }

    /// Whether a failed step may be handed to the replanner.
    fn can_replan(&self, run: &RunState) -> bool {
        self.replanner.is_some()
            && self.replan_policy != ReplanPolicy::Never
            && run.plans.len() <= self.max_replans
    }

    /// Asks the replanner how to go on. `failure` is the error of a step that
    /// just failed: a run may not end on it.
    async fn replan(
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
            context: run.context.clone(),
        };
        let cancel = run.context.cancel_token().clone();
        let decision = match cancel.run_until_cancelled(replanner.replan(&request)).await {
            Some(decision) => decision.map_err(|source| RunError::Replan {
                source,
                partial: Box::new(run.partial()),
            })?,
            None => {
                return Err(RunError::Cancelled {
                    partial: Box::new(run.partial()),
                });
            }
        };
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
                run.context.emit(EventKind::PlanRevised {
                    plan: revised,
                    revision: run.plans.len() - 1,
                });
                Ok(Revision::Continue(steps))
            }
        }
    }

    /// Checks a plan (or a revision) before anything of it runs.
    // The error is the run's own error type, returned as is by `run`.
    #[allow(clippy::result_large_err)]
    fn check_plan(&self, plan: &Plan) -> Result<(), RunError> {
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

/// What the replanner decided, as the loops need it.
enum Revision {
    Finish(String),
    Continue(Vec<Step>),
    LimitReached,
}

/// The replan trigger a step's status stands for.
fn trigger_for(status: &StepStatus) -> ReplanTrigger {
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
fn failed_response(source: &ExecError) -> StepResponse {
    let error = error_chain(source);
    StepResponse::new(format!("Error: {error}")).with_status(StepStatus::Failed { error })
}

/// The state of one run.
struct RunState {
    plans: Vec<Plan>,
    container: Box<dyn StepContainer>,
    /// The same pairs as the container, shared cheaply with each step.
    history: StepHistory,
    executed: usize,
    context: RunContext,
    objective: String,
    inputs: Inputs,
}

impl RunState {
    fn step_input(&self, index: usize, step: Step, previous: StepHistory) -> StepInput {
        StepInput {
            objective: self.objective.clone(),
            current_step: step,
            index,
            previous_steps: previous,
            inputs: self.inputs.clone(),
            context: self.context.clone(),
        }
    }

    /// Emits `StepFinished` and records the step.
    fn finish_step(&mut self, index: usize, step: Step, response: StepResponse) {
        self.context.emit(EventKind::StepFinished {
            index,
            step: step.clone(),
            response: response.clone(),
        });
        self.store(step, response);
    }

    /// Records a step in the container and the history.
    fn store(&mut self, step: Step, response: StepResponse) {
        self.history.push(step.clone(), response.clone());
        self.container.add_step(step, response);
        self.executed += 1;
    }

    fn usage(&self) -> TokenUsage {
        self.context.usage() + self.container.steps().iter().map(|(_, r)| r.usage).sum()
    }

    /// The error for a failed step (the last recorded) nothing could recover.
    fn unrecovered(&self, index: usize, source: ExecError) -> RunError {
        let step = self
            .container
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

    fn partial(&self) -> PartialRun {
        PartialRun {
            plans: self.plans.clone(),
            steps: self.container.steps().to_vec(),
            usage: self.usage(),
        }
    }
}

/// An error and its sources, joined with ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
