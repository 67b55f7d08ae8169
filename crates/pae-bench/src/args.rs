//! The command line of `pae-bench` (clap, derive): one subcommand per
//! suite, each with its own options, plus `list`. `cargo xtask bench`
//! passes `<suite> [options]` through unchanged.

use clap::{Parser, Subcommand};

pub use crate::options::{Format, positive};
use crate::{chaos, latency, llamacpp, overhead, store, tool_calls};

/// Runs one benchmark suite of pae and prints its figures. Build with
/// --release for meaningful figures.
#[derive(Debug, Parser)]
#[command(name = "pae-bench", arg_required_else_help = true)]
pub struct Cli {
    /// The suite to run, or `list`.
    #[command(subcommand)]
    pub command: Command,
}

/// A suite, or `list`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the suites, one per line: name, a tab, what it measures.
    List,
    /// Framework overhead of PlanAndExecute + chat planner + agent executor
    /// over a zero-latency scripted model.
    Overhead(overhead::Args),
    /// Wall time of a fan-out plan and a chain at max_concurrency 1 and 8
    /// over a model with fixed latency.
    Latency(latency::Args),
    /// Prompt and generation tokens/s of pae-llamacpp next to
    /// llama-cpp-python on the same GGUF (feature `llamacpp`).
    Llamacpp(llamacpp::Args),
    /// Time of the agent executor over one reply with thousands of native
    /// tool calls, to show it grows linearly.
    ToolCalls(tool_calls::Args),
    /// Per-step cost and database size of the SQLite run store.
    Store(store::Args),
    /// Kills a durable run with SIGKILL hundreds of times, resumes it each
    /// time, and checks nothing was lost or done twice.
    Chaos(chaos::Args),
    /// One session of the chaos suite's child (internal).
    #[command(hide = true)]
    ChaosChild(chaos::ChildArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use pae_executor::HistoryPolicy;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pae-bench").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_flags_and_lists() {
        let Command::Overhead(args) = parse(&["overhead", "--steps", "10,1_00", "--format=json"])
            .unwrap()
            .command
        else {
            panic!("expected overhead");
        };
        assert_eq!(args.format, Format::Json);
        assert_eq!(args.steps, vec![10, 100]);
        assert_eq!(args.repeat, 3);
        assert_eq!(
            args.history,
            vec![
                HistoryPolicy::All,
                HistoryPolicy::LastK(3),
                HistoryPolicy::digest()
            ]
        );
        let Command::Overhead(args) = parse(&["overhead"]).unwrap().command else {
            panic!("expected overhead");
        };
        assert_eq!(args.steps, vec![10, 100, 1000]);
        let Command::Llamacpp(args) = parse(&["llamacpp", "--no-grammar"]).unwrap().command else {
            panic!("expected llamacpp");
        };
        assert!(args.no_grammar);
        let Command::ToolCalls(args) = parse(&["tool-calls"]).unwrap().command else {
            panic!("expected tool-calls");
        };
        assert_eq!(args.calls, vec![5_000, 20_000]);
    }

    #[test]
    fn errors() {
        assert!(parse(&["overhead", "x"]).is_err());
        assert!(parse(&["overhead", "--nope"]).is_err());
        assert!(parse(&["overhead", "--steps"]).is_err());
        assert!(parse(&["overhead", "--steps", "a"]).is_err());
        assert!(parse(&["overhead", "--repeat", "0"]).is_err());
        assert!(parse(&["nope"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
