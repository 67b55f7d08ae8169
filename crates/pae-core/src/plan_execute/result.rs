//! What a run returns: [`RunResult`], [`RunOutcome`], [`RunUpdate`].

use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, StepStatus, TokenUsage};
use serde::{Deserialize, Serialize};

use super::outcome::{AnswerProblem, RunOutcome};
use crate::error::RunError;
use crate::event::{Event, as_millis, from_millis};
use crate::store::{RunId, Spent};

/// Every reason why `output`, given after `steps`, is not a real answer:
/// the answer's own problems first (empty; given by a step that stopped,
/// in which case a text equal to one of that step's tool results is a tool
/// result standing in for it), then every other step that did not
/// complete, in order. Empty when the answer is a real one.
pub fn answer_problems(steps: &[(Step, StepResponse)], output: &str) -> Vec<AnswerProblem> {
    let mut problems = Vec::new();
    if output.trim().is_empty() {
        problems.push(AnswerProblem::EmptyAnswer);
    }
    let last = steps.len().checked_sub(1);
    if let Some(index) = last
        && let Some((_, response)) = steps.get(index)
        && response.response == output
        && matches!(response.status, StepStatus::Stopped { .. })
    {
        let from_tool = response
            .tool_calls
            .iter()
            .any(|call| !call.is_error && call.observation.trim() == output.trim());
        problems.push(if from_tool {
            AnswerProblem::ToolResultAsAnswer { index }
        } else {
            AnswerProblem::AnswerStepStopped { index }
        });
    }
    for (index, (_, response)) in steps.iter().enumerate() {
        let answered = Some(index) == last && !problems.is_empty() && response.response == output;
        match &response.status {
            StepStatus::Completed => {}
            StepStatus::Stopped { .. } if answered => {}
            StepStatus::Stopped { .. } => problems.push(AnswerProblem::StepStopped { index }),
            StepStatus::Failed { .. } => problems.push(AnswerProblem::StepFailed { index }),
            StepStatus::Skipped { .. } => problems.push(AnswerProblem::StepSkipped { index }),
        }
    }
    problems
}

/// What a successful run returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunResult {
    /// The run's id, for runs kept in a store (or given an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The final answer (empty while awaiting approval).
    pub output: String,
    /// Every step that ran, with its response, in execution order (for a
    /// resumed run, the steps of earlier sessions included).
    pub steps: Vec<(Step, StepResponse)>,
    /// Every plan revision: the first plan, then each revision.
    pub plans: Vec<Plan>,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Tokens the run's steps, planning and replanning report.
    pub usage: TokenUsage,
    /// What the run spent, measured at the model and tool calls and
    /// continuous across resumes (replayed calls are not counted twice;
    /// tokens spent twice are in `spent.wasted`).
    #[serde(default)]
    pub spent: Spent,
    /// Wall time of this session of the run.
    #[serde(
        serialize_with = "as_millis",
        deserialize_with = "from_millis",
        rename = "elapsed_ms"
    )]
    pub elapsed: Duration,
}

impl RunResult {
    /// A completed run's result with `output` as the answer, `steps` and
    /// `plans`; no id, usage, spending or time (set the public fields for
    /// those). For executors' and tools' tests and for callers that build a
    /// result from parts; the orchestrator builds its own.
    pub fn new(
        output: impl Into<String>,
        steps: Vec<(Step, StepResponse)>,
        plans: Vec<Plan>,
    ) -> Self {
        Self {
            run_id: None,
            output: output.into(),
            steps,
            plans,
            outcome: RunOutcome::Completed,
            usage: TokenUsage::default(),
            spent: Spent::default(),
            elapsed: Duration::ZERO,
        }
    }

    /// The plan the run finished with.
    pub fn final_plan(&self) -> Option<&Plan> {
        self.plans.last()
    }

    /// The number of plan revisions made.
    pub fn replans(&self) -> usize {
        self.plans.len().saturating_sub(1)
    }

    /// Why the answer is not a real one; empty when it is (see
    /// [`answer_problems`]).
    pub fn answer_problems(&self) -> Vec<AnswerProblem> {
        answer_problems(&self.steps, &self.output)
    }

    /// Whether the run stopped to wait for a person's approval.
    pub fn is_awaiting_approval(&self) -> bool {
        matches!(self.outcome, RunOutcome::AwaitingApproval { .. })
    }
}

/// An item of a streamed run: events as they happen, then the result.
#[derive(Debug)]
pub enum RunUpdate {
    /// Something happened.
    Event(Event),
    /// The run ended; always the last item.
    Finished(Result<RunResult, RunError>),
}

/// An error and its sources, joined with ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
