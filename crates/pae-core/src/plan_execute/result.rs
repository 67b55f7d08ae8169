//! What a run returns: [`RunResult`], [`RunOutcome`], [`RunUpdate`].

use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, TokenUsage};
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
    /// The plan the run finished with.
    pub fn final_plan(&self) -> Option<&Plan> {
        self.plans.last()
    }

    /// The number of plan revisions made.
    pub fn replans(&self) -> usize {
        self.plans.len().saturating_sub(1)
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
