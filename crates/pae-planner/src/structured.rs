//! [`StructuredPlanParser`]: reads a JSON plan (`{"steps": [{"id",
//! "description", "depends_on"}]}`) leniently, as small models write it.

use pae_core::{Plan, PlanOutputParser, PlanParseError, Step};
use serde_json::{Map, Value};

use crate::json::extract_json;
use crate::marker::step_marker;

/// Keys that may hold a step's text, in order of preference.
const TEXT_KEYS: [&str; 14] = [
    "description",
    "step",
    "value",
    "text",
    "task",
    "instruction",
    "title",
    "action",
    "content",
    "details",
    "summary",
    "goal",
    "query",
    "name",
];
/// Keys that may hold a step's id.
const ID_KEYS: [&str; 8] = [
    "id",
    "step_id",
    "step_number",
    "step_no",
    "step_index",
    "number",
    "index",
    "key",
];
/// Keys that may hold a step's dependencies.
const DEPENDENCY_KEYS: [&str; 10] = [
    "depends_on",
    "dependencies",
    "deps",
    "depends",
    "dependent_on",
    "after",
    "requires",
    "prerequisites",
    "needs",
    "depends_on_steps",
];
/// Keys that may hold the list of steps.
pub(crate) const STEPS_KEYS: [&str; 5] = ["steps", "plan", "tasks", "remaining_steps", "subtasks"];
/// Strings that mean "no dependency".
const NO_DEPENDENCY: [&str; 7] = ["none", "null", "nil", "n/a", "na", "-", "[]"];

/// Parses a plan written as JSON, the shape [`crate::prompts::plan_schema`] asks for.
///
/// It is lenient about what small models do to that shape: a bare array of
/// steps; steps as plain strings (a leading `1.` or `Step 1:` that numbers
/// the step is dropped); the text under `description`, `step`, `value`,
/// `text`, `task`, `instruction`, `title`, `content` and a few more; keys in
/// any case and in camelCase (`dependsOn`, `stepId`); numeric ids (and a
/// numeric `step` or `step_number` used as the id); `dependencies`/`deps`
/// for `depends_on`, a single id, a comma-separated string, `"none"`, or
/// `{"id": ...}` objects instead of a list of ids; `"step 1"` for id `"1"`,
/// and a step number for a step whose id is a name; the JSON inside a
/// markdown fence, after some prose or after a `<think>` block; near-JSON
/// (trailing commas, single quotes, Python's `True`/`None`, comments,
/// unquoted keys). It does not validate the plan: see [`Plan::validate`]
/// (the planners do), which turns duplicate ids, unknown dependencies and
/// cycles into typed errors.
///
/// ```
/// use pae_core::PlanOutputParser;
/// use pae_planner::StructuredPlanParser;
///
/// let plan = StructuredPlanParser::new().parse(
///     "```json\n[{\"step\": 1, \"description\": \"look up\"}, {\"step\": 2, \"text\": \"answer\", \"deps\": [1]}]\n```",
/// )?;
/// assert_eq!(plan.steps[1].id.as_deref(), Some("2"));
/// assert_eq!(plan.steps[1].depends_on, ["1"]);
/// # Ok::<(), pae_core::PlanParseError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StructuredPlanParser;

impl StructuredPlanParser {
    /// A parser.
    pub fn new() -> Self {
        Self
    }
}

impl PlanOutputParser for StructuredPlanParser {
    fn parse(&self, text: &str) -> Result<Plan, PlanParseError> {
        let value = extract_json(text).map_err(|reason| malformed(text, reason))?;
        match plan_steps(&value, 0) {
            Ok(mut steps) => {
                resolve_positions(&mut steps);
                Ok(Plan { steps })
            }
            Err(StepsError::Empty) => Err(PlanParseError::NoSteps { text: text.into() }),
            Err(StepsError::Malformed(reason)) => Err(malformed(text, reason)),
        }
    }
}

pub(crate) fn malformed(text: &str, reason: impl Into<String>) -> PlanParseError {
    PlanParseError::Malformed {
        text: text.into(),
        reason: reason.into(),
    }
}

/// Why a JSON value holds no usable list of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepsError {
    /// The list is there and empty.
    Empty,
    /// The value has the wrong shape.
    Malformed(String),
}

/// A key without case, `_`, `-` or spaces: `dependsOn`, `depends_on` and
/// `Depends-On` are the same key.
fn key_form(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The value under `key`, or under a key of the same [`key_form`].
pub(crate) fn get_key<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        let form = key_form(key);
        map.iter()
            .find(|(k, _)| key_form(k) == form)
            .map(|(_, v)| v)
    })
}

/// The first of `keys` the map has, and its value.
pub(crate) fn first_key<'v>(
    map: &'v Map<String, Value>,
    keys: &[&'static str],
) -> Option<(&'static str, &'v Value)> {
    keys.iter().find_map(|&k| get_key(map, k).map(|v| (k, v)))
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The steps of a plan value: `{"steps": [...]}`, a bare array, or either
/// encoded once more as a JSON string.
pub(crate) fn plan_steps(value: &Value, depth: usize) -> Result<Vec<Step>, StepsError> {
    match value {
        Value::Array(items) => steps_from_array(items),
        Value::Object(map) => match first_key(map, &STEPS_KEYS) {
            Some((_, Value::Array(items))) => steps_from_array(items),
            Some((_, inner @ (Value::Object(_) | Value::String(_)))) if depth < 2 => {
                plan_steps(inner, depth + 1)
            }
            Some((key, other)) => Err(StepsError::Malformed(format!(
                "\"{key}\" must be an array of steps, not {}",
                kind(other)
            ))),
            None => Err(StepsError::Malformed(
                "expected an object with a \"steps\" array".into(),
            )),
        },
        Value::String(s) if depth < 2 => match extract_json(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => plan_steps(&inner, depth + 1),
            _ => Err(StepsError::Malformed(
                "expected an object with a \"steps\" array, not a string".into(),
            )),
        },
        other => Err(StepsError::Malformed(format!(
            "expected an object with a \"steps\" array, not {}",
            kind(other)
        ))),
    }
}

/// Reads an array of steps and resolves `"step 2"`-style dependencies.
pub(crate) fn steps_from_array(items: &[Value]) -> Result<Vec<Step>, StepsError> {
    if items.is_empty() {
        return Err(StepsError::Empty);
    }
    let mut steps = items
        .iter()
        .enumerate()
        .map(|(index, item)| step_from_value(index, item))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StepsError::Malformed)?;
    resolve_dependency_aliases(&mut steps);
    Ok(steps)
}

/// A step's text without a marker that only numbers it (`"1. Search"` as
/// the first step, `"Step 2: Answer"` as the second, `"- Search"`).
fn without_numbering(index: usize, text: &str) -> String {
    match step_marker(text) {
        Some((number, title))
            if !title.is_empty()
                && number.is_none_or(|n| u64::try_from(index + 1).is_ok_and(|i| i == n)) =>
        {
            title
        }
        _ => text.trim().to_owned(),
    }
}

fn step_from_value(index: usize, value: &Value) -> Result<Step, String> {
    let map = match value {
        Value::String(text) if !text.trim().is_empty() => {
            return Ok(Step::new(without_numbering(index, text)));
        }
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "step {} must be an object with a \"description\", not {}",
                index + 1,
                if matches!(other, Value::String(_)) {
                    "an empty string"
                } else {
                    kind(other)
                }
            ));
        }
    };
    let text = TEXT_KEYS
        .iter()
        .filter_map(|&k| get_key(map, k))
        .find_map(|v| v.as_str().map(str::trim).filter(|t| !t.is_empty()))
        .ok_or_else(|| format!("step {} has no \"description\" text", index + 1))?;
    let mut step = Step::new(without_numbering(index, text));
    step.id = ID_KEYS
        .iter()
        .filter_map(|&k| get_key(map, k))
        .find_map(scalar_id)
        // {"step": 2, "description": "..."} numbers steps with "step".
        .or_else(|| {
            get_key(map, "step")
                .filter(|v| v.is_number())
                .and_then(scalar_id)
        });
    if let Some((key, deps)) = first_key(map, &DEPENDENCY_KEYS) {
        step.depends_on = dependency_ids(deps).ok_or_else(|| {
            format!(
                "\"{key}\" of step {} must be a list of step ids, not {}",
                index + 1,
                kind(deps)
            )
        })?;
    }
    Ok(step)
}

/// A string or number as an id; `None` for anything else or an empty string.
fn scalar_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(match n.as_f64() {
            // 2.0 names step "2"; the cast is exact below 2^53.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// One dependency: an id, or an object naming one (`{"id": "1"}`); `None`
/// for anything else. "No dependency" words give an empty id, dropped by
/// the caller.
fn dependency_id(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => ID_KEYS
            .iter()
            .chain(["step"].iter())
            .filter_map(|&k| get_key(map, k))
            .find_map(scalar_id),
        other => scalar_id(other),
    }
}

/// Whether an id is a word for "no dependency" (`"none"`, `"N/A"`).
fn means_none(id: &str) -> bool {
    NO_DEPENDENCY.iter().any(|w| id.eq_ignore_ascii_case(w))
}

/// Dependency ids from a list, a single id or a comma-separated string.
fn dependency_ids(value: &Value) -> Option<Vec<String>> {
    let ids: Vec<String> = match value {
        Value::Null => Vec::new(),
        Value::String(s) => s
            .split([',', ';'])
            .map(|part| {
                part.trim_matches(|c: char| {
                    c.is_whitespace() || matches!(c, '[' | ']' | '"' | '\'')
                })
            })
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Number(_) | Value::Object(_) => vec![dependency_id(value)?],
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(dependency_id)
            .collect::<Option<_>>()?,
        Value::Bool(_) => return None,
    };
    Some(ids.into_iter().filter(|id| !means_none(id)).collect())
}

/// Rewrites a dependency that names no step but reads as one once a `step`
/// prefix is dropped from it or from a step's id (`"step 1"`, `"Step_1"`,
/// `"#1"` for id `"1"`; `"1"` for id `"step1"`).
fn resolve_dependency_aliases(steps: &mut [Step]) {
    let keys = step_keys(steps);
    let bare_keys: Vec<&str> = keys.iter().map(|k| strip_step_prefix(k)).collect();
    for step in steps.iter_mut() {
        for dep in &mut step.depends_on {
            if keys.contains(dep) {
                continue;
            }
            let bare = strip_step_prefix(dep);
            let mut matching = bare_keys.iter().enumerate().filter(|(_, k)| **k == bare);
            if let (Some((i, _)), None) = (matching.next(), matching.next()) {
                *dep = keys[i].clone();
            }
        }
    }
}

/// In a whole plan whose step ids are names, reads a dependency that names
/// no step as the 1-based position of a step (`1` for the first step of
/// `[{"id": "search"}, ...]`). Not for revised steps, whose numbers may name
/// steps already done.
fn resolve_positions(steps: &mut [Step]) {
    let keys = step_keys(steps);
    let numeric = keys.iter().any(|k| {
        let bare = strip_step_prefix(k);
        !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit())
    });
    if numeric {
        return;
    }
    for step in steps.iter_mut() {
        for dep in &mut step.depends_on {
            if !keys.contains(dep)
                && let Ok(position) = strip_step_prefix(dep).parse::<usize>()
                && let Some(key) = position.checked_sub(1).and_then(|i| keys.get(i))
            {
                *dep = key.clone();
            }
        }
    }
}

/// The key of every step: its id, or its 1-based position.
fn step_keys(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| s.id.clone().unwrap_or_else(|| (i + 1).to_string()))
        .collect()
}

fn strip_step_prefix(id: &str) -> &str {
    let id = id.trim();
    let rest = match id.get(..4) {
        Some(word) if word.eq_ignore_ascii_case("step") => &id[4..],
        _ => id,
    };
    rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '_' | '-' | '#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, PlanParseError> {
        StructuredPlanParser::new().parse(text)
    }

    #[test]
    fn reads_the_schema_shape() {
        let plan = parse(
            r#"{"steps":[{"id":"a","description":"look up","depends_on":[]},
                {"id":"b","description":"answer","depends_on":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            plan,
            Plan::new([
                Step::new("look up").with_id("a"),
                Step::new("answer").with_id("b").with_depends_on(["a"]),
            ])
        );
    }

    #[test]
    fn lenient_shapes() {
        let plan = parse(r#"Here you go: ["look up", {"value": "answer", "id": 2.0, "deps": "1"}] hope it helps"#)
            .unwrap();
        assert_eq!(plan.steps[0], Step::new("look up"));
        assert_eq!(
            plan.steps[1],
            Step::new("answer").with_id("2").with_depends_on(["1"])
        );
        let plan =
            parse(r#"{"plan": {"steps": [{"task": "x", "dependencies": ["Step 1"]}]}}"#).unwrap();
        assert_eq!(plan.steps[0].depends_on, ["1"]);
        let plan = parse(r#""{\"steps\": [\"x\"]}""#).unwrap();
        assert_eq!(plan.steps, [Step::new("x")]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let reason = |text: &str| match parse(text) {
            Err(PlanParseError::Malformed { reason, .. }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(reason("{\"steps\": [").contains("not valid JSON"));
        assert!(reason("{\"answer\": 1}").contains("\"steps\" array"));
        assert!(reason("{\"steps\": [{\"id\": \"1\"}]}").contains("step 1 has no"));
        assert!(reason("{\"steps\": [1]}").contains("not a number"));
        assert!(reason("{\"steps\": \"do it\"}").contains("not a string"));
        assert!(reason("").contains("empty"));
        assert!(matches!(
            parse("{\"steps\": []}"),
            Err(PlanParseError::NoSteps { .. })
        ));
    }
}
