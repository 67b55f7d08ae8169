//! [`Worker`]: one worker process. It takes "advance run R" jobs from the
//! queue (apalis), runs each run as far as it goes under the run's lease,
//! wakes runs whose worker died, and hands its runs back when it stops.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apalis::prelude::{
    BoxDynError, Data, Strategy, WorkerBuilder, WorkerBuilderExt, WorkerContext,
};
use apalis_core::backend::ext::poll_strategy::PollWith;
use apalis_postgres::{Config, PostgresStorage};
use async_trait::async_trait;
use pae_core::store::{
    Commit, Interruption, Lease, RunEnding, RunRecord, RunStatus, RunStore, Takeover,
    is_dead_local_owner, local_owner,
};
use pae_core::{CancelToken, EventKind, PlanAndExecute, RunError, RunId, RunRequest, StoreError};
use pae_postgres::{Change, CommitHook, PgStore, sqlx};
use tokio::sync::{Semaphore, oneshot};

use crate::queue::{Advance, Queue};

/// An error building a run's agent.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the agent that runs a run, from the settings stored with it (the
/// program that submitted the run decides what they mean: the `pae` command
/// line stores its flags). Secrets such as API keys come from the worker's
/// environment, never from the store.
#[async_trait]
pub trait AgentFactory: Send + Sync + 'static {
    /// The agent for `run`: planner, executor, tools and limits. The worker
    /// adds the store, the lease time and the lease owner.
    ///
    /// # Errors
    /// Settings this worker cannot honour (an unknown format, a missing
    /// key or model file): the run is marked failed with the message.
    async fn agent(&self, run: &RunRecord) -> Result<PlanAndExecute, BuildError>;
}

/// What a worker tells its observer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// The worker is taking jobs.
    Ready {
        /// Its lease owner name.
        owner: String,
    },
    /// A session of a run started (the lease is held).
    Started {
        /// The run.
        run: RunId,
    },
    /// A session ended.
    Finished {
        /// The run.
        run: RunId,
        /// Its status afterwards (`None` when it could not be read).
        status: Option<RunStatus>,
        /// The error that ended the session, if any.
        error: Option<String>,
    },
    /// The sweeper woke a run whose worker is gone.
    Woke {
        /// The run.
        run: RunId,
    },
    /// A run was handed back at shutdown, for another worker.
    HandedBack {
        /// The run.
        run: RunId,
    },
    /// Something failed that the worker survives (the database was away,
    /// the queue's connection broke).
    Trouble {
        /// What.
        message: String,
    },
}

type Observer = Arc<dyn Fn(&WorkerEvent) + Send + Sync>;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    concurrency: usize,
    lease_ttl: Duration,
    sweep_every: Duration,
    poll_every: Duration,
    grace: Duration,
    owner: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lease_ttl: pae_core::DEFAULT_LEASE_TTL,
            sweep_every: Duration::from_secs(5),
            poll_every: Duration::from_millis(200),
            grace: Duration::from_secs(10),
            owner: local_owner().to_owned(),
        }
    }
}

impl WorkerOptions {
    /// Defaults: 4 runs at a time, 30 s leases (a dead worker's runs are
    /// taken over within about 40 s: the lease, then a sweep), a sweep every
    /// 5 s, the queue polled every 200 ms, 10 s for runs to finish at
    /// shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs advanced at the same time.
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a run's lease lasts without renewal (renewed every third of
    /// it): how long a dead worker's runs wait before another takes them.
    /// Runs of a dead worker on the same machine are taken at once.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// How often the worker looks for runs nobody holds.
    #[must_use]
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every.max(Duration::from_millis(50));
        self
    }

    /// How often the queue is polled when it was empty.
    #[must_use]
    pub fn with_poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every.max(Duration::from_millis(10));
        self
    }

    /// How long runs may go on at shutdown before they are stopped and
    /// handed back.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The name this worker holds leases under (default `HOST:PID:START`,
    /// which lets a worker on the same machine take a dead one's runs at
    /// once).
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
}

/// What a worker did, when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Sessions run.
    pub sessions: u64,
    /// Runs woken by the sweeper.
    pub woken: u64,
    /// Runs handed back at shutdown.
    pub handed_back: u64,
}

/// A worker process's engine: the queue consumer, the sessions it runs,
/// the sweeper.
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: PgStore,
    queue: Queue,
    factory: Arc<dyn AgentFactory>,
    options: WorkerOptions,
    observer: Option<Observer>,
    permits: Arc<Semaphore>,
    active: Mutex<HashMap<RunId, CancelToken>>,
    /// Set when the worker stops taking jobs.
    stopping: CancelToken,
    /// Set when the grace period is over: sessions are cancelled.
    handing_back: CancelToken,
    sessions: AtomicU64,
    woken: AtomicU64,
    handed_back: AtomicU64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("store", &self.inner.store)
            .field("queue", &self.inner.queue)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker for `store` (opened with [`connect`](crate::connect)) and
    /// `queue`, building agents with `factory`.
    pub fn new(store: PgStore, queue: Queue, factory: Arc<dyn AgentFactory>) -> Self {
        Self::with_options(store, queue, factory, WorkerOptions::default())
    }

    /// A worker with these options. The queue's orphan time is set from
    /// the lease time (two thirds of it, between 1 s and 20 s), so runs a
    /// dead worker had fetched but not started are woken about as soon as
    /// the ones it was running.
    pub fn with_options(
        store: PgStore,
        queue: Queue,
        factory: Arc<dyn AgentFactory>,
        options: WorkerOptions,
    ) -> Self {
        let orphan_after =
            (options.lease_ttl * 2 / 3).clamp(Duration::from_secs(1), Duration::from_secs(20));
        let queue = queue.with_orphan_after(orphan_after);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(options.concurrency)),
                store,
                queue,
                factory,
                options,
                observer: None,
                active: Mutex::new(HashMap::new()),
                stopping: CancelToken::new(),
                handing_back: CancelToken::new(),
                sessions: AtomicU64::new(0),
                woken: AtomicU64::new(0),
                handed_back: AtomicU64::new(0),
            }),
        }
    }

    /// Calls `observer` with what the worker does.
    #[must_use]
    pub fn with_observer(
        mut self,
        observer: impl Fn(&WorkerEvent) + Send + Sync + 'static,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.observer = Some(Arc::new(observer));
        }
        self
    }

    /// Runs until `shutdown` completes, then stops taking jobs, lets its
    /// runs go on for the grace period, stops the rest at their next safe
    /// point and hands them back (their leases released, their jobs queued
    /// again) so another worker goes on with them.
    ///
    /// Survives the database going away: the queue consumer is restarted,
    /// sessions whose commits failed end and are taken up again.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> WorkerReport {
        let inner = self.inner;
        inner.emit(WorkerEvent::Ready {
            owner: inner.options.owner.clone(),
        });
        let consumer = tokio::spawn(consume(inner.clone()));
        let sweeper = tokio::spawn(sweep(inner.clone()));
        shutdown.await;
        inner.stopping.cancel();
        let _ = consumer.await;
        sweeper.abort();
        // Runs in progress get the grace period, then are stopped.
        let deadline = tokio::time::Instant::now() + inner.options.grace;
        while inner.active_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        inner.handing_back.cancel();
        for token in inner.active_tokens() {
            token.cancel();
        }
        // Sessions close at their next safe point; each hands its run back.
        let _ = inner
            .permits
            .acquire_many(u32::try_from(inner.options.concurrency).unwrap_or(u32::MAX))
            .await;
        WorkerReport {
            sessions: inner.sessions.load(Ordering::SeqCst),
            woken: inner.woken.load(Ordering::SeqCst),
            handed_back: inner.handed_back.load(Ordering::SeqCst),
        }
    }
}

impl Inner {
    fn emit(&self, event: WorkerEvent) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, CancelToken>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn active_count(&self) -> usize {
        self.active().len()
    }

    fn active_tokens(&self) -> Vec<CancelToken> {
        self.active().values().cloned().collect()
    }

    /// The job: take the run if it needs work, start its session, return
    /// once the session holds the lease (or ended).
    async fn advance(self: &Arc<Self>, job: Advance) -> Result<(), BoxDynError> {
        let Ok(id) = RunId::parse(&job.run_id) else {
            // Not a run this store could hold: nothing to do, ever.
            return Ok(());
        };
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit?,
            () = self.stopping.cancelled() => {
                // Failed, so apalis gives the job to another worker.
                return Err("the worker is stopping".into());
            }
        };
        if self.stopping.is_cancelled() {
            return Err("the worker is stopping".into());
        }
        let cancel = CancelToken::new();
        {
            let mut active = self.active();
            if active.contains_key(&id) {
                return Ok(());
            }
            active.insert(id.clone(), cancel.clone());
        }
        let record = match self.store.run(&id).await {
            Ok(record) => record,
            Err(StoreError::NotFound { .. }) => {
                self.active().remove(&id);
                return Ok(());
            }
            Err(e) => {
                self.active().remove(&id);
                return Err(e.into());
            }
        };
        if !needs_work(&record) {
            self.active().remove(&id);
            return Ok(());
        }
        let agent = match self.factory.agent(&record).await {
            Ok(agent) => agent
                .with_store(self.store.clone())
                .with_lease_ttl(self.options.lease_ttl)
                .with_lease_owner(self.options.owner.clone()),
            Err(error) => {
                let result = self.fail(&record, &error.to_string()).await;
                self.active().remove(&id);
                return result.map_err(Into::into);
            }
        };
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let started = Mutex::new(Some(started_tx));
        let request = RunRequest::resume(id.clone())
            .with_cancel(cancel)
            .with_callback(move |event| {
                if matches!(event.kind, EventKind::RunResumed { .. })
                    && let Some(tx) = started
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take()
                {
                    let _ = tx.send(());
                }
            });
        self.sessions.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        tokio::spawn(async move {
            let result = agent.run(request).await;
            inner.finished(&id, result).await;
            inner.active().remove(&id);
            drop(permit);
        });
        // Done once the run is ours (or its session already ended): from
        // here on the lease, not the job, says who runs it.
        let _ = started_rx.await;
        Ok(())
    }

    /// After a session: report it, and hand the run back if the worker is
    /// stopping and stopped it.
    async fn finished(&self, id: &RunId, result: Result<pae_core::RunResult, RunError>) {
        let error = result.as_ref().err().map(|e| pae_core::error_chain(e));
        let cancelled = matches!(result, Err(RunError::Cancelled { .. }));
        let record = self.store.run(id).await.ok();
        if cancelled && self.handing_back.is_cancelled() {
            match self.hand_back(id).await {
                Ok(()) => {
                    self.handed_back.fetch_add(1, Ordering::SeqCst);
                    self.emit(WorkerEvent::HandedBack { run: id.clone() });
                }
                Err(e) => self.emit(WorkerEvent::Trouble {
                    message: format!("handing run {id} back: {}", pae_core::error_chain(&e)),
                }),
            }
        } else if let Some(record) = &record
            && let Some(lease) = &record.lease
            && lease.owner == self.options.owner
            && matches!(record.status, RunStatus::Planning | RunStatus::Running)
        {
            // The session ended without closing (its commit failed, the
            // database was away): give the lease up so the run is taken up
            // again at once rather than when it expires.
            if self.store.release(lease).await.is_ok() {
                let _ = self.queue.wake_now(&self.store, id).await;
            }
        }
        self.emit(WorkerEvent::Finished {
            run: id.clone(),
            status: record.map(|r| r.status),
            error,
        });
    }

    /// Makes a run this worker stopped runnable again and queues its job,
    /// in one transaction.
    async fn hand_back(&self, id: &RunId) -> Result<(), StoreError> {
        let lease = self.take(id).await?;
        let mut commit = Commit::new();
        commit.status = Some(RunStatus::Running);
        commit.ending = Some(RunEnding::default());
        let hook = Wake(self.queue.clone());
        let committed = self.store.commit_with(&lease, commit, &hook).await;
        let released = self.store.release(&lease).await;
        committed?;
        released
    }

    /// Takes the run's lease, also from this worker's own earlier lease.
    async fn take(&self, id: &RunId) -> Result<Lease, StoreError> {
        let ttl = self.options.lease_ttl;
        let owner = &self.options.owner;
        match self
            .store
            .acquire(id, owner, ttl, Takeover::IfExpired)
            .await
        {
            Err(StoreError::Busy { owner: holder, .. }) if holder == *owner => {
                let epoch = self
                    .store
                    .run(id)
                    .await?
                    .lease
                    .map_or(0, |lease| lease.epoch);
                self.store
                    .acquire(id, owner, ttl, Takeover::IfEpoch(epoch))
                    .await
            }
            other => other,
        }
    }

    /// Marks a run this worker cannot build an agent for as failed.
    async fn fail(&self, record: &RunRecord, why: &str) -> Result<(), StoreError> {
        let lease = self.take(&record.id).await?;
        let mut commit = Commit::new();
        commit.status = Some(RunStatus::Failed);
        commit.ending = Some(RunEnding {
            error: Some(format!(
                "worker {} cannot run it: {why}",
                self.options.owner
            )),
            ..RunEnding::default()
        });
        let committed = self.store.commit(&lease, commit).await;
        let _ = self.store.release(&lease).await;
        committed.map(drop)
    }
}

/// Whether a run needs a worker: not finished, not waiting for a person.
fn needs_work(record: &RunRecord) -> bool {
    match record.status {
        RunStatus::Planning | RunStatus::Running => true,
        // Stopped by a worker that could not hand it back.
        RunStatus::Interrupted => {
            matches!(record.ending.interruption, Some(Interruption::Cancelled))
        }
        _ => false,
    }
}

/// Queues the run's job inside a commit.
struct Wake(Queue);

#[async_trait]
impl CommitHook for Wake {
    async fn on_commit(
        &self,
        tx: &mut sqlx::PgConnection,
        change: &Change<'_>,
    ) -> Result<(), sqlx::Error> {
        self.0.wake(tx, change.run_id, true).await.map(drop)
    }
}

/// The queue consumer: an apalis worker on the queue, restarted (under a
/// new name) whenever it fails, until the worker stops.
async fn consume(inner: Arc<Inner>) {
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    let mut delay = Duration::from_millis(100);
    while !inner.stopping.is_cancelled() {
        let generation = GENERATION.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}/{generation}", inner.options.owner);
        let config = Config::default()
            .queue(inner.queue.name())
            .batch_size(1)
            .heartbeat_interval(inner.queue.orphan_after() / 4)
            .missed_heartbeats(4);
        let storage = PostgresStorage::<Advance>::new(inner.store.pool()).with_config(config);
        let backend = PollWith::new(storage, Strategy::new().interval(inner.options.poll_every));
        let worker = WorkerBuilder::new(name.as_str())
            .backend(backend)
            .concurrency(1)
            .data(inner.clone())
            .build(handle);
        let stopping = inner.stopping.clone();
        let result = worker
            .run_until(async move {
                stopping.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
            .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                inner.emit(WorkerEvent::Trouble {
                    message: format!("the queue consumer stopped ({e}); starting it again"),
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = inner.stopping.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// apalis's handler.
async fn handle(
    job: Advance,
    inner: Data<Arc<Inner>>,
    _worker: WorkerContext,
) -> Result<(), BoxDynError> {
    inner.advance(job).await
}

/// The sweeper: wakes queue-managed runs that are runnable but held by
/// nobody (their worker died and the lease expired, or it released it
/// without finishing), and runs whose lease holder is a process of this
/// machine that is gone.
async fn sweep(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(inner.options.sweep_every).await;
        if let Err(e) = sweep_once(&inner).await {
            inner.emit(WorkerEvent::Trouble {
                message: format!("sweeping: {}", pae_core::error_chain(&e)),
            });
        }
    }
}

async fn sweep_once(inner: &Inner) -> Result<(), StoreError> {
    let mut runs = inner.queue.stranded(&inner.store, 100).await?;
    for owner in inner.store.lease_owners().await? {
        if is_dead_local_owner(&owner) {
            runs.extend(
                inner
                    .store
                    .leased_by(&owner)
                    .await?
                    .into_iter()
                    .map(|(id, _)| id),
            );
        }
    }
    for run in runs {
        if inner.active().contains_key(&run) {
            continue;
        }
        if inner.queue.wake_now(&inner.store, &run).await? {
            inner.woken.fetch_add(1, Ordering::SeqCst);
            inner.emit(WorkerEvent::Woke { run });
        }
    }
    Ok(())
}
