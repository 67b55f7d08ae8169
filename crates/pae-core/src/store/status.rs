//! Where a run stands and why it stopped: plain data that the store's
//! records and the run's errors ([`RunError`](crate::RunError)) both name,
//! kept in a leaf so that neither depends on the other for it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created; the planner has not produced a stored plan yet.
    Planning,
    /// A plan waits for a person to approve, edit or reject it.
    AwaitingApproval,
    /// Executing (or ready to: a running run whose lease expired is
    /// resumable, for example after its process was killed).
    Running,
    /// Stopped and resumable: cancelled, a budget ran out, or a tool call
    /// with side effects is in doubt (see [`Interruption`]).
    Interrupted,
    /// Finished with an answer.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Rejected or cancelled for good.
    Cancelled,
}

impl RunStatus {
    /// The status as stored and printed (`awaiting_approval`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planning => "planning",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s form.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "planning" => Self::Planning,
            "awaiting_approval" => Self::AwaitingApproval,
            "running" => Self::Running,
            "interrupted" => Self::Interrupted,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended for good (succeeded, failed, cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Tokens.
    Tokens,
    /// Tool calls.
    ToolCalls,
    /// Wall time.
    WallTime,
    /// Cost.
    Cost,
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tokens => "token",
            Self::ToolCalls => "tool-call",
            Self::WallTime => "wall-time",
            Self::Cost => "cost",
        })
    }
}

/// Why a run stopped in a resumable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Interruption {
    /// The run was cancelled (Ctrl-C, a signal, a cancel token).
    Cancelled,
    /// A tool with side effects was called and its result was never
    /// recorded: it may or may not have acted. It is not called again
    /// automatically; check the effect, then resume (the call is retried
    /// with the same idempotency key) or reject the run.
    ToolCallInDoubt {
        /// The step, 0-based.
        step_index: usize,
        /// The tool.
        tool: String,
        /// The key the tool was given.
        idempotency_key: String,
        /// The input it was given.
        input: Value,
    },
    /// A budget ran out.
    BudgetExceeded {
        /// Which one.
        budget: BudgetKind,
        /// Its limit.
        limit: f64,
        /// What had been spent.
        spent: f64,
    },
}

impl fmt::Display for Interruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("cancelled"),
            Self::ToolCallInDoubt {
                step_index,
                tool,
                idempotency_key,
                ..
            } => write!(
                f,
                "tool {tool:?} in step {} was called (idempotency key {idempotency_key}) and its \
                 result was never recorded; it is not idempotent, so it is not called again \
                 automatically: check whether it acted, then resume to call it again with the \
                 same key, or reject the run",
                step_index + 1
            ),
            Self::BudgetExceeded {
                budget,
                limit,
                spent,
            } => write!(f, "the {budget} budget ran out ({spent} of {limit})"),
        }
    }
}
