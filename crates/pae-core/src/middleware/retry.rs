//! [`Retry`]: retries a model's failed calls with exponential backoff and
//! jitter, honouring the wait a provider asks for.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::ProviderError;
use crate::model::{Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream};

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
                        crate::telemetry::retrying(
                            || self.inner.model_name(),
                            attempt,
                            self.policy.max_attempts,
                            wait,
                            &error,
                        );
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
                    crate::telemetry::retrying(
                        || self.inner.model_name(),
                        attempt,
                        self.policy.max_attempts,
                        wait,
                        &error,
                    );
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
    use crate::middleware::ChatModelExt;
    use crate::middleware::testing::{Slow, chunk, request};
    use crate::model::MockChatModel;
    use tokio::time::Instant;

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
}
