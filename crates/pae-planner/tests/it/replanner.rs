//! Replanner tests: the requests `LlmReplanner` sends, retries on malformed
//! replies, and whole runs of `PlanAndExecute` that recover from a failed
//! step, respect the replan cap and keep every plan revision.

use std::sync::Arc;

use async_trait::async_trait;
use expect_test::{Expect, expect};
use pae_core::test_util::ScriptedModel;
use pae_core::{
    Capabilities, ChatRequest, ExecError, Executor, Message, Plan, PlanAndExecute, PlanError,
    PlanParseError, ReplanDecision, ReplanPolicy, ReplanRequest, ReplanTrigger, Replanner,
    ResponseFormat, RunError, RunOutcome, Step, StepInput, StepResponse, StepStatus, TokenUsage,
    ToolError,
};
use pae_planner::prompts::{
    REPLAN_RETRY_INSTRUCTIONS, REPLANNER_SYSTEM_PROMPT, STRUCTURED_REPLANNER_SYSTEM_PROMPT,
    replan_schema,
};
use pae_planner::{LlmReplanner, load_chat_planner};

const OBJECTIVE: &str = "How much does a coffee cost in euros?";

/// An executor defined by a function of the step.
struct FnExecutor<F>(F);

#[async_trait]
impl<F> Executor for FnExecutor<F>
where
    F: Fn(&StepInput) -> Result<StepResponse, ExecError> + Send + Sync,
{
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        (self.0)(input)
    }
}

/// Fails every step that mentions the primary site; answers the others.
fn coffee_executor() -> Arc<dyn Executor> {
    Arc::new(FnExecutor(|input: &StepInput| {
        let step = &input.current_step.value;
        if step.contains("primary") {
            Err(ExecError::Tool {
                tool: "price_lookup".into(),
                source: ToolError::failed("HTTP 503 from shop.example"),
            })
        } else if step.contains("backup") {
            Ok(StepResponse::new("3 euros").with_usage(TokenUsage::new(5, 1)))
        } else {
            let found = input
                .previous_steps
                .iter()
                .rev()
                .find(|(_, r)| r.status.is_completed())
                .map(|(_, r)| r.response.clone())
                .unwrap_or_default();
            Ok(StepResponse::new(format!("A coffee costs {found}.")))
        }
    }))
}

fn situation_after_failure() -> ReplanRequest {
    ReplanRequest {
        objective: OBJECTIVE.into(),
        plan: Plan::new(["Look up the price on the primary site", "Answer"]),
        completed: vec![(
            Step::new("Look up the price on the primary site"),
            StepResponse::new("Error: HTTP 503").with_status(StepStatus::Failed {
                error: "HTTP 503".into(),
            }),
        )],
        remaining: vec![Step::new("Answer")],
        trigger: Some(ReplanTrigger::StepFailed {
            error: "HTTP 503".into(),
        }),
        ..ReplanRequest::default()
    }
}

/// The user message of [`situation_after_failure`], the whole prompt text
/// (`UPDATE_EXPECT=1 cargo test -p pae-planner` rewrites it).
fn situation_text() -> Expect {
    expect![[r#"
        Objective: How much does a coffee cost in euros?

        Plan:
        1. Look up the price on the primary site
        2. Answer

        Steps done so far:
        1. Look up the price on the primary site
           Result: (failed: HTTP 503)

        Steps not yet done:
        2. Answer

        Why you are asked: step 1 (Look up the price on the primary site) failed: HTTP 503"#]]
}

/// The user message of the only request sent, checked against
/// [`situation_text`].
fn sent_situation(model: &ScriptedModel) -> String {
    let requests = model.requests();
    let text = requests[0].messages[1].content.clone();
    situation_text().assert_eq(&text);
    text
}

#[tokio::test]
async fn text_replanner_sends_the_situation_and_stop_list() {
    let model = Arc::new(
        ScriptedModel::new([
            "Plan:\n1. Look up the price on the backup site\n2. Answer\n<END_OF_PLAN>",
        ])
        .with_usage(TokenUsage::new(50, 10)),
    );
    let replanner = LlmReplanner::new(model.clone());
    let request = situation_after_failure();
    let decision = replanner.replan(&request).await.unwrap();
    assert_eq!(
        decision,
        ReplanDecision::Continue {
            steps: vec![
                Step::new("Look up the price on the backup site"),
                Step::new("Answer")
            ]
        }
    );
    let situation = sent_situation(&model);
    assert_eq!(
        model.requests(),
        vec![
            ChatRequest::new(vec![
                Message::system(REPLANNER_SYSTEM_PROMPT),
                Message::user(situation),
            ])
            .with_stop(["<END_OF_PLAN>"])
        ]
    );
    assert_eq!(request.context.usage(), TokenUsage::new(50, 10));
}

#[tokio::test]
async fn structured_replanner_asks_for_a_json_decision() {
    let model = Arc::new(
        ScriptedModel::new([r#"{"action": "finish", "answer": "About 3 euros.", "steps": []}"#])
            .with_capabilities(Capabilities {
                json_schema: true,
                ..Capabilities::default()
            }),
    );
    let replanner = LlmReplanner::new(model.clone());
    assert!(replanner.uses_json());
    let decision = replanner.replan(&situation_after_failure()).await.unwrap();
    assert_eq!(
        decision,
        ReplanDecision::Finish {
            answer: "About 3 euros.".into()
        }
    );
    let situation = sent_situation(&model);
    assert_eq!(
        model.requests(),
        vec![
            ChatRequest::new(vec![
                Message::system(STRUCTURED_REPLANNER_SYSTEM_PROMPT),
                Message::user(situation),
            ])
            .with_response_format(ResponseFormat::json_schema(
                "replan_decision",
                replan_schema()
            ))
        ]
    );
    // The text protocol can be forced.
    assert!(!LlmReplanner::new(model).with_json(false).uses_json());
}

#[tokio::test]
async fn revised_steps_may_name_done_steps_but_not_unknown_ones() {
    let model = Arc::new(
        ScriptedModel::new([
            r#"{"action": "continue", "answer": "", "steps": [
                {"id": "b", "description": "Answer", "depends_on": ["9"]}]}"#,
            r#"{"action": "continue", "answer": "", "steps": [
                {"id": "a", "description": "Look up on the backup site", "depends_on": ["1"]},
                {"id": "b", "description": "Answer", "depends_on": ["a", "1"]}]}"#,
        ])
        .with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    );
    let decision = LlmReplanner::new(model.clone())
        .replan(&situation_after_failure())
        .await
        .unwrap();
    // "1" is the step already done: its result exists, so the dependency is dropped.
    assert_eq!(
        decision,
        ReplanDecision::Continue {
            steps: vec![
                Step::new("Look up on the backup site").with_id("a"),
                Step::new("Answer").with_id("b").with_depends_on(["a"]),
            ]
        }
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].messages[3].content,
        "Your reply could not be used: step 1 depends on \"9\", which is not a step of the plan.\n\
         Reply again with only a JSON object: {\"action\": \"finish\", \"answer\": \"...\", \"steps\": []} or {\"action\": \"continue\", \"answer\": \"\", \"steps\": [{\"id\": \"...\", \"description\": \"...\", \"depends_on\": []}]} with at least one step."
    );
}

#[tokio::test]
async fn malformed_replies_are_retried_then_a_typed_error() {
    let model = Arc::new(ScriptedModel::new([
        "Hmm, hard to say.",
        "FINAL ANSWER: 3 euros",
    ]));
    let decision = LlmReplanner::new(model.clone())
        .replan(&situation_after_failure())
        .await
        .unwrap();
    assert_eq!(
        decision,
        ReplanDecision::Finish {
            answer: "3 euros".into()
        }
    );
    let second = &model.requests()[1];
    assert_eq!(second.messages.len(), 4);
    assert_eq!(second.messages[2], Message::assistant("Hmm, hard to say."));
    assert_eq!(
        second.messages[3],
        Message::user(format!(
            "Your reply could not be used: it has neither a line starting with \"FINAL ANSWER:\" nor a numbered list of remaining steps.\n{REPLAN_RETRY_INSTRUCTIONS}"
        ))
    );

    let model = Arc::new(ScriptedModel::new(["?", "??", "???"]));
    let err = LlmReplanner::new(model.clone())
        .replan(&situation_after_failure())
        .await
        .unwrap_err();
    match err {
        PlanError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert_eq!(last.text(), "???");
            assert!(matches!(last, PlanParseError::Malformed { .. }));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(model.calls(), 3);
}

#[tokio::test]
async fn a_failed_step_leads_to_a_revised_plan_and_the_right_answer() {
    let planner_model = Arc::new(
        ScriptedModel::new([
            "Plan:\n1. Look up the price of a coffee on the primary site\n2. Answer the user's question\n<END_OF_PLAN>",
        ])
        .with_usage(TokenUsage::new(100, 20)),
    );
    let replanner_model = Arc::new(
        ScriptedModel::new([
            "Plan:\n1. Look up the price of a coffee on the backup site\n2. Answer the user's question\n<END_OF_PLAN>",
        ])
        .with_usage(TokenUsage::new(200, 30)),
    );
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(planner_model.clone())),
        coffee_executor(),
    )
    .with_replanner(
        Arc::new(LlmReplanner::new(replanner_model.clone())),
        ReplanPolicy::OnFailure,
    );
    let result = agent.run(OBJECTIVE).await.unwrap();

    assert_eq!(result.output, "A coffee costs 3 euros.");
    assert_eq!(result.outcome, RunOutcome::Completed);
    // Every plan revision is kept: the first plan, then the revision (the
    // failed step followed by the revised remaining steps).
    assert_eq!(result.plans.len(), 2);
    assert_eq!(
        result.plans[0],
        Plan::new([
            "Look up the price of a coffee on the primary site",
            "Answer the user's question"
        ])
    );
    assert_eq!(
        result.plans[1],
        Plan::new([
            "Look up the price of a coffee on the primary site",
            "Look up the price of a coffee on the backup site",
            "Answer the user's question"
        ])
    );
    let statuses: Vec<bool> = result
        .steps
        .iter()
        .map(|(_, r)| r.status.is_completed())
        .collect();
    assert_eq!(statuses, [false, true, true]);
    // The replanner was asked once, on the failure, and saw the error chain.
    let asked = replanner_model.requests();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].messages[1]
            .content
            .ends_with("failed: the tool \"price_lookup\" failed: HTTP 503 from shop.example"),
        "{}",
        asked[0].messages[1].content
    );
    // Planner, replanner and step tokens all count.
    assert_eq!(result.usage, TokenUsage::new(305, 51));
}

#[tokio::test]
async fn the_replan_cap_is_enforced_and_reported() {
    // Every lookup stops at its iteration limit; the replanner keeps
    // proposing another lookup.
    let executor = Arc::new(FnExecutor(|input: &StepInput| {
        if input.current_step.value.starts_with("Look up") {
            Ok(
                StepResponse::new("no price found").with_status(StepStatus::Stopped {
                    reason: "iteration limit".into(),
                }),
            )
        } else {
            Ok(StepResponse::new("I could not find the price."))
        }
    }));
    let planner_model = Arc::new(ScriptedModel::new(["1. Look up the price\n2. Answer"]));
    let replanner_model = Arc::new(ScriptedModel::from_fn(|_| {
        "Plan:\n1. Look up the price elsewhere\n2. Answer".into()
    }));
    let agent = PlanAndExecute::new(Arc::new(load_chat_planner(planner_model)), executor)
        .with_replanner(
            Arc::new(LlmReplanner::new(replanner_model.clone())),
            ReplanPolicy::OnFailure,
        )
        .with_max_replans(2);
    let result = agent.run(OBJECTIVE).await.unwrap();
    assert_eq!(
        result.outcome,
        RunOutcome::ReplanLimitReached { max_replans: 2 }
    );
    assert_eq!(replanner_model.calls(), 2);
    assert_eq!(result.plans.len(), 3);
    assert_eq!(result.replans(), 2);
    assert_eq!(result.output, "I could not find the price.");
    let ran: Vec<&str> = result.steps.iter().map(|(s, _)| s.value.as_str()).collect();
    assert_eq!(
        ran,
        [
            "Look up the price",
            "Look up the price elsewhere",
            "Look up the price elsewhere",
            "Answer"
        ]
    );
}

#[tokio::test]
async fn an_unrecoverable_failure_at_the_cap_is_a_run_error_with_every_plan() {
    let planner_model = Arc::new(ScriptedModel::new([
        "1. Look up the price on the primary site\n2. Answer",
    ]));
    let replanner_model = Arc::new(ScriptedModel::from_fn(|_| {
        "Plan:\n1. Try the primary site again\n2. Answer".into()
    }));
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(planner_model)),
        coffee_executor(),
    )
    .with_replanner(
        Arc::new(LlmReplanner::new(replanner_model.clone())),
        ReplanPolicy::OnFailure,
    )
    .with_max_replans(1);
    let err = agent.run(OBJECTIVE).await.unwrap_err();
    match &err {
        RunError::Step { step, partial, .. } => {
            assert_eq!(step.value, "Try the primary site again");
            assert_eq!(partial.plans.len(), 2);
            assert_eq!(partial.steps.len(), 1);
        }
        other => panic!("expected a step error, got {other:?}"),
    }
    assert_eq!(replanner_model.calls(), 1);
}

#[tokio::test]
async fn after_every_step_the_structured_replanner_can_finish_early() {
    let planner_model = Arc::new(ScriptedModel::new([
        "Plan:\n1. Look up the price on the backup site\n2. Double-check it\n3. Answer",
    ]));
    let replanner_model = Arc::new(
        ScriptedModel::new([
            r#"{"action": "finish", "answer": "A coffee costs 3 euros.", "steps": []}"#,
        ])
        .with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    );
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(planner_model)),
        coffee_executor(),
    )
    .with_replanner(
        Arc::new(LlmReplanner::new(replanner_model.clone())),
        ReplanPolicy::AfterEveryStep,
    );
    let result = agent.run(OBJECTIVE).await.unwrap();
    assert_eq!(result.outcome, RunOutcome::AnsweredByReplanner);
    assert_eq!(result.output, "A coffee costs 3 euros.");
    assert_eq!(result.steps.len(), 1);
    assert_eq!(result.plans.len(), 1);
    let situation = &replanner_model.requests()[0].messages[1].content;
    assert!(situation.contains("1. Look up the price on the backup site\n   Result: 3 euros\n"));
    assert!(
        situation.ends_with(
            "Why you are asked: step 1 (Look up the price on the backup site) completed."
        )
    );
}

#[tokio::test]
async fn an_empty_list_of_steps_ends_the_run_with_the_last_result() {
    let planner_model = Arc::new(ScriptedModel::new([
        "Plan:\n1. Look up the price on the backup site\n2. Double-check it\n3. Answer",
    ]));
    let replanner_model = Arc::new(
        ScriptedModel::new([r#"{"action": "continue", "answer": "", "steps": []}"#])
            .with_capabilities(Capabilities {
                json_schema: true,
                ..Capabilities::default()
            }),
    );
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(planner_model)),
        coffee_executor(),
    )
    .with_replanner(
        Arc::new(LlmReplanner::new(replanner_model.clone())),
        ReplanPolicy::AfterEveryStep,
    );
    let result = agent.run(OBJECTIVE).await.unwrap();
    assert_eq!(result.output, "3 euros");
    assert_eq!(result.steps.len(), 1);
    assert_eq!(replanner_model.calls(), 1);
}

#[tokio::test]
async fn an_empty_list_after_a_failed_step_is_sent_back() {
    let model = Arc::new(
        ScriptedModel::new([
            r#"{"steps": []}"#,
            r#"{"action": {"steps": ["Look up the price on the backup site", "Answer"]}}"#,
        ])
        .with_capabilities(Capabilities {
            json_schema: true,
            ..Capabilities::default()
        }),
    );
    let decision = LlmReplanner::new(model.clone())
        .replan(&situation_after_failure())
        .await
        .unwrap();
    assert_eq!(
        decision,
        ReplanDecision::Continue {
            steps: vec![
                Step::new("Look up the price on the backup site"),
                Step::new("Answer"),
            ]
        }
    );
    let second = &model.requests()[1];
    assert_eq!(second.messages[2], Message::assistant(r#"{"steps": []}"#));
    assert!(
        second.messages[3].content.starts_with(
            "Your reply could not be used: the last step failed, so the work is not done"
        ),
        "{}",
        second.messages[3].content
    );
}
