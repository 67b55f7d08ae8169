//! Plans that are not a list of lines: an inline run on one line
//! (`Plan: 1. a 2. b`) and a markdown table with numbered rows.

use super::lexer::{Kind, Line};
use crate::marker::{
    DASHES, STEP_DELIMITERS, digit_value, is_space, leading_number, strip_step_word, trim_space,
};

/// The first line holding an inline run `1. a 2. b` of at least two items.
pub(super) fn inline_steps(lines: &[Line<'_>]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| matches!(l.kind, Kind::Text))
        .find_map(|l| {
            let items = inline_split(l.content, 1).items;
            (items.len() >= 2).then(|| items.into_iter().map(str::to_owned).collect())
        })
        .unwrap_or_default()
}

/// A line split at inline step markers.
pub(super) struct InlineSplit<'s> {
    /// The text before the first marker.
    pub(super) head: &'s str,
    /// The text of each item.
    pub(super) items: Vec<&'s str>,
    /// Whether every marker carries the `Step` word.
    pub(super) labelled: bool,
}

/// An inline marker at the start of `s`: `2.` or `2)` followed by
/// whitespace, or `Step 2:` (any `Step` delimiter) followed by whitespace.
/// Returns the number, the offset of the item's text, and whether it is a
/// `Step` marker.
fn inline_marker(s: &str) -> Option<(u64, usize, bool)> {
    let word = strip_step_word(s);
    let labelled = word.is_some();
    let rest = word.unwrap_or(s);
    let (n, after) = leading_number(rest)?;
    let after = if labelled {
        after
            .trim_start_matches(is_space)
            .strip_prefix(STEP_DELIMITERS)?
    } else {
        after.strip_prefix(['.', ')'])?
    };
    after
        .starts_with(char::is_whitespace)
        .then(|| (n, s.len() - after.len(), labelled))
}

/// Splits `s` at inline markers numbered `first`, `first + 1`, ... (each
/// after whitespace, a colon or the start of `s`).
pub(super) fn inline_split(s: &str, first: u64) -> InlineSplit<'_> {
    // (where the marker starts, where its text starts)
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut expected = first;
    let mut labelled = true;
    let mut boundary = true;
    for (i, c) in s.char_indices() {
        let at_boundary = boundary;
        boundary = c.is_whitespace() || c == ':';
        if !at_boundary || !(digit_value(c).is_some() || c.is_alphabetic()) {
            continue;
        }
        let Some((n, text_start, step_word)) = inline_marker(&s[i..]) else {
            continue;
        };
        if n != expected {
            continue;
        }
        cuts.push((i, i + text_start));
        labelled &= step_word;
        expected += 1;
    }
    let Some(&(first_start, _)) = cuts.first() else {
        return InlineSplit {
            head: trim_space(s),
            items: Vec::new(),
            labelled: false,
        };
    };
    let items = cuts
        .iter()
        .enumerate()
        .map(|(k, &(_, text_start))| {
            let end = cuts.get(k + 1).map_or(s.len(), |&(next, _)| next);
            trim_space(&s[text_start..end])
        })
        .collect();
    InlineSplit {
        head: trim_space(&s[..first_start]),
        items,
        labelled,
    }
}

/// Steps from a markdown table whose first column numbers the rows 1, 2,
/// ...: the other non-empty cells of each row, joined with ` — `.
pub(super) fn table_steps(lines: &[Line<'_>]) -> Vec<String> {
    let mut steps = Vec::new();
    let mut expected = 1;
    for line in lines {
        let Some(inner) = line.content.strip_prefix('|') else {
            continue;
        };
        let inner = inner.strip_suffix('|').unwrap_or(inner);
        let mut cells = inner.split('|').map(trim_space);
        let Some(first) = cells.next() else { continue };
        let label = first.trim_matches(|c: char| matches!(c, '*' | '_' | '#'));
        let label = strip_step_word(label).unwrap_or(label);
        let Some((n, after)) = leading_number(label) else {
            continue;
        };
        if n != expected || !after.chars().all(|c| matches!(c, '.' | ')' | ':')) {
            continue;
        }
        // "-" and "N/A" fill cells that have nothing to say.
        let text: Vec<&str> = cells
            .filter(|c| !c.chars().all(|ch| DASHES.contains(&ch)) && !c.eq_ignore_ascii_case("n/a"))
            .collect();
        if text.is_empty() {
            continue;
        }
        steps.push(text.join(" — "));
        expected += 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_split_needs_sequential_numbers() {
        let split = |s: &'static str, first| {
            let split = inline_split(s, first);
            (split.head, split.items, split.labelled)
        };
        assert_eq!(
            split("Plan: 1. a 2. b", 1),
            ("Plan:", vec!["a", "b"], false)
        );
        assert_eq!(split("a 2. b 3. c", 2), ("a", vec!["b", "c"], false));
        assert_eq!(
            split("costs 2024. Then 3. x", 2),
            ("costs 2024. Then 3. x", vec![], false)
        );
        assert_eq!(split("1.a 2.b", 1), ("1.a 2.b", vec![], false));
        assert_eq!(
            split("Step 1: a. Step 2: b.", 1),
            ("", vec!["a.", "b."], true)
        );
        assert_eq!(split("a. step 2 - b", 2), ("a.", vec!["b"], true));
    }
}
