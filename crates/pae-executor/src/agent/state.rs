//! The state of one step's loop, and the small types the loop passes
//! around (the fixed parts of the step prompt, a final answer, how the
//! loop ended).

use std::hash::{Hash, Hasher};

use pae_core::{
    ChatResponse, Inputs, Message, PromptValues, RunContext, TokenUsage, ToolInvocation,
};
use serde_json::Value;

use crate::prompt;

/// How the loop ended.
pub(super) enum Outcome {
    Finished(Finish),
    Stopped(String),
}

/// A final answer: its text and, when it was not a string, its value.
pub(super) struct Finish {
    pub(super) text: String,
    pub(super) data: Option<Value>,
}

impl Finish {
    pub(super) fn text(text: &str) -> Self {
        Self {
            text: text.trim().to_owned(),
            data: None,
        }
    }

    pub(super) fn from_value(answer: Value) -> Self {
        match answer {
            Value::String(text) => Self::text(&text),
            other => Self {
                text: other.to_string(),
                data: Some(other),
            },
        }
    }
}

/// The parts of the step message fixed for the whole step.
pub(super) struct StepPrompt<'a> {
    pub(super) previous_steps: &'a str,
    pub(super) current_step: &'a str,
    pub(super) objective: &'a str,
    pub(super) step_number: &'a str,
    pub(super) inputs: &'a Inputs,
}

/// The step prompt's values with this iteration's scratchpad.
pub(super) struct PromptVars<'a> {
    pub(super) step: &'a StepPrompt<'a>,
    pub(super) scratchpad: &'a str,
}

impl PromptValues for PromptVars<'_> {
    fn value(&self, name: &str) -> Option<&str> {
        match name {
            "previous_steps" => Some(self.step.previous_steps),
            "current_step" => Some(self.step.current_step),
            "objective" => Some(self.step.objective),
            "step_number" => Some(self.step.step_number),
            "agent_scratchpad" => Some(self.scratchpad),
            other => self.step.inputs.get(other).map(String::as_str),
        }
    }
}

/// A tool call in flight, so a time-out can still record it.
pub(super) struct PendingCall {
    pub(super) tool: String,
    pub(super) input: Value,
    pub(super) log: String,
    pub(super) started: tokio::time::Instant,
}

/// The state of one step's loop.
pub(super) struct StepRun {
    /// The run context scoped to this step: every model and tool call goes
    /// through it.
    pub(super) context: RunContext,
    pub(super) calls: Vec<ToolInvocation>,
    /// The text protocol's record of the work so far.
    pub(super) scratchpad: String,
    /// The native protocol's conversation after the step message.
    pub(super) messages: Vec<Message>,
    pub(super) usage: TokenUsage,
    pub(super) iterations: usize,
    pub(super) parse_failures: usize,
    pub(super) pending: Option<PendingCall>,
    /// Set when the model stopped giving usable replies; ends the loop.
    pub(super) gave_up: Option<String>,
    /// The last successful tool result, without notes added for the model:
    /// its call's position in `calls` and the length its observation had
    /// before any note.
    pub(super) last_result: Option<(usize, usize)>,
    /// Identical successful calls made again.
    pub(super) repeats: usize,
    /// The successful calls: a hash of (tool name as written, arguments as
    /// sent) and the position in `calls`. Spotting a repeat compares hashes
    /// (a step makes a handful of calls, bounded by the iteration limit)
    /// and copies nothing.
    pub(super) succeeded: Vec<(u64, usize)>,
}

/// The key of a call in [`StepRun::succeeded`]: a hash of the tool name as
/// written and the arguments as sent. Fx rather than SipHash: the key only
/// narrows the search (equal keys are compared in full), and nothing here
/// comes from an adversary that could make it slow.
pub(super) fn call_key(name: &str, args: &Value) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    name.hash(&mut hasher);
    hash_value(args, &mut hasher);
    hasher.finish()
}

/// Hashes a JSON value consistently with its equality, which ignores the
/// order of object keys. serde_json's own `Hash` gets that by copying and
/// sorting every object's entries; here each entry is hashed on its own
/// and the results are summed, which no order changes, and nothing is
/// allocated.
fn hash_value(value: &Value, state: &mut impl Hasher) {
    match value {
        Value::Null => state.write_u8(0),
        Value::Bool(flag) => {
            state.write_u8(1);
            flag.hash(state);
        }
        Value::Number(number) => {
            state.write_u8(2);
            number.hash(state);
        }
        Value::String(text) => {
            state.write_u8(3);
            text.hash(state);
        }
        Value::Array(items) => {
            state.write_u8(4);
            state.write_usize(items.len());
            for item in items {
                hash_value(item, state);
            }
        }
        Value::Object(object) => {
            state.write_u8(5);
            state.write_usize(object.len());
            let mut sum = 0u64;
            for (key, item) in object {
                let mut entry = rustc_hash::FxHasher::default();
                key.hash(&mut entry);
                hash_value(item, &mut entry);
                sum = sum.wrapping_add(entry.finish());
            }
            state.write_u64(sum);
        }
    }
}

impl StepRun {
    /// A loop that has not started, with every call going through
    /// `context`. (Not `..Default::default()`: that would make a whole run
    /// context, clock reading included, only to drop it.)
    pub(super) fn new(context: RunContext) -> Self {
        Self {
            context,
            calls: Vec::new(),
            scratchpad: String::new(),
            messages: Vec::new(),
            usage: TokenUsage::default(),
            iterations: 0,
            parse_failures: 0,
            pending: None,
            gave_up: None,
            last_result: None,
            repeats: 0,
            succeeded: Vec::new(),
        }
    }

    /// Whether a call to `name` with `args` (whose [`call_key`] is `key`)
    /// succeeded before in this step.
    pub(super) fn succeeded_before(&self, key: u64, name: &str, args: &Value) -> bool {
        self.succeeded.iter().any(|&(hash, i)| {
            hash == key
                && self
                    .calls
                    .get(i)
                    .is_some_and(|call| call.tool == name && call.input == *args)
        })
    }

    /// Notes that the call about to be recorded (the next in `calls`),
    /// whose [`call_key`] is `key`, succeeded.
    pub(super) fn record_success(&mut self, key: u64) {
        let position = self.calls.len();
        self.succeeded.push((key, position));
    }

    /// Records a tool call. The list is kept for the rest of the run, so
    /// it starts with room for one call (most steps make one or none) and
    /// is seldom left with spare room to give back.
    pub(super) fn record(&mut self, call: ToolInvocation) {
        if self.calls.capacity() == 0 {
            self.calls.reserve_exact(1);
        }
        self.calls.push(call);
    }

    /// The last successful tool result, without notes added for the model.
    pub(super) fn last_result(&self) -> Option<&str> {
        let (at, len) = self.last_result?;
        self.calls.get(at)?.observation.get(..len)
    }

    pub(super) fn add_usage(&mut self, response: &ChatResponse) {
        if let Some(usage) = response.usage {
            self.usage += usage;
        }
    }

    /// Records a tool call the time limit cancelled.
    pub(super) fn abandon_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let elapsed = pending.started.elapsed();
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.context.record_abandoned_call(
            &pending.tool,
            prompt::TOOL_CANCELLED,
            elapsed.as_secs_f64() * 1000.0,
        );
        self.record(ToolInvocation {
            tool: pending.tool,
            input: pending.input,
            observation: prompt::TOOL_CANCELLED.to_owned(),
            log: pending.log,
            is_error: true,
            duration_ms: Some(duration_ms),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_keys_follow_json_equality() {
        let a = json!({"x": 1, "y": [1, "two", null, {"z": true}]});
        let b: Value =
            serde_json::from_str(r#"{"y": [1, "two", null, {"z": true}], "x": 1}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(call_key("calc", &a), call_key("calc", &b));
        assert_ne!(call_key("calc", &a), call_key("other", &a));
        assert_ne!(
            call_key("calc", &json!({"x": 1})),
            call_key("calc", &json!({"x": 2}))
        );
        assert_ne!(
            call_key("calc", &json!([1, 2])),
            call_key("calc", &json!([2, 1]))
        );
        assert_ne!(call_key("calc", &json!("1")), call_key("calc", &json!(1)));
    }
}
