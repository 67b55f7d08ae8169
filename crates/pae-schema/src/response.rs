//! `StepResponse`: what executing one step produced, with the tool calls made
//! on the way and the tokens spent.

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Token counts reported by a model, summed over any number of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct TokenUsage {
    /// Tokens in the prompts.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl TokenUsage {
    /// Usage with the given prompt and completion counts.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
        }
    }

    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        self.prompt_tokens == 0 && self.completion_tokens == 0
    }
}

impl Add for TokenUsage {
    type Output = Self;

    fn add(self, rhs: Self) -> Self {
        Self {
            prompt_tokens: self.prompt_tokens.saturating_add(rhs.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_add(rhs.completion_tokens),
        }
    }
}

impl AddAssign for TokenUsage {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for TokenUsage {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

impl fmt::Display for TokenUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tokens ({} prompt + {} completion)",
            self.total_tokens(),
            self.prompt_tokens,
            self.completion_tokens
        )
    }
}

/// How a step ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepStatus {
    /// The executor produced an answer for the step.
    #[default]
    Completed,
    /// The executor hit a limit (iterations or wall clock) and the response
    /// is whatever its early-stopping policy produced.
    Stopped {
        /// Which limit, in words.
        reason: String,
    },
    /// The step failed; the response text describes the error. Recorded when
    /// a run goes on after a failure (replanning, or independent steps of a
    /// parallel plan).
    Failed {
        /// The error, in words.
        error: String,
    },
    /// The step was not run because a step it depends on did not complete.
    Skipped {
        /// Why, in words.
        reason: String,
    },
}

impl StepStatus {
    /// Whether the step produced a usable answer.
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// One tool call made while executing a step: the action the model chose, its
/// input and what the tool returned (LangChain's intermediate step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ToolInvocation {
    /// The tool's name as the model wrote it.
    pub tool: String,
    /// The input the model gave.
    pub input: serde_json::Value,
    /// The text the model saw as the result: the tool's output, or an
    /// explanation when the call could not be made.
    pub observation: String,
    /// The model's text for this turn (its thought and action), when any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
    /// Whether the call failed (unknown tool, invalid input, tool error).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// Wall time of the tool call in milliseconds, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl ToolInvocation {
    /// A successful call.
    pub fn new(
        tool: impl Into<String>,
        input: serde_json::Value,
        observation: impl Into<String>,
    ) -> Self {
        Self {
            tool: tool.into(),
            input,
            observation: observation.into(),
            log: String::new(),
            is_error: false,
            duration_ms: None,
        }
    }
}

/// The result of executing one step (LangChain's `StepResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct StepResponse {
    /// The step's answer, as text.
    pub response: String,
    /// Structured data that came with the answer (for example a Final Answer
    /// that was a JSON object), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// How the step ended.
    #[serde(default, skip_serializing_if = "StepStatus::is_completed")]
    pub status: StepStatus,
    /// Every tool call made while executing the step, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolInvocation>,
    /// Tokens spent on the step.
    #[serde(default, skip_serializing_if = "TokenUsage::is_zero")]
    pub usage: TokenUsage,
}

impl StepResponse {
    /// A completed step with the given answer.
    pub fn new(response: impl Into<String>) -> Self {
        Self {
            response: response.into(),
            ..Self::default()
        }
    }

    /// Sets the structured data.
    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: StepStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the tool calls.
    #[must_use]
    pub fn with_tool_calls(mut self, calls: Vec<ToolInvocation>) -> Self {
        self.tool_calls = calls;
        self
    }

    /// Sets the token usage.
    #[must_use]
    pub fn with_usage(mut self, usage: TokenUsage) -> Self {
        self.usage = usage;
        self
    }
}

impl From<&str> for StepResponse {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for StepResponse {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Display for StepResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            StepStatus::Completed => f.write_str(&self.response),
            StepStatus::Stopped { reason } => write!(f, "{} (stopped: {reason})", self.response),
            StepStatus::Failed { error } => write!(f, "(failed: {error})"),
            StepStatus::Skipped { reason } => write!(f, "(skipped: {reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_and_totals() {
        let total: TokenUsage = [TokenUsage::new(3, 4), TokenUsage::new(10, 1)]
            .into_iter()
            .sum();
        assert_eq!(total, TokenUsage::new(13, 5));
        assert_eq!(total.total_tokens(), 18);
        assert_eq!(
            TokenUsage::new(u64::MAX, 1) + TokenUsage::new(1, 0),
            TokenUsage::new(u64::MAX, 1)
        );
    }

    #[test]
    fn display_shows_status() {
        assert_eq!(StepResponse::new("42").to_string(), "42");
        let stopped = StepResponse::new("partial").with_status(StepStatus::Stopped {
            reason: "iteration limit".into(),
        });
        assert_eq!(stopped.to_string(), "partial (stopped: iteration limit)");
    }
}
