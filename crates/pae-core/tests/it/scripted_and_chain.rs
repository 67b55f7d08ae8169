//! ScriptedModel semantics (stop cutting, recording, usage, exhaustion,
//! streaming) and LlmChain over it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::StreamExt;
use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{
    Capabilities, Chain, ChainError, ChatModel, ChatPromptTemplate, ChatRequest, ChatResponse,
    FinishReason, LlmChain, Message, PromptTemplate, ProviderError, Role, StreamAccumulator,
    TemplateError, TokenUsage, ToolCall, inputs, run_chain,
};

fn request(text: &str, stop: &[&str]) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)]).with_stop(stop.iter().copied())
}

#[tokio::test]
async fn scripted_model_cuts_at_the_earliest_stop_sequence() {
    let model = ScriptedModel::new([
        "Thought: add\nAction: x\nObservation: 4\nmore",
        "1. a\n<END_OF_PLAN>\nchatter Observation:",
        "no stop here",
    ]);
    let r1 = model.chat(request("q", &["Observation:"])).await.unwrap();
    assert_eq!(r1.content(), "Thought: add\nAction: x\n");
    let r2 = model
        .chat(request("q", &["Observation:", "<END_OF_PLAN>"]))
        .await
        .unwrap();
    assert_eq!(r2.content(), "1. a\n", "the earliest of several stops wins");
    let r3 = model.chat(request("q", &["zzz"])).await.unwrap();
    assert_eq!(r3.content(), "no stop here");
    assert_eq!(r3.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn scripted_model_records_every_request() {
    let model = ScriptedModel::new(["a", "b"]);
    model
        .chat(request("first", &["S1"]).with_temperature(0.0))
        .await
        .unwrap();
    model
        .chat(request("second", &[]).with_max_tokens(7))
        .await
        .unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].messages, vec![Message::user("first")]);
    assert_eq!(requests[0].stop, ["S1"]);
    assert_eq!(requests[0].sampling.temperature, Some(0.0));
    assert_eq!(requests[1].sampling.max_tokens, Some(7));
    assert_eq!(model.calls(), 2);
    assert_eq!(model.remaining(), 0);
}

#[tokio::test]
async fn scripted_model_fails_clearly_when_exhausted() {
    let model = ScriptedModel::new(["only"]);
    model.chat(request("1", &[])).await.unwrap();
    let err = model.chat(request("2", &[])).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Exhausted { requests: 1 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the model has no replies left after 1 requests"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn scripted_model_reports_usage_and_replays_errors_and_tool_calls() {
    let model = ScriptedModel::new([
        ScriptedReply::from("hello world"),
        ScriptedReply::Error(ProviderError::Http {
            status: 429,
            body: "slow down".into(),
            retry_after: None,
        }),
        ScriptedReply::ToolCalls(vec![ToolCall::new(
            "c1",
            "calculator",
            serde_json::json!({"expression": "2+2"}),
        )]),
    ])
    .with_usage(TokenUsage::new(12, 3));
    let first = model.chat(request("hi", &[])).await.unwrap();
    assert_eq!(first.usage, Some(TokenUsage::new(12, 3)));
    let second = model.chat(request("hi", &[])).await.unwrap_err();
    assert_eq!(second.status(), Some(429));
    let third = model.chat(request("hi", &[])).await.unwrap();
    assert_eq!(third.finish_reason, FinishReason::ToolCalls);
    assert_eq!(third.message.tool_calls[0].name, "calculator");

    let estimated = ScriptedModel::new(["12345678"]).with_estimated_usage();
    let reply = estimated.chat(request("abcd", &[])).await.unwrap();
    assert_eq!(reply.usage, Some(TokenUsage::new(1, 2)));
}

#[tokio::test]
async fn scripted_model_streams_chunks_that_rebuild_the_reply() {
    let model = ScriptedModel::new(["one two three STOP four"]);
    let mut stream = model.stream(request("q", &["STOP"])).await.unwrap();
    let mut acc = StreamAccumulator::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
        chunks += 1;
    }
    assert!(chunks > 1);
    assert_eq!(acc.finish().content(), "one two three ");
}

#[tokio::test]
async fn from_fn_answers_from_the_request() {
    let model =
        ScriptedModel::from_fn(|req| ScriptedReply::from(format!("echo {}", req.messages.len())))
            .with_capabilities(Capabilities {
                native_tools: true,
                json_schema: true,
                streaming: false,
            });
    assert_eq!(
        model.chat(request("x", &[])).await.unwrap().content(),
        "echo 1"
    );
    assert!(model.capabilities().native_tools);
    assert_eq!(model.remaining(), 0);
}

fn chain(model: Arc<ScriptedModel>) -> LlmChain {
    LlmChain::new(
        model,
        ChatPromptTemplate::new(
            PromptTemplate::literal("You are terse. Braces {stay} literal."),
            PromptTemplate::new("Question: {input}").unwrap(),
        ),
    )
    .with_stop(["<END>"])
}

#[tokio::test]
async fn llm_chain_formats_calls_and_cuts() {
    let model = Arc::new(ScriptedModel::new(["42<END> ignored"]));
    let chain = chain(model.clone());
    let answer = chain
        .run(&inputs([("input", "what is {x}?")]))
        .await
        .unwrap();
    assert_eq!(answer, "42");
    let sent = &model.requests()[0];
    assert_eq!(
        sent.messages,
        vec![
            Message::system("You are terse. Braces {stay} literal."),
            Message::user("Question: what is {x}?"),
        ]
    );
    assert_eq!(sent.stop, ["<END>"]);
    assert_eq!(chain.input_keys(), ["input"]);
    assert_eq!(chain.output_keys(), ["text"]);
}

#[tokio::test]
async fn llm_chain_reports_a_missing_variable() {
    let model = Arc::new(ScriptedModel::new(["unused"]));
    let err = chain(model.clone())
        .run(&inputs([("other", "x")]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ChainError::Template(TemplateError::MissingVariable { ref name }) if name == "input"
    ));
    assert_eq!(model.calls(), 0, "no model call with a broken prompt");
    let err = run_chain(&chain(model), &inputs([("other", "x")]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::MissingInput { ref key } if key == "input"));
}

#[tokio::test]
async fn llm_chain_works_as_a_chain_trait_object() {
    let model = Arc::new(ScriptedModel::new([ScriptedReply::Response(
        ChatResponse::text("done").with_usage(TokenUsage::new(1, 1)),
    )]));
    let chain: Arc<dyn Chain> = Arc::new(chain(model));
    let out = run_chain(chain.as_ref(), &inputs([("input", "go")]))
        .await
        .unwrap();
    assert_eq!(out, "done");
}

#[test]
fn chat_templates_support_any_roles() {
    let t = ChatPromptTemplate::from_messages(vec![
        (Role::System, PromptTemplate::literal("sys")),
        (Role::Assistant, PromptTemplate::new("prev {a}").unwrap()),
        (Role::User, PromptTemplate::new("{b}").unwrap()),
    ]);
    assert_eq!(t.variables(), ["a", "b"]);
    let messages = t.format_messages(&[("a", "1"), ("b", "2")]).unwrap();
    assert_eq!(messages[1], Message::assistant("prev 1"));
    assert_eq!(messages[2], Message::user("2"));
}
