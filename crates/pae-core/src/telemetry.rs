//! Observability beyond the event callback: `tracing` spans named and
//! attributed after OpenTelemetry's GenAI semantic conventions, and the
//! ambient run context through which code that holds no
//! [`RunContext`](crate::RunContext) (middleware, parsers) still reports
//! events.
//!
//! # Spans
//! Every span is at `INFO` level; its target is the module that opens it
//! (`pae_core::…`). With no `tracing` subscriber installed they cost an
//! atomic load each and record nothing.
//!
//! | span | opened for | attributes |
//! | --- | --- | --- |
//! | `invoke_agent` | one session of a run | `gen_ai.operation.name` = `invoke_agent`, `gen_ai.conversation.id` and `pae.run.id` (the run id), `pae.resumed`, then `pae.outcome`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `error.type` |
//! | `plan` | the first plan | `pae.plan.revision` (0), then `pae.plan.steps` |
//! | `replan` | each replanning | `pae.plan.revision` (the revision revised), `pae.replan.trigger`, then `pae.replan.decision` |
//! | `step` | each step that runs | `pae.step.index`, `pae.plan.revision`, then `pae.step.status` |
//! | `chat` | each model call through [`RunContext::chat`](crate::RunContext::chat) | `gen_ai.operation.name` = `chat`, `gen_ai.request.model`, `gen_ai.request.max_tokens` / `temperature` / `seed` when set, `pae.call`, then `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`, `pae.replayed`, `error.type` |
//! | `execute_tool` | each tool call through [`RunContext::call_tool`](crate::RunContext::call_tool) | `gen_ai.operation.name` = `execute_tool`, `gen_ai.tool.name`, `gen_ai.tool.type` = `function`, `gen_ai.tool.call.id` (the call's idempotency key, `RUN/REVISION/STEP/CALL`), then `pae.replayed`, `error.type` |
//!
//! Span names are the operation alone (`chat`, not `chat MODEL`), so that
//! filters and tests can name them; the model and tool are attributes.
//! `gen_ai.response.finish_reasons` holds the one reason as a string.
//!
//! Prompts, replies, tool arguments and tool results can hold secrets, so
//! they are recorded only when the run records message content
//! ([`PlanAndExecute::with_message_content`](crate::PlanAndExecute::with_message_content)):
//! then `chat` spans carry `gen_ai.input.messages` and
//! `gen_ai.output.messages`, `execute_tool` spans
//! `gen_ai.tool.call.arguments` and `gen_ai.tool.call.result` (JSON text),
//! and [`ModelCalled`](crate::EventKind::ModelCalled) events the prompt
//! and the reply.
//!
//! # Log events
//! - [`Retry`](crate::Retry) logs a `WARN` for each retry, with the
//!   attempt, the wait and the error, and emits
//!   [`Retrying`](crate::EventKind::Retrying);
//! - parsers that repair near-JSON or take a fallback call [`repaired`],
//!   which logs at `DEBUG` and emits [`Repaired`](crate::EventKind::Repaired).
//!
//! # The ambient run context
//! The orchestrator runs the planner, each step and each replanning, and
//! [`RunContext::chat`](crate::RunContext::chat) and
//! [`RunContext::call_tool`](crate::RunContext::call_tool) run each call,
//! with their context as the *current* one
//! ([`RunContext::current`](crate::RunContext::current)): while the future
//! is polled, the context sits in a thread-local, and it is put back after
//! each poll (so concurrent steps on one task each see their own). A
//! future spawned onto another task does not inherit it.

use tracing::field::Empty;

use crate::context::with_current;
use crate::event::{EventKind, RepairKind};

pub(crate) mod error_type;

use error_type::run_error_type;

/// Reports that a model's output was read only after a repair, or that a
/// fallback was taken: logs it at `DEBUG` and, inside a run, emits
/// [`Repaired`](crate::EventKind::Repaired) to the run's events. For
/// parsers and strategies; costs nothing measurable outside a run with no
/// subscriber.
pub fn repaired(kind: RepairKind, detail: impl Into<String>) {
    let detail = detail.into();
    tracing::debug!(repair = kind.as_str(), detail = %detail, "model output repaired");
    with_current(|context| {
        context.emit(EventKind::Repaired {
            step_index: context.scope().step_index(),
            kind,
            detail,
        });
    });
}

/// Reports a retry of a model call: a `WARN` log and, inside a run, a
/// [`Retrying`](crate::EventKind::Retrying) event.
pub(crate) fn retrying(
    model: impl FnOnce() -> String,
    attempt: u32,
    max_attempts: u32,
    wait: std::time::Duration,
    error: &crate::ProviderError,
) {
    let chain = crate::plan_execute::error_chain(error);
    let wait_ms = wait.as_secs_f64() * 1000.0;
    tracing::warn!(
        attempt,
        max_attempts,
        wait_ms,
        error = %chain,
        "model call failed; retrying"
    );
    with_current(|context| {
        context.emit(EventKind::Retrying {
            step_index: context.scope().step_index(),
            model: model(),
            attempt,
            max_attempts,
            wait_ms,
            error: chain,
        });
    });
}

/// The span of one step.
pub(crate) fn step_span(index: usize, revision: u32) -> tracing::Span {
    tracing::info_span!(
        "step",
        "pae.step.index" = index,
        "pae.plan.revision" = revision,
        "pae.step.status" = Empty,
        "error.type" = Empty,
        "otel.status_code" = Empty,
    )
}

/// Records how a step ended on its span.
pub(crate) fn record_step(
    span: &tracing::Span,
    result: &Result<crate::StepResponse, crate::ExecError>,
) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(response) => {
            span.record("pae.step.status", step_status_name(&response.status));
            if !response.status.is_completed() {
                span.record("error.type", step_status_name(&response.status));
            }
        }
        Err(_) => {
            span.record("pae.step.status", "failed");
            span.record("error.type", "step_error");
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// A step status's name.
pub(crate) fn step_status_name(status: &crate::StepStatus) -> &'static str {
    match status {
        crate::StepStatus::Completed => "completed",
        crate::StepStatus::Stopped { .. } => "stopped",
        crate::StepStatus::Failed { .. } => "failed",
        crate::StepStatus::Skipped { .. } => "skipped",
    }
}

/// The span of one session of a run.
pub(crate) fn run_span(resumed: bool) -> tracing::Span {
    tracing::info_span!(
        "invoke_agent",
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.conversation.id" = Empty,
        "pae.run.id" = Empty,
        "pae.resumed" = resumed,
        "pae.outcome" = Empty,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "error.type" = Empty,
        "otel.status_code" = Empty,
    )
}

/// Records how a session ended on its span.
pub(crate) fn record_run(
    span: &tracing::Span,
    result: &Result<crate::RunResult, crate::RunError>,
    planning_usage: crate::TokenUsage,
) {
    if span.is_disabled() {
        return;
    }
    let usage = match result {
        Ok(result) => {
            let outcome = serde_json::to_value(result.outcome)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                .unwrap_or_default();
            span.record("pae.outcome", outcome.as_str());
            result.usage
        }
        Err(error) => {
            span.record("error.type", run_error_type(error));
            span.record("otel.status_code", "ERROR");
            error.partial().map_or(planning_usage, |p| p.usage)
        }
    };
    span.record("gen_ai.usage.input_tokens", usage.prompt_tokens);
    span.record("gen_ai.usage.output_tokens", usage.completion_tokens);
}
