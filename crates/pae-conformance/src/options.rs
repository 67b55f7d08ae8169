//! Settings of a conformance run.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pae_core::ChatModel;

use crate::Check;

/// Settings of a conformance run. [`Options::default`] suits small local
/// models on a couple of CPU cores; change fields with the `with_*` methods.
///
/// Every request the suite sends uses temperature 0 and [`seed`](Self::seed),
/// because several checks compare two replies to the same prompt and assume
/// they are the same.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// `max_tokens` of ordinary requests (default 32).
    pub max_tokens: u32,
    /// `max_tokens` of the [`Check::MaxTokens`] request (default 4).
    pub length_limit: u32,
    /// `max_tokens` of tool-call and JSON-schema requests, which need room
    /// for a complete JSON value (default 64).
    pub structured_max_tokens: u32,
    /// The sampling seed of every request (default 42).
    pub seed: u64,
    /// How long one request (or one whole stream) may take before the check
    /// fails (default 180 s).
    pub request_timeout: Duration,
    /// Checks not to run, each with the reason shown in the report.
    pub skip: Vec<(Check, String)>,
    /// The adapter under test configured to reach an address where nothing
    /// listens, for [`Check::UnreachableEndpoint`].
    pub unreachable: Option<Arc<dyn ChatModel>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_tokens: 32,
            length_limit: 4,
            structured_max_tokens: 64,
            seed: 42,
            request_timeout: Duration::from_secs(180),
            skip: Vec::new(),
            unreachable: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("max_tokens", &self.max_tokens)
            .field("length_limit", &self.length_limit)
            .field("structured_max_tokens", &self.structured_max_tokens)
            .field("seed", &self.seed)
            .field("request_timeout", &self.request_timeout)
            .field("skip", &self.skip)
            .field(
                "unreachable",
                &self.unreachable.as_ref().map(|model| model.model_name()),
            )
            .finish()
    }
}

impl Options {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `max_tokens` of ordinary requests.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sets the limit the [`Check::MaxTokens`] request uses.
    #[must_use]
    pub fn with_length_limit(mut self, length_limit: u32) -> Self {
        self.length_limit = length_limit;
        self
    }

    /// Sets `max_tokens` of tool-call and JSON-schema requests.
    #[must_use]
    pub fn with_structured_max_tokens(mut self, max_tokens: u32) -> Self {
        self.structured_max_tokens = max_tokens;
        self
    }

    /// Sets the sampling seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the time limit of one request.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Skips `check`, reporting `reason` (say why the provider cannot pass
    /// it, for example a known server limitation).
    #[must_use]
    pub fn skip(mut self, check: Check, reason: impl Into<String>) -> Self {
        self.skip.push((check, reason.into()));
        self
    }

    /// Gives the adapter under test configured for an address where nothing
    /// listens (for example `http://127.0.0.1:9`), which enables
    /// [`Check::UnreachableEndpoint`].
    #[must_use]
    pub fn with_unreachable(mut self, model: impl ChatModel + 'static) -> Self {
        self.unreachable = Some(Arc::new(model));
        self
    }

    /// The reason `check` is skipped by these options, if it is.
    pub(crate) fn skip_reason(&self, check: Check) -> Option<&str> {
        self.skip
            .iter()
            .find(|(skipped, _)| *skipped == check)
            .map(|(_, reason)| reason.as_str())
    }
}
