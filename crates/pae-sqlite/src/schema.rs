//! The database layout and its checks: a file that is not SQLite, a SQLite
//! database of another program, or one of another schema version is
//! refused with a typed error before anything is written.

use pae_core::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build reads and writes. Version 1 and 2 files
/// are upgraded in place when opened.
pub const SCHEMA_VERSION: i64 = 3;

/// Marks a database as a pae run store.
const APPLICATION: &str = "pae-run-store";

/// Bits of a row key that hold a step index or event number; the run's
/// `rid` sits above them.
pub(crate) const KEY_BITS: u32 = 32;

/// The meta table, the same in every version.
const META: &str = "
CREATE TABLE pae_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// What a row of the `log` table is (its `kind` column).
pub(crate) mod kind {
    /// The last row of every commit: `seq` is the run's last event number,
    /// `body` the run's spending, the indexes of its committed steps and
    /// the commit's time.
    pub(crate) const COMMIT: i64 = 0;
    /// A journal entry (`scope`, `seq`); a later row of the same scope and
    /// seq replaces it.
    pub(crate) const JOURNAL: i64 = 1;
    /// An event, numbered `seq`.
    pub(crate) const EVENT: i64 = 2;
    /// Drops the journal entries of `scope` numbered `seq` or more that
    /// come before it.
    pub(crate) const TRUNCATE: i64 = 3;
    /// A committed step, its index in `seq`.
    pub(crate) const STEP: i64 = 4;
}

/// The tables and indexes of the current version but the log (the same
/// as version 2's), then [`LOG`].
///
/// A commit appends to one table, `log`, whose rowid packs the run's `rid`
/// (high bits) with a per-run row number (low bits): a run's rows are
/// contiguous and in commit order, and a commit of the newest run appends
/// at the right edge of one b-tree, where SQLite fills the last leaf and
/// adds a page without rebalancing its neighbours. The log holds committed
/// steps, journal entries (a rewritten entry is appended again and the
/// later row wins, so there is no secondary index to keep up), journal
/// truncations, events, and one commit row that ends every commit with the
/// run's spending, last event number, committed step indexes (as ranges:
/// a step committed twice is a conflict) and time. The run row is not
/// rewritten per step. (Version 2 wrote the run row, the steps, journal
/// and events tables and the journal's unique index in every commit: five
/// pages, each a 4 KiB frame in the write-ahead log; version 1 keyed tables
/// by run id text.)
const TABLES: &str = "
CREATE TABLE runs (
    rid              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    objective        TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    settings         TEXT NOT NULL,
    status           TEXT NOT NULL,
    approval         TEXT NOT NULL,
    budget           TEXT NOT NULL,
    spent            TEXT NOT NULL,
    ending           TEXT NOT NULL,
    lease_owner      TEXT,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    event_seq        INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX runs_by_creation ON runs (created_at, id);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE TABLE plans (
    run      INTEGER NOT NULL REFERENCES runs (rid),
    revision INTEGER NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (run, revision)
) WITHOUT ROWID;
";

/// The log table, the one version 3 added.
const LOG: &str = "
CREATE TABLE log (
    key   INTEGER PRIMARY KEY,
    kind  INTEGER NOT NULL,
    scope TEXT,
    seq   INTEGER NOT NULL,
    body  TEXT NOT NULL
);
";

/// Version 2's `steps`, `journal` and `events` tables, verbatim (its
/// other tables are [`TABLES`]): what [`FROM_V1`] upgrades to before
/// [`FROM_V2`].
const V2_TABLES: &str = "
CREATE TABLE steps (
    key    INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE journal (
    key   INTEGER PRIMARY KEY,
    run   INTEGER NOT NULL REFERENCES runs (rid),
    scope TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    entry TEXT NOT NULL,
    UNIQUE (run, scope, seq)
);
CREATE TABLE events (
    key   INTEGER PRIMARY KEY,
    event TEXT NOT NULL
);
";

/// Upgrades a version 2 database to version 3: steps, journal and events
/// move into the log, each run's journal entries first (by scope and seq),
/// then its steps, then its events (same numbers), then a commit row with
/// the spending, last event number and time its run row held and its
/// step indexes. Runs after [`LOG`].
const FROM_V2: &str = "
CREATE TEMP TABLE upgrade_counts AS
    SELECT r.rid AS rid,
           (SELECT count(*) FROM journal j WHERE j.run = r.rid) AS entries,
           (SELECT count(*) FROM steps s
            WHERE s.key BETWEEN r.rid << 32 AND (r.rid << 32) | 4294967295) AS steps,
           coalesce((SELECT max(e.key & 4294967295) FROM events e
                     WHERE e.key BETWEEN r.rid << 32 AND (r.rid << 32) | 4294967295), 0) AS events
    FROM runs r;
INSERT INTO log (key, kind, scope, seq, body)
    SELECT (run << 32) | row_number() OVER (PARTITION BY run ORDER BY scope, seq),
           1, scope, seq, entry
    FROM journal ORDER BY 1;
INSERT INTO log (key, kind, scope, seq, body)
    SELECT ((s.key >> 32) << 32)
           | (c.entries + row_number() OVER (PARTITION BY s.key >> 32 ORDER BY s.key)),
           4, NULL, s.key & 4294967295, s.record
    FROM steps s JOIN upgrade_counts c ON c.rid = s.key >> 32 ORDER BY 1;
INSERT INTO log (key, kind, scope, seq, body)
    SELECT e.key + c.entries + c.steps, 2, NULL, e.key & 4294967295, e.event
    FROM events e JOIN upgrade_counts c ON c.rid = e.key >> 32 ORDER BY 1;
INSERT INTO log (key, kind, scope, seq, body)
    SELECT (r.rid << 32) | (c.entries + c.steps + c.events + 1), 0, NULL, r.event_seq,
           json_object('spent', json(r.spent), 'at', r.updated_at, 'steps',
               json((SELECT json_group_array(
                         json_array(s.key & 4294967295, (s.key & 4294967295) + 1))
                     FROM steps s
                     WHERE s.key BETWEEN r.rid << 32 AND (r.rid << 32) | 4294967295)))
    FROM runs r JOIN upgrade_counts c ON c.rid = r.rid ORDER BY 1;
DROP TABLE upgrade_counts;
DROP TABLE steps;
DROP TABLE events;
DROP TABLE journal;
UPDATE pae_meta SET value = '3' WHERE key = 'schema_version';
";

/// Upgrades a version 1 database (text-keyed `WITHOUT ROWID` tables) to
/// version 2 (then [`FROM_V2`] takes it to 3) in one transaction: every row is copied, nothing is dropped
/// until its copy is in place, and a failure leaves the file at version 1.
const FROM_V1: &str = "
ALTER TABLE runs RENAME TO runs_v1;
ALTER TABLE plans RENAME TO plans_v1;
ALTER TABLE steps RENAME TO steps_v1;
ALTER TABLE journal RENAME TO journal_v1;
ALTER TABLE events RENAME TO events_v1;
DROP INDEX runs_by_creation;
DROP INDEX runs_by_status;
";

const FROM_V1_COPY: &str = "
INSERT INTO runs (rid, id, objective, inputs, settings, status, approval, budget, spent,
                  ending, lease_owner, lease_epoch, lease_expires_at, event_seq,
                  created_at, updated_at)
    SELECT rowid, id, objective, inputs, settings, status, approval, budget, spent,
           ending, lease_owner, lease_epoch, lease_expires_at, event_seq,
           created_at, updated_at
    FROM runs_v1 ORDER BY rowid;
INSERT INTO plans (run, revision, record)
    SELECT r.rid, p.revision, p.record FROM plans_v1 p JOIN runs r ON r.id = p.run_id;
INSERT INTO steps (key, record)
    SELECT (r.rid << 32) | s.idx, s.record FROM steps_v1 s JOIN runs r ON r.id = s.run_id
    ORDER BY 1;
INSERT INTO journal (run, scope, seq, entry)
    SELECT r.rid, j.scope, j.seq, j.entry FROM journal_v1 j JOIN runs r ON r.id = j.run_id
    ORDER BY r.rid, j.scope, j.seq;
INSERT INTO events (key, event)
    SELECT (r.rid << 32) | e.seq, e.event FROM events_v1 e JOIN runs r ON r.id = e.run_id
    ORDER BY 1;
DROP TABLE events_v1;
DROP TABLE journal_v1;
DROP TABLE steps_v1;
DROP TABLE plans_v1;
DROP TABLE runs_v1;
UPDATE pae_meta SET value = '2' WHERE key = 'schema_version';
";

/// Maps a SQLite error to a store error: a damaged or foreign file is
/// `Corrupt`, a busy database is a transient backend error.
pub(crate) fn error(what: &str, error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let code = match &error {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::corrupt(format!("{what}: {error}"))
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::backend(what.to_owned(), error, true)
        }
        _ => StoreError::backend(what.to_owned(), error, false),
    }
}

/// Sets the connection up and makes sure the database is a pae store of
/// this version, creating the tables in an empty database.
pub(crate) fn prepare(conn: &Connection, full_sync: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| error("setting the busy timeout", e))?;
    // Every statement the store runs stays prepared: rusqlite keeps 16 by
    // default, fewer than the store uses, and a statement pushed out is
    // parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(48);
    // Reading the header first turns a file that is not SQLite into a
    // clear error before any pragma writes to it.
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(|e| error("reading the database", e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| error("enabling WAL", e))?;
    conn.pragma_update(
        None,
        "synchronous",
        if full_sync { "FULL" } else { "NORMAL" },
    )
    .map_err(|e| error("setting the synchronous level", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| error("enabling foreign keys", e))?;
    // The log is folded back into the database every 8000 pages (32 MiB)
    // rather than SQLite's 1000: a step rewrites the same few hot pages
    // (the run's row, the right edges of the tables), and a checkpoint
    // copies each page once however often it was logged, with an fsync
    // each time. Afterwards the log file is cut back to 4 MiB rather than
    // left at its largest size.
    conn.pragma_update(None, "wal_autocheckpoint", 8000)
        .map_err(|e| error("setting the checkpoint interval", e))?;
    conn.pragma_update(None, "journal_size_limit", 4 << 20)
        .map_err(|e| error("limiting the log size", e))?;
    if tables == 0 {
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| error("creating the tables", e))?;
        tx.execute_batch(META)
            .and_then(|()| tx.execute_batch(TABLES))
            .and_then(|()| tx.execute_batch(LOG))
            .map_err(|e| error("creating the tables", e))?;
        tx.execute(
            "INSERT INTO pae_meta (key, value) VALUES ('application', ?1), ('schema_version', ?2)",
            (APPLICATION, SCHEMA_VERSION.to_string()),
        )
        .map_err(|e| error("creating the tables", e))?;
        tx.commit().map_err(|e| error("creating the tables", e))?;
        return Ok(());
    }
    let has_meta: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pae_meta'",
            [],
            |_| Ok(true),
        )
        .optional()
        .map_err(|e| error("reading the schema", e))?
        .unwrap_or(false);
    if !has_meta || meta(conn, "application")?.as_deref() != Some(APPLICATION) {
        return Err(StoreError::corrupt(
            "the file is a SQLite database of another program, not a pae run store",
        ));
    }
    match version(conn)? {
        SCHEMA_VERSION => Ok(()),
        from @ (1 | 2) => upgrade(conn, from),
        found => Err(StoreError::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM pae_meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
    .map_err(|e| error("reading the schema", e))
}

fn version(conn: &Connection) -> Result<i64, StoreError> {
    meta(conn, "schema_version")?
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| StoreError::corrupt("the schema version is missing or unreadable"))
}

/// Rewrites a version 1 or 2 store as the current version in one
/// immediate transaction (another process opening the file at the same
/// time waits, then finds the current version). A failure leaves the file
/// as it was.
fn upgrade(conn: &Connection, from: i64) -> Result<(), StoreError> {
    let fail = |e| {
        error(
            &format!("upgrading the store from schema version {from}"),
            e,
        )
    };
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let upgraded = (|| {
        let found = version(conn)?;
        if found == 1 {
            conn.execute_batch(FROM_V1)
                .and_then(|()| conn.execute_batch(TABLES))
                .and_then(|()| conn.execute_batch(V2_TABLES))
                .and_then(|()| conn.execute_batch(FROM_V1_COPY))
                .map_err(fail)?;
        }
        if found == 1 || found == 2 {
            conn.execute_batch(LOG)
                .and_then(|()| conn.execute_batch(FROM_V2))
                .map_err(fail)?;
        }
        Ok(())
    })();
    match upgraded {
        Ok(()) => conn.execute_batch("COMMIT").map_err(fail),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
