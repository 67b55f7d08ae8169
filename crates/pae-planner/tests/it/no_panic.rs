//! Property tests: no input makes any parser of this crate panic, and the
//! parsers' outputs keep their invariants. The cargo-fuzz target in
//! `fuzz/` drives the same parsers with coverage guidance.

use pae_core::{PlanOutputParser, PlanParseError, ReplanDecision};
use pae_planner::{PlanningOutputParser, ReplanOutputParser, StructuredPlanParser};
use proptest::prelude::*;

/// Pieces of text that reach the parsers' special cases.
const TOKENS: &[&str] = &[
    "1.",
    "2.",
    "3.",
    "1)",
    "(2)",
    "1.1",
    "2024.",
    "0.",
    "10.",
    "**",
    "__",
    "Step ",
    "step 2:",
    "#",
    "### ",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    " ",
    "  ",
    "\t",
    "-",
    "*",
    "+",
    "•",
    "–",
    "[ ]",
    "Plan:",
    "**Plan:**",
    "Here are the steps:",
    "<END_OF_PLAN>",
    "END_OF_PLAN",
    "</",
    "<",
    "FINAL ANSWER:",
    "Final answer",
    "：",
    "１．",
    "١.",
    "é",
    "😀",
    "\u{feff}",
    "\u{2028}",
    "\u{a0}",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "\"steps\"",
    "\"id\"",
    "\"description\"",
    "\"depends_on\"",
    "\"action\"",
    "\"finish\"",
    "\"continue\"",
    "\"answer\"",
    "\"x\"",
    "1",
    "9",
    "null",
    "true",
    "-1e999",
    "2.0",
    "```",
    "```json\n",
    "a",
    "word",
    "Let me know",
    "1 - ",
    "1.-",
    "#1:",
    "1\u{fe0f}\u{20e3}",
    "\u{200b}",
    "\u{200f}",
    "END OF PLAN",
    "<END_OF",
    "<|im_end|>",
    "<|im_start|>assistant\n",
    "</s>",
    "<think>",
    "</think>",
    "## Booking",
    "**Phase 2**",
    "| 1 | x |",
    "|---|",
    "'",
    "//",
    "/*",
    ",}",
    "None",
    "\"dependsOn\"",
    "\"none\"",
    "{\"id\": \"1\"}",
    "\"action\": {",
];

pub(super) fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..64).prop_map(|parts| parts.concat())
}

pub(super) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z0-9 ]{0,8}".prop_map(serde_json::Value::String),
        prop::sample::select(&["steps", "1", "step 1", "finish", "continue", ""][..])
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop::sample::select(
            &[
                "steps",
                "plan",
                "id",
                "step",
                "description",
                "value",
                "depends_on",
                "deps",
                "action",
                "answer",
                "final_answer",
                "x",
            ][..],
        );
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|pairs| {
                serde_json::Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                )
            }),
        ]
    })
}

/// Runs every parser on `text` and checks what holds for any input.
pub(super) fn parse_everything(text: &str) {
    let plan_parser = PlanningOutputParser::new();
    let steps = plan_parser.parse_steps(text);
    for step in &steps {
        assert!(!step.is_empty(), "empty step from {text:?}");
        assert_eq!(step.trim(), step, "untrimmed step from {text:?}");
        assert!(!step.contains('\r'), "CR left in a step from {text:?}");
        assert!(
            !step.contains("<END_OF_PLAN>"),
            "end marker left in {text:?}"
        );
        assert!(!step.contains("<|im_end|>"), "chat token left in {text:?}");
    }
    match plan_parser.parse(text) {
        // A text without list steps may still be a JSON plan.
        Ok(plan) if steps.is_empty() => assert_eq!(
            Ok(plan.steps.len()),
            StructuredPlanParser::new().parse(text).map(|p| p.len())
        ),
        Ok(plan) => assert_eq!(plan.steps.len(), steps.len()),
        Err(PlanParseError::NoSteps { text: kept }) => {
            assert!(steps.is_empty());
            assert_eq!(kept, text);
        }
        Err(other) => panic!("the text parser only reports NoSteps, got {other:?}"),
    }

    match StructuredPlanParser::new().parse(text) {
        Ok(plan) => {
            assert!(!plan.is_empty());
            assert!(plan.steps.iter().all(|s| !s.value.trim().is_empty()));
        }
        Err(err) => assert_eq!(err.text(), text),
    }

    let replan = ReplanOutputParser::new();
    // Only a JSON decision can say "nothing left to do" with an empty list.
    let json_decision = replan.parse_json(text);
    for decision in [replan.parse_text(text), json_decision.clone()] {
        match decision {
            Ok(ReplanDecision::Finish { answer }) => assert!(!answer.trim().is_empty()),
            Ok(ReplanDecision::Continue { steps }) => {
                assert!(
                    !steps.is_empty()
                        || json_decision == Ok(ReplanDecision::Continue { steps: vec![] }),
                    "empty replan from {text:?}"
                );
                assert!(steps.iter().all(|s| !s.value.trim().is_empty()));
            }
            Err(err) => assert_eq!(err.text(), text),
        }
    }
}

/// 4096 cases per property, or `PROPTEST_CASES` when it is set (the
/// explicit count would otherwise override the variable).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        parse_everything(&text);
    }

    #[test]
    fn marker_soup_never_panics(text in tokens()) {
        parse_everything(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value(), fenced in any::<bool>()) {
        let json = value.to_string();
        let text = if fenced { format!("Here:\n```json\n{json}\n```\nDone.") } else { json };
        parse_everything(&text);
    }

    /// A plan written in LangChain's format comes back step for step.
    #[test]
    fn numbered_plans_round_trip(
        steps in prop::collection::vec("[A-Za-z][A-Za-z ,']{0,30}[A-Za-z.?]", 1..12),
        crlf in any::<bool>(),
        marker in any::<bool>(),
    ) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("Plan:{newline}");
        for (i, step) in steps.iter().enumerate() {
            text.push_str(&format!("{}. {step}{newline}", i + 1));
        }
        if marker {
            text.push_str("<END_OF_PLAN>\nAnything else?");
        }
        let expected: Vec<String> = steps.iter().map(|s| s.trim().to_owned()).collect();
        prop_assert_eq!(PlanningOutputParser::new().parse_steps(&text), expected);
    }
}
