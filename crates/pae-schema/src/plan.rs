//! `Step` and `Plan`: what a planner produces and an executor consumes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One step of a plan.
///
/// `value` is the instruction text (LangChain's `Step.value`). `id` and
/// `depends_on` are optional: plans parsed from a numbered list have neither,
/// while structured planners give every step an id and list the ids of the
/// steps whose results it needs. `action` is set by planners that say
/// exactly what the step does (a tool call with its arguments, or writing
/// the answer), so an executor can carry it out without asking a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Step {
    /// The step's instruction text.
    #[serde(alias = "description", alias = "step", alias = "text")]
    pub value: String,
    /// A stable identifier, unique within the plan, when the planner gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Ids of the steps this step depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What the step does, exactly, when the planner said so; `None` for a
    /// step given only as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<StepAction>,
}

/// What a step does, as a planner wrote it (ReWOO's and LLMCompiler's
/// plans): an executor runs such a step as written, asking a model only
/// for what the plan left open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum StepAction {
    /// Call `tool` with `input`. References to earlier steps in its strings
    /// (`#E1`, see [`crate::find_references`]) stand for their results.
    Tool {
        /// The tool's name.
        tool: String,
        /// The arguments, a JSON object for the tool's schema.
        input: serde_json::Value,
    },
    /// Answer the objective from the results of the steps this one depends
    /// on.
    Answer,
}

impl Step {
    /// A step with the given text, no id and no dependencies.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            id: None,
            depends_on: Vec::new(),
            action: None,
        }
    }

    /// Sets what the step does exactly.
    #[must_use]
    pub fn with_action(mut self, action: StepAction) -> Self {
        self.action = Some(action);
        self
    }

    /// Sets the step's id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the ids this step depends on.
    #[must_use]
    pub fn with_depends_on<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on = ids.into_iter().map(Into::into).collect();
        self
    }
}

impl From<&str> for Step {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Step {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)?;
        if !self.depends_on.is_empty() {
            write!(f, " (after {})", self.depends_on.join(", "))?;
        }
        Ok(())
    }
}

/// An ordered list of steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Plan {
    /// The steps, in the order the planner gave them.
    pub steps: Vec<Step>,
}

impl Plan {
    /// A plan made of the given steps.
    pub fn new<I, S>(steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Step>,
    {
        Self {
            steps: steps.into_iter().map(Into::into).collect(),
        }
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Iterates over the steps in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Step> {
        self.steps.iter()
    }

    /// Whether any step declares a dependency.
    pub fn has_dependencies(&self) -> bool {
        self.steps.iter().any(|s| !s.depends_on.is_empty())
    }

    /// The id of the step at `index`: its own id, or its 1-based position
    /// when it has none. This is how dependencies name steps that came from a
    /// plain numbered list.
    pub fn step_key(&self, index: usize) -> Option<String> {
        self.steps
            .get(index)
            .map(|s| s.id.clone().unwrap_or_else(|| (index + 1).to_string()))
    }
}

impl<'a> IntoIterator for &'a Plan {
    type Item = &'a Step;
    type IntoIter = std::slice::Iter<'a, Step>;

    fn into_iter(self) -> Self::IntoIter {
        self.steps.iter()
    }
}

impl FromIterator<Step> for Plan {
    fn from_iter<T: IntoIterator<Item = Step>>(iter: T) -> Self {
        Self {
            steps: iter.into_iter().collect(),
        }
    }
}

impl fmt::Display for Plan {
    /// A numbered list, one step a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match &step.id {
                Some(id) if *id != (i + 1).to_string() => write!(f, "{}. [{id}] {step}", i + 1)?,
                _ => write!(f, "{}. {step}", i + 1)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_numbers_steps_and_shows_dependencies() {
        let plan = Plan::new([
            Step::new("look up a").with_id("a"),
            Step::new("add").with_id("b").with_depends_on(["a"]),
        ]);
        assert_eq!(plan.to_string(), "1. [a] look up a\n2. [b] add (after a)");
        assert_eq!(Plan::new(["x", "y"]).to_string(), "1. x\n2. y");
    }

    #[test]
    fn step_key_falls_back_to_position() {
        let plan = Plan::new([Step::new("x"), Step::new("y").with_id("e2")]);
        assert_eq!(plan.step_key(0).as_deref(), Some("1"));
        assert_eq!(plan.step_key(1).as_deref(), Some("e2"));
        assert_eq!(plan.step_key(2), None);
    }

    #[test]
    fn step_accepts_description_alias_from_models() {
        let step: Step =
            serde_json::from_str(r#"{"id":"1","description":"do it","depends_on":[]}"#).unwrap();
        assert_eq!(step, Step::new("do it").with_id("1"));
    }

    #[test]
    fn actions_round_trip_and_stay_out_of_plain_steps() {
        let step = Step::new("Multiply")
            .with_id("E1")
            .with_action(StepAction::Tool {
                tool: "calculator".into(),
                input: serde_json::json!({"expression": "17*23"}),
            });
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(json["action"]["kind"], "tool");
        assert_eq!(json["action"]["input"]["expression"], "17*23");
        assert_eq!(serde_json::from_value::<Step>(json).unwrap(), step);
        let plain = serde_json::to_value(Step::new("x")).unwrap();
        assert!(plain.get("action").is_none());
        let answer: Step =
            serde_json::from_str(r#"{"value":"answer","action":{"kind":"answer"}}"#).unwrap();
        assert_eq!(answer.action, Some(StepAction::Answer));
    }
}
