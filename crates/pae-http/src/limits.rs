//! The sizes and times every HTTP adapter bounds its work with.

use std::time::Duration;

/// The largest reply body (or single streamed line or event) read by
/// default: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

/// How much of a body an error keeps ([`ProviderError::Http::body`] and
/// [`ProviderError::InvalidResponse::body`]): the first 64 KiB.
///
/// [`ProviderError::Http::body`]: pae_core::ProviderError::Http
/// [`ProviderError::InvalidResponse::body`]: pae_core::ProviderError::InvalidResponse
pub const ERROR_BODY_BYTES: usize = 64 << 10;

/// The time limit of a call unless the adapter is told otherwise: 10
/// minutes, as OpenAI's own clients, so a server that stalls never hangs a
/// run, while a slow local model still has time to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an error body may take to arrive: the status is known, so a
/// stalled body is not waited for forever, even when no timeout is set.
pub const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);
