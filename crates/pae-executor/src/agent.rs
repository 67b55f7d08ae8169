//! [`AgentExecutor`]: a tool-using agent that carries out one plan step, with
//! text-JSON actions or native tool calls, and the loop rules that keep one
//! bad reply or one failing tool from sinking a whole run.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pae_core::adapter::cut_at_stop;
use pae_core::{
    ChatModel, ChatRequest, ChatResponse, EventKind, ExecError, Executor, Inputs, Message,
    PromptTemplate, PromptValues, Sampling, StepInput, StepResponse, StepStatus, TokenUsage, Tool,
    ToolCall, ToolChoice, ToolInvocation, ToolSpec,
};
use serde_json::{Map, Value};

use crate::action::{Action, ActionParseError, is_final_answer, parse_action, strip_reasoning};
use crate::error::ConfigError;
use crate::history::{HistoryPolicy, render_previous_steps};
use crate::prompt::{self, ToolLine};
use crate::schema;

/// The default iteration limit per step (LangChain's).
pub const DEFAULT_MAX_ITERATIONS: usize = 15;

/// The default number of unparseable replies fed back before giving up.
pub const DEFAULT_MAX_PARSE_RETRIES: usize = 2;

/// The stop sequence of text-JSON requests: the model must not write the
/// observation itself.
pub const OBSERVATION_STOP: &str = "Observation:";

/// The `tool` of the [`ToolInvocation`] recorded for a reply that held no
/// usable action (its `input` is the reply, its `observation` the feedback
/// the model got).
pub const INVALID_REPLY: &str = "_invalid_reply";

/// What the step returns when a limit is hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EarlyStopping {
    /// A fixed response saying the agent stopped (LangChain's default); no
    /// further model call.
    #[default]
    Force,
    /// One last model call asking for the best final answer from the work
    /// so far. That call is not bounded by the wall-clock limit (which has
    /// passed); bound the model itself if it must be.
    Generate,
}

/// What a tool's error does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ToolErrorPolicy {
    /// The error message becomes the observation and the loop goes on.
    #[default]
    Observe,
    /// The step fails with [`ExecError::Tool`].
    Abort,
}

/// How the model expresses actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ActionFormat {
    /// Native tool calls when the model's capabilities advertise them,
    /// text-JSON otherwise.
    #[default]
    Auto,
    /// A fenced JSON action in the reply text, with a Thought / Action /
    /// Observation scratchpad; works with any model.
    TextJson,
    /// Tool specifications in the request, tool calls in the reply, results
    /// as tool messages with the call id.
    Native,
}

/// Every loop setting of an [`AgentExecutor`]; see the builder's `with_*`
/// methods for what each does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentSettings {
    /// Model calls per step before early stopping (0: stop at once).
    pub max_iterations: usize,
    /// Wall-clock limit per step; `None` for none.
    pub max_execution_time: Option<Duration>,
    /// What a limit produces.
    pub early_stopping: EarlyStopping,
    /// What a tool error does.
    pub tool_errors: ToolErrorPolicy,
    /// Unparseable replies in a row fed back to the model before the step
    /// fails.
    pub max_parse_retries: usize,
    /// How actions are expressed.
    pub action_format: ActionFormat,
    /// Which previous steps are shown in full.
    pub history: HistoryPolicy,
    /// Whether the step prompt shows the overall objective.
    pub include_task_in_prompt: bool,
    /// Whether a text reply with no action at all is taken as the answer.
    pub plain_text_answers: bool,
    /// Whether a step stopped at a limit without an answer answers with its
    /// last successful tool result instead of the fixed stopped text.
    pub last_result_on_stop: bool,
    /// Repeats of an identical successful call after which the step stops;
    /// `None` for no limit.
    pub max_repeated_calls: Option<usize>,
    /// Observations longer than this many characters are cut.
    pub max_observation_chars: Option<usize>,
    /// Sampling settings of every request.
    pub sampling: Sampling,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_execution_time: None,
            early_stopping: EarlyStopping::Force,
            tool_errors: ToolErrorPolicy::Observe,
            max_parse_retries: DEFAULT_MAX_PARSE_RETRIES,
            action_format: ActionFormat::Auto,
            history: HistoryPolicy::All,
            include_task_in_prompt: false,
            plain_text_answers: false,
            last_result_on_stop: false,
            max_repeated_calls: None,
            max_observation_chars: None,
            sampling: Sampling::default(),
        }
    }
}

/// Builds an [`AgentExecutor`]; every loop setting has a `with_*` method.
#[must_use]
pub struct AgentExecutorBuilder {
    model: Arc<dyn ChatModel>,
    tools: Vec<Arc<dyn Tool>>,
    settings: AgentSettings,
    preamble: String,
    step_template: Option<PromptTemplate>,
}

impl fmt::Debug for AgentExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentExecutorBuilder")
            .field("model", &self.model.model_name())
            .field(
                "tools",
                &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AgentExecutorBuilder {
    /// Adds tools.
    pub fn with_tools<I>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = Arc<dyn Tool>>,
    {
        self.tools.extend(tools);
        self
    }

    /// Adds one tool.
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Model calls per step before early stopping (default
    /// [`DEFAULT_MAX_ITERATIONS`]). A call whose reply could not be parsed
    /// counts; a call that ran several native tool calls counts once.
    pub fn with_max_iterations(mut self, max_iterations: usize) -> Self {
        self.settings.max_iterations = max_iterations;
        self
    }

    /// A wall-clock limit per step, enforced with `tokio::time::timeout`
    /// around the whole loop: a model call or tool in flight is cancelled.
    /// Needs a tokio runtime with the time driver.
    pub fn with_max_execution_time(mut self, limit: Duration) -> Self {
        self.settings.max_execution_time = Some(limit);
        self
    }

    /// What hitting a limit produces (default [`EarlyStopping::Force`]).
    pub fn with_early_stopping(mut self, policy: EarlyStopping) -> Self {
        self.settings.early_stopping = policy;
        self
    }

    /// What a tool error does (default [`ToolErrorPolicy::Observe`]).
    pub fn with_tool_errors(mut self, policy: ToolErrorPolicy) -> Self {
        self.settings.tool_errors = policy;
        self
    }

    /// How many unparseable replies in a row are fed back to the model
    /// before the step fails with [`ExecError::UnparseableReply`] (default
    /// [`DEFAULT_MAX_PARSE_RETRIES`]; the failure comes with the next one).
    /// A reply that parses resets the count.
    pub fn with_max_parse_retries(mut self, retries: usize) -> Self {
        self.settings.max_parse_retries = retries;
        self
    }

    /// How actions are expressed (default [`ActionFormat::Auto`]).
    pub fn with_action_format(mut self, format: ActionFormat) -> Self {
        self.settings.action_format = format;
        self
    }

    /// Which previous steps are shown in full (default
    /// [`HistoryPolicy::All`]).
    pub fn with_history(mut self, history: HistoryPolicy) -> Self {
        self.settings.history = history;
        self
    }

    /// Whether the step prompt shows the overall objective (default: no, as
    /// LangChain).
    pub fn with_task_in_prompt(mut self, include: bool) -> Self {
        self.settings.include_task_in_prompt = include;
        self
    }

    /// Whether a text-JSON reply without any action (plain prose) is taken
    /// as the step's answer, as LangChain does. Default: no; it is fed back
    /// as a parse error, since prose is as often an unfinished thought as an
    /// answer. Replies with a `Final Answer:` line are answers either way.
    pub fn with_plain_text_answers(mut self, accept: bool) -> Self {
        self.settings.plain_text_answers = accept;
        self
    }

    /// Whether a step that stops at a limit with no answer (early stopping
    /// "force", or a "generate" call that still gave none) answers with its
    /// last successful tool result instead of the fixed stopped text.
    /// Default: no, as LangChain. Small models often keep calling a tool
    /// whose result already answers the step; with this set, that result
    /// reaches the next steps. The step's status stays
    /// [`StepStatus::Stopped`] either way, so the difference stays visible.
    pub fn with_last_result_on_stop(mut self, enabled: bool) -> Self {
        self.settings.last_result_on_stop = enabled;
        self
    }

    /// Stops the step, as at a limit, once the model has repeated a call it
    /// already made successfully (same tool, same arguments) `max` times
    /// (default: no limit; each repeat only gets a note saying the result
    /// is known). Small models loop on such calls until the iteration
    /// limit; this ends the loop early, and the early-stopping policy (and
    /// [`with_last_result_on_stop`](Self::with_last_result_on_stop)) then
    /// gives the answer. The reason reads "repeated call (1 time)", "(2
    /// times)" and so on; 0
    /// stops at the first repeat, as 1 does.
    pub fn with_max_repeated_calls(mut self, max: usize) -> Self {
        self.settings.max_repeated_calls = Some(max);
        self
    }

    /// Cuts observations longer than `max` characters (default: no limit).
    pub fn with_max_observation_chars(mut self, max: usize) -> Self {
        self.settings.max_observation_chars = Some(max);
        self
    }

    /// Sampling settings of every request.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.settings.sampling = sampling;
        self
    }

    /// Replaces every setting at once.
    pub fn with_settings(mut self, settings: AgentSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Replaces the first paragraph of the system message (default
    /// [`prompt::DEFAULT_PREAMBLE`]). Used verbatim: braces are literal.
    pub fn with_preamble(mut self, preamble: impl Into<String>) -> Self {
        self.preamble = preamble.into();
        self
    }

    /// Replaces the step (human) message template. Placeholders:
    /// `{previous_steps}`, `{current_step}`, `{objective}`, `{step_number}`,
    /// `{agent_scratchpad}` and any run input; values are inserted
    /// verbatim. Text-JSON actions need `{agent_scratchpad}`.
    pub fn with_step_template(mut self, template: PromptTemplate) -> Self {
        self.step_template = Some(template);
        self
    }

    /// Builds the executor.
    ///
    /// # Errors
    /// [`ConfigError`] for duplicate, empty or reserved tool names, or a
    /// step template without `{agent_scratchpad}` when actions are text.
    pub fn build(self) -> Result<AgentExecutor, ConfigError> {
        let mut names: Vec<&str> = Vec::with_capacity(self.tools.len());
        for tool in &self.tools {
            let name = tool.name();
            if name.trim().is_empty() {
                return Err(ConfigError::EmptyToolName);
            }
            if is_final_answer(name) {
                return Err(ConfigError::ReservedToolName { name: name.into() });
            }
            if names.contains(&name) {
                return Err(ConfigError::DuplicateTool { name: name.into() });
            }
            names.push(name);
        }
        let native = match self.settings.action_format {
            ActionFormat::Auto => self.model.capabilities().native_tools,
            ActionFormat::TextJson => false,
            ActionFormat::Native => true,
        };
        let step_template = match self.step_template {
            Some(template) => template,
            None => PromptTemplate::new(if self.settings.include_task_in_prompt {
                prompt::DEFAULT_STEP_TEMPLATE_WITH_OBJECTIVE
            } else {
                prompt::DEFAULT_STEP_TEMPLATE
            })?,
        };
        if !native && !step_template.variables().contains(&"agent_scratchpad") {
            return Err(ConfigError::MissingScratchpad);
        }
        let tools: Vec<ToolEntry> = self
            .tools
            .into_iter()
            .map(|tool| ToolEntry {
                spec: tool.spec(),
                exclusive: (!(tool.is_read_only() && tool.is_idempotent()))
                    .then(|| Arc::new(tokio::sync::Mutex::new(()))),
                tool,
            })
            .collect();
        let lines: Vec<ToolLine<'_>> = tools
            .iter()
            .map(|t| ToolLine {
                name: &t.spec.name,
                description: &t.spec.description,
                parameters: &t.spec.parameters,
            })
            .collect();
        let system_prompt = if native {
            prompt::native_system_prompt(&self.preamble, !tools.is_empty())
        } else {
            prompt::text_system_prompt(&self.preamble, &lines)
        };
        Ok(AgentExecutor {
            model: self.model,
            tools,
            settings: self.settings,
            native,
            system_prompt,
            step_template,
        })
    }
}

struct ToolEntry {
    tool: Arc<dyn Tool>,
    spec: ToolSpec,
    /// Held while a tool that is not both read-only and idempotent runs, so
    /// concurrent steps never call it concurrently with itself.
    exclusive: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A tool-using agent that carries out one plan step (LangChain's
/// `AgentExecutor` with a `StructuredChatAgent`, plus native tool calling).
///
/// Each iteration calls the model once with the system message (the tools
/// and the action format) and the step message (the previous steps as
/// readable text, the current step, optionally the objective, and the work
/// on the step so far), then acts on the reply:
///
/// - **a final answer** ends the step; a non-string answer is serialised to
///   JSON text and also kept in [`StepResponse::data`];
/// - **a tool action** runs the tool; its output (or an explanation) is the
///   observation the model sees next. An unknown tool's observation names
///   the valid tools; arguments failing the tool's JSON schema get an
///   observation saying what is wrong, and the tool is not run; a tool
///   error becomes the observation, or fails the step under
///   [`ToolErrorPolicy::Abort`]. `ToolStarted`/`ToolFinished` events are
///   emitted around every action;
/// - **an unparseable reply** is fed back with the parse error, up to the
///   retry budget, then the step fails with [`ExecError::UnparseableReply`].
///
/// When the iteration or wall-clock limit is hit, the early-stopping policy
/// gives the response and the status is [`StepStatus::Stopped`]. Every
/// action, its input and its observation is in
/// [`StepResponse::tool_calls`]; the tokens of every model call are summed
/// in [`StepResponse::usage`].
///
/// Arguments are fitted to the tool as a LangChain user expects before the
/// schema check: a bare value for a tool with one argument becomes that
/// argument (`"action_input": "2+2"` for the calculator), JSON text of an
/// object is decoded, `null` and `""` are `{}`, and a one-key object under
/// another name is renamed to a tool's only, required argument. Tool names
/// are matched exactly, then ignoring case, then ignoring spaces,
/// punctuation and a `functions.` prefix (when only one tool matches).
///
/// With native tool calls, every call of a reply is run in order and
/// answered with a tool message carrying its call id (an id is made up
/// when the provider sent none, or the same one twice). A call to a
/// `final_answer` function answers the step when it is the only kind of
/// call in the reply.
#[derive(Clone)]
pub struct AgentExecutor {
    model: Arc<dyn ChatModel>,
    tools: Vec<ToolEntry>,
    settings: AgentSettings,
    native: bool,
    system_prompt: String,
    step_template: PromptTemplate,
}

impl Clone for ToolEntry {
    fn clone(&self) -> Self {
        Self {
            tool: Arc::clone(&self.tool),
            spec: self.spec.clone(),
            // Clones of an executor share the tool, so they share its lock.
            exclusive: self.exclusive.clone(),
        }
    }
}

impl fmt::Debug for AgentExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentExecutor")
            .field("model", &self.model.model_name())
            .field("tools", &self.tool_names())
            .field("native", &self.native)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Builds the step executor LangChain's `load_agent_executor` builds: an
/// [`AgentExecutor`] over `model` with `tools`, default loop settings, and
/// the objective in the step prompt when `include_task_in_prompt` is set.
/// Use [`AgentExecutor::builder`] to change any loop setting.
///
/// # Errors
/// [`ConfigError`] for duplicate, empty or reserved tool names.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use pae_core::{Executor, StepInput, Tool};
/// use pae_core::test_util::ScriptedModel;
/// use pae_executor::{load_agent_executor, tools::Calculator};
///
/// let model = Arc::new(ScriptedModel::new([
///     "Thought: compute\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"6*7\"}}\n```",
///     "Thought: done\nAction:\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"42\"}\n```",
/// ]));
/// let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Calculator::new())];
/// let executor = load_agent_executor(model.clone(), tools, true).unwrap();
/// let response = futures::executor::block_on(
///     executor.step(&StepInput::new("What is 6 times 7?", "Multiply 6 by 7")),
/// ).unwrap();
/// assert_eq!(response.response, "42");
/// assert_eq!(response.tool_calls[0].observation, "42");
/// assert!(model.requests()[1].messages[1].content.contains("Observation: 42"));
/// ```
pub fn load_agent_executor(
    model: Arc<dyn ChatModel>,
    tools: Vec<Arc<dyn Tool>>,
    include_task_in_prompt: bool,
) -> Result<AgentExecutor, ConfigError> {
    AgentExecutor::builder(model)
        .with_tools(tools)
        .with_task_in_prompt(include_task_in_prompt)
        .build()
}

impl AgentExecutor {
    /// A builder over `model` with no tools and default settings.
    pub fn builder(model: Arc<dyn ChatModel>) -> AgentExecutorBuilder {
        AgentExecutorBuilder {
            model,
            tools: Vec::new(),
            settings: AgentSettings::default(),
            preamble: String::from(prompt::DEFAULT_PREAMBLE),
            step_template: None,
        }
    }

    /// The loop settings.
    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    /// Whether actions are native tool calls (`false`: text-JSON).
    pub fn uses_native_tools(&self) -> bool {
        self.native
    }

    /// The system message sent with every request.
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The tools' names, in order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.spec.name.as_str()).collect()
    }

    /// The tool a model's name means: the exact name, else the only tool
    /// whose name matches ignoring case, else the only one that matches
    /// ignoring case, spaces and punctuation, a `functions.` prefix and a
    /// trailing `()` (`Calculator`, `current time`, `functions.read_file`).
    fn find_tool(&self, name: &str) -> Option<&ToolEntry> {
        let name = name.trim();
        if let Some(exact) = self.tools.iter().find(|t| t.spec.name == name) {
            return Some(exact);
        }
        self.only_tool(|t| t.eq_ignore_ascii_case(name))
            .or_else(|| {
                let key = tool_key(name);
                if key.is_empty() {
                    return None;
                }
                self.only_tool(|t| tool_key(t) == key)
            })
    }

    /// The one tool whose name satisfies `matches`; `None` for none or
    /// several.
    fn only_tool(&self, matches: impl Fn(&str) -> bool) -> Option<&ToolEntry> {
        let mut found = self.tools.iter().filter(|t| matches(&t.spec.name));
        match (found.next(), found.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// The step message for this state of the run.
    fn step_message(&self, step: &StepPrompt<'_>, scratchpad: &str) -> Result<String, ExecError> {
        let values = PromptVars { step, scratchpad };
        let mut text = self.step_template.format(&values)?;
        text.truncate(text.trim_end().len());
        Ok(text)
    }

    fn base_request(&self, messages: Vec<Message>) -> ChatRequest {
        let request = ChatRequest::new(messages).with_sampling(self.settings.sampling);
        if self.native {
            if self.tools.is_empty() {
                request
            } else {
                request
                    .with_tools(self.tools.iter().map(|t| t.spec.clone()).collect())
                    .with_tool_choice(ToolChoice::Auto)
            }
        } else {
            request.with_stop([OBSERVATION_STOP])
        }
    }

    /// The request of the next iteration.
    fn next_request(&self, step: &StepPrompt<'_>, run: &StepRun) -> Result<ChatRequest, ExecError> {
        let mut messages = Vec::with_capacity(2 + run.messages.len());
        messages.push(Message::system(self.system_prompt.clone()));
        if self.native {
            messages.push(Message::user(self.step_message(step, "")?));
            messages.extend(run.messages.iter().cloned());
        } else {
            messages.push(Message::user(self.step_message(step, &run.scratchpad)?));
        }
        Ok(self.base_request(messages))
    }

    /// Runs iterations until a final answer or the iteration limit.
    async fn drive(
        &self,
        input: &StepInput,
        step: &StepPrompt<'_>,
        run: &mut StepRun,
    ) -> Result<Outcome, ExecError> {
        while run.iterations < self.settings.max_iterations {
            run.iterations += 1;
            let request = self.next_request(step, run)?;
            let response = self.model.chat(request).await?;
            run.add_usage(&response);
            let finish = if self.native {
                self.on_native_reply(input, run, response).await?
            } else {
                self.on_text_reply(input, run, &response.message.content)
                    .await?
            };
            if let Some(finish) = finish {
                return Ok(Outcome::Finished(finish));
            }
            if let Some(reason) = run.gave_up.take() {
                return Ok(Outcome::Stopped(reason));
            }
        }
        Ok(Outcome::Stopped(format!(
            "iteration limit ({} model calls)",
            self.settings.max_iterations
        )))
    }

    async fn on_text_reply(
        &self,
        input: &StepInput,
        run: &mut StepRun,
        content: &str,
    ) -> Result<Option<Finish>, ExecError> {
        // Providers that ignore stop sequences would let the model invent
        // an observation; cut it here as well (after a reasoning model's
        // thoughts, which may mention one).
        let visible = strip_reasoning(content);
        let text = cut_at_stop(&visible, &[String::from(OBSERVATION_STOP)]);
        match parse_action(text) {
            Ok(Action::Final { answer }) => Ok(Some(Finish::from_value(answer))),
            Ok(Action::Tool { name, input: args }) => {
                let observation = self
                    .act(input, run, &name, args, text, ArgumentSource::Text)
                    .await?;
                run.push_scratchpad(text, &observation);
                Ok(None)
            }
            Err(ActionParseError::NoAction) if self.settings.plain_text_answers => {
                Ok(Some(Finish::text(strip_thought_label(text))))
            }
            Err(error) => {
                let observation = self.parse_failure(run, &error, text)?;
                run.push_scratchpad(text, &observation);
                Ok(None)
            }
        }
    }

    /// Counts an unparseable reply; the observation to feed back, or the
    /// error once the budget is spent.
    fn parse_failure(
        &self,
        run: &mut StepRun,
        error: &ActionParseError,
        text: &str,
    ) -> Result<String, ExecError> {
        run.parse_failures += 1;
        if run.parse_failures > self.settings.max_parse_retries {
            // A model that keeps saying nothing has given up on the step:
            // stop it as at a limit (the early-stopping policy gives the
            // answer) rather than failing the whole run. Replies with text
            // that cannot be parsed are a typed error.
            if matches!(error, ActionParseError::Empty) {
                run.gave_up = Some(format!(
                    "limit of empty replies ({} in a row)",
                    run.parse_failures
                ));
                return Ok(String::new());
            }
            return Err(ExecError::UnparseableReply {
                attempts: run.parse_failures,
                reason: error.to_string(),
                text: text.to_owned(),
            });
        }
        let observation = match (self.native, error) {
            (true, ActionParseError::Empty) => prompt::EMPTY_NATIVE_REPLY.to_owned(),
            (true, _) => prompt::unparseable_native_call(&error.to_string()),
            (false, _) => prompt::unparseable_reply(&error.to_string()),
        };
        run.calls.push(ToolInvocation {
            tool: INVALID_REPLY.to_owned(),
            input: Value::String(text.to_owned()),
            observation: observation.clone(),
            log: text.to_owned(),
            is_error: true,
            duration_ms: None,
        });
        Ok(observation)
    }

    async fn on_native_reply(
        &self,
        input: &StepInput,
        run: &mut StepRun,
        response: ChatResponse,
    ) -> Result<Option<Finish>, ExecError> {
        let Message {
            content,
            tool_calls,
            ..
        } = response.message;
        if !tool_calls.is_empty() {
            let tool_calls = with_unique_ids(tool_calls, run.iterations);
            // A call to a "final_answer" function (models trained on agent
            // frameworks that have one) answers, when it is the only kind.
            let only_answers = tool_calls.iter().all(|c| is_final_answer(&c.name));
            if only_answers
                && let Some(answer) = tool_calls
                    .iter()
                    .find_map(|c| final_call_answer(&c.arguments))
            {
                return Ok(Some(Finish::from_value(answer)));
            }
            run.messages.push(Message::assistant_tool_calls(
                content.clone(),
                tool_calls.clone(),
            ));
            for call in tool_calls {
                let observation = if is_final_answer(&call.name) {
                    // Every call needs its result message; an answer given
                    // next to tool calls, or without a value, is not taken.
                    self.refuse_final_call(input, run, &call, &content, only_answers)
                } else {
                    self.act(
                        input,
                        run,
                        &call.name,
                        call.arguments,
                        &content,
                        ArgumentSource::Native,
                    )
                    .await?
                };
                run.messages
                    .push(Message::tool(call.id, call.name, observation));
            }
            return Ok(None);
        }
        // A reasoning model's thoughts are neither the answer nor a call.
        let visible = strip_reasoning(&content);
        let text = visible.trim();
        if text.is_empty() {
            let observation = self.parse_failure(run, &ActionParseError::Empty, &content)?;
            run.messages.push(Message::user(observation));
            return Ok(None);
        }
        // Small models often write the call as JSON text instead of a
        // native call; honour it. A call naming a tool we do not have gets
        // the unknown-tool observation, as a native one would. Several
        // `<tool_call>` blocks (Qwen's and Hermes' parallel calls) are all
        // run, as native calls would be.
        let tagged = tagged_tool_calls(text);
        let parsed = if tagged.len() > 1 {
            Ok(None)
        } else {
            parse_action(text).map(Some)
        };
        match parsed {
            Ok(Some(Action::Final { answer })) => Ok(Some(Finish::from_value(answer))),
            Ok(Some(Action::Tool { name, input: args })) => {
                self.run_text_calls(input, run, vec![(name, args)], text)
                    .await?;
                Ok(None)
            }
            Ok(None) => {
                self.run_text_calls(input, run, tagged, text).await?;
                Ok(None)
            }
            // JSON that does not parse (often cut off at the token limit)
            // is a failed call, not an answer.
            Err(error @ ActionParseError::InvalidJson { .. }) if looks_like_call(text) => {
                let observation = self.parse_failure(run, &error, &content)?;
                run.messages.push(Message::user(observation));
                Ok(None)
            }
            _ => Ok(Some(Finish::text(text))),
        }
    }

    /// Runs tool calls a native-mode reply wrote as text, and records them
    /// in the conversation as calls with made-up ids.
    async fn run_text_calls(
        &self,
        input: &StepInput,
        run: &mut StepRun,
        calls: Vec<(String, Value)>,
        text: &str,
    ) -> Result<(), ExecError> {
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .enumerate()
            .map(|(index, (name, args))| {
                let id = if index == 0 {
                    format!("text_call_{}", run.iterations)
                } else {
                    format!("text_call_{}_{}", run.iterations, index + 1)
                };
                ToolCall::new(id, name, args)
            })
            .collect();
        // The conversation keeps the calls, not the text around them: small
        // models pad such replies with whatever follows (up to the token
        // limit), and each turn would carry it again.
        run.messages
            .push(Message::assistant_tool_calls(String::new(), calls.clone()));
        for call in calls {
            let observation = self
                .act(
                    input,
                    run,
                    &call.name,
                    call.arguments,
                    text,
                    ArgumentSource::Text,
                )
                .await?;
            run.messages
                .push(Message::tool(call.id, call.name, observation));
        }
        Ok(())
    }

    /// Records a native "final answer" call that was not taken as the
    /// answer; returns the observation sent back for it.
    fn refuse_final_call(
        &self,
        input: &StepInput,
        run: &mut StepRun,
        call: &ToolCall,
        log: &str,
        only_answers: bool,
    ) -> String {
        let observation = if only_answers {
            prompt::EMPTY_FINAL_CALL.to_owned()
        } else {
            prompt::FINAL_CALL_WITH_TOOLS.to_owned()
        };
        input.context.emit(EventKind::ToolStarted {
            step_index: input.index,
            tool: call.name.clone(),
            input: call.arguments.clone(),
        });
        input.context.emit(EventKind::ToolFinished {
            step_index: input.index,
            tool: call.name.clone(),
            observation: observation.clone(),
            is_error: true,
        });
        run.calls.push(ToolInvocation {
            tool: call.name.clone(),
            input: call.arguments.clone(),
            observation: observation.clone(),
            log: log.to_owned(),
            is_error: true,
            duration_ms: None,
        });
        observation
    }

    /// Carries out one action and records it; returns the observation.
    async fn act(
        &self,
        input: &StepInput,
        run: &mut StepRun,
        name: &str,
        args: Value,
        log: &str,
        source: ArgumentSource,
    ) -> Result<String, ExecError> {
        // The reply parsed: the parse-retry budget counts failures in a row.
        run.parse_failures = 0;
        input.context.emit(EventKind::ToolStarted {
            step_index: input.index,
            tool: name.to_owned(),
            input: args.clone(),
        });
        let started = tokio::time::Instant::now();
        run.pending = Some(PendingCall {
            tool: name.to_owned(),
            input: args.clone(),
            log: log.to_owned(),
            started,
        });
        let outcome = self.invoke(name, args.clone(), source).await;
        run.pending = None;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (observation, is_error, abort) = match outcome {
            Invoked::Output(text) => (text, false, None),
            Invoked::Rejected(text) => (text, true, None),
            Invoked::Failed(error) => {
                let text = prompt::tool_failed(name, &error.to_string());
                match self.settings.tool_errors {
                    ToolErrorPolicy::Observe => (text, true, None),
                    ToolErrorPolicy::Abort => (text, true, Some(error)),
                }
            }
        };
        let mut observation =
            prompt::truncate_observation(observation, self.settings.max_observation_chars);
        if !is_error {
            run.last_result = Some(observation.clone());
        }
        // Small models tend to repeat a call whose result they already
        // have; say so, so they move on instead of burning iterations.
        let repeated = run
            .calls
            .iter()
            .any(|c| !c.is_error && c.tool == name && c.input == args);
        if repeated && !is_error {
            observation.push_str(&prompt::repeated_call(name, self.native));
            run.repeats += 1;
            if let Some(max) = self.settings.max_repeated_calls
                && run.repeats >= max
                && run.gave_up.is_none()
            {
                let times = if run.repeats == 1 { "time" } else { "times" };
                run.gave_up = Some(format!("repeated call ({} {times})", run.repeats));
            }
        }
        run.calls.push(ToolInvocation {
            tool: name.to_owned(),
            input: args,
            observation: observation.clone(),
            log: log.to_owned(),
            is_error,
            duration_ms: Some(duration_ms),
        });
        input.context.emit(EventKind::ToolFinished {
            step_index: input.index,
            tool: name.to_owned(),
            observation: observation.clone(),
            is_error,
        });
        match abort {
            Some(source) => Err(ExecError::Tool {
                tool: name.to_owned(),
                source,
            }),
            None => Ok(observation),
        }
    }

    /// Resolves the tool, checks the arguments and calls it.
    async fn invoke(&self, name: &str, args: Value, source: ArgumentSource) -> Invoked {
        let Some(entry) = self.find_tool(name) else {
            return Invoked::Rejected(prompt::unknown_tool(name, &self.tool_names()));
        };
        let tool_name = entry.spec.name.as_str();
        let args = match prepare_arguments(args, &entry.spec.parameters, source) {
            Ok(args) => args,
            Err(error) => return Invoked::Rejected(prompt::arguments_not_json(tool_name, &error)),
        };
        let violations = schema::validate(&entry.spec.parameters, &args);
        if !violations.is_empty() {
            return Invoked::Rejected(prompt::invalid_arguments(
                tool_name,
                &violations,
                &entry.spec.parameters,
            ));
        }
        let _exclusive = match &entry.exclusive {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        match entry.tool.call(args).await {
            Ok(output) => Invoked::Output(output),
            Err(error) => Invoked::Failed(error),
        }
    }

    /// One last call for the best answer ("generate" early stopping).
    async fn generate_final(
        &self,
        step: &StepPrompt<'_>,
        run: &mut StepRun,
        reason: &str,
    ) -> Result<String, ExecError> {
        let mut messages = vec![Message::system(self.system_prompt.clone())];
        let request = if self.native {
            messages.push(Message::user(self.step_message(step, "")?));
            messages.extend(run.messages.iter().cloned());
            messages.push(Message::user(prompt::generate_native(reason)));
            let mut request = self.base_request(messages);
            if !request.tools.is_empty() {
                request.tool_choice = Some(ToolChoice::None);
            }
            request
        } else {
            let mut scratchpad = run.scratchpad.clone();
            if !scratchpad.is_empty() {
                scratchpad.push_str("\n\n");
            }
            scratchpad.push_str(&prompt::generate_text(reason));
            messages.push(Message::user(self.step_message(step, &scratchpad)?));
            self.base_request(messages)
        };
        let response = self.model.chat(request).await?;
        run.add_usage(&response);
        let visible = strip_reasoning(&response.message.content);
        let content = cut_at_stop(&visible, &[String::from(OBSERVATION_STOP)]);
        let answer = match parse_action(content) {
            Ok(Action::Final { answer }) => Finish::from_value(answer).text,
            // Still asking for a tool: nothing usable came back.
            Ok(Action::Tool { .. }) => String::new(),
            Err(_) => strip_thought_label(content).to_owned(),
        };
        Ok(answer)
    }
}

#[async_trait]
impl Executor for AgentExecutor {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        let previous_steps = render_previous_steps(&input.previous_steps, self.settings.history);
        let step_number = (input.index + 1).to_string();
        let step = StepPrompt {
            previous_steps: &previous_steps,
            current_step: &input.current_step.value,
            objective: &input.objective,
            step_number: &step_number,
            inputs: &input.inputs,
        };
        let mut run = StepRun::default();
        let outcome = match self.settings.max_execution_time {
            None => self.drive(input, &step, &mut run).await?,
            Some(limit) => {
                let timed = tokio::time::timeout(limit, self.drive(input, &step, &mut run)).await;
                match timed {
                    Ok(outcome) => outcome?,
                    Err(_elapsed) => {
                        run.abandon_pending(input);
                        Outcome::Stopped(format!("time limit ({limit:?})"))
                    }
                }
            }
        };
        let (response, data, status) = match outcome {
            Outcome::Finished(finish) => (finish.text, finish.data, StepStatus::Completed),
            Outcome::Stopped(reason) => {
                let text = match self.settings.early_stopping {
                    EarlyStopping::Force => String::new(),
                    EarlyStopping::Generate => {
                        self.generate_final(&step, &mut run, &reason).await?
                    }
                };
                let text = match run.last_result.take() {
                    _ if !text.trim().is_empty() => text,
                    Some(result) if self.settings.last_result_on_stop => result,
                    _ => prompt::stopped_response(&reason),
                };
                (text, None, StepStatus::Stopped { reason })
            }
        };
        Ok(StepResponse {
            response,
            data,
            status,
            tool_calls: run.calls,
            usage: run.usage,
        })
    }
}

/// The calls with an id each, unique within the reply: providers and
/// small local servers sometimes send none, or the same one twice, and
/// every result message must name its call.
fn with_unique_ids(calls: Vec<ToolCall>, iteration: usize) -> Vec<ToolCall> {
    let mut seen: Vec<String> = Vec::with_capacity(calls.len());
    calls
        .into_iter()
        .enumerate()
        .map(|(index, mut call)| {
            if call.id.trim().is_empty() || seen.contains(&call.id) {
                let mut id = format!("call_{iteration}_{}", index + 1);
                while seen.contains(&id) {
                    id.push('_');
                }
                call.id = id;
            }
            seen.push(call.id.clone());
            call
        })
        .collect()
}

/// The answer a native call to a "final answer" function carries: its
/// only argument, or all of them; `None` when it carries nothing.
fn final_call_answer(arguments: &Value) -> Option<Value> {
    let arguments = match arguments {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
            _ => Value::String(text.clone()),
        },
        other => other.clone(),
    };
    let answer = match arguments {
        Value::Object(mut object) if object.len() == 1 => {
            object.values_mut().next().map(Value::take)?
        }
        other => other,
    };
    let empty = match &answer {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Object(object) => object.is_empty(),
        _ => false,
    };
    (!empty).then_some(answer)
}

/// The tool calls of a reply written as `<tool_call>...</tool_call>`
/// blocks, when every block is one (otherwise none); at most
/// [`MAX_TEXT_CALLS`].
fn tagged_tool_calls(text: &str) -> Vec<(String, Value)> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut calls = Vec::new();
    let mut rest = text;
    while calls.len() < MAX_TEXT_CALLS
        && let Some(open) = rest.find(OPEN)
    {
        let after = &rest[open + OPEN.len()..];
        let (inner, next) = match after.find(CLOSE) {
            Some(close) => (&after[..close], &after[close + CLOSE.len()..]),
            None => (after, ""),
        };
        match parse_action(inner) {
            Ok(Action::Tool { name, input }) => calls.push((name, input)),
            _ => return Vec::new(),
        }
        rest = next;
    }
    calls
}

/// The most tool calls run from one native-mode reply written as text.
const MAX_TEXT_CALLS: usize = 16;

/// Whether a native-mode text reply starts like a tool call written as
/// text (a JSON object, a fenced block or a `<tool_call>` tag).
fn looks_like_call(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('{') || text.starts_with("```") || text.starts_with("<tool_call>")
}

/// Where a tool's arguments came from: the model's text or a native call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgumentSource {
    Text,
    Native,
}

/// A tool name reduced to what identifies it: lower-case letters and
/// digits, without a `functions.` prefix or a trailing `()`.
fn tool_key(name: &str) -> String {
    let name = name.trim();
    let name = match name.get(..10) {
        Some(head) if head.eq_ignore_ascii_case("functions.") => &name[10..],
        _ => name,
    };
    let name = name.strip_suffix("()").unwrap_or(name);
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Makes the arguments the tool receives from what the model sent.
///
/// - Nothing (`null`, `""`) is `{}`.
/// - Native arguments that arrived as a string are JSON text: an object (or
///   JSON text of one, when double-encoded) is used; anything that does
///   not parse is an error the model is told about.
/// - A text action's string that is JSON text of an object is decoded when
///   the object fits the tool (LangChain users write
///   `"action_input": "{\"a\": 1}"`).
/// - A bare value for a tool with one argument becomes that argument, as
///   LangChain passes a string input to a single-input tool
///   (`"action_input": "2+2"` for the calculator); a number given for a
///   string argument is written as text, a numeric string given for a
///   number argument is read as a number.
/// - An object with one key that is not the tool's only argument, for a
///   tool that requires it, is renamed to it (`{"input": "2+2"}`).
fn prepare_arguments(args: Value, schema: &Value, source: ArgumentSource) -> Result<Value, String> {
    let args = match args {
        Value::Null => return Ok(Value::Object(Map::new())),
        Value::String(text) if text.trim().is_empty() => return Ok(Value::Object(Map::new())),
        Value::String(raw) if source == ArgumentSource::Native => {
            match serde_json::from_str::<Value>(raw.trim()) {
                Ok(Value::Null) => return Ok(Value::Object(Map::new())),
                Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => Value::String(inner),
                },
                Ok(value) => value,
                Err(e) => return Err(e.to_string()),
            }
        }
        Value::String(text) => match decoded_object(&text, schema) {
            Some(object) => object,
            None => Value::String(text),
        },
        other => other,
    };
    let args = fit_to_single_argument(args, schema);
    match (args, source) {
        (value @ Value::Object(_), _) | (value, ArgumentSource::Text) => Ok(value),
        (other, ArgumentSource::Native) => Err(format!("got {other}")),
    }
}

/// `text` decoded, when it is JSON text of an object that fits the schema:
/// valid (once a misnamed only key is renamed), or at least naming only
/// the schema's properties (then the schema check explains what is wrong).
fn decoded_object(text: &str, schema: &Value) -> Option<Value> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    let value @ Value::Object(_) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    let fitted = fit_to_single_argument(value.clone(), schema);
    if schema::validate(schema, &fitted).is_empty() {
        return Some(fitted);
    }
    let properties = schema.get("properties").and_then(Value::as_object)?;
    let object = value.as_object()?;
    (!object.is_empty() && object.keys().all(|k| properties.contains_key(k))).then_some(value)
}

/// Maps a bare value, or an object with one misnamed key, onto a tool's
/// only argument (see [`prepare_arguments`]).
fn fit_to_single_argument(args: Value, schema: &Value) -> Value {
    let Some((name, property)) = single_argument(schema) else {
        return args;
    };
    let expected = property.get("type").and_then(Value::as_str);
    let wrap = |value: Value| Value::Object(Map::from_iter([(name.to_owned(), value)]));
    match args {
        Value::String(text) => match expected {
            None | Some("string") => wrap(Value::String(text)),
            Some("number" | "integer") => match serde_json::from_str::<Value>(text.trim()) {
                Ok(number @ Value::Number(_)) => wrap(number),
                _ => Value::String(text),
            },
            _ => Value::String(text),
        },
        Value::Number(number) => match expected {
            None | Some("number") => wrap(Value::Number(number)),
            Some("integer") if number.is_i64() || number.is_u64() => wrap(Value::Number(number)),
            Some("string") => wrap(Value::String(number.to_string())),
            _ => Value::Number(number),
        },
        Value::Bool(flag) => match expected {
            None | Some("boolean") => wrap(Value::Bool(flag)),
            Some("string") => wrap(Value::String(flag.to_string())),
            _ => Value::Bool(flag),
        },
        Value::Object(mut object) => {
            let required = schema
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)));
            let properties = schema.get("properties").and_then(Value::as_object);
            let misnamed = object.len() == 1
                && required
                && properties.is_some_and(|p| p.len() == 1)
                && !object.contains_key(name);
            if misnamed
                && let Some(key) = object.keys().next().cloned()
                && let Some(value) = object.remove(&key)
            {
                if schema::validate(property, &value).is_empty() {
                    return wrap(value);
                }
                object.insert(key, value);
            }
            Value::Object(object)
        }
        other => other,
    }
}

/// The tool's one argument, if it has exactly one: its only property, or
/// its only required property.
fn single_argument(schema: &Value) -> Option<(&str, &Value)> {
    let properties = schema.get("properties")?.as_object()?;
    if properties.len() == 1 {
        return properties.iter().next().map(|(k, v)| (k.as_str(), v));
    }
    let required: Vec<&str> = schema
        .get("required")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match required.as_slice() {
        [only] => properties.get(*only).map(|p| (*only, p)),
        _ => None,
    }
}

/// Drops a leading `Thought:` label from a plain-text answer.
fn strip_thought_label(text: &str) -> &str {
    let trimmed = text.trim();
    match trimmed.get(..8) {
        Some(head) if head.eq_ignore_ascii_case("thought:") => trimmed[8..].trim(),
        _ => trimmed,
    }
}

/// What calling a tool gave.
enum Invoked {
    Output(String),
    Rejected(String),
    Failed(pae_core::ToolError),
}

/// How the loop ended.
enum Outcome {
    Finished(Finish),
    Stopped(String),
}

/// A final answer: its text and, when it was not a string, its value.
struct Finish {
    text: String,
    data: Option<Value>,
}

impl Finish {
    fn text(text: &str) -> Self {
        Self {
            text: text.trim().to_owned(),
            data: None,
        }
    }

    fn from_value(answer: Value) -> Self {
        match answer {
            Value::String(text) => Self::text(&text),
            other => Self {
                text: other.to_string(),
                data: Some(other),
            },
        }
    }
}

/// The parts of the step message fixed for the whole step.
struct StepPrompt<'a> {
    previous_steps: &'a str,
    current_step: &'a str,
    objective: &'a str,
    step_number: &'a str,
    inputs: &'a Inputs,
}

struct PromptVars<'a> {
    step: &'a StepPrompt<'a>,
    scratchpad: &'a str,
}

impl PromptValues for PromptVars<'_> {
    fn value(&self, name: &str) -> Option<&str> {
        match name {
            "previous_steps" => Some(self.step.previous_steps),
            "current_step" => Some(self.step.current_step),
            "objective" => Some(self.step.objective),
            "step_number" => Some(self.step.step_number),
            "agent_scratchpad" => Some(self.scratchpad),
            other => self.step.inputs.get(other).map(String::as_str),
        }
    }
}

/// A tool call in flight, so a time-out can still record it.
struct PendingCall {
    tool: String,
    input: Value,
    log: String,
    started: tokio::time::Instant,
}

/// The state of one step's loop.
#[derive(Default)]
struct StepRun {
    calls: Vec<ToolInvocation>,
    scratchpad: String,
    messages: Vec<Message>,
    usage: TokenUsage,
    iterations: usize,
    parse_failures: usize,
    pending: Option<PendingCall>,
    /// Set when the model stopped giving usable replies; ends the loop.
    gave_up: Option<String>,
    /// The last successful tool result, without notes added for the model.
    last_result: Option<String>,
    /// Identical successful calls made again.
    repeats: usize,
}

impl StepRun {
    fn add_usage(&mut self, response: &ChatResponse) {
        if let Some(usage) = response.usage {
            self.usage += usage;
        }
    }

    /// Appends one turn (the model's text and what it observed) to the
    /// text-JSON scratchpad.
    fn push_scratchpad(&mut self, log: &str, observation: &str) {
        if self.scratchpad.is_empty() {
            self.scratchpad.push_str(prompt::SCRATCHPAD_HEADING);
        }
        self.scratchpad.push('\n');
        self.scratchpad.push_str(log.trim());
        self.scratchpad.push_str("\nObservation: ");
        self.scratchpad.push_str(observation);
    }

    /// Records a tool call the time limit cancelled.
    fn abandon_pending(&mut self, input: &StepInput) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let duration_ms = u64::try_from(pending.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        input.context.emit(EventKind::ToolFinished {
            step_index: input.index,
            tool: pending.tool.clone(),
            observation: prompt::TOOL_CANCELLED.to_owned(),
            is_error: true,
        });
        self.calls.push(ToolInvocation {
            tool: pending.tool,
            input: pending.input,
            observation: prompt::TOOL_CANCELLED.to_owned(),
            log: pending.log,
            is_error: true,
            duration_ms: Some(duration_ms),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_strings_are_wrapped_for_single_string_tools() {
        let one = json!({"type": "object", "properties": {"expression": {"type": "string"}}});
        assert_eq!(
            prepare_arguments(json!("1+1"), &one, ArgumentSource::Text),
            Ok(json!({"expression": "1+1"}))
        );
        let required = json!({"type": "object", "properties": {"path": {"type": "string"},
            "limit": {"type": "integer"}}, "required": ["path"]});
        assert_eq!(
            prepare_arguments(json!("a.txt"), &required, ArgumentSource::Text),
            Ok(json!({"path": "a.txt"}))
        );
        let two = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        assert_eq!(
            prepare_arguments(json!("x"), &two, ArgumentSource::Text),
            Ok(json!("x"))
        );
        assert_eq!(
            prepare_arguments(Value::Null, &two, ArgumentSource::Text),
            Ok(json!({}))
        );
    }

    #[test]
    fn values_are_fitted_to_a_single_argument() {
        let calc = json!({"type": "object", "properties": {"expression": {"type": "string"}},
            "required": ["expression"], "additionalProperties": false});
        let count =
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let text = ArgumentSource::Text;
        for (args, schema, expected) in [
            (json!(42), &calc, json!({"expression": "42"})),
            (json!(true), &calc, json!({"expression": "true"})),
            (
                json!("{\"expression\": \"1\"}"),
                &calc,
                json!({"expression": "1"}),
            ),
            (json!("{\"x\": \"1\"}"), &calc, json!({"expression": "1"})),
            (
                json!("{\"x\": 1, \"y\": 2}"),
                &calc,
                json!({"expression": "{\"x\": 1, \"y\": 2}"}),
            ),
            (json!({"query": "1+1"}), &calc, json!({"expression": "1+1"})),
            (json!({"query": 5}), &calc, json!({"query": 5})),
            (json!("  "), &calc, json!({})),
            (json!(" 7 "), &count, json!({"n": 7})),
            (json!(7.5), &count, json!(7.5)),
            (json!("seven"), &count, json!("seven")),
        ] {
            assert_eq!(
                prepare_arguments(args.clone(), schema, text),
                Ok(expected),
                "{args}"
            );
        }
    }

    #[test]
    fn tool_keys_ignore_case_punctuation_and_prefixes() {
        assert_eq!(tool_key(" Functions.Read_File() "), "readfile");
        assert_eq!(tool_key("current time"), "currenttime");
        assert_eq!(tool_key("()"), "");
    }

    #[test]
    fn final_call_answers() {
        assert_eq!(final_call_answer(&json!({"answer": "a"})), Some(json!("a")));
        assert_eq!(
            final_call_answer(&json!("{\"answer\": [1]}")),
            Some(json!([1]))
        );
        assert_eq!(final_call_answer(&json!("plain")), Some(json!("plain")));
        assert_eq!(
            final_call_answer(&json!({"a": 1, "b": 2})),
            Some(json!({"a": 1, "b": 2}))
        );
        assert_eq!(final_call_answer(&json!({})), None);
        assert_eq!(final_call_answer(&json!({"answer": " "})), None);
        assert_eq!(final_call_answer(&Value::Null), None);
    }

    #[test]
    fn tagged_calls_are_all_or_nothing() {
        let call = |e: &str| {
            format!(
                "<tool_call>{{\"name\": \"calc\", \"arguments\": {{\"e\": \"{e}\"}}}}</tool_call>"
            )
        };
        let two = format!("{}\n{}", call("1"), call("2"));
        assert_eq!(
            tagged_tool_calls(&two),
            vec![
                ("calc".to_owned(), json!({"e": "1"})),
                ("calc".to_owned(), json!({"e": "2"}))
            ]
        );
        // The last block may lack its closing tag.
        let open = two.trim_end_matches("</tool_call>");
        assert_eq!(tagged_tool_calls(open).len(), 2);
        let with_answer = format!(
            "{}<tool_call>{{\"name\": \"final_answer\", \"arguments\": {{\"a\": 1}}}}</tool_call>",
            call("1")
        );
        assert!(tagged_tool_calls(&with_answer).is_empty());
        assert!(
            tagged_tool_calls(&format!("{}<tool_call>{{oops</tool_call>", call("1"))).is_empty()
        );
        assert!(tagged_tool_calls("no tags").is_empty());
        let many = (0..40).map(|i| call(&i.to_string())).collect::<String>();
        assert_eq!(tagged_tool_calls(&many).len(), MAX_TEXT_CALLS);
    }

    #[test]
    fn call_ids_are_made_unique() {
        let calls = vec![
            ToolCall::new("", "a", json!({})),
            ToolCall::new("x", "a", json!({})),
            ToolCall::new("x", "a", json!({})),
            ToolCall::new("call_2_3", "a", json!({})),
        ];
        let ids: Vec<String> = with_unique_ids(calls, 2)
            .into_iter()
            .map(|c| c.id)
            .collect();
        // The model's own "call_2_3" now repeats a made-up id, so it gets one too.
        assert_eq!(ids, ["call_2_1", "x", "call_2_3", "call_2_4"]);
    }

    #[test]
    fn native_string_arguments_must_be_json_objects() {
        let schema = json!({"type": "object"});
        assert_eq!(
            prepare_arguments(json!("{\"a\": 1}"), &schema, ArgumentSource::Native),
            Ok(json!({"a": 1}))
        );
        assert!(prepare_arguments(json!("{oops"), &schema, ArgumentSource::Native).is_err());
        assert_eq!(
            prepare_arguments(json!("[1]"), &schema, ArgumentSource::Native),
            Err("got [1]".into())
        );
    }

    #[test]
    fn thought_labels_are_stripped() {
        assert_eq!(strip_thought_label("Thought: it is 4"), "it is 4");
        assert_eq!(strip_thought_label("  it is 4 "), "it is 4");
        assert_eq!(strip_thought_label("thought:"), "");
    }

    #[test]
    fn agent_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AgentExecutor>();
        check::<AgentExecutorBuilder>();
        check::<crate::ChainExecutor>();
    }
}
