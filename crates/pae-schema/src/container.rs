//! Step containers: where a run collects each step with its response.

use serde::{Deserialize, Serialize};

use crate::{Step, StepResponse};

/// The error returned when a container holds no step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The container is empty, so there is no final response.
    #[error("the step container is empty: no step has been executed")]
    Empty,
}

/// Collects the steps of one run with their responses (LangChain's
/// `BaseStepContainer`).
///
/// The orchestrator creates a fresh container for every run, so nothing leaks
/// from one run into the next.
pub trait StepContainer: Send + Sync {
    /// Records a step and its response.
    fn add_step(&mut self, step: Step, response: StepResponse);

    /// Every recorded `(step, response)` pair, in the order they were added.
    fn steps(&self) -> &[(Step, StepResponse)];

    /// The response that answers the run, or `None` when nothing was
    /// recorded.
    fn final_response(&self) -> Option<&StepResponse>;

    /// Like [`final_response`](Self::final_response), as a `Result`.
    ///
    /// # Errors
    /// [`ContainerError::Empty`] when no step was recorded.
    fn try_final_response(&self) -> Result<&StepResponse, ContainerError> {
        self.final_response().ok_or(ContainerError::Empty)
    }

    /// The number of recorded steps.
    fn len(&self) -> usize {
        self.steps().len()
    }

    /// Whether nothing was recorded.
    fn is_empty(&self) -> bool {
        self.steps().is_empty()
    }
}

/// A container that keeps every pair in a list; the final response is the
/// last step's (LangChain's `ListStepContainer`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ListStepContainer {
    steps: Vec<(Step, StepResponse)>,
}

impl ListStepContainer {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the recorded pairs out of the container.
    pub fn into_steps(self) -> Vec<(Step, StepResponse)> {
        self.steps
    }
}

impl StepContainer for ListStepContainer {
    fn add_step(&mut self, step: Step, response: StepResponse) {
        self.steps.push((step, response));
    }

    fn steps(&self) -> &[(Step, StepResponse)] {
        &self.steps
    }

    fn final_response(&self) -> Option<&StepResponse> {
        self.steps.last().map(|(_, response)| response)
    }
}

impl FromIterator<(Step, StepResponse)> for ListStepContainer {
    fn from_iter<T: IntoIterator<Item = (Step, StepResponse)>>(iter: T) -> Self {
        Self {
            steps: iter.into_iter().collect(),
        }
    }
}

impl std::fmt::Display for ListStepContainer {
    /// Each step and its response, readable by people and models.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, response)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "Step {}: {}\nResponse: {}", i + 1, step.value, response)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_container_has_no_final_response() {
        let c = ListStepContainer::new();
        assert!(c.final_response().is_none());
        assert_eq!(c.try_final_response(), Err(ContainerError::Empty));
        assert!(c.is_empty());
        assert_eq!(c.to_string(), "");
    }

    #[test]
    fn final_response_is_the_last_added() {
        let mut c = ListStepContainer::new();
        c.add_step(Step::new("a"), StepResponse::new("1"));
        c.add_step(Step::new("b"), StepResponse::new("2"));
        assert_eq!(c.final_response().map(|r| r.response.as_str()), Some("2"));
        assert_eq!(c.len(), 2);
        assert_eq!(c.steps()[0].0.value, "a");
        assert_eq!(
            c.to_string(),
            "Step 1: a\nResponse: 1\n\nStep 2: b\nResponse: 2"
        );
    }
}
