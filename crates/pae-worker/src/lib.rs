//! Many `pae` worker processes on one PostgreSQL: durable plan-and-execute
//! runs advanced by jobs of an existing job engine (apalis with
//! apalis-postgres), one fenced writer per run.
//!
//! - A job means "advance run R". [`submit`] creates a run and its job in
//!   one transaction; an approval (`PlanAndExecute::decide`) enqueues it in
//!   the approval's own transaction ([`WakeOnApproval`], installed by
//!   [`connect`]); a worker that stops hands its runs back the same way.
//! - One writer per run: a worker runs a run under the run's lease (with a
//!   fencing epoch; every commit is fenced by `pae-postgres`), so a stale
//!   worker's writes are rejected instead of forking the run.
//! - A dead worker's runs are taken over within the lease time (30 s by
//!   default) plus one sweep (5 s): every worker's sweeper wakes runnable
//!   runs whose lease expired, independently of apalis's own orphan
//!   recovery; runs of a dead worker on the same machine are taken at once.
//! - A worker builds each run's agent from the settings stored with it
//!   through an [`AgentFactory`] the program provides (the `pae` command
//!   line stores its flags at submit time and rebuilds the agent exactly as
//!   `pae resume` does); secrets come from the worker's environment.
//!
//! Execution is at least once per step (a step in flight when a worker dies
//! runs again; journaled calls inside it are replayed, tools get the same
//! idempotency keys) and commits are exactly once.
//!
//! Depend on it to run workers in your own program; the `pae` binary has
//! `pae worker` and `pae submit`.
//!
//! # Feature flags
//! None.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use pae_core::PlanAndExecute;
//! use pae_core::store::RunRecord;
//! use pae_postgres::PgStoreOptions;
//! use pae_worker::{AgentFactory, BuildError, Queue, Worker};
//!
//! struct MyAgents;
//!
//! #[async_trait]
//! impl AgentFactory for MyAgents {
//!     async fn agent(&self, run: &RunRecord) -> Result<PlanAndExecute, BuildError> {
//!         // Read run.settings, build the planner and executor.
//! #       Err("example".into())
//!     }
//! }
//!
//! # async fn example() -> Result<(), pae_core::StoreError> {
//! let queue = Queue::default();
//! let store = pae_worker::connect(PgStoreOptions::new("postgres://pae@db/pae"), &queue).await?;
//! let worker = Worker::new(store, queue, Arc::new(MyAgents));
//! let report = worker.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(())
//! # }
//! ```

mod queue;
mod worker;

pub use queue::{Advance, DEFAULT_QUEUE, Queue, WakeOnApproval, connect, submit};
pub use worker::{AgentFactory, BuildError, Worker, WorkerEvent, WorkerOptions, WorkerReport};
