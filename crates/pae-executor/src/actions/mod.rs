//! [`ActionExecutor`]: carries out steps whose planner said exactly what
//! they do ([`StepAction`]), as ReWOO's worker and solver and LLMCompiler's
//! executor do: a tool call whose input is fully given runs without a model
//! call, a tool call whose input the plan left open costs one model call
//! that writes just its arguments, and the answer step is one solver call
//! that sees the objective and every result. Steps given only as text go to
//! an inner executor (an agent loop).
//!
//! - `mod.rs`: the executor and its settings;
//! - [`references`]: earlier results put into a tool call's arguments;
//! - [`prompt`]: the argument-writing and solver prompts.

mod prompt;
mod references;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::output::{first_json_value, strip_reasoning};
use pae_core::{
    ChatModel, ChatRequest, ExecError, Executor, Message, ResponseFormat, RunContext, Sampling,
    StepAction, StepInput, StepResponse, StepStatus, TokenUsage, Tool, ToolInvocation,
};
use serde_json::Value;

pub use prompt::{ARGUMENTS_SYSTEM_PROMPT, SOLVER_JSON_SYSTEM_PROMPT, SOLVER_SYSTEM_PROMPT};

use crate::agent::arguments::{ArgumentSource, prepare_arguments};
use crate::agent::toolbox::{ToolEntry, Toolbox};
use crate::schema;
use references::{Filled, fill_references};

/// How many times by default a tool step's arguments are written by the
/// model when the planned ones cannot be used (each attempt sees the error
/// of the one before).
pub const DEFAULT_MAX_ARGUMENT_ATTEMPTS: usize = 2;

/// The default limit on how much of one result the model is shown, in
/// characters.
pub const DEFAULT_MAX_RESULT_CHARS: usize = 6_000;

/// Carries out planned actions: tool calls without a model where their
/// input is fully given, the answer as one solver call, and steps without
/// an action with an inner executor.
///
/// For a step whose [`action`](pae_core::Step::action) is
/// - [`StepAction::Tool`]: references to earlier results in the arguments
///   (`#E1`) are replaced with those results when they are short values (a
///   number, a date), or lists of numbers (a table's column) where a list
///   goes (`sum(#E1)`, or the whole argument). When nothing is left open, the tool runs at once; its
///   output is the step's response, with no model call. When the arguments
///   refer to a longer result (a file's text), name an unknown step, do
///   not fit the tool's schema, or the tool refuses them, the model writes
///   the arguments: one call under the tool's JSON schema (a grammar on
///   models that enforce schemas), shown the objective, the step, the
///   results it may use and what went wrong, up to
///   [`with_max_argument_attempts`](Self::with_max_argument_attempts)
///   times. A step still without a result stops with the last error as its
///   response ([`StepStatus::Stopped`]), and the answer step is told.
/// - [`StepAction::Answer`]: one solver call that sees the objective and
///   every result the step can see (its dependencies, or every earlier step
///   of a sequential run), and writes the answer. On models that enforce
///   JSON schemas it replies `{"calculation", "final_answer"}` under a
///   grammar ([`SOLVER_JSON_SYSTEM_PROMPT`]): the final answer alone is the
///   step's response and the reply is its [`data`](StepResponse::data);
///   a reply without a final answer is used as written. The answer never
///   is a tool's output or an earlier step's text taken as it is.
/// - none: the inner executor carries it out.
///
/// Every model and tool call goes through the run context (journal,
/// budgets, events); the tokens of the step's calls are in
/// [`StepResponse::usage`].
///
/// ```
/// use std::sync::Arc;
/// use pae_core::test_util::ScriptedModel;
/// use pae_core::{Executor, Step, StepAction, StepInput, StepResponse, Tool};
/// use pae_executor::{ActionExecutor, load_agent_executor, tools::Calculator};
///
/// let model = Arc::new(ScriptedModel::new(["17 * 23 is 391, plus 366 is 757."]));
/// let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Calculator::new())];
/// let agent = load_agent_executor(model.clone(), tools.clone(), false).unwrap();
/// let executor = ActionExecutor::new(model.clone(), tools, Arc::new(agent));
///
/// // A tool call with its input given runs without the model.
/// let step = Step::new("Add the days of a leap year").with_id("E2").with_action(
///     StepAction::Tool { tool: "calculator".into(), input: serde_json::json!({"expression": "#E1 + 366"}) },
/// );
/// let first = Step::new("Multiply").with_id("E1");
/// let input = StepInput::new("What is 17*23 plus 366?", step)
///     .with_previous_steps(vec![(first.clone(), StepResponse::new("391"))]);
/// let added = futures::executor::block_on(executor.step(&input)).unwrap();
/// assert_eq!(added.response, "757");
/// assert!(model.requests().is_empty());
///
/// // The answer step is one call that sees the objective and the results.
/// let answer = Step::new("Answer").with_action(StepAction::Answer);
/// let input = StepInput::new("What is 17*23 plus 366?", answer)
///     .with_previous_steps(vec![(first, StepResponse::new("391")), (Step::new("Add").with_id("E2"), added)]);
/// let reply = futures::executor::block_on(executor.step(&input)).unwrap();
/// assert_eq!(reply.response, "17 * 23 is 391, plus 366 is 757.");
/// assert!(model.requests()[0].messages[1].content.contains("What is 17*23 plus 366?"));
/// ```
#[derive(Clone)]
pub struct ActionExecutor {
    model: Arc<dyn ChatModel>,
    tools: Toolbox,
    inner: Arc<dyn Executor>,
    sampling: Sampling,
    max_argument_attempts: usize,
    max_result_chars: usize,
}

impl fmt::Debug for ActionExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionExecutor")
            .field("model", &self.model.model_name())
            .field("tools", &self.tools.names())
            .field("max_argument_attempts", &self.max_argument_attempts)
            .field("max_result_chars", &self.max_result_chars)
            .finish_non_exhaustive()
    }
}

impl ActionExecutor {
    /// An executor over `model` with `tools`, handing steps without an
    /// action to `inner` (for example an [`AgentExecutor`](crate::AgentExecutor)
    /// with the same tools).
    pub fn new(
        model: Arc<dyn ChatModel>,
        tools: Vec<Arc<dyn Tool>>,
        inner: Arc<dyn Executor>,
    ) -> Self {
        Self {
            model,
            tools: Toolbox::new(tools),
            inner,
            sampling: Sampling::default(),
            max_argument_attempts: DEFAULT_MAX_ARGUMENT_ATTEMPTS,
            max_result_chars: DEFAULT_MAX_RESULT_CHARS,
        }
    }

    /// Sets the sampling of the executor's own model calls.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets how many times the model may write a tool step's arguments
    /// (default [`DEFAULT_MAX_ARGUMENT_ATTEMPTS`]; 0: never, a step whose
    /// planned input cannot be used stops).
    #[must_use]
    pub fn with_max_argument_attempts(mut self, attempts: usize) -> Self {
        self.max_argument_attempts = attempts;
        self
    }

    /// Sets how much of one result the model is shown, in characters
    /// (default [`DEFAULT_MAX_RESULT_CHARS`]).
    #[must_use]
    pub fn with_max_result_chars(mut self, chars: usize) -> Self {
        self.max_result_chars = chars.max(1);
        self
    }

    /// The solver call: the answer from the objective and the results.
    async fn answer(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        let context = input.context.in_step(input.index);
        let results = prompt::results(&input.previous_steps, self.max_result_chars);
        let structured = self.model.capabilities().json_schema;
        let system = if structured {
            SOLVER_JSON_SYSTEM_PROMPT
        } else {
            SOLVER_SYSTEM_PROMPT
        };
        let mut request = ChatRequest::new(vec![
            Message::system(system),
            Message::user(prompt::solver_message(&input.objective, &results)),
        ])
        .with_sampling(self.sampling);
        if structured {
            request = request.with_response_format(ResponseFormat::json_schema(
                "answer",
                prompt::solver_schema(),
            ));
        }
        let response = context.chat(self.model.as_ref(), request).await?;
        let usage = response.usage.unwrap_or_default();
        let text = strip_reasoning(&response.message.content).trim().to_owned();
        // The calculation is the model's working, kept as the step's data
        // (shown by `pae show` and the report); the answer is the final
        // answer alone.
        if structured
            && let Ok(reply) = first_json_value(&text)
            && let Some(answer) = prompt::solver_answer(&reply)
        {
            return Ok(StepResponse::new(answer).with_data(reply).with_usage(usage));
        }
        Ok(StepResponse::new(text).with_usage(usage))
    }

    /// A planned tool call: run as given, or with arguments the model
    /// writes when the plan left them open.
    async fn tool_step(
        &self,
        input: &StepInput,
        name: &str,
        planned: &Value,
    ) -> Result<StepResponse, ExecError> {
        let Some(entry) = self.tools.find(name) else {
            // Not a tool of ours: the step's text is all there is.
            return self.inner.step(input).await;
        };
        let context = input.context.in_step(input.index);
        let mut step = ToolStep {
            calls: Vec::new(),
            usage: TokenUsage::default(),
        };
        let filled = fill_references(planned, &input.previous_steps);
        let mut problem = match filled {
            Filled::Given(args) => match self.call(&context, entry, args.clone()).await {
                Attempt::Output(output) => {
                    step.record(entry, args, &output, false);
                    return Ok(step.done(output));
                }
                Attempt::Refused(error, allowed) => {
                    step.record(entry, args.clone(), &error, true);
                    // The step is shown as planned (`#E1 / 7`): with a
                    // result put in, a small model copies it whole.
                    Problem::Failed {
                        args,
                        error,
                        planned: Some(planned.clone()),
                        allowed,
                    }
                }
                Attempt::Stopped(error) => return Err(tool_error(entry, error)),
            },
            Filled::Open { args, reason } => Problem::Open { args, reason },
        };
        for _ in 0..self.max_argument_attempts {
            let args = match self.write_arguments(input, &context, entry, &problem).await {
                Ok((args, usage)) => {
                    step.usage += usage;
                    // The model is shown results by their ids and may write
                    // `#E1` itself: those are filled in like the plan's.
                    match fill_references(&args, &input.previous_steps) {
                        Filled::Given(args) | Filled::Open { args, .. } => args,
                    }
                }
                Err(Written::Provider(error)) => return Err(error.into()),
                Err(Written::Unreadable { text, usage, error }) => {
                    step.usage += usage;
                    problem = Problem::Failed {
                        args: Value::String(text),
                        error,
                        planned: None,
                        allowed: None,
                    };
                    continue;
                }
            };
            match self.call(&context, entry, args.clone()).await {
                Attempt::Output(output) => {
                    step.record(entry, args, &output, false);
                    return Ok(step.done(output));
                }
                Attempt::Refused(error, allowed) => {
                    step.record(entry, args.clone(), &error, true);
                    problem = Problem::Failed {
                        args,
                        error,
                        planned: None,
                        allowed,
                    };
                }
                Attempt::Stopped(error) => return Err(tool_error(entry, error)),
            }
        }
        let (text, reason) = match problem {
            Problem::Failed { error, .. } => (
                prompt::tool_step_failed(&entry.spec.name, &error),
                "tool call failed".to_owned(),
            ),
            Problem::Open { reason, .. } => (
                prompt::tool_step_open(&entry.spec.name, &reason),
                "tool input left open".to_owned(),
            ),
        };
        Ok(step.stopped(text, reason))
    }

    /// Checks the arguments against the tool and calls it through the run
    /// context.
    async fn call(&self, context: &RunContext, entry: &ToolEntry, args: Value) -> Attempt {
        let params = &entry.spec.parameters;
        let args = match prepare_arguments(args.clone(), params, ArgumentSource::Text) {
            Ok(args) => args,
            Err(error) => {
                context.record_refused_call(&entry.spec.name, args, &error);
                return Attempt::Refused(error, None);
            }
        };
        let violations = schema::validate(params, &args);
        if !violations.is_empty() {
            let problems: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let error = problems.join("; ");
            context.record_refused_call(&entry.spec.name, args, &error);
            return Attempt::Refused(error, None);
        }
        let _exclusive = match &entry.exclusive {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        match context.call_tool(entry.tool.as_ref(), args).await {
            Ok(output) => Attempt::Output(output),
            Err(error) if error.is_stopped() => Attempt::Stopped(error),
            Err(error) => {
                let allowed = error.allowed().map(|(argument, values)| Allowed {
                    argument: argument.to_owned(),
                    values: values.to_vec(),
                });
                Attempt::Refused(error.to_string(), allowed)
            }
        }
    }

    /// One model call that writes the tool's arguments.
    async fn write_arguments(
        &self,
        input: &StepInput,
        context: &RunContext,
        entry: &ToolEntry,
        problem: &Problem,
    ) -> Result<(Value, TokenUsage), Written> {
        let results = prompt::results(&input.previous_steps, self.max_result_chars);
        let (attempt, error, refused, planned, allowed) = match problem {
            Problem::Open { args, reason } => (args, reason.as_str(), false, args, None),
            Problem::Failed {
                args,
                error,
                planned,
                allowed,
            } => (
                args,
                error.as_str(),
                true,
                planned.as_ref().unwrap_or(args),
                allowed.as_ref(),
            ),
        };
        let message = prompt::arguments_message(&prompt::ArgumentsPrompt {
            objective: &input.objective,
            results: &results,
            step: &input.current_step.value,
            tool: &entry.spec.name,
            description: &entry.spec.description,
            attempt,
            planned,
            error,
            refused,
        });
        let mut request = ChatRequest::new(vec![
            Message::system(ARGUMENTS_SYSTEM_PROMPT),
            Message::user(message),
        ])
        .with_sampling(self.sampling);
        if self.model.capabilities().json_schema {
            let mut schema = entry.spec.parameters.clone();
            if let Some(allowed) = allowed {
                allowed.restrict(&mut schema);
            }
            request =
                request.with_response_format(ResponseFormat::json_schema("arguments", schema));
        }
        let response = context
            .chat(self.model.as_ref(), request)
            .await
            .map_err(Written::Provider)?;
        let usage = response.usage.unwrap_or_default();
        let text = strip_reasoning(&response.message.content).trim().to_owned();
        match first_json_value(&text) {
            Ok(args) => Ok((args, usage)),
            Err(error) => Err(Written::Unreadable { text, usage, error }),
        }
    }
}

/// The values a tool said one of its arguments may take
/// ([`pae_core::ToolError::NotOneOf`]).
#[derive(Debug, Clone)]
struct Allowed {
    argument: String,
    values: Vec<String>,
}

impl Allowed {
    /// Holds `schema`'s property for the argument to the values (a JSON
    /// schema `enum`), so a model that writes the call again under the
    /// schema cannot repeat a value the tool refused. A schema without
    /// that string property is left alone.
    fn restrict(&self, schema: &mut Value) {
        let Some(property) = schema
            .get_mut("properties")
            .and_then(|p| p.get_mut(&self.argument))
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        if property.get("type").and_then(Value::as_str) != Some("string") {
            return;
        }
        property.insert(
            "enum".to_owned(),
            Value::Array(self.values.iter().cloned().map(Value::String).collect()),
        );
        // Bounds on the text no longer apply to a choice.
        property.remove("maxLength");
        property.remove("minLength");
        property.remove("pattern");
    }
}

/// Why a tool step's planned input cannot be used as it is.
enum Problem {
    /// It refers to results that must be read first.
    Open { args: Value, reason: String },
    /// The tool refused it (or it did not fit the schema); `planned` is
    /// the plan's arguments when the refused ones had results put in.
    Failed {
        args: Value,
        error: String,
        planned: Option<Value>,
        /// The values the tool said an argument may take.
        allowed: Option<Allowed>,
    },
}

/// What calling the tool gave.
enum Attempt {
    Output(String),
    /// The tool or the schema refused the arguments; the tool may name
    /// the values an argument can take.
    Refused(String, Option<Allowed>),
    /// The run stopped the call (cancelled, a budget, a call in doubt).
    Stopped(pae_core::ToolError),
}

/// Why the model's arguments could not be had.
enum Written {
    Provider(pae_core::ProviderError),
    Unreadable {
        text: String,
        usage: TokenUsage,
        error: String,
    },
}

fn tool_error(entry: &ToolEntry, source: pae_core::ToolError) -> ExecError {
    ExecError::Tool {
        tool: entry.spec.name.clone(),
        source,
    }
}

/// The calls and tokens of one tool step.
struct ToolStep {
    calls: Vec<ToolInvocation>,
    usage: TokenUsage,
}

impl ToolStep {
    fn record(&mut self, entry: &ToolEntry, input: Value, observation: &str, is_error: bool) {
        let mut call = ToolInvocation::new(entry.spec.name.clone(), input, observation);
        call.is_error = is_error;
        self.calls.push(call);
    }

    fn done(self, output: String) -> StepResponse {
        StepResponse::new(output)
            .with_tool_calls(self.calls)
            .with_usage(self.usage)
    }

    fn stopped(self, text: String, reason: String) -> StepResponse {
        StepResponse::new(text)
            .with_status(StepStatus::Stopped { reason })
            .with_tool_calls(self.calls)
            .with_usage(self.usage)
    }
}

#[async_trait]
impl Executor for ActionExecutor {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        match &input.current_step.action {
            Some(StepAction::Answer) => self.answer(input).await,
            Some(StepAction::Tool { tool, input: args }) => self.tool_step(input, tool, args).await,
            _ => self.inner.step(input).await,
        }
    }
}
