//! A fuzz loop over this crate's parsers (the action parser, the
//! calculator's expression parser): inputs drawn from the generators of the
//! property tests in [`action_parser`](super::action_parser), with the
//! checks of the cargo-fuzz target, and a budget instead of a case count.
//!
//! The loop itself, its budget and its environment variables are
//! `pae_conformance::fuzz::run`'s; `cargo xtask fuzz` runs it for longer.

use pae_executor::tools::Calculator;
use pae_executor::{Action, is_final_answer, parse_action};
use proptest::prelude::*;

use super::action_parser::fragment;

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
    pae_conformance::fuzz::run("pae-executor parsers", input(), |text: &String| check(text));
}
