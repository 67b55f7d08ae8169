//! Error types, one per role: providers, tools, templates, chains, planners,
//! executors, run stores and whole runs.

use std::time::Duration;

use pae_schema::{Plan, PlanParseError, PlanValidationError, Step, StepResponse, TokenUsage};

use crate::store::{BudgetKind, Interruption, RunStatus};

/// A boxed error from user code (a custom chain, planner or executor).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A model provider failed to answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The server answered with an HTTP error status.
    #[error("the provider answered HTTP {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body, as received.
        body: String,
        /// How long the server asked us to wait (`Retry-After`), when it did.
        retry_after: Option<Duration>,
    },
    /// No answer within the time limit.
    #[error("the provider did not answer within {after:?}")]
    Timeout {
        /// The limit that passed.
        after: Duration,
    },
    /// The connection could not be made or broke before a reply arrived.
    #[error("connection to the provider failed: {message}")]
    Connection {
        /// What was being attempted (for example the URL).
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The server answered, but the body could not be understood.
    #[error("the provider's response could not be parsed: {reason}")]
    InvalidResponse {
        /// The raw body.
        body: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stream ended or broke before the reply was complete.
    #[error("the response stream broke off: {reason}")]
    StreamInterrupted {
        /// What happened.
        reason: String,
        /// The text received before the break.
        partial: String,
    },
    /// The adapter is misconfigured (missing API key, bad base URL, missing
    /// model file).
    #[error("provider configuration: {message}")]
    Configuration {
        /// What is wrong.
        message: String,
    },
    /// The request itself is malformed (no messages, a forced tool that is
    /// not among the request's tools); sending it again fails the same way.
    /// See [`ChatRequest::validate`](crate::ChatRequest::validate).
    #[error("the request is invalid: {reason}")]
    InvalidRequest {
        /// What is wrong with the request.
        reason: String,
    },
    /// The request asked for something this model cannot do.
    #[error("this model does not support {feature}")]
    Unsupported {
        /// The feature, in words.
        feature: String,
    },
    /// An in-process engine failed (for example a llama.cpp decode error).
    #[error("the model backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
    },
    /// A scripted model (such as `test_util::ScriptedModel`, behind the
    /// `test-util` feature) has answered every reply it was given.
    #[error("the model has no replies left after {requests} requests")]
    Exhausted {
        /// Requests answered before running out.
        requests: usize,
    },
    /// The run stopped the call before it was made: it was cancelled, a
    /// budget ran out, or the run lost its lease. Not retryable.
    #[error("the call was not made: {reason}")]
    Stopped {
        /// Why, in words.
        reason: String,
    },
}

/// What kind of failure a [`ProviderError`] is, for code that acts on
/// errors without matching every variant and its fields (as
/// [`std::io::ErrorKind`] is to [`std::io::Error`]). See
/// [`ProviderError::kind`].
///
/// HTTP errors are classed by status; every other kind names the variant it
/// comes from. New kinds may be added, so a `match` needs a wildcard arm.
///
/// ```
/// use pae_core::{ProviderError, ProviderErrorKind};
///
/// let limited = ProviderError::Http { status: 429, body: String::new(), retry_after: None };
/// assert_eq!(limited.kind(), ProviderErrorKind::RateLimited);
/// assert_eq!(limited.kind().to_string(), "rate limited");
/// let refused = ProviderError::connection("http://127.0.0.1:9", std::io::Error::other("refused"));
/// assert_eq!(refused.kind(), ProviderErrorKind::Connection);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// HTTP 429: too many requests, or a quota is used up (see
    /// [`ProviderError::retry_after`]).
    RateLimited,
    /// HTTP 401 or 403: the credentials are missing, wrong, or not allowed
    /// this request.
    Auth,
    /// HTTP 404: the model or the endpoint does not exist.
    NotFound,
    /// HTTP 413: the request is larger than the server accepts.
    TooLarge,
    /// Any other HTTP 4xx status: the server refused the request (some of
    /// these, such as 408, are still retryable).
    ClientError,
    /// HTTP 5xx: the server failed.
    ServerError,
    /// An HTTP status outside 4xx and 5xx reported as an error.
    OtherStatus,
    /// [`ProviderError::Timeout`]: no answer within the time limit.
    Timeout,
    /// [`ProviderError::Connection`]: the connection could not be made or
    /// broke before a reply arrived.
    Connection,
    /// [`ProviderError::InvalidResponse`]: the server answered with a body
    /// that could not be understood.
    InvalidResponse,
    /// [`ProviderError::StreamInterrupted`]: a stream broke off before the
    /// reply was complete.
    StreamInterrupted,
    /// [`ProviderError::Configuration`]: the adapter is misconfigured.
    Configuration,
    /// [`ProviderError::InvalidRequest`]: the request is malformed.
    InvalidRequest,
    /// [`ProviderError::Unsupported`]: the model cannot do what was asked.
    Unsupported,
    /// [`ProviderError::Backend`]: an in-process engine failed.
    Backend,
    /// [`ProviderError::Exhausted`]: a scripted model has no replies left.
    Exhausted,
    /// [`ProviderError::Stopped`]: the run stopped the call before it was
    /// made (cancelled, a budget, a lost lease).
    Stopped,
}

impl ProviderErrorKind {
    /// The kind of an HTTP error with `status`.
    fn of_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            404 => Self::NotFound,
            413 => Self::TooLarge,
            429 => Self::RateLimited,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::OtherStatus,
        }
    }

    /// The kind in a few lowercase words, as `Display` prints it.
    fn description(self) -> &'static str {
        match self {
            Self::RateLimited => "rate limited",
            Self::Auth => "not authorised",
            Self::NotFound => "not found",
            Self::TooLarge => "request too large",
            Self::ClientError => "request refused",
            Self::ServerError => "server error",
            Self::OtherStatus => "unexpected HTTP status",
            Self::Timeout => "timed out",
            Self::Connection => "connection failed",
            Self::InvalidResponse => "invalid response",
            Self::StreamInterrupted => "stream interrupted",
            Self::Configuration => "misconfigured",
            Self::InvalidRequest => "invalid request",
            Self::Unsupported => "unsupported",
            Self::Backend => "backend failed",
            Self::Exhausted => "no replies left",
            Self::Stopped => "stopped by the run",
        }
    }
}

impl std::fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl ProviderError {
    /// What kind of failure this is: HTTP errors by status (429 is
    /// [`RateLimited`](ProviderErrorKind::RateLimited), 401 and 403
    /// [`Auth`](ProviderErrorKind::Auth), 5xx
    /// [`ServerError`](ProviderErrorKind::ServerError), …), other errors by
    /// variant.
    pub fn kind(&self) -> ProviderErrorKind {
        match self {
            Self::Http { status, .. } => ProviderErrorKind::of_status(*status),
            Self::Timeout { .. } => ProviderErrorKind::Timeout,
            Self::Connection { .. } => ProviderErrorKind::Connection,
            Self::InvalidResponse { .. } => ProviderErrorKind::InvalidResponse,
            Self::StreamInterrupted { .. } => ProviderErrorKind::StreamInterrupted,
            Self::Configuration { .. } => ProviderErrorKind::Configuration,
            Self::InvalidRequest { .. } => ProviderErrorKind::InvalidRequest,
            Self::Unsupported { .. } => ProviderErrorKind::Unsupported,
            Self::Backend { .. } => ProviderErrorKind::Backend,
            Self::Exhausted { .. } => ProviderErrorKind::Exhausted,
            Self::Stopped { .. } => ProviderErrorKind::Stopped,
        }
    }

    /// Whether trying the same request again may succeed: HTTP 408, 409, 425,
    /// 429 and 5xx, time-outs, connection failures and broken streams.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => {
                matches!(status, 408 | 409 | 425 | 429) || (500..=599).contains(status)
            }
            Self::Timeout { .. } | Self::Connection { .. } | Self::StreamInterrupted { .. } => true,
            Self::InvalidResponse { .. }
            | Self::Configuration { .. }
            | Self::InvalidRequest { .. }
            | Self::Unsupported { .. }
            | Self::Backend { .. }
            | Self::Exhausted { .. }
            | Self::Stopped { .. } => false,
        }
    }

    /// The wait the server asked for, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, for HTTP errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// An invalid-request error.
    pub fn invalid_request(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// A connection error with a cause.
    pub fn connection(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Connection {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// A tool could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ToolError {
    /// The input is not what the tool accepts.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong with the input.
        message: String,
    },
    /// An argument is none of the values the tool knows (a column of the
    /// file, a setting's name); `allowed` lists them, so a model asked to
    /// write the call again can be held to them. Reads like
    /// [`ToolError::InvalidInput`].
    #[error("invalid input: {message}")]
    NotOneOf {
        /// The argument's name.
        argument: String,
        /// The values it may take.
        allowed: Vec<String>,
        /// What is wrong, naming the values.
        message: String,
    },
    /// The tool refused for safety reasons (for example a path outside its
    /// root directory).
    #[error("refused: {message}")]
    Refused {
        /// Why.
        message: String,
    },
    /// The tool ran and failed.
    #[error("{message}")]
    Failed {
        /// What failed.
        message: String,
    },
    /// The tool did not finish in time.
    #[error("the tool did not finish within {after:?}")]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The run stopped the call (cancelled, a budget ran out, the run lost
    /// its lease, or an earlier call is in doubt). Executors end the step
    /// on it rather than show it to the model.
    #[error("the call was not made: {reason}")]
    Stopped {
        /// Why, in words.
        reason: String,
    },
}

impl ToolError {
    /// An invalid-input error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
        }
    }

    /// A failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
        }
    }

    /// An argument that is none of `allowed`.
    pub fn not_one_of(
        argument: impl Into<String>,
        allowed: Vec<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::NotOneOf {
            argument: argument.into(),
            allowed,
            message: message.into(),
        }
    }

    /// The argument and the values it may take, for
    /// [`ToolError::NotOneOf`].
    pub fn allowed(&self) -> Option<(&str, &[String])> {
        match self {
            Self::NotOneOf {
                argument, allowed, ..
            } => Some((argument, allowed)),
            _ => None,
        }
    }

    /// A refusal.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::Refused {
            message: message.into(),
        }
    }

    /// Whether the run stopped the call: the step must end, not go on.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped { .. })
    }
}

/// A prompt template could not be parsed or filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A placeholder has no value.
    #[error("the prompt variable {name:?} has no value")]
    MissingVariable {
        /// The placeholder's name.
        name: String,
    },
    /// The template text is malformed (an unmatched brace, an empty or
    /// invalid placeholder name).
    #[error("malformed prompt template at byte {position}: {reason}")]
    Syntax {
        /// Byte offset of the problem.
        position: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A chain failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The prompt could not be formatted.
    #[error("prompt formatting failed")]
    Template(#[from] TemplateError),
    /// The model call failed.
    #[error("the model call failed")]
    Provider(#[from] ProviderError),
    /// A required input was not given.
    #[error("missing chain input {key:?}")]
    MissingInput {
        /// The input's name.
        key: String,
    },
    /// The chain did not produce an expected output.
    #[error("the chain produced no output {key:?}")]
    MissingOutput {
        /// The output's name.
        key: String,
    },
    /// A user-defined chain failed.
    #[error("the chain failed")]
    Custom(#[source] BoxError),
}

/// A planner could not produce a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The model call failed.
    #[error("the planner's model call failed")]
    Provider(#[from] ProviderError),
    /// The prompt could not be formatted.
    #[error("the planner's prompt could not be formatted")]
    Template(#[from] TemplateError),
    /// The planner's chain failed.
    #[error("the planner's chain failed")]
    Chain(#[from] ChainError),
    /// The model's text could not be parsed into a plan.
    #[error("the model's plan could not be parsed")]
    Parse(#[from] PlanParseError),
    /// The plan parsed but is not valid.
    #[error("the plan is invalid")]
    Invalid(#[from] PlanValidationError),
    /// Structured output stayed invalid after every retry.
    #[error("no valid plan after {attempts} attempts")]
    RetriesExhausted {
        /// Model calls made.
        attempts: usize,
        /// The last parse error (it carries the last text).
        #[source]
        last: PlanParseError,
    },
    /// A user-defined planner failed.
    #[error("the planner failed")]
    Custom(#[source] BoxError),
}

/// An executor could not carry out a step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The model call failed.
    #[error("the executor's model call failed")]
    Provider(#[from] ProviderError),
    /// The prompt could not be formatted.
    #[error("the executor's prompt could not be formatted")]
    Template(#[from] TemplateError),
    /// The wrapped chain failed.
    #[error("the executor's chain failed")]
    Chain(#[from] ChainError),
    /// A tool failed and the executor is set to abort on tool errors.
    #[error("the tool {tool:?} failed")]
    Tool {
        /// The tool's name.
        tool: String,
        /// What it reported.
        #[source]
        source: ToolError,
    },
    /// The model's replies could not be parsed within the retry budget.
    #[error("the model's reply could not be parsed after {attempts} attempts: {reason}")]
    UnparseableReply {
        /// Replies that failed to parse.
        attempts: usize,
        /// The last parse error.
        reason: String,
        /// The last reply.
        text: String,
    },
    /// A user-defined executor failed.
    #[error("the executor failed")]
    Custom(#[source] BoxError),
}

/// What a run had done when it failed: nothing is lost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartialRun {
    /// Every plan revision made so far.
    pub plans: Vec<Plan>,
    /// Steps finished so far, with their responses.
    pub steps: Vec<(Step, StepResponse)>,
    /// Tokens spent so far.
    pub usage: TokenUsage,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No run has this id.
    #[error("no run with id {id:?}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// A run with this id exists already.
    #[error("a run with id {id:?} exists already")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// The id is not a valid run id.
    #[error("{id:?} is not a valid run id: {reason}")]
    InvalidId {
        /// The text given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process holds the run's lease.
    #[error("run {id} is being run by {owner} (lease valid for {remaining_ms} ms more)")]
    Busy {
        /// The run.
        id: String,
        /// Who holds it.
        owner: String,
        /// Until the lease expires, unless renewed.
        remaining_ms: u64,
    },
    /// The lease this writer holds is no longer the run's current lease:
    /// another writer took the run over. The commit was not applied.
    #[error("the lease on run {id} was lost (epoch {epoch} is stale); nothing was written")]
    LeaseLost {
        /// The run.
        id: String,
        /// The stale epoch.
        epoch: u64,
    },
    /// The commit contradicts what is stored (a step written twice, a plan
    /// revision that exists, a transition the run's status forbids).
    #[error("conflicting write to run {id}: {reason}")]
    Conflict {
        /// The run.
        id: String,
        /// What conflicts.
        reason: String,
    },
    /// The stored data cannot be read: not a pae database, damaged rows,
    /// or JSON that does not parse.
    #[error("the run store is corrupt or not a pae store: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// The store was written by another schema version.
    #[error("the run store has schema version {found}, this build reads version {expected}")]
    SchemaVersion {
        /// The version found.
        found: i64,
        /// The version this build uses.
        expected: i64,
    },
    /// The backend failed (I/O, connection, database error).
    #[error("the run store failed: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The cause.
        #[source]
        source: Option<BoxError>,
        /// Whether trying again may succeed (a lost connection, a busy
        /// database), as opposed to a permanent failure.
        transient: bool,
    },
}

impl StoreError {
    /// A backend failure with a cause.
    pub fn backend(
        message: impl Into<String>,
        source: impl Into<BoxError>,
        transient: bool,
    ) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
            transient,
        }
    }

    /// A corrupt-store error.
    pub fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt {
            reason: reason.into(),
        }
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                transient: true,
                ..
            }
        )
    }
}

/// A plan-and-execute run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The planner failed.
    #[error("planning failed")]
    Plan(#[source] PlanError),
    /// The planner returned a plan with no step.
    #[error("the planner returned an empty plan")]
    EmptyPlan,
    /// The plan failed validation (see [`pae_schema::Plan::validate`]).
    #[error("the plan is invalid")]
    InvalidPlan(#[source] PlanValidationError),
    /// The run would execute more steps than allowed.
    #[error("the run needs {steps} steps, more than the limit of {max}")]
    TooManySteps {
        /// Steps the run would execute.
        steps: usize,
        /// The limit.
        max: usize,
    },
    /// A step failed and nothing could recover it.
    #[error("step {} ({:?}) failed", index + 1, step.value)]
    Step {
        /// 0-based position of the step in the plan it belonged to.
        index: usize,
        /// The step.
        step: Step,
        /// The executor's error.
        #[source]
        source: ExecError,
        /// What the run had done before the failure.
        partial: Box<PartialRun>,
    },
    /// The replanner failed.
    #[error("replanning failed")]
    Replan {
        /// The replanner's error.
        #[source]
        source: PlanError,
        /// What the run had done before the failure.
        partial: Box<PartialRun>,
    },
    /// The run was cancelled. A durable run is left interrupted and can be
    /// resumed.
    #[error("the run was cancelled")]
    Cancelled {
        /// What the run had done before it was cancelled.
        partial: Box<PartialRun>,
    },
    /// A budget ran out. A durable run is left interrupted: resume it with
    /// a larger budget to go on.
    #[error("the {budget} budget ran out ({spent} of {limit})")]
    BudgetExceeded {
        /// Which budget.
        budget: BudgetKind,
        /// Its limit (milliseconds for wall time).
        limit: f64,
        /// What had been spent.
        spent: f64,
        /// What the run had done.
        partial: Box<PartialRun>,
    },
    /// The run stopped in a resumable state that needs a person (a tool
    /// call with side effects in doubt).
    #[error("the run was interrupted: {reason}")]
    Interrupted {
        /// Why.
        reason: Interruption,
        /// What the run had done.
        partial: Box<PartialRun>,
    },
    /// The run store failed, or another process holds the run.
    #[error("the run store failed")]
    Store(#[source] StoreError),
    /// The operation needs a run store and the agent has none.
    #[error("this needs a run store (PlanAndExecute::with_store)")]
    NoStore,
    /// The run cannot be resumed in its status.
    #[error("run {id} is {status} and cannot be resumed")]
    NotResumable {
        /// The run.
        id: String,
        /// Its status.
        status: RunStatus,
    },
    /// An edited plan drops or changes steps that already ran.
    #[error("the edited plan is invalid: {reason}")]
    InvalidEdit {
        /// What is wrong.
        reason: String,
    },
    /// An approval decision was given for a run that is not waiting for
    /// one.
    #[error("run {id} is {status}, not awaiting approval")]
    NotAwaitingApproval {
        /// The run.
        id: String,
        /// Its status.
        status: RunStatus,
    },
}

impl From<StoreError> for RunError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl RunError {
    /// What the run had done before it failed, when it had started executing.
    pub fn partial(&self) -> Option<&PartialRun> {
        match self {
            Self::Step { partial, .. }
            | Self::Replan { partial, .. }
            | Self::Cancelled { partial }
            | Self::BudgetExceeded { partial, .. }
            | Self::Interrupted { partial, .. } => Some(partial),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let http = |status| ProviderError::Http {
            status,
            body: String::new(),
            retry_after: None,
        };
        assert!(http(429).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(401).is_retryable());
        assert!(
            ProviderError::Timeout {
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(
            !ProviderError::InvalidResponse {
                body: "x".into(),
                reason: "y".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn kinds_class_http_errors_by_status_and_others_by_variant() {
        use ProviderErrorKind as K;
        let http = |status| {
            ProviderError::Http {
                status,
                body: String::new(),
                retry_after: None,
            }
            .kind()
        };
        let statuses = [
            (400, K::ClientError),
            (401, K::Auth),
            (403, K::Auth),
            (404, K::NotFound),
            (408, K::ClientError),
            (413, K::TooLarge),
            (422, K::ClientError),
            (429, K::RateLimited),
            (500, K::ServerError),
            (503, K::ServerError),
            (599, K::ServerError),
            (200, K::OtherStatus),
            (302, K::OtherStatus),
            (600, K::OtherStatus),
        ];
        for (status, kind) in statuses {
            assert_eq!(http(status), kind, "HTTP {status}");
        }
        let text = String::new;
        let others = [
            (
                ProviderError::Timeout {
                    after: Duration::from_secs(1),
                },
                K::Timeout,
            ),
            (
                ProviderError::Connection {
                    message: text(),
                    source: None,
                },
                K::Connection,
            ),
            (
                ProviderError::InvalidResponse {
                    body: text(),
                    reason: text(),
                },
                K::InvalidResponse,
            ),
            (
                ProviderError::StreamInterrupted {
                    reason: text(),
                    partial: text(),
                },
                K::StreamInterrupted,
            ),
            (
                ProviderError::Configuration { message: text() },
                K::Configuration,
            ),
            (ProviderError::invalid_request("x"), K::InvalidRequest),
            (
                ProviderError::Unsupported { feature: text() },
                K::Unsupported,
            ),
            (ProviderError::Backend { message: text() }, K::Backend),
            (ProviderError::Exhausted { requests: 1 }, K::Exhausted),
            (ProviderError::Stopped { reason: text() }, K::Stopped),
        ];
        for (error, kind) in others {
            assert_eq!(error.kind(), kind, "{error:?}");
        }
        assert_eq!(K::Timeout.to_string(), "timed out");
        assert_eq!(format!("{:?}", K::InvalidRequest), "InvalidRequest");
    }

    #[test]
    fn messages_do_not_repeat_their_source() {
        let err = ProviderError::connection(
            "connecting to http://127.0.0.1:1",
            std::io::Error::other("refused"),
        );
        assert_eq!(
            err.to_string(),
            "connection to the provider failed: connecting to http://127.0.0.1:1"
        );
        assert_eq!(
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .as_deref(),
            Some("refused")
        );
    }
}
