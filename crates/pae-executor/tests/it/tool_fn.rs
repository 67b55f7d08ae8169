//! Tools made with `tool_fn`: the derived schema the model sees, typed
//! arguments, bad input explained to the model, the flags, and the call's
//! context.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pae_core::test_util::ScriptedModel;
use pae_core::{Executor, StepInput, Tool, ToolContext, ToolError};
use pae_executor::AgentExecutor;
use pae_executor::tools::{tool_fn, tool_fn_with_context};
use serde_json::{Value, json};

/// What to convert.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Convert {
    /// Degrees Celsius.
    celsius: f64,
    /// Digits after the point (default 1).
    #[serde(default)]
    digits: Option<usize>,
}

fn converter() -> pae_executor::tools::FnTool {
    tool_fn(
        "to_fahrenheit",
        "Converts degrees Celsius to Fahrenheit.",
        |args: Convert| async move {
            let f = args.celsius * 9.0 / 5.0 + 32.0;
            Ok(format!("{f:.*}", args.digits.unwrap_or(1)))
        },
    )
}

fn action(tool: &str, input: Value) -> String {
    format!(
        "Thought: I will use {tool}.\nAction:\n```json\n{}\n```",
        json!({"action": tool, "action_input": input})
    )
}

#[test]
fn tool_fn_derives_the_schema_and_spec() {
    let tool = converter();
    assert_eq!(tool.name(), "to_fahrenheit");
    assert_eq!(
        tool.description(),
        "Converts degrees Celsius to Fahrenheit."
    );
    let schema = tool.parameters();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["description"], "What to convert.");
    assert_eq!(schema["properties"]["celsius"]["type"], "number");
    assert_eq!(
        schema["properties"]["celsius"]["description"],
        "Degrees Celsius."
    );
    assert_eq!(schema["required"], json!(["celsius"]));
    let spec = tool.spec();
    assert_eq!(spec.name, "to_fahrenheit");
    assert_eq!(spec.parameters, schema);
    // Not read-only or idempotent unless said so.
    assert!(!tool.is_read_only() && !tool.is_idempotent());
    let flagged = converter().with_read_only(true).with_idempotent(true);
    assert!(flagged.is_read_only() && flagged.is_idempotent());
}

#[tokio::test]
async fn tool_fn_runs_with_typed_arguments() {
    let tool = converter();
    assert_eq!(tool.call(json!({"celsius": 100})).await.unwrap(), "212.0");
    assert_eq!(
        tool.call(json!({"celsius": 37, "digits": 2}))
            .await
            .unwrap(),
        "98.60"
    );
    let wrong = tool.call(json!({"celsius": "hot"})).await;
    let Err(ToolError::InvalidInput { message }) = wrong else {
        panic!("expected invalid input, got {wrong:?}");
    };
    assert!(message.contains("invalid type"), "{message}");
    let missing = tool.call(json!({})).await;
    assert!(
        matches!(&missing, Err(ToolError::InvalidInput { message }) if message.contains("celsius")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn tool_fn_errors_reach_the_caller() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Empty {}
    let tool = tool_fn("down", "Always fails.", |_: Empty| async move {
        Err::<String, _>(ToolError::failed("the service is down"))
    });
    assert_eq!(
        tool.call(json!({})).await,
        Err(ToolError::failed("the service is down"))
    );
}

#[tokio::test]
async fn tool_fn_with_context_sees_the_call() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Ping {
        n: u32,
    }
    let tool = tool_fn_with_context(
        "ping",
        "Echoes n.",
        |args: Ping, context: ToolContext| async move {
            Ok(format!("{} {}", args.n, context.idempotency_key()))
        },
    );
    let context = ToolContext::new();
    let out = tool
        .call_with_context(json!({"n": 3}), &context)
        .await
        .unwrap();
    assert_eq!(out, format!("3 {}", context.idempotency_key()));
}

#[tokio::test]
async fn agent_calls_a_tool_fn_and_feeds_bad_arguments_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let tool = tool_fn(
        "to_fahrenheit",
        "Converts degrees Celsius to Fahrenheit.",
        move |args: Convert| {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(args.celsius * 9.0 / 5.0 + 32.0)
            }
        },
    );
    let model = Arc::new(ScriptedModel::new([
        // Wrong type: the schema check explains it, the tool is not run.
        action("to_fahrenheit", json!({"celsius": "twenty"})),
        action("to_fahrenheit", json!({"celsius": 20})),
        "Thought: done.\nAction:\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"68 F\"}\n```"
            .to_owned(),
    ]));
    let executor = AgentExecutor::builder(model.clone())
        .with_tool(Arc::new(tool))
        .build()
        .unwrap();
    let response = executor
        .step(&StepInput::new("Weather", "Convert 20 C to F"))
        .await
        .unwrap();
    assert_eq!(response.response, "68 F");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[1].observation, "68");
    // The first request described the tool with its derived schema.
    let system = &model.requests()[0].messages[0].content;
    assert!(system.contains("to_fahrenheit"), "{system}");
    assert!(system.contains("Degrees Celsius."), "{system}");
}
