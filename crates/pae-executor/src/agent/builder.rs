//! [`AgentExecutorBuilder`]: the one way to configure an
//! [`AgentExecutor`]; every loop setting has a consuming `with_*` method.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pae_core::{ChatModel, PromptTemplate, Sampling, Tool};

use super::settings::{ActionFormat, AgentSettings, EarlyStopping, ToolErrorPolicy};
use super::toolbox::Toolbox;
use super::{AgentExecutor, Protocol};
use crate::action::is_final_answer;
use crate::error::ConfigError;
use crate::history::HistoryPolicy;
use crate::prompt;

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
    /// A builder over `model` with no tools and default settings.
    pub(super) fn new(model: Arc<dyn ChatModel>) -> Self {
        Self {
            model,
            tools: Vec::new(),
            settings: AgentSettings::default(),
            preamble: String::from(prompt::DEFAULT_PREAMBLE),
            step_template: None,
        }
    }

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
    /// [`DEFAULT_MAX_ITERATIONS`](super::DEFAULT_MAX_ITERATIONS)). A call
    /// whose reply could not be parsed counts; a call that ran several
    /// native tool calls counts once.
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
    /// before the step fails with
    /// [`ExecError::UnparseableReply`](pae_core::ExecError::UnparseableReply)
    /// (default [`DEFAULT_MAX_PARSE_RETRIES`](super::DEFAULT_MAX_PARSE_RETRIES);
    /// the failure comes with the next one). A reply that parses resets the
    /// count.
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
    /// as the step's answer, as LangChain does (and as
    /// [`load_agent_executor`](super::load_agent_executor) builds). The
    /// builder's default is no: the reply is fed back as a parse error,
    /// since prose is as often an unfinished thought as an answer. Replies
    /// with a `Final Answer:` line are answers either way.
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
    /// [`StepStatus::Stopped`](pae_core::StepStatus::Stopped) either way, so
    /// the difference stays visible.
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
    /// times)" and so on; 0 stops at the first repeat, as 1 does.
    pub fn with_max_repeated_calls(mut self, max: usize) -> Self {
        self.settings.max_repeated_calls = Some(max);
        self
    }

    /// Cuts observations longer than `max` characters, with a note saying
    /// how long they were (default
    /// [`DEFAULT_MAX_OBSERVATION_CHARS`](super::DEFAULT_MAX_OBSERVATION_CHARS)).
    /// Tool output always reaches the prompt bounded; pass `usize::MAX` to
    /// lift the bound.
    pub fn with_max_observation_chars(mut self, max: usize) -> Self {
        self.settings.max_observation_chars = max;
        self
    }

    /// The most tool calls run from one reply (default
    /// [`DEFAULT_MAX_CALLS_PER_REPLY`](super::DEFAULT_MAX_CALLS_PER_REPLY);
    /// 0 is read as 1). A reply with more native calls has its first `max`
    /// run and answered; the others are left out of the conversation, and
    /// the model is told how many were not run. Tool calls written as text
    /// in native mode are capped at 16 at most.
    pub fn with_max_calls_per_reply(mut self, max: usize) -> Self {
        self.settings.max_calls_per_reply = max;
        self
    }

    /// Sampling settings of every request.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.settings.sampling = sampling;
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
        let protocol = match self.settings.action_format {
            ActionFormat::Auto if self.model.capabilities().native_tools => Protocol::Native,
            ActionFormat::Auto | ActionFormat::TextJson => Protocol::Text,
            ActionFormat::Native => Protocol::Native,
        };
        let step_template = match self.step_template {
            Some(template) => template,
            None => PromptTemplate::new(if self.settings.include_task_in_prompt {
                prompt::DEFAULT_STEP_TEMPLATE_WITH_OBJECTIVE
            } else {
                prompt::DEFAULT_STEP_TEMPLATE
            })?,
        };
        if protocol.needs_scratchpad() && !step_template.variables().contains(&"agent_scratchpad") {
            return Err(ConfigError::MissingScratchpad);
        }
        let tools = Toolbox::new(self.tools);
        let system_prompt = protocol.system_prompt(&self.preamble, &tools);
        Ok(AgentExecutor {
            model: self.model,
            tools,
            settings: self.settings,
            protocol,
            system_prompt,
            step_template,
            history: crate::history::HistoryRenderer::default(),
        })
    }
}
