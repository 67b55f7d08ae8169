//! Chains: named text inputs to named text outputs, and [`LlmChain`], a chat
//! prompt template with a model and a stop list.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ChainError;
use crate::model::{ChatModel, ChatRequest, ChatResponse, ResponseFormat, Sampling};
use crate::prompt::{ChatPromptTemplate, PromptValues};

/// Named text values: a chain's inputs or outputs.
pub type Inputs = BTreeMap<String, String>;

/// Builds [`Inputs`] from pairs.
pub fn inputs<I, K, V>(pairs: I) -> Inputs
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// A step of computation with named inputs and outputs (LangChain's `Chain`).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Chain: Send + Sync {
    /// The inputs the chain reads.
    fn input_keys(&self) -> Vec<String>;

    /// The outputs the chain writes.
    fn output_keys(&self) -> Vec<String>;

    /// Runs the chain.
    ///
    /// # Errors
    /// A [`ChainError`] from the chain's parts.
    async fn call(&self, inputs: &Inputs) -> Result<Inputs, ChainError>;
}

/// Runs a chain and returns its single output (LangChain's `Chain.run`).
///
/// # Errors
/// The chain's error, [`ChainError::MissingInput`] when an input key has no
/// value, or [`ChainError::MissingOutput`] when the first output key is
/// missing from the result.
pub async fn run_chain(chain: &dyn Chain, inputs: &Inputs) -> Result<String, ChainError> {
    if let Some(key) = chain
        .input_keys()
        .into_iter()
        .find(|k| !inputs.contains_key(k))
    {
        return Err(ChainError::MissingInput { key });
    }
    let key = chain
        .output_keys()
        .into_iter()
        .next()
        .unwrap_or_else(|| String::from("text"));
    let mut outputs = chain.call(inputs).await?;
    outputs
        .remove(&key)
        .ok_or(ChainError::MissingOutput { key })
}

/// A chat prompt template, a model and a stop list (LangChain's `LLMChain`):
/// fills the template, calls the model, returns the text.
#[derive(Clone)]
pub struct LlmChain {
    prompt: ChatPromptTemplate,
    model: Arc<dyn ChatModel>,
    stop: Vec<String>,
    sampling: Sampling,
    response_format: Option<ResponseFormat>,
    output_key: String,
}

impl std::fmt::Debug for LlmChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmChain")
            .field("prompt", &self.prompt)
            .field("model", &self.model.model_name())
            .field("stop", &self.stop)
            .field("sampling", &self.sampling)
            .finish_non_exhaustive()
    }
}

impl LlmChain {
    /// A chain over `model` with `prompt`, no stop sequences and output key
    /// `"text"`.
    pub fn new(model: Arc<dyn ChatModel>, prompt: ChatPromptTemplate) -> Self {
        Self {
            prompt,
            model,
            stop: Vec::new(),
            sampling: Sampling::default(),
            response_format: None,
            output_key: String::from("text"),
        }
    }

    /// Sets the stop sequences.
    #[must_use]
    pub fn with_stop<I, S>(mut self, stop: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the sampling settings.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets a response format for every call.
    #[must_use]
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Sets the output key used when run as a [`Chain`].
    #[must_use]
    pub fn with_output_key(mut self, key: impl Into<String>) -> Self {
        self.output_key = key.into();
        self
    }

    /// The prompt.
    pub fn prompt(&self) -> &ChatPromptTemplate {
        &self.prompt
    }

    /// The model.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// The stop sequences.
    pub fn stop(&self) -> &[String] {
        &self.stop
    }

    /// The request this chain sends for `values`.
    ///
    /// # Errors
    /// [`crate::TemplateError`] when a placeholder has no value.
    pub fn request(&self, values: &dyn PromptValues) -> Result<ChatRequest, ChainError> {
        let mut request = ChatRequest::new(self.prompt.format_messages(values)?)
            .with_stop(self.stop.iter().cloned())
            .with_sampling(self.sampling);
        request.response_format.clone_from(&self.response_format);
        Ok(request)
    }

    /// Fills the prompt and calls the model; returns the full response (with
    /// usage).
    ///
    /// # Errors
    /// Template or provider errors.
    pub async fn generate(&self, values: &dyn PromptValues) -> Result<ChatResponse, ChainError> {
        let request = self.request(values)?;
        Ok(self.model.chat(request).await?)
    }

    /// Fills the prompt and calls the model; returns the text.
    ///
    /// # Errors
    /// Template or provider errors.
    pub async fn run(&self, values: &dyn PromptValues) -> Result<String, ChainError> {
        Ok(self.generate(values).await?.message.content)
    }
}

#[async_trait]
impl Chain for LlmChain {
    fn input_keys(&self) -> Vec<String> {
        self.prompt
            .variables()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn output_keys(&self) -> Vec<String> {
        vec![self.output_key.clone()]
    }

    async fn call(&self, inputs: &Inputs) -> Result<Inputs, ChainError> {
        let text = self.run(inputs).await?;
        Ok(Inputs::from([(self.output_key.clone(), text)]))
    }
}
