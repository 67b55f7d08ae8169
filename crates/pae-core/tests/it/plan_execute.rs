//! PlanAndExecute behaviour through the public API: call order, what the
//! executor sees, answers, errors, replanning, events and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mockall::Sequence;
use pae_core::test_util::{MockExecutor, MockPlanner, MockReplanner};
use pae_core::{
    EventKind, ExecError, Executor, Plan, PlanAndExecute, PlanError, PlanRequest,
    PlanValidationError, Planner, ProviderError, ReplanDecision, ReplanPolicy, ReplanTrigger,
    RunError, RunOutcome, RunUpdate, Step, StepInput, StepResponse, StepStatus, TokenUsage,
};

fn planner_returning(plan: Plan) -> MockPlanner {
    let mut planner = MockPlanner::new();
    planner
        .expect_plan()
        .times(1)
        .returning(move |_| Ok(plan.clone()));
    planner
}

/// An executor that answers "<step>-done" and records every input it got.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<StepInput>>,
}

#[async_trait]
impl Executor for Recorder {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        self.seen.lock().unwrap().push(input.clone());
        Ok(
            StepResponse::new(format!("{}-done", input.current_step.value))
                .with_usage(TokenUsage::new(10, 1)),
        )
    }
}

#[tokio::test]
async fn executor_receives_objective_step_and_previous_steps_in_order() {
    let recorder = Arc::new(Recorder::default());
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b", "c"]))),
        recorder.clone(),
    );
    let result = agent.run("the objective").await.unwrap();

    let seen = recorder.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (i, input) in seen.iter().enumerate() {
        assert_eq!(input.objective, "the objective");
        assert_eq!(input.index, i);
        assert_eq!(
            input.inputs.get("input").map(String::as_str),
            Some("the objective")
        );
        assert_eq!(
            input.previous_steps.len(),
            i,
            "step {i} sees every earlier step"
        );
    }
    assert_eq!(seen[0].current_step.value, "a");
    assert_eq!(seen[2].current_step.value, "c");
    assert_eq!(
        seen[2].previous_steps,
        vec![
            (
                Step::new("a"),
                StepResponse::new("a-done").with_usage(TokenUsage::new(10, 1))
            ),
            (
                Step::new("b"),
                StepResponse::new("b-done").with_usage(TokenUsage::new(10, 1))
            ),
        ]
    );

    assert_eq!(result.output, "c-done");
    assert_eq!(result.outcome, RunOutcome::Completed);
    let steps: Vec<_> = result
        .steps
        .iter()
        .map(|(s, r)| (s.value.as_str(), r.response.as_str()))
        .collect();
    assert_eq!(steps, [("a", "a-done"), ("b", "b-done"), ("c", "c-done")]);
    assert_eq!(result.plans, vec![Plan::new(["a", "b", "c"])]);
    assert_eq!(result.usage, TokenUsage::new(30, 3));
}

/// A container that answers with the first step's response, so the test
/// can tell it from the default (the last step's).
#[derive(Default)]
struct FirstAnswers(Vec<(Step, StepResponse)>);

impl pae_core::StepContainer for FirstAnswers {
    fn add_step(&mut self, step: Step, response: StepResponse) {
        self.0.push((step, response));
    }

    fn steps(&self) -> &[(Step, StepResponse)] {
        &self.0
    }

    fn final_response(&self) -> Option<&StepResponse> {
        self.0.first().map(|(_, response)| response)
    }
}

#[tokio::test]
async fn a_custom_container_gets_every_step_and_gives_the_answer() {
    let recorder = Arc::new(Recorder::default());
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        recorder.clone(),
    )
    .with_container(|| Box::new(FirstAnswers::default()));
    let result = agent.run("the objective").await.unwrap();

    assert_eq!(result.output, "a-done");
    let steps: Vec<_> = result
        .steps
        .iter()
        .map(|(s, r)| (s.value.as_str(), r.response.as_str()))
        .collect();
    assert_eq!(steps, [("a", "a-done"), ("b", "b-done")]);
    // The executor still sees the run's history.
    assert_eq!(recorder.seen.lock().unwrap()[1].previous_steps.len(), 1);
    assert_eq!(result.usage, TokenUsage::new(20, 2));
}

#[tokio::test]
async fn planner_is_called_before_the_executor_with_the_run_inputs() {
    let mut seq = Sequence::new();
    let mut planner = MockPlanner::new();
    planner
        .expect_plan()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|req: &PlanRequest| {
            req.objective == "obj"
                && req.inputs.get("input").map(String::as_str) == Some("obj")
                && req.inputs.get("lang").map(String::as_str) == Some("fr")
        })
        .returning(|_| Ok(Plan::new(["one", "two"])));
    let mut executor = MockExecutor::new();
    for name in ["one", "two"] {
        executor
            .expect_step()
            .times(1)
            .in_sequence(&mut seq)
            .withf(move |input: &StepInput| input.current_step.value == name)
            .returning(move |_| Ok(StepResponse::new(format!("{name}!"))));
    }
    let agent = PlanAndExecute::new(Arc::new(planner), Arc::new(executor));
    let result = agent
        .run(pae_core::RunRequest::new("obj").with_inputs(pae_core::inputs([("lang", "fr")])))
        .await
        .unwrap();
    assert_eq!(result.output, "two!");
}

#[tokio::test]
async fn empty_plan_is_a_typed_error_and_nothing_executes() {
    let mut executor = MockExecutor::new();
    executor.expect_step().never();
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::default())),
        Arc::new(executor),
    );
    assert!(matches!(agent.run("x").await, Err(RunError::EmptyPlan)));
}

#[tokio::test]
async fn plans_longer_than_max_steps_are_rejected_before_execution() {
    let mut executor = MockExecutor::new();
    executor.expect_step().never();
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["1", "2", "3", "4"]))),
        Arc::new(executor),
    )
    .with_max_steps(3);
    match agent.run("x").await {
        Err(RunError::TooManySteps { steps, max }) => assert_eq!((steps, max), (4, 3)),
        other => panic!("expected TooManySteps, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_plans_are_rejected_before_execution() {
    let mut executor = MockExecutor::new();
    executor.expect_step().never();
    let plan = Plan::new([Step::new("a").with_id("a").with_depends_on(["zzz"])]);
    let agent = PlanAndExecute::new(Arc::new(planner_returning(plan)), Arc::new(executor));
    assert!(matches!(
        agent.run("x").await,
        Err(RunError::InvalidPlan(
            PlanValidationError::UnknownDependency { .. }
        ))
    ));
}

#[tokio::test]
async fn planner_errors_propagate() {
    let mut planner = MockPlanner::new();
    planner.expect_plan().returning(|_| {
        Err(PlanError::Provider(ProviderError::Timeout {
            after: Duration::from_secs(3),
        }))
    });
    let agent = PlanAndExecute::new(Arc::new(planner), Arc::new(MockExecutor::new()));
    assert!(matches!(
        agent.run("x").await,
        Err(RunError::Plan(PlanError::Provider(_)))
    ));
}

#[tokio::test]
async fn a_failed_planning_ends_the_events_with_run_failed_and_its_tokens() {
    let mut planner = MockPlanner::new();
    planner.expect_plan().returning(|request| {
        // A planner that spent tokens on a reply it could not use.
        request.context.record_usage(TokenUsage::new(120, 30));
        Err(PlanError::Provider(ProviderError::Http {
            status: 503,
            body: "overloaded".into(),
            retry_after: None,
        }))
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let agent = PlanAndExecute::new(Arc::new(planner), Arc::new(MockExecutor::new()))
        .with_callback(move |event| seen.lock().unwrap().push(event.kind.clone()));

    assert!(matches!(agent.run("x").await, Err(RunError::Plan(_))));

    let events = events.lock().unwrap();
    match events.as_slice() {
        [EventKind::RunFailed { error, usage }] => {
            assert!(error.starts_with("planning failed: "), "{error}");
            assert!(error.contains("503"), "{error}");
            assert_eq!(*usage, TokenUsage::new(120, 30));
        }
        other => panic!("expected only RunFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_step_ends_the_stream_with_run_failed_and_the_partial_tokens() {
    let mut executor = MockExecutor::new();
    executor.expect_step().times(2).returning(|input| {
        if input.index == 0 {
            Ok(StepResponse::new("ok").with_usage(TokenUsage::new(7, 3)))
        } else {
            Err(ExecError::Provider(ProviderError::Timeout {
                after: Duration::from_secs(1),
            }))
        }
    });
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        Arc::new(executor),
    );
    let updates: Vec<RunUpdate> = agent.stream("x").collect().await;
    let kinds: Vec<&EventKind> = updates
        .iter()
        .filter_map(|update| match update {
            RunUpdate::Event(event) => Some(&event.kind),
            RunUpdate::Finished(_) => None,
        })
        .collect();
    match kinds.last() {
        Some(EventKind::RunFailed { usage, .. }) => assert_eq!(*usage, TokenUsage::new(7, 3)),
        other => panic!("expected RunFailed last, got {other:?}"),
    }
    assert!(matches!(
        updates.last(),
        Some(RunUpdate::Finished(Err(RunError::Step { .. })))
    ));
}

#[tokio::test]
async fn step_failure_without_replanner_keeps_partial_results() {
    let mut executor = MockExecutor::new();
    executor.expect_step().times(2).returning(|input| {
        if input.index == 0 {
            Ok(StepResponse::new("first ok"))
        } else {
            Err(ExecError::Provider(ProviderError::Http {
                status: 500,
                body: "oops".into(),
                retry_after: None,
            }))
        }
    });
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b", "c"]))),
        Arc::new(executor),
    );
    let err = agent.run("x").await.unwrap_err();
    let partial = err.partial().expect("partial run").clone();
    match err {
        RunError::Step {
            index,
            step,
            source: ExecError::Provider(_),
            ..
        } => {
            assert_eq!(index, 1);
            assert_eq!(step.value, "b");
        }
        other => panic!("expected a step error, got {other:?}"),
    }
    assert_eq!(partial.steps.len(), 1);
    assert_eq!(partial.steps[0].1.response, "first ok");
    assert_eq!(partial.plans, vec![Plan::new(["a", "b", "c"])]);
}

/// Each run's executor sees only its own earlier steps, even when runs
/// interleave on one instance.
struct SlowEcho;

#[async_trait]
impl Executor for SlowEcho {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let history: Vec<&str> = input
            .previous_steps
            .iter()
            .map(|(_, r)| r.response.as_str())
            .collect();
        for h in &history {
            assert!(
                h.starts_with(&input.objective),
                "{h} leaked into run {}",
                input.objective
            );
        }
        Ok(StepResponse::new(format!(
            "{}:{}",
            input.objective, input.current_step.value
        )))
    }
}

struct EchoPlanner;

#[async_trait]
impl Planner for EchoPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        Ok(Plan::new(
            (1..=5).map(|i| format!("{}-step{i}", request.objective)),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_on_one_instance_do_not_mix_their_steps() {
    let agent = Arc::new(PlanAndExecute::new(
        Arc::new(EchoPlanner),
        Arc::new(SlowEcho),
    ));
    let handles: Vec<_> = ["red", "blue", "green"]
        .into_iter()
        .map(|objective| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.run(objective).await })
        })
        .collect();
    for (handle, objective) in handles.into_iter().zip(["red", "blue", "green"]) {
        let result = handle.await.unwrap().unwrap();
        assert_eq!(result.steps.len(), 5);
        assert_eq!(result.output, format!("{objective}:{objective}-step5"));
        assert!(
            result
                .steps
                .iter()
                .all(|(s, r)| s.value.starts_with(objective) && r.response.starts_with(objective))
        );
    }
    // A later run starts from an empty container again.
    let again = agent.run("red").await.unwrap();
    assert_eq!(again.steps.len(), 5);
}

#[tokio::test]
async fn events_reach_callbacks_in_order() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        Arc::new(Recorder::default()),
    )
    .with_callback(move |event| sink.lock().unwrap().push(event.kind.clone()));
    agent.run("x").await.unwrap();
    let kinds: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|k| match k {
            EventKind::PlanCreated { plan } => format!("plan:{}", plan.len()),
            EventKind::StepStarted { step_index, .. } => format!("start:{step_index}"),
            EventKind::StepFinished {
                step_index,
                response,
                ..
            } => format!("end:{step_index}:{}", response.response),
            EventKind::RunFinished { output, .. } => format!("done:{output}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "plan:2",
            "start:0",
            "end:0:a-done",
            "start:1",
            "end:1:b-done",
            "done:b-done"
        ]
    );
}

#[tokio::test]
async fn stream_yields_events_then_the_result() {
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        Arc::new(Recorder::default()),
    );
    let updates: Vec<RunUpdate> = agent.stream("x").collect().await;
    assert_eq!(
        updates.len(),
        7,
        "plan, 2x(start, end), run finished, result"
    );
    assert!(
        matches!(&updates[0], RunUpdate::Event(e) if matches!(e.kind, EventKind::PlanCreated { .. }))
    );
    assert!(
        matches!(&updates[5], RunUpdate::Event(e) if matches!(e.kind, EventKind::RunFinished { .. }))
    );
    match updates.last() {
        Some(RunUpdate::Finished(Ok(result))) => assert_eq!(result.output, "b-done"),
        other => panic!("expected the result last, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn event_times_follow_the_tokio_clock() {
    struct Sleepy;
    #[async_trait]
    impl Executor for Sleepy {
        async fn step(&self, _: &StepInput) -> Result<StepResponse, ExecError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(StepResponse::new("ok"))
        }
    }
    let times = Arc::new(Mutex::new(Vec::new()));
    let sink = times.clone();
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        Arc::new(Sleepy),
    )
    .with_callback(move |e| {
        if let EventKind::StepFinished { .. } = e.kind {
            sink.lock().unwrap().push(e.at);
        }
    });
    let result = agent.run("x").await.unwrap();
    assert_eq!(
        *times.lock().unwrap(),
        [Duration::from_millis(100), Duration::from_millis(200)]
    );
    assert_eq!(result.elapsed, Duration::from_millis(200));
}

#[tokio::test]
async fn failed_step_is_replanned_and_the_run_finishes() {
    let mut executor = MockExecutor::new();
    executor
        .expect_step()
        .returning(|input| match input.current_step.value.as_str() {
            "flaky" => Err(ExecError::Provider(ProviderError::Http {
                status: 503,
                body: String::new(),
                retry_after: None,
            })),
            other => Ok(StepResponse::new(format!("{other} ok"))),
        });
    let mut replanner = MockReplanner::new();
    replanner
        .expect_replan()
        .times(1)
        .withf(|req| {
            matches!(&req.trigger, Some(ReplanTrigger::StepFailed { error }) if error.contains("503"))
                && req.completed.len() == 2
                && req.completed[1].1.status != StepStatus::Completed
                && req.remaining == vec![Step::new("last")]
        })
        .returning(|_| Ok(ReplanDecision::Continue { steps: vec![Step::new("steady"), Step::new("last")] }));
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["first", "flaky", "last"]))),
        Arc::new(executor),
    )
    .with_replanner(Arc::new(replanner), ReplanPolicy::OnFailure);
    let result = agent.run("x").await.unwrap();
    assert_eq!(result.output, "last ok");
    assert_eq!(result.plans.len(), 2);
    assert_eq!(
        result.plans[1],
        Plan::new(["first", "flaky", "steady", "last"]),
        "a revision lists the steps done, then the new remaining steps"
    );
    let statuses: Vec<bool> = result
        .steps
        .iter()
        .map(|(_, r)| r.status.is_completed())
        .collect();
    assert_eq!(statuses, [true, false, true, true]);
}

#[tokio::test]
async fn replanner_can_finish_early_after_any_step() {
    let mut replanner = MockReplanner::new();
    replanner.expect_replan().times(1).returning(|req| {
        assert_eq!(req.trigger, Some(ReplanTrigger::StepCompleted));
        Ok(ReplanDecision::Finish {
            answer: format!("answer from {}", req.completed[0].1.response),
        })
    });
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b", "c"]))),
        Arc::new(Recorder::default()),
    )
    .with_replanner(Arc::new(replanner), ReplanPolicy::AfterEveryStep);
    let result = agent.run("x").await.unwrap();
    assert_eq!(result.output, "answer from a-done");
    assert_eq!(result.outcome, RunOutcome::AnsweredByReplanner);
    assert_eq!(result.steps.len(), 1);
}

#[tokio::test]
async fn replan_cap_is_enforced_and_reported() {
    let mut replanner = MockReplanner::new();
    replanner.expect_replan().times(2).returning(|req| {
        Ok(ReplanDecision::Continue {
            steps: req.remaining.clone(),
        })
    });
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b", "c", "d"]))),
        Arc::new(Recorder::default()),
    )
    .with_replanner(Arc::new(replanner), ReplanPolicy::AfterEveryStep)
    .with_max_replans(2);
    let result = agent.run("x").await.unwrap();
    assert_eq!(
        result.outcome,
        RunOutcome::ReplanLimitReached { max_replans: 2 }
    );
    assert_eq!(result.replans(), 2);
    assert_eq!(result.output, "d-done");
}

#[tokio::test]
async fn unrecoverable_failure_after_the_cap_is_a_step_error() {
    let mut executor = MockExecutor::new();
    executor
        .expect_step()
        .returning(|_| Err(ExecError::Custom("always fails".into())));
    let mut replanner = MockReplanner::new();
    replanner.expect_replan().times(1).returning(|req| {
        Ok(ReplanDecision::Continue {
            steps: req.remaining.clone(),
        })
    });
    let agent = PlanAndExecute::new(
        Arc::new(planner_returning(Plan::new(["a", "b"]))),
        Arc::new(executor),
    )
    .with_replanner(Arc::new(replanner), ReplanPolicy::OnFailure)
    .with_max_replans(1);
    match agent.run("x").await {
        Err(RunError::Step {
            index,
            step,
            partial,
            ..
        }) => {
            assert_eq!((index, step.value.as_str()), (1, "b"));
            assert_eq!(partial.plans.len(), 2);
            // The first failure was recorded (and replanned); the second is
            // the error itself.
            assert_eq!(partial.steps.len(), 1);
            assert!(!partial.steps[0].1.status.is_completed());
        }
        other => panic!("expected a step error, got {other:?}"),
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PlanAndExecute>();
    check::<pae_core::RunResult>();
    check::<RunError>();
    check::<pae_core::RunContext>();
    check::<pae_core::EventSink>();
    check::<pae_core::Event>();
    check::<pae_core::LlmChain>();
    check::<pae_core::ChatPromptTemplate>();
    check::<pae_core::PromptTemplate>();
    check::<pae_core::ChatRequest>();
    check::<pae_core::ChatResponse>();
    fn check_send<T: Send>() {}
    check_send::<pae_core::ChatStream>();
    check::<ProviderError>();
    check::<pae_core::ToolError>();
    check::<pae_core::ChainError>();
    check::<PlanError>();
    check::<ExecError>();
    check::<pae_core::StepInput>();
    check::<PlanRequest>();
    check::<pae_core::ReplanRequest>();
    check::<Arc<dyn pae_core::ChatModel>>();
    check::<Arc<dyn pae_core::Tool>>();
    check::<Arc<dyn Planner>>();
    check::<Arc<dyn Executor>>();
    check::<Arc<dyn pae_core::Replanner>>();
    check::<Arc<dyn pae_core::Chain>>();
    check::<pae_core::test_util::ScriptedModel>();
}
