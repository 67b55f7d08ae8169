//! [`SamplingDefaults`]: sampling settings a request leaves unset, filled
//! with defaults.

use async_trait::async_trait;

use crate::error::ProviderError;
use crate::model::{Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, Sampling};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::ChatModelExt;
    use crate::middleware::testing::request;
    use crate::model::MockChatModel;

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
}
