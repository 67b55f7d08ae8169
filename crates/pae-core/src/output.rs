//! Helpers for reading model output: dropping reasoning blocks, finding
//! the JSON in a reply and repairing the near-JSON that models write.
//!
//! Planners and executors both read free text from models and both meet
//! the same noise, so the cleaning lives here once:
//!
//! - [`strip_reasoning`] drops the `<think>` / `<thinking>` / `<reasoning>`
//!   sections that reasoning models (DeepSeek-R1, Qwen3, ...) write before
//!   their answer;
//! - [`repair_near_json`] (and [`repair_near_json_with`], which chooses how
//!   other quote characters are read) turns JSON5-, JavaScript- and
//!   Python-flavoured objects into JSON that `serde_json` accepts;
//! - [`fenced_blocks`], [`first_json_value`], [`parse_json_prefix`] and
//!   [`close_json_brackets`] find a JSON value in a reply: inside markdown
//!   fences, at the start of a text (prose after it ignored), repaired, or
//!   with the closing brackets a model forgot. Each parser decides in which
//!   order to try them.
//!
//! All of them work on any input without panicking, in time linear in its
//! length.

use std::borrow::Cow;
use std::fmt::Write as _;

mod json;

pub use json::{
    FencedBlock, close_json_brackets, fenced_blocks, first_json_value, parse_json_prefix,
};

/// The reasoning tags [`strip_reasoning`] knows, opening and closing, in
/// lowercase (matching ignores ASCII case).
const REASONING_TAGS: [(&str, &str); 3] = [
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
];

/// The text without the reasoning that reasoning models write before their
/// answer.
///
/// Dropped, with tag names matched ignoring ASCII case:
/// - every `<think>...</think>`, `<thinking>...</thinking>` and
///   `<reasoning>...</reasoning>` section (the text around them stays as it
///   is, whitespace included);
/// - everything up to a first closing tag that has no opening tag of its
///   kind before it: chat templates often put the opening tag in the
///   prompt. Only that first one: a later stray `</think>` is text;
/// - a section that is never closed, to the end of the text: the reply was
///   cut inside it, by a stop sequence or the token limit.
///
/// Drafts of actions or plans in there are not the answer. Text without
/// any reasoning tag comes back borrowed and unchanged.
///
/// # Example
/// ```
/// use pae_core::output::strip_reasoning;
///
/// assert_eq!(strip_reasoning("<think>2+2? maybe 5</think>\nIt is 4."), "\nIt is 4.");
/// assert_eq!(strip_reasoning("the template opened it</THINK>4"), "4");
/// assert_eq!(strip_reasoning("4<reasoning>cut off by the token li"), "4");
/// assert_eq!(strip_reasoning("no tags"), "no tags");
/// ```
pub fn strip_reasoning(text: &str) -> Cow<'_, str> {
    if !text.contains('<') {
        return Cow::Borrowed(text);
    }
    // ASCII lowercasing keeps byte offsets, so positions found in `lower`
    // index `text`.
    let lower = text.to_ascii_lowercase();
    if !REASONING_TAGS
        .iter()
        .any(|(open, close)| lower.contains(open) || lower.contains(close))
    {
        return Cow::Borrowed(text);
    }
    // The opening tag was in the prompt.
    let mut start = 0;
    for (open, close) in REASONING_TAGS {
        if let Some(end) = lower[start..].find(close)
            && !lower[start..start + end].contains(open)
        {
            start += end + close.len();
        }
    }
    let mut out = String::new();
    let mut at = start;
    // The next opening tag of each kind at or after `at` (`None`: no more),
    // searched again only once passed, so the work stays linear however
    // many sections there are.
    let mut next_open: [Option<usize>; 3] = [None; 3];
    for (slot, (open, _)) in next_open.iter_mut().zip(REASONING_TAGS) {
        *slot = lower[at..].find(open).map(|p| at + p);
    }
    loop {
        let nearest = next_open
            .iter()
            .enumerate()
            .filter_map(|(kind, p)| p.map(|p| (p, kind)))
            .min();
        let Some((open_at, kind)) = nearest else {
            break;
        };
        let (open, close) = REASONING_TAGS[kind];
        out.push_str(&text[at..open_at]);
        let inside = open_at + open.len();
        at = lower[inside..]
            .find(close)
            .map_or(text.len(), |end| inside + end + close.len());
        for (slot, (open, _)) in next_open.iter_mut().zip(REASONING_TAGS) {
            if slot.is_some_and(|p| p < at) {
                *slot = lower[at..].find(open).map(|p| at + p);
            }
        }
    }
    if at == start {
        // No section, only a prefix closed by a stray tag.
        return Cow::Borrowed(&text[start..]);
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Which quote characters besides `"` open a string in
/// [`repair_near_json_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotePolicy {
    /// Every string may use its own quotes: `"..."`, `'...'` or
    /// typographic `“...”`, mixed in one text as Python and JavaScript
    /// allow (`{'a': "it's"}`).
    #[default]
    Mixed,
    /// `'...'` and `“...”` are strings only when the text has no straight
    /// double quote at all: mixed quoting is not guessed at, and an
    /// apostrophe in a text that uses `"` is always a plain character.
    Uniform,
}

/// Repairs the near-JSON that models write into JSON, reading every
/// string's own quotes ([`QuotePolicy::Mixed`]).
///
/// See [`repair_near_json_with`] for what is repaired. Text that is JSON
/// already comes out unchanged; what cannot be repaired comes out in a form
/// a JSON parser still rejects.
///
/// # Example
/// ```
/// use pae_core::output::repair_near_json;
/// use serde_json::{json, Value};
///
/// let near = "{steps: [{'id': 1, \"text\": 'it\\'s', done: False,},], // the plan\n}";
/// let value: Value = serde_json::from_str(&repair_near_json(near)).unwrap();
/// assert_eq!(value, json!({"steps": [{"id": 1, "text": "it's", "done": false}]}));
/// ```
pub fn repair_near_json(text: &str) -> String {
    repair_near_json_with(text, QuotePolicy::Mixed)
}

/// Repairs the near-JSON that models write into JSON, reading quotes other
/// than `"` as `quotes` says.
///
/// - `//` and `/* */` comments outside strings are dropped (a line
///   comment's newline stays);
/// - a trailing comma before `}` or `]` (comments between them allowed) is
///   dropped;
/// - a bare key (a word after `{` or `,` and before `:`, as in
///   `{action: ...}`) is quoted;
/// - Python's `True`, `False` and `None` outside strings become `true`,
///   `false` and `null`;
/// - single-quoted and typographic-quoted (`“...”`) strings become
///   double-quoted ones, with `"` inside them escaped;
/// - inside strings, raw control characters (newlines, tabs, ...) are
///   escaped, `\'` is an apostrophe, and a backslash that escapes nothing
///   in JSON (`C:\Users`, `\d`, `\u` without four hex digits) is a literal
///   backslash.
///
/// Text that is JSON already comes out unchanged. A string left open at the
/// end of the text stays open, so a reply cut off inside a string is still
/// rejected by the JSON parser rather than read as a shorter value.
///
/// # Example
/// ```
/// use pae_core::output::{repair_near_json_with, QuotePolicy};
///
/// let windows = "{\"path\": \"C:\\Users\\ann\"}";
/// assert_eq!(repair_near_json_with(windows, QuotePolicy::Uniform), "{\"path\": \"C:\\\\Users\\\\ann\"}");
/// // With a straight double quote in the text, Uniform leaves `'` alone.
/// let mixed = "{'a': \"b\"}";
/// assert_eq!(repair_near_json_with(mixed, QuotePolicy::Uniform), mixed);
/// assert_eq!(repair_near_json_with(mixed, QuotePolicy::Mixed), "{\"a\": \"b\"}");
/// ```
pub fn repair_near_json_with(text: &str, quotes: QuotePolicy) -> String {
    let other_quotes = match quotes {
        QuotePolicy::Mixed => true,
        QuotePolicy::Uniform => !text.contains('"'),
    };
    let mut out = String::with_capacity(text.len() + 16);
    // The closing character of the string being read.
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(close) = quote {
            match c {
                '\\' => match chars.peek().map(|&(_, next)| next) {
                    Some(next @ ('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't')) => {
                        chars.next();
                        out.push('\\');
                        out.push(next);
                    }
                    Some('u') if is_unicode_escape(&text[i + 1..]) => {
                        chars.next();
                        out.push_str("\\u");
                    }
                    // `\'` in any string, and `\”` in a typographic one,
                    // mean the quote itself.
                    Some(next) if next == '\'' || next == close => {
                        chars.next();
                        out.push(next);
                    }
                    // A backslash that escapes nothing is a literal one.
                    _ => out.push_str("\\\\"),
                },
                c if c == close => {
                    quote = None;
                    out.push('"');
                }
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quote = Some('"');
                out.push('"');
            }
            '\'' if other_quotes => {
                quote = Some('\'');
                out.push('"');
            }
            '\u{201c}' if other_quotes => {
                quote = Some('\u{201d}');
                out.push('"');
            }
            '/' if matches!(chars.peek(), Some((_, '/'))) => {
                while chars.next_if(|&(_, d)| d != '\n').is_some() {}
            }
            '/' if matches!(chars.peek(), Some((_, '*'))) => {
                chars.next();
                let mut previous = ' ';
                for (_, d) in chars.by_ref() {
                    if previous == '*' && d == '/' {
                        break;
                    }
                    previous = d;
                }
            }
            ',' => {
                let rest = skip_comments(&text[i + 1..]);
                if !(rest.starts_with('}') || rest.starts_with(']')) {
                    out.push(',');
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) =
                    chars.next_if(|&(_, d)| d.is_ascii_alphanumeric() || d == '_')
                {
                    end = j + d.len_utf8();
                }
                let word = &text[i..end];
                // Only where a key may stand: `a: 1` elsewhere (prose,
                // a value) is left to fail rather than guessed at.
                let key_position = matches!(out.trim_end().chars().last(), Some('{' | ','));
                if key_position && text[end..].trim_start().starts_with(':') {
                    out.push('"');
                    out.push_str(word);
                    out.push('"');
                } else {
                    out.push_str(match word {
                        "True" => "true",
                        "False" => "false",
                        "None" => "null",
                        word => word,
                    });
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `text` (what follows a backslash) is `u` and four hex digits.
fn is_unicode_escape(text: &str) -> bool {
    text.strip_prefix('u')
        .and_then(|hex| hex.get(..4))
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The text after leading whitespace and comments.
fn skip_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("//") {
            text = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn check_strip(text: &str, expect: &str) {
        assert_eq!(strip_reasoning(text), expect, "{text:?}");
    }

    #[test]
    fn reasoning_sections_are_dropped_wherever_they_stand() {
        check_strip("<think>a</think>b<think>c</think>d", "bd");
        check_strip("a <think>b</think> c", "a  c");
        check_strip("<think>1. no</think>\n1. yes", "\n1. yes");
        check_strip("x<thinking>y</thinking>z<reasoning>w</reasoning>!", "xz!");
        check_strip("<reasoning>\nplan A\n</reasoning>plan B", "plan B");
    }

    #[test]
    fn reasoning_tags_match_ignoring_ascii_case() {
        check_strip("<THINKING>x</THINKING>ok", "ok");
        check_strip("<Think>x</think>ok", "ok");
        check_strip("<Reasoning>x</REASONING>ok", "ok");
    }

    #[test]
    fn a_first_closing_tag_without_its_opening_tag_ends_the_reasoning() {
        check_strip("draft</think> answer", " answer");
        check_strip("only the end</think>ok", "ok");
        // Only the first: a later stray tag is part of the answer.
        check_strip("a </think> b </think> c", " b </think> c");
        // One per kind, in the order think, thinking, reasoning.
        check_strip("x</think>y</reasoning>z", "z");
        // A closing tag after its opening tag is not stray.
        check_strip("<think>a</think>b</think>c", "b</think>c");
    }

    #[test]
    fn a_section_never_closed_runs_to_the_end() {
        check_strip("Sure.<think>cut off", "Sure.");
        check_strip("x<thinking>y</thinking>z<think>open", "xz");
        check_strip("<think>", "");
        check_strip("a<think>b</think", "a");
    }

    #[test]
    fn text_without_reasoning_is_borrowed_unchanged() {
        for text in [
            "no tags",
            "",
            "a < b > c",
            "<thinker>",
            "</ think>",
            "<tool_call>{}",
        ] {
            assert!(
                matches!(strip_reasoning(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        // A prefix cut by a stray closing tag is borrowed too.
        assert!(matches!(strip_reasoning("x</think>y"), Cow::Borrowed("y")));
    }

    #[test]
    fn many_sections_cost_linear_time() {
        let text = "<think>x</think>y".repeat(100_000) + "<reasoning";
        let stripped = strip_reasoning(&text);
        assert_eq!(stripped.len(), 100_000 + "<reasoning".len());
    }

    #[test]
    fn multibyte_text_around_tags_survives() {
        check_strip("日本<think>é😀</think>語", "日本語");
        check_strip("İ<THINK>x</THINK>ß", "İß");
    }

    fn repaired(text: &str) -> Value {
        let repaired = repair_near_json(text);
        serde_json::from_str(&repaired)
            .unwrap_or_else(|e| panic!("{text:?} became {repaired:?}: {e}"))
    }

    #[test]
    fn json_comes_out_unchanged() {
        for text in [
            r#"{"a": [1, 2.5e-3, -0, true, false, null], "b": {"c": "d, // e /* f */ ,}"}}"#,
            r#"["\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00", "it's", "“q”"]"#,
            "{\"日本\": \"😀\", \"True\": \"None:\"}",
            "",
        ] {
            assert_eq!(repair_near_json(text), text);
            assert_eq!(repair_near_json_with(text, QuotePolicy::Uniform), text);
        }
    }

    #[test]
    fn comments_and_trailing_commas_are_dropped() {
        assert_eq!(
            repaired("{\"a\": [1, 2,], \"b\": {\"c\": 3,},} // done"),
            json!({"a": [1, 2], "b": {"c": 3}})
        );
        assert_eq!(
            repaired("[1, /* two */ 2, // three\n /* end */ ]"),
            json!([1, 2])
        );
        assert_eq!(
            repair_near_json("{\"u\": \"http://x/*y*/\"}"),
            "{\"u\": \"http://x/*y*/\"}"
        );
        // An unclosed block comment runs to the end.
        assert_eq!(repair_near_json("[1] /* open"), "[1] ");
    }

    #[test]
    fn bare_keys_are_quoted_only_where_a_key_stands() {
        assert_eq!(
            repaired("{steps: [{id: 1, step_2: \"x\"}], \n  done: True}"),
            json!({"steps": [{"id": 1, "step_2": "x"}], "done": true})
        );
        assert_eq!(repair_near_json("[a: 1]"), "[a: 1]");
        assert_eq!(repair_near_json("{\"a\": b: 1}"), "{\"a\": b: 1}");
    }

    #[test]
    fn python_literals_become_json_outside_strings() {
        assert_eq!(
            repaired("{\"ok\": True, \"no\": False, \"none\": None, \"s\": \"True, None,\"}"),
            json!({"ok": true, "no": false, "none": null, "s": "True, None,"})
        );
        assert_eq!(
            repair_near_json("{\"Nonesuch\": Truely}"),
            "{\"Nonesuch\": Truely}"
        );
    }

    #[test]
    fn other_quotes_are_read_as_the_policy_says() {
        let mixed = "{'a': 'it\\'s \"x\"', 'b': \"it's\", \u{201c}c\u{201d}: 1}";
        assert_eq!(
            repaired(mixed),
            json!({"a": "it's \"x\"", "b": "it's", "c": 1})
        );
        assert_eq!(repair_near_json_with(mixed, QuotePolicy::Uniform), mixed);
        let single =
            "{'a': 'x', \u{201c}b\u{201d}: \u{201c}it\u{2019}s \u{201c}y\\\u{201d}\u{201d}}";
        let uniform = repair_near_json_with(single, QuotePolicy::Uniform);
        assert_eq!(
            serde_json::from_str::<Value>(&uniform).unwrap(),
            json!({"a": "x", "b": "it\u{2019}s \u{201c}y\u{201d}"})
        );
        assert_eq!(uniform, repair_near_json(single));
    }

    #[test]
    fn string_contents_are_escaped() {
        assert_eq!(
            repair_near_json("{\"a\": \"line1\nline2\t\u{1}\r\",\n\"b\": 1}"),
            "{\"a\": \"line1\\nline2\\t\\u0001\\r\",\n\"b\": 1}"
        );
        assert_eq!(
            repaired("[\"C:\\Users\\ann\\x\\d\", \"\\u00e9 \\uzz \\u12\", \"\\'q\\'\"]"),
            json!(["C:\\Users\\ann\\x\\d", "é \\uzz \\u12", "'q'"])
        );
    }

    #[test]
    fn a_string_cut_off_stays_open() {
        for text in ["{\"a\": \"cut", "{'a': 'cut", "[\"a\\"] {
            let repaired = repair_near_json(text);
            assert!(
                serde_json::from_str::<Value>(&repaired).is_err(),
                "{text:?} became {repaired:?}"
            );
        }
        assert_eq!(repair_near_json("[\"a\\"), "[\"a\\\\");
    }
}
