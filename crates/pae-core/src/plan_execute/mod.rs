//! [`PlanAndExecute`]: plan once, execute every step, optionally revise the
//! plan as steps finish, and answer from the step container — in memory, or
//! durably in a [`RunStore`] so a run survives a crash, waits for a
//! person's approval and resumes in any process.
//!
//! - `mod.rs`: the agent, its settings and its entry points;
//! - `session`: opening a run (fresh or resumed), driving it, closing it;
//! - `sequential` and `graph`: the two schedulers;
//! - `replan`: replanning, plan checks and approval stops;
//! - `state`: the run's state and the helpers the loops share;
//! - `result`: what a run returns.

mod graph;
mod outcome;
mod replan;
mod result;
mod sequential;
mod session;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use pae_schema::{Plan, PlanLimits, StepContainer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use outcome::{AnswerProblem, RunOutcome};
pub use result::{RunResult, RunUpdate, answer_problems, error_chain};

use crate::cancel::CancelToken;
use crate::chain::Inputs;
use crate::error::RunError;
use crate::event::{Event, EventCallback, EventSink};
use crate::executor::Executor;
use crate::planner::{Planner, Replanner};
use crate::store::{ApprovalPolicy, Budget, RunId, RunStore, local_owner};

/// When the replanner is consulted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Skip the steps that depend on it (recorded with the reason) and go on
    /// with the independent ones.
    #[default]
    SkipDependents,
    /// Stop the run at once, cancelling the steps in flight.
    Abort,
}

/// What to run: a new objective, or a stored run to resume; with inputs,
/// cancellation and event callbacks. Made from a `&str` or `String` for the
/// plain case.
///
/// ```
/// use pae_core::{CancelToken, RunRequest};
/// let token = CancelToken::new();
/// let request = RunRequest::new("What is 2 + 2?")
///     .with_input("lang", "en")
///     .with_cancel(token.clone())
///     .with_callback(|event| println!("{:?}", event.kind));
/// # let _ = request;
/// ```
#[derive(Clone, Default)]
pub struct RunRequest {
    objective: String,
    resume: Option<RunId>,
    run_id: Option<RunId>,
    inputs: Inputs,
    settings: Value,
    cancel: Option<CancelToken>,
    callbacks: Vec<EventCallback>,
    budget: Option<Budget>,
}

impl fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunRequest")
            .field("objective", &self.objective)
            .field("resume", &self.resume)
            .field("run_id", &self.run_id)
            .field("inputs", &self.inputs)
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}

impl RunRequest {
    /// A run of `objective`.
    pub fn new(objective: impl Into<String>) -> Self {
        Self {
            objective: objective.into(),
            ..Self::default()
        }
    }

    /// Resumes the stored run `id` (the agent needs a store): committed
    /// steps do not run again, the step that was in flight runs again with
    /// its journaled calls replayed.
    pub fn resume(id: RunId) -> Self {
        Self {
            resume: Some(id),
            ..Self::default()
        }
    }

    /// Adds named inputs, which reach the planner and every step (the
    /// objective is added as `"input"` and `"objective"`). Ignored on
    /// resume: the stored inputs are used.
    #[must_use]
    pub fn with_inputs(mut self, inputs: Inputs) -> Self {
        self.inputs.extend(inputs);
        self
    }

    /// Adds one named input.
    #[must_use]
    pub fn with_input(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inputs.insert(key.into(), value.into());
        self
    }

    /// Stops the run when `token` is cancelled; the run returns
    /// [`RunError::Cancelled`] with what it had done (a durable run is left
    /// interrupted and resumable).
    #[must_use]
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Adds a callback for this run's events (the agent's own callbacks get
    /// them too).
    #[must_use]
    pub fn with_callback(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Gives a new run this id in the store instead of a generated one.
    #[must_use]
    pub fn with_run_id(mut self, id: RunId) -> Self {
        self.run_id = Some(id);
        self
    }

    /// Caller settings stored with a new durable run (for example the
    /// provider and model to resume it with). Never put secrets here.
    #[must_use]
    pub fn with_settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// The budget: for a new run, instead of the agent's; on resume,
    /// replacing the stored one (to go on after a budget ran out).
    #[must_use]
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl From<&str> for RunRequest {
    fn from(objective: &str) -> Self {
        Self::new(objective)
    }
}

impl From<String> for RunRequest {
    fn from(objective: String) -> Self {
        Self::new(objective)
    }
}

impl From<&String> for RunRequest {
    fn from(objective: &String) -> Self {
        Self::new(objective.clone())
    }
}

/// A person's decision on a plan waiting for approval.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Run the plan as it is.
    Approve,
    /// Replace the plan: it is validated and stored as a new revision from
    /// a person, still waiting for approval. Steps that already ran must
    /// stay first, unchanged.
    Edit(Plan),
    /// Do not run it: the run is cancelled.
    Reject {
        /// Why, for the record.
        reason: Option<String>,
    },
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
/// one instance serves any number of concurrent runs. With a
/// [`RunStore`] ([`with_store`](Self::with_store)) every run is durable:
/// each step commits as it finishes, model and tool calls are journaled,
/// and the run can wait for approval and be resumed by any process.
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
/// let agent = PlanAndExecute::new(planner, executor);
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
    /// `None`: the default [`ListStepContainer`](pae_schema::ListStepContainer), whose part the run's
    /// history plays, so each step is held once, not twice.
    container: Option<ContainerFactory>,
    max_concurrency: usize,
    scheduling: Scheduling,
    failure_policy: FailurePolicy,
    store: Option<Arc<dyn RunStore>>,
    approval: ApprovalPolicy,
    budget: Budget,
    lease_ttl: Duration,
    owner: String,
    message_content: bool,
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
            .field("durable", &self.store.is_some())
            .field("approval", &self.approval)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Default cap on the number of steps one run executes.
pub const DEFAULT_MAX_STEPS: usize = 100;
/// Default cap on the number of plan revisions in one run.
pub const DEFAULT_MAX_REPLANS: usize = 10;
/// Default lease time of a durable run: another process may take the run
/// over this long after its owner stopped renewing (it renews every third
/// of it).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

impl PlanAndExecute {
    /// An agent with this planner and executor, no replanning, at most
    /// [`DEFAULT_MAX_STEPS`] steps and a [`ListStepContainer`](pae_schema::ListStepContainer) per run.
    /// Takes the parts by value or as `Arc`s (`Arc<dyn Planner>` included).
    pub fn new(planner: impl Planner + 'static, executor: impl Executor + 'static) -> Self {
        Self {
            planner: Arc::new(planner),
            executor: Arc::new(executor),
            replanner: None,
            replan_policy: ReplanPolicy::Never,
            max_replans: DEFAULT_MAX_REPLANS,
            max_steps: DEFAULT_MAX_STEPS,
            plan_limits: PlanLimits {
                min_steps: 1,
                max_steps: DEFAULT_MAX_STEPS,
            },
            callbacks: Vec::new(),
            container: None,
            max_concurrency: 1,
            scheduling: Scheduling::Auto,
            failure_policy: FailurePolicy::SkipDependents,
            store: None,
            approval: ApprovalPolicy::Never,
            budget: Budget::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
            owner: local_owner().to_owned(),
            message_content: false,
        }
    }

    /// Sets the replanner and when it is consulted.
    #[must_use]
    pub fn with_replanner(
        mut self,
        replanner: impl Replanner + 'static,
        policy: ReplanPolicy,
    ) -> Self {
        self.replanner = Some(Arc::new(replanner));
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
        self.container = Some(Arc::new(factory));
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

    /// Keeps every run in `store`: each step commits as it finishes, model
    /// and tool calls are journaled, events are stored, and runs can be
    /// resumed ([`RunRequest::resume`]) and approved ([`decide`](Self::decide))
    /// by any process. Durable runs need a tokio runtime with the `time`
    /// feature (the lease is renewed on a timer).
    #[must_use]
    pub fn with_store(mut self, store: impl RunStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// When plans need a person's approval before they run (default
    /// [`ApprovalPolicy::Never`]; anything else needs a store). A run that
    /// needs approval stops with [`RunOutcome::AwaitingApproval`].
    #[must_use]
    pub fn with_approval(mut self, policy: ApprovalPolicy) -> Self {
        self.approval = policy;
        self
    }

    /// Limits what each run may spend (tokens, tool calls, wall time,
    /// cost), checked before every model and tool call and continued across
    /// resumes. A run that runs out ends with [`RunError::BudgetExceeded`].
    #[must_use]
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// How long a durable run's lease lasts without renewal (default
    /// [`DEFAULT_LEASE_TTL`]): a process that dies holding it blocks other
    /// processes from the run this long, unless it is known dead on this
    /// machine.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// Names this process in leases (default `HOST:PID:START`).
    #[must_use]
    pub fn with_lease_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Records message content (off by default: it can hold secrets): the
    /// prompt and raw reply of every model call in its
    /// [`ModelCalled`](crate::EventKind::ModelCalled) event (and so in the
    /// run store) and `chat` span, tool arguments and results in
    /// `execute_tool` spans. See [`telemetry`](crate::telemetry).
    #[must_use]
    pub fn with_message_content(mut self, enabled: bool) -> Self {
        self.message_content = enabled;
        self
    }

    /// The run store, if the agent has one.
    pub fn store(&self) -> Option<&Arc<dyn RunStore>> {
        self.store.as_ref()
    }

    /// Runs the agent: a new objective or, with [`RunRequest::resume`], a
    /// stored run.
    ///
    /// # Errors
    /// A [`RunError`]; errors raised after execution started carry a
    /// [`PartialRun`](crate::PartialRun) with everything done so far.
    pub async fn run(&self, request: impl Into<RunRequest>) -> Result<RunResult, RunError> {
        let mut request = request.into();
        let mut callbacks = self.callbacks.clone();
        callbacks.append(&mut request.callbacks);
        self.execute(request, EventSink::new(callbacks)).await
    }

    /// Runs the agent and yields its events as they happen, then the result.
    pub fn stream(
        &self,
        request: impl Into<RunRequest>,
    ) -> impl Stream<Item = RunUpdate> + Send + '_ {
        let mut request = request.into();
        let (tx, rx) = mpsc::unbounded::<RunUpdate>();
        let mut callbacks = self.callbacks.clone();
        callbacks.append(&mut request.callbacks);
        let events_tx = tx.clone();
        callbacks.push(Arc::new(move |event: &Event| {
            // The receiver is gone only when the stream was dropped.
            let _ = events_tx.unbounded_send(RunUpdate::Event(event.clone()));
        }));
        let sink = EventSink::new(callbacks);
        let run = async move {
            let result = self.execute(request, sink).await;
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
}
