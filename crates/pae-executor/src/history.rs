//! How previous steps are shown to the executor's model: readable text, with
//! policies that trade completeness for prompt size. [`HistoryPolicy::All`]
//! makes a whole run quadratic in its length; [`HistoryPolicy::Digest`]
//! bounds every step prompt, so a whole run is linear.

use std::collections::VecDeque;

use pae_core::{Step, StepHistory, StepResponse, StepStatus};

/// Which previous steps the step prompt shows, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HistoryPolicy {
    /// Every previous step with its response (LangChain's behaviour). Prompt
    /// size grows with the number of steps done, so a whole run is quadratic.
    #[default]
    All,
    /// Only the last `k` steps with their responses; earlier steps appear as
    /// their step text only. `LastK(0)` shows no response at all. The step
    /// texts still grow with the run, so a whole run stays quadratic.
    LastK(usize),
    /// A bounded digest: the steps the current step refers to and the last
    /// few steps in full, older steps as one short line each, and no more
    /// lines than fit a fixed budget (the oldest are left out, and a line
    /// says how many). Every step prompt is bounded whatever the plan's
    /// length, so a whole run is linear. See [`DigestLimits`].
    Digest(DigestLimits),
}

impl HistoryPolicy {
    /// [`HistoryPolicy::Digest`] with [`DigestLimits::DEFAULT`].
    pub const fn digest() -> Self {
        Self::Digest(DigestLimits::DEFAULT)
    }
}

/// The bounds of [`HistoryPolicy::Digest`].
///
/// A step is shown in full (`Step n: <text>` and `Response: <response>`)
/// when it is one of the last [`recent`](Self::recent) steps, or when the
/// current step refers to it: by id in its `depends_on`, or in its text as
/// `#E3`, `$3`, `${id}` or "step 3" (at most [`MAX_REFERENCED`] such
/// steps). Every other step is one line, `Step n: <text> -> <response>`, of
/// at most [`line_chars`](Self::line_chars) characters, newest first until
/// the lines reach [`max_chars`](Self::max_chars) characters; older steps
/// are summed up as `(Steps 1-40 not shown.)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestLimits {
    /// The last steps shown in full.
    pub recent: usize,
    /// The longest digest line, in characters (at least 24).
    pub line_chars: usize,
    /// The characters of all digest lines together.
    pub max_chars: usize,
}

impl DigestLimits {
    /// The last 3 steps in full, lines of at most 160 characters, 1,200
    /// characters of lines (about 300 tokens).
    pub const DEFAULT: Self = Self {
        recent: 3,
        line_chars: 160,
        max_chars: 1200,
    };

    /// These limits with `recent` steps shown in full.
    #[must_use]
    pub const fn with_recent(mut self, recent: usize) -> Self {
        self.recent = recent;
        self
    }
}

impl Default for DigestLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most earlier steps that [`HistoryPolicy::Digest`] shows in full
/// because the current step refers to them.
pub const MAX_REFERENCED: usize = 8;

/// The text shown when no step has been done yet.
pub const NO_PREVIOUS_STEPS: &str = "(none yet)";

/// Renders previous steps as readable text, one block per step:
///
/// ```text
/// Step 1: Look up the price
/// Response: 12 EUR
///
/// Step 2: Convert it to USD
/// Response: 13.1 USD
/// ```
///
/// Under [`HistoryPolicy::LastK`], steps before the last `k` are listed as
/// `Step n: <text>` lines without their responses. A response that did not
/// complete says so (`Response (stopped: iteration limit): ...`). Under
/// [`HistoryPolicy::Digest`] no step counts as referenced; use
/// [`render_history`] to give the current step.
///
/// ```
/// use pae_core::{Step, StepResponse};
/// use pae_executor::{render_previous_steps, HistoryPolicy};
///
/// let done = vec![
///     (Step::new("a"), StepResponse::new("1")),
///     (Step::new("b"), StepResponse::new("2")),
/// ];
/// assert_eq!(render_previous_steps(&done, HistoryPolicy::All),
///            "Step 1: a\nResponse: 1\n\nStep 2: b\nResponse: 2");
/// assert_eq!(render_previous_steps(&done, HistoryPolicy::LastK(1)),
///            "Step 1: a\n\nStep 2: b\nResponse: 2");
/// ```
pub fn render_previous_steps(steps: &[(Step, StepResponse)], policy: HistoryPolicy) -> String {
    render_history(steps, None, policy)
}

/// Renders previous steps for `current`, the step about to run (see
/// [`render_previous_steps`] for the layout). Only
/// [`HistoryPolicy::Digest`] looks at `current`: the steps it refers to are
/// shown in full.
///
/// ```
/// use pae_core::{Step, StepResponse};
/// use pae_executor::{render_history, DigestLimits, HistoryPolicy};
///
/// let done: Vec<_> = (1..=6)
///     .map(|i| (Step::new(format!("Find fact {i}")), StepResponse::new(format!("Fact {i}."))))
///     .collect();
/// let limits = DigestLimits { recent: 1, line_chars: 60, max_chars: 100 };
/// let current = Step::new("Combine step 2 with the rest");
/// assert_eq!(
///     render_history(&done, Some(&current), HistoryPolicy::Digest(limits)),
///     "(Step 1 not shown.)\n\n\
///      Step 2: Find fact 2\nResponse: Fact 2.\n\n\
///      Step 3: Find fact 3 -> Fact 3.\n\
///      Step 4: Find fact 4 -> Fact 4.\n\
///      Step 5: Find fact 5 -> Fact 5.\n\n\
///      Step 6: Find fact 6\nResponse: Fact 6."
/// );
/// ```
pub fn render_history(
    steps: &[(Step, StepResponse)],
    current: Option<&Step>,
    policy: HistoryPolicy,
) -> String {
    render_with(steps, current, policy, None)
}

fn render_with(
    steps: &[(Step, StepResponse)],
    current: Option<&Step>,
    policy: HistoryPolicy,
    cache: Option<&mut LineCache>,
) -> String {
    if steps.is_empty() {
        return String::from(NO_PREVIOUS_STEPS);
    }
    match policy {
        HistoryPolicy::All => render_last_k(steps, steps.len()),
        HistoryPolicy::LastK(k) => render_last_k(steps, k),
        HistoryPolicy::Digest(limits) => render_digest(steps, current, limits, cache),
    }
}

/// Renders histories as [`render_history`] does, remembering digest lines.
///
/// A finished step's digest line never changes, and a digest shows each
/// older step's line again in every prompt until the budget drops it (about
/// 16 prompts with the default limits). Two memories spare rewriting them:
///
/// - the digest lines of the last history rendered, as one text: the next
///   render of that history ([`StepHistory::id`]: the same steps, one more
///   at the end) writes the newest line, drops the oldest beyond the budget
///   and copies the rest at once;
/// - each line written, by step position, for other histories (another
///   run's, a dependency plan's) and for steps that show earlier steps in
///   full. Each keeps the text it was made from and is used only while the
///   step at that position still reads the same.
///
/// Either way the text is exactly what [`render_history`] gives. A render
/// that finds the memory in use by another thread does without it rather
/// than wait.
#[derive(Debug, Default)]
pub(crate) struct HistoryRenderer {
    state: std::sync::Mutex<RendererState>,
}

impl Clone for HistoryRenderer {
    /// A clone starts with nothing remembered.
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// What a [`HistoryRenderer`] remembers.
#[derive(Debug, Default)]
struct RendererState {
    lines: LineCache,
    block: Option<DigestBlock>,
}

impl HistoryRenderer {
    /// [`render_history`] of `history`, with the digest lines remembered.
    pub(crate) fn render(
        &self,
        history: &StepHistory,
        current: Option<&Step>,
        policy: HistoryPolicy,
    ) -> String {
        let HistoryPolicy::Digest(limits) = policy else {
            return render_with(history, current, policy, None);
        };
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            // A panic elsewhere while it was held: the lines are checked
            // against their steps before use, but the block may be half
            // updated.
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                let mut state = poisoned.into_inner();
                state.block = None;
                state
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return render_with(history, current, policy, None);
            }
        };
        let recent_from = history.len().saturating_sub(limits.recent);
        let refers_back = current.is_some_and(|step| {
            referenced_steps(history, step)
                .iter()
                .any(|&i| i < recent_from)
        });
        if history.is_empty() || refers_back {
            return render_with(history, current, policy, Some(&mut state.lines));
        }
        let block = match &mut state.block {
            Some(block)
                if block.history == history.id()
                    && block.limits == limits
                    && block.next <= recent_from =>
            {
                block
            }
            slot => slot.insert(DigestBlock::new(history.id(), limits)),
        };
        block.advance(history, recent_from);
        block.render(history, recent_from)
    }
}

/// The digest lines of one history ([`StepHistory::id`]) for steps
/// `next - lines.len()..next`: one text, oldest line first, each line
/// followed by `\n`.
#[derive(Debug)]
struct DigestBlock {
    history: u64,
    limits: DigestLimits,
    next: usize,
    /// Each line's characters and bytes (without its `\n`), oldest first.
    lines: VecDeque<(usize, usize)>,
    text: String,
    /// Where the oldest line starts in `text`.
    start: usize,
    /// What the budget counts: each line's characters and one for its
    /// line break.
    used: usize,
}

/// The fewest characters of a digest line with its line break
/// (`Step 1:  -> ` and `\n`): no more lines than the budget over this fit.
const MIN_LINE_CHARS: usize = 13;

impl DigestBlock {
    fn new(history: u64, limits: DigestLimits) -> Self {
        Self {
            history,
            limits,
            next: 0,
            lines: VecDeque::new(),
            text: String::new(),
            start: 0,
            used: 0,
        }
    }

    /// Adds the lines of steps `next..recent_from` and drops the oldest
    /// beyond the budget: the lines are then those [`render_digest`] picks
    /// when no step is referenced.
    fn advance(&mut self, steps: &[(Step, StepResponse)], recent_from: usize) {
        let line_chars = self.limits.line_chars.max(24);
        // Older steps cannot fit whatever their lines: not written at all.
        let from = recent_from.saturating_sub(self.limits.max_chars / MIN_LINE_CHARS + 1);
        if from > self.next {
            self.lines.clear();
            self.text.clear();
            self.start = 0;
            self.used = 0;
            self.next = from;
        }
        for (index, step) in steps.iter().enumerate().take(recent_from).skip(self.next) {
            let before = self.text.len();
            let chars = write_digest_line(&mut self.text, index + 1, step, line_chars);
            self.lines.push_back((chars, self.text.len() - before));
            self.text.push('\n');
            self.used += chars + 1;
        }
        self.next = recent_from;
        while self.used > self.limits.max_chars {
            let Some((chars, bytes)) = self.lines.pop_front() else {
                break;
            };
            self.used -= chars + 1;
            self.start += bytes + 1;
        }
        // The dropped lines' text goes once it is half of it.
        if self.start > self.text.len() / 2 {
            self.text.drain(..self.start);
            self.start = 0;
        }
    }

    /// The digest: the omitted steps, these lines, the recent steps in
    /// full (laid out as [`render_digest`] lays them out).
    fn render(&self, steps: &[(Step, StepResponse)], recent_from: usize) -> String {
        let first_line = self.next - self.lines.len();
        let lines = &self.text[self.start..];
        let full: usize = steps[recent_from..]
            .iter()
            .map(|(step, response)| step.value.len() + response.response.len() + 32)
            .sum();
        let mut out = String::with_capacity(48 + lines.len() + full);
        if first_line > 0 {
            push_omitted(&mut out, 0, first_line);
        }
        if let Some(lines) = lines.strip_suffix('\n') {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(lines);
        }
        for (offset, (step, response)) in steps[recent_from..].iter().enumerate() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            push_full(&mut out, recent_from + offset + 1, step, response);
        }
        out
    }
}

/// `(Step 3 not shown.)` or `(Steps 1-3 not shown.)` for steps
/// `from..to`.
fn push_omitted(out: &mut String, from: usize, to: usize) {
    if to - from == 1 {
        out.push_str("(Step ");
        push_number(out, to);
    } else {
        out.push_str("(Steps ");
        push_number(out, from + 1);
        out.push('-');
        push_number(out, to);
    }
    out.push_str(" not shown.)");
}

/// The slots of a [`LineCache`]: the lines of a window of this many
/// consecutive steps can be cached at once.
const LINE_CACHE_SLOTS: usize = 64;

/// Steps whose text and response together are longer than this (in bytes)
/// are not cached: an entry keeps a copy of both.
const LINE_CACHE_MAX_SOURCE: usize = 2048;

/// Digest lines by step position, in `LINE_CACHE_SLOTS` slots (position
/// modulo the slot count).
#[derive(Debug, Default)]
struct LineCache {
    slots: Vec<Option<CachedLine>>,
}

/// One remembered digest line and what it was made from.
#[derive(Debug)]
struct CachedLine {
    index: usize,
    line_chars: usize,
    step: Box<str>,
    response: Box<str>,
    status: StepStatus,
    line: Box<str>,
    chars: usize,
}

impl LineCache {
    /// The characters of the cached line of the step at `index`, when the
    /// cache holds one made from this very step with these limits.
    fn find(
        &self,
        index: usize,
        (step, response): &(Step, StepResponse),
        line_chars: usize,
    ) -> Option<usize> {
        let entry = self.slots.get(index % LINE_CACHE_SLOTS)?.as_ref()?;
        let same = entry.index == index
            && entry.line_chars == line_chars
            && *entry.step == *step.value
            && *entry.response == *response.response
            && entry.status == response.status;
        same.then_some(entry.chars)
    }

    /// The line in the slot of `index` (after [`find`](Self::find) or
    /// [`insert`](Self::insert) for that index).
    fn line(&self, index: usize) -> &str {
        self.slots
            .get(index % LINE_CACHE_SLOTS)
            .and_then(Option::as_ref)
            .map_or("", |entry| &entry.line)
    }

    /// Remembers the line of the step at `index`; whether it was (a step
    /// too long to keep a copy of is not).
    fn insert(
        &mut self,
        index: usize,
        (step, response): &(Step, StepResponse),
        line_chars: usize,
        line: &str,
        chars: usize,
    ) -> bool {
        if step.value.len() + response.response.len() > LINE_CACHE_MAX_SOURCE {
            return false;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(LINE_CACHE_SLOTS, || None);
        }
        self.slots[index % LINE_CACHE_SLOTS] = Some(CachedLine {
            index,
            line_chars,
            step: step.value.as_str().into(),
            response: response.response.as_str().into(),
            status: response.status.clone(),
            line: line.into(),
            chars,
        });
        true
    }
}

fn render_last_k(steps: &[(Step, StepResponse)], k: usize) -> String {
    let full_from = steps.len().saturating_sub(k);
    let capacity: usize = steps[full_from..]
        .iter()
        .map(|(s, r)| s.value.len() + r.response.len() + 32)
        .sum::<usize>()
        + steps[..full_from]
            .iter()
            .map(|(s, _)| s.value.len() + 12)
            .sum::<usize>();
    let mut out = String::with_capacity(capacity);
    for (i, (step, _)) in steps[..full_from].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        push_step_line(&mut out, i + 1, step);
    }
    for (offset, (step, response)) in steps[full_from..].iter().enumerate() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        push_full(&mut out, full_from + offset + 1, step, response);
    }
    out
}

/// How one step appears in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    /// In full, at this index.
    Full(usize),
    /// As one line, the one at this position of the digest's lines.
    Line(usize),
    /// Steps `from..to` left out.
    Omitted { from: usize, to: usize },
}

/// A digest line chosen ahead: the step's index and where its text is.
struct Written {
    index: usize,
    text: LineText,
}

/// Where a chosen digest line's text is.
enum LineText {
    /// In the cache's slot for the step.
    Cached,
    /// At this range of the lines written for this render.
    Here(std::ops::Range<usize>),
}

fn render_digest(
    steps: &[(Step, StepResponse)],
    current: Option<&Step>,
    limits: DigestLimits,
    mut cache: Option<&mut LineCache>,
) -> String {
    let recent_from = steps.len().saturating_sub(limits.recent);
    let mut referenced = current.map_or_else(Vec::new, |step| referenced_steps(steps, step));
    referenced.retain(|&i| i < recent_from);
    referenced.sort_unstable();
    referenced.dedup();

    // Lines from the newest older step backwards, within the budget. Only
    // the steps that get a line are looked at, so rendering costs the same
    // at step 10 and at step 10,000. A line the cache does not have is
    // written once, newest first, into `written` (which holds no more than
    // the budget); every line is copied into the text below in plan order.
    let line_chars = limits.line_chars.max(24);
    let mut lines: Vec<Written> = Vec::with_capacity((limits.max_chars / 24).min(recent_from) + 1);
    // Lines are counted in characters, which are at most 4 bytes each.
    let mut written = if cache.is_some() {
        String::new()
    } else {
        String::with_capacity((limits.max_chars.min(line_chars * recent_from)) * 2)
    };
    let mut used = 0usize;
    let mut first_line = recent_from;
    for index in (0..recent_from).rev() {
        if referenced.binary_search(&index).is_ok() {
            continue;
        }
        let step = &steps[index];
        // The lines of one window of steps never share a slot.
        let cacheable = recent_from - index <= LINE_CACHE_SLOTS;
        let hit = match cache.as_deref() {
            Some(cache) if cacheable => cache.find(index, step, line_chars),
            _ => None,
        };
        let (chars, text) = match hit {
            Some(chars) => (chars, LineText::Cached),
            None => {
                // A line is at most `line_chars` characters of 4 bytes and
                // its label: one allocation for the lines the cache misses.
                written.reserve(line_chars * 4 + 32);
                let start = written.len();
                let chars = write_digest_line(&mut written, index + 1, step, line_chars);
                (chars, LineText::Here(start..written.len()))
            }
        };
        if used + chars + 1 > limits.max_chars {
            if let LineText::Here(range) = text {
                written.truncate(range.start);
            }
            break;
        }
        used += chars + 1;
        let text = match (text, cache.as_deref_mut()) {
            (LineText::Here(range), Some(cache)) if cacheable => {
                if cache.insert(index, step, line_chars, &written[range.clone()], chars) {
                    written.truncate(range.start);
                    LineText::Cached
                } else {
                    LineText::Here(range)
                }
            }
            (text, _) => text,
        };
        lines.push(Written { index, text });
        first_line = index;
    }
    lines.reverse();
    let cache = cache.as_deref();
    let line_text = |line: &Written| match (&line.text, cache) {
        (LineText::Cached, Some(cache)) => cache.line(line.index),
        (LineText::Here(range), _) => &written[range.clone()],
        (LineText::Cached, None) => "",
    };

    let shown = lines.len() + referenced.len() * 2 + (steps.len() - recent_from) + 2;
    let mut plan: Vec<Shown> = Vec::with_capacity(shown);
    let mut next = 0;
    for &index in referenced.iter().filter(|&&i| i < first_line) {
        if next < index {
            plan.push(Shown::Omitted {
                from: next,
                to: index,
            });
        }
        plan.push(Shown::Full(index));
        next = index + 1;
    }
    if next < first_line {
        plan.push(Shown::Omitted {
            from: next,
            to: first_line,
        });
    }
    let mut referenced_after = referenced.iter().filter(|&&i| i >= first_line).peekable();
    for (at, line) in lines.iter().enumerate() {
        while let Some(&&r) = referenced_after.peek()
            && r < line.index
        {
            plan.push(Shown::Full(r));
            referenced_after.next();
        }
        plan.push(Shown::Line(at));
    }
    plan.extend(referenced_after.map(|&r| Shown::Full(r)));
    plan.extend((recent_from..steps.len()).map(Shown::Full));

    let chars: usize = plan
        .iter()
        .map(|shown| match shown {
            Shown::Full(index) => {
                let (step, response) = &steps[*index];
                step.value.len() + response.response.len() + 32
            }
            Shown::Line(at) => line_text(&lines[*at]).len() + 2,
            Shown::Omitted { .. } => 48,
        })
        .sum();
    let mut out = String::with_capacity(chars);
    let mut previous_was_line = false;
    for shown in plan {
        let is_line = matches!(shown, Shown::Line(_) | Shown::Omitted { .. });
        if !out.is_empty() {
            out.push_str(if is_line && previous_was_line {
                "\n"
            } else {
                "\n\n"
            });
        }
        match shown {
            Shown::Full(index) => {
                let (step, response) = &steps[index];
                push_full(&mut out, index + 1, step, response);
            }
            Shown::Line(at) => out.push_str(line_text(&lines[at])),
            Shown::Omitted { from, to } => push_omitted(&mut out, from, to),
        }
        previous_was_line = is_line;
    }
    out
}

/// Indices of the earlier steps `current` refers to: ids in its
/// `depends_on`, and references in its text (`#E2`, `$2`, `${id}`, "step
/// 2") by id or by 1-based position. At most [`MAX_REFERENCED`].
fn referenced_steps(steps: &[(Step, StepResponse)], current: &Step) -> Vec<usize> {
    let mut found = Vec::new();
    let by_id = |id: &str| {
        steps.iter().position(|(step, _)| {
            step.id
                .as_deref()
                .is_some_and(|sid| sid.eq_ignore_ascii_case(id))
        })
    };
    for id in &current.depends_on {
        if found.len() >= MAX_REFERENCED {
            return found;
        }
        if let Some(index) = by_id(id) {
            found.push(index);
        }
    }
    for reference in pae_schema::find_references(&current.value) {
        if found.len() >= MAX_REFERENCED {
            break;
        }
        let by_position = || {
            let digits = reference.id.trim_start_matches(['E', 'e']);
            digits
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=steps.len()).contains(n))
                .map(|n| n - 1)
        };
        if let Some(index) = by_id(&reference.id).or_else(by_position) {
            found.push(index);
        }
    }
    found
}

/// Where digest text goes: a string (or, in tests, a counter of its
/// characters).
trait Sink {
    /// Appends text known to be ASCII.
    fn push_ascii(&mut self, text: &str);
    fn push(&mut self, c: char);
}

impl Sink for String {
    fn push_ascii(&mut self, text: &str) {
        self.push_str(text);
    }

    fn push(&mut self, c: char) {
        String::push(self, c);
    }
}

/// Writes `Step n: <text> -> <response>` as one line of at most `max`
/// characters (the step text gets at most half, the response the rest);
/// returns its characters.
fn write_digest_line(
    out: &mut impl Sink,
    number: usize,
    (step, response): &(Step, StepResponse),
    max: usize,
) -> usize {
    let head = push_step_label(out, number);
    let text_budget = (max / 2).saturating_sub(head).max(8);
    let text_used = push_one_line(out, &step.value, text_budget);
    out.push_ascii(" -> ");
    let rest = max.saturating_sub(head + text_used + 4).max(8);
    let tail = match &response.status {
        StepStatus::Completed => push_one_line(out, &response.response, rest),
        StepStatus::Stopped { .. } => {
            out.push_ascii("(stopped) ");
            10 + push_one_line(out, &response.response, rest.saturating_sub(10))
        }
        StepStatus::Failed { error } => {
            out.push_ascii("(failed: ");
            let used = push_one_line(out, error, rest.saturating_sub(10));
            out.push(')');
            10 + used
        }
        StepStatus::Skipped { reason } => {
            out.push_ascii("(skipped: ");
            let used = push_one_line(out, reason, rest.saturating_sub(11));
            out.push(')');
            11 + used
        }
    };
    head + text_used + 4 + tail
}

/// Writes `Step n: `; returns its characters.
fn push_step_label(out: &mut impl Sink, number: usize) -> usize {
    let mut digits = [0u8; 20];
    let digits = decimal(&mut digits, number);
    out.push_ascii("Step ");
    for &digit in digits {
        out.push(char::from(digit));
    }
    out.push_ascii(": ");
    5 + digits.len() + 2
}

/// The decimal digits of `number`, written at the end of `buffer`.
fn decimal(buffer: &mut [u8; 20], number: usize) -> &[u8] {
    let mut at = buffer.len();
    let mut n = number;
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buffer[at..]
}

/// Appends `text` trimmed, with runs of whitespace as one space, cut to
/// `max` characters (the last one `…` when cut). Reads no further than it
/// writes. Returns the characters written.
fn push_one_line(out: &mut impl Sink, text: &str, max: usize) -> usize {
    let text = trim(text);
    // The common case, short ASCII text already on one line, is copied
    // whole (every history rendering writes dozens of these lines).
    if text.len() <= max && is_plain_line(text.as_bytes()) {
        out.push_ascii(text);
        return text.len();
    }
    let mut written = 0;
    let mut pending_space = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        let needed = 1 + usize::from(pending_space);
        if written + needed > max || (written + needed == max && chars.peek().is_some()) {
            if written < max {
                out.push('…');
                written += 1;
            }
            return written;
        }
        if pending_space {
            out.push(' ');
            written += 1;
            pending_space = false;
        }
        out.push(c);
        written += 1;
    }
    written
}

/// `text.trim()`, answered at once when both ends are visible ASCII (no
/// whitespace there, ASCII or not).
fn trim(text: &str) -> &str {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// Whether text is printable ASCII without two spaces in a row: one line
/// that needs no rewriting.
///
/// Eight bytes at a time (every history rendering checks dozens of short
/// lines): a byte outside `' '..='~'` or two spaces in a row, within a word
/// or across two, ends the check.
fn is_plain_line(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    /// 0x80 in each byte of `word` that is zero, and nowhere else (exact:
    /// no false positives from a borrow).
    fn zero_bytes(word: u64) -> u64 {
        !(((word & LOWS) + LOWS) | word | LOWS)
    }
    let mut chunks = bytes.chunks_exact(8);
    // Whether the byte before the current word was a space.
    let mut space_before = false;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // Not ASCII, a control byte (below 0x20: subtracting 0x20 borrows
        // into the high bit), or DEL.
        // A borrow out of a byte below 0x20 can only mark bytes above it,
        // and one such byte already fails the check.
        let outside = (word | word.wrapping_sub(ONES * 0x20)) & HIGHS;
        if outside != 0 || zero_bytes(word ^ (ONES * 0x7f)) != 0 {
            return false;
        }
        let spaces = zero_bytes(word ^ (ONES * 0x20));
        // Byte i and byte i + 1 both spaces (little-endian: the next byte
        // is 8 bits up), or the first byte a space after a space.
        if spaces & (spaces >> 8) != 0 || (space_before && spaces & 0x80 != 0) {
            return false;
        }
        space_before = spaces >> 56 != 0;
    }
    for &b in chunks.remainder() {
        let space = b == b' ';
        if !(b' '..=b'~').contains(&b) || (space && space_before) {
            return false;
        }
        space_before = space;
    }
    true
}

fn push_number(out: &mut String, number: usize) {
    let mut digits = [0u8; 20];
    for &d in decimal(&mut digits, number) {
        out.push(char::from(d));
    }
}

fn push_step_line(out: &mut String, number: usize, step: &Step) {
    out.push_str("Step ");
    push_number(out, number);
    out.push_str(": ");
    out.push_str(trim(&step.value));
}

fn push_full(out: &mut String, number: usize, step: &Step, response: &StepResponse) {
    push_step_line(out, number, step);
    out.push('\n');
    push_response(out, response);
}

fn push_response(out: &mut String, response: &StepResponse) {
    match &response.status {
        StepStatus::Completed => {
            out.push_str("Response: ");
            out.push_str(trim(&response.response));
        }
        StepStatus::Stopped { reason } => {
            out.push_str("Response (stopped: ");
            out.push_str(reason);
            out.push_str("): ");
            out.push_str(response.response.trim());
        }
        StepStatus::Failed { error } => {
            out.push_str("Response: (failed: ");
            out.push_str(error);
            out.push(')');
        }
        StepStatus::Skipped { reason } => {
            out.push_str("Response: (skipped: ");
            out.push_str(reason);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the characters it is given.
    struct CharCount(usize);

    impl Sink for CharCount {
        fn push_ascii(&mut self, text: &str) {
            self.0 += text.len();
        }

        fn push(&mut self, _: char) {
            self.0 += 1;
        }
    }

    fn steps(n: usize) -> Vec<(Step, StepResponse)> {
        (1..=n)
            .map(|i| {
                (
                    Step::new(format!("s{i}")),
                    StepResponse::new(format!("r{i}")),
                )
            })
            .collect()
    }

    #[test]
    fn empty_history() {
        assert_eq!(
            render_previous_steps(&[], HistoryPolicy::All),
            NO_PREVIOUS_STEPS
        );
        assert_eq!(
            render_previous_steps(&[], HistoryPolicy::LastK(3)),
            NO_PREVIOUS_STEPS
        );
        assert_eq!(
            render_previous_steps(&[], HistoryPolicy::digest()),
            NO_PREVIOUS_STEPS
        );
    }

    #[test]
    fn last_k_keeps_earlier_step_texts_only() {
        let text = render_previous_steps(&steps(5), HistoryPolicy::LastK(2));
        assert_eq!(
            text,
            "Step 1: s1\nStep 2: s2\nStep 3: s3\n\nStep 4: s4\nResponse: r4\n\nStep 5: s5\nResponse: r5"
        );
        let none = render_previous_steps(&steps(2), HistoryPolicy::LastK(0));
        assert_eq!(none, "Step 1: s1\nStep 2: s2");
        let more_than_done = render_previous_steps(&steps(2), HistoryPolicy::LastK(9));
        assert_eq!(
            more_than_done,
            render_previous_steps(&steps(2), HistoryPolicy::All)
        );
    }

    #[test]
    fn statuses_are_visible_and_text_is_verbatim() {
        let history = vec![
            (
                Step::new("it's {x}\n"),
                StepResponse::new("partial").with_status(StepStatus::Stopped {
                    reason: "iteration limit (15)".into(),
                }),
            ),
            (
                Step::new("b"),
                StepResponse::new("Error: boom").with_status(StepStatus::Failed {
                    error: "boom".into(),
                }),
            ),
        ];
        assert_eq!(
            render_previous_steps(&history, HistoryPolicy::All),
            "Step 1: it's {x}\nResponse (stopped: iteration limit (15)): partial\n\nStep 2: b\nResponse: (failed: boom)"
        );
    }

    #[test]
    fn digest_shows_recent_in_full_and_older_as_lines() {
        let limits = DigestLimits {
            recent: 2,
            line_chars: 40,
            max_chars: 1000,
        };
        assert_eq!(
            render_previous_steps(&steps(4), HistoryPolicy::Digest(limits)),
            "Step 1: s1 -> r1\nStep 2: s2 -> r2\n\nStep 3: s3\nResponse: r3\n\nStep 4: s4\nResponse: r4"
        );
        // Fewer steps than `recent`: the same as All.
        assert_eq!(
            render_previous_steps(&steps(2), HistoryPolicy::Digest(limits)),
            render_previous_steps(&steps(2), HistoryPolicy::All)
        );
        // No recent steps: lines only.
        assert_eq!(
            render_previous_steps(&steps(2), HistoryPolicy::Digest(limits.with_recent(0))),
            "Step 1: s1 -> r1\nStep 2: s2 -> r2"
        );
    }

    #[test]
    fn digest_leaves_out_the_oldest_beyond_the_budget() {
        // Each line "Step n: sn -> rn" is 16 characters (+1 for its newline).
        let limits = DigestLimits {
            recent: 1,
            line_chars: 40,
            max_chars: 34,
        };
        assert_eq!(
            render_previous_steps(&steps(6), HistoryPolicy::Digest(limits)),
            "(Steps 1-3 not shown.)\nStep 4: s4 -> r4\nStep 5: s5 -> r5\n\nStep 6: s6\nResponse: r6"
        );
        let nothing = DigestLimits {
            max_chars: 0,
            ..limits
        };
        assert_eq!(
            render_previous_steps(&steps(3), HistoryPolicy::Digest(nothing)),
            "(Steps 1-2 not shown.)\n\nStep 3: s3\nResponse: r3"
        );
    }

    #[test]
    fn digest_shows_referenced_steps_in_full_in_order() {
        let limits = DigestLimits {
            recent: 1,
            line_chars: 40,
            max_chars: 17,
        };
        let mut done = steps(8);
        done[2].0.id = Some("lookup".into());
        let current = Step::new("Use #E2, ${lookup} and step 7 and step 99")
            .with_depends_on(["lookup".to_owned()]);
        assert_eq!(
            render_history(&done, Some(&current), HistoryPolicy::Digest(limits)),
            "(Step 1 not shown.)\n\n\
             Step 2: s2\nResponse: r2\n\n\
             Step 3: s3\nResponse: r3\n\n\
             (Steps 4-5 not shown.)\nStep 6: s6 -> r6\n\n\
             Step 7: s7\nResponse: r7\n\n\
             Step 8: s8\nResponse: r8"
        );
        // A referenced step among the lines sits in its place.
        let wide = DigestLimits {
            max_chars: 1000,
            ..limits
        };
        let current = Step::new("Check step 2");
        assert_eq!(
            render_history(&steps(4), Some(&current), HistoryPolicy::Digest(wide)),
            "Step 1: s1 -> r1\n\nStep 2: s2\nResponse: r2\n\nStep 3: s3 -> r3\n\nStep 4: s4\nResponse: r4"
        );
    }

    fn digest_line(number: usize, step: &(Step, StepResponse), max: usize) -> String {
        let mut line = String::new();
        let chars = write_digest_line(&mut line, number, step, max);
        assert_eq!(chars, line.chars().count(), "{line}");
        line
    }

    #[test]
    fn digest_lines_are_one_bounded_line() {
        let long = (
            Step::new("Look  up\nthe   price of every item in the catalogue, twice"),
            StepResponse::new("It is\n\n".repeat(1000)),
        );
        let line = digest_line(12, &long, 60);
        assert_eq!(
            write_digest_line(&mut CharCount(0), 12, &long, 60),
            line.chars().count()
        );
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(line.chars().count(), 60, "{line}");
        assert_eq!(
            line,
            "Step 12: Look up the price of… -> It is It is It is It is I…"
        );
        let failed = (
            Step::new("x"),
            StepResponse::new("").with_status(StepStatus::Failed {
                error: "boom".into(),
            }),
        );
        assert_eq!(digest_line(1, &failed, 60), "Step 1: x -> (failed: boom)");
        let mut short = String::new();
        assert_eq!(push_one_line(&mut short, " a  b ", 3), 3);
        assert_eq!(short, "a b");
        let mut cut = String::new();
        assert_eq!(push_one_line(&mut cut, "abcd", 3), 3);
        assert_eq!(cut, "ab…");
        let mut number = String::new();
        push_number(&mut number, 0);
        push_number(&mut number, 1_234_567);
        assert_eq!(number, "01234567");
    }

    #[test]
    fn the_word_at_a_time_check_is_the_plain_definition() {
        fn plain(bytes: &[u8]) -> bool {
            bytes.iter().all(|b| (b' '..=b'~').contains(b)) && !bytes.windows(2).any(|w| w == b"  ")
        }
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"Step 12: Compute the subtotal for item 12 and note it.".to_vec(),
            "caf\u{e9} au lait, first".as_bytes().to_vec(),
        ];
        // Every position of a space pair, a control byte, DEL and a
        // non-ASCII byte in texts of 1 to 24 bytes, across word borders.
        for len in 1..=24 {
            let base = vec![b'a'; len];
            cases.push(base.clone());
            for at in 0..len {
                for bad in [b'\n', b'\t', 0x00, 0x1f, 0x7f, 0x80, 0xff, b' ', b'~'] {
                    let mut case = base.clone();
                    case[at] = bad;
                    cases.push(case);
                }
                if at + 1 < len {
                    let mut case = base.clone();
                    case[at] = b' ';
                    case[at + 1] = b' ';
                    cases.push(case);
                }
            }
        }
        for case in &cases {
            assert_eq!(is_plain_line(case), plain(case), "{case:?}");
        }
    }

    #[test]
    fn the_quick_trim_is_trim() {
        for text in [
            "",
            " ",
            "a",
            " a ",
            "a\t",
            "\u{a0}a",
            "a\u{3000}",
            "é",
            "x y",
            "\n",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }

    #[test]
    fn remembered_lines_render_exactly_what_rendering_afresh_does() {
        let renderer = HistoryRenderer::default();
        let policies = [
            HistoryPolicy::digest(),
            // More lines than the line cache has slots: the oldest are
            // written afresh every time.
            HistoryPolicy::Digest(DigestLimits {
                recent: 2,
                line_chars: 24,
                max_chars: 10_000,
            }),
            HistoryPolicy::Digest(DigestLimits {
                recent: 0,
                line_chars: 40,
                max_chars: 100,
            }),
            HistoryPolicy::All,
        ];
        let text = |i: usize| match i % 5 {
            0 => format!("Compute the subtotal for item {i} and note it."),
            1 => format!("Look  up\nitem {i}, caf\u{e9} {}", "long ".repeat(i % 40)),
            2 => "x".repeat(3000),
            _ => format!("Step {i}"),
        };
        let check = |history: &StepHistory, current: Option<&Step>, policy: HistoryPolicy| {
            assert_eq!(
                renderer.render(history, current, policy),
                render_history(history, current, policy),
                "{} steps, {current:?}, {policy:?}",
                history.len()
            );
        };
        // Each policy through a whole run, as a run renders it: the
        // remembered lines carry on from step to step.
        for policy in policies {
            let renderer = HistoryRenderer::default();
            let mut history = StepHistory::new();
            for i in 0..120 {
                for current in [None, Some(Step::new("Go on"))] {
                    assert_eq!(
                        renderer.render(&history, current.as_ref(), policy),
                        render_history(&history, current.as_ref(), policy),
                        "{i} steps, {policy:?}"
                    );
                }
                history.push(Step::new(text(i)), StepResponse::new(format!("Result {i}")));
            }
        }
        let mut done = StepHistory::new();
        for i in 0..150 {
            // Each policy on its own, as a run renders it (the remembered
            // lines carry on from step to step), then all of them mixed.
            let currents = [
                None,
                Some(Step::new("Go on")),
                Some(Step::new(format!("Use step {} and #E{}", i / 2, i / 3 + 1))),
            ];
            for current in &currents {
                check(&done, current.as_ref(), policies[i % policies.len()]);
            }
            for policy in policies {
                check(&done, currents[i % 3].as_ref(), policy);
            }
            let status = match i % 7 {
                3 => StepStatus::Failed {
                    error: format!("boom {i}"),
                },
                5 => StepStatus::Stopped {
                    reason: "limit".into(),
                },
                _ => StepStatus::Completed,
            };
            let id = done.id();
            done.push(
                Step::new(text(i)),
                StepResponse::new(format!("Result {i}")).with_status(status),
            );
            assert_eq!(done.id(), id, "appended in place");
        }
        // Other histories with steps at the same positions (another run,
        // or the dependencies of a parallel step) never get the old lines.
        let other = StepHistory::from(
            done.iter()
                .map(|(step, response)| {
                    let mut response = response.clone();
                    response.response.push('!');
                    (step.clone(), response)
                })
                .collect::<Vec<_>>(),
        );
        for policy in policies {
            for history in [&done, &other, &done, &other] {
                check(history, None, policy);
            }
        }
        let mut changed = done.to_vec();
        changed[140].1.status = StepStatus::Skipped {
            reason: "no".into(),
        };
        changed[143].0.value.push_str(" again");
        let changed = StepHistory::from(changed);
        check(&done, None, HistoryPolicy::digest());
        check(&changed, None, HistoryPolicy::digest());
        // Other limits give other lines for the same steps.
        let narrow = HistoryPolicy::Digest(DigestLimits::DEFAULT.with_recent(1));
        let narrower = HistoryPolicy::Digest(DigestLimits {
            line_chars: 30,
            ..DigestLimits::DEFAULT
        });
        for policy in [narrow, narrower, HistoryPolicy::digest()] {
            check(&done, None, policy);
        }
        // A history seen first at a late step (a resumed run).
        let mut late = StepHistory::from(done.to_vec());
        for policy in [HistoryPolicy::digest(), narrow] {
            check(&late, None, policy);
        }
        late.push(Step::new("one more"), StepResponse::new("done"));
        check(&late, None, HistoryPolicy::digest());
        // A clone kept alive: appending copies, and the copy is another
        // history.
        let kept = late.clone();
        late.push(Step::new("and another"), StepResponse::new("done too"));
        check(&late, None, HistoryPolicy::digest());
        check(&kept, None, HistoryPolicy::digest());
    }

    #[test]
    fn digest_size_is_bounded_whatever_the_length() {
        let mut sizes = Vec::new();
        for n in [10, 100, 1000, 5000] {
            let done = steps(n);
            sizes.push(render_previous_steps(&done, HistoryPolicy::digest()).len());
        }
        let bound = DigestLimits::DEFAULT.max_chars + 3 * 64 + 64;
        assert!(sizes.iter().all(|&s| s <= bound), "{sizes:?}");
        // Only the step numbers grow longer.
        assert!(sizes[3].abs_diff(sizes[2]) < 16, "{sizes:?}");
    }
}
