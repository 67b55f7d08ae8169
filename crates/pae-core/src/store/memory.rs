//! [`MemoryStore`]: a [`RunStore`] in memory, for tests and for runs that
//! need approval or resume within one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::clock::now_ms;
use super::{
    CallScope, Commit, JournalEntry, Lease, PlanRevision, RunFilter, RunId, RunRecord, RunStore,
    StepRecord, StoreError, StoredEvent, Takeover,
};

/// A [`RunStore`] that keeps everything in memory. Cheap, and gone with the
/// process: use `pae-sqlite` for runs that must survive it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<HashMap<RunId, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    record: RunRecord,
    epoch: u64,
    plans: Vec<PlanRevision>,
    steps: BTreeMap<usize, StepRecord>,
    journal: BTreeMap<(String, u32), JournalEntry>,
    events: Vec<StoredEvent>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Entry>> {
        // A panic while holding the lock cannot leave an entry half
        // written: every commit is checked before anything is changed.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(&self, id: &RunId, f: impl FnOnce(&Entry) -> T) -> Result<T, StoreError> {
        let runs = self.lock();
        runs.get(id).map(f).ok_or_else(|| not_found(id))
    }
}

fn not_found(id: &RunId) -> StoreError {
    StoreError::NotFound { id: id.to_string() }
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        id: lease.run_id.to_string(),
        epoch: lease.epoch,
    }
}

fn conflict(id: &RunId, reason: String) -> StoreError {
    StoreError::Conflict {
        id: id.to_string(),
        reason,
    }
}

/// Whether `lease` is the run's current lease.
fn holds(entry: &Entry, lease: &Lease) -> bool {
    entry.epoch == lease.epoch
        && entry
            .record
            .lease
            .as_ref()
            .is_some_and(|held| held.owner == lease.owner)
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create(&self, run: &RunRecord) -> Result<(), StoreError> {
        let mut runs = self.lock();
        if runs.contains_key(&run.id) {
            return Err(StoreError::AlreadyExists {
                id: run.id.to_string(),
            });
        }
        let mut record = run.clone();
        record.lease = None;
        runs.insert(
            run.id.clone(),
            Entry {
                record,
                epoch: 0,
                plans: Vec::new(),
                steps: BTreeMap::new(),
                journal: BTreeMap::new(),
                events: Vec::new(),
            },
        );
        Ok(())
    }

    async fn run(&self, id: &RunId) -> Result<RunRecord, StoreError> {
        self.read(id, |e| e.record.clone())
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let runs = self.lock();
        let mut records: Vec<RunRecord> = runs
            .values()
            .filter(|e| filter.status.is_none_or(|s| e.record.status == s))
            .map(|e| e.record.clone())
            .collect();
        records.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        if let Some(limit) = filter.limit {
            let skip = records.len().saturating_sub(limit);
            records.drain(..skip);
        }
        Ok(records)
    }

    async fn plans(&self, id: &RunId) -> Result<Vec<PlanRevision>, StoreError> {
        self.read(id, |e| e.plans.clone())
    }

    async fn steps(&self, id: &RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.read(id, |e| e.steps.values().cloned().collect())
    }

    async fn journal(
        &self,
        id: &RunId,
        scope: &CallScope,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let key = scope.key();
        self.read(id, |e| {
            e.journal
                .range((key.clone(), 0)..=(key.clone(), u32::MAX))
                .map(|(_, entry)| entry.clone())
                .collect()
        })
    }

    async fn journal_all(&self, id: &RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(id, |e| e.journal.values().cloned().collect())
    }

    async fn events(&self, id: &RunId, after: Option<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let after = after.unwrap_or(0);
        self.read(id, |e| {
            e.events.iter().filter(|s| s.seq > after).cloned().collect()
        })
    }

    async fn acquire(
        &self,
        id: &RunId,
        owner: &str,
        ttl: Duration,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        let mut runs = self.lock();
        let entry = runs.get_mut(id).ok_or_else(|| not_found(id))?;
        let now = now_ms();
        if let Some(held) = &entry.record.lease {
            let free = held.expires_at_ms <= now
                || matches!(takeover, Takeover::IfEpoch(epoch) if epoch == entry.epoch);
            if !free {
                return Err(StoreError::Busy {
                    id: id.to_string(),
                    owner: held.owner.clone(),
                    remaining_ms: held.expires_at_ms.saturating_sub(now),
                });
            }
        }
        entry.epoch += 1;
        let lease = Lease {
            run_id: id.clone(),
            owner: owner.to_owned(),
            epoch: entry.epoch,
            expires_at_ms: now.saturating_add(ttl_ms(ttl)),
        };
        entry.record.lease = Some(lease.clone());
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        let mut runs = self.lock();
        let entry = runs
            .get_mut(&lease.run_id)
            .ok_or_else(|| not_found(&lease.run_id))?;
        if !holds(entry, lease) {
            return Err(lost(lease));
        }
        let renewed = Lease {
            expires_at_ms: now_ms().saturating_add(ttl_ms(ttl)),
            ..lease.clone()
        };
        entry.record.lease = Some(renewed.clone());
        Ok(renewed)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let entry = runs
            .get_mut(&lease.run_id)
            .ok_or_else(|| not_found(&lease.run_id))?;
        if !holds(entry, lease) {
            return Err(lost(lease));
        }
        entry.record.lease = None;
        Ok(())
    }

    async fn commit(&self, lease: &Lease, commit: Commit) -> Result<u64, StoreError> {
        let mut runs = self.lock();
        let id = &lease.run_id;
        let entry = runs.get_mut(id).ok_or_else(|| not_found(id))?;
        if !holds(entry, lease) {
            return Err(lost(lease));
        }
        // Check everything before changing anything: a commit is atomic.
        let mut next_revision = entry.plans.len();
        if let Some(plan) = &commit.plan {
            if plan.revision as usize != next_revision {
                return Err(conflict(
                    id,
                    format!(
                        "plan revision {} written, the next is {next_revision}",
                        plan.revision
                    ),
                ));
            }
            next_revision += 1;
        }
        if let Some(revision) = commit.approve
            && revision as usize >= next_revision
        {
            return Err(conflict(id, format!("no plan revision {revision}")));
        }
        let mut seen = std::collections::HashSet::new();
        for step in &commit.steps {
            if entry.steps.contains_key(&step.index) || !seen.insert(step.index) {
                return Err(conflict(
                    id,
                    format!("step {} is committed already", step.index),
                ));
            }
        }
        // Apply.
        let now = now_ms();
        if let Some(plan) = commit.plan {
            entry.plans.push(plan);
        }
        if let Some(revision) = commit.approve
            && let Some(plan) = entry.plans.get_mut(revision as usize)
        {
            plan.approved = true;
        }
        for step in commit.steps {
            entry.steps.insert(step.index, step);
        }
        for (scope, from) in commit.truncate {
            let key = scope.key();
            entry.journal.retain(|(s, seq), _| *s != key || *seq < from);
        }
        for journal in commit.journal {
            entry
                .journal
                .insert((journal.scope.key(), journal.seq), journal);
        }
        for event in commit.events {
            let seq = entry.events.last().map_or(1, |e| e.seq + 1);
            entry.events.push(StoredEvent { seq, event });
        }
        let record = &mut entry.record;
        if let Some(status) = commit.status {
            record.status = status;
        }
        if let Some(spent) = commit.spent {
            record.spent = spent;
        }
        if let Some(ending) = commit.ending {
            record.ending = ending;
        }
        if let Some(settings) = commit.settings {
            record.settings = settings;
        }
        if let Some(budget) = commit.budget {
            record.budget = budget;
        }
        record.updated_at_ms = now;
        Ok(entry.events.last().map_or(0, |e| e.seq))
    }
}
