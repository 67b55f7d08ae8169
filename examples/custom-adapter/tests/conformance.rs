//! The adapter against the TinyChat server on 127.0.0.1: the conformance
//! suite passes, and each kind of failure maps to its `ProviderError`.

mod server;

use std::time::Duration;

use custom_adapter::TinyChatModel;
use futures::StreamExt;
use pae_conformance::{Check, Options};
use pae_core::{ChatModel, ChatRequest, Message, ProviderError};
use server::Server;

/// A base URL where nothing listens: a port bound and released.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hello there")])
}

#[tokio::test]
async fn tiny_chat_adapter_passes_the_conformance_suite() {
    let server = Server::start().await;
    let model = TinyChatModel::new(&server.url, "tiny-1").unwrap();
    let unreachable = TinyChatModel::new(&closed_port_url(), "tiny-1")
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let options = Options::default().with_unreachable(unreachable);
    let report = pae_conformance::run(&model, &options).await;
    // Stricter than `assert_all_passed`: no check may be skipped either, so
    // every capability the adapter claims was exercised.
    report.assert_passed(&Check::ALL);
}

#[tokio::test]
async fn http_errors_keep_status_body_and_retry_after() {
    let server = Server::start().await;
    let model = TinyChatModel::new(&server.url, "overloaded").unwrap();
    let error = model.chat(hello()).await.unwrap_err();
    match &error {
        ProviderError::Http {
            status,
            body,
            retry_after,
        } => {
            assert_eq!(*status, 429);
            assert_eq!(body, r#"{"error":{"message":"too busy"}}"#);
            assert_eq!(*retry_after, Some(Duration::from_secs(3)));
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert!(error.is_retryable());
    let Err(error) = model.stream(hello()).await else {
        panic!("a 429 must fail before the stream starts");
    };
    assert_eq!(error.status(), Some(429));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_invalid_response() {
    let server = Server::start().await;
    let model = TinyChatModel::new(&server.url, "garbage").unwrap();
    match model.chat(hello()).await.unwrap_err() {
        ProviderError::InvalidResponse { body, .. } => assert_eq!(body, "this is not JSON"),
        other => panic!("expected an invalid response, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_cut_short_reports_the_text_received() {
    let server = Server::start().await;
    let model = TinyChatModel::new(&server.url, "cut-stream").unwrap();
    let items: Vec<_> = model.stream(hello()).await.unwrap().collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    match &items[2] {
        Err(ProviderError::StreamInterrupted { partial, .. }) => {
            assert_eq!(partial, "You said: ");
        }
        other => panic!("expected an interrupted stream, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_requests_fail_before_any_http_call() {
    let server = Server::start().await;
    let model = TinyChatModel::new(&server.url, "tiny-1").unwrap();
    let error = model.chat(ChatRequest::new(Vec::new())).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { .. }),
        "{error}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_connection_error() {
    let model = TinyChatModel::new(&closed_port_url(), "tiny-1").unwrap();
    let error = model.chat(hello()).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Connection { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(std::error::Error::source(&error).is_some());
}
