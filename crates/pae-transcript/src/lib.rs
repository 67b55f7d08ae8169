//! The `pae-transcript/2` format: what `pae run --json FILE` writes about a
//! run, as a published interface — its JSON Schema ([`SCHEMA`], also the
//! file `transcript.schema.json` of this crate) and the types to read it
//! ([`Transcript`], [`from_str`]).
//!
//! Depend on it to read transcripts (dashboards, evaluations, tests of an
//! agent driven through the command line) or to write them. It depends on
//! serde alone: the run's raw events are kept as JSON values (each one a
//! `pae_core::Event`; `serde_json::from_value` reads them where pae-core is
//! at hand), so readers do not pull in the agent.
//!
//! Readers are lenient: fields added by later `pae-transcript/2` writers
//! are ignored, optional ones default. A new major shape gets a new
//! version (`pae-transcript/3`), which [`from_str`] refuses.
//!
//! # Example
//! ```
//! let text = r#"{
//!   "format": "pae-transcript/2",
//!   "run_id": "r1",
//!   "objective": "add 2 and 3",
//!   "model": {"provider": "scripted", "model": "scripted", "load_ms": 0.0},
//!   "settings": {},
//!   "plans": [{"revision": 0, "at_ms": 1.0, "steps": [{"value": "add them"}]}],
//!   "steps": [{
//!     "step_index": 0, "revision": 0, "value": "add them", "status": "completed",
//!     "response": "5", "started_ms": 1.0, "finished_ms": 3.0, "elapsed_ms": 2.0,
//!     "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
//!     "model_calls": [], "tool_calls": [{"call": 0, "tool": "calculator",
//!       "input": {"expression": "2+3"}, "observation": "5", "is_error": false,
//!       "started_ms": 1.5, "finished_ms": 2.0, "duration_ms": 0.5}]
//!   }],
//!   "planner_calls": [],
//!   "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
//!   "timings": {"model_load_ms": 0.0, "run_ms": 3.0, "total_ms": 4.0},
//!   "answer": "5",
//!   "events": []
//! }"#;
//! let transcript = pae_transcript::from_str(text).unwrap();
//! assert_eq!(transcript.steps[0].status, pae_transcript::StepState::Completed);
//! assert_eq!(transcript.steps[0].tool_calls[0].observation.as_deref(), Some("5"));
//! assert_eq!(transcript.answer.as_deref(), Some("5"));
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format this crate reads and writes.
pub const FORMAT: &str = "pae-transcript/2";

/// The JSON Schema (draft 2020-12) of the format.
pub const SCHEMA: &str = include_str!("../transcript.schema.json");

/// Why a transcript could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The text is not JSON of the transcript's shape.
    #[error("not a pae transcript")]
    Json(#[source] serde_json::Error),
    /// The transcript is of another format or version.
    #[error("the transcript is {found:?}, not {FORMAT}")]
    Format {
        /// The `format` it declares.
        found: String,
    },
}

/// Reads a transcript.
///
/// # Errors
/// [`TranscriptError::Format`] for another format or version (checked
/// first), [`TranscriptError::Json`] for text of another shape.
pub fn from_str(text: &str) -> Result<Transcript, TranscriptError> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        format: String,
    }
    let head: Head = serde_json::from_str(text).map_err(TranscriptError::Json)?;
    if head.format != FORMAT {
        return Err(TranscriptError::Format { found: head.format });
    }
    serde_json::from_str(text).map_err(TranscriptError::Json)
}

/// A run, as the command line saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Always [`FORMAT`].
    pub format: String,
    /// The run's id in the run store.
    pub run_id: String,
    /// What the run was to achieve.
    pub objective: String,
    /// The model that answered.
    pub model: ModelInfo,
    /// The run's settings, as the command line took them (planner, tools,
    /// limits, sampling); free-form.
    #[serde(default)]
    pub settings: Value,
    /// Every plan revision, first plan first.
    pub plans: Vec<PlanRecord>,
    /// Every step that started or finished in this session, in the order
    /// they started.
    pub steps: Vec<StepRecord>,
    /// Model calls outside any step (planning and replanning), in order.
    #[serde(default)]
    pub planner_calls: Vec<ModelCallRecord>,
    /// Tool calls outside any step (made while planning or replanning,
    /// such as the time tool's date for the planner), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planner_tool_calls: Vec<ToolCallRecord>,
    /// Tokens the run spent.
    pub usage: Usage,
    /// How long things took.
    pub timings: Timings,
    /// How the run ended, when it returned a result: `pae_core::RunOutcome`
    /// as JSON (`{"kind": "completed"}`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    /// The answer, when the run gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Why the answer is not a real one (a step stopped at a limit, a tool
    /// result or the fixed stop text standing in for the answer); the
    /// command then exits with code 9. Empty when the answer is a real one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answer_problems: Vec<AnswerProblemRecord>,
    /// Why the command failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Every event of the session, in order: `pae_core::Event` as JSON
    /// (`{"at_ms": …, "type": "step_started", …}`).
    #[serde(default)]
    pub events: Vec<Value>,
}

/// One reason why a run's answer is not a real one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerProblemRecord {
    /// What kind: `empty_answer`, `tool_result_as_answer`,
    /// `answer_step_stopped`, `step_stopped`, `step_failed`, `step_skipped`.
    pub kind: String,
    /// The 1-based step it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// In words.
    pub message: String,
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `local`, `openai`, `ollama` or `scripted`.
    pub provider: String,
    /// The model's name.
    pub model: String,
    /// The GGUF file, for `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The server, for `openai` and `ollama` (without credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// What the model supports (`native_tools`, `json_schema`,
    /// `streaming`).
    #[serde(default)]
    pub capabilities: Value,
    /// How long loading it took, in milliseconds.
    #[serde(default)]
    pub load_ms: f64,
}

/// One plan revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// 0 for the first plan, then 1, 2, … for each revision.
    pub revision: usize,
    /// When it was made, in milliseconds since the session started.
    pub at_ms: f64,
    /// Its steps.
    pub steps: Vec<PlanStep>,
}

/// A step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What to do.
    pub value: String,
    /// Its id, when the plan declares dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The ids of the steps it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// It answered.
    Completed,
    /// It stopped at a limit; `reason` says which.
    Stopped,
    /// It failed; `error` says why.
    Failed,
    /// It did not run because a step it depends on did not complete;
    /// `reason` says which.
    Skipped,
    /// It started and the session ended before it finished (an error, a
    /// signal, a budget).
    Unfinished,
}

impl StepState {
    /// The name in the format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Unfinished => "unfinished",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step that ran (or was skipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based position in the plan revision it belonged to.
    pub step_index: usize,
    /// The plan revision it belonged to.
    pub revision: usize,
    /// What the step was to do (as planned; `#E1` references unresolved).
    pub value: String,
    /// Its id, when the plan declares dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The ids of the steps it needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// How it ended.
    pub status: StepState,
    /// Why it stopped or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its answer (absent while unfinished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Structured data the executor returned with the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// When it started, in milliseconds since the session started.
    pub started_ms: f64,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<f64>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// Tokens its model calls spent.
    #[serde(default)]
    pub usage: Usage,
    /// Its model calls, in order.
    #[serde(default)]
    pub model_calls: Vec<ModelCallRecord>,
    /// Its tool calls, in order, each once.
    #[serde(default)]
    pub tool_calls: Vec<ToolCallRecord>,
}

/// One model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCallRecord {
    /// Its number within the step (or the planning, or a replanning).
    pub call: u32,
    /// The model's name.
    pub model: String,
    /// When it returned, in milliseconds since the session started.
    pub at_ms: f64,
    /// How long it took (0 when replayed from the journal).
    pub latency_ms: f64,
    /// Tokens it spent.
    pub usage: Usage,
    /// Why the model stopped: `stop`, `length`, `tool_calls`,
    /// `content_filter` or the provider's own word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Whether the answer came from the journal of an earlier session.
    #[serde(default)]
    pub replayed: bool,
    /// What was sent, in numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSummary>,
    /// The messages sent (`{"role", "content", …}`), only when the run
    /// recorded message content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Vec<Value>>,
    /// The model's raw reply message, only when the run recorded message
    /// content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Value>,
}

/// A model request, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// Messages sent.
    pub messages: usize,
    /// Characters of message content sent.
    pub prompt_chars: usize,
    /// Tools offered.
    pub tools: usize,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Its number within the step (model and tool calls count together).
    pub call: u32,
    /// The tool.
    pub tool: String,
    /// What it was given.
    pub input: Value,
    /// What the model saw back (absent while unfinished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<String>,
    /// Whether the call failed (or was refused).
    #[serde(default)]
    pub is_error: bool,
    /// When it started, in milliseconds since the session started.
    pub started_ms: f64,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<f64>,
    /// How long the tool ran (0 when replayed or refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Whether the result came from the journal of an earlier session.
    #[serde(default)]
    pub replayed: bool,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Counts with their total.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// How long things took, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Loading the model.
    pub model_load_ms: f64,
    /// The run (planning and steps).
    pub run_ms: f64,
    /// The whole command.
    pub total_ms: f64,
}

/// Why the command failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The failure's kind (`run_failed`, `unreachable`, …).
    pub kind: String,
    /// The exit code.
    pub exit_code: u8,
    /// The message printed.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_formats_are_refused() {
        let err = from_str(r#"{"format": "pae-transcript/1"}"#).unwrap_err();
        assert!(
            matches!(err, TranscriptError::Format { ref found } if found == "pae-transcript/1")
        );
        assert!(matches!(
            from_str("[1]").unwrap_err(),
            TranscriptError::Json(_)
        ));
    }

    #[test]
    fn the_schema_is_json_and_names_the_format() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["properties"]["format"]["const"], FORMAT);
    }
}
