//! [`PlanAndExecute`]: plan once, execute every step, optionally revise the
//! plan as steps finish, and answer from the step container.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use futures::channel::mpsc;
use pae_schema::{
    ListStepContainer, Plan, PlanLimits, PlanValidationError, Step, StepContainer, StepResponse,
    StepStatus, TokenUsage,
};
use serde::Serialize;

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
}

impl fmt::Debug for PlanAndExecute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanAndExecute")
            .field("replan_policy", &self.replan_policy)
            .field("max_replans", &self.max_replans)
            .field("max_steps", &self.max_steps)
            .field("plan_limits", &self.plan_limits)
            .field("callbacks", &self.callbacks.len())
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
        let mut inputs = extra;
        inputs.insert("input".into(), objective.clone());
        inputs.insert("objective".into(), objective.clone());

        let request = PlanRequest {
            objective: objective.clone(),
            inputs: inputs.clone(),
            context: context.clone(),
        };
        let plan = self.planner.plan(&request).await.map_err(RunError::Plan)?;
        self.check_plan(&plan, 0)?;
        context.emit(EventKind::PlanCreated { plan: plan.clone() });

        let mut run = RunState {
            plans: vec![plan.clone()],
            container: (self.container)(),
            history: StepHistory::new(),
            executed: 0,
            context,
        };
        let mut remaining: VecDeque<Step> = plan.steps.into();
        let mut index = 0usize;
        let mut outcome = RunOutcome::Completed;
        let mut answer: Option<String> = None;

        while let Some(step) = remaining.pop_front() {
            if run.executed >= self.max_steps {
                return Err(RunError::TooManySteps {
                    steps: run.executed + 1 + remaining.len(),
                    max: self.max_steps,
                });
            }
            run.context.emit(EventKind::StepStarted {
                index,
                step: step.clone(),
            });
            let input = StepInput {
                objective: objective.clone(),
                current_step: step.clone(),
                index,
                previous_steps: run.history.clone(),
                inputs: inputs.clone(),
                context: run.context.clone(),
            };
            let mut failure: Option<ExecError> = None;
            let result = self.executor.step(&input).await;
            // Release this step's handle on the history before recording, so
            // appending does not copy it.
            drop(input);
            let trigger = match result {
                Ok(response) => {
                    let trigger = match &response.status {
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
                    };
                    run.record(index, step.clone(), response);
                    trigger
                }
                Err(source) => {
                    let can_recover = self.replanner.is_some()
                        && self.replan_policy != ReplanPolicy::Never
                        && run.plans.len() <= self.max_replans;
                    if !can_recover {
                        return Err(RunError::Step {
                            index,
                            step,
                            source,
                            partial: Box::new(run.partial()),
                        });
                    }
                    let error = error_chain(&source);
                    let response = StepResponse::new(format!("Error: {error}")).with_status(
                        StepStatus::Failed {
                            error: error.clone(),
                        },
                    );
                    run.record(index, step.clone(), response);
                    failure = Some(source);
                    ReplanTrigger::StepFailed { error }
                }
            };
            index += 1;

            let wants_replan = match self.replan_policy {
                ReplanPolicy::Never => false,
                ReplanPolicy::AfterEveryStep => true,
                ReplanPolicy::OnFailure => trigger != ReplanTrigger::StepCompleted,
            };
            let Some(replanner) = self.replanner.as_ref().filter(|_| wants_replan) else {
                continue;
            };
            if run.plans.len() > self.max_replans {
                outcome = RunOutcome::ReplanLimitReached {
                    max_replans: self.max_replans,
                };
                if let Some(source) = failure {
                    // The failure was recorded, but nothing may revise the
                    // plan: going on would build on a missing result.
                    return Err(run.unrecovered(index - 1, source));
                }
                continue;
            }
            let current_plan = run.plans.last().cloned().unwrap_or_default();
            let request = ReplanRequest {
                objective: objective.clone(),
                plan: current_plan,
                completed: run.container.steps().to_vec(),
                remaining: remaining.iter().cloned().collect(),
                trigger: Some(trigger),
                context: run.context.clone(),
            };
            let decision = replanner
                .replan(&request)
                .await
                .map_err(|source| RunError::Replan {
                    source,
                    partial: Box::new(run.partial()),
                })?;
            match decision {
                ReplanDecision::Finish { answer: text } => {
                    answer = Some(text);
                    outcome = RunOutcome::AnsweredByReplanner;
                    break;
                }
                ReplanDecision::Continue { steps } => {
                    let revised: Plan = run
                        .container
                        .steps()
                        .iter()
                        .map(|(s, _)| s.clone())
                        .chain(steps.iter().cloned())
                        .collect();
                    if !steps.is_empty() {
                        self.check_plan(&Plan::new(steps.clone()), run.executed)
                            .map_err(|err| match err {
                                RunError::InvalidPlan(e) => RunError::Replan {
                                    source: PlanError::Invalid(e),
                                    partial: Box::new(run.partial()),
                                },
                                other => other,
                            })?;
                    }
                    if let Some(source) = failure.filter(|_| steps.is_empty()) {
                        // Ending on a failed step would answer with an error.
                        return Err(run.unrecovered(index - 1, source));
                    }
                    run.plans.push(revised.clone());
                    run.context.emit(EventKind::PlanRevised {
                        plan: revised,
                        revision: run.plans.len() - 1,
                    });
                    remaining = steps.into();
                }
            }
        }

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

    /// Checks a plan (or revised remaining steps) before anything runs.
    // The error is the run's own error type, returned as is by `run`.
    #[allow(clippy::result_large_err)]
    fn check_plan(&self, plan: &Plan, executed: usize) -> Result<(), RunError> {
        if plan.is_empty() {
            return Err(RunError::EmptyPlan);
        }
        if executed + plan.len() > self.max_steps {
            return Err(RunError::TooManySteps {
                steps: executed + plan.len(),
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

/// The state of one run.
struct RunState {
    plans: Vec<Plan>,
    container: Box<dyn StepContainer>,
    /// The same pairs as the container, shared cheaply with each step.
    history: StepHistory,
    executed: usize,
    context: RunContext,
}

impl RunState {
    fn record(&mut self, index: usize, step: Step, response: StepResponse) {
        self.context.emit(EventKind::StepFinished {
            index,
            step: step.clone(),
            response: response.clone(),
        });
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
