//! `cargo xtask chaos <store>`: many runs of a scripted plan while processes
//! are killed, then a check that nothing was lost or done twice.
//!
//! What the stores' harnesses share lives here: the workload (a scripted
//! plan whose every step calls the hidden `record` tool, a side effect
//! deduplicated by idempotency key), the `pae` binary, killing and
//! restarting processes, reading the effects log, and the summary whose
//! line the proof quotes:
//! `chaos: runs R, runs lost 0, runs duplicated 0, steps re-executed after
//! commit 0, duplicate side effects 0`.

pub(crate) mod postgres;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{Result, cargo, run, step};

/// The help text of `cargo xtask chaos`.
pub(crate) const HELP: &str = "\
cargo xtask chaos postgres [--runs N] [--workers N] [--concurrency N]
                           [--delay-ms MS] [--kill-every SECS] [--calm] [--release]
  4 `pae worker` processes on a private PostgreSQL, N runs (default 500) of a
  scripted 3-step plan with model latency (--delay-ms, default 20 per call), a
  random worker SIGKILLed every 2 s and restarted, one immediate stop and
  restart of PostgreSQL mid-run; then checks every run finished once, no
  committed step ran again and every side effect happened once. --calm: no
  kills, no restart (throughput only).";

/// Steps in the scripted plan.
pub(crate) const STEPS: usize = 3;

/// The workload's options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) runs: usize,
    pub(crate) workers: usize,
    pub(crate) concurrency: usize,
    pub(crate) delay_ms: u64,
    pub(crate) kill_every: Duration,
    pub(crate) calm: bool,
    pub(crate) release: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            runs: 500,
            workers: 4,
            concurrency: 8,
            delay_ms: 20,
            kill_every: Duration::from_secs(2),
            calm: false,
            release: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<u64> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number").into())
            };
            match arg.as_str() {
                "--runs" => options.runs = usize::try_from(value("--runs")?)?,
                "--workers" => options.workers = usize::try_from(value("--workers")?)?.max(1),
                "--concurrency" => {
                    options.concurrency = usize::try_from(value("--concurrency")?)?.max(1);
                }
                "--delay-ms" => options.delay_ms = value("--delay-ms")?,
                "--kill-every" => options.kill_every = Duration::from_secs(value("--kill-every")?),
                "--calm" => options.calm = true,
                "--release" => options.release = true,
                other => return Err(format!("unknown option {other:?}\n\n{HELP}").into()),
            }
        }
        Ok(options)
    }
}

/// Builds `pae` and returns its path.
pub(crate) fn pae_binary(release: bool) -> Result<PathBuf> {
    step(&format!(
        "building pae ({})",
        if release { "release" } else { "debug" }
    ));
    let mut build = cargo();
    build.args(["build", "--quiet", "--package", "pae-cli"]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("pae"))
}

/// The start of the solver's prompt: the call that writes the answer of the
/// step that closes every plan of `pae run`.
const SOLVER_PROMPT: &str = "You write the final answer";

/// Writes the scripted model's rules: the planner gets a 3-step plan, each
/// step calls `record` once and then answers, and the answer step that
/// `pae run` adds to every plan gets a fixed answer. The answers depend only on
/// the request, so a run resumed in another process gets the same ones.
pub(crate) fn write_script(path: &Path) -> Result<()> {
    let plan: String = (1..=STEPS)
        .map(|i| format!("{i}. Record step {i}.\n"))
        .collect();
    let script = serde_json::json!({"rules": [
        {"when": {"contains": SOLVER_PROMPT}, "reply": "recorded every step"},
        {"when": {"last_role": "tool"}, "reply": "recorded"},
        {"when": {"contains": "You are the planning part of an agent"},
         "reply": format!("Plan:\n{plan}<END_OF_PLAN>")},
        {"reply": {"tool_calls": [{"name": "record", "arguments": {}}]}}
    ]});
    fs::write(path, serde_json::to_string_pretty(&script)?)?;
    Ok(())
}

/// The `pae` flags of a workload run.
pub(crate) fn run_flags(script: &Path, delay_ms: u64) -> Vec<String> {
    vec![
        "--provider".into(),
        "scripted".into(),
        "--script".into(),
        script.display().to_string(),
        "--script-delay-ms".into(),
        delay_ms.to_string(),
        "--tools".into(),
        "record".into(),
        "--planner".into(),
        "text".into(),
        "--mode".into(),
        "plan-and-execute".into(),
    ]
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A small deterministic generator (no dependency): xorshift64*.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Self {
        Self(now_ms() | 1)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        usize::try_from(value % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// A process of the workload, with its log.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(mut command: Command, log: PathBuf) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Self { child, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `limit` (SIGKILL after).
    pub(crate) fn terminate(&mut self, limit: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

/// One call of the `record` tool, from its log.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) key: String,
    pub(crate) run: String,
    pub(crate) step: usize,
    pub(crate) effect: bool,
    pub(crate) at_ms: u64,
}

/// Reads `calls.jsonl` of the effects directory.
pub(crate) fn read_calls(dir: &Path) -> Result<Vec<Call>> {
    let text = fs::read_to_string(dir.join("calls.jsonl")).unwrap_or_default();
    let mut calls = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("a damaged line in calls.jsonl ({e}): {line}"))?;
        calls.push(Call {
            key: value["key"].as_str().unwrap_or_default().to_owned(),
            run: value["run"].as_str().unwrap_or_default().to_owned(),
            step: usize::try_from(value["step"].as_u64().unwrap_or(u64::MAX)).unwrap_or(usize::MAX),
            effect: value["effect"].as_bool().unwrap_or(false),
            at_ms: value["at_ms"].as_u64().unwrap_or_default(),
        });
    }
    Ok(calls)
}

/// What the store holds about one run, for the check.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredRun {
    pub(crate) status: String,
    /// Step index → when the committed step finished (ms since the epoch).
    pub(crate) steps: BTreeMap<usize, u64>,
    /// `RunFinished` events stored.
    pub(crate) finished_events: usize,
}

/// The check's counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict {
    pub(crate) runs: usize,
    pub(crate) lost: usize,
    pub(crate) duplicated: usize,
    pub(crate) reexecuted_after_commit: usize,
    pub(crate) duplicate_effects: usize,
    /// Calls answered by the tool's deduplication (a step that ran again
    /// before its commit, with the same key).
    pub(crate) deduplicated_calls: usize,
    pub(crate) problems: Vec<String>,
}

impl Verdict {
    /// Checks the submitted runs against the store and the effects log.
    pub(crate) fn check(
        submitted: &[String],
        stored: &HashMap<String, StoredRun>,
        calls: &[Call],
    ) -> Self {
        let mut verdict = Self {
            runs: submitted.len(),
            ..Self::default()
        };
        let wanted: BTreeSet<&String> = submitted.iter().collect();
        if wanted.len() != submitted.len() {
            verdict.duplicated += submitted.len() - wanted.len();
            verdict.problems.push("a run id was submitted twice".into());
        }
        for id in submitted {
            match stored.get(id) {
                None => {
                    verdict.lost += 1;
                    verdict
                        .problems
                        .push(format!("run {id} is not in the store"));
                }
                Some(run) => {
                    // The recording steps and the answer step.
                    if run.status != "succeeded" || run.steps.len() != STEPS + 1 {
                        verdict.lost += 1;
                        verdict.problems.push(format!(
                            "run {id} is {} with {} of {} steps",
                            run.status,
                            run.steps.len(),
                            STEPS + 1
                        ));
                    }
                    if run.finished_events > 1 {
                        verdict.duplicated += 1;
                        verdict
                            .problems
                            .push(format!("run {id} finished {} times", run.finished_events));
                    }
                }
            }
        }
        for id in stored.keys().filter(|id| !wanted.contains(id)) {
            verdict.duplicated += 1;
            verdict
                .problems
                .push(format!("run {id} was never submitted"));
        }
        let mut keys: HashMap<(&str, usize), BTreeSet<&str>> = HashMap::new();
        let mut effects: HashMap<&str, usize> = HashMap::new();
        for call in calls {
            keys.entry((&call.run, call.step))
                .or_default()
                .insert(&call.key);
            if call.effect {
                *effects.entry(&call.key).or_default() += 1;
            } else {
                verdict.deduplicated_calls += 1;
            }
            let committed = stored
                .get(&call.run)
                .and_then(|run| run.steps.get(&call.step));
            if let Some(&finished) = committed
                && call.at_ms > finished
            {
                verdict.reexecuted_after_commit += 1;
                verdict.problems.push(format!(
                    "step {} of run {} was called {} ms after it finished and committed",
                    call.step,
                    call.run,
                    call.at_ms - finished
                ));
            }
        }
        for ((run, step), used) in &keys {
            if used.len() > 1 {
                verdict.duplicate_effects += used.len() - 1;
                verdict.problems.push(format!(
                    "step {step} of run {run} acted under {} keys",
                    used.len()
                ));
            }
        }
        for (key, n) in effects {
            if n > 1 {
                verdict.duplicate_effects += n - 1;
                verdict.problems.push(format!("key {key} acted {n} times"));
            }
        }
        for id in submitted {
            if let Some(run) = stored.get(id) {
                // The answer step (index STEPS) calls no tool.
                for step in run.steps.keys().filter(|step| **step < STEPS) {
                    if !keys.contains_key(&(id.as_str(), *step)) {
                        verdict
                            .problems
                            .push(format!("step {step} of run {id} committed with no effect"));
                        verdict.lost += 1;
                    }
                }
            }
        }
        verdict
    }

    /// The proof's line.
    pub(crate) fn line(&self) -> String {
        format!(
            "chaos: runs {}, runs lost {}, runs duplicated {}, steps re-executed after commit {}, \
             duplicate side effects {}",
            self.runs,
            self.lost,
            self.duplicated,
            self.reexecuted_after_commit,
            self.duplicate_effects
        )
    }

    pub(crate) fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reexecuted_after_commit == 0
            && self.duplicate_effects == 0
    }
}

/// The value at quantile `q` of `values` (sorted here).
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index.min(values.len() - 1)]
}
