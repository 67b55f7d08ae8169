//! Wire and fault tests against servers on 127.0.0.1: a wiremock server for
//! exact request bodies and error statuses, a raw TCP server for dropped
//! connections and cut streams. Each fault test asserts the attempts made,
//! the error kind and a bound on the elapsed time.

use std::time::{Duration, Instant};

use futures::StreamExt;
use pae_conformance::faults::{Fault, RawServer, chunked_then_cut};
use pae_core::{
    ChatModel, ChatModelExt, ChatRequest, FinishReason, Message, ProviderError, ResponseFormat,
    RetryPolicy, StreamAccumulator, TokenUsage, ToolCall, ToolChoice, ToolSpec,
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

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(50))
        .with_jitter(0.0)
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

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_then_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "slow down", "type": "rate_limit"}})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("ok"), "stop")))
        .expect(1)
        .mount(&server)
        .await;
    let start = Instant::now();
    let reply = model(&server.uri())
        .with_retry(RetryPolicy::new().with_initial_backoff(Duration::from_millis(1)))
        .chat(hi())
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(reply.content(), "ok");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After honoured: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn rate_limit_error_carries_status_body_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_string("{\"error\": {\"message\": \"Rate limit\"}}"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let error = model(&server.uri()).chat(hi()).await.unwrap_err();
    match &error {
        ProviderError::Http {
            status,
            body,
            retry_after,
        } => {
            assert_eq!(*status, 429);
            assert_eq!(body, "{\"error\": {\"message\": \"Rate limit\"}}");
            assert_eq!(*retry_after, Some(Duration::from_secs(30)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
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
    assert!(
        matches!(&error, ProviderError::Http { status: 500, body, .. } if body == "upstream exploded"),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    // Backoff of 50 ms then 100 ms.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_show_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {KEY}\"}}}}"
        )))
        .expect(1)
        .mount(&server)
        .await;
    let error = model(&server.uri())
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(!error.is_retryable());
    for text in [format!("{error}"), format!("{error:?}")] {
        assert!(!text.contains(KEY), "key leaked: {text}");
    }
    assert!(format!("{error:?}").contains("<redacted>"));
}

#[tokio::test]
async fn a_slow_server_times_out_and_each_attempt_is_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(json!("late"), "stop"))
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
    assert!(error.is_retryable());
    assert_eq!(raw.accepted(), 3);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(!format!("{error:?}").contains(KEY));
}

#[tokio::test]
async fn a_refused_connection_names_the_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = model(&url).chat(hi()).await.unwrap_err();
    match &error {
        ProviderError::Connection { message, source } => {
            assert!(message.contains(&url), "{message}");
            assert!(source.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_body_is_invalid_response_with_the_raw_text_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"choices\": [ this is not json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let start = Instant::now();
    let error = model(&server.uri())
        .with_retry(fast_retries(3))
        .chat(hi())
        .await
        .unwrap_err();
    match &error {
        ProviderError::InvalidResponse { body, .. } => {
            assert_eq!(body, "{\"choices\": [ this is not json")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_an_interruption_with_the_partial_text() {
    let first = format!("data: {}\n\n", delta(json!({"content": "Hello"}), None));
    let second = format!("data: {}\n\n", delta(json!({"content": " wor"}), None));
    let cut = chunked_then_cut("text/event-stream", &[&first, &second]);
    let raw = RawServer::start(move |_| Fault::Write(cut.clone())).await;
    let start = Instant::now();
    let mut stream = model(&raw.url).stream(hi()).await.unwrap();
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => text.push_str(&chunk.delta),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(text, "Hello wor");
    match error {
        Some(ProviderError::StreamInterrupted { partial, .. }) => assert_eq!(partial, "Hello wor"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(raw.accepted(), 1);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stream_that_fails_before_any_chunk_is_retried() {
    let good = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        delta(json!({"content": "fine"}), Some("stop"))
    );
    let good = chunked_then_cut("text/event-stream", &[&good]);
    let raw = RawServer::start(move |n| {
        if n == 0 {
            Fault::Drop
        } else {
            Fault::Write(good.clone())
        }
    })
    .await;
    let start = Instant::now();
    let stream = model(&raw.url)
        .with_retry(fast_retries(3))
        .stream(hi())
        .await
        .unwrap();
    let items: Vec<_> = stream.collect().await;
    assert_eq!(raw.accepted(), 2);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap().delta, "fine");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stream_rate_limited_at_the_start_is_retried_after_the_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after-ms", "200"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse(&[delta(json!({"content": "ok"}), Some("stop"))])),
        )
        .mount(&server)
        .await;
    let start = Instant::now();
    let items: Vec<_> = model(&server.uri())
        .with_retry(fast_retries(2))
        .stream(hi())
        .await
        .unwrap()
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(items.len(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_chunks() {
    let server = MockServer::start().await;
    // wiremock delays the whole response; the timeout covers the start too.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse(&[delta(json!({"content": "x"}), Some("stop"))]))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let start = Instant::now();
    let error = match model(&server.uri())
        .with_timeout(Duration::from_millis(300))
        .stream(hi())
        .await
    {
        Err(error) => error,
        Ok(_) => panic!("the stream should not start"),
    };
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_that_ignores_stream_true_still_works() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("whole"), "stop")))
        .mount(&server)
        .await;
    let items: Vec<_> = model(&server.uri())
        .stream(hi())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    let chunk = items[0].as_ref().unwrap();
    assert_eq!(chunk.delta, "whole");
    assert_eq!(chunk.usage, Some(TokenUsage::new(12, 3)));
}
