//! Durable runs: the [`RunStore`] contract, the records it keeps and the
//! in-memory [`MemoryStore`].
//!
//! A store keeps, per run: its id, objective, inputs and settings, its
//! status, every plan revision with its source, each step's result (written
//! once, when the step commits), a journal of the model and tool calls made
//! inside steps (request hash and result), the event stream, and what the
//! run has spent. Everything is plain serde data: a store never
//! reconstructs arbitrary types from what it reads.
//!
//! Every write goes through [`RunStore::commit`], one transaction fenced by
//! a [`Lease`]: a run has one writer at a time, and a writer that lost its
//! lease (it stalled and another process took the run over) has its commits
//! rejected with [`StoreError::LeaseLost`] instead of forking the run.
//!
//! Backends: [`MemoryStore`] here, `pae-sqlite` (the embedded default) and
//! `pae-postgres`. All pass the shared suite in `pae-conformance`.

mod clock;
mod id;
mod memory;
mod owner;
mod records;
mod status;

pub use clock::now_ms;
pub use id::RunId;
pub use memory::MemoryStore;
pub use owner::{is_dead_local_owner, local_owner};
pub use records::{
    ApprovalPolicy, Budget, CallKind, CallScope, CallState, Commit, JournalEntry, Lease,
    ModelPrice, PlanRevision, PlanSource, RunEnding, RunFilter, RunRecord, Spent, StepRecord,
    StoredEvent, Takeover,
};
pub use status::{BudgetKind, Interruption, RunStatus};

use std::time::Duration;

use async_trait::async_trait;

pub use crate::error::StoreError;

/// Where durable runs are kept.
///
/// Object-safe: hold stores as `Arc<dyn RunStore>`. Every mutation is a
/// [`Commit`] applied in one transaction and fenced by a [`Lease`]; reads
/// need no lease. Implementations must keep the invariants the shared suite
/// in `pae-conformance` checks: a step is written once, a plan revision
/// once, journal entries are keyed by (scope, seq), events get increasing
/// sequence numbers, and a commit under a stale lease changes nothing.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when the id is taken, or a backend
    /// error.
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError>;

    /// The run's record.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError>;

    /// Runs matching the filter, oldest first (newest last).
    ///
    /// # Errors
    /// A read error.
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

    /// Every plan revision of the run, in order.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn plans(&self, id: &RunId) -> Result<Vec<PlanRevision>, StoreError>;

    /// Every committed step of the run, by index.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn steps(&self, id: &RunId) -> Result<Vec<StepRecord>, StoreError>;

    /// The journal entries of one scope (a step, planning, a replan), by
    /// sequence number.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn journal(&self, id: &RunId, scope: &CallScope)
    -> Result<Vec<JournalEntry>, StoreError>;

    /// Every journal entry of the run, by scope then sequence number.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn journal_all(&self, id: &RunId) -> Result<Vec<JournalEntry>, StoreError>;

    /// Stored events with a sequence number above `after` (all when
    /// `None`), in order.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a read error.
    async fn events(&self, id: &RunId, after: Option<u64>) -> Result<Vec<StoredEvent>, StoreError>;

    /// Takes the run's lease for `owner` for `ttl`, raising its epoch.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when another owner holds an unexpired lease and
    /// `takeover` does not allow taking it, [`StoreError::NotFound`], or a
    /// backend error.
    async fn acquire(
        &self,
        id: &RunId,
        owner: &str,
        ttl: Duration,
        takeover: Takeover,
    ) -> Result<Lease, StoreError>;

    /// Extends a held lease.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when another writer took the run over.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError>;

    /// Gives the lease up so another process may take the run at once.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the lease was no longer held.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Applies a commit in one transaction, if `lease` is still the run's
    /// lease. Returns the sequence number of the last stored event.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written), [`StoreError::Conflict`]
    /// (a step or revision written twice; nothing written), or a backend
    /// error (nothing written).
    async fn commit(&self, lease: &Lease, commit: Commit) -> Result<u64, StoreError>;
}

#[async_trait]
impl<T: RunStore + ?Sized> RunStore for std::sync::Arc<T> {
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError> {
        (**self).create(run).await
    }
    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        (**self).run(id).await
    }
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        (**self).list(filter).await
    }
    async fn plans(&self, id: &RunId) -> Result<Vec<PlanRevision>, StoreError> {
        (**self).plans(id).await
    }
    async fn steps(&self, id: &RunId) -> Result<Vec<StepRecord>, StoreError> {
        (**self).steps(id).await
    }
    async fn journal(
        &self,
        id: &RunId,
        scope: &CallScope,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        (**self).journal(id, scope).await
    }
    async fn journal_all(&self, id: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        (**self).journal_all(id).await
    }
    async fn events(&self, id: &RunId, after: Option<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        (**self).events(id, after).await
    }
    async fn acquire(
        &self,
        id: &RunId,
        owner: &str,
        ttl: Duration,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        (**self).acquire(id, owner, ttl, takeover).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        (**self).renew(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        (**self).release(lease).await
    }
    async fn commit(&self, lease: &Lease, commit: Commit) -> Result<u64, StoreError> {
        (**self).commit(lease, commit).await
    }
}
