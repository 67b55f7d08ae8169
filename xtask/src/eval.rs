//! `cargo xtask eval`: how often the agent gets the answer right.
//!
//! Runs the `pae` command line as a user would, one objective at a time,
//! on the objectives in `xtask/eval/objectives.json` (arithmetic word
//! problems, conversions, percentages, lists, dates with a fixed "now",
//! small files), for each chosen model and mode, and LangChain's
//! PlanAndExecute on the same model through llama-cpp-python's server.
//! An answer is correct when the last number in it is the expected one.
//! Prints a line per objective and one table: correct, tool used where one
//! is needed, median and p90 wall time, tokens and model calls per
//! objective.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::util::{Result, cargo, run, step};
use crate::{servers, setup};

const OBJECTIVES: &str = "xtask/eval/objectives.json";
const LANGCHAIN_RUNNER: &str = "xtask/eval/langchain_eval.py";
const MODES: &[&str] = &["plan-and-solve", "plan-and-execute", "langchain"];

const HELP: &str = "\
cargo xtask eval [--models 1.5b,0.5b] [--modes plan-and-solve,plan-and-execute,langchain]
                 [--history all,digest] [--sample N] [--limit N] [--only ID,ID]
                 [--keep DIR]

Runs `pae run` (release build) on every objective of xtask/eval/objectives.json
for each model and mode, and LangChain's PlanAndExecute on the same model through
llama-cpp-python's server, and prints one table. Defaults: the default model (the
first of --models' names), every mode, every objective.
  --models   models by name: 1.5b (the default model), 0.5b
  --modes    plan-and-solve, plan-and-execute (pae's two modes), langchain
  --history  `pae run --history` values (all, last:K, digest, digest:K): each
             pae mode runs once per value, one row each (default: the CLI's
             own default, no flag passed). Only plan-and-execute's agent
             executor reads it.
  --sample N every Nth objective of the set (the 1st, the N+1st, ...): a
             reproducible subset; the table says so
  --limit N  only the first N objectives (after --sample)
  --only     only these objective ids (a01, f03, ...)
  --keep DIR keep the --json transcripts there (default: a temporary directory)";

/// One objective of the set.
struct Objective {
    id: String,
    text: String,
    answer: f64,
    tolerance: f64,
    tools: Vec<String>,
}

/// What one run gave.
struct Outcome {
    id: String,
    answer: String,
    correct: bool,
    /// `None` when the objective needs no tool.
    tool_used: Option<bool>,
    seconds: f64,
    tokens: u64,
    model_calls: u64,
    /// The exit code, for pae runs.
    exit: Option<i32>,
    error: Option<String>,
}

/// The totals of one model and mode.
struct Row {
    model: String,
    mode: String,
    outcomes: Vec<Outcome>,
}

struct Options {
    models: Vec<String>,
    modes: Vec<String>,
    /// `pae run --history` values; empty: the CLI's default.
    histories: Vec<String>,
    sample: Option<usize>,
    limit: Option<usize>,
    only: Vec<String>,
    keep: Option<PathBuf>,
}

fn list(value: Option<&String>, flag: &str) -> Result<Vec<String>> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    Ok(value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        models: vec![setup::RUN_MODELS[0].0.to_owned()],
        modes: MODES.iter().map(|m| (*m).to_owned()).collect(),
        histories: Vec::new(),
        sample: None,
        limit: None,
        only: Vec::new(),
        keep: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--models" => options.models = list(args.next(), arg)?,
            "--modes" => {
                options.modes = list(args.next(), arg)?;
                if let Some(bad) = options.modes.iter().find(|m| !MODES.contains(&m.as_str())) {
                    return Err(
                        format!("unknown mode {bad:?} (modes: {})", MODES.join(", ")).into(),
                    );
                }
            }
            "--history" => options.histories = list(args.next(), arg)?,
            "--sample" => {
                options.sample = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--sample needs a number above 0")?,
                );
            }
            "--limit" => {
                options.limit = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--limit needs a number")?,
                );
            }
            "--only" => options.only = list(args.next(), arg)?,
            "--keep" => {
                options.keep = Some(PathBuf::from(
                    args.next().ok_or("--keep needs a directory")?,
                ))
            }
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}").into()),
        }
    }
    Ok(options)
}

/// `cargo xtask eval`.
pub(crate) fn eval(args: &[String]) -> Result<()> {
    let options = options(args)?;
    let (now, files, mut objectives) = load(Path::new(OBJECTIVES))?;
    let total = objectives.len();
    if !options.only.is_empty() {
        objectives.retain(|o| options.only.contains(&o.id));
    }
    if let Some(every) = options.sample {
        objectives = objectives.into_iter().step_by(every).collect();
    }
    if let Some(limit) = options.limit {
        objectives.truncate(limit);
    }
    if objectives.is_empty() {
        return Err("no objective selected".into());
    }
    let pae_modes: Vec<&String> = options.modes.iter().filter(|m| *m != "langchain").collect();
    let langchain = options.modes.iter().any(|m| m == "langchain");

    setup::system_packages()?;
    let models: Vec<(String, PathBuf)> = options
        .models
        .iter()
        .map(|name| Ok((name.clone(), setup::run_model(name)?)))
        .collect::<Result<_>>()?;
    if langchain {
        setup::eval_langchain_env()?;
    }
    let pae = if pae_modes.is_empty() {
        None
    } else {
        step("building `pae` (release)");
        run(cargo().args(["build", "--release", "--package", "pae-cli"]))?;
        Some(crate::util::release_binary("pae")?)
    };
    let scratch = match &options.keep {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("pae-eval-{}", std::process::id())),
    };
    fs::create_dir_all(&scratch)?;
    let load_before = load_average();
    let started = Instant::now();
    let mut rows = Vec::new();
    // `None`: no --history flag, the CLI's default.
    let histories: Vec<Option<&str>> = if options.histories.is_empty() {
        vec![None]
    } else {
        options.histories.iter().map(|h| Some(h.as_str())).collect()
    };
    for (name, path) in &models {
        for mode in &pae_modes {
            for &history in &histories {
                let pae = pae.as_ref().ok_or("pae was not built")?;
                let label = match history {
                    Some(history) => format!("{mode} (history {history})"),
                    None => (*mode).clone(),
                };
                step(&format!(
                    "pae {label}, model {name}: {} objectives",
                    objectives.len()
                ));
                let run = PaeRun {
                    pae,
                    model: path,
                    mode,
                    history,
                    now: &now,
                    files: &files,
                    scratch: &scratch,
                    model_name: name,
                };
                let mut outcomes = Vec::new();
                for objective in &objectives {
                    let outcome = run_pae(&run, objective)?;
                    print_outcome(&outcome);
                    outcomes.push(outcome);
                }
                rows.push(Row {
                    model: name.clone(),
                    mode: label,
                    outcomes,
                });
            }
        }
        if langchain {
            step(&format!(
                "LangChain PlanAndExecute, model {name} (llama-cpp-python server)"
            ));
            let outcomes = run_langchain(path, &objectives)?;
            rows.push(Row {
                model: name.clone(),
                mode: "langchain".to_owned(),
                outcomes,
            });
        }
    }
    if options.keep.is_none() {
        let _ = fs::remove_dir_all(&scratch);
    }
    let table = table(&rows, objectives.len());
    println!();
    println!("{table}");
    let subset = if objectives.len() < total {
        format!(" (a subset of the {total}: {})", subset_label(&options))
    } else {
        String::new()
    };
    println!(
        "{} objectives{subset}; {:.0} s in all; load average {} before, {} after (2 cores)",
        objectives.len(),
        started.elapsed().as_secs_f64(),
        load_before,
        load_average()
    );
    Ok(())
}

/// How the objectives were picked, for the line under the table.
fn subset_label(options: &Options) -> String {
    let mut parts = Vec::new();
    if !options.only.is_empty() {
        parts.push(format!("--only {}", options.only.join(",")));
    }
    if let Some(every) = options.sample {
        parts.push(format!("--sample {every}"));
    }
    if let Some(limit) = options.limit {
        parts.push(format!("--limit {limit}"));
    }
    parts.join(" ")
}

fn load(path: &Path) -> Result<(String, PathBuf, Vec<Objective>)> {
    let spec: Value = serde_json::from_str(&fs::read_to_string(path)?)?;
    let now = spec["now"]
        .as_str()
        .ok_or("objectives.json: no \"now\"")?
        .to_owned();
    let files = path.parent().unwrap_or(Path::new(".")).join(
        spec["files"]
            .as_str()
            .ok_or("objectives.json: no \"files\"")?,
    );
    let files = fs::canonicalize(&files)?;
    let mut objectives = Vec::new();
    for item in spec["objectives"]
        .as_array()
        .ok_or("objectives.json: no objectives")?
    {
        let text = |key: &str| {
            item[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("objectives.json: an objective has no {key:?}: {item}"))
        };
        objectives.push(Objective {
            id: text("id")?,
            text: text("objective")?,
            answer: item["answer"]
                .as_f64()
                .ok_or_else(|| format!("objectives.json: no numeric answer in {item}"))?,
            tolerance: item["tolerance"].as_f64().unwrap_or(0.0),
            tools: item["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok((now, files, objectives))
}

/// The tool names a run's record uses for the eval's tool kinds.
fn tool_name(kind: &str) -> &str {
    match kind {
        "time" => "current_time",
        "files" => "read_file",
        other => other,
    }
}

/// What every `pae run` of one row shares.
struct PaeRun<'a> {
    pae: &'a Path,
    model: &'a Path,
    mode: &'a str,
    /// `--history`, when given.
    history: Option<&'a str>,
    now: &'a str,
    files: &'a Path,
    scratch: &'a Path,
    model_name: &'a str,
}

fn run_pae(run: &PaeRun<'_>, objective: &Objective) -> Result<Outcome> {
    let PaeRun {
        pae,
        model,
        mode,
        history,
        now,
        files,
        scratch,
        model_name,
    } = *run;
    let history_part = history.map_or_else(String::new, |h| format!("-{}", h.replace(':', "")));
    let transcript = scratch.join(format!(
        "{model_name}-{mode}{history_part}-{}.json",
        objective.id
    ));
    let _ = fs::remove_file(&transcript);
    let started = Instant::now();
    let mut command = Command::new(pae);
    command
        .arg("run")
        .arg(&objective.text)
        .args([
            "--mode",
            mode,
            "--tools",
            "calculator,time,files",
            "--quiet",
        ])
        .arg("--files-root")
        .arg(files)
        .arg("--model")
        .arg(model)
        .arg("--json")
        .arg(&transcript)
        .arg("--store")
        .arg(scratch.join("runs.db"))
        .env("PAE_NOW", now);
    if let Some(history) = history {
        command.args(["--history", history]);
    }
    let output = command.output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let record: Value = fs::read_to_string(&transcript)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    // Tool calls that returned a result, in steps or while planning (the
    // planner asks the time tool for today's date).
    let mut used = BTreeSet::new();
    let step_calls = record["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|step| step["tool_calls"].as_array().into_iter().flatten());
    let planner_calls = record["planner_tool_calls"]
        .as_array()
        .into_iter()
        .flatten();
    for call in step_calls.chain(planner_calls) {
        if call["is_error"] != Value::Bool(true)
            && let Some(tool) = call["tool"].as_str()
        {
            used.insert(tool.to_owned());
        }
    }
    let model_calls = record["events"].as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| e["type"] == "model_called")
            .count() as u64
    });
    let error = (!output.status.success()).then(|| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr
            .lines()
            .rfind(|l| !l.starts_with("run "))
            .unwrap_or_default()
            .to_owned()
    });
    Ok(Outcome {
        id: objective.id.clone(),
        correct: is_correct(&stdout, objective),
        tool_used: needed_tools_used(objective, &used),
        answer: stdout,
        seconds,
        tokens: record["usage"]["total_tokens"].as_u64().unwrap_or(0),
        model_calls,
        exit: output.status.code(),
        error,
    })
}

fn needed_tools_used(objective: &Objective, used: &BTreeSet<String>) -> Option<bool> {
    (!objective.tools.is_empty()).then(|| {
        objective
            .tools
            .iter()
            .all(|kind| used.contains(tool_name(kind)))
    })
}

fn run_langchain(model: &Path, objectives: &[Objective]) -> Result<Vec<Outcome>> {
    let (server, base_url) = servers::start_openai(model)?;
    let output = Command::new(setup::venv_python())
        .arg(LANGCHAIN_RUNNER)
        .arg(OBJECTIVES)
        .arg(&base_url)
        .arg("local")
        .args(objectives.iter().map(|o| o.id.as_str()))
        .stderr(std::process::Stdio::inherit())
        .output()?;
    drop(server);
    if !output.status.success() {
        return Err(format!("the LangChain runner failed ({})", output.status).into());
    }
    let mut outcomes = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(objective) = objectives.iter().find(|o| record["id"] == o.id.as_str()) else {
            continue;
        };
        let answer = record["answer"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let used: BTreeSet<String> = record["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        let outcome = Outcome {
            id: objective.id.clone(),
            correct: record["error"].is_null() && is_correct(&answer, objective),
            tool_used: needed_tools_used(objective, &used),
            answer,
            seconds: record["seconds"].as_f64().unwrap_or(0.0),
            tokens: record["tokens"].as_u64().unwrap_or(0),
            model_calls: record["model_calls"].as_u64().unwrap_or(0),
            exit: None,
            error: record["error"].as_str().map(str::to_owned),
        };
        print_outcome(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn print_outcome(outcome: &Outcome) {
    let mark = if outcome.correct { "ok  " } else { "FAIL" };
    let tool = match outcome.tool_used {
        Some(false) => " (no tool)",
        _ => "",
    };
    let exit = match outcome.exit {
        Some(0) | None => String::new(),
        Some(code) => format!(" exit {code}"),
    };
    let answer: String = outcome
        .answer
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(90)
        .collect();
    let error = outcome
        .error
        .as_deref()
        .map(|e| format!(" [{}]", e.chars().take(120).collect::<String>()))
        .unwrap_or_default();
    println!(
        "{mark} {:<4} {:>5.1}s {:>2} calls {:>5} tok{exit}{tool}: {answer}{error}",
        outcome.id, outcome.seconds, outcome.model_calls, outcome.tokens
    );
}

/// Whether the last number in `answer` is the expected one (within the
/// objective's tolerance, else to 1e-6).
fn is_correct(answer: &str, objective: &Objective) -> bool {
    last_number(answer).is_some_and(|n| {
        (n - objective.answer).abs()
            <= objective
                .tolerance
                .max(1e-6 * objective.answer.abs().max(1.0))
    })
}

/// The last number written in `text`: digits with `,` thousands
/// separators and a `.` decimal part; a `-` right before it counts when it
/// does not join two words or numbers (`2026-03-14` ends with 14).
fn last_number(text: &str) -> Option<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut end = chars.len();
    while end > 0 {
        if !chars[end - 1].is_ascii_digit() {
            end -= 1;
            continue;
        }
        let mut start = end;
        while start > 0 {
            let c = chars[start - 1];
            // A `.` between digits is a decimal point; a `,` is a
            // thousands separator when exactly three digits follow it.
            let after_digits = |from: usize, count: usize| {
                (from..from + count).all(|i| chars.get(i).is_some_and(char::is_ascii_digit))
            };
            let digit_before = start >= 2 && chars[start - 2].is_ascii_digit();
            let separator = match c {
                '.' => digit_before && after_digits(start, 1),
                ',' => {
                    digit_before
                        && after_digits(start, 3)
                        && !chars.get(start + 3).is_some_and(char::is_ascii_digit)
                }
                _ => false,
            };
            if c.is_ascii_digit() || separator {
                start -= 1;
            } else {
                break;
            }
        }
        let digits: String = chars[start..end].iter().filter(|c| **c != ',').collect();
        let negative = start > 0
            && chars[start - 1] == '-'
            && (start < 2 || !chars[start - 2].is_alphanumeric());
        let value: f64 = digits.parse().ok()?;
        return Some(if negative { -value } else { value });
    }
    None
}

fn median_and_p90(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    (median, values[rank - 1])
}

/// The table, as Markdown.
fn table(rows: &[Row], count: usize) -> String {
    let mut out = String::from(
        "| model | mode | correct | tool used where needed | median wall | p90 wall | tokens / objective | model calls / objective | exit 0 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let n = row.outcomes.len().max(1);
        let correct = row.outcomes.iter().filter(|o| o.correct).count();
        let needs = row
            .outcomes
            .iter()
            .filter(|o| o.tool_used.is_some())
            .count();
        let used = row
            .outcomes
            .iter()
            .filter(|o| o.tool_used == Some(true))
            .count();
        let mut seconds: Vec<f64> = row.outcomes.iter().map(|o| o.seconds).collect();
        let (median, p90) = median_and_p90(&mut seconds);
        let tokens: u64 = row.outcomes.iter().map(|o| o.tokens).sum();
        let calls: u64 = row.outcomes.iter().map(|o| o.model_calls).sum();
        let clean = match row.mode.as_str() {
            "langchain" => {
                let errors = row.outcomes.iter().filter(|o| o.error.is_some()).count();
                format!("{} ({errors} raised)", row.outcomes.len() - errors)
            }
            _ => row
                .outcomes
                .iter()
                .filter(|o| o.exit == Some(0))
                .count()
                .to_string(),
        };
        let model = crate::setup::RUN_MODELS
            .iter()
            .find(|(name, _)| *name == row.model)
            .map_or(row.model.clone(), |(_, file)| (*file).to_owned());
        let _ = writeln!(
            out,
            "| {model} | {} | {correct}/{count} ({:.0}%) | {used}/{needs} | {median:.1} s | {p90:.1} s | {:.0} | {:.1} | {clean} |",
            row.mode,
            100.0 * correct as f64 / count.max(1) as f64,
            tokens as f64 / n as f64,
            calls as f64 / n as f64,
        );
    }
    out
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_number_is_read_as_written() {
        for (text, expected) in [
            ("The answer is 757.", Some(757.0)),
            ("It costs $1,101.60 in the end", Some(1101.6)),
            ("From 2026-03-14 it is 286 days", Some(286.0)),
            ("on 2026-12-25", Some(25.0)),
            ("It drops to -4 degrees", Some(-4.0)),
            ("Result: 42.1648128 km", Some(42.1648128)),
            ("1,2,3", Some(3.0)),
            ("no number", None),
            ("85%", Some(85.0)),
        ] {
            assert_eq!(last_number(text), expected, "{text}");
        }
    }

    #[test]
    fn medians_and_p90() {
        assert_eq!(median_and_p90(&mut [3.0, 1.0, 2.0]), (2.0, 3.0));
        let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(median_and_p90(&mut ten), (5.5, 9.0));
    }
}
