//! pae-postgres against the shared run-store suite, and what only a server
//! can do wrong: unreachable or wrong URLs, databases of another schema
//! version or program, concurrent migrations, connections lost in the
//! middle of a commit (before and during `COMMIT`), two processes on one
//! run.
//!
//! The server comes from `PAE_TEST_POSTGRES_URL` (a superuser URL; `cargo
//! xtask test` starts a private cluster and sets it). Without it the tests
//! are skipped with a reason, and fail when `PAE_REQUIRE_SERVERS=1`. Each
//! test that needs a clean database creates its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pae_conformance::env::require_env;
use pae_conformance::store::StoreSuite;
use pae_core::store::{Commit, RunRecord, RunStatus, RunStore, StepRecord, Takeover};
use pae_core::{Event, EventKind, RunId, Step, StepResponse, StoreError};
use pae_postgres::sqlx::{self, Connection, PgConnection};
use pae_postgres::{Change, CommitHook, PgStore, PgStoreOptions, SCHEMA_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn server() -> Option<String> {
    require_env("PAE_TEST_POSTGRES_URL")
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// A new, empty database for one test; its URL.
async fn fresh_database(url: &str, name: &str) -> String {
    let database = format!("pae_test_{name}_{}", std::process::id());
    let mut admin = PgConnection::connect(url).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    with_database(url, &database)
}

fn step(index: usize, text: &str) -> StepRecord {
    StepRecord {
        index,
        revision: 0,
        step: Step::new(text),
        response: StepResponse::new(format!("{text} done")),
        attempt: 1,
        started_at_ms: 1,
        finished_at_ms: 2,
    }
}

fn event(kind: EventKind) -> Event {
    Event {
        at: Duration::from_millis(3),
        kind,
    }
}

fn resumed() -> Event {
    event(EventKind::RunResumed {
        session: 1,
        committed_steps: 0,
    })
}

#[tokio::test]
async fn the_postgres_store_passes_the_shared_suite() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "suite").await;
    let store = PgStore::connect(&url).await.unwrap();
    let report = StoreSuite::new().run(&store).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn records_round_trip_with_nul_characters_and_survive_reconnecting() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "nul").await;
    let id = RunId::generate();
    {
        let store = PgStore::connect(&url).await.unwrap();
        store
            .create(&RunRecord::new(id.clone(), "an objective\0with a NUL"))
            .await
            .unwrap();
        let lease = store
            .acquire(&id, "me", Duration::from_secs(30), Takeover::IfExpired)
            .await
            .unwrap();
        let mut commit = Commit::new();
        commit.steps.push(step(0, "a\0b"));
        store.commit(&lease, commit).await.unwrap();
    }
    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        store.run(&id).await.unwrap().objective,
        "an objective\0with a NUL"
    );
    assert_eq!(store.steps(&id).await.unwrap()[0].step.value, "a\0b");
}

#[tokio::test]
async fn a_database_of_another_schema_version_is_refused() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "version").await;
    drop(PgStore::connect(&url).await.unwrap());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE pae.schema_version SET version = 99")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = PgStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaVersion { found: 99, expected } if expected == SCHEMA_VERSION),
        "{err:?}"
    );
    // Nothing was changed by the refused open.
    let version: i64 = sqlx::query_scalar("SELECT version FROM pae.schema_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 99);
}

#[tokio::test]
async fn another_programs_pae_schema_is_refused() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "foreign").await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA pae; CREATE TABLE pae.runs (n int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = PgStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_servers_and_wrong_urls_are_typed_errors() {
    let Some(url) = server() else { return };
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = PgStore::connect_with(
        PgStoreOptions::new(format!("postgres://pae:secret@127.0.0.1:{port}/pae"))
            .with_connect_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Backend {
                transient: true,
                ..
            }
        ),
        "{err:?}"
    );
    let text = pae_core::error_chain(&err);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
    assert!(started.elapsed() < Duration::from_secs(10));

    for bad in ["mysql://x@127.0.0.1/db", "postgres://[::1", "runs.db"] {
        let err = PgStore::connect(bad).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    transient: false,
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
    let missing = with_database(&url, "pae_no_such_database");
    let err = PgStore::connect(&missing).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Backend {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(pae_core::error_chain(&err).contains("pae_no_such_database"));
}

#[tokio::test]
async fn many_processes_migrating_at_once_create_one_schema() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "migrate").await;
    let opens = (0..6).map(|_| PgStore::connect(&url));
    for store in futures::future::join_all(opens).await {
        store.unwrap();
    }
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM pae.migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(steps, 4);
    let invalid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pae' AND NOT i.indisvalid",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(invalid, 0);
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'pae' AND indexname IN ('runs_by_creation', 'runs_by_status', 'runs_to_wake')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(indexes, 3);
}

/// Kills its own connection inside the commit's transaction, once.
struct KillOnce {
    fired: AtomicBool,
    calls: AtomicUsize,
}

#[async_trait]
impl CommitHook for KillOnce {
    async fn on_commit(
        &self,
        tx: &mut PgConnection,
        _change: &Change<'_>,
    ) -> Result<(), sqlx::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.fired.swap(true, Ordering::SeqCst) {
            sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_commit_whose_connection_dies_before_commit_is_tried_again() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "killed").await;
    let hook = Arc::new(KillOnce {
        fired: AtomicBool::new(false),
        calls: AtomicUsize::new(0),
    });
    let store = PgStore::connect(&url)
        .await
        .unwrap()
        .with_hook(hook.clone());
    let id = RunId::generate();
    store
        .create(&RunRecord::new(id.clone(), "x"))
        .await
        .unwrap();
    let lease = store
        .acquire(&id, "me", Duration::from_secs(30), Takeover::IfExpired)
        .await
        .unwrap();
    let mut commit = Commit::new();
    commit.steps.push(step(0, "a"));
    commit.events.push(resumed());
    commit.status = Some(RunStatus::Running);
    let seq = store.commit(&lease, commit).await.unwrap();
    assert_eq!(seq, 1);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 2, "one retry");
    assert_eq!(store.events(&id, None).await.unwrap().len(), 1);
    assert_eq!(store.steps(&id).await.unwrap().len(), 1);
    assert_eq!(store.run(&id).await.unwrap().status, RunStatus::Running);
}

#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_applied_once() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "ambiguous").await;
    // A proxy that, when armed, passes `COMMIT` on to the server and then
    // cuts the connection before the answer comes back: the client cannot
    // know whether its transaction committed.
    let proxy = Proxy::start(&url).await;
    let store = PgStore::connect(&proxy.url).await.unwrap();
    let id = RunId::generate();
    store
        .create(&RunRecord::new(id.clone(), "x"))
        .await
        .unwrap();
    let lease = store
        .acquire(&id, "me", Duration::from_secs(30), Takeover::IfExpired)
        .await
        .unwrap();
    proxy.arm();
    let mut commit = Commit::new();
    commit.steps.push(step(0, "a"));
    commit.events.push(resumed());
    commit.events.push(resumed());
    let seq = store.commit(&lease, commit).await.unwrap();
    assert!(proxy.fired(), "the connection was not cut");
    assert_eq!(seq, 2);
    let events = store.events(&id, None).await.unwrap();
    assert_eq!(events.len(), 2, "the commit was applied twice: {events:?}");
    assert_eq!(store.steps(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stale_process_cannot_fork_a_run_another_took_over() {
    let Some(url) = server() else { return };
    let url = fresh_database(&url, "fence").await;
    // Two processes: separate pools, one database.
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    let id = RunId::generate();
    a.create(&RunRecord::new(id.clone(), "x")).await.unwrap();
    let stale = a
        .acquire(&id, "a", Duration::from_millis(100), Takeover::IfExpired)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = b
        .acquire(&id, "b", Duration::from_secs(30), Takeover::IfExpired)
        .await
        .unwrap();
    assert!(fresh.epoch > stale.epoch);
    let mut from_b = Commit::new();
    from_b.steps.push(step(0, "b's step"));
    b.commit(&fresh, from_b).await.unwrap();
    let mut from_a = Commit::new();
    from_a.steps.push(step(1, "a's step"));
    from_a.status = Some(RunStatus::Failed);
    let err = a.commit(&stale, from_a).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    let steps = b.steps(&id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].step.value, "b's step");
    assert_eq!(b.run(&id).await.unwrap().status, RunStatus::Planning);
}

/// A TCP proxy in front of the test server that can cut a connection right
/// after forwarding a `COMMIT`.
struct Proxy {
    url: String,
    armed: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(url: &str) -> Self {
        let target = {
            let rest = url.split_once("://").unwrap().1;
            let authority = rest.split('/').next().unwrap();
            let host = authority.rsplit('@').next().unwrap().to_owned();
            if host.contains(':') {
                host
            } else {
                format!("{host}:5432")
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (a, f) = (armed.clone(), fired.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, a.clone(), f.clone()));
            }
        });
        let rest = url.split_once("://").unwrap().1;
        let authority = rest.split('/').next().unwrap();
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        let path = &rest[authority.len()..];
        Self {
            url: format!(
                "postgres://{}127.0.0.1:{port}{path}",
                user.unwrap_or_default()
            ),
            armed,
            fired,
        }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
) {
    let cut = AtomicBool::new(false);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            // The simple-protocol query `COMMIT` (sqlx's commit).
            let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
            if commit && armed.swap(false, Ordering::SeqCst) {
                // Let the server commit, then cut the client off before
                // the answer is passed on.
                cut.store(true, Ordering::SeqCst);
                fired.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                // Keep the server's side open while it commits.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
