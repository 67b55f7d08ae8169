//! The executor contract (LangChain's `BaseExecutor`): carry out one step.

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use pae_schema::{Step, StepResponse};

use crate::chain::Inputs;
use crate::context::RunContext;
use crate::error::ExecError;

/// What an executor is given for one step.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StepInput {
    /// The user's objective.
    pub objective: String,
    /// The step to carry out.
    pub current_step: Step,
    /// 0-based position of the step in the current plan.
    pub index: usize,
    /// The steps this step can see, with their responses: every earlier step
    /// in a sequential run, the steps it depends on in a dependency plan.
    pub previous_steps: StepHistory,
    /// The run's inputs (the objective included as `"input"`).
    pub inputs: Inputs,
    /// The run's context (events, token counter).
    pub context: RunContext,
}

impl StepInput {
    /// An input for `step` of `objective` with no previous step.
    pub fn new(objective: impl Into<String>, step: impl Into<Step>) -> Self {
        Self {
            objective: objective.into(),
            current_step: step.into(),
            ..Self::default()
        }
    }

    /// The step, the rest dropped.
    pub(crate) fn into_step(self) -> Step {
        self.current_step
    }

    /// Sets the previous steps.
    #[must_use]
    pub fn with_previous_steps(mut self, previous: impl Into<StepHistory>) -> Self {
        self.previous_steps = previous.into();
        self
    }
}

/// Steps with their responses, shared: cloning is O(1), so handing the
/// history to every step of a long plan costs nothing per step. Reads like a
/// slice.
///
/// A history has an [`id`](Self::id) that its clones share and that
/// appending keeps, so two histories with the same id hold the same steps at
/// every position both have: executors can reuse what they derived from the
/// earlier steps (a rendered digest) instead of reading them all again.
#[derive(Debug, Clone)]
pub struct StepHistory {
    steps: Arc<Vec<(Step, StepResponse)>>,
    id: u64,
}

/// The next [`StepHistory::id`].
fn next_history_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for StepHistory {
    fn default() -> Self {
        Self::from(Vec::new())
    }
}

impl PartialEq for StepHistory {
    /// The same steps, whatever the ids.
    fn eq(&self, other: &Self) -> bool {
        self.steps == other.steps
    }
}

impl StepHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// This history's identity: shared by its clones and kept when a step
    /// is appended to it in place. Steps are never changed or removed, and
    /// a history that has to copy its steps to append one (because a clone
    /// still shares them) takes a new id, so while the id is the same, the
    /// step at each position is the same.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The steps, without a copy unless another clone of this history is
    /// still alive.
    pub fn into_vec(self) -> Vec<(Step, StepResponse)> {
        Arc::try_unwrap(self.steps).unwrap_or_else(|shared| shared.as_ref().clone())
    }

    /// Makes room for `additional` more steps, so a run that knows its
    /// plan does not grow (and copy) the list as it goes. Does nothing
    /// while another clone shares the steps.
    pub(crate) fn reserve(&mut self, additional: usize) {
        if let Some(steps) = Arc::get_mut(&mut self.steps) {
            steps.reserve_exact(additional);
        }
    }

    /// Appends a step. Copies the list (and takes a new id) only when
    /// another clone of this history is still alive.
    pub fn push(&mut self, step: Step, response: StepResponse) {
        if Arc::get_mut(&mut self.steps).is_none() {
            self.id = next_history_id();
        }
        Arc::make_mut(&mut self.steps).push((step, response));
    }
}

impl Deref for StepHistory {
    type Target = [(Step, StepResponse)];

    fn deref(&self) -> &Self::Target {
        &self.steps
    }
}

impl From<Vec<(Step, StepResponse)>> for StepHistory {
    fn from(steps: Vec<(Step, StepResponse)>) -> Self {
        Self {
            steps: Arc::new(steps),
            id: next_history_id(),
        }
    }
}

impl FromIterator<(Step, StepResponse)> for StepHistory {
    fn from_iter<T: IntoIterator<Item = (Step, StepResponse)>>(iter: T) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl PartialEq<[(Step, StepResponse)]> for StepHistory {
    fn eq(&self, other: &[(Step, StepResponse)]) -> bool {
        self.steps.as_slice() == other
    }
}

impl PartialEq<Vec<(Step, StepResponse)>> for StepHistory {
    fn eq(&self, other: &Vec<(Step, StepResponse)>) -> bool {
        self.steps.as_ref() == other
    }
}

/// Carries out one step of a plan.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Executor: Send + Sync {
    /// Executes the step.
    ///
    /// # Errors
    /// An [`ExecError`] when the step could not be carried out. Hitting an
    /// iteration limit is not an error: it is a response with
    /// [`pae_schema::StepStatus::Stopped`].
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_id_names_one_sequence_of_steps() {
        let step = |n: usize| {
            (
                Step::new(format!("s{n}")),
                StepResponse::new(format!("r{n}")),
            )
        };
        let mut a = StepHistory::new();
        assert_ne!(a.id(), StepHistory::new().id());
        let first = a.id();
        a.push(step(1).0, step(1).1);
        assert_eq!(a.id(), first, "appended in place");
        let b = a.clone();
        assert_eq!(b.id(), first);
        a.push(step(2).0, step(2).1);
        assert_ne!(a.id(), first, "copied to append: another history now");
        assert_eq!((b.len(), a.len()), (1, 2));
        assert_eq!(b.id(), first);
        // Equal steps are equal histories, whatever the ids.
        assert_eq!(StepHistory::from(vec![step(1)]), b);
        drop(b);
        let second = a.id();
        a.push(step(3).0, step(3).1);
        assert_eq!(a.id(), second);
        assert_eq!(a.into_vec().len(), 3);
    }
}
