//! The shared fault suite (`pae_conformance::faults`) against the OpenAI
//! adapter: error statuses, `Retry-After` in every form, garbage bodies,
//! stalls, cut and split streams, each in the chat-completions wire format.

use std::time::{Duration, Instant};

use pae_conformance::Outcome;
use pae_conformance::faults::{
    Fault, FaultSuite, ModelTarget, RawServer, Scenario, WireFormat, chunked, response, stream_text,
};
use pae_core::{ChatModel, ChatModelExt, ChatRequest, Message, ProviderError, RetryPolicy};
use pae_openai::OpenAiChat;
use serde_json::json;

const KEY: &str = "sk-test-0123456789-secret";

/// The chat-completions wire format: JSON replies, server-sent events.
#[derive(Debug)]
struct OpenAiWire;

fn sse_chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let event = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "local",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {event}\n\n")
}

impl WireFormat for OpenAiWire {
    fn reply(&self, text: &str) -> String {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        })
        .to_string()
    }

    fn stream_content_type(&self) -> &str {
        "text/event-stream"
    }

    fn stream_delta(&self, delta: &str) -> String {
        sse_chunk(json!({"content": delta}), None)
    }

    fn stream_end(&self) -> String {
        let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "local",
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
        format!(
            "{}data: {usage}\n\ndata: [DONE]\n\n",
            sse_chunk(json!({}), Some("stop"))
        )
    }

    fn stream_error(&self, message: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error"}})
        )
    }

    fn error_body(&self, message: &str) -> String {
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
            .to_string()
    }

    fn incomplete_replies(&self) -> Vec<String> {
        [
            "{}",
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"local"}"#,
            r#"{"id":"chatcmpl-1","choices":[]}"#,
            r#"{"id":"chatcmpl-1","choices":null}"#,
            r#"{"choices":[{"index":0,"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"message":null,"finish_reason":"stop"}]}"#,
            "[]",
            "null",
            "\"hello\"",
            "42",
        ]
        .map(String::from)
        .to_vec()
    }
}

fn build(target: &ModelTarget) -> OpenAiChat {
    OpenAiChat::new("local")
        .with_base_url(format!("{}/v1", target.base_url))
        .with_api_key(KEY)
        .with_timeout(target.timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_adapter_survives_every_fault_scenario() {
    FaultSuite::new(OpenAiWire)
        .with_secret(KEY)
        .run(build)
        .await
        .assert_all_passed();
}

// ----- faults specific to the chat-completions wire format -----

/// A server whose every connection gets these parts as a chunked body.
async fn serve(content_type: &'static str, parts: Vec<Vec<u8>>) -> RawServer {
    RawServer::start(move |_| chunked(content_type, &parts)).await
}

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

fn model(url: &str) -> OpenAiChat {
    OpenAiChat::new("local")
        .with_base_url(format!("{url}/v1"))
        .with_api_key(KEY)
        .with_timeout(Duration::from_millis(500))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(20))
        .with_jitter(0.0)
}

fn delta_json(text: &str, finish: Option<&str>) -> String {
    json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})
        .to_string()
}

#[tokio::test]
async fn every_legal_spelling_of_server_sent_events_gives_the_same_text() {
    let a = delta_json("Hé", None);
    let b = delta_json("llo", Some("stop"));
    let spellings: Vec<(&str, String)> = vec![
        (
            "plain",
            format!("data: {a}\n\ndata: {b}\n\ndata: [DONE]\n\n"),
        ),
        (
            "no space after data:",
            format!("data:{a}\n\ndata:{b}\n\ndata:[DONE]\n\n"),
        ),
        (
            "CRLF",
            format!("data: {a}\r\n\r\ndata: {b}\r\n\r\ndata: [DONE]\r\n\r\n"),
        ),
        (
            "lone CR",
            format!("data: {a}\r\rdata: {b}\r\rdata: [DONE]\r\r"),
        ),
        (
            "byte-order mark",
            format!("\u{feff}data: {a}\n\ndata: {b}\n\n"),
        ),
        (
            "comments and keep-alives",
            format!(
                ": OPENROUTER PROCESSING\n\n:ping\n\ndata: {a}\n\n: keep-alive\n\n\n\ndata: {b}\n\n"
            ),
        ),
        (
            "event, id and retry fields",
            format!(
                "retry: 3000\n\nevent: message\nid: 1\ndata: {a}\n\nid: 2\ndata: {b}\n\nevent: done\ndata: [DONE]\n\n"
            ),
        ),
        (
            "no [DONE] after the finish reason",
            format!("data: {a}\n\ndata: {b}\n\n"),
        ),
        (
            "last event without its blank line",
            format!("data: {a}\n\ndata: {b}"),
        ),
    ];
    for (name, body) in spellings {
        let server = serve("text/event-stream", vec![body.into_bytes()]).await;
        let (text, error) = stream_text(&model(&server.url), hi()).await;
        assert_eq!(
            (text.as_str(), error.map(|e| e.to_string())),
            ("Héllo", None),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_connection_cut_after_the_finish_reason_keeps_the_reply() {
    let events = format!(
        "data: {}\n\ndata: {}\n\n",
        delta_json("Hé", None),
        delta_json("llo", Some("stop"))
    );
    let cut = pae_conformance::faults::chunked_then_cut("text/event-stream", &[&events]);
    let server = RawServer::start(move |_| Fault::Write(cut.clone())).await;
    let (text, error) = stream_text(&model(&server.url), hi()).await;
    assert_eq!(
        (text.as_str(), error.map(|e| e.to_string())),
        ("Héllo", None)
    );
    // Cut before the finish reason, the same break is an interruption.
    let early = format!("data: {}\n\n", delta_json("Hé", None));
    let cut = pae_conformance::faults::chunked_then_cut("text/event-stream", &[&early]);
    let server = RawServer::start(move |_| Fault::Write(cut.clone())).await;
    let (_, error) = stream_text(&model(&server.url), hi()).await;
    assert!(
        matches!(&error, Some(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hé"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_event_stream_labelled_as_json_is_still_read_as_events() {
    let body = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        delta_json("Hé", None),
        delta_json("llo", Some("stop"))
    );
    let server = serve("application/json", vec![body.into_bytes()]).await;
    let (text, error) = stream_text(&model(&server.url), hi()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "Héllo");
}

#[tokio::test]
async fn done_without_a_finish_reason_is_an_interruption_not_a_short_reply() {
    let body = format!("data: {}\n\ndata: [DONE]\n\n", delta_json("Hé", None));
    let server = serve("text/event-stream", vec![body.into_bytes()]).await;
    let (text, error) = stream_text(&model(&server.url), hi()).await;
    assert_eq!(text, "Hé");
    assert!(
        matches!(&error, Some(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hé"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_sse_error_event_reports_the_servers_message() {
    let body = format!(
        "data: {}\n\nevent: error\ndata: {{\"message\": \"Overloaded\", \"type\": \"overloaded_error\"}}\n\n",
        delta_json("Hé", None)
    );
    let server = serve("text/event-stream", vec![body.into_bytes()]).await;
    let (text, error) = stream_text(&model(&server.url), hi()).await;
    assert_eq!(text, "Hé");
    let error = error.expect("the error event ends the stream with an error");
    assert!(error.to_string().contains("Overloaded"), "{error}");
}

#[tokio::test]
async fn an_error_object_with_an_http_code_and_status_200_is_that_http_error() {
    for (code, attempts) in [(503u16, 3usize), (400, 1)] {
        let body =
            json!({"error": {"code": code, "message": "upstream says no", "type": "server_error"}})
                .to_string();
        let server = RawServer::start(move |_| {
            Fault::Write(response(
                200,
                &[("content-type", "application/json")],
                &body,
            ))
        })
        .await;
        let error = model(&server.url)
            .with_retry(fast_retries())
            .chat(hi())
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(code), "{error:?}");
        assert_eq!(server.accepted(), attempts, "code {code}");
        assert!(format!("{error:?}").contains("upstream says no"));
    }
}

#[tokio::test]
async fn a_coded_error_as_the_first_stream_event_is_retried_as_its_status() {
    let body = "data: {\"error\": {\"code\": 429, \"message\": \"slow down\"}}\n\n";
    let server = serve("text/event-stream", vec![body.as_bytes().to_vec()]).await;
    let (text, error) = stream_text(&model(&server.url).with_retry(fast_retries()), hi()).await;
    assert_eq!(text, "");
    let error = error.expect("an error");
    assert_eq!(error.status(), Some(429), "{error:?}");
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn garbage_retry_after_ms_falls_back_to_retry_after() {
    let server = RawServer::start(|_| {
        Fault::Write(response(
            429,
            &[("retry-after-ms", "soon"), ("retry-after", "12")],
            "{}",
        ))
    })
    .await;
    let error = model(&server.url).chat(hi()).await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn replies_beyond_the_size_limit_are_refused_not_buffered() {
    let big = OpenAiWire.reply(&"x".repeat(4 << 20));
    let server = RawServer::start(move |_| {
        Fault::Write(response(200, &[("content-type", "application/json")], &big))
    })
    .await;
    let Err(error) = model(&server.url)
        .with_max_response_bytes(1 << 20)
        .chat(hi())
        .await
    else {
        panic!("a reply beyond the limit was accepted");
    };
    match &error {
        ProviderError::InvalidResponse { reason, body } => {
            assert!(reason.contains("1048576"), "{reason}");
            assert!(body.len() <= 64 * 1024, "{} bytes kept", body.len());
        }
        other => panic!("unexpected {}", pae_core::error_chain(other)),
    }
    // An event longer than the limit, in a stream.
    let event = format!("data: {}\n\n", delta_json(&"y".repeat(2 << 20), None));
    let server = serve("text/event-stream", vec![event.into_bytes()]).await;
    let (_, error) = stream_text(&model(&server.url).with_max_response_bytes(1 << 20), hi()).await;
    assert!(
        matches!(&error, Some(ProviderError::InvalidResponse { body, .. }) if body.len() <= 64 * 1024),
        "{:?}",
        error.map(|e| pae_core::error_chain(&e))
    );
}

#[tokio::test]
async fn no_error_of_any_fault_shows_the_key() {
    let echo = format!("{{\"error\": {{\"message\": \"bad key {KEY}\"}}}}");
    for status in [200u16, 400, 401, 403, 429, 500] {
        let body = echo.clone();
        let server = RawServer::start(move |_| {
            Fault::Write(response(
                status,
                &[("content-type", "application/json")],
                &body,
            ))
        })
        .await;
        let chat = model(&server.url);
        let error = chat.chat(hi()).await.unwrap_err();
        let (_, streamed) = stream_text(&chat, hi()).await;
        for error in [Some(error), streamed].into_iter().flatten() {
            let text = format!("{error} {error:?} {}", pae_core::error_chain(&error));
            assert!(!text.contains(KEY), "HTTP {status}: {text}");
        }
        assert!(!format!("{chat:?}").contains(KEY));
    }
    let server = RawServer::start(move |_| {
        Fault::Write(response(
            401,
            &[],
            format!("Incorrect API key provided: {KEY}"),
        ))
    })
    .await;
    let error = model(&server.url).chat(hi()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the provider answered HTTP 401",
        "the status, and no body, in the message"
    );
    assert!(format!("{error:?}").contains("Incorrect API key provided: <redacted>"));
}

#[tokio::test]
async fn a_refused_connection_names_the_server_but_not_its_credentials() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let error = OpenAiChat::new("local")
        .with_base_url(format!("http://user:hunter2@{address}/v1"))
        .with_api_key(KEY)
        .chat(hi())
        .await
        .unwrap_err();
    match &error {
        ProviderError::Connection { message, source } => {
            assert!(
                message.contains(&format!("http://{address}/v1")),
                "{message}"
            );
            assert!(source.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = format!("{} {error:?}", pae_core::error_chain(&error));
    assert!(!text.contains("hunter2") && !text.contains(KEY), "{text}");
}

#[tokio::test]
async fn retry_after_ms_is_honoured_before_a_stream_starts() {
    let good = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        delta_json("ok", Some("stop"))
    );
    let server = RawServer::start(move |n| match n {
        0 => Fault::Write(response(429, &[("retry-after-ms", "200")], "{}")),
        _ => Fault::Write(response(
            200,
            &[("content-type", "text/event-stream")],
            &good,
        )),
    })
    .await;
    let start = Instant::now();
    let (text, error) = stream_text(&model(&server.url).with_retry(fast_retries()), hi()).await;
    let elapsed = start.elapsed();
    assert_eq!((text.as_str(), error.is_none()), ("ok", true), "{error:?}");
    assert_eq!(server.accepted(), 2);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

/// The adapter with one fault added, to show the suite notices it.
struct Broken {
    inner: OpenAiChat,
    fault: Flaw,
}

#[derive(Clone, Copy)]
enum Flaw {
    /// Puts the key in every error message.
    LeaksKey,
    /// Reports every error as a retryable connection failure.
    EverythingRetryable,
}

impl Broken {
    fn spoil(&self, error: ProviderError) -> ProviderError {
        match self.fault {
            Flaw::LeaksKey => ProviderError::Backend {
                message: format!("{error} (key {KEY})"),
            },
            Flaw::EverythingRetryable => {
                ProviderError::connection("broken", std::io::Error::other(error.to_string()))
            }
        }
    }
}

#[async_trait::async_trait]
impl ChatModel for Broken {
    async fn chat(&self, request: ChatRequest) -> Result<pae_core::ChatResponse, ProviderError> {
        self.inner.chat(request).await.map_err(|e| self.spoil(e))
    }

    fn model_name(&self) -> String {
        "broken".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_fails_adapters_that_leak_keys_retry_everything_or_hang() {
    let suite = FaultSuite::new(OpenAiWire)
        .with_secret(KEY)
        .with_hang_limit(Duration::from_secs(3));
    let leaky = suite
        .run(|target| Broken {
            inner: build(target),
            fault: Flaw::LeaksKey,
        })
        .await;
    assert!(leaky.failed().contains(&Scenario::Unauthorized), "{leaky}");
    let greedy = suite
        .run(|target| Broken {
            inner: build(target),
            fault: Flaw::EverythingRetryable,
        })
        .await;
    for scenario in [
        Scenario::BadRequest,
        Scenario::ModelNotFound,
        Scenario::EmptyBody,
    ] {
        assert!(greedy.failed().contains(&scenario), "{scenario}: {greedy}");
    }
    // Built without the target's time limit, stalls hang (and are cut by the
    // suite's hard limit).
    let patient = suite
        .run(|target| {
            OpenAiChat::new("local")
                .with_base_url(format!("{}/v1", target.base_url))
                .with_api_key(KEY)
        })
        .await;
    for scenario in [Scenario::NoAnswer, Scenario::StreamStallsMidway] {
        assert!(
            matches!(patient.outcome(scenario), Some(Outcome::Failed { reason }) if reason.contains("hung")),
            "{scenario}: {patient}"
        );
    }
    assert!(patient.passed().contains(&Scenario::Reply));
}
