//! `cargo xtask chaos postgres`: `pae worker` processes on a private
//! PostgreSQL, runs submitted with `pae submit`, a random worker SIGKILLed
//! and restarted every 2 s, one immediate stop and restart of the server
//! while runs are in flight; then the check of [`super::Verdict`].

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    Options, Proc, Rng, StoredRun, Verdict, quantile, read_calls, run_flags, write_script,
};
use crate::postgres::Cluster;
use crate::util::{Result, step};

/// A worker process and the lease owner name it holds leases under
/// (`HOST:PID:START`).
struct WorkerProc {
    proc: Proc,
}

pub(crate) fn chaos(options: &Options) -> Result<()> {
    let pae = super::pae_binary(options.release)?;
    let cluster = Cluster::start()?;
    cluster.create_database("pae_chaos")?;
    let url = cluster.url_of("pae_chaos");
    let work = std::env::temp_dir().join(format!("pae-chaos-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let effects = work.join("effects");
    fs::create_dir_all(&effects)?;
    let script = work.join("script.json");
    write_script(&script)?;
    let flags = run_flags(&script, options.delay_ms);
    let pae_command = || {
        let mut command = Command::new(&pae);
        command
            .env("PAE_TEST_EFFECTS", &effects)
            .env_remove("PAE_STORE")
            .env_remove("OPENAI_API_KEY");
        command
    };

    step(&format!("submitting {} runs", options.runs));
    let submitted = submit_all(options.runs, |i| {
        let mut command = pae_command();
        command
            .args(["submit", "--store", &url])
            .args(&flags)
            .arg(format!("chaos run {i}"));
        command
    })?;

    let spawn_worker = |n: usize| -> Result<WorkerProc> {
        let mut command = pae_command();
        command
            .args(["worker", "--store", &url, "--quiet", "--concurrency"])
            .arg(options.concurrency.to_string());
        Ok(WorkerProc {
            proc: Proc::spawn(command, work.join(format!("worker-{n}.log")))?,
        })
    };
    step(&format!(
        "{} workers (concurrency {} each){}",
        options.workers,
        options.concurrency,
        if options.calm {
            ", no faults"
        } else {
            ", a random one SIGKILLed and restarted every 2 s, PostgreSQL restarted once"
        }
    ));
    let started = Instant::now();
    let mut workers = (0..options.workers)
        .map(spawn_worker)
        .collect::<Result<Vec<_>>>()?;
    let mut rng = Rng::new();
    let mut next_kill = Instant::now() + options.kill_every;
    let mut restarted_server = options.calm;
    let mut kills = 0usize;
    // Per kill: when, the pid, the runs it held.
    let mut takeovers: Vec<(Instant, u32, Vec<String>)> = Vec::new();
    let mut takeover_secs: Vec<f64> = Vec::new();
    let deadline = started + Duration::from_secs(1800);
    let mut last_report = Instant::now();
    loop {
        let counts = status_counts(&cluster);
        let done = counts.get("succeeded").copied().unwrap_or(0)
            + counts.get("failed").copied().unwrap_or(0)
            + counts.get("cancelled").copied().unwrap_or(0);
        if done >= options.runs {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("chaos: giving up after 30 minutes: {counts:?}");
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {:.0} s: {done}/{} finished, {kills} kills",
                started.elapsed().as_secs_f64(),
                options.runs
            );
            last_report = Instant::now();
        }
        if !restarted_server && done >= options.runs / 3 {
            step("stopping PostgreSQL immediately (as a crash would), then starting it");
            let stopped = Instant::now();
            cluster.stop_immediately()?;
            cluster.start_server()?;
            eprintln!(
                "  PostgreSQL back after {:.1} s, with {done} runs finished",
                stopped.elapsed().as_secs_f64()
            );
            restarted_server = true;
        }
        if !options.calm && Instant::now() >= next_kill {
            let victim = rng.below(workers.len());
            let pid = workers[victim].proc.pid();
            workers[victim].proc.kill();
            let killed = Instant::now();
            kills += 1;
            let held = runs_held_by(&cluster, pid);
            takeovers.push((killed, pid, held));
            workers[victim] = spawn_worker(workers.len() + kills)?;
            next_kill = Instant::now() + options.kill_every;
        }
        // A killed worker's runs are taken over once none is still held
        // under its name (another worker took the lease, or it finished).
        takeovers.retain(|(killed, pid, held)| {
            if held.is_empty() {
                return false;
            }
            if runs_held_by(&cluster, *pid).is_empty() {
                takeover_secs.push(killed.elapsed().as_secs_f64());
                return false;
            }
            true
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    step("stopping the workers (SIGTERM: graceful)");
    for worker in &mut workers {
        worker.proc.terminate(Duration::from_secs(30));
    }
    let (p50, p99) = commit_latency(&workers);

    step("checking every run, step and side effect");
    let stored = stored_runs(&cluster)?;
    let calls = read_calls(&effects)?;
    let verdict = Verdict::check(&submitted, &stored, &calls);
    for problem in verdict.problems.iter().take(20) {
        eprintln!("  problem: {problem}");
    }
    #[allow(clippy::cast_precision_loss)]
    let throughput = options.runs as f64 / elapsed;
    let mut sorted = takeover_secs.clone();
    let takeover = if sorted.is_empty() {
        "no killed worker held a run".to_owned()
    } else {
        format!(
            "takeover of a killed worker's runs median {:.1} s, max {:.1} s over {} kills",
            quantile(&mut sorted, 0.5),
            quantile(&mut sorted.clone(), 1.0),
            takeover_secs.len()
        )
    };
    eprintln!(
        "  {kills} workers killed, {} calls deduplicated by key (steps run again before their \
         commit), logs in {}",
        verdict.deduplicated_calls,
        work.display()
    );
    drop(cluster);
    // The figures, then the proof's line last, exactly as the issue words it.
    println!(
        "throughput {throughput:.1} runs/s ({} workers, {:.1} s), commit latency p50 {p50:.1} ms \
         p99 {p99:.1} ms, {takeover}",
        options.workers, elapsed
    );
    println!("{}", verdict.line());
    if verdict.clean() {
        let _ = fs::remove_dir_all(&work);
        Ok(())
    } else {
        Err("chaos: the check found problems (see above)".into())
    }
}

/// Runs `pae submit` for each run, eight at a time; the run ids.
fn submit_all(runs: usize, command: impl Fn(usize) -> Command) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(runs);
    let mut next = 0;
    while next < runs {
        let batch: Vec<_> = (next..runs.min(next + 8))
            .map(|i| command(i).stdin(std::process::Stdio::null()).output())
            .collect::<std::result::Result<_, _>>()?;
        for out in batch {
            if !out.status.success() {
                return Err(format!(
                    "pae submit failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            let stdout = String::from_utf8(out.stdout)?;
            let id = stdout.lines().last().unwrap_or_default().trim().to_owned();
            ids.push(id);
        }
        next += 8;
    }
    Ok(ids)
}

/// Runs per status; empty while the server is away.
fn status_counts(cluster: &Cluster) -> HashMap<String, usize> {
    cluster
        .sql(
            "pae_chaos",
            "SELECT status, count(*) FROM pae.runs GROUP BY status",
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (status, count) = line.split_once('|')?;
            Some((status.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// Unfinished runs whose lease is held under the process `pid`'s name.
fn runs_held_by(cluster: &Cluster, pid: u32) -> Vec<String> {
    cluster
        .sql(
            "pae_chaos",
            &format!(
                "SELECT id FROM pae.runs WHERE lease_owner LIKE '%:{pid}:%' \
                 AND status IN ('planning', 'running')"
            ),
        )
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What the store holds about every run.
fn stored_runs(cluster: &Cluster) -> Result<HashMap<String, StoredRun>> {
    let mut runs: HashMap<String, StoredRun> = HashMap::new();
    for line in cluster
        .sql("pae_chaos", "SELECT id, status FROM pae.runs")?
        .lines()
    {
        if let Some((id, status)) = line.split_once('|') {
            runs.entry(id.to_owned()).or_default().status = status.to_owned();
        }
    }
    let steps = cluster.sql(
        "pae_chaos",
        "SELECT run_id, idx, (record::jsonb ->> 'finished_at_ms') FROM pae.steps",
    )?;
    for line in steps.lines() {
        let parts: Vec<&str> = line.split('|').collect();
        if let [id, idx, finished] = parts[..]
            && let (Ok(idx), Ok(finished)) = (idx.parse(), finished.parse())
        {
            runs.entry(id.to_owned())
                .or_default()
                .steps
                .insert(idx, finished);
        }
    }
    let finished = cluster.sql(
        "pae_chaos",
        "SELECT run_id, count(*) FROM pae.events \
         WHERE event LIKE '%\"run_finished\"%' GROUP BY run_id",
    )?;
    for line in finished.lines() {
        if let Some((id, n)) = line.split_once('|') {
            runs.entry(id.to_owned()).or_default().finished_events = n.parse().unwrap_or(0);
        }
    }
    Ok(runs)
}

/// Commit latency from the workers' last lines (those that stopped
/// gracefully): the median of their medians and the worst p99.
fn commit_latency(workers: &[WorkerProc]) -> (f64, f64) {
    let mut p50s = Vec::new();
    let mut p99 = 0.0f64;
    for worker in workers {
        let log = fs::read_to_string(&worker.proc.log).unwrap_or_default();
        if let Some(line) = log.lines().rev().find(|l| l.contains("commit latency p50")) {
            let number = |after: &str| {
                line.split(after)
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<f64>().ok())
            };
            if let Some(value) = number("p50 ") {
                p50s.push(value);
            }
            if let Some(value) = number("p99 ") {
                p99 = p99.max(value);
            }
        }
    }
    (quantile(&mut p50s, 0.5), p99)
}
