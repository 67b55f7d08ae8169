//! Live progress on stderr: the plan, each step starting and finishing with
//! its time, each tool call. A spinner shows the current activity when
//! stderr is a terminal; otherwise plain lines are written.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::term::one_line;
use indicatif::{ProgressBar, ProgressStyle};
use pae_core::{Event, EventKind, Plan, StepStatus};

/// Writes progress lines (and a spinner on terminals).
#[derive(Debug)]
pub(crate) struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    plan_len: Mutex<usize>,
    /// When each running step started (steps of a dependency plan overlap).
    step_started_ms: Mutex<HashMap<usize, f64>>,
}

fn seconds(ms: f64) -> String {
    format!("{:.1}s", ms / 1000.0)
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        // Log lines on stderr (-v) would tear through a spinner.
        let spinner =
            !quiet && std::io::stderr().is_terminal() && !crate::telemetry::logs_on_stderr();
        let bar = spinner.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            quiet,
            bar,
            plan_len: Mutex::new(0),
            step_started_ms: Mutex::new(HashMap::new()),
        }
    }

    /// Prints a line above the spinner.
    pub(crate) fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let text = crate::term::clean(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => crate::term::err(&text),
        }
    }

    /// Shows what is happening now (terminals only).
    pub(crate) fn activity(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.reset_elapsed();
            bar.set_message(text.to_owned());
        }
    }

    /// Removes the spinner.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn print_plan(&self, title: &str, plan: &Plan) {
        let mut text = format!("{title} ({} steps):", plan.len());
        for (i, step) in plan.steps.iter().enumerate() {
            text.push_str(&format!("\n  {}. {}", i + 1, one_line(&step.value, 160)));
            if let Some(pae_core::StepAction::Tool { tool, input }) = &step.action {
                text.push_str(&format!("  [{tool} {}]", one_line(&input.to_string(), 120)));
            }
            if !step.depends_on.is_empty() {
                text.push_str(&format!("  (after {})", step.depends_on.join(", ")));
            }
        }
        self.line(&text);
        *self.plan_len.lock().unwrap_or_else(PoisonError::into_inner) = plan.len();
    }

    /// Reports one run event.
    pub(crate) fn on_event(&self, event: &Event) {
        let now = event.at.as_secs_f64() * 1000.0;
        let total = *self.plan_len.lock().unwrap_or_else(PoisonError::into_inner);
        match &event.kind {
            EventKind::PlanCreated { plan } => {
                self.print_plan(&format!("[{}] Plan", seconds(now)), plan);
            }
            EventKind::PlanRevised { plan, revision } => {
                self.print_plan(
                    &format!("[{}] Revised plan #{revision}", seconds(now)),
                    plan,
                );
            }
            EventKind::StepStarted {
                step_index: index,
                step,
            } => {
                self.step_started_ms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(*index, now);
                self.line(&format!(
                    "[{}] ▶ step {}/{total}: {}",
                    seconds(now),
                    index + 1,
                    one_line(&step.value, 120)
                ));
                self.activity(&format!(
                    "step {}/{total}: {}",
                    index + 1,
                    one_line(&step.value, 60)
                ));
            }
            EventKind::ToolStarted { tool, input, .. } => {
                let tool = one_line(tool, 60);
                self.line(&format!(
                    "[{}]     → {tool} {}",
                    seconds(now),
                    one_line(&input.to_string(), 120)
                ));
                self.activity(&format!("tool {tool}"));
            }
            EventKind::ToolFinished {
                tool,
                observation,
                is_error,
                ..
            } => {
                let mark = if *is_error { "✘" } else { "←" };
                let tool = one_line(tool, 60);
                self.line(&format!(
                    "[{}]     {mark} {tool}: {}",
                    seconds(now),
                    one_line(observation, 120)
                ));
                self.activity("thinking");
            }
            EventKind::StepFinished {
                step_index: index,
                response,
                ..
            } => {
                // A skipped step never started: it took no time.
                let started = self
                    .step_started_ms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(index)
                    .unwrap_or(now);
                let took = seconds(now - started);
                let (mark, what) = match &response.status {
                    StepStatus::Completed => ("✔", String::from("done")),
                    StepStatus::Stopped { reason } => {
                        ("■", format!("stopped ({})", one_line(reason, 60)))
                    }
                    StepStatus::Failed { error } => {
                        ("✘", format!("failed ({})", one_line(error, 80)))
                    }
                    StepStatus::Skipped { reason } => {
                        ("…", format!("skipped ({})", one_line(reason, 60)))
                    }
                };
                self.line(&format!(
                    "[{}] {mark} step {}/{total} {what} in {took}: {}",
                    seconds(now),
                    index + 1,
                    one_line(&response.response, 160)
                ));
                self.activity("next");
            }
            EventKind::Retrying {
                attempt,
                max_attempts,
                wait_ms,
                error,
                ..
            } => {
                self.line(&format!(
                    "[{}]     ⟳ model call failed ({}); retrying in {} (attempt {} of {max_attempts})",
                    seconds(now),
                    one_line(error, 120),
                    seconds(*wait_ms),
                    attempt + 1
                ));
            }
            EventKind::RunFinished { usage, .. } => {
                self.line(&format!(
                    "[{}] finished; tokens: {} prompt + {} completion",
                    seconds(now),
                    usage.prompt_tokens,
                    usage.completion_tokens
                ));
            }
            EventKind::ApprovalRequested { revision } => {
                self.line(&format!(
                    "[{}] plan revision {revision} waits for approval",
                    seconds(now)
                ));
            }
            EventKind::RunResumed {
                session,
                committed_steps,
            } => {
                self.line(&format!(
                    "[{}] resumed (session {session}); {committed_steps} step(s) done before \
                     will not run again",
                    seconds(now)
                ));
            }
            EventKind::RunFailed { usage, .. } => {
                self.line(&format!(
                    "[{}] failed; tokens spent: {} prompt + {} completion",
                    seconds(now),
                    usage.prompt_tokens,
                    usage.completion_tokens
                ));
            }
            _ => {}
        }
    }
}
