//! [`LlmReplanner`]: asks a chat model, after steps ran, for either the
//! final answer or a revised list of the remaining steps; and
//! [`ReplanOutputParser`], which reads its replies.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatRequest, Message, Plan, PlanError, PlanLimits, PlanOutputParser, PlanParseError,
    ReplanDecision, ReplanRequest, ReplanTrigger, Replanner, ResponseFormat, Sampling,
};
use serde_json::Value;

use crate::noise::strip_noise;
use crate::prompts::{
    REPLAN_RETRY_INSTRUCTIONS, REPLANNER_SYSTEM_PROMPT, STRUCTURED_REPLAN_RETRY_INSTRUCTIONS,
    STRUCTURED_REPLANNER_SYSTEM_PROMPT, replan_schema,
};
use crate::retry::{Rejection, call_until_accepted, checked_plan};
use crate::structured::{StepsError, extract_json, get_key, kind, malformed, plan_steps};
use crate::text::{END_OF_PLAN, PlanningOutputParser, cut_at_end_marker};

/// The name of the JSON schema sent with structured replanning requests.
pub const REPLAN_SCHEMA_NAME: &str = "replan_decision";

/// Reads a replanner's reply into a [`ReplanDecision`].
///
/// Text replies: a line starting with `FINAL ANSWER:` (any case, optionally
/// in bold or after `#`, with `:` or a dash, or alone on its line with the
/// answer below) wins, and everything after it, up to the end marker or a
/// leaked chat-template token, is the answer; otherwise the reply is read as
/// a plan by [`PlanningOutputParser`] and its steps are the revised
/// remaining steps; a reply that is neither but is a JSON decision is read
/// as one.
///
/// JSON replies: `{"action": "finish", "answer": ...}` or
/// `{"action": "continue", "steps": [...]}`, leniently (see
/// [`parse_json`](Self::parse_json)), including LangGraph's
/// `{"action": {"response": ...}}` and `{"action": {"steps": [...]}}`. An
/// explicitly empty list of steps without an answer means the work is done:
/// [`ReplanDecision::Continue`] with no step, which ends the run with the
/// last step's response.
///
/// ```
/// use pae_core::ReplanDecision;
/// use pae_planner::ReplanOutputParser;
///
/// let parser = ReplanOutputParser::new();
/// assert_eq!(
///     parser.parse_text("**Final Answer:** 42")?,
///     ReplanDecision::Finish { answer: "42".into() }
/// );
/// let ReplanDecision::Continue { steps } = parser.parse_text("Plan:\n1. retry the search\n2. answer")? else {
///     unreachable!()
/// };
/// assert_eq!(steps.len(), 2);
/// # Ok::<(), pae_core::PlanParseError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplanOutputParser {
    plan_parser: PlanningOutputParser,
}

impl ReplanOutputParser {
    /// A parser using the default [`PlanningOutputParser`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that reads revised steps with `plan_parser`.
    pub fn with_plan_parser(plan_parser: PlanningOutputParser) -> Self {
        Self { plan_parser }
    }

    /// Reads a text reply.
    ///
    /// # Errors
    /// [`PlanParseError::Malformed`] when the reply holds neither a final
    /// answer nor a step, or the final answer is empty.
    pub fn parse_text(&self, text: &str) -> Result<ReplanDecision, PlanParseError> {
        let cleaned = strip_noise(text);
        if let Some(start) = final_answer_start(&cleaned) {
            let answer = cut_at_end_marker(&cleaned[start..], self.plan_parser.end_marker());
            let answer = answer
                .trim()
                .trim_start_matches(['*', '_'])
                .trim_end_matches("**")
                .trim();
            if answer.is_empty() {
                return Err(malformed(text, "the final answer is empty"));
            }
            return Ok(ReplanDecision::Finish {
                answer: answer.to_owned(),
            });
        }
        match self.plan_parser.parse(text) {
            Ok(plan) => Ok(ReplanDecision::Continue { steps: plan.steps }),
            // A model asked for text may still answer with a JSON decision.
            Err(_) => self.parse_json(text).map_err(|_| {
                malformed(
                    text,
                    "it has neither a line starting with \"FINAL ANSWER:\" nor a numbered list of remaining steps",
                )
            }),
        }
    }

    /// Reads a JSON reply. The action may be `finish` (also `final`,
    /// `final_answer`, `answer`, `done`, `respond`, `response`, `complete`)
    /// or `continue` (also `replan`, `plan`, `steps`, `revise`); an action
    /// that is itself an object is read as the decision (LangGraph's `Act`:
    /// `{"action": {"response": "..."}}` or `{"action": {"steps": [...]}}`).
    /// Keys match in any case and in camelCase. The answer may also be under
    /// `final_answer`, `response`, `output` or `result`, and may be any JSON
    /// value (a non-string is kept as JSON text). A bare array is a list of
    /// steps. Steps are read like [`crate::StructuredPlanParser`] reads them.
    ///
    /// Which decision:
    /// - a non-empty answer with `finish`, or with no action and no step:
    ///   [`ReplanDecision::Finish`];
    /// - steps with `continue`, with no action, or with `finish` but no
    ///   answer: [`ReplanDecision::Continue`] with those steps;
    /// - `continue` with no step but an answer: `Finish` with that answer;
    /// - an explicitly empty `steps` list (or `[]`, or `finish` with an empty
    ///   answer) and no answer: the work is done, `Continue` with no step,
    ///   which ends the run with the last step's response.
    ///
    /// # Errors
    /// [`PlanParseError::Malformed`] for invalid JSON, an unknown action, or
    /// a reply with neither an answer nor a `steps` list.
    pub fn parse_json(&self, text: &str) -> Result<ReplanDecision, PlanParseError> {
        let value = extract_json(text).map_err(|reason| malformed(text, reason))?;
        decision_from_value(&value, 0).map_err(|reason| malformed(text, reason))
    }
}

/// Where the answer after a `FINAL ANSWER:` line start begins, if any line
/// starts with it: after a colon or a dash (`Final Answer - 42`), or on the
/// next line when the label stands alone (`**Final Answer**`).
fn final_answer_start(text: &str) -> Option<usize> {
    const LABEL: &str = "final answer";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let stripped = line
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '#' | '*' | '_' | '>'));
        let Some(word) = stripped.get(..LABEL.len()) else {
            continue;
        };
        if !word.eq_ignore_ascii_case(LABEL) {
            continue;
        }
        let after = stripped[LABEL.len()..].trim_start_matches(['*', '_']);
        if let Some(answer) = after.strip_prefix([':', '：']) {
            return Some(line_start + (line.len() - answer.len()));
        }
        let spaced = after.trim_start_matches([' ', '\t']);
        if spaced.len() < after.len()
            && let Some(answer) = spaced.strip_prefix(['-', '–', '—'])
        {
            return Some(line_start + (line.len() - answer.len()));
        }
        if after
            .trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | ':'))
            .is_empty()
        {
            return Some(offset);
        }
    }
    None
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_owned()),
        other => Some(other.to_string()),
    }
    .filter(|s| !s.is_empty())
}

/// Action words that end the run.
const FINISH_ACTIONS: [&str; 12] = [
    "finish",
    "finished",
    "final",
    "final_answer",
    "answer",
    "done",
    "respond",
    "response",
    "complete",
    "completed",
    "end",
    "stop",
];
/// Action words that go on with steps.
const CONTINUE_ACTIONS: [&str; 6] = ["continue", "replan", "plan", "steps", "revise", "update"];

fn decision_from_value(value: &Value, depth: usize) -> Result<ReplanDecision, String> {
    let map = match value {
        Value::Array(_) => {
            return match plan_steps(value, 0) {
                Ok(steps) => Ok(ReplanDecision::Continue { steps }),
                // "Nothing left to do": the run ends with the last result.
                Err(StepsError::Empty) => Ok(ReplanDecision::Continue { steps: Vec::new() }),
                Err(StepsError::Malformed(reason)) => Err(reason),
            };
        }
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "expected an object with \"action\", \"answer\" and \"steps\", not {}",
                kind(other)
            ));
        }
    };
    let get = |keys: &[&str]| keys.iter().find_map(|k| get_key(map, k));
    let action = get(&["action", "decision", "type", "next_action"]);
    if let Some(inner @ Value::Object(_)) = action
        && depth < 2
    {
        // LangGraph's Act: {"action": {"response": ...}} or {"action": {"steps": [...]}}.
        return decision_from_value(inner, depth + 1);
    }
    let action = action
        .and_then(Value::as_str)
        .map(|a| a.trim().to_ascii_lowercase().replace([' ', '-'], "_"));
    let answer = get(&[
        "answer",
        "final_answer",
        "response",
        "output",
        "result",
        "final_response",
    ])
    .and_then(text_of);
    // None: no list given; Some(empty): an explicitly empty list.
    let steps = match get(&["steps", "plan", "remaining_steps", "tasks"]) {
        None | Some(Value::Null) => None,
        Some(v) => match plan_steps(v, 0) {
            Ok(steps) => Some(steps),
            Err(StepsError::Empty) => Some(Vec::new()),
            Err(StepsError::Malformed(reason)) => return Err(reason),
        },
    };
    match action.as_deref() {
        Some(a) if FINISH_ACTIONS.contains(&a) => match (steps, answer) {
            (_, Some(answer)) => Ok(ReplanDecision::Finish { answer }),
            // No answer: the steps given, or done when the list is empty.
            (Some(steps), None) => Ok(ReplanDecision::Continue { steps }),
            (None, None) => Err("the action is \"finish\" but \"answer\" is empty".into()),
        },
        Some(a) if CONTINUE_ACTIONS.contains(&a) => match (steps, answer) {
            (Some(steps), _) if !steps.is_empty() => Ok(ReplanDecision::Continue { steps }),
            (_, Some(answer)) => Ok(ReplanDecision::Finish { answer }),
            (Some(steps), None) => Ok(ReplanDecision::Continue { steps }),
            (None, None) => Err("the action is \"continue\" but there is no \"steps\" list".into()),
        },
        Some(other) => Err(format!(
            "unknown action {other:?}: use \"finish\" or \"continue\""
        )),
        None => match (steps, answer) {
            (Some(steps), _) if !steps.is_empty() => Ok(ReplanDecision::Continue { steps }),
            (_, Some(answer)) => Ok(ReplanDecision::Finish { answer }),
            (Some(steps), None) => Ok(ReplanDecision::Continue { steps }),
            (None, None) => Err(
                "expected {\"action\": \"finish\", \"answer\": ...} or {\"action\": \"continue\", \"steps\": [...]}"
                    .into(),
            ),
        },
    }
}

/// A [`Replanner`] backed by a chat model.
///
/// It shows the model the objective, the current plan, the steps done with
/// their results (as readable text), the steps not yet done and the reason
/// it is asked (a step completed, stopped at a limit, or failed, with the
/// error). The model answers with a final answer or the revised remaining
/// steps: as JSON matching [`crate::replan_schema`] when the model enforces
/// JSON schemas (and [`with_json`](Self::with_json) is on, the default), as
/// text otherwise (`FINAL ANSWER: ...` or `Plan:` and a numbered list,
/// stopping at `<END_OF_PLAN>`).
///
/// Revised steps are validated: their dependencies may name each other, and
/// names of steps already done are dropped (those results exist). A reply
/// that there is nothing left to do (an empty list of steps) is passed on as
/// [`ReplanDecision::Continue`] with no step, which ends the run with the
/// last step's response, unless the last step failed: then it is sent back. A reply
/// that cannot be read, or steps that are invalid, go back to the model with
/// the reason, up to 2 times by default, then
/// [`PlanError::RetriesExhausted`]. The usage of every call is recorded in
/// the run's context.
#[derive(Clone)]
pub struct LlmReplanner {
    model: Arc<dyn ChatModel>,
    system_prompt: String,
    structured_system_prompt: String,
    use_json: bool,
    sampling: Sampling,
    stop: Vec<String>,
    max_retries: usize,
    limits: PlanLimits,
    parser: ReplanOutputParser,
}

impl fmt::Debug for LlmReplanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmReplanner")
            .field("model", &self.model.model_name())
            .field("use_json", &self.use_json)
            .field("stop", &self.stop)
            .field("max_retries", &self.max_retries)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LlmReplanner {
    /// A replanner over `model` with the default prompts, stop
    /// `["<END_OF_PLAN>"]` for text replies, 2 retries and default limits.
    pub fn new(model: Arc<dyn ChatModel>) -> Self {
        Self {
            model,
            system_prompt: REPLANNER_SYSTEM_PROMPT.to_owned(),
            structured_system_prompt: STRUCTURED_REPLANNER_SYSTEM_PROMPT.to_owned(),
            use_json: true,
            sampling: Sampling::default(),
            stop: vec![END_OF_PLAN.to_owned()],
            max_retries: 2,
            limits: PlanLimits::default(),
            parser: ReplanOutputParser::new(),
        }
    }

    /// Sets the system message for text replies (sent literally).
    #[must_use]
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// Sets the system message for JSON replies (sent literally).
    #[must_use]
    pub fn with_structured_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.structured_system_prompt = prompt.into();
        self
    }

    /// Whether to ask for JSON when the model enforces JSON schemas (on by
    /// default); off always uses the text protocol.
    #[must_use]
    pub fn with_json(mut self, use_json: bool) -> Self {
        self.use_json = use_json;
        self
    }

    /// Sets the sampling settings.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets the stop sequences of text requests.
    #[must_use]
    pub fn with_stop<I, S>(mut self, stop: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how many times a reply that cannot be used is sent back.
    #[must_use]
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the bounds revised remaining steps must respect.
    #[must_use]
    pub fn with_limits(mut self, limits: PlanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the reply parser.
    #[must_use]
    pub fn with_parser(mut self, parser: ReplanOutputParser) -> Self {
        self.parser = parser;
        self
    }

    /// Whether the next request will ask for JSON.
    pub fn uses_json(&self) -> bool {
        self.use_json && self.model.capabilities().json_schema
    }

    /// The first request sent for `request`.
    pub fn chat_request(&self, request: &ReplanRequest) -> ChatRequest {
        let situation = describe(request);
        if self.uses_json() {
            ChatRequest::new(vec![
                Message::system(self.structured_system_prompt.clone()),
                Message::user(situation),
            ])
            .with_response_format(ResponseFormat::json_schema(
                REPLAN_SCHEMA_NAME,
                replan_schema(),
            ))
            .with_sampling(self.sampling)
        } else {
            ChatRequest::new(vec![
                Message::system(self.system_prompt.clone()),
                Message::user(situation),
            ])
            .with_stop(self.stop.iter().cloned())
            .with_sampling(self.sampling)
        }
    }

    fn accept(
        &self,
        json: bool,
        done_keys: &[String],
        after_failure: bool,
        text: &str,
    ) -> Result<ReplanDecision, Rejection> {
        let decision = if json {
            self.parser.parse_json(text)
        } else {
            self.parser.parse_text(text)
        }
        .map_err(Rejection::Parse)?;
        match decision {
            ReplanDecision::Continue { steps } if steps.is_empty() => {
                if after_failure {
                    // Ending now would answer with the failed step's error.
                    return Err(Rejection::Parse(malformed(
                        text,
                        "the last step failed, so the work is not done: give the steps that still have to be done, or a final answer",
                    )));
                }
                Ok(ReplanDecision::Continue { steps })
            }
            ReplanDecision::Continue { mut steps } => {
                let own: Vec<String> = {
                    let plan = Plan {
                        steps: steps.clone(),
                    };
                    (0..plan.len()).filter_map(|i| plan.step_key(i)).collect()
                };
                for step in &mut steps {
                    step.depends_on
                        .retain(|dep| own.contains(dep) || !done_keys.contains(dep));
                }
                let plan = checked_plan(Plan { steps }, &self.limits, text)?;
                Ok(ReplanDecision::Continue { steps: plan.steps })
            }
            finish => Ok(finish),
        }
    }
}

#[async_trait]
impl Replanner for LlmReplanner {
    async fn replan(&self, request: &ReplanRequest) -> Result<ReplanDecision, PlanError> {
        let json = self.uses_json();
        let chat = self.chat_request(request);
        let done_keys: Vec<String> = request
            .completed
            .iter()
            .enumerate()
            .map(|(i, (step, _))| step.id.clone().unwrap_or_else(|| (i + 1).to_string()))
            .collect();
        let after_failure = matches!(request.trigger, Some(ReplanTrigger::StepFailed { .. }));
        let instructions = if json {
            STRUCTURED_REPLAN_RETRY_INSTRUCTIONS
        } else {
            REPLAN_RETRY_INSTRUCTIONS
        };
        call_until_accepted(
            self.model.as_ref(),
            chat,
            self.max_retries,
            &request.context,
            instructions,
            |text| self.accept(json, &done_keys, after_failure, text),
        )
        .await
    }
}

/// The situation shown to the replanner, as readable text.
fn describe(request: &ReplanRequest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Objective: {}", request.objective);
    out.push_str("\nPlan:\n");
    if request.plan.is_empty() {
        out.push_str("(no plan)\n");
    } else {
        let _ = writeln!(out, "{}", request.plan);
    }
    out.push_str("\nSteps done so far:\n");
    if request.completed.is_empty() {
        out.push_str("(none)\n");
    }
    for (i, (step, response)) in request.completed.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, step.value);
        let _ = writeln!(
            out,
            "   Result: {}",
            indent_continuation(&response.to_string())
        );
    }
    out.push_str("\nSteps not yet done:\n");
    if request.remaining.is_empty() {
        out.push_str("(none)\n");
    }
    let done = request.completed.len();
    for (i, step) in request.remaining.iter().enumerate() {
        let _ = writeln!(out, "{}. {step}", done + i + 1);
    }
    let last = request
        .completed
        .last()
        .map(|(step, _)| format!("step {} ({})", done, step.value))
        .unwrap_or_else(|| String::from("the last step"));
    match &request.trigger {
        Some(ReplanTrigger::StepCompleted) => {
            let _ = write!(out, "\nWhy you are asked: {last} completed.");
        }
        Some(ReplanTrigger::StepStopped { reason }) => {
            let _ = write!(out, "\nWhy you are asked: {last} stopped early: {reason}.");
        }
        Some(ReplanTrigger::StepFailed { error }) => {
            let _ = write!(out, "\nWhy you are asked: {last} failed: {error}");
        }
        None => out.push_str("\nWhy you are asked: to review the plan."),
    }
    out
}

/// Indents every line after the first so a multi-line result stays under
/// its step.
fn indent_continuation(text: &str) -> String {
    text.replace('\n', "\n   ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::{Step, StepResponse};

    #[test]
    fn final_answer_lines() {
        let parser = ReplanOutputParser::new();
        let finish = |a: &str| Ok(ReplanDecision::Finish { answer: a.into() });
        assert_eq!(parser.parse_text("FINAL ANSWER: 42"), finish("42"));
        assert_eq!(
            parser.parse_text("Thinking...\n## Final answer:\nParis\nis the capital<END_OF_PLAN>x"),
            finish("Paris\nis the capital")
        );
        assert_eq!(parser.parse_text("**Final Answer**: yes"), finish("yes"));
        assert!(matches!(
            parser.parse_text("FINAL ANSWER:   "),
            Err(PlanParseError::Malformed { .. })
        ));
        assert!(matches!(
            parser.parse_text("I am not sure."),
            Err(PlanParseError::Malformed { .. })
        ));
        // A step that mentions the final answer is a step.
        assert_eq!(
            parser.parse_text("Plan:\n1. Give the final answer: 4"),
            Ok(ReplanDecision::Continue {
                steps: vec![Step::new("Give the final answer: 4")]
            })
        );
    }

    #[test]
    fn json_decisions() {
        let parser = ReplanOutputParser::new();
        assert_eq!(
            parser.parse_json(r#"{"action":"finish","answer":"42","steps":[]}"#),
            Ok(ReplanDecision::Finish {
                answer: "42".into()
            })
        );
        assert_eq!(
            parser.parse_json(r#"{"action":"Final Answer","answer":42}"#),
            Ok(ReplanDecision::Finish {
                answer: "42".into()
            })
        );
        assert_eq!(
            parser.parse_json(r#"{"action":"continue","answer":"","steps":[{"id":"3","description":"retry","depends_on":[]}]}"#),
            Ok(ReplanDecision::Continue {
                steps: vec![Step::new("retry").with_id("3")]
            })
        );
        assert_eq!(
            parser.parse_json(r#"["retry"]"#),
            Ok(ReplanDecision::Continue {
                steps: vec![Step::new("retry")]
            })
        );
        assert_eq!(
            parser.parse_json(r#"{"final_answer": "done"}"#),
            Ok(ReplanDecision::Finish {
                answer: "done".into()
            })
        );
        // An explicitly empty list of steps: nothing is left to do.
        assert_eq!(
            parser.parse_json(r#"{"action":"continue","steps":[]}"#),
            Ok(ReplanDecision::Continue { steps: vec![] })
        );
        for bad in [
            r#"{"action":"finish","answer":""}"#,
            r#"{"action":"continue"}"#,
            r#"{"action":"dance"}"#,
            r#"{}"#,
            "42",
            "not json",
        ] {
            assert!(
                matches!(
                    parser.parse_json(bad),
                    Err(PlanParseError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_situation_is_readable_text() {
        let request = ReplanRequest {
            objective: "What is 2 + 2, doubled?".into(),
            plan: Plan::new(["add 2 and 2", "double it", "answer"]),
            completed: vec![(Step::new("add 2 and 2"), StepResponse::new("4\n(checked)"))],
            remaining: vec![Step::new("double it"), Step::new("answer")],
            trigger: Some(ReplanTrigger::StepFailed {
                error: "calculator is down".into(),
            }),
            ..ReplanRequest::default()
        };
        assert_eq!(
            describe(&request),
            "Objective: What is 2 + 2, doubled?\n\
             \nPlan:\n1. add 2 and 2\n2. double it\n3. answer\n\
             \nSteps done so far:\n1. add 2 and 2\n   Result: 4\n   (checked)\n\
             \nSteps not yet done:\n2. double it\n3. answer\n\
             \nWhy you are asked: step 1 (add 2 and 2) failed: calculator is down"
        );
    }
}
