//! [`PlanningOutputParser`]: reads the steps of a plan out of a model's free
//! text (a numbered list, a "Step N:" list, a bulleted list or a table),
//! and reads a JSON plan when the text holds no list.
//!
//! The lexer ([`lexer`]) classifies lines, the assembler ([`list`]) groups
//! them into steps, [`inline`] handles one-line plans and tables; this
//! module holds the parser and its text-then-JSON fallback, above both the
//! text modules and [`crate::structured`].

mod inline;
mod lexer;
mod list;

use pae_core::{Plan, PlanOutputParser, PlanParseError, Step};

use inline::{inline_steps, table_steps};
pub(crate) use lexer::cut_at_end_marker;
use lexer::{Line, is_fence, normalize, plan_start};
use list::{bullet_steps, numbered_steps};

use crate::noise::strip_noise;
use crate::prompts::END_OF_PLAN;
use crate::structured::StructuredPlanParser;

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
///    is accepted. A number ahead of the expected one by at most 9 starts a
///    step too (models skip numbers, and markdown renders `1. a\n3. b\n7. c`
///    as one list of three), so `1. a\n3. c` is two steps while a year
///    (`2023. was ...`) stays text of the step above. A
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
///    task boxes `- [ ]`) at the top level are the steps. Bullets at the
///    level of a numbered list, before its first step, are never dropped:
///    numbered lines right below them (no blank line between) continue the
///    last bullet, as markers of another style do (rule 5); a numbered list
///    after a blank line adds its steps after the bullets'.
/// 8. **Preamble**: text before the first step is dropped (LangChain does
///    the same; bullets at the list's level are steps, rule 7). When a header line such as `Plan:`, `**Plan:**`,
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
        let stripped = strip_noise(text);
        let normalized = normalize(&stripped);
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
            StructuredPlanParser::new()
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
}
