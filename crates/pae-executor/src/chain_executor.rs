//! [`ChainExecutor`]: an executor that runs any [`Chain`] for each step
//! (LangChain's `ChainExecutor`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{Chain, ExecError, Executor, Inputs, StepInput, StepResponse, run_chain};

use crate::history::{HistoryPolicy, render_history};

/// Runs a [`Chain`] for each step; the step's response is the chain's
/// output.
///
/// The chain receives the run's inputs (the objective is there as `input`
/// and `objective`) plus these keys, which win over run inputs of the same
/// name:
///
/// | key | value |
/// | --- | --- |
/// | `previous_steps` | the previous steps and their responses as readable text (see [`render_previous_steps`](crate::render_previous_steps)) |
/// | `current_step` | the step's text |
/// | `objective` | the user's objective |
/// | `step_number` | the step's 1-based position in the plan |
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use pae_core::{ChatPromptTemplate, Executor, LlmChain, PromptTemplate, StepInput};
/// use pae_core::test_util::ScriptedModel;
/// use pae_executor::ChainExecutor;
///
/// let model = Arc::new(ScriptedModel::new(["Paris"]));
/// let prompt = ChatPromptTemplate::new(
///     PromptTemplate::literal("Answer briefly."),
///     PromptTemplate::new("Done so far:\n{previous_steps}\n\nNow: {current_step}").unwrap(),
/// );
/// let executor = ChainExecutor::new(Arc::new(LlmChain::new(model.clone(), prompt)));
/// let input = StepInput::new("trip", "Name the capital of France");
/// let response = futures::executor::block_on(executor.step(&input)).unwrap();
/// assert_eq!(response.response, "Paris");
/// assert_eq!(model.requests()[0].messages[1].content,
///            "Done so far:\n(none yet)\n\nNow: Name the capital of France");
/// ```
#[derive(Clone)]
pub struct ChainExecutor {
    chain: Arc<dyn Chain>,
    history: HistoryPolicy,
}

impl fmt::Debug for ChainExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainExecutor")
            .field("input_keys", &self.chain.input_keys())
            .field("output_keys", &self.chain.output_keys())
            .field("history", &self.history)
            .finish()
    }
}

impl ChainExecutor {
    /// An executor running `chain`, showing every previous step.
    pub fn new(chain: Arc<dyn Chain>) -> Self {
        Self {
            chain,
            history: HistoryPolicy::All,
        }
    }

    /// Sets which previous steps are shown in full.
    #[must_use]
    pub fn with_history(mut self, history: HistoryPolicy) -> Self {
        self.history = history;
        self
    }

    /// The wrapped chain.
    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    /// The inputs the chain receives for `input`.
    pub fn chain_inputs(&self, input: &StepInput) -> Inputs {
        let mut inputs = input.inputs.clone();
        inputs.insert(
            String::from("previous_steps"),
            render_history(
                &input.previous_steps,
                Some(&input.current_step),
                self.history,
            ),
        );
        inputs.insert(
            String::from("current_step"),
            input.current_step.value.clone(),
        );
        inputs.insert(String::from("objective"), input.objective.clone());
        inputs.insert(String::from("step_number"), (input.index + 1).to_string());
        inputs
    }
}

#[async_trait]
impl Executor for ChainExecutor {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        let inputs = self.chain_inputs(input);
        let output = run_chain(self.chain.as_ref(), &inputs).await?;
        Ok(StepResponse::new(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::test_util::MockChain;
    use pae_core::{ChainError, Step};

    #[tokio::test]
    async fn chain_receives_rendered_history_and_step() {
        let mut chain = MockChain::new();
        chain
            .expect_input_keys()
            .returning(|| vec!["previous_steps".into(), "current_step".into()]);
        chain.expect_output_keys().returning(|| vec!["out".into()]);
        chain
            .expect_call()
            .withf(|inputs| {
                inputs["previous_steps"] == "Step 1: a\nResponse: 1"
                    && inputs["current_step"] == "b"
                    && inputs["objective"] == "obj"
                    && inputs["step_number"] == "2"
                    && inputs["extra"] == "kept"
            })
            .times(1)
            .returning(|_| Ok(Inputs::from([("out".to_string(), "done".to_string())])));
        let mut input = StepInput::new("obj", "b")
            .with_previous_steps(vec![(Step::new("a"), StepResponse::new("1"))]);
        input.index = 1;
        input.inputs.insert("extra".into(), "kept".into());
        input
            .inputs
            .insert("current_step".into(), "overridden".into());
        let executor = ChainExecutor::new(Arc::new(chain));
        let response = executor.step(&input).await.unwrap();
        assert_eq!(response, StepResponse::new("done"));
    }

    #[tokio::test]
    async fn chain_errors_become_exec_errors() {
        let mut chain = MockChain::new();
        chain
            .expect_input_keys()
            .returning(|| vec!["needed".into()]);
        chain.expect_output_keys().returning(|| vec!["out".into()]);
        let executor = ChainExecutor::new(Arc::new(chain));
        let err = executor.step(&StepInput::new("o", "s")).await.unwrap_err();
        assert!(matches!(
            err,
            ExecError::Chain(ChainError::MissingInput { ref key }) if key == "needed"
        ));
    }
}
