//! [`FaultSuite`]: fault scenarios every HTTP adapter must survive, run
//! against [`RawServer`](super::RawServer)(super::RawServer)s with the adapter's own
//! constructor and wire format.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use pae_core::{ChatModel, RetryPolicy};

use super::runner::{self, Runner};
use super::{FaultReport, ModelTarget, Scenario, ScenarioResult, WireFormat};
use crate::Outcome;
use crate::text::panic_text;

/// A parametrised suite of fault scenarios (see [`Scenario`]) for any
/// [`ChatModel`] adapter that speaks HTTP: each scenario starts a
/// [`RawServer`](super::RawServer) that answers in the adapter's [`WireFormat`], builds the
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
        runner::retry_policy()
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
                    let run = Runner {
                        wire: &self.wire,
                        secret: self.secret.as_deref(),
                        timeout: self.timeout,
                        make,
                    };
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
