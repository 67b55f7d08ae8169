//! The chunk stream of a streamed `/api/chat` reply: newline-delimited JSON
//! objects, the last one with `"done": true`. A body that ends before that
//! line was cut off, and is reported as such.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pae_core::{ChatChunk, ChatStream, ProviderError};

use crate::wire;

/// A boxed stream of body bytes.
pub(crate) type ByteStream =
    Pin<Box<dyn Stream<Item = Result<Vec<u8>, reqwest::Error>> + Send + 'static>>;

struct State {
    bytes: ByteStream,
    buffer: Vec<u8>,
    text: String,
    next_call: usize,
    finished: bool,
    idle: Option<Duration>,
}

/// Turns the body of a streamed reply into chunks.
///
/// Ends after the `done` line. A body that ends before it, or breaks, yields
/// [`ProviderError::StreamInterrupted`] with the text so far, as does an
/// `{"error": …}` line; a line that is not JSON yields
/// [`ProviderError::InvalidResponse`]; a gap longer than `idle` yields
/// [`ProviderError::Timeout`]. Nothing follows an error.
pub(crate) fn chunk_stream(bytes: ByteStream, idle: Option<Duration>) -> ChatStream {
    let state = State {
        bytes,
        buffer: Vec::new(),
        text: String::new(),
        next_call: 0,
        finished: false,
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

fn take_line(buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    let end = buffer.iter().position(|&b| b == b'\n')?;
    let mut line: Vec<u8> = buffer.drain(..=end).collect();
    line.pop();
    Some(line)
}

fn interrupted(state: &State, reason: impl Into<String>) -> ProviderError {
    ProviderError::StreamInterrupted {
        reason: reason.into(),
        partial: state.text.clone(),
    }
}

/// Handles one complete line; `None` for a blank line.
fn handle(state: &mut State, line: &[u8]) -> Option<Result<ChatChunk, ProviderError>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match wire::parse_line(line) {
        Ok(Ok(parsed)) => {
            if parsed.done {
                state.finished = true;
            }
            let chunk = wire::chunk(parsed, &mut state.next_call);
            state.text.push_str(&chunk.delta);
            Ok(chunk)
        }
        Ok(Err(message)) => Err(interrupted(
            state,
            format!("the server reported an error in the stream: {message}"),
        )),
        Err(error) => Err(error),
    })
}

async fn next(state: &mut State) -> Option<Result<ChatChunk, ProviderError>> {
    loop {
        if state.finished {
            return None;
        }
        if let Some(line) = take_line(&mut state.buffer) {
            match handle(state, &line) {
                Some(item) => return Some(item),
                None => continue,
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
            Some(Ok(bytes)) => state.buffer.extend_from_slice(&bytes),
            Some(Err(error)) => {
                return Some(Err(interrupted(
                    state,
                    format!("the connection broke: {}", error.without_url()),
                )));
            }
            None => {
                let rest = std::mem::take(&mut state.buffer);
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    // A last line without its newline: complete if it parses.
                    if wire::parse_line(&rest).is_ok() {
                        if let Some(item) = handle(state, &rest) {
                            return Some(item);
                        }
                    } else {
                        return Some(Err(interrupted(
                            state,
                            "the stream ended in the middle of a line",
                        )));
                    }
                }
                return Some(Err(interrupted(
                    state,
                    "the stream ended before the final (done) line",
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::FinishReason;

    fn body(parts: Vec<&'static str>) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| Ok(p.as_bytes().to_vec())),
        ))
    }

    async fn collect(parts: Vec<&'static str>) -> Vec<Result<ChatChunk, ProviderError>> {
        chunk_stream(body(parts), None).collect().await
    }

    const A: &str = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n";
    const B: &str = "{\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n";
    const DONE: &str = "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":2}\n";

    #[tokio::test]
    async fn lines_split_anywhere_make_the_same_chunks() {
        let whole = [A, B, DONE].concat();
        let (left, right) = whole.split_at(37);
        let left: &'static str = Box::leak(left.to_owned().into_boxed_str());
        let right: &'static str = Box::leak(right.to_owned().into_boxed_str());
        let items = collect(vec![left, right]).await;
        let chunks: Vec<_> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].delta, "Hel");
        assert_eq!(chunks[2].finish_reason, Some(FinishReason::Stop));
    }

    #[tokio::test]
    async fn missing_done_line_is_an_interruption() {
        let items = collect(vec![A, B]).await;
        assert!(matches!(
            &items[2],
            Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hello"
        ));
        let items = collect(vec![A, "{\"message\":{\"role\":\"ass"]).await;
        assert!(matches!(
            &items[1],
            Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hel"
        ));
        let done_without_newline: &'static str = DONE.trim_end();
        let items = collect(vec![A, done_without_newline]).await;
        assert!(items.iter().all(Result::is_ok), "{items:?}");
    }

    #[tokio::test]
    async fn error_lines_and_garbage_end_the_stream() {
        let items = collect(vec![A, "{\"error\":\"out of memory\"}\n", B]).await;
        assert_eq!(items.len(), 2);
        assert!(matches!(
            &items[1],
            Err(ProviderError::StreamInterrupted { reason, .. }) if reason.contains("out of memory")
        ));
        let items = collect(vec![A, "not json\n", B]).await;
        assert_eq!(items.len(), 2);
        assert!(
            matches!(&items[1], Err(ProviderError::InvalidResponse { body, .. }) if body == "not json")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let stalled: ByteStream = Box::pin(
            futures::stream::iter([Ok(A.as_bytes().to_vec())]).chain(futures::stream::pending()),
        );
        let items: Vec<_> = chunk_stream(stalled, Some(Duration::from_secs(5)))
            .collect()
            .await;
        assert!(matches!(items[1], Err(ProviderError::Timeout { .. })));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            let _ = wire::parse_line(&data);
            let _ = wire::parse_response(&data);
            let mut buffer = data.clone();
            while take_line(&mut buffer).is_some() {}
        }

        #[test]
        fn arbitrary_bodies_end_in_chunks_or_one_error(parts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..5)) {
            let stream: ByteStream = Box::pin(futures::stream::iter(parts.into_iter().map(Ok)));
            let items: Vec<_> = futures::executor::block_on(chunk_stream(stream, None).collect());
            let errors = items.iter().filter(|i| i.is_err()).count();
            proptest::prop_assert!(errors <= 1);
            if errors == 1 {
                proptest::prop_assert!(items.last().is_some_and(Result::is_err));
            }
        }
    }
}
