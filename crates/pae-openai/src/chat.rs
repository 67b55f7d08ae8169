//! [`OpenAiChat`]: the [`ChatModel`] for OpenAI's chat-completions API and
//! compatible servers.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use pae_core::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, ProviderError,
    cut_at_stop, cut_stream_at_stop, parse_retry_after,
};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::sse;
use crate::wire::{self, SchemaMode, TokenLimitField, WireOptions};

/// OpenAI's API root, used when no base URL is given.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The largest reply body (or streamed event) read by default: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

/// How much of an error body is kept in [`ProviderError::Http::body`] and
/// [`ProviderError::InvalidResponse::body`]: the first 64 KiB.
pub(crate) const ERROR_BODY_BYTES: usize = 64 << 10;

/// The time limit of a call unless [`with_timeout`](OpenAiChat::with_timeout)
/// or [`without_timeout`](OpenAiChat::without_timeout) says otherwise: 10
/// minutes, as OpenAI's own clients, so a server that stalls never hangs a
/// run, while a slow local model still has time to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an error body may take to arrive when no timeout is set: the
/// status is known, so a stalled body is not waited for forever.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// An API key. Its `Debug` output is redacted, and the adapter never puts it
/// in an error, a log line or a `Debug` string.
#[derive(Clone, PartialEq, Eq)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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
        self.api_key = Some(ApiKey(api_key.into()));
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
        if let Some(ApiKey(key)) = &self.api_key {
            config = config.with_api_key(key.as_str());
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
        if let Some(ApiKey(key)) = &self.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ProviderError::Configuration {
                    message: "the API key contains characters not allowed in an HTTP header".into(),
                }
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
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        // What arrives of the body within the wait, up to the kept size:
        // the status is what matters, and a huge or stalled error body must
        // not hold the caller.
        let mut kept = Vec::new();
        let mut bytes = response.bytes_stream();
        let _ = tokio::time::timeout(ERROR_BODY_WAIT, async {
            while let Some(Ok(part)) = bytes.next().await {
                kept.extend_from_slice(&part);
                if kept.len() >= ERROR_BODY_BYTES {
                    break;
                }
            }
        })
        .await;
        Err(ProviderError::Http {
            status: status.as_u16(),
            body: ProviderError::body_excerpt(&kept, ERROR_BODY_BYTES),
            retry_after,
        })
    }

    /// Reads a whole reply body, refusing one above the size limit.
    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large(&[], limit));
        }
        let mut body = Vec::new();
        let mut bytes = response.bytes_stream();
        while let Some(part) = bytes.next().await {
            let part = part.map_err(|error| self.transport_error(error))?;
            if body.len() + part.len() > limit {
                body.extend_from_slice(&part);
                return Err(too_large(&body, limit));
            }
            body.extend_from_slice(&part);
        }
        Ok(body)
    }

    async fn chat_inner(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response = self.send(request, false).await?;
        let body = self.read_body(response).await?;
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
        let bytes: sse::ByteStream =
            Box::pin(response.bytes_stream().map(|part| part.map(|b| b.to_vec())));
        Ok(sse::chunk_stream(
            bytes,
            self.timeout,
            self.max_response_bytes,
        ))
    }

    /// Maps a reqwest failure to a provider error, without the URL (which
    /// could carry credentials) and without the key.
    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        let target = redact_url(&self.base_url);
        if error.is_timeout() {
            return ProviderError::Timeout {
                after: self.timeout.unwrap_or_default(),
            };
        }
        let action = if error.is_connect() {
            "connecting to"
        } else if error.is_body() || error.is_decode() {
            "reading the response from"
        } else {
            "sending the request to"
        };
        ProviderError::connection(format!("{action} {target}"), error.without_url())
    }
}

/// Removes `key` from `text`.
fn scrub(key: Option<&ApiKey>, text: &str) -> String {
    match key {
        Some(ApiKey(key)) if key.len() >= 4 => text.replace(key.as_str(), "<redacted>"),
        _ => text.to_owned(),
    }
}

/// Removes `key` from every text of `error` that came from the server, so
/// that no path (status, parse failure, stream event) can show it.
fn scrub_error(key: Option<&ApiKey>, error: ProviderError) -> ProviderError {
    if key.is_none() {
        return error;
    }
    match error {
        ProviderError::Http {
            status,
            body,
            retry_after,
        } => ProviderError::Http {
            status,
            body: scrub(key, &body),
            retry_after,
        },
        ProviderError::InvalidResponse { body, reason } => ProviderError::InvalidResponse {
            body: scrub(key, &body),
            reason: scrub(key, &reason),
        },
        ProviderError::StreamInterrupted { reason, partial } => ProviderError::StreamInterrupted {
            reason: scrub(key, &reason),
            partial,
        },
        other => other,
    }
}

/// The error for a body above `limit` bytes, keeping its beginning.
fn too_large(body: &[u8], limit: usize) -> ProviderError {
    ProviderError::InvalidResponse {
        body: ProviderError::body_excerpt(body, ERROR_BODY_BYTES),
        reason: format!("the response is larger than the limit of {limit} bytes"),
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

/// A URL for messages: user name and password removed.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() || !parsed.username().is_empty() {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            // A query may carry a key (`?api-key=…`).
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => String::from("<invalid URL>"),
    }
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

    #[test]
    fn scrub_removes_the_key_from_bodies() {
        let key = ApiKey("sk-abcdef".into());
        assert_eq!(
            scrub(Some(&key), "Incorrect API key provided: sk-abcdef."),
            "Incorrect API key provided: <redacted>."
        );
        let error = scrub_error(
            Some(&key),
            ProviderError::StreamInterrupted {
                reason: "bad key sk-abcdef".into(),
                partial: "kept".into(),
            },
        );
        assert_eq!(
            format!("{error:?}"),
            r#"StreamInterrupted { reason: "bad key <redacted>", partial: "kept" }"#
        );
    }
}
