//! No text makes the reference scanner, substitution or dependency
//! inference panic, and inferred plans either validate or give a typed
//! error.

use pae_schema::{Plan, PlanLimits, find_references, substitute_references};
use proptest::prelude::*;

fn reference_soup() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "#E", "#e", "$", "${", "}", "#", "step ", "Step #", "1", "2", "10", "0", ".", "5.", "é",
        " ", "\n", "a", "_", "E", "€", "${E1}", "#E2", "$3",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn scanning_and_substitution_never_panic(text in any::<String>(), soup in reference_soup()) {
        for t in [&text, &soup] {
            for r in find_references(t) {
                prop_assert!(r.span.end <= t.len() && t.is_char_boundary(r.span.start) && t.is_char_boundary(r.span.end));
            }
            let out = substitute_references(t, |_| Some("X"));
            prop_assert!(out.len() <= t.len() * 2 + 1);
        }
    }

    #[test]
    fn inference_never_panics_and_validation_decides(steps in prop::collection::vec(reference_soup(), 1..8)) {
        let mut plan = Plan::new(steps.iter().map(|s| format!("do {s}")));
        plan.infer_dependencies();
        // Either a valid plan or a typed error; never a panic.
        let _ = plan.validate(&PlanLimits::default());
        let _ = plan.topological_order();
    }
}
