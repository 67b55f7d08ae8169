//! Planner tests with scripted and mocked models: the exact requests sent,
//! the structured happy path, the fallback path and retry with feedback.

use std::sync::Arc;

use pae_core::test_util::{MockChatModel, ScriptedModel, ScriptedReply};
use pae_core::{
    Capabilities, ChatRequest, ChatResponse, Message, Plan, PlanError, PlanLimits, PlanParseError,
    PlanRequest, PlanValidationError, Planner, PromptTemplate, ProviderError, ResponseFormat,
    Sampling, Step, TokenUsage,
};
use pae_planner::prompts::{
    PLAN_RETRY_INSTRUCTIONS, PLANNER_SYSTEM_PROMPT, STRUCTURED_PLAN_RETRY_INSTRUCTIONS,
    STRUCTURED_PLANNER_SYSTEM_PROMPT, plan_schema,
};
use pae_planner::{LlmPlanner, StructuredPlanner, load_chat_planner, load_structured_planner};

const OBJECTIVE: &str = "What is the population of the capital of France?";

fn json_model(replies: &[&str]) -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::new(replies.iter().copied()).with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    )
}

fn text_request() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system(PLANNER_SYSTEM_PROMPT),
        Message::user(OBJECTIVE),
    ])
    .with_stop(["<END_OF_PLAN>"])
}

fn json_request() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system(STRUCTURED_PLANNER_SYSTEM_PROMPT),
        Message::user(OBJECTIVE),
    ])
    .with_response_format(ResponseFormat::json_schema("plan", plan_schema()))
}

fn feedback(reason: &str, instructions: &str) -> String {
    format!("Your reply could not be used: {reason}.\n{instructions}")
}

#[tokio::test]
async fn chat_planner_sends_system_prompt_objective_and_stop() {
    let model = Arc::new(
        ScriptedModel::new([
            "Plan:\n1. Find the capital of France\n2. Find its population\n3. Using the results of the previous steps, answer the user's original question.\n<END_OF_PLAN>\nextra",
        ])
        .with_usage(TokenUsage::new(120, 30)),
    );
    let planner = load_chat_planner(model.clone());
    let request = PlanRequest::new(OBJECTIVE);
    let plan = planner.plan(&request).await.unwrap();

    assert_eq!(model.requests(), vec![text_request()]);
    assert_eq!(
        plan,
        Plan::new([
            "Find the capital of France",
            "Find its population",
            "Using the results of the previous steps, answer the user's original question.",
        ])
    );
    assert_eq!(request.context.usage(), TokenUsage::new(120, 30));
}

#[tokio::test]
async fn mocked_model_is_called_once_with_the_stop_list() {
    let mut model = MockChatModel::new();
    model
        .expect_chat()
        .times(1)
        .withf(|request: &ChatRequest| {
            request.stop == ["<END_OF_PLAN>"]
                && request.messages.len() == 2
                && request.messages[0] == Message::system(PLANNER_SYSTEM_PROMPT)
                && request.messages[1] == Message::user("Plan a picnic")
                && request.response_format.is_none()
        })
        .returning(|_| {
            Ok(ChatResponse::text(
                "Plan:\n1. Pack food\n2. Go to the park\n",
            ))
        });
    // The call goes through the run context, which names the model in its
    // events.
    model.expect_model_name().return_const("mock".to_owned());
    let planner = load_chat_planner(Arc::new(model));
    let plan = planner
        .plan(&PlanRequest::new("Plan a picnic"))
        .await
        .unwrap();
    assert_eq!(plan, Plan::new(["Pack food", "Go to the park"]));
}

#[tokio::test]
async fn builder_sends_a_custom_prompt_literally_with_its_settings() {
    let model = Arc::new(ScriptedModel::new(["1. a\n2. b\nSTOP"]));
    let sampling = Sampling {
        temperature: Some(0.0),
        seed: Some(7),
        ..Sampling::default()
    };
    let planner = LlmPlanner::builder(model.clone())
        .with_system_prompt("Plan it. Reply as {\"not\": \"a template\"}.")
        .with_human_prompt(PromptTemplate::new("Objective: {input}\nUser: {user}").unwrap())
        .with_stop(["STOP", "<END_OF_PLAN>"])
        .with_sampling(sampling)
        .build();
    let mut request = PlanRequest::new("tea");
    request.inputs.insert("user".into(), "ann".into());
    let plan = planner.plan(&request).await.unwrap();
    assert_eq!(plan, Plan::new(["a", "b"]));
    assert_eq!(
        model.requests(),
        vec![
            ChatRequest::new(vec![
                Message::system("Plan it. Reply as {\"not\": \"a template\"}."),
                Message::user("Objective: tea\nUser: ann"),
            ])
            .with_stop(["STOP", "<END_OF_PLAN>"])
            .with_sampling(sampling)
        ]
    );
}

#[tokio::test]
async fn a_reply_without_steps_is_a_typed_error_with_the_text() {
    let model = Arc::new(ScriptedModel::new(["I cannot help with that."]));
    let err = load_chat_planner(model)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    match err {
        PlanError::Parse(PlanParseError::NoSteps { text }) => {
            assert_eq!(text, "I cannot help with that.");
        }
        other => panic!("expected NoSteps, got {other:?}"),
    }
}

#[tokio::test]
async fn limits_reject_a_plan_early() {
    let model = Arc::new(ScriptedModel::new(["1. a\n2. b\n3. c"]));
    let planner = LlmPlanner::builder(model)
        .with_limits(PlanLimits {
            min_steps: 1,
            max_steps: 2,
        })
        .build();
    let err = planner.plan(&PlanRequest::new("x")).await.unwrap_err();
    assert!(
        matches!(
            err,
            PlanError::Invalid(PlanValidationError::TooManySteps { count: 3, max: 2 })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn text_planner_retries_with_feedback_when_allowed() {
    let model = Arc::new(ScriptedModel::new([
        "Let me think about it.",
        "Plan:\n1. a\n2. b\n",
    ]));
    let planner = LlmPlanner::builder(model.clone())
        .with_max_retries(1)
        .build();
    let plan = planner.plan(&PlanRequest::new(OBJECTIVE)).await.unwrap();
    assert_eq!(plan, Plan::new(["a", "b"]));
    let mut second = text_request();
    second
        .messages
        .push(Message::assistant("Let me think about it."));
    second.messages.push(Message::user(feedback(
        "no plan step could be read from it",
        PLAN_RETRY_INSTRUCTIONS,
    )));
    assert_eq!(model.requests(), vec![text_request(), second]);
}

#[tokio::test]
async fn structured_happy_path_reads_ids_and_dependencies() {
    let model = json_model(&[r#"{"steps": [
            {"id": "capital", "description": "Find the capital of France", "depends_on": []},
            {"id": "population", "description": "Find the population of that city", "depends_on": ["capital"]},
            {"id": "answer", "description": "Answer the question", "depends_on": ["population"]}
        ]}"#]);
    let planner = load_structured_planner(model.clone());
    assert!(planner.uses_json());
    let request = PlanRequest::new(OBJECTIVE);
    let plan = planner.plan(&request).await.unwrap();
    assert_eq!(model.requests(), vec![json_request()]);
    assert_eq!(
        plan,
        Plan::new([
            Step::new("Find the capital of France").with_id("capital"),
            Step::new("Find the population of that city")
                .with_id("population")
                .with_depends_on(["capital"]),
            Step::new("Answer the question")
                .with_id("answer")
                .with_depends_on(["population"]),
        ])
    );
}

#[tokio::test]
async fn structured_planner_accepts_near_json_without_a_retry() {
    // Trailing commas, camelCase keys, "None" for no dependency, and a step
    // number for a step with a named id: read as meant, no second call.
    let model = json_model(&[r#"Here is the plan:
```json
{"steps": [
    {"stepId": "capital", "description": "Find the capital of France", "dependsOn": "None",},
    {"stepId": "population", "description": "Find the population of that city", "dependsOn": [1],},
]}
```"#]);
    let plan = load_structured_planner(model.clone())
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap();
    assert_eq!(model.calls(), 1);
    assert_eq!(
        plan,
        Plan::new([
            Step::new("Find the capital of France").with_id("capital"),
            Step::new("Find the population of that city")
                .with_id("population")
                .with_depends_on(["capital"]),
        ])
    );
}

#[tokio::test]
async fn structured_plans_are_put_in_dependency_order() {
    let model = json_model(&[
        r#"[{"step": 1, "description": "Answer", "depends_on": [2, 3]},
            {"step": 2, "description": "Look up A"},
            {"step": 3, "description": "Look up B", "depends_on": "step 2"}]"#,
    ]);
    let plan = StructuredPlanner::new(model)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap();
    assert_eq!(
        plan,
        Plan::new([
            Step::new("Look up A").with_id("2"),
            Step::new("Look up B").with_id("3").with_depends_on(["2"]),
            Step::new("Answer").with_id("1").with_depends_on(["2", "3"]),
        ])
    );
}

#[tokio::test]
async fn structured_planner_falls_back_to_text_without_json_schema_support() {
    let model = Arc::new(ScriptedModel::new([
        "Plan:\n1. Find the capital\n2. Answer\n<END_OF_PLAN>",
    ]));
    let planner = StructuredPlanner::new(model.clone());
    assert!(!planner.uses_json());
    let plan = planner.plan(&PlanRequest::new(OBJECTIVE)).await.unwrap();
    assert_eq!(model.requests(), vec![text_request()]);
    assert_eq!(plan, Plan::new(["Find the capital", "Answer"]));
}

#[tokio::test]
async fn structured_planner_feeds_errors_back_until_the_plan_is_valid() {
    let bad_json = r#"{"steps": [{"id": "1", "description": "a""#;
    let unknown_dep = r#"{"steps": [{"id": "1", "description": "a", "depends_on": []},
        {"id": "2", "description": "b", "depends_on": ["9"]}]}"#;
    let good = r#"{"steps": [{"id": "1", "description": "a", "depends_on": []},
        {"id": "2", "description": "b", "depends_on": ["1"]}]}"#;
    let model = Arc::new(
        ScriptedModel::new([bad_json, unknown_dep, good])
            .with_capabilities(Capabilities {
                json_schema: true,
                ..Capabilities::default()
            })
            .with_usage(TokenUsage::new(10, 2)),
    );
    let request = PlanRequest::new(OBJECTIVE);
    let plan = load_structured_planner(model.clone())
        .plan(&request)
        .await
        .unwrap();
    assert_eq!(
        plan,
        Plan::new([
            Step::new("a").with_id("1"),
            Step::new("b").with_id("2").with_depends_on(["1"]),
        ])
    );
    let json_error = serde_json::from_str::<serde_json::Value>(bad_json)
        .unwrap_err()
        .to_string();
    let mut second = json_request();
    second.messages.push(Message::assistant(bad_json));
    second.messages.push(Message::user(feedback(
        &format!("the reply is not valid JSON ({json_error})"),
        STRUCTURED_PLAN_RETRY_INSTRUCTIONS,
    )));
    let mut third = second.clone();
    third.messages.push(Message::assistant(unknown_dep));
    third.messages.push(Message::user(feedback(
        "step 2 depends on \"9\", which is not a step of the plan",
        STRUCTURED_PLAN_RETRY_INSTRUCTIONS,
    )));
    assert_eq!(model.requests(), vec![json_request(), second, third]);
    // Every attempt's tokens are accounted to the run.
    assert_eq!(request.context.usage(), TokenUsage::new(30, 6));
}

#[tokio::test]
async fn a_cycle_triggers_a_retry_too() {
    let cycle = r#"{"steps": [{"id": "a", "description": "x", "depends_on": ["b"]},
        {"id": "b", "description": "y", "depends_on": ["a"]}]}"#;
    let model = json_model(&[
        cycle,
        r#"{"steps": [{"id": "a", "description": "x", "depends_on": []}]}"#,
    ]);
    let plan = load_structured_planner(model.clone())
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap();
    assert_eq!(plan, Plan::new([Step::new("x").with_id("a")]));
    let feedback_sent = &model.requests()[1].messages[3].content;
    assert!(
        feedback_sent
            .starts_with("Your reply could not be used: the step dependencies form a cycle: "),
        "{feedback_sent}"
    );
}

#[tokio::test]
async fn retries_are_bounded_then_a_typed_error() {
    let model = json_model(&["nope", "still nope", "{\"steps\": []}"]);
    let err = load_structured_planner(model.clone())
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    match err {
        PlanError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert_eq!(
                last,
                PlanParseError::NoSteps {
                    text: "{\"steps\": []}".into()
                }
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(model.calls(), 3);

    let model = json_model(&["nope", "{}"]);
    let err = load_structured_planner(model.clone())
        .with_max_retries(1)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlanError::RetriesExhausted { attempts: 2, last: PlanParseError::Malformed { ref text, .. } } if text == "{}"),
        "{err:?}"
    );

    let model = json_model(&["nope"]);
    let err = load_structured_planner(model)
        .with_max_retries(0)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlanError::Parse(PlanParseError::Malformed { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn provider_errors_are_not_retried() {
    let model = Arc::new(
        ScriptedModel::new([ProviderError::Http {
            status: 401,
            body: "unauthorised".into(),
            retry_after: None,
        }])
        .with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    );
    let err = load_structured_planner(model.clone())
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PlanError::Provider(ProviderError::Http { status: 401, .. })
    ));
    assert_eq!(model.calls(), 1);
}

#[tokio::test]
async fn an_unusable_json_plan_falls_back_to_a_text_plan_when_asked() {
    let model = json_model(&[
        r#"{"steps": [{"id": "1", "description": "a", "depends_on": ["find_it"]}]}"#,
        "nope",
        "{\"steps\": []}",
        "Plan:\n1. Find the capital\n2. Answer\n<END_OF_PLAN>",
    ]);
    let plan = load_structured_planner(model.clone())
        .with_fallback_on_failure(true)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap();
    assert_eq!(plan, Plan::new(["Find the capital", "Answer"]));
    assert_eq!(model.calls(), 4);
    assert_eq!(model.requests()[3], text_request());
}

#[tokio::test]
async fn provider_errors_do_not_fall_back() {
    let model = Arc::new(
        ScriptedModel::new([
            ScriptedReply::from(ProviderError::Http {
                status: 503,
                body: "down".into(),
                retry_after: None,
            }),
            ScriptedReply::from("Plan:\n1. a\n<END_OF_PLAN>"),
        ])
        .with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    );
    let err = load_structured_planner(model.clone())
        .with_fallback_on_failure(true)
        .plan(&PlanRequest::new(OBJECTIVE))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PlanError::Provider(ProviderError::Http { status: 503, .. })
    ));
    assert_eq!(model.calls(), 1);
}
