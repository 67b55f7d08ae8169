//! `pae`: run a plan-and-execute agent from the command line.
//!
//! `pae run "<objective>"` plans with a model, carries out each step with
//! a tool-using executor, prints live progress on stderr and the final
//! answer on stdout. Every run is recorded in a run store (a SQLite file
//! by default) and can be listed (`pae runs`), shown (`pae show`), resumed
//! after a crash or Ctrl-C (`pae resume`), and stopped for approval before
//! any tool runs (`pae run --approve`, then `pae approve` / `edit` /
//! `reject`). The default model is a local GGUF file run in-process by
//! llama.cpp (`pae-llamacpp`), so it works offline with no API key;
//! `--provider openai` talks to an OpenAI-compatible server. See
//! `pae --help` for every command and the exit codes.

mod agent;
mod answer;
mod cli;
mod clock;
mod exit;
mod progress;
mod provider;
mod record;
mod report;
mod run;
mod runstore;
mod scripted;
mod settings;
mod strategy;
mod submit;
mod telemetry;
mod term;
mod transcript;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::FailureKind;
use crate::run::Ending;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime: the OTLP exporter runs a blocking client on a
    // thread of its own.
    let telemetry_args = match &cli.command {
        Command::Run(args) => args.output.telemetry.clone(),
        Command::Resume(args) => args.output.telemetry.clone(),
        _ => cli::TelemetryArgs::default(),
    };
    let telemetry = match telemetry::Telemetry::init(&telemetry_args) {
        Ok(telemetry) => telemetry,
        Err(failure) => {
            term::err(&format!("error: {}", failure.message));
            return ExitCode::from(failure.kind.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            term::err(&format!("error: cannot start the async runtime: {err}"));
            return ExitCode::from(FailureKind::RunFailed.exit_code());
        }
    };
    let help = match &cli.command {
        Command::Run(_) => "pae run --help",
        Command::Resume(_) => "pae resume --help",
        Command::Submit(_) => "pae submit --help",
        Command::Worker(_) => "pae worker --help",
        _ => "pae --help",
    };
    let ending = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Resume(args) => run::resume(*args).await,
            Command::Runs(args) => runstore::runs(&args).await.map(|()| done()),
            Command::Show(args) => runstore::show(&args).await.map(|()| done()),
            Command::Approve(args) => runstore::approve(&args).await.map(|()| done()),
            Command::Edit(args) => runstore::edit(&args).await.map(|()| done()),
            Command::Reject(args) => runstore::reject(&args).await.map(|()| done()),
            Command::Submit(args) => submit::submit(*args).await.map(|()| done()),
            Command::Worker(args) => worker::worker(args).await.map(|()| done()),
        }
    });
    // Stop the signal watcher and any stray task without waiting for them.
    runtime.shutdown_background();
    // Flush the spans not yet exported.
    telemetry.shutdown();
    match ending {
        Ok(ending) => {
            if let Some(answer) = &ending.answer {
                term::out(answer);
            }
            if let Some(note) = &ending.note {
                term::err(note);
            }
            ExitCode::from(ending.kind.map_or(0, FailureKind::exit_code))
        }
        Err(failure) => {
            // A message can quote what a model or server sent: bounded.
            term::err(&format!("error: {}", term::bounded(&failure.message, 4000)));
            if failure.kind == FailureKind::Usage {
                term::err(&format!("\nFor more information, try '{help}'."));
            }
            ExitCode::from(failure.kind.exit_code())
        }
    }
}

fn done() -> Ending {
    Ending {
        answer: None,
        kind: None,
        note: None,
    }
}
