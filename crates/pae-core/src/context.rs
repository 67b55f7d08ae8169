//! [`RunContext`]: what the planner, the executor and the tools of one run
//! share — the event sink, the token counter, cancellation, the budget —
//! and the one door every model and tool call of a run goes through
//! ([`RunContext::chat`], [`RunContext::call_tool`]), where calls are
//! journaled for resume, checked against the budget and reported as events.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pae_schema::TokenUsage;
use serde_json::{Value, json};

use crate::cancel::CancelToken;
use crate::error::{ProviderError, ToolError};
use crate::event::{EventKind, EventSink, RequestSummary};
use crate::model::{ChatModel, ChatRequest, ChatResponse};
use crate::store::{
    Budget, CallKind, CallScope, CallState, Commit, Interruption, JournalEntry, Lease, RunId,
    RunStore, Spent, StoreError, now_ms,
};
use crate::telemetry::error_type::{provider_error_type, tool_error_type};
use crate::tool::{Tool, ToolContext};
use tracing::Instrument;
use tracing::field::Empty;

mod ambient;

pub(crate) use ambient::{Scoped, with_current};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a callback panicked mid-update; the data
    // is still meaningful.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-run state shared by the planner, the executor and the tools of one
/// run. Cheap to clone; a fresh one is made for every run, and each phase
/// of the run (planning, each step, each replanning) gets a scoped clone
/// whose calls are numbered from 0.
#[derive(Clone, Default)]
pub struct RunContext {
    shared: Arc<Shared>,
    scope: CallScope,
    calls: Arc<AtomicU32>,
    replay: Option<Arc<Mutex<Replay>>>,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.shared.run_id)
            .field("scope", &self.scope)
            .field("durable", &self.shared.durable.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    events: EventSink,
    usage: Mutex<TokenUsage>,
    cancel: CancelToken,
    run_id: Option<RunId>,
    revision: AtomicU32,
    budget: Budget,
    spent: Mutex<Spent>,
    /// Wall time of earlier sessions, in milliseconds.
    wall_base_ms: u64,
    halt: Mutex<Option<Halt>>,
    /// Whether `halt` holds a reason: every call checks, and almost none
    /// finds one, so the check takes no lock.
    halted: AtomicBool,
    durable: Option<Durable>,
    /// The idempotency key of a call in doubt that a person, by resuming,
    /// allowed to be made again.
    retry_in_doubt: Option<String>,
    /// Whether prompts, replies and tool arguments and results go into
    /// events and spans.
    message_content: bool,
}

/// Why the run must stop, set by the first call that found out.
#[derive(Debug, Clone)]
pub(crate) enum Halt {
    /// Resumable: see [`Interruption`].
    Interrupted(Interruption),
    /// Another writer took the run over: nothing more may be written.
    LeaseLost {
        /// The run.
        id: String,
        /// The stale epoch.
        epoch: u64,
    },
    /// The store failed: nothing more may be written.
    Store(String),
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interrupted(reason) => reason.fmt(f),
            Self::LeaseLost { id, epoch } => {
                write!(f, "the lease on run {id} was lost (epoch {epoch} is stale)")
            }
            Self::Store(reason) => f.write_str(reason),
        }
    }
}

impl Halt {
    fn from_store(error: &StoreError) -> Self {
        match error {
            StoreError::LeaseLost { id, epoch } => Self::LeaseLost {
                id: id.clone(),
                epoch: *epoch,
            },
            other => Self::Store(crate::plan_execute::error_chain(other)),
        }
    }
}

/// The durable part of a run: where its journal and events go.
struct Durable {
    store: Arc<dyn RunStore>,
    lease: Mutex<Lease>,
    /// Journal entries and events not yet written; they go with the next
    /// commit, which is at the latest when the step commits.
    pending: Mutex<Pending>,
    /// Serialises commits so they reach the store in order.
    writer: tokio::sync::Mutex<()>,
    /// Whether the run had earlier sessions (its journals may hold calls to
    /// replay).
    resumed: bool,
}

/// Journal entries, events and journal truncations not yet written.
type Pending = (
    Vec<JournalEntry>,
    Vec<crate::event::Event>,
    Vec<(CallScope, u32)>,
);

/// Journal entries of one scope from an earlier session, consumed in order
/// while the requests match.
#[derive(Debug, Default)]
struct Replay {
    entries: HashMap<u32, JournalEntry>,
}

/// What a scoped context replays for a call.
enum Replayed {
    Model(ChatResponse),
    Tool(Result<String, ToolError>),
    /// A tool call that started and never finished.
    InDoubt,
    None,
}

/// Appends `number` in decimal (without the formatting machinery: one
/// idempotency key per tool call).
fn push_decimal(out: &mut String, number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

impl RunContext {
    /// A context that delivers events to `events`.
    pub fn new(events: EventSink) -> Self {
        Self {
            shared: Arc::new(Shared {
                events,
                ..Shared::default()
            }),
            ..Self::default()
        }
    }

    /// Sets the run's cancellation token. Call before the context is
    /// cloned: clones made earlier keep the old token.
    #[must_use]
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.shared_mut().cancel = token;
        self
    }

    /// Sets the run's budget, checked before each model and tool call.
    #[must_use]
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.shared_mut().budget = budget;
        self
    }

    /// Sets the run's id (it goes into tool contexts and idempotency keys).
    #[must_use]
    pub fn with_run_id(mut self, id: RunId) -> Self {
        self.shared_mut().run_id = Some(id);
        self
    }

    /// Records message content: the prompts and replies of model calls in
    /// [`ModelCalled`](EventKind::ModelCalled) events and `chat` spans, and
    /// tool arguments and results in `execute_tool` spans (see
    /// [`telemetry`](crate::telemetry)). Off by default: they can hold
    /// secrets.
    #[must_use]
    pub fn with_message_content(mut self, enabled: bool) -> Self {
        self.shared_mut().message_content = enabled;
        self
    }

    /// Whether message content is recorded.
    pub fn records_message_content(&self) -> bool {
        self.shared.message_content
    }

    /// The context of the run phase being polled on this thread: inside
    /// the planner, a step, a replanning, or a model or tool call made
    /// through [`chat`](Self::chat) or [`call_tool`](Self::call_tool) of a
    /// run. For code that holds no context (middleware, parsers) and wants
    /// to [`emit`](Self::emit) events; `None` outside a run.
    pub fn current() -> Option<Self> {
        ambient::current()
    }

    /// Continues spending from an earlier session.
    #[must_use]
    pub(crate) fn with_spent(mut self, spent: Spent) -> Self {
        let shared = self.shared_mut();
        shared.wall_base_ms = spent.wall_ms;
        shared.spent = Mutex::new(spent);
        self
    }

    /// Lets the call in doubt with this idempotency key be made again (a
    /// person resumed a run interrupted by it).
    #[must_use]
    pub(crate) fn with_retry_in_doubt(mut self, key: Option<String>) -> Self {
        self.shared_mut().retry_in_doubt = key;
        self
    }

    /// Makes the run durable: calls are journaled and events stored in
    /// `store` under `lease`.
    #[must_use]
    pub(crate) fn with_store(
        mut self,
        store: Arc<dyn RunStore>,
        lease: Lease,
        resumed: bool,
    ) -> Self {
        self.shared_mut().durable = Some(Durable {
            store,
            lease: Mutex::new(lease),
            pending: Mutex::default(),
            writer: tokio::sync::Mutex::new(()),
            resumed,
        });
        self
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Builders run before the context is shared; a context that is
        // already shared is copied (its clones keep the old settings).
        if Arc::get_mut(&mut self.shared).is_none() {
            let old = self.shared.clone();
            self.shared = Arc::new(Shared {
                events: old.events.clone(),
                usage: Mutex::new(*lock(&old.usage)),
                cancel: old.cancel.clone(),
                run_id: old.run_id.clone(),
                revision: AtomicU32::new(old.revision.load(Ordering::SeqCst)),
                budget: old.budget.clone(),
                spent: Mutex::new(lock(&old.spent).clone()),
                wall_base_ms: old.wall_base_ms,
                halt: Mutex::new(lock(&old.halt).clone()),
                halted: AtomicBool::new(old.halted.load(Ordering::SeqCst)),
                durable: None,
                retry_in_doubt: old.retry_in_doubt.clone(),
                message_content: old.message_content,
            });
        }
        Arc::get_mut(&mut self.shared).unwrap_or_else(|| unreachable!("made unique above"))
    }

    /// A clone for one phase of the run: its calls are numbered from 0 and
    /// journaled under `scope`. On a resumed durable run, the scope's
    /// journal from earlier sessions is loaded for replay.
    ///
    /// # Errors
    /// A store read error.
    pub async fn scoped(&self, scope: CallScope) -> Result<Self, StoreError> {
        let mut replay = None;
        if let (Some(durable), Some(id)) = (&self.shared.durable, &self.shared.run_id)
            && durable.resumed
        {
            let entries = durable.store.journal(id, &scope).await?;
            if !entries.is_empty() {
                replay = Some(Arc::new(Mutex::new(Replay {
                    entries: entries.into_iter().map(|e| (e.seq, e)).collect(),
                })));
            }
        }
        Ok(Self {
            shared: self.shared.clone(),
            scope,
            calls: Arc::default(),
            replay,
        })
    }

    /// This context, scoped to step `index` of the current revision unless
    /// it already is scoped to a step (the orchestrator scopes contexts; an
    /// executor called directly gets an unscoped one). Executors call it
    /// once per step.
    pub fn in_step(&self, index: usize) -> Self {
        if matches!(self.scope, CallScope::Step { .. }) {
            return self.clone();
        }
        Self {
            shared: self.shared.clone(),
            scope: CallScope::Step {
                revision: self.revision(),
                index,
            },
            calls: Arc::default(),
            replay: None,
        }
    }

    /// Reports a tool call that was refused before the tool ran (an
    /// unknown tool, arguments that do not fit): `ToolStarted` and
    /// `ToolFinished` with the next call number, so every call the model
    /// asked for is in the event stream once.
    pub fn record_refused_call(&self, tool: &str, input: Value, observation: &str) {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let step_index = self.scope.step_index();
        self.emit(EventKind::ToolStarted {
            step_index,
            call,
            tool: tool.to_owned(),
            input,
        });
        self.emit(EventKind::ToolFinished {
            step_index,
            call,
            tool: tool.to_owned(),
            observation: observation.to_owned(),
            is_error: true,
            duration_ms: 0.0,
            replayed: false,
        });
    }

    /// Reports that the last tool call started through
    /// [`call_tool`](Self::call_tool) was abandoned (its future dropped by
    /// a time limit) with `observation`.
    pub fn record_abandoned_call(&self, tool: &str, observation: &str, duration_ms: f64) {
        let call = self.calls.load(Ordering::SeqCst).saturating_sub(1);
        self.emit(EventKind::ToolFinished {
            step_index: self.scope.step_index(),
            call,
            tool: tool.to_owned(),
            observation: observation.to_owned(),
            is_error: true,
            duration_ms,
            replayed: false,
        });
    }

    /// The scope calls are journaled under.
    pub fn scope(&self) -> &CallScope {
        &self.scope
    }

    /// The run's id, for durable runs and runs given one.
    pub fn run_id(&self) -> Option<&RunId> {
        self.shared.run_id.as_ref()
    }

    /// The current plan revision (0 for the first plan).
    pub fn revision(&self) -> u32 {
        self.shared.revision.load(Ordering::SeqCst)
    }

    pub(crate) fn set_revision(&self, revision: u32) {
        self.shared.revision.store(revision, Ordering::SeqCst);
    }

    /// The run's cancellation token: the orchestrator stops the planner and
    /// steps when it fires, and [`chat`](Self::chat) and
    /// [`call_tool`](Self::call_tool) give up at once; long tools get it in
    /// their [`ToolContext`].
    pub fn cancel_token(&self) -> &CancelToken {
        &self.shared.cancel
    }

    /// The event sink.
    pub fn events(&self) -> &EventSink {
        &self.shared.events
    }

    /// Whether events go anywhere: to a callback, or to the store of a
    /// durable run. When not, [`emit`](Self::emit) drops them, so callers
    /// can skip building costly ones.
    pub fn is_observed(&self) -> bool {
        self.shared.durable.is_some() || self.shared.events.has_callbacks()
    }

    /// Emits an event (and stores it, for durable runs).
    pub fn emit(&self, kind: EventKind) {
        if !self.is_observed() {
            return;
        }
        let durable = self.shared.durable.as_ref();
        let event = self.shared.events.event(kind);
        self.shared.events.deliver(&event);
        if let Some(durable) = durable {
            lock(&durable.pending).1.push(event);
        }
    }

    /// Adds tokens spent outside any step (planning, replanning). Executors
    /// report their tokens in [`StepResponse::usage`](pae_schema::StepResponse)
    /// instead.
    pub fn record_usage(&self, usage: TokenUsage) {
        *lock(&self.shared.usage) += usage;
    }

    /// Tokens recorded with [`record_usage`](Self::record_usage).
    pub fn usage(&self) -> TokenUsage {
        *lock(&self.shared.usage)
    }

    /// What the run has spent, across resumes: tokens and calls made
    /// through [`chat`](Self::chat) and [`call_tool`](Self::call_tool),
    /// wall time, cost.
    pub fn spent(&self) -> Spent {
        let mut spent = lock(&self.shared.spent).clone();
        spent.wall_ms = self.wall_ms();
        spent
    }

    fn wall_ms(&self) -> u64 {
        let session = u64::try_from(self.shared.events.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.shared.wall_base_ms.saturating_add(session)
    }

    /// Why the run must stop, once a call found out.
    pub(crate) fn halt(&self) -> Option<Halt> {
        if !self.shared.halted.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.shared.halt).clone()
    }

    fn set_halt(&self, halt: Halt) -> String {
        let mut slot = lock(&self.shared.halt);
        let reason = slot.get_or_insert(halt).to_string();
        self.shared.halted.store(true, Ordering::Release);
        reason
    }

    /// Checks cancellation, an earlier halt and the budget before a call.
    fn admit(&self, kind: CallKind) -> Result<(), String> {
        if let Some(halt) = self.halt() {
            return Err(halt.to_string());
        }
        if self.cancel_token().is_cancelled() {
            return Err("the run was cancelled".to_owned());
        }
        let budget = &self.shared.budget;
        if budget.is_limited() {
            let spent = self.spent();
            if let Some(kind) = budget.exceeded(&spent, kind) {
                let reason = Interruption::BudgetExceeded {
                    budget: kind,
                    limit: budget.limit(kind).unwrap_or_default(),
                    spent: spent.value(kind),
                };
                return Err(self.set_halt(Halt::Interrupted(reason)));
            }
        }
        Ok(())
    }

    /// Takes the journaled result of call `seq`, if it matches.
    fn replayed(&self, seq: u32, kind: CallKind, hash: &str) -> Replayed {
        let Some(replay) = &self.replay else {
            return Replayed::None;
        };
        let mut replay = lock(replay);
        let Some(entry) = replay.entries.remove(&seq) else {
            return Replayed::None;
        };
        if entry.kind != kind || entry.request_hash != hash {
            // The run took another path: the rest of the scope's journal
            // belongs to it and is dropped.
            let mut dropped = vec![entry];
            dropped.extend(replay.entries.drain().map(|(_, e)| e));
            drop(replay);
            let wasted: TokenUsage = dropped.iter().map(|e| e.usage).sum();
            lock(&self.shared.spent).wasted += wasted;
            if let Some(durable) = &self.shared.durable {
                lock(&durable.pending).2.push((self.scope.clone(), seq));
            }
            return Replayed::None;
        }
        match (kind, entry.state) {
            (_, CallState::Started) => Replayed::InDoubt,
            (CallKind::Model, CallState::Done) => {
                match serde_json::from_value::<ChatResponse>(entry.result) {
                    Ok(response) => Replayed::Model(response),
                    Err(_) => Replayed::None,
                }
            }
            (CallKind::Tool, CallState::Done) => Replayed::Tool(tool_result(&entry.result)),
        }
    }

    /// Calls `model` as part of this run: the one door for model calls.
    ///
    /// Checks cancellation and the budget first; on a resumed durable run,
    /// answers from the journal while the requests match what was recorded,
    /// so a resumed step repeats no completed call; journals the response;
    /// counts tokens, calls and cost; emits a
    /// [`ModelCalled`](EventKind::ModelCalled) event.
    ///
    /// # Errors
    /// The model's [`ProviderError`], or [`ProviderError::Stopped`] when the
    /// run was cancelled, a budget ran out or the run lost its lease.
    pub async fn chat(
        &self,
        model: &dyn ChatModel,
        request: ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let seq = self.calls.fetch_add(1, Ordering::SeqCst);
        // The model's name is asked for only where it is used: a span that
        // is on, an event, a journal entry or a price.
        let span = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = model.model_name().as_str(),
            "gen_ai.request.max_tokens" = request.sampling.max_tokens,
            "gen_ai.request.temperature" = request.sampling.temperature,
            "gen_ai.request.seed" = request.sampling.seed,
            "pae.call" = seq,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "gen_ai.response.finish_reasons" = Empty,
            "pae.replayed" = Empty,
            "error.type" = Empty,
            "otel.status_code" = Empty,
            "gen_ai.input.messages" = Empty,
            "gen_ai.output.messages" = Empty,
        );
        let result = self
            .chat_in(model, request, seq, &span)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            span.record("error.type", provider_error_type(error).as_str());
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    async fn chat_in(
        &self,
        model: &dyn ChatModel,
        request: ChatRequest,
        seq: u32,
        span: &tracing::Span,
    ) -> Result<ChatResponse, ProviderError> {
        self.admit(CallKind::Model)
            .map_err(|reason| ProviderError::Stopped { reason })?;
        let durable = self.shared.durable.is_some();
        let hash = if durable {
            stable_hash(&serde_json::to_vec(&request).unwrap_or_default())
        } else {
            String::new()
        };
        let content = self.shared.message_content;
        let listened = durable || self.shared.events.has_callbacks();
        let summary = listened.then(|| RequestSummary::of(&request));
        let prompt =
            (content && (listened || !span.is_disabled())).then(|| request.messages.clone());
        if let Some(prompt) = &prompt
            && !span.is_disabled()
        {
            span.record(
                "gen_ai.input.messages",
                serde_json::to_string(prompt).unwrap_or_default(),
            );
        }
        if let Replayed::Model(response) = self.replayed(seq, CallKind::Model, &hash) {
            lock(&self.shared.spent).replayed_calls += 1;
            self.record_reply(span, &response, true);
            self.emit(EventKind::ModelCalled {
                step_index: self.scope.step_index(),
                model: model.model_name(),
                usage: response.usage.unwrap_or_default(),
                latency_ms: 0.0,
                replayed: true,
                call: seq,
                request: summary,
                finish_reason: Some(response.finish_reason.clone()),
                reply: prompt.is_some().then(|| response.message.clone()),
                prompt,
            });
            return Ok(response);
        }
        // Clocks are read only for what is recorded: the latency for the
        // event, the start time for the journal.
        let started = listened.then(tokio::time::Instant::now);
        let started_ms = if durable { now_ms() } else { 0 };
        let call = Scoped::new(self.clone(), model.chat(request));
        let response = match self.cancel_token().run_until_cancelled(call).await {
            Some(response) => response?,
            None => {
                return Err(ProviderError::Stopped {
                    reason: "the run was cancelled".to_owned(),
                });
            }
        };
        self.record_reply(span, &response, false);
        let usage = response.usage.unwrap_or_default();
        {
            // The price is looked up before the lock: `model_name` is the
            // model's own code.
            let price = if self.shared.budget.prices.is_empty() {
                None
            } else {
                self.shared.budget.prices.get(&model.model_name())
            };
            let mut spent = lock(&self.shared.spent);
            spent.usage += usage;
            spent.model_calls += 1;
            if let Some(price) = price {
                spent.cost += price.cost(usage);
            }
        }
        if let (Some(durable), Some(summary)) = (&self.shared.durable, summary) {
            lock(&durable.pending).0.push(JournalEntry {
                scope: self.scope.clone(),
                seq,
                kind: CallKind::Model,
                name: model.model_name(),
                request_hash: hash,
                idempotency_key: None,
                state: CallState::Done,
                request: serde_json::to_value(summary).unwrap_or_default(),
                result: serde_json::to_value(&response).unwrap_or_default(),
                usage,
                started_at_ms: started_ms,
                finished_at_ms: Some(now_ms()),
            });
        }
        if listened {
            self.emit(EventKind::ModelCalled {
                step_index: self.scope.step_index(),
                model: model.model_name(),
                usage,
                latency_ms: started.map_or(0.0, |started| started.elapsed().as_secs_f64() * 1000.0),
                replayed: false,
                call: seq,
                request: summary,
                finish_reason: Some(response.finish_reason.clone()),
                reply: prompt.is_some().then(|| response.message.clone()),
                prompt,
            });
        }
        Ok(response)
    }

    /// Records a reply on its `chat` span.
    fn record_reply(&self, span: &tracing::Span, response: &ChatResponse, replayed: bool) {
        if span.is_disabled() {
            return;
        }
        let usage = response.usage.unwrap_or_default();
        span.record("gen_ai.usage.input_tokens", usage.prompt_tokens);
        span.record("gen_ai.usage.output_tokens", usage.completion_tokens);
        span.record(
            "gen_ai.response.finish_reasons",
            response.finish_reason.as_str(),
        );
        span.record("pae.replayed", replayed);
        if self.shared.message_content {
            span.record(
                "gen_ai.output.messages",
                serde_json::to_string(&[&response.message]).unwrap_or_default(),
            );
        }
    }

    /// The idempotency key of call `seq` in this scope:
    /// `RUN/REVISION/STEP/CALL` (with `-` for a missing run id or step).
    fn idempotency_key(&self, seq: u32) -> String {
        let run = self.run_id().map_or("-", RunId::as_str);
        match &self.scope {
            // Written into one sized string: one per tool call.
            CallScope::Step { revision, index } => {
                let mut key = String::with_capacity(run.len() + 3 * 21);
                key.push_str(run);
                for number in [u64::from(*revision), *index as u64, u64::from(seq)] {
                    key.push('/');
                    push_decimal(&mut key, number);
                }
                key
            }
            other => format!("{run}/{}/{seq}", other.key()),
        }
    }

    /// Calls `tool` as part of this run: the one door for tool calls.
    ///
    /// Checks cancellation and the budget first; gives the tool a
    /// [`ToolContext`] with an idempotency key stable across resumes; on a
    /// durable run, records the call as started before it runs (unless the
    /// tool is read-only and idempotent) and its result as soon as it
    /// returns; on resume, answers from the journal while the requests
    /// match, and re-runs a call that started but never finished only if
    /// the tool is idempotent or read-only — otherwise the run stops with
    /// [`Interruption::ToolCallInDoubt`]. Emits
    /// [`ToolStarted`](EventKind::ToolStarted) and
    /// [`ToolFinished`](EventKind::ToolFinished).
    ///
    /// # Errors
    /// The tool's [`ToolError`], or [`ToolError::Stopped`] when the run must
    /// stop (cancelled, budget, lost lease, a call in doubt): executors end
    /// the step on it instead of showing it to the model.
    pub async fn call_tool(&self, tool: &dyn Tool, input: Value) -> Result<String, ToolError> {
        let seq = self.calls.fetch_add(1, Ordering::SeqCst);
        let key = self.idempotency_key(seq);
        let span = tracing::info_span!(
            "execute_tool",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = tool.name(),
            "gen_ai.tool.type" = "function",
            "gen_ai.tool.call.id" = key.as_str(),
            "pae.replayed" = Empty,
            "error.type" = Empty,
            "otel.status_code" = Empty,
            "gen_ai.tool.call.arguments" = Empty,
            "gen_ai.tool.call.result" = Empty,
        );
        if self.shared.message_content && !span.is_disabled() {
            span.record("gen_ai.tool.call.arguments", input.to_string());
        }
        let result = self
            .call_tool_in(tool, input, seq, key, &span)
            .instrument(span.clone())
            .await;
        if !span.is_disabled() {
            match &result {
                Ok(text) if self.shared.message_content => {
                    span.record("gen_ai.tool.call.result", text.as_str());
                }
                Ok(_) => {}
                Err(error) => {
                    span.record("error.type", tool_error_type(error));
                    span.record("otel.status_code", "ERROR");
                }
            }
        }
        result
    }

    async fn call_tool_in(
        &self,
        tool: &dyn Tool,
        input: Value,
        seq: u32,
        key: String,
        span: &tracing::Span,
    ) -> Result<String, ToolError> {
        self.admit(CallKind::Tool)
            .map_err(|reason| ToolError::Stopped { reason })?;
        let name = tool.name().to_owned();
        let durable = self.shared.durable.as_ref();
        let hash = if durable.is_some() {
            let request = json!({"tool": name, "input": input});
            stable_hash(&serde_json::to_vec(&request).unwrap_or_default())
        } else {
            String::new()
        };
        match self.replayed(seq, CallKind::Tool, &hash) {
            Replayed::Tool(result) => {
                lock(&self.shared.spent).replayed_calls += 1;
                span.record("pae.replayed", true);
                self.emit(EventKind::ToolStarted {
                    step_index: self.scope.step_index(),
                    call: seq,
                    tool: name.clone(),
                    input,
                });
                self.emit(EventKind::ToolFinished {
                    step_index: self.scope.step_index(),
                    call: seq,
                    tool: name,
                    observation: match &result {
                        Ok(text) => text.clone(),
                        Err(e) => e.to_string(),
                    },
                    is_error: result.is_err(),
                    duration_ms: 0.0,
                    replayed: true,
                });
                return result;
            }
            Replayed::InDoubt
                if !(tool.is_idempotent()
                    || tool.is_read_only()
                    || self.shared.retry_in_doubt.as_deref() == Some(key.as_str())) =>
            {
                let reason = Interruption::ToolCallInDoubt {
                    step_index: self.scope.step_index().unwrap_or_default(),
                    tool: name,
                    idempotency_key: key,
                    input,
                };
                let reason = self.set_halt(Halt::Interrupted(reason));
                return Err(ToolError::Stopped { reason });
            }
            Replayed::InDoubt | Replayed::Model(_) | Replayed::None => {}
        }
        let guarded = !(tool.is_read_only() && tool.is_idempotent());
        // Without a store there is no journal entry, and without listeners
        // no event: a call then copies neither its input nor its result.
        let observed = self.is_observed();
        let mut entry = durable.map(|_| JournalEntry {
            scope: self.scope.clone(),
            seq,
            kind: CallKind::Tool,
            name: name.clone(),
            request_hash: hash,
            idempotency_key: Some(key.clone()),
            state: CallState::Started,
            request: input.clone(),
            result: Value::Null,
            usage: TokenUsage::default(),
            started_at_ms: now_ms(),
            finished_at_ms: None,
        });
        if observed {
            self.emit(EventKind::ToolStarted {
                step_index: self.scope.step_index(),
                call: seq,
                tool: name.clone(),
                input: input.clone(),
            });
        }
        if let Some(entry) = entry.as_ref().filter(|_| guarded) {
            // A call with side effects is on record before it runs, so a
            // crash during it is known on resume.
            self.queue(entry.clone());
            // Boxed: the flush (a store commit) is large and only durable
            // runs make it; inline, every tool call's future carried it.
            Box::pin(self.flush(Commit::new()))
                .await
                .map_err(|e| ToolError::Stopped {
                    reason: e.to_string(),
                })?;
        }
        let context = ToolContext {
            run_id: self.shared.run_id.clone(),
            step_index: self.scope.step_index(),
            call: seq,
            idempotency_key: key,
            cancel: self.cancel_token().clone(),
            events: self.shared.events.clone(),
        };
        let started = observed.then(tokio::time::Instant::now);
        span.record("pae.replayed", false);
        let call = Scoped::new(self.clone(), tool.call_with_context(input, &context));
        let result = match self.cancel_token().run_until_cancelled(call).await {
            Some(result) => result,
            None => Err(ToolError::Stopped {
                reason: "the run was cancelled".to_owned(),
            }),
        };
        let stopped = matches!(result, Err(ToolError::Stopped { .. }));
        if !stopped {
            lock(&self.shared.spent).tool_calls += 1;
        }
        if let Some(mut entry) = entry.take().filter(|_| !stopped) {
            entry.state = CallState::Done;
            entry.result = match &result {
                Ok(text) => json!({ "ok": text }),
                Err(error) => json!({ "error": error }),
            };
            entry.finished_at_ms = Some(now_ms());
            self.queue(entry);
            if guarded {
                // The result goes on record at once: the window in which a
                // crash makes this call run again is one commit long.
                Box::pin(self.flush(Commit::new()))
                    .await
                    .map_err(|e| ToolError::Stopped {
                        reason: e.to_string(),
                    })?;
            }
        }
        if let Some(started) = started {
            self.emit(EventKind::ToolFinished {
                step_index: self.scope.step_index(),
                call: seq,
                tool: name,
                observation: match &result {
                    Ok(text) => text.clone(),
                    Err(e) => e.to_string(),
                },
                is_error: result.is_err(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                replayed: false,
            });
        }
        result
    }

    fn queue(&self, entry: JournalEntry) {
        if let Some(durable) = &self.shared.durable {
            lock(&durable.pending).0.push(entry);
        }
    }

    /// Writes `commit` with every pending journal entry and event, and the
    /// spending so far, in one transaction. Does nothing for runs without a
    /// store.
    ///
    /// # Errors
    /// The store's error; a lost lease or a store failure also halts the
    /// run.
    pub(crate) async fn flush(&self, mut commit: Commit) -> Result<(), StoreError> {
        let Some(durable) = &self.shared.durable else {
            return Ok(());
        };
        let _writer = durable.writer.lock().await;
        {
            let mut pending = lock(&durable.pending);
            let (journal, events, truncate) = &mut *pending;
            // Truncations first, then entries written after them.
            commit.truncate.append(truncate);
            commit.journal.splice(0..0, journal.drain(..));
            commit.events.splice(0..0, events.drain(..));
        }
        commit.spent = Some(self.spent());
        let lease = lock(&durable.lease).clone();
        match durable.store.commit(&lease, commit).await {
            Ok(_) => Ok(()),
            Err(error) => {
                self.set_halt(Halt::from_store(&error));
                Err(error)
            }
        }
    }

    /// Renews the lease (the heartbeat of a durable run).
    pub(crate) async fn renew_lease(&self, ttl: Duration) -> Result<(), StoreError> {
        let Some(durable) = &self.shared.durable else {
            return Ok(());
        };
        let lease = lock(&durable.lease).clone();
        match durable.store.renew(&lease, ttl).await {
            Ok(renewed) => {
                *lock(&durable.lease) = renewed;
                Ok(())
            }
            Err(error) => {
                self.set_halt(Halt::from_store(&error));
                Err(error)
            }
        }
    }

    /// The lease a durable run holds.
    pub(crate) fn lease(&self) -> Option<Lease> {
        self.shared
            .durable
            .as_ref()
            .map(|durable| lock(&durable.lease).clone())
    }

    /// The store of a durable run.
    pub(crate) fn store(&self) -> Option<&Arc<dyn RunStore>> {
        self.shared.durable.as_ref().map(|durable| &durable.store)
    }
}

/// A tool result as journaled, read back.
fn tool_result(value: &Value) -> Result<String, ToolError> {
    if let Some(text) = value.get("ok").and_then(Value::as_str) {
        return Ok(text.to_owned());
    }
    match value
        .get("error")
        .map(|e| serde_json::from_value::<ToolError>(e.clone()))
    {
        Some(Ok(error)) => Err(error),
        _ => Err(ToolError::failed(format!(
            "unreadable journaled result: {value}"
        ))),
    }
}

/// FNV-1a, 128 bits, hex: stable across builds and platforms (std's hasher
/// is not), which a persisted hash needs.
pub(crate) fn stable_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for &byte in bytes {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a_128() {
        // Reference values of FNV-1a 128.
        assert_eq!(stable_hash(b""), "6c62272e07bb014262b821756295c58d");
        assert_eq!(stable_hash(b"a"), "d228cb696f1a8caf78912b704e4a8964");
    }

    #[test]
    fn idempotency_keys_name_run_revision_step_and_call() {
        let context = RunContext::default()
            .with_run_id(RunId::parse("run1").unwrap_or_else(|_| RunId::generate()));
        let scoped = futures::executor::block_on(context.scoped(CallScope::Step {
            revision: 2,
            index: 5,
        }))
        .unwrap_or_default();
        assert_eq!(scoped.idempotency_key(3), "run1/2/5/3");
        let far = futures::executor::block_on(context.scoped(CallScope::Step {
            revision: 0,
            index: 1_234_567,
        }))
        .unwrap_or_default();
        assert_eq!(far.idempotency_key(u32::MAX), "run1/0/1234567/4294967295");
        let planning =
            futures::executor::block_on(context.scoped(CallScope::Plan)).unwrap_or_default();
        assert_eq!(planning.idempotency_key(0), "run1/plan/0");
    }
}
