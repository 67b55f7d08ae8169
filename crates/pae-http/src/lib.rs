//! What `pae`'s HTTP adapters share, so that each adapter is only its wire
//! format: reading bodies within bounds, capturing error bodies, reading
//! `Retry-After`, keeping API keys out of messages, mapping reqwest's
//! failures into [`pae_core::ProviderError`], decoding server-sent events
//! and splitting line-based bodies.
//!
//! Depend on it when you write an adapter for a provider reached over HTTP
//! with reqwest (`pae-openai`, `pae-ollama` and `examples/custom-adapter`
//! do). It depends on `pae-core`, reqwest, `bytes`, `futures`, tokio's
//! `time` and `httpdate`, and never on an adapter; `pae-core` itself has no
//! HTTP code.
//!
//! - Bounds: [`read_body`] refuses a body above a size limit
//!   ([`DEFAULT_MAX_RESPONSE_BYTES`]); [`check_status`] and [`http_error`]
//!   turn an error status into [`ProviderError::Http`] with at most
//!   [`ERROR_BODY_BYTES`] of the body, read within [`ERROR_BODY_WAIT`];
//!   [`body_excerpt`], [`invalid_response`] and [`too_large`] keep bodies in
//!   errors bounded.
//! - Waits: [`parse_retry_after`] and [`retry_after`] read `Retry-After` as
//!   seconds or as an HTTP date in any of RFC 9110's three forms.
//! - Secrets: [`ApiKey`] never prints and scrubs itself from server text;
//!   [`redact_url`] removes credentials and queries from URLs in messages.
//! - Failures: [`transport_error`] maps reqwest's errors.
//! - Streams: [`SseDecoder`] for server-sent events and [`LineSplitter`]
//!   for NDJSON, both bounded and linear in the bytes fed.
//!
//! # Feature flags
//! None. TLS is chosen by the adapter (through reqwest's features).
//!
//! # Example
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use pae_http::{ApiKey, LineSplitter, parse_retry_after, redact_url};
//!
//! let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
//! assert_eq!(
//!     parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
//!     Some(Duration::from_secs(60))
//! );
//!
//! let key = ApiKey::new("sk-secret");
//! assert_eq!(format!("{key:?}"), "<redacted>");
//! assert_eq!(key.scrub("bad key sk-secret"), "bad key <redacted>");
//! assert_eq!(redact_url("https://me:pw@example.com/v1?key=k"), "https://example.com/v1");
//!
//! let mut lines = LineSplitter::new(16);
//! lines.push(b"{\"done\":true}\n");
//! assert_eq!(lines.next_line(), Some(Ok(b"{\"done\":true}".to_vec())));
//! ```

mod body;
mod limits;
mod lines;
mod redact;
mod retry_after;
mod sse;
mod transport;

pub use body::{
    ByteStream, body_excerpt, byte_stream, check_status, http_error, invalid_response, read_body,
    too_large,
};
pub use bytes::Bytes;
pub use limits::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, ERROR_BODY_BYTES, ERROR_BODY_WAIT};
pub use lines::{LineSplitter, LineTooLong};
pub use redact::{ApiKey, redact, redact_url};
pub use retry_after::{parse_retry_after, retry_after};
pub use sse::{SseDecoder, SseEvent};
pub use transport::transport_error;

#[cfg(doc)]
use pae_core::ProviderError;
