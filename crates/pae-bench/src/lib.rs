//! The benchmarks of `pae`, as a library behind the `pae-bench` binary that
//! `cargo xtask bench` runs (`cargo run --release -p pae-bench -- <suite>
//! [options]`).
//!
//! Each benchmark is a suite: a module with a clap `Args` struct (its
//! options) and a `run(&Args)` function. To add one, write such a module
//! and add a variant to [`args::Command`]; `pae-bench list` and
//! `pae-bench --help` pick it up.
//!
//! Suites:
//! - `overhead` ([`overhead`]): the framework's own cost, PlanAndExecute
//!   with the chat planner and the agent executor over a zero-latency
//!   scripted model, for plans of 10, 100 and 1000 steps, under the
//!   history policies `all`, `last3` and `digest`; with `--vs-langchain`
//!   ([`langchain`]), side by side with LangChain's plan_and_execute on the
//!   same workload.
//! - `latency` ([`latency`]): what running independent steps at once
//!   saves: a fan-out plan and a chain at `max_concurrency` 1 and 8, over a
//!   scripted model that waits a fixed latency per call.
//! - `llamacpp` ([`llamacpp`]): prompt and generation tokens per second of
//!   `pae-llamacpp` next to llama.cpp through llama-cpp-python, same GGUF,
//!   prompt and settings, in one run.
//! - `tool-calls` ([`tool_calls`]): the agent executor over one reply with
//!   5,000 and 20,000 native tool calls, and the ratio of the times (about
//!   4 when handling is linear).
//! - `store` ([`store`]): per-step cost and database size of the SQLite
//!   run store for 100 and 1000 steps.
//! - `chaos` ([`chaos`]): a durable run killed with SIGKILL hundreds of
//!   times and resumed each time; checks nothing was lost or done twice.
//!
//! # Feature flags
//! - `llamacpp` (off): builds the `llamacpp` suite, which compiles llama.cpp
//!   through `pae-llamacpp`; without it the suite explains how to enable it.
//!
//! This package is not published.
//!
//! # Example
//! ```
//! use pae_bench::overhead::{Config, Variant, run_case};
//! use pae_executor::HistoryPolicy;
//!
//! let config = Config { steps: 10, variant: Variant::ToolCall, history: HistoryPolicy::LastK(3) };
//! let figures = run_case(&config, 1).unwrap();
//! assert_eq!(figures.model_calls, 1 + 2 * 10);
//! ```

use std::fmt;

pub mod args;
pub mod chaos;
pub mod langchain;
pub mod latency;
pub mod llamacpp;
pub mod options;
pub mod overhead;
pub mod store;
pub mod tool_calls;

use args::Command;

/// Runs the suite a command names (`list` prints the suites).
///
/// # Errors
/// What the suite returns.
pub fn run(command: &Command) -> Result<(), BenchError> {
    match command {
        Command::List => {
            use clap::CommandFactory;
            for suite in args::Cli::command().get_subcommands() {
                if suite.get_name() != "list" {
                    let about = suite.get_about().map(|a| a.to_string()).unwrap_or_default();
                    println!("{}\t{}", suite.get_name(), about.replace('\n', " "));
                }
            }
            Ok(())
        }
        // The comparison runs the overhead suite's cases, so it is
        // dispatched here rather than from `overhead::run`.
        Command::Overhead(options) if options.vs_langchain => langchain::run(options),
        Command::Overhead(options) => overhead::run(options),
        Command::Latency(options) => latency::run(options),
        Command::Llamacpp(options) => llamacpp::run(options),
        Command::ToolCalls(options) => tool_calls::run(options),
        Command::Store(options) => store::run(options),
        Command::Chaos(options) => chaos::run(options),
        Command::ChaosChild(options) => chaos::child(options),
    }
}

/// A benchmark could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// The command line is wrong.
    Usage(String),
    /// The run failed or produced something other than expected.
    Failed(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => write!(f, "usage error: {message}"),
            Self::Failed(message) => write!(f, "benchmark failed: {message}"),
        }
    }
}

impl std::error::Error for BenchError {}
