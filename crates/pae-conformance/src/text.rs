//! Text for reports and stop checks: quoting, error descriptions and
//! kind names, panic messages, and choosing a stop text from a reply.

use std::any::Any;

use pae_core::{ProviderError, error_chain};

/// Picks a stop text from `text`: a word whose first occurrence has visible
/// text before it, as near the middle as possible. Returns the word and the
/// byte offset where a compliant model cuts.
pub(crate) fn choose_stop(text: &str) -> Option<(String, usize)> {
    let middle = text.len() / 2;
    let mut best: Option<(&str, usize)> = None;
    for (start, word) in words(text) {
        if text[..start].trim().is_empty() || text.find(word) != Some(start) {
            continue;
        }
        if best.is_none_or(|(_, at)| start.abs_diff(middle) < at.abs_diff(middle)) {
            best = Some((word, start));
        }
    }
    best.map(|(word, at)| (word.to_owned(), at))
}

/// The maximal runs of alphanumeric characters of `text`, with their byte
/// offsets.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(begin)) => {
                found.push((begin, &text[begin..at]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        found.push((begin, &text[begin..]));
    }
    found
}

/// `text` in quotes, shortened to 80 characters.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// An error with its sources and, for HTTP errors and unparsable replies,
/// the start of the body the provider sent.
pub(crate) fn describe(error: &ProviderError) -> String {
    let text = error_chain(error);
    match error {
        ProviderError::Http { body, .. } | ProviderError::InvalidResponse { body, .. }
            if !body.is_empty() =>
        {
            format!("{text} (body {})", quote(body))
        }
        _ => text,
    }
}

/// An error's kind by name, for reports: `Timeout`, `InvalidRequest`, …;
/// HTTP errors as `Http <status> (<kind>)`, such as `Http 429
/// (RateLimited)`.
pub(crate) fn kind_name(error: &ProviderError) -> String {
    match error.status() {
        Some(status) => format!("Http {status} ({:?})", error.kind()),
        None => format!("{:?}", error.kind()),
    }
}

pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_stop(text: &str, expected: Option<(&str, &str)>) {
        let chosen = choose_stop(text);
        assert_eq!(
            chosen
                .as_ref()
                .map(|(stop, at)| (stop.as_str(), &text[..*at])),
            expected,
            "text {text:?}"
        );
    }

    #[test]
    fn stop_text_is_a_first_occurrence_near_the_middle() {
        check_stop(
            "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
            Some(("6", "1, 2, 3, 4, 5, ")),
        );
        check_stop("Hello there, friend", Some(("there", "Hello ")));
        check_stop("the cat and the dog", Some(("and", "the cat ")));
        check_stop("  one", None);
        check_stop("", None);
        check_stop("word word", None);
        check_stop("héllo wörld", Some(("wörld", "héllo ")));
    }

    #[test]
    fn words_split_on_non_alphanumerics() {
        assert_eq!(words("a, bc;d"), [(0, "a"), (3, "bc"), (6, "d")]);
        assert!(words(" ,;").is_empty());
    }

    #[test]
    fn quote_shortens_long_text() {
        assert_eq!(quote("hi"), "\"hi\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(80)));
    }

    #[test]
    fn descriptions_show_the_body_of_http_errors() {
        let http = ProviderError::Http {
            status: 500,
            body: "template error".into(),
            retry_after: None,
        };
        assert_eq!(
            describe(&http),
            "the provider answered HTTP 500 (body \"template error\")"
        );
        assert_eq!(
            describe(&ProviderError::invalid_request("no messages")),
            "the request is invalid: no messages"
        );
    }

    #[test]
    fn kind_name_names_the_error_kind() {
        assert_eq!(
            kind_name(&ProviderError::invalid_request("x")),
            "InvalidRequest"
        );
        assert_eq!(
            kind_name(&ProviderError::Exhausted { requests: 1 }),
            "Exhausted"
        );
        let limited = ProviderError::Http {
            status: 429,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(kind_name(&limited), "Http 429 (RateLimited)");
    }
}
