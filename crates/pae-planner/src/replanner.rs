//! [`LlmReplanner`]: asks a chat model, after steps ran, for either the
//! final answer or a revised list of the remaining steps, and reads the
//! reply with [`ReplanOutputParser`].

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatRequest, Message, Plan, PlanError, PlanLimits, ReplanDecision, ReplanRequest,
    ReplanTrigger, Replanner, ResponseFormat, Sampling,
};

use crate::prompts::{
    END_OF_PLAN, REPLAN_RETRY_INSTRUCTIONS, REPLAN_SCHEMA_NAME, REPLANNER_SYSTEM_PROMPT,
    STRUCTURED_REPLAN_RETRY_INSTRUCTIONS, STRUCTURED_REPLANNER_SYSTEM_PROMPT, replan_schema,
};
use crate::replan_parser::ReplanOutputParser;
use crate::retry::{Rejection, call_until_accepted, checked_plan};
use crate::structured::malformed;

/// A [`Replanner`] backed by a chat model.
///
/// It shows the model the objective, the current plan, the steps done with
/// their results (as readable text), the steps not yet done and the reason
/// it is asked (a step completed, stopped at a limit, or failed, with the
/// error). The model answers with a final answer or the revised remaining
/// steps: as JSON matching [`crate::prompts::replan_schema`] when the model enforces
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
        // A trigger this replanner does not know yet: asked to review.
        None | Some(_) => out.push_str("\nWhy you are asked: to review the plan."),
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
    use expect_test::expect;
    use pae_core::{Step, StepResponse};

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
        expect![[r#"
            Objective: What is 2 + 2, doubled?

            Plan:
            1. add 2 and 2
            2. double it
            3. answer

            Steps done so far:
            1. add 2 and 2
               Result: 4
               (checked)

            Steps not yet done:
            2. double it
            3. answer

            Why you are asked: step 1 (add 2 and 2) failed: calculator is down"#]]
        .assert_eq(&describe(&request));
    }
}
