//! The list assembler of the text parser: groups lexed lines into steps
//! (a numbered or bulleted list, with continuation lines, sub-lists,
//! section headings and trailing chatter).

use super::inline::inline_split;
use super::lexer::{Line, is_another_plan, is_chatter, is_rule, is_section_heading};
use crate::marker::trim_space;

/// A step being collected: its first line and the lines that continue it.
struct Item<'l, 'a> {
    head: &'l Line<'a>,
    body: Vec<&'l Line<'a>>,
    /// Whether a line of the body is a marker (a sub-list was opened).
    has_sub_list: bool,
}

impl<'l, 'a> Item<'l, 'a> {
    fn new(head: &'l Line<'a>) -> Self {
        Self {
            head,
            body: Vec::new(),
            has_sub_list: false,
        }
    }

    fn push(&mut self, line: &'l Line<'a>) {
        self.has_sub_list |= line.marker().is_some();
        self.body.push(line);
    }

    /// Whether a non-blank line continues the step.
    fn has_body(&self) -> bool {
        self.body.iter().any(|l| !l.is_blank())
    }

    /// Whether the body ends with a section heading (blank lines aside).
    fn ends_with_section_heading(&self, base: usize) -> bool {
        self.section_heading_at(base).is_some()
    }

    /// The position in the body of a section heading that ends it.
    fn section_heading_at(&self, base: usize) -> Option<usize> {
        let last = self.body.iter().rposition(|l| !l.is_blank())?;
        let line = self.body[last];
        let after_blank = last == 0 || self.body[last - 1].is_blank();
        (line.indent <= base && is_section_heading(line, after_blank)).then_some(last)
    }

    /// Drops a section heading (and blank lines) at the end of the body: it
    /// heads the next step, not this one.
    fn drop_section_heading(&mut self, base: usize) {
        if let Some(at) = self.section_heading_at(base) {
            self.body.truncate(at);
        }
    }
}

/// How many numbers a list may skip between two steps (`1.` then `3.`, as
/// models write and markdown renders as one list); a line numbered further
/// ahead (`2024. was the year ...`) is text of the step above.
const MAX_SKIPPED_NUMBERS: u64 = 9;

/// The steps of a numbered list whose top-level markers are indented at
/// most `min_indent + 1` columns. Bullets at the list's level before its
/// first step are steps the model wrote too: numbered lines right below
/// them (no blank line between) continue the last bullet, as markers of
/// another style do inside a list (`- a\n- b\n1) c`: two steps, `b\n1) c`);
/// after a blank line, the numbered list's steps follow the bullets'.
pub(super) fn numbered_steps(lines: &[Line<'_>], min_indent: usize) -> Vec<String> {
    let top_level = |l: &Line<'_>| l.number().is_some() && l.indent <= min_indent + 1;
    let Some(start) = lines
        .iter()
        .position(|l| top_level(l) && l.number().is_some_and(|n| n <= 1))
        .or_else(|| lines.iter().position(top_level))
    else {
        return Vec::new();
    };
    let first = &lines[start];
    let base = first.indent;
    let Some(style) = first.style() else {
        return Vec::new();
    };
    let before = &lines[..start];
    if let Some(last_bullet) = before
        .iter()
        .rposition(|l| l.is_bullet() && l.indent <= base + 1)
        && before[last_bullet..].iter().all(|l| !l.is_blank())
    {
        return bullet_steps(lines, base);
    }
    let first_number = first.number().unwrap_or(1);
    let mut expected = first_number + 1;
    let mut all_ones = first_number == 1;
    let mut items = vec![Item::new(first)];
    // Set at a blank line followed by another plan ("Steps:", "Plan B:"):
    // the list is over, and what follows is trailing text.
    let mut ended = false;
    let mut previous_blank = false;
    for line in &lines[start + 1..] {
        ended |= previous_blank && line.indent <= base && is_another_plan(line);
        previous_blank = line.is_blank();
        if !ended
            && let Some(n) = line.number()
            && line.style().is_some_and(|s| s.same_list(style))
            && let Some(current) = items.last_mut()
        {
            let starts = if line.indent <= base + 1 {
                n == expected
                    || (n > expected && n - expected <= MAX_SKIPPED_NUMBERS)
                    || (all_ones && n == 1)
                    || (n == 1 && current.ends_with_section_heading(base))
            } else {
                // "1. a\n   2. b": a list indented after its first line, but
                // not a sub-list ("1. a\n   1. x\n   2. y").
                n == expected && !current.has_sub_list
            };
            if starts {
                all_ones &= n == 1;
                expected = n + 1;
                current.drop_section_heading(base);
                items.push(Item::new(line));
                continue;
            }
        }
        if let Some(item) = items.last_mut() {
            item.push(line);
        }
    }
    let mut steps = bullet_steps(before, base);
    // "1. a 2. b 3. c" on one line is a one-line plan; two bare items are
    // not enough to tell it from a step that mentions "2. " in passing.
    if let [item] = items.as_slice()
        && first_number <= 1
        && item.body.iter().all(|l| l.is_blank())
    {
        let split = inline_split(item.head.title(), 2);
        let labelled = style.labelled && split.labelled;
        if split.items.len() >= 2 || (labelled && !split.items.is_empty()) {
            steps.extend(
                std::iter::once(split.head)
                    .chain(split.items)
                    .map(str::to_owned),
            );
            return steps;
        }
    }
    // "Plan: 1. a" followed by "2. b" on the next line: the list began inline.
    if first_number > 1
        && let Some(previous) = lines[..start].iter().rev().find(|l| !l.is_blank())
    {
        let inline = inline_split(previous.content, 1).items;
        if u64::try_from(inline.len()).is_ok_and(|n| n + 1 == first_number) {
            steps.extend(inline.into_iter().map(str::to_owned));
        }
    }
    steps.extend(finish(items, base));
    steps
}

pub(super) fn bullet_steps(lines: &[Line<'_>], min_indent: usize) -> Vec<String> {
    let Some(start) = lines
        .iter()
        .position(|l| l.is_bullet() && l.indent <= min_indent + 1)
    else {
        return Vec::new();
    };
    let base = lines[start].indent;
    let mut items = vec![Item::new(&lines[start])];
    let mut ended = false;
    let mut previous_blank = false;
    for line in &lines[start + 1..] {
        ended |= previous_blank && line.indent <= base && is_another_plan(line);
        previous_blank = line.is_blank();
        if !ended && line.is_bullet() && line.indent <= base + 1 {
            if let Some(current) = items.last_mut() {
                current.drop_section_heading(base);
            }
            items.push(Item::new(line));
        } else if let Some(item) = items.last_mut() {
            item.push(line);
        }
    }
    finish(items, base)
}

/// Where the plan ends inside the last step's body: at closing chatter, or
/// at a blank line followed by a line not indented deeper than the list
/// (past the first paragraph when the step's text follows its marker: the
/// marker line has no text, or it is a heading and other steps have bodies).
fn chatter_cut(item: &Item<'_, '_>, base: usize, steps_have_bodies: bool) -> Option<usize> {
    let keep_first_paragraph =
        item.head.title().is_empty() || (steps_have_bodies && item.head.text_may_follow());
    let mut seen_text = false;
    for (i, line) in item.body.iter().enumerate() {
        if line.is_blank() {
            continue;
        }
        if line.indent <= base {
            if is_chatter(line.content) || is_rule(line.content) {
                return Some(i);
            }
            let after_blank = i > 0 && item.body[i - 1].is_blank();
            if after_blank && (seen_text || !keep_first_paragraph) {
                return Some(i);
            }
        }
        seen_text = true;
    }
    None
}

/// Drops trailing chatter after the last step and joins each step's lines.
fn finish(mut items: Vec<Item<'_, '_>>, base: usize) -> Vec<String> {
    let steps_have_bodies = items
        .split_last()
        .is_some_and(|(_, others)| others.iter().any(Item::has_body));
    if let Some(last) = items.last_mut()
        && let Some(cut) = chatter_cut(last, base, steps_have_bodies)
    {
        last.body.truncate(cut);
    }
    items
        .into_iter()
        .map(|item| {
            let mut text = item.head.title().to_owned();
            for line in item.body.iter().filter(|l| !l.is_blank()) {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(line.content);
            }
            trim_space(&text).to_owned()
        })
        .collect()
}
