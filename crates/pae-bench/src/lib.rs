//! The benchmarks of `pae`, as a library behind the `pae-bench` binary that
//! `cargo xtask bench` runs (`cargo run --release -p pae-bench -- <suite>
//! [options]`).
//!
//! Each benchmark is a [`Suite`]: a name, a one-line description and a
//! function taking the suite's own command-line options. To add one, write
//! a module with a `run(&[String]) -> Result<(), BenchError>` function and
//! add an entry to [`SUITES`]; `pae-bench list` and `pae-bench --help` pick
//! it up.
//!
//! Suites:
//! - `overhead` ([`overhead`]): the framework's own cost, PlanAndExecute
//!   with the chat planner and the agent executor over a zero-latency
//!   scripted model, for plans of 10, 100 and 1000 steps.
//! - `latency` ([`latency`]): what running independent steps at once
//!   saves: a fan-out plan and a chain at `max_concurrency` 1 and 8, over a
//!   scripted model that waits a fixed latency per call.
//! - `llamacpp` ([`llamacpp`]): prompt and generation tokens per second of
//!   `pae-llamacpp` next to llama.cpp through llama-cpp-python, same GGUF,
//!   prompt and settings, in one run.
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
pub mod latency;
pub mod llamacpp;
pub mod overhead;
pub mod tool_calls;

/// A benchmark suite of the `pae-bench` binary.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// The name given on the command line.
    pub name: &'static str,
    /// What it measures, in one line.
    pub about: &'static str,
    /// The usage text of its options.
    pub usage: &'static str,
    /// Runs it with the options after the suite name.
    pub run: fn(&[String]) -> Result<(), BenchError>,
}

/// Every suite, in the order `pae-bench list` shows them.
pub const SUITES: &[Suite] = &[
    Suite {
        name: "overhead",
        about: "framework overhead of PlanAndExecute + chat planner + agent executor over a zero-latency scripted model",
        usage: overhead::USAGE,
        run: overhead::run,
    },
    Suite {
        name: "latency",
        about: "wall time of a fan-out plan and a chain at max_concurrency 1 and 8 over a model with fixed latency",
        usage: latency::USAGE,
        run: latency::run,
    },
    Suite {
        name: "llamacpp",
        about: "prompt and generation tokens/s of pae-llamacpp next to llama-cpp-python on the same GGUF (feature `llamacpp`)",
        usage: llamacpp::USAGE,
        run: llamacpp::run,
    },
];

/// Finds a suite by name.
pub fn suite(name: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.name == name)
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
