//! Run events: what happened during a run, for callbacks, streams and the
//! run store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, TokenUsage};
use serde::{Deserialize, Serialize};

use crate::model::{ChatRequest, FinishReason, Message};

/// What happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// The planner produced the first plan.
    PlanCreated {
        /// The plan.
        plan: Plan,
    },
    /// The replanner revised the plan.
    PlanRevised {
        /// The new plan: the steps done so far followed by the revised
        /// remaining steps.
        plan: Plan,
        /// 1 for the first revision, and so on.
        revision: usize,
    },
    /// A step started.
    StepStarted {
        /// 0-based position in the current plan (read from `index` too,
        /// as earlier versions stored it).
        #[serde(alias = "index")]
        step_index: usize,
        /// The step.
        step: Step,
    },
    /// A model call returned (or was answered from the journal on resume).
    ModelCalled {
        /// The step the call belongs to; `None` for planning and
        /// replanning.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// The model's name.
        model: String,
        /// Tokens it reported.
        usage: TokenUsage,
        /// How long it took, in milliseconds (0 when replayed).
        latency_ms: f64,
        /// Whether the answer came from the journal instead of the model.
        #[serde(default)]
        replayed: bool,
        /// The call's number within its phase (planning, the step, the
        /// replanning), from 0.
        #[serde(default)]
        call: u32,
        /// What was asked: message and tool counts, prompt size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<RequestSummary>,
        /// Why the model stopped (`None` in events stored by earlier versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<FinishReason>,
        /// The messages sent, only when the run records message content
        /// ([`PlanAndExecute::with_message_content`](crate::PlanAndExecute::with_message_content)):
        /// prompts can hold secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<Vec<Message>>,
        /// The model's raw reply, only when the run records message
        /// content.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<Message>,
    },
    /// A model call failed with an error that may pass, and is made again
    /// after a wait (by [`Retry`](crate::Retry)).
    Retrying {
        /// The step the call belongs to; `None` for planning and
        /// replanning.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// The model's name.
        model: String,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Attempts allowed in all.
        max_attempts: u32,
        /// The wait before the next attempt, in milliseconds.
        wait_ms: f64,
        /// The error and its sources, joined by ": ".
        error: String,
    },
    /// A model's output was read only after a repair, or a fallback was
    /// taken: the run goes on, but the model did not do what was asked.
    Repaired {
        /// The step it happened in; `None` for planning and replanning.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// What was repaired or which fallback was taken.
        kind: RepairKind,
        /// Details, in words.
        detail: String,
    },
    /// An executor is calling a tool.
    ToolStarted {
        /// The step the call belongs to; `None` for a call made while
        /// planning or replanning (a planner's tool note).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// The call's number within the step (from 0).
        #[serde(default)]
        call: u32,
        /// The tool's name.
        tool: String,
        /// The input.
        input: serde_json::Value,
    },
    /// A long tool reported progress.
    ToolProgress {
        /// The step the call belongs to; `None` outside steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// The call's number within the step.
        call: u32,
        /// What the tool said.
        message: String,
    },
    /// A tool call returned.
    ToolFinished {
        /// The step the call belongs to; `None` outside steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_index: Option<usize>,
        /// The call's number within the step.
        #[serde(default)]
        call: u32,
        /// The tool's name.
        tool: String,
        /// What the model will see.
        observation: String,
        /// Whether the call failed.
        is_error: bool,
        /// How long it took, in milliseconds (0 when replayed).
        #[serde(default)]
        duration_ms: f64,
        /// Whether the result came from the journal instead of the tool.
        #[serde(default)]
        replayed: bool,
    },
    /// A step finished (completed, stopped, failed or skipped).
    StepFinished {
        /// 0-based position in the current plan (read from `index` too,
        /// as earlier versions stored it).
        #[serde(alias = "index")]
        step_index: usize,
        /// The step.
        step: Step,
        /// Its response.
        response: StepResponse,
    },
    /// The run finished with an answer.
    RunFinished {
        /// The final answer.
        output: String,
        /// Tokens spent by the whole run.
        usage: TokenUsage,
    },
    /// A durable run was resumed in a new session.
    RunResumed {
        /// 2 for the first resume, and so on.
        session: u32,
        /// Steps committed before, which will not run again.
        committed_steps: usize,
    },
    /// The plan waits for a person's approval; the run stops here.
    ApprovalRequested {
        /// The revision waiting.
        revision: u32,
    },
    /// A person approved a plan revision.
    PlanApproved {
        /// The revision.
        revision: u32,
    },
    /// A person replaced the plan; the edit is a new revision.
    PlanEdited {
        /// The new revision.
        revision: u32,
        /// The plan.
        plan: Plan,
    },
    /// A person rejected the plan; the run is cancelled.
    PlanRejected {
        /// The revision rejected.
        revision: u32,
    },
    /// The run stopped in a resumable state.
    RunInterrupted {
        /// Why, in words.
        reason: String,
    },
    /// The run failed; the matching [`RunError`](crate::RunError) is
    /// returned. The last event of a failed run.
    RunFailed {
        /// The error and its sources, outermost first, joined by ": ".
        error: String,
        /// Tokens spent before the failure, planning included.
        usage: TokenUsage,
    },
}

/// A short description of a model request: what a person reading a run
/// needs, not the whole prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// Messages sent.
    pub messages: usize,
    /// Characters of message content sent.
    pub prompt_chars: usize,
    /// Tools offered.
    pub tools: usize,
}

impl RequestSummary {
    /// The summary of `request`.
    pub fn of(request: &ChatRequest) -> Self {
        Self {
            messages: request.messages.len(),
            prompt_chars: request.messages.iter().map(|m| m.content.len()).sum(),
            tools: request.tools.len(),
        }
    }
}

/// What [`EventKind::Repaired`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RepairKind {
    /// Near-JSON (single quotes, trailing commas, comments, bare keys,
    /// missing closing brackets, …) was repaired before it parsed.
    NearJson,
    /// The structured (JSON-schema) planner failed or was unavailable, and
    /// the text planner was used instead.
    PlannerFallback,
    /// A reply written in another protocol's format was read anyway (a
    /// native tool call written as text, a text-JSON action from a native
    /// tool-calling model).
    ForeignFormat,
}

impl RepairKind {
    /// The name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NearJson => "near_json",
            Self::PlannerFallback => "planner_fallback",
            Self::ForeignFormat => "foreign_format",
        }
    }
}

impl fmt::Display for RepairKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event with the time it happened, measured from the start of the run
/// (of the session, for resumed runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Time since the run started.
    #[serde(
        rename = "at_ms",
        serialize_with = "as_millis",
        deserialize_with = "from_millis"
    )]
    pub at: Duration,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

pub(crate) fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Reads milliseconds written by [`as_millis`]; negative, huge or
/// non-finite values (from a damaged store) read as zero.
pub(crate) fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(d)?;
    Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default())
}

/// A callback that receives every event of a run.
pub type EventCallback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where a run's events go: the user's callbacks and, for streamed runs, a
/// channel. Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    started: tokio::time::Instant,
    callbacks: Arc<[EventCallback]>,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}

impl Default for EventSink {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl EventSink {
    /// A sink delivering to these callbacks; the clock starts now.
    pub fn new(callbacks: Vec<EventCallback>) -> Self {
        Self {
            started: tokio::time::Instant::now(),
            callbacks: callbacks.into(),
        }
    }

    /// Time since the sink was created (the run's start). Uses tokio's
    /// clock, so tests with a paused clock see deterministic times.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Delivers an event to every callback.
    pub fn emit(&self, kind: EventKind) {
        if self.callbacks.is_empty() {
            return;
        }
        self.deliver(&self.event(kind));
    }

    /// Whether any callback listens.
    pub fn has_callbacks(&self) -> bool {
        !self.callbacks.is_empty()
    }

    /// Stamps an event with the time since the start.
    pub fn event(&self, kind: EventKind) -> Event {
        Event {
            at: self.elapsed(),
            kind,
        }
    }

    /// Delivers a stamped event to every callback.
    pub fn deliver(&self, event: &Event) {
        for callback in self.callbacks.iter() {
            callback(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_events_name_the_index_step_index_and_still_read_index() {
        let event = EventKind::StepStarted {
            step_index: 2,
            step: Step::new("x"),
        };
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["step_index"], 2);
        assert!(json.get("index").is_none());
        // As earlier versions stored it.
        let old = serde_json::json!({"type": "step_started", "index": 2, "step": {"value": "x"}});
        assert_eq!(serde_json::from_value::<EventKind>(old).ok(), Some(event));
    }

    #[test]
    fn model_calls_stored_by_earlier_versions_still_read() {
        let old = serde_json::json!({
            "type": "model_called", "model": "m",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2},
            "latency_ms": 3.0
        });
        let Ok(EventKind::ModelCalled {
            call,
            request,
            finish_reason,
            prompt,
            ..
        }) = serde_json::from_value::<EventKind>(old)
        else {
            panic!("unreadable");
        };
        assert_eq!(
            (call, request, finish_reason, prompt),
            (0, None, None, None)
        );
    }
}
