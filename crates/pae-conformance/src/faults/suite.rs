//! [`FaultSuite`]: fault scenarios every HTTP adapter must survive, run
//! against [`RawServer`](super::RawServer)s with the adapter's own
//! constructor and wire format.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use pae_core::{
    ChatModel, ChatRequest, ChatResponse, Message, ProviderError, Retry, RetryPolicy, error_chain,
};

use super::{Action, Fault, LAST_CHUNK, RawServer, chunk, chunked, chunked_head, response};
use crate::Outcome;
use crate::report::{Row, write_table};
use crate::suite::{describe, panic_text};

/// The bytes a provider's server sends, so that [`FaultSuite`] can build
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
    /// [`ProviderError::InvalidResponse`] carrying the body.
    fn incomplete_replies(&self) -> Vec<String>;
}

/// Where the model under test must send its requests, and the time limit
/// it must be built with. Given to the constructor passed to
/// [`FaultSuite::run`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelTarget {
    /// The fault server's base URL, `http://127.0.0.1:<port>`: point the
    /// adapter at it (add your API's path prefix, such as `/v1`).
    pub base_url: String,
    /// The time limit to build the model with (the adapter's own timeout,
    /// or wrap the adapter in [`pae_core::Timeout`]). Stall scenarios
    /// expect [`ProviderError::Timeout`] after it.
    pub timeout: Duration,
}

/// One fault scenario of [`FaultSuite`]. [`Scenario::ALL`] lists them in
/// the order of the report.
///
/// The suite wraps the model in [`pae_core::Retry`] with
/// [`FaultSuite::retry_policy`] (3 attempts, 50 ms then 100 ms backoff, no
/// jitter, `Retry-After` honoured up to 5 s), so "retried" below means 3
/// attempts in all and "not retried" one. Every error is also checked for
/// the secret given to [`FaultSuite::with_secret`], in its `Display`
/// (with sources) and `Debug` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scenario {
    /// HTTP 200 with a reply: the reply, in one attempt (the baseline).
    Reply,
    /// HTTP 429 without `Retry-After`, then a reply: retried after the
    /// policy's backoff.
    RateLimitedWithoutRetryAfter,
    /// HTTP 429 with `Retry-After: 1`, then a reply: retried after at least
    /// a second.
    RetryAfterSeconds,
    /// HTTP 503 with `Retry-After` as an HTTP date two seconds ahead, then
    /// a reply: retried after the wait the date gives.
    RetryAfterHttpDate,
    /// HTTP 429 with `Retry-After: 0`, then a reply: retried at once.
    RetryAfterZero,
    /// HTTP 429 with `Retry-After: 86400`: not waited out; the error comes
    /// back at once with `status` 429 and `retry_after` of a day.
    RetryAfterHuge,
    /// HTTP 429 with an unparseable `Retry-After`: `retry_after` is `None`
    /// and the policy's backoff is used; after 3 attempts, HTTP 429.
    RetryAfterGarbage,
    /// HTTP 503 with an HTML page: retried; then HTTP 503 with the page as
    /// the body.
    ServiceUnavailableHtml,
    /// HTTP 502 with an empty body: retried; then HTTP 502, empty body.
    BadGatewayEmpty,
    /// HTTP 500 with the provider's JSON error: retried; then HTTP 500 with
    /// the JSON as the body.
    InternalErrorJson,
    /// HTTP 400 with the provider's JSON error: not retried; HTTP 400 with
    /// the body.
    BadRequest,
    /// HTTP 401 whose body echoes the API key: not retried; HTTP 401, and
    /// the key appears nowhere in the error.
    Unauthorized,
    /// HTTP 403, body echoing the key: not retried; HTTP 403, key hidden.
    Forbidden,
    /// HTTP 404 (model not found): not retried; HTTP 404 with the body.
    ModelNotFound,
    /// HTTP 500 with a 16 MiB body: retried, HTTP 500, in bounded time and
    /// memory: the body kept is its beginning, at most 1 MiB.
    HugeErrorBody,
    /// HTTP 503 whose body stalls after the headers: retried; HTTP 503 or
    /// `Timeout`, never a hang.
    ErrorBodyStalls,
    /// HTTP 200 with an empty body: `InvalidResponse`, not retried.
    EmptyBody,
    /// HTTP 200 with plain text: `InvalidResponse` with that text.
    NonJsonBody,
    /// HTTP 200 with an HTML page: `InvalidResponse` with the page.
    HtmlBody,
    /// HTTP 200 with each of [`WireFormat::incomplete_replies`]:
    /// `InvalidResponse` with the body, not retried.
    IncompleteJson,
    /// HTTP 200 with [`WireFormat::error_reply`]: an error (never a reply)
    /// whose message carries the server's (or, for an `Http` error, whose
    /// body does); retried only when the error says it is retryable.
    ErrorObjectWithStatus200,
    /// HTTP 200 with a reply whose text holds bytes that are not UTF-8: no
    /// panic; `InvalidResponse`, or a reply with U+FFFD in place of them.
    InvalidUtf8Body,
    /// HTTP 200 with a reply labelled `text/html`: the reply (the
    /// content type of a whole reply is not trusted either way).
    WrongContentType,
    /// HTTP 200 with a 1 MiB reply of multi-byte text: the whole text.
    LargeBody,
    /// The server reads the request and never answers: `Timeout` after the
    /// target's limit, retried.
    NoAnswer,
    /// Headers and the first bytes of the body, then nothing: `Timeout`,
    /// retried.
    BodyStalls,
    /// Headers and part of a `content-length` body, then the connection
    /// closes: a retryable error, retried.
    BodyCut,
    /// The connection closes after the request, with no answer: a
    /// retryable `Connection` error, retried.
    DroppedConnection,
    /// The connection closes as soon as it is accepted: a retryable
    /// `Connection` error, retried.
    ClosedOnAccept,
    /// Nothing listens on the port: a retryable `Connection` error, retried
    /// within the policy's backoff.
    ConnectionRefused,
    /// The server answers with bytes that are not HTTP: an error, no panic.
    NotHttp,
    /// A stream of three events and its end: the text, with a finish
    /// reason.
    StreamReply,
    /// The same stream sent one byte per write, splitting events, lines
    /// and multi-byte characters: the same text.
    StreamSplitBytes,
    /// A stream cut in the middle of an event: the text so far, then
    /// `StreamInterrupted` whose `partial` is that text.
    StreamCutMidEvent,
    /// A stream whose body ends properly but without the end event:
    /// `StreamInterrupted` with the partial text.
    StreamWithoutEnd,
    /// A stream that stops sending after two events: the two chunks, then
    /// `Timeout` after the limit (not retried: text was delivered).
    StreamStallsMidway,
    /// Stream headers, then nothing: `Timeout`, retried.
    StreamStallsAtStart,
    /// One event, then only keep-alives (comments, blank lines) for longer
    /// than the limit: the chunk, then `Timeout` (keep-alives carry no
    /// reply, so they do not reset the limit).
    StreamKeepAliveOnly,
    /// An error event after the first event: the first chunk, then an
    /// error carrying the server's message, and nothing after it.
    StreamErrorEvent,
    /// An error event as the first event: an error with the message;
    /// retried only when the error says it is retryable.
    StreamErrorFirst,
    /// HTTP 429 to the stream request, then a stream: retried, the text.
    StreamRateLimited,
    /// HTTP 500 to every stream request: retried; HTTP 500.
    StreamServerError,
    /// HTTP 401 to the stream request, body echoing the key: not retried,
    /// key hidden.
    StreamUnauthorized,
    /// HTTP 200 with an HTML page for a stream request: an error that
    /// shows the page (in its body or message), no text.
    StreamHtmlBody,
    /// HTTP 200 with an empty body for a stream request: an error.
    StreamEmptyBody,
    /// A server that ignores `stream: true` and sends a whole reply as
    /// `application/json`: the reply's text as the stream.
    StreamWholeReply,
    /// A stream event whose text holds bytes that are not UTF-8: no panic;
    /// text with U+FFFD, or an error.
    StreamInvalidUtf8,
    /// A stream request to a port where nothing listens: `Connection`.
    StreamConnectionRefused,
    /// A stream request whose connection closes without an answer: a
    /// retryable `Connection` error, retried.
    StreamDroppedConnection,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 49] = [
        Scenario::Reply,
        Scenario::RateLimitedWithoutRetryAfter,
        Scenario::RetryAfterSeconds,
        Scenario::RetryAfterHttpDate,
        Scenario::RetryAfterZero,
        Scenario::RetryAfterHuge,
        Scenario::RetryAfterGarbage,
        Scenario::ServiceUnavailableHtml,
        Scenario::BadGatewayEmpty,
        Scenario::InternalErrorJson,
        Scenario::BadRequest,
        Scenario::Unauthorized,
        Scenario::Forbidden,
        Scenario::ModelNotFound,
        Scenario::HugeErrorBody,
        Scenario::ErrorBodyStalls,
        Scenario::EmptyBody,
        Scenario::NonJsonBody,
        Scenario::HtmlBody,
        Scenario::IncompleteJson,
        Scenario::ErrorObjectWithStatus200,
        Scenario::InvalidUtf8Body,
        Scenario::WrongContentType,
        Scenario::LargeBody,
        Scenario::NoAnswer,
        Scenario::BodyStalls,
        Scenario::BodyCut,
        Scenario::DroppedConnection,
        Scenario::ClosedOnAccept,
        Scenario::ConnectionRefused,
        Scenario::NotHttp,
        Scenario::StreamReply,
        Scenario::StreamSplitBytes,
        Scenario::StreamCutMidEvent,
        Scenario::StreamWithoutEnd,
        Scenario::StreamStallsMidway,
        Scenario::StreamStallsAtStart,
        Scenario::StreamKeepAliveOnly,
        Scenario::StreamErrorEvent,
        Scenario::StreamErrorFirst,
        Scenario::StreamRateLimited,
        Scenario::StreamServerError,
        Scenario::StreamUnauthorized,
        Scenario::StreamHtmlBody,
        Scenario::StreamEmptyBody,
        Scenario::StreamWholeReply,
        Scenario::StreamInvalidUtf8,
        Scenario::StreamConnectionRefused,
        Scenario::StreamDroppedConnection,
    ];

    /// The scenario's name in reports, in snake case.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Reply => "reply",
            Scenario::RateLimitedWithoutRetryAfter => "rate_limited_without_retry_after",
            Scenario::RetryAfterSeconds => "retry_after_seconds",
            Scenario::RetryAfterHttpDate => "retry_after_http_date",
            Scenario::RetryAfterZero => "retry_after_zero",
            Scenario::RetryAfterHuge => "retry_after_huge",
            Scenario::RetryAfterGarbage => "retry_after_garbage",
            Scenario::ServiceUnavailableHtml => "service_unavailable_html",
            Scenario::BadGatewayEmpty => "bad_gateway_empty",
            Scenario::InternalErrorJson => "internal_error_json",
            Scenario::BadRequest => "bad_request",
            Scenario::Unauthorized => "unauthorized",
            Scenario::Forbidden => "forbidden",
            Scenario::ModelNotFound => "model_not_found",
            Scenario::HugeErrorBody => "huge_error_body",
            Scenario::ErrorBodyStalls => "error_body_stalls",
            Scenario::EmptyBody => "empty_body",
            Scenario::NonJsonBody => "non_json_body",
            Scenario::HtmlBody => "html_body",
            Scenario::IncompleteJson => "incomplete_json",
            Scenario::ErrorObjectWithStatus200 => "error_object_with_status_200",
            Scenario::InvalidUtf8Body => "invalid_utf8_body",
            Scenario::WrongContentType => "wrong_content_type",
            Scenario::LargeBody => "large_body",
            Scenario::NoAnswer => "no_answer",
            Scenario::BodyStalls => "body_stalls",
            Scenario::BodyCut => "body_cut",
            Scenario::DroppedConnection => "dropped_connection",
            Scenario::ClosedOnAccept => "closed_on_accept",
            Scenario::ConnectionRefused => "connection_refused",
            Scenario::NotHttp => "not_http",
            Scenario::StreamReply => "stream_reply",
            Scenario::StreamSplitBytes => "stream_split_bytes",
            Scenario::StreamCutMidEvent => "stream_cut_mid_event",
            Scenario::StreamWithoutEnd => "stream_without_end",
            Scenario::StreamStallsMidway => "stream_stalls_midway",
            Scenario::StreamStallsAtStart => "stream_stalls_at_start",
            Scenario::StreamKeepAliveOnly => "stream_keep_alive_only",
            Scenario::StreamErrorEvent => "stream_error_event",
            Scenario::StreamErrorFirst => "stream_error_first",
            Scenario::StreamRateLimited => "stream_rate_limited",
            Scenario::StreamServerError => "stream_server_error",
            Scenario::StreamUnauthorized => "stream_unauthorized",
            Scenario::StreamHtmlBody => "stream_html_body",
            Scenario::StreamEmptyBody => "stream_empty_body",
            Scenario::StreamWholeReply => "stream_whole_reply",
            Scenario::StreamInvalidUtf8 => "stream_invalid_utf8",
            Scenario::StreamConnectionRefused => "stream_connection_refused",
            Scenario::StreamDroppedConnection => "stream_dropped_connection",
        }
    }

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

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// Passed, failed with the evidence, or skipped with the reason.
    pub outcome: Outcome,
    /// What was observed when it passed (attempts, error, time).
    pub detail: String,
    /// Wall-clock time the scenario took.
    pub elapsed: Duration,
}

/// What a [`FaultSuite`] run found: one [`ScenarioResult`] per
/// [`Scenario`], in the order of [`Scenario::ALL`]. `Display` prints a
/// table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultReport {
    /// The model's [`model_name`](ChatModel::model_name).
    pub model: String,
    /// One result per scenario.
    pub results: Vec<ScenarioResult>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl FaultReport {
    /// The outcome of `scenario`.
    pub fn outcome(&self, scenario: Scenario) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|result| result.scenario == scenario)
            .map(|result| &result.outcome)
    }

    /// The scenarios that failed.
    pub fn failed(&self) -> Vec<Scenario> {
        self.results
            .iter()
            .filter(|result| result.outcome.is_failed())
            .map(|result| result.scenario)
            .collect()
    }

    /// The scenarios that passed.
    pub fn passed(&self) -> Vec<Scenario> {
        self.results
            .iter()
            .filter(|result| result.outcome.is_passed())
            .map(|result| result.scenario)
            .collect()
    }

    /// Prints the table to stdout and panics, with the table in the message,
    /// when a scenario failed. Skipped scenarios do not fail it.
    ///
    /// # Panics
    /// When at least one scenario failed.
    #[track_caller]
    pub fn assert_all_passed(&self) {
        println!("{self}");
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|s| s.name()).collect();
            panic!(
                "{} fault scenario(s) failed for `{}`: {}\n{self}",
                failed.len(),
                self.model,
                names.join(", ")
            );
        }
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault scenarios for `{}`:", self.model)?;
        let rows: Vec<Row<'_>> = self
            .results
            .iter()
            .map(|r| Row {
                name: r.scenario.name(),
                outcome: &r.outcome,
                detail: &r.detail,
                elapsed: r.elapsed,
            })
            .collect();
        write_table(f, &rows, 6, self.elapsed)
    }
}

/// A parametrised suite of fault scenarios (see [`Scenario`]) for any
/// [`ChatModel`] adapter that speaks HTTP: each scenario starts a
/// [`RawServer`] that answers in the adapter's [`WireFormat`], builds the
/// model with the constructor given to [`run`](Self::run), wraps it in
/// [`pae_core::Retry`], and checks the attempts made, the error's kind,
/// status, body and `retry_after`, and a bound on the time taken. Nothing
/// may hang (each scenario has a hard limit) or panic (a panic fails the
/// scenario, not the test).
///
/// ```no_run
/// # use pae_conformance::faults::{FaultSuite, ModelTarget, WireFormat};
/// # struct MyWire;
/// # impl WireFormat for MyWire {
/// #     fn reply(&self, t: &str) -> String { t.into() }
/// #     fn stream_content_type(&self) -> &str { "text/event-stream" }
/// #     fn stream_delta(&self, d: &str) -> String { d.into() }
/// #     fn stream_end(&self) -> String { String::new() }
/// #     fn stream_error(&self, m: &str) -> String { m.into() }
/// #     fn error_body(&self, m: &str) -> String { m.into() }
/// #     fn incomplete_replies(&self) -> Vec<String> { vec![] }
/// # }
/// # async fn demo() {
/// # let build = |t: &ModelTarget| pae_conformance::reference_model();
/// // in tests/faults.rs of an adapter crate
/// FaultSuite::new(MyWire)
///     .with_secret("sk-test-secret")
///     .run(build) // |target| MyModel::new(&target.base_url).with_timeout(target.timeout)…
///     .await
///     .assert_all_passed();
/// # }
/// ```
pub struct FaultSuite<W> {
    wire: W,
    secret: Option<String>,
    timeout: Duration,
    hang_limit: Duration,
    concurrency: usize,
    skip: Vec<(Scenario, String)>,
}

impl<W: fmt::Debug> fmt::Debug for FaultSuite<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultSuite")
            .field("wire", &self.wire)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("hang_limit", &self.hang_limit)
            .field("concurrency", &self.concurrency)
            .field("skip", &self.skip)
            .finish()
    }
}

/// Attempts in all under [`FaultSuite::retry_policy`].
const ATTEMPTS: usize = 3;
/// The first backoff of [`FaultSuite::retry_policy`]; the second is twice it.
const BACKOFF: Duration = Duration::from_millis(50);
/// Slack added to upper time bounds: the machine may be busy.
const SLACK: Duration = Duration::from_secs(3);
/// The text of successful replies.
const OK: &str = "ok";
/// Text with multi-byte characters, streamed in three events.
const STREAM_PARTS: [&str; 3] = ["Hé", "llo wö", "rld ✓"];
/// Stands for bytes that are not UTF-8 in a reply's text.
const BAD_UTF8_MARK: &str = "@@not-utf8@@";

impl<W: WireFormat> FaultSuite<W> {
    /// A suite for a provider speaking `wire`, with a 500 ms time limit,
    /// a 20 s hard limit per scenario and no secret.
    pub fn new(wire: W) -> Self {
        Self {
            wire,
            secret: None,
            timeout: Duration::from_millis(500),
            hang_limit: Duration::from_secs(20),
            concurrency: 8,
            skip: Vec::new(),
        }
    }

    /// The API key the model is built with: servers echo it in error
    /// bodies, and no error may show it.
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The time limit given to the constructor in [`ModelTarget::timeout`]
    /// (default 500 ms).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one scenario may take before it counts as hung (default
    /// 20 s).
    #[must_use]
    pub fn with_hang_limit(mut self, limit: Duration) -> Self {
        self.hang_limit = limit;
        self
    }

    /// How many scenarios run at once (default 8; 1 runs them in order).
    #[must_use]
    pub fn with_concurrency(mut self, scenarios: usize) -> Self {
        self.concurrency = scenarios.max(1);
        self
    }

    /// Skips `scenario`, reporting `reason`.
    #[must_use]
    pub fn skip(mut self, scenario: Scenario, reason: impl Into<String>) -> Self {
        self.skip.push((scenario, reason.into()));
        self
    }

    /// The retry policy the suite wraps models in: 3 attempts, backoff of
    /// 50 ms then 100 ms without jitter, `Retry-After` honoured up to 5 s.
    pub fn retry_policy() -> RetryPolicy {
        RetryPolicy::new()
            .with_max_attempts(ATTEMPTS as u32)
            .with_initial_backoff(BACKOFF)
            .with_multiplier(2.0)
            .with_jitter(0.0)
            .with_max_retry_after(Duration::from_secs(5))
    }

    /// Runs every scenario, building a fresh model for each with `make`.
    /// Stream scenarios are skipped when the model does not claim
    /// streaming. Must run inside a multi-threaded or current-thread Tokio
    /// runtime with I/O and time enabled (any `#[tokio::test]`).
    pub async fn run<M, F>(&self, make: F) -> FaultReport
    where
        M: ChatModel,
        F: Fn(&ModelTarget) -> M + Sync,
    {
        let started = Instant::now();
        let probe = make(&ModelTarget {
            base_url: "http://127.0.0.1:9".into(),
            timeout: self.timeout,
        });
        let model = probe.model_name();
        let streaming = probe.capabilities().streaming;
        let make = &make;
        let runs = Scenario::ALL.map(|scenario| async move {
            let began = Instant::now();
            let skipped = self
                .skip
                .iter()
                .find(|(s, _)| *s == scenario)
                .map(|(_, reason)| format!("skipped by the caller: {reason}"))
                .or_else(|| {
                    (scenario.is_streaming() && !streaming)
                        .then(|| String::from("the model does not claim streaming"))
                });
            let (outcome, detail) = match skipped {
                Some(reason) => (Outcome::Skipped { reason }, String::new()),
                None => {
                    let run = Runner { suite: self, make };
                    let guarded = tokio::time::timeout(
                        self.hang_limit,
                        AssertUnwindSafe(run.scenario(scenario)).catch_unwind(),
                    )
                    .await;
                    match guarded {
                        Err(_) => (
                            Outcome::Failed {
                                reason: format!("hung: no outcome within {:?}", self.hang_limit),
                            },
                            String::new(),
                        ),
                        Ok(Err(panic)) => (
                            Outcome::Failed {
                                reason: format!("panicked: {}", panic_text(&*panic)),
                            },
                            String::new(),
                        ),
                        Ok(Ok(Ok(detail))) => (Outcome::Passed, detail),
                        Ok(Ok(Err(reason))) => (Outcome::Failed { reason }, String::new()),
                    }
                }
            };
            ScenarioResult {
                scenario,
                outcome,
                detail,
                elapsed: began.elapsed(),
            }
        });
        let mut results: Vec<ScenarioResult> = futures::stream::iter(runs)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.sort_by_key(|result| result.scenario);
        FaultReport {
            model,
            results,
            elapsed: started.elapsed(),
        }
    }
}

/// The outcome of one non-streamed call.
struct ChatRun {
    result: Result<ChatResponse, ProviderError>,
    attempts: usize,
    elapsed: Duration,
}

/// The outcome of one streamed call, collected to its end.
struct StreamRun {
    text: String,
    chunks: usize,
    finished: bool,
    error: Option<ProviderError>,
    after_error: usize,
    attempts: usize,
    elapsed: Duration,
}

type Check = Result<String, String>;

struct Runner<'a, W, F> {
    suite: &'a FaultSuite<W>,
    make: &'a F,
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

/// Connection `n` gets `first[n]`, later ones `rest`.
fn plan(first: Vec<Fault>, rest: Fault) -> impl Fn(usize) -> Fault + Send + Sync + 'static {
    move |n| first.get(n).cloned().unwrap_or_else(|| rest.clone())
}

fn kind(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Http { .. } => "Http",
        ProviderError::Timeout { .. } => "Timeout",
        ProviderError::Connection { .. } => "Connection",
        ProviderError::InvalidResponse { .. } => "InvalidResponse",
        ProviderError::StreamInterrupted { .. } => "StreamInterrupted",
        ProviderError::Configuration { .. } => "Configuration",
        ProviderError::InvalidRequest { .. } => "InvalidRequest",
        ProviderError::Unsupported { .. } => "Unsupported",
        ProviderError::Backend { .. } => "Backend",
        ProviderError::Exhausted { .. } => "Exhausted",
        _ => "an unknown ProviderError",
    }
}

fn body_of(error: &ProviderError) -> Option<&str> {
    match error {
        ProviderError::Http { body, .. } | ProviderError::InvalidResponse { body, .. } => {
            Some(body)
        }
        _ => None,
    }
}

/// Everything an error shows: its message with sources, its `Debug`, and
/// its body.
fn all_text(error: &ProviderError) -> String {
    format!("{} {error:?}", describe(error))
}

fn expected_attempts(error: &ProviderError) -> usize {
    if error.is_retryable() { ATTEMPTS } else { 1 }
}

fn ensure(condition: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(reason()) }
}

impl<W, F, M> Runner<'_, W, F>
where
    W: WireFormat,
    F: Fn(&ModelTarget) -> M,
    M: ChatModel,
{
    fn model(&self, base_url: &str) -> Retry<M> {
        let target = ModelTarget {
            base_url: base_url.to_owned(),
            timeout: self.suite.timeout,
        };
        Retry::new((self.make)(&target), FaultSuite::<W>::retry_policy())
    }

    fn wire(&self) -> &W {
        &self.suite.wire
    }

    fn timeout(&self) -> Duration {
        self.suite.timeout
    }

    /// Fails when `error` shows the secret.
    fn no_secret(&self, error: &ProviderError) -> Result<(), String> {
        match &self.suite.secret {
            Some(secret) if all_text(error).contains(secret.as_str()) => Err(format!(
                "the API key appears in the error: {}",
                all_text(error)
            )),
            _ => Ok(()),
        }
    }

    async fn chat_at(&self, base_url: &str) -> ChatRun {
        let started = Instant::now();
        let result = self.model(base_url).chat(request()).await;
        ChatRun {
            result,
            attempts: 0,
            elapsed: started.elapsed(),
        }
    }

    async fn chat(&self, plan: impl Fn(usize) -> Fault + Send + Sync + 'static) -> ChatRun {
        let server = RawServer::start(plan).await;
        let mut run = self.chat_at(&server.url).await;
        run.attempts = server.accepted();
        run
    }

    async fn stream_at(&self, base_url: &str) -> StreamRun {
        let started = Instant::now();
        let mut run = StreamRun {
            text: String::new(),
            chunks: 0,
            finished: false,
            error: None,
            after_error: 0,
            attempts: 0,
            elapsed: Duration::ZERO,
        };
        match self.model(base_url).stream(request()).await {
            Err(error) => run.error = Some(error),
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    match item {
                        _ if run.error.is_some() => run.after_error += 1,
                        Ok(chunk) => {
                            run.chunks += 1;
                            run.text.push_str(&chunk.delta);
                            run.finished |= chunk.finish_reason.is_some();
                        }
                        Err(error) => run.error = Some(error),
                    }
                }
            }
        }
        run.elapsed = started.elapsed();
        run
    }

    async fn stream(&self, plan: impl Fn(usize) -> Fault + Send + Sync + 'static) -> StreamRun {
        let server = RawServer::start(plan).await;
        let mut run = self.stream_at(&server.url).await;
        run.attempts = server.accepted();
        run
    }

    // ----- expectations -----

    /// The call succeeded with `text` after `attempts` attempts.
    fn replied(&self, run: &ChatRun, text: &str, attempts: usize) -> Check {
        match &run.result {
            Ok(reply) => {
                ensure(reply.content() == text, || {
                    format!(
                        "the reply's text differs: {} bytes, expected {} ({:?}…)",
                        reply.content().len(),
                        text.len(),
                        reply.content().chars().take(40).collect::<String>()
                    )
                })?;
                ensure(run.attempts == attempts, || {
                    format!("{} attempts, expected {attempts}", run.attempts)
                })?;
                Ok(format!(
                    "replied after {} attempt(s) in {:?}",
                    run.attempts, run.elapsed
                ))
            }
            Err(error) => Err(format!(
                "expected a reply after {attempts} attempt(s), got {} after {}: {}",
                kind(error),
                run.attempts,
                describe(error)
            )),
        }
    }

    /// The call failed; returns the error after the secret check.
    fn failed<'r>(
        &self,
        result: &'r Result<ChatResponse, ProviderError>,
    ) -> Result<&'r ProviderError, String> {
        match result {
            Ok(reply) => Err(format!(
                "expected an error, got a reply: {:?}",
                reply.content().chars().take(80).collect::<String>()
            )),
            Err(error) => {
                self.no_secret(error)?;
                Ok(error)
            }
        }
    }

    /// The call failed with HTTP `status` after `attempts` attempts.
    fn http_error<'r>(
        &self,
        run: &'r ChatRun,
        status: u16,
        attempts: usize,
    ) -> Result<&'r ProviderError, String> {
        let error = self.failed(&run.result)?;
        ensure(
            matches!(error, ProviderError::Http { status: s, .. } if *s == status),
            || {
                format!(
                    "expected HTTP {status}, got {}: {}",
                    kind(error),
                    describe(error)
                )
            },
        )?;
        ensure(run.attempts == attempts, || {
            format!("{} attempts, expected {attempts}", run.attempts)
        })?;
        Ok(error)
    }

    fn http_detail(run: &ChatRun, error: &ProviderError) -> String {
        format!(
            "HTTP {} after {} attempt(s) in {:?} (retry_after {:?})",
            error.status().unwrap_or_default(),
            run.attempts,
            run.elapsed,
            error.retry_after()
        )
    }

    /// The call failed with one of `kinds`, attempted as often as the
    /// error's retryability says (or exactly `attempts`).
    fn typed_error<'r>(
        &self,
        result: &'r Result<ChatResponse, ProviderError>,
        attempts_seen: usize,
        kinds: &[&str],
        attempts: Option<usize>,
    ) -> Result<&'r ProviderError, String> {
        let error = self.failed(result)?;
        ensure(kinds.contains(&kind(error)), || {
            format!(
                "expected {}, got {}: {}",
                kinds.join(" or "),
                kind(error),
                describe(error)
            )
        })?;
        let expected = attempts.unwrap_or_else(|| expected_attempts(error));
        ensure(attempts_seen == expected, || {
            format!(
                "{attempts_seen} attempts, expected {expected} for {} (retryable: {})",
                kind(error),
                error.is_retryable()
            )
        })?;
        Ok(error)
    }

    fn within(elapsed: Duration, low: Duration, high: Duration) -> Result<(), String> {
        ensure(elapsed >= low, || {
            format!("took {elapsed:?}, expected at least {low:?}")
        })?;
        ensure(elapsed <= high, || {
            format!("took {elapsed:?}, expected at most {high:?}")
        })
    }

    /// The stream delivered `text` in full with a finish reason.
    fn streamed(&self, run: &StreamRun, text: &str, attempts: usize) -> Check {
        if let Some(error) = &run.error {
            return Err(format!(
                "expected the stream {text:?}, got {:?} then {}: {}",
                run.text,
                kind(error),
                describe(error)
            ));
        }
        ensure(run.text == text, || {
            format!("streamed {:?}, expected {text:?}", run.text)
        })?;
        ensure(run.finished, || "no chunk carried a finish reason".into())?;
        ensure(run.attempts == attempts, || {
            format!("{} attempts, expected {attempts}", run.attempts)
        })?;
        Ok(format!(
            "{} chunk(s), {} attempt(s), {:?}",
            run.chunks, run.attempts, run.elapsed
        ))
    }

    /// The stream failed with one of `kinds`, after delivering `text`,
    /// with nothing after the error.
    fn stream_failed<'r>(
        &self,
        run: &'r StreamRun,
        text: &str,
        kinds: &[&str],
    ) -> Result<&'r ProviderError, String> {
        let Some(error) = &run.error else {
            return Err(format!(
                "expected an error, the stream ended normally with {:?}",
                run.text
            ));
        };
        self.no_secret(error)?;
        ensure(kinds.contains(&kind(error)), || {
            format!(
                "expected {}, got {}: {}",
                kinds.join(" or "),
                kind(error),
                describe(error)
            )
        })?;
        ensure(run.text == text, || {
            format!(
                "streamed {:?} before the error, expected {text:?}",
                run.text
            )
        })?;
        ensure(run.after_error == 0, || {
            format!("{} item(s) followed the error", run.after_error)
        })?;
        Ok(error)
    }

    fn stream_detail(run: &StreamRun, error: &ProviderError) -> String {
        format!(
            "{} after {:?}, {} attempt(s), {:?}",
            kind(error),
            run.text,
            run.attempts,
            run.elapsed
        )
    }

    // ----- bodies -----

    fn ok(&self) -> Fault {
        Fault::Write(response(
            200,
            &[("content-type", "application/json")],
            self.wire().reply(OK),
        ))
    }

    fn status(&self, status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        Fault::Write(response(status, &all, body))
    }

    fn json_200(&self, body: impl AsRef<[u8]>) -> Fault {
        Fault::Write(response(200, &[("content-type", "application/json")], body))
    }

    fn stream_events(&self, parts: &[&str]) -> String {
        parts.iter().map(|p| self.wire().stream_delta(p)).collect()
    }

    fn full_stream(&self) -> String {
        let mut body = self.stream_events(&STREAM_PARTS);
        body.push_str(&self.wire().stream_end());
        body
    }

    fn stream_head(&self) -> Vec<u8> {
        chunked_head(200, self.wire().stream_content_type(), &[])
    }

    /// A stream response: head, `body` in one chunk, and the end of the
    /// chunked body.
    fn stream_fault(&self, body: impl AsRef<[u8]>) -> Fault {
        chunked(self.wire().stream_content_type(), &[body])
    }

    fn secret_message(&self) -> String {
        match &self.suite.secret {
            Some(secret) => format!("Incorrect API key provided: {secret}"),
            None => String::from("Incorrect API key provided"),
        }
    }

    fn with_bad_utf8(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text.as_bytes();
        let mark = BAD_UTF8_MARK.as_bytes();
        while let Some(at) = rest.windows(mark.len()).position(|w| w == mark) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(b"bad \xff\xfe bytes");
            rest = &rest[at + mark.len()..];
        }
        out.extend_from_slice(rest);
        out
    }

    // ----- scenarios -----

    async fn scenario(&self, scenario: Scenario) -> Check {
        let t = self.timeout();
        match scenario {
            Scenario::Reply => {
                let run = self.chat(plan(vec![], self.ok())).await;
                self.replied(&run, OK, 1)
            }
            Scenario::RateLimitedWithoutRetryAfter => {
                let limited = self.status(429, &[], &self.wire().error_body("Rate limit reached"));
                let run = self.chat(plan(vec![limited], self.ok())).await;
                let detail = self.replied(&run, OK, 2)?;
                Self::within(run.elapsed, BACKOFF, BACKOFF + SLACK)?;
                Ok(detail)
            }
            Scenario::RetryAfterSeconds => {
                let limited = self.status(
                    429,
                    &[("retry-after", "1")],
                    &self.wire().error_body("Rate limit reached"),
                );
                let run = self.chat(plan(vec![limited], self.ok())).await;
                let detail = self.replied(&run, OK, 2)?;
                Self::within(
                    run.elapsed,
                    Duration::from_secs(1),
                    Duration::from_secs(1) + SLACK,
                )?;
                Ok(detail)
            }
            Scenario::RetryAfterHttpDate => {
                // Whole seconds: the wait is between 1 and 2 s.
                let date = http_date(SystemTime::now() + Duration::from_secs(2));
                let busy = self.status(
                    503,
                    &[("retry-after", &date)],
                    &self.wire().error_body("busy"),
                );
                let run = self.chat(plan(vec![busy], self.ok())).await;
                let detail = self.replied(&run, OK, 2)?;
                Self::within(
                    run.elapsed,
                    Duration::from_millis(900),
                    Duration::from_secs(2) + SLACK,
                )?;
                Ok(format!("{detail} (Retry-After: {date})"))
            }
            Scenario::RetryAfterZero => {
                let limited = self.status(
                    429,
                    &[("retry-after", "0")],
                    &self.wire().error_body("again"),
                );
                let run = self.chat(plan(vec![limited], self.ok())).await;
                let detail = self.replied(&run, OK, 2)?;
                Self::within(run.elapsed, Duration::ZERO, SLACK)?;
                Ok(detail)
            }
            Scenario::RetryAfterHuge => {
                let limited = self.status(
                    429,
                    &[("retry-after", "86400")],
                    &self.wire().error_body("Daily quota exceeded"),
                );
                let run = self.chat(plan(vec![], limited)).await;
                let error = self.http_error(&run, 429, 1)?;
                ensure(
                    error.retry_after() == Some(Duration::from_secs(86_400)),
                    || format!("retry_after {:?}, expected 86400 s", error.retry_after()),
                )?;
                Self::within(run.elapsed, Duration::ZERO, SLACK)?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::RetryAfterGarbage => {
                let limited = self.status(
                    429,
                    &[("retry-after", "soon, maybe")],
                    &self.wire().error_body("Rate limit reached"),
                );
                let run = self.chat(plan(vec![], limited)).await;
                let error = self.http_error(&run, 429, ATTEMPTS)?;
                ensure(error.retry_after().is_none(), || {
                    format!("retry_after {:?} from garbage", error.retry_after())
                })?;
                Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::ServiceUnavailableHtml => {
                let page = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
                let fault = Fault::Write(response(503, &[("content-type", "text/html")], page));
                let run = self.chat(plan(vec![], fault)).await;
                let error = self.http_error(&run, 503, ATTEMPTS)?;
                ensure(body_of(error) == Some(page), || {
                    format!("the body is {:?}, expected the page", body_of(error))
                })?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::BadGatewayEmpty => {
                let fault = Fault::Write(response(502, &[], ""));
                let run = self.chat(plan(vec![], fault)).await;
                let error = self.http_error(&run, 502, ATTEMPTS)?;
                ensure(body_of(error) == Some(""), || {
                    format!("the body is {:?}, expected empty", body_of(error))
                })?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::InternalErrorJson => {
                let body = self.wire().error_body("upstream exploded");
                let run = self.chat(plan(vec![], self.status(500, &[], &body))).await;
                let error = self.http_error(&run, 500, ATTEMPTS)?;
                ensure(body_of(error) == Some(body.as_str()), || {
                    format!("the body is {:?}, expected {body:?}", body_of(error))
                })?;
                Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::BadRequest => {
                let body = self.wire().error_body("'messages' must not be empty");
                let run = self.chat(plan(vec![], self.status(400, &[], &body))).await;
                let error = self.http_error(&run, 400, 1)?;
                ensure(body_of(error) == Some(body.as_str()), || {
                    format!("the body is {:?}, expected {body:?}", body_of(error))
                })?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::Unauthorized | Scenario::Forbidden => {
                let status = if scenario == Scenario::Unauthorized {
                    401
                } else {
                    403
                };
                let body = self.wire().error_body(&self.secret_message());
                let run = self
                    .chat(plan(vec![], self.status(status, &[], &body)))
                    .await;
                let error = self.http_error(&run, status, 1)?;
                ensure(!error.is_retryable(), || {
                    "an auth error is retryable".into()
                })?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::ModelNotFound => {
                let body = self.wire().error_body("model 'no-such-model' not found");
                let run = self.chat(plan(vec![], self.status(404, &[], &body))).await;
                let error = self.http_error(&run, 404, 1)?;
                ensure(
                    body_of(error).is_some_and(|b| b.contains("not found")),
                    || format!("the body is {:?}", body_of(error)),
                )?;
                Ok(Self::http_detail(&run, error))
            }
            Scenario::HugeErrorBody => {
                let body = format!("{{\"error\": \"{}\"}}", "x".repeat(16 << 20));
                let run = self.chat(plan(vec![], self.status(500, &[], &body))).await;
                let error = self.http_error(&run, 500, ATTEMPTS)?;
                let kept = body_of(error).unwrap_or_default();
                ensure(kept.len() <= 1 << 20 && body.starts_with(kept), || {
                    format!(
                        "kept {} bytes of the body; expected its beginning, at most 1 MiB",
                        kept.len()
                    )
                })?;
                Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK * 2)?;
                Ok(format!(
                    "{}; {} body bytes kept",
                    Self::http_detail(&run, error),
                    body_of(error).map_or(0, str::len)
                ))
            }
            Scenario::ErrorBodyStalls => {
                let head = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                            retry-after: 0\r\ncontent-length: 200\r\nconnection: close\r\n\r\n{\"error\":";
                let fault =
                    Fault::Script(vec![Action::Write(head.as_bytes().to_vec()), Action::Stall]);
                let run = self.chat(plan(vec![], fault)).await;
                let error = self.typed_error(
                    &run.result,
                    run.attempts,
                    &["Http", "Timeout"],
                    Some(ATTEMPTS),
                )?;
                ensure(error.status().is_none_or(|s| s == 503), || {
                    format!("HTTP {:?}, expected 503", error.status())
                })?;
                Self::within(
                    run.elapsed,
                    Duration::ZERO,
                    t * ATTEMPTS as u32 + BACKOFF * 3 + SLACK,
                )?;
                Ok(format!(
                    "{} after {} attempts, {:?}",
                    kind(error),
                    run.attempts,
                    run.elapsed
                ))
            }
            Scenario::EmptyBody | Scenario::NonJsonBody | Scenario::HtmlBody => {
                let body = match scenario {
                    Scenario::EmptyBody => "",
                    Scenario::NonJsonBody => "Service temporarily unavailable, try again later",
                    _ => "<!DOCTYPE html><html><body>Gateway says hi</body></html>",
                };
                let run = self.chat(plan(vec![], self.json_200(body))).await;
                let error =
                    self.typed_error(&run.result, run.attempts, &["InvalidResponse"], Some(1))?;
                ensure(body_of(error) == Some(body), || {
                    format!("the body is {:?}, expected {body:?}", body_of(error))
                })?;
                Ok(format!(
                    "InvalidResponse with the body, 1 attempt, {:?}",
                    run.elapsed
                ))
            }
            Scenario::IncompleteJson => {
                let bodies = self.wire().incomplete_replies();
                ensure(!bodies.is_empty(), || {
                    "the wire format lists no incomplete replies".into()
                })?;
                let mut wrong = Vec::new();
                for body in &bodies {
                    let run = self.chat(plan(vec![], self.json_200(body))).await;
                    let checked = self
                        .typed_error(&run.result, run.attempts, &["InvalidResponse"], Some(1))
                        .and_then(|error| {
                            ensure(body_of(error) == Some(body.as_str()), || {
                                format!("the error's body is {:?}", body_of(error))
                            })
                        });
                    if let Err(reason) = checked {
                        wrong.push(format!("{body}: {reason}"));
                    }
                }
                ensure(wrong.is_empty(), || wrong.join("; "))?;
                Ok(format!("{} bodies, each InvalidResponse", bodies.len()))
            }
            Scenario::ErrorObjectWithStatus200 => {
                let message = "the model runner crashed";
                let run = self
                    .chat(plan(
                        vec![],
                        self.json_200(self.wire().error_reply(message)),
                    ))
                    .await;
                let error = self.typed_error(
                    &run.result,
                    run.attempts,
                    &["Http", "InvalidResponse", "StreamInterrupted", "Backend"],
                    None,
                )?;
                let shown = error_chain(error).contains(message)
                    || (kind(error) == "Http"
                        && body_of(error).is_some_and(|b| b.contains(message)));
                ensure(shown, || {
                    format!(
                        "the error does not say what the server reported: {}",
                        describe(error)
                    )
                })?;
                Ok(format!(
                    "{} ({}), {} attempt(s)",
                    kind(error),
                    describe(error),
                    run.attempts
                ))
            }
            Scenario::InvalidUtf8Body => {
                let body = Self::with_bad_utf8(&self.wire().reply(BAD_UTF8_MARK));
                let run = self.chat(plan(vec![], self.json_200(body))).await;
                match &run.result {
                    Ok(reply) if reply.content().contains('\u{FFFD}') => {
                        Ok(format!("replied {:?}", reply.content()))
                    }
                    Ok(reply) => Err(format!("replied {:?} without U+FFFD", reply.content())),
                    Err(_) => {
                        self.typed_error(&run.result, run.attempts, &["InvalidResponse"], Some(1))?;
                        Ok("InvalidResponse, 1 attempt".into())
                    }
                }
            }
            Scenario::WrongContentType => {
                let fault = Fault::Write(response(
                    200,
                    &[("content-type", "text/html; charset=utf-8")],
                    self.wire().reply(OK),
                ));
                let run = self.chat(plan(vec![], fault)).await;
                self.replied(&run, OK, 1)
            }
            Scenario::LargeBody => {
                let text = "ünïcödé tëxt ".repeat((1 << 20) / 20);
                let fault = self.json_200(self.wire().reply(&text));
                let run = self.chat(plan(vec![], fault)).await;
                let detail = self.replied(&run, &text, 1)?;
                Ok(format!("{} bytes; {detail}", text.len()))
            }
            Scenario::NoAnswer | Scenario::BodyStalls => {
                let mut actions = Vec::new();
                if scenario == Scenario::BodyStalls {
                    let reply = self.wire().reply(OK);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        reply.len()
                    );
                    actions.push(Action::Write(head.into_bytes()));
                    actions.push(Action::Write(reply.as_bytes()[..reply.len() / 2].to_vec()));
                }
                actions.push(Action::Stall);
                let run = self.chat(plan(vec![], Fault::Script(actions))).await;
                let error =
                    self.typed_error(&run.result, run.attempts, &["Timeout"], Some(ATTEMPTS))?;
                let low = t * ATTEMPTS as u32 + BACKOFF * 3;
                Self::within(run.elapsed, low - Duration::from_millis(50), low + SLACK)?;
                Ok(format!(
                    "{} after {} attempts, {:?}",
                    kind(error),
                    run.attempts,
                    run.elapsed
                ))
            }
            Scenario::BodyCut => {
                let reply = self.wire().reply(OK);
                let mut bytes = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    reply.len() + 100
                )
                .into_bytes();
                bytes.extend_from_slice(reply.as_bytes());
                let run = self.chat(plan(vec![], Fault::Write(bytes))).await;
                let error = self.typed_error(
                    &run.result,
                    run.attempts,
                    &["Connection", "StreamInterrupted"],
                    Some(ATTEMPTS),
                )?;
                Ok(format!("{} after {} attempts", kind(error), run.attempts))
            }
            Scenario::DroppedConnection | Scenario::ClosedOnAccept => {
                let fault = if scenario == Scenario::DroppedConnection {
                    Fault::Drop
                } else {
                    Fault::CloseOnAccept
                };
                let run = self.chat(plan(vec![], fault)).await;
                let error =
                    self.typed_error(&run.result, run.attempts, &["Connection"], Some(ATTEMPTS))?;
                Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
                Ok(format!(
                    "{} after {} attempts, {:?}",
                    kind(error),
                    run.attempts,
                    run.elapsed
                ))
            }
            Scenario::ConnectionRefused | Scenario::StreamConnectionRefused => {
                let url = closed_port_url()?;
                let (error, elapsed) = if scenario.is_streaming() {
                    let run = self.stream_at(&url).await;
                    let elapsed = run.elapsed;
                    (
                        self.stream_failed(&run, "", &["Connection"])?.to_string(),
                        elapsed,
                    )
                } else {
                    let run = self.chat_at(&url).await;
                    let error = self.typed_error(&run.result, ATTEMPTS, &["Connection"], None)?;
                    (error.to_string(), run.elapsed)
                };
                Self::within(elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
                Ok(format!("{error}, {elapsed:?}"))
            }
            Scenario::NotHttp => {
                let fault =
                    Fault::Write(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n".to_vec());
                let run = self.chat(plan(vec![], fault)).await;
                let error = self.typed_error(
                    &run.result,
                    run.attempts,
                    &["Connection", "InvalidResponse"],
                    None,
                )?;
                Ok(format!("{} after {} attempt(s)", kind(error), run.attempts))
            }
            Scenario::StreamReply => {
                let run = self
                    .stream(plan(vec![], self.stream_fault(self.full_stream())))
                    .await;
                self.streamed(&run, &STREAM_PARTS.concat(), 1)
            }
            Scenario::StreamSplitBytes => {
                let body = self.full_stream();
                let mut actions = vec![Action::Write(self.stream_head())];
                for byte in body.as_bytes() {
                    actions.push(Action::Write(chunk([*byte])));
                    actions.push(Action::Pause(Duration::from_millis(1)));
                }
                actions.push(Action::Write(LAST_CHUNK.to_vec()));
                let run = self.stream(plan(vec![], Fault::Script(actions))).await;
                self.streamed(&run, &STREAM_PARTS.concat(), 1)
                    .map(|detail| format!("{} one-byte writes; {detail}", body.len()))
            }
            Scenario::StreamCutMidEvent => {
                let next = self.wire().stream_delta(STREAM_PARTS[2]);
                let body = format!(
                    "{}{}",
                    self.stream_events(&STREAM_PARTS[..2]),
                    &next[..next.len() / 2]
                );
                let fault = Fault::Script(vec![
                    Action::Write(self.stream_head()),
                    Action::Write(chunk(body)),
                ]);
                let run = self.stream(plan(vec![], fault)).await;
                let expected = STREAM_PARTS[..2].concat();
                let error = self.stream_failed(&run, &expected, &["StreamInterrupted"])?;
                match error {
                    ProviderError::StreamInterrupted { partial, .. } if *partial == expected => {
                        Ok(Self::stream_detail(&run, error))
                    }
                    other => Err(format!("the partial text is wrong: {other:?}")),
                }
            }
            Scenario::StreamWithoutEnd => {
                let fault = self.stream_fault(self.stream_events(&STREAM_PARTS));
                let run = self.stream(plan(vec![], fault)).await;
                let expected = STREAM_PARTS.concat();
                let error = self.stream_failed(&run, &expected, &["StreamInterrupted"])?;
                match error {
                    ProviderError::StreamInterrupted { partial, .. } if *partial == expected => {
                        Ok(Self::stream_detail(&run, error))
                    }
                    other => Err(format!("the partial text is wrong: {other:?}")),
                }
            }
            Scenario::StreamStallsMidway => {
                let fault = Fault::Script(vec![
                    Action::Write(self.stream_head()),
                    Action::Write(chunk(self.stream_events(&STREAM_PARTS[..2]))),
                    Action::Stall,
                ]);
                let run = self.stream(plan(vec![], fault)).await;
                let error = self.stream_failed(&run, &STREAM_PARTS[..2].concat(), &["Timeout"])?;
                ensure(run.attempts == 1, || {
                    format!("{} attempts, expected 1", run.attempts)
                })?;
                Self::within(run.elapsed, t - Duration::from_millis(50), t + SLACK)?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamStallsAtStart => {
                let fault = Fault::Script(vec![Action::Write(self.stream_head()), Action::Stall]);
                let run = self.stream(plan(vec![], fault)).await;
                let error = self.stream_failed(&run, "", &["Timeout"])?;
                ensure(run.attempts == ATTEMPTS, || {
                    format!("{} attempts, expected {ATTEMPTS}", run.attempts)
                })?;
                let low = t * ATTEMPTS as u32 + BACKOFF * 3;
                Self::within(run.elapsed, low - Duration::from_millis(50), low + SLACK)?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamKeepAliveOnly => {
                let mut actions = vec![
                    Action::Write(self.stream_head()),
                    Action::Write(chunk(self.stream_events(&STREAM_PARTS[..1]))),
                ];
                // Keep-alives for 20 limits, then silence.
                let every = t / 5;
                for _ in 0..100 {
                    actions.push(Action::Pause(every));
                    actions.push(Action::Write(chunk(self.wire().stream_keep_alive())));
                }
                actions.push(Action::Stall);
                let run = self.stream(plan(vec![], Fault::Script(actions))).await;
                let error = self.stream_failed(&run, STREAM_PARTS[0], &["Timeout"])?;
                ensure(run.attempts == 1, || {
                    format!("{} attempts, expected 1", run.attempts)
                })?;
                Self::within(run.elapsed, t - Duration::from_millis(50), t + SLACK)?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamErrorEvent | Scenario::StreamErrorFirst => {
                let message = "model overloaded, try again";
                let (before, sent) = if scenario == Scenario::StreamErrorEvent {
                    (STREAM_PARTS[0], self.stream_events(&STREAM_PARTS[..1]))
                } else {
                    ("", String::new())
                };
                let body = format!("{sent}{}", self.wire().stream_error(message));
                let run = self.stream(plan(vec![], self.stream_fault(body))).await;
                let error = self.stream_failed(
                    &run,
                    before,
                    &["StreamInterrupted", "Http", "InvalidResponse", "Backend"],
                )?;
                ensure(all_text(error).contains(message), || {
                    format!("the server's message is lost: {}", describe(error))
                })?;
                let attempts = if before.is_empty() {
                    expected_attempts(error)
                } else {
                    1
                };
                ensure(run.attempts == attempts, || {
                    format!("{} attempts, expected {attempts}", run.attempts)
                })?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamRateLimited => {
                let limited = self.status(429, &[], &self.wire().error_body("Rate limit reached"));
                let run = self
                    .stream(plan(vec![limited], self.stream_fault(self.full_stream())))
                    .await;
                self.streamed(&run, &STREAM_PARTS.concat(), 2)
            }
            Scenario::StreamServerError | Scenario::StreamUnauthorized => {
                let (status, attempts, body) = if scenario == Scenario::StreamServerError {
                    (500, ATTEMPTS, self.wire().error_body("upstream exploded"))
                } else {
                    (401, 1, self.wire().error_body(&self.secret_message()))
                };
                let run = self
                    .stream(plan(vec![], self.status(status, &[], &body)))
                    .await;
                let error = self.stream_failed(&run, "", &["Http"])?;
                ensure(error.status() == Some(status), || {
                    format!("HTTP {:?}, expected {status}", error.status())
                })?;
                ensure(run.attempts == attempts, || {
                    format!("{} attempts, expected {attempts}", run.attempts)
                })?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamHtmlBody | Scenario::StreamEmptyBody => {
                let fault = if scenario == Scenario::StreamHtmlBody {
                    Fault::Write(response(
                        200,
                        &[("content-type", "text/html")],
                        "<html><body>Please sign in</body></html>\n",
                    ))
                } else {
                    Fault::Write(response(
                        200,
                        &[("content-type", self.wire().stream_content_type())],
                        "",
                    ))
                };
                let run = self.stream(plan(vec![], fault)).await;
                let error =
                    self.stream_failed(&run, "", &["InvalidResponse", "StreamInterrupted"])?;
                if scenario == Scenario::StreamHtmlBody {
                    ensure(all_text(error).contains("Please sign in"), || {
                        format!("the page is not in the error: {}", describe(error))
                    })?;
                }
                ensure(run.attempts == expected_attempts(error), || {
                    format!(
                        "{} attempts, expected {} for {}",
                        run.attempts,
                        expected_attempts(error),
                        kind(error)
                    )
                })?;
                Ok(Self::stream_detail(&run, error))
            }
            Scenario::StreamWholeReply => {
                let run = self.stream(plan(vec![], self.ok())).await;
                self.streamed(&run, OK, 1)
            }
            Scenario::StreamInvalidUtf8 => {
                let mut body = self.stream_events(&STREAM_PARTS[..1]);
                body.push_str(&self.wire().stream_delta(BAD_UTF8_MARK));
                body.push_str(&self.wire().stream_end());
                let run = self
                    .stream(plan(vec![], self.stream_fault(Self::with_bad_utf8(&body))))
                    .await;
                match &run.error {
                    None if run.text.contains('\u{FFFD}') => Ok(format!("streamed {:?}", run.text)),
                    None => Err(format!("streamed {:?} without U+FFFD", run.text)),
                    Some(_) => {
                        let error = self.stream_failed(
                            &run,
                            STREAM_PARTS[0],
                            &["InvalidResponse", "StreamInterrupted"],
                        )?;
                        Ok(Self::stream_detail(&run, error))
                    }
                }
            }
            Scenario::StreamDroppedConnection => {
                let run = self.stream(plan(vec![], Fault::Drop)).await;
                let error = self.stream_failed(&run, "", &["Connection"])?;
                ensure(run.attempts == ATTEMPTS, || {
                    format!("{} attempts, expected {ATTEMPTS}", run.attempts)
                })?;
                Ok(Self::stream_detail(&run, error))
            }
        }
    }
}

/// The URL of a port on 127.0.0.1 where nothing listens.
fn closed_port_url() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot bind 127.0.0.1: {error}"))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("no local address: {error}"))?;
    drop(listener);
    Ok(format!("http://{address}"))
}

/// Formats `time` as an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37
/// GMT`), for `Retry-After` headers in tests. Times before 1970 give the
/// epoch.
pub fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip_through_core_parsing() {
        let check = |secs: u64, expect: &str| {
            assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(secs)), expect);
        };
        check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
        check(784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT");
        check(951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT");
        check(4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = http_date(now + Duration::from_secs(90));
        assert_eq!(
            pae_http::parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn scenario_names_are_unique_and_streaming_is_marked() {
        let names: std::collections::HashSet<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Scenario::ALL.len());
        assert!(Scenario::StreamSplitBytes.is_streaming());
        assert!(!Scenario::BodyStalls.is_streaming());
        let mut sorted = Scenario::ALL;
        sorted.sort();
        assert_eq!(sorted, Scenario::ALL, "ALL is in declaration order");
    }
}
