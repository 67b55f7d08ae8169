//! Wrappers that add behaviour to any [`ChatModel`], tower style: [`Retry`]
//! (exponential backoff with jitter, honouring `Retry-After`) and
//! [`Timeout`] (a per-call time limit), with [`ChatModelExt`] to stack them.
//!
//! Both wrappers implement [`ChatModel`] themselves, so they compose with
//! each other and with any adapter:
//!
//! ```
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use pae_core::{ChatModel, ChatModelExt, ChatRequest, ChatResponse, Message, ProviderError,
//!     RetryPolicy};
//!
//! struct Hello;
//! #[async_trait]
//! impl ChatModel for Hello {
//!     async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, ProviderError> {
//!         Ok(ChatResponse::text("hello"))
//!     }
//! }
//!
//! let model = Hello
//!     .with_timeout(Duration::from_secs(30))
//!     .with_retry(RetryPolicy::new().with_max_attempts(4));
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let reply = rt.block_on(model.chat(ChatRequest::new(vec![Message::user("hi")]))).unwrap();
//! assert_eq!(reply.content(), "hello");
//! ```
//!
//! Both use Tokio's clock (`tokio::time`), so they must run inside a Tokio
//! runtime with the time driver enabled, and tests can pause time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::ProviderError;
use crate::model::{Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, Sampling};

/// How [`Retry`] retries: how many attempts, how long to wait between them,
/// and how much of a server's `Retry-After` to honour.
///
/// The wait before retry `n` (1-based) is `initial_backoff * multiplier^(n-1)`,
/// capped at `max_backoff`, then shortened by a random fraction of up to
/// `jitter` so that many clients do not retry in lockstep. When the error
/// carries a `retry_after` (HTTP `Retry-After`), the wait is exactly that
/// instead, unless it is longer than `max_retry_after`, in which case the
/// error is returned at once rather than blocking the caller for so long.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: f64,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// Three attempts in all, 500 ms initial backoff doubling up to 30 s,
    /// jitter of up to half the wait, `Retry-After` honoured up to 60 s.
    pub fn new() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// A policy that never retries (one attempt).
    pub fn never() -> Self {
        Self::new().with_max_attempts(1)
    }

    /// Sets the number of attempts in all, the first included (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the wait before the first retry.
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the longest computed wait between attempts.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the factor the wait grows by after each retry (at least 1).
    #[must_use]
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the jitter: each computed wait is shortened by a random fraction
    /// between 0 and `jitter` (clamped to 0..=1; 0 makes waits exact).
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// Sets the longest `Retry-After` honoured; a server asking for a longer
    /// wait gets its error returned at once.
    #[must_use]
    pub fn with_max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// The number of attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry `retry` (1-based) without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.powi(exponent);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The wait before retry `retry` (1-based) after `error`, or `None` when
    /// the error must not be retried: it is not retryable, the attempts are
    /// used up, or the server asked for a wait above `max_retry_after`.
    pub fn wait_before_retry(&self, retry: u32, error: &ProviderError) -> Option<Duration> {
        if retry >= self.max_attempts || !error.is_retryable() {
            return None;
        }
        match error.retry_after() {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => {
                let base = self.backoff(retry);
                let cut = base.as_secs_f64() * self.jitter * next_unit_random();
                Some(base.saturating_sub(Duration::from_secs_f64(cut)))
            }
        }
    }
}

/// A number in `[0, 1)` from a process-wide xorshift64* generator. Jitter
/// only has to decorrelate clients, so no cryptographic randomness (and no
/// `rand` dependency) is needed; the seed mixes in the clock so processes
/// started together differ.
fn next_unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut current = STATE.load(Ordering::Relaxed);
    loop {
        let mut x = if current == 0 { seed() } else { current };
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        match STATE.compare_exchange_weak(current, x, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                let out = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
                // The top 53 bits fill an f64 mantissa exactly.
                return (out >> 11) as f64 / (1u64 << 53) as f64;
            }
            Err(actual) => current = actual,
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = (nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1;
    mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Retries a model's failed calls with exponential backoff and jitter,
/// honouring `Retry-After`, retrying only errors that
/// [`ProviderError::is_retryable`] says may succeed on a second try, and at
/// most [`RetryPolicy::max_attempts`] times in all.
///
/// For [`stream`](ChatModel::stream), a failure to start the stream is
/// retried, and so is a retryable error that arrives before the first chunk;
/// once a chunk has been delivered, later errors are passed on (the caller
/// has already seen part of the reply).
///
/// When every attempt fails, the last error is returned as it is, so callers
/// still see the status, body and `retry_after` of the final answer.
///
/// Waits use `tokio::time`: calls must run inside a Tokio runtime with the
/// time driver enabled (they panic otherwise, as `tokio::time::sleep` does).
#[derive(Debug, Clone)]
pub struct Retry<M> {
    inner: M,
    policy: RetryPolicy,
}

impl<M> Retry<M> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: M, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for Retry<M> {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut attempt = 1;
        loop {
            match self.inner.chat(request.clone()).await {
                Ok(response) => return Ok(response),
                Err(error) => match self.policy.wait_before_retry(attempt, &error) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(error),
                },
            }
        }
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let mut attempt = 1;
        loop {
            let error = match self.inner.stream(request.clone()).await {
                Ok(mut stream) => match stream.next().await {
                    Some(Err(error)) => error,
                    Some(Ok(first)) => {
                        return Ok(Box::pin(
                            futures::stream::once(async { Ok(first) }).chain(stream),
                        ));
                    }
                    None => return Ok(Box::pin(futures::stream::empty())),
                },
                Err(error) => error,
            };
            match self.policy.wait_before_retry(attempt, &error) {
                Some(wait) => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(error),
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn model_name(&self) -> String {
        self.inner.model_name()
    }
}

/// Fails a model's calls that take longer than a limit with
/// [`ProviderError::Timeout`].
///
/// [`chat`](ChatModel::chat) must finish within the limit. For
/// [`stream`](ChatModel::stream) the limit applies to starting the stream
/// and then to each gap between chunks, so a long reply that keeps arriving
/// is not cut, but a stalled one is: the stream then yields a `Timeout`
/// error and ends.
///
/// Like [`Retry`], it needs a Tokio runtime with the time driver enabled.
#[derive(Debug, Clone)]
pub struct Timeout<M> {
    inner: M,
    limit: Duration,
}

impl<M> Timeout<M> {
    /// Wraps `inner` with a time limit.
    pub fn new(inner: M, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for Timeout<M> {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        tokio::time::timeout(self.limit, self.inner.chat(request))
            .await
            .unwrap_or(Err(ProviderError::Timeout { after: self.limit }))
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let limit = self.limit;
        let inner = tokio::time::timeout(limit, self.inner.stream(request))
            .await
            .unwrap_or(Err(ProviderError::Timeout { after: limit }))?;
        let guarded = futures::stream::unfold(Some(inner), move |state| async move {
            let mut inner = state?;
            match tokio::time::timeout(limit, inner.next()).await {
                Ok(Some(item)) => Some((item, Some(inner))),
                Ok(None) => None,
                Err(_) => Some((Err(ProviderError::Timeout { after: limit }), None)),
            }
        });
        Ok(Box::pin(guarded))
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn model_name(&self) -> String {
        self.inner.model_name()
    }
}

/// Fills sampling settings a request leaves unset (temperature, top-p,
/// max tokens, seed) with defaults; settings the request has are kept.
///
/// Useful to make every call of an agent reproducible (temperature 0 and a
/// seed) or bounded (max tokens) without configuring each component.
#[derive(Debug, Clone)]
pub struct SamplingDefaults<M> {
    inner: M,
    defaults: Sampling,
}

impl<M> SamplingDefaults<M> {
    /// Wraps `inner` with these defaults.
    pub fn new(inner: M, defaults: Sampling) -> Self {
        Self { inner, defaults }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The defaults.
    pub fn defaults(&self) -> Sampling {
        self.defaults
    }

    fn fill(&self, mut request: ChatRequest) -> ChatRequest {
        let s = &mut request.sampling;
        s.temperature = s.temperature.or(self.defaults.temperature);
        s.top_p = s.top_p.or(self.defaults.top_p);
        s.max_tokens = s.max_tokens.or(self.defaults.max_tokens);
        s.seed = s.seed.or(self.defaults.seed);
        request
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for SamplingDefaults<M> {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.inner.chat(self.fill(request)).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.inner.stream(self.fill(request)).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn model_name(&self) -> String {
        self.inner.model_name()
    }
}

/// Conveniences for wrapping any [`ChatModel`], in the manner of tower's
/// `ServiceExt`.
pub trait ChatModelExt: ChatModel + Sized {
    /// Retries failed calls per `policy`; see [`Retry`].
    fn with_retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }

    /// Limits each call to `limit`; see [`Timeout`].
    fn with_timeout(self, limit: Duration) -> Timeout<Self> {
        Timeout::new(self, limit)
    }

    /// Fills unset sampling settings; see [`SamplingDefaults`].
    fn with_sampling_defaults(self, defaults: Sampling) -> SamplingDefaults<Self> {
        SamplingDefaults::new(self, defaults)
    }
}

impl<M: ChatModel> ChatModelExt for M {}

/// Parses an HTTP `Retry-After` value: a number of seconds or an HTTP date
/// (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now`. A
/// date in the past is a zero wait; anything unparseable is `None`.
///
/// Adapters use it to fill [`ProviderError::Http::retry_after`].
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use pae_core::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_767); // 08:49:27 GMT
/// assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an HTTP date in any of the three forms
/// RFC 9110 (section 5.6.7) says recipients must accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`, two-digit years 70-99 in the 1900s)
/// and C's asctime form (`Sun Nov  6 08:49:37 1994`).
fn parse_http_date(value: &str) -> Option<u64> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, clock) = match fields.as_slice() {
        [weekday, day, month, year, clock, "GMT"] if weekday.ends_with(',') => {
            (*day, *month, year.parse::<i64>().ok()?, *clock)
        }
        [weekday, date, clock, "GMT"] if weekday.ends_with(',') => {
            let mut date = date.split('-');
            let (day, month, year) = (date.next()?, date.next()?, date.next()?);
            let year: i64 = year.parse().ok()?;
            let year = match year {
                0..=69 => 2000 + year,
                70..=99 => 1900 + year,
                _ => year,
            };
            (day, month, year, *clock)
        }
        [_weekday, month, day, clock, year] => (*day, *month, year.parse::<i64>().ok()?, *clock),
        _ => return None,
    };
    let day: u64 = day.parse().ok()?;
    let month = match month {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let mut clock = clock.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if clock.next().is_some() || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    u64::try_from(secs).ok()
}

/// Cuts a stream of chunks before the earliest stop sequence, for providers
/// that may not honour `stop` themselves; [`cut_at_stop`](crate::cut_at_stop)
/// does the same for a whole reply.
///
/// Text that could be the start of a stop sequence is held back until the
/// next chunk shows whether it is. When a stop sequence appears, the text
/// before it is delivered with finish reason [`Stop`](crate::FinishReason::Stop)
/// and the stream ends (the rest of the provider's stream is dropped). With
/// no stop sequences the stream passes through unchanged.
pub fn cut_stream_at_stop(stream: ChatStream, stop: Vec<String>) -> ChatStream {
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    if stop.is_empty() {
        return stream;
    }
    struct State {
        inner: Option<ChatStream>,
        held: String,
        stop: Vec<String>,
    }
    let state = State {
        inner: Some(stream),
        held: String::new(),
        stop,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let inner = state.inner.as_mut()?;
        match inner.next().await {
            Some(Ok(mut chunk)) => {
                state.held.push_str(&chunk.delta);
                let text = std::mem::take(&mut state.held);
                if let Some(end) = state
                    .stop
                    .iter()
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    chunk.delta = text[..end].to_owned();
                    chunk.finish_reason = Some(crate::model::FinishReason::Stop);
                    state.inner = None;
                } else {
                    let keep = held_back(&text, &state.stop);
                    let split = text.len() - keep;
                    state.held = text[split..].to_owned();
                    chunk.delta = text[..split].to_owned();
                }
                Some((Ok(chunk), state))
            }
            Some(Err(error)) => {
                state.inner = None;
                Some((Err(error), state))
            }
            None => {
                state.inner = None;
                if state.held.is_empty() {
                    None
                } else {
                    let chunk = crate::model::ChatChunk {
                        delta: std::mem::take(&mut state.held),
                        ..crate::model::ChatChunk::default()
                    };
                    Some((Ok(chunk), state))
                }
            }
        }
    }))
}

/// The length of the longest end of `text` that is a proper beginning of a
/// stop sequence.
fn held_back(text: &str, stop: &[String]) -> usize {
    stop.iter()
        .filter_map(|s| {
            (1..s.len())
                .rev()
                .find(|&k| s.is_char_boundary(k) && text.ends_with(&s[..k]))
        })
        .max()
        .unwrap_or(0)
}

impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "up to {} attempts, backoff {:?} x{} up to {:?}, jitter {}",
            self.max_attempts, self.initial_backoff, self.multiplier, self.max_backoff, self.jitter
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;

    use super::*;
    use crate::model::{ChatChunk, Message, MockChatModel};
    use tokio::time::Instant;

    fn request() -> ChatRequest {
        ChatRequest::new(vec![Message::user("hi")])
    }

    #[tokio::test]
    async fn sampling_defaults_fill_only_unset_settings() {
        let mut inner = MockChatModel::new();
        inner
            .expect_chat()
            .times(1)
            .withf(|r| {
                r.sampling.temperature == Some(0.7)
                    && r.sampling.seed == Some(42)
                    && r.sampling.max_tokens == Some(64)
                    && r.sampling.top_p.is_none()
            })
            .returning(|_| Ok(ChatResponse::text("ok")));
        let model = inner.with_sampling_defaults(Sampling {
            temperature: Some(0.0),
            seed: Some(42),
            max_tokens: Some(64),
            top_p: None,
        });
        let reply = model.chat(request().with_temperature(0.7)).await.unwrap();
        assert_eq!(reply.content(), "ok");
    }

    fn http(status: u16, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Http {
            status,
            body: format!("status {status}"),
            retry_after,
        }
    }

    /// A model that fails with the scripted errors, then answers "ok", and
    /// records the (paused) time of every call.
    fn flaky(errors: Vec<ProviderError>) -> (MockChatModel, Arc<Mutex<Vec<Instant>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let errors = Mutex::new(errors.into_iter());
        let mut model = MockChatModel::new();
        let seen = Arc::clone(&calls);
        model.expect_chat().returning(move |_| {
            seen.lock().unwrap().push(Instant::now());
            match errors.lock().unwrap().next() {
                Some(error) => Err(error),
                None => Ok(ChatResponse::text("ok")),
            }
        });
        (model, calls)
    }

    /// Answers after `latency` on Tokio's clock.
    struct Slow {
        latency: Duration,
        calls: Mutex<usize>,
    }

    impl Slow {
        fn new(latency: Duration) -> Self {
            Self {
                latency,
                calls: Mutex::new(0),
            }
        }
    }

    #[async_trait]
    impl ChatModel for Slow {
        async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, ProviderError> {
            *self.calls.lock().unwrap() += 1;
            tokio::time::sleep(self.latency).await;
            Ok(ChatResponse::text("late"))
        }

        fn model_name(&self) -> String {
            "slow".into()
        }
    }

    fn gaps(calls: &[Instant]) -> Vec<Duration> {
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn retry_backs_off_exponentially_then_succeeds() {
        let (model, calls) = flaky(vec![http(503, None), http(500, None)]);
        let policy = RetryPolicy::new()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(100))
            .with_jitter(0.0);
        let reply = model.with_retry(policy).chat(request()).await.unwrap();
        assert_eq!(reply.content(), "ok");
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(
            gaps(&calls),
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_honours_retry_after() {
        let (model, calls) = flaky(vec![http(429, Some(Duration::from_secs(7)))]);
        let policy = RetryPolicy::new().with_initial_backoff(Duration::from_millis(10));
        let reply = model.with_retry(policy).chat(request()).await.unwrap();
        assert_eq!(reply.content(), "ok");
        assert_eq!(gaps(&calls.lock().unwrap()), [Duration::from_secs(7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_when_retry_after_is_too_long() {
        let (model, calls) = flaky(vec![http(429, Some(Duration::from_secs(600)))]);
        let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(60));
        let start = Instant::now();
        let error = model.with_retry(policy).chat(request()).await.unwrap_err();
        assert_eq!(error.status(), Some(429));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(600)));
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_does_not_retry_permanent_errors() {
        let (model, calls) = flaky(vec![http(400, None)]);
        let error = model
            .with_retry(RetryPolicy::new())
            .chat(request())
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(400));
        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_after_max_attempts_with_the_last_error() {
        let (model, calls) = flaky(vec![
            http(500, None),
            http(502, None),
            http(503, None),
            http(504, None),
        ]);
        let policy = RetryPolicy::new()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_secs(1))
            .with_jitter(0.0);
        let start = Instant::now();
        let error = model.with_retry(policy).chat(request()).await.unwrap_err();
        assert_eq!(error.status(), Some(503));
        assert_eq!(calls.lock().unwrap().len(), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_shortens_waits_within_bounds() {
        let policy = RetryPolicy::new()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_secs(1))
            .with_max_backoff(Duration::from_secs(4))
            .with_jitter(0.5);
        let error = http(503, None);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            for retry in 1..10 {
                let full = policy.backoff(retry);
                let wait = policy.wait_before_retry(retry, &error).unwrap();
                assert!(wait <= full, "{wait:?} > {full:?}");
                assert!(wait >= full / 2, "{wait:?} < half of {full:?}");
                seen.insert(wait);
            }
        }
        assert!(seen.len() > 10, "jitter should vary the waits");
        assert_eq!(policy.backoff(1), Duration::from_secs(1));
        assert_eq!(policy.backoff(3), Duration::from_secs(4));
        assert_eq!(policy.backoff(60), Duration::from_secs(4));
        assert_eq!(policy.wait_before_retry(10, &error), None);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fails_slow_calls() {
        let mut model = MockChatModel::new();
        model
            .expect_chat()
            .returning(|_| Ok(ChatResponse::text("late")));
        let slow = Slow::new(Duration::from_secs(10));
        let start = Instant::now();
        let error = slow
            .with_timeout(Duration::from_secs(2))
            .chat(request())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Timeout { after } if after == Duration::from_secs(2))
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let fast = model.with_timeout(Duration::from_secs(2));
        assert_eq!(fast.chat(request()).await.unwrap().content(), "late");
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_inside_retry_is_retried() {
        let model = Arc::new(Slow::new(Duration::from_secs(10)));
        let wrapped = Arc::clone(&model)
            .with_timeout(Duration::from_secs(1))
            .with_retry(
                RetryPolicy::new()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(500))
                    .with_jitter(0.0),
            );
        let start = Instant::now();
        let error = wrapped.chat(request()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Timeout { .. }));
        assert_eq!(*model.calls.lock().unwrap(), 2);
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }

    fn chunk(text: &str) -> Result<ChatChunk, ProviderError> {
        Ok(ChatChunk {
            delta: text.to_owned(),
            ..ChatChunk::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn stream_timeout_cuts_a_stalled_stream() {
        let mut model = MockChatModel::new();
        model.expect_stream().returning(|_| {
            let stalled =
                futures::stream::iter([chunk("a"), chunk("b")]).chain(futures::stream::pending());
            Ok(Box::pin(stalled))
        });
        let start = Instant::now();
        let items: Vec<_> = model
            .with_timeout(Duration::from_secs(3))
            .stream(request())
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 3);
        assert!(matches!(items[2], Err(ProviderError::Timeout { .. })));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn stream_retries_errors_before_the_first_chunk_only() {
        let attempts = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&attempts);
        let mut model = MockChatModel::new();
        model.expect_stream().returning(move |_| {
            let mut n = seen.lock().unwrap();
            *n += 1;
            let items = match *n {
                1 => vec![Err(ProviderError::StreamInterrupted {
                    reason: "connection reset".into(),
                    partial: String::new(),
                })],
                _ => vec![
                    chunk("a"),
                    Err(ProviderError::StreamInterrupted {
                        reason: "cut".into(),
                        partial: "a".into(),
                    }),
                ],
            };
            Ok(Box::pin(futures::stream::iter(items)))
        });
        let policy = RetryPolicy::new()
            .with_initial_backoff(Duration::from_millis(100))
            .with_jitter(0.0);
        let start = Instant::now();
        let items: Vec<_> = model
            .with_retry(policy)
            .stream(request())
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(*attempts.lock().unwrap(), 2);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().delta, "a");
        assert!(matches!(
            items[1],
            Err(ProviderError::StreamInterrupted { .. })
        ));
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let check = |value: &str, expect: Option<Duration>| {
            assert_eq!(parse_retry_after(value, now), expect, "{value:?}");
        };
        check("0", Some(Duration::ZERO));
        check(" 120 ", Some(Duration::from_secs(120)));
        check("1.5", Some(Duration::from_millis(1500)));
        check("-1", None);
        check("NaN", None);
        check("Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO));
        check(
            "Sun, 06 Nov 1994 08:50:37 GMT",
            Some(Duration::from_secs(60)),
        );
        check(
            "Mon, 07 Nov 1994 08:49:37 GMT",
            Some(Duration::from_secs(86_400)),
        );
        check(
            "Sat, 29 Feb 2000 00:00:00 GMT",
            Some(Duration::from_secs(951_782_400 - 784_111_777)),
        );
        check(
            "Sunday, 06-Nov-94 08:50:37 GMT",
            Some(Duration::from_secs(60)),
        );
        check("Sun Nov  6 08:50:37 1994", Some(Duration::from_secs(60)));
        check("Sun, 06 Nov 1994 08:49:37 PST", None);
        check("Sunday, 06-Nov-94 08:49:37 PST", None);
        check("Sun Nov  6 08:49:37", None);
        check("Sun, 06 Nov 1994 08:49:37:12 GMT", None);
        check("Sun, 06 Foo 1994 08:49:37 GMT", None);
        check("", None);
        check("tomorrow", None);
    }

    fn chunks_of(parts: &[&str]) -> ChatStream {
        let items: Vec<_> = parts.iter().map(|p| chunk(p)).collect();
        Box::pin(futures::stream::iter(items))
    }

    async fn texts(stream: ChatStream) -> (String, Vec<ChatChunk>) {
        let chunks: Vec<ChatChunk> = stream.map(|c| c.unwrap()).collect().await;
        (chunks.iter().map(|c| c.delta.as_str()).collect(), chunks)
    }

    #[tokio::test]
    async fn stream_stop_cut_spans_chunk_boundaries() {
        let stop = vec!["<END>".to_string(), "Observation:".to_string()];
        let (text, chunks) = texts(cut_stream_at_stop(
            chunks_of(&["Plan: a <E", "N", "D> more", " never"]),
            stop.clone(),
        ))
        .await;
        assert_eq!(text, "Plan: a ");
        assert_eq!(
            chunks.last().unwrap().finish_reason,
            Some(crate::model::FinishReason::Stop)
        );
        let (text, _) = texts(cut_stream_at_stop(
            chunks_of(&["a <", "b Obs", "erv"]),
            stop,
        ))
        .await;
        assert_eq!(text, "a <b Observ", "held-back text is flushed at the end");
        let (text, _) = texts(cut_stream_at_stop(
            chunks_of(&["é<", "Eé"]),
            vec!["<E>".into()],
        ))
        .await;
        assert_eq!(text, "é<Eé");
        let (text, chunks) = texts(cut_stream_at_stop(chunks_of(&["x", "y"]), vec![])).await;
        assert_eq!((text.as_str(), chunks.len()), ("xy", 2));
    }

    #[test]
    fn wrappers_are_send_sync_and_object_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Retry<MockChatModel>>();
        assert_send_sync::<Timeout<MockChatModel>>();
        let model: Arc<dyn ChatModel> = Arc::new(
            Slow::new(Duration::ZERO)
                .with_retry(RetryPolicy::never())
                .with_timeout(Duration::from_secs(1)),
        );
        assert_eq!(model.model_name(), "slow");
        assert_eq!(model.capabilities(), Capabilities::default());
    }
}
