//! The wording of [`ActionExecutor`](super::ActionExecutor)'s model calls:
//! the solver (the answer from the objective and the results) and the
//! argument writer (a tool call's arguments the plan left open), and how
//! results are shown to both.

use std::fmt::Write as _;

use pae_core::{Step, StepResponse, StepStatus};
use serde_json::Value;

/// The solver's system message.
pub const SOLVER_SYSTEM_PROMPT: &str = "You write the final answer to the user's request from the results of the steps an agent carried out for it. \
The results come from tools and are correct: use them as they are instead of working them out again. \
If the request needs a calculation the steps did not do (adding up their results, say), write it out with the numbers, like 20 + 15 + 7 = 42, before you answer. \
Answer in one or two short sentences. When the answer is a number, end your reply with that number.";

/// The solver's system message on models that enforce JSON schemas: any
/// calculation still needed first (room to work), then the answer alone,
/// so the answer is never buried in a sentence that ends with another
/// number.
pub const SOLVER_JSON_SYSTEM_PROMPT: &str = "You write the final answer to the user's request from the results of the steps an agent carried out for it. \
The results come from tools and are correct: use them as they are instead of working them out again. \
Reply with only a JSON object {\"calculation\": \"...\", \"final_answer\": \"...\"}. \
calculation: empty when a result already is what the request asks for; when the results are only part of it (a change but not the new total, a total but not the share asked for), the calculation the steps did not do, written out with the numbers, like 20 + 15 + 7 = 42. \
final_answer: only the answer itself, nothing else: the number with its unit, the date, the name, or the text the request asks for.";

/// Bounds of the solver's JSON fields, in characters: a small model that
/// starts repeating itself inside a string is cut off by the grammar rather
/// than running to the token limit.
const CALCULATION_MAX_CHARS: u64 = 400;
const FINAL_ANSWER_MAX_CHARS: u64 = 2000;

/// The schema of the solver's reply (keys in alphabetical order: converters
/// that sort them keep the calculation first).
pub(super) fn solver_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "calculation": {"type": "string", "maxLength": CALCULATION_MAX_CHARS},
            "final_answer": {"type": "string", "minLength": 1, "maxLength": FINAL_ANSWER_MAX_CHARS}
        },
        "required": ["calculation", "final_answer"],
        "additionalProperties": false
    })
}

/// The answer in a reply to [`SOLVER_JSON_SYSTEM_PROMPT`]: its final
/// answer alone (the calculation is the model's working, not part of the
/// answer: small models also fill it with a restated step). `None` when
/// the reply has no final answer (a model that ignored the format): the
/// caller uses the text as it is.
pub(super) fn solver_answer(reply: &Value) -> Option<String> {
    let answer = match reply.get("final_answer")? {
        Value::String(text) => without_blank_lines(text),
        Value::Null => return None,
        other => other.to_string(),
    };
    (!answer.is_empty()).then_some(answer)
}

/// `text` trimmed, without blank lines (an answer may be several lines, a
/// list or a poem).
fn without_blank_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// The argument writer's system message.
pub const ARGUMENTS_SYSTEM_PROMPT: &str = "You write the arguments of one tool call for a step of a plan. \
Put in the actual values the step needs, taken from the request and from the results of earlier steps: \
numbers as digits, never a name, a description or a reference such as #E1. \
For example, when an earlier result reads `rent: 900` and `food: 300`, the expression for rent plus food is 900 + 300, not rent + food. \
Reply with only the JSON object of arguments.";

/// The results the model is shown, one block per step:
/// `#E1: <step> (<tool>: <input>)` then `Result: <text>`.
pub(super) fn results(steps: &[(Step, StepResponse)], max_chars: usize) -> String {
    if steps.is_empty() {
        return String::from("(no steps were carried out)");
    }
    let mut out = String::new();
    for (index, (step, response)) in steps.iter().enumerate() {
        if index > 0 {
            out.push_str("\n\n");
        }
        let label = match &step.id {
            Some(id) if id.starts_with(['E', 'e']) => format!("#{id}"),
            Some(id) => format!("Step {id}"),
            None => format!("Step {}", index + 1),
        };
        let _ = write!(out, "{label}: {}", one_line(&step.value));
        if let Some(call) = response.tool_calls.iter().rev().find(|c| !c.is_error) {
            let _ = write!(out, " ({}: {})", call.tool, compact_input(&call.input));
        }
        let head = match &response.status {
            StepStatus::Completed => String::from("Result"),
            StepStatus::Stopped { reason } => format!("Result (not finished: {reason})"),
            StepStatus::Failed { .. } => String::from("Result (failed)"),
            StepStatus::Skipped { .. } => String::from("Result (skipped)"),
        };
        let text = cut(response.response.trim(), max_chars);
        if text.contains('\n') {
            let _ = write!(out, "\n{head}:\n{text}");
        } else {
            let _ = write!(out, "\n{head}: {text}");
            // Small models miscount lists (six groceries read as five): a
            // tool's list output is shown with its count.
            if let Some(items) = list_items(&text)
                && response
                    .tool_calls
                    .iter()
                    .any(|c| !c.is_error && c.observation.trim() == response.response.trim())
            {
                let _ = write!(out, " ({items} items)");
            }
        }
    }
    out
}

/// The number of items of a one-line list such as a column read from a
/// table (`milk, bread, eggs`, `12.5, 40, 7`): two or more items separated
/// by `, `, none empty, long or holding a sentence's punctuation. `None`
/// for anything else, prose included.
fn list_items(text: &str) -> Option<usize> {
    const MAX_ITEM_CHARS: usize = 40;
    let items: Vec<&str> = text.split(", ").collect();
    let is_item = |item: &&str| {
        let item = item.trim();
        !item.is_empty()
            && item.chars().count() <= MAX_ITEM_CHARS
            && !item.contains([':', ';', '(', ')', '.', '!', '?', ','])
            || item.parse::<f64>().is_ok()
    };
    (items.len() >= 2 && items.iter().all(is_item)).then_some(items.len())
}

/// The solver's user message.
pub(super) fn solver_message(objective: &str, results: &str) -> String {
    format!(
        "Request: {}\n\nResults of the steps carried out for it:\n{results}\n\nWrite the answer to the request.",
        objective.trim()
    )
}

/// What the argument writer is shown.
pub(super) struct ArgumentsPrompt<'a> {
    pub(super) objective: &'a str,
    pub(super) results: &'a str,
    pub(super) step: &'a str,
    pub(super) tool: &'a str,
    pub(super) description: &'a str,
    pub(super) attempt: &'a Value,
    /// The step's arguments as planned (with `#E1` references), shown
    /// with the step.
    pub(super) planned: &'a Value,
    pub(super) error: &'a str,
    /// Whether the attempt was made and refused (else the plan left it
    /// open).
    pub(super) refused: bool,
}

/// The argument writer's user message. The plan's arguments say what the
/// step computes (`sum of the prices in #E1`); a refused attempt is shown
/// with the tool's error.
pub(super) fn arguments_message(prompt: &ArgumentsPrompt<'_>) -> String {
    let written = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => compact_input(other),
    };
    let attempt = written(prompt.attempt);
    // A refused call of the plan's own arguments is shown once, as
    // refused: shown twice, a small model writes it a third time.
    let planned = if prompt.refused && prompt.planned == prompt.attempt {
        String::new()
    } else {
        format!(" ({})", one_line(&written(prompt.planned)))
    };
    let (problem, ask) = if prompt.refused {
        (
            format!("\nA call with {attempt} was refused: {}", prompt.error),
            "The same arguments would be refused again: change what the error names. ",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "Request: {}\n\nResults of earlier steps:\n{}\n\nStep: {}{planned}\nTool: {}: {}{problem}\n\n\
{ask}Write the arguments of {} for this step, with the actual values from the request and the results above in place of any description or reference.",
        prompt.objective.trim(),
        prompt.results,
        one_line(prompt.step),
        prompt.tool,
        one_line(prompt.description),
        prompt.tool,
    )
}

/// The response of a tool step whose calls all failed.
pub(super) fn tool_step_failed(tool: &str, error: &str) -> String {
    format!("No result: the {tool} call failed ({error}).")
}

/// The response of a tool step whose input stayed open.
pub(super) fn tool_step_open(tool: &str, reason: &str) -> String {
    format!("No result: the {tool} call could not be made ({reason}).")
}

/// A tool input in few characters: the value of a one-argument object,
/// else the JSON.
fn compact_input(input: &Value) -> String {
    match input {
        Value::Object(map) if map.len() == 1 => match map.values().next() {
            Some(Value::String(text)) => one_line(text),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Value::String(text) => one_line(text),
        other => other.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}\n[... cut at {max} characters]", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::ToolInvocation;
    use serde_json::json;

    #[test]
    fn lists_are_counted_and_prose_is_not() {
        assert_eq!(
            list_items("milk, bread, eggs, apples, coffee, cheese"),
            Some(6)
        );
        assert_eq!(list_items("12.5, 40, -7, 0.25"), Some(4));
        assert_eq!(list_items("Alice Smith, Bob"), Some(2));
        for not_a_list in [
            "391",
            "1,200",
            "2026-03-14; 2027-01-01 (Friday) is 293 days from today",
            "Yes, the file is there. It lists milk, bread and eggs.",
            "a, , b",
            "Dear John, thanks for the note, it came in time: see you",
        ] {
            assert_eq!(list_items(not_a_list), None, "{not_a_list}");
        }
        let read = ToolInvocation::new(
            "read_file",
            json!({"path": "list.txt"}),
            "milk, bread, eggs",
        );
        let steps = vec![(
            Step::new("Read the items").with_id("E1"),
            StepResponse::new("milk, bread, eggs").with_tool_calls(vec![read]),
        )];
        let shown = results(&steps, 1000);
        assert!(
            shown.ends_with("Result: milk, bread, eggs (3 items)"),
            "{shown}"
        );
        // A model's words are not counted.
        let steps = vec![(
            Step::new("Say"),
            StepResponse::new("yes, I agree, it works"),
        )];
        assert!(results(&steps, 1000).ends_with("Result: yes, I agree, it works"));
    }

    #[test]
    fn results_show_step_tool_input_and_result() {
        let steps = vec![
            (
                Step::new("Multiply 17 by 23").with_id("E1"),
                StepResponse::new("391").with_tool_calls(vec![ToolInvocation::new(
                    "calculator",
                    json!({"expression": "17*23"}),
                    "391",
                )]),
            ),
            (
                Step::new("Read it"),
                StepResponse::new("a\nb").with_status(StepStatus::Stopped {
                    reason: "iteration limit".into(),
                }),
            ),
        ];
        assert_eq!(
            results(&steps, 100),
            "#E1: Multiply 17 by 23 (calculator: 17*23)\nResult: 391\n\n\
Step 2: Read it\nResult (not finished: iteration limit):\na\nb"
        );
        assert_eq!(results(&[], 10), "(no steps were carried out)");
        assert_eq!(cut("abcdef", 3), "abc\n[... cut at 3 characters]");
    }

    #[test]
    fn a_refused_call_is_shown_with_the_step_as_planned() {
        let message = arguments_message(&ArgumentsPrompt {
            objective: "How many weeks until the 25th?",
            results: "#E1: Days until the 25th\nResult: 2026-03-14 is 286 days before it",
            step: "Weeks",
            tool: "calculator",
            description: "Evaluates arithmetic.",
            attempt: &json!({"expression": "2026-03-14 is 286 days before it / 7"}),
            planned: &json!({"expression": "#E1 / 7"}),
            error: "unexpected character",
            refused: true,
        });
        assert!(message.contains("Step: Weeks (#E1 / 7)"), "{message}");
        assert!(
            message.contains(
                "A call with 2026-03-14 is 286 days before it / 7 was refused: unexpected character"
            ),
            "{message}"
        );
        assert!(
            message.contains("\n\nThe same arguments would be refused again: change what the error names. Write the arguments of calculator"),
            "{message}"
        );
    }

    #[test]
    fn a_refused_planned_call_is_shown_once() {
        let planned = json!({"path": "sales.csv", "column": "revenue"});
        let message = arguments_message(&ArgumentsPrompt {
            objective: "What was the revenue in March?",
            results: "(no steps were carried out)",
            step: "Read the revenue",
            tool: "read_file",
            description: "Reads a file.",
            attempt: &planned,
            planned: &planned,
            error: "no column \"revenue\"; its columns are: month, units, price",
            refused: true,
        });
        assert!(
            message.contains("Step: Read the revenue\nTool: read_file"),
            "{message}"
        );
        assert_eq!(message.matches("revenue\"}").count(), 1, "{message}");
        // Arguments the plan left open are shown with the step.
        let open = arguments_message(&ArgumentsPrompt {
            objective: "o",
            results: "r",
            step: "Sum",
            tool: "calculator",
            description: "d",
            attempt: &json!({"expression": "sum(#E1)"}),
            planned: &json!({"expression": "sum(#E1)"}),
            error: "it refers to #E1",
            refused: false,
        });
        assert!(
            open.contains("Step: Sum (sum(#E1))\nTool: calculator: d\n\nWrite"),
            "{open}"
        );
    }
}
