//! [`StructuredPlanParser`]: reads a JSON plan (`{"steps": [{"id",
//! "description", "depends_on"}]}`) leniently, as small models write it.

use pae_core::{Plan, PlanOutputParser, PlanParseError, Step};
use serde_json::{Map, Value};

/// Keys that may hold a step's text, in order of preference.
const TEXT_KEYS: [&str; 8] = [
    "description",
    "step",
    "value",
    "text",
    "task",
    "instruction",
    "title",
    "action",
];
/// Keys that may hold a step's id.
const ID_KEYS: [&str; 4] = ["id", "step_id", "number", "index"];
/// Keys that may hold a step's dependencies.
const DEPENDENCY_KEYS: [&str; 5] = ["depends_on", "dependencies", "deps", "after", "requires"];
/// Keys that may hold the list of steps.
const STEPS_KEYS: [&str; 4] = ["steps", "plan", "tasks", "remaining_steps"];
/// How many `{` / `[` positions are tried when the JSON is embedded in prose.
const MAX_EMBEDDED_STARTS: usize = 8;

/// Parses a plan written as JSON, the shape [`crate::plan_schema`] asks for.
///
/// It is lenient about what small models do to that shape: a bare array of
/// steps; steps as plain strings; the text under `description`, `step`,
/// `value`, `text`, `task`, `instruction` or `title`; numeric ids (and a
/// numeric `step` used as the id); `dependencies`/`deps` for `depends_on`, a
/// single id instead of a list, `"step 1"` for id `"1"`; the JSON inside a
/// markdown fence or after some prose. It does not validate the plan: see
/// [`Plan::validate`].
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
            Ok(steps) => Ok(Plan { steps }),
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

/// The first JSON value in `text`: the whole text, the inside of a markdown
/// fence, or the first value that starts at a `{` or `[` after some prose.
///
/// # Errors
/// Why no JSON could be read, in words a model can act on.
pub(crate) fn extract_json(text: &str) -> Result<Value, String> {
    let trimmed = text.trim().trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err("the reply is empty; a JSON object was expected".into());
    }
    let first_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return Ok(value),
        Err(e) => e.to_string(),
    };
    let fenced = fenced_block(trimmed);
    for candidate in fenced.into_iter().chain(std::iter::once(trimmed)) {
        if let Ok(value) = serde_json::from_str::<Value>(candidate.trim()) {
            return Ok(value);
        }
        let starts = candidate
            .char_indices()
            .filter(|&(_, c)| c == '{' || c == '[')
            .map(|(i, _)| i)
            .take(MAX_EMBEDDED_STARTS);
        for start in starts {
            let mut values = serde_json::Deserializer::from_str(&candidate[start..]).into_iter();
            if let Some(Ok(value)) = values.next() {
                return Ok(value);
            }
        }
    }
    Err(format!("the reply is not valid JSON ({first_error})"))
}

/// The inside of the first markdown code fence, without its language tag.
fn fenced_block(text: &str) -> Option<&str> {
    let open = text.find("```")?;
    let after = &text[open + 3..];
    let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
    let body = &after[body_start..];
    Some(body.find("```").map_or(body, |close| &body[..close]))
}

fn get_key<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn first_key<'v>(
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

fn step_from_value(index: usize, value: &Value) -> Result<Step, String> {
    let map = match value {
        Value::String(text) if !text.trim().is_empty() => return Ok(Step::new(text.trim())),
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
    let mut step = Step::new(text);
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

/// Dependency ids from a list, a single id or a comma-separated string.
fn dependency_ids(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::String(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Value::Number(_) => scalar_id(value).map(|id| vec![id]),
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(scalar_id)
            .collect(),
        Value::Bool(_) | Value::Object(_) => None,
    }
}

/// Rewrites a dependency that names no step but reads as one once a
/// `step` prefix is dropped (`"step 1"`, `"Step_1"`, `"#1"`).
fn resolve_dependency_aliases(steps: &mut [Step]) {
    let plan = Plan {
        steps: steps.to_vec(),
    };
    let keys: Vec<String> = (0..plan.len()).filter_map(|i| plan.step_key(i)).collect();
    for step in steps.iter_mut() {
        for dep in &mut step.depends_on {
            if keys.contains(dep) {
                continue;
            }
            let bare = strip_step_prefix(dep);
            if keys.iter().any(|k| k == bare) {
                *dep = bare.to_owned();
            }
        }
    }
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
