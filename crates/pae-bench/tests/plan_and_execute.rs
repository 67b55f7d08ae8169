//! End to end: PlanAndExecute with `load_chat_planner` and
//! `load_agent_executor` with the calculator, over one scripted model.
//!
//! It lives here because pae-executor must not depend on pae-planner, not
//! even for tests.

use std::sync::{Arc, Mutex};

use pae_core::test_util::ScriptedModel;
use pae_core::{EventKind, PlanAndExecute, Role, StepStatus, TokenUsage, Tool, ToolInvocation};
use pae_executor::load_agent_executor;
use pae_executor::tools::Calculator;
use pae_planner::load_chat_planner;
use serde_json::json;

const OBJECTIVE: &str = "A box holds 12 eggs. How many eggs are in 7 boxes?";

fn action(tool: &str, input: serde_json::Value) -> String {
    format!(
        "Thought: I will act.\nAction:\n```json\n{}\n```",
        json!({"action": tool, "action_input": input})
    )
}

#[tokio::test]
async fn plan_and_execute_with_chat_planner_agent_executor_and_calculator() {
    let model = Arc::new(
        ScriptedModel::new([
            // The planner: three steps, cut at <END_OF_PLAN>.
            "Plan:\n1. Note how many eggs a box holds.\n2. Multiply 12 by 7 with the calculator.\n\
3. Given the above steps taken, respond to the user's original question.\n<END_OF_PLAN>\nignored"
                .to_string(),
            // Step 1 answers at once.
            action("Final Answer", json!("A box holds 12 eggs.")),
            // Step 2 calls the calculator, then answers.
            action("calculator", json!({"expression": "12 * 7"})),
            action("Final Answer", json!("12 * 7 = 84")),
            // Step 3 answers the question.
            action("Final Answer", json!("There are 84 eggs in 7 boxes.")),
        ])
        .with_usage(TokenUsage::new(10, 2)),
    );
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Calculator::new())];
    let executor = load_agent_executor(model.clone(), tools, true).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(model.clone())),
        Arc::new(executor),
    )
    .with_callback(move |event| seen.lock().unwrap().push(event.kind.clone()));

    let result = agent.run(OBJECTIVE).await.unwrap();

    // The final answer is the last step's response.
    assert_eq!(result.output, "There are 84 eggs in 7 boxes.");
    assert_eq!(model.calls(), 5);
    assert_eq!(model.remaining(), 0);
    assert_eq!(result.usage, TokenUsage::new(50, 10));

    // The plan.
    let plan: Vec<&str> = result.plans[0].iter().map(|s| s.value.as_str()).collect();
    assert_eq!(
        plan,
        [
            "Note how many eggs a box holds.",
            "Multiply 12 by 7 with the calculator.",
            "Given the above steps taken, respond to the user's original question."
        ]
    );

    // The steps and their intermediate steps: one tool call, in step 2.
    let responses: Vec<&str> = result
        .steps
        .iter()
        .map(|(_, r)| r.response.as_str())
        .collect();
    assert_eq!(
        responses,
        [
            "A box holds 12 eggs.",
            "12 * 7 = 84",
            "There are 84 eggs in 7 boxes."
        ]
    );
    assert!(
        result
            .steps
            .iter()
            .all(|(_, r)| r.status == StepStatus::Completed)
    );
    assert!(result.steps[0].1.tool_calls.is_empty());
    assert!(result.steps[2].1.tool_calls.is_empty());
    let calls = &result.steps[1].1.tool_calls;
    assert_eq!(calls.len(), 1);
    let ToolInvocation {
        tool,
        input,
        observation,
        log,
        is_error,
        duration_ms,
    } = &calls[0];
    assert_eq!(tool, "calculator");
    assert_eq!(input, &json!({"expression": "12 * 7"}));
    assert_eq!(observation, "84");
    assert!(log.contains("\"action\":\"calculator\""));
    assert!(!is_error);
    assert!(duration_ms.is_some());
    assert_eq!(result.steps[1].1.usage, TokenUsage::new(20, 4));

    // What the model was sent.
    let requests = model.requests();
    assert_eq!(requests[0].stop, ["<END_OF_PLAN>"]);
    assert_eq!(requests[0].messages[1].content, OBJECTIVE);
    for request in &requests[1..] {
        assert_eq!(request.stop, ["Observation:"]);
        assert_eq!(request.messages[0].role, Role::System);
        assert!(request.messages[0].content.contains("- calculator: "));
    }
    assert_eq!(
        requests[1].messages[1].content,
        format!(
            "Overall objective: {OBJECTIVE}\n\nPrevious steps:\n(none yet)\n\nCurrent step: Note how many eggs a box holds."
        )
    );
    assert!(
        requests[3].messages[1]
            .content
            .ends_with("```\nObservation: 84")
    );
    assert!(requests[4].messages[1].content.contains(
        "Previous steps:\nStep 1: Note how many eggs a box holds.\nResponse: A box holds 12 eggs.\n\n\
Step 2: Multiply 12 by 7 with the calculator.\nResponse: 12 * 7 = 84\n\n\
Current step: Given the above steps taken, respond to the user's original question."
    ));
    // The scratchpad of step 2 does not leak into step 3.
    assert!(!requests[4].messages[1].content.contains("Observation:"));

    // The tool call was visible live.
    let events = events.lock().unwrap();
    let tool_events: Vec<&EventKind> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::ToolStarted { .. } | EventKind::ToolFinished { .. }
            )
        })
        .collect();
    assert_eq!(tool_events.len(), 2);
    assert!(matches!(
        tool_events[1],
        EventKind::ToolFinished { step_index: Some(1), observation, is_error: false, .. } if observation == "84"
    ));
}
