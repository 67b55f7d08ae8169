//! The adapter against a real OpenAI-compatible server on 127.0.0.1:
//! llama-cpp-python's server with the default local model
//! (`PAE_OPENAI_TEST_BASE_URL`, `PAE_OPENAI_TEST_MODEL`). Skipped with a
//! reason when those are unset, failing when `PAE_REQUIRE_SERVERS=1`.
//!
//! Start the server as the crate README says. The checks look at the
//! contract (text, stop, stream, tool-call shape, JSON, usage), never at
//! whether a small model's answer is right.

use std::time::Duration;

use futures::StreamExt;
use pae_conformance::env::{require_env, server_turn};
use pae_core::{
    Capabilities, ChatModel, ChatRequest, FinishReason, Message, ResponseFormat, StreamAccumulator,
    ToolChoice, ToolSpec,
};
use pae_openai::{OpenAiChat, SchemaMode};
use serde_json::json;

/// The adapter as llama-cpp-python's server needs it: its own JSON-schema
/// form, and native tools not claimed (the model calls a tool by itself
/// only as JSON text; a forced call comes back structured).
fn local() -> Option<OpenAiChat> {
    let base_url = require_env("PAE_OPENAI_TEST_BASE_URL")?;
    let model = require_env("PAE_OPENAI_TEST_MODEL")?;
    Some(
        OpenAiChat::new(model)
            .with_base_url(base_url)
            .with_timeout(Duration::from_secs(600))
            .with_schema_mode(SchemaMode::JsonObjectWithSchema)
            .with_capabilities(Capabilities {
                native_tools: false,
                json_schema: true,
                streaming: true,
            }),
    )
}

fn ask(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
        .with_temperature(0.0)
        .with_seed(42)
        .with_max_tokens(max_tokens)
}

#[tokio::test]
async fn plain_chat_answers_with_text_and_usage() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let reply = model
        .chat(ask("Say hello to Ada in one short sentence.", 24))
        .await
        .expect("the server answers");
    eprintln!("reply: {:?} usage: {:?}", reply.content(), reply.usage);
    assert!(!reply.content().trim().is_empty());
    let usage = reply.usage.expect("llama-cpp-python reports usage");
    assert!(
        usage.prompt_tokens > 0 && usage.completion_tokens > 0,
        "{usage:?}"
    );
    assert!(usage.completion_tokens <= 24, "{usage:?}");
    assert!(matches!(
        reply.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
}

#[tokio::test]
async fn a_stop_sequence_is_honoured() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let request = ask("Count from 1 to 10, one number per line, digits only.", 48).with_stop(["5"]);
    let reply = model.chat(request).await.expect("the server answers");
    eprintln!("reply: {:?}", reply.content());
    assert!(reply.content().contains('4'), "{:?}", reply.content());
    assert!(!reply.content().contains('5'), "{:?}", reply.content());
    assert_eq!(reply.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn streaming_delivers_several_chunks_that_join_to_the_reply() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let mut stream = model
        .stream(ask("Name three colours, comma separated.", 24))
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
    eprintln!("{chunks} chunks: {:?}", reply.content());
    assert!(chunks >= 2, "{chunks} text chunks");
    assert!(!reply.content().trim().is_empty());
}

#[tokio::test]
async fn a_forced_tool_call_comes_back_as_a_parsed_tool_call() {
    let Some(model) = local() else { return };
    let _turn = server_turn().await;
    let calculator = ToolSpec {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression and returns the number.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "for example 2 * (3 + 4)"}},
            "required": ["expression"]
        }),
    };
    let request = ask("What is 17 times 23?", 64)
        .with_tools(vec![calculator])
        .with_tool_choice(ToolChoice::Tool("calculator".into()));
    let reply = model.chat(request).await.expect("the server answers");
    eprintln!("tool calls: {:?}", reply.message.tool_calls);
    assert_eq!(reply.message.tool_calls.len(), 1, "{reply:?}");
    let call = &reply.message.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert!(!call.id.is_empty());
    assert!(
        call.arguments
            .get("expression")
            .is_some_and(|e| e.is_string()),
        "{:?}",
        call.arguments
    );
    assert!(reply.usage.is_some());
}

#[tokio::test]
async fn a_json_schema_is_enforced_in_llama_cpp_form() {
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
