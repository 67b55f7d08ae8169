//! How a successful run ended: [`RunOutcome`], and [`AnswerProblem`] for an
//! answer that is not a real one. Plain data, stored with the run's record,
//! so a leaf that the store's records can name without the rest of the
//! orchestrator.

use serde::{Deserialize, Serialize};

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
    /// [`RunResult::answer_problems`](crate::RunResult::answer_problems).)
    Degraded {
        /// The first problem found, the answer's own first.
        problem: AnswerProblem,
    },
}

/// Why an answer is not a real one (see [`RunOutcome::Degraded`]). Step
/// indices are 0-based positions in
/// [`RunResult::steps`](crate::RunResult::steps).
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
