//! [`TinyChatModel`], the adapter: sends requests over HTTP and maps every
//! failure into a [`ProviderError`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use pae_core::{
    Capabilities, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ProviderError,
};
use pae_http::{
    DEFAULT_MAX_RESPONSE_BYTES, LineSplitter, check_status, invalid_response, read_body, redact,
    transport_error,
};

use crate::wire::{GenerateRequest, GenerateResponse, StreamEvent};

/// The default time limit of one request, streams included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A chat model served by a TinyChat API endpoint.
///
/// It claims native tool calls, JSON-schema output and streaming, because
/// the API does all three (and the conformance test proves it).
#[derive(Debug, Clone)]
pub struct TinyChatModel {
    client: reqwest::Client,
    url: reqwest::Url,
    model: String,
    timeout: Duration,
}

impl TinyChatModel {
    /// A model named `model` on the server at `base_url` (for example
    /// `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] when `base_url` is not an http(s)
    /// URL or the HTTP client cannot be built.
    pub fn new(base_url: &str, model: impl Into<String>) -> Result<Self, ProviderError> {
        let base = reqwest::Url::parse(base_url).map_err(|error| ProviderError::Configuration {
            message: format!("the base URL {base_url:?} is not a URL: {error}"),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ProviderError::Configuration {
                message: format!("the base URL {base_url:?} is not http or https"),
            });
        }
        let url = base
            .join("generate")
            .map_err(|error| ProviderError::Configuration {
                message: format!("no endpoint can be made from {base_url:?}: {error}"),
            })?;
        let client =
            reqwest::Client::builder()
                .build()
                .map_err(|error| ProviderError::Configuration {
                    message: format!("the HTTP client cannot be built: {error}"),
                })?;
        Ok(Self {
            client,
            url,
            model: model.into(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the time limit of one request (a whole stream included).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the body and returns the response if its status is a success;
    /// an error status becomes [`ProviderError::Http`] with the status,
    /// the first 64 KiB of the body and the wait `Retry-After` asks for
    /// (pae-http's [`check_status`]).
    async fn send(&self, body: &GenerateRequest) -> Result<reqwest::Response, ProviderError> {
        let json = serde_json::to_vec(body).map_err(|error| ProviderError::InvalidRequest {
            reason: format!("the request cannot be serialized: {error}"),
        })?;
        let response = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        check_status(response).await
    }

    /// A time-out, or a connection failure naming the endpoint without any
    /// credentials in its URL.
    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        transport_error(error, &redact(&self.url), Some(self.timeout))
    }
}

#[async_trait]
impl ChatModel for TinyChatModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = GenerateRequest::new(&self.model, &request, false)?;
        let response = self.send(&body).await?;
        // A body above the limit is refused, not buffered.
        let text = read_body(response, DEFAULT_MAX_RESPONSE_BYTES, |error| {
            self.transport_error(error)
        })
        .await?;
        let reply: GenerateResponse = serde_json::from_slice(&text)
            .map_err(|error| invalid_response(&text, error.to_string()))?;
        Ok(reply.into())
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = GenerateRequest::new(&self.model, &request, true)?;
        let response = self.send(&body).await?;
        let timeout = self.timeout;
        let bytes = response.bytes_stream().map(move |item| {
            item.map(|bytes| bytes.to_vec()).map_err(|error| {
                if error.is_timeout() {
                    format!("no complete reply within {timeout:?}")
                } else {
                    error.without_url().to_string()
                }
            })
        });
        Ok(Box::pin(ndjson_chunks(Box::pin(bytes))))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            native_tools: true,
            json_schema: true,
            streaming: true,
        }
    }

    fn model_name(&self) -> String {
        self.model.clone()
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>> + Send>>;

/// Where the NDJSON decoder is.
struct Lines {
    bytes: ByteStream,
    /// pae-http's splitter: linear however many lines a read holds, and
    /// bounded, so a line without end cannot fill the memory.
    lines: LineSplitter,
    ready: VecDeque<Result<ChatChunk, ProviderError>>,
    /// The text received so far, for [`ProviderError::StreamInterrupted`].
    text: String,
    /// The final event arrived.
    ended: bool,
    /// The body has no more bytes.
    input_done: bool,
}

/// Turns the NDJSON body of a streamed reply into chunks. A stream that
/// breaks, or ends before the event carrying `end`, yields
/// [`ProviderError::StreamInterrupted`] with the text received so far; a
/// line that is not an event, or is longer than
/// [`DEFAULT_MAX_RESPONSE_BYTES`], yields [`ProviderError::InvalidResponse`].
fn ndjson_chunks(bytes: ByteStream) -> impl Stream<Item = Result<ChatChunk, ProviderError>> {
    let lines = Lines {
        bytes,
        lines: LineSplitter::new(DEFAULT_MAX_RESPONSE_BYTES),
        ready: VecDeque::new(),
        text: String::new(),
        ended: false,
        input_done: false,
    };
    futures::stream::unfold(Some(lines), |state| async move {
        let mut lines = state?;
        loop {
            if let Some(item) = lines.ready.pop_front() {
                let stop_after = item.is_err();
                return Some((item, (!stop_after).then_some(lines)));
            }
            if lines.ended || lines.input_done {
                return None;
            }
            match lines.lines.next_line() {
                Some(Ok(line)) => {
                    lines.decode(&line);
                    continue;
                }
                Some(Err(too_long)) => {
                    lines.ready.push_back(Err(too_long.into()));
                    continue;
                }
                None => {}
            }
            match lines.bytes.next().await {
                Some(Ok(bytes)) => lines.lines.push(&bytes),
                Some(Err(reason)) => {
                    let partial = std::mem::take(&mut lines.text);
                    return Some((
                        Err(ProviderError::StreamInterrupted { reason, partial }),
                        None,
                    ));
                }
                None => {
                    lines.input_done = true;
                    let rest = lines.lines.take_pending();
                    lines.decode(&rest);
                    if !lines.ended {
                        let partial = lines.text.clone();
                        lines.ready.push_back(Err(ProviderError::StreamInterrupted {
                            reason: "the stream ended before its final event".into(),
                            partial,
                        }));
                    }
                }
            }
        }
    })
}

impl Lines {
    fn decode(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() || self.ended {
            return;
        }
        match serde_json::from_str::<StreamEvent>(text) {
            Ok(event) => {
                let chunk = ChatChunk::from(event);
                self.text.push_str(&chunk.delta);
                self.ended = chunk.finish_reason.is_some();
                self.ready.push_back(Ok(chunk));
            }
            Err(error) => self.ready.push_back(Err(ProviderError::InvalidResponse {
                body: text.to_owned(),
                reason: error.to_string(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::FinishReason;

    fn decode(pieces: &[&str], fail_at_end: bool) -> Vec<Result<ChatChunk, ProviderError>> {
        let mut items: Vec<Result<Vec<u8>, String>> = pieces
            .iter()
            .map(|piece| Ok(piece.as_bytes().to_vec()))
            .collect();
        if fail_at_end {
            items.push(Err("connection reset".into()));
        }
        let bytes: ByteStream = Box::pin(futures::stream::iter(items));
        futures::executor::block_on(ndjson_chunks(bytes).collect())
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let items = decode(
            &[
                "{\"text\":\"He",
                "llo \"}\n{\"text\":\"you\"}\n",
                "{\"end\":\"done\"}",
            ],
            false,
        );
        let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].delta, "Hello ");
        assert_eq!(chunks[1].delta, "you");
        assert_eq!(chunks[2].finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn a_broken_stream_reports_the_text_so_far() {
        for fail_at_end in [false, true] {
            let items = decode(&["{\"text\":\"Hel\"}\n{\"text\":\"lo\"}\n"], fail_at_end);
            assert_eq!(items.len(), 3);
            match &items[2] {
                Err(ProviderError::StreamInterrupted { partial, .. }) => {
                    assert_eq!(partial, "Hello");
                }
                other => panic!("expected an interrupted stream, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_line_that_is_not_an_event_is_an_invalid_response() {
        let items = decode(&["{\"text\":\"a\"}\nnot json\n{\"text\":\"b\"}\n"], false);
        assert_eq!(items.len(), 2);
        assert!(matches!(
            &items[1],
            Err(ProviderError::InvalidResponse { body, .. }) if body == "not json"
        ));
    }

    #[test]
    fn bad_base_urls_are_configuration_errors() {
        for url in ["not a url", "ftp://127.0.0.1/"] {
            assert!(matches!(
                TinyChatModel::new(url, "m"),
                Err(ProviderError::Configuration { .. })
            ));
        }
        let model = TinyChatModel::new("http://127.0.0.1:1/api/", "m").unwrap();
        assert_eq!(model.url.as_str(), "http://127.0.0.1:1/api/generate");
    }
}
