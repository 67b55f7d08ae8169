//! The `--json` transcript (`pae-transcript/2`, published in the
//! `pae-transcript` crate): built from the run's events and its result.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use pae_core::{Event, EventKind, Plan, RunResult, Step, StepResponse, StepStatus, TokenUsage};
use pae_transcript::{
    ErrorRecord, ModelCallRecord, PlanRecord, PlanStep, StepRecord, StepState, Timings,
    ToolCallRecord, Transcript, Usage,
};
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

fn ms(event: &Event) -> f64 {
    event.at.as_secs_f64() * 1000.0
}

fn usage(usage: TokenUsage) -> Usage {
    Usage::new(usage.prompt_tokens, usage.completion_tokens)
}

/// The latest record of step `index` that has not finished. Steps of a
/// dependency plan run concurrently, so events of several steps interleave.
fn open_step(steps: &mut [StepRecord], index: usize) -> Option<&mut StepRecord> {
    steps
        .iter_mut()
        .rev()
        .find(|s| s.step_index == index && s.status == StepState::Unfinished)
}

fn new_step(index: usize, revision: usize, step: &Step, at: f64) -> StepRecord {
    StepRecord {
        step_index: index,
        revision,
        value: step.value.clone(),
        id: step.id.clone(),
        depends_on: step.depends_on.clone(),
        status: StepState::Unfinished,
        reason: None,
        error: None,
        response: None,
        data: None,
        started_ms: at,
        finished_ms: None,
        elapsed_ms: None,
        usage: Usage::default(),
        model_calls: Vec::new(),
        tool_calls: Vec::new(),
    }
}

/// Fills a step record with how it ended.
fn finish(record: &mut StepRecord, response: &StepResponse, at: f64) {
    record.finished_ms = Some(at);
    record.elapsed_ms = Some(at - record.started_ms);
    record.response = Some(response.response.clone());
    record.data.clone_from(&response.data);
    record.usage = usage(response.usage);
    record.status = match &response.status {
        StepStatus::Completed => StepState::Completed,
        StepStatus::Stopped { reason } => {
            record.reason = Some(reason.clone());
            StepState::Stopped
        }
        StepStatus::Failed { error } => {
            record.error = Some(error.clone());
            StepState::Failed
        }
        StepStatus::Skipped { reason } => {
            record.reason = Some(reason.clone());
            StepState::Skipped
        }
    };
}

fn plan_record(revision: usize, event: &Event, plan: &Plan) -> PlanRecord {
    PlanRecord {
        revision,
        at_ms: ms(event),
        steps: plan
            .steps
            .iter()
            .map(|s| PlanStep {
                value: s.value.clone(),
                id: s.id.clone(),
                depends_on: s.depends_on.clone(),
            })
            .collect(),
    }
}

/// Plans, steps and the model and tool calls outside steps, from the
/// events.
pub(crate) struct Folded {
    pub(crate) plans: Vec<PlanRecord>,
    pub(crate) steps: Vec<StepRecord>,
    pub(crate) planner_calls: Vec<ModelCallRecord>,
    pub(crate) planner_tool_calls: Vec<ToolCallRecord>,
}

pub(crate) fn fold(events: &[Event]) -> Folded {
    let mut plans = Vec::new();
    let mut steps: Vec<StepRecord> = Vec::new();
    let mut planner_calls = Vec::new();
    let mut planner_tool_calls = Vec::new();
    let mut revision = 0;
    for event in events {
        match &event.kind {
            EventKind::PlanCreated { plan } => {
                revision = 0;
                plans.push(plan_record(0, event, plan));
            }
            EventKind::PlanRevised {
                plan,
                revision: number,
            } => {
                revision = *number;
                plans.push(plan_record(*number, event, plan));
            }
            EventKind::PlanEdited {
                plan,
                revision: number,
            } => {
                revision = *number as usize;
                plans.push(plan_record(revision, event, plan));
            }
            EventKind::StepStarted { step_index, step } => {
                steps.push(new_step(*step_index, revision, step, ms(event)));
            }
            EventKind::ModelCalled {
                step_index,
                model,
                usage: spent,
                latency_ms,
                replayed,
                call,
                request,
                finish_reason,
                prompt,
                reply,
            } => {
                let record = ModelCallRecord {
                    call: *call,
                    model: model.clone(),
                    at_ms: ms(event),
                    latency_ms: *latency_ms,
                    usage: usage(*spent),
                    finish_reason: finish_reason.as_ref().map(|r| r.as_str().to_owned()),
                    replayed: *replayed,
                    request: request.map(|r| pae_transcript::RequestSummary {
                        messages: r.messages,
                        prompt_chars: r.prompt_chars,
                        tools: r.tools,
                    }),
                    prompt: prompt.as_ref().map(|messages| {
                        messages
                            .iter()
                            .map(|m| serde_json::to_value(m).unwrap_or_default())
                            .collect()
                    }),
                    reply: reply
                        .as_ref()
                        .map(|m| serde_json::to_value(m).unwrap_or_default()),
                };
                match step_index.and_then(|i| open_step(&mut steps, i)) {
                    Some(step) => step.model_calls.push(record),
                    None => planner_calls.push(record),
                }
            }
            EventKind::ToolStarted {
                step_index,
                call,
                tool,
                input,
            } => {
                let record = ToolCallRecord {
                    call: *call,
                    tool: tool.clone(),
                    input: input.clone(),
                    observation: None,
                    is_error: false,
                    started_ms: ms(event),
                    finished_ms: None,
                    duration_ms: None,
                    replayed: false,
                };
                match step_index {
                    Some(index) => {
                        if let Some(step) = open_step(&mut steps, *index) {
                            step.tool_calls.push(record);
                        }
                    }
                    None => planner_tool_calls.push(record),
                }
            }
            EventKind::ToolFinished {
                step_index,
                call,
                tool,
                observation,
                is_error,
                duration_ms,
                replayed,
            } => {
                let calls = match step_index {
                    Some(index) => open_step(&mut steps, *index).map(|s| &mut s.tool_calls),
                    None => Some(&mut planner_tool_calls),
                };
                let open = calls.and_then(|calls| {
                    calls
                        .iter_mut()
                        .rev()
                        .find(|c| c.call == *call && &c.tool == tool && c.finished_ms.is_none())
                });
                if let Some(record) = open {
                    record.observation = Some(observation.clone());
                    record.is_error = *is_error;
                    record.finished_ms = Some(ms(event));
                    record.duration_ms = Some(*duration_ms);
                    record.replayed = *replayed;
                }
            }
            EventKind::StepFinished {
                step_index,
                step,
                response,
            } => {
                if open_step(&mut steps, *step_index).is_none() {
                    // A step that finished without starting (skipped, or a
                    // failure recorded by the orchestrator).
                    steps.push(new_step(*step_index, revision, step, ms(event)));
                }
                if let Some(record) = open_step(&mut steps, *step_index) {
                    finish(record, response, ms(event));
                }
            }
            // The rest are in `events`.
            _ => {}
        }
    }
    Folded {
        plans,
        steps,
        planner_calls,
        planner_tool_calls,
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

pub(crate) fn transcript(record: &TranscriptRecord<'_>) -> Transcript {
    let Folded {
        plans,
        steps,
        planner_calls,
        planner_tool_calls,
    } = fold(record.events);
    let model = record.model;
    Transcript {
        format: pae_transcript::FORMAT.to_owned(),
        run_id: record.run_id.to_owned(),
        objective: record.objective.to_owned(),
        model: pae_transcript::ModelInfo {
            provider: model.provider.to_owned(),
            model: model.model.clone(),
            path: model.path.as_ref().map(|p| p.display().to_string()),
            base_url: model.base_url.clone(),
            capabilities: serde_json::to_value(model.capabilities).unwrap_or_default(),
            load_ms: model.load_ms,
        },
        settings: serde_json::to_value(record.settings).unwrap_or_default(),
        plans,
        steps,
        planner_calls,
        planner_tool_calls,
        usage: usage(record.usage),
        timings: Timings {
            model_load_ms: model.load_ms,
            run_ms: record.run_ms,
            total_ms: record.total_ms,
        },
        outcome: record
            .result
            .ok()
            .and_then(|r| serde_json::to_value(r.outcome).ok()),
        answer: record.result.ok().map(|r| r.output.clone()),
        answer_problems: record
            .result
            .ok()
            .filter(|r| !r.is_awaiting_approval())
            .map(|r| {
                crate::answer::problems(r)
                    .into_iter()
                    .map(|p| pae_transcript::AnswerProblemRecord {
                        kind: p.kind.to_owned(),
                        step: p.step,
                        message: p.message,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        error: record.result.err().map(|f| ErrorRecord {
            kind: f.kind.as_str().to_owned(),
            exit_code: f.kind.exit_code(),
            message: f.message.clone(),
        }),
        events: record
            .events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect(),
    }
}

/// Where the transcript goes: `--json -` is stdout.
pub(crate) fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes the transcript to `path` as pretty JSON, fields in a reading
/// order (objective, model, settings, plans, steps, usage, timings, answer),
/// or to stdout for `-`. A file is written beside `path` and renamed into
/// place, so readers (and runs writing the same path at once) never see
/// half a transcript.
pub(crate) fn write(path: &Path, record: &TranscriptRecord<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(&transcript(record))?;
    text.push('\n');
    if is_stdout(path) {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe is the reader's choice, not a failure of the run.
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        return Ok(());
    }
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
                    step_index: 0,
                    step: Step::new("compute"),
                },
            ),
            at(
                7,
                EventKind::ToolStarted {
                    step_index: Some(0),
                    call: 0,
                    tool: "calculator".into(),
                    input: serde_json::json!({"expression": "1+1"}),
                },
            ),
            at(
                8,
                EventKind::ToolFinished {
                    step_index: Some(0),
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
                    step_index: 0,
                    step: Step::new("compute"),
                    response: StepResponse::new("2"),
                },
            ),
        ];
        let Folded { plans, steps, .. } = fold(&events);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].steps.len(), 2);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].elapsed_ms, Some(4.0));
        assert_eq!(steps[0].tool_calls[0].observation.as_deref(), Some("2"));
        assert_eq!(steps[0].tool_calls[0].finished_ms, Some(8.0));
        assert_eq!(steps[0].tool_calls[0].duration_ms, Some(1.0));
        assert_eq!(steps[0].status, StepState::Completed);
    }

    #[test]
    fn tool_calls_made_while_planning_are_the_planners() {
        let events = vec![
            at(
                1,
                EventKind::ToolStarted {
                    step_index: None,
                    call: 0,
                    tool: "current_time".into(),
                    input: serde_json::json!({"format": "%A, %Y-%m-%d"}),
                },
            ),
            at(
                2,
                EventKind::ToolFinished {
                    step_index: None,
                    call: 0,
                    tool: "current_time".into(),
                    observation: "Saturday, 2026-03-14".into(),
                    is_error: false,
                    duration_ms: 0.5,
                    replayed: false,
                },
            ),
            at(
                3,
                EventKind::PlanCreated {
                    plan: Plan::new(["answer"]),
                },
            ),
            at(
                4,
                EventKind::StepStarted {
                    step_index: 0,
                    step: Step::new("answer"),
                },
            ),
        ];
        let Folded {
            steps,
            planner_tool_calls,
            ..
        } = fold(&events);
        assert_eq!(planner_tool_calls.len(), 1);
        assert_eq!(planner_tool_calls[0].tool, "current_time");
        assert_eq!(
            planner_tool_calls[0].observation.as_deref(),
            Some("Saturday, 2026-03-14")
        );
        assert_eq!(planner_tool_calls[0].finished_ms, Some(2.0));
        assert!(steps[0].tool_calls.is_empty());
    }
}
