//! Dependency plans on a paused tokio clock: start order, the concurrency
//! limit, dependency results, plan-order recording, skipping on failure and
//! cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pae_core::test_util::{MockPlanner, MockReplanner};
use pae_core::{
    CancelToken, EventKind, ExecError, Executor, FailurePolicy, Plan, PlanAndExecute,
    ProviderError, ReplanDecision, ReplanPolicy, RunError, RunResult, Scheduling, Step, StepInput,
    StepResponse, StepStatus,
};
use tokio::time::Instant;

/// Sleeps per step as told by the step text ("... [300ms]"), fails steps
/// containing "FAIL", and records what it saw and how many ran at once.
#[derive(Default)]
struct Worker {
    running: AtomicUsize,
    max_running: AtomicUsize,
    seen: Mutex<Vec<StepInput>>,
    dropped: AtomicUsize,
}

struct DropGuard<'a>(&'a AtomicUsize, bool);

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn latency(text: &str) -> Duration {
    text.split('[')
        .nth(1)
        .and_then(|rest| rest.split("ms]").next())
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(100), Duration::from_millis)
}

#[async_trait]
impl Executor for Worker {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        self.seen.lock().unwrap().push(input.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let mut guard = DropGuard(&self.dropped, false);
        tokio::time::sleep(latency(&input.current_step.value)).await;
        guard.1 = true;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if input.current_step.value.contains("FAIL") {
            return Err(ExecError::Provider(ProviderError::Http {
                status: 500,
                body: String::new(),
                retry_after: None,
            }));
        }
        let id = input.current_step.id.clone().unwrap_or_default();
        Ok(StepResponse::new(format!("r{id}")))
    }
}

fn planner(plan: Plan) -> Arc<MockPlanner> {
    let mut planner = MockPlanner::new();
    planner.expect_plan().returning(move |_| Ok(plan.clone()));
    Arc::new(planner)
}

/// Eight independent steps and a final step that needs all of them.
fn fan_out() -> Plan {
    let mut steps: Vec<Step> = (1..=8)
        .map(|i| Step::new(format!("fetch {i}")).with_id(i.to_string()))
        .collect();
    steps.push(
        Step::new("combine")
            .with_id("9")
            .with_depends_on((1..=8).map(|i| i.to_string())),
    );
    Plan::new(steps)
}

type Timeline = Arc<Mutex<Vec<(Duration, String)>>>;

fn build(plan: Plan, worker: Arc<Worker>, concurrency: usize) -> (PlanAndExecute, Timeline) {
    let timeline: Timeline = Arc::default();
    let sink = timeline.clone();
    let agent = PlanAndExecute::new(planner(plan), worker)
        .with_max_concurrency(concurrency)
        .with_callback(move |event| {
            let label = match &event.kind {
                EventKind::StepStarted { step_index, .. } => format!("start {}", step_index + 1),
                EventKind::StepFinished {
                    step_index,
                    response,
                    ..
                } => match response.status {
                    StepStatus::Skipped { .. } => format!("skip {}", step_index + 1),
                    _ => format!("end {}", step_index + 1),
                },
                _ => return,
            };
            sink.lock().unwrap().push((event.at, label));
        });
    (agent, timeline)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn fan_out_runs_up_to_the_limit_at_once_and_starts_in_plan_order() {
    let worker = Arc::new(Worker::default());
    let (agent, timeline) = build(fan_out(), worker.clone(), 3);
    let started = Instant::now();
    let result = agent.run("x").await.unwrap();
    // 8 steps of 100 ms, 3 at a time: 3 waves, then the final step.
    assert_eq!(started.elapsed(), ms(400));
    assert_eq!(worker.max_running.load(Ordering::SeqCst), 3);
    let starts: Vec<(Duration, String)> = timeline
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.starts_with("start"))
        .cloned()
        .collect();
    let expected: Vec<(Duration, String)> = [
        (0, 1),
        (0, 2),
        (0, 3),
        (100, 4),
        (100, 5),
        (100, 6),
        (200, 7),
        (200, 8),
        (300, 9),
    ]
    .into_iter()
    .map(|(t, i)| (ms(t), format!("start {i}")))
    .collect();
    assert_eq!(starts, expected);
    assert_eq!(result.output, "r9");
}

#[tokio::test(start_paused = true)]
async fn concurrency_one_runs_dependency_plans_one_at_a_time() {
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(fan_out(), worker.clone(), 1);
    let started = Instant::now();
    agent.run("x").await.unwrap();
    assert_eq!(started.elapsed(), ms(900));
    assert_eq!(worker.max_running.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn plans_without_dependencies_stay_sequential_unless_asked() {
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(Plan::new(["a", "b", "c"]), worker.clone(), 8);
    let started = Instant::now();
    agent.run("x").await.unwrap();
    assert_eq!(started.elapsed(), ms(300));
    assert_eq!(worker.max_running.load(Ordering::SeqCst), 1);
    let seen_history = worker.seen.lock().unwrap()[2].previous_steps.len();
    assert_eq!(seen_history, 2, "sequential steps see all history");

    let worker = Arc::new(Worker::default());
    let (agent, _) = build(Plan::new(["a", "b", "c"]), worker.clone(), 8);
    let started = Instant::now();
    agent
        .with_scheduling(Scheduling::Graph)
        .run("x")
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        ms(100),
        "opted in: independent steps run at once"
    );
}

#[tokio::test(start_paused = true)]
async fn dependency_results_are_substituted_and_only_dependencies_are_shown() {
    let plan = Plan::new([
        Step::new("compute 17*23").with_id("E1"),
        Step::new("count leap-year days").with_id("E2"),
        Step::new("unrelated").with_id("E3"),
        Step::new("add #E1 and #E2, not #E3")
            .with_id("E4")
            .with_depends_on(["E1", "E2"]),
    ]);
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(plan, worker.clone(), 4);
    let result = agent.run("x").await.unwrap();
    let seen = worker.seen.lock().unwrap();
    let last = seen.iter().find(|i| i.index == 3).unwrap();
    assert_eq!(last.current_step.value, "add rE1 and rE2, not #E3");
    let shown: Vec<&str> = last
        .previous_steps
        .iter()
        .map(|(s, _)| s.value.as_str())
        .collect();
    assert_eq!(shown, ["compute 17*23", "count leap-year days"]);
    // The container keeps the plan's own text.
    assert_eq!(result.steps[3].0.value, "add #E1 and #E2, not #E3");
}

#[tokio::test(start_paused = true)]
async fn results_are_recorded_in_plan_order_whatever_order_they_finish() {
    let plan = Plan::new([
        Step::new("slow [300ms]").with_id("1"),
        Step::new("fast [10ms]").with_id("2"),
        Step::new("medium [100ms]").with_id("3"),
        Step::new("join")
            .with_id("4")
            .with_depends_on(["1", "2", "3"]),
    ]);
    let worker = Arc::new(Worker::default());
    let (agent, timeline) = build(plan, worker, 3);
    let result = agent.run("x").await.unwrap();
    let ends: Vec<String> = timeline
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.starts_with("end"))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(ends, ["end 2", "end 3", "end 1", "end 4"], "finish order");
    let recorded: Vec<&str> = result
        .steps
        .iter()
        .map(|(_, r)| r.response.as_str())
        .collect();
    assert_eq!(recorded, ["r1", "r2", "r3", "r4"], "plan order");
}

fn failing_plan() -> Plan {
    Plan::new([
        Step::new("ok").with_id("1"),
        Step::new("FAIL").with_id("2"),
        Step::new("independent [200ms]").with_id("3"),
        Step::new("needs 2").with_id("4").with_depends_on(["2"]),
        Step::new("needs 4").with_id("5").with_depends_on(["4"]),
        Step::new("needs 1 and 3")
            .with_id("6")
            .with_depends_on(["1", "3"]),
    ])
}

fn recorded(result: &[(Step, StepResponse)]) -> Vec<(String, &'static str)> {
    result
        .iter()
        .map(|(s, r)| {
            let status = match r.status {
                StepStatus::Completed => "ok",
                StepStatus::Failed { .. } => "failed",
                StepStatus::Skipped { .. } => "skipped",
                StepStatus::Stopped { .. } => "stopped",
            };
            (s.id.clone().unwrap_or_default(), status)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn dependents_of_a_failed_step_are_skipped_and_independent_steps_go_on() {
    let worker = Arc::new(Worker::default());
    let (agent, timeline) = build(failing_plan(), worker.clone(), 4);
    let result: RunResult = agent.run("x").await.unwrap();
    assert_eq!(
        recorded(&result.steps),
        [
            ("1".into(), "ok"),
            ("2".into(), "failed"),
            ("3".into(), "ok"),
            ("4".into(), "skipped"),
            ("5".into(), "skipped"),
            ("6".into(), "ok"),
        ]
    );
    match &result.steps[3].1.status {
        StepStatus::Skipped { reason } => assert_eq!(reason, "step 2 did not complete"),
        other => panic!("{other:?}"),
    }
    assert_eq!(result.output, "r6");
    let ran: Vec<String> = worker
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.current_step.value.clone())
        .collect();
    assert!(
        !ran.iter()
            .any(|v| v.starts_with("needs 2") || v.starts_with("needs 4"))
    );
    assert!(timeline.lock().unwrap().iter().any(|(_, l)| l == "skip 5"));
}

#[tokio::test(start_paused = true)]
async fn a_skipped_last_step_reports_the_first_failure() {
    let plan = Plan::new([
        Step::new("FAIL").with_id("1"),
        Step::new("other").with_id("2"),
        Step::new("join").with_id("3").with_depends_on(["1", "2"]),
    ]);
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(plan, worker, 2);
    match agent.run("x").await {
        Err(RunError::Step { index, partial, .. }) => {
            assert_eq!(index, 0);
            assert_eq!(
                partial.steps.len(),
                3,
                "every step is recorded, skipped ones included"
            );
        }
        other => panic!("expected a step error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn abort_policy_stops_the_run_and_drops_steps_in_flight() {
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(failing_plan(), worker.clone(), 4);
    let started = Instant::now();
    let err = agent
        .with_failure_policy(FailurePolicy::Abort)
        .run("x")
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Step { index: 1, .. }), "{err:?}");
    assert_eq!(started.elapsed(), ms(100), "no wait for the 200 ms step");
    assert_eq!(
        worker.dropped.load(Ordering::SeqCst),
        1,
        "the independent step was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_token_stops_in_flight_steps_promptly() {
    let plan = Plan::new([
        Step::new("quick [10ms]").with_id("1"),
        Step::new("long [60000ms]").with_id("2"),
        Step::new("long too [60000ms]").with_id("3"),
        Step::new("join")
            .with_id("4")
            .with_depends_on(["1", "2", "3"]),
    ]);
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(plan, worker.clone(), 3);
    let token = CancelToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ms(50)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    match agent
        .run(pae_core::RunRequest::new("x").with_cancel(token.clone()))
        .await
    {
        Err(RunError::Cancelled { partial }) => {
            assert_eq!(started.elapsed(), ms(50));
            assert_eq!(partial.steps.len(), 1, "the finished step is kept");
            assert_eq!(partial.steps[0].1.response, "r1");
        }
        other => panic!("expected cancellation, got {other:?}"),
    }
    assert_eq!(worker.dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_future_drops_in_flight_steps() {
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(
        Plan::new([
            Step::new("a [60000ms]").with_id("1"),
            Step::new("b [60000ms]").with_id("2"),
            Step::new("c").with_id("3").with_depends_on(["1", "2"]),
        ]),
        worker.clone(),
        2,
    );
    let outcome = tokio::time::timeout(ms(30), agent.run("x")).await;
    assert!(outcome.is_err());
    assert_eq!(worker.dropped.load(Ordering::SeqCst), 2);
    assert_eq!(
        worker.running.load(Ordering::SeqCst),
        2,
        "they never reached their end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_dependent_steps_is_not_sped_up() {
    let steps: Vec<Step> = (1..=8)
        .map(|i| {
            let step = Step::new(format!("link {i}")).with_id(i.to_string());
            if i == 1 {
                step
            } else {
                step.with_depends_on([(i - 1).to_string()])
            }
        })
        .collect();
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(Plan::new(steps), worker.clone(), 8);
    let started = Instant::now();
    let result = agent.run("x").await.unwrap();
    assert_eq!(started.elapsed(), ms(800));
    assert_eq!(worker.max_running.load(Ordering::SeqCst), 1);
    assert_eq!(result.output, "r8");
}

#[tokio::test(start_paused = true)]
async fn failed_rounds_can_be_replanned() {
    let mut replanner = MockReplanner::new();
    replanner.expect_replan().times(1).returning(|req| {
        let skipped: Vec<&str> = req.remaining.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(skipped, ["needs 2", "needs 4"]);
        Ok(ReplanDecision::Continue {
            steps: vec![
                Step::new("retry without failing").with_id("7"),
                Step::new("final").with_id("8").with_depends_on(["7", "6"]),
            ],
        })
    });
    let worker = Arc::new(Worker::default());
    let (agent, _) = build(failing_plan(), worker, 4);
    let result = agent
        .with_replanner(Arc::new(replanner), ReplanPolicy::OnFailure)
        .run("x")
        .await
        .unwrap();
    assert_eq!(result.plans.len(), 2);
    assert_eq!(result.plans[1].len(), 8);
    assert_eq!(result.output, "r8");
}
