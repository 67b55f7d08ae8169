//! The records a [`RunStore`](super::RunStore) keeps: plain serde data.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use pae_schema::{Plan, Step, StepResponse, TokenUsage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RunId;
use super::clock::now_ms;
use super::status::{BudgetKind, Interruption, RunStatus};
use crate::chain::Inputs;
use crate::event::Event;
use crate::plan_execute::RunOutcome;

/// When a person must approve the plan before tools run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Never: the plan runs as the planner wrote it.
    #[default]
    Never,
    /// The first plan waits for approval; revisions do not.
    BeforeExecution,
    /// The first plan and every revision wait for approval.
    OnEveryRevision,
}

/// Who wrote a plan revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// The planner (revision 0).
    Planner,
    /// The replanner, after steps ran.
    Replanner,
    /// A person, through an edit.
    Human,
}

/// One plan revision of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRevision {
    /// 0 for the first plan, then 1, 2, …
    pub revision: u32,
    /// The whole plan: steps done before the revision, then the new ones.
    pub plan: Plan,
    /// Who wrote it.
    pub source: PlanSource,
    /// Whether a person approved it (always `false` under
    /// [`ApprovalPolicy::Never`], where no approval is needed).
    #[serde(default)]
    pub approved: bool,
    /// When it was stored.
    pub created_at_ms: u64,
}

/// A committed step: written once, never run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based position in the plan (positions are kept across revisions).
    pub index: usize,
    /// The plan revision the step ran under.
    pub revision: u32,
    /// The step as it ran.
    pub step: Step,
    /// Its response.
    pub response: StepResponse,
    /// 1 for a step that ran once; more when a crash made it run again.
    pub attempt: u32,
    /// When its last attempt started.
    pub started_at_ms: u64,
    /// When it committed.
    pub finished_at_ms: u64,
}

/// Where a journaled call was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CallScope {
    /// Planning (the first plan).
    Plan,
    /// A step of a plan revision.
    Step {
        /// The plan revision.
        revision: u32,
        /// The step's 0-based index.
        index: usize,
    },
    /// The replanning that follows a revision.
    Replan {
        /// The revision being revised.
        revision: u32,
    },
    /// Outside any run phase (a direct call).
    #[default]
    Other,
}

impl CallScope {
    /// A compact key: `plan`, `step/REV/INDEX`, `replan/REV`, `other`.
    pub fn key(&self) -> String {
        match self {
            Self::Plan => "plan".to_owned(),
            Self::Step { revision, index } => format!("step/{revision}/{index}"),
            Self::Replan { revision } => format!("replan/{revision}"),
            Self::Other => "other".to_owned(),
        }
    }

    /// Parses [`key`](Self::key)'s form.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let scope = match parts.next()? {
            "plan" => Self::Plan,
            "other" => Self::Other,
            "step" => Self::Step {
                revision: parts.next()?.parse().ok()?,
                index: parts.next()?.parse().ok()?,
            },
            "replan" => Self::Replan {
                revision: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(scope)
    }

    /// The step index, for step scopes.
    pub fn step_index(&self) -> Option<usize> {
        match self {
            Self::Step { index, .. } => Some(*index),
            _ => None,
        }
    }
}

impl fmt::Display for CallScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// What kind of call a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A model call (`ChatModel::chat`).
    Model,
    /// A tool call.
    Tool,
}

/// Whether a journaled call finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Started; no result was recorded (a tool call in flight, or one the
    /// process died during).
    Started,
    /// Finished; the result is recorded.
    Done,
}

/// One model or tool call made inside a run, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Where the call was made.
    pub scope: CallScope,
    /// 0-based call number within the scope.
    pub seq: u32,
    /// Model or tool.
    pub kind: CallKind,
    /// The model's or tool's name.
    pub name: String,
    /// A stable hash of the request (model request, or tool name and
    /// input), hex.
    pub request_hash: String,
    /// The idempotency key handed to the tool (tool calls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Whether it finished.
    pub state: CallState,
    /// The request, for people reading the journal (tool input; model
    /// requests are summarised).
    #[serde(default)]
    pub request: Value,
    /// The result: a `ChatResponse` for model calls, `{"ok": text}` or
    /// `{"error": ToolError}` for tool calls; `null` while started.
    #[serde(default)]
    pub result: Value,
    /// Tokens the call spent (model calls).
    #[serde(default)]
    pub usage: TokenUsage,
    /// When it started.
    pub started_at_ms: u64,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

/// A persisted event with its per-run sequence number (from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// 1, 2, … in the order the events were stored.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// A price per million tokens, in any currency (the budget's `max_cost` is
/// in the same one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Per million prompt tokens.
    pub input_per_million: f64,
    /// Per million completion tokens.
    pub output_per_million: f64,
}

impl ModelPrice {
    /// The cost of `usage` at this price.
    pub fn cost(&self, usage: TokenUsage) -> f64 {
        // Token counts stay far below 2^52, where f64 is exact.
        #[allow(clippy::cast_precision_loss)]
        let (input, output) = (usage.prompt_tokens as f64, usage.completion_tokens as f64);
        (input * self.input_per_million + output * self.output_per_million) / 1e6
    }
}

/// Limits on what one run may spend, across every resume. Checked before
/// each model and tool call; `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Budget {
    /// Prompt plus completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u64>,
    /// Wall time spent running (time waiting for approval or between a
    /// crash and a resume does not count), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_ms: Option<u64>,
    /// Cost by [`prices`](Self::prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Price per model name (as `ChatModel::model_name` reports it); a
    /// model not listed costs nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, ModelPrice>,
}

impl Budget {
    /// No limit.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Caps tokens.
    #[must_use]
    pub fn with_max_tokens(mut self, max: u64) -> Self {
        self.max_tokens = Some(max);
        self
    }

    /// Caps tool calls.
    #[must_use]
    pub fn with_max_tool_calls(mut self, max: u64) -> Self {
        self.max_tool_calls = Some(max);
        self
    }

    /// Caps running wall time.
    #[must_use]
    pub fn with_max_wall_time(mut self, max: Duration) -> Self {
        self.max_wall_ms = Some(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Caps cost, priced by `prices`.
    #[must_use]
    pub fn with_max_cost(mut self, max: f64) -> Self {
        self.max_cost = Some(max);
        self
    }

    /// Sets a model's price.
    #[must_use]
    pub fn with_price(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.prices.insert(model.into(), price);
        self
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.max_tokens.is_some()
            || self.max_tool_calls.is_some()
            || self.max_wall_ms.is_some()
            || self.max_cost.is_some()
    }

    /// The first limit `spent` has reached, if any. `next` is the kind of
    /// call about to be made: a tool-call limit only stops tool calls.
    pub fn exceeded(&self, spent: &Spent, next: CallKind) -> Option<BudgetKind> {
        if self
            .max_tokens
            .is_some_and(|max| spent.usage.total_tokens() >= max)
        {
            return Some(BudgetKind::Tokens);
        }
        if next == CallKind::Tool
            && self
                .max_tool_calls
                .is_some_and(|max| spent.tool_calls >= max)
        {
            return Some(BudgetKind::ToolCalls);
        }
        if self.max_wall_ms.is_some_and(|max| spent.wall_ms >= max) {
            return Some(BudgetKind::WallTime);
        }
        if self.max_cost.is_some_and(|max| spent.cost >= max) {
            return Some(BudgetKind::Cost);
        }
        None
    }

    /// The limit of one kind, as a number (milliseconds for wall time).
    pub fn limit(&self, kind: BudgetKind) -> Option<f64> {
        // Limits are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        match kind {
            BudgetKind::Tokens => self.max_tokens.map(|v| v as f64),
            BudgetKind::ToolCalls => self.max_tool_calls.map(|v| v as f64),
            BudgetKind::WallTime => self.max_wall_ms.map(|v| v as f64),
            BudgetKind::Cost => self.max_cost,
        }
    }
}

/// What a run has spent, continuous across resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Spent {
    /// Tokens of every model call made (calls replayed from the journal
    /// are not counted again).
    #[serde(default)]
    pub usage: TokenUsage,
    /// Tokens spent a second time: calls whose journaled result could not
    /// be used on resume (the request no longer matched) and steps that ran
    /// again after a crash.
    #[serde(default)]
    pub wasted: TokenUsage,
    /// Model calls made.
    #[serde(default)]
    pub model_calls: u64,
    /// Tool calls made.
    #[serde(default)]
    pub tool_calls: u64,
    /// Calls answered from the journal on resume instead of being made
    /// again.
    #[serde(default)]
    pub replayed_calls: u64,
    /// Wall time spent running, in milliseconds.
    #[serde(default)]
    pub wall_ms: u64,
    /// Cost by the budget's price table.
    #[serde(default)]
    pub cost: f64,
    /// How many times the run was started or resumed.
    #[serde(default)]
    pub sessions: u32,
}

impl Spent {
    /// The value of one budget kind (milliseconds for wall time).
    pub fn value(&self, kind: BudgetKind) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        match kind {
            BudgetKind::Tokens => self.usage.total_tokens() as f64,
            BudgetKind::ToolCalls => self.tool_calls as f64,
            BudgetKind::WallTime => self.wall_ms as f64,
            BudgetKind::Cost => self.cost,
        }
    }
}

/// How a run ended, as stored: the answer or the error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEnding {
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// How a successful run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    /// The error chain of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why an interrupted run stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<Interruption>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// The objective.
    pub objective: String,
    /// The run's inputs (the objective included as `"input"`).
    #[serde(default)]
    pub inputs: Inputs,
    /// The caller's settings for the run (for the CLI: provider, model,
    /// tools, limits), stored so any process can run it the same way.
    /// Never holds secrets.
    #[serde(default)]
    pub settings: Value,
    /// Where it stands.
    pub status: RunStatus,
    /// When plans need approval.
    #[serde(default)]
    pub approval: ApprovalPolicy,
    /// Its limits.
    #[serde(default)]
    pub budget: Budget,
    /// What it spent.
    #[serde(default)]
    pub spent: Spent,
    /// How it ended (or why it is interrupted).
    #[serde(default)]
    pub ending: RunEnding,
    /// The current lease holder, if any (expired leases included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// When it was created.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

impl RunRecord {
    /// A new run in [`RunStatus::Planning`].
    pub fn new(id: RunId, objective: impl Into<String>) -> Self {
        let now = now_ms();
        Self {
            id,
            objective: objective.into(),
            inputs: Inputs::new(),
            settings: Value::Null,
            status: RunStatus::Planning,
            approval: ApprovalPolicy::Never,
            budget: Budget::default(),
            spent: Spent::default(),
            ending: RunEnding::default(),
            lease: None,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }
}

/// Which runs [`RunStore::list`](super::RunStore::list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
}

/// The right to write a run, held by one owner until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The run.
    pub run_id: RunId,
    /// Who holds it (for example `host:pid:nonce`).
    pub owner: String,
    /// The fencing token: raised on every acquisition; commits under an
    /// older epoch are rejected.
    pub epoch: u64,
    /// When it expires unless renewed, by the store's clock.
    pub expires_at_ms: u64,
}

/// Whether [`RunStore::acquire`](super::RunStore::acquire) may take a lease
/// another owner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Takeover {
    /// Only when it has expired (or nobody holds it).
    IfExpired,
    /// Also an unexpired lease, if its epoch is still this one: for a holder
    /// known to be dead (its process is gone), so a stale view cannot steal
    /// a lease that changed hands since.
    IfEpoch(u64),
}

/// One atomic change to a run. Empty parts change nothing.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Commit {
    /// A new status.
    pub status: Option<RunStatus>,
    /// A new plan revision (its number must be the next one).
    pub plan: Option<PlanRevision>,
    /// Marks a stored revision approved.
    pub approve: Option<u32>,
    /// Committed steps (each index once per run).
    pub steps: Vec<StepRecord>,
    /// Journal entries to insert or update (by scope and seq).
    pub journal: Vec<JournalEntry>,
    /// Journal entries to drop: a scope's entries from a sequence number
    /// on (a resumed step whose requests stopped matching).
    pub truncate: Vec<(CallScope, u32)>,
    /// Events to append.
    pub events: Vec<Event>,
    /// The run's spending so far (replaces the stored value).
    pub spent: Option<Spent>,
    /// How it ended (replaces the stored value).
    pub ending: Option<RunEnding>,
    /// New caller settings (replaces the stored value).
    pub settings: Option<Value>,
    /// New budget (replaces the stored value).
    pub budget: Option<Budget>,
}

impl Commit {
    /// An empty commit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the commit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_round_trip() {
        for scope in [
            CallScope::Plan,
            CallScope::Other,
            CallScope::Step {
                revision: 2,
                index: 17,
            },
            CallScope::Replan { revision: 3 },
        ] {
            assert_eq!(CallScope::parse(&scope.key()), Some(scope));
        }
        for bad in ["", "step/1", "step/x/1", "plan/1", "replan"] {
            assert_eq!(CallScope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip_as_text_and_json() {
        for status in [
            RunStatus::Planning,
            RunStatus::AwaitingApproval,
            RunStatus::Running,
            RunStatus::Interrupted,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn budgets_stop_at_their_limit() {
        let budget = Budget::unlimited()
            .with_max_tokens(100)
            .with_max_tool_calls(2)
            .with_max_cost(0.5)
            .with_price(
                "m",
                ModelPrice {
                    input_per_million: 1e5,
                    output_per_million: 2e5,
                },
            );
        let mut spent = Spent::default();
        assert_eq!(budget.exceeded(&spent, CallKind::Model), None);
        spent.tool_calls = 2;
        assert_eq!(budget.exceeded(&spent, CallKind::Model), None);
        assert_eq!(
            budget.exceeded(&spent, CallKind::Tool),
            Some(BudgetKind::ToolCalls)
        );
        spent.usage = TokenUsage::new(60, 40);
        assert_eq!(
            budget.exceeded(&spent, CallKind::Model),
            Some(BudgetKind::Tokens)
        );
        let price = budget.prices["m"];
        assert!((price.cost(TokenUsage::new(2, 1)) - 0.4).abs() < 1e-9);
    }
}
