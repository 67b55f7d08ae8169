//! [`AgentExecutor`]: a tool-using agent that carries out one plan step, with
//! text-JSON actions or native tool calls, and the loop rules that keep one
//! bad reply or one failing tool from sinking a whole run.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatRequest, ChatResponse, EventKind, ExecError, Executor, Inputs, Message,
    PromptTemplate, PromptValues, Sampling, StepInput, StepResponse, StepStatus, TokenUsage, Tool,
    ToolCall, ToolChoice, ToolInvocation, ToolSpec, cut_at_stop,
};
use serde_json::{Map, Value};

use crate::action::{Action, ActionParseError, is_final_answer, parse_action};
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
/// For text actions, a tool named by a string where the tool's schema has a
/// single string property (`"action_input": "2+2"` for the calculator) is
/// wrapped into that property. Tool names are matched exactly, then ignoring
/// case.
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

    fn find_tool(&self, name: &str) -> Option<&ToolEntry> {
        self.tools.iter().find(|t| t.spec.name == name).or_else(|| {
            let mut matches = self
                .tools
                .iter()
                .filter(|t| t.spec.name.eq_ignore_ascii_case(name));
            match (matches.next(), matches.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        })
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
        // an observation; cut it here as well.
        let text = cut_at_stop(content, &[String::from(OBSERVATION_STOP)]);
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
            run.messages.push(Message::assistant_tool_calls(
                content.clone(),
                tool_calls.clone(),
            ));
            for call in tool_calls {
                let observation = self
                    .act(
                        input,
                        run,
                        &call.name,
                        call.arguments,
                        &content,
                        ArgumentSource::Native,
                    )
                    .await?;
                run.messages
                    .push(Message::tool(call.id, call.name, observation));
            }
            return Ok(None);
        }
        let text = content.trim();
        if text.is_empty() {
            let observation = self.parse_failure(run, &ActionParseError::Empty, &content)?;
            run.messages.push(Message::user(observation));
            return Ok(None);
        }
        // Small models often write the call as JSON text instead of a
        // native call; honour it. A call naming a tool we do not have gets
        // the unknown-tool observation, as a native one would.
        match parse_action(text) {
            Ok(Action::Final { answer }) => Ok(Some(Finish::from_value(answer))),
            Ok(Action::Tool { name, input: args }) => {
                let id = format!("text_call_{}", run.iterations);
                // The conversation keeps the call, not the text around it:
                // small models pad such replies with whatever follows (up to
                // the token limit), and each turn would carry it again.
                run.messages.push(Message::assistant_tool_calls(
                    String::new(),
                    vec![ToolCall::new(id.clone(), name.clone(), args.clone())],
                ));
                let observation = self
                    .act(input, run, &name, args, text, ArgumentSource::Text)
                    .await?;
                run.messages.push(Message::tool(id, name, observation));
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
        // Small models tend to repeat a call whose result they already
        // have; say so, so they move on instead of burning iterations.
        let repeated = run
            .calls
            .iter()
            .any(|c| !c.is_error && c.tool == name && c.input == args);
        if repeated && !is_error {
            observation.push_str(&prompt::repeated_call(name, self.native));
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
        let content = cut_at_stop(&response.message.content, &[String::from(OBSERVATION_STOP)]);
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
                let text = if text.trim().is_empty() {
                    prompt::stopped_response(&reason)
                } else {
                    text
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

/// Makes the arguments the tool receives. Native arguments that arrived as
/// a string are JSON text that may or may not parse; text arguments that
/// are a bare string are wrapped into the schema's only string property.
fn prepare_arguments(args: Value, schema: &Value, source: ArgumentSource) -> Result<Value, String> {
    match (args, source) {
        (Value::Null, _) => Ok(Value::Object(Map::new())),
        (Value::String(raw), ArgumentSource::Native) => match serde_json::from_str::<Value>(&raw) {
            Ok(value @ Value::Object(_)) => Ok(value),
            Ok(other) => Err(format!("got {other}")),
            Err(e) => Err(e.to_string()),
        },
        (Value::String(text), ArgumentSource::Text) => match single_string_property(schema) {
            Some(property) => Ok(Value::Object(Map::from_iter([(
                property.to_owned(),
                Value::String(text),
            )]))),
            None => Ok(Value::String(text)),
        },
        (other, _) => Ok(other),
    }
}

/// The name of the schema's one string property (or one required string
/// property), if there is exactly one.
fn single_string_property(schema: &Value) -> Option<&str> {
    let properties = schema.get("properties")?.as_object()?;
    let is_string = |name: &str| {
        properties
            .get(name)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            == Some("string")
    };
    if properties.len() == 1 {
        let (name, _) = properties.iter().next()?;
        return is_string(name).then_some(name.as_str());
    }
    let required: Vec<&str> = schema
        .get("required")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match required.as_slice() {
        [only] if is_string(only) => Some(only),
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
