//! The shared fault suite (`pae_conformance::faults`) against the Ollama
//! adapter: error statuses, `Retry-After` in every form, garbage bodies,
//! stalls, cut and split streams, each in `/api/chat`'s wire format.

use std::time::Duration;

use pae_conformance::faults::{
    Fault, FaultSuite, ModelTarget, RawServer, WireFormat, chunked, response, stream_text,
};
use pae_core::{ChatModel, ChatRequest, Message, ProviderError};
use pae_ollama::OllamaChat;
use serde_json::json;

/// `/api/chat`'s wire format: JSON replies, newline-delimited JSON streams.
#[derive(Debug)]
struct OllamaWire;

impl WireFormat for OllamaWire {
    fn reply(&self, text: &str) -> String {
        json!({
            "model": "qwen", "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": true, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 1
        })
        .to_string()
    }

    fn stream_content_type(&self) -> &str {
        "application/x-ndjson"
    }

    fn stream_delta(&self, delta: &str) -> String {
        let line = json!({"model": "qwen", "created_at": "t",
            "message": {"role": "assistant", "content": delta}, "done": false});
        format!("{line}\n")
    }

    fn stream_end(&self) -> String {
        let line = json!({"model": "qwen", "created_at": "t",
            "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
            "prompt_eval_count": 5, "eval_count": 3});
        format!("{line}\n")
    }

    fn stream_error(&self, message: &str) -> String {
        format!("{}\n", json!({ "error": message }))
    }

    fn error_body(&self, message: &str) -> String {
        json!({ "error": message }).to_string()
    }

    fn incomplete_replies(&self) -> Vec<String> {
        [
            "{}",
            r#"{"model":"qwen","created_at":"t"}"#,
            r#"{"model":"qwen","created_at":"t","done":true,"done_reason":"stop"}"#,
            r#"{"model":"qwen","message":"hello","done":true}"#,
            r#"{"model":"qwen","message":null,"done":true}"#,
            "[]",
            "null",
            "\"hello\"",
            "42",
        ]
        .map(String::from)
        .to_vec()
    }
}

fn build(target: &ModelTarget) -> OllamaChat {
    OllamaChat::new("qwen")
        .with_host(&target.base_url)
        .with_timeout(target.timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_adapter_survives_every_fault_scenario() {
    FaultSuite::new(OllamaWire)
        .run(build)
        .await
        .assert_all_passed();
}

// ----- faults specific to the NDJSON wire format -----

/// A server whose every connection gets these parts as a chunked body.
async fn serve(content_type: &'static str, parts: Vec<Vec<u8>>) -> RawServer {
    RawServer::start(move |_| chunked(content_type, &parts)).await
}

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

fn model(url: &str) -> OllamaChat {
    OllamaChat::new("qwen")
        .with_host(url)
        .with_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn every_spelling_of_ndjson_gives_the_same_text() {
    let a = OllamaWire.stream_delta("Hé");
    let b = OllamaWire.stream_delta("llo");
    let end = OllamaWire.stream_end();
    let crlf = |line: &str| line.replace('\n', "\r\n");
    let spellings: Vec<(&str, String)> = vec![
        ("plain", format!("{a}{b}{end}")),
        ("CRLF", format!("{}{}{}", crlf(&a), crlf(&b), crlf(&end))),
        ("blank lines", format!("\n{a}\n\n{b}   \n{end}\n")),
        (
            "last line without newline",
            format!("{a}{b}{}", end.trim_end()),
        ),
        (
            "a whole reply (stream ignored), pretty-printed",
            serde_json::to_string_pretty(
                &serde_json::from_str::<serde_json::Value>(&OllamaWire.reply("Héllo")).unwrap(),
            )
            .unwrap(),
        ),
    ];
    for (name, body) in spellings {
        let server = serve("application/x-ndjson", vec![body.into_bytes()]).await;
        let (text, error) = stream_text(&model(&server.url), hi()).await;
        assert_eq!(
            (text.as_str(), error.map(|e| e.to_string())),
            ("Héllo", None),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_error_line_with_status_200_reports_the_message_and_keeps_the_partial_text() {
    let body = format!(
        "{}{{\"error\":\"llama runner process has terminated: signal: killed\"}}\n",
        OllamaWire.stream_delta("Hé")
    );
    let server = serve("application/x-ndjson", vec![body.into_bytes()]).await;
    let (text, error) = stream_text(&model(&server.url), hi()).await;
    assert_eq!(text, "Hé");
    assert!(
        matches!(&error, Some(ProviderError::StreamInterrupted { reason, partial })
            if reason.contains("terminated") && partial == "Hé"),
        "{error:?}"
    );
}

#[tokio::test]
async fn replies_and_lines_beyond_the_size_limit_are_refused_not_buffered() {
    let big = OllamaWire.reply(&"x".repeat(4 << 20));
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
    // A line that never ends, in a stream.
    let endless = vec![b'y'; 2 << 20];
    let server = serve("application/x-ndjson", vec![endless]).await;
    let (_, error) = stream_text(&model(&server.url).with_max_response_bytes(1 << 20), hi()).await;
    assert!(
        matches!(&error, Some(ProviderError::InvalidResponse { body, .. }) if body.len() <= 64 * 1024),
        "{:?}",
        error.map(|e| pae_core::error_chain(&e))
    );
}
