//! pae-sqlite against the shared run-store suite, and what only a file can
//! do wrong: foreign, damaged and other-version databases, and concurrent
//! processes' connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pae_conformance::store::StoreSuite;
use pae_core::store::{RunRecord, RunStore, Takeover};
use pae_core::{MemoryStore, RunId, StoreError};
use pae_sqlite::SqliteStore;

#[tokio::test]
async fn the_sqlite_store_passes_the_shared_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.db")).unwrap();
    let report = StoreSuite::new().run(&store).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn the_memory_store_passes_the_shared_suite() {
    let report = StoreSuite::new().run(&MemoryStore::new()).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn runs_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/runs.db");
    let id = RunId::generate();
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create(&RunRecord::new(id.clone(), "kept"))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.run(&id).await.unwrap().objective, "kept");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('hi');")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { reason } if reason.contains("another program")),
        "{err:?}"
    );
}

#[test]
fn a_damaged_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    drop(SqliteStore::open(&path).unwrap());
    // Keep SQLite's header, overwrite the rest of the first pages.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(100).take(8000) {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    for wal in ["runs.db-wal", "runs.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(wal));
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn two_connections_to_one_file_share_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let id = RunId::generate();
    a.create(&RunRecord::new(id.clone(), "shared"))
        .await
        .unwrap();
    let ttl = std::time::Duration::from_secs(30);
    a.acquire(&id, "a", ttl, Takeover::IfExpired).await.unwrap();
    let busy = b.acquire(&id, "b", ttl, Takeover::IfExpired).await;
    assert!(matches!(busy, Err(StoreError::Busy { .. })), "{busy:?}");
}

/// Version 1's tables, verbatim: what files written by pae 0.x before the
/// rowid-keyed layout hold.
const V1_TABLES: &str = "
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

/// Version 2's steps, journal and events tables, verbatim (its runs and
/// plans tables are version 3's): what files written by pae 0.x before the
/// append-only log hold.
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

/// Rewrites a current store file in version 2's layout (the same records):
/// the steps, the latest journal entry of each scope and seq, the events, and the
/// spending, last event number and time of each run's last commit back in
/// its run row. (The fixture truncates no journal.)
fn rewrite_as_version_2(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         {V2_TABLES}
         INSERT INTO journal (run, scope, seq, entry)
             SELECT l.key >> 32, l.scope, l.seq, l.body FROM log l
             WHERE l.kind = 1 AND l.key = (SELECT max(m.key) FROM log m
                 WHERE m.kind = 1 AND m.key >> 32 = l.key >> 32
                 AND m.scope = l.scope AND m.seq = l.seq)
             ORDER BY l.key >> 32, l.scope, l.seq;
         INSERT INTO steps (key, record)
             SELECT ((key >> 32) << 32) | seq, body FROM log WHERE kind = 4 ORDER BY 1;
         INSERT INTO events (key, event)
             SELECT ((key >> 32) << 32) | seq, body FROM log WHERE kind = 2 ORDER BY 1;
         UPDATE runs SET
             event_seq = coalesce((SELECT seq FROM log WHERE kind = 0 AND key >> 32 = runs.rid
                                   ORDER BY key DESC LIMIT 1), event_seq),
             spent = coalesce((SELECT json_extract(body, '$.spent') FROM log
                               WHERE kind = 0 AND key >> 32 = runs.rid
                               ORDER BY key DESC LIMIT 1), spent),
             updated_at = coalesce((SELECT json_extract(body, '$.at') FROM log
                                    WHERE kind = 0 AND key >> 32 = runs.rid
                                    ORDER BY key DESC LIMIT 1), updated_at);
         DROP TABLE log;
         UPDATE pae_meta SET value = '2' WHERE key = 'schema_version';
         COMMIT;"
    ))
    .unwrap();
}

/// Rewrites a version 2 store file in version 1's layout (the same rows).
fn rewrite_as_version_1(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         ALTER TABLE runs RENAME TO runs_v2;
         ALTER TABLE plans RENAME TO plans_v2;
         ALTER TABLE steps RENAME TO steps_v2;
         ALTER TABLE journal RENAME TO journal_v2;
         ALTER TABLE events RENAME TO events_v2;
         DROP INDEX runs_by_creation;
         DROP INDEX runs_by_status;
         {V1_TABLES}
         INSERT INTO runs SELECT id, objective, inputs, settings, status, approval, budget,
             spent, ending, lease_owner, lease_epoch, lease_expires_at, event_seq,
             created_at, updated_at FROM runs_v2 ORDER BY rid;
         INSERT INTO plans SELECT r.id, p.revision, p.record
             FROM plans_v2 p JOIN runs_v2 r ON r.rid = p.run;
         INSERT INTO steps SELECT r.id, s.key & 4294967295, s.record
             FROM steps_v2 s JOIN runs_v2 r ON r.rid = s.key >> 32;
         INSERT INTO journal SELECT r.id, j.scope, j.seq, j.entry
             FROM journal_v2 j JOIN runs_v2 r ON r.rid = j.run;
         INSERT INTO events SELECT r.id, e.key & 4294967295, e.event
             FROM events_v2 e JOIN runs_v2 r ON r.rid = e.key >> 32;
         DROP TABLE events_v2; DROP TABLE journal_v2; DROP TABLE steps_v2;
         DROP TABLE plans_v2; DROP TABLE runs_v2;
         UPDATE pae_meta SET value = '1' WHERE key = 'schema_version';
         COMMIT;"
    ))
    .unwrap();
}

/// Everything the store holds about `id`, as JSON, for comparing.
async fn snapshot(store: &SqliteStore, id: &RunId) -> serde_json::Value {
    let mut run = store.run(id).await.unwrap();
    run.lease = None;
    serde_json::json!({
        "run": serde_json::to_value(&run).unwrap(),
        "plans": serde_json::to_value(store.plans(id).await.unwrap()).unwrap(),
        "steps": serde_json::to_value(store.steps(id).await.unwrap()).unwrap(),
        "journal": serde_json::to_value(store.journal_all(id).await.unwrap()).unwrap(),
        "events": serde_json::to_value(store.events(id, None).await.unwrap()).unwrap(),
        "events_after_2": serde_json::to_value(store.events(id, Some(2)).await.unwrap()).unwrap(),
    })
}

/// Two runs of three steps (each with a journaled tool call, one of them
/// written as started before it is written as done) in a current store
/// at `path`, and a snapshot of each.
async fn fill(path: &std::path::Path) -> (Vec<RunId>, Vec<serde_json::Value>) {
    use pae_core::store::{
        CallKind, CallScope, CallState, Commit, JournalEntry, PlanRevision, PlanSource, StepRecord,
    };
    use pae_core::{Event, EventKind, Plan, StepResponse, TokenUsage};

    let event = |kind| Event {
        at: std::time::Duration::from_millis(5),
        kind,
    };

    let ids = vec![RunId::generate(), RunId::generate()];
    let mut before = Vec::new();
    {
        let store = SqliteStore::open(path).unwrap();
        for (n, id) in ids.iter().enumerate() {
            store
                .create(&RunRecord::new(id.clone(), format!("objective {n}")))
                .await
                .unwrap();
            let ttl = std::time::Duration::from_secs(30);
            let lease = store
                .acquire(id, "writer", ttl, Takeover::IfExpired)
                .await
                .unwrap();
            let plan = Plan::new(["first", "second", "third"]);
            let mut commit = Commit::new();
            commit.plan = Some(PlanRevision {
                revision: 0,
                plan: plan.clone(),
                source: PlanSource::Planner,
                approved: false,
                created_at_ms: 1,
            });
            commit.events = vec![event(EventKind::PlanCreated { plan: plan.clone() })];
            store.commit(&lease, commit).await.unwrap();
            for index in 0..3 {
                let scope = CallScope::Step { revision: 0, index };
                // A call with side effects: on record as started, then done.
                let effect = |state, result| JournalEntry {
                    scope: scope.clone(),
                    seq: 1,
                    kind: CallKind::Tool,
                    name: "send".into(),
                    request_hash: format!("send{index}"),
                    idempotency_key: Some(format!("{id}/0/{index}/1")),
                    state,
                    request: serde_json::json!({"to": index}),
                    result,
                    usage: TokenUsage::default(),
                    started_at_ms: 3,
                    finished_at_ms: None,
                };
                let mut commit = Commit::new();
                commit.journal = vec![effect(CallState::Started, serde_json::Value::Null)];
                store.commit(&lease, commit).await.unwrap();
                let mut commit = Commit::new();
                commit.journal = vec![effect(CallState::Done, serde_json::json!({"ok": "sent"}))];
                let mut spent = pae_core::store::Spent::default();
                spent.tool_calls = 10 * (index as u64 + 1);
                commit.spent = Some(spent);
                store.commit(&lease, commit).await.unwrap();
                let mut commit = Commit::new();
                commit.journal = vec![JournalEntry {
                    scope: scope.clone(),
                    seq: 0,
                    kind: CallKind::Tool,
                    name: "lookup".into(),
                    request_hash: format!("hash{index}"),
                    idempotency_key: Some(format!("{id}/0/{index}/0")),
                    state: CallState::Done,
                    request: serde_json::json!({"key": index}),
                    result: serde_json::json!({"ok": format!("value {index}")}),
                    usage: TokenUsage::default(),
                    started_at_ms: 1,
                    finished_at_ms: Some(2),
                }];
                commit.steps = vec![StepRecord {
                    index,
                    revision: 0,
                    step: plan.steps[index].clone(),
                    response: StepResponse::new(format!("done {index} of run {n}")),
                    attempt: 1,
                    started_at_ms: 1,
                    finished_at_ms: 2,
                }];
                commit.events = vec![
                    event(EventKind::StepStarted {
                        step_index: index,
                        step: plan.steps[index].clone(),
                    }),
                    event(EventKind::StepFinished {
                        step_index: index,
                        step: plan.steps[index].clone(),
                        response: StepResponse::new(format!("done {index}")),
                    }),
                ];
                store.commit(&lease, commit).await.unwrap();
            }
            store.release(&lease).await.unwrap();
            before.push(snapshot(&store, id).await);
        }
    }
    (ids, before)
}

/// Checks the upgraded store at `path` holds what `fill` wrote and keeps
/// working.
async fn check_upgraded(path: &std::path::Path, ids: &[RunId], before: &[serde_json::Value]) {
    let store = SqliteStore::open(path).unwrap();
    for (id, before) in ids.iter().zip(before) {
        assert_eq!(&snapshot(&store, id).await, before);
    }
    let version: String = rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT value FROM pae_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, pae_sqlite::SCHEMA_VERSION.to_string());
    // The upgraded store keeps working: a new run goes after the old ones.
    let id = RunId::generate();
    store
        .create(&RunRecord::new(id.clone(), "new"))
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list(&pae_core::store::RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.objective)
        .collect();
    assert_eq!(listed, ["objective 0", "objective 1", "new"]);
    // An old run goes on where it stopped: its events keep their numbers.
    let ttl = std::time::Duration::from_secs(30);
    let lease = store
        .acquire(&ids[0], "later", ttl, Takeover::IfExpired)
        .await
        .unwrap();
    let last = store.events(&ids[0], None).await.unwrap().len() as u64;
    let mut commit = pae_core::store::Commit::new();
    commit.events = vec![pae_core::Event {
        at: std::time::Duration::from_millis(9),
        kind: pae_core::EventKind::ApprovalRequested { revision: 0 },
    }];
    assert_eq!(store.commit(&lease, commit).await.unwrap(), last + 1);
    let events = store.events(&ids[0], Some(last)).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, last + 1);
    assert_eq!(store.run(&ids[0]).await.unwrap().spent.tool_calls, 30);
    // Its committed steps stay committed: step 1 again is a conflict.
    let mut steps = store.steps(&ids[0]).await.unwrap();
    assert_eq!(steps.len(), 3);
    let mut again = steps.swap_remove(1);
    let mut commit = pae_core::store::Commit::new();
    commit.steps = vec![again.clone()];
    let conflict = store.commit(&lease, commit).await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    again.index = 3;
    let mut commit = pae_core::store::Commit::new();
    commit.steps = vec![again];
    store.commit(&lease, commit).await.unwrap();
    assert_eq!(store.steps(&ids[0]).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_version_1_store_is_upgraded_in_place_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let (ids, before) = fill(&path).await;
    rewrite_as_version_2(&path);
    rewrite_as_version_1(&path);
    check_upgraded(&path, &ids, &before).await;
}

#[tokio::test]
async fn a_version_2_store_is_upgraded_in_place_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let (ids, before) = fill(&path).await;
    rewrite_as_version_2(&path);
    check_upgraded(&path, &ids, &before).await;
}

#[test]
fn a_store_of_a_newer_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE pae_meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaVersion {
                found: 99,
                expected: pae_sqlite::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn journal_lookups_see_what_was_committed_since_the_last_one() {
    use pae_core::store::{CallKind, CallScope, CallState, Commit, JournalEntry};
    let store = SqliteStore::in_memory().unwrap();
    let id = RunId::generate();
    store
        .create(&RunRecord::new(id.clone(), "journal"))
        .await
        .unwrap();
    let ttl = std::time::Duration::from_secs(30);
    let lease = store
        .acquire(&id, "me", ttl, Takeover::IfExpired)
        .await
        .unwrap();
    let entry = |index: usize, seq: u32, state: CallState| JournalEntry {
        scope: CallScope::Step { revision: 0, index },
        seq,
        kind: CallKind::Tool,
        name: "t".into(),
        request_hash: format!("{index}/{seq}"),
        idempotency_key: None,
        state,
        request: serde_json::Value::Null,
        result: serde_json::Value::Null,
        usage: pae_core::TokenUsage::default(),
        started_at_ms: 1,
        finished_at_ms: None,
    };
    let scope = |index| CallScope::Step { revision: 0, index };
    let states = |entries: Vec<JournalEntry>| -> Vec<(u32, CallState)> {
        entries.into_iter().map(|e| (e.seq, e.state)).collect()
    };
    let mut commit = Commit::new();
    commit.journal = vec![
        entry(0, 0, CallState::Done),
        entry(0, 1, CallState::Started),
    ];
    store.commit(&lease, commit).await.unwrap();
    assert_eq!(
        states(store.journal(&id, &scope(0)).await.unwrap()),
        [(0, CallState::Done), (1, CallState::Started)]
    );
    assert!(store.journal(&id, &scope(1)).await.unwrap().is_empty());
    // Rewritten, then truncated and written again, and another scope.
    let mut commit = Commit::new();
    commit.journal = vec![entry(0, 1, CallState::Done), entry(1, 0, CallState::Done)];
    store.commit(&lease, commit).await.unwrap();
    assert_eq!(
        states(store.journal(&id, &scope(0)).await.unwrap()),
        [(0, CallState::Done), (1, CallState::Done)]
    );
    let mut commit = Commit::new();
    commit.truncate = vec![(scope(0), 1)];
    commit.journal = vec![entry(0, 2, CallState::Started)];
    store.commit(&lease, commit).await.unwrap();
    assert_eq!(
        states(store.journal(&id, &scope(0)).await.unwrap()),
        [(0, CallState::Done), (2, CallState::Started)]
    );
    assert_eq!(
        states(store.journal(&id, &scope(1)).await.unwrap()),
        [(0, CallState::Done)]
    );
    // The whole journal agrees: seq 1 of step 0 is gone, seq 2 is there.
    assert_eq!(store.journal_all(&id).await.unwrap().len(), 3);
}
