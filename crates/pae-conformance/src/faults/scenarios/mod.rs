//! The fault scenarios, each declared once in the table below: its
//! documentation, its variant of [`Scenario`], and the [`Runner`] method
//! that runs it (whose name is the scenario's name in reports). The methods
//! live in one module per concern: error statuses and `Retry-After`
//! ([`status`]), bodies ([`body`]), connections ([`connection`]) and
//! streams ([`stream`]).

mod body;
mod connection;
mod status;
mod stream;

use std::fmt;

use pae_core::ChatModel;

use super::runner::{Check, Runner};
use super::{ModelTarget, WireFormat};

/// Declares [`Scenario`] (with [`Scenario::ALL`] and [`Scenario::name`])
/// and [`Runner::scenario`] from one table of `Variant => method` rows.
macro_rules! scenarios {
    ($($(#[$doc:meta])* $variant:ident => $run:ident,)*) => {
        /// One fault scenario of [`FaultSuite`](super::FaultSuite).
        /// [`Scenario::ALL`] lists them in the order of the report.
        ///
        /// The suite wraps the model in [`pae_core::Retry`] with
        /// [`FaultSuite::retry_policy`](super::FaultSuite::retry_policy) (3
        /// attempts, 50 ms then 100 ms backoff, no jitter, `Retry-After`
        /// honoured up to 5 s), so "retried" below means 3 attempts in all
        /// and "not retried" one. Every error is also checked for the
        /// secret given to
        /// [`FaultSuite::with_secret`](super::FaultSuite::with_secret), in
        /// its `Display` (with sources) and `Debug` output.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Scenario {
            $($(#[$doc])* $variant,)*
        }

        impl Scenario {
            /// Every scenario, in report order.
            pub const ALL: [Scenario; [$(Scenario::$variant),*].len()] = [$(Scenario::$variant),*];

            /// The scenario's name in reports, in snake case.
            pub fn name(self) -> &'static str {
                match self {
                    $(Scenario::$variant => stringify!($run),)*
                }
            }
        }

        impl<W, F, M> Runner<'_, W, F>
        where
            W: WireFormat,
            F: Fn(&ModelTarget) -> M,
            M: ChatModel,
        {
            /// Runs `scenario`: passed with what was seen, or failed with
            /// the reason.
            pub(in crate::faults) async fn scenario(&self, scenario: Scenario) -> Check {
                match scenario {
                    $(Scenario::$variant => self.$run().await,)*
                }
            }
        }
    };
}

scenarios! {
    /// HTTP 200 with a reply: the reply, in one attempt (the baseline).
    Reply => reply,
    /// HTTP 429 without `Retry-After`, then a reply: retried after the
    /// policy's backoff.
    RateLimitedWithoutRetryAfter => rate_limited_without_retry_after,
    /// HTTP 429 with `Retry-After: 1`, then a reply: retried after at least
    /// a second.
    RetryAfterSeconds => retry_after_seconds,
    /// HTTP 503 with `Retry-After` as an HTTP date two seconds ahead, then
    /// a reply: retried after the wait the date gives.
    RetryAfterHttpDate => retry_after_http_date,
    /// HTTP 429 with `Retry-After: 0`, then a reply: retried at once.
    RetryAfterZero => retry_after_zero,
    /// HTTP 429 with `Retry-After: 86400`: not waited out; the error comes
    /// back at once with `status` 429 and `retry_after` of a day.
    RetryAfterHuge => retry_after_huge,
    /// HTTP 429 with an unparseable `Retry-After`: `retry_after` is `None`
    /// and the policy's backoff is used; after 3 attempts, HTTP 429.
    RetryAfterGarbage => retry_after_garbage,
    /// HTTP 503 with an HTML page: retried; then HTTP 503 with the page as
    /// the body.
    ServiceUnavailableHtml => service_unavailable_html,
    /// HTTP 502 with an empty body: retried; then HTTP 502, empty body.
    BadGatewayEmpty => bad_gateway_empty,
    /// HTTP 500 with the provider's JSON error: retried; then HTTP 500 with
    /// the JSON as the body.
    InternalErrorJson => internal_error_json,
    /// HTTP 400 with the provider's JSON error: not retried; HTTP 400 with
    /// the body.
    BadRequest => bad_request,
    /// HTTP 401 whose body echoes the API key: not retried; HTTP 401, and
    /// the key appears nowhere in the error.
    Unauthorized => unauthorized,
    /// HTTP 403, body echoing the key: not retried; HTTP 403, key hidden.
    Forbidden => forbidden,
    /// HTTP 404 (model not found): not retried; HTTP 404 with the body.
    ModelNotFound => model_not_found,
    /// HTTP 500 with a 16 MiB body: retried, HTTP 500, in bounded time and
    /// memory: the body kept is its beginning, at most 1 MiB.
    HugeErrorBody => huge_error_body,
    /// HTTP 503 whose body stalls after the headers: retried; HTTP 503 or
    /// `Timeout`, never a hang.
    ErrorBodyStalls => error_body_stalls,
    /// HTTP 200 with an empty body: `InvalidResponse`, not retried.
    EmptyBody => empty_body,
    /// HTTP 200 with plain text: `InvalidResponse` with that text.
    NonJsonBody => non_json_body,
    /// HTTP 200 with an HTML page: `InvalidResponse` with the page.
    HtmlBody => html_body,
    /// HTTP 200 with each of [`WireFormat::incomplete_replies`]:
    /// `InvalidResponse` with the body, not retried.
    IncompleteJson => incomplete_json,
    /// HTTP 200 with [`WireFormat::error_reply`]: an error (never a reply)
    /// whose message carries the server's (or, for an `Http` error, whose
    /// body does); retried only when the error says it is retryable.
    ErrorObjectWithStatus200 => error_object_with_status_200,
    /// HTTP 200 with a reply whose text holds bytes that are not UTF-8: no
    /// panic; `InvalidResponse`, or a reply with U+FFFD in place of them.
    InvalidUtf8Body => invalid_utf8_body,
    /// HTTP 200 with a reply labelled `text/html`: the reply (the
    /// content type of a whole reply is not trusted either way).
    WrongContentType => wrong_content_type,
    /// HTTP 200 with a 1 MiB reply of multi-byte text: the whole text.
    LargeBody => large_body,
    /// The server reads the request and never answers: `Timeout` after the
    /// target's limit, retried.
    NoAnswer => no_answer,
    /// Headers and the first bytes of the body, then nothing: `Timeout`,
    /// retried.
    BodyStalls => body_stalls,
    /// Headers and part of a `content-length` body, then the connection
    /// closes: a retryable error, retried.
    BodyCut => body_cut,
    /// The connection closes after the request, with no answer: a
    /// retryable `Connection` error, retried.
    DroppedConnection => dropped_connection,
    /// The connection closes as soon as it is accepted: a retryable
    /// `Connection` error, retried.
    ClosedOnAccept => closed_on_accept,
    /// Nothing listens on the port: a retryable `Connection` error, retried
    /// within the policy's backoff.
    ConnectionRefused => connection_refused,
    /// The server answers with bytes that are not HTTP: an error, no panic.
    NotHttp => not_http,
    /// A stream of three events and its end: the text, with a finish
    /// reason.
    StreamReply => stream_reply,
    /// The same stream sent one byte per write, splitting events, lines
    /// and multi-byte characters: the same text.
    StreamSplitBytes => stream_split_bytes,
    /// A stream cut in the middle of an event: the text so far, then
    /// `StreamInterrupted` whose `partial` is that text.
    StreamCutMidEvent => stream_cut_mid_event,
    /// A stream whose body ends properly but without the end event:
    /// `StreamInterrupted` with the partial text.
    StreamWithoutEnd => stream_without_end,
    /// A stream that stops sending after two events: the two chunks, then
    /// `Timeout` after the limit (not retried: text was delivered).
    StreamStallsMidway => stream_stalls_midway,
    /// Stream headers, then nothing: `Timeout`, retried.
    StreamStallsAtStart => stream_stalls_at_start,
    /// One event, then only keep-alives (comments, blank lines) for longer
    /// than the limit: the chunk, then `Timeout` (keep-alives carry no
    /// reply, so they do not reset the limit).
    StreamKeepAliveOnly => stream_keep_alive_only,
    /// An error event after the first event: the first chunk, then an
    /// error carrying the server's message, and nothing after it.
    StreamErrorEvent => stream_error_event,
    /// An error event as the first event: an error with the message;
    /// retried only when the error says it is retryable.
    StreamErrorFirst => stream_error_first,
    /// HTTP 429 to the stream request, then a stream: retried, the text.
    StreamRateLimited => stream_rate_limited,
    /// HTTP 500 to every stream request: retried; HTTP 500.
    StreamServerError => stream_server_error,
    /// HTTP 401 to the stream request, body echoing the key: not retried,
    /// key hidden.
    StreamUnauthorized => stream_unauthorized,
    /// HTTP 200 with an HTML page for a stream request: an error that
    /// shows the page (in its body or message), no text.
    StreamHtmlBody => stream_html_body,
    /// HTTP 200 with an empty body for a stream request: an error.
    StreamEmptyBody => stream_empty_body,
    /// A server that ignores `stream: true` and sends a whole reply as
    /// `application/json`: the reply's text as the stream.
    StreamWholeReply => stream_whole_reply,
    /// A stream event whose text holds bytes that are not UTF-8: no panic;
    /// text with U+FFFD, or an error.
    StreamInvalidUtf8 => stream_invalid_utf8,
    /// A stream request to a port where nothing listens: `Connection`.
    StreamConnectionRefused => stream_connection_refused,
    /// A stream request whose connection closes without an answer: a
    /// retryable `Connection` error, retried.
    StreamDroppedConnection => stream_dropped_connection,
}

impl Scenario {
    /// Whether the scenario calls [`ChatModel::stream`].
    pub fn is_streaming(self) -> bool {
        self.name().starts_with("stream_")
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_streaming_is_marked() {
        assert_eq!(Scenario::ALL.len(), 49, "ARCHITECTURE.md gives the count");
        let names: std::collections::HashSet<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Scenario::ALL.len());
        assert!(Scenario::StreamSplitBytes.is_streaming());
        assert!(!Scenario::BodyStalls.is_streaming());
        let mut sorted = Scenario::ALL;
        sorted.sort();
        assert_eq!(sorted, Scenario::ALL, "ALL is in declaration order");
    }
}
