//! The `--json` transcript: built from the run's events and its result.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use pae_core::{Event, EventKind, Plan, RunOutcome, RunResult, Step, StepResponse, TokenUsage};
use serde::Serialize;

use crate::cli::{AgentArgs, Objective};
use crate::exit::Failure;
use crate::provider::ModelInfo;

/// Collects a run's events (cheap to clone; clones share the list).
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub(crate) fn record(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The run's settings, as given on the command line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) mode: &'static str,
    pub(crate) planner: &'static str,
    pub(crate) tools: Vec<String>,
    pub(crate) max_steps: u32,
    pub(crate) max_iterations: u32,
    pub(crate) max_repeated_calls: u32,
    pub(crate) early_stopping: &'static str,
    pub(crate) history: String,
    pub(crate) replan: &'static str,
    pub(crate) max_replans: u32,
    pub(crate) max_concurrency: u32,
    pub(crate) objective_in_steps: bool,
    pub(crate) temperature: f32,
    pub(crate) seed: u64,
    pub(crate) max_tokens: u32,
}

impl Settings {
    pub(crate) fn new(args: &AgentArgs) -> Self {
        Self {
            mode: args.mode.as_str(),
            planner: args.planner.as_str(),
            tools: args.tools.iter().map(|t| t.as_str().to_owned()).collect(),
            max_steps: args.max_steps,
            max_iterations: args.max_iterations,
            max_repeated_calls: args.max_repeated_calls,
            early_stopping: args.early_stopping.as_str(),
            history: args.history.label(),
            replan: args.replan.as_str(),
            max_replans: args.max_replans,
            max_concurrency: args.max_concurrency,
            objective_in_steps: args.objective_in_steps == Objective::Show,
            temperature: args.temperature,
            seed: args.seed,
            max_tokens: args.max_tokens,
        }
    }
}

#[derive(Debug, Serialize)]
struct PlanRecord {
    revision: usize,
    at_ms: f64,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
struct ToolRecord {
    tool: String,
    input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    observation: Option<String>,
    is_error: bool,
    started_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct StepRecord {
    /// 0-based position in the plan the step belonged to.
    index: usize,
    step: Step,
    started_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<StepResponse>,
    tool_calls: Vec<ToolRecord>,
}

#[derive(Debug, Serialize)]
struct UsageRecord {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl From<TokenUsage> for UsageRecord {
    fn from(usage: TokenUsage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Timings {
    model_load_ms: f64,
    run_ms: f64,
    total_ms: f64,
}

#[derive(Debug, Serialize)]
struct ErrorRecord {
    kind: &'static str,
    exit_code: u8,
    message: String,
}

#[derive(Debug, Serialize)]
struct Transcript<'a> {
    format: &'static str,
    run_id: &'a str,
    objective: &'a str,
    model: &'a ModelInfo,
    settings: &'a Settings,
    plans: Vec<PlanRecord>,
    steps: Vec<StepRecord>,
    usage: UsageRecord,
    timings: Timings,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<RunOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'a str>,
    /// Why the answer is not a real one (the run then exits with code 9).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    answer_problems: Vec<crate::answer::Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorRecord>,
    events: &'a [Event],
}

fn ms(event: &Event) -> f64 {
    event.at.as_secs_f64() * 1000.0
}

/// Plans and steps, in execution order, from the events.
/// The latest record of step `index` that has not finished. Steps of a
/// dependency plan run concurrently, so events of several steps interleave.
fn open_step(steps: &mut [StepRecord], index: usize) -> Option<&mut StepRecord> {
    steps
        .iter_mut()
        .rev()
        .find(|s| s.index == index && s.response.is_none())
}

fn fold(events: &[Event]) -> (Vec<PlanRecord>, Vec<StepRecord>) {
    let mut plans = Vec::new();
    let mut steps: Vec<StepRecord> = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::PlanCreated { plan } => plans.push(plan_record(0, event, plan)),
            EventKind::PlanRevised { plan, revision } => {
                plans.push(plan_record(*revision, event, plan));
            }
            EventKind::StepStarted { index, step } => steps.push(StepRecord {
                index: *index,
                step: step.clone(),
                started_ms: ms(event),
                finished_ms: None,
                elapsed_ms: None,
                response: None,
                tool_calls: Vec::new(),
            }),
            EventKind::ToolStarted {
                step_index,
                tool,
                input,
                ..
            } => {
                if let Some(step) = open_step(&mut steps, *step_index) {
                    step.tool_calls.push(ToolRecord {
                        tool: tool.clone(),
                        input: input.clone(),
                        observation: None,
                        is_error: false,
                        started_ms: ms(event),
                        finished_ms: None,
                    });
                }
            }
            EventKind::ToolFinished {
                step_index,
                tool,
                observation,
                is_error,
                ..
            } => {
                let open = open_step(&mut steps, *step_index).and_then(|s| {
                    s.tool_calls
                        .iter_mut()
                        .rev()
                        .find(|c| &c.tool == tool && c.finished_ms.is_none())
                });
                if let Some(call) = open {
                    call.observation = Some(observation.clone());
                    call.is_error = *is_error;
                    call.finished_ms = Some(ms(event));
                }
            }
            EventKind::StepFinished {
                index,
                step,
                response,
            } => {
                let open = open_step(&mut steps, *index);
                let record = match open {
                    Some(record) => record,
                    None => {
                        // A step that finished without starting (for example
                        // a failure recorded by the orchestrator).
                        steps.push(StepRecord {
                            index: *index,
                            step: step.clone(),
                            started_ms: ms(event),
                            finished_ms: None,
                            elapsed_ms: None,
                            response: None,
                            tool_calls: Vec::new(),
                        });
                        let last = steps.len() - 1;
                        &mut steps[last]
                    }
                };
                record.finished_ms = Some(ms(event));
                record.elapsed_ms = Some(ms(event) - record.started_ms);
                record.response = Some(response.clone());
            }
            // RunFinished and future kinds are in `events`.
            _ => {}
        }
    }
    (plans, steps)
}

fn plan_record(revision: usize, event: &Event, plan: &Plan) -> PlanRecord {
    PlanRecord {
        revision,
        at_ms: ms(event),
        steps: plan.steps.clone(),
    }
}

/// Everything the transcript is made from.
pub(crate) struct TranscriptRecord<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) objective: &'a str,
    pub(crate) model: &'a ModelInfo,
    pub(crate) settings: &'a Settings,
    pub(crate) events: &'a [Event],
    pub(crate) result: Result<&'a RunResult, &'a Failure>,
    pub(crate) usage: TokenUsage,
    pub(crate) run_ms: f64,
    pub(crate) total_ms: f64,
}

fn transcript<'a>(record: &'a TranscriptRecord<'a>) -> Transcript<'a> {
    let (plans, steps) = fold(record.events);
    Transcript {
        format: "pae-transcript/1",
        run_id: record.run_id,
        objective: record.objective,
        model: record.model,
        settings: record.settings,
        plans,
        steps,
        usage: record.usage.into(),
        timings: Timings {
            model_load_ms: record.model.load_ms,
            run_ms: record.run_ms,
            total_ms: record.total_ms,
        },
        outcome: record.result.ok().map(|r| r.outcome),
        answer: record.result.ok().map(|r| r.output.as_str()),
        answer_problems: record
            .result
            .ok()
            .filter(|r| !r.is_awaiting_approval())
            .map(crate::answer::problems)
            .unwrap_or_default(),
        error: record.result.err().map(|f| ErrorRecord {
            kind: f.kind.as_str(),
            exit_code: f.kind.exit_code(),
            message: f.message.clone(),
        }),
        events: record.events,
    }
}

/// Writes the transcript to `path` as pretty JSON, fields in a reading
/// order (objective, model, settings, plans, steps, usage, timings, answer).
/// The file is written beside `path` and renamed into place, so readers
/// (and runs writing the same path at once) never see half a transcript.
pub(crate) fn write(path: &Path, record: &TranscriptRecord<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(&transcript(record))?;
    text.push('\n');
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |err: &dyn std::fmt::Display| {
        anyhow::anyhow!("cannot write the transcript {}: {err}", path.display())
    };
    let mut file = tempfile::NamedTempFile::new_in(parent).map_err(|e| fail(&e))?;
    file.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
    file.as_file().sync_all().map_err(|e| fail(&e))?;
    file.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64, kind: EventKind) -> Event {
        Event {
            at: Duration::from_millis(ms),
            kind,
        }
    }

    #[test]
    fn events_fold_into_plans_steps_and_tool_calls() {
        let plan = Plan::new(["compute", "answer"]);
        let events = vec![
            at(5, EventKind::PlanCreated { plan: plan.clone() }),
            at(
                6,
                EventKind::StepStarted {
                    index: 0,
                    step: Step::new("compute"),
                },
            ),
            at(
                7,
                EventKind::ToolStarted {
                    step_index: 0,
                    call: 0,
                    tool: "calculator".into(),
                    input: serde_json::json!({"expression": "1+1"}),
                },
            ),
            at(
                8,
                EventKind::ToolFinished {
                    step_index: 0,
                    call: 0,
                    tool: "calculator".into(),
                    observation: "2".into(),
                    is_error: false,
                    duration_ms: 1.0,
                    replayed: false,
                },
            ),
            at(
                10,
                EventKind::StepFinished {
                    index: 0,
                    step: Step::new("compute"),
                    response: StepResponse::new("2"),
                },
            ),
        ];
        let (plans, steps) = fold(&events);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].steps.len(), 2);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].elapsed_ms, Some(4.0));
        assert_eq!(steps[0].tool_calls[0].observation.as_deref(), Some("2"));
        assert_eq!(steps[0].tool_calls[0].finished_ms, Some(8.0));
    }
}
