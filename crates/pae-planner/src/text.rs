//! [`PlanningOutputParser`]: reads the steps of a plan out of a model's free
//! text (a numbered list, a "Step N:" list, a bulleted list or a table).

use pae_core::{Plan, PlanOutputParser, PlanParseError, Step};

use crate::noise::strip_noise;

/// The end marker the chat planner's prompt asks for, and its stop sequence.
pub const END_OF_PLAN: &str = "<END_OF_PLAN>";

/// A run of more digits than this is not a step number (it is text).
const MAX_NUMBER_DIGITS: usize = 9;

/// Parses a model's plan written as a numbered or bulleted list.
///
/// # Rules
///
/// The parser gives the same steps as LangChain's `PlanningOutputParser` for
/// text in the format LangChain's prompt asks for (`"Plan:\n1. a\n2. b"`,
/// with or without `<END_OF_PLAN>`), trimmed. Beyond that:
///
/// 1. **Line ends and noise**: CRLF, CR and the Unicode line separators count
///    as newlines; a leading byte-order mark is ignored, and so are
///    zero-width and direction marks around a line (`U+200B`, `U+200F`, ...).
///    A reasoning block (`<think>...</think>`) is dropped, and the text ends
///    at a leaked chat-template token (`<|im_end|>`, `<|eot_id|>`, `</s>`,
///    `<end_of_turn>`).
/// 2. **End marker**: the end marker (`<END_OF_PLAN>` by default) and
///    everything after it are removed, for providers that ignore stop
///    sequences. Its bare word in any case (`END_OF_PLAN`, `</END_OF_PLAN>`,
///    `[end_of_plan]`) counts too, as does the phrase with spaces or dashes
///    when bracketed or alone on its line (`<END OF PLAN>`, `END OF PLAN`),
///    and a marker cut short at the very end of the text (`<END_OF`).
/// 3. **Step markers** at the start of a line (after indentation, a markdown
///    heading `#` or a bullet): `1.`, `1)`, `(1)`, `1:`, `1．`, `1.-`,
///    `1 - `, `1️⃣`, `①`, `一、`, `#1:`, `Step 1:`, `Step 1 -`, `STEP 1.`,
///    `Step 1/3:`, `Step #1:`, bold `**1.**`, `**1. Title**`, `**Step 1:**`,
///    and the step word in other languages (`Paso 1:`, `Étape 1 :`,
///    `Schritt 1:`, `Шаг 1:`, `第1步：`, `步骤1：`, ...); the number may be
///    followed by a space, a tab, any other whitespace, a letter or the end
///    of the line (the text then comes on the next lines). Digits may be
///    ASCII, fullwidth, Arabic-Indic or Devanagari. A number followed by a
///    digit (`1.1`, `3.14`) is not a step marker.
/// 4. **Numbering decides**: the list starts at its first `1.` (or `0.`), or
///    at its first marker when no step is numbered 1 (a revised plan that
///    goes on at `3.`). After that, only the expected next number starts a
///    new step, so `2024. things happened` at the start of a line inside step
///    1 stays in step 1. A list that numbers every item `1.` (markdown style)
///    is accepted. Numbers are never skipped: `1. a\n3. c` is one step. A
///    list whose numbering starts again at `1.` after a section heading
///    (`## Booking`, `**Phase 2: Booking**`, or a short line ending in `:`
///    after a blank line) goes on with the next steps; the heading is not
///    part of any step. After a blank line, a heading that names another
///    plan or the steps (`Plan B:`, `Option 2:`, `Steps:`, `Revised plan:`)
///    ends the list: what follows it repeats or works through the plan, and
///    is dropped as trailing text.
/// 5. **Marker styles**: the first step's style (`Step 1:` or `#1`
///    versus a bare `1.`, and a markdown heading versus a plain line) is the
///    list's; markers of another style belong to the step above, so bare
///    numbered lines under `### Step 1: ...` headings are that step's
///    sub-list.
/// 6. **Nesting**: a marker indented more than one column deeper than the
///    list's first marker belongs to the step above (a sub-list), unless it
///    carries the next step number and no sub-list was opened in that step
///    (`1. a\n   2. b` is two steps, as in LangChain). Sub-numbered lines
///    (`1.1 ...`) and any other line belong to the step above too:
///    continuation lines stay inside their step, joined with `\n`, each
///    trimmed, blank lines dropped.
/// 7. **Bullets**: when no line carries a numbered marker at or above the
///    level of the shallowest bullet, the bullets (`-`, `*`, `+`, `•`, `–`,
///    task boxes `- [ ]`) at the top level are the steps.
/// 8. **Preamble**: everything before the first step is dropped (LangChain
///    does the same). When a header line such as `Plan:`, `**Plan:**`,
///    `## Plan` or `Here are the steps:` is followed by a step marker, the
///    search for the list starts after the first such header, so a numbered
///    list in a preamble is not mistaken for the plan.
/// 9. **Trailing chatter**: after the last step, a blank line followed by a
///    line that is not indented deeper than the list ("This plan ...") ends
///    the plan, and so do, even without a blank line, a horizontal rule and
///    a line that opens like closing chatter ("Let me know", "I hope", "Feel
///    free", "By following these steps", "If you have any", ...); that text
///    is dropped.
///    Other lines right after the last step continue it, as in markdown.
///    When the last step has no text on its marker line, or is a heading
///    (`### Step 3: Answer`, a line in bold) in a list whose steps have
///    bodies, its first paragraph is kept even after a blank line. Unindented text between two steps stays in the
///    step before it.
/// 10. **One-line plans**: when no line starts with a step marker, a line
///     that holds an inline run `1. a 2. b` (each number after whitespace or
///     a colon, numbered 1, 2, ... in order, at least two items) gives those
///     items, so `Plan: 1. a 2. b` is two steps. A plan that is a single line
///     starting `1.` is split the same way when the run reaches at least
///     `3.` (`1. a 2. b 3. c`); `1. costs 2. Then` stays one step. With the
///     `Step` word two items are enough (`Step 1: a. Step 2: b.`). A list
///     that begins inline and goes on at the start of lines (`Plan: 1. a` /
///     `2. b`) keeps its inline items.
/// 11. **Tables**: when nothing above gives a step, a markdown table whose
///     first column numbers its rows 1, 2, ... gives one step per row: the
///     other cells that are not empty, `-` or `N/A`, joined with ` — `.
/// 12. **Empty steps** (a marker with no text) are dropped; text with no
///     step at all is [`PlanParseError::NoSteps`], carrying the text. It is
///     then read as a JSON plan by [`crate::StructuredPlanParser`] before
///     giving up, since models asked for a list sometimes answer in JSON.
///
/// # Example
/// ```
/// use pae_core::PlanOutputParser;
/// use pae_planner::PlanningOutputParser;
///
/// let parser = PlanningOutputParser::new();
/// let plan = parser.parse("Sure!\n**1.** Look up the price\n2024. was a good year\n2) Answer\n<END_OF_PLAN>")?;
/// assert_eq!(plan.steps.len(), 2);
/// assert_eq!(plan.steps[0].value, "Look up the price\n2024. was a good year");
/// assert_eq!(plan.steps[1].value, "Answer");
/// # Ok::<(), pae_core::PlanParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanningOutputParser {
    end_marker: String,
    infer_dependencies: bool,
}

impl Default for PlanningOutputParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanningOutputParser {
    /// A parser that cuts at [`END_OF_PLAN`].
    pub fn new() -> Self {
        Self {
            end_marker: END_OF_PLAN.to_owned(),
            infer_dependencies: true,
        }
    }

    /// Whether steps that refer to earlier results (`#E1`, `${id}`, or `$1`
    /// and "step 1" naming an earlier step) get those steps as dependencies
    /// (on by default; see [`Plan::infer_dependencies`]). Plans that refer to
    /// nothing keep no dependencies and run one step after another.
    #[must_use]
    pub fn with_dependency_inference(mut self, infer: bool) -> Self {
        self.infer_dependencies = infer;
        self
    }

    /// Uses another end marker; an empty marker cuts nothing.
    #[must_use]
    pub fn with_end_marker(mut self, marker: impl Into<String>) -> Self {
        self.end_marker = marker.into();
        self
    }

    /// The end marker.
    pub fn end_marker(&self) -> &str {
        &self.end_marker
    }

    /// The step texts found in `text`, in order; empty when there is none.
    pub fn parse_steps(&self, text: &str) -> Vec<String> {
        let normalized = normalize(&strip_noise(text));
        let body = cut_at_end_marker(&normalized, &self.end_marker);
        // Code fences around a list (```, ```text) are not part of any step.
        let lines: Vec<Line<'_>> = body
            .split('\n')
            .filter(|line| !is_fence(line))
            .map(Line::classify)
            .collect();
        let lines = &lines[plan_start(&lines)..];
        let numbered_indent = lines
            .iter()
            .filter(|l| l.number().is_some())
            .map(|l| l.indent)
            .min();
        let bullet_indent = lines
            .iter()
            .filter(|l| l.is_bullet())
            .map(|l| l.indent)
            .min();
        let mut steps = match (numbered_indent, bullet_indent) {
            (Some(n), b) if b.is_none_or(|b| n <= b) => numbered_steps(lines, n),
            (_, Some(b)) => bullet_steps(lines, b),
            _ => inline_steps(lines),
        };
        steps.retain(|s| !s.is_empty());
        if steps.is_empty() {
            steps = table_steps(lines);
        }
        steps
    }
}

impl PlanOutputParser for PlanningOutputParser {
    fn parse(&self, text: &str) -> Result<Plan, PlanParseError> {
        let steps = self.parse_steps(text);
        let mut plan: Plan = if steps.is_empty() {
            // Models asked for a list sometimes answer with a JSON plan.
            crate::structured::StructuredPlanParser::new()
                .parse(text)
                .map_err(|_| PlanParseError::NoSteps { text: text.into() })?
        } else {
            steps.into_iter().map(Step::new).collect()
        };
        if self.infer_dependencies {
            plan.infer_dependencies();
        }
        Ok(plan)
    }
}

/// Whether a line is only a code fence, with an optional language tag.
fn is_fence(line: &str) -> bool {
    let trimmed = trim_space(line);
    trimmed.strip_prefix("```").is_some_and(|tag| {
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Zero-width and direction marks: invisible, and never part of a marker.
fn is_format_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{061c}'
            | '\u{180e}'
    )
}

/// Whitespace or an invisible mark.
fn is_space(c: char) -> bool {
    c.is_whitespace() || is_format_mark(c)
}

/// `s` without whitespace and invisible marks at either end.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Newlines as `\n` only, without a leading byte-order mark.
fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
    out
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
    let mut end = text.find(marker);
    let mut earliest = |pos: usize| end = Some(end.map_or(pos, |e: usize| e.min(pos)));
    let word = marker.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    // ASCII lowercasing keeps every byte offset, so positions carry over.
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
    if parts.len() >= 2
        && let Some(pos) = phrase_marker(&lower, &parts)
    {
        earliest(pos);
    }
    let body = end.map_or(text, |e| &text[..e]);
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

/// Where the end marker's phrase (`parts` separated by spaces, `_` or `-`)
/// first appears bracketed (`<end of plan>`) or alone on its line; `lower`
/// is the ASCII-lowercased text.
fn phrase_marker(lower: &str, parts: &[String]) -> Option<usize> {
    let phrase_len = |s: &str| -> Option<usize> {
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
    let mut offset = 0;
    for line in lower.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let core = line.trim_matches(|c: char| !c.is_alphanumeric());
        if phrase_len(core) == Some(core.len()) {
            return Some(line_start);
        }
        for (i, c) in line.char_indices() {
            if c != '<' && c != '[' {
                continue;
            }
            let after = &line[i + 1..];
            let after = after.strip_prefix('/').unwrap_or(after);
            if phrase_len(after).is_some_and(|n| after[n..].starts_with(['>', ']'])) {
                return Some(line_start + i);
            }
        }
    }
    None
}

/// The value of a decimal digit in one of the scripts models write numbers
/// in: ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, fullwidth.
fn digit_value(c: char) -> Option<u64> {
    const ZEROS: [u32; 5] = [0x30, 0x660, 0x6F0, 0x966, 0xFF10];
    let code = u32::from(c);
    ZEROS
        .iter()
        .find(|&&zero| (zero..zero + 10).contains(&code))
        .map(|&zero| u64::from(code - zero))
}

/// The text after a step word at the start of `s` (`Step 1`, `Paso #2`,
/// `步骤1`), from the number on; `None` unless a number follows the word.
fn strip_step_word(s: &str) -> Option<&str> {
    STEP_WORDS.iter().find_map(|word| {
        let head = s.get(..word.len())?;
        let same = if word.is_ascii() {
            head.eq_ignore_ascii_case(word)
        } else {
            head.to_lowercase() == *word
        };
        if !same {
            return None;
        }
        let rest = s[word.len()..].trim_start_matches(is_space);
        let rest = rest.strip_prefix('#').unwrap_or(rest);
        rest.starts_with(|c| digit_value(c).is_some() || cjk_digit(c).is_some())
            .then_some(rest)
    })
}

/// The value of a Chinese numeral character from 1 to 9.
fn cjk_digit(c: char) -> Option<u64> {
    "一二三四五六七八九"
        .chars()
        .position(|d| d == c)
        .and_then(|p| u64::try_from(p + 1).ok())
        .or_else(|| (c == '两').then_some(2))
}

/// Reads a Chinese number from 1 to 99 (`三`, `十二`, `二十一`) at the start
/// of `s`: its value and the rest of `s`.
fn cjk_number(s: &str) -> Option<(u64, &str)> {
    let mut chars = s.char_indices().peekable();
    let (_, first) = chars.next()?;
    let mut end = first.len_utf8();
    let mut value = if first == '十' { 1 } else { cjk_digit(first)? };
    if first == '十' || chars.next_if(|&(_, c)| c == '十').is_some() {
        value *= 10;
        end = chars.peek().map_or(s.len(), |&(i, _)| i);
        if let Some((i, c)) = chars.next()
            && let Some(d) = cjk_digit(c)
        {
            value += d;
            end = i + c.len_utf8();
        }
    }
    Some((value, &s[end..]))
}

/// A circled or negative-circled number (`①` to `⑳`, `❶` to `❿`).
fn circled_number(c: char) -> Option<u64> {
    let code = u32::from(c);
    let (first, last) = match code {
        0x2460..=0x2473 => (0x2460, 0x2473),
        0x2776..=0x277f => (0x2776, 0x277f),
        0x2780..=0x2789 => (0x2780, 0x2789),
        _ => return None,
    };
    (first..=last)
        .contains(&code)
        .then(|| u64::from(code - first + 1))
}

/// Reads a step number at the start of `s`: its value and the rest of `s`.
fn leading_number(s: &str) -> Option<(u64, &str)> {
    let mut value: u64 = 0;
    let mut digits = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let Some(d) = digit_value(c) else { break };
        digits += 1;
        if digits > MAX_NUMBER_DIGITS {
            return None;
        }
        value = value * 10 + d;
        end = i + c.len_utf8();
    }
    (digits > 0).then(|| (value, &s[end..]))
}

/// Delimiters after a bare step number: `1.`, `1)`, `1:`, fullwidth forms.
const NUMBER_DELIMITERS: [char; 7] = ['.', ')', ':', '．', '）', '：', '、'];
/// Delimiters after `Step 1` or `#1`.
const STEP_DELIMITERS: [char; 10] = [':', '.', ')', '-', '–', '—', '：', '．', '，', '、'];
/// Words that label a step number (`Step 1:`, `Paso 1:`, `Étape 1 :`), in
/// lowercase: the languages models answer in when the objective is in them.
const STEP_WORDS: [&str; 15] = [
    "step",
    "paso",
    "passo",
    "étape",
    "etape",
    "schritt",
    "stap",
    "krok",
    "шаг",
    "adım",
    "adim",
    "ステップ",
    "步骤",
    "الخطوة",
    "चरण",
];
/// Dashes that delimit a bare number when whitespace follows (`1 - a`).
const DASHES: [char; 3] = ['-', '–', '—'];
/// Bullet characters of markdown and of models imitating it.
const BULLETS: [char; 10] = ['-', '*', '+', '•', '–', '—', '‣', '◦', '▪', '●'];

/// How a numbered marker is written; a list keeps the style of its first
/// step, so markers of another style inside it are sub-items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Style {
    /// `Step 1:` or `#1`, not a bare `1.`.
    labelled: bool,
    /// On a markdown heading line (`### 1. ...`).
    heading: bool,
}

impl Style {
    /// Whether a marker of style `other` can be a step of a list of this
    /// style. Sub-lists are bare numbers, so headings only tell bare lists
    /// apart (`## 1. Research` over `1. Find flights`).
    fn same_list(self, other: Self) -> bool {
        self.labelled == other.labelled && (self.labelled || self.heading == other.heading)
    }
}

#[derive(Debug)]
struct Marker {
    /// `None` for a bullet.
    number: Option<u64>,
    title: String,
    style: Style,
    /// A markdown heading or a line entirely in bold: the step's text may
    /// follow as a paragraph.
    heading_like: bool,
}

#[derive(Debug)]
enum Kind {
    Blank,
    Text,
    Marker(Marker),
}

#[derive(Debug)]
struct Line<'a> {
    /// Leading whitespace in columns (a tab reaches the next multiple of 4;
    /// invisible marks take no column).
    indent: usize,
    /// The line without its indentation and trailing whitespace.
    content: &'a str,
    kind: Kind,
}

impl<'a> Line<'a> {
    fn classify(raw: &'a str) -> Self {
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

    fn marker(&self) -> Option<&Marker> {
        match &self.kind {
            Kind::Marker(marker) => Some(marker),
            _ => None,
        }
    }

    fn number(&self) -> Option<u64> {
        self.marker().and_then(|m| m.number)
    }

    fn style(&self) -> Option<Style> {
        self.marker().map(|m| m.style)
    }

    fn is_bullet(&self) -> bool {
        self.marker().is_some_and(|m| m.number.is_none())
    }

    fn is_blank(&self) -> bool {
        matches!(self.kind, Kind::Blank)
    }

    fn title(&self) -> &str {
        self.marker().map_or(self.content, |m| m.title.as_str())
    }

    /// Whether the step's text may come as a paragraph after a blank line.
    fn text_may_follow(&self) -> bool {
        self.marker()
            .is_some_and(|m| m.heading_like || m.title.is_empty())
    }
}

/// The number (`None` for a bullet) and text of a step marker at the start
/// of `s`, if `s` starts with one.
pub(crate) fn step_marker(s: &str) -> Option<(Option<u64>, String)> {
    parse_marker(trim_space(s)).map(|m| (m.number, m.title))
}

/// Reads a step marker at the start of a line's content.
fn parse_marker(content: &str) -> Option<Marker> {
    let mut rest = content;
    let mut heading = false;
    let mut hash_label = false;
    if rest.starts_with('#') {
        let after = rest.trim_start_matches('#');
        if after.starts_with(is_space) {
            heading = true;
            rest = after.trim_start_matches(is_space);
        } else if rest.len() - after.len() == 1 && after.starts_with(|c| digit_value(c).is_some()) {
            // "#1: Search", "#2 - Answer".
            hash_label = true;
            rest = after;
        } else {
            return None;
        }
    }
    let bullet = if hash_label { None } else { strip_bullet(rest) };
    if let Some(after) = bullet {
        rest = after;
    }
    let bold_line = ["**", "__"].iter().any(|token| {
        rest.starts_with(token)
            && rest.len() > 2 * token.len()
            && rest.trim_end_matches([':', '：']).ends_with(token)
    });
    if let Some((number, title, labelled)) = parse_numbered(rest, hash_label) {
        return Some(Marker {
            number: Some(number),
            title,
            style: Style { labelled, heading },
            heading_like: heading || bold_line,
        });
    }
    if hash_label {
        return None;
    }
    bullet.map(|title| Marker {
        number: None,
        title: trim_space(title).to_owned(),
        style: Style {
            labelled: false,
            heading,
        },
        heading_like: heading || bold_line,
    })
}

/// The text after a bullet and its whitespace, or `None` when `s` does not
/// start with a bullet item.
fn strip_bullet(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let first = chars.next()?;
    if !BULLETS.contains(&first) {
        return None;
    }
    let after = chars.as_str();
    if !after.starts_with(is_space) {
        // "**bold**", "-5 degrees", "---"
        return None;
    }
    let after = after.trim_start_matches(is_space);
    let after = ["[ ]", "[x]", "[X]"]
        .iter()
        .find_map(|b| after.strip_prefix(b))
        .map_or(after, |a| a.trim_start_matches(is_space));
    // A horizontal rule ("* * *") or a lone bullet is not a step.
    if after.chars().all(|c| is_space(c) || BULLETS.contains(&c)) {
        return None;
    }
    Some(after)
}

/// Reads `1.`, `1)`, `(1)`, `Step 1:`, `**1.**` and their variants (`s` is
/// after `#` when `hash_label`): the number, the title, and whether the
/// marker is labelled (`Step` or `#`).
fn parse_numbered(s: &str, hash_label: bool) -> Option<(u64, String, bool)> {
    let mut rest = s;
    let bold = ["**", "__"]
        .into_iter()
        .find(|token| !hash_label && rest.starts_with(token));
    if let Some(token) = bold {
        rest = &rest[token.len()..];
    }
    let mut labelled = hash_label;
    if let Some(after) = strip_step_word(rest) {
        rest = after;
        labelled = true;
    }
    // "第1步：" and "第一步，" (Chinese "step N").
    let ordinal = !labelled && rest.starts_with('第');
    if ordinal {
        rest = &rest['第'.len_utf8()..];
        labelled = true;
    }
    let paren = !labelled && rest.starts_with('(');
    if paren {
        rest = &rest[1..];
    }
    let mut circled = false;
    let (number, after) = if let Some(n) = rest.chars().next().and_then(circled_number) {
        circled = true;
        (n, &rest[rest.chars().next().map_or(0, char::len_utf8)..])
    } else if let Some(read) = leading_number(rest) {
        read
    } else {
        // Chinese numerals: after a step word, or before "、" ("一、搜索").
        let (n, after) = cjk_number(rest)?;
        if !labelled && !after.starts_with('、') {
            return None;
        }
        (n, after)
    };
    rest = after;
    if ordinal {
        rest = rest.strip_prefix('步')?;
    }
    if labelled
        && let Some(total) = rest.strip_prefix('/')
        && total.starts_with(|c: char| c.is_ascii_digit())
    {
        // "Step 1/3: Search".
        rest = total.trim_start_matches(|c: char| c.is_ascii_digit());
    }

    let delimiters: &[char] = if labelled {
        &STEP_DELIMITERS
    } else {
        &NUMBER_DELIMITERS
    };
    // "Step 1 - x" and "Step 1 : x" put spaces before the delimiter; "1 - x"
    // and "1- x" delimit a bare number with a dash.
    fn strip_delimiter<'s>(s: &'s str, labelled: bool, delimiters: &[char]) -> Option<&'s str> {
        if labelled {
            return s.trim_start_matches(is_space).strip_prefix(delimiters);
        }
        if let Some(after) = s.strip_prefix(delimiters) {
            // "1.-" and "1.)" (Spanish and other styles).
            return Some(
                after
                    .strip_prefix(['-', ')'])
                    .filter(|a| a.starts_with(is_space))
                    .unwrap_or(after),
            );
        }
        s.trim_start_matches(is_space)
            .strip_prefix(DASHES)
            .filter(|a| a.starts_with(is_space))
    }
    let mut delimited = circled;
    if circled {
        // "① Search"; a delimiter after it ("①. Search") is dropped too.
        if let Some(after) = strip_delimiter(rest, true, delimiters) {
            rest = after;
        }
    } else if paren {
        rest = rest.strip_prefix([')', '）'])?;
        delimited = true;
    } else if let Some(after) = rest
        .strip_prefix('\u{fe0f}')
        .unwrap_or(rest)
        .strip_prefix('\u{20e3}')
    {
        // A keycap emoji: "1️⃣ Search".
        rest = after;
        delimited = true;
    } else if let Some(after) = strip_delimiter(rest, labelled, delimiters) {
        rest = after;
        delimited = true;
    }
    let mut bold_open = bold;
    if let Some(token) = bold
        && let Some(after) = rest.strip_prefix(token)
    {
        rest = after;
        bold_open = None;
        if !delimited && let Some(after) = strip_delimiter(rest, labelled, delimiters) {
            rest = after;
            delimited = true;
        }
    }
    if !delimited && !labelled {
        return None;
    }
    match rest.chars().next() {
        None => {}
        Some(c) if is_space(c) => {}
        // "1.Search" (no space), but not "1.5" or "1.1".
        Some(c) if delimited && c.is_alphabetic() => {}
        Some(_) => return None,
    }
    let mut title = trim_space(rest).to_owned();
    if let Some(token) = bold_open {
        // "**1. Search the web**" or "**Step 1: Search** the web".
        if let Some(pos) = title.find(token) {
            title.replace_range(pos..pos + token.len(), "");
            title = trim_space(&title).to_owned();
        }
    }
    Some((number, title, labelled))
}

/// Whether a line is a header announcing the plan: `Plan:`, `**Plan:**`,
/// `## The plan`, `Here are the steps:`.
fn is_plan_header(content: &str) -> bool {
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
fn plan_start(lines: &[Line<'_>]) -> usize {
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
fn is_another_plan(line: &Line<'_>) -> bool {
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
fn is_section_heading(line: &Line<'_>, after_blank: bool) -> bool {
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
fn is_rule(content: &str) -> bool {
    let marks: Vec<char> = content.chars().filter(|c| !is_space(*c)).collect();
    marks.len() >= 3
        && marks
            .iter()
            .all(|&c| c == marks[0] && matches!(c, '-' | '*' | '_' | '=' | '—'))
}

/// Whether a line opens like closing chatter.
fn is_chatter(content: &str) -> bool {
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

fn numbered_steps(lines: &[Line<'_>], min_indent: usize) -> Vec<String> {
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
    // "1. a 2. b 3. c" on one line is a one-line plan; two bare items are
    // not enough to tell it from a step that mentions "2. " in passing.
    if let [item] = items.as_slice()
        && first_number <= 1
        && item.body.iter().all(|l| l.is_blank())
    {
        let split = inline_split(item.head.title(), 2);
        let labelled = style.labelled && split.labelled;
        if split.items.len() >= 2 || (labelled && !split.items.is_empty()) {
            return std::iter::once(split.head)
                .chain(split.items)
                .map(str::to_owned)
                .collect();
        }
    }
    let mut steps = Vec::new();
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

fn bullet_steps(lines: &[Line<'_>], min_indent: usize) -> Vec<String> {
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

/// The first line holding an inline run `1. a 2. b` of at least two items.
fn inline_steps(lines: &[Line<'_>]) -> Vec<String> {
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
struct InlineSplit<'s> {
    /// The text before the first marker.
    head: &'s str,
    /// The text of each item.
    items: Vec<&'s str>,
    /// Whether every marker carries the `Step` word.
    labelled: bool,
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
fn inline_split(s: &str, first: u64) -> InlineSplit<'_> {
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
fn table_steps(lines: &[Line<'_>]) -> Vec<String> {
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
    fn fenced_lists_and_json_plans_parse() {
        let parser = PlanningOutputParser::new();
        let fenced = parser.parse("```text\n1. a\n2. b\n```\n").unwrap();
        assert_eq!(fenced, Plan::new(["a", "b"]));
        let json = parser
            .parse("{\"steps\": [{\"id\": \"1\", \"description\": \"a\"}, {\"id\": \"2\", \"description\": \"b\", \"depends_on\": [\"1\"]}]}")
            .unwrap();
        assert_eq!(json.len(), 2);
        assert_eq!(json.steps[1].depends_on, ["1"]);
        assert!(matches!(
            parser.parse("{\"nothing\": 1}"),
            Err(PlanParseError::NoSteps { .. })
        ));
    }

    #[test]
    fn references_to_earlier_results_become_dependencies() {
        let text = "Plan:\n1. Compute 17*23\n2. Count the days in a leap year\n3. Add #E1 and #E2\n4. Answer the question\n";
        let plan = PlanningOutputParser::new().parse(text).unwrap();
        let deps: Vec<&[String]> = plan.steps.iter().map(|s| s.depends_on.as_slice()).collect();
        assert_eq!(deps[0], [] as [String; 0]);
        assert_eq!(deps[2], ["1", "2"]);
        assert_eq!(
            deps[3],
            ["1", "2", "3"],
            "the answering step joins everything"
        );
        let plain = PlanningOutputParser::new()
            .with_dependency_inference(false)
            .parse(text)
            .unwrap();
        assert!(!plain.has_dependencies());
        let no_refs = PlanningOutputParser::new()
            .parse("1. a\n2. b costs $5\n")
            .unwrap();
        assert!(!no_refs.has_dependencies());
    }

    #[test]
    fn markers_and_non_markers() {
        let marker = |s: &str| parse_marker(s).map(|m| (m.number, m.title));
        assert_eq!(marker("1. a"), Some((Some(1), "a".into())));
        assert_eq!(marker("12) a"), Some((Some(12), "a".into())));
        assert_eq!(marker("(3) a"), Some((Some(3), "a".into())));
        assert_eq!(marker("Step 4: a"), Some((Some(4), "a".into())));
        assert_eq!(marker("STEP 4 - a"), Some((Some(4), "a".into())));
        assert_eq!(marker("**5.** a"), Some((Some(5), "a".into())));
        assert_eq!(marker("**5. a**"), Some((Some(5), "a".into())));
        assert_eq!(marker("**Step 6:** a"), Some((Some(6), "a".into())));
        assert_eq!(marker("**Step 6**: a"), Some((Some(6), "a".into())));
        assert_eq!(marker("### Step 7: a"), Some((Some(7), "a".into())));
        assert_eq!(marker("- 8. a"), Some((Some(8), "a".into())));
        assert_eq!(marker("- a"), Some((None, "a".into())));
        assert_eq!(marker("- [ ] a"), Some((None, "a".into())));
        assert_eq!(marker("1.Search"), Some((Some(1), "Search".into())));
        assert_eq!(marker("١. أ"), Some((Some(1), "أ".into())));
        assert_eq!(marker("１．検索"), Some((Some(1), "検索".into())));
        assert_eq!(marker("1."), Some((Some(1), String::new())));
        assert_eq!(marker("1 - a"), Some((Some(1), "a".into())));
        assert_eq!(marker("2.- a"), Some((Some(2), "a".into())));
        assert_eq!(marker("#3: a"), Some((Some(3), "a".into())));
        assert_eq!(marker("4\u{fe0f}\u{20e3} a"), Some((Some(4), "a".into())));
        assert_eq!(marker("⑤ a"), Some((Some(5), "a".into())));
        assert_eq!(marker("Step 6/9: a"), Some((Some(6), "a".into())));
        assert_eq!(marker("Paso #7: a"), Some((Some(7), "a".into())));
        assert_eq!(marker("第十二步：a"), Some((Some(12), "a".into())));
        assert_eq!(marker("二十一、a"), Some((Some(21), "a".into())));
        assert_eq!(
            marker("\u{200f}8. a"),
            None,
            "marks are trimmed by the caller"
        );
        for text in [
            "1.1 sub",
            "3.14 is pi",
            "2024 was",
            "**bold** text",
            "-5 degrees",
            "---",
            "* * *",
            "#tag",
            "Stepping",
            "1234567890. x",
            "10:30 meeting",
            "1 -5 degrees",
            "#hashtag",
            "#2024was",
            "一个",
            "第一",
            "Steps 2",
        ] {
            assert_eq!(marker(text), None, "{text:?}");
        }
    }

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
