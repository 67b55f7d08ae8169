//! Run events and the per-run context handed to planners and executors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, TokenUsage};
use serde::Serialize;

use crate::cancel::CancelToken;

/// What happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        /// 0-based position in the current plan.
        index: usize,
        /// The step.
        step: Step,
    },
    /// An executor is calling a tool.
    ToolStarted {
        /// The step the call belongs to.
        step_index: usize,
        /// The tool's name.
        tool: String,
        /// The input.
        input: serde_json::Value,
    },
    /// A tool call returned.
    ToolFinished {
        /// The step the call belongs to.
        step_index: usize,
        /// The tool's name.
        tool: String,
        /// What the model will see.
        observation: String,
        /// Whether the call failed.
        is_error: bool,
    },
    /// A step finished (completed, stopped, failed or skipped).
    StepFinished {
        /// 0-based position in the current plan.
        index: usize,
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
    /// The run failed; the matching [`RunError`](crate::RunError) is
    /// returned. The last event of a failed run.
    RunFailed {
        /// The error and its sources, outermost first, joined by ": ".
        error: String,
        /// Tokens spent before the failure, planning included.
        usage: TokenUsage,
    },
}

/// An event with the time it happened, measured from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Time since the run started.
    #[serde(rename = "at_ms", serialize_with = "as_millis")]
    pub at: Duration,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
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
        let event = Event {
            at: self.elapsed(),
            kind,
        };
        for callback in self.callbacks.iter() {
            callback(&event);
        }
    }
}

/// Per-run state shared by the planner, the executor and the tools of one
/// run: the event sink and a token counter. Cheap to clone; a fresh one is
/// made for every run.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    events: EventSink,
    usage: Arc<Mutex<TokenUsage>>,
    cancel: CancelToken,
}

impl RunContext {
    /// A context that delivers events to `events`.
    pub fn new(events: EventSink) -> Self {
        Self {
            events,
            usage: Arc::default(),
            cancel: CancelToken::default(),
        }
    }

    /// Sets the run's cancellation token.
    #[must_use]
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The run's cancellation token: long-running work (a tool, a model
    /// call) may watch it to stop early.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The event sink.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// Emits an event.
    pub fn emit(&self, kind: EventKind) {
        self.events.emit(kind);
    }

    /// Adds tokens spent outside any step (planning, replanning). Executors
    /// report their tokens in [`StepResponse::usage`] instead.
    pub fn record_usage(&self, usage: TokenUsage) {
        // A poisoned counter only means a callback panicked mid-update; the
        // sum is still meaningful.
        let mut total = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *total += usage;
    }

    /// Tokens recorded with [`record_usage`](Self::record_usage).
    pub fn usage(&self) -> TokenUsage {
        *self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
