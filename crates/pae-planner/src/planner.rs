//! [`LlmPlanner`] (LangChain's `LLMPlanner`), its builder,
//! [`load_chat_planner`], and [`StructuredPlanner`], which asks models that
//! enforce JSON schemas for a JSON plan with dependencies.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{
    ChatModel, ChatPromptTemplate, ChatRequest, Inputs, LlmChain, Plan, PlanError, PlanLimits,
    PlanOutputParser, PlanRequest, Planner, PromptTemplate, ResponseFormat, Sampling,
};

use crate::prompts::{
    END_OF_PLAN, PLAN_RETRY_INSTRUCTIONS, PLAN_SCHEMA_NAME, PLANNER_SYSTEM_PROMPT,
    STRUCTURED_PLAN_RETRY_INSTRUCTIONS, STRUCTURED_PLANNER_SYSTEM_PROMPT, plan_schema,
};
use crate::retry::{accept_plan, call_until_accepted};
use crate::structured::StructuredPlanParser;
use crate::text::PlanningOutputParser;

/// A planner that asks a chat model for a plan and parses its reply
/// (LangChain's `LLMPlanner`): an [`LlmChain`], a [`PlanOutputParser`] and
/// stop sequences.
///
/// The chain's prompt is filled with the run's inputs (`"input"` and
/// `"objective"` are the objective); the request stops at the chain's stop
/// sequences followed by the planner's. The reply is parsed, validated
/// against the planner's [`PlanLimits`] and, when steps have dependencies,
/// put in an order where every step follows the steps it needs. A reply that
/// fails is sent back to the model with the reason, up to
/// [`with_max_retries`](LlmPlannerBuilder::with_max_retries) times (none by
/// default, as in LangChain). The token usage of every call is added to the
/// run's [`RunContext`](pae_core::RunContext).
///
/// Build one with [`load_chat_planner`], or configure one with
/// [`LlmPlanner::builder`] (or [`LlmPlanner::structured_builder`]), the one
/// place for its settings. [`LlmPlanner::new`] wraps a chain of your own.
#[derive(Clone)]
pub struct LlmPlanner {
    llm_chain: LlmChain,
    output_parser: Arc<dyn PlanOutputParser>,
    stop: Vec<String>,
    limits: PlanLimits,
    max_retries: usize,
    retry_instructions: String,
}

impl fmt::Debug for LlmPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmPlanner")
            .field("llm_chain", &self.llm_chain)
            .field("stop", &self.stop)
            .field("limits", &self.limits)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl LlmPlanner {
    /// A planner over this chain and parser (LangChain's
    /// `LLMPlanner(llm_chain, output_parser)`), with no stop sequence besides
    /// the chain's own ([`LlmChain::with_stop`]), default limits and no
    /// retry. To set those, build the planner with [`LlmPlanner::builder`].
    pub fn new(llm_chain: LlmChain, output_parser: Arc<dyn PlanOutputParser>) -> Self {
        Self {
            llm_chain,
            output_parser,
            stop: Vec::new(),
            limits: PlanLimits::default(),
            max_retries: 0,
            retry_instructions: PLAN_RETRY_INSTRUCTIONS.to_owned(),
        }
    }

    /// A builder for a chat planner over `model`, set up like
    /// [`load_chat_planner`].
    pub fn builder(model: Arc<dyn ChatModel>) -> LlmPlannerBuilder {
        LlmPlannerBuilder::new(model)
    }

    /// A builder for a JSON planner over `model`: the structured prompt, the
    /// [`plan_schema`] as response format, [`StructuredPlanParser`], no stop
    /// sequence and 2 retries.
    pub fn structured_builder(model: Arc<dyn ChatModel>) -> LlmPlannerBuilder {
        LlmPlannerBuilder::new(model)
            .with_system_prompt(STRUCTURED_PLANNER_SYSTEM_PROMPT)
            .with_stop(Vec::<String>::new())
            .with_output_parser(Arc::new(StructuredPlanParser::new()))
            .with_response_format(Some(ResponseFormat::json_schema(
                PLAN_SCHEMA_NAME,
                plan_schema(),
            )))
            .with_max_retries(2)
            .with_retry_instructions(STRUCTURED_PLAN_RETRY_INSTRUCTIONS)
    }

    /// The chain.
    pub fn llm_chain(&self) -> &LlmChain {
        &self.llm_chain
    }

    /// The output parser.
    pub fn output_parser(&self) -> &Arc<dyn PlanOutputParser> {
        &self.output_parser
    }

    /// The planner's stop sequences (sent after the chain's).
    pub fn stop(&self) -> &[String] {
        &self.stop
    }

    /// The bounds plans are validated against.
    pub fn limits(&self) -> &PlanLimits {
        &self.limits
    }

    /// How many retries a failed reply gets.
    pub fn max_retries(&self) -> usize {
        self.max_retries
    }

    /// The first request this planner sends for `request`.
    ///
    /// # Errors
    /// [`PlanError::Chain`] when the prompt needs an input the request does
    /// not have.
    pub fn chat_request(&self, request: &PlanRequest) -> Result<ChatRequest, PlanError> {
        let mut values: Inputs = request.inputs.clone();
        for key in ["input", "objective"] {
            values
                .entry(key.to_owned())
                .or_insert_with(|| request.objective.clone());
        }
        let mut chat = self.llm_chain.request(&values)?;
        for stop in &self.stop {
            if !chat.stop.contains(stop) {
                chat.stop.push(stop.clone());
            }
        }
        Ok(chat)
    }
}

#[async_trait]
impl Planner for LlmPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        let chat = self.chat_request(request)?;
        let parser = self.output_parser.as_ref();
        let limits = self.limits;
        call_until_accepted(
            self.llm_chain.model().as_ref(),
            chat,
            self.max_retries,
            &request.context,
            &self.retry_instructions,
            |text| accept_plan(parser, &limits, text),
        )
        .await
    }
}

/// Builds an [`LlmPlanner`] over a chat model: a literal system message, a
/// human message (the objective by default), stop sequences, limits,
/// sampling, retries.
///
/// ```
/// use std::sync::Arc;
/// use pae_core::{PlanLimits, Sampling};
/// use pae_core::test_util::ScriptedModel;
/// use pae_planner::LlmPlanner;
///
/// let model = Arc::new(ScriptedModel::new(Vec::<String>::new()));
/// let planner = LlmPlanner::builder(model)
///     .with_system_prompt("Plan in at most three steps. Braces {are} fine here.")
///     .with_limits(PlanLimits { min_steps: 1, max_steps: 3 })
///     .with_sampling(Sampling { temperature: Some(0.0), ..Sampling::default() })
///     .with_max_retries(1)
///     .build();
/// assert_eq!(planner.stop(), ["<END_OF_PLAN>"]);
/// ```
#[derive(Clone)]
pub struct LlmPlannerBuilder {
    model: Arc<dyn ChatModel>,
    system_prompt: String,
    human_prompt: PromptTemplate,
    stop: Vec<String>,
    limits: PlanLimits,
    sampling: Sampling,
    response_format: Option<ResponseFormat>,
    output_parser: Arc<dyn PlanOutputParser>,
    max_retries: usize,
    retry_instructions: String,
}

impl fmt::Debug for LlmPlannerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmPlannerBuilder")
            .field("model", &self.model.model_name())
            .field("stop", &self.stop)
            .field("limits", &self.limits)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl LlmPlannerBuilder {
    /// The defaults of [`load_chat_planner`]: [`PLANNER_SYSTEM_PROMPT`], the
    /// objective as human message, stop `["<END_OF_PLAN>"]`,
    /// [`PlanningOutputParser`], default limits and sampling, no retry.
    pub fn new(model: Arc<dyn ChatModel>) -> Self {
        Self {
            model,
            system_prompt: PLANNER_SYSTEM_PROMPT.to_owned(),
            human_prompt: human_template(),
            stop: vec![END_OF_PLAN.to_owned()],
            limits: PlanLimits::default(),
            sampling: Sampling::default(),
            response_format: None,
            output_parser: Arc::new(PlanningOutputParser::new()),
            max_retries: 0,
            retry_instructions: PLAN_RETRY_INSTRUCTIONS.to_owned(),
        }
    }

    /// Sets the system message. It is sent as written: braces are literal.
    #[must_use]
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// Sets the human message template; its placeholders are filled from
    /// the run's inputs (default `{input}`, the objective).
    #[must_use]
    pub fn with_human_prompt(mut self, template: PromptTemplate) -> Self {
        self.human_prompt = template;
        self
    }

    /// Sets the stop sequences.
    #[must_use]
    pub fn with_stop<I, S>(mut self, stop: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the bounds plans are validated against.
    #[must_use]
    pub fn with_limits(mut self, limits: PlanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the sampling settings.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets the response format requested from the model.
    #[must_use]
    pub fn with_response_format(mut self, format: Option<ResponseFormat>) -> Self {
        self.response_format = format;
        self
    }

    /// Sets the output parser.
    #[must_use]
    pub fn with_output_parser(mut self, parser: Arc<dyn PlanOutputParser>) -> Self {
        self.output_parser = parser;
        self
    }

    /// Sets how many times a failed reply is sent back with the reason.
    #[must_use]
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets what the model is told after a reply it could not use.
    #[must_use]
    pub fn with_retry_instructions(mut self, instructions: impl Into<String>) -> Self {
        self.retry_instructions = instructions.into();
        self
    }

    /// The planner.
    pub fn build(self) -> LlmPlanner {
        let prompt = ChatPromptTemplate::new(
            PromptTemplate::literal(self.system_prompt),
            self.human_prompt,
        );
        let mut chain = LlmChain::new(self.model, prompt).with_sampling(self.sampling);
        if let Some(format) = self.response_format {
            chain = chain.with_response_format(format);
        }
        LlmPlanner {
            llm_chain: chain,
            output_parser: self.output_parser,
            stop: self.stop,
            limits: self.limits,
            max_retries: self.max_retries,
            retry_instructions: self.retry_instructions,
        }
    }
}

/// The human message: the objective, verbatim.
fn human_template() -> PromptTemplate {
    // "{input}" is one placeholder; parsing it cannot fail, and the literal
    // fallback would only show up if the template syntax changed.
    PromptTemplate::new("{input}").unwrap_or_else(|_| PromptTemplate::literal(""))
}

/// The chat planner of LangChain's `load_chat_planner`: a system message
/// asking for a `Plan:` header, a numbered list with as few steps as needed,
/// a last step answering the question, and `<END_OF_PLAN>`; the objective as
/// the human message; stop `["<END_OF_PLAN>"]`; [`PlanningOutputParser`].
///
/// Use [`LlmPlanner::builder`] for a custom system prompt.
pub fn load_chat_planner(model: Arc<dyn ChatModel>) -> LlmPlanner {
    LlmPlanner::builder(model).build()
}

/// A planner that asks for a JSON plan with ids and dependencies when the
/// model enforces JSON schemas, and falls back to a text planner otherwise.
///
/// The JSON planner sends [`plan_schema`] as response format and parses the
/// reply with [`StructuredPlanParser`]; a reply that is not valid JSON, has
/// no step, or names unknown ids or cyclic dependencies goes back to the
/// model with the reason, up to 2 times by default, then
/// [`PlanError::RetriesExhausted`]. Whether the model enforces schemas is
/// read from [`ChatModel::capabilities`] on every call.
///
/// With [`with_fallback_on_failure`](Self::with_fallback_on_failure), a
/// JSON plan that stays unusable (a small model that keeps naming unknown
/// dependency ids, say) is not the end of the run: the fallback planner is
/// asked for a plain numbered plan instead.
#[derive(Clone)]
pub struct StructuredPlanner {
    structured: LlmPlanner,
    fallback: Arc<dyn Planner>,
    fallback_on_failure: bool,
}

impl StructuredPlanner {
    /// The default JSON planner over `model`
    /// ([`LlmPlanner::structured_builder`]), falling back to
    /// [`load_chat_planner`] over the same model.
    pub fn new(model: Arc<dyn ChatModel>) -> Self {
        Self {
            structured: LlmPlanner::structured_builder(Arc::clone(&model)).build(),
            fallback: Arc::new(load_chat_planner(model)),
            fallback_on_failure: false,
        }
    }

    /// A planner from a JSON planner and the planner used when its model
    /// does not enforce JSON schemas.
    pub fn from_planners(structured: LlmPlanner, fallback: Arc<dyn Planner>) -> Self {
        Self {
            structured,
            fallback,
            fallback_on_failure: false,
        }
    }

    /// Sets the retries of the JSON planner.
    #[must_use]
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.structured.max_retries = max_retries;
        self
    }

    /// Sets the limits of the JSON planner (the fallback keeps its own).
    #[must_use]
    pub fn with_limits(mut self, limits: PlanLimits) -> Self {
        self.structured.limits = limits;
        self
    }

    /// Sets the fallback planner.
    #[must_use]
    pub fn with_fallback(mut self, fallback: Arc<dyn Planner>) -> Self {
        self.fallback = fallback;
        self
    }

    /// Whether a JSON plan that is still unparseable or invalid after every
    /// retry makes the fallback planner try (`true`), or is returned as the
    /// error (`false`, the default). Provider errors are returned either
    /// way: asking the same failing server again would not help.
    #[must_use]
    pub fn with_fallback_on_failure(mut self, enabled: bool) -> Self {
        self.fallback_on_failure = enabled;
        self
    }

    /// The JSON planner.
    pub fn structured(&self) -> &LlmPlanner {
        &self.structured
    }

    /// Whether the next plan will be asked for as JSON.
    pub fn uses_json(&self) -> bool {
        self.structured
            .llm_chain()
            .model()
            .capabilities()
            .json_schema
    }
}

impl fmt::Debug for StructuredPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StructuredPlanner")
            .field("structured", &self.structured)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Planner for StructuredPlanner {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        if !self.uses_json() {
            pae_core::telemetry::repaired(
                pae_core::RepairKind::PlannerFallback,
                "the model does not enforce JSON schemas: the text planner plans",
            );
            return self.fallback.plan(request).await;
        }
        match self.structured.plan(request).await {
            Err(
                error @ (PlanError::RetriesExhausted { .. }
                | PlanError::Parse(_)
                | PlanError::Invalid(_)),
            ) if self.fallback_on_failure => {
                pae_core::telemetry::repaired(
                    pae_core::RepairKind::PlannerFallback,
                    format!(
                        "the JSON plan failed ({}): the text planner plans",
                        pae_core::error_chain(&error)
                    ),
                );
                self.fallback.plan(request).await
            }
            result => result,
        }
    }
}

/// [`StructuredPlanner::new`].
pub fn load_structured_planner(model: Arc<dyn ChatModel>) -> StructuredPlanner {
    StructuredPlanner::new(model)
}
