//! A fuzz loop over every parser of this crate: inputs drawn from the
//! generators of the property tests in [`no_panic`](super::no_panic), run
//! through the same checks, with a budget instead of a fixed case count.
//!
//! The loop itself, its budget and its environment variables are
//! `pae_conformance::fuzz::run`'s; `cargo xtask fuzz` runs it for longer.

use proptest::prelude::*;

use super::no_panic::{json_value, parse_everything, tokens};

/// Any text, marker soup, or JSON (bare or fenced in prose).
fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,400}",
        tokens(),
        (json_value(), any::<bool>()).prop_map(|(value, fenced)| {
            let json = value.to_string();
            if fenced {
                format!("Here:\n```json\n{json}\n```\nDone.")
            } else {
                json
            }
        }),
    ]
}

#[test]
fn parsers_survive_a_fuzz_run() {
    pae_conformance::fuzz::run("pae-planner parsers", input(), |text: &String| {
        parse_everything(text)
    });
}
