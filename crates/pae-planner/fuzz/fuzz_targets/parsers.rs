//! Fuzz target: every parser of model output in pae-planner, on any bytes
//! (read as UTF-8, invalid sequences replaced). A panic, or an output that
//! breaks the parsers' invariants, is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pae_core::{PlanOutputParser, PlanParseError, ReplanDecision};
use pae_planner::{PlanningOutputParser, ReplanOutputParser, StructuredPlanParser};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let plan_parser = PlanningOutputParser::new();
    let steps = plan_parser.parse_steps(text);
    for step in &steps {
        assert!(!step.is_empty() && step.trim() == step);
        assert!(!step.contains('\r') && !step.contains("<END_OF_PLAN>"));
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
        Err(other) => panic!("unexpected error {other:?}"),
    }

    match StructuredPlanParser::new().parse(text) {
        Ok(plan) => assert!(plan.steps.iter().all(|s| !s.value.trim().is_empty())),
        Err(err) => assert_eq!(err.text(), text),
    }

    let replan = ReplanOutputParser::new();
    // Only a JSON reply can say "nothing left to do" with an empty list.
    for (decision, json) in [(replan.parse_text(text), false), (replan.parse_json(text), true)] {
        match decision {
            Ok(ReplanDecision::Finish { answer }) => assert!(!answer.trim().is_empty()),
            Ok(ReplanDecision::Continue { steps }) => {
                assert!(json || !steps.is_empty());
                assert!(steps.iter().all(|s| !s.value.trim().is_empty()));
            }
            Err(err) => assert_eq!(err.text(), text),
        }
    }
});
