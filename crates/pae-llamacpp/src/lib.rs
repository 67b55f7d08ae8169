//! A `pae` chat model that runs a GGUF model in-process through llama.cpp
//! (the `llama-cpp-2` crate), with grammar-constrained JSON and tool-call
//! output.
//!
//! [`LlamaCppModel`] implements [`pae_core::ChatModel`]: it applies the
//! model's own chat template, honours stop sequences (also when they are
//! split across tokens), temperature, top-p, `max_tokens` and the seed
//! (temperature 0 is greedy and deterministic), reports prompt and
//! completion tokens, and streams tokens as they are generated. A JSON
//! schema response format is enforced with a llama.cpp grammar, so the
//! reply always parses; native tool calls use the same mechanism (the
//! reply is constrained to `{"name": <tool>, "arguments": <its schema>}` or
//! plain text), which makes small models usable for structured planning and
//! tool use.
//!
//! Inference runs on dedicated worker threads, never on the async runtime's
//! threads. One loaded model is shared by all clones; each worker owns one
//! llama.cpp context, and requests beyond the number of workers
//! ([`LlamaCppConfig::with_workers`], default 1) wait in a FIFO queue.
//!
//! Depend on this crate when you want an offline model with no server and no
//! API key. It compiles llama.cpp with cmake (a few minutes the first time),
//! which is why it is a crate of its own: nothing else in `pae` depends on
//! it. Building needs `cmake`, a C++ compiler and `libclang` (Debian:
//! `apt-get install cmake clang libclang-dev`). llama.cpp picks its vector
//! kernels from the Rust target features: a build for baseline x86-64 (no
//! AVX) runs several times slower. This workspace's `.cargo/config.toml`
//! builds for `x86-64-v3` (AVX2, FMA); in your own project set
//! `RUSTFLAGS="-C target-cpu=x86-64-v3"` (or `target-cpu=native` when the
//! binary and the build cache never leave the machine).
//!
//! # Feature flags
//! None.
//!
//! # Example
//! Loading needs a model file, so this example only shows the failure you
//! get without one:
//! ```
//! use pae_core::ProviderError;
//! use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
//!
//! let config = LlamaCppConfig::new("/no/such/model.gguf").with_context_size(4096);
//! match LlamaCppModel::load(config) {
//!     Err(ProviderError::Configuration { message }) => assert!(message.contains("not found")),
//!     other => panic!("unexpected: {other:?}"),
//! }
//! ```
//!
//! With a model:
//! ```no_run
//! use pae_core::{ChatModel, ChatRequest, Message, ResponseFormat};
//! use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
//!
//! # async fn demo() -> Result<(), pae_core::ProviderError> {
//! let model = LlamaCppModel::load(LlamaCppConfig::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))?;
//! let request = ChatRequest::new(vec![Message::user("Plan a picnic in three steps.")])
//!     .with_response_format(ResponseFormat::json_schema(
//!         "plan",
//!         serde_json::json!({"type": "object",
//!             "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
//!             "required": ["steps"]}),
//!     ))
//!     .with_temperature(0.0);
//! let reply = model.chat(request).await?;
//! let plan: serde_json::Value = serde_json::from_str(reply.content()).expect("always parses");
//! println!("{plan}");
//! # Ok(()) }
//! ```

mod config;
mod disk_cache;
mod engine;
mod grammar;
mod model;
mod prompt;
mod rendered;
mod text;

pub use config::{DEFAULT_CONTEXT_SIZE, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, LlamaCppConfig};
pub use model::LlamaCppModel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LlamaCppModel>();
        check::<LlamaCppConfig>();
    }
}
