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
