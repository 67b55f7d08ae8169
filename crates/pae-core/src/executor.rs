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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepHistory(Arc<Vec<(Step, StepResponse)>>);

impl StepHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The steps, without a copy unless another clone of this history is
    /// still alive.
    pub fn into_vec(self) -> Vec<(Step, StepResponse)> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| shared.as_ref().clone())
    }

    /// Appends a step. Copies the list only when another clone of this
    /// history is still alive.
    pub fn push(&mut self, step: Step, response: StepResponse) {
        Arc::make_mut(&mut self.0).push((step, response));
    }
}

impl Deref for StepHistory {
    type Target = [(Step, StepResponse)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Vec<(Step, StepResponse)>> for StepHistory {
    fn from(steps: Vec<(Step, StepResponse)>) -> Self {
        Self(Arc::new(steps))
    }
}

impl FromIterator<(Step, StepResponse)> for StepHistory {
    fn from_iter<T: IntoIterator<Item = (Step, StepResponse)>>(iter: T) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl PartialEq<[(Step, StepResponse)]> for StepHistory {
    fn eq(&self, other: &[(Step, StepResponse)]) -> bool {
        self.0.as_slice() == other
    }
}

impl PartialEq<Vec<(Step, StepResponse)>> for StepHistory {
    fn eq(&self, other: &Vec<(Step, StepResponse)>) -> bool {
        self.0.as_ref() == other
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
