//! A fuzz loop over this crate's parsers (the action parser, the
//! calculator's expression parser): inputs drawn from the generators of the
//! property tests in [`action_parser`](super::action_parser), with the
//! checks of the cargo-fuzz target, and a budget instead of a case count.
//!
//! By default it runs a fixed number of inputs from a fixed seed (part of
//! `cargo test`, a few seconds); `cargo xtask fuzz [--seconds N] [--seed S]`
//! sets `PAE_FUZZ_SECONDS` (run until that much time has passed) and
//! `PAE_FUZZ_SEED`. It prints the inputs it ran, which `xtask fuzz` adds up.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use pae_executor::tools::Calculator;
use pae_executor::{Action, is_final_answer, parse_action};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::action_parser::fragment;

/// Inputs run when no time budget is given.
const DEFAULT_INPUTS: u64 = 3000;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Any text, JSON-like fragment soup, or arithmetic-like text.
fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(fragment(), 0..40).prop_map(|parts| parts.concat()),
        "[0-9.eE+*/%^()a-z, -]{0,60}",
    ]
}

/// What must hold for any input.
fn check(text: &str) {
    match parse_action(text) {
        Ok(Action::Tool { name, .. }) => {
            assert!(!name.trim().is_empty(), "empty tool name");
            assert!(!is_final_answer(&name), "final answer parsed as a tool");
        }
        Ok(Action::Final { .. }) | Err(_) => {}
    }
    if let Ok(value) = Calculator::evaluate(text) {
        assert!(value.is_finite(), "non-finite calculator result");
        let _ = Calculator::format_number(value);
    }
}

#[test]
fn parsers_survive_a_fuzz_run() {
    let seed = env_number("PAE_FUZZ_SEED").unwrap_or(0);
    let deadline = env_number("PAE_FUZZ_SECONDS").map(|s| Duration::from_secs(s.max(1)));
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = input();
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
        let text = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(reason) => panic!("the generator gave up: {reason}"),
        };
        if catch_unwind(AssertUnwindSafe(|| check(&text))).is_err() {
            panic!("input {inputs} of seed {seed} failed the checks above: {text:?}");
        }
        inputs += 1;
    }
    println!(
        "fuzz pae-executor parsers: {inputs} inputs in {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}
