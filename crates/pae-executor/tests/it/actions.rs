//! `ActionExecutor`: planned tool calls run without the model when their
//! input is given, the model writes only arguments left open, the answer
//! step is one solver call that sees the objective and every result, and
//! a stopped step's leftovers never become the answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use pae_core::test_util::ScriptedModel;
use pae_core::{
    Executor, Plan, PlanAndExecute, Planner, RunOutcome, Step, StepAction, StepInput, StepResponse,
    StepStatus, Tool,
};
use pae_executor::tools::{Calculator, FileReader};
use pae_executor::{
    ActionExecutor, SOLVER_JSON_SYSTEM_PROMPT, SOLVER_SYSTEM_PROMPT, load_agent_executor,
};
use serde_json::json;

fn executor(model: &Arc<ScriptedModel>, tools: Vec<Arc<dyn Tool>>) -> ActionExecutor {
    let agent = load_agent_executor(model.clone(), tools.clone(), false).unwrap();
    ActionExecutor::new(model.clone(), tools, Arc::new(agent))
}

fn calculator() -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(Calculator::new())]
}

fn tool_step(id: &str, text: &str, tool: &str, input: serde_json::Value) -> Step {
    Step::new(text).with_id(id).with_action(StepAction::Tool {
        tool: tool.into(),
        input,
    })
}

#[tokio::test]
async fn given_tool_calls_run_without_a_model_call() {
    let model = Arc::new(ScriptedModel::new(Vec::<String>::new()));
    let executor = executor(&model, calculator());
    let step = tool_step(
        "E1",
        "Multiply",
        "calculator",
        json!({"expression": "17*23"}),
    );
    let response = executor.step(&StepInput::new("q", step)).await.unwrap();
    assert_eq!(response.response, "391");
    assert_eq!(response.status, StepStatus::Completed);
    assert_eq!(response.tool_calls.len(), 1);
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn earlier_results_fill_references_in_order() {
    // "Subtract 24 from the result of step 1" stays #E1 - 24.
    let model = Arc::new(ScriptedModel::new(Vec::<String>::new()));
    let executor = executor(&model, calculator());
    let step = tool_step(
        "E2",
        "Subtract 24",
        "calculator",
        json!({"expression": "#E1 - 24"}),
    );
    let input = StepInput::new("32 squared minus 24?", step).with_previous_steps(vec![(
        Step::new("Square 32").with_id("E1"),
        StepResponse::new("1024"),
    )]);
    let response = executor.step(&input).await.unwrap();
    assert_eq!(response.response, "1000");
    assert_eq!(
        response.tool_calls[0].input,
        json!({"expression": "1024 - 24"})
    );
}

#[tokio::test]
async fn symbolic_input_is_rewritten_by_the_model_with_the_error_shown() {
    let model = Arc::new(ScriptedModel::new([r#"{"expression": "12.5 * 8"}"#]));
    let executor = executor(&model, calculator());
    let step = tool_step(
        "E1",
        "Area of the garden",
        "calculator",
        json!({"expression": "width × length"}),
    );
    let response = executor
        .step(&StepInput::new(
            "A garden is 12.5 m long and 8 m wide. Its area?",
            step,
        ))
        .await
        .unwrap();
    assert_eq!(response.response, "100");
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let message = &requests[0].messages[1].content;
    assert!(message.contains("12.5 m long"), "{message}");
    assert!(message.contains("width × length"), "{message}");
    assert_eq!(response.tool_calls.len(), 2);
    assert!(response.tool_calls[0].is_error);
}

#[tokio::test]
async fn references_the_model_writes_are_filled_in_too() {
    // The planned input is refused; the model rewrites it and, shown the
    // results by id, writes `#E1` itself.
    let model = Arc::new(ScriptedModel::new([
        r#"{"expression": "2026-12-31 - #E1"}"#,
    ]));
    let executor = executor(&model, calculator());
    let step = tool_step(
        "E2",
        "Days left in this year",
        "calculator",
        json!({"expression": "365 - #E1"}),
    );
    let input =
        StepInput::new("How many days are left this year?", step).with_previous_steps(vec![(
            Step::new("Today").with_id("E1"),
            StepResponse::new("2026-03-14"),
        )]);
    let response = executor.step(&input).await.unwrap();
    assert_eq!(response.status, StepStatus::Completed);
    assert_eq!(response.response, "292");
    assert_eq!(
        response.tool_calls[1].input,
        json!({"expression": "2026-12-31 - 2026-03-14"})
    );
}

#[tokio::test]
async fn a_file_read_earlier_is_given_to_the_model_to_write_the_expression() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prices.txt"), "tea 3.5\ncake 4.25\n").unwrap();
    let tools: Vec<Arc<dyn Tool>> = vec![
        Arc::new(Calculator::new()),
        Arc::new(FileReader::new(dir.path()).unwrap()),
    ];
    let model = Arc::new(ScriptedModel::new([r#"{"expression": "3.5 + 4.25"}"#]));
    let executor = executor(&model, tools);
    let read = tool_step(
        "E1",
        "Read the prices",
        "read_file",
        json!({"path": "prices.txt"}),
    );
    let first = executor
        .step(&StepInput::new("Total?", read.clone()))
        .await
        .unwrap();
    assert_eq!(first.response, "tea 3.5\ncake 4.25\n");
    let add = tool_step(
        "E2",
        "Add them",
        "calculator",
        json!({"expression": "sum of #E1"}),
    );
    let input = StepInput::new("Total?", add).with_previous_steps(vec![(read, first)]);
    let response = executor.step(&input).await.unwrap();
    assert_eq!(response.response, "7.75");
    assert!(
        model.requests()[0].messages[1]
            .content
            .contains("cake 4.25")
    );
}

#[tokio::test]
async fn a_value_the_tool_refused_cannot_be_written_again_under_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sales.csv"),
        "month,units,price\nMarch,140,14.00\n",
    )
    .unwrap();
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(FileReader::new(dir.path()).unwrap())];
    let model = schema_model(&[r#"{"path": "sales.csv", "column": "units"}"#]);
    let executor = executor(&model, tools);
    let read = tool_step(
        "E1",
        "Read the revenue",
        "read_file",
        json!({"path": "sales.csv", "column": "revenue"}),
    );
    let response = executor
        .step(&StepInput::new("Revenue?", read))
        .await
        .unwrap();
    assert_eq!(response.response, "140");
    assert_eq!(response.tool_calls.len(), 2);
    let request = &model.requests()[0];
    let Some(pae_core::ResponseFormat::JsonSchema { schema, .. }) = &request.response_format else {
        panic!("no schema: {:?}", request.response_format);
    };
    // The column is one of the file's; the other arguments stay free.
    assert_eq!(
        schema["properties"]["column"]["enum"],
        json!(["month", "units", "price"])
    );
    assert!(schema["properties"]["column"].get("maxLength").is_none());
    assert!(schema["properties"]["path"].get("enum").is_none());
    assert_eq!(schema["properties"]["path"]["type"], "string");
}

#[tokio::test]
async fn a_tool_step_that_keeps_failing_stops_with_the_error() {
    let model = Arc::new(ScriptedModel::new([
        r#"{"expression": "x + 1"}"#,
        r#"{"expression": "y + 1"}"#,
    ]));
    let executor = executor(&model, calculator());
    let step = tool_step("E1", "Add", "calculator", json!({"expression": "a + 1"}));
    let response = executor.step(&StepInput::new("q", step)).await.unwrap();
    assert!(matches!(response.status, StepStatus::Stopped { .. }));
    assert!(
        response
            .response
            .starts_with("No result: the calculator call failed")
    );
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn the_answer_step_sees_the_objective_and_every_result() {
    let model = Arc::new(ScriptedModel::new(["The total is 757."]));
    let executor = executor(&model, calculator());
    let answer = Step::new("Answer").with_action(StepAction::Answer);
    let input = StepInput::new("What is 17*23 plus 366?", answer).with_previous_steps(vec![
        (
            Step::new("Multiply").with_id("E1"),
            StepResponse::new("391"),
        ),
        (
            Step::new("Add").with_id("E2"),
            StepResponse::new("757").with_status(StepStatus::Stopped {
                reason: "iteration limit".into(),
            }),
        ),
    ]);
    let response = executor.step(&input).await.unwrap();
    assert_eq!(response.response, "The total is 757.");
    let request = &model.requests()[0];
    assert_eq!(request.messages[0].content, SOLVER_SYSTEM_PROMPT);
    let message = &request.messages[1].content;
    assert!(
        message.starts_with("Request: What is 17*23 plus 366?"),
        "{message}"
    );
    assert!(message.contains("#E1: Multiply\nResult: 391"), "{message}");
    assert!(
        message.contains("Result (not finished: iteration limit): 757"),
        "{message}"
    );
}

fn answer_input() -> StepInput {
    let answer = Step::new("Answer").with_action(StepAction::Answer);
    StepInput::new("How many hours are in 3 weeks?", answer).with_previous_steps(vec![(
        Step::new("Multiply").with_id("E1"),
        StepResponse::new("504"),
    )])
}

fn schema_model(replies: &[&str]) -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::new(replies.iter().copied()).with_capabilities(pae_core::Capabilities {
            json_schema: true,
            ..pae_core::Capabilities::default()
        }),
    )
}

#[tokio::test]
async fn on_a_schema_model_the_answer_is_the_final_answer_alone() {
    let model = schema_model(&[
        r#"{"calculation": "3 weeks are 3 * 7 * 24 = 504 hours.", "final_answer": "504 hours"}"#,
    ]);
    let executor = executor(&model, calculator());
    let response = executor.step(&answer_input()).await.unwrap();
    assert_eq!(response.response, "504 hours");
    // The working is kept with the step.
    assert_eq!(
        response
            .data
            .as_ref()
            .and_then(|d| d["calculation"].as_str()),
        Some("3 weeks are 3 * 7 * 24 = 504 hours.")
    );
    let request = &model.requests()[0];
    assert_eq!(request.messages[0].content, SOLVER_JSON_SYSTEM_PROMPT);
    let Some(pae_core::ResponseFormat::JsonSchema { schema, .. }) = &request.response_format else {
        panic!(
            "the solver asked for no schema: {:?}",
            request.response_format
        );
    };
    assert_eq!(
        schema["required"],
        json!(["calculation", "final_answer"]),
        "{schema}"
    );
}

#[tokio::test]
async fn a_solver_reply_that_ignores_the_schema_is_the_answer_as_written() {
    // A server that does not enforce the schema after all: the text stands.
    let model = schema_model(&["There are 504 hours in 3 weeks."]);
    let response = executor(&model, calculator())
        .step(&answer_input())
        .await
        .unwrap();
    assert_eq!(response.response, "There are 504 hours in 3 weeks.");
    // A JSON reply without a final answer is not taken apart either.
    let model = schema_model(&[r#"{"calculation": "504 hours", "final_answer": ""}"#]);
    let response = executor(&model, calculator())
        .step(&answer_input())
        .await
        .unwrap();
    assert_eq!(
        response.response,
        r#"{"calculation": "504 hours", "final_answer": ""}"#
    );
    // A number as the final answer.
    let model = schema_model(&[r#"{"calculation": " ", "final_answer": 504}"#]);
    let response = executor(&model, calculator())
        .step(&answer_input())
        .await
        .unwrap();
    assert_eq!(response.response, "504");
}

struct Fixed(Plan);

#[async_trait::async_trait]
impl Planner for Fixed {
    async fn plan(&self, _request: &pae_core::PlanRequest) -> Result<Plan, pae_core::PlanError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_whole_run_answers_from_the_solver_not_from_a_stopped_step() {
    // Step 1 has no action: the agent loop runs it and keeps calling the
    // calculator until its iteration limit; its leftovers go to the solver.
    let model = Arc::new(ScriptedModel::new([
        "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"17*23\"}}\n```",
        "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"17*23\"}}\n```",
        "17*23 is 391.",
    ]));
    let tools = calculator();
    let agent = pae_executor::AgentExecutor::builder(model.clone())
        .with_tools(tools.clone())
        .with_max_iterations(2)
        .with_last_result_on_stop(true)
        .build()
        .unwrap();
    let executor = ActionExecutor::new(model.clone(), tools, Arc::new(agent));
    let plan = Plan::new([
        Step::new("Multiply 17 by 23"),
        Step::new("Answer").with_action(StepAction::Answer),
    ]);
    let result = PlanAndExecute::new(Fixed(plan), executor)
        .run("What is 17*23?")
        .await
        .unwrap();
    assert_eq!(result.output, "17*23 is 391.");
    assert!(matches!(
        result.steps[0].1.status,
        StepStatus::Stopped { .. }
    ));
    // The answer came from the solver; the run still says a step stopped.
    assert_eq!(result.outcome, RunOutcome::Completed);
    assert_eq!(result.answer_problems().len(), 1);
}
