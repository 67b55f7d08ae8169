//! Earlier results in a planned tool call's arguments: every `#E1`-style
//! reference in a string is replaced with the result it names when that
//! result is a short value; otherwise the input is left open for the model.

use pae_core::{Step, StepResponse};
use pae_schema::{ReferenceKind, find_references};
use serde_json::Value;

/// The longest result put into arguments as it is, in characters. Longer
/// results (a file's text) are for the model to read.
const MAX_INLINE_CHARS: usize = 120;

/// The longest list of numbers put into arguments as it is (a column of a
/// table for the calculator's `sum` or `avg`), in characters.
const MAX_INLINE_LIST_CHARS: usize = 1500;

/// A tool call's arguments after references were filled in.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Filled {
    /// Nothing is left open: call the tool with these.
    Given(Value),
    /// The model must write them: the arguments with what could be filled,
    /// and why the rest could not.
    Open { args: Value, reason: String },
}

/// Fills the references in `args` from `previous`.
pub(super) fn fill_references(args: &Value, previous: &[(Step, StepResponse)]) -> Filled {
    let mut open: Vec<String> = Vec::new();
    let filled = map_strings(args, &mut |text| fill_text(text, previous, &mut open));
    if open.is_empty() {
        Filled::Given(filled)
    } else {
        Filled::Open {
            args: filled,
            reason: open.join("; "),
        }
    }
}

/// `value` with `f` applied to every string in it.
fn map_strings(value: &Value, f: &mut impl FnMut(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(f(text)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), map_strings(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill_text(text: &str, previous: &[(Step, StepResponse)], open: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for reference in find_references(text) {
        if !reference.is_token() {
            continue;
        }
        let written = &text[reference.span.clone()];
        let Some((step, response)) = find_step(previous, &reference.id) else {
            // `$5` or `#3` that names no step may be a price or a number;
            // `#E5` is always a reference, to a result there is not.
            if reference.kind == ReferenceKind::Variable {
                open.push(format!("{written} names no earlier result"));
            }
            continue;
        };
        match inline_value(response) {
            // A list stands as it is only where a list goes: the whole
            // argument, or the arguments of a call (`sum(#E1)`); in
            // `28 * #E1` how its items combine is for the model to write.
            Some(value)
                if value.contains(", ")
                    && is_number_list(&value)
                    && !stands_alone(text, reference.span.clone()) =>
            {
                open.push(format!(
                    "{written} is a list of numbers ({value}): write how they are combined"
                ));
            }
            Some(value) => {
                out.push_str(&text[copied..reference.span.start]);
                out.push_str(&value);
                copied = reference.span.end;
            }
            None if !response.status.is_completed() => {
                open.push(format!("{written} ({}) has no result", step.value.trim()));
            }
            None => open.push(format!("{written} must be read to get the values it holds")),
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The earlier step a reference id names: by id (any case, `E2` and `2`
/// alike), else by 1-based position among steps without ids.
fn find_step<'a>(
    previous: &'a [(Step, StepResponse)],
    id: &str,
) -> Option<&'a (Step, StepResponse)> {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches(['E', 'e'])
            .trim_start_matches('0')
            .to_owned()
    };
    let wanted = bare(id);
    if let Some(found) = previous.iter().find(|(step, _)| {
        step.id
            .as_deref()
            .is_some_and(|sid| sid.eq_ignore_ascii_case(id) || bare(sid) == wanted)
    }) {
        return Some(found);
    }
    let position: usize = wanted.parse().ok()?;
    previous
        .get(position.checked_sub(1)?)
        .filter(|(step, _)| step.id.is_none())
}

/// Whether the reference at `span` is all of `text`, or all between a
/// pair of parentheses (spaces aside).
fn stands_alone(text: &str, span: std::ops::Range<usize>) -> bool {
    let before = text[..span.start].trim_end();
    let after = text[span.end..].trim_start();
    (before.is_empty() && after.is_empty()) || (before.ends_with('(') && after.starts_with(')'))
}

/// Whether `text` is numbers separated by commas (`12.5, 40, 7.25`).
fn is_number_list(text: &str) -> bool {
    text.split(',')
        .all(|item| item.trim().parse::<f64>().is_ok_and(f64::is_finite))
}

/// A completed result short enough to stand in an argument: one line, at
/// most [`MAX_INLINE_CHARS`], or a list of numbers separated by commas (a
/// table's column) of at most [`MAX_INLINE_LIST_CHARS`]. A negative number
/// is put in parentheses, so `10 - #E1` stays an expression.
fn inline_value(response: &StepResponse) -> Option<String> {
    if !response.status.is_completed() {
        return None;
    }
    let text = response.response.trim();
    if text.is_empty() || text.contains('\n') {
        return None;
    }
    let chars = text.chars().count();
    if chars > MAX_INLINE_CHARS && (chars > MAX_INLINE_LIST_CHARS || !is_number_list(text)) {
        return None;
    }
    if text.starts_with('-') && text[1..].trim().parse::<f64>().is_ok() {
        return Some(format!("({text})"));
    }
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::StepStatus;
    use serde_json::json;

    fn done(id: &str, text: &str) -> (Step, StepResponse) {
        (Step::new("s").with_id(id), StepResponse::new(text))
    }

    #[test]
    fn lists_of_numbers_are_put_in_place_when_long() {
        let column: Vec<String> = (0..60).map(|n| format!("{n}.25")).collect();
        let column = column.join(", ");
        assert!(column.len() > MAX_INLINE_CHARS);
        let previous = [done("E1", &column)];
        assert_eq!(
            fill_references(&json!({"expression": "avg(#E1)"}), &previous),
            Filled::Given(json!({"expression": format!("avg({column})")}))
        );
        // A number with thousands separators is one number.
        assert_eq!(
            fill_references(&json!({"expression": "10 * #E1"}), &[done("E1", "1,200")]),
            Filled::Given(json!({"expression": "10 * 1,200"}))
        );
        // Inside other arithmetic a list is for the model to combine.
        let short = [done("E1", "38, 42, 35")];
        assert_eq!(
            fill_references(&json!({"expression": "sum( #E1 )"}), &short),
            Filled::Given(json!({"expression": "sum( 38, 42, 35 )"}))
        );
        assert_eq!(
            fill_references(&json!({"values": "#E1"}), &short),
            Filled::Given(json!({"values": "38, 42, 35"}))
        );
        assert!(matches!(
            fill_references(&json!({"expression": "28 * #E1"}), &short),
            Filled::Open { reason, .. } if reason.contains("is a list of numbers (38, 42, 35)")
        ));
        // Long prose, or a long list with words in it, is for the model.
        let words = format!("{column}, many more");
        for text in [words.as_str(), &"word ".repeat(40)] {
            let previous = [done("E1", text)];
            assert!(matches!(
                fill_references(&json!({"expression": "avg(#E1)"}), &previous),
                Filled::Open { .. }
            ));
        }
    }

    #[test]
    fn short_results_are_put_in_place() {
        let previous = [done("E1", "391"), done("E2", "-4")];
        assert_eq!(
            fill_references(&json!({"expression": "#E1 + 366 - #e2"}), &previous),
            Filled::Given(json!({"expression": "391 + 366 - (-4)"}))
        );
        assert_eq!(
            fill_references(&json!({"expression": "2 * $1"}), &[done("1", "5")]),
            Filled::Given(json!({"expression": "2 * 5"}))
        );
    }

    #[test]
    fn prices_and_plain_numbers_stay() {
        let previous = [done("E1", "391")];
        assert_eq!(
            fill_references(&json!({"expression": "$5 * 3 + #2"}), &previous),
            Filled::Given(json!({"expression": "$5 * 3 + #2"}))
        );
    }

    #[test]
    fn long_results_unknown_steps_and_stopped_steps_leave_the_input_open() {
        let file = done("E1", "apples 3\npears 4");
        match fill_references(&json!({"expression": "sum of #E1"}), &[file]) {
            Filled::Open { reason, .. } => assert!(reason.contains("must be read"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match fill_references(&json!({"expression": "#E4 * 2"}), &[done("E1", "1")]) {
            Filled::Open { reason, .. } => assert!(reason.contains("names no"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let stopped = (
            Step::new("add").with_id("E1"),
            StepResponse::new("x").with_status(StepStatus::Stopped { reason: "r".into() }),
        );
        match fill_references(&json!({"expression": "#E1 * 2"}), &[stopped]) {
            Filled::Open { reason, .. } => assert!(reason.contains("has no result"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
