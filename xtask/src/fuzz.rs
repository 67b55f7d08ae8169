//! `cargo xtask fuzz`: the parsers' fuzz loops (`tests/it/fuzz.rs` of
//! pae-planner and pae-executor) for a time budget instead of their fixed
//! `cargo test` count, with the total of inputs run at the end.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::util::{Result, cargo, step};

/// The packages with a fuzz loop, each run for an equal share of the time.
const PACKAGES: [&str; 2] = ["pae-planner", "pae-executor"];

/// Runs the fuzz loops for `--seconds N` in all (default 120) from seed
/// `--seed S` (default 0) and prints the inputs run.
pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 120;
    let mut seed: u64 = 0;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| -> Result<u64> {
            rest.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} takes a number").into())
        };
        match arg.as_str() {
            "--seconds" => seconds = value("--seconds")?,
            "--seed" => seed = value("--seed")?,
            other => return Err(format!("unknown fuzz option {other:?}").into()),
        }
    }
    let share = (seconds / PACKAGES.len() as u64).max(1);
    step("building the fuzz loops");
    let mut build = cargo();
    build.args(["test", "--all-features", "--no-run", "--test", "it"]);
    for package in PACKAGES {
        build.args(["--package", package]);
    }
    crate::util::run(&mut build)?;
    step(&format!(
        "fuzzing the parsers: {share} s per package, seed {seed}"
    ));
    let mut command = cargo();
    command.args(["test", "--all-features", "--test", "it"]);
    for package in PACKAGES {
        command.args(["--package", package]);
    }
    command
        .args([
            "--",
            "fuzz::parsers_survive_a_fuzz_run",
            "--exact",
            "--nocapture",
        ])
        .env("PAE_FUZZ_SECONDS", share.to_string())
        .env("PAE_FUZZ_SEED", seed.to_string())
        .stdout(Stdio::piped());
    let mut child = command.spawn()?;
    let mut total: u64 = 0;
    let mut loops = 0;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(count) = inputs_in(&line) {
                total += count;
                loops += 1;
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("a fuzz loop failed ({status}); its input is printed above").into());
    }
    if loops != PACKAGES.len() {
        return Err(format!(
            "expected {} fuzz loops to report, {loops} did",
            PACKAGES.len()
        )
        .into());
    }
    println!("fuzz: {total} inputs in all, no panics (seed {seed})");
    Ok(())
}

/// The count in a loop's report: `fuzz <what>: <N> inputs in …`.
fn inputs_in(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("fuzz ")?;
    let (_, after) = rest.split_once(": ")?;
    let (count, _) = after.split_once(" inputs in ")?;
    count.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::inputs_in;

    #[test]
    fn reports_are_read_and_other_lines_ignored() {
        assert_eq!(
            inputs_in("fuzz pae-planner parsers: 48989 inputs in 60.0 s (seed 0)"),
            Some(48989)
        );
        assert_eq!(
            inputs_in("test fuzz::parsers_survive_a_fuzz_run ... ok"),
            None
        );
        assert_eq!(inputs_in("fuzz x: many inputs in 1 s"), None);
    }
}
