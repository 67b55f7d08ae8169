//! The Ollama adapter of `pae`: a [`pae_core::ChatModel`] over Ollama's
//! native chat API (`/api/chat`), with tools, JSON-schema `format`, options
//! and NDJSON streaming.
//!
//! Depend on it when your agent talks to an Ollama server; swap it for
//! another adapter crate to change provider. (Ollama also serves an
//! OpenAI-compatible `/v1`, which `pae-openai` can use; this crate speaks
//! the native API, which reports token counts and `done_reason` and takes
//! a JSON schema as `format`.)
//!
//! Request bodies are built with ollama-rs's types and sent through a
//! reqwest client of our own (the same reqwest ollama-rs uses), so that
//! errors keep the HTTP status, the raw body and `Retry-After`, and a stream
//! cut before its final line is reported instead of ending quietly. No
//! ollama-rs type appears in the API apart from [`OllamaChat::raw_client`].
//!
//! Retries and time limits across calls come from pae-core's wrappers:
//! [`pae_core::ChatModelExt::with_retry`] and
//! [`pae_core::ChatModelExt::with_timeout`].
//!
//! # Configuration
//! - [`OllamaChat::from_env`] reads `OLLAMA_HOST` (as Ollama does).
//! - [`OllamaChat::new`] plus `with_host`, `with_timeout`,
//!   `with_capabilities`, `with_tools_with_format`, `with_max_response_bytes`,
//!   `with_http_client`;
//!   [`OllamaChat::detect_capabilities`] asks the server whether the model
//!   supports tools.
//!
//! # Feature flags
//! None. TLS (for a remote `https://` host) is rustls.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use pae_core::{ChatModel, ChatModelExt, ChatRequest, Message, ResponseFormat, RetryPolicy,
//!     ToolSpec};
//! use pae_ollama::OllamaChat;
//!
//! let model = OllamaChat::new("qwen2.5-coder:0.5b")
//!     .with_host("127.0.0.1:11434")
//!     .with_timeout(Duration::from_secs(120));
//! assert_eq!(model.model_name(), "qwen2.5-coder:0.5b");
//!
//! let request = ChatRequest::new(vec![Message::user("Plan a trip")])
//!     .with_max_tokens(64)
//!     .with_stop(["<END_OF_PLAN>"]);
//! let body = model.request_body(&request, true).unwrap();
//! assert_eq!(body["options"]["num_predict"], 64);
//! assert_eq!(body["stream"], true);
//!
//! // Tools and a format are never sent together (ollama#8095).
//! let both = request
//!     .with_response_format(ResponseFormat::json_schema("plan", serde_json::json!({"type": "object"})))
//!     .with_tools(vec![ToolSpec {
//!         name: "calculator".into(),
//!         description: "Arithmetic.".into(),
//!         parameters: serde_json::json!({"type": "object"}),
//!     }]);
//! assert!(model.request_body(&both, false).is_err());
//!
//! let robust = model.with_retry(RetryPolicy::new());
//! assert!(robust.capabilities().native_tools);
//! ```

mod chat;
mod ndjson;
mod wire;

pub use chat::{DEFAULT_HOST, OllamaChat};
pub use pae_http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use wire::ToolsWithFormat;
