//! The line lexer of the text parser: line ends, the end marker, each
//! line's indentation and step marker, and the kinds of text line the list
//! assembler looks for (plan headers, section headings, closing chatter).

use std::borrow::Cow;

use crate::marker::{Marker, Style, is_format_mark, is_space, parse_marker, trim_space};

/// Whether a line is only a code fence, with an optional language tag.
pub(super) fn is_fence(line: &str) -> bool {
    let trimmed = trim_space(line);
    trimmed.strip_prefix("```").is_some_and(|tag| {
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Newlines as `\n` only, without a leading byte-order mark.
pub(super) fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Text with no `\r` and no lead byte of U+0085, U+2028 or U+2029 (most
    // plans) has nothing to rewrite: not copied at all.
    if memchr::memchr3(b'\r', 0xC2, 0xE2, text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` up to the end marker, or to its bare word in any case when the
/// marker is bracketed (`<END_OF_PLAN>` also ends at `END_OF_PLAN`,
/// `</END_OF_PLAN>`, `[end_of_plan]`), to the word's phrase with spaces or
/// dashes when bracketed or alone on a line (`<END OF PLAN>`), or before a
/// marker cut short at the end of the text (`<END_OF`).
pub(crate) fn cut_at_end_marker<'a>(text: &'a str, marker: &str) -> &'a str {
    if marker.is_empty() {
        return text;
    }
    let body = marker_end(text, marker).map_or(text, |e| &text[..e]);
    // A marker cut short by a token limit: "...\n<END_OF".
    let trimmed = body.trim_end();
    let lower_marker = marker.to_ascii_lowercase();
    let short = (4..marker.len()).rev().find_map(|k| {
        let prefix = lower_marker.get(..k)?;
        let start = trimmed.len().checked_sub(k)?;
        let tail = trimmed.get(start..)?;
        // "...\n<END_OF" or "b<END_OF", but not "BACKEND_OF" for "END_OF_PLAN".
        let at_boundary = start == 0
            || trimmed[..start].ends_with(char::is_whitespace)
            || !prefix.starts_with(char::is_alphanumeric);
        (tail.eq_ignore_ascii_case(prefix) && at_boundary).then_some(start)
    });
    short.map_or(body, |s| &body[..s])
}

/// Where the first whole end marker (or its word or phrase, see
/// [`cut_at_end_marker`]) starts in `text`.
fn marker_end(text: &str, marker: &str) -> Option<usize> {
    // The whole plan is searched a few times over: without copies of it,
    // and by memchr on the first byte of what is sought.
    let mut end = pae_core::adapter::find_short(text, marker);
    let mut earliest = |pos: usize| end = Some(end.map_or(pos, |e: usize| e.min(pos)));
    let word = marker.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    if !word.is_empty()
        && word.len() != marker.len()
        && let Some(pos) = find_ignore_ascii_case(text, word)
    {
        earliest(
            text[..pos]
                .trim_end_matches(['<', '/', '[', '(', '{', '*', '`'])
                .len(),
        );
    }
    let parts: Vec<&str> = word
        .split(['_', '-', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() >= 2
        && let Some(pos) = phrase_marker(text, &parts)
    {
        earliest(pos);
    }
    end
}

/// Where `needle` (not empty) first occurs in `text`, ASCII letters
/// matching in either case: a byte offset, at a character boundary.
fn find_ignore_ascii_case(text: &str, needle: &str) -> Option<usize> {
    let first = *needle.as_bytes().first()?;
    let bytes = text.as_bytes();
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        bytes,
    )
    .find(|&at| {
        bytes
            .get(at..at + needle.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(needle.as_bytes()))
    })
}

/// Where the end marker's phrase (`parts` separated by spaces, `_` or `-`,
/// ASCII letters in either case) first appears bracketed (`<end of plan>`)
/// or alone on its line.
fn phrase_marker(text: &str, parts: &[&str]) -> Option<usize> {
    let phrase_len = |s: &str| -> Option<usize> {
        let bytes = s.as_bytes();
        let mut pos = 0;
        for (k, part) in parts.iter().enumerate() {
            if k > 0 {
                let seps = bytes[pos..]
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'_' | b'-'))
                    .count();
                if seps == 0 {
                    return None;
                }
                pos += seps;
            }
            let same = bytes
                .get(pos..pos + part.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(part.as_bytes()));
            if !same {
                return None;
            }
            pos += part.len();
        }
        Some(pos)
    };
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let core = line.trim_matches(|c: char| !c.is_alphanumeric());
        if phrase_len(core) == Some(core.len()) {
            return Some(line_start);
        }
        for i in memchr::memchr2_iter(b'<', b'[', line.as_bytes()) {
            let after = &line[i + 1..];
            let after = after.strip_prefix('/').unwrap_or(after);
            if phrase_len(after).is_some_and(|n| after[n..].starts_with(['>', ']'])) {
                return Some(line_start + i);
            }
        }
    }
    None
}

#[derive(Debug)]
pub(super) enum Kind {
    Blank,
    Text,
    Marker(Marker),
}

#[derive(Debug)]
pub(super) struct Line<'a> {
    /// Leading whitespace in columns (a tab reaches the next multiple of 4;
    /// invisible marks take no column).
    pub(super) indent: usize,
    /// The line without its indentation and trailing whitespace.
    pub(super) content: &'a str,
    pub(super) kind: Kind,
}

impl<'a> Line<'a> {
    pub(super) fn classify(raw: &'a str) -> Self {
        let mut indent = 0;
        for c in raw.chars() {
            match c {
                '\t' => indent = (indent / 4 + 1) * 4,
                c if is_format_mark(c) => {}
                c if c.is_whitespace() => indent += 1,
                _ => break,
            }
        }
        let content = trim_space(raw);
        let kind = if content.is_empty() {
            Kind::Blank
        } else {
            match parse_marker(content) {
                Some(marker) => Kind::Marker(marker),
                None => Kind::Text,
            }
        };
        Self {
            indent,
            content,
            kind,
        }
    }

    pub(super) fn marker(&self) -> Option<&Marker> {
        match &self.kind {
            Kind::Marker(marker) => Some(marker),
            _ => None,
        }
    }

    pub(super) fn number(&self) -> Option<u64> {
        self.marker().and_then(|m| m.number)
    }

    pub(super) fn style(&self) -> Option<Style> {
        self.marker().map(|m| m.style)
    }

    pub(super) fn is_bullet(&self) -> bool {
        self.marker().is_some_and(|m| m.number.is_none())
    }

    pub(super) fn is_blank(&self) -> bool {
        matches!(self.kind, Kind::Blank)
    }

    pub(super) fn title(&self) -> &str {
        self.marker().map_or(self.content, |m| m.title.as_str())
    }

    /// Whether the step's text may come as a paragraph after a blank line.
    pub(super) fn text_may_follow(&self) -> bool {
        self.marker()
            .is_some_and(|m| m.heading_like || m.title.is_empty())
    }
}

/// Whether a line is a header announcing the plan: `Plan:`, `**Plan:**`,
/// `## The plan`, `Here are the steps:`.
pub(super) fn is_plan_header(content: &str) -> bool {
    let core =
        content.trim_matches(|c: char| is_space(c) || matches!(c, '#' | '*' | '_' | ':' | '`'));
    let mut words = core.split_whitespace();
    let Some(last) = words.next_back() else {
        return false;
    };
    if words.count() > 5 {
        return false;
    }
    let last = last
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    last == "plan" || last == "steps"
}

/// Where to look for the list: after the first plan header that a step
/// marker follows, or from the top.
pub(super) fn plan_start(lines: &[Line<'_>]) -> usize {
    let Some(last_marker) = lines.iter().rposition(|l| l.marker().is_some()) else {
        return 0;
    };
    lines[..last_marker]
        .iter()
        .position(|line| matches!(line.kind, Kind::Text) && is_plan_header(line.content))
        .map_or(0, |i| i + 1)
}

/// Words of a heading that introduces another version of the plan ("Plan
/// B:", "Option 2:"), not a further section of the same plan.
const ALTERNATIVE_WORDS: [&str; 5] = ["plan", "option", "alternative", "approach", "version"];

/// Whether a text line heads another version of the plan or of its steps:
/// a plan header (`Plan:`, `Steps:`, `Revised plan:`) or a short heading
/// naming an alternative (`Plan B:`, `**Option 2**`, `## Alternative`).
pub(super) fn is_another_plan(line: &Line<'_>) -> bool {
    if !matches!(line.kind, Kind::Text) {
        return false;
    }
    let content = line.content;
    let heading_like = content.starts_with('#')
        || content.ends_with([':', '：'])
        || (content.starts_with("**") && content.trim_end_matches([':', '：']).ends_with("**"));
    is_plan_header(content)
        || (heading_like
            && content.split_whitespace().count() <= 6
            && content.split(|c: char| !c.is_alphanumeric()).any(|word| {
                ALTERNATIVE_WORDS
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
            }))
}

/// Whether a text line heads a section of the plan: a markdown heading, a
/// line entirely in bold, or (after a blank line) a short line ending in a
/// colon; but not a heading of another plan ([`is_another_plan`]).
pub(super) fn is_section_heading(line: &Line<'_>, after_blank: bool) -> bool {
    if !matches!(line.kind, Kind::Text) || is_another_plan(line) {
        return false;
    }
    let content = line.content;
    let heading = content.starts_with('#') && content.trim_start_matches('#').starts_with(is_space);
    let bold = ["**", "__"].iter().any(|token| {
        content.starts_with(token)
            && content.len() > 2 * token.len()
            && content.trim_end_matches([':', '：']).ends_with(token)
    });
    let label =
        after_blank && content.ends_with([':', '：']) && content.split_whitespace().count() <= 8;
    heading || bold || label
}

/// Phrases that open closing chatter after a plan ("Let me know if ...").
const CHATTER: [&str; 23] = [
    "let me know",
    "please let me know",
    "i hope",
    "hope this",
    "hope that",
    "feel free",
    "if you have any",
    "if you need any",
    "if you need help",
    "if you'd like",
    "if you would like",
    "would you like",
    "is there anything",
    "by following",
    "following these steps",
    "this plan",
    "these steps",
    "good luck",
    "happy to help",
    "in summary",
    "in conclusion",
    "to summarize",
    "to summarise",
];

/// Whether a line is a horizontal rule (`---`, `***`, `* * *`, `===`).
pub(super) fn is_rule(content: &str) -> bool {
    let marks: Vec<char> = content.chars().filter(|c| !is_space(*c)).collect();
    marks.len() >= 3
        && marks
            .iter()
            .all(|&c| c == marks[0] && matches!(c, '-' | '*' | '_' | '=' | '—'))
}

/// Whether a line opens like closing chatter.
pub(super) fn is_chatter(content: &str) -> bool {
    let core =
        content.trim_start_matches(|c: char| is_space(c) || matches!(c, '*' | '_' | '#' | '>'));
    CHATTER.iter().any(|phrase| {
        core.get(..phrase.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(phrase))
            && core[phrase.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::END_OF_PLAN;

    #[test]
    fn line_breaks_are_normalized() {
        assert_eq!(
            normalize("\u{feff}a\r\nb\rc\u{2028}d\u{2029}e\u{85}f"),
            "a\nb\nc\nd\ne\nf"
        );
        assert_eq!(
            normalize("1. plain\n2. ünïcode – dash\n"),
            "1. plain\n2. ünïcode – dash\n"
        );
        assert_eq!(normalize("\u{feff}1. a"), "1. a");
    }

    /// The searches before they ran on the text itself: on a lowercased
    /// copy, with std's substring search.
    fn marker_searches_on_a_lowercased_copy(text: &str, marker: &str) -> Option<usize> {
        let mut end = text.find(marker);
        let mut earliest = |pos: usize| end = Some(end.map_or(pos, |e: usize| e.min(pos)));
        let word = marker.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        let lower = text.to_ascii_lowercase();
        if !word.is_empty()
            && word.len() != marker.len()
            && let Some(pos) = lower.find(&word.to_ascii_lowercase())
        {
            earliest(
                text[..pos]
                    .trim_end_matches(['<', '/', '[', '(', '{', '*', '`'])
                    .len(),
            );
        }
        let parts: Vec<String> = word
            .split(['_', '-', ' '])
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if parts.len() >= 2 {
            let mut offset = 0;
            for line in lower.split_inclusive('\n') {
                let start = offset;
                offset += line.len();
                let phrase = |s: &str| -> Option<usize> {
                    let mut pos = 0;
                    for (k, part) in parts.iter().enumerate() {
                        if k > 0 {
                            let seps = s[pos..]
                                .bytes()
                                .take_while(|b| matches!(b, b' ' | b'_' | b'-'))
                                .count();
                            if seps == 0 {
                                return None;
                            }
                            pos += seps;
                        }
                        if !s[pos..].starts_with(part.as_str()) {
                            return None;
                        }
                        pos += part.len();
                    }
                    Some(pos)
                };
                let core = line.trim_matches(|c: char| !c.is_alphanumeric());
                let found = (phrase(core) == Some(core.len()))
                    .then_some(start)
                    .or_else(|| {
                        line.char_indices()
                            .filter(|(_, c)| *c == '<' || *c == '[')
                            .find_map(|(i, _)| {
                                let after = &line[i + 1..];
                                let after = after.strip_prefix('/').unwrap_or(after);
                                phrase(after)
                                    .is_some_and(|n| after[n..].starts_with(['>', ']']))
                                    .then_some(start + i)
                            })
                    });
                if let Some(pos) = found {
                    earliest(pos);
                    break;
                }
            }
        }
        end
    }

    #[test]
    fn marker_searches_find_what_searching_a_lowercased_copy_finds() {
        let pieces = [
            "1. a\n",
            "Étape 2 é\n",
            "<END_OF_PLAN>",
            "end_of_plan",
            "[End Of Plan]",
            "\nEND-OF-PLAN\n",
            "</end_of_plan>",
            "<end of",
            "plan>",
            "ＥＮＤ",
            "<",
            "[",
            "e",
            "E",
            " ",
            "\n",
            "end_of",
            "STOP",
            "<STOP>",
            "Stop here",
        ];
        let markers = [END_OF_PLAN, "STOP", "<<STOP>>", "[done]", "END"];
        // Every text of up to three pieces.
        let mut texts = vec![String::new()];
        let mut last = texts.clone();
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|t| pieces.iter().map(move |p| format!("{t}{p}")))
                .collect();
            texts.extend(last.iter().cloned());
        }
        let mut found = 0;
        for text in &texts {
            for marker in markers {
                let end = marker_end(text, marker);
                assert_eq!(
                    end,
                    marker_searches_on_a_lowercased_copy(text, marker),
                    "{text:?} {marker:?}"
                );
                found += usize::from(end.is_some());
            }
        }
        assert!(
            found > texts.len(),
            "{found} of {}",
            texts.len() * markers.len()
        );
    }

    #[test]
    fn end_marker_variants_are_cut() {
        assert_eq!(cut_at_end_marker("a<END_OF_PLAN>b", END_OF_PLAN), "a");
        assert_eq!(cut_at_end_marker("a </END_OF_PLAN>", END_OF_PLAN), "a ");
        assert_eq!(cut_at_end_marker("a [end_of_plan]", END_OF_PLAN), "a ");
        assert_eq!(cut_at_end_marker("a END_OF_PLAN", END_OF_PLAN), "a ");
        assert_eq!(cut_at_end_marker("é <END_OF_PLAN", END_OF_PLAN), "é ");
        assert_eq!(cut_at_end_marker("abc", ""), "abc");
        assert_eq!(cut_at_end_marker("a STOP b", "STOP"), "a ");
    }

    #[test]
    fn headers() {
        for h in [
            "Plan:",
            "**Plan:**",
            "## Plan",
            "Here is the plan:",
            "Steps:",
            "The steps",
        ] {
            assert!(is_plan_header(h), "{h:?}");
        }
        for t in [
            "Plan: 1. a",
            "I will now make a very long and careful plan",
            "Planning",
        ] {
            assert!(!is_plan_header(t), "{t:?}");
        }
    }
}
