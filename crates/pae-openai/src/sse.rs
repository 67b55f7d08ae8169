//! The chunk stream of a streamed chat completion, on pae-http's
//! server-sent events decoder, with the end of the stream checked so that a
//! connection cut in the middle of a reply is an error, not a short answer.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use pae_core::adapter::chunk_from_response;
use pae_core::{ChatChunk, ChatStream, ProviderError};
use pae_http::{ByteStream, SseDecoder, SseEvent, invalid_response, too_large};
use serde_json::Value;

use crate::wire;

struct State {
    bytes: ByteStream,
    decoder: SseDecoder,
    pending: VecDeque<SseEvent>,
    text: String,
    finished: bool,
    saw_finish_reason: bool,
    at_eof: bool,
    idle: Option<Duration>,
    /// The body as received while it has shown no event-stream line, up to
    /// the limit: a server that ignored `stream: true` sent a whole reply.
    raw: Vec<u8>,
    limit: usize,
}

/// Turns the body of a streamed chat completion into chunks.
///
/// The stream ends normally at `data: [DONE]` after a finish reason, or when
/// the body ends, breaks or goes quiet for `idle` after a finish reason
/// (some servers omit `[DONE]` or close abruptly after the last event). A
/// stream that ends without a finish reason, or breaks, yields
/// [`ProviderError::StreamInterrupted`] with the text received so far; an
/// error event (`data: {"error": …}` or `event: error`) yields that error; a
/// gap longer than `idle` without a chunk (keep-alive comments do not
/// count) yields [`ProviderError::Timeout`]; a payload that is not a chunk,
/// or a line or event above `limit` bytes, yields
/// [`ProviderError::InvalidResponse`]. A body with no event-stream line at
/// all is read as a whole reply, or reported as `InvalidResponse` with the
/// body. Nothing follows an error.
pub(crate) fn chunk_stream(bytes: ByteStream, idle: Option<Duration>, limit: usize) -> ChatStream {
    let state = State {
        bytes,
        decoder: SseDecoder::with_limit(limit),
        pending: VecDeque::new(),
        text: String::new(),
        finished: false,
        saw_finish_reason: false,
        at_eof: false,
        idle,
        raw: Vec::new(),
        limit,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = next(&mut state).await?;
        if item.is_err() {
            state.finished = true;
        }
        Some((item, state))
    }))
}

fn interrupted(state: &State, reason: impl Into<String>) -> ProviderError {
    ProviderError::StreamInterrupted {
        reason: reason.into(),
        partial: state.text.clone(),
    }
}

/// The error of an `event: error` event.
fn error_event(data: &str) -> ProviderError {
    let error = match serde_json::from_str::<Value>(data) {
        Ok(value) => match value.get("error") {
            Some(inner) if !inner.is_null() => inner.clone(),
            _ => value,
        },
        Err(_) => Value::String(data.to_owned()),
    };
    wire::stream_error(&error, data.as_bytes())
}

/// What to yield for one event: a chunk, an error, the end, or nothing.
fn handle(state: &mut State, event: SseEvent) -> Option<Option<Result<ChatChunk, ProviderError>>> {
    if event.data.trim() == "[DONE]" {
        state.finished = true;
        if state.saw_finish_reason {
            return Some(None);
        }
        // Every reply ends with a finish reason before `[DONE]`; a server
        // that sends `[DONE]` without one cut the reply short
        // (llama-cpp-python does when another request arrives).
        return Some(Some(Err(interrupted(
            state,
            "the server ended the stream before the reply was complete \
             ([DONE] without a finish reason)",
        ))));
    }
    let parsed = if event.name.as_deref() == Some("error") {
        Err(error_event(&event.data))
    } else {
        wire::parse_chunk(&event.data)
    };
    match parsed {
        Ok(chunk) => {
            if chunk.finish_reason.is_some() {
                state.saw_finish_reason = true;
            }
            state.text.push_str(&chunk.delta);
            if chunk == ChatChunk::default() {
                return None;
            }
            Some(Some(Ok(chunk)))
        }
        Err(ProviderError::StreamInterrupted { reason, .. }) => {
            Some(Some(Err(interrupted(state, reason))))
        }
        // An unterminated last event that does not parse was cut off.
        Err(ProviderError::InvalidResponse { .. }) if state.at_eof => Some(Some(Err(interrupted(
            state,
            "the stream ended in the middle of an event",
        )))),
        Err(error) => Some(Some(Err(error))),
    }
}

/// The end of a body that showed no event-stream line: a whole reply (the
/// server ignored `stream: true`), an error object, or not a reply at all.
fn whole_body(state: &State) -> Result<ChatChunk, ProviderError> {
    match wire::parse_response(&state.raw) {
        Ok(reply) => Ok(chunk_from_response(reply)),
        Err(ProviderError::InvalidResponse { body, reason }) => {
            Err(ProviderError::InvalidResponse {
                body,
                reason: format!(
                    "the body of a stream request is neither an event stream nor a chat \
                     completion ({reason})"
                ),
            })
        }
        Err(error) => Err(error),
    }
}

async fn next(state: &mut State) -> Option<Result<ChatChunk, ProviderError>> {
    // The time limit runs from the last chunk: events that carry nothing
    // (keep-alive comments, empty deltas) do not restart it.
    let deadline = state
        .idle
        .map(|limit| (limit, tokio::time::Instant::now() + limit));
    loop {
        if state.finished {
            return None;
        }
        if let Some(event) = state.pending.pop_front() {
            match handle(state, event) {
                Some(item) => return item,
                None => continue,
            }
        }
        let read = match deadline {
            Some((limit, at)) => match tokio::time::timeout_at(at, state.bytes.next()).await {
                Ok(read) => read,
                // The reply is complete; only `[DONE]` (or usage) is late.
                Err(_) if state.saw_finish_reason => return None,
                Err(_) => return Some(Err(ProviderError::Timeout { after: limit })),
            },
            None => state.bytes.next().await,
        };
        match read {
            Some(Ok(bytes)) => {
                if !state.decoder.saw_field() {
                    state.raw.extend_from_slice(&bytes);
                    if state.raw.len() > state.limit {
                        return Some(Err(too_large(&state.raw, state.limit)));
                    }
                }
                let events = state.decoder.push(&bytes);
                if state.decoder.saw_field() {
                    state.raw = Vec::new();
                }
                if state.decoder.overflowed() {
                    return Some(Err(invalid_response(
                        &bytes,
                        format!(
                            "a streamed event is larger than the limit of {} bytes",
                            state.limit
                        ),
                    )));
                }
                state.pending.extend(events);
            }
            // A connection that breaks after the finish reason lost at most
            // the usage chunk and `[DONE]`: the reply itself is whole.
            Some(Err(_)) if state.saw_finish_reason => return None,
            Some(Err(error)) => {
                return Some(Err(interrupted(
                    state,
                    format!("the connection broke: {}", error.without_url()),
                )));
            }
            None => {
                if !state.decoder.saw_field() && !state.raw.iter().all(u8::is_ascii_whitespace) {
                    state.finished = true;
                    return Some(whole_body(state));
                }
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
                return Some(Err(interrupted(
                    state,
                    "the stream ended before the reply was complete",
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_http::Bytes;

    fn body(parts: Vec<&'static str>) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from(p))),
        ))
    }

    async fn collect(parts: Vec<&'static str>) -> Vec<Result<ChatChunk, ProviderError>> {
        chunk_stream(body(parts), None, usize::MAX).collect().await
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
            futures::stream::iter([Ok(Bytes::from(HELLO))]).chain(futures::stream::pending()),
        );
        let items: Vec<_> = chunk_stream(stalled, Some(Duration::from_secs(5)), usize::MAX)
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(ProviderError::Timeout { .. })));
    }

    #[tokio::test]
    async fn error_events_and_whole_bodies() {
        let items = collect(vec![
            HELLO,
            "event: error\ndata: {\"message\": \"boom\"}\n\n",
        ])
        .await;
        assert!(matches!(
            &items[1],
            Err(ProviderError::StreamInterrupted { reason, partial }) if reason.contains("boom") && partial == "Hel"
        ));
        let items = collect(vec![
            "event: error\ndata: {\"error\": {\"code\": 503, \"message\": \"x\"}}\n\n",
        ])
        .await;
        assert!(
            matches!(&items[0], Err(ProviderError::Http { status: 503, .. })),
            "{items:?}"
        );
        let whole = r#"{"choices":[{"message":{"content":"whole"},"finish_reason":"stop"}]}"#;
        let items = collect(vec![&whole[..10], &whole[10..]]).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap().delta, "whole");
        let items = collect(vec!["<html>gateway</html>"]).await;
        assert!(matches!(
            &items[0],
            Err(ProviderError::InvalidResponse { body, .. }) if body == "<html>gateway</html>"
        ));
        let items = collect(vec![": ping\n\n"]).await;
        assert!(matches!(
            &items[0],
            Err(ProviderError::StreamInterrupted { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_finish_reason_a_silence_ends_the_stream() {
        let quiet: ByteStream = Box::pin(
            futures::stream::iter([Ok(Bytes::from(HELLO)), Ok(Bytes::from(LO))])
                .chain(futures::stream::pending()),
        );
        let items: Vec<_> = chunk_stream(quiet, Some(Duration::from_secs(5)), usize::MAX)
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok), "{items:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_do_not_restart_the_time_limit() {
        let pings = futures::stream::iter([Ok(Bytes::from(HELLO))]).chain(futures::stream::unfold(
            (),
            |()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((Ok(Bytes::from_static(b": ping\n\n")), ()))
            },
        ));
        let start = tokio::time::Instant::now();
        let items: Vec<_> = chunk_stream(Box::pin(pings), Some(Duration::from_secs(5)), usize::MAX)
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(ProviderError::Timeout { .. })));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>, cut in 0usize..64) {
            let mut decoder = SseDecoder::default();
            let cut = cut.min(data.len());
            let mut events = decoder.push(&data[..cut]);
            events.extend(decoder.push(&data[cut..]));
            for event in events {
                let _ = wire::parse_chunk(&event.data);
            }
            let _ = wire::parse_response(&data);
        }
    }
}
