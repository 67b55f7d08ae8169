//! [`Runner`]: what every scenario shares: calling the model under test
//! against a fault server, the expectations a scenario checks (a reply, an
//! HTTP error, an error of given kinds, a stream's text), and the bodies
//! it serves in the adapter's wire format.

use std::time::{Duration, Instant};

use futures::StreamExt;
use pae_core::{
    ChatModel, ChatRequest, ChatResponse, Message, ProviderError, ProviderErrorKind as Kind, Retry,
    RetryPolicy,
};

use super::{Fault, ModelTarget, RawServer, WireFormat, chunked, chunked_head, response};
use crate::text::{describe, kind_name};

/// Attempts in all under
/// [`FaultSuite::retry_policy`](super::FaultSuite::retry_policy).
pub(super) const ATTEMPTS: usize = 3;
/// The first backoff of
/// [`FaultSuite::retry_policy`](super::FaultSuite::retry_policy); the second
/// is twice it.
pub(super) const BACKOFF: Duration = Duration::from_millis(50);

/// The retry policy scenarios run under (what
/// [`FaultSuite::retry_policy`](super::FaultSuite::retry_policy) returns):
/// [`ATTEMPTS`] attempts, backoff of [`BACKOFF`] then twice it without
/// jitter, `Retry-After` honoured up to 5 s.
pub(super) fn retry_policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(ATTEMPTS as u32)
        .with_initial_backoff(BACKOFF)
        .with_multiplier(2.0)
        .with_jitter(0.0)
        .with_max_retry_after(Duration::from_secs(5))
}

/// Slack added to upper time bounds: the machine may be busy.
pub(super) const SLACK: Duration = Duration::from_secs(3);
/// The text of successful replies.
pub(super) const OK: &str = "ok";
/// Text with multi-byte characters, streamed in three events.
pub(super) const STREAM_PARTS: [&str; 3] = ["Hé", "llo wö", "rld ✓"];
/// Stands for bytes that are not UTF-8 in a reply's text.
pub(super) const BAD_UTF8_MARK: &str = "@@not-utf8@@";

/// The outcome of one non-streamed call.
pub(super) struct ChatRun {
    pub(super) result: Result<ChatResponse, ProviderError>,
    pub(super) attempts: usize,
    pub(super) elapsed: Duration,
}

/// The outcome of one streamed call, collected to its end.
pub(super) struct StreamRun {
    pub(super) text: String,
    pub(super) chunks: usize,
    pub(super) finished: bool,
    pub(super) error: Option<ProviderError>,
    pub(super) after_error: usize,
    pub(super) attempts: usize,
    pub(super) elapsed: Duration,
}

/// A scenario's verdict: what was seen when it passed, the reason when it
/// failed.
pub(super) type Check = Result<String, String>;

/// Runs scenarios: builds the model under test for each fault server and
/// checks what it does. The scenarios are its methods (see
/// [`scenarios`](super::scenarios)).
pub(super) struct Runner<'a, W, F> {
    pub(super) wire: &'a W,
    pub(super) secret: Option<&'a str>,
    pub(super) timeout: Duration,
    pub(super) make: &'a F,
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

/// Connection `n` gets `first[n]`, later ones `rest`.
pub(super) fn plan(
    first: Vec<Fault>,
    rest: Fault,
) -> impl Fn(usize) -> Fault + Send + Sync + 'static {
    move |n| first.get(n).cloned().unwrap_or_else(|| rest.clone())
}

/// The kinds an HTTP error status gives (see [`ProviderError::kind`]).
pub(super) const HTTP: &[Kind] = &[
    Kind::RateLimited,
    Kind::Auth,
    Kind::NotFound,
    Kind::TooLarge,
    Kind::ClientError,
    Kind::ServerError,
    Kind::OtherStatus,
];

/// What an error the server reported in words (an error object sent with
/// status 200, an error event in a stream) may become: an HTTP error when
/// it carries a status, or a failure that keeps the message.
pub(super) const REPORTED: &[Kind] = &[
    Kind::RateLimited,
    Kind::Auth,
    Kind::NotFound,
    Kind::TooLarge,
    Kind::ClientError,
    Kind::ServerError,
    Kind::OtherStatus,
    Kind::InvalidResponse,
    Kind::StreamInterrupted,
    Kind::Backend,
];

/// `kinds` for a reason: every HTTP kind together as `Http`, the others by
/// name, joined with "or".
fn kind_names(kinds: &[Kind]) -> String {
    let any_http = HTTP.iter().all(|kind| kinds.contains(kind));
    let mut names: Vec<String> = Vec::new();
    if any_http {
        names.push("Http".into());
    }
    names.extend(
        kinds
            .iter()
            .filter(|kind| !(any_http && HTTP.contains(kind)))
            .map(|kind| format!("{kind:?}")),
    );
    names.join(" or ")
}

pub(super) fn body_of(error: &ProviderError) -> Option<&str> {
    match error {
        ProviderError::Http { body, .. } | ProviderError::InvalidResponse { body, .. } => {
            Some(body)
        }
        _ => None,
    }
}

/// Everything an error shows: its message with sources, its `Debug`, and
/// its body.
pub(super) fn all_text(error: &ProviderError) -> String {
    format!("{} {error:?}", describe(error))
}

pub(super) fn expected_attempts(error: &ProviderError) -> usize {
    if error.is_retryable() { ATTEMPTS } else { 1 }
}

pub(super) fn ensure(condition: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
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
            timeout: self.timeout,
        };
        Retry::new((self.make)(&target), retry_policy())
    }

    pub(super) fn wire(&self) -> &W {
        self.wire
    }

    /// Fails when `error` shows the secret.
    fn no_secret(&self, error: &ProviderError) -> Result<(), String> {
        match self.secret {
            Some(secret) if all_text(error).contains(secret) => Err(format!(
                "the API key appears in the error: {}",
                all_text(error)
            )),
            _ => Ok(()),
        }
    }

    pub(super) async fn chat_at(&self, base_url: &str) -> ChatRun {
        let started = Instant::now();
        let result = self.model(base_url).chat(request()).await;
        ChatRun {
            result,
            attempts: 0,
            elapsed: started.elapsed(),
        }
    }

    pub(super) async fn chat(
        &self,
        plan: impl Fn(usize) -> Fault + Send + Sync + 'static,
    ) -> ChatRun {
        let server = RawServer::start(plan).await;
        let mut run = self.chat_at(&server.url).await;
        run.attempts = server.accepted();
        run
    }

    pub(super) async fn stream_at(&self, base_url: &str) -> StreamRun {
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

    pub(super) async fn stream(
        &self,
        plan: impl Fn(usize) -> Fault + Send + Sync + 'static,
    ) -> StreamRun {
        let server = RawServer::start(plan).await;
        let mut run = self.stream_at(&server.url).await;
        run.attempts = server.accepted();
        run
    }

    // ----- expectations -----

    /// The call succeeded with `text` after `attempts` attempts.
    pub(super) fn replied(&self, run: &ChatRun, text: &str, attempts: usize) -> Check {
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
                kind_name(error),
                run.attempts,
                describe(error)
            )),
        }
    }

    /// The call failed; returns the error after the secret check.
    pub(super) fn failed<'r>(
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
    pub(super) fn http_error<'r>(
        &self,
        run: &'r ChatRun,
        status: u16,
        attempts: usize,
    ) -> Result<&'r ProviderError, String> {
        let error = self.failed(&run.result)?;
        ensure(error.status() == Some(status), || {
            format!(
                "expected HTTP {status}, got {}: {}",
                kind_name(error),
                describe(error)
            )
        })?;
        ensure(run.attempts == attempts, || {
            format!("{} attempts, expected {attempts}", run.attempts)
        })?;
        Ok(error)
    }

    pub(super) fn http_detail(run: &ChatRun, error: &ProviderError) -> String {
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
    pub(super) fn typed_error<'r>(
        &self,
        result: &'r Result<ChatResponse, ProviderError>,
        attempts_seen: usize,
        kinds: &[Kind],
        attempts: Option<usize>,
    ) -> Result<&'r ProviderError, String> {
        let error = self.failed(result)?;
        ensure(kinds.contains(&error.kind()), || {
            format!(
                "expected {}, got {}: {}",
                kind_names(kinds),
                kind_name(error),
                describe(error)
            )
        })?;
        let expected = attempts.unwrap_or_else(|| expected_attempts(error));
        ensure(attempts_seen == expected, || {
            format!(
                "{attempts_seen} attempts, expected {expected} for {} (retryable: {})",
                kind_name(error),
                error.is_retryable()
            )
        })?;
        Ok(error)
    }

    pub(super) fn within(elapsed: Duration, low: Duration, high: Duration) -> Result<(), String> {
        ensure(elapsed >= low, || {
            format!("took {elapsed:?}, expected at least {low:?}")
        })?;
        ensure(elapsed <= high, || {
            format!("took {elapsed:?}, expected at most {high:?}")
        })
    }

    /// The stream delivered `text` in full with a finish reason.
    pub(super) fn streamed(&self, run: &StreamRun, text: &str, attempts: usize) -> Check {
        if let Some(error) = &run.error {
            return Err(format!(
                "expected the stream {text:?}, got {:?} then {}: {}",
                run.text,
                kind_name(error),
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
    pub(super) fn stream_failed<'r>(
        &self,
        run: &'r StreamRun,
        text: &str,
        kinds: &[Kind],
    ) -> Result<&'r ProviderError, String> {
        let Some(error) = &run.error else {
            return Err(format!(
                "expected an error, the stream ended normally with {:?}",
                run.text
            ));
        };
        self.no_secret(error)?;
        ensure(kinds.contains(&error.kind()), || {
            format!(
                "expected {}, got {}: {}",
                kind_names(kinds),
                kind_name(error),
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

    pub(super) fn stream_detail(run: &StreamRun, error: &ProviderError) -> String {
        format!(
            "{} after {:?}, {} attempt(s), {:?}",
            kind_name(error),
            run.text,
            run.attempts,
            run.elapsed
        )
    }

    // ----- bodies -----

    pub(super) fn ok(&self) -> Fault {
        Fault::Write(response(
            200,
            &[("content-type", "application/json")],
            self.wire().reply(OK),
        ))
    }

    pub(super) fn status(&self, status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        Fault::Write(response(status, &all, body))
    }

    pub(super) fn json_200(&self, body: impl AsRef<[u8]>) -> Fault {
        Fault::Write(response(200, &[("content-type", "application/json")], body))
    }

    pub(super) fn stream_events(&self, parts: &[&str]) -> String {
        parts.iter().map(|p| self.wire().stream_delta(p)).collect()
    }

    pub(super) fn full_stream(&self) -> String {
        let mut body = self.stream_events(&STREAM_PARTS);
        body.push_str(&self.wire().stream_end());
        body
    }

    pub(super) fn stream_head(&self) -> Vec<u8> {
        chunked_head(200, self.wire().stream_content_type(), &[])
    }

    /// A stream response: head, `body` in one chunk, and the end of the
    /// chunked body.
    pub(super) fn stream_fault(&self, body: impl AsRef<[u8]>) -> Fault {
        chunked(self.wire().stream_content_type(), &[body])
    }

    pub(super) fn secret_message(&self) -> String {
        match self.secret {
            Some(secret) => format!("Incorrect API key provided: {secret}"),
            None => String::from("Incorrect API key provided"),
        }
    }

    pub(super) fn with_bad_utf8(text: &str) -> Vec<u8> {
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
}

/// The URL of a port on 127.0.0.1 where nothing listens.
pub(super) fn closed_port_url() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot bind 127.0.0.1: {error}"))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("no local address: {error}"))?;
    drop(listener);
    Ok(format!("http://{address}"))
}
