//! The chunk stream of a streamed `/api/chat` reply: newline-delimited JSON
//! objects, the last one with `"done": true`. A body that ends before that
//! line was cut off, and is reported as such.

use std::time::Duration;

use futures::StreamExt;
use pae_core::{ChatChunk, ChatStream, ProviderError};
use pae_http::{ByteStream, LineSplitter, too_large};

use crate::wire;

struct State {
    bytes: ByteStream,
    lines: LineSplitter,
    /// Lines of one JSON value that spans several (a whole reply sent
    /// pretty-printed by a server that ignored `stream: true`).
    carry: Vec<u8>,
    text: String,
    next_call: usize,
    finished: bool,
    idle: Option<Duration>,
    limit: usize,
}

/// Turns the body of a streamed reply into chunks.
///
/// Ends after the `done` line. A body that ends before it, or breaks, yields
/// [`ProviderError::StreamInterrupted`] with the text so far, as does an
/// `{"error": …}` line; a line that is not JSON, or one above `limit` bytes,
/// yields [`ProviderError::InvalidResponse`]; a gap longer than `idle`
/// without a chunk (blank keep-alive lines do not count) yields
/// [`ProviderError::Timeout`]. A line that is the start of a JSON value is
/// joined with the next ones, so a whole reply spread over several lines
/// still reads. Nothing follows an error.
pub(crate) fn chunk_stream(bytes: ByteStream, idle: Option<Duration>, limit: usize) -> ChatStream {
    let state = State {
        bytes,
        lines: LineSplitter::new(limit),
        carry: Vec::new(),
        text: String::new(),
        next_call: 0,
        finished: false,
        idle,
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

/// Whether `line` is the beginning of a JSON value that goes on.
fn unfinished_json(line: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(line),
        Err(error) if error.is_eof() && !line.iter().all(u8::is_ascii_whitespace)
    )
}

async fn next(state: &mut State) -> Option<Result<ChatChunk, ProviderError>> {
    // The time limit runs from the last chunk: blank keep-alive lines do
    // not restart it.
    let deadline = state
        .idle
        .map(|limit| (limit, tokio::time::Instant::now() + limit));
    loop {
        if state.finished {
            return None;
        }
        if let Some(line) = state.lines.next_line() {
            let mut line = match line {
                Ok(line) => line,
                Err(too_long) => return Some(Err(too_long.into())),
            };
            if !state.carry.is_empty() {
                let mut joined = std::mem::take(&mut state.carry);
                joined.push(b'\n');
                joined.append(&mut line);
                line = joined;
            }
            if unfinished_json(&line) {
                if line.len() > state.limit {
                    return Some(Err(too_large(&line, state.limit)));
                }
                state.carry = line;
                continue;
            }
            match handle(state, &line) {
                Some(item) => return Some(item),
                None => continue,
            }
        }
        if state.lines.pending().len() + state.carry.len() > state.limit {
            return Some(Err(too_large(state.lines.pending(), state.limit)));
        }
        let read = match deadline {
            Some((limit, at)) => match tokio::time::timeout_at(at, state.bytes.next()).await {
                Ok(read) => read,
                Err(_) => return Some(Err(ProviderError::Timeout { after: limit })),
            },
            None => state.bytes.next().await,
        };
        match read {
            Some(Ok(bytes)) => state.lines.push(&bytes),
            Some(Err(error)) => {
                return Some(Err(interrupted(
                    state,
                    format!("the connection broke: {}", error.without_url()),
                )));
            }
            None => {
                let mut rest = std::mem::take(&mut state.carry);
                if !rest.is_empty() {
                    rest.push(b'\n');
                }
                rest.append(&mut state.lines.take_pending());
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
    use pae_http::Bytes;

    fn body(parts: Vec<&'static str>) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from(p))),
        ))
    }

    async fn collect(parts: Vec<&'static str>) -> Vec<Result<ChatChunk, ProviderError>> {
        chunk_stream(body(parts), None, usize::MAX).collect().await
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
        let stalled: ByteStream =
            Box::pin(futures::stream::iter([Ok(Bytes::from(A))]).chain(futures::stream::pending()));
        let items: Vec<_> = chunk_stream(stalled, Some(Duration::from_secs(5)), usize::MAX)
            .collect()
            .await;
        assert!(matches!(items[1], Err(ProviderError::Timeout { .. })));
    }

    #[tokio::test]
    async fn a_value_spread_over_lines_is_joined_and_long_lines_are_refused() {
        let pretty: &'static str = "{\n  \"message\": {\"role\": \"assistant\", \"content\": \"Hi\"},\n  \"done\": true\n}\n";
        let items = collect(vec![pretty]).await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().delta, "Hi");
        // Without its last newline too.
        let items = collect(vec![pretty.trim_end()]).await;
        assert_eq!(items[0].as_ref().unwrap().delta, "Hi");
        // A cut value is an interruption, garbage after an open value is
        // invalid.
        let items = collect(vec![A, "{\n  \"message\": {\n"]).await;
        assert!(
            matches!(&items[1], Err(ProviderError::StreamInterrupted { partial, .. }) if partial == "Hel")
        );
        let items = collect(vec!["{\"message\":\n", "oops\n"]).await;
        assert!(
            matches!(&items[0], Err(ProviderError::InvalidResponse { .. })),
            "{items:?}"
        );
        let long: Vec<_> = chunk_stream(body(vec![A, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]), None, 80)
            .collect()
            .await;
        assert!(
            matches!(&long[1], Err(ProviderError::InvalidResponse { reason, .. }) if reason.contains("80 bytes"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn blank_keep_alive_lines_do_not_restart_the_time_limit() {
        let pings = futures::stream::iter([Ok(Bytes::from(A))]).chain(futures::stream::unfold(
            (),
            |()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((Ok(Bytes::from_static(b"\n")), ()))
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
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            let _ = wire::parse_line(&data);
            let _ = wire::parse_response(&data);
            let mut lines = LineSplitter::new(usize::MAX);
            lines.push(&data);
            while lines.next_line().is_some() {}
        }

        #[test]
        fn arbitrary_bodies_end_in_chunks_or_one_error(parts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..5)) {
            let stream: ByteStream = Box::pin(futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))));
            let items: Vec<_> = futures::executor::block_on(chunk_stream(stream, None, 64).collect());
            let errors = items.iter().filter(|i| i.is_err()).count();
            proptest::prop_assert!(errors <= 1);
            if errors == 1 {
                proptest::prop_assert!(items.last().is_some_and(Result::is_err));
            }
        }
    }
}
