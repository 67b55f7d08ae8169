//! What a run returns: [`RunResult`], [`RunOutcome`], [`RunUpdate`].

use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, StepStatus, TokenUsage};
use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::event::{Event, as_millis, from_millis};
use crate::store::{RunId, Spent};

/// How a successful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum RunOutcome {
    /// Every step of the (last) plan ran; the answer is the last step's
    /// response.
    Completed,
    /// The replanner declared the objective met and gave the answer.
    AnsweredByReplanner,
    /// The replan cap was reached while the policy asked for another
    /// revision; the run went on with the plan it had.
    ReplanLimitReached {
        /// The cap.
        max_replans: usize,
    },
    /// A plan revision waits for a person's approval; nothing after it ran
    /// and the answer is empty. Approve (or edit) it and resume the run.
    AwaitingApproval {
        /// The revision waiting.
        revision: u32,
    },
    /// Every step ran, but the answer is not a real one: it is empty, or
    /// the step that gave it stopped at a limit (its text is a tool's
    /// result or a fixed "stopped" text standing in for an answer). The
    /// answer is still the last step's response: the best the run found.
    /// (Earlier steps that did not complete are not counted here, since a
    /// replanner may have made up for them; see
    /// [`RunResult::answer_problems`].)
    Degraded {
        /// The first problem found, the answer's own first.
        problem: AnswerProblem,
    },
}

/// Why an answer is not a real one (see [`RunOutcome::Degraded`]). Step
/// indices are 0-based positions in [`RunResult::steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum AnswerProblem {
    /// The answer is empty.
    EmptyAnswer,
    /// The answer is a tool's result that stood in for the answer of a
    /// step that stopped at a limit.
    ToolResultAsAnswer {
        /// The step.
        index: usize,
    },
    /// The step that gave the answer stopped at a limit: its text is what
    /// the early-stopping policy gave (a fixed "stopped" text, or a last
    /// reply after the limit), not its answer.
    AnswerStepStopped {
        /// The step.
        index: usize,
    },
    /// An earlier step stopped at a limit.
    StepStopped {
        /// The step.
        index: usize,
    },
    /// An earlier step failed.
    StepFailed {
        /// The step.
        index: usize,
    },
    /// An earlier step was skipped.
    StepSkipped {
        /// The step.
        index: usize,
    },
}

impl AnswerProblem {
    /// Whether the problem is the answer's own (empty, or given by a step
    /// that stopped), rather than an earlier step's.
    pub fn is_about_the_answer(&self) -> bool {
        matches!(
            self,
            Self::EmptyAnswer | Self::ToolResultAsAnswer { .. } | Self::AnswerStepStopped { .. }
        )
    }
}

impl std::fmt::Display for AnswerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyAnswer => f.write_str("the answer is empty"),
            Self::ToolResultAsAnswer { index } => write!(
                f,
                "step {} stopped and the answer is a tool result, not an answer",
                index + 1
            ),
            Self::AnswerStepStopped { index } => write!(
                f,
                "step {} stopped before answering, so the answer is no answer",
                index + 1
            ),
            Self::StepStopped { index } => write!(f, "step {} stopped", index + 1),
            Self::StepFailed { index } => write!(f, "step {} failed", index + 1),
            Self::StepSkipped { index } => write!(f, "step {} was skipped", index + 1),
        }
    }
}

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
