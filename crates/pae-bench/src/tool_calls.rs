//! The `tool-calls` suite: what the agent executor costs for one reply
//! that holds thousands of native tool calls (issue: 5k, 10k, 20k and 100k
//! calls once took 0.22 s, 0.86 s, 3.3 s and 291 s, quadratic).
//!
//! A scripted model with native tool calling replies once with N calls of
//! a tool that answers at once (each with other arguments), then answers
//! in text. The executor runs with the per-reply limit lifted, so every
//! call is handled: ids checked, arguments fitted and checked against the
//! schema, repeats looked for, events emitted, results recorded and sent
//! back. For linear handling, 4 times the calls take about 4 times as
//! long. A last row shows the same largest reply under the default limit
//! of calls per reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{Capabilities, Executor, StepInput, Tool, ToolCall, ToolError};
use pae_executor::{ActionFormat, AgentExecutor, DEFAULT_MAX_CALLS_PER_REPLY};
use serde_json::{Value, json};

use crate::BenchError;
use crate::options::{Format, positive};

/// The suite's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Tool calls in the one reply; the first and the last are compared.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "5000,20000", value_parser = positive)]
    pub calls: Vec<usize>,
    /// Timed runs per case; the median is shown.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    pub repeat: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// A tool that answers at once.
struct Echo;

#[async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn description(&self) -> &str {
        "Returns its number."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    }

    async fn call(&self, input: Value) -> Result<String, ToolError> {
        Ok(input["n"].to_string())
    }
}

/// What one case measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Tool calls in the reply.
    pub calls: usize,
    /// Calls run (the rest were over the per-reply limit).
    pub run: usize,
    /// Wall time of the step, the median of the timed runs.
    pub wall: Duration,
}

/// Runs one step over a reply with `calls` tool calls, `repeats` times;
/// `limit` is the executor's calls-per-reply limit (`None`: lifted).
///
/// # Errors
/// [`BenchError::Failed`] when the step fails or runs the wrong number of
/// calls.
pub fn run_case(calls: usize, limit: Option<usize>, repeats: usize) -> Result<Figures, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| BenchError::Failed(format!("tokio: {e}")))?;
    let reply: Vec<ToolCall> = (0..calls)
        .map(|i| ToolCall::new(format!("call_{i}"), "echo", json!({ "n": i })))
        .collect();
    let expected = limit.map_or(calls, |l| l.min(calls));
    let mut walls = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let model = Arc::new(
            ScriptedModel::new([ScriptedReply::ToolCalls(reply.clone()), "done".into()])
                .with_capabilities(Capabilities {
                    native_tools: true,
                    ..Capabilities::default()
                })
                .without_recording(),
        );
        let executor = AgentExecutor::builder(model)
            .with_tool(Arc::new(Echo))
            .with_action_format(ActionFormat::Native)
            .with_max_calls_per_reply(limit.unwrap_or(usize::MAX))
            .build()
            .map_err(|e| BenchError::Failed(format!("executor: {e}")))?;
        let input = StepInput::new("Echo every number.", "Call echo for each number");
        let started = Instant::now();
        let response = runtime
            .block_on(executor.step(&input))
            .map_err(|e| BenchError::Failed(pae_core::error_chain(&e)))?;
        walls.push(started.elapsed());
        if response.response != "done" || response.tool_calls.len() != expected {
            return Err(BenchError::Failed(format!(
                "expected {expected} calls and \"done\", got {} calls and {:?}",
                response.tool_calls.len(),
                response.response
            )));
        }
    }
    walls.sort();
    Ok(Figures {
        calls,
        run: expected,
        wall: walls[walls.len() / 2],
    })
}

/// Runs the suite.
///
/// # Errors
/// [`BenchError::Failed`] when a case fails.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let json = args.format == Format::Json;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if !json {
        println!(
            "tool-calls: one native reply with N tool calls through the agent executor, median of {}\n",
            args.repeat
        );
        println!(
            "{:>9} {:>9} {:>12} {:>14}  limit",
            "calls", "run", "wall ms", "us per call"
        );
    }
    let mut rows = Vec::new();
    let largest = args.calls.iter().copied().max().unwrap_or(0);
    let cases = args
        .calls
        .iter()
        .map(|&n| (n, None))
        .chain(std::iter::once((
            largest,
            Some(DEFAULT_MAX_CALLS_PER_REPLY),
        )));
    for (calls, limit) in cases {
        let figures = run_case(calls, limit, args.repeat)?;
        let per_call = figures.wall.as_secs_f64() * 1e6 / figures.run.max(1) as f64;
        let limit_text = limit.map_or_else(|| String::from("lifted"), |l| l.to_string());
        if json {
            println!(
                "{}",
                json!({
                    "suite": "tool-calls", "calls": calls, "run": figures.run,
                    "wall_ms": ms(figures.wall), "us_per_call": per_call, "limit": limit,
                })
            );
        } else {
            println!(
                "{calls:>9} {:>9} {:>12.1} {per_call:>14.2}  {limit_text}",
                figures.run,
                ms(figures.wall)
            );
        }
        if limit.is_none() {
            rows.push(figures);
        }
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && last.calls > first.calls
    {
        let calls_ratio = last.calls as f64 / first.calls as f64;
        let time_ratio = last.wall.as_secs_f64() / first.wall.as_secs_f64().max(1e-9);
        if json {
            println!(
                "{}",
                json!({"suite": "tool-calls", "calls_ratio": calls_ratio, "time_ratio": time_ratio})
            );
        } else {
            println!(
                "\n{} vs {} calls: {time_ratio:.2}x the time for {calls_ratio:.0}x the calls \
                 (linear: about {calls_ratio:.0}x; quadratic: about {:.0}x)",
                last.calls,
                first.calls,
                calls_ratio * calls_ratio
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_runs_with_the_limit_lifted_and_the_limit_holds() {
        let lifted = run_case(300, None, 1).unwrap();
        assert_eq!((lifted.calls, lifted.run), (300, 300));
        let limited = run_case(300, Some(DEFAULT_MAX_CALLS_PER_REPLY), 1).unwrap();
        assert_eq!(limited.run, DEFAULT_MAX_CALLS_PER_REPLY);
    }
}
