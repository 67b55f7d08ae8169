//! References between steps written in step text: `#E1` (ReWOO's evidence
//! variables), `$1`, `${1}`, `#1`, and "step 1" in prose. Used to infer
//! dependencies in text plans and to substitute earlier results into a
//! step's text.

use crate::Plan;

/// A reference found in step text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReference {
    /// Byte range of the reference in the text.
    pub span: std::ops::Range<usize>,
    /// The id as written (`"E1"` for `#E1`, `"1"` for `$1`).
    pub id: String,
    /// What kind of reference it is.
    pub kind: ReferenceKind,
}

/// How a reference was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceKind {
    /// An evidence variable, `#E1` or `${id}`: unmistakably a reference.
    Variable,
    /// A short token, `$1` or `#1`: a reference when it names an earlier
    /// step (it may also be a price or an issue number).
    Short,
    /// Prose, "step 1": a reference when it names an earlier step.
    Prose,
}

impl StepReference {
    /// Whether the reference is a token that a result can replace (`#E1`,
    /// `${id}`, `$1`, `#1`), as opposed to prose.
    pub fn is_token(&self) -> bool {
        self.kind != ReferenceKind::Prose
    }
}

/// Finds every step reference in `text`, in order.
///
/// Tokens: `#E<n>`, `#<n>`, `$<n>`, `$E<n>`, `${<id>}`. Prose: `step <n>`
/// (any case, as a whole word). Numbers that are part of a larger word or
/// a decimal ("$1.50") are not references.
pub fn find_references(text: &str) -> Vec<StepReference> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let parsed = match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => braced(text, i),
            b'$' | b'#' => token(text, i),
            b's' | b'S' => prose(text, i),
            _ => None,
        };
        match parsed {
            Some((end, id, kind)) => {
                found.push(StepReference {
                    span: start..end,
                    id,
                    kind,
                });
                i = end;
            }
            // A byte at a time: every reference starts with an ASCII byte,
            // which never occurs inside a multi-byte character, so no
            // character needs decoding on the way.
            None => i += 1,
        }
    }
    found
}

/// `${id}`.
fn braced(text: &str, at: usize) -> Option<(usize, String, ReferenceKind)> {
    let rest = &text[at + 2..];
    let close = rest.find('}')?;
    let id = rest[..close].trim();
    let valid = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    valid.then(|| (at + 2 + close + 1, id.to_owned(), ReferenceKind::Variable))
}

/// Whether `at` starts a word (no letter, digit or `_` just before it):
/// "a#1" and "US$5" are not references.
fn at_word_start(bytes: &[u8], at: usize) -> bool {
    at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_')
}

/// Reads 1 to 4 digits at `from` that end a word (not "$1.50" nor "#1a");
/// returns where they end.
fn whole_number(bytes: &[u8], from: usize) -> Option<usize> {
    let mut end = from;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == from || end - from > 4 {
        return None;
    }
    let decimal =
        bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
    let glued = bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    (!decimal && !glued).then_some(end)
}

/// `#E1`, `#1`, `$1`, `$E1`.
fn token(text: &str, at: usize) -> Option<(usize, String, ReferenceKind)> {
    let bytes = text.as_bytes();
    if !at_word_start(bytes, at) {
        return None;
    }
    let prefixed = matches!(bytes.get(at + 1), Some(b'E' | b'e'));
    let digits_start = at + 1 + usize::from(prefixed);
    let end = whole_number(bytes, digits_start)?;
    let digits = &text[digits_start..end];
    let (id, kind) = if prefixed {
        (format!("E{digits}"), ReferenceKind::Variable)
    } else {
        (
            digits.trim_start_matches('0').to_owned(),
            ReferenceKind::Short,
        )
    };
    (!id.is_empty()).then_some((end, id, kind))
}

/// "step 3" / "Step 3" / "step #3" as whole words.
fn prose(text: &str, at: usize) -> Option<(usize, String, ReferenceKind)> {
    let bytes = text.as_bytes();
    if !at_word_start(bytes, at) || !text.get(at..at + 4)?.eq_ignore_ascii_case("step") {
        return None;
    }
    if bytes.get(at + 4) != Some(&b' ') {
        return None;
    }
    let digits_start = at + 5 + usize::from(bytes.get(at + 5) == Some(&b'#'));
    let end = whole_number(bytes, digits_start)?;
    let id = text[digits_start..end].trim_start_matches('0').to_owned();
    (!id.is_empty()).then_some((end, id, ReferenceKind::Prose))
}

/// Replaces every token reference (`#E1`, `$1`, `${E1}`, `#1`) for which
/// `result` gives a value; prose references and unknown ids stay as they
/// are. Values are inserted verbatim.
pub fn substitute_references<'a>(text: &str, result: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for reference in find_references(text) {
        if !reference.is_token() {
            continue;
        }
        if let Some(value) = result(&reference.id) {
            out.push_str(&text[last..reference.span.start]);
            out.push_str(value);
            last = reference.span.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

impl Plan {
    /// The position of the step a reference id names: a step whose id is
    /// `id` (case-insensitive), else the step at 1-based position `id` (so
    /// `E3` and `3` both name the third step of a plain numbered plan).
    pub fn resolve_reference(&self, id: &str) -> Option<usize> {
        if let Some(pos) = self.steps.iter().position(|s| {
            s.id.as_deref()
                .is_some_and(|sid| sid.eq_ignore_ascii_case(id))
        }) {
            return Some(pos);
        }
        let digits = id.trim_start_matches(['E', 'e']);
        let n: usize = digits.parse().ok()?;
        (n >= 1 && n <= self.steps.len() && self.steps[n - 1].id.is_none()).then(|| n - 1)
    }

    /// Adds dependencies to steps whose text refers to other steps (see
    /// [`find_references`]) and returns whether any was found.
    ///
    /// An evidence variable (`#E2`, `${id}`) always becomes a dependency —
    /// on an unknown id too, so that validation reports it. A short token
    /// (`$2`, `#2`) or prose ("step 2") becomes one only when it names an
    /// earlier step, since it may be a price or a phrase. When any
    /// reference was found, a last step that refers to none depends on every
    /// earlier step: it is the step that answers from everything before it.
    /// Plans where no step refers to another are left as they are.
    pub fn infer_dependencies(&mut self) -> bool {
        let mut found_any = false;
        let mut additions: Vec<Vec<String>> = Vec::with_capacity(self.steps.len());
        for (index, step) in self.steps.iter().enumerate() {
            let mut deps: Vec<String> = Vec::new();
            for reference in find_references(&step.value) {
                let strict = reference.kind == ReferenceKind::Variable;
                let key = match self.resolve_reference(&reference.id) {
                    Some(pos) if pos == index => continue,
                    Some(pos) if !strict && pos > index => continue,
                    Some(pos) => self.step_key(pos).unwrap_or_default(),
                    None if strict => reference.id.clone(),
                    None => continue,
                };
                if !deps.contains(&key) && !step.depends_on.contains(&key) {
                    deps.push(key);
                }
            }
            found_any |= !deps.is_empty();
            additions.push(deps);
        }
        if !found_any {
            return false;
        }
        let last = self.steps.len() - 1;
        let keys: Vec<String> = (0..last).filter_map(|i| self.step_key(i)).collect();
        for (index, (step, deps)) in self.steps.iter_mut().zip(additions).enumerate() {
            step.depends_on.extend(deps);
            if index == last && index > 0 && step.depends_on.is_empty() {
                step.depends_on.clone_from(&keys);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;

    fn ids(text: &str) -> Vec<(String, bool)> {
        find_references(text)
            .into_iter()
            .map(|r| (r.id.clone(), r.is_token()))
            .collect()
    }

    #[test]
    fn finds_tokens_and_prose() {
        assert_eq!(
            ids("Add #E1 and $2, then ${E3} and #4; see step 5 and Step #6."),
            vec![
                ("E1".into(), true),
                ("2".into(), true),
                ("E3".into(), true),
                ("4".into(), true),
                ("5".into(), false),
                ("6".into(), false),
            ]
        );
    }

    #[test]
    fn finds_references_among_other_scripts() {
        let text = "é$1 ü#E2 步骤 step 3 — ${x} 価格$4.5 schritt";
        assert_eq!(
            ids(text),
            vec![
                ("1".into(), true),
                ("E2".into(), true),
                ("3".into(), false),
                ("x".into(), true),
            ]
        );
        let spans: Vec<&str> = find_references(text)
            .into_iter()
            .map(|r| &text[r.span])
            .collect();
        assert_eq!(spans, ["$1", "#E2", "step 3", "${x}"]);
    }

    #[test]
    fn ignores_prices_words_and_decimals() {
        assert!(ids("It costs $1.50 or US$5, item#3, steps 4, stepping 2, step one, $").is_empty());
        assert!(ids("é€ #").is_empty());
        assert_eq!(ids("($1)"), vec![("1".into(), true)]);
    }

    #[test]
    fn substitutes_tokens_only() {
        let out = substitute_references("Add #E1 to $2 (from step 1); keep #E9", |id| match id {
            "E1" => Some("391"),
            "2" => Some("366 {days}"),
            _ => None,
        });
        assert_eq!(out, "Add 391 to 366 {days} (from step 1); keep #E9");
    }

    #[test]
    fn infers_dependencies_and_joins_the_last_step() {
        let mut plan = Plan::new([
            "Compute 17*23",
            "Find the days in a leap year",
            "Add #E1 and #E2",
            "Double the result of step 3",
            "Answer the question",
        ]);
        assert!(plan.infer_dependencies());
        let deps: Vec<Vec<String>> = plan.steps.iter().map(|s| s.depends_on.clone()).collect();
        assert_eq!(
            deps,
            vec![
                vec![],
                vec![],
                vec!["1".to_string(), "2".to_string()],
                vec!["3".to_string()],
                vec![
                    "1".to_string(),
                    "2".to_string(),
                    "3".to_string(),
                    "4".to_string()
                ],
            ]
        );
        assert!(plan.validate(&crate::PlanLimits::default()).is_ok());
    }

    #[test]
    fn leaves_plans_without_references_alone() {
        let mut plan = Plan::new(["a", "b", "Answer using the above"]);
        assert!(!plan.infer_dependencies());
        assert!(!plan.has_dependencies());
    }

    #[test]
    fn unknown_token_references_fail_validation() {
        let mut plan = Plan::new(["a", "use #E7"]);
        assert!(plan.infer_dependencies());
        assert!(plan.validate(&crate::PlanLimits::default()).is_err());
    }

    #[test]
    fn prices_do_not_become_dependencies() {
        let mut plan = Plan::new(["Pay $5 for a ticket", "Buy 3 items at $2 each", "Answer"]);
        // "$2" in step 2 names step 2 itself; "$5" names no step.
        assert!(!plan.infer_dependencies());
        let mut plan = Plan::new(["Find the price", "Multiply $1 by 3"]);
        assert!(plan.infer_dependencies());
        assert_eq!(plan.steps[1].depends_on, ["1"]);
    }

    #[test]
    fn ids_resolve_before_positions() {
        let plan = Plan::new([Step::new("x").with_id("E2"), Step::new("y")]);
        assert_eq!(plan.resolve_reference("e2"), Some(0));
        assert_eq!(plan.resolve_reference("2"), Some(1));
        assert_eq!(
            plan.resolve_reference("1"),
            None,
            "step 1 has an id, not a position name"
        );
    }
}
