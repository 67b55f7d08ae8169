//! The embedded run store of `pae`: durable plan-and-execute runs in one
//! SQLite file.
//!
//! [`SqliteStore`] implements [`pae_core::store::RunStore`], so a
//! `PlanAndExecute` given one survives crashes, waits for approval and
//! resumes in any process on the machine. SQLite is compiled in (rusqlite's
//! `bundled` feature): nothing needs to be installed.
//!
//! The database runs in WAL mode. Each step commits in one small
//! transaction; the synchronous level is `NORMAL` by default, which
//! survives a killed process (the durability `pae` promises) but may lose
//! the last commits on power loss — [`SqliteStore::open_synchronous_full`]
//! trades speed for that. Rows hold plain JSON (serde data); nothing is
//! reconstructed beyond pae's own record types. Storage grows linearly: a
//! commit appends its steps, journal entries and events to the run's log
//! (a call recorded before it runs and again when it returns is appended
//! twice, the later row wins), never a snapshot of the whole run, and the
//! run's row is not rewritten per step.
//!
//! Depend on it when a program runs durable agents on one machine (the
//! `pae` CLI does); use `pae-postgres` for many workers.
//!
//! # Feature flags
//! None.
//!
//! # Example
//! ```
//! use pae_core::store::{RunRecord, RunStore};
//! use pae_core::RunId;
//! use pae_sqlite::SqliteStore;
//!
//! # futures::executor::block_on(async {
//! let dir = std::env::temp_dir().join(format!("pae-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteStore::open(dir.join("runs.db")).unwrap();
//! let id = RunId::generate();
//! store.create(&RunRecord::new(id.clone(), "an objective")).await.unwrap();
//! assert_eq!(store.run(&id).await.unwrap().objective, "an objective");
//! # std::fs::remove_dir_all(&dir).ok();
//! # });
//! ```

mod schema;
mod store;

pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;
