//! How previous steps are shown to the executor's model: readable text, with
//! a policy that keeps the prompt's size linear in the plan's length.

use pae_core::{Step, StepResponse, StepStatus};

/// Which previous steps the step prompt shows in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HistoryPolicy {
    /// Every previous step with its response (LangChain's behaviour). Prompt
    /// size grows with the number of steps done, so a whole run is quadratic.
    #[default]
    All,
    /// Only the last `k` steps with their responses; earlier steps appear as
    /// their step text only. `LastK(0)` shows no response at all.
    LastK(usize),
}

/// The text shown when no step has been done yet.
pub const NO_PREVIOUS_STEPS: &str = "(none yet)";

/// Renders previous steps as readable text, one block per step:
///
/// ```text
/// Step 1: Look up the price
/// Response: 12 EUR
///
/// Step 2: Convert it to USD
/// Response: 13.1 USD
/// ```
///
/// Under [`HistoryPolicy::LastK`], steps before the last `k` are listed as
/// `Step n: <text>` lines without their responses. A response that did not
/// complete says so (`Response (stopped: iteration limit): ...`).
///
/// ```
/// use pae_core::{Step, StepResponse};
/// use pae_executor::{render_previous_steps, HistoryPolicy};
///
/// let done = vec![
///     (Step::new("a"), StepResponse::new("1")),
///     (Step::new("b"), StepResponse::new("2")),
/// ];
/// assert_eq!(render_previous_steps(&done, HistoryPolicy::All),
///            "Step 1: a\nResponse: 1\n\nStep 2: b\nResponse: 2");
/// assert_eq!(render_previous_steps(&done, HistoryPolicy::LastK(1)),
///            "Step 1: a\n\nStep 2: b\nResponse: 2");
/// ```
pub fn render_previous_steps(steps: &[(Step, StepResponse)], policy: HistoryPolicy) -> String {
    if steps.is_empty() {
        return String::from(NO_PREVIOUS_STEPS);
    }
    let full_from = match policy {
        HistoryPolicy::All => 0,
        HistoryPolicy::LastK(k) => steps.len().saturating_sub(k),
    };
    let capacity: usize = steps[full_from..]
        .iter()
        .map(|(s, r)| s.value.len() + r.response.len() + 32)
        .sum::<usize>()
        + steps[..full_from]
            .iter()
            .map(|(s, _)| s.value.len() + 12)
            .sum::<usize>();
    let mut out = String::with_capacity(capacity);
    for (i, (step, _)) in steps[..full_from].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        push_step_line(&mut out, i + 1, step);
    }
    for (offset, (step, response)) in steps[full_from..].iter().enumerate() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        push_step_line(&mut out, full_from + offset + 1, step);
        out.push('\n');
        push_response(&mut out, response);
    }
    out
}

fn push_step_line(out: &mut String, number: usize, step: &Step) {
    out.push_str("Step ");
    out.push_str(&number.to_string());
    out.push_str(": ");
    out.push_str(step.value.trim());
}

fn push_response(out: &mut String, response: &StepResponse) {
    match &response.status {
        StepStatus::Completed => {
            out.push_str("Response: ");
            out.push_str(response.response.trim());
        }
        StepStatus::Stopped { reason } => {
            out.push_str("Response (stopped: ");
            out.push_str(reason);
            out.push_str("): ");
            out.push_str(response.response.trim());
        }
        StepStatus::Failed { error } => {
            out.push_str("Response: (failed: ");
            out.push_str(error);
            out.push(')');
        }
        StepStatus::Skipped { reason } => {
            out.push_str("Response: (skipped: ");
            out.push_str(reason);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(n: usize) -> Vec<(Step, StepResponse)> {
        (1..=n)
            .map(|i| {
                (
                    Step::new(format!("s{i}")),
                    StepResponse::new(format!("r{i}")),
                )
            })
            .collect()
    }

    #[test]
    fn empty_history() {
        assert_eq!(
            render_previous_steps(&[], HistoryPolicy::All),
            NO_PREVIOUS_STEPS
        );
        assert_eq!(
            render_previous_steps(&[], HistoryPolicy::LastK(3)),
            NO_PREVIOUS_STEPS
        );
    }

    #[test]
    fn last_k_keeps_earlier_step_texts_only() {
        let text = render_previous_steps(&steps(5), HistoryPolicy::LastK(2));
        assert_eq!(
            text,
            "Step 1: s1\nStep 2: s2\nStep 3: s3\n\nStep 4: s4\nResponse: r4\n\nStep 5: s5\nResponse: r5"
        );
        let none = render_previous_steps(&steps(2), HistoryPolicy::LastK(0));
        assert_eq!(none, "Step 1: s1\nStep 2: s2");
        let more_than_done = render_previous_steps(&steps(2), HistoryPolicy::LastK(9));
        assert_eq!(
            more_than_done,
            render_previous_steps(&steps(2), HistoryPolicy::All)
        );
    }

    #[test]
    fn statuses_are_visible_and_text_is_verbatim() {
        let history = vec![
            (
                Step::new("it's {x}\n"),
                StepResponse::new("partial").with_status(StepStatus::Stopped {
                    reason: "iteration limit (15)".into(),
                }),
            ),
            (
                Step::new("b"),
                StepResponse::new("Error: boom").with_status(StepStatus::Failed {
                    error: "boom".into(),
                }),
            ),
        ];
        assert_eq!(
            render_previous_steps(&history, HistoryPolicy::All),
            "Step 1: it's {x}\nResponse (stopped: iteration limit (15)): partial\n\nStep 2: b\nResponse: (failed: boom)"
        );
    }
}
