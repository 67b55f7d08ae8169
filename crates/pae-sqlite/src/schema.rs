//! The database layout and its checks: a file that is not SQLite, a SQLite
//! database of another program, or one of another schema version is
//! refused with a typed error before anything is written.

use pae_core::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Marks a database as a pae run store.
const APPLICATION: &str = "pae-run-store";

const TABLES: &str = "
CREATE TABLE pae_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
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
    run_id     TEXT NOT NULL REFERENCES runs (id),
    revision   INTEGER NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (run_id, revision)
) WITHOUT ROWID;
CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs (id),
    idx    INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE journal (
    run_id TEXT NOT NULL REFERENCES runs (id),
    scope  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    entry  TEXT NOT NULL,
    PRIMARY KEY (run_id, scope, seq)
) WITHOUT ROWID;
CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq    INTEGER NOT NULL,
    event  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
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
    // The log is folded back every 1000 pages; afterwards its file is cut
    // back to 4 MiB rather than left at its largest size.
    conn.pragma_update(None, "journal_size_limit", 4 << 20)
        .map_err(|e| error("limiting the log size", e))?;
    if tables == 0 {
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| error("creating the tables", e))?;
        tx.execute_batch(TABLES)
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
    let meta = |key: &str| -> Result<Option<String>, StoreError> {
        conn.query_row("SELECT value FROM pae_meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| error("reading the schema", e))
    };
    if !has_meta || meta("application")?.as_deref() != Some(APPLICATION) {
        return Err(StoreError::corrupt(
            "the file is a SQLite database of another program, not a pae run store",
        ));
    }
    let version = meta("schema_version")?
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| StoreError::corrupt("the schema version is missing or unreadable"))?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            found: version,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(())
}
