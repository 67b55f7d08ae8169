//! [`ToolPlanner`]: the planner of plan-and-solve runs (ReWOO's planner,
//! LLMCompiler's task list). It sees the whole objective once and writes
//! every step as a tool call with its arguments — under a JSON-schema
//! grammar built from the tools, on models that enforce schemas — with
//! `#E1`-style references to earlier results; an answer step closes the
//! plan. [`ToolPlanParser`] reads such a plan.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatRequest, Message, Plan, PlanError, PlanLimits, PlanParseError, PlanRequest,
    Planner, ProviderError, ResponseFormat, RunContext, Sampling, Step, StepAction, Tool,
    ToolError, ToolSpec,
};
use serde_json::{Map, Value, json};

use crate::json::extract_json;
use crate::prompts::{
    ANSWER_STEP, TOOL_PLAN_RETRY_INSTRUCTIONS, TOOL_PLAN_SCHEMA_NAME, TOOL_PLANNER_SYSTEM_PROMPT,
};
use crate::retry::{Rejection, call_until_accepted, checked_plan};
use crate::structured::{STEPS_KEYS, first_key, get_key};

/// The default most tool calls in one plan.
pub const DEFAULT_MAX_TOOL_STEPS: usize = 8;

/// Keys that may hold a tool step's text, in order of preference.
const TEXT_KEYS: [&str; 6] = ["step", "description", "thought", "plan", "task", "text"];
/// Keys that may hold the tool's name.
const TOOL_KEYS: [&str; 4] = ["tool", "action", "name", "function"];
/// Keys that may hold the tool's arguments.
const ARGUMENT_KEYS: [&str; 7] = [
    "with",
    "args",
    "arguments",
    "input",
    "action_input",
    "parameters",
    "tool_input",
];

/// Writes plans whose steps are tool calls (plan-and-solve).
///
/// One model call sees the objective and the tools (their descriptions and
/// arguments) and writes `{"steps": [{"step": "...", "tool": "...",
/// "with": {...}}]}`: what each step does, the tool, and its arguments,
/// where `#E1` stands for the result of the first step, `#E2` for the
/// second, and so on. On models that enforce JSON schemas
/// ([`pae_core::Capabilities::json_schema`]) the reply is constrained to
/// [`tool_plan_schema`]: every tool name is one of the tools and every
/// argument object fits that tool's schema. A reply that cannot be used
/// goes back to the model with the reason (2 retries by default).
///
/// The plan has one step per tool call, with id `E1`, `E2`, … and the call
/// as its [`StepAction::Tool`], then an answer step ([`StepAction::Answer`])
/// that writes the answer from every result. Run it with an executor that
/// carries out actions (`pae_executor::ActionExecutor`); the steps run in
/// order, each seeing every earlier result.
///
/// ```
/// use std::sync::Arc;
/// use pae_core::test_util::ScriptedModel;
/// use pae_core::{PlanRequest, Planner, StepAction, ToolSpec};
/// use pae_planner::ToolPlanner;
///
/// let model = Arc::new(ScriptedModel::new([r##"{"steps": [
///     {"step": "Eggs in 7 boxes", "tool": "calculator", "with": {"expression": "12 * 7"}},
///     {"step": "Take the broken ones away", "tool": "calculator", "with": {"expression": "#E1 - 5"}}]}"##]));
/// let calculator = ToolSpec {
///     name: "calculator".into(),
///     description: "Evaluates an arithmetic expression.".into(),
///     parameters: serde_json::json!({"type": "object",
///         "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
/// };
/// let planner = ToolPlanner::new(model, vec![calculator]);
/// let plan = futures::executor::block_on(
///     planner.plan(&PlanRequest::new("A box holds 12 eggs. How many eggs are in 7 boxes once 5 break?")),
/// )?;
/// assert_eq!(plan.len(), 3);
/// assert_eq!(plan.steps[1].id.as_deref(), Some("E2"));
/// assert!(matches!(&plan.steps[1].action, Some(StepAction::Tool { input, .. }) if input["expression"] == "#E1 - 5"));
/// assert_eq!(plan.steps[2].action, Some(StepAction::Answer));
/// # Ok::<(), pae_core::PlanError>(())
/// ```
#[derive(Clone)]
pub struct ToolPlanner {
    model: Arc<dyn ChatModel>,
    tools: Vec<ToolSpec>,
    system_prompt: String,
    examples: Vec<String>,
    max_tool_steps: usize,
    max_retries: usize,
    sampling: Sampling,
    limits: PlanLimits,
    notes: Vec<String>,
    tool_notes: Vec<ToolNote>,
}

/// A note made, before each plan, from a tool call of the run.
#[derive(Clone)]
struct ToolNote {
    tool: Arc<dyn Tool>,
    input: Value,
    note: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

impl fmt::Debug for ToolPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolPlanner")
            .field("model", &self.model.model_name())
            .field(
                "tools",
                &self.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("max_tool_steps", &self.max_tool_steps)
            .field("max_retries", &self.max_retries)
            .field(
                "tool_notes",
                &self
                    .tool_notes
                    .iter()
                    .map(|n| n.tool.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ToolPlanner {
    /// A planner over `model` for these tools, with the default prompt
    /// ([`TOOL_PLANNER_SYSTEM_PROMPT`]), no example, at most
    /// [`DEFAULT_MAX_TOOL_STEPS`] tool calls and 2 retries.
    pub fn new(model: Arc<dyn ChatModel>, tools: Vec<ToolSpec>) -> Self {
        Self {
            model,
            tools,
            system_prompt: TOOL_PLANNER_SYSTEM_PROMPT.to_owned(),
            examples: Vec::new(),
            max_tool_steps: DEFAULT_MAX_TOOL_STEPS,
            max_retries: 2,
            sampling: Sampling::default(),
            limits: PlanLimits::default(),
            notes: Vec::new(),
            tool_notes: Vec::new(),
        }
    }

    /// Adds a line the planner should know, after the prompt and before
    /// the tools: today's date (`Today is Saturday, 2026-03-14.`), so a
    /// plan never assumes a year from the model's training data.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        if !note.trim().is_empty() {
            self.notes.push(one_line(&note));
        }
        self
    }

    /// Adds a note made from a tool call: before each plan, `tool` is
    /// called with `input` as part of the run, through
    /// [`RunContext::call_tool`] (so the call is an event, is journaled on
    /// a durable run and answered from the journal on resume), and
    /// `note(result)` is added after the notes of [`Self::with_note`]. For
    /// example, the time tool's date: the plan's date then comes from the
    /// clock the steps use, and the run shows where it came from.
    ///
    /// A call that fails leaves its note out (the failure is in the run's
    /// events); a call the run stopped (cancelled, a budget) ends planning
    /// with [`ProviderError::Stopped`].
    #[must_use]
    pub fn with_tool_note(
        mut self,
        tool: Arc<dyn Tool>,
        input: Value,
        note: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.tool_notes.push(ToolNote {
            tool,
            input,
            note: Arc::new(note),
        });
        self
    }

    /// Sets the first part of the system message (the tools and the
    /// examples follow it).
    #[must_use]
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// Adds an example to the system message: a request and the plan for
    /// it, as the model should write it. Use the tools the planner has.
    #[must_use]
    pub fn with_example(mut self, request: &str, plan: &Value) -> Self {
        self.examples.push(format!("Request: {request}\n{plan}"));
        self
    }

    /// Sets the most tool calls in one plan (at least 1).
    #[must_use]
    pub fn with_max_tool_steps(mut self, max: usize) -> Self {
        self.max_tool_steps = max.max(1);
        self
    }

    /// Sets how many times a reply that cannot be used is sent back.
    #[must_use]
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the sampling of the planning call.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets the bounds plans are validated against (the answer step
    /// counts).
    #[must_use]
    pub fn with_limits(mut self, limits: PlanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The system message: the prompt, the notes, the tools with their
    /// arguments, and the examples.
    pub fn system_message(&self) -> String {
        self.system_message_noted(&[])
    }

    /// The system message with `more` notes after the planner's own.
    fn system_message_noted(&self, more: &[String]) -> String {
        let mut out = self.system_prompt.trim_end().to_owned();
        for note in self.notes.iter().chain(more) {
            out.push('\n');
            out.push_str(note);
        }
        out.push_str("\n\nTools:\n");
        for tool in &self.tools {
            let _ = writeln!(out, "- {}: {}", tool.name, one_line(&tool.description));
            for (name, property, required) in properties(&tool.parameters) {
                let kind = property
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("any");
                let need = if required { "" } else { ", optional" };
                let what = property
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| format!(": {}", one_line(d)))
                    .unwrap_or_default();
                let _ = writeln!(out, "  \"{name}\" ({kind}{need}){what}");
            }
        }
        for example in &self.examples {
            out.push('\n');
            out.push_str(example.trim_end());
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// The request this planner sends for `objective`.
    pub fn chat_request(&self, objective: &str) -> ChatRequest {
        self.chat_request_noted(objective, &[])
    }

    /// The request for `objective` with `more` notes.
    fn chat_request_noted(&self, objective: &str, more: &[String]) -> ChatRequest {
        let mut request = ChatRequest::new(vec![
            Message::system(self.system_message_noted(more)),
            Message::user(objective.trim()),
        ])
        .with_sampling(self.sampling);
        if self.model.capabilities().json_schema {
            request = request.with_response_format(ResponseFormat::json_schema(
                TOOL_PLAN_SCHEMA_NAME,
                tool_plan_schema(&self.tools, self.max_tool_steps),
            ));
        }
        request
    }

    /// The notes of [`Self::with_tool_note`], from their tool calls.
    async fn tool_notes(&self, context: &RunContext) -> Result<Vec<String>, PlanError> {
        let mut notes = Vec::new();
        for call in &self.tool_notes {
            match context
                .call_tool(call.tool.as_ref(), call.input.clone())
                .await
            {
                Ok(result) => {
                    let note = one_line(&(call.note)(&result));
                    if !note.is_empty() {
                        notes.push(note);
                    }
                }
                Err(ToolError::Stopped { reason }) => {
                    return Err(PlanError::Provider(ProviderError::Stopped { reason }));
                }
                Err(_) => {}
            }
        }
        Ok(notes)
    }
}

#[async_trait]
impl Planner for ToolPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        let notes = self.tool_notes(&request.context).await?;
        let chat = self.chat_request_noted(&request.objective, &notes);
        let parser = ToolPlanParser::new(self.tools.clone());
        let limits = self.limits;
        call_until_accepted(
            self.model.as_ref(),
            chat,
            self.max_retries,
            &request.context,
            TOOL_PLAN_RETRY_INSTRUCTIONS,
            |text| {
                let plan = parser.parse(text).map_err(Rejection::Parse)?;
                checked_plan(plan, &limits, text)
            },
        )
        .await
    }
}

/// The longest step text the plan's grammar allows, in characters.
const MAX_STEP_CHARS: u64 = 300;

/// The longest string argument the plan's grammar allows where the tool
/// sets no bound, in characters.
const MAX_ARGUMENT_CHARS: u64 = 1000;

/// `schema` with a `maxLength` on every string that has none. A small
/// model that starts repeating itself inside a string otherwise runs to
/// the token limit and leaves JSON that cannot be read; with the bound the
/// grammar closes the string and the plan stays readable.
fn bounded(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out: serde_json::Map<String, Value> = map
        .iter()
        .map(|(key, value)| (key.clone(), bounded_keyword(key, value)))
        .collect();
    let is_string = match map.get("type") {
        Some(Value::String(kind)) => kind == "string",
        Some(Value::Array(kinds)) => kinds.iter().any(|k| k == "string"),
        _ => false,
    };
    if is_string && !out.contains_key("maxLength") {
        out.insert("maxLength".to_owned(), Value::from(MAX_ARGUMENT_CHARS));
    }
    Value::Object(out)
}

/// The value of one keyword of a schema, with the schemas inside it
/// bounded; `const`, `enum`, `default` and examples are values, left alone.
fn bounded_keyword(key: &str, value: &Value) -> Value {
    match (key, value) {
        ("properties" | "patternProperties" | "$defs" | "definitions", Value::Object(inner)) => {
            Value::Object(inner.iter().map(|(k, v)| (k.clone(), bounded(v))).collect())
        }
        ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(list)) => {
            Value::Array(list.iter().map(bounded).collect())
        }
        ("items" | "additionalProperties" | "not", _) => bounded(value),
        _ => value.clone(),
    }
}

/// The JSON schema of a tool plan for these tools: `{"steps": [step]}`
/// with 1 to `max_steps` steps, each `{"step": string, "tool": <a tool's
/// name>, "with": <that tool's arguments>}` (one alternative per tool, so
/// the arguments always fit the tool named). The keys are in alphabetical
/// order, so a converter that sorts them writes them in the same order.
pub fn tool_plan_schema(tools: &[ToolSpec], max_steps: usize) -> Value {
    let alternatives: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({
                "type": "object",
                "properties": {
                    "step": {"type": "string", "minLength": 1, "maxLength": MAX_STEP_CHARS},
                    "tool": {"const": tool.name},
                    "with": bounded(&tool.parameters)
                },
                "required": ["step", "tool", "with"],
                "additionalProperties": false
            })
        })
        .collect();
    let items = match alternatives.len() {
        1 => alternatives.into_iter().next().unwrap_or_default(),
        _ => json!({"anyOf": alternatives}),
    };
    json!({
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_steps.max(1),
                "items": items
            }
        },
        "required": ["steps"],
        "additionalProperties": false
    })
}

/// Reads a tool plan (see [`ToolPlanner`]) leniently: the JSON in a fence
/// or after prose, near-JSON, `args` / `arguments` / `input` for `with`,
/// `description` for `step`, tool names in any case. A tool that is not
/// one of the tools, or arguments that are not an object, are errors the
/// planner sends back. Adds the answer step.
#[derive(Debug, Clone, Default)]
pub struct ToolPlanParser {
    tools: Vec<ToolSpec>,
}

impl ToolPlanParser {
    /// A parser for plans over these tools.
    pub fn new(tools: Vec<ToolSpec>) -> Self {
        Self { tools }
    }

    /// Parses a reply into a plan: `E1`, `E2`, … then the answer step.
    ///
    /// # Errors
    /// [`PlanParseError::NoSteps`] for an empty list,
    /// [`PlanParseError::Malformed`] with the reason otherwise.
    pub fn parse(&self, text: &str) -> Result<Plan, PlanParseError> {
        let malformed = |reason: String| PlanParseError::Malformed {
            text: text.to_owned(),
            reason,
        };
        let value = extract_json(text).map_err(malformed)?;
        let items = match &value {
            Value::Array(items) => items,
            Value::Object(map) => match first_key(map, &STEPS_KEYS) {
                Some((_, Value::Array(items))) => items,
                _ => {
                    return Err(malformed(
                        "expected an object with a \"steps\" array".into(),
                    ));
                }
            },
            _ => {
                return Err(malformed(
                    "expected an object with a \"steps\" array".into(),
                ));
            }
        };
        if items.is_empty() {
            return Err(PlanParseError::NoSteps {
                text: text.to_owned(),
            });
        }
        let mut steps = Vec::with_capacity(items.len() + 1);
        for (index, item) in items.iter().enumerate() {
            let step = self.step(index, item).map_err(malformed)?;
            steps.push(step);
        }
        steps.push(Step::new(ANSWER_STEP).with_action(StepAction::Answer));
        Ok(Plan { steps })
    }

    fn step(&self, index: usize, item: &Value) -> Result<Step, String> {
        let Value::Object(map) = item else {
            return Err(format!(
                "step {} must be an object with \"step\", \"tool\" and \"with\"",
                index + 1
            ));
        };
        let name = first_key(map, &TOOL_KEYS)
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .unwrap_or_default();
        let tool = self.find(name).ok_or_else(|| {
            let names: Vec<String> = self.tools.iter().map(|t| format!("{:?}", t.name)).collect();
            format!(
                "step {} names the tool {name:?}, which is not one of {}",
                index + 1,
                names.join(", ")
            )
        })?;
        let input = match first_key(map, &ARGUMENT_KEYS).map(|(_, v)| v) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(args @ Value::Object(_)) => args.clone(),
            Some(Value::String(text)) => match extract_json(text) {
                Ok(args @ Value::Object(_)) => args,
                _ => Value::String(text.clone()),
            },
            Some(other) => {
                return Err(format!(
                    "the arguments (\"with\") of step {} must be an object, not {other}",
                    index + 1
                ));
            }
        };
        let text = TEXT_KEYS
            .iter()
            .filter_map(|&k| get_key(map, k))
            .find_map(|v| v.as_str().map(str::trim).filter(|t| !t.is_empty()))
            .map_or_else(|| format!("{} {input}", tool.name), str::to_owned);
        Ok(Step::new(text)
            .with_id(format!("E{}", index + 1))
            .with_action(StepAction::Tool {
                tool: tool.name.clone(),
                input,
            }))
    }

    /// The tool a written name means: exactly, ignoring case, or ignoring
    /// everything but letters and digits.
    fn find(&self, name: &str) -> Option<&ToolSpec> {
        let key = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        };
        self.tools
            .iter()
            .find(|t| t.name == name)
            .or_else(|| {
                self.tools
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(name))
            })
            .or_else(|| {
                let wanted = key(name);
                (!wanted.is_empty())
                    .then(|| self.tools.iter().find(|t| key(&t.name) == wanted))
                    .flatten()
            })
    }
}

/// The properties of an arguments schema: (name, schema, required), the
/// required ones first.
fn properties(schema: &Value) -> Vec<(&str, &Value, bool)> {
    let Some(map) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out: Vec<(&str, &Value, bool)> = map
        .iter()
        .map(|(name, property)| (name.as_str(), property, required.contains(&name.as_str())))
        .collect();
    out.sort_by_key(|(_, _, required)| !*required);
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "calculator".into(),
                description: "Evaluates arithmetic.".into(),
                parameters: json!({"type": "object",
                    "properties": {"expression": {"type": "string", "description": "The expression."}},
                    "required": ["expression"]}),
            },
            ToolSpec {
                name: "read_file".into(),
                description: "Reads a file.".into(),
                parameters: json!({"type": "object",
                    "properties": {"path": {"type": "string"}}, "required": ["path"]}),
            },
        ]
    }

    #[test]
    fn plans_read_leniently() {
        let parser = ToolPlanParser::new(tools());
        let plan = parser
            .parse(
                "```json\n{'steps': [{'description': 'Read it', 'tool': 'Read_File', 'args': {'path': 'a.csv'}},\n\
                 {'tool': 'calculator', 'with': '{\"expression\": \"sum of #E1\"}'}]}\n```",
            )
            .unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan.steps[0].value, "Read it");
        assert_eq!(
            plan.steps[0].action,
            Some(StepAction::Tool {
                tool: "read_file".into(),
                input: json!({"path": "a.csv"})
            })
        );
        assert_eq!(
            plan.steps[1].value,
            "calculator {\"expression\":\"sum of #E1\"}"
        );
        assert_eq!(plan.steps[2].action, Some(StepAction::Answer));
        assert!(plan.steps[2].depends_on.is_empty());
    }

    #[test]
    fn unknown_tools_and_empty_plans_are_errors() {
        let parser = ToolPlanParser::new(tools());
        match parser.parse(r#"{"steps": [{"step": "x", "tool": "search", "with": {}}]}"#) {
            Err(PlanParseError::Malformed { reason, .. }) => {
                assert!(reason.contains("\"search\""), "{reason}");
                assert!(reason.contains("\"calculator\", \"read_file\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parser.parse(r#"{"steps": []}"#),
            Err(PlanParseError::NoSteps { .. })
        ));
        assert!(parser.parse("no json").is_err());
    }

    #[test]
    fn the_schema_has_one_alternative_per_tool() {
        let schema = tool_plan_schema(&tools(), 4);
        let items = &schema["properties"]["steps"]["items"]["anyOf"];
        assert_eq!(items[1]["properties"]["tool"]["const"], "read_file");
        assert_eq!(items[1]["properties"]["with"]["required"], json!(["path"]));
        assert_eq!(schema["properties"]["steps"]["maxItems"], 4);
        // Every string is bounded, the tool's own bounds kept.
        assert_eq!(items[0]["properties"]["step"]["maxLength"], MAX_STEP_CHARS);
        assert_eq!(
            items[1]["properties"]["with"]["properties"]["path"]["maxLength"],
            MAX_ARGUMENT_CHARS
        );
        let own = bounded(&json!({"type": "string", "maxLength": 8, "enum": ["a"]}));
        assert_eq!(
            own,
            json!({"type": "string", "maxLength": 8, "enum": ["a"]})
        );
        let one = tool_plan_schema(&tools()[..1], 4);
        assert_eq!(
            one["properties"]["steps"]["items"]["properties"]["tool"]["const"],
            "calculator"
        );
    }

    #[test]
    fn the_system_message_lists_tools_and_arguments() {
        let model = Arc::new(pae_core::test_util::ScriptedModel::new(Vec::<String>::new()));
        let planner =
            ToolPlanner::new(model, tools()).with_example("What is 2+2?", &json!({"steps": []}));
        let message = planner.system_message();
        assert!(
            message.contains(
                "- calculator: Evaluates arithmetic.\n  \"expression\" (string): The expression.\n"
            ),
            "{message}"
        );
        assert!(message.contains("  \"path\" (string)\n"), "{message}");
        assert!(
            message.ends_with("Request: What is 2+2?\n{\"steps\":[]}"),
            "{message}"
        );
        assert!(!message.contains("Today"), "{message}");
    }

    #[test]
    fn notes_come_after_the_prompt_and_before_the_tools() {
        let model = Arc::new(pae_core::test_util::ScriptedModel::new(Vec::<String>::new()));
        let planner = ToolPlanner::new(model, tools())
            .with_note("Today is Saturday,\n 2026-03-14.")
            .with_note("  ");
        let message = planner.system_message();
        let today = message.find("\nToday is Saturday, 2026-03-14.\n\nTools:\n");
        assert!(today.is_some(), "{message}");
        assert!(message.starts_with(TOOL_PLANNER_SYSTEM_PROMPT), "{message}");
    }

    /// A clock that answers its input's `format`, or fails.
    struct Clock {
        fails: bool,
    }

    #[async_trait]
    impl Tool for Clock {
        fn name(&self) -> &str {
            "clock"
        }

        fn description(&self) -> &str {
            "The date."
        }

        async fn call(&self, input: Value) -> Result<String, ToolError> {
            if self.fails {
                return Err(ToolError::failed("no clock"));
            }
            Ok(format!("Saturday, 2026-03-14 ({})", input["format"]))
        }
    }

    fn planned_with_clock(fails: bool) -> (String, Vec<pae_core::EventKind>) {
        use std::sync::Mutex;
        let model = Arc::new(pae_core::test_util::ScriptedModel::new([
            r#"{"steps": [{"step": "Now", "tool": "calculator", "with": {"expression": "1"}}]}"#,
        ]));
        let planner = ToolPlanner::new(model.clone(), tools())
            .with_note("First note.")
            .with_tool_note(Arc::new(Clock { fails }), json!({"format": "%F"}), |d| {
                format!("Today is {d}.")
            });
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let mut request = PlanRequest::new("What is the date?");
        request.context = RunContext::new(pae_core::EventSink::new(vec![Arc::new(
            move |e: &pae_core::Event| seen.lock().unwrap().push(e.kind.clone()),
        )]));
        let plan = futures::executor::block_on(planner.plan(&request)).unwrap();
        assert_eq!(plan.len(), 2);
        let system = model.requests()[0].messages[0].content.clone();
        let events = events.lock().unwrap().clone();
        (system, events)
    }

    #[test]
    fn a_tool_note_comes_from_a_call_of_the_run_outside_any_step() {
        let (system, events) = planned_with_clock(false);
        assert!(
            system.contains("First note.\nToday is Saturday, 2026-03-14 (\"%F\").\n\nTools:"),
            "{system}"
        );
        assert!(
            matches!(
                &events[0],
                pae_core::EventKind::ToolStarted { step_index: None, tool, input, .. }
                    if tool == "clock" && input["format"] == "%F"
            ),
            "{events:?}"
        );
        assert!(
            matches!(
                &events[1],
                pae_core::EventKind::ToolFinished {
                    step_index: None,
                    is_error: false,
                    ..
                }
            ),
            "{events:?}"
        );
    }

    #[test]
    fn a_failed_tool_note_is_left_out_and_planning_goes_on() {
        let (system, events) = planned_with_clock(true);
        assert!(system.contains("First note.\n\nTools:"), "{system}");
        assert!(!system.contains("Today is"), "{system}");
        assert!(events.iter().any(|e| matches!(
            e,
            pae_core::EventKind::ToolFinished {
                step_index: None,
                is_error: true,
                ..
            }
        )));
    }
}
