//! A server-sent events decoder and the chunk stream built on it: bytes in,
//! `data:` payloads out, with the end of the stream checked so that a
//! connection cut in the middle of a reply is an error, not a short answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pae_core::{ChatChunk, ChatStream, ProviderError};

use crate::wire;

/// Splits a byte stream into server-sent events and returns the `data` of
/// each complete event. Comments and other fields are ignored.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds bytes; returns the data of every event they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, &mut events);
            } else {
                self.line.push(byte);
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are buffered.
    pub(crate) fn has_partial(&self) -> bool {
        self.has_data || !self.line.is_empty()
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<String>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
    }
}

/// A boxed stream of body bytes.
pub(crate) type ByteStream =
    Pin<Box<dyn Stream<Item = Result<Vec<u8>, reqwest::Error>> + Send + 'static>>;

struct State {
    bytes: ByteStream,
    decoder: SseDecoder,
    pending: VecDeque<String>,
    text: String,
    finished: bool,
    saw_finish_reason: bool,
    at_eof: bool,
    idle: Option<Duration>,
}

/// Turns the body of a streamed chat completion into chunks.
///
/// The stream ends normally at `data: [DONE]` after a finish reason, or when
/// the body ends after a finish reason (some servers omit `[DONE]`). A
/// stream that ends without a finish reason, or breaks, yields
/// [`ProviderError::StreamInterrupted`]
/// with the text received so far; a gap longer than `idle` yields
/// [`ProviderError::Timeout`]; a payload that is not a chunk yields
/// [`ProviderError::InvalidResponse`]. Nothing follows an error.
pub(crate) fn chunk_stream(bytes: ByteStream, idle: Option<Duration>) -> ChatStream {
    let state = State {
        bytes,
        decoder: SseDecoder::default(),
        pending: VecDeque::new(),
        text: String::new(),
        finished: false,
        saw_finish_reason: false,
        at_eof: false,
        idle,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = next(&mut state).await?;
        if item.is_err() {
            state.finished = true;
        }
        Some((item, state))
    }))
}

async fn next(state: &mut State) -> Option<Result<ChatChunk, ProviderError>> {
    loop {
        if state.finished {
            return None;
        }
        if let Some(data) = state.pending.pop_front() {
            if data.trim() == "[DONE]" {
                state.finished = true;
                if state.saw_finish_reason {
                    return None;
                }
                // Every reply ends with a finish reason before `[DONE]`; a
                // server that sends `[DONE]` without one cut the reply short
                // (llama-cpp-python does when another request arrives).
                return Some(Err(ProviderError::StreamInterrupted {
                    reason: "the server ended the stream before the reply was complete \
                             ([DONE] without a finish reason)"
                        .into(),
                    partial: state.text.clone(),
                }));
            }
            match wire::parse_chunk(&data) {
                Ok(chunk) => {
                    if chunk.finish_reason.is_some() {
                        state.saw_finish_reason = true;
                    }
                    state.text.push_str(&chunk.delta);
                    if chunk == ChatChunk::default() {
                        continue;
                    }
                    return Some(Ok(chunk));
                }
                Err(ProviderError::StreamInterrupted { reason, .. }) => {
                    return Some(Err(ProviderError::StreamInterrupted {
                        reason,
                        partial: state.text.clone(),
                    }));
                }
                // An unterminated last event that does not parse was cut off.
                Err(_) if state.at_eof => {
                    return Some(Err(ProviderError::StreamInterrupted {
                        reason: "the stream ended in the middle of an event".into(),
                        partial: state.text.clone(),
                    }));
                }
                Err(error) => return Some(Err(error)),
            }
        }
        let read = match state.idle {
            Some(limit) => match tokio::time::timeout(limit, state.bytes.next()).await {
                Ok(read) => read,
                Err(_) => return Some(Err(ProviderError::Timeout { after: limit })),
            },
            None => state.bytes.next().await,
        };
        match read {
            Some(Ok(bytes)) => {
                let events = state.decoder.push(&bytes);
                state.pending.extend(events);
            }
            Some(Err(error)) => {
                return Some(Err(ProviderError::StreamInterrupted {
                    reason: format!("the connection broke: {}", error.without_url()),
                    partial: state.text.clone(),
                }));
            }
            None => {
                // A final event without its blank line still counts.
                if !state.at_eof && state.decoder.has_partial() {
                    state.at_eof = true;
                    let events = state.decoder.push(b"\n\n");
                    if !events.is_empty() {
                        state.pending.extend(events);
                        continue;
                    }
                }
                state.finished = true;
                if state.saw_finish_reason {
                    return None;
                }
                return Some(Err(ProviderError::StreamInterrupted {
                    reason: "the stream ended before the reply was complete".into(),
                    partial: state.text.clone(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&str]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        parts
            .iter()
            .flat_map(|p| decoder.push(p.as_bytes()))
            .collect()
    }

    #[test]
    fn events_split_across_reads_and_line_endings() {
        assert_eq!(
            decode(&["data: {\"a\"", ":1}\r\n\r", "\ndata: [DONE]\n\n"]),
            ["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(
            decode(&[": keep-alive\n\nevent: x\ndata:one\ndata: two\nid: 3\n\n"]),
            ["one\ntwo"]
        );
        assert!(decode(&["data: unfinished"]).is_empty());
    }

    #[test]
    fn multibyte_text_split_between_reads_survives() {
        let text = "data: {\"é\":\"ü\"}\n\n";
        let bytes = text.as_bytes();
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for byte in bytes {
            out.extend(decoder.push(&[*byte]));
        }
        assert_eq!(out, ["{\"é\":\"ü\"}"]);
    }

    fn body(parts: Vec<&'static str>) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| Ok(p.as_bytes().to_vec())),
        ))
    }

    async fn collect(parts: Vec<&'static str>) -> Vec<Result<ChatChunk, ProviderError>> {
        chunk_stream(body(parts), None).collect().await
    }

    const HELLO: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    const LO: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n";

    #[tokio::test]
    async fn done_ends_the_stream() {
        let items = collect(vec![HELLO, LO, "data: [DONE]\n\n", "data: ignored\n\n"]).await;
        let texts: Vec<_> = items
            .iter()
            .map(|i| i.as_ref().unwrap().delta.clone())
            .collect();
        assert_eq!(texts, ["Hel", "lo"]);
    }

    #[tokio::test]
    async fn a_body_ending_early_is_an_interruption_with_the_partial_text() {
        let items = collect(vec![HELLO]).await;
        assert_eq!(items.len(), 2);
        match &items[1] {
            Err(ProviderError::StreamInterrupted { partial, .. }) => assert_eq!(partial, "Hel"),
            other => panic!("unexpected {other:?}"),
        }
        let items = collect(vec![HELLO, LO]).await;
        assert!(
            items.iter().all(Result::is_ok),
            "finish reason seen: {items:?}"
        );
    }

    #[tokio::test]
    async fn garbage_payload_is_invalid_response_and_ends_the_stream() {
        let items = collect(vec![HELLO, "data: {oops\n\n", LO]).await;
        assert_eq!(items.len(), 2);
        assert!(matches!(
            &items[1],
            Err(ProviderError::InvalidResponse { body, .. }) if body == "{oops"
        ));
    }

    #[tokio::test]
    async fn done_without_a_finish_reason_is_an_interruption() {
        let items = collect(vec![HELLO, "data: [DONE]\n\n"]).await;
        assert_eq!(items.len(), 2);
        assert!(matches!(
            &items[1],
            Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hel"
        ));
    }

    #[tokio::test]
    async fn an_event_cut_in_half_is_an_interruption() {
        let items = collect(vec![HELLO, "data: {\"choices\":[{\"ind"]).await;
        assert!(matches!(
            &items[1],
            Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hel"
        ));
        let items = collect(vec![HELLO, LO, "data: [DONE]"]).await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let stalled: ByteStream = Box::pin(
            futures::stream::iter([Ok(HELLO.as_bytes().to_vec())])
                .chain(futures::stream::pending()),
        );
        let items: Vec<_> = chunk_stream(stalled, Some(Duration::from_secs(5)))
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(ProviderError::Timeout { .. })));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>, cut in 0usize..64) {
            let mut decoder = SseDecoder::default();
            let cut = cut.min(data.len());
            let mut events = decoder.push(&data[..cut]);
            events.extend(decoder.push(&data[cut..]));
            for event in events {
                let _ = wire::parse_chunk(&event);
            }
            let _ = wire::parse_response(&data);
        }

        #[test]
        fn splitting_a_stream_anywhere_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let body = [HELLO, LO, "data: [DONE]\n\n"].concat();
            let whole = SseDecoder::default().push(body.as_bytes());
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            points.sort_unstable();
            let mut decoder = SseDecoder::default();
            let mut events = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([body.len()]) {
                events.extend(decoder.push(&body.as_bytes()[start..point]));
                start = point;
            }
            proptest::prop_assert_eq!(events, whole);
        }
    }
}
