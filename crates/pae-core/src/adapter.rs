//! Helpers for adapter authors: what a provider adapter needs besides the
//! [`ChatModel`](crate::ChatModel) contract itself.
//!
//! - [`cut_at_stop`] and [`cut_stream_at_stop`] cut a reply (or a stream)
//!   before the earliest stop sequence, for providers that do not honour
//!   `stop` themselves;
//! - [`parse_arguments`] reads tool-call arguments text, keeping invalid
//!   JSON as a string;
//! - [`chunk_from_response`] turns a whole reply into one stream chunk.
//!
//! Applications rarely need these; they are here so that every adapter
//! behaves the same way. HTTP-specific helpers (bounded body reads,
//! `Retry-After`, server-sent events) live in the `pae-http` crate.
//!
//! ```
//! use pae_core::adapter::{cut_at_stop, parse_arguments};
//!
//! assert_eq!(cut_at_stop("Thought: x\nObservation: y", &["Observation:".into()]), "Thought: x\n");
//! assert_eq!(parse_arguments("{oops"), serde_json::json!("{oops"));
//! ```

use futures::StreamExt;

use crate::model::{ChatChunk, ChatStream, FinishReason};

pub use crate::model::{chunk_from_response, parse_arguments};

/// Where `needle` first occurs in `text` (a byte offset), for the short
/// texts of replies and stop sequences: candidates are found by their first
/// byte with memchr, then compared. A general substring search (std's
/// `str::find`, or memchr's `memmem`) first builds a searcher, which costs
/// more than the whole search of a reply of a few hundred bytes.
///
/// ```
/// use pae_core::adapter::find_short;
///
/// assert_eq!(find_short("a\nb\nObservation: 42", "\nObservation:"), Some(3));
/// assert_eq!(find_short("abc", ""), Some(0));
/// assert_eq!(find_short("abc", "d"), None);
/// ```
pub fn find_short(text: &str, needle: &str) -> Option<usize> {
    let Some((&first, rest)) = needle.as_bytes().split_first() else {
        return Some(0);
    };
    let bytes = text.as_bytes();
    memchr::memchr_iter(first, bytes).find(|&at| bytes[at + 1..].starts_with(rest))
}

/// Cuts `text` before the earliest occurrence of any stop sequence, as a
/// provider does. Returns the text unchanged when no stop sequence occurs.
pub fn cut_at_stop<'a>(text: &'a str, stop: &[String]) -> &'a str {
    let end = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| find_short(text, s))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}

/// Cuts a stream of chunks before the earliest stop sequence, for providers
/// that may not honour `stop` themselves; [`cut_at_stop`]
/// does the same for a whole reply.
///
/// Text that could be the start of a stop sequence is held back until the
/// next chunk shows whether it is. When a stop sequence appears, the text
/// before it is delivered with finish reason [`Stop`](FinishReason::Stop)
/// and the stream ends (the rest of the provider's stream is dropped). With
/// no stop sequences the stream passes through unchanged.
pub fn cut_stream_at_stop(stream: ChatStream, stop: Vec<String>) -> ChatStream {
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    if stop.is_empty() {
        return stream;
    }
    struct State {
        inner: Option<ChatStream>,
        held: String,
        stop: Vec<String>,
    }
    let state = State {
        inner: Some(stream),
        held: String::new(),
        stop,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let inner = state.inner.as_mut()?;
        match inner.next().await {
            Some(Ok(mut chunk)) => {
                state.held.push_str(&chunk.delta);
                let text = std::mem::take(&mut state.held);
                if let Some(end) = state
                    .stop
                    .iter()
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    chunk.delta = text[..end].to_owned();
                    chunk.finish_reason = Some(FinishReason::Stop);
                    state.inner = None;
                } else {
                    let keep = held_back(&text, &state.stop);
                    let split = text.len() - keep;
                    state.held = text[split..].to_owned();
                    chunk.delta = text[..split].to_owned();
                }
                Some((Ok(chunk), state))
            }
            Some(Err(error)) => {
                state.inner = None;
                Some((Err(error), state))
            }
            None => {
                state.inner = None;
                if state.held.is_empty() {
                    None
                } else {
                    let chunk = ChatChunk {
                        delta: std::mem::take(&mut state.held),
                        ..ChatChunk::default()
                    };
                    Some((Ok(chunk), state))
                }
            }
        }
    }))
}

/// The length of the longest end of `text` that is a proper beginning of a
/// stop sequence.
fn held_back(text: &str, stop: &[String]) -> usize {
    stop.iter()
        .filter_map(|s| {
            (1..s.len())
                .rev()
                .find(|&k| s.is_char_boundary(k) && text.ends_with(&s[..k]))
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_search_finds_what_str_find_finds() {
        let texts = [
            "",
            "a",
            "abcabcabd",
            "caf\u{e9} \u{e9}t\u{e9}",
            "Thought: x\nAction:\n\nObservation: 1\nObservation:",
            "aaaaaaaaab",
        ];
        let needles = [
            "",
            "a",
            "ab",
            "abd",
            "\u{e9}t",
            "\nObservation:",
            "aaab",
            "zz",
            "\n\n",
        ];
        for text in texts {
            for needle in needles {
                assert_eq!(
                    find_short(text, needle),
                    text.find(needle),
                    "{text:?} {needle:?}"
                );
            }
        }
    }
    use crate::error::ProviderError;

    fn chunk(text: &str) -> Result<ChatChunk, ProviderError> {
        Ok(ChatChunk {
            delta: text.to_owned(),
            ..ChatChunk::default()
        })
    }

    #[test]
    fn cut_at_stop_uses_the_earliest_match() {
        let stop = vec!["Observation:".to_string(), "END".to_string()];
        assert_eq!(cut_at_stop("a END b Observation: c", &stop), "a ");
        assert_eq!(cut_at_stop("no stop here", &stop), "no stop here");
        assert_eq!(cut_at_stop("x", &[String::new()]), "x");
    }

    #[test]
    fn invalid_arguments_are_kept_as_text() {
        assert_eq!(parse_arguments("{oops"), serde_json::json!("{oops"));
        assert_eq!(parse_arguments("  "), serde_json::json!({}));
    }

    fn chunks_of(parts: &[&str]) -> ChatStream {
        let items: Vec<_> = parts.iter().map(|p| chunk(p)).collect();
        Box::pin(futures::stream::iter(items))
    }

    async fn texts(stream: ChatStream) -> (String, Vec<ChatChunk>) {
        let chunks: Vec<ChatChunk> = stream.map(|c| c.unwrap()).collect().await;
        (chunks.iter().map(|c| c.delta.as_str()).collect(), chunks)
    }

    #[tokio::test]
    async fn stream_stop_cut_spans_chunk_boundaries() {
        let stop = vec!["<END>".to_string(), "Observation:".to_string()];
        let (text, chunks) = texts(cut_stream_at_stop(
            chunks_of(&["Plan: a <E", "N", "D> more", " never"]),
            stop.clone(),
        ))
        .await;
        assert_eq!(text, "Plan: a ");
        assert_eq!(
            chunks.last().unwrap().finish_reason,
            Some(crate::model::FinishReason::Stop)
        );
        let (text, _) = texts(cut_stream_at_stop(
            chunks_of(&["a <", "b Obs", "erv"]),
            stop,
        ))
        .await;
        assert_eq!(text, "a <b Observ", "held-back text is flushed at the end");
        let (text, _) = texts(cut_stream_at_stop(
            chunks_of(&["é<", "Eé"]),
            vec!["<E>".into()],
        ))
        .await;
        assert_eq!(text, "é<Eé");
        let (text, chunks) = texts(cut_stream_at_stop(chunks_of(&["x", "y"]), vec![])).await;
        assert_eq!((text.as_str(), chunks.len()), ("xy", 2));
    }
}
