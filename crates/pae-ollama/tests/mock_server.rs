//! Wire and fault tests against servers on 127.0.0.1: a wiremock server for
//! exact `/api/chat` bodies and error statuses, a raw TCP server for dropped
//! connections and cut streams. Each fault test asserts the attempts made,
//! the error kind and a bound on the elapsed time.

use std::time::{Duration, Instant};

use futures::StreamExt;
use pae_conformance::faults::{Fault, RawServer, chunked_then_cut};
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
async fn overload_with_retry_after_is_waited_out_then_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": "server busy, please try again. maximum pending requests exceeded"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("ok", json!({}))))
        .mount(&server)
        .await;
    let start = Instant::now();
    let response = model(&server.uri())
        .with_retry(RetryPolicy::new().with_initial_backoff(Duration::from_millis(1)))
        .chat(hi())
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(response.content(), "ok");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn rate_limit_error_keeps_status_body_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "20")
                .set_body_string("{\"error\":\"too many requests\"}"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let error = model(&server.uri()).chat(hi()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Http { status: 429, body, retry_after: Some(wait) }
            if body == "{\"error\":\"too many requests\"}" && *wait == Duration::from_secs(20)),
        "{error:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_limit_and_not_found_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500).set_body_string("{\"error\":\"llama runner crashed\"}"),
        )
        .expect(3)
        .mount(&server)
        .await;
    let start = Instant::now();
    let error = model(&server.uri())
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(error.status(), Some(500));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    let missing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404).set_body_string("{\"error\":\"model 'qwen' not found\"}"),
        )
        .expect(1)
        .mount(&missing)
        .await;
    let error = model(&missing.uri())
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Http { status: 404, body, .. } if body.contains("not found"))
    );
}

#[tokio::test]
async fn a_slow_server_times_out_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(reply("late", json!({})))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let start = Instant::now();
    let error = model(&server.uri())
        .with_timeout(Duration::from_millis(300))
        .with_retry(fast_retries(2))
        .chat(hi())
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(error, ProviderError::Timeout { after } if after == Duration::from_millis(300)),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(elapsed >= Duration::from_millis(650), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_a_retryable_connection_error() {
    let raw = RawServer::start(|_| Fault::Drop).await;
    let start = Instant::now();
    let error = model(&raw.url)
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Connection { .. }),
        "{error:?}"
    );
    assert_eq!(raw.accepted(), 3);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_malformed_body_is_invalid_response_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"message\": oops"))
        .expect(1)
        .mount(&server)
        .await;
    let start = Instant::now();
    let error = model(&server.uri())
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidResponse { body, .. } if body == "{\"message\": oops"),
        "{error:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_an_interruption_with_the_partial_text() {
    let first = format!("{}\n", part("Hello"));
    let second = format!("{}\n", part(" wor"));
    let cut = chunked_then_cut("application/x-ndjson", &[&first, &second]);
    let raw = RawServer::start(move |_| Fault::Write(cut.clone())).await;
    let start = Instant::now();
    let items: Vec<_> = model(&raw.url).stream(hi()).await.unwrap().collect().await;
    assert_eq!(items.len(), 3);
    assert!(
        matches!(&items[2], Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hello wor"),
        "{items:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stream_that_fails_before_any_chunk_is_retried() {
    let good = ndjson(&[part("fine"), reply("", json!({}))]);
    let good = chunked_then_cut("application/x-ndjson", &[&good]);
    let raw = RawServer::start(move |n| {
        if n == 0 {
            Fault::Drop
        } else {
            Fault::Write(good.clone())
        }
    })
    .await;
    let items: Vec<_> = model(&raw.url)
        .with_retry(fast_retries(3))
        .stream(hi())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(raw.accepted(), 2);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().delta, "fine");
    assert_eq!(
        items[1].as_ref().unwrap().finish_reason,
        Some(FinishReason::Stop)
    );
}

#[tokio::test]
async fn an_error_line_mid_stream_is_an_interruption() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(ndjson(&[
            part("partial"),
            json!({"error": "an error was encountered while running the model"}),
        ])))
        .mount(&server)
        .await;
    let items: Vec<_> = model(&server.uri())
        .stream(hi())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(
        matches!(&items[1], Err(ProviderError::StreamInterrupted { partial, reason })
            if partial == "partial" && reason.contains("running the model")),
        "{items:?}"
    );
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
