//! [`PlanningOutputParser`]: reads the steps of a plan out of a model's free
//! text (a numbered list, a "Step N:" list or a bulleted list).

use pae_core::{Plan, PlanOutputParser, PlanParseError, Step};

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
/// 1. **Line ends**: CRLF, CR and the Unicode line separators count as
///    newlines; a leading byte-order mark is ignored.
/// 2. **End marker**: the end marker (`<END_OF_PLAN>` by default) and
///    everything after it are removed, for providers that ignore stop
///    sequences. Its bare word in any case (`END_OF_PLAN`, `</END_OF_PLAN>`,
///    `[end_of_plan]`) counts too.
/// 3. **Step markers** at the start of a line (after indentation, a markdown
///    heading `#` or a bullet): `1.`, `1)`, `(1)`, `1:`, `1．`, `Step 1:`,
///    `Step 1 -`, `STEP 1.`, bold `**1.**`, `**1. Title**`, `**Step 1:**`;
///    the number may be followed by a space, a tab, any other whitespace, a
///    letter or the end of the line (the text then comes on the next lines).
///    Digits may be ASCII, fullwidth, Arabic-Indic or Devanagari. A number
///    followed by a digit (`1.1`, `3.14`) is not a step marker.
/// 4. **Numbering decides**: the list starts at its first `1.` (or `0.`), or
///    at its first marker when no step is numbered 1 (a revised plan that
///    goes on at `3.`). After that, only the expected next number starts a
///    new step, so `2024. things happened` at the start of a line inside step
///    1 stays in step 1. A list that numbers every item `1.` (markdown style)
///    is accepted. Numbers are never skipped: `1. a\n3. c` is one step.
/// 5. **Nesting**: a marker indented more than one column deeper than the
///    list's first marker belongs to the step above (a sub-list), and so do
///    sub-numbered lines (`1.1 ...`) and any other line: continuation lines
///    stay inside their step, joined with `\n`, each trimmed, blank lines
///    dropped.
/// 6. **Bullets**: when no line carries a numbered marker at or above the
///    level of the shallowest bullet, the bullets (`-`, `*`, `+`, `•`, `–`,
///    task boxes `- [ ]`) at the top level are the steps.
/// 7. **Preamble**: everything before the first step is dropped (LangChain
///    does the same). When a header line such as `Plan:`, `**Plan:**`,
///    `## Plan` or `Here are the steps:` is followed by a step marker, the
///    search for the list starts after the first such header, so a numbered
///    list in a preamble is not mistaken for the plan.
/// 8. **Trailing chatter**: after the last step, a blank line followed by a
///    line that is not indented deeper than the list ("Let me know if ...")
///    ends the plan; that text is dropped. Without the blank line such a line
///    is a continuation of the last step, as in markdown. Unindented text
///    between two steps stays in the step before it.
/// 9. **One-line plans**: when no line starts with a step marker, a line that
///    holds an inline run `1. a 2. b` (each number after whitespace or a
///    colon, numbered 1, 2, ... in order, at least two items) gives those
///    items, so `Plan: 1. a 2. b` is two steps. A plan that is a single line
///    starting `1.` is split the same way when the run reaches at least
///    `3.` (`1. a 2. b 3. c`); `1. costs 2. Then` stays one step. A list
///    that begins inline and goes on at the start of lines
///    (`Plan: 1. a` / `2. b`) keeps its inline items.
/// 10. **Empty steps** (a marker with no text) are dropped; text with no
///     step at all is [`PlanParseError::NoSteps`], carrying the text.
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
        let normalized = normalize(text);
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
        let steps = match (numbered_indent, bullet_indent) {
            (Some(n), b) if b.is_none_or(|b| n <= b) => numbered_steps(lines, n),
            (_, Some(b)) => bullet_steps(lines, b),
            _ => inline_steps(lines),
        };
        steps.into_iter().filter(|s| !s.is_empty()).collect()
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
    let trimmed = line.trim();
    trimmed.strip_prefix("```").is_some_and(|tag| {
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
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
/// `</END_OF_PLAN>`, `[end_of_plan]`).
pub(crate) fn cut_at_end_marker<'a>(text: &'a str, marker: &str) -> &'a str {
    if marker.is_empty() {
        return text;
    }
    let mut end = text.find(marker);
    let word = marker.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    if !word.is_empty() && word.len() != marker.len() {
        // ASCII lowercasing keeps every byte offset, so positions carry over.
        let lower = text.to_ascii_lowercase();
        if let Some(pos) = lower.find(&word.to_ascii_lowercase()) {
            let start = text[..pos]
                .trim_end_matches(['<', '/', '[', '(', '{', '*', '`'])
                .len();
            end = Some(end.map_or(start, |e| e.min(start)));
        }
    }
    end.map_or(text, |e| &text[..e])
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
/// Delimiters after `Step 1`.
const STEP_DELIMITERS: [char; 8] = [':', '.', ')', '-', '–', '—', '：', '．'];
/// Bullet characters of markdown and of models imitating it.
const BULLETS: [char; 10] = ['-', '*', '+', '•', '–', '—', '‣', '◦', '▪', '●'];

#[derive(Debug)]
enum Kind {
    Blank,
    Text,
    /// A step marker; `number` is `None` for a bullet.
    Marker {
        number: Option<u64>,
        title: String,
    },
}

#[derive(Debug)]
struct Line<'a> {
    /// Leading whitespace in columns (a tab reaches the next multiple of 4).
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
                c if c.is_whitespace() => indent += 1,
                _ => break,
            }
        }
        let content = raw.trim();
        let kind = if content.is_empty() {
            Kind::Blank
        } else {
            match parse_marker(content) {
                Some((number, title)) => Kind::Marker { number, title },
                None => Kind::Text,
            }
        };
        Self {
            indent,
            content,
            kind,
        }
    }

    fn number(&self) -> Option<u64> {
        match self.kind {
            Kind::Marker { number, .. } => number,
            _ => None,
        }
    }

    fn is_bullet(&self) -> bool {
        matches!(self.kind, Kind::Marker { number: None, .. })
    }

    fn is_blank(&self) -> bool {
        matches!(self.kind, Kind::Blank)
    }

    fn title(&self) -> &str {
        match &self.kind {
            Kind::Marker { title, .. } => title,
            _ => self.content,
        }
    }
}

/// Reads a step marker at the start of a line's content: the step number
/// (`None` for a bullet) and the step's title.
fn parse_marker(content: &str) -> Option<(Option<u64>, String)> {
    let mut rest = content;
    if rest.starts_with('#') {
        let after = rest.trim_start_matches('#');
        if !after.starts_with(char::is_whitespace) {
            return None;
        }
        rest = after.trim_start();
    }
    let bullet = strip_bullet(rest);
    if let Some(after) = bullet {
        rest = after;
    }
    if let Some((number, title)) = parse_numbered(rest) {
        return Some((Some(number), title));
    }
    bullet.map(|title| (None, title.trim().to_owned()))
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
    if !after.starts_with(char::is_whitespace) {
        // "**bold**", "-5 degrees", "---"
        return None;
    }
    let after = after.trim_start();
    let after = ["[ ]", "[x]", "[X]"]
        .iter()
        .find_map(|b| after.strip_prefix(b))
        .map_or(after, str::trim_start);
    // A horizontal rule ("* * *") or a lone bullet is not a step.
    if after
        .chars()
        .all(|c| c.is_whitespace() || BULLETS.contains(&c))
    {
        return None;
    }
    Some(after)
}

/// Reads `1.`, `1)`, `(1)`, `Step 1:`, `**1.**` and their variants.
fn parse_numbered(s: &str) -> Option<(u64, String)> {
    let mut rest = s;
    let bold = ["**", "__"]
        .into_iter()
        .find(|token| rest.starts_with(token));
    if let Some(token) = bold {
        rest = &rest[token.len()..];
    }
    let step_word = rest
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("step"));
    if step_word {
        rest = rest[4..].trim_start();
    }
    let paren = !step_word && rest.starts_with('(');
    if paren {
        rest = &rest[1..];
    }
    let (number, after) = leading_number(rest)?;
    rest = after;

    let delimiters: &[char] = if step_word {
        &STEP_DELIMITERS
    } else {
        &NUMBER_DELIMITERS
    };
    // "Step 1 - x" and "Step 1 : x" put spaces before the delimiter.
    fn strip_delimiter<'s>(s: &'s str, step_word: bool, delimiters: &[char]) -> Option<&'s str> {
        let s = if step_word { s.trim_start() } else { s };
        s.strip_prefix(delimiters)
    }
    let mut delimited = false;
    if paren {
        rest = rest.strip_prefix([')', '）'])?;
        delimited = true;
    } else if let Some(after) = strip_delimiter(rest, step_word, delimiters) {
        rest = after;
        delimited = true;
    }
    let mut bold_open = bold;
    if let Some(token) = bold
        && let Some(after) = rest.strip_prefix(token)
    {
        rest = after;
        bold_open = None;
        if !delimited && let Some(after) = strip_delimiter(rest, step_word, delimiters) {
            rest = after;
            delimited = true;
        }
    }
    if !delimited && !step_word {
        return None;
    }
    match rest.chars().next() {
        None => {}
        Some(c) if c.is_whitespace() => {}
        // "1.Search" (no space), but not "1.5" or "1.1".
        Some(c) if delimited && c.is_alphabetic() => {}
        Some(_) => return None,
    }
    let mut title = rest.trim().to_owned();
    if let Some(token) = bold_open {
        // "**1. Search the web**" or "**Step 1: Search** the web".
        if let Some(pos) = title.find(token) {
            title.replace_range(pos..pos + token.len(), "");
            title = title.trim().to_owned();
        }
    }
    Some((number, title))
}

/// Whether a line is a header announcing the plan: `Plan:`, `**Plan:**`,
/// `## The plan`, `Here are the steps:`.
fn is_plan_header(content: &str) -> bool {
    let core = content
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '#' | '*' | '_' | ':' | '`'));
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
    let Some(last_marker) = lines
        .iter()
        .rposition(|l| matches!(l.kind, Kind::Marker { .. }))
    else {
        return 0;
    };
    lines[..last_marker]
        .iter()
        .position(|line| matches!(line.kind, Kind::Text) && is_plan_header(line.content))
        .map_or(0, |i| i + 1)
}

/// A step being collected: its title and the lines that continue it.
struct Item<'l, 'a> {
    title: &'l str,
    body: Vec<&'l Line<'a>>,
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
    let first_number = first.number().unwrap_or(1);
    let mut expected = first_number + 1;
    let mut all_ones = first_number == 1;
    let mut items = vec![Item {
        title: first.title(),
        body: Vec::new(),
    }];
    for line in &lines[start + 1..] {
        if let Some(n) = line.number()
            && line.indent <= base + 1
            && (n == expected || (all_ones && n == 1))
        {
            all_ones &= n == 1;
            expected = n + 1;
            items.push(Item {
                title: line.title(),
                body: Vec::new(),
            });
            continue;
        }
        if let Some(item) = items.last_mut() {
            item.body.push(line);
        }
    }
    // "1. a 2. b 3. c" on one line is a one-line plan; two items are not
    // enough to tell it from a step that mentions "2. " in passing.
    if let [item] = items.as_slice()
        && first_number <= 1
        && item.body.iter().all(|l| l.is_blank())
    {
        let (head, rest) = inline_split(item.title, 2);
        if rest.len() >= 2 {
            return std::iter::once(head)
                .chain(rest)
                .map(str::to_owned)
                .collect();
        }
    }
    let mut steps = Vec::new();
    // "Plan: 1. a" followed by "2. b" on the next line: the list began inline.
    if first_number > 1
        && let Some(previous) = lines[..start].iter().rev().find(|l| !l.is_blank())
    {
        let (_, inline) = inline_split(previous.content, 1);
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
    let mut items = vec![Item {
        title: lines[start].title(),
        body: Vec::new(),
    }];
    for line in &lines[start + 1..] {
        if line.is_bullet() && line.indent <= base + 1 {
            items.push(Item {
                title: line.title(),
                body: Vec::new(),
            });
        } else if let Some(item) = items.last_mut() {
            item.body.push(line);
        }
    }
    finish(items, base)
}

/// Drops trailing chatter after the last step and joins each step's lines.
fn finish(mut items: Vec<Item<'_, '_>>, base: usize) -> Vec<String> {
    if let Some(last) = items.last_mut()
        && let Some(cut) = last
            .body
            .windows(2)
            .position(|w| w[0].is_blank() && !w[1].is_blank() && w[1].indent <= base)
    {
        last.body.truncate(cut);
    }
    items
        .into_iter()
        .map(|item| {
            let mut text = item.title.to_owned();
            for line in item.body.iter().filter(|l| !l.is_blank()) {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(line.content);
            }
            text.trim().to_owned()
        })
        .collect()
}

/// The first line holding an inline run `1. a 2. b` of at least two items.
fn inline_steps(lines: &[Line<'_>]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| matches!(l.kind, Kind::Text))
        .find_map(|l| {
            let (_, items) = inline_split(l.content, 1);
            (items.len() >= 2).then(|| items.into_iter().map(str::to_owned).collect())
        })
        .unwrap_or_default()
}

/// Splits `s` at inline markers numbered `first`, `first + 1`, ... (each
/// after whitespace, a colon or the start of `s`, followed by `.` or `)` and
/// whitespace). Returns the text before the first marker and the items.
fn inline_split(s: &str, first: u64) -> (&str, Vec<&str>) {
    // (where the marker starts, where its text starts)
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut expected = first;
    let mut boundary = true;
    for (i, c) in s.char_indices() {
        let at_boundary = boundary;
        boundary = c.is_whitespace() || c == ':';
        if !at_boundary || digit_value(c).is_none() {
            continue;
        }
        let Some((n, after)) = leading_number(&s[i..]) else {
            continue;
        };
        let Some(after) = after.strip_prefix(['.', ')']) else {
            continue;
        };
        if n != expected || !after.starts_with(char::is_whitespace) {
            continue;
        }
        cuts.push((i, s.len() - after.len()));
        expected += 1;
    }
    let Some(&(first_start, _)) = cuts.first() else {
        return (s.trim(), Vec::new());
    };
    let items = cuts
        .iter()
        .enumerate()
        .map(|(k, &(_, text_start))| {
            let end = cuts.get(k + 1).map_or(s.len(), |&(next, _)| next);
            s[text_start..end].trim()
        })
        .collect();
    (s[..first_start].trim(), items)
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
        let marker = |s: &str| parse_marker(s);
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
        ] {
            assert_eq!(marker(text), None, "{text:?}");
        }
    }

    #[test]
    fn inline_split_needs_sequential_numbers() {
        assert_eq!(
            inline_split("Plan: 1. a 2. b", 1),
            ("Plan:", vec!["a", "b"])
        );
        assert_eq!(inline_split("a 2. b 3. c", 2), ("a", vec!["b", "c"]));
        assert_eq!(
            inline_split("costs 2024. Then 3. x", 2),
            ("costs 2024. Then 3. x", vec![])
        );
        assert_eq!(inline_split("1.a 2.b", 1), ("1.a 2.b", vec![]));
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
