//! `cargo xtask bench spans`: what the library's `tracing` spans cost when
//! no subscriber is installed (the case of every program that does not ask
//! for traces).
//!
//! The overhead suite is built twice: as shipped, and with `tracing`'s
//! `max_level_off` feature (`--features tracing/max_level_off` on
//! pae-bench, which has `tracing` as an optional dependency for this),
//! which compiles every span and event out of every crate. It is not a
//! feature of pae-bench's own, so `--all-features` builds keep their spans. The two binaries then run the same
//! workloads in alternating rounds, so drift in the machine's load hits
//! both alike, and the per-step medians are compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{self, Result, cargo, output, run};

/// The options of `bench spans`.
struct Options {
    rounds: usize,
    steps: String,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            rounds: 15,
            steps: "100,1000".to_owned(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--rounds" => {
                    options.rounds = value("--rounds")?
                        .parse()
                        .ok()
                        .filter(|n: &usize| *n > 0)
                        .ok_or("--rounds needs a positive number")?;
                }
                "--steps" => options.steps = value("--steps")?,
                other => {
                    return Err(format!(
                        "unknown option {other:?} for `bench spans` (--rounds N, --steps LIST)"
                    )
                    .into());
                }
            }
        }
        Ok(options)
    }
}

/// Builds pae-bench with `features` and keeps a copy of the binary under
/// `name`, so the next build does not replace it.
fn build(features: &[&str], name: &str) -> Result<PathBuf> {
    run(cargo()
        .args(["build", "--release", "--quiet", "--package", "pae-bench"])
        .args(features))?;
    let built = util::release_binary("pae-bench")?;
    let kept = built.with_file_name(name);
    std::fs::copy(&built, &kept)?;
    Ok(kept)
}

/// One round of the overhead suite: per-step µs by (steps, variant).
fn round(binary: &Path, steps: &str) -> Result<BTreeMap<(u64, String), f64>> {
    let text = output(Command::new(binary).args([
        "overhead",
        "--format",
        "json",
        "--history",
        "digest",
        // Enough repeats per round that a 100-step case (about 1 ms) is
        // not decided by one scheduler hiccup.
        "--repeat",
        "21",
        "--steps",
        steps,
    ]))?;
    let mut figures = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let row: Value = serde_json::from_str(line)?;
        let (Some(steps), Some(variant), Some(per_step)) = (
            row["steps"].as_u64(),
            row["variant"].as_str(),
            row["per_step_us"].as_f64(),
        ) else {
            return Err(format!("unexpected overhead output: {line}").into());
        };
        figures.insert((steps, variant.to_owned()), per_step);
    }
    if figures.is_empty() {
        return Err("the overhead suite printed no figures".into());
    }
    Ok(figures)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Runs `cargo xtask bench spans`.
pub(crate) fn bench(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    util::step("building the overhead suite with spans compiled out (tracing max_level_off)");
    let without = build(
        &["--features", "tracing/max_level_off"],
        "pae-bench-spans-off",
    )?;
    util::step("building the overhead suite as shipped (spans, no subscriber)");
    let with = build(&[], "pae-bench-spans-on")?;
    util::step(&format!(
        "{} alternating rounds of `overhead --history digest --steps {}`",
        options.rounds, options.steps
    ));
    let mut off: BTreeMap<(u64, String), Vec<f64>> = BTreeMap::new();
    let mut on: BTreeMap<(u64, String), Vec<f64>> = BTreeMap::new();
    for n in 0..options.rounds {
        // Alternate which goes first, so neither always runs on a warmer
        // machine.
        let order = if n % 2 == 0 {
            [(&without, &mut off), (&with, &mut on)]
        } else {
            [(&with, &mut on), (&without, &mut off)]
        };
        for (binary, into) in order {
            for (case, value) in round(binary, &options.steps)? {
                into.entry(case).or_default().push(value);
            }
        }
    }
    println!(
        "| steps | variant | spans compiled out µs/step | spans, no subscriber µs/step | cost of spans |"
    );
    println!("|---:|---|---:|---:|---:|");
    let mut worst: Option<f64> = None;
    let mut total = (0.0, 0.0);
    for ((steps, variant), values) in &mut off {
        let Some(other) = on.get_mut(&(*steps, variant.clone())) else {
            continue;
        };
        let (base, spans) = (median(values), median(other));
        let cost = (spans - base) / base * 100.0;
        worst = Some(worst.map_or(cost, |w: f64| w.max(cost)));
        total = (total.0 + base, total.1 + spans);
        println!("| {steps} | {variant} | {base:.2} | {spans:.2} | {cost:+.1}% |");
    }
    let overall = (total.1 - total.0) / total.0 * 100.0;
    println!(
        "spans: with no subscriber, spans cost {overall:+.1}% of the framework's per-step time \
         over all cases (largest single case {:+.1}%; medians of {} rounds)",
        worst.unwrap_or_default(),
        options.rounds
    );
    Ok(())
}
