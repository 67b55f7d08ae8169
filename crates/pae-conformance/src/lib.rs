//! A conformance suite for [`ChatModel`](pae_core::ChatModel) adapters: one
//! call checks that a model keeps the contract the rest of `pae` relies on.
//!
//! Depend on it as a **dev-dependency** of an adapter crate (ours or your
//! own, outside this workspace) and call [`run`] from an integration test
//! with the model under test. The suite sends a dozen small requests at
//! temperature 0 with a fixed seed and checks, one [`Check`] each:
//!
//! | check | what a conforming model does |
//! | --- | --- |
//! | `plain_reply` | answers a plain request with assistant text |
//! | `stop_sequence` | cuts the reply before the stop text and leaves it out |
//! | `max_tokens` | stays within `max_tokens` (usage and length of text) |
//! | `usage` | reports prompt and completion tokens |
//! | `stream_matches_chat` | streams chunks that join to the `chat` reply, with a finish reason |
//! | `stream_incremental` | when it claims streaming, sends a multi-word reply in several chunks |
//! | `stream_stop_sequence` | honours stop sequences while streaming |
//! | `tool_call` | when it claims native tools, returns a forced call with name, JSON-object arguments and an id |
//! | `stream_tool_call` | the same, streamed |
//! | `tool_result` | accepts a conversation ending in a tool result and answers it |
//! | `json_schema` | when it claims JSON schema, returns JSON matching the schema |
//! | `invalid_request_rejected` | fails with a `ProviderError` (no panic, no reply) on a request without messages or forcing a tool it was not given |
//! | `unreachable_endpoint` | pointed at a closed port, fails with `Connection` or `Timeout` (runs when [`Options::with_unreachable`] is set) |
//!
//! Checks for capabilities the model does not claim are skipped, so a
//! minimal adapter passes with what it has, and every claim is put to the
//! test. The checks look at the contract (shape, stop, limits, types), never
//! at whether an answer is right, so small local models pass them too.
//! Several checks compare two replies to the same prompt, so the provider
//! must repeat itself at temperature 0 with a seed; where one cannot, skip
//! the check with [`Options::skip`] and say why.
//!
//! The [`Report`] lists one [`Outcome`] per check (passed, failed with the
//! evidence, or skipped with the reason); [`Report::assert_all_passed`]
//! prints it as a table and panics when a check failed.
//!
//! [`reference_model`] is a scripted model that keeps the whole contract:
//! the known-good subject of the suite's own tests, and a model to compare
//! yours with.
//!
//! # Fault suite (HTTP adapters)
//! The checks above run against a real server. An adapter that speaks HTTP
//! also has to survive a bad one; with the `fault-server` feature,
//! [`faults::FaultSuite`] runs about fifty fault scenarios against it, each
//! on a scripted raw server on 127.0.0.1: 429 with and without
//! `Retry-After` (seconds, HTTP date, `0`, a day, garbage), 5xx with HTML,
//! empty and JSON bodies, 400/401/403/404 (not retried, the API key never
//! shown), empty, non-JSON, HTML, incomplete, non-UTF-8, mislabelled and
//! 1 MiB bodies, error objects sent with status 200, no answer, stalled and
//! cut bodies, dropped, refused and non-HTTP connections, and for streams:
//! events split byte by byte (inside multi-byte characters), cut, stalled
//! at the start, midway or behind keep-alives, error events, a missing end,
//! and a whole reply instead of a stream. Each scenario asserts the number
//! of attempts under a fixed retry policy, the error's kind, status, body
//! and `retry_after`, and a bound on the time taken; nothing may hang or
//! panic. The adapter's tests supply only a constructor and its
//! [`faults::WireFormat`] (how a reply, a stream event, an error body look):
//! ```no_run
//! // tests/faults.rs of an adapter crate, with
//! // pae-conformance = { …, features = ["fault-server"] } in [dev-dependencies]
//! use pae_conformance::faults::{FaultSuite, ModelTarget, WireFormat};
//!
//! struct MyWire; // impl WireFormat for MyWire { … }
//! # impl WireFormat for MyWire {
//! #     fn reply(&self, text: &str) -> String { format!("{{\"text\": \"{text}\"}}") }
//! #     fn stream_content_type(&self) -> &str { "text/event-stream" }
//! #     fn stream_delta(&self, delta: &str) -> String { format!("data: {delta}\n\n") }
//! #     fn stream_end(&self) -> String { "data: [DONE]\n\n".into() }
//! #     fn stream_error(&self, message: &str) -> String { format!("event: error\ndata: {message}\n\n") }
//! #     fn error_body(&self, message: &str) -> String { format!("{{\"error\": \"{message}\"}}") }
//! #     fn incomplete_replies(&self) -> Vec<String> { vec!["{}".into()] }
//! # }
//! # struct MyModel;
//! # impl MyModel {
//! #     fn new(_: &str) -> Self { MyModel }
//! #     fn with_api_key(self, _: &str) -> Self { self }
//! #     fn with_timeout(self, limit: std::time::Duration) -> impl pae_core::ChatModel {
//! #         pae_core::Timeout::new(pae_conformance::reference_model(), limit)
//! #     }
//! # }
//!
//! #[tokio::test]
//! async fn my_adapter_survives_every_fault_scenario() {
//!     FaultSuite::new(MyWire)
//!         .with_secret("sk-test-key")
//!         .run(|target: &ModelTarget| {
//!             MyModel::new(&target.base_url)
//!                 .with_api_key("sk-test-key")
//!                 .with_timeout(target.timeout)
//!         })
//!         .await
//!         .assert_all_passed();
//! }
//! ```
//! The same module has the raw server itself ([`faults::RawServer`]) and
//! byte builders for faults specific to one wire format.
//!
//! # Feature flags
//! - `fault-server` (off): the [`faults`] module (a raw TCP fault server
//!   and [`faults::FaultSuite`]); adds Tokio's `net`, `io-util` and `rt`.
//!
//! The crate enables `pae-core`'s `test-util` feature for
//! [`reference_model`].
//!
//! # Example
//! In an adapter's `tests/conformance.rs`, with the model built as the
//! adapter's users build it:
//! ```
//! use pae_conformance::{Check, Options};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! let model = pae_conformance::reference_model(); // your adapter here
//! let report = pae_conformance::run(&model, &Options::default()).await;
//! report.assert_all_passed();
//! assert!(report.outcome(Check::StopSequence).unwrap().is_passed());
//! # });
//! ```
//! A check the provider cannot pass for a known reason can be skipped, and
//! an adapter built for a closed port enables the connection-error check:
//! ```
//! use pae_conformance::{Check, Options};
//! use pae_core::ProviderError;
//! use pae_core::test_util::ScriptedModel;
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! let unreachable = ScriptedModel::from_fn(|_| {
//!     ProviderError::connection("http://127.0.0.1:9", std::io::Error::other("refused")).into()
//! });
//! let options = Options::default()
//!     .skip(Check::StreamToolCall, "the server cannot stream tool calls")
//!     .with_unreachable(unreachable);
//! let report = pae_conformance::run(&pae_conformance::reference_model(), &options).await;
//! assert!(report.outcome(Check::StreamToolCall).unwrap().is_skipped());
//! assert!(report.outcome(Check::UnreachableEndpoint).unwrap().is_passed());
//! report.assert_all_passed();
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod env;
#[cfg(feature = "fault-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "fault-server")))]
pub mod faults;
#[cfg(feature = "fuzz")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzz")))]
pub mod fuzz;
mod options;
mod reference;
mod report;
pub mod store;
mod suite;
mod text;

pub use options::Options;
pub use reference::{reference_model, reference_reply};
pub use report::Report;
pub use suite::check::{Check, CheckResult, Outcome};
pub use suite::run;
