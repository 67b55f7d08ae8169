//! The database layout and its checks: a file that is not SQLite, a SQLite
//! database of another program, or one of another schema version is
//! refused with a typed error before anything is written.

use pae_core::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build reads and writes. Version 1 files are
/// upgraded in place when opened.
pub const SCHEMA_VERSION: i64 = 2;

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

/// The tables, indexes and meta rows of the current version.
///
/// Steps and events are rowid tables whose key packs the run's `rid` (high
/// bits) with the step index or event number (low bits): a run's rows are
/// contiguous and ordered, and the rows of the newest run append at the
/// right edge of the b-tree, where SQLite adds a page without rebalancing
/// its neighbours. (Version 1 keyed them by `(run id text, n)` in `WITHOUT
/// ROWID` tables, where every page split rewrote three leaves and their
/// parent: several times the pages written per step.) The run row's
/// status is written by its own statement, so the status index is only
/// touched when the status changes.
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

/// Upgrades a version 1 database (text-keyed `WITHOUT ROWID` tables) to
/// version 2 in one transaction: every row is copied, nothing is dropped
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
        1 => upgrade_from_v1(conn),
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

/// Rewrites a version 1 store as version 2 in one immediate transaction
/// (another process opening the file at the same time waits, then finds
/// version 2).
fn upgrade_from_v1(conn: &Connection) -> Result<(), StoreError> {
    let fail = |e| error("upgrading the store from schema version 1", e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let upgraded = (|| {
        if version(conn)? != 1 {
            return Ok(());
        }
        conn.execute_batch(FROM_V1)
            .and_then(|()| conn.execute_batch(TABLES))
            .and_then(|()| conn.execute_batch(FROM_V1_COPY))
            .map_err(fail)
    })();
    match upgraded {
        Ok(()) => conn.execute_batch("COMMIT").map_err(fail),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
