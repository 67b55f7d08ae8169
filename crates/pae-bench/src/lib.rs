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
//!
//! This package is not published and has no feature flags.
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
pub mod overhead;

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
pub const SUITES: &[Suite] = &[Suite {
    name: "overhead",
    about: "framework overhead of PlanAndExecute + chat planner + agent executor over a zero-latency scripted model",
    usage: overhead::USAGE,
    run: overhead::run,
}];

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
