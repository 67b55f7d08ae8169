//! The `latency` suite: what running independent steps at once saves.
//!
//! A scripted model waits a fixed latency per call (100 ms by default). The
//! chat planner's reply is a text plan whose steps refer to earlier results
//! (`#E1`), so the text parser infers the dependencies:
//!
//! - fan-out: 8 independent look-ups and a final step that combines all
//!   eight (`#E1` … `#E8`);
//! - chain: 8 steps, each using the previous one's result.
//!
//! Each plan runs with `max_concurrency` 1 and 8 through PlanAndExecute +
//! `load_chat_planner` + `load_agent_executor` (every step answers in one
//! call). The critical path of the fan-out plan is the planner call, one
//! look-up and the final step: 3 latencies. At concurrency 8 the fan-out
//! should take about that; at concurrency 1 about 10 (8 look-ups in a row);
//! the chain takes 9 whatever the concurrency, and must still pass each
//! result on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{ChatRequest, PlanAndExecute, Tool};
use pae_executor::load_agent_executor;
use pae_planner::load_chat_planner;
use serde_json::json;

use crate::BenchError;
use crate::options::{Format, positive};

/// The suite's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Latency of every model call, in milliseconds.
    #[arg(long, value_name = "N", default_value = "100", value_parser = positive)]
    pub latency_ms: usize,
    /// Runs per case; the median is shown.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    pub repeat: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The plan shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 8 independent steps, then one that combines them.
    FanOut,
    /// 8 steps, each needing the previous one.
    Chain,
}

impl Shape {
    /// The name shown in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::FanOut => "fan-out 8+1",
            Self::Chain => "chain of 8",
        }
    }

    /// The planner's reply.
    pub fn plan_text(self) -> String {
        let mut text = String::from("Plan:\n");
        match self {
            Self::FanOut => {
                for i in 1..=8 {
                    text.push_str(&format!("{i}. Look up fact number {i}.\n"));
                }
                let all: Vec<String> = (1..=8).map(|i| format!("#E{i}")).collect();
                text.push_str(&format!("9. Combine {} into the answer.\n", all.join(", ")));
            }
            Self::Chain => {
                text.push_str("1. Start with the number 1.\n");
                for i in 2..=8 {
                    text.push_str(&format!("{i}. Add one to #E{}.\n", i - 1));
                }
            }
        }
        text.push_str("<END_OF_PLAN>");
        text
    }

    /// Model calls on the critical path: planner + longest chain of steps.
    pub fn critical_calls(self) -> u32 {
        match self {
            Self::FanOut => 3,
            Self::Chain => 9,
        }
    }
}

/// One measured case.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// The plan shape.
    pub shape: Shape,
    /// `max_concurrency`.
    pub concurrency: usize,
    /// Median wall time.
    pub wall: Duration,
    /// Model calls per run.
    pub model_calls: usize,
}

/// The answer a step gives: the step's own number for a look-up, or the
/// sum carried along the chain.
fn step_answer(step_text: &str) -> String {
    if let Some(rest) = step_text.strip_prefix("Add one to ") {
        let n: u64 = rest.trim_end_matches('.').trim().parse().unwrap_or(0);
        return (n + 1).to_string();
    }
    if step_text.starts_with("Start with the number 1") {
        return "1".into();
    }
    if let Some(rest) = step_text.strip_prefix("Look up fact number ") {
        return format!("fact {}", rest.trim_end_matches('.'));
    }
    format!("combined: {step_text}")
}

/// The current step's text as the executor's prompt shows it.
fn current_step(request: &ChatRequest) -> String {
    let user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == pae_core::Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or_default();
    user.split("Current step:")
        .nth(1)
        .map(|rest| {
            rest.trim()
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn model(shape: Shape, latency: Duration) -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::from_fn(move |request| {
            if request.stop.iter().any(|s| s == "<END_OF_PLAN>") {
                return ScriptedReply::from(shape.plan_text());
            }
            let answer = step_answer(&current_step(request));
            ScriptedReply::from(format!(
                "Action:\n```json\n{}\n```",
                json!({"action": "Final Answer", "action_input": answer})
            ))
        })
        .with_latency(latency)
        .without_recording(),
    )
}

/// Runs one case once; returns its wall time and checks its answer.
async fn run_once(
    shape: Shape,
    concurrency: usize,
    latency: Duration,
) -> Result<(Duration, usize), BenchError> {
    let model = model(shape, latency);
    let planner = load_chat_planner(model.clone());
    let executor = load_agent_executor(model.clone(), Vec::<Arc<dyn Tool>>::new(), false)
        .map_err(|e| BenchError::Failed(format!("executor: {e}")))?;
    let agent = PlanAndExecute::new(Arc::new(planner), Arc::new(executor))
        .with_max_concurrency(concurrency);
    let started = Instant::now();
    let result = agent
        .run("Gather eight facts and combine them")
        .await
        .map_err(|e| {
            BenchError::Failed(format!(
                "{} at concurrency {concurrency}: {}",
                shape.name(),
                pae_core::error_chain(&e)
            ))
        })?;
    let wall = started.elapsed();
    let expected = match shape {
        Shape::FanOut => {
            "combined: Combine fact 1, fact 2, fact 3, fact 4, fact 5, fact 6, fact 7, fact 8 into the answer."
        }
        Shape::Chain => "8",
    };
    if result.output != expected {
        return Err(BenchError::Failed(format!(
            "{} at concurrency {concurrency}: expected the answer {expected:?}, got {:?}",
            shape.name(),
            result.output
        )));
    }
    Ok((wall, model.calls()))
}

/// Measures one case `repeats` times.
///
/// # Errors
/// [`BenchError::Failed`] when a run fails or gives a wrong answer.
pub fn run_case(
    shape: Shape,
    concurrency: usize,
    latency: Duration,
    repeats: usize,
) -> Result<Figures, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| BenchError::Failed(format!("tokio runtime: {e}")))?;
    let mut walls = Vec::new();
    let mut calls = 0;
    for _ in 0..repeats.max(1) {
        let (wall, c) = runtime.block_on(run_once(shape, concurrency, latency))?;
        walls.push(wall);
        calls = c;
    }
    walls.sort();
    Ok(Figures {
        shape,
        concurrency,
        wall: walls[walls.len() / 2],
        model_calls: calls,
    })
}

/// Runs the suite.
///
/// # Errors
/// [`BenchError::Failed`] when a run fails.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let latency = Duration::from_millis(u64::try_from(args.latency_ms).unwrap_or(u64::MAX));
    let repeats = args.repeat;
    let json = args.format == Format::Json;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if !json {
        println!(
            "latency: PlanAndExecute + chat planner + agent executor, scripted model waiting {} ms per call, median of {repeats}\n",
            latency.as_millis()
        );
        println!(
            "{:<12} {:>11} {:>9} {:>12} {:>16} {:>11}",
            "plan", "concurrency", "calls", "wall ms", "critical path ms", "wall/crit"
        );
    }
    for shape in [Shape::FanOut, Shape::Chain] {
        let critical = latency * shape.critical_calls();
        let mut walls = Vec::new();
        for concurrency in [1, 8] {
            let figures = run_case(shape, concurrency, latency, repeats)?;
            let ratio = figures.wall.as_secs_f64() / critical.as_secs_f64();
            walls.push(figures.wall);
            if json {
                println!(
                    "{}",
                    json!({
                        "suite": "latency", "plan": shape.name(), "concurrency": concurrency,
                        "model_calls": figures.model_calls, "wall_ms": ms(figures.wall),
                        "critical_path_ms": ms(critical), "wall_over_critical": ratio,
                        "latency_ms": ms(latency),
                    })
                );
            } else {
                println!(
                    "{:<12} {:>11} {:>9} {:>12.1} {:>16.1} {:>11.2}",
                    shape.name(),
                    concurrency,
                    figures.model_calls,
                    ms(figures.wall),
                    ms(critical),
                    ratio
                );
            }
        }
        if !json {
            let speedup = walls[0].as_secs_f64() / walls[1].as_secs_f64();
            let steps_at_one =
                (walls[0].saturating_sub(latency * 2)).as_secs_f64() / latency.as_secs_f64();
            match shape {
                Shape::FanOut => println!(
                    "{:<12} concurrency 8 is {speedup:.2}x faster; at concurrency 1 the 8 look-ups took {steps_at_one:.2} latencies",
                    ""
                ),
                Shape::Chain => println!(
                    "{:<12} concurrency 8 vs 1: {speedup:.2}x (a chain cannot be sped up); the answer passed along all 8 steps",
                    ""
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_into_the_intended_dependencies() {
        use pae_core::PlanOutputParser;
        let parser = pae_planner::PlanningOutputParser::new();
        let fan = parser.parse(&Shape::FanOut.plan_text()).unwrap();
        assert_eq!(fan.len(), 9);
        assert_eq!(fan.steps[8].depends_on.len(), 8);
        assert!(fan.steps[..8].iter().all(|s| s.depends_on.is_empty()));
        let chain = parser.parse(&Shape::Chain.plan_text()).unwrap();
        assert_eq!(chain.len(), 8);
        assert_eq!(chain.steps[7].depends_on, ["7"]);
    }

    #[test]
    fn a_short_fan_out_run_beats_the_sequential_one() {
        let latency = Duration::from_millis(20);
        let parallel = run_case(Shape::FanOut, 8, latency, 1).unwrap();
        let sequential = run_case(Shape::FanOut, 1, latency, 1).unwrap();
        assert_eq!(parallel.model_calls, 10);
        assert!(
            parallel.wall < sequential.wall,
            "{parallel:?} vs {sequential:?}"
        );
        run_case(Shape::Chain, 8, latency, 1).unwrap();
    }
}
