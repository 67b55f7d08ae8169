//! Workers against a real PostgreSQL: submitted runs are run once each by
//! whichever worker takes them, a dead worker's runs are taken over, an
//! approval wakes a run for any worker, a stopping worker hands its runs
//! back, and a stale worker forced onto a run another took over cannot
//! write to it.
//!
//! The server comes from `PAE_TEST_POSTGRES_URL` (`cargo xtask test` starts
//! one); without it the tests are skipped with a reason, and fail when
//! `PAE_REQUIRE_SERVERS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pae_conformance::env::require_env;
use pae_core::store::{ApprovalPolicy, Lease, RunRecord, RunStatus, RunStore, Takeover};
use pae_core::{
    Decision, ExecError, Executor, Plan, PlanAndExecute, PlanError, PlanRequest, Planner, RunError,
    RunId, RunRequest, StepInput, StepResponse, StoreError, Tool, ToolContext, ToolError,
};
use pae_postgres::sqlx::{self, Connection, PgConnection};
use pae_postgres::{PgStore, PgStoreOptions};
use pae_worker::{AgentFactory, BuildError, Queue, Worker, WorkerOptions};

fn server() -> Option<String> {
    require_env("PAE_TEST_POSTGRES_URL")
}

async fn fresh_database(url: &str, name: &str) -> String {
    let database = format!("pae_worker_{name}_{}", std::process::id());
    let mut admin = PgConnection::connect(url).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{database}")
}

/// Every tool call made, by idempotency key: what a side effect sees.
type Effects = Arc<Mutex<HashMap<String, usize>>>;

/// A tool with a side effect that records each call's key.
struct Record(Effects);

#[async_trait]
impl Tool for Record {
    fn name(&self) -> &str {
        "record"
    }
    fn description(&self) -> &str {
        "records a call"
    }
    async fn call(&self, _input: serde_json::Value) -> Result<String, ToolError> {
        Err(ToolError::failed("needs a context"))
    }
    async fn call_with_context(
        &self,
        _input: serde_json::Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        *self
            .0
            .lock()
            .unwrap()
            .entry(context.idempotency_key().to_owned())
            .or_default() += 1;
        Ok(format!("recorded {}", context.idempotency_key()))
    }
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// Plans three steps (or what the objective says), no model.
struct ThreeSteps;

#[async_trait]
impl Planner for ThreeSteps {
    async fn plan(&self, _request: &PlanRequest) -> Result<Plan, PlanError> {
        Ok(Plan::new(["first", "second", "third"]))
    }
}

/// Each step: wait (the model's latency), call the tool once.
struct Slow {
    tool: Arc<Record>,
    latency: Duration,
}

#[async_trait]
impl Executor for Slow {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        tokio::time::sleep(self.latency).await;
        let text = input
            .context
            .call_tool(self.tool.as_ref(), serde_json::json!({}))
            .await
            .map_err(|e| ExecError::Custom(Box::new(e)))?;
        Ok(StepResponse::new(text))
    }
}

struct Agents {
    effects: Effects,
    latency: Duration,
}

#[async_trait]
impl AgentFactory for Agents {
    async fn agent(&self, _run: &RunRecord) -> Result<PlanAndExecute, BuildError> {
        Ok(PlanAndExecute::new(
            ThreeSteps,
            Slow {
                tool: Arc::new(Record(self.effects.clone())),
                latency: self.latency,
            },
        ))
    }
}

fn agents(latency_ms: u64) -> (Arc<Agents>, Effects) {
    let effects = Effects::default();
    (
        Arc::new(Agents {
            effects: effects.clone(),
            latency: Duration::from_millis(latency_ms),
        }),
        effects,
    )
}

fn quick(owner: &str) -> WorkerOptions {
    WorkerOptions::new()
        .with_owner(owner)
        .with_concurrency(4)
        .with_lease_ttl(Duration::from_secs(1))
        .with_sweep_every(Duration::from_millis(200))
        .with_poll_every(Duration::from_millis(20))
        .with_grace(Duration::ZERO)
}

async fn open(url: &str, queue: &Queue) -> PgStore {
    pae_worker::connect(PgStoreOptions::new(url), queue)
        .await
        .unwrap()
}

async fn submit(store: &PgStore, queue: &Queue, n: usize, approval: ApprovalPolicy) -> Vec<RunId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut record = RunRecord::new(RunId::generate(), format!("objective {i}"));
        record.approval = approval;
        pae_worker::submit(store, queue, &record).await.unwrap();
        ids.push(record.id);
    }
    ids
}

/// Waits until every run has one of `statuses`; panics after `limit`.
async fn wait_for(store: &PgStore, ids: &[RunId], statuses: &[RunStatus], limit: Duration) {
    let started = Instant::now();
    loop {
        let mut pending = Vec::new();
        for id in ids {
            let status = store.run(id).await.unwrap().status;
            if !statuses.contains(&status) {
                pending.push((id.clone(), status));
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "after {limit:?}, runs not in {statuses:?}: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that every run has each of its three steps committed once and
/// each step's tool effect keyed by one key.
async fn check_runs(store: &PgStore, ids: &[RunId], effects: &Effects) {
    let effects = effects.lock().unwrap().clone();
    for id in ids {
        let steps = store.steps(id).await.unwrap();
        assert_eq!(steps.len(), 3, "{id}: {steps:?}");
        let keys: Vec<&String> = effects
            .keys()
            .filter(|k| k.starts_with(&format!("{id}/")))
            .collect();
        assert_eq!(keys.len(), 3, "{id}: one key per step, got {keys:?}");
        let finished = store
            .events(id, None)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.event.kind, pae_core::EventKind::RunFinished { .. }))
            .count();
        assert_eq!(finished, 1, "{id} finished {finished} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_runs_are_run_once_by_whichever_worker_takes_them() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "submitted").await;
    let queue = Queue::default();
    let store = open(&url, &queue).await;
    let ids = submit(&store, &queue, 20, ApprovalPolicy::Never).await;
    let (agents, effects) = agents(10);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for owner in ["w1", "w2"] {
        let worker = Worker::with_options(
            open(&url, &queue).await,
            queue.clone(),
            agents.clone(),
            quick(owner),
        );
        let mut stop = stop_rx.clone();
        workers.push(tokio::spawn(worker.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }
    wait_for(
        &store,
        &ids,
        &[RunStatus::Succeeded],
        Duration::from_secs(60),
    )
    .await;
    stop_tx.send(true).unwrap();
    let mut sessions = 0;
    for worker in workers {
        sessions += worker.await.unwrap().sessions;
    }
    assert!(sessions >= 20, "{sessions} sessions");
    check_runs(&store, &ids, &effects).await;
    // Every key was used once: no step ran twice.
    assert!(effects.lock().unwrap().values().all(|&n| n == 1));
}

#[test]
fn a_dead_workers_runs_are_taken_over() {
    let Some(url) = server() else { return };
    let setup = tokio::runtime::Runtime::new().unwrap();
    let queue = Queue::default();
    let (url, store, ids) = setup.block_on(async {
        let url = fresh_database(&url, "dead").await;
        let store = open(&url, &queue).await;
        let ids = submit(&store, &queue, 6, ApprovalPolicy::Never).await;
        (url, store, ids)
    });
    let (agents, effects) = agents(300);
    // Worker A runs in a runtime of its own; dropping the runtime stops
    // every task of it at once, mid-step, holding its leases: a crash.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    {
        let store = doomed.block_on(open(&url, &queue));
        let worker = Worker::with_options(store, queue.clone(), agents.clone(), quick("remote-a"));
        doomed.spawn(worker.run(std::future::pending()));
    }
    // Let A take runs and start their steps.
    let taken = setup.block_on(async {
        let started = Instant::now();
        loop {
            let mut held = 0;
            for id in &ids {
                if store.run(id).await.unwrap().lease.is_some() {
                    held += 1;
                }
            }
            if held >= 3 || started.elapsed() > Duration::from_secs(20) {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(taken > 0, "worker A took no run");
    doomed.shutdown_background();
    let killed = Instant::now();
    setup.block_on(async {
        let worker = Worker::with_options(
            open(&url, &queue).await,
            queue.clone(),
            agents.clone(),
            quick("remote-b"),
        );
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let b = tokio::spawn(worker.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        wait_for(
            &store,
            &ids,
            &[RunStatus::Succeeded],
            Duration::from_secs(60),
        )
        .await;
        let took = killed.elapsed();
        stop_tx.send(true).unwrap();
        let report = b.await.unwrap();
        // Lease 1 s, sweeps every 200 ms, six 1 s runs on four slots.
        assert!(took < Duration::from_secs(15), "took {took:?}");
        assert!(report.woken > 0, "{report:?}");
        check_runs(&store, &ids, &effects).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_wakes_the_run_for_any_worker() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "approval").await;
    let queue = Queue::default();
    let store = open(&url, &queue).await;
    let ids = submit(&store, &queue, 3, ApprovalPolicy::BeforeExecution).await;
    let (agents, effects) = agents(5);
    let worker = Worker::with_options(
        open(&url, &queue).await,
        queue.clone(),
        agents.clone(),
        quick("w"),
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    wait_for(
        &store,
        &ids,
        &[RunStatus::AwaitingApproval],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        effects.lock().unwrap().is_empty(),
        "a tool ran before approval"
    );
    // A person approves from another process: the store with the hook.
    let person = PlanAndExecute::new(
        ThreeSteps,
        Slow {
            tool: Arc::new(Record(Effects::default())),
            latency: Duration::ZERO,
        },
    )
    .with_store(open(&url, &queue).await);
    for id in &ids {
        person.decide(id, Decision::Approve).await.unwrap();
    }
    wait_for(
        &store,
        &ids,
        &[RunStatus::Succeeded],
        Duration::from_secs(30),
    )
    .await;
    stop_tx.send(true).unwrap();
    running.await.unwrap();
    check_runs(&store, &ids, &effects).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_its_runs_back() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "handback").await;
    let queue = Queue::default();
    let store = open(&url, &queue).await;
    let ids = submit(&store, &queue, 4, ApprovalPolicy::Never).await;
    let (agents, effects) = agents(400);
    let worker = Worker::with_options(
        open(&url, &queue).await,
        queue.clone(),
        agents.clone(),
        quick("first"),
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(worker.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    // Stop it while its runs are in their steps.
    tokio::time::sleep(Duration::from_millis(900)).await;
    stop_tx.send(true).unwrap();
    let report = first.await.unwrap();
    assert!(report.handed_back > 0, "{report:?}");
    for id in &ids {
        let record = store.run(id).await.unwrap();
        assert!(
            record.lease.is_none(),
            "{id} still leased: {:?}",
            record.lease
        );
        assert_ne!(
            record.status,
            RunStatus::Interrupted,
            "{id} left interrupted"
        );
    }
    let worker = Worker::with_options(
        open(&url, &queue).await,
        queue.clone(),
        agents.clone(),
        quick("second"),
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(worker.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    wait_for(
        &store,
        &ids,
        &[RunStatus::Succeeded],
        Duration::from_secs(30),
    )
    .await;
    stop_tx.send(true).unwrap();
    second.await.unwrap();
    check_runs(&store, &ids, &effects).await;
}

/// A store whose lease renewals do nothing: a worker whose heartbeat
/// stalled (a long pause) while it goes on working.
struct Stalled(PgStore);

#[async_trait]
impl RunStore for Stalled {
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.0.create(run).await
    }
    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        self.0.run(id).await
    }
    async fn list(&self, f: &pae_core::store::RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.0.list(f).await
    }
    async fn plans(&self, id: &RunId) -> Result<Vec<pae_core::store::PlanRevision>, StoreError> {
        self.0.plans(id).await
    }
    async fn steps(&self, id: &RunId) -> Result<Vec<pae_core::store::StepRecord>, StoreError> {
        self.0.steps(id).await
    }
    async fn journal(
        &self,
        id: &RunId,
        scope: &pae_core::store::CallScope,
    ) -> Result<Vec<pae_core::store::JournalEntry>, StoreError> {
        self.0.journal(id, scope).await
    }
    async fn journal_all(
        &self,
        id: &RunId,
    ) -> Result<Vec<pae_core::store::JournalEntry>, StoreError> {
        self.0.journal_all(id).await
    }
    async fn events(
        &self,
        id: &RunId,
        after: Option<u64>,
    ) -> Result<Vec<pae_core::store::StoredEvent>, StoreError> {
        self.0.events(id, after).await
    }
    async fn acquire(
        &self,
        id: &RunId,
        owner: &str,
        ttl: Duration,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        self.0.acquire(id, owner, ttl, takeover).await
    }
    async fn renew(&self, lease: &Lease, _ttl: Duration) -> Result<Lease, StoreError> {
        Ok(lease.clone())
    }
    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.0.release(lease).await
    }
    async fn commit(
        &self,
        lease: &Lease,
        commit: pae_core::store::Commit,
    ) -> Result<u64, StoreError> {
        self.0.commit(lease, commit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_worker_forced_onto_a_run_cannot_fork_it() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "fencing").await;
    let store = PgStore::connect(&url).await.unwrap();
    let id = RunId::generate();
    let effects = Effects::default();
    let agent = |latency: u64| {
        PlanAndExecute::new(
            ThreeSteps,
            Slow {
                tool: Arc::new(Record(effects.clone())),
                latency: Duration::from_millis(latency),
            },
        )
        .with_lease_ttl(Duration::from_millis(400))
    };
    // Worker A: a stalled heartbeat and slow steps; its lease lapses
    // during its first step.
    let a = agent(1500)
        .with_store(Stalled(store.clone()))
        .with_lease_owner("worker-a");
    let a_id = id.clone();
    let a_run =
        tokio::spawn(async move { a.run(RunRequest::new("forked?").with_run_id(a_id)).await });
    // Worker B is forced onto the same run once A's lease lapsed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = agent(10)
        .with_store(store.clone())
        .with_lease_owner("worker-b");
    let b_result = b.run(RunRequest::resume(id.clone())).await;
    let b_result = b_result.unwrap();
    let a_result = a_run.await.unwrap();
    match a_result {
        Err(RunError::Store(StoreError::LeaseLost { .. })) => {}
        other => panic!("the stale worker's commit was not rejected: {other:?}"),
    }
    // One history: three steps, each committed once, by B.
    let steps = store.steps(&id).await.unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(store.run(&id).await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(b_result.steps.len(), 3);
    let events = store.events(&id, None).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let finished = events
        .iter()
        .filter(|e| matches!(e.event.kind, pae_core::EventKind::RunFinished { .. }))
        .count();
    assert_eq!(finished, 1);
    // A's step 1 tool call and B's share a key: a keyed side effect
    // happened once per step.
    assert_eq!(effects.lock().unwrap().len(), 3);
}
