//! The executor contract (LangChain's `BaseExecutor`): carry out one step.

use async_trait::async_trait;
use pae_schema::{Step, StepResponse};

use crate::chain::Inputs;
use crate::error::ExecError;
use crate::event::RunContext;

/// What an executor is given for one step.
#[derive(Debug, Clone, Default)]
pub struct StepInput {
    /// The user's objective.
    pub objective: String,
    /// The step to carry out.
    pub current_step: Step,
    /// 0-based position of the step in the current plan.
    pub index: usize,
    /// The steps this step can see, with their responses: every earlier step
    /// in a sequential run, the steps it depends on in a dependency plan.
    pub previous_steps: Vec<(Step, StepResponse)>,
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

    /// Sets the previous steps.
    #[must_use]
    pub fn with_previous_steps(mut self, previous: Vec<(Step, StepResponse)>) -> Self {
        self.previous_steps = previous;
        self
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
