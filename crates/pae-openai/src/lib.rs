//! The OpenAI adapter of `pae`: a [`pae_core::ChatModel`] over the
//! chat-completions API, for OpenAI and any OpenAI-compatible server
//! (llama.cpp and llama-cpp-python servers, vLLM, Ollama's `/v1`, …).
//!
//! Depend on it when your agent talks to such a server; swap it for another
//! adapter crate to change provider. The rest of `pae` sees only
//! [`pae_core::ChatModel`], so nothing else changes.
//!
//! Request bodies are built with async-openai's types and sent through a
//! reqwest client of our own, so that errors keep what a caller needs to act
//! on them: the HTTP status, the raw body, and `Retry-After`. Replies are
//! read leniently (see the `wire` notes in [`OpenAiChat`]). No async-openai
//! type appears in the API apart from the `raw-client` escape hatch.
//!
//! Retries and overall time limits are not built in: wrap the model with
//! [`pae_core::ChatModelExt::with_retry`] and
//! [`pae_core::ChatModelExt::with_timeout`].
//!
//! # Configuration
//! - [`OpenAiChat::from_env`] reads `OPENAI_API_KEY` and `OPENAI_BASE_URL`.
//! - [`OpenAiChat::new`] plus `with_base_url`, `with_api_key`,
//!   `with_timeout`, `with_capabilities`, `with_schema_mode`,
//!   `with_token_limit_field`, `with_stream_usage`, `with_max_response_bytes`,
//!   `with_http_client`.
//!
//! For llama-cpp-python's server, send JSON schemas in its own form and
//! report what a small local model really does:
//! `.with_schema_mode(SchemaMode::JsonObjectWithSchema)` and
//! `.with_capabilities(Capabilities { native_tools: false, json_schema: true,
//! streaming: true })` (it returns structured tool calls only when
//! `tool_choice` names the function).
//!
//! The API key never appears in `Debug` output, error messages or error
//! bodies (an echoed key is replaced by `<redacted>`).
//!
//! # Feature flags
//! - `raw-client` (off): [`OpenAiChat::raw_client`], an
//!   `async_openai::Client` with the same base URL and key, for endpoints
//!   pae does not cover. It adds async-openai's HTTP stack to the build.
//!
//! TLS is rustls; no OpenSSL is needed.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use pae_core::{ChatModel, ChatModelExt, ChatRequest, Message, RetryPolicy};
//! use pae_openai::{OpenAiChat, SchemaMode};
//!
//! let model = OpenAiChat::new("local")
//!     .with_base_url("http://127.0.0.1:18080/v1")
//!     .with_api_key("sk-not-printed")
//!     .with_schema_mode(SchemaMode::JsonObjectWithSchema)
//!     .with_timeout(Duration::from_secs(60));
//! assert!(!format!("{model:?}").contains("sk-not-printed"));
//! assert_eq!(model.model_name(), "local");
//!
//! let request = ChatRequest::new(vec![Message::user("Say hi")]).with_stop(["\n"]);
//! let body = model.request_body(&request, false).unwrap();
//! assert_eq!(body["stop"], serde_json::json!(["\n"]));
//!
//! // Retries with backoff come from pae-core's wrapper:
//! let robust = model.with_retry(RetryPolicy::new().with_max_attempts(4));
//! assert!(robust.capabilities().streaming);
//! ```

mod chat;
mod sse;
mod wire;

pub use chat::{DEFAULT_BASE_URL, OpenAiChat};
pub use pae_http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use wire::{SchemaMode, TokenLimitField};
