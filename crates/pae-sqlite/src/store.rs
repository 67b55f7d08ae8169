//! [`SqliteStore`]: the [`RunStore`] over one SQLite connection.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pae_core::store::{
    CallScope, Commit, JournalEntry, Lease, PlanRevision, RunFilter, RunRecord, RunStatus,
    RunStore, Spent, StepRecord, StoredEvent, Takeover, now_ms,
};
use pae_core::{Event, RunId, StoreError, TokenUsage};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::schema::{self, KEY_BITS, error, kind};

/// A [`RunStore`] in one SQLite file. Cheap to share behind an `Arc`; one
/// connection serves all callers, each operation a short transaction.
/// Several processes may open the same file: SQLite's locking and the
/// store's leases keep their writes apart.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Where each journal scope's rows are in the log of recently read
    /// runs, by run id; locked only while `conn` is.
    scopes: Mutex<HashMap<String, ScopeIndex>>,
    /// The row number and end of the log of each run this store last
    /// committed to, by run id, with the lease it committed under; locked
    /// only while `conn` is. Only the lease holder appends to a run's log, and every lease
    /// taken has a new epoch, so while the fenced lease is the one an
    /// entry was written under the log ends where the entry says: the
    /// commit need not read the tail back or parse the last commit row.
    tails: Mutex<HashMap<String, KnownTail>>,
}

/// The most runs whose [`KnownTail`] is kept.
const KNOWN_TAILS: usize = 64;

/// Where a run's log ended after this store's last commit to it.
#[derive(Debug)]
struct KnownTail {
    /// The run's row number.
    rid: i64,
    /// The lease epoch the commit was made under.
    epoch: u64,
    /// Where the log ended.
    end: LogEnd,
}

/// Where a run's log ends, and what its last commit row says.
#[derive(Debug, Default)]
struct LogEnd {
    /// The number of its next log row.
    next: u64,
    /// The number of its last event.
    event_seq: u64,
    /// When its last commit was made; `None` before the first.
    at: Option<u64>,
    /// The spending recorded by its last commit.
    spent: Option<Spent>,
    /// Its committed steps: sorted, disjoint, non-touching half-open
    /// ranges of step indexes.
    steps: Vec<(u64, u64)>,
}

/// The most runs whose [`ScopeIndex`] is kept.
const SCOPE_INDEXES: usize = 64;

/// Where one run's journal rows are, as far as its log has been read. The
/// log is append-only, so rows up to `seen` never change: a lookup reads
/// only the rows appended since the last one, not the whole run (a resumed
/// run asks for each step's journal).
#[derive(Debug, Default)]
struct ScopeIndex {
    /// The key of the last log row read (0: none).
    seen: i64,
    /// The keys of journal and truncation rows, by scope key, in order.
    keys: HashMap<String, Vec<i64>>,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, creating missing parent
    /// directories.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a file that is not a pae store (not
    /// SQLite, another program's database, damaged),
    /// [`StoreError::SchemaVersion`] for another version, or a backend error
    /// (permissions, a full disk).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), false)
    }

    /// Like [`open`](Self::open), with `synchronous=FULL`: commits also
    /// survive power loss, at several times the cost per step.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_synchronous_full(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), true)
    }

    /// An in-memory store (for tests).
    ///
    /// # Errors
    /// A backend error.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn =
            Connection::open_in_memory().map_err(|e| error("opening an in-memory store", e))?;
        schema::prepare(&conn, false)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: PathBuf::from(":memory:"),
            scopes: Mutex::default(),
            tails: Mutex::default(),
        })
    }

    fn open_with(path: &Path, full_sync: bool) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::backend(format!("creating {}", parent.display()), e, false)
            })?;
        }
        if path.is_dir() {
            return Err(StoreError::corrupt(format!(
                "{} is a directory, not a run store",
                path.display()
            )));
        }
        let conn =
            Connection::open(path).map_err(|e| error(&format!("opening {}", path.display()), e))?;
        schema::prepare(&conn, full_sync)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            scopes: Mutex::default(),
            tails: Mutex::default(),
        })
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-operation rolls its transaction back when the
        // transaction is dropped; the connection stays usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the row number and known log end of run `id` if they were
    /// written under the lease `epoch`; the caller holds `conn` and fences
    /// that lease. Taken, not read: a commit that fails leaves none, and
    /// the next one reads the file.
    fn known_tail(&self, id: &str, epoch: u64) -> Option<(i64, LogEnd)> {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        tails
            .remove(id)
            .filter(|known| known.epoch == epoch)
            .map(|known| (known.rid, known.end))
    }

    /// Keeps where run `id`'s log ends after a commit.
    fn remember_tail(&self, id: &str, known: KnownTail) {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        if tails.len() >= KNOWN_TAILS {
            tails.clear();
        }
        tails.insert(id.to_owned(), known);
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Fold the write-ahead log into the database file and truncate it,
        // so a closed store is one compact file. Another connection still
        // reading keeps the log; failing here loses nothing.
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
}

/// A write transaction (`BEGIN IMMEDIATE`) begun and ended through cached
/// statements: rusqlite's `Transaction` parses the text of `BEGIN` and
/// `COMMIT` on every use, a few microseconds per commit. Dropped without
/// [`Immediate::commit`], it rolls back.
struct Immediate<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Immediate<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        // Only a transaction still open is rolled back: a failed `COMMIT`
        // (busy) leaves it open, one that went through leaves nothing.
        if self.open && !self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend("encoding a record", e, false))
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("{what}: {e}")))
}

fn not_found(id: &RunId) -> StoreError {
    StoreError::NotFound { id: id.to_string() }
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

const RUN_COLUMNS: &str = "id, objective, inputs, settings, status, approval, budget, spent, \
     ending, lease_owner, lease_epoch, lease_expires_at, created_at, updated_at, rid";

/// The raw columns of a run row, parsed outside the row callback so a
/// damaged row becomes `Corrupt` rather than a SQLite error.
struct RunRow {
    texts: [String; 9],
    owner: Option<String>,
    epoch: i64,
    expires: i64,
    created: i64,
    updated: i64,
    rid: i64,
}

fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        texts: [
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
        ],
        owner: row.get(9)?,
        epoch: row.get(10)?,
        expires: row.get(11)?,
        created: row.get(12)?,
        updated: row.get(13)?,
        rid: row.get(14)?,
    })
}

/// The run's record: its row, with the spending and time of its last
/// commit (the log's last row) when it has one.
fn run_record(conn: &Connection, row: RunRow) -> Result<RunRecord, StoreError> {
    let rid = row.rid;
    let mut record = run_row_record(row)?;
    let end = read_tail(conn, rid)?;
    if let Some(at) = end.at {
        record.updated_at_ms = at;
        if let Some(spent) = end.spent {
            record.spent = spent;
        }
    }
    Ok(record)
}

fn run_row_record(row: RunRow) -> Result<RunRecord, StoreError> {
    let [
        id,
        objective,
        inputs,
        settings,
        status,
        approval,
        budget,
        spent,
        ending,
    ] = row.texts;
    let id = RunId::parse(&id).map_err(|e| StoreError::corrupt(format!("run id: {e}")))?;
    let status = RunStatus::parse(&status)
        .ok_or_else(|| StoreError::corrupt(format!("run {id}: unknown status {status:?}")))?;
    let lease = row.owner.map(|owner| Lease {
        run_id: id.clone(),
        owner,
        epoch: unsigned(row.epoch),
        expires_at_ms: unsigned(row.expires),
    });
    let mut record = RunRecord::new(id, objective);
    record.inputs = parse("run inputs", &inputs)?;
    record.settings = parse("run settings", &settings)?;
    record.status = status;
    record.approval = parse("run approval policy", &approval)?;
    record.budget = parse("run budget", &budget)?;
    record.spent = parse("run spending", &spent)?;
    record.ending = parse("run ending", &ending)?;
    record.lease = lease;
    record.created_at_ms = unsigned(row.created);
    record.updated_at_ms = unsigned(row.updated);
    Ok(record)
}

/// The run's row number (`rid`); fails unless the run exists.
fn rid(conn: &Connection, id: &RunId) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT rid FROM runs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
        .map_err(|e| error("reading a run", e))?
        .ok_or_else(|| not_found(id))
}

/// What the last row of every commit holds (the `body` of a
/// [`kind::COMMIT`] row): the run's spending after the commit (`None`:
/// the run row's), when it was made, and the indexes of the run's
/// committed steps as sorted, disjoint, half-open ranges (a plan run in
/// order is one range).
#[derive(Serialize, Deserialize)]
struct CommitRow {
    #[serde(serialize_with = "spent_without_zeros")]
    spent: Option<Spent>,
    at: u64,
    #[serde(default)]
    steps: Vec<(u64, u64)>,
}

/// [`Spent`] as a commit row writes it: its fields less the zero ones
/// (three commit rows per effect-tool step would otherwise be a fifth of
/// its bytes). Every field of [`Spent`] reads back as zero when missing;
/// a test checks this lists them all.
#[derive(Serialize)]
struct SpentRow<'a> {
    #[serde(skip_serializing_if = "no_tokens")]
    usage: &'a TokenUsage,
    #[serde(skip_serializing_if = "no_tokens")]
    wasted: &'a TokenUsage,
    #[serde(skip_serializing_if = "zero")]
    model_calls: u64,
    #[serde(skip_serializing_if = "zero")]
    tool_calls: u64,
    #[serde(skip_serializing_if = "zero")]
    replayed_calls: u64,
    #[serde(skip_serializing_if = "zero")]
    wall_ms: u64,
    #[serde(skip_serializing_if = "no_cost")]
    cost: f64,
    #[serde(skip_serializing_if = "zero")]
    sessions: u64,
}

impl<'a> From<&'a Spent> for SpentRow<'a> {
    fn from(spent: &'a Spent) -> Self {
        Self {
            usage: &spent.usage,
            wasted: &spent.wasted,
            model_calls: spent.model_calls,
            tool_calls: spent.tool_calls,
            replayed_calls: spent.replayed_calls,
            wall_ms: spent.wall_ms,
            cost: spent.cost,
            sessions: u64::from(spent.sessions),
        }
    }
}

// serde's skip_serializing_if passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn no_cost(cost: &f64) -> bool {
    *cost == 0.0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn no_tokens(usage: &&TokenUsage) -> bool {
    **usage == TokenUsage::default()
}

fn spent_without_zeros<S: serde::Serializer>(
    spent: &Option<Spent>,
    to: S,
) -> Result<S::Ok, S::Error> {
    spent.as_ref().map(SpentRow::from).serialize(to)
}

/// Sorts half-open ranges and merges those that touch or overlap (an
/// upgraded store lists one range per step).
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Adds `index` (below `u64::MAX`) to sorted, disjoint, non-touching,
/// half-open `ranges`; false when it is in them already.
fn add_step(ranges: &mut Vec<(u64, u64)>, index: u64) -> bool {
    // The first range that ends at or after `index`.
    let at = ranges.partition_point(|&(_, end)| end < index);
    if let Some(&(start, end)) = ranges.get(at)
        && start <= index
        && index < end
    {
        return false;
    }
    let joins_left = ranges.get(at).is_some_and(|&(_, end)| end == index);
    let right = if joins_left { at + 1 } else { at };
    let joins_right = ranges
        .get(right)
        .is_some_and(|&(start, _)| start == index + 1);
    match (joins_left, joins_right) {
        (true, true) => {
            ranges[at].1 = ranges[right].1;
            ranges.remove(right);
        }
        (true, false) => ranges[at].1 = index + 1,
        (false, true) => ranges[right].0 = index,
        (false, false) => ranges.insert(at, (index, index + 1)),
    }
    true
}

/// One row to append to a run's log.
enum LogRow<'a> {
    Step(&'a StepRecord),
    /// A truncation of a journal scope from a sequence number on.
    Truncate(&'a CallScope, u32),
    Journal(&'a JournalEntry),
    /// An event and its number.
    Event(u64, &'a Event),
    /// The commit row and the number of the commit's last event.
    Commit(u64, &'a CommitRow),
}

impl LogRow<'_> {
    /// Its kind, journal scope and sequence number, with its body
    /// written into `body` (JSON; empty for a truncation).
    fn encode(&self, body: &mut Vec<u8>) -> Result<(i64, Option<String>, u64), StoreError> {
        fn write<T: Serialize + ?Sized>(body: &mut Vec<u8>, value: &T) -> Result<(), StoreError> {
            serde_json::to_writer(body, value)
                .map_err(|e| StoreError::backend("encoding a record", e, false))
        }
        body.clear();
        Ok(match self {
            Self::Step(step) => {
                write(body, step)?;
                (
                    kind::STEP,
                    None,
                    u64::try_from(step.index).unwrap_or(u64::MAX),
                )
            }
            Self::Truncate(scope, from) => (kind::TRUNCATE, Some(scope.key()), u64::from(*from)),
            Self::Journal(entry) => {
                write(body, entry)?;
                (kind::JOURNAL, Some(entry.scope.key()), u64::from(entry.seq))
            }
            Self::Event(seq, event) => {
                write(body, event)?;
                (kind::EVENT, None, *seq)
            }
            Self::Commit(seq, row) => {
                write(body, row)?;
                (kind::COMMIT, None, *seq)
            }
        })
    }
}

/// Appends `rows` to the run's log from row number `next` on, encoding
/// each into one reused buffer.
fn append(
    conn: &Connection,
    rid: i64,
    mut next: u64,
    rows: &[LogRow<'_>],
) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached("INSERT INTO log (key, kind, scope, seq, body) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(|e| error("committing", e))?;
    let mut body = Vec::with_capacity(1024);
    for row in rows {
        let key = key(rid, next, "log row")?;
        next += 1;
        let (kind, scope, seq) = row.encode(&mut body)?;
        // serde_json writes UTF-8 only.
        let text = std::str::from_utf8(&body)
            .map_err(|e| StoreError::backend("encoding a record", e, false))?;
        insert
            .execute(params![key, kind, scope, ms(seq), text])
            .map_err(|e| error("committing", e))?;
    }
    Ok(())
}

/// Where the run's log ends, read from the file: one step down the right
/// edge of its key range, and its last commit row.
fn read_tail(conn: &Connection, rid: i64) -> Result<LogEnd, StoreError> {
    let (low, high) = key_range(rid)?;
    let last: Option<(i64, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT key, kind, seq, body FROM log WHERE key BETWEEN ?1 AND ?2 \
             ORDER BY key DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([low, high], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(|e| error("reading a run's log", e))?;
    match last {
        None => Ok(LogEnd {
            next: 1,
            ..LogEnd::default()
        }),
        Some((key, kind::COMMIT, seq, body)) => {
            let row: CommitRow = parse("a commit record", &body)?;
            Ok(LogEnd {
                next: key_low(key) + 1,
                event_seq: unsigned(seq),
                at: Some(row.at),
                spent: row.spent,
                steps: merge_ranges(row.steps),
            })
        }
        Some(_) => Err(StoreError::corrupt(format!(
            "run row {rid}: its log does not end with a commit record"
        ))),
    }
}

/// The row key of a run's `n`th step or log row: the run's `rid` above
/// [`KEY_BITS`] bits of `n`.
fn key(rid: i64, n: u64, what: &str) -> Result<i64, StoreError> {
    let low = (1_u64 << KEY_BITS) - 1;
    if n > low {
        return Err(StoreError::backend(
            format!("{what} number {n} is beyond the store's limit of {low}"),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
            false,
        ));
    }
    rid.checked_shl(KEY_BITS)
        .filter(|high| *high >> KEY_BITS == rid && rid >= 0)
        .map(|high| high | i64::try_from(n).unwrap_or_default())
        .ok_or_else(|| StoreError::corrupt(format!("run row number {rid} is out of range")))
}

/// The smallest and largest row keys of a run's steps or log rows.
fn key_range(rid: i64) -> Result<(i64, i64), StoreError> {
    Ok((
        key(rid, 0, "a row")?,
        key(rid, (1_u64 << KEY_BITS) - 1, "a row")?,
    ))
}

/// The step index or log row number of a row key.
fn key_low(key: i64) -> u64 {
    unsigned(key) & ((1_u64 << KEY_BITS) - 1)
}

/// Reads the `record` column of every row a query returns.
fn records<T: DeserializeOwned>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let texts: Vec<String> = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params, |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| error(&format!("reading {what}"), e))?;
    texts.iter().map(|text| parse(what, text)).collect()
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError> {
        let texts = [
            json(&run.inputs)?,
            json(&run.settings)?,
            json(&run.approval)?,
            json(&run.budget)?,
            json(&run.spent)?,
            json(&run.ending)?,
        ];
        let [inputs, settings, approval, budget, spent, ending] = texts;
        let conn = self.conn();
        let inserted = conn
            .prepare_cached(
                "INSERT INTO runs (id, objective, inputs, settings, status, approval, budget, \
                 spent, ending, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run.id.as_str(),
                    run.objective,
                    inputs,
                    settings,
                    run.status.as_str(),
                    approval,
                    budget,
                    spent,
                    ending,
                    ms(run.created_at_ms),
                    ms(run.updated_at_ms),
                ])
            })
            .map_err(|e| error("creating a run", e))?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                id: run.id.to_string(),
            });
        }
        Ok(())
    }

    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id.as_str()], run_row).optional())
            .map_err(|e| error("reading a run", e))?
            .ok_or_else(|| not_found(id))?;
        run_record(&conn, row)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let limit = filter
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let status = filter.status.map(RunStatus::as_str);
        let rows: Vec<RunRow> = conn
            .prepare_cached(&format!(
                "SELECT * FROM (SELECT {RUN_COLUMNS} FROM runs \
                 WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2) \
                 ORDER BY created_at, id"
            ))
            .and_then(|mut s| {
                s.query_map(params![status, limit], run_row)?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| error("listing runs", e))?;
        rows.into_iter().map(|row| run_record(&conn, row)).collect()
    }

    async fn plans(&self, id: &RunId) -> Result<Vec<PlanRevision>, StoreError> {
        let conn = self.conn();
        let rid = rid(&conn, id)?;
        records(
            &conn,
            "plan revisions",
            "SELECT record FROM plans WHERE run = ?1 ORDER BY revision",
            [rid],
        )
    }

    async fn steps(&self, id: &RunId) -> Result<Vec<StepRecord>, StoreError> {
        let conn = self.conn();
        let (low, high) = key_range(rid(&conn, id)?)?;
        records(
            &conn,
            "steps",
            "SELECT body FROM log WHERE key BETWEEN ?1 AND ?2 AND kind = ?3 ORDER BY seq",
            [low, high, kind::STEP],
        )
    }

    async fn journal(
        &self,
        id: &RunId,
        scope: &CallScope,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let conn = self.conn();
        let (low, high) = key_range(rid(&conn, id)?)?;
        let fail = |e| error("reading journal entries", e);
        let last: i64 = conn
            .prepare_cached(
                "SELECT key FROM log WHERE key BETWEEN ?1 AND ?2 ORDER BY key DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([low, high], |r| r.get(0)).optional())
            .map_err(fail)?
            .unwrap_or(0);
        let keys = {
            let mut indexes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
            if indexes.len() >= SCOPE_INDEXES && !indexes.contains_key(id.as_str()) {
                indexes.clear();
            }
            let index = indexes.entry(id.as_str().to_owned()).or_default();
            if last > index.seen {
                // The journal rows appended since the last lookup.
                let added: Vec<(i64, String)> = conn
                    .prepare_cached(
                        "SELECT key, scope FROM log \
                         WHERE key > ?1 AND key <= ?2 AND kind IN (?3, ?4) ORDER BY key",
                    )
                    .and_then(|mut s| {
                        s.query_map(
                            params![index.seen.max(low), last, kind::JOURNAL, kind::TRUNCATE],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?
                        .collect::<rusqlite::Result<_>>()
                    })
                    .map_err(fail)?;
                for (key, scope) in added {
                    index.keys.entry(scope).or_default().push(key);
                }
                index.seen = last;
            }
            index.keys.get(&scope.key()).cloned().unwrap_or_default()
        };
        // The scope's rows in commit order: a later entry of a seq
        // replaces an earlier one, a truncation drops what it covers.
        let mut rows: Vec<(i64, u32, String)> = Vec::with_capacity(keys.len());
        for key in keys {
            rows.push(
                conn.prepare_cached("SELECT kind, seq, body FROM log WHERE key = ?1")
                    .and_then(|mut s| s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
                    .map_err(fail)?,
            );
        }
        let mut entries = BTreeMap::new();
        for (kind, seq, body) in rows {
            if kind == kind::TRUNCATE {
                entries.split_off(&seq);
            } else {
                entries.insert(seq, body);
            }
        }
        entries
            .values()
            .map(|text| parse("journal entries", text))
            .collect()
    }

    async fn journal_all(&self, id: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        let conn = self.conn();
        let (low, high) = key_range(rid(&conn, id)?)?;
        let rows: Vec<(i64, String, u32, String)> = conn
            .prepare_cached(
                "SELECT kind, scope, seq, body FROM log \
                 WHERE key BETWEEN ?1 AND ?2 AND kind IN (?3, ?4) ORDER BY key",
            )
            .and_then(|mut s| {
                s.query_map(params![low, high, kind::JOURNAL, kind::TRUNCATE], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| error("reading journal entries", e))?;
        // By scope key then seq, as version 2's index ordered them.
        let mut entries: BTreeMap<(String, u32), String> = BTreeMap::new();
        for (kind, scope, seq, body) in rows {
            if kind == kind::TRUNCATE {
                let dropped: Vec<_> = entries
                    .range((scope.clone(), seq)..=(scope, u32::MAX))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in dropped {
                    entries.remove(&key);
                }
            } else {
                entries.insert((scope, seq), body);
            }
        }
        entries
            .values()
            .map(|text| parse("journal entries", text))
            .collect()
    }

    async fn events(&self, id: &RunId, after: Option<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let rid = rid(&conn, id)?;
        let (low, high) = key_range(rid)?;
        let after = after.unwrap_or(0).min(key_low(high));
        // Event `n` is at least the run's `n`th log row, so the rows up to
        // number `after` hold no later event.
        let from = low | i64::try_from(after).unwrap_or_default();
        let rows: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT seq, body FROM log \
                 WHERE key > ?1 AND key <= ?2 AND kind = ?3 AND seq > ?4 ORDER BY key",
            )
            .and_then(|mut s| {
                s.query_map(params![from, high, kind::EVENT, ms(after)], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| error("reading events", e))?;
        rows.into_iter()
            .map(|(seq, text)| {
                Ok(StoredEvent {
                    seq: unsigned(seq),
                    event: parse("an event", &text)?,
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
        let conn = self.conn();
        let tx = Immediate::begin(&conn).map_err(|e| error("taking a lease", e))?;
        let (holder, epoch, expires): (Option<String>, i64, i64) = tx
            .prepare_cached(
                "SELECT lease_owner, lease_epoch, lease_expires_at FROM runs WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| error("taking a lease", e))?
            .ok_or_else(|| not_found(id))?;
        let now = now_ms();
        if let Some(holder) = holder {
            let expired = unsigned(expires) <= now;
            let taken_over = matches!(takeover, Takeover::IfEpoch(e) if ms(e) == epoch);
            if !expired && !taken_over {
                return Err(StoreError::Busy {
                    id: id.to_string(),
                    owner: holder,
                    remaining_ms: unsigned(expires).saturating_sub(now),
                });
            }
        }
        let lease = Lease {
            run_id: id.clone(),
            owner: owner.to_owned(),
            epoch: unsigned(epoch) + 1,
            expires_at_ms: now.saturating_add(ttl_ms(ttl)),
        };
        tx.prepare_cached(
            "UPDATE runs SET lease_owner = ?2, lease_epoch = ?3, lease_expires_at = ?4 \
             WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id.as_str(),
                owner,
                ms(lease.epoch),
                ms(lease.expires_at_ms)
            ])
        })
        .map_err(|e| error("taking a lease", e))?;
        tx.commit().map_err(|e| error("taking a lease", e))?;
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        let conn = self.conn();
        let renewed = Lease {
            expires_at_ms: now_ms().saturating_add(ttl_ms(ttl)),
            ..lease.clone()
        };
        let changed = conn
            .prepare_cached(
                "UPDATE runs SET lease_expires_at = ?4 \
                 WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![
                    lease.run_id.as_str(),
                    lease.owner,
                    ms(lease.epoch),
                    ms(renewed.expires_at_ms)
                ])
            })
            .map_err(|e| error("renewing a lease", e))?;
        if changed == 0 {
            rid(&conn, &lease.run_id)?;
            return Err(lost(lease));
        }
        Ok(renewed)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let conn = self.conn();
        let changed = conn
            .prepare_cached(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = 0 \
                 WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![lease.run_id.as_str(), lease.owner, ms(lease.epoch)])
            })
            .map_err(|e| error("releasing a lease", e))?;
        if changed == 0 {
            rid(&conn, &lease.run_id)?;
            return Err(lost(lease));
        }
        Ok(())
    }

    async fn commit(&self, lease: &Lease, commit: Commit) -> Result<u64, StoreError> {
        let conn = self.conn();
        let tx = Immediate::begin(&conn).map_err(|e| error("committing", e))?;
        let id = lease.run_id.as_str();
        // The fence: the lease must still be the run's. A run this store
        // committed to under the same lease is found by its row number, one
        // lookup instead of two (through the index on `id`, then the row).
        let known = self.known_tail(id, lease.epoch);
        let mut fenced: Option<i64> = None;
        if let Some((rid, _)) = &known {
            fenced = tx
                .prepare_cached(
                    "SELECT rid FROM runs \
                     WHERE rid = ?1 AND id = ?2 AND lease_owner = ?3 AND lease_epoch = ?4",
                )
                .and_then(|mut s| {
                    s.query_row(params![rid, id, lease.owner, ms(lease.epoch)], |r| r.get(0))
                        .optional()
                })
                .map_err(|e| error("committing", e))?;
        }
        if fenced.is_none() {
            fenced = tx
                .prepare_cached(
                    "SELECT rid FROM runs WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![id, lease.owner, ms(lease.epoch)], |r| r.get(0))
                        .optional()
                })
                .map_err(|e| error("committing", e))?;
        }
        let Some(rid) = fenced else {
            self::rid(&tx, &lease.run_id)?;
            return Err(lost(lease));
        };
        let known = known.filter(|(at, _)| *at == rid).map(|(_, end)| end);
        let conflict = |reason: String| StoreError::Conflict {
            id: id.to_owned(),
            reason,
        };
        // Any error below drops `tx`, which rolls everything back.
        if let Some(plan) = &commit.plan {
            let next: i64 = tx
                .prepare_cached("SELECT count(*) FROM plans WHERE run = ?1")
                .and_then(|mut s| s.query_row([rid], |r| r.get(0)))
                .map_err(|e| error("committing a plan", e))?;
            if i64::from(plan.revision) != next {
                return Err(conflict(format!(
                    "plan revision {} written, the next is {next}",
                    plan.revision
                )));
            }
            let text = json(plan)?;
            tx.prepare_cached("INSERT INTO plans (run, revision, record) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![rid, plan.revision, text]))
                .map_err(|e| error("committing a plan", e))?;
        }
        if let Some(revision) = commit.approve {
            let text: Option<String> = tx
                .prepare_cached("SELECT record FROM plans WHERE run = ?1 AND revision = ?2")
                .and_then(|mut s| s.query_row(params![rid, revision], |r| r.get(0)).optional())
                .map_err(|e| error("approving a plan", e))?;
            let Some(text) = text else {
                return Err(conflict(format!("no plan revision {revision}")));
            };
            let mut plan: PlanRevision = parse("a plan revision", &text)?;
            plan.approved = true;
            let text = json(&plan)?;
            tx.prepare_cached("UPDATE plans SET record = ?3 WHERE run = ?1 AND revision = ?2")
                .and_then(|mut s| s.execute(params![rid, revision, text]))
                .map_err(|e| error("approving a plan", e))?;
        }
        // Everything else is appended to the run's log, in this order:
        // steps, truncations before the entries written after them, then
        // events, then the commit row.
        let known = match known {
            Some(known) => known,
            None => read_tail(&tx, rid)?,
        };
        let mut event_seq = known.event_seq;
        let mut steps = known.steps;
        let spent = commit.spent.clone().or(known.spent);
        for step in &commit.steps {
            let index = u64::try_from(step.index).unwrap_or(u64::MAX);
            key(rid, index, "step")?;
            if !add_step(&mut steps, index) {
                return Err(conflict(format!(
                    "step {} is committed already",
                    step.index
                )));
            }
        }
        let mut rows = Vec::with_capacity(
            commit.steps.len()
                + commit.truncate.len()
                + commit.journal.len()
                + commit.events.len()
                + 1,
        );
        rows.extend(commit.steps.iter().map(LogRow::Step));
        rows.extend(
            commit
                .truncate
                .iter()
                .map(|(scope, from)| LogRow::Truncate(scope, *from)),
        );
        rows.extend(commit.journal.iter().map(LogRow::Journal));
        for event in &commit.events {
            event_seq += 1;
            rows.push(LogRow::Event(event_seq, event));
        }
        let last = CommitRow {
            spent,
            at: now_ms(),
            steps,
        };
        rows.push(LogRow::Commit(event_seq, &last));
        append(&tx, rid, known.next, &rows)?;
        if let Some(status) = commit.status {
            // Its own statement: the status index is written only when the
            // status is.
            tx.prepare_cached("UPDATE runs SET status = ?2 WHERE rid = ?1 AND status <> ?2")
                .and_then(|mut s| s.execute(params![rid, status.as_str()]))
                .map_err(|e| error("updating the run's status", e))?;
        }
        let ending = commit.ending.as_ref().map(json).transpose()?;
        let settings = commit.settings.as_ref().map(json).transpose()?;
        let budget = commit.budget.as_ref().map(json).transpose()?;
        if ending.is_some() || settings.is_some() || budget.is_some() {
            tx.prepare_cached(
                "UPDATE runs SET ending = coalesce(?2, ending), settings = coalesce(?3, settings), \
                 budget = coalesce(?4, budget) WHERE rid = ?1",
            )
            .and_then(|mut s| s.execute(params![rid, ending, settings, budget]))
            .map_err(|e| error("updating the run", e))?;
        }
        tx.commit().map_err(|e| error("committing", e))?;
        self.remember_tail(
            id,
            KnownTail {
                rid,
                epoch: lease.epoch,
                end: LogEnd {
                    next: known.next + rows.len() as u64,
                    event_seq,
                    at: Some(last.at),
                    spent: last.spent,
                    steps: last.steps,
                },
            },
        );
        Ok(event_seq)
    }
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        id: lease.run_id.to_string(),
        epoch: lease.epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_rows_keep_every_field_of_spent() {
        // Every field of `Spent` set to a distinct non-zero value, found
        // through its serde form so a field added later is covered.
        let mut n = 0.0;
        let mut fields = serde_json::to_value(Spent::default()).unwrap();
        fn fill(value: &mut serde_json::Value, n: &mut f64) {
            match value {
                serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| fill(v, n)),
                other => {
                    *n += 1.0;
                    *other = if other.is_f64() {
                        serde_json::json!(*n + 0.5)
                    } else {
                        serde_json::json!(*n as u64)
                    };
                }
            }
        }
        fill(&mut fields, &mut n);
        let spent: Spent = serde_json::from_value(fields).unwrap();
        let row = CommitRow {
            spent: Some(spent.clone()),
            at: 7,
            steps: vec![(0, 3)],
        };
        let back: CommitRow = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(back.spent, Some(spent));
        // Zero counts are left out and read back as zero.
        let row = CommitRow {
            spent: Some(Spent::default()),
            at: 7,
            steps: Vec::new(),
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"spent":{},"at":7,"steps":[]}"#);
        let back: CommitRow = serde_json::from_str(&text).unwrap();
        assert_eq!(back.spent, Some(Spent::default()));
        let none = CommitRow {
            spent: None,
            at: 7,
            steps: Vec::new(),
        };
        let back: CommitRow = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(back.spent, None);
    }

    #[test]
    fn step_ranges_merge_and_refuse_repeats() {
        let mut ranges = Vec::new();
        for index in [0, 1, 2, 5, 7, 6, 3] {
            assert!(add_step(&mut ranges, index), "{index}");
        }
        assert_eq!(ranges, [(0, 4), (5, 8)]);
        for index in [0, 3, 5, 7] {
            assert!(!add_step(&mut ranges, index), "{index}");
        }
        assert!(add_step(&mut ranges, 4));
        assert_eq!(ranges, [(0, 8)]);
        assert!(add_step(&mut ranges, 10));
        assert_eq!(ranges, [(0, 8), (10, 11)]);
        let merged = merge_ranges(vec![(3, 4), (0, 1), (1, 2), (2, 3), (9, 10)]);
        assert_eq!(merged, [(0, 4), (9, 10)]);
        let mut merged = merged;
        assert!(!add_step(&mut merged, 1));
    }
}
