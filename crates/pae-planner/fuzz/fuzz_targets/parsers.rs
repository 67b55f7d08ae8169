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
    // Only a JSON decision can say "nothing left to do" with an empty list.
    let json_decision = replan.parse_json(text);
    for decision in [replan.parse_text(text), json_decision.clone()] {
        match decision {
            Ok(ReplanDecision::Finish { answer }) => assert!(!answer.trim().is_empty()),
            Ok(ReplanDecision::Continue { steps }) => {
                assert!(
                    !steps.is_empty()
                        || json_decision == Ok(ReplanDecision::Continue { steps: vec![] })
                );
                assert!(steps.iter().all(|s| !s.value.trim().is_empty()));
            }
            Err(err) => assert_eq!(err.text(), text),
        }
    }
});
