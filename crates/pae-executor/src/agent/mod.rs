//! [`AgentExecutor`]: a tool-using agent that carries out one plan step, with
//! text-JSON actions or native tool calls, and the loop rules that keep one
//! bad reply or one failing tool from sinking a whole run.
//!
//! The layout follows the concerns: [`settings`] (the loop settings and
//! their defaults), [`builder`] (the one way to set them), the loop itself
//! here, each action protocol in its own module behind the private
//! [`Protocol`] enum ([`text`]: text-JSON with a scratchpad; [`native`]:
//! native tool calls), [`arguments`] (fitting what the model sent to the
//! tool), [`toolbox`] (the tools and name matching) and [`state`] (one
//! step's loop state).

pub(crate) mod arguments;
mod builder;
mod native;
mod settings;
mod state;
mod text;
pub(crate) mod toolbox;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatRequest, ChatResponse, ExecError, Executor, PromptTemplate, RunContext,
    StepInput, StepResponse, StepStatus, Tool, ToolInvocation,
};
use serde_json::Value;

pub use builder::AgentExecutorBuilder;
pub use settings::{
    ActionFormat, AgentSettings, DEFAULT_MAX_CALLS_PER_REPLY, DEFAULT_MAX_ITERATIONS,
    DEFAULT_MAX_OBSERVATION_CHARS, DEFAULT_MAX_PARSE_RETRIES, EarlyStopping, INVALID_REPLY,
    OBSERVATION_STOP, ToolErrorPolicy,
};

use arguments::{ArgumentSource, prepare_arguments};
use state::{Finish, Outcome, PendingCall, PromptVars, StepPrompt, StepRun};
use toolbox::Toolbox;

use crate::action::ActionParseError;
use crate::error::ConfigError;
use crate::history::HistoryRenderer;
use crate::{prompt, schema};

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
/// Observations are cut at
/// [`AgentExecutorBuilder::with_max_observation_chars`] (bounded by
/// default). With text-JSON actions, an observation of several lines is
/// shown between `<observation>` and `</observation>` in the scratchpad,
/// with lines that read like `Observation:`, `Thought:`, `Action:` or
/// `Final Answer:` quoted with `| `, and such a block repeated in a reply
/// is not read as the model's action, so tool output cannot pass for the
/// model's own words.
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
/// With native tool calls, every call of a reply is run in order (up to
/// [`AgentExecutorBuilder::with_max_calls_per_reply`]) and answered with a
/// tool message carrying its call id (an id is made up when the provider
/// sent none, or the same one twice). A call to a `final_answer` function
/// answers the step when it is the only kind of call in the reply.
#[derive(Clone)]
pub struct AgentExecutor {
    model: Arc<dyn ChatModel>,
    tools: Toolbox,
    settings: AgentSettings,
    protocol: Protocol,
    system_prompt: String,
    step_template: PromptTemplate,
    /// Renders the previous steps, remembering digest lines.
    history: HistoryRenderer,
}

impl fmt::Debug for AgentExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentExecutor")
            .field("model", &self.model.model_name())
            .field("tools", &self.tool_names())
            .field("native", &self.uses_native_tools())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How actions travel between the model and the loop. Each protocol's
/// behaviour lives in its own module; the loop only asks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Text-JSON actions with a scratchpad ([`text`]).
    Text,
    /// Native tool calls ([`native`]).
    Native,
}

impl Protocol {
    /// The system message sent with every request.
    fn system_prompt(self, preamble: &str, tools: &Toolbox) -> String {
        match self {
            Self::Text => text::system_prompt(preamble, tools),
            Self::Native => native::system_prompt(preamble, tools),
        }
    }

    /// Whether the step template must have `{agent_scratchpad}`.
    fn needs_scratchpad(self) -> bool {
        self == Self::Text
    }

    /// The request of the next iteration.
    fn request(
        self,
        agent: &AgentExecutor,
        step: &StepPrompt<'_>,
        run: &StepRun,
    ) -> Result<ChatRequest, ExecError> {
        match self {
            Self::Text => text::request(agent, step, run),
            Self::Native => native::request(agent, step, run),
        }
    }

    /// Acts on a reply; the final answer when it gives one.
    async fn on_reply(
        self,
        agent: &AgentExecutor,
        input: &StepInput,
        run: &mut StepRun,
        response: ChatResponse,
    ) -> Result<Option<Finish>, ExecError> {
        match self {
            Self::Text => text::on_reply(agent, input, run, &response.message.content).await,
            Self::Native => native::on_reply(agent, input, run, response).await,
        }
    }

    /// The last request under "generate" early stopping.
    fn final_request(
        self,
        agent: &AgentExecutor,
        step: &StepPrompt<'_>,
        run: &StepRun,
        reason: &str,
    ) -> Result<ChatRequest, ExecError> {
        match self {
            Self::Text => text::final_request(agent, step, run, reason),
            Self::Native => native::final_request(agent, step, run, reason),
        }
    }

    /// The feedback for a reply that held no usable action.
    fn parse_feedback(self, error: &ActionParseError) -> String {
        match (self, error) {
            (Self::Native, ActionParseError::Empty) => prompt::EMPTY_NATIVE_REPLY.to_owned(),
            (Self::Native, _) => prompt::unparseable_native_call(&error.to_string()),
            (Self::Text, _) => prompt::unparseable_reply(&error.to_string()),
        }
    }

    /// The note added to the result of a call made again.
    fn repeated_call_note(self, tool: &str) -> String {
        prompt::repeated_call(tool, self == Self::Native)
    }
}

/// Builds the step executor LangChain's `load_agent_executor` builds: an
/// [`AgentExecutor`] over `model` with `tools`, default loop settings, and
/// the objective in the step prompt when `include_task_in_prompt` is set.
/// As in LangChain, a text reply with no action in it is the step's answer
/// ([`AgentExecutorBuilder::with_plain_text_answers`]). Use
/// [`AgentExecutor::builder`] to change any loop setting; the builder's
/// default feeds such a reply back to the model as a format error instead.
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
        .with_plain_text_answers(true)
        .build()
}

impl AgentExecutor {
    /// A builder over `model` with no tools and default settings.
    pub fn builder(model: Arc<dyn ChatModel>) -> AgentExecutorBuilder {
        AgentExecutorBuilder::new(model)
    }

    /// The loop settings.
    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    /// Whether actions are native tool calls (`false`: text-JSON).
    pub fn uses_native_tools(&self) -> bool {
        self.protocol == Protocol::Native
    }

    /// The system message sent with every request.
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The tools' names, in order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.tools.names()
    }

    /// The step message for this state of the run.
    fn step_message(&self, step: &StepPrompt<'_>, scratchpad: &str) -> Result<String, ExecError> {
        let values = PromptVars { step, scratchpad };
        let mut text = self.step_template.format(&values)?;
        text.truncate(text.trim_end().len());
        Ok(text)
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
            let request = self.protocol.request(self, step, run)?;
            let response = self.call_model(run, request).await?;
            if let Some(finish) = self.protocol.on_reply(self, input, run, response).await? {
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

    /// Every model call of the step goes through here, and only here.
    // One place for what wraps a model call: the run context's journaling,
    // tracing or budgets belong here, not at the call sites.
    async fn call_model(
        &self,
        run: &mut StepRun,
        request: ChatRequest,
    ) -> Result<ChatResponse, ExecError> {
        let response = run.context.chat(self.model.as_ref(), request).await?;
        run.add_usage(&response);
        Ok(response)
    }

    /// Carries out one action and records it (the observation is the
    /// recorded call's). Every tool call of the step goes through here, and
    /// only here.
    // One place for what wraps a tool call: the run context's journaling,
    // tracing or budgets belong here, not in the protocols.
    async fn call_tool(
        &self,
        _input: &StepInput,
        run: &mut StepRun,
        name: &str,
        args: Value,
        log: &str,
        source: ArgumentSource,
    ) -> Result<(), ExecError> {
        // The reply parsed: the parse-retry budget counts failures in a row.
        run.parse_failures = 0;
        let started = tokio::time::Instant::now();
        // Only a time limit can drop this future mid-call; only then is the
        // call kept aside to be recorded.
        if self.settings.max_execution_time.is_some() {
            run.pending = Some(PendingCall {
                tool: name.to_owned(),
                input: args.clone(),
                log: log.to_owned(),
                started,
            });
        }
        let outcome = self.invoke(&run.context, name, args.clone(), source).await;
        run.pending = None;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let rejected = matches!(outcome, Invoked::Rejected(_));
        let (observation, is_error, abort) = match outcome {
            Invoked::Output(text) => (text, false, None),
            Invoked::Rejected(text) => (text, true, None),
            // The run stopped the call (cancelled, a budget, a call in
            // doubt): the step ends; the model is not asked to go on.
            Invoked::Failed(error) if error.is_stopped() => (
                prompt::tool_failed(name, &error.to_string()),
                true,
                Some(error),
            ),
            Invoked::Failed(error) => {
                let text = prompt::tool_failed(name, &error.to_string());
                match self.settings.tool_errors {
                    ToolErrorPolicy::Observe => (text, true, None),
                    ToolErrorPolicy::Abort => (text, true, Some(error)),
                }
            }
        };
        let mut observation =
            prompt::truncate_observation(observation, Some(self.settings.max_observation_chars));
        if !is_error {
            run.last_result = Some((run.calls.len(), observation.len()));
            // Small models tend to repeat a call whose result they already
            // have; say so, so they move on instead of burning iterations.
            let key = state::call_key(name, &args);
            if run.succeeded_before(key, name, &args) {
                observation.push_str(&self.protocol.repeated_call_note(name));
                run.repeats += 1;
                if let Some(max) = self.settings.max_repeated_calls
                    && run.repeats >= max
                    && run.gave_up.is_none()
                {
                    let times = if run.repeats == 1 { "time" } else { "times" };
                    run.gave_up = Some(format!("repeated call ({} {times})", run.repeats));
                }
            } else {
                run.record_success(key);
            }
        }
        if rejected {
            run.context
                .record_refused_call(name, args.clone(), &observation);
        }
        run.record(ToolInvocation {
            tool: name.to_owned(),
            input: args,
            observation,
            log: log.to_owned(),
            is_error,
            duration_ms: Some(duration_ms),
        });
        match abort {
            Some(source) => Err(ExecError::Tool {
                tool: name.to_owned(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Resolves the tool, checks the arguments and calls it.
    async fn invoke(
        &self,
        context: &RunContext,
        name: &str,
        args: Value,
        source: ArgumentSource,
    ) -> Invoked {
        let Some(entry) = self.tools.find(name) else {
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
        match context.call_tool(entry.tool.as_ref(), args).await {
            Ok(output) => Invoked::Output(output),
            Err(error) => Invoked::Failed(error),
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
        let observation = self.protocol.parse_feedback(error);
        run.record(ToolInvocation {
            tool: INVALID_REPLY.to_owned(),
            input: Value::String(text.to_owned()),
            observation: observation.clone(),
            log: text.to_owned(),
            is_error: true,
            duration_ms: None,
        });
        Ok(observation)
    }

    /// One last call for the best answer ("generate" early stopping).
    async fn generate_final(
        &self,
        step: &StepPrompt<'_>,
        run: &mut StepRun,
        reason: &str,
    ) -> Result<String, ExecError> {
        let request = self.protocol.final_request(self, step, run, reason)?;
        let response = self.call_model(run, request).await?;
        Ok(text::read_final_reply(&response.message.content))
    }
}

/// What calling a tool gave.
enum Invoked {
    Output(String),
    Rejected(String),
    Failed(pae_core::ToolError),
}

#[async_trait]
impl Executor for AgentExecutor {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        let previous_steps = self.history.render(
            &input.previous_steps,
            Some(&input.current_step),
            self.settings.history,
        );
        let step_number = (input.index + 1).to_string();
        let step = StepPrompt {
            previous_steps: &previous_steps,
            current_step: &input.current_step.value,
            objective: &input.objective,
            step_number: &step_number,
            inputs: &input.inputs,
        };
        let mut run = StepRun::new(input.context.in_step(input.index));
        let outcome = match self.settings.max_execution_time {
            None => self.drive(input, &step, &mut run).await?,
            Some(limit) => {
                let timed = tokio::time::timeout(limit, self.drive(input, &step, &mut run)).await;
                match timed {
                    Ok(outcome) => outcome?,
                    Err(_elapsed) => {
                        run.abandon_pending();
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
                let text = match run.last_result() {
                    _ if !text.trim().is_empty() => text,
                    Some(result) if self.settings.last_result_on_stop => result.to_owned(),
                    _ => prompt::stopped_response(&reason),
                };
                (text, None, StepStatus::Stopped { reason })
            }
        };
        let mut tool_calls = run.calls;
        // Kept for the rest of the run: no spare capacity.
        tool_calls.shrink_to_fit();
        Ok(StepResponse {
            response,
            data,
            status,
            tool_calls,
            usage: run.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AgentExecutor>();
        check::<AgentExecutorBuilder>();
        check::<crate::ChainExecutor>();
    }
}
