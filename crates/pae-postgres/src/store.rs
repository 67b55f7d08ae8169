//! [`PgStore`]: the [`RunStore`] over a pool of PostgreSQL connections.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use pae_core::store::{
    CallScope, Commit, JournalEntry, Lease, PlanRevision, RunFilter, RunRecord, RunStatus,
    RunStore, StepRecord, StoredEvent, Takeover,
};
use pae_core::{RunId, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{corrupt, error, redact};
use crate::hook::{Change, CommitHook};
use crate::schema;

/// The database's clock in milliseconds since the Unix epoch: leases
/// expire by one clock however many machines hold them.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

const RUN_COLUMNS: &str = "id, objective, inputs, settings, status, approval, budget, spent, \
     ending, lease_owner, lease_epoch, lease_expires_at, created_at, updated_at";

/// Work done on each new connection before it is used.
pub type ConnectionSetup = Arc<
    dyn for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>> + Send + Sync,
>;

/// How to connect: the URL, the pool's size, how long failed operations
/// are tried again.
#[derive(Clone)]
pub struct PgStoreOptions {
    url: String,
    max_connections: u32,
    connect_timeout: Duration,
    retry_for: Duration,
    application_name: String,
    setup: Option<ConnectionSetup>,
}

impl std::fmt::Debug for PgStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStoreOptions")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_for", &self.retry_for)
            .field("application_name", &self.application_name)
            .field("setup", &self.setup.is_some())
            .finish()
    }
}

impl PgStoreOptions {
    /// Options for `url` (`postgres://user:password@host:port/database`,
    /// with libpq's parameters such as `sslmode`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            connect_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
            application_name: "pae".to_owned(),
            setup: None,
        }
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `setup` on every new connection before the pool hands it out
    /// (for programs sharing the pool: `pae-worker` resolves the types its
    /// job queue's statements use there).
    #[must_use]
    pub fn with_connection_setup(mut self, setup: ConnectionSetup) -> Self {
        self.setup = Some(setup);
        self
    }

    /// The most connections the pool opens (default 10).
    #[must_use]
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long to wait for a connection (default 10 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an operation that failed on a lost connection or a server
    /// restart is tried again before its error is returned (default 30 s;
    /// zero turns retrying off).
    #[must_use]
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// The `application_name` shown in `pg_stat_activity` (default `pae`).
    #[must_use]
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}

/// A [`RunStore`] in a PostgreSQL database, shared by any number of
/// processes on any number of machines.
///
/// Every commit is one transaction, fenced by the run's lease (`SELECT …
/// FOR UPDATE` on the run's row with the lease's owner and epoch): a writer
/// that lost its lease writes nothing. Lease times are the database's
/// clock. Statements are sent unprepared (no statement cache), so the store
/// works behind PgBouncer in transaction mode. An operation that fails on a
/// lost connection is tried again for up to
/// [`with_retry_for`](PgStoreOptions::with_retry_for); a write whose
/// `COMMIT` may or may not have landed is checked by the token it wrote
/// before it is tried again, so a commit is applied once.
///
/// Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    hook: Option<Arc<dyn CommitHook>>,
    retry_for: Duration,
    location: String,
    latencies: Arc<std::sync::Mutex<Latencies>>,
}

/// The most commit times kept (the latest).
const KEPT_LATENCIES: usize = 100_000;

#[derive(Debug, Default)]
struct Latencies {
    micros: Vec<u32>,
    next: usize,
    count: u64,
}

/// How long this store's commits took (retries included), over the latest
/// 100 000.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct CommitLatency {
    /// Commits made by this store since it was opened.
    pub count: u64,
    /// The median, in milliseconds.
    pub p50_ms: f64,
    /// The 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The slowest, in milliseconds.
    pub max_ms: f64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("hook", &self.hook.is_some())
            .field("retry_for", &self.retry_for)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` with default options and prepares the schema.
    ///
    /// # Errors
    /// As [`connect_with`](Self::connect_with).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgStoreOptions::new(url)).await
    }

    /// Connects and makes sure the database holds a pae run store of this
    /// version, creating its tables and indexes in an empty database.
    ///
    /// # Errors
    /// A backend error for a URL that is not PostgreSQL's or a server that
    /// cannot be reached or refuses the login (transient when it may come
    /// back), [`StoreError::SchemaVersion`] for a store of another version,
    /// [`StoreError::Corrupt`] for a `pae` schema of another program.
    pub async fn connect_with(options: PgStoreOptions) -> Result<Self, StoreError> {
        let location = redact(&options.url);
        if !(options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")) {
            return Err(StoreError::Backend {
                message: format!("{location} is not a PostgreSQL URL (postgres://…)"),
                source: None,
                transient: false,
            });
        }
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Backend {
                message: format!("{location} is not a valid PostgreSQL URL"),
                source: Some(Box::new(e)),
                transient: false,
            })?
            // No named prepared statements: PgBouncer in transaction mode
            // hands each transaction a different server connection.
            .statement_cache_capacity(0)
            .application_name(&options.application_name);
        let mut pool = PgPoolOptions::new();
        if let Some(setup) = options.setup.clone() {
            pool = pool.after_connect(move |conn, _| setup(conn));
        }
        let pool = pool
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(|e| error(&format!("connecting to {location}"), e))?;
        schema::prepare(&pool).await?;
        Ok(Self {
            pool,
            hook: None,
            retry_for: options.retry_for,
            location,
            latencies: Arc::default(),
        })
    }

    /// Runs `hook` inside every commit's transaction.
    #[must_use]
    pub fn with_hook(mut self, hook: Arc<dyn CommitHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The connection pool (for work that shares the database, such as a
    /// job queue).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where the store is, without a password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// How long this store's commits took (shared by its clones): what to
    /// watch on a worker.
    pub fn commit_latency(&self) -> CommitLatency {
        let latencies = self
            .latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sorted = latencies.micros.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            // Percentile by rank; the list is short enough to sort.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            sorted.get(index).map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        CommitLatency {
            count: latencies.count,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    fn record_latency(&self, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        latencies.count += 1;
        if latencies.micros.len() < KEPT_LATENCIES {
            latencies.micros.push(micros);
        } else {
            let next = latencies.next;
            latencies.micros[next] = micros;
            latencies.next = (next + 1) % KEPT_LATENCIES;
        }
    }

    /// Records a new run inside the caller's transaction, so that it is
    /// created together with other writes (a job that will run it).
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when the id is taken, or a backend
    /// error (the transaction should then be rolled back).
    pub async fn create_in(
        &self,
        conn: &mut PgConnection,
        run: &RunRecord,
    ) -> Result<(), StoreError> {
        insert_run(conn, run).await
    }

    /// Like [`commit`](RunStore::commit), with `hook` also run inside the
    /// transaction (after the store's own hook).
    ///
    /// # Errors
    /// As [`commit`](RunStore::commit).
    pub async fn commit_with(
        &self,
        lease: &Lease,
        commit: Commit,
        hook: &dyn CommitHook,
    ) -> Result<u64, StoreError> {
        self.commit_inner(lease, &commit, Some(hook)).await
    }

    /// Runnable runs nobody holds: status `planning` or `running` and a
    /// lease that is released or expired (by the database's clock), oldest
    /// first, with their current lease epoch.
    ///
    /// # Errors
    /// A backend error.
    pub async fn unowned(&self, limit: usize) -> Result<Vec<(RunId, u64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read("finding runs to wake", || {
                sqlx::query(concat!(
                    "SELECT id, lease_epoch FROM pae.runs \
                     WHERE status IN ('planning', 'running') AND lease_expires_at <= ",
                    now_ms!(),
                    " ORDER BY lease_expires_at LIMIT $1"
                ))
                .persistent(false)
                .bind(limit)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|row| Ok((run_id(row.get(0))?, unsigned(row.get(1)))))
            .collect()
    }

    /// The owners of unexpired leases on runnable runs (to find owners
    /// that are gone).
    ///
    /// # Errors
    /// A backend error.
    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .read("listing lease owners", || {
                sqlx::query(concat!(
                    "SELECT DISTINCT lease_owner FROM pae.runs \
                     WHERE status IN ('planning', 'running') AND lease_owner IS NOT NULL \
                     AND lease_expires_at > ",
                    now_ms!()
                ))
                .persistent(false)
                .fetch_all(&self.pool)
            })
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Runnable runs whose unexpired lease `owner` holds, with their epoch.
    ///
    /// # Errors
    /// A backend error.
    pub async fn leased_by(&self, owner: &str) -> Result<Vec<(RunId, u64)>, StoreError> {
        let rows = self
            .read("listing an owner's runs", || {
                sqlx::query(
                    "SELECT id, lease_epoch FROM pae.runs \
                     WHERE status IN ('planning', 'running') AND lease_owner = $1",
                )
                .persistent(false)
                .bind(owner)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|row| Ok((run_id(row.get(0))?, unsigned(row.get(1)))))
            .collect()
    }

    /// A read, tried again on transient failures.
    async fn read<T, F, Fut>(&self, what: &str, query: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let deadline = Instant::now() + self.retry_for;
        let mut delay = Duration::from_millis(25);
        loop {
            match query().await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let e = error(what, e);
                    if !e.is_transient() || Instant::now() + delay > deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// A write that marks the run with `token`: tried again on transient
    /// failures, but only after checking that the failed attempt did not
    /// commit (its `COMMIT` may have landed before the connection died), in
    /// which case `landed` says what it did.
    async fn write<'a, T>(
        &'a self,
        id: &'a RunId,
        token: &'a str,
        attempt: impl Fn() -> BoxFuture<'a, Result<T, StoreError>>,
        landed: impl Fn() -> BoxFuture<'a, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.retry_for;
        let mut delay = Duration::from_millis(25);
        let mut failed = false;
        loop {
            if failed {
                match self.last_write(id).await {
                    Ok(Some(last)) if last == token => return landed().await,
                    Ok(_) => {}
                    Err(e) if e.is_transient() && Instant::now() + delay <= deadline => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_transient() && Instant::now() + delay <= deadline => {
                    failed = true;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn last_write(&self, id: &RunId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT last_write FROM pae.runs WHERE id = $1")
            .persistent(false)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| error("checking a write", e))?;
        Ok(row.and_then(|row| row.get::<Option<String>, _>(0)))
    }

    /// Fails unless the run exists.
    async fn exists(&self, id: &RunId) -> Result<(), StoreError> {
        let found = self
            .read("reading a run", || {
                sqlx::query("SELECT 1 FROM pae.runs WHERE id = $1")
                    .persistent(false)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
            })
            .await?;
        found.map(drop).ok_or_else(|| not_found(id))
    }

    /// The `record`-like text column of every row, parsed.
    async fn records<T: DeserializeOwned>(
        &self,
        id: &RunId,
        what: &str,
        sql: &'static str,
        scope: Option<String>,
    ) -> Result<Vec<T>, StoreError> {
        self.exists(id).await?;
        let texts: Vec<String> = self
            .read(&format!("reading {what}"), || {
                let query = sqlx::query_scalar(sql).persistent(false).bind(id.as_str());
                let query = match &scope {
                    Some(scope) => query.bind(scope.clone()),
                    None => query,
                };
                query.fetch_all(&self.pool)
            })
            .await?;
        texts.iter().map(|text| parse(what, text)).collect()
    }

    async fn commit_inner(
        &self,
        lease: &Lease,
        commit: &Commit,
        extra: Option<&dyn CommitHook>,
    ) -> Result<u64, StoreError> {
        let token = RunId::generate().to_string();
        let prepared = Prepared::new(commit)?;
        let id = &lease.run_id;
        let started = Instant::now();
        let result = self
            .write(
                id,
                &token,
                || Box::pin(self.try_commit(lease, commit, &prepared, &token, extra)),
                || {
                    Box::pin(async move {
                        let seq = sqlx::query_scalar::<_, i64>(
                            "SELECT event_seq FROM pae.runs WHERE id = $1",
                        )
                        .persistent(false)
                        .bind(id.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(|e| error("committing", e))?;
                        Ok(unsigned(seq))
                    })
                },
            )
            .await;
        if result.is_ok() {
            self.record_latency(started.elapsed());
        }
        result
    }

    async fn try_commit(
        &self,
        lease: &Lease,
        commit: &Commit,
        prepared: &Prepared,
        token: &str,
        extra: Option<&dyn CommitHook>,
    ) -> Result<u64, StoreError> {
        let id = lease.run_id.as_str();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| error("committing", e))?;
        let fenced = sqlx::query(
            "SELECT event_seq, status FROM pae.runs \
             WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 FOR UPDATE",
        )
        .persistent(false)
        .bind(id)
        .bind(&lease.owner)
        .bind(signed(lease.epoch))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| error("committing", e))?;
        let Some(row) = fenced else {
            drop(tx);
            self.exists(&lease.run_id).await?;
            return Err(lost(lease));
        };
        let mut event_seq: i64 = row.get(0);
        let before = status(&lease.run_id, row.get(1))?;
        let conflict = |reason: String| StoreError::Conflict {
            id: id.to_owned(),
            reason,
        };
        // Any error below drops `tx`, which rolls everything back.
        if let Some((revision, text)) = &prepared.plan {
            let next: i64 = sqlx::query_scalar("SELECT count(*) FROM pae.plans WHERE run_id = $1")
                .persistent(false)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| error("committing a plan", e))?;
            if i64::from(*revision) != next {
                return Err(conflict(format!(
                    "plan revision {revision} written, the next is {next}"
                )));
            }
            sqlx::query("INSERT INTO pae.plans (run_id, revision, record) VALUES ($1, $2, $3)")
                .persistent(false)
                .bind(id)
                .bind(i64::from(*revision))
                .bind(text)
                .execute(&mut *tx)
                .await
                .map_err(|e| error("committing a plan", e))?;
        }
        if let Some(revision) = commit.approve {
            let text: Option<String> = sqlx::query_scalar(
                "SELECT record FROM pae.plans WHERE run_id = $1 AND revision = $2 FOR UPDATE",
            )
            .persistent(false)
            .bind(id)
            .bind(i64::from(revision))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| error("approving a plan", e))?;
            let Some(text) = text else {
                return Err(conflict(format!("no plan revision {revision}")));
            };
            let mut plan: PlanRevision = parse("a plan revision", &text)?;
            plan.approved = true;
            sqlx::query("UPDATE pae.plans SET record = $3 WHERE run_id = $1 AND revision = $2")
                .persistent(false)
                .bind(id)
                .bind(i64::from(revision))
                .bind(json(&plan)?)
                .execute(&mut *tx)
                .await
                .map_err(|e| error("approving a plan", e))?;
        }
        if !prepared.step_indices.is_empty() {
            let inserted: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO pae.steps (run_id, idx, record) \
                 SELECT $1, idx, record FROM unnest($2::bigint[], $3::text[]) AS t(idx, record) \
                 ON CONFLICT DO NOTHING RETURNING idx",
            )
            .persistent(false)
            .bind(id)
            .bind(&prepared.step_indices)
            .bind(&prepared.step_texts)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| error("committing a step", e))?;
            if let Some(index) = prepared
                .step_indices
                .iter()
                .enumerate()
                .find(|(i, index)| {
                    !inserted.contains(index) || prepared.step_indices[..*i].contains(index)
                })
                .map(|(_, index)| *index)
            {
                return Err(conflict(format!("step {index} is committed already")));
            }
        }
        if !prepared.truncate_scopes.is_empty() {
            sqlx::query(
                "DELETE FROM pae.journal AS j USING unnest($2::text[], $3::bigint[]) AS t(scope, from_seq) \
                 WHERE j.run_id = $1 AND j.scope = t.scope AND j.seq >= t.from_seq",
            )
            .persistent(false)
            .bind(id)
            .bind(&prepared.truncate_scopes)
            .bind(&prepared.truncate_from)
            .execute(&mut *tx)
            .await
            .map_err(|e| error("truncating the journal", e))?;
        }
        if !prepared.journal_scopes.is_empty() {
            sqlx::query(
                "INSERT INTO pae.journal (run_id, scope, seq, entry) \
                 SELECT $1, scope, seq, entry FROM unnest($2::text[], $3::bigint[], $4::text[]) \
                 AS t(scope, seq, entry) \
                 ON CONFLICT (run_id, scope, seq) DO UPDATE SET entry = excluded.entry",
            )
            .persistent(false)
            .bind(id)
            .bind(&prepared.journal_scopes)
            .bind(&prepared.journal_seqs)
            .bind(&prepared.journal_texts)
            .execute(&mut *tx)
            .await
            .map_err(|e| error("writing the journal", e))?;
        }
        if !prepared.events.is_empty() {
            let seqs: Vec<i64> = (1..)
                .map(|n| event_seq + n)
                .take(prepared.events.len())
                .collect();
            sqlx::query(
                "INSERT INTO pae.events (run_id, seq, event) \
                 SELECT $1, seq, event FROM unnest($2::bigint[], $3::text[]) AS t(seq, event)",
            )
            .persistent(false)
            .bind(id)
            .bind(&seqs)
            .bind(&prepared.events)
            .execute(&mut *tx)
            .await
            .map_err(|e| error("storing events", e))?;
            event_seq += i64::try_from(prepared.events.len()).unwrap_or(i64::MAX);
        }
        sqlx::query(concat!(
            "UPDATE pae.runs SET status = coalesce($2, status), spent = coalesce($3, spent), \
             ending = coalesce($4, ending), settings = coalesce($5, settings), \
             budget = coalesce($6, budget), event_seq = $7, last_write = $8, updated_at = ",
            now_ms!(),
            " WHERE id = $1"
        ))
        .persistent(false)
        .bind(id)
        .bind(commit.status.map(RunStatus::as_str))
        .bind(&prepared.spent)
        .bind(&prepared.ending)
        .bind(&prepared.settings)
        .bind(&prepared.budget)
        .bind(event_seq)
        .bind(token)
        .execute(&mut *tx)
        .await
        .map_err(|e| error("updating the run", e))?;
        let change = Change {
            run_id: &lease.run_id,
            before,
            after: commit.status.unwrap_or(before),
            epoch: lease.epoch,
            commit,
        };
        for hook in self.hook.as_deref().into_iter().chain(extra) {
            hook.on_commit(&mut tx, &change)
                .await
                .map_err(|e| error("running the commit hook", e))?;
        }
        tx.commit().await.map_err(|e| error("committing", e))?;
        Ok(unsigned(event_seq))
    }
}

/// A commit's parts encoded once, before any attempt.
struct Prepared {
    plan: Option<(u32, String)>,
    step_indices: Vec<i64>,
    step_texts: Vec<String>,
    truncate_scopes: Vec<String>,
    truncate_from: Vec<i64>,
    journal_scopes: Vec<String>,
    journal_seqs: Vec<i64>,
    journal_texts: Vec<String>,
    events: Vec<String>,
    spent: Option<String>,
    ending: Option<String>,
    settings: Option<String>,
    budget: Option<String>,
}

impl Prepared {
    fn new(commit: &Commit) -> Result<Self, StoreError> {
        let mut journal: Vec<&JournalEntry> = Vec::new();
        // One row per (scope, seq), the last write winning: an upsert may
        // not touch a row twice in one statement.
        for entry in &commit.journal {
            journal.retain(|e| !(e.scope == entry.scope && e.seq == entry.seq));
            journal.push(entry);
        }
        Ok(Self {
            plan: commit
                .plan
                .as_ref()
                .map(|plan| Ok::<_, StoreError>((plan.revision, json(plan)?)))
                .transpose()?,
            step_indices: commit
                .steps
                .iter()
                .map(|s| i64::try_from(s.index).unwrap_or(i64::MAX))
                .collect(),
            step_texts: commit.steps.iter().map(json).collect::<Result<_, _>>()?,
            truncate_scopes: commit.truncate.iter().map(|(s, _)| s.key()).collect(),
            truncate_from: commit
                .truncate
                .iter()
                .map(|(_, from)| i64::from(*from))
                .collect(),
            journal_scopes: journal.iter().map(|e| e.scope.key()).collect(),
            journal_seqs: journal.iter().map(|e| i64::from(e.seq)).collect(),
            journal_texts: journal.iter().map(|e| json(*e)).collect::<Result<_, _>>()?,
            events: commit.events.iter().map(json).collect::<Result<_, _>>()?,
            spent: commit.spent.as_ref().map(json).transpose()?,
            ending: commit.ending.as_ref().map(json).transpose()?,
            settings: commit.settings.as_ref().map(json).transpose()?,
            budget: commit.budget.as_ref().map(json).transpose()?,
        })
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend("encoding a record", e, false))
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn not_found(id: &RunId) -> StoreError {
    StoreError::NotFound { id: id.to_string() }
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        id: lease.run_id.to_string(),
        epoch: lease.epoch,
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn run_id(text: String) -> Result<RunId, StoreError> {
    RunId::parse(&text).map_err(|e| corrupt("run id", e))
}

fn status(id: &RunId, text: String) -> Result<RunStatus, StoreError> {
    RunStatus::parse(&text)
        .ok_or_else(|| StoreError::corrupt(format!("run {id}: unknown status {text:?}")))
}

fn run_record(row: &PgRow) -> Result<RunRecord, StoreError> {
    let text = |i: usize| -> Result<String, StoreError> {
        row.try_get::<String, _>(i)
            .map_err(|e| corrupt("a run row", e))
    };
    let id = run_id(text(0)?)?;
    let objective: String = parse("run objective", &text(1)?)?;
    let status = status(&id, text(4)?)?;
    let owner: Option<String> = row.try_get(9).map_err(|e| corrupt("a run row", e))?;
    let number = |i: usize| -> Result<u64, StoreError> {
        row.try_get::<i64, _>(i)
            .map(unsigned)
            .map_err(|e| corrupt("a run row", e))
    };
    let lease = match owner {
        Some(owner) => Some(Lease {
            run_id: id.clone(),
            owner,
            epoch: number(10)?,
            expires_at_ms: number(11)?,
        }),
        None => None,
    };
    let mut record = RunRecord::new(id, objective);
    record.inputs = parse("run inputs", &text(2)?)?;
    record.settings = parse("run settings", &text(3)?)?;
    record.status = status;
    record.approval = parse("run approval policy", &text(5)?)?;
    record.budget = parse("run budget", &text(6)?)?;
    record.spent = parse("run spending", &text(7)?)?;
    record.ending = parse("run ending", &text(8)?)?;
    record.lease = lease;
    record.created_at_ms = number(12)?;
    record.updated_at_ms = number(13)?;
    Ok(record)
}

async fn insert_run(conn: &mut PgConnection, run: &RunRecord) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO pae.runs (id, objective, inputs, settings, status, approval, budget, \
         spent, ending, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .persistent(false)
    .bind(run.id.as_str())
    .bind(json(&run.objective)?)
    .bind(json(&run.inputs)?)
    .bind(json(&run.settings)?)
    .bind(run.status.as_str())
    .bind(json(&run.approval)?)
    .bind(json(&run.budget)?)
    .bind(json(&run.spent)?)
    .bind(json(&run.ending)?)
    .bind(signed(run.created_at_ms))
    .bind(signed(run.updated_at_ms))
    .execute(conn)
    .await
    .map_err(|e| error("creating a run", e))?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::AlreadyExists {
            id: run.id.to_string(),
        });
    }
    Ok(())
}

#[async_trait]
impl RunStore for PgStore {
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.retry_for;
        let mut delay = Duration::from_millis(25);
        let mut retried = false;
        loop {
            let attempt = async {
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .map_err(|e| error("creating a run", e))?;
                insert_run(&mut conn, run).await
            };
            match attempt.await {
                // The id is new: finding it taken after a failed attempt
                // means that attempt committed.
                Err(StoreError::AlreadyExists { .. }) if retried => return Ok(()),
                Err(e) if e.is_transient() && Instant::now() + delay <= deadline => {
                    retried = true;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        let row = self
            .read("reading a run", || {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM pae.runs WHERE id = $1"
                )))
                .persistent(false)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
            })
            .await?;
        run_record(&row.ok_or_else(|| not_found(id))?)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let limit = filter
            .limit
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = self
            .read("listing runs", || {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM pae.runs WHERE ($1::text IS NULL OR status = $1) \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                )))
                .persistent(false)
                .bind(filter.status.map(RunStatus::as_str))
                .bind(limit)
                .fetch_all(&self.pool)
            })
            .await?;
        let mut records = rows.iter().map(run_record).collect::<Result<Vec<_>, _>>()?;
        records.reverse();
        Ok(records)
    }

    async fn plans(&self, id: &RunId) -> Result<Vec<PlanRevision>, StoreError> {
        self.records(
            id,
            "plan revisions",
            "SELECT record FROM pae.plans WHERE run_id = $1 ORDER BY revision",
            None,
        )
        .await
    }

    async fn steps(&self, id: &RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.records(
            id,
            "steps",
            "SELECT record FROM pae.steps WHERE run_id = $1 ORDER BY idx",
            None,
        )
        .await
    }

    async fn journal(
        &self,
        id: &RunId,
        scope: &CallScope,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.records(
            id,
            "journal entries",
            "SELECT entry FROM pae.journal WHERE run_id = $1 AND scope = $2 ORDER BY seq",
            Some(scope.key()),
        )
        .await
    }

    async fn journal_all(&self, id: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.records(
            id,
            "journal entries",
            "SELECT entry FROM pae.journal WHERE run_id = $1 ORDER BY scope COLLATE \"C\", seq",
            None,
        )
        .await
    }

    async fn events(&self, id: &RunId, after: Option<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        self.exists(id).await?;
        let rows = self
            .read("reading events", || {
                sqlx::query(
                    "SELECT seq, event FROM pae.events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
                )
                .persistent(false)
                .bind(id.as_str())
                .bind(signed(after.unwrap_or(0)))
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    seq: unsigned(row.get(0)),
                    event: parse("an event", row.get(1))?,
                })
            })
            .collect()
    }

    async fn acquire(
        &self,
        id: &RunId,
        owner: &str,
        ttl: Duration,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        let token = RunId::generate().to_string();
        let epoch = match takeover {
            Takeover::IfExpired => None,
            Takeover::IfEpoch(epoch) => Some(signed(epoch)),
        };
        let lease_of = |row: PgRow| Lease {
            run_id: id.clone(),
            owner: owner.to_owned(),
            epoch: unsigned(row.get(0)),
            expires_at_ms: unsigned(row.get(1)),
        };
        let token = token.as_str();
        self.write(
            id,
            token,
            || {
                Box::pin(async move {
                    let taken = sqlx::query(concat!(
                        "UPDATE pae.runs SET lease_owner = $2, lease_epoch = lease_epoch + 1, \
                         last_write = $5, lease_expires_at = ",
                        now_ms!(),
                        " + $3 WHERE id = $1 AND (lease_owner IS NULL OR lease_expires_at <= ",
                        now_ms!(),
                        " OR lease_epoch = $4) RETURNING lease_epoch, lease_expires_at"
                    ))
                    .persistent(false)
                    .bind(id.as_str())
                    .bind(owner)
                    .bind(ttl_ms(ttl))
                    .bind(epoch)
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| error("taking a lease", e))?;
                    if let Some(row) = taken {
                        return Ok(lease_of(row));
                    }
                    let held = sqlx::query(concat!(
                        "SELECT lease_owner, lease_expires_at - ",
                        now_ms!(),
                        " FROM pae.runs WHERE id = $1"
                    ))
                    .persistent(false)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| error("taking a lease", e))?
                    .ok_or_else(|| not_found(id))?;
                    let holder: Option<String> = held.get(0);
                    Err(StoreError::Busy {
                        id: id.to_string(),
                        // Released between the two statements: busy a
                        // moment ago, free now.
                        owner: holder.unwrap_or_default(),
                        remaining_ms: unsigned(held.get(1)),
                    })
                })
            },
            || {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT lease_epoch, lease_expires_at FROM pae.runs WHERE id = $1",
                    )
                    .persistent(false)
                    .bind(id.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| error("taking a lease", e))?;
                    Ok(lease_of(row))
                })
            },
        )
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        // Idempotent: trying it again after a lost connection is harmless.
        let row = self
            .read("renewing a lease", || {
                sqlx::query(concat!(
                    "UPDATE pae.runs SET lease_expires_at = ",
                    now_ms!(),
                    " + $4 WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 \
                     RETURNING lease_expires_at"
                ))
                .persistent(false)
                .bind(lease.run_id.as_str())
                .bind(&lease.owner)
                .bind(signed(lease.epoch))
                .bind(ttl_ms(ttl))
                .fetch_optional(&self.pool)
            })
            .await?;
        match row {
            Some(row) => Ok(Lease {
                expires_at_ms: unsigned(row.get(0)),
                ..lease.clone()
            }),
            None => {
                self.exists(&lease.run_id).await?;
                Err(lost(lease))
            }
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let token = RunId::generate().to_string();
        let token = token.as_str();
        self.write(
            &lease.run_id,
            token,
            || {
                Box::pin(async move {
                    let changed = sqlx::query(
                        "UPDATE pae.runs SET lease_owner = NULL, lease_expires_at = 0, \
                         last_write = $4 WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3",
                    )
                    .persistent(false)
                    .bind(lease.run_id.as_str())
                    .bind(&lease.owner)
                    .bind(signed(lease.epoch))
                    .bind(token)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| error("releasing a lease", e))?;
                    if changed.rows_affected() == 0 {
                        self.exists(&lease.run_id).await?;
                        return Err(lost(lease));
                    }
                    Ok(())
                })
            },
            || Box::pin(async { Ok(()) }),
        )
        .await
    }

    async fn commit(&self, lease: &Lease, commit: Commit) -> Result<u64, StoreError> {
        self.commit_inner(lease, &commit, None).await
    }
}
