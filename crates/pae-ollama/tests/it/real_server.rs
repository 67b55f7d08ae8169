//! The adapter against an Ollama-API server on 127.0.0.1
//! (`PAE_OLLAMA_TEST_HOST`, `PAE_OLLAMA_TEST_MODEL`). No Ollama build can be
//! installed where these tests run, so the server is the stand-in in
//! `tests/fixtures/ollama_standin.py`: Ollama's routes and wire format over
//! real inference (llama-cpp-python, the default local model). Skipped with
//! a reason when the variables are unset, failing when
//! `PAE_REQUIRE_SERVERS=1`.
//!
//! The checks look at the contract (text, stream, tool-call shape, JSON,
//! usage), never at whether a small model's answer is right.

use std::time::Duration;

use futures::StreamExt;
use pae_conformance::env::{require_env, server_turn};
use pae_core::{
    ChatModel, ChatRequest, FinishReason, Message, ResponseFormat, StreamAccumulator, ToolSpec,
};
use pae_ollama::OllamaChat;
use serde_json::json;

fn local() -> Option<OllamaChat> {
    let host = require_env("PAE_OLLAMA_TEST_HOST")?;
    let model = require_env("PAE_OLLAMA_TEST_MODEL")?;
    Some(
        OllamaChat::new(model)
            .with_host(host)
            .with_timeout(Duration::from_secs(600)),
    )
}

fn ask(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
        .with_temperature(0.0)
        .with_seed(42)
        .with_max_tokens(max_tokens)
}

fn calculator() -> ToolSpec {
    ToolSpec {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression and returns the number.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "for example 2 * (3 + 4)"}},
            "required": ["expression"]
        }),
    }
}

#[tokio::test]
async fn plain_chat_answers_with_text_and_token_counts() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let reply = model
        .chat(ask("Say hello to Ada in one short sentence.", 24))
        .await
        .expect("the server answers");
    eprintln!("reply: {:?} usage: {:?}", reply.content(), reply.usage);
    assert!(!reply.content().trim().is_empty());
    let usage = reply
        .usage
        .expect("prompt_eval_count and eval_count are reported");
    assert!(
        usage.prompt_tokens > 0 && usage.completion_tokens > 0,
        "{usage:?}"
    );
    assert!(usage.completion_tokens <= 24, "{usage:?}");
}

#[tokio::test]
async fn streaming_reads_ndjson_chunks_with_final_counts() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let mut stream = model
        .stream(ask("Name three colours, comma separated.", 24).with_stop(["\n\n"]))
        .await
        .expect("the stream starts");
    let mut accumulator = StreamAccumulator::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("no error mid-stream");
        if !chunk.delta.is_empty() {
            chunks += 1;
        }
        accumulator.push(&chunk);
    }
    let reply = accumulator.finish();
    eprintln!(
        "{chunks} chunks: {:?} usage {:?}",
        reply.content(),
        reply.usage
    );
    assert!(chunks >= 2, "{chunks} text chunks");
    assert!(!reply.content().trim().is_empty());
    assert!(reply.usage.is_some_and(|u| u.completion_tokens > 0));
    assert!(matches!(
        reply.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
}

#[tokio::test]
async fn the_model_calls_a_tool_and_gets_a_stable_id() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let request =
        ask("What is 17 times 23? Use the calculator tool.", 64).with_tools(vec![calculator()]);
    let reply = model
        .chat(request.clone())
        .await
        .expect("the server answers");
    eprintln!("tool calls: {:?}", reply.message.tool_calls);
    assert_eq!(reply.message.tool_calls.len(), 1, "{reply:?}");
    let call = &reply.message.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert!(call.id.starts_with("call_0_"), "{}", call.id);
    assert!(
        call.arguments
            .get("expression")
            .is_some_and(|e| e.is_string()),
        "{:?}",
        call.arguments
    );
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);

    // Streamed, the same call arrives with the same id.
    let mut stream = model.stream(request).await.expect("the stream starts");
    let mut accumulator = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        accumulator.push(&chunk.expect("no error mid-stream"));
    }
    let streamed = accumulator.finish();
    assert_eq!(streamed.message.tool_calls, reply.message.tool_calls);

    // And the tool's result goes back as a tool message.
    let follow_up = ChatRequest::new(vec![
        Message::user("What is 17 times 23? Use the calculator tool."),
        Message::assistant_tool_calls("", reply.message.tool_calls.clone()),
        Message::tool(call.id.clone(), "calculator", "391"),
    ])
    .with_tools(vec![calculator()])
    .with_temperature(0.0)
    .with_seed(42)
    .with_max_tokens(32);
    let answer = model.chat(follow_up).await.expect("the server answers");
    eprintln!("after the tool: {:?}", answer.content());
    assert!(!answer.content().trim().is_empty() || !answer.message.tool_calls.is_empty());
}

#[tokio::test]
async fn a_json_schema_format_is_enforced() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"]
    });
    let request = ask("Give a city and its population as JSON.", 64)
        .with_response_format(ResponseFormat::json_schema("city", schema));
    let reply = model.chat(request).await.expect("the server answers");
    eprintln!("json: {:?}", reply.content());
    let value: serde_json::Value =
        serde_json::from_str(reply.content()).expect("the reply is JSON");
    assert!(value["city"].is_string(), "{value}");
    assert!(
        value["population"].is_i64() || value["population"].is_u64(),
        "{value}"
    );
}

#[tokio::test]
async fn the_model_list_and_capabilities_come_from_the_server() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let model = model
        .detect_capabilities()
        .await
        .expect("/api/show answers");
    assert!(model.capabilities().native_tools, "the model lists tools");
    let raw = model.raw_client().expect("a valid host");
    let models = raw.list_local_models().await.expect("/api/tags answers");
    assert!(models.iter().any(|m| m.name == model.model()), "{models:?}");
}
