//! [`CommitHook`]: work done inside a commit's transaction, so it happens
//! exactly when the commit does (a worker queue enqueues the job that
//! advances a run in the same transaction that made the run ready).

use async_trait::async_trait;
use pae_core::RunId;
use pae_core::store::{Commit, RunStatus};
use sqlx::PgConnection;

/// A change a commit makes, as a [`CommitHook`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Change<'a> {
    /// The run.
    pub run_id: &'a RunId,
    /// Its status before the commit.
    pub before: RunStatus,
    /// Its status after the commit.
    pub after: RunStatus,
    /// The lease epoch the commit was made under.
    pub epoch: u64,
    /// The commit itself.
    pub commit: &'a Commit,
}

/// Runs inside every commit's transaction, after the run's rows are written
/// and before `COMMIT`: what it writes commits or rolls back with the run.
///
/// Keep it short (it holds the run's row lock) and idempotent in effect: a
/// commit whose connection was lost is tried again, and the hook with it,
/// when the first attempt did not commit.
#[async_trait]
pub trait CommitHook: Send + Sync {
    /// Called once per commit attempt.
    ///
    /// # Errors
    /// Any error rolls the whole commit back; the store reports it as a
    /// backend error.
    async fn on_commit(
        &self,
        tx: &mut PgConnection,
        change: &Change<'_>,
    ) -> Result<(), sqlx::Error>;
}
