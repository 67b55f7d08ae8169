//! `pae`: run a plan-and-execute agent from the command line.
//!
//! `pae run "<objective>"` plans with a model, carries out each step with
//! a tool-using executor, prints live progress on stderr and the final
//! answer on stdout. The default model is a local GGUF file run in-process
//! by llama.cpp (`pae-llamacpp`), so it works offline with no API key;
//! `--provider openai` talks to an OpenAI-compatible server. See
//! `pae run --help` for every flag and the exit codes.

mod cli;
mod exit;
mod progress;
mod provider;
mod scripted;
mod transcript;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use pae_core::{
    ChatModel, EventKind, Executor, PlanAndExecute, Planner, ReplanPolicy, Replanner, Tool,
};
use pae_executor::{AgentExecutor, EarlyStopping, HistoryPolicy, tools};
use pae_planner::{LlmPlanner, LlmReplanner, StructuredPlanner};

use crate::cli::{Cli, Command, EarlyStop, History, PlannerMode, Replan, RunArgs, ToolName};
use crate::exit::{Failure, FailureKind};
use crate::progress::Progress;
use crate::transcript::{Recorder, RunRecord, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(FailureKind::RunFailed.exit_code());
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if failure.kind == FailureKind::Usage {
                eprintln!("\nFor more information, try 'pae run --help'.");
            }
            ExitCode::from(failure.kind.exit_code())
        }
    }
}

fn settings(args: &RunArgs) -> Settings {
    Settings {
        planner: args.planner.as_str(),
        tools: args
            .tools
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect(),
        max_steps: args.max_steps,
        max_iterations: args.max_iterations,
        max_repeated_calls: args.max_repeated_calls,
        early_stopping: args.early_stopping.as_str(),
        history: args.history.label(),
        replan: args.replan.as_str(),
        max_replans: args.max_replans,
        max_concurrency: args.max_concurrency,
        objective_in_steps: args.objective_in_steps == cli::Objective::Show,
        temperature: args.temperature,
        seed: args.seed,
        max_tokens: args.max_tokens,
    }
}

fn tools_for(args: &RunArgs) -> Result<Vec<Arc<dyn Tool>>, Failure> {
    let mut list: Vec<Arc<dyn Tool>> = Vec::new();
    let mut seen = Vec::new();
    for tool in &args.tools {
        if seen.contains(tool) {
            continue;
        }
        seen.push(*tool);
        match tool {
            ToolName::Calculator => list.push(Arc::new(tools::Calculator::new())),
            ToolName::Time => list.push(Arc::new(tools::CurrentTime::new())),
            ToolName::Files => {
                let root = args.files_root.as_ref().ok_or_else(|| {
                    Failure::new(FailureKind::Usage, "--tools files needs --files-root DIR")
                })?;
                let reader = tools::FileReader::new(root).map_err(|err| {
                    Failure::new(
                        FailureKind::Usage,
                        format!("--files-root {}: {err}", root.display()),
                    )
                })?;
                list.push(Arc::new(reader));
            }
        }
    }
    Ok(list)
}

fn planner_for(model: &Arc<dyn ChatModel>, mode: PlannerMode) -> Arc<dyn Planner> {
    match mode {
        PlannerMode::Text => Arc::new(LlmPlanner::builder(Arc::clone(model)).build()),
        // A small model that cannot write a consistent JSON plan still gets
        // a run: a plain numbered plan is asked for instead.
        PlannerMode::Structured => {
            Arc::new(StructuredPlanner::new(Arc::clone(model)).with_fallback_on_failure(true))
        }
    }
}

fn replanner_for(model: &Arc<dyn ChatModel>, mode: PlannerMode) -> Arc<dyn Replanner> {
    Arc::new(LlmReplanner::new(Arc::clone(model)).with_json(mode == PlannerMode::Structured))
}

fn executor_for(
    model: &Arc<dyn ChatModel>,
    args: &RunArgs,
    tools: Vec<Arc<dyn Tool>>,
) -> Result<Arc<dyn Executor>, Failure> {
    let history = match args.history {
        History::All => HistoryPolicy::All,
        History::LastK(k) => HistoryPolicy::LastK(k),
    };
    let mut builder = AgentExecutor::builder(Arc::clone(model));
    if args.max_repeated_calls > 0 {
        builder = builder.with_max_repeated_calls(args.max_repeated_calls as usize);
    }
    let executor = builder
        .with_tools(tools)
        .with_max_iterations(args.max_iterations as usize)
        .with_early_stopping(match args.early_stopping {
            EarlyStop::Force => EarlyStopping::Force,
            EarlyStop::Generate => EarlyStopping::Generate,
        })
        .with_history(history)
        .with_task_in_prompt(args.objective_in_steps == cli::Objective::Show)
        // Small models keep calling a tool whose result already answers
        // the step: pass that result on rather than a "stopped" text.
        .with_last_result_on_stop(true)
        .build()
        .map_err(|err| {
            Failure::new(
                FailureKind::Usage,
                format!("cannot build the executor: {err}"),
            )
        })?;
    Ok(Arc::new(executor))
}

/// Runs the agent; returns the answer, or the failure to report.
async fn run(args: &RunArgs) -> Result<String, Failure> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(args.quiet));
    let tools = tools_for(args)?;

    if args.provider == cli::Provider::Local {
        progress.activity("loading the model");
        progress.line(&format!(
            "loading {}",
            provider::local_model_path(args).display()
        ));
    }
    let built = match provider::build(args).await {
        Ok(built) => built,
        Err(failure) => {
            progress.finish();
            return Err(failure);
        }
    };
    progress.line(&format!(
        "model {} ({}) ready in {:.1}s",
        built.info.model,
        built.info.provider,
        built.info.load_ms / 1000.0
    ));
    let model = built.model;

    let executor = executor_for(&model, args, tools)?;
    let mut agent = PlanAndExecute::new(planner_for(&model, args.planner), executor)
        .with_max_steps(args.max_steps as usize)
        .with_max_replans(args.max_replans as usize)
        .with_max_concurrency(args.max_concurrency as usize);
    let policy = match args.replan {
        Replan::Never => None,
        Replan::EveryStep => Some(ReplanPolicy::AfterEveryStep),
        Replan::OnFailure => Some(ReplanPolicy::OnFailure),
    };
    if let Some(policy) = policy {
        agent = agent.with_replanner(replanner_for(&model, args.planner), policy);
    }
    let recorder = Recorder::default();
    let on_event = {
        let recorder = recorder.clone();
        let progress = Arc::clone(&progress);
        move |event: &pae_core::Event| {
            recorder.record(event);
            progress.on_event(event);
        }
    };
    let agent = agent.with_callback(on_event);

    progress.activity("planning");
    progress.line(&format!("planning ({} planner)…", args.planner.as_str()));
    let run_started = Instant::now();
    let result = agent.run(args.objective.clone()).await;
    let run_ms = run_started.elapsed().as_secs_f64() * 1000.0;
    progress.finish();

    let (outcome, usage) = match &result {
        Ok(result) => (Ok(result), result.usage),
        Err(err) => (
            Err(Failure::from_error(err, "the run failed")),
            // The run's last event has the tokens spent before the failure,
            // planning included (a failed planning has no partial run).
            recorder
                .events()
                .iter()
                .rev()
                .find_map(|event| match &event.kind {
                    EventKind::RunFailed { usage, .. } => Some(*usage),
                    _ => None,
                })
                .or_else(|| err.partial().map(|p| p.usage))
                .unwrap_or_default(),
        ),
    };
    if let Some(path) = &args.json {
        let settings = settings(args);
        let events = recorder.events();
        let record = RunRecord {
            objective: &args.objective,
            model: &built.info,
            settings: &settings,
            events: &events,
            result: outcome.as_ref().map(|r| *r),
            usage,
            run_ms,
            total_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if let Err(err) = transcript::write(path, &record) {
            eprintln!("warning: {err}");
        }
    }
    match outcome {
        Ok(result) => {
            if !args.quiet {
                eprintln!(
                    "answer after {:.1}s ({} steps, {} plan(s), {} tokens)",
                    started.elapsed().as_secs_f64(),
                    result.steps.len(),
                    result.plans.len(),
                    result.usage.total_tokens()
                );
            }
            Ok(result.output.clone())
        }
        Err(failure) => Err(failure),
    }
}
