//! Command-line arguments of `pae`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run finished; the answer is on stdout
  1  the run failed (planning, a step or replanning failed; see the message)
  2  bad flags or arguments
  3  the local model file is missing or is not a usable GGUF file
  4  the model server cannot be reached
  5  the API key is missing or was rejected
  6  the run waits for approval of its plan (`pae approve RUN`, then `pae resume RUN`)
  7  a budget ran out; the run is interrupted (`pae resume RUN` with a larger budget)
  8  the run is interrupted and needs a person (a tool call with side effects is in
     doubt: check it, then `pae resume RUN` to make the call again, or `pae reject RUN`)
  9  the run finished without a real answer (a step stopped at a limit, failed or was
     skipped, or the answer is empty, a tool's result or the fixed \"stopped\" text);
     stderr says why in one line, the --json transcript lists it under
     answer_problems, and the best answer found is on stdout
  10  the run store cannot be used (unknown run, a damaged or foreign file, the run is
      busy in another process, finished, or not waiting for approval)
  130  interrupted by Ctrl-C (SIGINT); 143 by SIGTERM, 129 by SIGHUP: the run is left
       resumable with `pae resume RUN`";

/// Run a plan-and-execute agent: a model writes a plan for the objective,
/// an executor carries out each step with tools, and the last step's
/// answer is printed. Every run is recorded in a run store and can be
/// listed, shown, resumed after a crash, and approved before it runs.
#[derive(Debug, Parser)]
#[command(name = "pae", version, about, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Plan and carry out an objective; the run's id is the first line on
    /// stderr, progress follows on stderr, the final answer goes to stdout.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<RunArgs>),
    /// Go on with a stored run (after a crash, Ctrl-C, approval or a budget
    /// stop) with the settings stored with it; provider flags given here
    /// override them. Prints the answer like `run`.
    #[command(after_help = EXIT_CODES_HELP)]
    Resume(Box<ResumeArgs>),
    /// List the runs in the store, newest last.
    Runs(RunsArgs),
    /// Show one run: its plan revisions, steps with their responses, and
    /// the answer.
    Show(ShowArgs),
    /// Approve the plan of a run waiting for approval (costs no model call).
    Approve(DecideArgs),
    /// Replace the plan of a run waiting for approval with the plan in a
    /// file (a numbered list, a JSON array of steps, or {"steps": [...]});
    /// the edit is validated and stored as a new revision, still waiting.
    Edit(EditArgs),
    /// Reject the plan of a run waiting for approval; the run is cancelled.
    Reject(RejectArgs),
    /// Queue an objective for the workers of a PostgreSQL store (`pae
    /// worker`): the run and its settings are stored with a job that any
    /// worker takes up; the run's id is the last line on stdout.
    #[command(after_help = EXIT_CODES_HELP)]
    Submit(Box<SubmitArgs>),
    /// Run queued runs of a PostgreSQL store until SIGTERM or Ctrl-C, with
    /// the settings stored with each run (API keys come from this process's
    /// environment). Any number of workers may serve one store; a dead
    /// worker's runs are taken over, a stopping one hands its runs back.
    Worker(WorkerArgs),
}

/// Which model provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Provider {
    /// A GGUF file run in-process by llama.cpp (no server, no key).
    Local,
    /// An OpenAI-compatible chat-completions server.
    Openai,
    /// An Ollama server.
    Ollama,
    /// Canned replies from a JSON file (for tests).
    #[value(hide = true)]
    Scripted,
}

impl Provider {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Openai => "openai",
            Self::Ollama => "ollama",
            Self::Scripted => "scripted",
        }
    }
}

/// How an OpenAI-compatible server handles schemas and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Compat {
    /// OpenAI's API: native tools and `json_schema` response formats.
    Openai,
    /// llama-cpp-python's server: JSON schemas in its own
    /// `json_object` form, text-JSON tool actions.
    LlamaCppPython,
}

/// How the agent works through an objective.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
    /// Plan-and-solve (ReWOO / LLMCompiler style): one planning call writes
    /// every step as a tool call with its arguments (`#E1` for earlier
    /// results); calls whose input is given run without a model call; one
    /// last call writes the answer from the objective and every result.
    #[default]
    PlanAndSolve,
    /// LangChain's plan-and-execute loop: a plan of steps in words, each
    /// carried out by a tool-using agent; then one last call writes the
    /// answer from the objective and every step's result.
    PlanAndExecute,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PlanAndSolve => "plan-and-solve",
            Self::PlanAndExecute => "plan-and-execute",
        }
    }
}

/// How plans are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PlannerMode {
    /// A numbered list in text (LangChain's chat planner).
    Text,
    /// A JSON plan enforced by a schema when the model supports it (text
    /// otherwise, or when the JSON plan stays invalid after its retries).
    Structured,
}

impl PlannerMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Structured => "structured",
        }
    }
}

/// When the plan is revised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Replan {
    /// Never: the first plan is final.
    Never,
    /// After every step.
    EveryStep,
    /// When a step fails or stops at a limit.
    OnFailure,
}

impl Replan {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::EveryStep => "every-step",
            Self::OnFailure => "on-failure",
        }
    }
}

/// A tool the executor may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ToolName {
    /// Arithmetic expressions.
    Calculator,
    /// The current date and time.
    Time,
    /// Reading files under --files-root.
    Files,
    /// Records each call as a side effect deduplicated by idempotency key,
    /// under $PAE_TEST_EFFECTS (for tests).
    #[value(hide = true)]
    Record,
}

impl ToolName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Calculator => "calculator",
            Self::Time => "time",
            Self::Files => "files",
            Self::Record => "record",
        }
    }
}

/// What a step returns when it reaches --max-iterations. Either way, a step
/// left without an answer answers with its last successful tool result, if
/// it has one, and is marked stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EarlyStop {
    /// No further model call: the last tool result, or a fixed "stopped"
    /// response.
    Force,
    /// One last model call, without tools, for the best answer so far.
    Generate,
}

impl EarlyStop {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Force => "force",
            Self::Generate => "generate",
        }
    }
}

/// Which previous steps the executor shows in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) enum History {
    All,
    LastK(usize),
    /// A bounded digest with the last K steps in full (`None`: the
    /// executor's default).
    Digest(Option<usize>),
}

impl History {
    pub(crate) fn label(self) -> String {
        match self {
            Self::All => "all".into(),
            Self::LastK(k) => format!("last:{k}"),
            Self::Digest(None) => "digest".into(),
            Self::Digest(Some(k)) => format!("digest:{k}"),
        }
    }
}

impl TryFrom<String> for History {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_history(&text)
    }
}

impl From<History> for String {
    fn from(history: History) -> Self {
        history.label()
    }
}

fn parse_history(text: &str) -> Result<History, String> {
    match text {
        "all" => return Ok(History::All),
        "digest" => return Ok(History::Digest(None)),
        _ => {}
    }
    let last = text
        .strip_prefix("last:")
        .and_then(|k| k.parse::<usize>().ok())
        .map(History::LastK);
    let digest = || {
        text.strip_prefix("digest:")
            .and_then(|k| k.parse::<usize>().ok())
            .map(|k| History::Digest(Some(k)))
    };
    last.or_else(digest).ok_or_else(|| {
        format!("expected `all`, `last:K`, `digest` or `digest:K` (K a number), got {text:?}")
    })
}

fn parse_objective(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the objective is empty; say what the agent should achieve".into());
    }
    Ok(text.to_owned())
}

/// Whether each step's prompt shows the overall objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Objective {
    /// Show it.
    Show,
    /// Hide it: small models then stick to the current step.
    Hide,
}

/// Which model answers, and how to reach it. On `resume`, each flag given
/// overrides the setting stored with the run.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub(crate) struct ModelArgs {
    /// The model provider [default: local].
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<Provider>,

    /// The GGUF file for --provider local [default: $PAE_MODEL, or
    /// $PAE_CACHE_DIR/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf with
    /// PAE_CACHE_DIR defaulting to ~/.cache/pae].
    #[arg(long, value_name = "PATH")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<PathBuf>,

    /// The model id for --provider openai or ollama [defaults: openai
    /// gpt-4o-mini, or `local` with --base-url; ollama
    /// qwen2.5-coder:0.5b].
    #[arg(long, value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model_name: Option<String>,

    /// The server's base URL for --provider openai or ollama [defaults:
    /// openai $OPENAI_BASE_URL or `https://api.openai.com/v1`; ollama
    /// $OLLAMA_HOST or `http://127.0.0.1:11434`]. The OpenAI key comes from
    /// OPENAI_API_KEY. Credentials in the URL are never stored.
    #[arg(long, value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,

    /// How the OpenAI-compatible server handles schemas and tools
    /// [default: openai].
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) compat: Option<Compat>,

    /// Canned replies for --provider scripted (a JSON array).
    #[arg(long, value_name = "FILE", hide = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) script: Option<PathBuf>,

    /// Wait this many milliseconds before each scripted reply (shows how
    /// concurrent steps overlap).
    #[arg(long, value_name = "MS", hide = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) script_delay_ms: Option<u64>,

    /// Context size in tokens for --provider local [default: 4096].
    #[arg(long, value_parser = clap::value_parser!(u32).range(256..))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ctx_size: Option<u32>,

    /// CPU threads for --provider local [default: all cores].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threads: Option<u32>,

    /// Time limit of one model call, in seconds [default: 600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) call_timeout: Option<u64>,

    /// Attempts per model call when a server answers with a transient
    /// error (429, 5xx, a dropped connection), with backoff that honours
    /// Retry-After [default: 3]; 1 turns retrying off.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) attempts: Option<u32>,
}

impl ModelArgs {
    /// These flags, with `overrides`' given ones taking their place.
    pub(crate) fn overridden_by(mut self, overrides: &Self) -> Self {
        macro_rules! take {
            ($($field:ident),*) => {
                $(if overrides.$field.is_some() {
                    self.$field.clone_from(&overrides.$field);
                })*
            };
        }
        take!(
            provider,
            model,
            model_name,
            base_url,
            compat,
            script,
            script_delay_ms,
            ctx_size,
            threads,
            call_timeout,
            attempts
        );
        self
    }
}

/// How the agent plans and executes (stored with the run).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub(crate) struct AgentArgs {
    /// How the agent works: plan-and-solve writes the tool calls in the
    /// plan (fewest model calls); plan-and-execute runs an agent loop per
    /// step (--planner, --max-iterations and the other loop flags apply to
    /// it and to plan-and-solve steps that need one).
    #[arg(long, value_enum, env = "PAE_MODE", default_value_t = Mode::default())]
    #[serde(default)]
    pub(crate) mode: Mode,

    /// The time the `time` tool reports, RFC 3339 (for example
    /// 2026-03-14T10:00:00Z), instead of the system clock; for
    /// reproducible runs and evaluations.
    #[arg(long, value_name = "TIME", env = "PAE_NOW", hide = true, value_parser = crate::clock::parse_rfc3339_flag)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) now: Option<String>,

    /// Tools to enable, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "calculator,time"
    )]
    pub(crate) tools: Vec<ToolName>,

    /// The directory the `files` tool may read (required with --tools files).
    #[arg(long, value_name = "DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) files_root: Option<PathBuf>,

    /// How plans are asked for.
    #[arg(long, value_enum, default_value_t = PlannerMode::Structured)]
    pub(crate) planner: PlannerMode,

    /// The most steps one run executes, across plan revisions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_steps: u32,

    /// Model calls per step before the executor stops the step.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_iterations: u32,

    /// Stops a step once the model repeats a tool call it already made
    /// (same tool, same arguments) this many times; small models loop on
    /// such calls. 0 turns the check off.
    #[arg(long, default_value_t = 1)]
    pub(crate) max_repeated_calls: u32,

    /// What a step that reaches --max-iterations answers. A step still left
    /// without an answer answers with its last successful tool result, if
    /// it has one (the step is marked stopped either way).
    #[arg(long, value_enum, default_value_t = EarlyStop::Generate)]
    pub(crate) early_stopping: EarlyStop,

    /// Which previous steps the executor sees in full (plan-and-execute
    /// mode): `digest` (the steps the current one refers to and the last 3
    /// in full, older ones one short line each within a fixed budget, so
    /// prompts stay bounded on long plans; `digest:K` for the last K),
    /// `all` (LangChain's: every step, prompts grow with the plan) or
    /// `last:K`.
    #[arg(long, default_value = "digest", value_parser = parse_history)]
    pub(crate) history: History,

    /// When the plan is revised.
    #[arg(long, value_enum, default_value_t = Replan::Never)]
    pub(crate) replan: Replan,

    /// The most plan revisions per run.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_replans: u32,

    /// Independent steps of a dependency plan (structured plans with
    /// `depends_on`) that may run at the same time. The local model answers
    /// one request at a time, so with it the steps' model calls queue.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_concurrency: u32,

    /// Whether every step's prompt shows the overall objective. Hidden by
    /// default (as in LangChain): the executor sees the current step and the
    /// results it builds on, and small models then do that step only
    /// instead of answering the whole question at once.
    #[arg(long, value_enum, default_value_t = Objective::Hide)]
    pub(crate) objective_in_steps: Objective,

    /// Sampling temperature of every model call (0: greedy, reproducible).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) temperature: f32,

    /// Sampling seed of every model call.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,

    /// The most tokens one model call may generate.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_tokens: u32,
}

/// What one run may spend, across every resume (checked before each model
/// and tool call). On `resume`, given limits replace the stored ones.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub(crate) struct BudgetArgs {
    /// The most tokens (prompt plus completion) the whole run may spend.
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_tokens: Option<u64>,

    /// The most tool calls the whole run may make.
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_tool_calls: Option<u64>,

    /// The most wall time the run may spend running, in seconds (time
    /// waiting for approval or between a crash and a resume is not
    /// counted).
    #[arg(long, value_name = "SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_seconds: Option<f64>,

    /// The most the run may cost, priced by --price.
    #[arg(long, value_name = "AMOUNT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_cost: Option<f64>,

    /// A model's price per million tokens, `NAME=INPUT:OUTPUT` (for
    /// example `gpt-4o-mini=0.15:0.60`); repeat for several models.
    #[arg(long, value_name = "NAME=IN:OUT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) price: Vec<String>,
}

impl BudgetArgs {
    pub(crate) fn is_given(&self) -> bool {
        self.budget_tokens.is_some()
            || self.budget_tool_calls.is_some()
            || self.budget_seconds.is_some()
            || self.budget_cost.is_some()
            || !self.price.is_empty()
    }
}

/// Where runs are kept.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct StoreArgs {
    /// The run store: a SQLite file or a PostgreSQL URL
    /// (postgres://user@host/db, shared by `pae worker`s) [default:
    /// $PAE_STORE, or $PAE_DATA_DIR/runs.db with PAE_DATA_DIR defaulting to
    /// ~/.local/share/pae].
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) store: Option<String>,
}

/// What is written besides the answer.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct OutputArgs {
    /// Write a JSON transcript of the run (`pae-transcript/2`: plans, steps
    /// with their model and tool calls, token usage, timings, events) to
    /// FILE; `-` writes it to stdout instead of the answer (the answer is
    /// its `answer` field). The path is checked before the run starts; the
    /// file is replaced in one step.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,

    /// Write a self-contained HTML report of the run (plan graph, timeline,
    /// calls, tokens) to FILE when it ends (`pae show RUN --html FILE`
    /// writes one for any stored run).
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,

    /// No progress on stderr (the run id and errors are still printed).
    #[arg(long, short)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) telemetry: TelemetryArgs,
}

/// Tracing: spans and log lines on stderr, traces to a collector.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TelemetryArgs {
    /// Show spans and log lines on stderr: -v pae's spans (run, plan, step,
    /// chat, execute_tool, with their attributes and times) and llama.cpp's
    /// log; -vv also debug lines (repairs, fallbacks); -vvv everything.
    /// RUST_LOG, when set, chooses instead.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Send traces to an OpenTelemetry collector over OTLP (HTTP/protobuf),
    /// for example http://127.0.0.1:4318 (`/v1/traces` is added). Also
    /// taken from OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,

    /// Record prompts, replies, tool arguments and tool results in spans,
    /// in the run's events (and so in the run store, the transcript and
    /// the report). Off by default: they can hold secrets.
    #[arg(long, env = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")]
    pub(crate) capture_content: bool,
}

/// `pae run` flags.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// What the agent should achieve, for example "What is 17*23 plus the
    /// number of days in a leap year?".
    #[arg(value_parser = parse_objective)]
    pub(crate) objective: String,

    #[command(flatten)]
    pub(crate) model: ModelArgs,

    #[command(flatten)]
    pub(crate) agent: AgentArgs,

    #[command(flatten)]
    pub(crate) budget: BudgetArgs,

    /// Stop after planning until a person approves the plan (`pae approve
    /// RUN` or `pae edit RUN --plan FILE`, then `pae resume RUN`); exits
    /// with code 6.
    #[arg(long)]
    pub(crate) approve: bool,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `pae resume` flags.
#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The run's id (from `pae run` or `pae runs`).
    pub(crate) run: String,

    #[command(flatten)]
    pub(crate) model: ModelArgs,

    #[command(flatten)]
    pub(crate) budget: BudgetArgs,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `pae submit` flags.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// What the agent should achieve.
    #[arg(value_parser = parse_objective)]
    pub(crate) objective: String,

    #[command(flatten)]
    pub(crate) model: ModelArgs,

    #[command(flatten)]
    pub(crate) agent: AgentArgs,

    #[command(flatten)]
    pub(crate) budget: BudgetArgs,

    /// Stop after planning until a person approves the plan (`pae approve
    /// RUN`); a worker then goes on with it.
    #[arg(long)]
    pub(crate) approve: bool,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae worker` flags.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Runs advanced at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) concurrency: u32,

    /// How long a run's lease lasts without renewal, in seconds: a dead
    /// worker's runs are taken over after it (plus one sweep, 5 s); runs of
    /// a dead worker on this machine at once.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) lease_ttl: f64,

    /// How long runs in progress may go on after SIGTERM before they are
    /// stopped and handed back to other workers, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub(crate) grace: f64,

    /// How often to look for runs whose worker is gone, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, hide = true)]
    pub(crate) sweep_every: f64,

    /// How often to poll the queue when it was empty, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200, hide = true)]
    pub(crate) poll_ms: u64,

    /// No line per run on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae runs` flags.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// Print a JSON array of objects (`id`, `status`, `objective`, …),
    /// newest last.
    #[arg(long)]
    pub(crate) json: bool,

    /// Only runs with this status (planning, awaiting_approval, running,
    /// interrupted, succeeded, failed, cancelled).
    #[arg(long, value_name = "STATUS")]
    pub(crate) status: Option<String>,

    /// Only the newest N runs.
    #[arg(long, value_name = "N")]
    pub(crate) last: Option<usize>,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae show` flags.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The run's id.
    pub(crate) run: String,

    /// Print the run as JSON.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also list the model and tool calls journaled in each step.
    #[arg(long)]
    pub(crate) calls: bool,

    /// Write a self-contained HTML report (plan graph, timeline of steps
    /// and tool calls, each step's calls with inputs and results, tokens,
    /// plan revisions) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,

    /// Print the plan as a Mermaid flowchart (paste into Markdown).
    #[arg(long, conflicts_with = "json")]
    pub(crate) mermaid: bool,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae approve` flags.
#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    /// The run's id.
    pub(crate) run: String,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae edit` flags.
#[derive(Debug, Args)]
pub(crate) struct EditArgs {
    /// The run's id.
    pub(crate) run: String,

    /// The new plan: a numbered list, a JSON array of steps, or
    /// {"steps": [...]} (steps as text or {"value", "id", "depends_on"}).
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: PathBuf,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `pae reject` flags.
#[derive(Debug, Args)]
pub(crate) struct RejectArgs {
    /// The run's id.
    pub(crate) run: String,

    /// Why, for the record.
    #[arg(long)]
    pub(crate) reason: Option<String>,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run_args(args: &[&str]) -> Box<RunArgs> {
        let mut all = vec!["pae", "run"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Run(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn history_parses() {
        assert_eq!(parse_history("all"), Ok(History::All));
        assert_eq!(parse_history("last:3"), Ok(History::LastK(3)));
        assert!(parse_history("last:x").is_err());
        assert!(parse_history("some").is_err());
        assert_eq!(parse_history("digest"), Ok(History::Digest(None)));
        assert_eq!(parse_history("digest:5"), Ok(History::Digest(Some(5))));
        assert!(parse_history("digest:x").is_err());
        for history in [History::Digest(None), History::Digest(Some(2))] {
            assert_eq!(parse_history(&history.label()), Ok(history));
        }
    }

    #[test]
    fn an_empty_objective_is_a_usage_error() {
        for objective in ["", "  \n\t"] {
            let err = Cli::try_parse_from(["pae", "run", objective]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains("the objective is empty"), "{err}");
        }
    }

    #[test]
    fn defaults_are_the_local_model_and_structured_plans() {
        let args = run_args(&["do it"]);
        assert_eq!(args.model.provider, None, "local unless given");
        assert_eq!(args.agent.planner, PlannerMode::Structured);
        assert_eq!(args.agent.tools, [ToolName::Calculator, ToolName::Time]);
        assert_eq!(args.agent.history, History::Digest(None));
    }

    #[test]
    fn flags_parse() {
        let args = run_args(&[
            "x",
            "--provider",
            "openai",
            "--tools",
            "calculator,files",
            "--files-root",
            "/tmp",
            "--history",
            "last:2",
            "--replan",
            "on-failure",
            "--planner",
            "text",
            "--budget-tokens",
            "500",
            "--approve",
        ]);
        assert_eq!(args.model.provider, Some(Provider::Openai));
        assert_eq!(args.agent.tools, [ToolName::Calculator, ToolName::Files]);
        assert_eq!(args.agent.history, History::LastK(2));
        assert_eq!(args.agent.replan, Replan::OnFailure);
        assert_eq!(args.budget.budget_tokens, Some(500));
        assert!(args.approve);
        assert!(Cli::try_parse_from(["pae", "run", "x", "--tools", "hammer"]).is_err());
    }

    #[test]
    fn agent_settings_round_trip_through_json() {
        let args = run_args(&["x", "--history", "last:3", "--tools", "files"]);
        let json = serde_json::to_value(&args.agent).unwrap();
        assert_eq!(json["history"], "last:3");
        assert_eq!(json["tools"], serde_json::json!(["files"]));
        let back: AgentArgs = serde_json::from_value(json).unwrap();
        assert_eq!(back.history, History::LastK(3));
    }

    #[test]
    fn resume_flags_override_stored_ones() {
        let stored = ModelArgs {
            provider: Some(Provider::Openai),
            base_url: Some("http://old:1/v1".into()),
            model_name: Some("m".into()),
            ..ModelArgs::default()
        };
        let given = ModelArgs {
            base_url: Some("http://new:2/v1".into()),
            ..ModelArgs::default()
        };
        let merged = stored.overridden_by(&given);
        assert_eq!(merged.base_url.as_deref(), Some("http://new:2/v1"));
        assert_eq!(merged.model_name.as_deref(), Some("m"));
        assert_eq!(merged.provider, Some(Provider::Openai));
    }

    #[test]
    fn store_commands_parse() {
        for line in [
            &["pae", "runs", "--json"][..],
            &["pae", "show", "r1", "--json"],
            &["pae", "resume", "r1", "--base-url", "http://x:1/v1"],
            &["pae", "approve", "r1"],
            &["pae", "edit", "r1", "--plan", "plan.txt"],
            &["pae", "reject", "r1", "--reason", "no"],
            &["pae", "runs", "--store", "/tmp/x.db"],
        ] {
            assert!(Cli::try_parse_from(line).is_ok(), "{line:?}");
        }
        assert!(Cli::try_parse_from(["pae", "edit", "r1"]).is_err());
    }
}
