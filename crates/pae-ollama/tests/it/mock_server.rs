//! Wire tests against a wiremock server on 127.0.0.1: the exact `/api/chat`
//! bodies of plain chat, options, tools and tool results, `format` and
//! streaming, how the replies are read, and `/api/show`. Faults (error
//! statuses, garbage, stalls, cut streams) are in `tests/it/faults.rs`.

use std::time::Duration;

use futures::StreamExt;
use pae_core::{
    ChatModel, ChatModelExt, ChatRequest, FinishReason, Message, ProviderError, ResponseFormat,
    RetryPolicy, StreamAccumulator, TokenUsage, ToolCall, ToolSpec,
};
use pae_ollama::{OllamaChat, ToolsWithFormat};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn model(server: &str) -> OllamaChat {
    OllamaChat::new("qwen").with_host(server)
}

fn reply(content: &str, extra: Value) -> Value {
    let mut value = json!({
        "model": "qwen", "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": true, "done_reason": "stop",
        "total_duration": 1, "load_duration": 1, "prompt_eval_count": 11,
        "prompt_eval_duration": 1, "eval_count": 4, "eval_duration": 1
    });
    if let (Some(target), Value::Object(extra)) = (value.as_object_mut(), extra) {
        target.extend(extra);
    }
    value
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text, "tool_calls": [], "thinking": null})
}

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(50))
        .with_jitter(0.0)
}

fn calculator() -> ToolSpec {
    ToolSpec {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression.".into(),
        parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
    }
}

#[tokio::test]
async fn plain_chat_with_options_sends_the_exact_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_json(json!({
            "model": "qwen",
            "messages": [
                {"role": "system", "content": "Be brief.", "tool_calls": [], "thinking": null},
                user("hi")
            ],
            "options": {"temperature": 0.0, "num_predict": 8, "seed": 42},
            "stream": false
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("Hello!", json!({}))))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("hi")])
        .with_temperature(0.0)
        .with_max_tokens(8)
        .with_seed(42);
    let response = model(&server.uri()).chat(request).await.unwrap();
    assert_eq!(response.content(), "Hello!");
    assert_eq!(response.usage, Some(TokenUsage::new(11, 4)));
    assert_eq!(response.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn stop_sequences_go_in_options_and_are_enforced_locally() {
    let server = MockServer::start().await;
    Mock::given(body_json(json!({
        "model": "qwen", "messages": [user("hi")],
        "options": {"stop": ["\nObservation:"]}, "stream": false
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(reply(
        "Thought: x\nObservation: invented",
        json!({"done_reason": "length"}),
    )))
    .expect(1)
    .mount(&server)
    .await;
    let response = model(&server.uri())
        .chat(hi().with_stop(["\nObservation:"]))
        .await
        .unwrap();
    assert_eq!(response.content(), "Thought: x");
    assert_eq!(response.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn tools_tool_results_and_tool_calls_use_ollama_shapes() {
    let server = MockServer::start().await;
    Mock::given(body_json(json!({
        "model": "qwen",
        "messages": [
            user("What is 2+2?"),
            {"role": "assistant", "content": "", "thinking": null,
             "tool_calls": [{"function": {"name": "calculator", "arguments": {"expression": "2+2"}}}]},
            {"role": "tool", "content": "4", "tool_calls": [], "thinking": null, "tool_name": "calculator"}
        ],
        "tools": [{"type": "function", "function": {"name": "calculator",
            "description": "Evaluates an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}],
        "stream": false
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(reply(
        "",
        json!({"message": {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "calculator", "arguments": {"expression": "4*3"}}}]}}),
    )))
    .expect(1)
    .mount(&server)
    .await;
    let request = ChatRequest::new(vec![
        Message::user("What is 2+2?"),
        Message::assistant_tool_calls(
            "",
            vec![ToolCall::new(
                "call_0_x",
                "calculator",
                json!({"expression": "2+2"}),
            )],
        ),
        Message::tool("call_0_x", "calculator", "4"),
    ])
    .with_tools(vec![calculator()]);
    let response = model(&server.uri()).chat(request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = &response.message.tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "calculator");
    assert_eq!(calls[0].arguments, json!({"expression": "4*3"}));
    assert!(calls[0].id.starts_with("call_0_"), "{}", calls[0].id);
}

#[tokio::test]
async fn a_json_schema_goes_in_format() {
    let server = MockServer::start().await;
    let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]});
    Mock::given(body_json(json!({
        "model": "qwen", "messages": [user("hi")], "format": schema, "stream": false
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(reply("{\"answer\": 4}", json!({}))))
    .expect(1)
    .mount(&server)
    .await;
    let response = model(&server.uri())
        .chat(hi().with_response_format(ResponseFormat::json_schema("answer", schema.clone())))
        .await
        .unwrap();
    assert_eq!(response.content(), "{\"answer\": 4}");
}

#[tokio::test]
async fn tools_with_a_format_are_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("x", json!({}))))
        .expect(0)
        .mount(&server)
        .await;
    let request = hi()
        .with_tools(vec![calculator()])
        .with_response_format(ResponseFormat::JsonObject);
    let error = model(&server.uri())
        .with_retry(fast_retries(3))
        .chat(request.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unsupported { feature } if feature.contains("8095")),
        "{error:?}"
    );
    let body = model(&server.uri())
        .with_tools_with_format(ToolsWithFormat::DropFormat)
        .request_body(&request, false)
        .unwrap();
    assert!(body.get("format").is_none() && body.get("tools").is_some());
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn part(content: &str) -> Value {
    json!({"model": "qwen", "created_at": "t", "message": {"role": "assistant", "content": content}, "done": false})
}

#[tokio::test]
async fn streaming_reads_ndjson_with_tool_calls_and_final_counts() {
    let server = MockServer::start().await;
    let lines = [
        part("Let me "),
        part("compute."),
        json!({"model": "qwen", "created_at": "t", "done": false, "message": {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "calculator", "arguments": {"expression": "6*7"}}}]}}),
        reply(
            "",
            json!({"done_reason": "stop", "prompt_eval_count": 20, "eval_count": 9}),
        ),
    ];
    Mock::given(body_json(json!({
        "model": "qwen", "messages": [user("hi")],
        "tools": [{"type": "function", "function": {"name": "calculator",
            "description": "Evaluates an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}],
        "stream": true
    })))
    .respond_with(
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/x-ndjson")
            .set_body_string(ndjson(&lines)),
    )
    .expect(1)
    .mount(&server)
    .await;
    let mut stream = model(&server.uri())
        .stream(hi().with_tools(vec![calculator()]))
        .await
        .unwrap();
    let mut accumulator = StreamAccumulator::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        accumulator.push(&chunk.unwrap());
        chunks += 1;
    }
    assert_eq!(chunks, 4);
    let response = accumulator.finish();
    assert_eq!(response.content(), "Let me compute.");
    assert_eq!(response.message.tool_calls.len(), 1);
    assert_eq!(
        response.message.tool_calls[0].arguments,
        json!({"expression": "6*7"})
    );
    assert_eq!(response.usage, Some(TokenUsage::new(20, 9)));
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn detect_capabilities_reads_api_show() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/show"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"capabilities": ["completion"]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let chat = model(&server.uri()).detect_capabilities().await.unwrap();
    assert!(!chat.capabilities().native_tools);
    assert!(chat.capabilities().json_schema);
}
