//! [`OpenAiChat`]: the [`ChatModel`] for OpenAI's chat-completions API and
//! compatible servers.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use pae_core::adapter::{cut_at_stop, cut_stream_at_stop};
use pae_core::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, ProviderError,
};
use pae_http::{
    ApiKey, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, http_error, parse_retry_after, redact_url,
};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::sse;
use crate::wire::{self, SchemaMode, TokenLimitField, WireOptions};

/// OpenAI's API root, used when no base URL is given.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// A chat model served over OpenAI's chat-completions API: OpenAI itself or
/// any compatible server (llama.cpp's and llama-cpp-python's servers, vLLM,
/// Ollama's `/v1`, …).
///
/// Construct it with [`new`](Self::new) plus `with_*` settings, or from the
/// environment with [`from_env`](Self::from_env). It is cheap to clone (the
/// HTTP connection pool is shared).
///
/// What it does with a [`ChatRequest`]: messages (tool calls and tool
/// results included), stop sequences, tools and tool choice, response
/// format, temperature, top-p, max tokens and seed go into the request
/// body; the reply's text, tool calls (arguments that are not valid JSON are
/// kept as a JSON string), usage and finish reason come back. Streaming asks
/// for usage in the last chunk (`stream_options.include_usage`) and joins
/// tool-call fragments by index. The adapter also cuts replies at the stop
/// sequences itself, for servers that ignore them.
///
/// Errors keep what a caller needs: HTTP status, the raw body (its first
/// 64 KiB), and the wait asked for by `Retry-After` (or OpenAI's
/// `retry-after-ms`). A body with status 200 that holds an `error` object
/// instead of a completion (as some compatible servers and proxies send) is
/// an error too: [`ProviderError::Http`] with the object's `code` when that
/// is an HTTP status, else [`ProviderError::InvalidResponse`] whose reason
/// quotes the server's message. The adapter does not retry by itself; wrap
/// it in [`pae_core::Retry`] (see [`pae_core::ChatModelExt`]).
#[derive(Clone)]
pub struct OpenAiChat {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<ApiKey>,
    model: String,
    timeout: Option<Duration>,
    capabilities: Capabilities,
    options: WireOptions,
    max_response_bytes: usize,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("base_url", &redact_url(&self.base_url))
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("capabilities", &self.capabilities)
            .field("schema_mode", &self.options.schema_mode)
            .field("token_limit", &self.options.token_limit)
            .field("stream_usage", &self.options.stream_usage)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl OpenAiChat {
    /// A model with this id at OpenAI's API, with no key, the
    /// [`DEFAULT_TIMEOUT`], and OpenAI's capabilities (native tools, JSON schema, streaming).
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            model: model.into(),
            timeout: Some(DEFAULT_TIMEOUT),
            capabilities: Capabilities {
                native_tools: true,
                json_schema: true,
                streaming: true,
            },
            options: WireOptions {
                stream_usage: true,
                ..WireOptions::default()
            },
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// A model configured from the environment: `OPENAI_API_KEY` and,
    /// when set, `OPENAI_BASE_URL` (for a compatible server; the key is then
    /// optional, since local servers usually need none).
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] when `OPENAI_BASE_URL` is not an
    /// http(s) URL, or when neither a key nor a base URL is set.
    pub fn from_env(model: impl Into<String>) -> Result<Self, ProviderError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut chat = Self::new(model);
        let base_url = var("OPENAI_BASE_URL");
        let api_key = var("OPENAI_API_KEY");
        if base_url.is_none() && api_key.is_none() {
            return Err(ProviderError::Configuration {
                message: "OPENAI_API_KEY is not set (set it, or OPENAI_BASE_URL for a server \
                          that needs no key)"
                    .into(),
            });
        }
        if let Some(url) = base_url {
            chat = chat.with_base_url(url);
            chat.endpoint()?;
        }
        if let Some(key) = api_key {
            chat = chat.with_api_key(key);
        }
        Ok(chat)
    }

    /// Sends requests to this API root (for example
    /// `http://127.0.0.1:8080/v1`); `/chat/completions` is appended.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Authenticates with this key (`Authorization: Bearer …`).
    #[must_use]
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(api_key));
        self
    }

    /// Fails calls that take longer than `timeout` with
    /// [`ProviderError::Timeout`]. For streams the limit applies to the
    /// start and to each gap between chunks; keep-alive comments and other
    /// events that carry no part of the reply do not restart it, so a
    /// server that only keeps the connection open times out.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Waits as long as the server takes (the default is
    /// [`DEFAULT_TIMEOUT`]). Only for callers that bound calls themselves,
    /// for example with [`pae_core::Timeout`]: a stalled server then hangs
    /// the call.
    #[must_use]
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Reports these capabilities instead of OpenAI's, for compatible
    /// servers that lack some (a small local model behind llama.cpp usually
    /// does not choose tools by itself, for instance).
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Chooses how JSON-schema response formats are sent; see
    /// [`SchemaMode`].
    #[must_use]
    pub fn with_schema_mode(mut self, mode: SchemaMode) -> Self {
        self.options.schema_mode = mode;
        self
    }

    /// Chooses the field that carries `max_tokens`; see [`TokenLimitField`].
    #[must_use]
    pub fn with_token_limit_field(mut self, field: TokenLimitField) -> Self {
        self.options.token_limit = field;
        self
    }

    /// Whether streamed requests ask for usage in the last chunk
    /// (`stream_options.include_usage`, on by default). Turn it off for a
    /// server that rejects the field.
    #[must_use]
    pub fn with_stream_usage(mut self, include: bool) -> Self {
        self.options.stream_usage = include;
        self
    }

    /// Refuses reply bodies (and single streamed events) larger than
    /// `bytes` with [`ProviderError::InvalidResponse`] instead of buffering
    /// them; the default is [`DEFAULT_MAX_RESPONSE_BYTES`].
    #[must_use]
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes.max(1);
        self
    }

    /// Uses this HTTP client (for proxies, custom TLS roots, connection
    /// limits).
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// The API root requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model id.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The JSON body this adapter would send for `request`, for inspection
    /// and debugging.
    ///
    /// # Errors
    /// [`ProviderError::InvalidRequest`] for a request no provider can
    /// answer (see [`ChatRequest::validate`]) or one the API cannot express
    /// (a tool message without a `tool_call_id`).
    pub fn request_body(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<serde_json::Value, ProviderError> {
        wire::request_body(&self.model, request, stream, self.options)
    }

    /// An async-openai client with the same base URL and key, for the parts
    /// of the OpenAI API pae does not cover. This is the only place an SDK
    /// type appears in this crate's API.
    #[cfg(feature = "raw-client")]
    pub fn raw_client(&self) -> async_openai::Client<async_openai::config::OpenAIConfig> {
        let mut config = async_openai::config::OpenAIConfig::new().with_api_base(&self.base_url);
        if let Some(key) = &self.api_key {
            config = config.with_api_key(key.expose());
        }
        async_openai::Client::with_config(config)
    }

    fn endpoint(&self) -> Result<reqwest::Url, ProviderError> {
        let url = reqwest::Url::parse(&format!("{}/chat/completions", self.base_url)).map_err(
            |error| ProviderError::Configuration {
                message: format!(
                    "the base URL {:?} is not a URL: {error}",
                    redact_url(&self.base_url)
                ),
            },
        )?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProviderError::Configuration {
                message: format!(
                    "the base URL {:?} is not http(s)",
                    redact_url(&self.base_url)
                ),
            });
        }
        Ok(url)
    }

    fn headers(&self, stream: bool) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        if let Some(key) = &self.api_key {
            let bearer = format!("Bearer {}", key.expose());
            let mut value =
                HeaderValue::from_str(&bearer).map_err(|_| ProviderError::Configuration {
                    message: "the API key contains characters not allowed in an HTTP header".into(),
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// Sends the request and returns the response once its status is a
    /// success; an error status becomes [`ProviderError::Http`].
    async fn send(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = self.endpoint()?;
        let body = wire::request_body(&self.model, request, stream, self.options)?;
        let body = serde_json::to_vec(&body).map_err(|error| ProviderError::Configuration {
            message: format!("the request could not be serialised: {error}"),
        })?;
        let response = self
            .http
            .post(url)
            .headers(self.headers(stream)?)
            .body(body)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        Err(http_error(response, wait).await)
    }

    async fn chat_inner(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response = self.send(request, false).await?;
        let body = pae_http::read_body(response, self.max_response_bytes, |error| {
            self.transport_error(error)
        })
        .await?;
        let mut reply = wire::parse_response(&body)?;
        let cut = cut_at_stop(&reply.message.content, &request.stop).len();
        if cut < reply.message.content.len() {
            reply.message.content.truncate(cut);
            reply.finish_reason = FinishReason::Stop;
        }
        Ok(reply)
    }

    /// The chunks of a streamed reply. The content type is not trusted: a
    /// body with events is read as events whatever its label, and one
    /// without any (a server that ignored `stream: true`) as a whole reply
    /// (see [`sse::chunk_stream`]).
    async fn stream_inner(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let response = self.send(request, true).await?;
        Ok(sse::chunk_stream(
            pae_http::byte_stream(response),
            self.timeout,
            self.max_response_bytes,
        ))
    }

    /// Maps a reqwest failure to a provider error, without the URL (which
    /// could carry credentials) and without the key.
    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        pae_http::transport_error(error, &redact_url(&self.base_url), self.timeout)
    }
}

/// Removes `key` from every text of `error` that came from the server, so
/// that no path (status, parse failure, stream event) can show it.
fn scrub_error(key: Option<&ApiKey>, error: ProviderError) -> ProviderError {
    match key {
        Some(key) => key.scrub_error(error),
        None => error,
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let result = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, self.chat_inner(&request))
                .await
                .unwrap_or(Err(ProviderError::Timeout { after: limit })),
            None => self.chat_inner(&request).await,
        };
        result.map_err(|error| scrub_error(self.api_key.as_ref(), error))
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let key = self.api_key.clone();
        let stream = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, self.stream_inner(&request))
                .await
                .unwrap_or(Err(ProviderError::Timeout { after: limit })),
            None => self.stream_inner(&request).await,
        }
        .map_err(|error| scrub_error(key.as_ref(), error))?;
        let scrubbed =
            stream.map(move |item| item.map_err(|error| scrub_error(key.as_ref(), error)));
        Ok(cut_stream_at_stop(Box::pin(scrubbed), request.stop))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn model_name(&self) -> String {
        self.model.clone()
    }
}

/// The wait a response asks for: OpenAI's `retry-after-ms`, else
/// `Retry-After` (seconds or an HTTP date).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e12) / 1000.0));
    }
    text("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_a_time_limit_unless_the_caller_removes_it() {
        assert_eq!(OpenAiChat::new("m").timeout, Some(DEFAULT_TIMEOUT));
        let limit = Duration::from_secs(3);
        assert_eq!(
            OpenAiChat::new("m").with_timeout(limit).timeout,
            Some(limit)
        );
        assert_eq!(OpenAiChat::new("m").without_timeout().timeout, None);
    }

    #[test]
    fn public_types_are_send_sync_and_usable_as_dyn_chat_model() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<OpenAiChat>();
        assert_send_sync::<SchemaMode>();
        assert_send_sync::<TokenLimitField>();
        let model: std::sync::Arc<dyn ChatModel> = std::sync::Arc::new(OpenAiChat::new("m"));
        assert_eq!(model.model_name(), "m");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let chat = OpenAiChat::new("gpt-4o-mini")
            .with_api_key("sk-very-secret-key")
            .with_base_url("https://user:hunter2@example.com/v1/");
        let debug = format!("{chat:?}");
        assert!(!debug.contains("sk-very-secret-key"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(debug.contains("https://example.com/v1"), "{debug}");
    }

    #[test]
    fn bad_base_urls_are_configuration_errors() {
        for url in ["not a url", "ftp://example.com/v1"] {
            let error = OpenAiChat::new("m")
                .with_base_url(url)
                .endpoint()
                .unwrap_err();
            assert!(
                matches!(error, ProviderError::Configuration { .. }),
                "{error:?}"
            );
        }
        let url = OpenAiChat::new("m")
            .with_base_url("http://127.0.0.1:8080/v1/")
            .endpoint()
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/chat/completions");
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
