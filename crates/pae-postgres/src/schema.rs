//! The database layout and its migrations.
//!
//! Everything lives in the `pae` schema. `pae.schema_version` holds one row:
//! the application (`pae-run-store`) and the schema version; a database
//! whose version differs is refused with [`StoreError::SchemaVersion`]
//! before anything is written, and a `pae` schema of another program with
//! [`StoreError::Corrupt`]. `pae.migrations` records which steps ran, so a
//! start that died half way finishes the job.
//!
//! Tables are created in one transaction under an advisory transaction
//! lock (so many workers starting at once create them once). Indexes are
//! created with `CREATE INDEX CONCURRENTLY`, which PostgreSQL refuses inside
//! a transaction: each runs as a single statement of its own, and an index
//! a crashed build left invalid is dropped and built again.
//!
//! Record columns hold JSON as `text`, not `jsonb`: `jsonb` refuses the
//! `\u0000` escape, which model and tool output may contain.

use std::time::Duration;

use pae_core::StoreError;
use sqlx::PgPool;

use crate::error::error;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Marks a database as holding a pae run store.
const APPLICATION: &str = "pae-run-store";

/// The tables (migration step 1).
const TABLES: &str = "
CREATE SCHEMA IF NOT EXISTS pae;
CREATE TABLE pae.schema_version (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    application text NOT NULL,
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pae.migrations (
    step       integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pae.runs (
    id               text PRIMARY KEY,
    objective        text NOT NULL,
    inputs           text NOT NULL,
    settings         text NOT NULL,
    status           text NOT NULL,
    approval         text NOT NULL,
    budget           text NOT NULL,
    spent            text NOT NULL,
    ending           text NOT NULL,
    lease_owner      text,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    lease_expires_at bigint NOT NULL DEFAULT 0,
    event_seq        bigint NOT NULL DEFAULT 0,
    last_write       text,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
CREATE TABLE pae.plans (
    run_id   text NOT NULL REFERENCES pae.runs (id) ON DELETE CASCADE,
    revision bigint NOT NULL,
    record   text NOT NULL,
    PRIMARY KEY (run_id, revision)
);
CREATE TABLE pae.steps (
    run_id text NOT NULL REFERENCES pae.runs (id) ON DELETE CASCADE,
    idx    bigint NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE pae.journal (
    run_id text NOT NULL REFERENCES pae.runs (id) ON DELETE CASCADE,
    scope  text NOT NULL,
    seq    bigint NOT NULL,
    entry  text NOT NULL,
    PRIMARY KEY (run_id, scope, seq)
);
CREATE TABLE pae.events (
    run_id text NOT NULL REFERENCES pae.runs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    event  text NOT NULL,
    PRIMARY KEY (run_id, seq)
);
";

/// One migration step.
enum Step {
    /// The tables, created in one transaction ([`create_tables`]).
    Tables,
    /// One `CREATE INDEX CONCURRENTLY` (outside any transaction).
    Index(Index),
}

/// An index built concurrently.
struct Index {
    /// Its qualified name.
    name: &'static str,
    /// `CREATE INDEX CONCURRENTLY IF NOT EXISTS …`.
    create: &'static str,
    /// `DROP INDEX CONCURRENTLY IF EXISTS …`, for an invalid one.
    drop: &'static str,
}

/// Declares an index step once: its name, columns and both statements.
macro_rules! index {
    ($name:literal, $columns:literal) => {
        Step::Index(Index {
            name: concat!("pae.", $name),
            create: concat!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ",
                $name,
                " ON pae.runs ",
                $columns
            ),
            drop: concat!("DROP INDEX CONCURRENTLY IF EXISTS pae.", $name),
        })
    };
}

/// Every step, in order; step numbers are positions from 1.
const STEPS: &[(&str, Step)] = &[
    ("tables", Step::Tables),
    (
        "runs by creation",
        index!("runs_by_creation", "(created_at, id)"),
    ),
    (
        "runs by status",
        index!("runs_by_status", "(status, created_at)"),
    ),
    (
        "runs to wake",
        index!("runs_to_wake", "(status, lease_expires_at)"),
    ),
];

/// Makes sure the database holds a pae run store of this version,
/// creating or completing it.
pub(crate) async fn prepare(pool: &PgPool) -> Result<(), StoreError> {
    if !check_version(pool).await? {
        create_tables(pool).await?;
    }
    if all_done(pool).await? {
        return Ok(());
    }
    // One process builds the indexes at a time. The lock is a session lock
    // taken with `pg_try_advisory_lock` in a loop, never waited for inside
    // the server: `CREATE INDEX CONCURRENTLY` waits for every older
    // snapshot, and a session blocked in `pg_advisory_lock` would hold one
    // while waiting for the builder (a deadlock PostgreSQL reports as
    // 40P01 to one of them).
    let what = "taking the migration lock";
    let mut conn = pool.acquire().await.map_err(|e| error(what, e))?;
    let mut locked = false;
    for _ in 0..1200 {
        locked = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext('pae-run-store-index-migrations'))",
        )
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| error(what, e))?;
        if locked || all_done(pool).await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !locked {
        if all_done(pool).await? {
            return Ok(());
        }
        return Err(StoreError::Backend {
            message: "another process has been migrating the run store for two minutes".into(),
            source: None,
            transient: true,
        });
    }
    let result = run_steps(&mut conn).await;
    let unlocked =
        sqlx::query("SELECT pg_advisory_unlock(hashtext('pae-run-store-index-migrations'))")
            .persistent(false)
            .execute(&mut *conn)
            .await;
    result?;
    if unlocked.is_err() {
        // The lock goes with the connection, which must not return to the
        // pool holding it.
        conn.detach();
    }
    Ok(())
}

/// Whether every migration step has run.
async fn all_done(pool: &PgPool) -> Result<bool, StoreError> {
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM pae.migrations")
        .persistent(false)
        .fetch_one(pool)
        .await
        .map_err(|e| error("reading the migrations", e))?;
    Ok(usize::try_from(done).is_ok_and(|done| done >= STEPS.len()))
}

/// Runs the migration steps not recorded yet, on the connection holding
/// the migration lock.
async fn run_steps(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let done: Vec<i32> = sqlx::query_scalar("SELECT step FROM pae.migrations ORDER BY step")
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| error("reading the migrations", e))?;
    for (number, (name, step)) in (1..).zip(STEPS) {
        if done.contains(&number) {
            continue;
        }
        if let Step::Index(index) = step {
            create_index(&mut *conn, index).await?;
        }
        sqlx::query(
            "INSERT INTO pae.migrations (step, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .persistent(false)
        .bind(number)
        .bind(*name)
        .execute(&mut *conn)
        .await
        .map_err(|e| error("recording a migration", e))?;
    }
    Ok(())
}

/// Whether the store's tables exist; refuses another version or program.
async fn check_version(pool: &PgPool) -> Result<bool, StoreError> {
    let (version_table, runs_table): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT to_regclass('pae.schema_version')::text, to_regclass('pae.runs')::text",
    )
    .persistent(false)
    .fetch_one(pool)
    .await
    .map_err(|e| error("reading the schema", e))?;
    if version_table.is_none() {
        if runs_table.is_some() {
            return Err(StoreError::corrupt(
                "the database has a `pae` schema of another program (no pae.schema_version)",
            ));
        }
        return Ok(false);
    }
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT application, version FROM pae.schema_version")
            .persistent(false)
            .fetch_optional(pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(_) => {
                    StoreError::corrupt(format!("pae.schema_version is not a pae run store's: {e}"))
                }
                _ => error("reading the schema version", e),
            })?;
    let Some((application, version)) = row else {
        return Err(StoreError::corrupt("pae.schema_version is empty"));
    };
    if application != APPLICATION {
        return Err(StoreError::corrupt(format!(
            "the `pae` schema belongs to {application:?}, not a pae run store"
        )));
    }
    if version != SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            found: version,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(true)
}

/// Creates the tables (step 1) unless another process just did.
async fn create_tables(pool: &PgPool) -> Result<(), StoreError> {
    let what = "creating the tables";
    let mut tx = pool.begin().await.map_err(|e| error(what, e))?;
    // Many workers may start at once: the first creates, the others wait
    // here and then find the tables.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pae-run-store-migrations'))")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map_err(|e| error(what, e))?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('pae.schema_version')::text")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| error(what, e))?;
    if exists.is_none() {
        sqlx::raw_sql(TABLES)
            .execute(&mut *tx)
            .await
            .map_err(|e| error(what, e))?;
        sqlx::query("INSERT INTO pae.schema_version (application, version) VALUES ($1, $2); ")
            .persistent(false)
            .bind(APPLICATION)
            .bind(SCHEMA_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| error(what, e))?;
        sqlx::query("INSERT INTO pae.migrations (step, name) VALUES (1, 'tables')")
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| error(what, e))?;
    }
    tx.commit().await.map_err(|e| error(what, e))?;
    if exists.is_some() {
        // Created by another process meanwhile: check it like any store.
        check_version(pool).await?;
    }
    Ok(())
}

/// Builds an index concurrently; an invalid one left by a build that died
/// is dropped and built again, one being built by another process is
/// waited for.
async fn create_index(conn: &mut sqlx::PgConnection, index: &Index) -> Result<(), StoreError> {
    let what = format!("creating the index {}", index.name);
    for _ in 0..600 {
        if let Err(e) = sqlx::raw_sql(index.create).execute(&mut *conn).await {
            // Concurrent builds of one index can deadlock; the loser tries
            // again and finds the winner's index.
            let e = error(&what, e);
            if !e.is_transient() {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (valid, building): (Option<bool>, bool) = sqlx::query_as(
            "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), \
                    EXISTS (SELECT 1 FROM pg_stat_progress_create_index \
                            WHERE index_relid = to_regclass($1))",
        )
        .persistent(false)
        .bind(index.name)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| error(&what, e))?;
        match (valid, building) {
            (Some(true), _) => return Ok(()),
            (_, true) => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => {
                sqlx::raw_sql(index.drop)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| error(&what, e))?;
            }
        }
    }
    Err(StoreError::Backend {
        message: format!("{what}: another process has been building it for a minute"),
        source: None,
        transient: true,
    })
}
