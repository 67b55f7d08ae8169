//! What the adapter under test tells [`FaultSuite`](super::FaultSuite)(super::FaultSuite):
//! its wire format, and where its model must send requests.

use std::time::Duration;

/// The bytes a provider's server sends, so that [`FaultSuite`](super::FaultSuite) can build
/// faulty answers in that provider's format. Implement it in the adapter's
/// tests; every method returns text as it goes on the wire.
pub trait WireFormat: Send + Sync {
    /// A complete, successful non-streamed reply whose assistant text is
    /// `text` (a JSON document). `text` never needs JSON escaping.
    fn reply(&self, text: &str) -> String;

    /// The `content-type` of a streamed reply (`text/event-stream`,
    /// `application/x-ndjson`, …).
    fn stream_content_type(&self) -> &str;

    /// One streamed event carrying the text `delta` and no finish reason,
    /// with its line ending(s).
    fn stream_delta(&self, delta: &str) -> String;

    /// What completes a streamed reply: the event with the finish reason
    /// (and usage), and any end marker (`data: [DONE]`).
    fn stream_end(&self) -> String;

    /// An error event inside a streamed reply that began with HTTP 200
    /// (`data: {"error": …}`, `{"error": "…"}`).
    fn stream_error(&self, message: &str) -> String;

    /// The JSON body the provider sends with an HTTP error status.
    fn error_body(&self, message: &str) -> String;

    /// A body sent with HTTP 200 that reports an error instead of a reply
    /// (OpenAI-compatible servers and proxies do this). By default the same
    /// as [`error_body`](Self::error_body).
    fn error_reply(&self, message: &str) -> String {
        self.error_body(message)
    }

    /// What the server sends to keep a quiet stream open (a comment
    /// line in server-sent events, a blank line in NDJSON). By default a
    /// blank line.
    fn stream_keep_alive(&self) -> String {
        String::from("\n")
    }

    /// Well-formed JSON bodies that are not replies (a required field
    /// missing, an empty list of choices). Each must fail with
    /// [`ProviderError::InvalidResponse`](pae_core::ProviderError::InvalidResponse) carrying the body.
    fn incomplete_replies(&self) -> Vec<String>;
}

/// Where the model under test must send its requests, and the time limit
/// it must be built with. Given to the constructor passed to
/// [`FaultSuite::run`](super::FaultSuite::run).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelTarget {
    /// The fault server's base URL, `http://127.0.0.1:<port>`: point the
    /// adapter at it (add your API's path prefix, such as `/v1`).
    pub base_url: String,
    /// The time limit to build the model with (the adapter's own timeout,
    /// or wrap the adapter in [`pae_core::Timeout`]). Stall scenarios
    /// expect [`ProviderError::Timeout`](pae_core::ProviderError::Timeout) after it.
    pub timeout: Duration,
}
