//! Command-line arguments of `pae`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run finished; the answer is on stdout
  1  the run failed (planning, a step or replanning failed; see the message)
  2  bad flags or arguments
  3  the local model file is missing or is not a usable GGUF file
  4  the model server cannot be reached
  5  the API key is missing or was rejected";

/// Run a plan-and-execute agent: a model writes a plan for the objective,
/// an executor carries out each step with tools, and the last step's
/// answer is printed.
#[derive(Debug, Parser)]
#[command(name = "pae", version, about, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Plan and carry out an objective; the final answer goes to stdout,
    /// progress to stderr.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<RunArgs>),
}

/// Which model provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

/// How an OpenAI-compatible server handles schemas and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Compat {
    /// OpenAI's API: native tools and `json_schema` response formats.
    Openai,
    /// llama-cpp-python's server: JSON schemas in its own
    /// `json_object` form, text-JSON tool actions.
    LlamaCppPython,
}

/// How plans are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub(crate) enum ToolName {
    /// Arithmetic expressions.
    Calculator,
    /// The current date and time.
    Time,
    /// Reading files under --files-root.
    Files,
}

/// What a step returns when it reaches --max-iterations. Either way, a step
/// left without an answer answers with its last successful tool result, if
/// it has one, and is marked stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum History {
    All,
    LastK(usize),
}

impl History {
    pub(crate) fn label(self) -> String {
        match self {
            Self::All => "all".into(),
            Self::LastK(k) => format!("last:{k}"),
        }
    }
}

fn parse_history(text: &str) -> Result<History, String> {
    if text == "all" {
        return Ok(History::All);
    }
    text.strip_prefix("last:")
        .and_then(|k| k.parse::<usize>().ok())
        .map(History::LastK)
        .ok_or_else(|| format!("expected `all` or `last:K` (K a number), got {text:?}"))
}

fn parse_objective(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the objective is empty; say what the agent should achieve".into());
    }
    Ok(text.to_owned())
}

/// `pae run` flags.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// What the agent should achieve, for example "What is 17*23 plus the
    /// number of days in a leap year?".
    #[arg(value_parser = parse_objective)]
    pub(crate) objective: String,

    /// The model provider.
    #[arg(long, value_enum, default_value_t = Provider::Local)]
    pub(crate) provider: Provider,

    /// The GGUF file for --provider local [default:
    /// $PAE_CACHE_DIR/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf, with
    /// PAE_CACHE_DIR defaulting to ~/.cache/pae].
    #[arg(long, env = "PAE_MODEL", value_name = "PATH")]
    pub(crate) model: Option<PathBuf>,

    /// The model id for --provider openai or ollama [defaults: openai
    /// gpt-4o-mini, or `local` with --base-url; ollama
    /// qwen2.5-coder:0.5b].
    #[arg(long, value_name = "NAME")]
    pub(crate) model_name: Option<String>,

    /// The server's base URL [defaults: openai $OPENAI_BASE_URL or
    /// `https://api.openai.com/v1`; ollama $OLLAMA_HOST or
    /// `http://127.0.0.1:11434`]. The OpenAI key comes from OPENAI_API_KEY.
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,

    /// How the OpenAI-compatible server handles schemas and tools.
    #[arg(long, value_enum, default_value_t = Compat::Openai)]
    pub(crate) compat: Compat,

    /// Canned replies for --provider scripted (a JSON array).
    #[arg(long, value_name = "FILE", hide = true)]
    pub(crate) script: Option<PathBuf>,

    /// Wait this many milliseconds before each scripted reply (shows how
    /// concurrent steps overlap).
    #[arg(long, value_name = "MS", hide = true, default_value_t = 0)]
    pub(crate) script_delay_ms: u64,

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

    /// Which previous steps the executor sees in full: `all` or `last:K`.
    #[arg(long, default_value = "all", value_parser = parse_history)]
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

    /// Context size in tokens for --provider local.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..))]
    pub(crate) ctx_size: u32,

    /// CPU threads for --provider local [default: all cores].
    #[arg(long)]
    pub(crate) threads: Option<u32>,

    /// Write a JSON transcript of the run (plans, steps, tool calls with
    /// inputs and observations, token usage, timings) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,

    /// No progress on stderr (errors are still printed).
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
        let cli = Cli::try_parse_from(["pae", "run", "do it"]).unwrap();
        let Command::Run(args) = cli.command;
        assert_eq!(args.provider, Provider::Local);
        assert_eq!(args.planner, PlannerMode::Structured);
        assert_eq!(args.tools, [ToolName::Calculator, ToolName::Time]);
        assert_eq!(args.history, History::All);
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "pae",
            "run",
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
        ])
        .unwrap();
        let Command::Run(args) = cli.command;
        assert_eq!(args.provider, Provider::Openai);
        assert_eq!(args.tools, [ToolName::Calculator, ToolName::Files]);
        assert_eq!(args.history, History::LastK(2));
        assert_eq!(args.replan, Replan::OnFailure);
        assert!(Cli::try_parse_from(["pae", "run", "x", "--tools", "hammer"]).is_err());
    }
}

/// Whether each step's prompt shows the overall objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Objective {
    /// Show it.
    Show,
    /// Hide it: small models then stick to the current step.
    Hide,
}
