//! `overhead --vs-langchain`: pae and LangChain side by side on the same
//! workload, in one invocation.
//!
//! The workload is the `overhead` suite's tool variant at the largest
//! `--steps` (1000 by default): a planner that returns a plan of N steps,
//! and in every step a model that calls a trivial calculator and then
//! answers, both instantly, so all the time measured is the framework's.
//! LangChain runs `langchain_experimental.plan_and_execute`
//! (`load_chat_planner` + `load_agent_executor`) over a fake chat model
//! with the same replies (`langchain/overhead.py`, pinned packages in
//! `langchain/requirements.txt`); pae runs the `overhead` suite's case once
//! per `--history` policy.
//!
//! Each side runs in a process of its own, so its peak RSS is its own:
//! pae's is `VmHWM` of a `pae-bench overhead` child that runs one case,
//! LangChain's is `ru_maxrss` of the Python process (the interpreter and
//! its imports included, as a user of either pays for them). Wall times
//! leave out start-up and imports on both sides.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::BenchError;
use crate::args::Format;
use crate::overhead::{Args, STEP_ANSWER, Variant, history_name, thousands};

/// The LangChain side's script.
pub const SCRIPT: &str = include_str!("../langchain/overhead.py");

/// The pinned packages of the LangChain side (`pip install -r`).
pub const REQUIREMENTS: &str = include_str!("../langchain/requirements.txt");

/// The objective both sides are given.
pub const OBJECTIVE: &str = "What do the subtotals add up to?";

/// What one side measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// `pae (all)`, `langchain`, ...
    pub name: String,
    /// Steps in the plan.
    pub steps: usize,
    /// Wall time of a run in seconds (the median of the timed runs).
    pub wall_s: f64,
    /// Model calls in a run.
    pub model_calls: u64,
    /// Characters of every prompt of a run.
    pub prompt_chars: u64,
    /// Characters of the largest prompt.
    pub largest_prompt: u64,
    /// Peak resident set size of the side's process, KiB.
    pub peak_rss_kib: u64,
}

impl Side {
    /// Wall time per step, in microseconds.
    pub fn per_step_us(&self) -> f64 {
        self.wall_s * 1e6 / self.steps.max(1) as f64
    }

    fn from_json(name: String, value: &Value) -> Result<Self, BenchError> {
        let number = |key: &str| {
            value[key]
                .as_f64()
                .ok_or_else(|| BenchError::Failed(format!("{name}: no {key:?} in {value}")))
        };
        let wall_s = match value.get("wall_s") {
            Some(_) => number("wall_s")?,
            None => number("wall_ms")? / 1e3,
        };
        Ok(Self {
            steps: number("steps")? as usize,
            wall_s,
            model_calls: number("model_calls")? as u64,
            prompt_chars: number("prompt_chars")? as u64,
            largest_prompt: number("largest_prompt_chars")? as u64,
            peak_rss_kib: number("peak_rss_kib")? as u64,
            name,
        })
    }
}

/// `$PAE_CACHE_DIR/langchain-venv/bin/python` (`PAE_CACHE_DIR` defaults to
/// `~/.cache/pae`).
pub fn default_python() -> PathBuf {
    let cache = std::env::var_os("PAE_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache")
                .join("pae")
        });
    cache.join("langchain-venv").join("bin").join("python")
}

fn last_json_line(what: &str, stdout: &[u8]) -> Result<Value, BenchError> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| BenchError::Failed(format!("{what} printed no figures")))?;
    serde_json::from_str(line).map_err(|e| BenchError::Failed(format!("{what}'s figures: {e}")))
}

fn run_child(what: &str, command: &mut Command) -> Result<Value, BenchError> {
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::Failed(format!("cannot start {what}: {e}")))?;
    if !output.status.success() {
        return Err(BenchError::Failed(format!(
            "{what} failed ({}); its errors are above",
            output.status
        )));
    }
    last_json_line(what, &output.stdout)
}

/// pae's side: this binary, one case in `--pae-processes` child processes
/// one after another; the process with the median wall time, with the
/// largest peak RSS of them all.
fn pae_side(args: &Args, steps: usize, history: &str) -> Result<Side, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Failed(format!("cannot find pae-bench itself: {e}")))?;
    let mut sides = Vec::with_capacity(args.pae_processes.max(1));
    for _ in 0..args.pae_processes.max(1) {
        let value = run_child(
            "pae-bench",
            Command::new(&exe).args([
                "overhead",
                "--steps",
                &steps.to_string(),
                "--variants",
                Variant::ToolCall.name(),
                "--history",
                history,
                "--repeat",
                &args.repeat.to_string(),
                "--format",
                "json",
            ]),
        )?;
        sides.push(Side::from_json(format!("pae ({history})"), &value)?);
    }
    Ok(median_side(sides))
}

/// The side with the median wall time, carrying the largest peak RSS.
fn median_side(mut sides: Vec<Side>) -> Side {
    let peak = sides.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
    sides.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let mut median = sides.swap_remove(sides.len() / 2);
    median.peak_rss_kib = peak;
    median
}

/// LangChain's side: the script under `python`.
fn langchain_side(args: &Args, python: &PathBuf, steps: usize) -> Result<Side, BenchError> {
    let config = json!({
        "steps": steps,
        "repeat": args.langchain_repeat,
        "answer": STEP_ANSWER,
        "objective": OBJECTIVE,
    });
    let value = run_child(
        "the LangChain script",
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(config.to_string()),
    )?;
    Side::from_json(String::from("langchain"), &value)
}

/// `x` over `y` as `12.3x`, or `-` when `y` is 0.
fn ratio(x: f64, y: f64) -> String {
    if y > 0.0 {
        format!("{:.1}x", x / y)
    } else {
        String::from("-")
    }
}

/// Runs the comparison.
///
/// # Errors
/// [`BenchError::Usage`] when LangChain's Python is missing,
/// [`BenchError::Failed`] when either side fails.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let steps = args.steps.iter().copied().max().unwrap_or(1000);
    let python = args.python.clone().unwrap_or_else(default_python);
    if !python.is_file() {
        return Err(BenchError::Usage(format!(
            "{} not found: `cargo xtask bench overhead --vs-langchain` installs LangChain \
             there, or pass --python with the packages of crates/pae-bench/langchain/requirements.txt",
            python.display()
        )));
    }
    let json = args.format == Format::Json;
    if !json {
        println!(
            "overhead vs LangChain: {steps} steps, tool variant (each step: a calculator call, then the answer), \
             zero-latency model; each side in its own process"
        );
        println!(
            "pae: median of {} process(es) of {} run(s) each; LangChain (langchain-experimental 0.4.2): median of {} run(s)\n",
            args.pae_processes, args.repeat, args.langchain_repeat
        );
    }
    // LangChain first: it takes seconds, pae milliseconds, and the load on
    // the machine is then as close as it gets for both.
    let langchain = langchain_side(args, &python, steps)?;
    let mut pae = Vec::with_capacity(args.history.len());
    for history in &args.history {
        pae.push(pae_side(args, steps, &history_name(*history))?);
    }

    if json {
        for side in pae.iter().chain(std::iter::once(&langchain)) {
            println!(
                "{}",
                json!({
                    "suite": "overhead-vs-langchain",
                    "side": side.name,
                    "steps": side.steps,
                    "wall_ms": side.wall_s * 1e3,
                    "per_step_us": side.per_step_us(),
                    "model_calls": side.model_calls,
                    "prompt_chars": side.prompt_chars,
                    "largest_prompt_chars": side.largest_prompt,
                    "peak_rss_kib": side.peak_rss_kib,
                    "langchain_wall_over_this": if side.wall_s > 0.0 { langchain.wall_s / side.wall_s } else { 0.0 },
                })
            );
        }
        return Ok(());
    }
    println!(
        "{:<16}  {:>11}  {:>10}  {:>11}  {:>14}  {:>14}  {:>13}",
        "side",
        "wall ms",
        "µs/step",
        "model calls",
        "prompt chars",
        "largest prompt",
        "peak RSS MiB"
    );
    for side in std::iter::once(&langchain).chain(&pae) {
        println!(
            "{:<16}  {:>11.2}  {:>10.1}  {:>11}  {:>14}  {:>14}  {:>13.2}",
            side.name,
            side.wall_s * 1e3,
            side.per_step_us(),
            side.model_calls,
            thousands(side.prompt_chars),
            thousands(side.largest_prompt),
            side.peak_rss_kib as f64 / 1024.0
        );
    }
    println!("\nLangChain / pae:");
    for side in &pae {
        println!(
            "  {:<14}  time {:>9}  prompt chars {:>7}  peak RSS {:>6}",
            side.name,
            ratio(langchain.wall_s, side.wall_s),
            ratio(langchain.prompt_chars as f64, side.prompt_chars as f64),
            ratio(langchain.peak_rss_kib as f64, side.peak_rss_kib as f64),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_either_side() {
        let pae = json!({"steps": 10, "wall_ms": 2.0, "model_calls": 21, "prompt_chars": 100,
                         "largest_prompt_chars": 20, "peak_rss_kib": 4096});
        let side = Side::from_json("pae".into(), &pae).unwrap();
        assert_eq!(side.wall_s, 0.002);
        assert_eq!(side.per_step_us(), 200.0);
        let lc = json!({"steps": 10, "wall_s": 0.5, "model_calls": 21, "prompt_chars": 100,
                        "largest_prompt_chars": 20, "peak_rss_kib": 80000});
        assert_eq!(Side::from_json("lc".into(), &lc).unwrap().wall_s, 0.5);
        assert!(Side::from_json("lc".into(), &json!({"steps": 1})).is_err());
        assert_eq!(ratio(10.0, 4.0), "2.5x");
        assert_eq!(ratio(1.0, 0.0), "-");
        let line = last_json_line("x", b"noise\n{\"a\": 1}\n").unwrap();
        assert_eq!(line["a"], 1);
        assert!(last_json_line("x", b"nothing").is_err());
    }

    #[test]
    fn the_median_process_is_shown_with_the_largest_peak() {
        let side = |wall_s: f64, peak_rss_kib: u64| Side {
            name: "pae".into(),
            steps: 10,
            wall_s,
            model_calls: 21,
            prompt_chars: 100,
            largest_prompt: 20,
            peak_rss_kib,
        };
        let median = median_side(vec![side(0.9, 10), side(0.1, 30), side(0.5, 20)]);
        assert_eq!((median.wall_s, median.peak_rss_kib), (0.5, 30));
        let one = median_side(vec![side(0.2, 5)]);
        assert_eq!((one.wall_s, one.peak_rss_kib), (0.2, 5));
    }

    #[test]
    fn the_script_and_requirements_pin_langchain() {
        assert!(REQUIREMENTS.contains("\nlangchain-experimental==0.4.2\n"));
        assert!(
            REQUIREMENTS
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .all(|l| l.contains("=="))
        );
        assert!(SCRIPT.contains(OBJECTIVE) || SCRIPT.contains("cfg[\"objective\"]"));
    }
}
