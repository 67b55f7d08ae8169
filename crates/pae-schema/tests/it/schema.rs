//! Public-API tests of pae-schema: serde round-trips, containers and bounds.

use pae_schema::{
    ContainerError, ListStepContainer, Plan, PlanLimits, PlanParseError, PlanValidationError, Step,
    StepContainer, StepResponse, StepStatus, TokenUsage, ToolInvocation,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T>(value: &T) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).expect("serialise");
    let back: T = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(&back, value, "round trip through {json}");
    back
}

fn full_response() -> StepResponse {
    StepResponse::new("391")
        .with_data(serde_json::json!({"value": 391}))
        .with_status(StepStatus::Stopped {
            reason: "iteration limit".into(),
        })
        .with_tool_calls(vec![ToolInvocation {
            log: "Thought: multiply".into(),
            is_error: false,
            duration_ms: Some(3),
            ..ToolInvocation::new(
                "calculator",
                serde_json::json!({"expression": "17*23"}),
                "391",
            )
        }])
        .with_usage(TokenUsage::new(120, 14))
}

#[test]
fn every_schema_type_round_trips_through_json() {
    round_trip(&Step::new("plain"));
    round_trip(
        &Step::new("with deps")
            .with_id("s2")
            .with_depends_on(["s1", "s0"]),
    );
    round_trip(&Plan::new([
        Step::new("a"),
        Step::new("b {braces} \"quotes\" é 😀"),
    ]));
    round_trip(&StepResponse::new("just text"));
    round_trip(&full_response());
    round_trip(&StepResponse::new("").with_status(StepStatus::Failed {
        error: "boom".into(),
    }));
    round_trip(&StepResponse::new("").with_status(StepStatus::Skipped {
        reason: "dep".into(),
    }));
    round_trip(&TokenUsage::new(1, 2));
    round_trip(&ToolInvocation::new("t", serde_json::Value::Null, "obs"));
    let container: ListStepContainer = [
        (Step::new("a"), StepResponse::new("1")),
        (Step::new("b"), full_response()),
    ]
    .into_iter()
    .collect();
    let back = round_trip(&container);
    assert_eq!(back.final_response(), Some(&full_response()));
}

#[test]
fn minimal_json_from_a_model_deserialises_with_defaults() {
    let plan: Plan = serde_json::from_str(
        r#"{"steps":[{"value":"a"},{"description":"b","id":"2","depends_on":["1"]}]}"#,
    )
    .unwrap();
    assert_eq!(
        plan.steps[1],
        Step::new("b").with_id("2").with_depends_on(["1"])
    );
    let response: StepResponse = serde_json::from_str(r#"{"response":"ok"}"#).unwrap();
    assert_eq!(response, StepResponse::new("ok"));
    assert!(response.status.is_completed());
}

#[test]
fn default_fields_are_left_out_of_the_wire_format() {
    let json = serde_json::to_value(StepResponse::new("ok")).unwrap();
    assert_eq!(json, serde_json::json!({"response": "ok"}));
    let json = serde_json::to_value(Step::new("x")).unwrap();
    assert_eq!(json, serde_json::json!({"value": "x"}));
}

#[test]
fn list_container_semantics() {
    let mut c = ListStepContainer::new();
    assert_eq!(c.final_response(), None);
    assert_eq!(c.try_final_response(), Err(ContainerError::Empty));
    c.add_step(Step::new("one"), StepResponse::new("first"));
    assert_eq!(c.try_final_response().unwrap().response, "first");
    c.add_step(Step::new("two"), StepResponse::new("second"));
    assert_eq!(c.len(), 2);
    assert_eq!(c.final_response().unwrap().response, "second");
    let values: Vec<_> = c
        .steps()
        .iter()
        .map(|(s, r)| (s.value.as_str(), r.response.as_str()))
        .collect();
    assert_eq!(values, [("one", "first"), ("two", "second")]);
    assert_eq!(c.clone().into_steps().len(), 2);
}

#[test]
fn container_is_usable_as_a_trait_object() {
    let mut boxed: Box<dyn StepContainer> = Box::new(ListStepContainer::new());
    boxed.add_step(Step::new("a"), StepResponse::new("b"));
    assert_eq!(boxed.final_response().unwrap().response, "b");
}

#[test]
fn display_forms_are_readable() {
    let plan = Plan::new(["Find x", "Answer"]);
    assert_eq!(plan.to_string(), "1. Find x\n2. Answer");
    assert_eq!(
        TokenUsage::new(10, 5).to_string(),
        "15 tokens (10 prompt + 5 completion)"
    );
    let err = PlanParseError::Malformed {
        text: "{".into(),
        reason: "EOF".into(),
    };
    assert_eq!(err.to_string(), "malformed plan: EOF");
    assert_eq!(err.text(), "{");
}

#[test]
fn validation_limits_are_enforced() {
    let limits = PlanLimits {
        min_steps: 1,
        max_steps: 3,
    };
    let long = Plan::new(["a", "b", "c", "d"]);
    assert_eq!(
        long.validate(&limits),
        Err(PlanValidationError::TooManySteps { count: 4, max: 3 })
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Step>();
    assert_send_sync::<Plan>();
    assert_send_sync::<StepResponse>();
    assert_send_sync::<ListStepContainer>();
    assert_send_sync::<Box<dyn StepContainer>>();
    assert_send_sync::<PlanParseError>();
    assert_send_sync::<PlanValidationError>();
    assert_send_sync::<ContainerError>();
}
