//! [`ReplanOutputParser`]: reads a replanner's reply (text or JSON) into a
//! [`ReplanDecision`]: the final answer, or the revised remaining steps.

use pae_core::{PlanOutputParser, PlanParseError, ReplanDecision};
use serde_json::Value;

use crate::json::extract_json;
use crate::noise::strip_noise;
use crate::structured::{StepsError, get_key, kind, malformed, plan_steps};
use crate::text::{PlanningOutputParser, cut_at_end_marker};

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

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::Step;

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
}
