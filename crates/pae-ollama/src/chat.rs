//! [`OllamaChat`]: the [`ChatModel`] for Ollama's `/api/chat`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use pae_core::adapter::{cut_at_stop, cut_stream_at_stop};
use pae_core::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, ProviderError,
};
use pae_http::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, check_status, invalid_response};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::ndjson;
use crate::wire::{self, ToolsWithFormat};

/// The host Ollama listens on by default.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// A chat model served by Ollama (or anything speaking its `/api/chat`).
///
/// Construct it with [`new`](Self::new) plus `with_*` settings, or with
/// [`from_env`](Self::from_env) (`OLLAMA_HOST`). Cheap to clone.
///
/// What it does with a [`ChatRequest`]: messages (tool calls and tool
/// results, the latter with `tool_name`), tools, a JSON schema or JSON mode
/// as `format`, and the options `temperature`, `top_p`, `num_predict`,
/// `seed` and `stop` go into the request; the reply's text, tool calls,
/// token counts (`prompt_eval_count`, `eval_count`) and `done_reason` come
/// back. Streaming reads the NDJSON lines as they arrive.
///
/// Ollama-specific behaviour:
/// - Ollama gives tool calls no ids, so the adapter makes stable ones from
///   the call's position, name and arguments (`call_0_1a2b3c4d`); the same
///   reply gets the same ids, streamed or not.
/// - Ollama cannot force a tool call: [`ToolChoice::Tool`](pae_core::ToolChoice::Tool)
///   sends only the named tool and [`ToolChoice::None`](pae_core::ToolChoice::None)
///   sends none; `Required` sends them all.
/// - Tools and a response format are never sent together (Ollama then
///   ignores the tools, ollama#8095); see [`ToolsWithFormat`].
/// - Stop sequences are also enforced by the adapter, for models whose
///   templates or servers ignore them.
#[derive(Clone)]
pub struct OllamaChat {
    http: reqwest::Client,
    host: Result<Url, String>,
    model: String,
    timeout: Option<Duration>,
    capabilities: Capabilities,
    tools_with_format: ToolsWithFormat,
    max_response_bytes: usize,
}

impl fmt::Debug for OllamaChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OllamaChat")
            .field("host", &self.host_for_messages())
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("capabilities", &self.capabilities)
            .field("tools_with_format", &self.tools_with_format)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl OllamaChat {
    /// A model with this name (for example `qwen2.5-coder:0.5b`) on Ollama's
    /// default host, with the [`DEFAULT_TIMEOUT`]. It claims native tools, JSON schema
    /// and streaming; use [`detect_capabilities`](Self::detect_capabilities)
    /// or [`with_capabilities`](Self::with_capabilities) for models without
    /// tool support.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            host: parse_host(DEFAULT_HOST),
            model: model.into(),
            timeout: Some(DEFAULT_TIMEOUT),
            capabilities: Capabilities {
                native_tools: true,
                json_schema: true,
                streaming: true,
            },
            tools_with_format: ToolsWithFormat::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// A model on the host named by `OLLAMA_HOST` (read as Ollama reads it:
    /// `host`, `host:port` or a URL; port 11434 when none is given and no
    /// scheme either), or the default host when it is unset.
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] when `OLLAMA_HOST` is not a valid
    /// host or URL.
    pub fn from_env(model: impl Into<String>) -> Result<Self, ProviderError> {
        let chat = Self::new(model);
        match std::env::var("OLLAMA_HOST") {
            Ok(host) if !host.trim().is_empty() => {
                let chat = chat.with_host(host);
                chat.endpoint("api/chat")?;
                Ok(chat)
            }
            _ => Ok(chat),
        }
    }

    /// Talks to this host: `host`, `host:port` (port 11434 when omitted) or
    /// a URL such as `http://127.0.0.1:11434`. An invalid host makes every
    /// call fail with [`ProviderError::Configuration`].
    #[must_use]
    pub fn with_host(mut self, host: impl AsRef<str>) -> Self {
        self.host = parse_host(host.as_ref());
        self
    }

    /// Fails calls that take longer than `timeout` with
    /// [`ProviderError::Timeout`]. For streams the limit applies to the
    /// start and to each gap between chunks (a cold Ollama may spend a
    /// while loading the model before the first line); blank keep-alive
    /// lines do not restart it.
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

    /// Reports these capabilities.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Chooses what happens when a request has tools and a response format;
    /// see [`ToolsWithFormat`].
    #[must_use]
    pub fn with_tools_with_format(mut self, policy: ToolsWithFormat) -> Self {
        self.tools_with_format = policy;
        self
    }

    /// Refuses reply bodies (and single streamed lines) larger than `bytes`
    /// with [`ProviderError::InvalidResponse`] instead of buffering them;
    /// the default is [`DEFAULT_MAX_RESPONSE_BYTES`].
    #[must_use]
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes.max(1);
        self
    }

    /// Uses this HTTP client.
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// The host URL.
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] saying why the host given to
    /// [`with_host`](Self::with_host) or in `OLLAMA_HOST` is invalid.
    pub fn host(&self) -> Result<&Url, ProviderError> {
        self.host
            .as_ref()
            .map_err(|message| ProviderError::Configuration {
                message: message.clone(),
            })
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The JSON body this adapter would send for `request`.
    ///
    /// # Errors
    /// [`ProviderError::InvalidRequest`] for a request no provider can
    /// answer (see [`ChatRequest::validate`]);
    /// [`ProviderError::Unsupported`] when the request asks for tools and a
    /// format together (under [`ToolsWithFormat::Reject`]) or a schema
    /// Ollama cannot take.
    pub fn request_body(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<serde_json::Value, ProviderError> {
        wire::request_body(&self.model, request, stream, self.tools_with_format)
    }

    /// Asks the server (`/api/show`) what the model can do and reports that:
    /// native tools only when the model lists the `tools` capability.
    /// Servers too old to list capabilities leave the claims unchanged.
    ///
    /// # Errors
    /// What [`ChatModel::chat`] can fail with, for the `/api/show` call (for
    /// example HTTP 404 when the model is not pulled).
    pub async fn detect_capabilities(mut self) -> Result<Self, ProviderError> {
        let url = self.endpoint("api/show")?;
        let body = serde_json::json!({ "model": self.model, "name": self.model });
        let call = async {
            let response = self
                .http
                .post(url)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string())
                .send()
                .await
                .map_err(|error| self.transport_error(error))?;
            let response = check_status(response).await?;
            self.read_body(response).await
        };
        let bytes = self.with_limit(call).await?;
        let info: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
            invalid_response(&bytes, format!("not an /api/show reply: {error}"))
        })?;
        if let Some(list) = info.get("capabilities").and_then(|c| c.as_array()) {
            self.capabilities.native_tools = list.iter().any(|c| c.as_str() == Some("tools"));
        }
        Ok(self)
    }

    /// An ollama-rs client for the same host, sharing the HTTP client, for
    /// the parts of Ollama's API pae does not cover (pulling models,
    /// embeddings, …). This is the only place an ollama-rs type appears in
    /// this crate's API.
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] when the host is invalid.
    pub fn raw_client(&self) -> Result<ollama_rs::Ollama, ProviderError> {
        let url = self.host()?.clone();
        Ok(ollama_rs::Ollama::builder()
            .url(url)
            .reqwest_client(self.http.clone())
            .build())
    }

    fn endpoint(&self, path: &str) -> Result<Url, ProviderError> {
        let host = self.host()?;
        host.join(path)
            .map_err(|error| ProviderError::Configuration {
                message: format!("cannot form the URL of {path}: {error}"),
            })
    }

    fn host_for_messages(&self) -> String {
        match &self.host {
            Ok(url) => pae_http::redact(url),
            Err(_) => String::from("<invalid host>"),
        }
    }

    async fn with_limit<T>(
        &self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .unwrap_or(Err(ProviderError::Timeout { after: limit })),
            None => call.await,
        }
    }

    async fn send(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = self.endpoint("api/chat")?;
        let body = self.request_body(request, stream)?;
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        check_status(response).await
    }

    /// Reads a whole reply body, refusing one above the size limit.
    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        pae_http::read_body(response, self.max_response_bytes, |error| {
            self.transport_error(error)
        })
        .await
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

    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        pae_http::transport_error(error, &self.host_for_messages(), self.timeout)
    }
}

#[async_trait]
impl ChatModel for OllamaChat {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.with_limit(self.chat_inner(&request)).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let response = self.with_limit(self.send(&request, true)).await?;
        Ok(cut_stream_at_stop(
            ndjson::chunk_stream(
                pae_http::byte_stream(response),
                self.timeout,
                self.max_response_bytes,
            ),
            request.stop,
        ))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn model_name(&self) -> String {
        self.model.clone()
    }
}

/// Reads a host the way Ollama reads `OLLAMA_HOST`.
fn parse_host(host: &str) -> Result<Url, String> {
    let host = host.trim();
    let text = if host.is_empty() {
        DEFAULT_HOST.to_owned()
    } else if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    let mut url = Url::parse(&text).map_err(|error| format!("invalid Ollama host: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(String::from(
            "invalid Ollama host: it must be an http(s) host or URL",
        ));
    }
    if !host.contains("://") && url.port().is_none() {
        url.set_port(Some(11434))
            .map_err(|()| String::from("invalid Ollama host: cannot set the port"))?;
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_a_time_limit_unless_the_caller_removes_it() {
        assert_eq!(OllamaChat::new("m").timeout, Some(DEFAULT_TIMEOUT));
        let limit = Duration::from_secs(3);
        assert_eq!(
            OllamaChat::new("m").with_timeout(limit).timeout,
            Some(limit)
        );
        assert_eq!(OllamaChat::new("m").without_timeout().timeout, None);
    }

    #[test]
    fn public_types_are_send_sync_and_usable_as_dyn_chat_model() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<OllamaChat>();
        assert_send_sync::<ToolsWithFormat>();
        let model: std::sync::Arc<dyn ChatModel> = std::sync::Arc::new(OllamaChat::new("m"));
        assert_eq!(model.model_name(), "m");
    }

    #[test]
    fn hosts_are_read_like_ollama_does() {
        let check = |input: &str, expect: &str| {
            assert_eq!(parse_host(input).unwrap().as_str(), expect, "{input:?}");
        };
        check("", "http://127.0.0.1:11434/");
        check("localhost", "http://localhost:11434/");
        check("0.0.0.0:8080", "http://0.0.0.0:8080/");
        check("http://example.com", "http://example.com/");
        check("https://example.com/ollama", "https://example.com/ollama/");
        check("http://127.0.0.1:18081/", "http://127.0.0.1:18081/");
        assert!(parse_host("ftp://x").is_err());
        assert!(parse_host("http://").is_err());
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let chat = OllamaChat::new("m").with_host("https://example.com/ollama");
        assert_eq!(
            chat.endpoint("api/chat").unwrap().as_str(),
            "https://example.com/ollama/api/chat"
        );
        let bad = OllamaChat::new("m").with_host("ftp://x");
        assert!(matches!(
            bad.endpoint("api/chat"),
            Err(ProviderError::Configuration { .. })
        ));
    }

    #[test]
    fn debug_hides_credentials_in_the_host() {
        let chat = OllamaChat::new("m").with_host("https://user:pw-secret@example.com");
        let debug = format!("{chat:?}");
        assert!(!debug.contains("pw-secret"), "{debug}");
        assert!(debug.contains("https://example.com"), "{debug}");
    }

    #[test]
    fn raw_client_points_at_the_same_host() {
        let chat = OllamaChat::new("m").with_host("127.0.0.1:18081");
        let raw = chat.raw_client().unwrap();
        assert_eq!(raw.url_str(), "http://127.0.0.1:18081/");
    }
}
