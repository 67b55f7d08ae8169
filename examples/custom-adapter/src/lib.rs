//! An example `pae` adapter: [`TinyChatModel`] speaks the TinyChat API, a
//! small made-up HTTP JSON API, and passes the conformance suite.
//!
//! Copy it when you write an adapter for a new provider (CONTRIBUTING.md at
//! the repository root walks through the steps). It shows the parts every
//! adapter has:
//!
//! - the provider's wire types kept private (`wire.rs`), translated from
//!   and to pae's [`ChatRequest`](pae_core::ChatRequest),
//!   [`ChatResponse`](pae_core::ChatResponse) and
//!   [`ChatChunk`](pae_core::ChatChunk);
//! - requests no provider can answer rejected before any network call with
//!   [`ChatRequest::validate`](pae_core::ChatRequest::validate);
//! - every failure mapped into [`ProviderError`](pae_core::ProviderError):
//!   HTTP status (with the body and `Retry-After`), connection failure,
//!   time-out, unparsable body, broken stream, bad configuration;
//! - what every HTTP adapter needs, taken from `pae-http` rather than
//!   written again: the status check with a bounded error body and
//!   `Retry-After`, reads bounded by a size limit, the mapping of reqwest's
//!   failures, and a line splitter for the NDJSON stream;
//! - capabilities claimed only for what the API does;
//! - `tests/conformance.rs`, which serves the API on 127.0.0.1 and runs
//!   `pae_conformance::run` against the adapter.
//!
//! # The TinyChat API
//! `POST {base}/generate` with a JSON body:
//! `model`, `messages` (`role`, `text`, and `calls` / `call_id` / `tool`
//! for tool calls and results), optional `stop`, `limit` (most tokens),
//! `temperature`, `seed`, `tools` (`name`, `description`, `input_schema`),
//! `force_tool` (a tool name) and `schema` (a JSON schema for the text), and
//! `stream`. The reply is `{"text", "calls", "end", "tokens": {"in", "out"}}`
//! with `end` one of `done`, `limit`, `calls`; streamed, it is NDJSON lines
//! `{"text": …}`, the last one carrying `end` and `tokens`. Errors are
//! non-2xx statuses with a JSON body, `Retry-After` on 429.
//!
//! # Feature flags
//! None.
//!
//! # Example
//! ```
//! use pae_core::{ChatModel, ChatRequest, Message, ProviderError};
//! use custom_adapter::TinyChatModel;
//!
//! // Bind and drop a listener to get a port where nothing listens.
//! let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let model = TinyChatModel::new(&format!("http://127.0.0.1:{port}"), "tiny-1").unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let error = rt
//!     .block_on(model.chat(ChatRequest::new(vec![Message::user("hi")])))
//!     .unwrap_err();
//! assert!(matches!(error, ProviderError::Connection { .. }));
//! assert!(error.is_retryable());
//! ```

mod model;
mod wire;

pub use model::{DEFAULT_TIMEOUT, TinyChatModel};
