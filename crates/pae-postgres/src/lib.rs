//! The PostgreSQL run store of `pae`: durable plan-and-execute runs that
//! many worker processes, on many machines, share.
//!
//! [`PgStore`] implements [`pae_core::store::RunStore`] and passes the same
//! shared suite (`pae_conformance::store::StoreSuite`) as the in-memory
//! store and `pae-sqlite`: every commit is one transaction fenced by the
//! run's lease, steps and plan revisions are written once, journal entries
//! are upserted by (scope, seq), events are numbered per run. Leases expire
//! by the database's clock, so machines whose clocks differ agree on them.
//!
//! It works behind PgBouncer in transaction mode (statements are never
//! prepared by name), applies its own migrations (`CREATE INDEX
//! CONCURRENTLY` outside any transaction) and refuses a database of another
//! schema version with a typed error. A lost connection or a server restart
//! is survived: operations are tried again for up to 30 s, and a commit
//! whose `COMMIT` may have landed is checked before it is repeated, so it
//! is applied once.
//!
//! A [`CommitHook`] runs inside each commit's transaction: `pae-worker`
//! uses it to enqueue the job that advances a run in the same transaction
//! that made the run ready (an approval).
//!
//! Depend on it to share runs between processes through PostgreSQL; the
//! `pae` command line opens it for `--store postgres://…`. The driver is
//! sqlx (PostgreSQL only; sqlx's SQLite is never linked next to
//! `pae-sqlite`'s rusqlite), re-exported as [`sqlx`].
//!
//! # Feature flags
//! None.
//!
//! # Example
//! ```no_run
//! use pae_core::store::{RunRecord, RunStore};
//! use pae_core::RunId;
//! use pae_postgres::PgStore;
//!
//! # async fn example() -> Result<(), pae_core::StoreError> {
//! let store = PgStore::connect("postgres://pae@127.0.0.1:5432/pae").await?;
//! let id = RunId::generate();
//! store.create(&RunRecord::new(id.clone(), "an objective")).await?;
//! assert_eq!(store.run(&id).await?.objective, "an objective");
//! # Ok(())
//! # }
//! ```

mod error;
mod hook;
mod schema;
mod store;

pub use hook::{Change, CommitHook};
pub use schema::SCHEMA_VERSION;
pub use sqlx;
pub use store::{CommitLatency, ConnectionSetup, PgStore, PgStoreOptions};

/// Whether a sqlx error means the connection or server went away (worth
/// trying again), as opposed to a permanent failure.
pub fn is_transient(error: &sqlx::Error) -> bool {
    error::is_transient(error)
}
