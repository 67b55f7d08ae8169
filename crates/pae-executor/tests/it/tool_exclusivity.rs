//! Concurrent steps never call a tool concurrently with itself unless the
//! tool is read-only and idempotent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{Executor, StepInput, Tool, ToolError};
use pae_executor::load_agent_executor;
use serde_json::{Value, json};

/// Counts how many calls run at once.
struct Counter {
    name: &'static str,
    safe: bool,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Counter {
    fn new(name: &'static str, safe: bool) -> Self {
        Self {
            name,
            safe,
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Tool for Counter {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        "Counts."
    }

    async fn call(&self, _input: Value) -> Result<String, ToolError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok("counted".into())
    }

    fn is_read_only(&self) -> bool {
        self.safe
    }

    fn is_idempotent(&self) -> bool {
        self.safe
    }
}

/// A model that calls `tool` once, then answers.
fn model(tool: &'static str) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::from_fn(move |request| {
        let seen_observation = request
            .messages
            .iter()
            .any(|m| m.content.contains("counted"));
        let action = if seen_observation {
            json!({"action": "Final Answer", "action_input": "done"})
        } else {
            json!({"action": tool, "action_input": {}})
        };
        ScriptedReply::from(format!("Action:\n```json\n{action}\n```"))
    }))
}

async fn run_four_steps_at_once(tool: Arc<Counter>) -> Duration {
    let name = tool.name;
    let executor = load_agent_executor(model(name), vec![tool as Arc<dyn Tool>], false).unwrap();
    let started = tokio::time::Instant::now();
    let steps = (0..4).map(|i| {
        let executor = &executor;
        async move {
            let input = StepInput::new("objective", format!("step {i}"));
            executor.step(&input).await.unwrap()
        }
    });
    let responses = futures::future::join_all(steps).await;
    assert!(
        responses
            .iter()
            .all(|r| r.response == "done" && r.tool_calls.len() == 1)
    );
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_tool_with_side_effects_is_never_called_concurrently_with_itself() {
    let tool = Arc::new(Counter::new("writer", false));
    let elapsed = run_four_steps_at_once(tool.clone()).await;
    assert_eq!(tool.max_running.load(Ordering::SeqCst), 1);
    assert_eq!(
        elapsed,
        Duration::from_millis(400),
        "the four calls took turns"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_only_idempotent_tool_runs_concurrently() {
    let tool = Arc::new(Counter::new("reader", true));
    let elapsed = run_four_steps_at_once(tool.clone()).await;
    assert_eq!(tool.max_running.load(Ordering::SeqCst), 4);
    assert_eq!(elapsed, Duration::from_millis(100));
}
