//! [`Timeout`]: a time limit on each call of a model, and on each gap
//! between the chunks of a stream.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::ProviderError;
use crate::model::{Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream};

/// Fails a model's calls that take longer than a limit with
/// [`ProviderError::Timeout`].
///
/// [`chat`](ChatModel::chat) must finish within the limit. For
/// [`stream`](ChatModel::stream) the limit applies to starting the stream
/// and then to each gap between chunks, so a long reply that keeps arriving
/// is not cut, but a stalled one is: the stream then yields a `Timeout`
/// error and ends.
///
/// Like [`Retry`](super::Retry), it needs a Tokio runtime with the time driver enabled.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::ChatModelExt;
    use crate::middleware::testing::{Slow, chunk, request};
    use crate::model::MockChatModel;
    use tokio::time::Instant;

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
}
