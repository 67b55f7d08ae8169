//! [`ConfigError`]: an agent executor's settings or tools do not fit
//! together.

use pae_core::TemplateError;

/// An [`crate::AgentExecutor`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two tools have the same name; the model could not tell them apart.
    #[error("two tools are named {name:?}")]
    DuplicateTool {
        /// The shared name.
        name: String,
    },
    /// A tool's name is empty or only whitespace.
    #[error("a tool has an empty name")]
    EmptyToolName,
    /// A tool's name reads as the final-answer action (`Final Answer`,
    /// `final_answer`, ...), so calling it could not be told from answering.
    #[error("the tool name {name:?} is reserved for the final answer")]
    ReservedToolName {
        /// The name.
        name: String,
    },
    /// The step prompt (human message template) is malformed.
    #[error("the step prompt template is invalid")]
    Template(#[from] TemplateError),
    /// The step prompt has no `{agent_scratchpad}` placeholder, so with
    /// text actions the model would never see a tool's result.
    #[error(
        "the step prompt template has no {{agent_scratchpad}} placeholder, which text-JSON actions need"
    )]
    MissingScratchpad,
}
