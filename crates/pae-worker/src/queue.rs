//! The queue of "advance run R" jobs: apalis-postgres's job table, plus one
//! row per queue-managed run (`pae_worker.wakeups`) naming the run's latest
//! job, so a run has at most one live job however many processes try to
//! wake it.
//!
//! A run is queue-managed once [`submit`] created it; runs started in the
//! foreground (`pae run --store postgres://…`) have no wake-up row and are
//! never taken by workers.

use std::sync::Arc;
use std::time::Duration;

use apalis_core::task::builder::TaskBuilder;
use apalis_postgres::PostgresStorage;
use async_trait::async_trait;
use pae_core::store::{RunRecord, RunStatus};
use pae_core::{RunId, StoreError};
use pae_postgres::sqlx::{self, PgConnection, Row};
use pae_postgres::{Change, CommitHook, PgStore};
use serde::{Deserialize, Serialize};

/// The default apalis queue (`job_type`) of advance jobs.
pub const DEFAULT_QUEUE: &str = "pae.advance";

/// The default time an apalis worker may go without a heartbeat before the
/// jobs it holds count as orphaned.
const ORPHAN_AFTER: Duration = Duration::from_secs(20);

/// The job: advance this run as far as it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    /// The run.
    pub run_id: String,
}

/// The wake-up table, in the worker's own schema.
const TABLES: &str = "
CREATE SCHEMA IF NOT EXISTS pae_worker;
CREATE TABLE IF NOT EXISTS pae_worker.wakeups (
    run_id    text PRIMARY KEY,
    job_key   text NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);
";

/// A job counts as live while it waits, is being retried, or is held by an
/// apalis worker that is alive; `$2` is the orphan threshold in seconds.
const LIVE: &str = "(j.status = 'Pending' \
     OR (j.status = 'Failed' AND j.attempts < j.max_attempts) \
     OR (j.status IN ('Queued', 'Running') AND wk.last_seen > now() - make_interval(secs => $2)))";

fn backend(what: &str, error: sqlx::Error) -> StoreError {
    let transient = pae_postgres::is_transient(&error);
    StoreError::backend(what.to_owned(), error, transient)
}

/// The advance-job queue of one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Queue {
    name: Arc<str>,
    orphan_after: Duration,
}

impl Default for Queue {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE)
    }
}

impl Queue {
    /// The queue with this apalis `job_type`.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self {
            name: Arc::from(name.as_ref()),
            orphan_after: ORPHAN_AFTER,
        }
    }

    /// How long an apalis worker may go without a heartbeat before the
    /// jobs it holds count as orphaned (default 20 s): until then, waking a
    /// run whose job such a worker holds adds no second job. Workers beat
    /// four times in this time; apalis re-enqueues their jobs after it.
    #[must_use]
    pub fn with_orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after.max(Duration::from_millis(400));
        self
    }

    /// See [`with_orphan_after`](Self::with_orphan_after).
    pub fn orphan_after(&self) -> Duration {
        self.orphan_after
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates apalis's tables (its own migrations) and the wake-up table.
    ///
    /// # Errors
    /// A backend error.
    pub async fn setup(&self, store: &PgStore) -> Result<(), StoreError> {
        PostgresStorage::setup(store.pool())
            .await
            .map_err(|e| StoreError::backend("setting up the job queue (apalis)", e, false))?;
        let mut tx = store
            .pool()
            .begin()
            .await
            .map_err(|e| backend("setting up the wake-up table", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pae-worker-migrations'))")
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("setting up the wake-up table", e))?;
        sqlx::raw_sql(TABLES)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("setting up the wake-up table", e))?;
        tx.commit()
            .await
            .map_err(|e| backend("setting up the wake-up table", e))
    }

    /// Makes sure the run has a live advance job, inside the caller's
    /// transaction. With `managed_only`, a run without a wake-up row (not
    /// submitted to the queue) is left alone. Returns whether a job was
    /// added.
    ///
    /// # Errors
    /// A database error (the transaction should be rolled back).
    pub async fn wake(
        &self,
        conn: &mut PgConnection,
        run: &RunId,
        managed_only: bool,
    ) -> Result<bool, sqlx::Error> {
        if !managed_only {
            sqlx::query(
                "INSERT INTO pae_worker.wakeups (run_id, job_key) VALUES ($1, '') \
                 ON CONFLICT DO NOTHING",
            )
            .persistent(false)
            .bind(run.as_str())
            .execute(&mut *conn)
            .await?;
        }
        // The wake-up row's lock makes concurrent wakers take turns.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT w.job_key, coalesce({LIVE}, false) FROM pae_worker.wakeups w \
             LEFT JOIN apalis.jobs j ON j.job_type = $3 AND j.idempotency_key = w.job_key \
             LEFT JOIN apalis.workers wk ON wk.id = j.lock_by \
             WHERE w.run_id = $1 FOR UPDATE OF w"
        )))
        .persistent(false)
        .bind(run.as_str())
        .bind(self.orphan_after.as_secs_f64())
        .bind(self.name())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        if row.get::<bool, _>(1) {
            return Ok(false);
        }
        let key = format!("advance/{run}/{}", RunId::generate());
        let job = serde_json::to_vec(&Advance {
            run_id: run.to_string(),
        })
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let task = TaskBuilder::new(job).idempotency_key(key.clone()).build();
        apalis_postgres::queries::push_tasks(&mut *conn, self.name(), vec![task])
            .await
            .map_err(|e| match e {
                apalis_postgres::Error::Database(e) => e,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
        sqlx::query(
            "UPDATE pae_worker.wakeups SET job_key = $2, queued_at = now() WHERE run_id = $1",
        )
        .persistent(false)
        .bind(run.as_str())
        .bind(&key)
        .execute(&mut *conn)
        .await?;
        Ok(true)
    }

    /// [`wake`](Self::wake) in a transaction of its own.
    ///
    /// # Errors
    /// A backend error.
    pub async fn wake_now(&self, store: &PgStore, run: &RunId) -> Result<bool, StoreError> {
        let mut tx = store
            .pool()
            .begin()
            .await
            .map_err(|e| backend("waking a run", e))?;
        let woken = self
            .wake(&mut tx, run, true)
            .await
            .map_err(|e| backend("waking a run", e))?;
        tx.commit().await.map_err(|e| backend("waking a run", e))?;
        Ok(woken)
    }

    /// Queue-managed runs that need a worker and have no live job: runnable
    /// (`planning` or `running`) with a released or expired lease.
    ///
    /// # Errors
    /// A backend error.
    pub async fn stranded(&self, store: &PgStore, limit: usize) -> Result<Vec<RunId>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.id FROM pae.runs r \
             JOIN pae_worker.wakeups w ON w.run_id = r.id \
             LEFT JOIN apalis.jobs j ON j.job_type = $3 AND j.idempotency_key = w.job_key \
             LEFT JOIN apalis.workers wk ON wk.id = j.lock_by \
             WHERE r.status IN ('planning', 'running') \
             AND r.lease_expires_at <= (extract(epoch from clock_timestamp()) * 1000)::bigint \
             AND NOT coalesce({LIVE}, false) \
             ORDER BY r.lease_expires_at LIMIT $1"
        )))
        .persistent(false)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(self.orphan_after.as_secs_f64())
        .bind(self.name())
        .fetch_all(store.pool())
        .await
        .map_err(|e| backend("finding stranded runs", e))?;
        rows.iter()
            .map(|row| {
                RunId::parse(row.get::<&str, _>(0))
                    .map_err(|e| StoreError::corrupt(format!("run id: {e}")))
            })
            .collect()
    }
}

/// Creates `run` and its advance job in one transaction: the run exists
/// exactly when a worker will take it up. Tried again on a lost connection
/// (a retry that finds the run created means the first attempt committed).
///
/// # Errors
/// [`StoreError::AlreadyExists`], or a backend error (nothing created).
pub async fn submit(store: &PgStore, queue: &Queue, run: &RunRecord) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(50);
    let mut retried = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut tx = store
                .pool()
                .begin()
                .await
                .map_err(|e| backend("submitting a run", e))?;
            store.create_in(&mut tx, run).await?;
            queue
                .wake(&mut tx, &run.id, false)
                .await
                .map_err(|e| backend("queueing the run", e))?;
            tx.commit()
                .await
                .map_err(|e| backend("submitting a run", e))
        };
        match attempt.await {
            Err(StoreError::AlreadyExists { .. }) if retried => return Ok(()),
            Err(e) if e.is_transient() && tokio::time::Instant::now() + delay < deadline => {
                retried = true;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// The commit hook that wakes a queue-managed run when a person approves
/// its plan: the job is enqueued in the approval's own transaction.
#[derive(Debug, Clone)]
pub struct WakeOnApproval {
    queue: Queue,
}

impl WakeOnApproval {
    /// The hook for `queue`.
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }
}

#[async_trait]
impl CommitHook for WakeOnApproval {
    async fn on_commit(
        &self,
        tx: &mut PgConnection,
        change: &Change<'_>,
    ) -> Result<(), sqlx::Error> {
        let ready = matches!(change.after, RunStatus::Running | RunStatus::Planning);
        if change.before == RunStatus::AwaitingApproval && ready {
            self.queue.wake(tx, change.run_id, true).await?;
        }
        Ok(())
    }
}

/// Opens the store for queue work: the queue's tables created, the
/// approval hook installed.
///
/// Every connection resolves the `hstore` types of apalis's job table when
/// it opens: with the statement cache off (for PgBouncer), sqlx would
/// otherwise resolve them in the middle of a statement and lose its
/// unnamed prepared statement (apalis's first fetch on each connection
/// failing with "unnamed prepared statement does not exist").
///
/// # Errors
/// As [`PgStore::connect_with`], or a backend error setting up the queue.
pub async fn connect(
    options: pae_postgres::PgStoreOptions,
    queue: &Queue,
) -> Result<PgStore, StoreError> {
    {
        // The tables first (apalis's migrations create the hstore type),
        // on connections of their own.
        let store = PgStore::connect_with(options.clone()).await?;
        queue.setup(&store).await?;
        store.pool().close().await;
    }
    let options = options.with_connection_setup(Arc::new(|conn| Box::pin(resolve_types(conn))));
    let store = PgStore::connect_with(options).await?;
    Ok(store.with_hook(Arc::new(WakeOnApproval::new(queue.clone()))))
}

/// Makes a new connection look up (and cache) the types apalis's
/// statements bind and return.
async fn resolve_types(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::postgres::types::PgHstore;
    let _: (PgHstore, Vec<PgHstore>) = sqlx::query_as("SELECT ''::hstore, $1::hstore[]")
        .persistent(false)
        .bind(Vec::<PgHstore>::new())
        .fetch_one(conn)
        .await?;
    Ok(())
}
