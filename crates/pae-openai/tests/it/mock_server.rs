//! Wire tests against a wiremock server on 127.0.0.1: the exact request
//! bodies and headers of plain chat, stop sequences, tools and tool results,
//! response formats and streaming, and how the replies are read. Faults
//! (error statuses, garbage, stalls, cut streams) are in `tests/it/faults.rs`.

use futures::StreamExt;
use pae_core::{
    ChatModel, ChatRequest, FinishReason, Message, ResponseFormat, StreamAccumulator, TokenUsage,
    ToolCall, ToolChoice, ToolSpec,
};
use pae_openai::{OpenAiChat, SchemaMode};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-0123456789-secret";

fn model(server: &str) -> OpenAiChat {
    OpenAiChat::new("local")
        .with_base_url(format!("{server}/v1"))
        .with_api_key(KEY)
}

fn completion(content: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "local",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    })
}

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

#[tokio::test]
async fn plain_chat_sends_the_exact_body_and_reads_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_json(json!({
            "model": "local",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "temperature": 0.0,
            "max_tokens": 8,
            "seed": 42
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("Hello!"), "stop")))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("hi")])
        .with_temperature(0.0)
        .with_max_tokens(8)
        .with_seed(42);
    let reply = model(&server.uri()).chat(request).await.unwrap();
    assert_eq!(reply.content(), "Hello!");
    assert_eq!(reply.usage, Some(TokenUsage::new(12, 3)));
    assert_eq!(reply.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn stop_sequences_are_sent_and_enforced_locally() {
    let server = MockServer::start().await;
    Mock::given(body_json(json!({
        "model": "local",
        "messages": [{"role": "user", "content": "hi"}],
        "stop": ["\nObservation:", "<END_OF_PLAN>"]
    })))
    // A server that ignores stop sequences.
    .respond_with(ResponseTemplate::new(200).set_body_json(completion(
        json!("Thought: add\nObservation: made up"),
        "length",
    )))
    .expect(1)
    .mount(&server)
    .await;
    let reply = model(&server.uri())
        .chat(hi().with_stop(["\nObservation:", "<END_OF_PLAN>"]))
        .await
        .unwrap();
    assert_eq!(reply.content(), "Thought: add");
    assert_eq!(reply.finish_reason, FinishReason::Stop);
}

fn calculator() -> ToolSpec {
    ToolSpec {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression.".into(),
        parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
    }
}

#[tokio::test]
async fn tools_and_tool_results_use_the_openai_shapes() {
    let server = MockServer::start().await;
    let expected = json!({
        "model": "local",
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function",
                "function": {"name": "calculator", "arguments": "{\"expression\":\"2+2\"}"}}]},
            {"role": "tool", "content": "4", "tool_call_id": "call_a"}
        ],
        "tools": [{"type": "function", "function": {"name": "calculator",
            "description": "Evaluates an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "calculator"}}
    });
    let reply_body = json!({
        "id": "x", "object": "chat.completion", "created": 1, "model": "local",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_b", "type": "function",
                "function": {"name": "calculator", "arguments": "{\"expression\": \"4*3\"}"}}]}}]
    });
    Mock::given(body_json(expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply_body))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest::new(vec![
        Message::user("What is 2+2?"),
        Message::assistant_tool_calls(
            "",
            vec![ToolCall::new(
                "call_a",
                "calculator",
                json!({"expression": "2+2"}),
            )],
        ),
        Message::tool("call_a", "calculator", "4"),
    ])
    .with_tools(vec![calculator()])
    .with_tool_choice(ToolChoice::Tool("calculator".into()));
    let reply = model(&server.uri()).chat(request).await.unwrap();
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        reply.message.tool_calls,
        vec![ToolCall::new(
            "call_b",
            "calculator",
            json!({"expression": "4*3"})
        )]
    );
}

#[tokio::test]
async fn schema_formats_are_sent_in_the_chosen_form() {
    let server = MockServer::start().await;
    let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]});
    Mock::given(body_json(json!({
        "model": "local", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}}
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("{\"answer\": 4}"), "stop")))
    .expect(1)
    .mount(&server)
    .await;
    Mock::given(body_json(json!({
        "model": "local", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object", "schema": schema}
    })))
    .respond_with(
        ResponseTemplate::new(200).set_body_json(completion(json!("{\"answer\": 5}"), "stop")),
    )
    .expect(1)
    .mount(&server)
    .await;
    let request = hi().with_response_format(ResponseFormat::json_schema("answer", schema.clone()));
    let standard = model(&server.uri()).chat(request.clone()).await.unwrap();
    assert_eq!(standard.content(), "{\"answer\": 4}");
    let llama = model(&server.uri())
        .with_schema_mode(SchemaMode::JsonObjectWithSchema)
        .chat(request)
        .await
        .unwrap();
    assert_eq!(llama.content(), "{\"answer\": 5}");
}

fn sse(events: &[Value]) -> String {
    let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

fn delta(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "local",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[tokio::test]
async fn streaming_asks_for_usage_and_joins_tool_call_fragments() {
    let server = MockServer::start().await;
    let events = [
        delta(json!({"role": "assistant", "content": ""}), None),
        delta(json!({"content": "Let me "}), None),
        delta(json!({"content": "compute."}), None),
        delta(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": ""}}]}),
            None,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"expression\""}}]}),
            None,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ": \"6*7\"}"}}]}),
            None,
        ),
        delta(json!({}), Some("tool_calls")),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "local", "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}}),
    ];
    Mock::given(body_json(json!({
        "model": "local",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "calculator",
            "description": "Evaluates an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}],
        "tool_choice": "auto",
        "stream": true,
        "stream_options": {"include_usage": true}
    })))
    .and(header("accept", "text/event-stream"))
    .respond_with(
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(sse(&events)),
    )
    .expect(1)
    .mount(&server)
    .await;
    let request = hi()
        .with_tools(vec![calculator()])
        .with_tool_choice(ToolChoice::Auto);
    let mut stream = model(&server.uri()).stream(request).await.unwrap();
    let mut accumulator = StreamAccumulator::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        accumulator.push(&chunk.unwrap());
        chunks += 1;
    }
    assert!(chunks >= 6, "{chunks} chunks");
    let reply = accumulator.finish();
    assert_eq!(reply.content(), "Let me compute.");
    assert_eq!(
        reply.message.tool_calls,
        vec![ToolCall::new(
            "call_1",
            "calculator",
            json!({"expression": "6*7"})
        )]
    );
    assert_eq!(reply.usage, Some(TokenUsage::new(20, 9)));
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
}
