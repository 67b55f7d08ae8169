//! Finding a JSON value in a model's text: markdown fences, the value at
//! the start of a text, near-JSON repaired within the value's extent, and
//! the closing brackets a value lacks.
//!
//! These are the pieces; each parser (a plan, an action) decides in which
//! order to try them, since what counts as the answer differs.

use serde_json::Value;

use super::{QuotePolicy, repair_near_json_with};

/// A markdown code fence found by [`fenced_blocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FencedBlock<'a> {
    /// The language tag as written (`json`, `JSON`, empty), which may touch
    /// the body (```` ```json{...}``` ````).
    pub tag: &'a str,
    /// The text between the tag and the closing fence (or the end of the
    /// text), untrimmed.
    pub body: &'a str,
    /// Whether a closing fence ends the block.
    pub closed: bool,
}

/// The fenced blocks of `text`, in order: the text between an opening run
/// of three or more backticks (minus its language tag) and the next
/// ```` ``` ````, or the end of the text when the fence is never closed (a
/// reply cut short).
///
/// # Example
/// ```
/// use pae_core::output::fenced_blocks;
///
/// let blocks: Vec<_> = fenced_blocks("a ```json\n{}\n``` b ```\n[1").collect();
/// assert_eq!((blocks[0].tag, blocks[0].body, blocks[0].closed), ("json", "\n{}\n", true));
/// assert_eq!((blocks[1].tag, blocks[1].body, blocks[1].closed), ("", "\n[1", false));
/// ```
pub fn fenced_blocks(text: &str) -> impl Iterator<Item = FencedBlock<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = find_fence(rest)?;
        // A longer opening run (```` ```` ````) is one fence.
        let after = rest[open..].trim_start_matches('`');
        let (inner, next, closed) = match find_fence(after) {
            Some(close) => (
                &after[..close],
                after[close..].trim_start_matches('`'),
                true,
            ),
            None => (after, "", false),
        };
        rest = next;
        let (tag, body) = strip_fence_tag(inner);
        Some(FencedBlock { tag, body, closed })
    })
}

/// Splits a leading language tag (`json`, `JSON`, `json5`, ...) from a
/// fenced block's inner text. The tag may be followed by a newline, spaces
/// or the JSON itself (```` ```json{...}``` ````).
/// Where the first ```` ``` ```` in `text` starts: `text.find("```")`
/// without setting up a general substring search for every fence of every
/// reply (linear: each backtick is looked at most three times).
fn find_fence(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find('`') {
        let at = from + at;
        if bytes[at..].starts_with(b"```") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn strip_fence_tag(inner: &str) -> (&str, &str) {
    let trimmed = inner.trim_start_matches([' ', '\t']);
    let tag_len = trimmed
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.')))
        .map_or(trimmed.len(), |(i, _)| i);
    trimmed.split_at(tag_len)
}

/// The JSON value at the start of `text`; whatever follows it is ignored.
///
/// # Errors
/// The JSON parser's message, or `"no JSON value"` for an empty text.
///
/// # Example
/// ```
/// use pae_core::output::first_json_value;
///
/// assert_eq!(first_json_value("[1, 2] and some prose"), Ok(serde_json::json!([1, 2])));
/// assert!(first_json_value("{\"a\": ").is_err());
/// ```
pub fn first_json_value(text: &str) -> Result<Value, String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match values.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(String::from("no JSON value")),
    }
}

/// The JSON value at the start of `text`, or else the near-JSON there
/// repaired ([`repair_near_json_with`] and `quotes`) and parsed again.
///
/// The repair is confined to the bracketed value at the start of `text`
/// (brackets inside double-quoted strings do not count; all of the text
/// when it never balances), so prose after the value neither costs time nor
/// changes how the value is read (under [`QuotePolicy::Uniform`], a `"` in
/// that prose would otherwise decide how `'` is read).
///
/// # Errors
/// The parser's message for the text as written, when the repaired text
/// does not parse either.
///
/// # Example
/// ```
/// use pae_core::output::{parse_json_prefix, QuotePolicy};
///
/// let value = parse_json_prefix("{action: 'search',} then \"more\"", QuotePolicy::Uniform);
/// assert_eq!(value, Ok(serde_json::json!({"action": "search"})));
/// ```
pub fn parse_json_prefix(text: &str, quotes: QuotePolicy) -> Result<Value, String> {
    first_json_value(text).or_else(|error| {
        let region = &text[..value_extent(text)];
        let repaired = repair_near_json_with(region, quotes);
        if repaired != region
            && let Ok(value) = first_json_value(&repaired)
        {
            crate::telemetry::repaired(
                crate::RepairKind::NearJson,
                format!("JSON that did not parse ({error}) was read after repair"),
            );
            return Ok(value);
        }
        Err(error)
    })
}

/// The length of the bracketed value at the start of `text` (brackets
/// inside double-quoted or typographic-quoted strings do not count), or the
/// whole text when it never balances.
fn value_extent(text: &str) -> usize {
    let mut depth = 0usize;
    // The closing quote of the string being read.
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(close) = in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == close => in_string = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = Some('"'),
            '\u{201c}' => in_string = Some('\u{201d}'),
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// `text` with the one or two closing brackets it lacks at its end
/// appended (a trailing comma dropped), or `None` when it lacks none, more
/// than two, closes a bracket it did not open, or ends inside a string.
/// Small models miscount closing braces; a value cut off further is not
/// guessed at.
///
/// # Example
/// ```
/// use pae_core::output::close_json_brackets;
///
/// assert_eq!(close_json_brackets("[{\"a\": 1,").as_deref(), Some("[{\"a\": 1}]"));
/// assert_eq!(close_json_brackets("{\"a\": \"open"), None);
/// ```
pub fn close_json_brackets(text: &str) -> Option<String> {
    let mut open: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in text.trim_end().chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => open.push('}'),
            '[' => open.push(']'),
            // The guard pops the bracket this one closes.
            '}' | ']' if open.pop() != Some(c) => return None,
            _ => {}
        }
    }
    if in_string || open.is_empty() || open.len() > 2 {
        return None;
    }
    let mut closed = text.trim_end().trim_end_matches(',').to_owned();
    closed.extend(open.iter().rev());
    Some(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fences_are_found_where_find_finds_them() {
        for text in [
            "",
            "`",
            "``",
            "```",
            "a``b```c",
            "`` ``` ",
            "é```",
            "``\n```x```",
            "no fence",
        ] {
            assert_eq!(find_fence(text), text.find("```"), "{text:?}");
        }
    }

    #[test]
    fn fence_tags_are_stripped() {
        assert_eq!(strip_fence_tag("json\n{}"), ("json", "\n{}"));
        assert_eq!(strip_fence_tag("JSON{}"), ("JSON", "{}"));
        assert_eq!(strip_fence_tag(" json {}"), ("json", " {}"));
        assert_eq!(strip_fence_tag("\n{}"), ("", "\n{}"));
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        let blocks: Vec<FencedBlock<'_>> =
            fenced_blocks("a ```json\n{\"x\": 1} ``` b ```\n[1").collect();
        assert_eq!(
            blocks,
            vec![
                FencedBlock {
                    tag: "json",
                    body: "\n{\"x\": 1} ",
                    closed: true
                },
                FencedBlock {
                    tag: "",
                    body: "\n[1",
                    closed: false
                }
            ]
        );
    }

    #[test]
    fn value_extent_and_closing_brackets() {
        assert_eq!(value_extent("{\"a\": \"}\"} rest {"), 10);
        // Never balanced: all of it.
        assert_eq!(value_extent("{\"a\": [1} x"), 11);
        assert_eq!(
            close_json_brackets("{\"a\": {\"b\": 1}").as_deref(),
            Some("{\"a\": {\"b\": 1}}")
        );
        assert_eq!(
            close_json_brackets("[{\"a\": 1,").as_deref(),
            Some("[{\"a\": 1}]")
        );
        assert_eq!(close_json_brackets("{\"a\": \"open"), None);
        assert_eq!(close_json_brackets("{{{\"a\": 1"), None);
        assert_eq!(close_json_brackets("{\"a\": 1}"), None);
        assert_eq!(close_json_brackets("{\"a\": 1]"), None);
    }

    #[test]
    fn prefixes_are_repaired_only_within_the_value() {
        assert_eq!(
            parse_json_prefix("{'a': 'x'} it's \"quoted\"", QuotePolicy::Uniform),
            Ok(json!({"a": "x"}))
        );
        assert_eq!(
            parse_json_prefix("[1, 2,] tail", QuotePolicy::Mixed),
            Ok(json!([1, 2]))
        );
        let error = parse_json_prefix("{\"a\": ", QuotePolicy::Mixed).unwrap_err();
        assert!(error.contains("EOF"), "{error}");
        assert_eq!(first_json_value("  "), Err(String::from("no JSON value")));
    }
}
