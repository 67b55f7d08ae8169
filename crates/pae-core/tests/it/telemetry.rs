//! The spans, log events and run events of a scripted three-step run with
//! one tool call, one retry and one near-JSON repair, caught by an
//! in-memory `tracing` subscriber: the exact span tree with its
//! attributes, and the exact event sequence.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is the test failing"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use expect_test::expect;
use pae_core::output::{QuotePolicy, parse_json_prefix};
use pae_core::test_util::ScriptedModel;
use pae_core::{
    ChatModel, ChatModelExt, ChatRequest, EventKind, ExecError, Executor, Message, Plan,
    PlanAndExecute, PlanError, PlanRequest, Planner, ProviderError, RetryPolicy, StepInput,
    StepResponse, TokenUsage, Tool, ToolCall, ToolError,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span as the test saw it.
#[derive(Debug, Default, Clone)]
struct SpanNode {
    name: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
    /// Log events inside the span, in order.
    logs: Vec<String>,
}

/// Spans and log events, kept in memory.
#[derive(Debug, Default, Clone)]
struct Recorded {
    /// Spans in the order they were opened.
    spans: Arc<Mutex<Vec<(u64, SpanNode)>>>,
    /// Log events outside any span.
    loose: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorded {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut node = SpanNode {
            name: attrs.metadata().name().to_owned(),
            parent: ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64()),
            ..SpanNode::default()
        };
        attrs.record(&mut Fields(&mut node.fields));
        self.spans.lock().unwrap().push((id.into_u64(), node));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, node)) = spans.iter_mut().find(|(i, _)| *i == id.into_u64()) {
            values.record(&mut Fields(&mut node.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let mut line = format!("{} {message}", event.metadata().level());
        for (k, v) in fields {
            let _ = write!(line, " {k}={v}");
        }
        match ctx.event_span(event) {
            Some(span) => {
                let id = span.id().into_u64();
                let mut spans = self.spans.lock().unwrap();
                if let Some((_, node)) = spans.iter_mut().find(|(i, _)| *i == id) {
                    node.logs.push(line);
                }
            }
            None => self.loose.lock().unwrap().push(line),
        }
    }
}

impl Recorded {
    /// The span tree, children in the order they were opened, each span
    /// with its attributes sorted by name and the log events inside it.
    fn tree(&self) -> String {
        let spans = self.spans.lock().unwrap().clone();
        let mut out = String::new();
        fn walk(out: &mut String, spans: &[(u64, SpanNode)], parent: Option<u64>, depth: usize) {
            for (id, node) in spans.iter().filter(|(_, n)| n.parent == parent) {
                let pad = "  ".repeat(depth);
                let _ = writeln!(out, "{pad}{}", node.name);
                for (k, v) in &node.fields {
                    let _ = writeln!(out, "{pad}  · {k} = {v}");
                }
                for log in &node.logs {
                    let _ = writeln!(out, "{pad}  ! {log}");
                }
                walk(out, spans, Some(*id), depth + 1);
            }
        }
        walk(&mut out, &spans, None, 0);
        for log in self.loose.lock().unwrap().iter() {
            let _ = writeln!(out, "! {log}");
        }
        out
    }
}

/// Plans by asking the model for a numbered list.
struct ListPlanner(Arc<dyn ChatModel>);

#[async_trait]
impl Planner for ListPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        let reply = request
            .context
            .chat(
                self.0.as_ref(),
                ChatRequest::new(vec![Message::user(&request.objective)]),
            )
            .await?;
        Ok(reply
            .content()
            .lines()
            .filter_map(|l| l.split_once(". ").map(|(_, s)| pae_core::Step::new(s)))
            .collect())
    }
}

/// Asks the model; runs the tool calls it asks for, then asks again; reads
/// an answer written as (near-)JSON `{"answer": ...}`.
struct ToolStepper {
    model: Arc<dyn ChatModel>,
    tool: Arc<dyn Tool>,
}

#[async_trait]
impl Executor for ToolStepper {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        let context = input.context.in_step(input.index);
        let mut messages = vec![Message::user(&input.current_step.value)];
        loop {
            let reply = context
                .chat(self.model.as_ref(), ChatRequest::new(messages.clone()))
                .await?;
            if reply.message.tool_calls.is_empty() {
                let answer = parse_json_prefix(reply.content(), QuotePolicy::Uniform)
                    .ok()
                    .and_then(|v| v["answer"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| reply.content().to_owned());
                return Ok(StepResponse::new(answer).with_usage(reply.usage.unwrap_or_default()));
            }
            messages.push(reply.message.clone());
            for call in &reply.message.tool_calls {
                let observation = context
                    .call_tool(self.tool.as_ref(), call.arguments.clone())
                    .await
                    .unwrap_or_else(|e| e.to_string());
                messages.push(Message::tool(&call.id, &call.name, observation));
            }
        }
    }
}

/// Adds two numbers.
struct Add;

#[async_trait]
impl Tool for Add {
    fn name(&self) -> &str {
        "add"
    }

    fn description(&self) -> &str {
        "adds a and b"
    }

    async fn call(&self, input: serde_json::Value) -> Result<String, ToolError> {
        let a = input["a"].as_f64().unwrap_or_default();
        let b = input["b"].as_f64().unwrap_or_default();
        Ok(format!("{}", a + b))
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_yields_the_expected_span_tree_and_event_sequence() {
    let model = ScriptedModel::new(vec![
        pae_core::test_util::ScriptedReply::from("1. Look up a\n2. Add a and b\n3. Answer"),
        // Step 1: near-JSON, repaired by the parser.
        "{answer: 'a is 2',}".into(),
        // Step 2: one tool call, then the answer.
        pae_core::test_util::ScriptedReply::ToolCalls(vec![ToolCall::new(
            "call_1",
            "add",
            serde_json::json!({"a": 2, "b": 3}),
        )]),
        "{\"answer\": \"5\"}".into(),
        // Step 3: a dropped connection, retried once.
        ProviderError::Connection {
            message: "connection reset".into(),
            source: None,
        }
        .into(),
        "{\"answer\": \"the sum is 5\"}".into(),
    ])
    .with_name("scripted-model")
    .with_usage(TokenUsage::new(10, 4));
    let model: Arc<dyn ChatModel> = Arc::new(
        model.with_retry(
            RetryPolicy::new()
                .with_initial_backoff(Duration::from_millis(250))
                .with_jitter(0.0),
        ),
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let agent = {
        let events = events.clone();
        PlanAndExecute::new(
            ListPlanner(model.clone()),
            ToolStepper {
                model,
                tool: Arc::new(Add),
            },
        )
        .with_callback(move |event| events.lock().unwrap().push(event.kind.clone()))
    };

    let recorded = Recorded::default();
    let subscriber = tracing_subscriber::registry().with(recorded.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let result = agent
        .run(
            pae_core::RunRequest::new("add a and b")
                .with_run_id(pae_core::RunId::parse("run-1").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(result.output, "the sum is 5");

    expect![[r#"
        invoke_agent
          · gen_ai.conversation.id = run-1
          · gen_ai.operation.name = invoke_agent
          · gen_ai.usage.input_tokens = 50
          · gen_ai.usage.output_tokens = 20
          · pae.outcome = completed
          · pae.resumed = false
          · pae.run.id = run-1
          plan
            · pae.plan.revision = 0
            · pae.plan.steps = 3
            chat
              · gen_ai.operation.name = chat
              · gen_ai.request.model = scripted-model
              · gen_ai.response.finish_reasons = stop
              · gen_ai.usage.input_tokens = 10
              · gen_ai.usage.output_tokens = 4
              · pae.call = 0
              · pae.replayed = false
          step
            · pae.plan.revision = 0
            · pae.step.index = 0
            · pae.step.status = completed
            ! DEBUG model output repaired detail=JSON that did not parse (key must be a string at line 1 column 2) was read after repair repair=near_json
            chat
              · gen_ai.operation.name = chat
              · gen_ai.request.model = scripted-model
              · gen_ai.response.finish_reasons = stop
              · gen_ai.usage.input_tokens = 10
              · gen_ai.usage.output_tokens = 4
              · pae.call = 0
              · pae.replayed = false
          step
            · pae.plan.revision = 0
            · pae.step.index = 1
            · pae.step.status = completed
            chat
              · gen_ai.operation.name = chat
              · gen_ai.request.model = scripted-model
              · gen_ai.response.finish_reasons = tool_calls
              · gen_ai.usage.input_tokens = 10
              · gen_ai.usage.output_tokens = 4
              · pae.call = 0
              · pae.replayed = false
            execute_tool
              · gen_ai.operation.name = execute_tool
              · gen_ai.tool.call.id = run-1/0/1/1
              · gen_ai.tool.name = add
              · gen_ai.tool.type = function
              · pae.replayed = false
            chat
              · gen_ai.operation.name = chat
              · gen_ai.request.model = scripted-model
              · gen_ai.response.finish_reasons = stop
              · gen_ai.usage.input_tokens = 10
              · gen_ai.usage.output_tokens = 4
              · pae.call = 2
              · pae.replayed = false
          step
            · pae.plan.revision = 0
            · pae.step.index = 2
            · pae.step.status = completed
            chat
              · gen_ai.operation.name = chat
              · gen_ai.request.model = scripted-model
              · gen_ai.response.finish_reasons = stop
              · gen_ai.usage.input_tokens = 10
              · gen_ai.usage.output_tokens = 4
              · pae.call = 0
              · pae.replayed = false
              ! WARN model call failed; retrying attempt=1 error=connection to the provider failed: connection reset max_attempts=3 wait_ms=250.0
    "#]]
    .assert_eq(&recorded.tree());

    let events: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|kind| match kind {
            EventKind::PlanCreated { plan } => format!("plan_created {} steps", plan.len()),
            EventKind::StepStarted { step_index, .. } => format!("step_started {step_index}"),
            EventKind::ModelCalled {
                step_index,
                call,
                usage,
                finish_reason,
                request,
                prompt,
                ..
            } => format!(
                "model_called step={step_index:?} call={call} tokens={} finish={finish_reason:?} \
                 messages={} prompt={}",
                usage.total_tokens(),
                request.map_or(0, |r| r.messages),
                prompt.is_some()
            ),
            EventKind::Repaired {
                step_index, kind, ..
            } => format!("repaired step={step_index:?} {kind}"),
            EventKind::Retrying {
                step_index,
                attempt,
                wait_ms,
                ..
            } => format!("retrying step={step_index:?} attempt={attempt} wait_ms={wait_ms}"),
            EventKind::ToolStarted {
                step_index,
                call,
                tool,
                ..
            } => format!(
                "tool_started step={} call={call} {tool}",
                step_index.map_or_else(|| "none".to_owned(), |i| i.to_string())
            ),
            EventKind::ToolFinished {
                step_index,
                call,
                observation,
                ..
            } => format!(
                "tool_finished step={} call={call} {observation}",
                step_index.map_or_else(|| "none".to_owned(), |i| i.to_string())
            ),
            EventKind::StepFinished {
                step_index,
                response,
                ..
            } => format!("step_finished {step_index} {}", response.response),
            EventKind::RunFinished { output, usage } => {
                format!("run_finished {output:?} tokens={}", usage.total_tokens())
            }
            other => format!("{other:?}"),
        })
        .collect();
    expect![[r#"
        [
            "model_called step=None call=0 tokens=14 finish=Some(Stop) messages=1 prompt=false",
            "plan_created 3 steps",
            "step_started 0",
            "model_called step=Some(0) call=0 tokens=14 finish=Some(Stop) messages=1 prompt=false",
            "repaired step=Some(0) near_json",
            "step_finished 0 a is 2",
            "step_started 1",
            "model_called step=Some(1) call=0 tokens=14 finish=Some(ToolCalls) messages=1 prompt=false",
            "tool_started step=1 call=1 add",
            "tool_finished step=1 call=1 5",
            "model_called step=Some(1) call=2 tokens=14 finish=Some(Stop) messages=3 prompt=false",
            "step_finished 1 5",
            "step_started 2",
            "retrying step=Some(2) attempt=1 wait_ms=250",
            "model_called step=Some(2) call=0 tokens=14 finish=Some(Stop) messages=1 prompt=false",
            "step_finished 2 the sum is 5",
            "run_finished \"the sum is 5\" tokens=70",
        ]
    "#]]
    .assert_debug_eq(&events);
}

#[tokio::test]
async fn message_content_is_recorded_only_when_asked_for() {
    for enabled in [false, true] {
        let model: Arc<dyn ChatModel> = Arc::new(ScriptedModel::new(vec![
            "1. Say hi",
            "{\"answer\": \"hi\"}",
        ]));
        let events = Arc::new(Mutex::new(Vec::new()));
        let agent = {
            let events = events.clone();
            PlanAndExecute::new(
                ListPlanner(model.clone()),
                ToolStepper {
                    model,
                    tool: Arc::new(Add),
                },
            )
            .with_message_content(enabled)
            .with_callback(move |event| events.lock().unwrap().push(event.kind.clone()))
        };
        let recorded = Recorded::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(recorded.clone()));
        agent.run("greet").await.unwrap();
        let tree = recorded.tree();
        assert_eq!(tree.contains("gen_ai.input.messages"), enabled, "{tree}");
        assert_eq!(tree.contains("gen_ai.output.messages"), enabled, "{tree}");
        let calls: Vec<(bool, bool)> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|kind| match kind {
                EventKind::ModelCalled { prompt, reply, .. } => {
                    Some((prompt.is_some(), reply.is_some()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(calls, vec![(enabled, enabled); 2]);
        if enabled {
            assert!(
                tree.contains(r#"gen_ai.input.messages = [{"role":"user","content":"greet"}]"#),
                "{tree}"
            );
        }
    }
}
