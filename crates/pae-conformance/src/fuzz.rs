//! A bounded fuzz loop for parsers of model output: inputs drawn from a
//! proptest strategy with a fixed seed, a check that must not panic on any
//! of them, and a budget of inputs or of time instead of proptest's case
//! count, so the same loop is a few seconds of `cargo test` and a long
//! `cargo xtask fuzz` run.
//!
//! By default it runs [`DEFAULT_INPUTS`] inputs from seed 0;
//! `PAE_FUZZ_SECONDS` runs until that much time has passed instead and
//! `PAE_FUZZ_SEED` picks the seed (`cargo xtask fuzz [--seconds N] [--seed
//! S]` sets both). It prints one line, `fuzz NAME: N inputs in S s (seed
//! K)`, which `xtask fuzz` adds up.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Inputs run when no time budget is given.
pub const DEFAULT_INPUTS: u64 = 3000;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `check` on inputs drawn from `strategy` until the budget is spent.
///
/// # Panics
/// When `check` panics on an input (the panic names the input and the
/// seed, so the failure can be replayed) or the generator gives up: this
/// is a test.
pub fn run<S>(name: &str, strategy: S, check: impl Fn(&S::Value))
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let seed = env_number("PAE_FUZZ_SEED").unwrap_or(0);
    let deadline = env_number("PAE_FUZZ_SECONDS").map(|s| Duration::from_secs(s.max(1)));
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let started = Instant::now();
    let mut inputs = 0u64;
    loop {
        let done = match deadline {
            Some(limit) => started.elapsed() >= limit,
            None => inputs >= DEFAULT_INPUTS,
        };
        if done {
            break;
        }
        let input = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(reason) => panic!("the generator gave up: {reason}"),
        };
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!("input {inputs} of seed {seed} failed the checks above: {input:?}");
        }
        inputs += 1;
    }
    println!(
        "fuzz {name}: {inputs} inputs in {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}
