//! Durable runs through the public API, on the in-memory store: what is
//! stored, approval across agents, resume after a run's future is dropped
//! mid-step (a crash, as far as the store can tell), journal replay, tool
//! calls in doubt, budgets, and the typed errors of bad requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pae_core::store::{
    ApprovalPolicy, Budget, BudgetKind, CallKind, CallScope, CallState, Interruption, PlanSource,
    RunFilter, RunStatus, RunStore,
};
use pae_core::test_util::ScriptedModel;
use pae_core::{
    ChatModel, ChatRequest, Decision, EventKind, ExecError, Executor, MemoryStore, Message, Plan,
    PlanAndExecute, PlanError, PlanRequest, Planner, RunError, RunId, RunOutcome, RunRequest,
    StepInput, StepResponse, TokenUsage, Tool, ToolContext, ToolError,
};
use serde_json::{Value, json};

/// A planner that counts its calls and returns a fixed plan.
struct CountingPlanner {
    plan: Plan,
    calls: AtomicUsize,
}

#[async_trait]
impl Planner for CountingPlanner {
    async fn plan(&self, _request: &PlanRequest) -> Result<Plan, PlanError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.plan.clone())
    }
}

fn planner(steps: &[&str]) -> Arc<CountingPlanner> {
    Arc::new(CountingPlanner {
        plan: Plan::new(steps.iter().copied()),
        calls: AtomicUsize::new(0),
    })
}

/// A tool that records every call (input and idempotency key) and can be
/// told to hang on one call, to simulate a crash in the middle of it.
struct Recorder {
    calls: Mutex<Vec<(Value, String)>>,
    hang_on: Mutex<Option<usize>>,
    idempotent: bool,
}

impl Recorder {
    fn new(idempotent: bool) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::default(),
            hang_on: Mutex::default(),
            idempotent,
        })
    }

    fn calls(&self) -> Vec<(Value, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Tool for Recorder {
    fn name(&self) -> &str {
        "record"
    }
    fn description(&self) -> &str {
        "records"
    }
    async fn call(&self, input: Value) -> Result<String, ToolError> {
        self.call_with_context(input, &ToolContext::new()).await
    }
    async fn call_with_context(
        &self,
        input: Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((input.clone(), context.idempotency_key().to_owned()));
            calls.len()
        };
        if *self.hang_on.lock().unwrap() == Some(n) {
            futures::future::pending::<()>().await;
        }
        Ok(format!("recorded {}", input["step"]))
    }
    fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

/// An executor that, for each step, asks the model, calls the tool, asks
/// the model again and answers with the second reply: every call goes
/// through the run context, so it is journaled.
struct ModelAndTool {
    model: Arc<ScriptedModel>,
    tool: Arc<Recorder>,
    steps_run: AtomicUsize,
}

impl ModelAndTool {
    fn new(model: Arc<ScriptedModel>, tool: Arc<Recorder>) -> Arc<Self> {
        Arc::new(Self {
            model,
            tool,
            steps_run: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Executor for ModelAndTool {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        self.steps_run.fetch_add(1, Ordering::SeqCst);
        let context = &input.context;
        let ask = |text: String| ChatRequest::new(vec![Message::user(text)]);
        let first = context
            .chat(
                self.model.as_ref(),
                ask(format!("think {}", input.current_step.value)),
            )
            .await?;
        let observation = context
            .call_tool(
                self.tool.as_ref(),
                json!({"step": input.current_step.value}),
            )
            .await
            .map_err(|source| ExecError::Tool {
                tool: "record".into(),
                source,
            })?;
        let second = context
            .chat(
                self.model.as_ref(),
                ask(format!("{} then {observation}", first.content())),
            )
            .await?;
        let usage = first.usage.unwrap_or_default() + second.usage.unwrap_or_default();
        Ok(StepResponse::new(second.content()).with_usage(usage))
    }
}

fn echo_model() -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::from_fn(|request: &ChatRequest| {
            let last = request.messages.last().map(|m| m.content.clone());
            format!("re: {}", last.unwrap_or_default()).into()
        })
        .with_usage(TokenUsage::new(10, 2)),
    )
}

fn agent(
    planner: Arc<CountingPlanner>,
    executor: Arc<ModelAndTool>,
    store: Arc<MemoryStore>,
    owner: &str,
) -> PlanAndExecute {
    PlanAndExecute::new(planner, executor)
        .with_store(store)
        .with_lease_owner(owner)
        .with_lease_ttl(Duration::from_millis(100))
}

#[tokio::test]
async fn a_durable_run_stores_its_plan_steps_journal_events_and_spending() {
    let store = Arc::new(MemoryStore::new());
    let model = echo_model();
    let tool = Recorder::new(false);
    let executor = ModelAndTool::new(model.clone(), tool.clone());
    let agent = agent(planner(&["a", "b"]), executor, store.clone(), "A");

    let result = agent
        .run(RunRequest::new("obj").with_settings(json!({"model": "m"})))
        .await
        .unwrap();
    let id = result.run_id.clone().expect("a durable run has an id");

    let record = store.run(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.objective, "obj");
    assert_eq!(record.settings, json!({"model": "m"}));
    assert_eq!(
        record.ending.output.as_deref(),
        Some(result.output.as_str())
    );
    assert_eq!(record.ending.outcome, Some(RunOutcome::Completed));
    assert!(record.lease.is_none(), "the lease is given back");
    assert_eq!(record.spent.model_calls, 4);
    assert_eq!(record.spent.tool_calls, 2);
    assert_eq!(record.spent.usage, TokenUsage::new(40, 8));
    assert_eq!(record.spent.sessions, 1);
    assert_eq!(result.spent.usage, TokenUsage::new(40, 8));

    let plans = store.plans(&id).await.unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].source, PlanSource::Planner);
    let steps = store.steps(&id).await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].response.response, result.output);

    let journal = store
        .journal(
            &id,
            &CallScope::Step {
                revision: 0,
                index: 1,
            },
        )
        .await
        .unwrap();
    let kinds: Vec<(u32, CallKind, CallState)> =
        journal.iter().map(|e| (e.seq, e.kind, e.state)).collect();
    assert_eq!(
        kinds,
        vec![
            (0, CallKind::Model, CallState::Done),
            (1, CallKind::Tool, CallState::Done),
            (2, CallKind::Model, CallState::Done),
        ]
    );
    let key = journal[1].idempotency_key.clone().unwrap();
    assert_eq!(key, format!("{id}/0/1/1"));
    assert_eq!(tool.calls()[1].1, key, "the tool got the same key");

    let events = store.events(&id, None).await.unwrap();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match &e.event.kind {
            EventKind::PlanCreated { .. } => "plan",
            EventKind::StepStarted { .. } => "start",
            EventKind::ModelCalled { .. } => "model",
            EventKind::ToolStarted { .. } => "tool",
            EventKind::ToolFinished { .. } => "tool-done",
            EventKind::StepFinished { .. } => "done",
            EventKind::RunFinished { .. } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "plan",
            "start",
            "model",
            "tool",
            "tool-done",
            "model",
            "done",
            "start",
            "model",
            "tool",
            "tool-done",
            "model",
            "done",
            "finished"
        ]
    );
    // Events read back as the same values (plain serde data).
    let json = serde_json::to_string(&events).unwrap();
    let back: Vec<pae_core::store::StoredEvent> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, events);
    let listed = store.list(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn approval_stops_the_run_and_another_agent_finishes_it_without_planning_again() {
    let store = Arc::new(MemoryStore::new());
    let planner = planner(&["a", "b"]);
    let model = echo_model();
    let tool = Recorder::new(false);
    let executor = ModelAndTool::new(model.clone(), tool.clone());
    let a = agent(planner.clone(), executor.clone(), store.clone(), "A")
        .with_approval(ApprovalPolicy::BeforeExecution);

    let waiting = a.run("obj").await.unwrap();
    assert_eq!(
        waiting.outcome,
        RunOutcome::AwaitingApproval { revision: 0 }
    );
    assert!(waiting.output.is_empty());
    assert_eq!(tool.calls().len(), 0, "no tool ran before approval");
    let id = waiting.run_id.unwrap();
    assert_eq!(
        store.run(&id).await.unwrap().status,
        RunStatus::AwaitingApproval
    );

    // Resuming before a decision does nothing.
    let b = agent(planner.clone(), executor.clone(), store.clone(), "B")
        .with_approval(ApprovalPolicy::BeforeExecution);
    let still = b.run(RunRequest::resume(id.clone())).await.unwrap();
    assert!(still.is_awaiting_approval());

    // A bad edit is refused and changes nothing.
    let err = b
        .decide(&id, Decision::Edit(Plan::new(Vec::<String>::new())))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::EmptyPlan), "{err:?}");
    assert_eq!(store.plans(&id).await.unwrap().len(), 1);

    let edited = b
        .decide(&id, Decision::Edit(Plan::new(["x", "y", "z"])))
        .await
        .unwrap();
    assert_eq!(edited.status, RunStatus::AwaitingApproval);
    let record = b.decide(&id, Decision::Approve).await.unwrap();
    assert_eq!(record.status, RunStatus::Running);
    let plans = store.plans(&id).await.unwrap();
    assert_eq!(plans[1].source, PlanSource::Human);
    assert!(plans[1].approved);

    // Approving twice is an error that changes nothing.
    let twice = b.decide(&id, Decision::Approve).await.unwrap_err();
    assert!(
        matches!(twice, RunError::NotAwaitingApproval { .. }),
        "{twice:?}"
    );

    let c = agent(planner.clone(), executor, store.clone(), "C");
    let done = c.run(RunRequest::resume(id.clone())).await.unwrap();
    assert_eq!(done.outcome, RunOutcome::Completed);
    assert_eq!(done.steps.len(), 3, "the edited plan ran");
    assert_eq!(done.steps[0].0.value, "x");
    assert_eq!(planner.calls.load(Ordering::SeqCst), 1, "planned once");
    assert_eq!(store.run(&id).await.unwrap().status, RunStatus::Succeeded);

    let finished = c.run(RunRequest::resume(id.clone())).await.unwrap_err();
    assert!(
        matches!(finished, RunError::NotResumable { .. }),
        "{finished:?}"
    );
}

#[tokio::test]
async fn rejecting_cancels_the_run() {
    let store = Arc::new(MemoryStore::new());
    let a = agent(
        planner(&["a"]),
        ModelAndTool::new(echo_model(), Recorder::new(false)),
        store.clone(),
        "A",
    )
    .with_approval(ApprovalPolicy::BeforeExecution);
    let id = a.run("obj").await.unwrap().run_id.unwrap();
    let record = a
        .decide(
            &id,
            Decision::Reject {
                reason: Some("too risky".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert!(record.ending.error.unwrap().contains("too risky"));
}

/// Runs `agent` until the recorder starts call number `hang_on`, then drops
/// the run (as a killed process would leave it) and waits for the lease to
/// expire.
async fn crash_at_tool_call(agent: &PlanAndExecute, tool: &Recorder, hang_on: usize) -> RunId {
    *tool.hang_on.lock().unwrap() = Some(hang_on);
    let id = RunId::generate();
    let run = agent.run(RunRequest::new("obj").with_run_id(id.clone()));
    let stopped = tokio::time::timeout(Duration::from_millis(300), run).await;
    assert!(stopped.is_err(), "the run hung on the tool, as planned");
    *tool.hang_on.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_millis(150)).await;
    id
}

#[tokio::test]
async fn resume_skips_committed_steps_and_replays_the_journal_of_the_step_in_flight() {
    let store = Arc::new(MemoryStore::new());
    let model = echo_model();
    // Idempotent: the call in flight at the crash may run again.
    let tool = Recorder::new(true);
    let executor = ModelAndTool::new(model.clone(), tool.clone());
    let plan = planner(&["a", "b", "c"]);
    let a = agent(plan.clone(), executor.clone(), store.clone(), "A");
    // Steps a and b commit; step c hangs in its tool call.
    let id = crash_at_tool_call(&a, &tool, 3).await;
    assert_eq!(store.steps(&id).await.unwrap().len(), 2);
    assert_eq!(store.run(&id).await.unwrap().status, RunStatus::Running);
    let model_calls_before = model.calls();
    assert_eq!(model_calls_before, 5);

    let b = agent(plan.clone(), executor.clone(), store.clone(), "B");
    let result = b.run(RunRequest::resume(id.clone())).await.unwrap();
    assert_eq!(result.steps.len(), 3);
    assert_eq!(
        result.steps[2].1.response,
        "re: re: think c then recorded \"c\""
    );
    assert_eq!(plan.calls.load(Ordering::SeqCst), 1, "not planned again");
    assert_eq!(
        executor.steps_run.load(Ordering::SeqCst),
        4,
        "a and b ran once, c twice"
    );
    // Step c's first model call came from the journal: one new model call.
    assert_eq!(model.calls() - model_calls_before, 1);
    // The tool call in flight ran again, with the same idempotency key.
    let calls = tool.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[2].1, calls[3].1);
    let record = store.run(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.spent.sessions, 2);
    assert_eq!(record.spent.replayed_calls, 1);
    assert_eq!(record.spent.model_calls, 6, "continuous across the resume");
    assert_eq!(record.spent.usage, TokenUsage::new(60, 12));
}

#[tokio::test]
async fn a_tool_with_side_effects_that_never_returned_interrupts_the_run() {
    let store = Arc::new(MemoryStore::new());
    let tool = Recorder::new(false);
    let executor = ModelAndTool::new(echo_model(), tool.clone());
    let plan = planner(&["a", "b"]);
    let a = agent(plan.clone(), executor.clone(), store.clone(), "A");
    let id = crash_at_tool_call(&a, &tool, 2).await;

    let b = agent(plan.clone(), executor.clone(), store.clone(), "B");
    let err = b.run(RunRequest::resume(id.clone())).await.unwrap_err();
    match &err {
        RunError::Interrupted {
            reason:
                Interruption::ToolCallInDoubt {
                    step_index,
                    tool: name,
                    idempotency_key,
                    ..
                },
            partial,
        } => {
            assert_eq!(*step_index, 1);
            assert_eq!(name, "record");
            assert_eq!(idempotency_key, &format!("{id}/0/1/1"));
            assert_eq!(partial.steps.len(), 1);
        }
        other => panic!("expected a call in doubt, got {other:?}"),
    }
    assert_eq!(tool.calls().len(), 2, "the tool was not called again");
    let record = store.run(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(matches!(
        record.ending.interruption,
        Some(Interruption::ToolCallInDoubt { .. })
    ));
}

#[tokio::test]
async fn budgets_hold_across_a_crash_and_resume() {
    let store = Arc::new(MemoryStore::new());
    let tool = Recorder::new(true);
    let executor = ModelAndTool::new(echo_model(), tool.clone());
    let plan = planner(&["a", "b", "c", "d"]);
    // Each step spends 24 tokens; 60 allow two steps and part of a third.
    let a = agent(plan.clone(), executor.clone(), store.clone(), "A")
        .with_budget(Budget::unlimited().with_max_tokens(60));
    let id = crash_at_tool_call(&a, &tool, 2).await;
    // Step a (24) and the first model call of step b (12), journaled
    // before the tool call started.
    assert_eq!(store.run(&id).await.unwrap().spent.usage.total_tokens(), 36);

    let b = agent(plan.clone(), executor.clone(), store.clone(), "B");
    let err = b.run(RunRequest::resume(id.clone())).await.unwrap_err();
    match &err {
        RunError::BudgetExceeded {
            budget,
            limit,
            spent,
            partial,
        } => {
            assert_eq!(*budget, BudgetKind::Tokens);
            assert!((*limit - 60.0).abs() < f64::EPSILON);
            assert!((*spent - 60.0).abs() < f64::EPSILON, "{spent}");
            assert_eq!(partial.steps.len(), 2);
        }
        other => panic!("expected a budget error, got {other:?}"),
    }
    let record = store.run(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert_eq!(record.spent.usage.total_tokens(), 60);

    // A larger budget lets it finish, still without repeating steps.
    let c = agent(plan.clone(), executor.clone(), store.clone(), "C");
    let done = c
        .run(RunRequest::resume(id.clone()).with_budget(Budget::unlimited().with_max_tokens(500)))
        .await
        .unwrap();
    assert_eq!(done.steps.len(), 4);
    assert_eq!(store.run(&id).await.unwrap().budget.max_tokens, Some(500));
}

#[tokio::test]
async fn bad_requests_get_typed_errors() {
    let store = Arc::new(MemoryStore::new());
    let executor = ModelAndTool::new(echo_model(), Recorder::new(false));
    let a = agent(planner(&["a"]), executor.clone(), store.clone(), "A");
    let missing = a
        .run(RunRequest::resume(RunId::parse("nope").unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            RunError::Store(pae_core::StoreError::NotFound { .. })
        ),
        "{missing:?}"
    );
    let in_memory = PlanAndExecute::new(planner(&["a"]), executor.clone());
    assert!(matches!(
        in_memory.run(RunRequest::resume(RunId::generate())).await,
        Err(RunError::NoStore)
    ));
    assert!(matches!(
        in_memory
            .clone()
            .with_approval(ApprovalPolicy::BeforeExecution)
            .run("x")
            .await,
        Err(RunError::NoStore)
    ));
    let not_waiting = a
        .decide(
            &a.run("x").await.unwrap().run_id.unwrap(),
            Decision::Approve,
        )
        .await
        .unwrap_err();
    assert!(matches!(not_waiting, RunError::NotAwaitingApproval { .. }));
}

#[tokio::test]
async fn a_run_held_by_a_live_owner_cannot_be_resumed_twice() {
    let store = Arc::new(MemoryStore::new());
    let tool = Recorder::new(true);
    let executor = ModelAndTool::new(echo_model(), tool.clone());
    let plan = planner(&["a", "b"]);
    let a = agent(plan.clone(), executor.clone(), store.clone(), "A")
        .with_lease_ttl(Duration::from_secs(30));
    *tool.hang_on.lock().unwrap() = Some(1);
    let id = RunId::generate();
    let run = a.run(RunRequest::new("obj").with_run_id(id.clone()));
    let hung = tokio::time::timeout(Duration::from_millis(100), run).await;
    assert!(hung.is_err());
    let b = agent(plan, executor, store.clone(), "B");
    let busy = b.run(RunRequest::resume(id.clone())).await.unwrap_err();
    assert!(
        matches!(busy, RunError::Store(pae_core::StoreError::Busy { ref owner, .. }) if owner == "A"),
        "{busy:?}"
    );
    // Nothing changed.
    assert_eq!(store.run(&id).await.unwrap().spent.sessions, 1);
}

/// The executor's tool calls in a model-free form, to check the journal of
/// a tool that fails: the error is journaled and replayed as an error.
#[tokio::test]
async fn tool_errors_are_journaled_as_errors() {
    struct Failing;
    #[async_trait]
    impl Tool for Failing {
        fn name(&self) -> &str {
            "fail"
        }
        fn description(&self) -> &str {
            "fails"
        }
        async fn call(&self, _input: Value) -> Result<String, ToolError> {
            Err(ToolError::failed("boom"))
        }
    }
    struct CallsFailing;
    #[async_trait]
    impl Executor for CallsFailing {
        async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
            let result = input.context.call_tool(&Failing, json!({})).await;
            Ok(StepResponse::new(format!("{result:?}")))
        }
    }
    let store = Arc::new(MemoryStore::new());
    let agent = PlanAndExecute::new(planner(&["a"]), CallsFailing).with_store(store.clone());
    let result = agent.run("x").await.unwrap();
    assert!(result.output.contains("boom"));
    let id = result.run_id.unwrap();
    let journal = store.journal_all(&id).await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].result["error"]["kind"], "failed");
    let _unused: Option<&dyn ChatModel> = None;
}

/// A step that spends tokens and then fails: its tokens are in the run's
/// count and in `RunFailed`, not lost with the step.
#[tokio::test]
async fn tokens_of_a_failed_step_are_counted() {
    struct SpendsThenFails(Arc<ScriptedModel>);
    #[async_trait]
    impl Executor for SpendsThenFails {
        async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
            input
                .context
                .chat(self.0.as_ref(), ChatRequest::new(vec![Message::user("x")]))
                .await?;
            Err(ExecError::Custom("broke after the model call".into()))
        }
    }
    let failed_usage = Arc::new(Mutex::new(None));
    let seen = failed_usage.clone();
    let agent = PlanAndExecute::new(planner(&["a"]), SpendsThenFails(echo_model())).with_callback(
        move |event| {
            if let EventKind::RunFailed { usage, .. } = &event.kind {
                *seen.lock().unwrap() = Some(*usage);
            }
        },
    );
    let err = agent.run("x").await.unwrap_err();
    assert_eq!(err.partial().unwrap().usage, TokenUsage::new(10, 2));
    assert_eq!(*failed_usage.lock().unwrap(), Some(TokenUsage::new(10, 2)));
}

#[tokio::test]
async fn resuming_a_run_stopped_by_a_call_in_doubt_makes_the_call_again_with_the_same_key() {
    let store = Arc::new(MemoryStore::new());
    let tool = Recorder::new(false);
    let executor = ModelAndTool::new(echo_model(), tool.clone());
    let plan = planner(&["a", "b"]);
    let a = agent(plan.clone(), executor.clone(), store.clone(), "A");
    let id = crash_at_tool_call(&a, &tool, 2).await;
    let b = agent(plan.clone(), executor.clone(), store.clone(), "B");
    assert!(matches!(
        b.run(RunRequest::resume(id.clone())).await,
        Err(RunError::Interrupted { .. })
    ));
    // A person checked the effect and resumes: the call is made again,
    // with the key it had, and the run finishes.
    let done = b.run(RunRequest::resume(id.clone())).await.unwrap();
    assert_eq!(done.steps.len(), 2);
    let calls = tool.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].1, calls[2].1, "the same idempotency key");
    assert_eq!(store.run(&id).await.unwrap().status, RunStatus::Succeeded);
}
