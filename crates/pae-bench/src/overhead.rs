//! The `overhead` suite: what the framework itself costs. PlanAndExecute
//! with the chat planner (`load_chat_planner`'s prompt, stop and parser,
//! with the step limit raised to the plan's length) and
//! `load_agent_executor` with the calculator, over a scripted model that
//! answers instantly, so every microsecond measured is pae's: prompt
//! formatting, history rendering, parsing, tool dispatch, bookkeeping.
//!
//! Two variants: every step answers at once (one model call per step), or
//! every step calls the calculator once and then answers (two calls per
//! step). Each runs under each history policy. Figures: wall time (median
//! of the repeats), time per step, model calls, total prompt characters
//! sent and the largest single prompt. Characters are counted in a separate,
//! untimed run, so counting does not inflate the times.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{ChatRequest, PlanAndExecute, PlanLimits, Role, Tool};
use pae_executor::tools::Calculator;
use pae_executor::{DigestLimits, HistoryPolicy, load_agent_executor};
use pae_planner::LlmPlanner;
use serde_json::json;

use crate::BenchError;
use crate::options::{Format, positive};

/// The suite's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Plan lengths.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "10,100,1000", value_parser = positive)]
    pub steps: Vec<usize>,
    /// `answer` (each step answers at once) and/or `tool` (each step calls
    /// the calculator once first).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "answer,tool", value_parser = Variant::from_arg)]
    pub variants: Vec<Variant>,
    /// `all`, `lastK` (e.g. `last3`) and/or `digest` (or `digestK`: the
    /// last K steps in full).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "all,last3,digest", value_parser = history_from_arg)]
    pub history: Vec<HistoryPolicy>,
    /// Timed runs per case; the median is shown.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    pub repeat: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Run LangChain's plan_and_execute on the same workload (the tool
    /// variant at the largest --steps) and print both sides: wall time,
    /// time per step, prompt characters, peak RSS, and the ratios. Each
    /// side runs in its own process. Needs a Python with the packages of
    /// crates/pae-bench/langchain/requirements.txt (`cargo xtask bench
    /// overhead --vs-langchain` installs them).
    #[arg(long)]
    pub vs_langchain: bool,
    /// The Python with LangChain, for --vs-langchain (default
    /// $PAE_CACHE_DIR/langchain-venv/bin/python).
    #[arg(long, value_name = "PATH")]
    pub python: Option<std::path::PathBuf>,
    /// LangChain runs for --vs-langchain; the median is shown.
    #[arg(long, value_name = "N", default_value = "1", value_parser = positive)]
    pub langchain_repeat: usize,
    /// pae processes for --vs-langchain, each timing --repeat runs: the
    /// median process is shown, with the largest peak RSS of them, so one
    /// process that the machine happens to slow down does not decide the
    /// ratio.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    pub pae_processes: usize,
}

/// What each step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The model answers at once: one call per step.
    Answer,
    /// The model calls the calculator, then answers: two calls per step.
    ToolCall,
}

impl Variant {
    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::ToolCall => "tool",
        }
    }

    /// Reads a variant name given on the command line.
    ///
    /// # Errors
    /// A message for clap naming the variants.
    pub fn from_arg(text: &str) -> Result<Self, String> {
        Self::parse(text).ok_or_else(|| format!("{text:?} is not a variant (answer, tool)"))
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "answer" => Some(Self::Answer),
            "tool" | "toolcall" | "tool-call" => Some(Self::ToolCall),
            _ => None,
        }
    }

    fn calls_per_step(self) -> usize {
        match self {
            Self::Answer => 1,
            Self::ToolCall => 2,
        }
    }
}

/// The name of a history policy in the table (`all`, `last3`, `digest`,
/// `digest5`).
pub fn history_name(history: HistoryPolicy) -> String {
    match history {
        HistoryPolicy::All => String::from("all"),
        HistoryPolicy::LastK(k) => format!("last{k}"),
        HistoryPolicy::Digest(limits) if limits == DigestLimits::DEFAULT => String::from("digest"),
        HistoryPolicy::Digest(limits) => format!("digest{}", limits.recent),
        // A policy this table does not name yet.
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Reads a history policy given on the command line (`all`, `last3`,
/// `digest`, `digest5`).
///
/// # Errors
/// A message for clap.
pub fn history_from_arg(text: &str) -> Result<HistoryPolicy, String> {
    parse_history(text)
        .ok_or_else(|| format!("{text:?} is not a history policy (all, lastK, digest, digestK)"))
}

fn parse_history(text: &str) -> Option<HistoryPolicy> {
    if text == "all" {
        return Some(HistoryPolicy::All);
    }
    if let Some(recent) = text.strip_prefix("digest") {
        let recent = recent.trim_start_matches([':', '-', '=', '(']);
        let recent = recent.trim_end_matches(')');
        if recent.is_empty() {
            return Some(HistoryPolicy::digest());
        }
        return recent
            .parse()
            .ok()
            .map(|k| HistoryPolicy::Digest(DigestLimits::DEFAULT.with_recent(k)));
    }
    let k = text
        .strip_prefix("lastk")
        .or_else(|| text.strip_prefix("last"))?
        .trim_start_matches([':', '-', '=', '(']);
    k.trim_end_matches(')')
        .parse()
        .ok()
        .map(HistoryPolicy::LastK)
}

/// One benchmark case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Steps in the plan.
    pub steps: usize,
    /// What each step does.
    pub variant: Variant,
    /// The executor's history policy.
    pub history: HistoryPolicy,
}

/// What one case measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The case.
    pub config: Config,
    /// Wall time of a run, the median of the timed runs.
    pub wall: Duration,
    /// Model calls in one run (planner included).
    pub model_calls: usize,
    /// Characters of every prompt sent in one run.
    pub prompt_chars: u64,
    /// Characters of the largest single prompt.
    pub largest_prompt: u64,
    /// Timed runs.
    pub repeats: usize,
}

impl Figures {
    /// Wall time divided by the number of steps.
    pub fn per_step(&self) -> Duration {
        let steps = u32::try_from(self.config.steps.max(1)).unwrap_or(u32::MAX);
        self.wall / steps
    }
}

/// The answer every step gives.
pub const STEP_ANSWER: &str = "Subtotal noted: 42";

#[derive(Default)]
struct Counters {
    enabled: AtomicBool,
    chars: AtomicU64,
    largest: AtomicU64,
}

fn plan_text(steps: usize) -> String {
    let mut text = String::from("Plan:\n");
    for i in 1..steps {
        text.push_str(&format!(
            "{i}. Compute the subtotal for item {i} and note it.\n"
        ));
    }
    text.push_str(&format!(
        "{steps}. Given the above steps taken, respond to the user's original question.\n<END_OF_PLAN>"
    ));
    text
}

fn has_observation(request: &ChatRequest) -> bool {
    let Some(last) = request.messages.iter().rev().find(|m| m.role == Role::User) else {
        return false;
    };
    // The last 256 bytes (from a character boundary), as the LangChain
    // side looks at `text[-256:]`; std's substring search is the analogue
    // of Python's `in`.
    let text = last.content.as_str();
    let mut start = text.len().saturating_sub(256);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].contains("\nObservation: ")
}

fn scripted_model(steps: usize, variant: Variant, counters: Arc<Counters>) -> ScriptedModel {
    let plan = plan_text(steps);
    let tool_action = format!(
        "Thought: I need the product first.\nAction:\n```json\n{}\n```",
        json!({"action": "calculator", "action_input": {"expression": "6 * 7"}})
    );
    let answer = format!(
        "Thought: I can answer now.\nAction:\n```json\n{}\n```",
        json!({"action": "Final Answer", "action_input": STEP_ANSWER})
    );
    ScriptedModel::from_fn(move |request| {
        if counters.enabled.load(Ordering::Relaxed) {
            let chars = request.prompt_chars() as u64;
            counters.chars.fetch_add(chars, Ordering::Relaxed);
            counters.largest.fetch_max(chars, Ordering::Relaxed);
        }
        let reply = if request.stop.iter().any(|s| s == "<END_OF_PLAN>") {
            &plan
        } else if variant == Variant::ToolCall && !has_observation(request) {
            &tool_action
        } else {
            &answer
        };
        ScriptedReply::Text(reply.clone())
    })
    .without_recording()
}

struct RunFigures {
    wall: Duration,
    model_calls: usize,
}

async fn run_once(config: &Config, counters: Arc<Counters>) -> Result<RunFigures, BenchError> {
    let model = Arc::new(scripted_model(config.steps, config.variant, counters));
    // load_chat_planner's prompt, stop and parser; only the step limit is
    // raised (its default is 100).
    let planner = LlmPlanner::builder(model.clone())
        .with_limits(PlanLimits {
            min_steps: 1,
            max_steps: config.steps,
        })
        .build();
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Calculator::new())];
    let executor = pae_executor::AgentExecutor::builder(model.clone())
        .with_tools(tools)
        .with_history(config.history)
        .with_plain_text_answers(true)
        .build()
        .map_err(|e| BenchError::Failed(format!("executor: {e}")))?;
    // The same settings as load_agent_executor apart from the history.
    debug_assert_eq!(
        executor.system_prompt(),
        load_agent_executor(model.clone(), vec![Arc::new(Calculator::new())], false)
            .map(|e| e.system_prompt().to_owned())
            .unwrap_or_default()
    );
    let agent =
        PlanAndExecute::new(Arc::new(planner), Arc::new(executor)).with_max_steps(config.steps);

    let started = Instant::now();
    let result = agent
        .run("What do the subtotals add up to?")
        .await
        .map_err(|e| BenchError::Failed(pae_core::error_chain(&e)))?;
    let wall = started.elapsed();

    if result.steps.len() != config.steps || result.output != STEP_ANSWER {
        return Err(BenchError::Failed(format!(
            "expected {} steps answering {STEP_ANSWER:?}, got {} steps and {:?}",
            config.steps,
            result.steps.len(),
            result.output
        )));
    }
    let expected_tools = usize::from(config.variant == Variant::ToolCall);
    if let Some((step, response)) = result
        .steps
        .iter()
        .find(|(_, r)| r.tool_calls.len() != expected_tools || !r.status.is_completed())
    {
        return Err(BenchError::Failed(format!(
            "step {:?} made {} tool calls (expected {expected_tools}), status {:?}",
            step.value,
            response.tool_calls.len(),
            response.status
        )));
    }
    Ok(RunFigures {
        wall,
        model_calls: model.calls(),
    })
}

/// Runs one case: an untimed counting run, then `repeats` timed runs.
///
/// # Errors
/// [`BenchError::Failed`] when a run fails or its result is not the
/// expected one.
pub fn run_case(config: &Config, repeats: usize) -> Result<Figures, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| BenchError::Failed(format!("tokio runtime: {e}")))?;
    let counters = Arc::new(Counters::default());
    counters.enabled.store(true, Ordering::Relaxed);
    let counted = runtime.block_on(run_once(config, counters.clone()))?;
    let expected_calls = 1 + config.steps * config.variant.calls_per_step();
    if counted.model_calls != expected_calls {
        return Err(BenchError::Failed(format!(
            "expected {expected_calls} model calls, got {}",
            counted.model_calls
        )));
    }

    let mut walls = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let quiet = Arc::new(Counters::default());
        walls.push(runtime.block_on(run_once(config, quiet))?.wall);
    }
    walls.sort();
    Ok(Figures {
        config: *config,
        wall: walls[walls.len() / 2],
        model_calls: counted.model_calls,
        prompt_chars: counters.chars.load(Ordering::Relaxed),
        largest_prompt: counters.largest.load(Ordering::Relaxed),
        repeats: walls.len(),
    })
}

/// The peak resident set size of this process so far, in KiB (`VmHWM` in
/// /proc/self/status; 0 where there is none).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table header.
pub fn table_header() -> String {
    format!(
        "{:>6}  {:<7}  {:<7}  {:>10}  {:>9}  {:>11}  {:>14}  {:>14}",
        "steps",
        "variant",
        "history",
        "wall ms",
        "µs/step",
        "model calls",
        "prompt chars",
        "largest prompt"
    )
}

/// One table row.
pub fn table_row(f: &Figures) -> String {
    format!(
        "{:>6}  {:<7}  {:<7}  {:>10.2}  {:>9.1}  {:>11}  {:>14}  {:>14}",
        f.config.steps,
        f.config.variant.name(),
        history_name(f.config.history),
        f.wall.as_secs_f64() * 1e3,
        f.per_step().as_secs_f64() * 1e6,
        f.model_calls,
        thousands(f.prompt_chars),
        thousands(f.largest_prompt)
    )
}

/// One JSON line.
pub fn json_row(f: &Figures) -> String {
    json!({
        "suite": "overhead",
        "steps": f.config.steps,
        "variant": f.config.variant.name(),
        "history": history_name(f.config.history),
        "wall_ms": f.wall.as_secs_f64() * 1e3,
        "per_step_us": f.per_step().as_secs_f64() * 1e6,
        "model_calls": f.model_calls,
        "prompt_chars": f.prompt_chars,
        "largest_prompt_chars": f.largest_prompt,
        "repeats": f.repeats,
        "peak_rss_kib": peak_rss_kib(),
    })
    .to_string()
}

/// Runs the suite with command-line options. `--vs-langchain` is not
/// handled here: [`crate::run`] sends it to [`crate::langchain::run`],
/// which uses this suite's cases (so this module does not depend on it).
///
/// # Errors
/// [`BenchError::Failed`] when a case fails.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let (steps, variants, histories) = (&args.steps, &args.variants, &args.history);
    let repeats = args.repeat;
    let json = args.format == Format::Json;

    if !json {
        println!(
            "overhead: PlanAndExecute + chat planner + agent executor (text-JSON, calculator) over a zero-latency scripted model"
        );
        println!(
            "wall time is the median of {repeats} run(s); characters are counted in a separate untimed run\n"
        );
        println!("{}", table_header());
    }
    for &variant in variants {
        for &history in histories {
            for &n in steps {
                let figures = run_case(
                    &Config {
                        steps: n,
                        variant,
                        history,
                    },
                    repeats,
                )?;
                if json {
                    println!("{}", json_row(&figures));
                } else {
                    println!("{}", table_row(&figures));
                }
            }
        }
    }
    if !json {
        println!(
            "\nLangChain on the same workload, side by side: `cargo xtask bench overhead --vs-langchain`."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_names_round_trip() {
        for text in ["all", "last3", "last:3", "lastk3", "last0"] {
            let policy = parse_history(text).unwrap();
            assert_eq!(parse_history(&history_name(policy)), Some(policy));
        }
        assert_eq!(parse_history("last3"), Some(HistoryPolicy::LastK(3)));
        assert_eq!(parse_history("digest"), Some(HistoryPolicy::digest()));
        assert_eq!(
            parse_history("digest5"),
            Some(HistoryPolicy::Digest(DigestLimits::DEFAULT.with_recent(5)))
        );
        for text in ["digest", "digest5", "digest:1"] {
            let policy = parse_history(text).unwrap();
            assert_eq!(parse_history(&history_name(policy)), Some(policy));
        }
        assert_eq!(parse_history("digestx"), None);
        assert_eq!(parse_history("some"), None);
        assert_eq!(parse_history("last"), None);
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(65_400_000), "65,400,000");
        assert!(plan_text(3).ends_with("3. Given the above steps taken, respond to the user's original question.\n<END_OF_PLAN>"));
    }

    #[test]
    fn both_variants_run_and_count() {
        for variant in [Variant::Answer, Variant::ToolCall] {
            for history in [
                HistoryPolicy::All,
                HistoryPolicy::LastK(1),
                HistoryPolicy::digest(),
            ] {
                let figures = run_case(
                    &Config {
                        steps: 5,
                        variant,
                        history,
                    },
                    1,
                )
                .unwrap();
                assert_eq!(figures.model_calls, 1 + 5 * variant.calls_per_step());
                assert!(figures.prompt_chars > figures.largest_prompt);
                assert!(figures.largest_prompt > 0);
            }
        }
    }
}
