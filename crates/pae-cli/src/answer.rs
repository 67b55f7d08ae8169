//! Whether a finished run's answer is a real one: no step stopped, failed
//! or was skipped, and the answer is not empty, not a tool's result
//! standing in for an answer, and not the fixed "stopped" text.

use pae_core::{AnswerProblem, RunResult, StepStatus};
use serde::Serialize;

/// One reason why the answer is not a real one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    /// What kind (`step_stopped`, `tool_result_as_answer`, …).
    pub(crate) kind: &'static str,
    /// The 1-based step it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) step: Option<usize>,
    /// In words.
    pub(crate) message: String,
}

/// Every reason why `result`'s answer is not a real one, in words; empty
/// when it is.
pub(crate) fn problems(result: &RunResult) -> Vec<Problem> {
    let status = |index: usize| result.steps.get(index).map(|(_, r)| &r.status);
    let mut out: Vec<Problem> = result
        .answer_problems()
        .into_iter()
        .map(|problem| {
            let (kind, step) = match problem {
                AnswerProblem::EmptyAnswer => ("empty_answer", None),
                AnswerProblem::ToolResultAsAnswer { index } => {
                    ("tool_result_as_answer", Some(index))
                }
                AnswerProblem::AnswerStepStopped { index } => ("answer_step_stopped", Some(index)),
                AnswerProblem::StepStopped { index } => ("step_stopped", Some(index)),
                AnswerProblem::StepFailed { index } => ("step_failed", Some(index)),
                AnswerProblem::StepSkipped { index } => ("step_skipped", Some(index)),
                _ => ("other", None),
            };
            let message = match (problem, step.and_then(status)) {
                (AnswerProblem::StepStopped { index }, Some(StepStatus::Stopped { reason })) => {
                    format!("step {} stopped ({reason})", index + 1)
                }
                _ => problem.to_string(),
            };
            Problem {
                kind,
                step: step.map(|i| i + 1),
                message,
            }
        })
        .collect();
    if is_stop_text(&result.output) && !out.iter().any(|p| p.kind == "answer_step_stopped") {
        out.insert(
            0,
            Problem {
                kind: "stop_text_as_answer",
                step: None,
                message: "the answer is the fixed \"stopped\" text, not an answer".to_owned(),
            },
        );
    } else if is_stop_text(&result.output) {
        for problem in &mut out {
            if problem.kind == "answer_step_stopped" {
                problem.kind = "stop_text_as_answer";
                problem.message = format!(
                    "step {} stopped and the answer is the fixed \"stopped\" text, not an answer",
                    problem.step.unwrap_or_default()
                );
            }
        }
    }
    out
}

/// Whether `text` is the executor's fixed response for a step stopped at a
/// limit.
fn is_stop_text(text: &str) -> bool {
    let sample = pae_executor::prompt::stopped_response("\u{0}");
    let prefix = sample.split('\u{0}').next().unwrap_or(&sample);
    !prefix.is_empty() && text.trim().starts_with(prefix.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::{Plan, Step, StepResponse, ToolInvocation};

    fn result(steps: Vec<(Step, StepResponse)>, output: &str) -> RunResult {
        RunResult::new(output, steps, vec![Plan::new(["a"])])
    }

    fn stopped(text: &str) -> StepResponse {
        StepResponse::new(text).with_status(StepStatus::Stopped {
            reason: "iteration limit".into(),
        })
    }

    #[test]
    fn real_answers_have_no_problem() {
        let run = result(vec![(Step::new("a"), StepResponse::new("757"))], "757");
        assert!(problems(&run).is_empty());
    }

    #[test]
    fn tool_results_stop_texts_and_empty_answers_are_named() {
        let tool = stopped("[\"read_file\"]").with_tool_calls(vec![ToolInvocation::new(
            "read_file",
            serde_json::json!({}),
            "[\"read_file\"]",
        )]);
        let run = result(vec![(Step::new("a"), tool)], "[\"read_file\"]");
        let kinds: Vec<&str> = problems(&run).iter().map(|p| p.kind).collect();
        assert_eq!(kinds, ["tool_result_as_answer"]);

        let text = pae_executor::prompt::stopped_response("iteration limit");
        let run = result(vec![(Step::new("a"), stopped(&text))], &text);
        let found = problems(&run);
        assert_eq!(found[0].kind, "stop_text_as_answer");
        assert_eq!(found[0].step, Some(1));

        let run = result(
            vec![
                (Step::new("a"), stopped("x")),
                (Step::new("b"), StepResponse::new("")),
            ],
            "",
        );
        let messages: Vec<String> = problems(&run).into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            ["the answer is empty", "step 1 stopped (iteration limit)"]
        );
    }
}
