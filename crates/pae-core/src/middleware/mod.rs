//! Wrappers that add behaviour to any [`ChatModel`], tower style, one module
//! each: [`Retry`] (exponential backoff with jitter, honouring
//! `Retry-After`), [`Timeout`] (a per-call time limit) and
//! [`SamplingDefaults`] (sampling settings a request leaves unset), with
//! [`ChatModelExt`] to stack them.
//!
//! Each wrapper implements [`ChatModel`] itself, so they compose with each
//! other and with any adapter:
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
//! `Retry` and `Timeout` use Tokio's clock (`tokio::time`), so they must run
//! inside a Tokio runtime with the time driver enabled, and tests can pause
//! time.

mod retry;
mod sampling;
mod timeout;

use std::time::Duration;

use crate::model::{ChatModel, Sampling};

pub use retry::{Retry, RetryPolicy};
pub use sampling::SamplingDefaults;
pub use timeout::Timeout;

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

/// What the wrappers' tests share: a request, a slow model and a chunk.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use crate::error::ProviderError;
    use crate::model::{ChatChunk, ChatModel, ChatRequest, ChatResponse, Message};

    pub(crate) fn request() -> ChatRequest {
        ChatRequest::new(vec![Message::user("hi")])
    }

    /// Answers after `latency` on Tokio's clock.
    pub(crate) struct Slow {
        latency: Duration,
        pub(crate) calls: Mutex<usize>,
    }

    impl Slow {
        pub(crate) fn new(latency: Duration) -> Self {
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

    pub(crate) fn chunk(text: &str) -> Result<ChatChunk, ProviderError> {
        Ok(ChatChunk {
            delta: text.to_owned(),
            ..ChatChunk::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::testing::Slow;
    use super::*;
    use crate::model::{Capabilities, MockChatModel};

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
