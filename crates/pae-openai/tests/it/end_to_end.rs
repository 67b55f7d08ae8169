//! End to end over a real OpenAI-compatible server (llama-cpp-python with
//! the default local model): `PlanAndExecute` with `load_chat_planner`,
//! `load_agent_executor` and the calculator finishes an objective with a
//! parsed plan. The small model's arithmetic is not asserted.
//!
//! Needs `PAE_OPENAI_TEST_BASE_URL` and `PAE_OPENAI_TEST_MODEL`; skipped
//! with a reason when unset, failing when `PAE_REQUIRE_SERVERS=1`.

use std::sync::Arc;
use std::time::Duration;

use pae_conformance::env::{require_env, server_turn};
use pae_core::{
    Capabilities, ChatModel, ChatModelExt, PlanAndExecute, RetryPolicy, Sampling, StepStatus, Tool,
};
use pae_executor::load_agent_executor;
use pae_executor::tools::Calculator;
use pae_openai::{OpenAiChat, SchemaMode};
use pae_planner::load_chat_planner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_execute_finishes_an_objective_over_llama_cpp_python() {
    let (Some(base_url), Some(name)) = (
        require_env("PAE_OPENAI_TEST_BASE_URL"),
        require_env("PAE_OPENAI_TEST_MODEL"),
    ) else {
        return;
    };
    let _turn = server_turn().await;
    let chat = OpenAiChat::new(name)
        .with_base_url(base_url)
        .with_schema_mode(SchemaMode::JsonObjectWithSchema)
        .with_capabilities(Capabilities {
            native_tools: false,
            json_schema: true,
            streaming: true,
        })
        .with_timeout(Duration::from_secs(600))
        .with_retry(RetryPolicy::new().with_max_attempts(2));
    // Greedy, seeded and bounded, so the run is the same every time and a
    // reply that rambles cannot overflow the server's context window.
    let model: Arc<dyn ChatModel> = Arc::new(chat.with_sampling_defaults(Sampling {
        temperature: Some(0.0),
        seed: Some(42),
        max_tokens: Some(512),
        top_p: None,
    }));
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Calculator::new())];
    let executor = load_agent_executor(Arc::clone(&model), tools, true)
        .expect("the executor accepts the calculator");
    let agent = PlanAndExecute::new(
        Arc::new(load_chat_planner(Arc::clone(&model))),
        Arc::new(executor),
    );

    let result = agent
        .run("A box holds 12 eggs. How many eggs are in 7 boxes?")
        .await
        .expect("the run finishes");

    eprintln!("plan:\n{}", result.plans[0]);
    for (step, response) in &result.steps {
        eprintln!(
            "step {:?} -> {:?} ({} tool calls)",
            step.value,
            response.response,
            response.tool_calls.len()
        );
    }
    eprintln!(
        "output: {:?}; usage: {:?}; elapsed: {:?}",
        result.output, result.usage, result.elapsed
    );
    let plan = &result.plans[0];
    assert!(!plan.is_empty(), "a parsed plan with steps");
    assert!(plan.iter().all(|step| !step.value.trim().is_empty()));
    assert_eq!(result.steps.len(), plan.len(), "every step ran");
    assert!(
        result
            .steps
            .iter()
            .all(|(_, response)| !matches!(response.status, StepStatus::Failed { .. })),
        "no step failed"
    );
    assert!(!result.output.trim().is_empty());
    assert!(result.usage.prompt_tokens > 0 && result.usage.completion_tokens > 0);
}
