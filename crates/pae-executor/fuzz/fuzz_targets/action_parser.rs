//! Fuzzes the text-JSON action parser, the JSON-schema check and the
//! calculator's expression parser: no input may panic, and what the action
//! parser returns must be well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pae_executor::tools::Calculator;
use pae_executor::{Action, is_final_answer, parse_action};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_action(&text) {
        Ok(Action::Tool { name, .. }) => {
            assert!(!name.trim().is_empty(), "empty tool name from {text:?}");
            assert!(!is_final_answer(&name), "final answer parsed as a tool from {text:?}");
        }
        Ok(Action::Final { .. }) | Err(_) => {}
    }
    // The same bytes as a calculator expression: a number or an error.
    if let Ok(value) = Calculator::evaluate(&text) {
        assert!(value.is_finite(), "non-finite result for {text:?}");
        let _ = Calculator::format_number(value);
    }
    // When the input splits into a JSON schema and a value, check one
    // against the other.
    if let Some((schema, value)) = text.split_once('\u{1f}') {
        if let (Ok(schema), Ok(value)) = (
            serde_json::from_str::<serde_json::Value>(schema),
            serde_json::from_str::<serde_json::Value>(value),
        ) {
            let violations = pae_executor::schema::validate(&schema, &value);
            assert!(violations.len() <= pae_executor::schema::MAX_VIOLATIONS);
        }
    }
});
